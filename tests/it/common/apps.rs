//! Real app servers for the differential suite (twelve stacks, see [`Stack`] and
//! docs/dev/differential-suite.md), each routing `/signup`, `/checkout` (and everything
//! under it) and a catch-all the way that stack routes natively. Each answers with
//! `X-Handler: <name>`, `X-Identity` (the `x-verified-*` names it received) and a JSON body:
//! `handler`, `method`, `path` (what the framework routed on), `raw` (the request target as
//! the app saw it), `host` (the host as the framework reads it) and `read` (the values of the
//! identity, forwarding and override headers it received through its own header accessor,
//! and the environment values a server may take from a request: REMOTE_USER, SCRIPT_NAME,
//! PATH_INFO, ...). `?status=301` (302, 303, 307, 308) makes any handler answer that
//! redirect instead. The Flask app also tells what its handler received: `body_sha256`,
//! `content_type`, `form`, and `posts` (how many POSTs the handler has run).
//!
//! The apps live in tests/apps/; `tests/apps/setup.sh` installs what they need (a venv in
//! target/apps/venv, tests/apps/node_modules, a JDK, Debian's Jetty 9, PHP, Go, Ruby, Rack
//! and Puma, and builds target/apps/goapp). Every app binds 127.0.0.1:0, prints
//! `LISTENING <port>` on stdout and exits when its stdin closes, so a test that dies never
//! leaves one behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long an app may take to print `LISTENING` (the JDK compiles the source first).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an app's stderr is kept for error messages.
const STDERR_KEEP: usize = 64 * 1024;

/// One app stack of the differential suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// tests/apps/flask_app.py served by waitress.
    Waitress,
    /// tests/apps/flask_app.py served by werkzeug's threaded dev server.
    Werkzeug,
    /// tests/apps/flask_app.py served by gunicorn (sync workers).
    Gunicorn,
    /// tests/apps/starlette_app.py (Starlette on uvicorn, ASGI).
    Uvicorn,
    /// tests/apps/express_app.js (Express 4 on node).
    Express,
    /// tests/apps/fastify_app.js (Fastify 5 on node).
    Fastify,
    /// tests/apps/koa_app.js (Koa 3 with @koa/router on node).
    Koa,
    /// tests/apps/JdkApp.java (com.sun.net.httpserver, run by the source launcher).
    Jdk,
    /// tests/apps/JettyApp.java (servlets on Debian's embedded Jetty 9).
    Jetty,
    /// tests/apps/php_app.php on PHP's built-in server (Debian php-cli).
    Php,
    /// tests/apps/goapp (net/http's ServeMux), built into target/apps/goapp.
    Go,
    /// tests/apps/rack_app.rb (Rack::URLMap on Debian's Puma).
    Puma,
}

impl Stack {
    pub fn all() -> [Stack; 12] {
        [
            Stack::Waitress,
            Stack::Werkzeug,
            Stack::Gunicorn,
            Stack::Uvicorn,
            Stack::Express,
            Stack::Fastify,
            Stack::Koa,
            Stack::Jdk,
            Stack::Jetty,
            Stack::Php,
            Stack::Go,
            Stack::Puma,
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Stack::Waitress => "waitress",
            Stack::Werkzeug => "werkzeug",
            Stack::Gunicorn => "gunicorn",
            Stack::Uvicorn => "uvicorn",
            Stack::Express => "express",
            Stack::Fastify => "fastify",
            Stack::Koa => "koa",
            Stack::Jdk => "jdk",
            Stack::Jetty => "jetty",
            Stack::Php => "php",
            Stack::Go => "go",
            Stack::Puma => "puma",
        }
    }
}

/// The jars the Jetty app runs with (Debian's libjetty9-java and libservlet-api-java).
const JETTY_JARS: [&str; 7] = [
    "jetty9-server",
    "jetty9-servlet",
    "jetty9-security",
    "jetty9-http",
    "jetty9-io",
    "jetty9-util",
    "servlet-api",
];

/// A running app; dropping it ends the process.
pub struct AppServer {
    pub stack_name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    /// Held open: the app exits when it closes.
    stdin: Option<ChildStdin>,
}

impl Drop for AppServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The app runs in a process group of its own: a wrapper's children (PHP's built-in
        // server under tests/apps/php_app.sh) end with it instead of outliving the test.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run tests/apps/setup.sh once per test process, so that the README's test command alone
/// installs the stacks on a fresh machine (it takes well under a second when they are there).
fn ensure_installed() -> Result<(), String> {
    static SETUP: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    SETUP
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(repo_root().join("tests/apps/setup.sh"))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run tests/apps/setup.sh: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "tests/apps/setup.sh failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .clone()
}

