//! The real app servers of the differential suite (tests/apps/, started by
//! tests/common/apps.rs) come up and route natively: `/signup`, `/checkout/...` and the
//! catch-all each run their own handler, and the `x-verified-*` headers are echoed back.
//! A stack that cannot start fails the test under `CI=true` and is skipped, with a visible
//! `SKIPPED:` line, elsewhere (tests/apps/setup.sh installs them all).

use crate::common::apps::{self, Stack};
use serde_json::Value;
use std::io::Write;

fn check(server: &apps::AppServer) {
    let stack = server.stack_name;
    for (target, want) in [
        ("/signup", "signup"),
        ("/checkout/x", "checkout"),
        ("/other", "catchall"),
    ] {
        let req = apps::get_request(
            target,
            &[
                "x-verified-unique-in-site: uniq-123",
                "x-verified-age-ok: true",
            ],
        );
        let (status, headers, body) = apps::raw_http(server.addr, &req);
        assert_eq!(status, 200, "{stack} GET {target}: {headers}\n{body}");
        assert_eq!(
            apps::header(&headers, "x-handler").as_deref(),
            Some(want),
            "{stack} GET {target}: X-Handler in {headers}"
        );
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{stack} GET {target}: body {body:?}: {e}"));
        assert_eq!(json["handler"], want, "{stack} GET {target}: {json}");
        assert_eq!(json["method"], "GET", "{stack} GET {target}: {json}");
        assert_eq!(json["path"], target, "{stack} GET {target}: {json}");
        assert_eq!(json["raw"], target, "{stack} GET {target}: {json}");
        let read = &json["read"];
        assert_eq!(
            read["x-verified-unique-in-site"], "uniq-123",
            "{stack} GET {target}: {json}"
        );
        assert_eq!(
            read["x-verified-age-ok"], "true",
            "{stack} GET {target}: {json}"
        );
        assert_eq!(
            apps::header(&headers, "x-identity").as_deref(),
            Some("x-verified-age-ok,x-verified-unique-in-site"),
            "{stack} GET {target}: {headers}"
        );
    }
    // Without the headers the app sees null.
    let (status, _, body) = apps::raw_http(server.addr, &apps::get_request("/signup", &[]));
    assert_eq!(status, 200, "{stack}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["read"]["x-verified-unique-in-site"],
        Value::Null,
        "{stack}: {json}"
    );
    assert_eq!(
        json["read"]["x-verified-age-ok"],
        Value::Null,
        "{stack}: {json}"
    );
    // `?status=` makes the handler answer that redirect (the one-account 3xx family).
    for code in [301u16, 307, 308] {
        let req = apps::get_request(&format!("/signup?status={code}"), &[]);
        let (status, headers, _) = apps::raw_http(server.addr, &req);
        assert_eq!(status, code, "{stack} /signup?status={code}: {headers}");
        assert_eq!(
            apps::header(&headers, "x-handler").as_deref(),
            Some("signup"),
            "{stack}: {headers}"
        );
    }
}

#[test]
fn every_stack_routes_natively_and_echoes_the_verified_headers() {
    // Start them all first: the JVM and the interpreters boot in parallel.
    let started: Vec<_> = Stack::all()
        .into_iter()
        .map(|s| {
            let h = std::thread::spawn(move || apps::start(s));
            (s, h)
        })
        .collect();
    for (stack, handle) in started {
        match handle.join().expect("start thread") {
            Ok(server) => check(&server),
            Err(why) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("CI=true, but the {} app cannot start: {why}", stack.name());
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: {}: {why} (with CI=true this fails)",
                    stack.name()
                );
            }
        }
    }
}
