//! Config validation: every problem named by its key path, all at once; `verigate check`.

use std::collections::HashMap;
use std::process::Command;
use verigate::config::{from_yaml_str, Secrets};

const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn secrets() -> Secrets {
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    Secrets::from_map(m)
}

const BASE: &str = r#"
listen: 127.0.0.1:0
upstream: { addrs: ["127.0.0.1:3000"] }
session: { keys_env: KEYS }
providers:
  iamport: { imp_code: imp1, api_key_env: IMP_KEY, api_secret_env: IMP_SECRET }
routes:
  - name: signup
    match: { path: /signup }
    require: { providers: [iamport], age_rule: youth_act, min_age: 19 }
"#;

fn problems(yaml: &str) -> Vec<String> {
    match from_yaml_str(yaml, &secrets()) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    }
}

fn has(ps: &[String], needle: &str) -> bool {
    ps.iter().any(|p| p.contains(needle))
}

#[test]
fn base_config_is_valid() {
    assert_eq!(problems(BASE), Vec::<String>::new());
}

#[test]
fn unknown_keys_are_errors_with_location() {
    let ps = problems(&BASE.replace("min_age: 19", "min_age: 19, min_agee: 20"));
    assert_eq!(ps.len(), 1);
    assert!(has(&ps, "routes[0].require"), "{ps:?}");
    assert!(has(&ps, "unknown field `min_agee`"), "{ps:?}");
    assert!(has(&ps, "line 10 column"), "{ps:?}");
    let ps = problems(&format!("{BASE}\nlisten_typo: 1\n"));
    assert!(has(&ps, "unknown field `listen_typo`"), "{ps:?}");
}

#[test]
fn bad_values_name_their_key_paths_all_at_once() {
    let yaml = r#"
listen: not-an-address
upstream: { addrs: [], connect_timeout: 5 }
flow_prefix: verigate/
timezone: Mars/Olympus
session: { keys_env: NOPE, ttl: 12x }
providers:
  iamport: { imp_code: "", api_key_env: MISSING_KEY, api_secret_env: IMP_SECRET, base_url: ftp://x }
routes:
  - name: signup
    match: { path: /signup, methods: [GET, "NOT A METHOD"] }
    require: { providers: [iamport, tomo, kakao], min_age: -1, max_session_age: soon }
    forward: [name, shoe_size]
  - name: no-match
  - name: bad age
    match: { path_prefix: /a }
    require: { providers: [iamport], min_age: nineteen }
  - name: fractional
    match: { path: /b, path_prefix: /b }
    require: { providers: [], min_age: 19.5 }
  - name: signup
    match: { path: relative }
"#;
    let ps = problems(yaml);
    for want in [
        "listen: `not-an-address` is not an address",
        "upstream.addrs: list at least one",
        "upstream.connect_timeout: `5` has no unit",
        "flow_prefix:",
        "timezone: `Mars/Olympus`",
        "session.ttl: `12x`",
        "session.keys_env: environment variable NOPE is not set",
        "providers.iamport.imp_code: must not be empty",
        "providers.iamport.api_key_env: environment variable MISSING_KEY is not set",
        "providers.iamport.base_url:",
        "routes[0].match.methods[1]",
        "routes[0].require.providers[1]: provider `tomo` is not configured under providers.tomo",
        "routes[0].require.providers[2]: unknown provider `kakao`",
        "routes[0].require.min_age: `-1` is not an age",
        "routes[0].require.max_session_age: `soon`",
        "routes[0].forward[1]: unknown field `shoe_size`",
        "routes[1].match: every route needs a match",
        "routes[2].name: `bad age`",
        "routes[2].require.min_age: `nineteen` is not an age",
        "routes[3].match: set either path or path_prefix",
        "routes[3].require.providers: list the providers",
        "routes[3].require.min_age: `19.5` is not an age",
        "routes[4].name: `signup` is used by an earlier route",
        "routes[4].match.path: `relative`",
    ] {
        assert!(has(&ps, want), "missing `{want}` in:\n{}", ps.join("\n"));
    }
}

#[test]
fn route_naming_an_unconfigured_provider() {
    let yaml = BASE.replace(
        "providers:\n  iamport: { imp_code: imp1, api_key_env: IMP_KEY, api_secret_env: IMP_SECRET }\n",
        "",
    );
    let ps = problems(&yaml);
    assert!(
        has(
            &ps,
            "routes[0].require.providers[0]: provider `iamport` is not configured"
        ),
        "{ps:?}"
    );
}

#[test]
fn bad_session_keys() {
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), "c2hvcnQ=".to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    let ps = from_yaml_str(BASE, &Secrets::from_map(m))
        .unwrap_err()
        .problems();
    assert!(has(&ps, "session.keys_env: key #1 is 5 bytes"), "{ps:?}");
    let ps = problems(&BASE.replace("{ keys_env: KEYS }", "{ }"));
    assert!(has(&ps, "session: missing keys_env or keys_file"), "{ps:?}");
}

