//! verigate's command line. Parses arguments, loads config, builds, runs: nothing else.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// glibc's malloc was ~10% of the proxy thread's CPU under load (benches/load.sh profile);
// mimalloc's thread-local free lists make a request's many small allocations cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "verigate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("VERIGATE_COMMIT"), ")"),
    about = "Korean identity verification in front of any web app"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (for the default `run` command).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve, with the config at FILE (the default command).
    Run {
        /// Take the listening sockets over from a running verigate (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Load and validate the config, print `ok` (after any warnings) or every problem.
    Check {
        /// Also try each provider's credentials against its API (a token, a lookup); exits 2
        /// when a provider refuses them or cannot be reached.
        #[arg(long)]
        online: bool,
    },
    /// Sandbox providers, a demo merchant app and the proxy, all on loopback.
    Demo {
        /// Where the proxy listens (falls back to an ephemeral port if taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Only the provider simulators.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:9900")]
        listen: SocketAddr,
        /// Lifetime of issued tokens in seconds (shorten it to test expiry).
        #[arg(long, default_value_t = 1800)]
        token_ttl: u64,
        /// Register a TomoIDV client: ID=FILE, FILE holding its public JWK (repeatable).
        #[arg(long = "tomo-client")]
        tomo_clients: Vec<String>,
    },
    /// Print fresh secrets for the config.
    Keygen {
        /// Print a fresh EC P-256 private key (PEM) for identity_headers.assertion.key_file.
        #[arg(long)]
        assertion_key: bool,
        /// Print a fresh TomoIDV-style key pair: the base64url private JWK, then the public JWK.
        #[arg(long, conflicts_with = "assertion_key")]
        tomo_jwk: bool,
        /// Write to FILE (mode 0600; never through a symbolic link) instead of printing.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// With --out: replace FILE when it exists.
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Exit 0 when the running verigate is ready (its admin listener's /readyz), 1 when not.
    /// For a container's HEALTHCHECK; reads admin_listen from the config.
    Healthcheck {
        /// The admin address, when FILE's admin_listen does not say it.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Ask the running verigate to re-read the file it serves. FILE (-c) must be that file: it
    /// names the admin listener (admin_listen) and is compared with what the server serves, so
    /// a reload never silently reads another file. Prints the new config's warnings (as
    /// `check` does) and `ok`; exits 2 when the config is refused (its problems printed), 1
    /// when verigate cannot be reached.
    Reload {
        /// The admin address, when FILE's admin_listen does not say it (e.g. port 0).
        #[arg(long)]
        admin: Option<String>,
    },
    /// One-account-per-person records in the configured store.
    Accounts {
        #[command(subcommand)]
        action: AccountsAction,
    },
    /// The audit trail of erasures (one JSON object a line; no clear identifiers).
    Audit {
        /// Only lines from this time: RFC 3339, UNIX seconds, or a duration back (7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// The verification ledger (records.ledger: one JSON object a line; no name, no CI).
    Ledger {
        /// Only lines from this time: RFC 3339, UNIX seconds, or a duration back (7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Guardian consent records (proof of a guardian's consent to a child's signup).
    Consents {
        #[command(subcommand)]
        action: ConsentsAction,
    },
}

#[derive(Subcommand)]
enum ConsentsAction {
    /// One consent record, as JSON (the id the app received in X-Verified-Guardian-Consent).
    Show { id: String },
    /// A child's consent records, oldest first: the person id (X-Verified-Person), or a
    /// stated child's id (stated:…).
    Of { child: String },
}

#[derive(Subcommand)]
enum AccountsAction {
    /// How many people have a completed signup on a one-account route.
    Count,
    /// Release a person's records (for the merchant's account-deletion process).
    Forget {
        /// The per-site identifier the app received (X-Verified-Unique-In-Site).
        #[arg(
            long,
            conflicts_with_all = ["ci_hash", "consent_child"],
            required_unless_present_any = ["ci_hash", "consent_child"]
        )]
        unique_in_site: Option<String>,
        /// The person the app received (X-Verified-Person): the keyed hash of the CI, as kept
        /// in verigate's records.
        #[arg(long, alias = "person", conflicts_with = "consent_child")]
        ci_hash: Option<String>,
        /// A child without a verification of their own (stated:…, the child of their consent
        /// records): their guardian consent records.
        #[arg(long, conflicts_with = "route")]
        consent_child: Option<String>,
        /// Only this route's one-account records (and its cooldown): the person stays
        /// verified, and a member, elsewhere.
        #[arg(long)]
        route: Option<String>,
    },
}

/// JSON logs on stderr, batched and written by a background thread so that no request waits
/// on a write. Keep the guard until the process is done: dropping it writes what is left.
fn init_logging() -> Option<verigate::logwriter::FlushGuard> {
    // Pingora's listener logs a failed or timed-out TLS handshake at ERROR with the client's
    // address (personal data), for every scanner and every client that refuses the
    // certificate: off by default.
    // Pingora's ERROR lines for a client's own doing (closed, reset, malformed) show only
    // when the level asked for is debug or trace.
    let verbose = std::env::var("VERIGATE_LOG")
        .map(|v| v.contains("debug") || v.contains("trace"))
        .unwrap_or(false);
    let filter = tracing_subscriber::EnvFilter::try_from_env("VERIGATE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,pingora=warn,pingora_core::services::listening=off",
        )
    });
    let (writer, guard) = match verigate::logwriter::batched(std::io::stderr()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("verigate: cannot start the log writer: {e}");
            return None;
        }
    };
    verigate::logwriter::install(writer.clone());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .with_writer(writer)
        .finish()
        .with(verigate::logwriter::QuietPoolMiss)
        .with(verigate::logwriter::QuietClientErrors { keep: verbose })
        .try_init();
    verigate::logwriter::settle_access_filter();
    Some(guard)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Check { online } => {
            let Some(path) = cli.config else {
                eprintln!("verigate check: give the config with -c FILE");
                return ExitCode::from(2);
            };
            match verigate::config::load_file(&path) {
                Ok(cfg) => {
                    for w in verigate::reload::warnings(&cfg) {
                        println!("warning: {w}");
                    }
                    if let Err(e) = verigate::store::check(&cfg.store) {
                        println!("store.path: {e}");
                        return ExitCode::from(2);
                    }
                    if online {
                        let (lines, all_ok) = match verigate::providers::registry::live(cfg) {
                            Ok(live) => verigate::live::probe::check_online(live),
                            Err(e) => (vec![format!("provider client: {e}")], false),
                        };
                        for l in lines {
                            println!("{l}");
                        }
                        if !all_ok {
                            return ExitCode::from(2);
                        }
                    }
                    println!("ok");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    for p in e.problems() {
                        println!("{p}");
                    }
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { upgrade } => {
            let _logs = init_logging();
            let Some(path) = cli.config else {
                eprintln!("verigate run: give the config with -c FILE");
                return ExitCode::from(2);
            };
            let cfg = match verigate::config::load_file(&path) {
                Ok(c) => c,
                Err(e) => {
                    // In the log format in force (JSON lines), like everything `run` says.
                    for p in e.problems() {
                        tracing::error!(path = %path.display(), "config refused: {p}");
                    }
                    return ExitCode::from(2);
                }
            };
            for w in &cfg.warnings {
                tracing::warn!(key = %w.path, "config: {}", w.message);
            }
            let tls = cfg.tls.is_some();
            // The absolute path, so `verigate reload -c FILE` from any folder can compare.
            let served = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let opts = verigate::BuildOptions {
                upgrade,
                reload: Some(verigate::reload::ReloadSource {
                    path: served,
                    secrets: verigate::config::Secrets::from_process(),
                }),
                sighup: true,
                notify: true,
                probe_credentials: true,
            };
            match verigate::build(cfg, opts) {
                Ok(built) => {
                    let admin = built.admin_addr.map(|a| a.to_string()).unwrap_or_default();
                    let redirect = built
                        .redirect_addr
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    tracing::info!(listen = %built.proxy_addr, tls = tls, admin = %admin, redirect_http = %redirect, "verigate serving");
                    built.server.run(pingora::server::RunArgs::default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("cannot start: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { listen } => {
            let _logs = init_logging();
            match verigate::demo::run(listen) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("verigate demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sandbox {
            listen,
            token_ttl,
            tomo_clients,
        } => {
            let _logs = init_logging();
            let mut clients = Vec::new();
            for spec in tomo_clients {
                let Some((id, file)) = spec.split_once('=') else {
                    eprintln!("--tomo-client takes ID=FILE");
                    return ExitCode::from(2);
                };
                match std::fs::read_to_string(file) {
                    Ok(jwk) => clients.push((id.to_string(), jwk.trim().to_string())),
                    Err(e) => {
                        eprintln!("--tomo-client {id}: cannot read {file}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            match verigate::demo::sandbox_forever(listen, token_ttl, clients) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("verigate sandbox: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit { since } => log_command(cli.config, "audit", since),
        Command::Ledger { since } => log_command(cli.config, "ledger", since),
        Command::Consents { action } => {
            let cmd = match action {
                ConsentsAction::Show { id } => verigate::records::Command::ConsentShow(id),
                ConsentsAction::Of { child } => verigate::records::Command::ConsentsOf(child),
            };
            records_command(cli.config, "consents", cmd)
        }
        Command::Accounts { action } => {
            let Some(path) = cli.config else {
                eprintln!("verigate accounts: give the config with -c FILE");
                return ExitCode::from(2);
            };
            // Only the store and the hash key: no provider secret is needed here.
            let cfg = match verigate::config::load_records(&path) {
                Ok(c) => c,
                Err(e) => {
                    for p in e.problems() {
                        eprintln!("{p}");
                    }
                    return ExitCode::from(2);
                }
            };
            use verigate::records::Command as Records;
            use verigate::store::PersonRef;
            let cmd = match action {
                AccountsAction::Count => Records::Count,
                AccountsAction::Forget {
                    unique_in_site: Some(u),
                    route,
                    ..
                } => Records::Forget(PersonRef::UniqueInSite(u), route),
                AccountsAction::Forget {
                    ci_hash: Some(h),
                    route,
                    ..
                } => Records::Forget(PersonRef::CiHash(h), route),
                AccountsAction::Forget {
                    consent_child: Some(c),
                    ..
                } => Records::ForgetConsentChild(c),
                AccountsAction::Forget { .. } => {
                    eprintln!(
                        "verigate accounts forget: give --unique-in-site, --ci-hash or --consent-child"
                    );
                    return ExitCode::from(2);
                }
            };
            match verigate::records::run_command(&cfg, cmd) {
                Ok(out) => {
                    println!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("verigate accounts: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Keygen {
            assertion_key,
            tomo_jwk,
            out,
            force,
        } => {
            let text = if tomo_jwk {
                let (private, public) = verigate::providers::tomo::client::fresh_jwk_pair();
                format!(
                    "# providers.tomo.private_key_env / _file (secret):\n{private}\n\
                     # public JWK, to register (verigate sandbox --tomo-client ID=FILE):\n{public}\n"
                )
            } else if assertion_key {
                verigate::assertion::fresh_pem()
            } else {
                format!("{}\n", verigate::demo::keygen_text())
            };
            match out {
                None => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Some(file) => match verigate::secretfile::write(&file, &text, force) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("verigate keygen: {e}");
                        ExitCode::from(2)
                    }
                },
            }
        }
        Command::Healthcheck { admin } => {
            if cli.config.is_none() && admin.is_none() {
                eprintln!("verigate healthcheck: give the config with -c FILE (or --admin ADDR)");
                return ExitCode::from(2);
            }
            let path = cli.config.unwrap_or_default();
            match verigate::admin_client::healthcheck(&path, admin.as_deref()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => {
                    eprintln!("verigate healthcheck: not ready");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("verigate healthcheck: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Reload { admin } => {
            let Some(path) = cli.config else {
                eprintln!("verigate reload: give the config with -c FILE");
                return ExitCode::from(2);
            };
            use verigate::reload::ReloadRequestError;
            match verigate::reload::request_reload(&path, admin.as_deref()) {
                Ok(answer) => {
                    println!("{answer}");
                    ExitCode::SUCCESS
                }
                Err(ReloadRequestError::Refused(problems)) => {
                    println!("{problems}");
                    eprintln!("verigate reload: refused; the previous config keeps serving");
                    ExitCode::from(2)
                }
                Err(e @ ReloadRequestError::NotServed { .. }) => {
                    eprintln!("verigate reload: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("verigate reload: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `verigate audit` / `verigate ledger` with `--since`.
fn log_command(config: Option<PathBuf>, name: &str, since: Option<String>) -> ExitCode {
    let now = chrono::Utc::now().timestamp_millis();
    let since = match verigate::records::api::parse_since(since.as_deref(), now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("verigate {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let cmd = if name == "ledger" {
        verigate::records::Command::Ledger(since)
    } else {
        verigate::records::Command::Audit(since)
    };
    records_command(config, name, cmd)
}

/// `verigate audit`: a record command on the store the config at `config` names.
fn records_command(
    config: Option<PathBuf>,
    name: &str,
    cmd: verigate::records::Command,
) -> ExitCode {
    let Some(path) = config else {
        eprintln!("verigate {name}: give the config with -c FILE");
        return ExitCode::from(2);
    };
    let cfg = match verigate::config::load_records(&path) {
        Ok(c) => c,
        Err(e) => {
            for p in e.problems() {
                eprintln!("{p}");
            }
            return ExitCode::from(2);
        }
    };
    match verigate::records::run_command(&cfg, cmd) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("verigate {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