/// The command that runs `stack`'s app, or why it is not installed.
fn command(stack: Stack) -> Result<Command, String> {
    ensure_installed()?;
    let root = repo_root();
    let apps = root.join("tests/apps");
    let setup = "run tests/apps/setup.sh";
    let mut cmd = match stack {
        Stack::Waitress | Stack::Werkzeug | Stack::Gunicorn | Stack::Uvicorn => {
            let python = root.join("target/apps/venv/bin/python");
            if !python.exists() {
                return Err(format!("{} is missing ({setup})", python.display()));
            }
            let mut c = Command::new(python);
            if stack == Stack::Uvicorn {
                c.arg(apps.join("starlette_app.py"));
            } else {
                c.arg(apps.join("flask_app.py")).arg(stack.name());
            }
            c
        }
        Stack::Express | Stack::Fastify | Stack::Koa => {
            let express = apps.join("node_modules/express");
            if !express.is_dir() {
                return Err(format!("{} is missing ({setup})", express.display()));
            }
            let mut c = Command::new("node");
            c.arg(format!("{}_app.js", stack.name()));
            c
        }
        Stack::Jdk => {
            let mut c = Command::new("java");
            c.arg("JdkApp.java");
            c
        }
        Stack::Jetty => {
            let jars: Vec<String> = JETTY_JARS
                .iter()
                .map(|j| format!("/usr/share/java/{j}.jar"))
                .collect();
            if let Some(missing) = jars.iter().find(|j| !std::path::Path::new(j).exists()) {
                return Err(format!("{missing} is missing ({setup})"));
            }
            let mut c = Command::new("java");
            c.arg("-cp").arg(jars.join(":")).arg("JettyApp.java");
            c
        }
        Stack::Php => {
            let mut c = Command::new("bash");
            c.arg("php_app.sh");
            c
        }
        Stack::Go => {
            let bin = root.join("target/apps/goapp");
            if !bin.exists() {
                return Err(format!("{} is missing ({setup})", bin.display()));
            }
            Command::new(bin)
        }
        Stack::Puma => {
            let mut c = Command::new("ruby");
            c.arg("rack_app.rb");
            c
        }
    };
    cmd.current_dir(&apps);
    Ok(cmd)
}

/// Start the app of `stack`; Err(reason) when the stack is not installed (venv,
/// node_modules or java missing) or the app could not start.
pub fn start(stack: Stack) -> Result<AppServer, String> {
    let name = stack.name();
    let mut cmd = command(stack)?;
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    // Drain stderr for the whole life of the app (a full pipe would block it), keeping
    // the start of it for error messages.
    let err_buf = Arc::new(Mutex::new(Vec::new()));
    let err_thread = {
        let err_buf = err_buf.clone();
        std::thread::spawn(move || drain(stderr, &err_buf))
    };

    // Read stdout until `LISTENING <port>`, then keep draining it.
    let (tx, rx) = mpsc::channel::<Result<u16, String>>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut printed = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(format!("exited before LISTENING; stdout: {printed:?}")));
                    return;
                }
                Ok(_) => {}
            }
            if let Some(port) = line.trim_end().strip_prefix("LISTENING ") {
                let sent = match port.trim().parse::<u16>() {
                    Ok(p) => tx.send(Ok(p)),
                    Err(_) => tx.send(Err(format!("bad line {line:?}"))),
                };
                if sent.is_ok() {
                    break;
                }
                return;
            }
            printed.push_str(&line);
        }
        let mut sink = Vec::new();
        let _ = lines.read_to_end(&mut sink);
    });

    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(port)) => Ok(AppServer {
            stack_name: name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            stdin,
        }),
        Ok(Err(why)) => Err(failed(why, child, stdin, err_thread, &err_buf)),
        Err(_) => Err(failed(
            format!("no LISTENING line within {START_TIMEOUT:?}"),
            child,
            stdin,
            err_thread,
            &err_buf,
        )),
    }
}

fn drain(mut from: impl Read, keep: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 4096];
    loop {
        match from.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut buf = keep.lock().unwrap();
                let room = STDERR_KEEP.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// End a child that did not come up, and say why with what it wrote on stderr.
fn failed(
    why: String,
    mut child: Child,
    stdin: Option<ChildStdin>,
    err_thread: JoinHandle<()>,
    err_buf: &Mutex<Vec<u8>>,
) -> String {
    drop(stdin);
    let _ = child.kill();
    let status = child.wait();
    let _ = err_thread.join();
    let stderr = String::from_utf8_lossy(&err_buf.lock().unwrap()).into_owned();
    let status = status.map(|s| s.to_string()).unwrap_or_default();
    format!("{why} ({status}); stderr: {}", stderr.trim())
}

/// Send `request` byte for byte to `addr` and read until the server closes the connection
/// (so send `Connection: close`). Returns the status (0 when no status line could be read,
/// e.g. the server closed without answering), the header block after the status line as on
/// the wire (`\r\n`-separated; see [`header`]), and the body (chunked bodies decoded).
/// Reads time out after 10 s; what arrived until then is returned.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request)
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // timeout or reset: keep what arrived
        }
    }
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (
            0,
            String::from_utf8_lossy(&data).into_owned(),
            String::new(),
        );
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head.as_str(), ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = data[end + 4..].to_vec();
    let chunked = header(headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    (
        status,
        headers.to_string(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The first value of header `name` (case-insensitive) in a header block from [`raw_http`].
pub fn header(headers: &str, name: &str) -> Option<String> {
    headers.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// `GET <target>` with the given extra header lines (each without CRLF), `Connection: close`.
pub fn get_request(target: &str, extra_headers: &[&str]) -> Vec<u8> {
    let mut r = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in extra_headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_str, 16) else {
            return out;
        };
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            out.extend_from_slice(&b[..size.min(b.len())]);
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}