#[test]
fn age_limits() {
    assert!(problems(&BASE.replace("min_age: 19", "min_age: 0")).is_empty());
    assert!(has(
        &problems(&BASE.replace("min_age: 19", "min_age: 151")),
        "min_age"
    ));
    assert!(has(
        &problems(&BASE.replace("min_age: 19", "min_age: \"19\"")),
        "min_age"
    ));
}

#[test]
fn tomo_settings_are_validated() {
    let with_tomo = |block: &str| {
        let mut m = HashMap::new();
        m.insert("KEYS".to_string(), KEY.to_string());
        m.insert("IMP_KEY".to_string(), "k".to_string());
        m.insert("IMP_SECRET".to_string(), "s".to_string());
        m.insert(
            "TOMO".to_string(),
            verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK
                .trim()
                .to_string(),
        );
        m.insert("NOT_A_JWK".to_string(), "bm90IGEgandr".to_string());
        let yaml = BASE.replace("providers:\n", &format!("providers:\n  tomo: {block}\n"));
        match from_yaml_str(&yaml, &Secrets::from_map(m)) {
            Ok(_) => vec![],
            Err(e) => e.problems(),
        }
    };
    assert_eq!(
        with_tomo("{ client_id: c, private_key_env: TOMO, base_url: https://api.tomopayment.com }"),
        Vec::<String>::new()
    );
    assert_eq!(
        with_tomo("{ client_id: c, private_key_env: TOMO, base_url: https://api.tomopayment.com, kyc_policy: { subject: { kind: personal_info }, method: personal_info_verf, owner_assurance: { kind: owner_verf, type: sms_otp } } }"),
        Vec::<String>::new()
    );
    let ps = with_tomo("{ client_id: c, private_key_env: TOMO, base_url: https://api.tomopayment.com, kyc_policy: { preset: gold } }");
    assert!(has(&ps, "providers.tomo.kyc_policy: unsupported"), "{ps:?}");
    let ps = with_tomo(
        "{ client_id: c, private_key_env: NOT_A_JWK, base_url: https://api.tomopayment.com }",
    );
    assert!(
        has(
            &ps,
            "providers.tomo.private_key_env: not a base64url-encoded EC P-256 private JWK"
        ),
        "{ps:?}"
    );
    let ps = with_tomo(
        "{ client_id: \"\", private_key_env: MISSING, base_url: https://api.tomopayment.com, country: USA }",
    );
    assert!(
        has(&ps, "providers.tomo.client_id: must not be empty"),
        "{ps:?}"
    );
    assert!(has(&ps, "providers.tomo.country: `USA`"), "{ps:?}");
    assert!(
        has(
            &ps,
            "providers.tomo.private_key_env: environment variable MISSING is not set"
        ),
        "{ps:?}"
    );
}

fn tomo_secrets() -> Secrets {
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    m.insert(
        "TOMO".to_string(),
        verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK
            .trim()
            .to_string(),
    );
    Secrets::from_map(m)
}

fn with_tomo_block(block: &str) -> String {
    BASE.replace("providers:\n", &format!("providers:\n  tomo: {block}\n"))
}

/// The TomoIDV host has no default: it used to be the vendor's sandbox, so a production config
/// that left it out trusted test data.
#[test]
fn tomo_base_url_is_required() {
    let yaml = with_tomo_block("{ client_id: c, private_key_env: TOMO }");
    let ps = from_yaml_str(&yaml, &tomo_secrets())
        .map(|_| ())
        .unwrap_err()
        .problems();
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("providers.tomo.base_url: required: https://api.tomopayment.com"),
        "{ps:?}"
    );
}

