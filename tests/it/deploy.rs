//! The deployment files in `deploy/` checked with what runs here offline: the systemd unit with
//! `systemd-analyze` (syntax, the binary it starts, its sandbox's exposure score), the
//! container's config with the real binary's `check`, and the compose file, the Dockerfile
//! and the Grafana provisioning against each other and against the files they name.
//! (`docker build` and `docker compose up` need registries this machine does not reach; the
//! Dockerfile's build step is `deploy/build.sh`, which `.ci/run` runs.)

use crate::common::skip;
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The unit's `Key=value` lines (every occurrence, in order).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

fn systemd_analyze() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip::missing("systemd-analyze", "apt-get install systemd");
    }
    ok
}

/// The unit, with its binary path pointed at the binary under test (`verify` checks that the
/// commands exist and are executable).
fn unit_here(dir: &Path) -> PathBuf {
    let unit = read("deploy/verigate.service")
        .replace("/usr/local/bin/verigate", env!("CARGO_BIN_EXE_verigate"));
    let path = dir.join("verigate.service");
    std::fs::write(&path, unit).expect("write the unit");
    path
}

#[test]
fn systemd_unit_verifies() {
    if !systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_here(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze verify");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // verify exits 0 on some problems and only prints them: none may mention our unit.
    assert!(
        !said.contains("verigate.service"),
        "systemd-analyze verify complains about the unit:\n{said}"
    );

    // A unit that starts a binary that is not there is refused: the check can fail.
    let broken = dir.path().join("broken.service");
    std::fs::write(
        &broken,
        read("deploy/verigate.service").replace("/usr/local/bin/verigate", "/nonexistent/verigate"),
    )
    .expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .expect("systemd-analyze verify");
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stderr).contains("nonexistent"),
        "verify accepted a unit whose binary does not exist"
    );
}

