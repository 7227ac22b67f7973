//! What an operator meets before the first request: `--version` names the commit, `keygen
//! --out` writes a file only its owner reads, `healthcheck` answers for a container, `check`
//! never repeats a pasted secret, YAML syntax errors point at the line with a hint, and a
//! refused config at `run` is reported in the log format in force.

use crate::common::*;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

fn verigate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_verigate"))
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn version_names_the_git_commit() {
    let out = verigate().arg("--version").output().expect("run --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let commit = text
        .strip_prefix(&format!("verigate {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {text}"));
    // Built from this checkout: the commit git names (a tarball build says `unknown`).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(h) => assert_eq!(commit, h, "--version names the checkout's commit"),
        None => assert_eq!(commit, "unknown"),
    }
}

#[test]
fn keygen_out_writes_mode_0600_never_over_a_file_or_through_a_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secrets.env");
    let out = verigate()
        .args(["keygen", "--out"])
        .arg(&file)
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        out.stdout.is_empty(),
        "secrets go to the file, not the terminal"
    );
    let meta = std::fs::metadata(&file).expect("written");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let first = std::fs::read_to_string(&file).expect("read");
    assert!(first.contains("VERIGATE_SESSION_KEYS="), "{first}");

    // A second run does not overwrite the secrets in use...
    let out = verigate()
        .args(["keygen", "--out"])
        .arg(&file)
        .output()
        .expect("keygen");
    assert_eq!(out.status.code(), Some(2));
    assert!(said(&out).contains("--force"), "{}", said(&out));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), first);
    // ...unless asked.
    let out = verigate()
        .args(["keygen", "--assertion-key", "--force", "--out"])
        .arg(&file)
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", said(&out));
    assert!(std::fs::read_to_string(&file)
        .expect("read")
        .starts_with("-----BEGIN PRIVATE KEY-----"));

    // A symbolic link planted where the file goes is refused, with --force too.
    let target = dir.path().join("victim");
    std::fs::write(&target, "unchanged").expect("write");
    let link = dir.path().join("link.env");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    for force in [false, true] {
        let mut cmd = verigate();
        cmd.args(["keygen", "--out"]).arg(&link);
        if force {
            cmd.arg("--force");
        }
        let out = cmd.output().expect("keygen");
        assert_eq!(out.status.code(), Some(2), "{}", said(&out));
        assert!(said(&out).contains("symbolic link"), "{}", said(&out));
    }
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "unchanged");
}

/// A config where secrets were pasted in place of their variables' names and files' paths.
fn pasted(secret: &str, numeric: &str, file_secret: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
upstream: {{ addrs: ["127.0.0.1:3000"] }}
session: {{ keys_env: VG_KEYS, hash_key_file: "{file_secret}" }}
providers:
  iamport:
    imp_code: imp1
    api_key_env: {numeric}
    api_secret_env: "{secret}"
routes:
  - name: signup
    match: {{ path: /signup }}
    require: {{ providers: [iamport], min_age: 19, age_rule: youth_act }}
"#
    )
}