/// A provider's sandbox host is valid but warned about, with its key path; production is not.
#[test]
fn sandbox_hosts_are_warnings() {
    let prod = with_tomo_block(
        "{ client_id: c, private_key_env: TOMO, base_url: https://api.tomopayment.com }",
    );
    let cfg = from_yaml_str(&prod, &tomo_secrets()).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    for url in [
        "https://test.tomopayment.com",
        "https://TEST.tomopayment.com/",
        "https://test.tomopayment.com:443",
    ] {
        let yaml = with_tomo_block(&format!(
            "{{ client_id: c, private_key_env: TOMO, base_url: \"{url}\" }}"
        ));
        let cfg = from_yaml_str(&yaml, &tomo_secrets()).unwrap();
        let ws: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(ws.len(), 1, "{url}: {ws:?}");
        assert!(
            ws[0].starts_with("providers.tomo.base_url: `") && ws[0].contains("sandbox"),
            "{ws:?}"
        );
    }
    // Any provider's base_url is looked at.
    let yaml = BASE.replace(
        "api_secret_env: IMP_SECRET }",
        "api_secret_env: IMP_SECRET, base_url: https://test.tomopayment.com/iamport }",
    );
    let cfg = from_yaml_str(&yaml, &tomo_secrets()).unwrap();
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(cfg.warnings[0].path, "providers.iamport.base_url");
}

#[test]
fn check_prints_warnings_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sandbox.yaml");
    std::fs::write(
        &file,
        with_tomo_block(
            "{ client_id: c, private_key_env: TOMO, base_url: https://test.tomopayment.com }",
        ),
    )
    .unwrap();
    let out = bin()
        .args(["check", "-c"])
        .arg(&file)
        .env("KEYS", KEY)
        .env("IMP_KEY", "k")
        .env("IMP_SECRET", "s")
        .env(
            "TOMO",
            verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK.trim(),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(
            "warning: providers.tomo.base_url: `https://test.tomopayment.com` is TomoIDV's sandbox host"
        ),
        "{text}"
    );
    assert_eq!(lines[1], "ok");
}

#[test]
fn yaml_syntax_errors_have_line_and_column() {
    let ps = problems("listen: [unclosed\n");
    assert_eq!(ps.len(), 1);
    assert!(has(&ps, "line"), "{ps:?}");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_verigate"))
}

#[test]
fn check_command_ok_and_problems() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, BASE).unwrap();
    let out = bin()
        .args(["check", "-c"])
        .arg(&good)
        .env("KEYS", KEY)
        .env("IMP_KEY", "k")
        .env("IMP_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_eq!(out.status.code(), Some(0));

    let out = bin()
        .args(["check", "-c"])
        .arg(&good)
        .env_remove("KEYS")
        .env("IMP_KEY", "k")
        .env_remove("IMP_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text.contains("session.keys_env: environment variable KEYS is not set"),
        "{text}"
    );
    assert!(text.contains("providers.iamport.api_secret_env"), "{text}");

    let out = bin()
        .args(["check", "-c", "/nonexistent/verigate.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("cannot read /nonexistent/verigate.yaml: "),
        "refused for another reason: {text}"
    );
}

#[test]
fn reference_and_demo_configs_are_valid() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/verigate.yaml");
    let out = bin()
        .args(["check", "-c", reference])
        .env("VERIGATE_SESSION_KEYS", KEY)
        .env("VERIGATE_HASH_KEY", KEY)
        .env("IAMPORT_API_KEY", "k")
        .env("IAMPORT_API_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let demo = verigate::demo::demo_yaml(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    from_yaml_str(&demo, &verigate::demo::demo_secrets()).unwrap();
}

#[test]
fn keygen_prints_usable_keys() {
    let out = bin().arg("keygen").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let keys = text
        .lines()
        .find_map(|l| l.strip_prefix("VERIGATE_SESSION_KEYS="))
        .unwrap();
    verigate::session::Keyring::from_base64_list(keys).unwrap();
}

#[test]
fn one_account_routes_stay_in_one_identity_namespace() {
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    m.insert("IFREE".to_string(), "s".to_string());
    m.insert("PORTONE".to_string(), "s".to_string());
    let secrets = Secrets::from_map(m);
    let yaml = |providers: &str, extra: &str| {
        format!(
            r#"
listen: 127.0.0.1:0
upstream: {{ addrs: ["127.0.0.1:3000"] }}
session: {{ keys_env: KEYS }}
providers:
  iamport: {{ imp_code: imp1, api_key_env: IMP_KEY, api_secret_env: IMP_SECRET }}
  portone: {{ store_id: s, channel_key: ck, api_secret_env: PORTONE }}
  ifree: {{ client_id: c, secret_key_env: IFREE, base_url: "http://127.0.0.1:9", callback_allow_ips: any }}
routes:
  - name: signup
    match: {{ path: /signup }}
    require: {{ providers: [{providers}], one_account_per_person: true{extra} }}
"#
        )
    };
    let problems = |y: String| match from_yaml_str(&y, &secrets) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    };
    // Iamport and PortOne share the CI: one namespace.
    assert_eq!(problems(yaml("iamport, portone", "")), Vec::<String>::new());
    let ps = problems(yaml("iamport, ifree", ""));
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("routes[0].require.providers: one_account_per_person cannot hold across iamport (CI), ifree (ifree member code)"),
        "{ps:?}"
    );
    assert_eq!(
        problems(yaml("iamport, ifree", ", one_account_scope: per_provider")),
        Vec::<String>::new()
    );
    let ps = problems(yaml("iamport", ", one_account_scope: everyone"));
    assert!(
        has(
            &ps,
            "routes[0].require.one_account_scope: `everyone` is not one of person, per_provider"
        ),
        "{ps:?}"
    );
    let ps = problems(yaml("iamport", "").replace(
        ", one_account_per_person: true",
        ", one_account_scope: per_provider",
    ));
    assert!(
        has(
            &ps,
            "routes[0].require.one_account_scope: only means something"
        ),
        "{ps:?}"
    );
}