#[test]
fn systemd_unit_is_sandboxed() {
    let unit = read("deploy/verigate.service");
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        // Only the capability that binding a port below 1024 needs.
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("StateDirectory", "verigate"),
        ("WorkingDirectory", "/var/lib/verigate"),
        (
            "ExecReload",
            "/usr/local/bin/verigate reload -c /etc/verigate/verigate.yaml",
        ),
        // verigate sends READY=1 (and RELOADING=1 / READY=1) to $NOTIFY_SOCKET.
        ("Type", "notify"),
    ] {
        assert_eq!(unit_values(&unit, key), vec![want.to_string()], "{key}");
    }
    // The config is checked before every start; run and check read the same file.
    let pre = unit_values(&unit, "ExecStartPre");
    let start = unit_values(&unit, "ExecStart");
    assert_eq!(
        pre,
        vec!["/usr/local/bin/verigate check -c /etc/verigate/verigate.yaml"]
    );
    assert_eq!(
        start,
        vec!["/usr/local/bin/verigate run -c /etc/verigate/verigate.yaml"]
    );

    if !systemd_analyze() {
        return;
    }
    // systemd's own exposure score (0 = fully locked down, 10 = none): at most 2.0 ("OK").
    let dir = tempfile::tempdir().expect("tempdir");
    let path = unit_here(dir.path());
    let score = |unit: &Path| {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .output()
            .expect("systemd-analyze security");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
            .to_string();
        let value = line
            .split(':')
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("unreadable exposure line: {line}"));
        value
    };
    let ours = score(&path);
    assert!(ours <= 2.0, "exposure level {ours} > 2.0");
    // The same unit without its sandbox scores far worse: the measure can fail.
    let bare: String = read("deploy/verigate.service")
        .replace("/usr/local/bin/verigate", env!("CARGO_BIN_EXE_verigate"))
        .lines()
        .filter(|l| {
            !(l.starts_with("Protect")
                || l.starts_with("Private")
                || l.starts_with("Restrict")
                || l.starts_with("SystemCall")
                || l.starts_with("Capability")
                || l.starts_with("DynamicUser")
                || l.starts_with("NoNewPrivileges"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let bare_path = dir.path().join("bare.service");
    std::fs::write(&bare_path, bare).expect("write");
    let theirs = score(&bare_path);
    assert!(theirs > 5.0, "an unsandboxed unit scored {theirs}");
}

/// The environment the compose file gives verigate (its env_file comes from `verigate keygen`).
fn container_env(cmd: &mut Command) {
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
    cmd.env("VERIGATE_SESSION_KEYS", key)
        .env("VERIGATE_HASH_KEY", key)
        .env("IAMPORT_API_KEY", "key")
        .env("IAMPORT_API_SECRET", "secret")
        .env(
            "VERIGATE_REDIS_URL",
            crate::common::redis_url().unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
        );
}

#[test]
fn container_config_passes_check() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verigate"));
    cmd.args(["check", "-c"])
        .arg(root().join("deploy/verigate.yaml"));
    container_env(&mut cmd);
    let out = cmd.output().expect("run verigate check");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "deploy/verigate.yaml: {said}");
    assert!(said.trim_end().ends_with("ok"), "{said}");

    // Without the secrets compose's env_file provides, check names what is missing.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verigate"));
    cmd.args(["check", "-c"])
        .arg(root().join("deploy/verigate.yaml"))
        .env_remove("VERIGATE_SESSION_KEYS")
        .env_remove("IAMPORT_API_KEY");
    let out = cmd.output().expect("run verigate check");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("VERIGATE_SESSION_KEYS"), "{said}");
    assert!(said.contains("IAMPORT_API_KEY"), "{said}");
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_mapping(), "compose.yaml has no service {name}");
    s
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_dockerfile_and_config_agree() {
    let compose = yaml("deploy/compose.yaml");
    let deploy = root().join("deploy");

    // Every file a service mounts exists (named volumes aside).
    for (name, svc) in compose["services"].as_mapping().expect("services") {
        for v in strs(&svc["volumes"]) {
            let src = v.split(':').next().unwrap_or("");
            if src.starts_with('.') || src.starts_with('/') {
                let p = deploy.join(src);
                assert!(
                    p.exists(),
                    "service {name:?} mounts {src}, which does not exist"
                );
            }
        }
    }

    // verigate is built from deploy/Dockerfile with the repository as context.
    let vg = service(&compose, "verigate");
    let context = deploy.join(vg["build"]["context"].as_str().expect("build.context"));
    let dockerfile = context.join(
        vg["build"]["dockerfile"]
            .as_str()
            .expect("build.dockerfile"),
    );
    assert!(dockerfile.exists(), "{}", dockerfile.display());
    let docker = std::fs::read_to_string(&dockerfile).expect("Dockerfile");

    // Every COPY from the build context names something that exists, and the build stage runs
    // the script CI runs.
    for line in docker.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                context.join(src).exists(),
                "Dockerfile copies {src}: missing"
            );
        }
    }
    assert!(
        docker.contains("RUN deploy/build.sh \"$PROFILE\" /out"),
        "the Dockerfile's build step is deploy/build.sh"
    );
    assert!(docker.contains("ARG PROFILE=dist"));
    // The container runs unprivileged, with the config compose mounts.
    assert!(docker
        .lines()
        .any(|l| l.starts_with("USER ") && !l.contains("root")));
    let mounted: Vec<String> = strs(&vg["volumes"]);
    assert!(
        mounted
            .iter()
            .any(|m| m == "./verigate.yaml:/etc/verigate/verigate.yaml:ro"),
        "{mounted:?}"
    );
    assert!(docker.contains(r#"CMD ["run", "-c", "/etc/verigate/verigate.yaml"]"#));

    // The container's config: the upstream is the app service, the store the redis service,
    // and the admin listener is on loopback, where Prometheus (in verigate's network
    // namespace) scrapes it through conf/prometheus.yml.
    let cfg = yaml("deploy/verigate.yaml");
    let upstream = cfg["upstream"]["addrs"][0]
        .as_str()
        .expect("upstream.addrs[0]");
    let (host, _port) = upstream.rsplit_once(':').expect("host:port");
    service(&compose, host);
    assert_eq!(cfg["store"]["kind"].as_str(), Some("redis"));
    let redis_url = vg["environment"]["VERIGATE_REDIS_URL"]
        .as_str()
        .expect("VERIGATE_REDIS_URL");
    assert!(
        redis_url.starts_with("redis://:${REDIS_PASSWORD:?") && redis_url.contains("}@redis:"),
        "verigate logs in to Redis with the password from deploy/secrets.env: {redis_url}"
    );
    service(&compose, "redis");
    let admin = cfg["admin_listen"].as_str().expect("admin_listen");
    assert!(
        admin.starts_with("127.0.0.1:"),
        "admin stays on loopback: {admin}"
    );
    let prom = service(&compose, "prometheus");
    assert_eq!(prom["network_mode"].as_str(), Some("service:verigate"));
    let scrape = yaml("conf/prometheus.yml");
    let targets = strs(&scrape["scrape_configs"][0]["static_configs"][0]["targets"]);
    assert_eq!(
        targets,
        vec![admin.to_string()],
        "prometheus scrapes the admin listener"
    );
    assert!(strs(&prom["volumes"])
        .iter()
        .any(|v| v.starts_with("../conf/prometheus.yml:/etc/prometheus/prometheus.yml")));

    // Prometheus's own port: what it listens on is published (on verigate, whose network
    // namespace it shares) and is where Grafana's data source points.
    let listen = strs(&prom["command"])
        .into_iter()
        .find_map(|a| a.strip_prefix("--web.listen-address=").map(str::to_string))
        .expect("--web.listen-address");
    let prom_port = listen.rsplit(':').next().expect("port").to_string();
    assert_ne!(
        prom_port,
        admin.rsplit(':').next().expect("port"),
        "prometheus and verigate's admin listener share a network namespace: not one port"
    );
    assert!(strs(&vg["ports"])
        .iter()
        .any(|p| p.ends_with(&format!(":{prom_port}"))));
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yaml");
    assert_eq!(
        ds["datasources"][0]["url"].as_str(),
        Some(format!("http://verigate:{prom_port}").as_str())
    );

    // Grafana loads the dashboard from the folder its provider names.
    let graf = service(&compose, "grafana");
    let dash = yaml("deploy/grafana/provisioning/dashboards/verigate.yaml");
    let folder = dash["providers"][0]["options"]["path"]
        .as_str()
        .expect("providers[0].options.path");
    assert!(strs(&graf["volumes"])
        .iter()
        .any(|v| v.starts_with(&format!("../conf/grafana-dashboard.json:{folder}/"))));
}

/// A provisioned dashboard gets no `__inputs` substitution: every `${VAR}` data source it
/// names must be a templating variable of its own.
#[test]
fn dashboard_data_source_resolves_when_provisioned() {
    let d: serde_json::Value =
        serde_json::from_str(&read("conf/grafana-dashboard.json")).expect("dashboard JSON");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "datasource")
        .filter_map(|v| v["name"].as_str())
        .collect();
    let mut uids = Vec::new();
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(u) = m
                    .get("datasource")
                    .and_then(|d| d.get("uid"))
                    .and_then(|u| u.as_str())
                {
                    out.push(u);
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&d["panels"], &mut uids);
    assert!(!uids.is_empty(), "the panels name their data source");
    for uid in uids {
        let var = uid
            .strip_prefix("${")
            .and_then(|u| u.strip_suffix('}'))
            .unwrap_or_else(|| panic!("data source uid {uid} is fixed, not a variable"));
        assert!(
            vars.contains(&var),
            "${{{var}}} is not a templating variable"
        );
    }
}

