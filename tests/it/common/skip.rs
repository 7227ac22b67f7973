//! A test whose dependency (Redis, Chromium, openssl…) is missing must never pass silently.
//! In CI (`CI=true`) it fails; elsewhere it says so on the terminal, past libtest's capture.

use std::io::Write;

/// True when running under CI, where every test must really run.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Report that the calling test cannot run because it needs `what`, which is missing or
/// broken here; `how_to_get_it` says what to do about it. Under `CI=true` this panics (the
/// test fails); otherwise it writes a visible `SKIPPED:` line straight to stderr (libtest
/// captures `eprintln!`, not this) and the caller returns early.
#[track_caller]
pub fn missing(what: &str, how_to_get_it: &str) {
    // libtest runs each test on a thread named after it.
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    if in_ci() {
        panic!("CI=true, but {test} cannot run: it needs {what}: {how_to_get_it}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test} needs {what}: {how_to_get_it} (with CI=true this fails)"
    );
}

/// Runs the calling test by itself in a fresh process of this test binary, and answers
/// whether the caller is that process (`true`: run the body). All integration tests share one
/// process (`tests/it`) and run in parallel, so process-wide counters (the metrics registry) move with
/// all of them; alone, a test can assert their exact values. In the parent this answers
/// `false` once the child has passed, and fails the test with the child's output if it did
/// not (or if it ran no test: `test` must be the test's full name in this binary,
/// `<module>::<test>`).
///
/// ```ignore
/// if !skip::alone("ops::metrics_move_with_traffic") {
///     return;
/// }
/// ```
pub fn alone(test: &str) -> bool {
    const VAR: &str = "VERIGATE_TEST_ALONE";
    if std::env::var(VAR).as_deref() == Ok(test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(&exe)
        .args([test, "--exact", "--test-threads=1"])
        .env(VAR, test)
        .output()
        .unwrap_or_else(|e| panic!("could not rerun {}: {e}", exe.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.contains("test result: ok. 1 passed"),
        "{test}, run alone in its own process, failed:\n{said}"
    );
    false
}