#[test]
fn an_unknown_key_hides_nothing_behind_it() {
    let yaml = BASE
        .replace("min_age: 19", "min_age: 19, min_agee: 20")
        .replace("session: { keys_env: KEYS }", "session: { keys_env: KEYS, tll: 1h, ttl: soon }")
        + "  - name: two\n    match: { path: /two, methodz: [GET] }\n    require: { providers: [iamport], min_age: -4 }\n";
    let ps = problems(&yaml);
    assert!(
        has(&ps, "routes[0].require: unknown field `min_agee`"),
        "{ps:?}"
    );
    assert!(
        ps[0].starts_with("session: unknown field `tll`") && ps[0].contains("at line 4 column"),
        "the first keeps its location in the file: {ps:?}"
    );
    assert!(
        ps[1..].iter().all(|p| !p.contains(" at line ")),
        "later ones name no line of a rewritten text: {ps:?}"
    );
    assert!(
        has(&ps, "routes[1].match: unknown field `methodz`"),
        "{ps:?}"
    );
    assert!(
        has(&ps, "session.ttl:"),
        "a bad value behind the unknown keys: {ps:?}"
    );
    assert!(has(&ps, "routes[1].require.min_age:"), "{ps:?}");
    assert_eq!(ps.len(), 5, "{ps:?}");
}

#[test]
fn a_missing_secret_names_its_variable_only() {
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    let ps = match from_yaml_str(BASE, &Secrets::from_map(m)) {
        Ok(_) => panic!("a missing secret was accepted"),
        Err(e) => e.problems(),
    };
    assert_eq!(
        ps,
        ["providers.iamport.api_secret_env: environment variable IMP_SECRET is not set"],
        "not also `provider iamport is not configured`"
    );
}

