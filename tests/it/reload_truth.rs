//! Reload that tells the truth: `verigate reload` prints what `check` prints, fails with the
//! problems of a refused config, refuses a file the server does not serve, and the service
//! manager hears READY=1, RELOADING=1 and READY=1 (and STOPPING=1) on `$NOTIFY_SOCKET`.

use crate::common::*;
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output};
use std::time::Duration;

fn said(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn verigate(args: &[&str], cfg: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(args)
        .arg("-c")
        .arg(cfg)
        .env("VG_KEYS", SESSION_KEY)
        .env("VG_HASH", HASH_KEY)
        .env("IMP_KEY", "sandbox_key")
        .env("IMP_SECRET", "sandbox_secret")
        .output()
        .expect("run verigate")
}

/// The next notification, as `KEY=value` lines (waits at most 30 s: a missing message fails).
fn next(sock: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the read timeout");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reports_like_check_and_notifies_the_service_manager() {
    let upstream = spawn_router(axum::Router::new().fallback(|| async { "ok" })).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");

    let cfg = dir.path().join("verigate.yaml");
    let base = Proxy::shop();
    std::fs::write(&cfg, base.to_yaml(NO_SANDBOX, upstream)).expect("write");
    let notify_env = notify_path.display().to_string();
    let p = start_binary_with(&cfg, &[("NOTIFY_SOCKET", notify_env.as_str())]);
    let admin = p.admin.expect("admin").to_string();
    assert!(
        next(&notify).contains(&"READY=1".to_string()),
        "READY=1 at start"
    );

    // A config with a warning: reload prints exactly the warnings check prints, then ok.
    let warned = base
        .clone()
        .named_upstream("spare", [upstream.to_string()], json!({}));
    std::fs::write(&cfg, warned.to_yaml(NO_SANDBOX, upstream)).expect("write");
    let check = verigate(&["check"], &cfg);
    let (check_out, _) = said(&check);
    let check_warnings: Vec<&str> = check_out
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert!(!check_warnings.is_empty(), "{check_out}");
    let out = verigate(&["reload", "--admin", &admin], &cfg);
    let (stdout, stderr) = said(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let reload_warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(reload_warnings, check_warnings);
    assert_eq!(stdout.lines().last(), Some("ok"));
    let reloading = next(&notify);
    assert!(
        reloading.contains(&"RELOADING=1".to_string()),
        "{reloading:?}"
    );
    let usec = reloading
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        usec > 0,
        "RELOADING=1 carries MONOTONIC_USEC: {reloading:?}"
    );
    let back = next(&notify);
    assert!(back.contains(&"READY=1".to_string()), "{back:?}");

    // A refused config: non-zero, the problem printed, READY=1 again (old config serving).
    std::fs::write(
        &cfg,
        base.to_yaml(NO_SANDBOX, upstream)
            .replace("min_age: 19", "min_age: -3"),
    )
    .expect("write");
    let out = verigate(&["reload", "--admin", &admin], &cfg);
    let (stdout, stderr) = said(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("routes[0].require.min_age"), "{stdout}");
    assert!(!stdout.lines().any(|l| l == "ok"), "{stdout}");
    assert!(next(&notify).contains(&"RELOADING=1".to_string()));
    let back = next(&notify);
    assert!(back.contains(&"READY=1".to_string()), "{back:?}");
    assert!(
        back.iter().any(|l| l.contains("reload refused")),
        "{back:?}"
    );

    // Another file than the served one is refused before anything is reloaded.
    std::fs::write(&cfg, base.to_yaml(NO_SANDBOX, upstream)).expect("write");
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, base.to_yaml(NO_SANDBOX, upstream)).expect("write");
    let before = metric_of(&admin, "verigate_config_reloads_total{result=\"success\"}").await;
    let out = verigate(&["reload", "--admin", &admin], &other);
    let (stdout, stderr) = said(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let served = std::fs::canonicalize(&cfg).expect("canonical");
    assert!(
        stderr.contains(&format!("serves {}", served.display())),
        "{stderr}"
    );
    assert_eq!(
        metric_of(&admin, "verigate_config_reloads_total{result=\"success\"}").await,
        before,
        "no reload happened"
    );
    // The served file, named by a relative path from its folder, is the same file.
    let out = Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["reload", "--admin", &admin, "-c", "verigate.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("reload");
    assert_eq!(out.status.code(), Some(0), "{:?}", said(&out));
    assert!(next(&notify).contains(&"RELOADING=1".to_string()));
    assert!(next(&notify).contains(&"READY=1".to_string()));

    // Nobody there: exit 1 and say so.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .to_string();
    let out = verigate(&["reload", "--admin", &gone], &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).1.contains("cannot reach"), "{:?}", said(&out));

    // SIGTERM: STOPPING=1.
    let status = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(next(&notify).contains(&"STOPPING=1".to_string()));
}

async fn metric_of(admin: &str, sample: &str) -> f64 {
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    metric(&text, sample)
}
