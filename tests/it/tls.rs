//! TLS on the listener and HTTP/2: the gate's assertions (spoofed identity headers stripped,
//! no session → 401/302, a session → identity headers injected, refusal pages, forwarded
//! headers) over HTTPS with HTTP/1.1 and with HTTP/2, certificates swapped by reload while a
//! connection stays open, the plain-HTTP listener that redirects, and `check`'s word on bad
//! certificate files. A test CA made with rcgen; clients that trust only it.

use crate::common::tls::{https_client, origin, Http, TestCa, HOST};
use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;

/// The shop's proxy with TLS from these files.
fn with_tls(proxy: Proxy, cert: &Path, key: &Path) -> Proxy {
    proxy.set("tls", json!({ "cert_file": cert, "key_file": key }))
}

/// Every header name the app received.
fn header_names(v: &Value) -> Vec<String> {
    v["headers"]
        .as_object()
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default()
}

fn header(v: &Value, name: &str) -> Value {
    v["headers"][name].clone()
}

/// The gate's assertions, over one kind of HTTPS client.
async fn gate_over(env: &Env, ca: &TestCa, http: Http) {
    let c = https_client(ca, env.proxy, http);
    let base = origin(env.proxy);
    let want = match http {
        Http::One => reqwest::Version::HTTP_11,
        Http::Two => reqwest::Version::HTTP_2,
    };
    let authority = format!("{HOST}:{}", env.proxy.port());

    // An open route: spoofed identity and forwarding headers never reach the app.
    let r = c
        .get(format!("{base}/"))
        .header("X-Verified-Unique-In-Site", "forged")
        .header("x_verified_age_ok", "true")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), want, "{http:?}");
    assert_eq!(r.status(), 200, "{http:?}");
    let seen = env.last_upstream();
    assert_eq!(
        seen["version"], "HTTP/1.1",
        "{http:?}: HTTP/1.1 to the app by default"
    );
    for name in header_names(&seen) {
        assert!(
            !name.starts_with("x-verified") && !name.starts_with("x_verified"),
            "{http:?}: {name} reached the app"
        );
    }
    assert_eq!(
        header(&seen, "x-forwarded-proto"),
        json!(["https"]),
        "{http:?}"
    );
    assert_eq!(
        header(&seen, "x-forwarded-for"),
        json!(["127.0.0.1"]),
        "{http:?}"
    );
    assert_eq!(
        header(&seen, "x-forwarded-host"),
        json!([authority]),
        "{http:?}"
    );
    assert_eq!(header(&seen, "host"), json!([authority]), "{http:?}");

    // A gated route without a session: 401 for an API client, 302 for a page, the app untouched.
    let hits = env.hits();
    let r = c
        .get(format!("{base}/member/x"))
        .header("accept", "application/json")
        .header("X-Verified-Unique-In-Site", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), want);
    assert_eq!(
        refusal(r).await,
        (401, "verification_required".into()),
        "{http:?}"
    );
    let r = c
        .get(format!("{base}/member/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{http:?}");
    let to = r.headers()["location"].to_str().unwrap();
    assert!(to.starts_with("/.verigate/verify?return_to="), "{to}");
    assert_eq!(
        env.hits(),
        hits,
        "{http:?}: a refused request reached the app"
    );

    // Verified through the sandbox, over this client: the provider's return URL is this HTTPS
    // origin, and the session opens the gate with the identity headers injected.
    let mut b = env.browser();
    b.client = c.clone();
    b.origin = Some(base.clone());
    let flow = b.start_iamport("/member").await;
    let back = flow.params["m_redirect_url"].as_str().unwrap();
    assert!(
        back.starts_with(&format!("{base}/")),
        "{http:?}: return URL {back}"
    );
    // A person of this round's own (the signup below is one account per person).
    let person = Person {
        phone: format!("0101234{}", http as u8),
        ..Person::named(&format!("홍길동{}", http as u8))
    };
    let r = b.verify_redirect(env.sandbox, "/member", &person).await;
    assert_eq!(r.status(), 302, "{http:?}");
    assert!(b.jar.contains_key("vg"), "{http:?}: no session cookie");
    let r = b
        .send(
            b.client
                .get(b.url("/member/x"))
                .header("accept", "text/html")
                .header("X-Verified-Name", "forged"),
        )
        .await;
    assert_eq!((r.version(), r.status().as_u16()), (want, 200), "{http:?}");
    let seen = env.last_upstream();
    let uis = header(&seen, "x-verified-unique-in-site");
    assert!(
        uis[0]
            .as_str()
            .is_some_and(|u| u != "forged" && !u.is_empty()),
        "{http:?}: {seen}"
    );
    assert_eq!(
        header(&seen, "x-verified-name"),
        Value::Null,
        "{http:?}: {seen}"
    );
    assert!(
        header(&seen, "cookie")[0]
            .as_str()
            .is_none_or(|c| !c.contains("vg=")),
        "{http:?}: the session cookie reached the app"
    );

    // A form post with a body, on the one-account signup route (forwards name and birth).
    let r = b
        .send(
            b.client
                .post(b.url("/signup"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("user=hong"),
        )
        .await;
    assert_eq!((r.version(), r.status().as_u16()), (want, 201), "{http:?}");
    let seen = env.last_upstream();
    assert_eq!(seen["method"], "POST");
    let name = header(&seen, "x-verified-name")[0]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = percent_encoding::percent_decode_str(&name)
        .decode_utf8()
        .unwrap();
    assert_eq!(name, person.name, "{http:?}");
    assert_eq!(
        header(&seen, "content-length"),
        json!(["9"]),
        "{http:?}: {seen}"
    );

    // A refusal page: someone under 19 on the adult area.
    let mut young = env.browser();
    young.client = c.clone();
    young.origin = Some(base.clone());
    let r = young
        .verify_redirect(env.sandbox, "/adult", &Person::born("20150101"))
        .await;
    assert_eq!(r.status(), 302);
    let r = young.get_html("/adult").await;
    assert_eq!(r.version(), want);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(refusal(r).await, (403, "underage".into()), "{http:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_is_the_same_over_https_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let env = Env::with(with_tls(Proxy::shop(), &cert, &key)).await;
    gate_over(&env, &ca, Http::One).await;
    gate_over(&env, &ca, Http::Two).await;
    // Plain HTTP on the TLS port is not served.
    let hits = env.hits();
    assert!(client().get(env.url("/")).send().await.is_err());
    assert_eq!(env.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let proxy = Proxy::shop().set(
        "tls",
        json!({ "cert_file": cert, "key_file": key, "http2": false }),
    );
    let env = Env::with(proxy).await;
    let r = https_client(&ca, env.proxy, Http::Two)
        .get(format!("{}/", origin(env.proxy)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_11, 200)
    );
}

async fn status(c: &reqwest::Client, url: &str) -> Result<u16, String> {
    c.get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_new_certificates_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let (cert, key) = old_ca.write_server(dir.path());
    let env = Env::with(with_tls(Proxy::shop(), &cert, &key).reloadable()).await;
    let url = format!("{}/", origin(env.proxy));

    // One open connection of each kind, made under the old certificate.
    let open_h1 = https_client(&old_ca, env.proxy, Http::One);
    let open_h2 = https_client(&old_ca, env.proxy, Http::Two);
    assert_eq!(status(&open_h1, &url).await, Ok(200));
    assert_eq!(status(&open_h2, &url).await, Ok(200));
    assert!(
        status(&https_client(&new_ca, env.proxy, Http::Two), &url)
            .await
            .is_err(),
        "the new CA's client trusted the old certificate"
    );

    // Renewed in place (as certbot does), then reloaded.
    new_ca.write_server(dir.path());
    assert_eq!(env.reload().await.0, 200);
    for http in [Http::One, Http::Two] {
        assert_eq!(
            status(&https_client(&new_ca, env.proxy, http), &url).await,
            Ok(200),
            "{http:?}: a new connection does not get the new certificate"
        );
        assert!(
            status(&https_client(&old_ca, env.proxy, http), &url)
                .await
                .is_err(),
            "{http:?}: a new connection still gets the old certificate"
        );
    }
    // The connections opened before the reload still work: a new connection would be refused
    // by these clients (above), so these requests went over the open ones.
    assert_eq!(status(&open_h1, &url).await, Ok(200));
    assert_eq!(status(&open_h2, &url).await, Ok(200));

    // A key that does not belong to the certificate: the reload is refused, naming the key,
    // and the certificate in force keeps serving.
    let (other_cert, _) = new_ca.server(&[HOST]);
    std::fs::write(&cert, other_cert).unwrap();
    let (code, body) = env.reload().await;
    assert!(code >= 400, "{code} {body}");
    assert!(body.contains("tls.key_file"), "{body}");
    assert_eq!(
        status(&https_client(&new_ca, env.proxy, Http::Two), &url).await,
        Ok(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let proxy = with_tls(Proxy::shop(), &cert, &key)
        .set("redirect_http_listen", json!("127.0.0.1:0"))
        .reloadable();
    let env = Env::with(proxy.clone()).await;
    let plain = env.redirect.expect("a redirect listener");
    let port = env.proxy.port();

    for method in ["GET", "POST", "HEAD"] {
        let answer = raw_request(
            plain,
            &format!("{method} /signup?a=1 HTTP/1.1\r\nHost: {HOST}:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", plain.port()),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 308"), "{method}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains(&format!(
                "\r\nlocation: https://{HOST}:{port}/signup?a=1\r\n"
            )),
            "{method}: {answer}"
        );
    }
    // What the gate would not read is not redirected either (refused by verigate, or by
    // Pingora before it: an answer without a body or none at all).
    for head in [
        "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n".to_string(),
        format!("GET /x HTTP/1.1\r\nHost: evil@{HOST}\r\nConnection: close\r\n\r\n"),
        format!("GET http://other.test/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
    ] {
        let answer = raw_request(plain, &head).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{head:?}: {answer}"
        );
    }
    assert_eq!(env.hits(), 0, "the redirect listener proxied a request");

    // Following the redirect reaches the gate over HTTPS.
    let r = client()
        .get(format!("http://{plain}/member"))
        .header("host", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to, format!("https://{HOST}:{port}/member"));
    let r = https_client(&ca, env.proxy, Http::Two)
        .get(&to)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(r).await, (401, "verification_required".into()));

    // Behind a port mapping the public HTTPS port is another: `redirect_https_port` (443 is
    // left out of the URL), changed by a reload.
    env.write_config(&proxy.set("redirect_https_port", json!(443)));
    assert_eq!(env.reload().await.0, 200);
    let answer = raw_request(
        plain,
        &format!("GET /a HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("\r\nlocation: https://{HOST}/a\r\n")),
        "{answer}"
    );
}

/// The problems `check` reports for `proxy` (with these top-level keys).
fn problems(proxy: &Proxy) -> Vec<String> {
    let text = proxy.to_yaml(loopback(), loopback());
    match verigate::config::from_yaml_str(&text, &proxy.secrets()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems(),
    }
}

#[test]
fn check_names_the_tls_file_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let (_, other_key) = ca.server(&[HOST]);
    let other = dir.path().join("other-key.pem");
    std::fs::write(&other, &other_key).unwrap();
    let missing = dir.path().join("missing.pem");

    assert_eq!(
        problems(&with_tls(Proxy::shop(), &cert, &key)),
        Vec::<String>::new()
    );
    for (cert, key, at, says) in [
        (&missing, &key, "tls.cert_file", "cannot read"),
        (&key, &key, "tls.cert_file", "no PEM certificate"),
        (&cert, &missing, "tls.key_file", "cannot read"),
        (&cert, &cert, "tls.key_file", "no PEM private key"),
        (
            &cert,
            &other,
            "tls.key_file",
            "does not belong to the first certificate",
        ),
    ] {
        let found = problems(&with_tls(Proxy::shop(), cert, key));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(&format!("{at}: ")), "{found:?}");
        assert!(found[0].contains(says), "{found:?}");
        // No key material in what is printed.
        for line in other_key
            .lines()
            .chain(std::fs::read_to_string(key).unwrap_or_default().lines())
        {
            if !line.starts_with("-----") {
                assert!(!found[0].contains(line), "{found:?}");
            }
        }
    }
    let found = problems(&Proxy::shop().set("redirect_http_listen", json!("127.0.0.1:0")));
    assert!(
        found.len() == 1 && found[0].starts_with("redirect_http_listen: "),
        "{found:?}"
    );
    let found =
        problems(&with_tls(Proxy::shop(), &cert, &key).set("redirect_https_port", json!(443)));
    assert!(
        found.len() == 1 && found[0].starts_with("redirect_https_port: "),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_may_not_turn_tls_on_or_off() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let env = Env::with(with_tls(Proxy::shop(), &cert, &key).reloadable()).await;
    env.write_config(&Proxy::shop());
    let (code, body) = env.reload().await;
    assert!(code >= 400 && body.contains("tls:"), "{code} {body}");
    let r = https_client(&ca, env.proxy, Http::Two)
        .get(format!("{}/", origin(env.proxy)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_http2_requests_by_host_and_no_failed_handshake() {
    let echo = std::sync::Arc::new(Echo::default());
    let upstream = Upstream::Echo.spawn(&echo).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let cfg = dir.path().join("verigate.yaml");
    std::fs::write(
        &cfg,
        with_tls(Proxy::shop(), &cert, &key).to_yaml(NO_SANDBOX, upstream),
    )
    .unwrap();
    let p = start_binary(&cfg);

    // A client that is no TLS client at all, and one that refuses the certificate.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = plain.read_to_end(&mut Vec::new()).await;
    let stranger = https_client(&TestCa::new("another CA"), p.addr, Http::Two);
    assert!(stranger
        .get(format!("{}/", origin(p.addr)))
        .send()
        .await
        .is_err());

    // An HTTP/2 request (no Host header, only :authority) is logged with its host.
    let r = https_client(&ca, p.addr, Http::Two)
        .get(format!("{}/h2-logged", origin(p.addr)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let found = p
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("/h2-logged"))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access line:\n{}",
            p.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let v: Value = serde_json::from_str(&line).unwrap();
    let host = format!("{HOST}:{}", p.addr.port());
    assert_eq!(
        v["fields"]["host"].as_str().or(v["host"].as_str()),
        Some(host.as_str()),
        "{line}"
    );
    let log = p.log_text();
    assert!(!log.to_ascii_lowercase().contains("handshake"), "{log}");
    assert!(!log.contains(&format!(":{plain_port}")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_reads_authority_and_path_as_http1_reads_host_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let env = Env::with(with_tls(Proxy::shop(), &cert, &key)).await;
    let mut h2 = crate::common::tls::raw_h2(&ca, env.proxy).await;
    let base = origin(env.proxy);
    let authority = format!("{HOST}:{}", env.proxy.port());
    let req = |path: &str, host: Option<&str>| {
        let mut b = http::Request::get(format!("{base}{path}"));
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap()
    };
    use crate::common::tls::h2_status;

    // A Host beside :authority must say the same; otherwise the request is refused.
    assert_eq!(
        h2_status(&mut h2, req("/", Some(&authority))).await,
        Ok(200)
    );
    assert_eq!(header(&env.last_upstream(), "host"), json!([authority]));
    let hits = env.hits();
    for other in ["other.test", "shop.test", "evil@shop.test"] {
        assert_eq!(
            h2_status(&mut h2, req("/member/x", Some(other))).await,
            Ok(400),
            "{other}"
        );
    }
    // :path is read as a request line is: dot segments and double encodings refused, whatever
    // the route (sent as written: the h2 crate does not normalise paths, reqwest would).
    for p in [
        "/checkout/..",
        "/checkout/%2e%2e",
        "/checkout/..;/",
        "/checkout/%252e%252e",
        "/./signup",
        "/x/../signup",
        "/open/%2e%2e/signup",
        "/%2573ignup",
        "/checkout/..%2f",
    ] {
        assert_eq!(h2_status(&mut h2, req(p, None)).await, Ok(400), "{p}");
    }
    // Escaped `?` and `#` end the path for readers that decode first: refused on every method.
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        for p in crate::request_reading::ENCODED_DELIMITERS {
            let r = http::Request::builder()
                .method(method)
                .uri(format!("{base}{p}"))
                .body(())
                .unwrap();
            assert_eq!(h2_status(&mut h2, r).await, Ok(400), "{method} {p}");
        }
    }
    assert_eq!(env.hits(), hits, "a refused HTTP/2 request reached the app");
    for p in ["/open/%7Euser", "/open//x", "/open/50%25", "/open/a.b/..."] {
        assert_eq!(h2_status(&mut h2, req(p, None)).await, Ok(200), "{p}");
        assert_eq!(env.last_upstream()["uri"], *p, "forwarded as sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_can_be_spoken_to_in_http2() {
    // In the clear (h2c, prior knowledge), from an HTTP/1.1 client.
    let env = Env::with(Proxy::shop().upstream_http2()).await;
    let r = client()
        .get(env.url("/open?q=1"))
        .header("X-Verified-Unique-In-Site", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.last_upstream();
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert!(
        seen["uri"].as_str().unwrap().ends_with("/open?q=1"),
        "{seen}"
    );
    assert_eq!(header(&seen, "x-verified-unique-in-site"), Value::Null);
    drop(env);

    // Behind the TLS listener, from HTTP/1.1 and HTTP/2 clients, with a verified session.
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let env = Env::with(with_tls(Proxy::shop().upstream_http2(), &cert, &key)).await;
    for http in [Http::One, Http::Two] {
        let mut b = env.browser();
        b.client = https_client(&ca, env.proxy, http);
        b.origin = Some(origin(env.proxy));
        let person = Person {
            phone: format!("0105555{}", http as u8),
            ..Person::named(&format!("김철수{}", http as u8))
        };
        let r = b.verify_redirect(env.sandbox, "/member", &person).await;
        assert_eq!(r.status(), 302, "{http:?}");
        let r = b
            .send(
                b.client
                    .get(b.url("/member/x"))
                    .header("X-Verified-Name", "forged"),
            )
            .await;
        assert_eq!(r.status(), 200, "{http:?}");
        let seen = env.last_upstream();
        assert_eq!(seen["version"], "HTTP/2.0", "{http:?}: {seen}");
        assert!(
            header(&seen, "x-verified-unique-in-site")[0].is_string(),
            "{seen}"
        );
        assert_eq!(header(&seen, "x-verified-name"), Value::Null, "{seen}");
        assert_eq!(header(&seen, "x-forwarded-proto"), json!(["https"]));
        let r = b
            .send(
                b.client
                    .post(b.url("/signup"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("user=kim"),
            )
            .await;
        assert_eq!(r.status(), 201, "{http:?}");
        assert_eq!(env.last_upstream()["method"], "POST");
    }
}

/// Send a body-less request on `h2`: the status and the body, or the stream's error.
async fn h2_answer(
    h2: &mut h2::client::SendRequest<bytes::Bytes>,
    req: http::Request<()>,
) -> Result<(u16, String), String> {
    let mut ready = h2.clone().ready().await.map_err(|e| e.to_string())?;
    let (resp, _) = ready.send_request(req, true).map_err(|e| e.to_string())?;
    let resp = resp.await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

/// HTTP/2 meets the grammars HTTP/1.1 meets: `:authority` and Host of the host grammar (on a
/// config whose routes match by host), header names of the name grammar, no identity or
/// server-environment name in any spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authorities_and_header_names_meet_the_same_grammars() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let proxy = Proxy::shop().routes([
        Route::prefix("/")
            .name("admin")
            .host(["admin.test"])
            .providers(["iamport"]),
        Route::prefix("/").name("open"),
    ]);
    let env = Env::with(with_tls(proxy, &cert, &key)).await;
    let mut h2 = crate::common::tls::raw_h2(&ca, env.proxy).await;
    let port = env.proxy.port();
    let req = |method: &str, authority: &str, host: Option<&str>| {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("https://{authority}/x"))
            .header("accept", "application/json");
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).ok()
    };
    // Pingora refuses userinfo itself (a bare 400 before any phase); the rest names
    // verigate's code.
    let refused = |a: &Result<(u16, String), String>, pingora: bool| match a {
        Ok((400, body)) if pingora => body.is_empty(),
        Ok((400, body)) => body.contains("\"error\":\"bad_request_target\""),
        _ => false,
    };
    let spellings = [
        "admin.test.".to_string(),
        format!("admin.test.:{port}"),
        "admin_x.test".into(),
        "admin.test,shop.test".into(),
        "shop.test,admin.test".into(),
        "user@admin.test".into(),
        "shop.test@admin.test".into(),
        "admin.test:0443".into(),
        "admin.test:".into(),
        "admin.test:99999".into(),
        "admin%2etest".into(),
        "[fe80::1%25eth0]".into(),
        "[0:0::1]".into(),
        "127.1".into(),
        "0x7f.0.0.1".into(),
        "-admin.test".into(),
        "admin..test".into(),
    ];
    let mut sent = 0;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        for a in &spellings {
            // Only what the http crate takes as a URI authority can be sent as `:authority`.
            let Some(r) = req(method, a, None) else {
                continue;
            };
            let got = h2_answer(&mut h2, r).await;
            assert!(
                refused(&got, a.contains('@')),
                "{method} :authority {a}: {got:?}"
            );
            sent += 1;
        }
        // `:authority` of the grammar, a Host beside it outside it or naming another host.
        for host in [
            "admin.test.",
            "admin_x.test",
            "admin.test, shop.test",
            "shop.test",
        ] {
            let r = req(method, "admin.test", Some(host)).unwrap();
            let got = h2_answer(&mut h2, r).await;
            // (Pingora compares Host with `:authority` byte for byte first.)
            assert!(
                refused(&got, false) || refused(&got, true),
                "{method} Host {host}: {got:?}"
            );
            sent += 1;
        }
    }
    assert!(sent >= 5 * 16, "only {sent} requests could be sent");
    assert_eq!(env.hits(), 0, "a refused HTTP/2 request reached the app");
    // The grammar's spellings route: the admin's host is gated, others open.
    let got = h2_answer(&mut h2, req("GET", "Admin.Test", None).unwrap()).await;
    assert!(matches!(got, Ok((401, _))), "{got:?}");
    let got = h2_answer(
        &mut h2,
        req("GET", &format!("{HOST}:{port}"), None).unwrap(),
    )
    .await;
    assert!(matches!(got, Ok((200, _))), "{got:?}");

    // Header names: outside the grammar, or protected once folded, never reach the app.
    for method in ["GET", "POST", "DELETE"] {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("https://{HOST}:{port}/x"));
        for name in [
            "x_verified_name",
            "x.verified.name",
            "xverifiedname",
            "x-verified-assertion",
            "script_name",
            "path_info",
            "remote_user",
            "x-script-name",
            "x-forwarded-prefix",
            "x-forwarded-path",
            "x-original-url",
            "x_forwarded_for",
            "proxy",
            "foo_bar",
            "a.b",
        ] {
            b = b.header(name, "forged");
        }
        let r = b.header("x-app-header", "kept").body(()).unwrap();
        let got = h2_answer(&mut h2, r).await;
        assert!(matches!(got, Ok((200..=299, _))), "{method}: {got:?}");
        let up = env.last_upstream();
        for name in header_names(&up) {
            let v = header(&up, &name).to_string();
            assert!(
                !v.contains("forged"),
                "{method}: {name}: {v} reached the app"
            );
        }
        assert_eq!(header(&up, "x-app-header"), json!(["kept"]));
    }
}