#[test]
fn check_opens_the_sqlite_path_and_flags_what_never_applies() {
    let dir = tempfile::tempdir().unwrap();
    let run = |yaml: String| {
        let file = dir.path().join("v.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = bin()
            .args(["check", "-c"])
            .arg(&file)
            .env("KEYS", KEY)
            .env("IMP_KEY", "k")
            .env("IMP_SECRET", "s")
            .env("IFREE", "s")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let with_store = |path: &str| format!("{BASE}store: {{ kind: sqlite, path: \"{path}\" }}\n");
    // A directory that does not exist, a path that is a directory, a file that is not SQLite.
    let missing = dir.path().join("no/such/dir/state.db");
    let (code, out) = run(with_store(missing.to_str().unwrap()));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("store.path: ") && out.contains("does not exist"),
        "{out}"
    );
    let (code, out) = run(with_store(dir.path().to_str().unwrap()));
    assert_eq!(code, Some(2), "{out}");
    for not_a_file in ["/dev/null", "/tmp/"] {
        let (code, out) = run(with_store(not_a_file));
        assert_eq!(code, Some(2), "{not_a_file}: {out}");
    }
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"this is not a database, just some bytes of text here",
    )
    .unwrap();
    let (code, out) = run(with_store(junk.to_str().unwrap()));
    assert_eq!(code, Some(2), "{out}");
    // A new database in a writable directory passes, and check creates nothing.
    let fresh = dir.path().join("fresh.db");
    let (code, out) = run(with_store(fresh.to_str().unwrap()));
    assert_eq!((code, out.trim()), (Some(0), "ok"));
    assert!(!fresh.exists(), "check changed nothing");
    // Warnings: max_session_age beyond session.ttl.
    let base = with_store(fresh.to_str().unwrap())
        .replace(
            "session: { keys_env: KEYS }",
            "session: { keys_env: KEYS, ttl: 1h }",
        )
        .replace("min_age: 19 }", "min_age: 19, max_session_age: 2h }");
    let with_ifree = |line: &str| base.replace("providers:\n", &format!("providers:\n  {line}\n"));
    let (code, out) = run(with_ifree(
        "ifree: { client_id: c, secret_key_env: IFREE, callback_allow_ips: any }",
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "warning: routes[0].require.max_session_age: 7200s is longer than session.ttl (3600s)"
        ),
        "{out}"
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // ifree without a callback source list is refused: anyone could post key exchanges,
    // unless the config says that any address may (`any`, above).
    for (allow, said) in [
        ("", "providers.ifree.callback_allow_ips: missing"),
        (
            ", callback_allow_ips: []",
            "providers.ifree.callback_allow_ips: empty",
        ),
        (
            ", callback_allow_ips: anyone",
            "providers.ifree.callback_allow_ips: `anyone`",
        ),
        (
            ", callback_allow_ips: [ifree.example]",
            "providers.ifree.callback_allow_ips[0]",
        ),
    ] {
        let (code, out) = run(with_ifree(&format!(
            "ifree: {{ client_id: c, secret_key_env: IFREE{allow} }}"
        )));
        assert_eq!(code, Some(2), "{allow}: {out}");
        assert!(out.contains(said), "{allow}: {out}");
    }
}

#[test]
fn keep_request_is_on_by_default_and_checked_by_key_path() {
    use verigate::routing::KeepRule;
    let keep = |yaml: &str| {
        let cfg = from_yaml_str(yaml, &secrets()).unwrap();
        let route = cfg.routes.get(0).unwrap().clone();
        (route.require.unwrap().keep, cfg.clients.max_kept_requests)
    };
    assert_eq!(keep(BASE), (Some(KeepRule::default()), 1000));
    assert_eq!(
        KeepRule::default(),
        KeepRule {
            max_body: 256 * 1024,
            ttl: std::time::Duration::from_secs(600)
        }
    );
    let off = BASE.replace("min_age: 19 }", "min_age: 19, keep_request: false }");
    assert_eq!(keep(&off).0, None);
    let on = BASE.replace("min_age: 19 }", "min_age: 19, keep_request: true }");
    assert_eq!(keep(&on).0, Some(KeepRule::default()));
    for (written, bytes) in [
        ("1MB", 1 << 20),
        ("512KB", 512 << 10),
        ("1000", 1000),
        ("20 B", 20),
    ] {
        let yaml = BASE.replace(
            "min_age: 19 }",
            &format!("min_age: 19, keep_request: {{ max_body: \"{written}\", ttl: 2m }} }}"),
        );
        let yaml = format!("{yaml}clients: {{ max_kept_requests: 50 }}\n");
        let (rule, max) = keep(&yaml);
        assert_eq!(
            rule,
            Some(KeepRule {
                max_body: bytes,
                ttl: std::time::Duration::from_secs(120)
            }),
            "{written}"
        );
        assert_eq!(max, 50);
    }
    let yaml = BASE.replace(
        "min_age: 19 }",
        "min_age: 19, keep_request: { max_body: 17MB, ttl: 2h } }",
    );
    let ps = problems(&yaml);
    assert!(
        has(
            &ps,
            "routes[0].require.keep_request.max_body: `17MB` is not a size"
        ),
        "{ps:?}"
    );
    assert!(
        has(
            &ps,
            "routes[0].require.keep_request.ttl: must be from 1s to 1h"
        ),
        "{ps:?}"
    );
    for bad in ["0", "lots", "-1", "1GB"] {
        let yaml = BASE.replace(
            "min_age: 19 }",
            &format!("min_age: 19, keep_request: {{ max_body: \"{bad}\" }} }}"),
        );
        let ps = problems(&yaml);
        assert!(
            has(&ps, "routes[0].require.keep_request.max_body:"),
            "{bad}: {ps:?}"
        );
    }
    let yaml = BASE.replace(
        "min_age: 19 }",
        "min_age: 19, keep_request: { max_bodyy: 1KB } }",
    );
    let ps = problems(&yaml);
    assert!(has(&ps, "unknown field `max_bodyy`"), "{ps:?}");
    assert!(has(&ps, "keep_request"), "{ps:?}");
    let yaml = BASE.replace("min_age: 19 }", "min_age: 19, keep_request: sometimes }");
    let ps = problems(&yaml);
    assert!(has(&ps, "routes[0].require.keep_request"), "{ps:?}");
}

#[test]
fn portone_needs_a_channel_key_and_check_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // `verigate check` on BASE with this `providers.portone`: exit code and what it printed.
    let check = |name: &str, portone: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        let yaml = BASE.replace(
            "providers:\n",
            &format!("providers:\n  portone: {portone}\n"),
        );
        std::fs::write(&file, yaml).unwrap();
        let out = bin()
            .args(["check", "-c"])
            .arg(&file)
            .env("KEYS", KEY)
            .env("IMP_KEY", "k")
            .env("IMP_SECRET", "s")
            .env("PORTONE", "s")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    for (name, block) in [
        ("missing", "{ store_id: s, api_secret_env: PORTONE }"),
        (
            "empty",
            "{ store_id: s, channel_key: \" \", api_secret_env: PORTONE }",
        ),
    ] {
        let (code, text) = check(name, block);
        assert_eq!(code, Some(2), "{name}: {text}");
        assert!(
            text.contains("providers.portone.channel_key: required"),
            "{name}: {text}"
        );
    }
    let (code, text) = check(
        "good",
        "{ store_id: s, channel_key: channel-key-1, api_secret_env: PORTONE }",
    );
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn iamport_channel_key_and_pg_are_optional_and_never_empty() {
    let with = |extra: &str| {
        BASE.replace(
            "api_secret_env: IMP_SECRET }",
            &format!("api_secret_env: IMP_SECRET{extra} }}"),
        )
    };
    assert_eq!(
        problems(&with(", channel_key: channel-key-1, pg: danal.im0001")),
        Vec::<String>::new()
    );
    let ps = problems(&with(", channel_key: \"\", pg: \" \""));
    assert!(
        has(&ps, "providers.iamport.channel_key: must not be empty"),
        "{ps:?}"
    );
    assert!(
        has(&ps, "providers.iamport.pg: must not be empty"),
        "{ps:?}"
    );
}

/// A hash key derived from the session keys changes when they rotate: a config whose
/// one-account records or ifree members depend on it is warned about, by key path, naming what
/// would be lost; with an explicit hash key, or nothing depending on it, there is no warning.
#[test]
fn hash_key_derived_from_rotating_session_keys_is_warned_about() {
    let warnings = |yaml: &str, s: &Secrets| -> Vec<String> {
        let cfg = from_yaml_str(yaml, s).unwrap_or_else(|e| panic!("{e}"));
        cfg.warnings.iter().map(|w| w.to_string()).collect()
    };
    let one_account = BASE.replace(
        "min_age: 19 }",
        "min_age: 19, one_account_per_person: true }",
    );
    let ws = warnings(&one_account, &secrets());
    let w = ws
        .iter()
        .find(|w| w.starts_with("session.hash_key_env: not set"))
        .unwrap_or_else(|| panic!("no hash-key warning in {ws:?}"));
    assert!(w.contains("one-account records of routes[0]"), "{w}");
    assert!(w.contains("rotating session.keys_env"), "{w}");

    let ifree = BASE.replace(
        "providers:\n",
        "providers:\n  ifree: { client_id: c, secret_key_env: IFREE, callback_allow_ips: [127.0.0.1] }\n",
    );
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    m.insert("IFREE".to_string(), "x".repeat(32));
    m.insert("HASH".to_string(), KEY.to_string());
    let with_ifree = Secrets::from_map(m);
    let ws = warnings(&ifree, &with_ifree);
    assert!(
        ws.iter()
            .any(|w| w.starts_with("session.hash_key_env: not set") && w.contains("ifree members")),
        "{ws:?}"
    );

    // An explicit hash key: nothing to warn about.
    let explicit = one_account.replace(
        "session: { keys_env: KEYS }",
        "session: { keys_env: KEYS, hash_key_env: HASH }",
    );
    let ws = warnings(&explicit, &with_ifree);
    assert!(!ws.iter().any(|w| w.contains("hash_key")), "{ws:?}");
    // Nothing depends on it: no warning either.
    let ws = warnings(BASE, &secrets());
    assert!(!ws.iter().any(|w| w.contains("hash_key")), "{ws:?}");
}

#[test]
fn min_age_needs_an_age_rule_and_check_names_both() {
    let ps = problems(&BASE.replace("age_rule: youth_act, ", ""));
    assert_eq!(ps.len(), 1, "{ps:?}");
    let p = &ps[0];
    assert!(p.starts_with("routes[0].require.age_rule: "), "{p}");
    for want in [
        "youth_act",
        "birthday",
        "1 January",
        "청소년보호법",
        "under-14",
    ] {
        assert!(p.contains(want), "`{want}` missing in {p}");
    }
    let ps = problems(&BASE.replace("age_rule: youth_act", "age_rule: korean_age"));
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("routes[0].require.age_rule: `korean_age` is not an age rule")
            && ps[0].contains("youth_act")
            && ps[0].contains("birthday"),
        "{ps:?}"
    );
    // An age rule without min_age says nothing.
    let ps = problems(&BASE.replace("age_rule: youth_act, min_age: 19", "age_rule: birthday"));
    assert_eq!(
        ps,
        vec!["routes[0].require.age_rule: only means something with min_age".to_string()]
    );
    assert!(problems(&BASE.replace("youth_act", "birthday")).is_empty());
}