/// `image:` lines and `FROM` lines name a release, not a moving tag: a rebuild next month
/// runs what was tested.
#[test]
fn images_are_pinned() {
    fn pinned(image: &str) -> bool {
        // `${APP_IMAGE:-nginx:1.27.3}`: the default is what is pinned.
        let image = image
            .rsplit_once(":-")
            .map(|(_, d)| d.trim_end_matches('}'))
            .unwrap_or(image);
        let Some((_, tag)) = image.rsplit_once(':') else {
            return false;
        };
        let version = tag.split('-').next().unwrap_or("");
        // At least major.minor: `redis:7` or `latest` move.
        version.trim_start_matches('v').split('.').count() >= 2
            && version
                .trim_start_matches('v')
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    }
    for bad in [
        "redis:7",
        "prom/prometheus:latest",
        "nginx:stable",
        "redis",
        "x:${V}",
    ] {
        assert!(!pinned(bad), "{bad} counted as pinned");
    }
    let compose = yaml("deploy/compose.yaml");
    for (name, svc) in compose["services"].as_mapping().expect("services") {
        if let Some(image) = svc["image"].as_str() {
            assert!(
                pinned(image),
                "service {name:?}: image {image} is not pinned"
            );
        }
    }
    let docker = read("deploy/Dockerfile");
    let rust = docker
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    for line in docker.lines().filter(|l| l.starts_with("FROM ")) {
        let image = line.split_whitespace().nth(1).expect("FROM image");
        let image = image.replace("${RUST_VERSION}", rust);
        assert!(pinned(&image), "Dockerfile: {line} is not pinned");
    }
}

