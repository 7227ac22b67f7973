//! `deploy/prometheus/alerts.yaml`: valid for Prometheus (`promtool check rules`), each alert
//! raised by the series it is about (`promtool test rules`), naming only metrics verigate
//! exports and documents; and the certificate-expiry gauge it reads, following a reload.

use crate::common::tls::TestCa;
use crate::common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

fn promtool(args: &[&str]) -> Option<String> {
    let out = match Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            skip::missing("promtool", "apt-get install prometheus");
            return None;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{said}");
    Some(said)
}

#[test]
fn the_rules_pass_promtool_and_fire_on_their_series() {
    let Some(said) = promtool(&["check", "rules", "alerts.yaml"]) else {
        return;
    };
    assert!(said.contains("SUCCESS"), "{said}");
    let Some(said) = promtool(&["test", "rules", "alerts.test.yaml"]) else {
        return;
    };
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Every `verigate_*` name in the rules' expressions is a metric verigate defines and
/// `docs/reference/metrics.md` documents: a renamed metric cannot leave an alert silent.
#[test]
fn the_rules_name_only_metrics_that_exist() {
    let text = std::fs::read_to_string(dir().join("alerts.yaml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let documented = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/reference/metrics.md"),
    )
    .unwrap();
    let mut defined = verigate::metrics::names();
    // Registered by the readiness probes, outside `names()`.
    defined.push("verigate_provider_credentials_ok".into());
    let mut seen = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("verigate_"))
                .collect();
            for name in names {
                seen += 1;
                assert!(
                    documented.contains(&format!("`{name}`")),
                    "{name} (alert {:?}) is not in docs/reference/metrics.md",
                    rule["alert"]
                );
                assert!(
                    defined.iter().any(|d| d == name),
                    "{name} (alert {:?}) is no metric verigate defines",
                    rule["alert"]
                );
            }
        }
    }
    assert!(seen >= 10, "{seen}");
}

/// A server certificate for the test host, valid until `y-m-d`.
fn write_cert(ca: &TestCa, dir: &std::path::Path, (y, m, d): (i32, u8, u8)) -> (PathBuf, PathBuf) {
    let (cert, key) = ca.server_until(&[crate::common::tls::HOST], y, m, d);
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn expiry(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix("verigate_tls_certificate_expiry_timestamp_seconds ")
            .map(|v| v.trim().parse().unwrap())
    })
}

fn unix(y: i32, m: u32, d: u32) -> f64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_expiry_is_exported_and_follows_a_reload() {
    // The gauge is process-wide: alone, no other TLS test moves it.
    if !skip::alone("alerts::the_certificate_expiry_is_exported_and_follows_a_reload") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new("expiry CA");
    let (cert, key) = write_cert(&ca, tmp.path(), (2031, 5, 6));
    let proxy = Proxy::shop()
        .set("tls", json!({ "cert_file": cert, "key_file": key }))
        .reloadable();
    let env = Env::with(proxy).await;
    assert_eq!(expiry(&env.metrics().await), Some(unix(2031, 5, 6)));
    // Renewed in place, then reloaded: the gauge names the new certificate.
    write_cert(&ca, tmp.path(), (2032, 1, 2));
    assert_eq!(env.reload().await.0, 200);
    assert_eq!(expiry(&env.metrics().await), Some(unix(2032, 1, 2)));
}