#[test]
fn an_age_status_is_for_age_only_routes_and_needs_its_ttl() {
    let with_ttl = |ttl: &str, route: &str| {
        problems(
            &BASE
                .replace(
                    "session: { keys_env: KEYS }",
                    &format!("session: {{ keys_env: KEYS{ttl} }}"),
                )
                .replace("min_age: 19 }", route),
        )
    };
    let ttl = ", age_status_ttl: 365d";
    assert!(with_ttl(ttl, "min_age: 19, age_status: true }").is_empty());
    // The ttl is an explicit choice: without it no route may take an age status.
    assert_eq!(
        with_ttl("", "min_age: 19, age_status: true }"),
        vec!["routes[0].require.age_status: needs session.age_status_ttl (how long an age check lasts, e.g. 365d)".to_string()]
    );
    // Routes that need the person need a session.
    let ps = with_ttl(
        ttl,
        "min_age: 19, age_status: true, one_account_per_person: true }",
    );
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("routes[0].require.age_status: an age status carries no person")
            && ps[0].contains("one_account_per_person"),
        "{ps:?}"
    );
    let ps = with_ttl(ttl, "min_age: 19, age_status: true }\n    forward: [birth]");
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("routes[0].require.age_status: an age status carries no person")
            && ps[0].contains("forward"),
        "{ps:?}"
    );
    // An age status says an age: a route without min_age has none to take.
    let ps = problems(
        &BASE
            .replace(
                "{ keys_env: KEYS }",
                "{ keys_env: KEYS, age_status_ttl: 30d }",
            )
            .replace("age_rule: youth_act, min_age: 19", "age_status: true"),
    );
    assert_eq!(
        ps,
        vec!["routes[0].require.age_status: only means something with min_age (an age status says a person's age, nothing else)".to_string()]
    );
    // A max_session_age past session.ttl still bounds age statuses: no warning there.
    let warnings = |route: &str| {
        let yaml = BASE
            .replace(
                "{ keys_env: KEYS }",
                "{ keys_env: KEYS, age_status_ttl: 365d }",
            )
            .replace("min_age: 19 }", route);
        from_yaml_str(&yaml, &secrets()).unwrap().warnings
    };
    assert!(warnings("min_age: 19, age_status: true, max_session_age: 30d }").is_empty());
    let ws = warnings("min_age: 19, max_session_age: 30d }");
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert_eq!(ws[0].path, "routes[0].require.max_session_age");
    let ws = warnings("min_age: 19, age_status: true, max_session_age: 400d }");
    assert_eq!(ws.len(), 1, "{ws:?}");
    // At most a year (and a day), at least something.
    for bad in ["400d", "0s", "soon"] {
        let ps = with_ttl(&format!(", age_status_ttl: {bad}"), "min_age: 19 }");
        assert_eq!(ps.len(), 1, "{bad}: {ps:?}");
        assert!(ps[0].starts_with("session.age_status_ttl: "), "{ps:?}");
    }
}