#[test]
fn container_has_a_healthcheck_on_readyz() {
    let docker = read("deploy/Dockerfile");
    let hc: String = docker
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take_while(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        hc.contains(
            r#"CMD ["/usr/local/bin/verigate", "healthcheck", "-c", "/etc/verigate/verigate.yaml"]"#
        ),
        "HEALTHCHECK runs verigate healthcheck on the config CMD serves: {hc}"
    );
    assert!(docker.contains(r#"CMD ["run", "-c", "/etc/verigate/verigate.yaml"]"#));
    // healthcheck reaches the admin listener through the container config's admin_listen.
    let cfg = yaml("deploy/verigate.yaml");
    assert!(cfg["admin_listen"].as_str().is_some());
    // The SQLite store's folder is a volume.
    assert!(docker.contains(r#"VOLUME ["/var/lib/verigate"]"#));
}

#[test]
fn secrets_env_is_ignored_by_git() {
    let ignore = read(".gitignore");
    assert!(ignore.lines().any(|l| l.trim() == "deploy/secrets.env"));
    // And git agrees, where there is a checkout to ask.
    if let Ok(out) = Command::new("git")
        .args(["check-ignore", "-q", "deploy/secrets.env"])
        .current_dir(root())
        .output()
    {
        if Command::new("git")
            .args(["rev-parse", "--git-dir"])
            .current_dir(root())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            assert!(
                out.status.success(),
                "git does not ignore deploy/secrets.env"
            );
        }
    }
}

/// The compose file's Redis command, run here against a real redis-server: without the
/// password every command is refused; with it, Redis answers.
#[test]
fn compose_redis_requires_the_password() {
    use std::io::{BufRead, BufReader};
    let have = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !have("redis-server") || !have("redis-cli") {
        skip::missing("redis-server", "apt-get install redis-server");
        return;
    }
    let compose = yaml("deploy/compose.yaml");
    let redis = service(&compose, "redis");
    assert_eq!(redis["env_file"].as_str(), Some("secrets.env"));
    let cmd = strs(&redis["command"]);
    assert_eq!(&cmd[..2], &["sh".to_string(), "-c".to_string()], "{cmd:?}");
    // Compose turns `$$` into `$` before the shell sees it; the image's entrypoint (which
    // only drops to the redis user) is not on this machine.
    let script = cmd[2].replace("$$", "$");
    assert!(script.contains("--requirepass"), "{script}");
    let script = script.replace("exec docker-entrypoint.sh ", "exec ");

    // Without the password Redis does not start at all (no password-less fallback).
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_remove("REDIS_PASSWORD")
        .output()
        .expect("sh");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set REDIS_PASSWORD"));

    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("redis.sock");
    let password = "pw-from-secrets-env-0123";
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{script} --port 0 --save '' --dir {} --unixsocket {} --loglevel notice",
            dir.path().display(),
            sock.display()
        ))
        .env("REDIS_PASSWORD", password)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start redis");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    // `exec`: the shell became redis-server, so killing the child stops Redis.
    let _redis = Kill(child);
    // Redis says when it accepts connections; read its log until it does.
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| {
            l.to_ascii_lowercase()
                .contains("ready to accept connections")
        });
    assert!(ready, "redis-server exited before it was ready");
    let cli = |auth: Option<&str>| {
        let mut c = Command::new("redis-cli");
        c.arg("-s").arg(&sock);
        if let Some(a) = auth {
            c.args(["--no-auth-warning", "-a", a]);
        }
        let out = c.arg("PING").output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(
        cli(None).contains("NOAUTH"),
        "Redis answered without a password"
    );
    let wrong = cli(Some("wrong"));
    assert!(
        wrong.contains("WRONGPASS") || wrong.contains("NOAUTH"),
        "a wrong password: {wrong}"
    );
    assert_eq!(cli(Some(password)), "PONG");
}
