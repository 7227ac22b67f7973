//! Micro-benchmarks of the per-request work of a verified request: session open, path
//! normalisation, route matching on a 200-route table, header strip and inject.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use verigate::gate::headers::{age_on, edit_plain, inject, strip_identity, Identity};
use verigate::identity::Forward;
use verigate::identity::ProviderId;
use verigate::routing::path::normalize;
use verigate::routing::{MatchRule, Route, RouteTable};
use verigate::session::{Claims, Keyring, Purpose};

fn claims() -> Claims {
    Claims {
        unique_in_site: "MC0GCCqGSIb3DQIJAyEAdi+di+di+di+di+di+di+di+di+di+di+di+di+di+di+c="
            .into(),
        ci_hash: "abcdefghijklmnopqrstuvwxyzABCDEF".into(),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 2),
        provider: ProviderId::Iamport,
        verified_at: 1_700_000_000,
        issued_at: 1_700_000_000,
        expires_at: 4_000_000_000,
        name: None,
        gender: None,
        phone: None,
        countries: Vec::new(),
        foreigner: None,
        carrier: None,
        method: String::new(),
        host: Some("shop".into()),
        host_only: false,
        kept: None,
    }
}

fn table(n: usize) -> RouteTable {
    let mut routes: Vec<Route> = (0..n)
        .map(|i| Route {
            name: format!("r{i}"),
            rule: MatchRule::new(
                &format!("/section{i}/page"),
                i % 2 == 0,
                vec![],
                false,
                false,
            ),
            require: None,
            forward: Forward::default(),
            upstream: 0,
        })
        .collect();
    routes.push(Route {
        name: "rest".into(),
        rule: MatchRule::new("/", false, vec![], false, false),
        require: None,
        forward: Forward::default(),
        upstream: 0,
    });
    RouteTable::new(routes)
}

/// `n` routes, each for its own app's hosts (`app{i}.example` and any name under it).
fn hosted_table(n: usize) -> RouteTable {
    let routes = (0..n)
        .map(|i| Route {
            name: format!("app{i}"),
            rule: MatchRule::new("/", false, vec![], false, false).with_hosts(vec![
                verigate::routing::HostPattern::parse(&format!("app{i}.example")).unwrap(),
                verigate::routing::HostPattern::parse(&format!("*.app{i}.example")).unwrap(),
            ]),
            require: None,
            forward: Forward::default(),
            upstream: 0,
        })
        .collect();
    RouteTable::new(routes)
}