#[test]
fn a_channels_method_is_one_of_the_known_and_agrees_with_pg() {
    let iamport = |extra: &str| {
        problems(&BASE.replace(
            "api_secret_env: IMP_SECRET }",
            &format!("api_secret_env: IMP_SECRET{extra} }}"),
        ))
    };
    assert!(iamport(", method: inicis_unified").is_empty());
    assert!(iamport(", pg: inicis.MIIiasTest, method: inicis").is_empty());
    assert!(iamport(", pg: some_new_pg.x, method: inicis").is_empty());
    let ps = iamport(", pg: danal.im0001, method: inicis_unified");
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("providers.iamport.method: `inicis_unified` is not what pg names"),
        "{ps:?}"
    );
    let ps = iamport(", method: kakao");
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with(
            "providers.iamport.method: `kakao` is not one of danal, inicis_unified, inicis"
        ),
        "{ps:?}"
    );
}

#[test]
fn site_name_is_short_plain_text() {
    let with = |name: &str| {
        let quoted = serde_json::to_string(name).unwrap();
        problems(&format!("{BASE}site: {{ name: {quoted} }}\n"))
    };
    assert!(with("예시쇼핑").is_empty());
    for bad in ["", "   ", "a\u{7}b", &"가".repeat(51)] {
        let ps = with(bad);
        assert_eq!(ps.len(), 1, "{bad:?}: {ps:?}");
        assert!(
            ps[0].starts_with("site.name: must be 1 to 50 characters"),
            "{ps:?}"
        );
    }
    assert!(has(
        &problems(&format!("{BASE}site: {{ title: x }}\n")),
        "site: unknown field `title`"
    ));
}

