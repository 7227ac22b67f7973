//! What verigate remembers about people and how it forgets them: the `accounts` commands
//! (the store the service uses, never a new one, no provider secret needed), the erasure API
//! on the admin listener, per-person revocation across instances.
//! The Redis tests use the server named by VERIGATE_TEST_REDIS; without it they print SKIPPED
//! (and fail under CI=true).

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use verigate::config::Secrets;
use verigate::store::{self, Store};

fn secrets() -> Secrets {
    Proxy::shop().secrets()
}

/// `verigate ARGS -c CONFIG` run in `cwd` with only `env` (no provider secret): exit code,
/// stdout, stderr.
fn cli(cwd: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verigate"))
        .current_dir(cwd)
        .args(args)
        .arg("-c")
        .arg(config)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Two committed signups in `s`.
async fn two_signups(s: &dyn Store) {
    for (ci, di) in [("ci-one", "di-one"), ("ci-two", "di-two")] {
        let p = store::Person {
            ci_hash: ci,
            unique_in_site: di,
        };
        s.reserve_account("signup", p, Duration::from_secs(60))
            .await
            .unwrap();
        s.commit_account("signup", ci).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_cli_from_another_directory_acts_on_the_services_file() {
    let service_dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    // The reference config's relative path.
    let text = Proxy::shop()
        .store(Storage::sqlite("./verigate-state.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = service_dir.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    // The store as the service opens it (the same loading `verigate run` does).
    let cfg = verigate::config::from_file_text(&text, &secrets(), &config).unwrap();
    let s = store::open(&cfg.store).unwrap();
    two_signups(s.as_ref()).await;
    let db = service_dir.path().join("verigate-state.db");
    assert!(db.is_file(), "the service's file is next to its config");

    // Only the hash key in the environment: no session keys, no provider secret.
    let env = [("VG_HASH", HASH_KEY)];
    let (code, out, err) = cli(elsewhere.path(), &config, &["accounts", "count"], &env);
    assert_eq!(code, 0, "{err}");
    let canonical = std::fs::canonicalize(&db).unwrap();
    assert!(
        out.starts_with("2 account record(s) in SQLite file ")
            && std::fs::canonicalize(out.rsplit(' ').next().unwrap()).unwrap() == canonical,
        "{out}"
    );
    let (code, out, err) = cli(
        elsewhere.path(),
        &config,
        &["accounts", "forget", "--unique-in-site", "di-one"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("forgot 1 account record(s) in SQLite file "), "{out}");
    assert_eq!(s.count_accounts().await.unwrap(), 1, "the service's file lost it");
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing created where the operator stands"
    );
}

#[test]
fn accounts_cli_refuses_a_missing_database_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let text = Proxy::shop()
        .store(Storage::sqlite("./not-there.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = dir.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    let env = [("VG_HASH", HASH_KEY)];
    for args in [
        &["accounts", "count"][..],
        &["accounts", "forget", "--ci-hash", "x"][..],
    ] {
        let (code, out, err) = cli(dir.path(), &config, args, &env);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(err.contains("no such database"), "{err}");
        assert!(
            err.contains(&dir.path().join("not-there.db").display().to_string())
                || err.contains("not-there.db"),
            "names the file: {err}"
        );
        assert!(!dir.path().join("not-there.db").exists(), "never created");
    }
}

#[test]
fn accounts_cli_without_any_key_says_which_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let text = Proxy::shop()
        .store(Storage::sqlite("./s.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = dir.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    let (code, _, err) = cli(dir.path(), &config, &["accounts", "count"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("session.hash_key_env"), "{err}");
    assert!(!err.contains("IMP_"), "provider secrets are not asked for: {err}");
}

#[test]
fn a_database_where_earlier_versions_looked_is_refused_not_replaced() {
    // An upgrade: the service ran in /var/lib/verigate-like `workdir` with the config
    // elsewhere and `path: ./verigate-state.db`; its records are in workdir.
    let etc = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let text = Proxy::shop()
        .store(Storage::sqlite("./verigate-state.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = etc.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    std::fs::write(workdir.path().join("verigate-state.db"), b"").unwrap();
    let env = [
        ("VG_HASH", HASH_KEY),
        ("VG_KEYS", SESSION_KEY),
        ("IMP_KEY", "k"),
        ("IMP_SECRET", "s"),
    ];
    for args in [&["check"][..], &["accounts", "count"][..]] {
        let (code, out, err) = cli(workdir.path(), &config, args, &env);
        let said = format!("{out}{err}");
        assert_eq!(code, 2, "{args:?}: {said}");
        assert!(
            said.contains("store.path") && said.contains("where earlier versions looked"),
            "{said}"
        );
    }
    assert!(!etc.path().join("verigate-state.db").exists());
}