fn bench(c: &mut Criterion) {
    let ring = Keyring::new(&[[7u8; 32]]).unwrap();
    let sealed = ring.seal_json(Purpose::Session, &claims());
    c.bench_function("session_seal", |b| {
        b.iter(|| ring.seal_json(Purpose::Session, black_box(&claims())))
    });
    c.bench_function("session_open", |b| {
        b.iter(|| ring.open_session(black_box(&sealed), 1_700_000_100))
    });
    c.bench_function("path_normalize", |b| {
        b.iter(|| normalize(black_box("/section150//page;x=1/%70age/")))
    });
    let t = table(200);
    let m = http::Method::GET;
    c.bench_function("route_match_200_last", |b| {
        b.iter(|| t.find(&[&m], None, black_box("/unlisted/path")))
    });
    c.bench_function("route_match_200_middle", |b| {
        b.iter(|| t.find(&[&m], None, black_box("/section100/page")))
    });
    // Several apps: every route names a host (exact or a wildcard); the match is on the last.
    let hosts = hosted_table(200);
    c.bench_function("route_match_200_hosts_last", |b| {
        b.iter(|| {
            hosts.find(
                &[&m],
                black_box(Some("www.app199.example")),
                black_box("/x"),
            )
        })
    });
    // The upstream address a proxied request goes to (a pool of three, none set aside).
    let pool = verigate::upstreams::Pool::new(verigate::config::Upstream {
        name: "bench".into(),
        addrs: ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
            .iter()
            .map(|a| verigate::config::UpstreamAddr::Ip(a.parse().unwrap()))
            .collect(),
        eject_after: 1,
        eject_for: std::time::Duration::from_secs(10),
        tls: false,
        sni: String::new(),
        connect_timeout: std::time::Duration::from_secs(1),
        read_timeout: std::time::Duration::from_secs(1),
        preserve_header_case: false,
        http2: false,
    });
    c.bench_function("upstream_pick", |b| b.iter(|| pool.pick(black_box(&[]))));
    let names = verigate::config::from_yaml_str(
        &verigate::demo::demo_yaml(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ),
        &verigate::demo::demo_secrets(),
    )
    .unwrap()
    .identity;
    let id = Identity {
        verified: std::sync::Arc::new(verigate::gate::headers::Verified::new(claims())),
        age_ok: Some(true),
        forward: Forward::default(),
        guardian: None,
    };
    c.bench_function("headers_strip_and_inject", |b| {
        b.iter(|| {
            let mut r = pingora::http::RequestHeader::build("GET", b"/signup", None).unwrap();
            r.append_header("host", "shop").unwrap();
            r.append_header("accept", "text/html").unwrap();
            r.append_header("x-verified-age-ok", "true").unwrap();
            strip_identity(&mut r, &names.prefix);
            inject(&mut r, &names, black_box(&id));
            r
        })
    });
    // The same edits on a plain header map, as the gate makes them by default.
    c.bench_function("headers_strip_and_inject_plain", |b| {
        b.iter(|| {
            let mut r = pingora::http::RequestHeader::build("GET", b"/signup", None).unwrap();
            r.append_header("host", "shop").unwrap();
            r.append_header("accept", "text/html").unwrap();
            r.append_header("x-verified-age-ok", "true").unwrap();
            edit_plain(&mut r, |h| {
                strip_identity(h, &names.prefix);
                inject(h, &names, black_box(&id));
            });
            r
        })
    });
}