#[test]
fn request_id_mode_is_read_and_a_bad_one_named_by_key_path() {
    use verigate::config::RequestIdMode;
    let mode = |m: &str| {
        from_yaml_str(
            &format!("{BASE}\nclients: {{ request_id: {m} }}\n"),
            &secrets(),
        )
        .map(|c| c.clients.request_id)
        .map_err(|e| e.problems())
    };
    assert_eq!(
        from_yaml_str(BASE, &secrets()).unwrap().clients.request_id,
        RequestIdMode::Generate
    );
    assert_eq!(mode("generate"), Ok(RequestIdMode::Generate));
    assert_eq!(mode("trust_from_proxy"), Ok(RequestIdMode::TrustFromProxy));
    assert_eq!(mode("off"), Ok(RequestIdMode::Off));
    let ps = mode("sometimes").unwrap_err();
    assert!(
        has(
            &ps,
            "clients.request_id: `sometimes` is not generate, trust_from_proxy or off"
        ),
        "{ps:?}"
    );
}

#[test]
fn redis_sentinel_store_is_validated_by_key_path() {
    let with = |store: &str| problems(&format!("{BASE}store: {store}\n"));
    // Valid: sentinels alone; with a wait of its own; a URL with a wait.
    assert_eq!(
        with("{ kind: redis, sentinel: { master: m, addrs: [\"127.0.0.1:26379\", \"[::1]:26380\"] } }"),
        Vec::<String>::new()
    );
    assert_eq!(
        with("{ kind: redis, sentinel: { master: m, addrs: [\"s1:26379\"] }, wait: { replicas: 2, timeout: 250ms } }"),
        Vec::<String>::new()
    );
    assert_eq!(
        with("{ kind: redis, url: \"redis://127.0.0.1\", wait: { replicas: 1, timeout: 1s } }"),
        Vec::<String>::new()
    );
    // Exactly one of url and sentinel.
    let ps = with(
        "{ kind: redis, url: \"redis://127.0.0.1\", sentinel: { master: m, addrs: [\"s:1\"] } }",
    );
    assert!(has(&ps, "store.sentinel: set either url"), "{ps:?}");
    let ps = with("{ kind: redis }");
    assert!(has(&ps, "store.url: kind redis needs url"), "{ps:?}");
    // The sentinel's own keys.
    let ps = with("{ kind: redis, sentinel: { addrs: [\"s:1\", \"nope\", \"s:0\"] } }");
    assert!(has(&ps, "store.sentinel.master: missing"), "{ps:?}");
    assert!(
        has(&ps, "store.sentinel.addrs[1]: `nope` is not host:port"),
        "{ps:?}"
    );
    assert!(has(&ps, "store.sentinel.addrs[2]"), "{ps:?}");
    let ps = with("{ kind: redis, sentinel: { master: m, addrs: [] } }");
    assert!(
        has(&ps, "store.sentinel.addrs: must name at least one"),
        "{ps:?}"
    );
    let ps =
        with("{ kind: redis, sentinel: { master: m, addrs: [\"s:1\"], password_env: NOT_SET_X } }");
    assert!(has(&ps, "store.sentinel.password_env"), "{ps:?}");
    let ps = with("{ kind: redis, sentinel: { master: m, addrs: [\"s:1\"], colour: red } }");
    assert!(!ps.is_empty(), "unknown sentinel key accepted");
    // The wait.
    let ps = with("{ kind: redis, url: \"redis://h\", wait: { timeout: 0ms } }");
    assert!(
        has(&ps, "store.wait.timeout: must be more than 0"),
        "{ps:?}"
    );
    let ps = with("{ kind: redis, url: \"redis://h\", wait: { timeout: 2s } }");
    assert!(has(&ps, "store.wait.timeout: at most 1s"), "{ps:?}");
    let ps = with("{ kind: sqlite, wait: { replicas: 1 } }");
    assert!(has(&ps, "store.wait: kind sqlite takes no wait"), "{ps:?}");
    let ps = with("{ kind: memory, sentinel: { master: m, addrs: [\"s:1\"] } }");
    assert!(
        has(&ps, "store.sentinel: kind memory takes no sentinel"),
        "{ps:?}"
    );
}