#[test]
fn check_never_repeats_a_pasted_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("verigate.yaml");
    // The shapes real secrets have: mixed-case base64 and hex, a numeric REST API key.
    let secret = "Zk9fP2xLq8RtY3vB7nM1wQ4e";
    let file_secret = "a3f9c2e1d4b5a6978812ffee00";
    let numeric = "1234567890123456";
    std::fs::write(&cfg, pasted(secret, numeric, file_secret)).expect("write");
    let out = verigate()
        .args(["check", "-c"])
        .arg(&cfg)
        .env("VG_KEYS", SESSION_KEY)
        .output()
        .expect("check");
    let text = said(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for s in [secret, file_secret, numeric] {
        assert!(!text.contains(s), "check repeated a secret ({s}):\n{text}");
    }
    // Still says where and what: the key paths, and what belongs there.
    assert!(
        text.contains("providers.iamport.api_key_env"),
        "the numeric key is named by its path:\n{text}"
    );

    // With the numeric key quoted, the remaining problems are each named by their path.
    std::fs::write(&cfg, pasted(secret, &format!("\"{numeric}\""), file_secret)).expect("write");
    let out = verigate()
        .args(["check", "-c"])
        .arg(&cfg)
        .env("VG_KEYS", SESSION_KEY)
        .output()
        .expect("check");
    let text = said(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for s in [secret, file_secret, numeric] {
        assert!(!text.contains(s), "check repeated a secret ({s}):\n{text}");
    }
    for key in [
        "providers.iamport.api_secret_env",
        "providers.iamport.api_key_env",
        "session.hash_key_file",
    ] {
        assert!(text.contains(key), "{key} not named:\n{text}");
    }
    assert!(text.contains("pasted the secret"), "{text}");

    // A variable's real name is still named when it is not set.
    let missing = dir.path().join("hash.key");
    std::fs::write(
        &cfg,
        pasted(
            "IAMPORT_API_SECRET",
            "IAMPORT_API_KEY",
            &missing.display().to_string(),
        ),
    )
    .expect("write");
    let out = verigate()
        .args(["check", "-c"])
        .arg(&cfg)
        .env("VG_KEYS", SESSION_KEY)
        .env_remove("IAMPORT_API_SECRET")
        .output()
        .expect("check");
    let text = said(&out);
    assert!(
        text.contains("environment variable IAMPORT_API_SECRET is not set"),
        "{text}"
    );
    assert!(
        text.contains(&format!("cannot read {}", missing.display())),
        "{text}"
    );
}

#[test]
fn yaml_tab_names_its_line_with_a_hint() {
    let text = "listen: 127.0.0.1:0\nupstream:\n\taddrs: [\"127.0.0.1:3000\"]\n";
    let ps = match verigate::config::from_yaml_str(
        text,
        &verigate::config::Secrets::from_map(Default::default()),
    ) {
        Ok(_) => panic!("a tab-indented config was accepted"),
        Err(e) => e.problems(),
    };
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].contains("YAML does not allow tabs for indentation"),
        "{ps:?}"
    );
    assert!(ps[0].contains("line 3"), "the tab is on line 3: {ps:?}");
    // No hint where there is no tab.
    let ps = match verigate::config::from_yaml_str(
        "listen: [\n",
        &verigate::config::Secrets::from_map(Default::default()),
    ) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.problems(),
    };
    assert!(!ps.iter().any(|p| p.contains("tab")), "{ps:?}");
}

#[test]
fn run_reports_a_refused_config_as_json_log_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("verigate.yaml");
    std::fs::write(&cfg, "listen: nowhere\n").expect("write");
    let out = verigate()
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "run said nothing");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
        assert_eq!(v["level"], "ERROR", "{l}");
    }
    assert!(
        err.contains("config refused: missing field `session`"),
        "{err}"
    );
}

/// An admin listener stand-in whose /readyz answers `status`.
async fn readyz_answering(status: u16) -> std::net::SocketAddr {
    spawn_router(axum::Router::new().route(
        "/readyz",
        axum::routing::get(move || async move {
            (
                http::StatusCode::from_u16(status).expect("status"),
                "detail",
            )
        }),
    ))
    .await
}

async fn healthcheck(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || verigate().arg("healthcheck").args(args).output())
        .await
        .expect("join")
        .expect("healthcheck")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exit_status_follows_readyz() {
    let ready = readyz_answering(200).await;
    let unready = readyz_answering(503).await;
    // From the config's admin_listen, as the container runs it.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("verigate.yaml");
    for (admin, want) in [(ready, 0), (unready, 1)] {
        std::fs::write(&cfg, format!("admin_listen: {admin}\n")).expect("write");
        let out = healthcheck(vec!["-c".into(), cfg.display().to_string()]).await;
        assert_eq!(out.status.code(), Some(want), "{admin}: {}", said(&out));
    }
    // Nothing listening: not healthy.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let out = healthcheck(vec!["--admin".into(), gone.to_string()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    // A config without admin_listen: told what to set.
    std::fs::write(&cfg, "listen: 127.0.0.1:0\n").expect("write");
    let out = healthcheck(vec!["-c".into(), cfg.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).contains("admin_listen"), "{}", said(&out));

    // The real thing: a running verigate is healthy.
    let (router, _sim) =
        verigate::demo::sandbox::router(verigate::providers::sandbox::SandboxOptions::default());
    let sandbox = spawn_router(router).await;
    let upstream = spawn_router(axum::Router::new().fallback(|| async { "ok" })).await;
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, Proxy::shop().to_yaml(sandbox, upstream)).expect("write");
    let p = start_binary(&real);
    let admin = p.admin.expect("admin address");
    wait_ready(&client(), admin).await;
    let out = healthcheck(vec!["--admin".into(), admin.to_string()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
}