/// The whole per-request work of a verified request on a gated route, as request_filter and
/// upstream_request_filter do it: strip, normalise, match, read the session cookie and drop
/// verigate's cookies (one parse), open (cached), today's date for the age check, then on
/// Pingora's upstream copy strip again and inject (plain header map, the default).
fn hot_path(c: &mut Criterion) {
    use verigate::cookies::{read as read_cookie, strip as strip_cookies, Jar};
    let yaml = verigate::demo::demo_yaml(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    )
    .replace(
        "  assertion: { enabled: true, key_env: VERIGATE_ASSERTION_KEY, audience: demo-shop }\n",
        "",
    );
    let cfg = verigate::config::from_yaml_str(&yaml, &verigate::demo::demo_secrets()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let sealed = cfg.session.keys.seal_json(
        Purpose::Session,
        &Claims {
            expires_at: now + 3600,
            ..claims()
        },
    );
    let live = verigate::providers::registry::live(cfg).unwrap();
    let mut req = pingora::http::RequestHeader::build("GET", b"/whoami", None).unwrap();
    req.append_header("host", "shop").unwrap();
    req.append_header("accept", "text/html").unwrap();
    let name = live.cfg.session.cookie.clone();
    req.append_header("cookie", format!("{name}={sealed}; theme=dark"))
        .unwrap();
    let m = http::Method::GET;
    live.verified(&sealed, now).unwrap();
    c.bench_function("session_cache_hit", |b| {
        b.iter(|| live.verified(black_box(&sealed), now))
    });
    c.bench_function("verified_request_hot_path", |b| {
        b.iter(|| {
            let mut r = req.clone();
            let cfg = &live.cfg;
            strip_identity(&mut r, &cfg.identity.prefix);
            let norm = normalize(r.uri.path()).unwrap();
            let idx = cfg
                .routes
                .find(&[&m], None, &norm)
                .and_then(|f| f.route())
                .unwrap();
            // One parse of the Cookie header: the session read, verigate's cookies dropped.
            let jar = Jar::parse(&r.headers, &cfg.session);
            let v = jar
                .session()
                .and_then(|(c, _)| live.verified(c, now))
                .unwrap();
            jar.strip(&mut r);
            let today = verigate::clock::today(cfg.timezone, now);
            let age_ok = v.claims.birth.map(|b| age_on(b, today) >= 19);
            let id = Identity {
                verified: v,
                age_ok,
                forward: cfg.routes.get(idx).unwrap().forward,
                guardian: None,
            };
            // Pingora hands upstream_request_filter a copy of the request.
            let mut up = r.clone();
            edit_plain(&mut up, |h| {
                strip_identity(h, &cfg.identity.prefix);
                inject(h, &cfg.identity, black_box(&id));
            });
            up
        })
    });
    let idv = Identity {
        verified: live.verified(&sealed, now).unwrap(),
        age_ok: Some(true),
        forward: Default::default(),
        guardian: None,
    };
    let cfg = &live.cfg;
    c.bench_function("part_strip_identity", |b| {
        b.iter(|| {
            let mut r = req.clone();
            strip_identity(&mut r, &cfg.identity.prefix);
            r
        })
    });
    c.bench_function("part_strip_cookies", |b| {
        b.iter(|| {
            let mut r = req.clone();
            strip_cookies(&mut r, &[&cfg.session.cookie, &cfg.session.flow_cookie]);
            r
        })
    });
    c.bench_function("part_inject", |b| {
        b.iter(|| {
            let mut r = req.clone();
            inject(&mut r, &cfg.identity, black_box(&idv));
            r
        })
    });
    c.bench_function("part_read_cookie", |b| {
        b.iter(|| read_cookie(black_box(&req), &cfg.session.cookie).map(|c| c.len()))
    });
    c.bench_function("part_find", |b| {
        b.iter(|| cfg.routes.find(&[&m], None, black_box("/whoami")))
    });
    c.bench_function("part_today", |b| {
        b.iter(|| verigate::clock::today(cfg.timezone, black_box(now)))
    });
    c.bench_function("request_header_clone_baseline", |b| {
        b.iter(|| black_box(req.clone()))
    });
}

criterion_group!(benches, bench, hot_path);
criterion_main!(benches, assertions, logs);

/// Signing one identity assertion (ES256), done per verified request when assertions are on.
fn assertion(c: &mut Criterion) {
    let pem = verigate::assertion::fresh_pem();
    let s = verigate::assertion::Signer::from_pem(&pem, "verigate", "my-app", 60).unwrap();
    c.bench_function("assertion_sign_es256", |b| {
        b.iter(|| {
            s.sign(
                black_box("MC0GCCqGSIb3DQIJAyEAdi"),
                Some(true),
                "iamport",
                1_700_000_000,
                1_700_000_100,
            )
        })
    });
}

criterion_group!(assertions, assertion);

fn access_log(c: &mut Criterion) {
    let (w, _guard) = verigate::logwriter::batched(std::io::sink()).unwrap();
    verigate::logwriter::install(w);
    c.bench_function("access_log_line", |b| {
        b.iter(|| {
            verigate::logwriter::access(
                std::time::Instant::now(),
                black_box(&verigate::gate::AccessLine {
                    request_id: b"5f0c3a9d2e7b4c1a8f6e0d9c7b5a3e1f",
                    route: "gated",
                    decision: "passed",
                    status: 200,
                    method: "GET",
                    host: b"shop.example",
                    path: "/member/home",
                    client: Some(b"127.0.0.0/24"),
                    upstream: Some(b"127.0.0.1:8080"),
                    latency_ms: std::time::Duration::from_nanos(123_456),
                    gate_ms: std::time::Duration::from_nanos(4_567),
                    upstream_ms: Some(std::time::Duration::from_nanos(98_700)),
                    upstream_status: Some(200),
                    provider: "iamport",
                    error: None,
                }),
            )
        })
    });
}
criterion_group!(logs, access_log);
