//! Readiness notifications to the service manager (systemd's `Type=notify`): one datagram to
//! the socket named by `$NOTIFY_SOCKET` per state change (`READY=1`, `RELOADING=1`,
//! `STOPPING=1`). Without `$NOTIFY_SOCKET` (not under systemd, tests, the demo) nothing is sent.

use std::os::unix::net::UnixDatagram;

/// `READY=1`: serving (sent once the listeners are up, and after each reload).
pub fn ready() {
    send("READY=1\nSTATUS=serving");
}

/// `RELOADING=1` with the monotonic time systemd asks reloads to carry.
pub fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the config",
        monotonic_usec()
    ));
}

/// Back to ready after a reload; the status line says whether the new config was taken.
pub fn reloaded(taken: bool) {
    send(match taken {
        true => "READY=1\nSTATUS=serving (config reloaded)",
        false => "READY=1\nSTATUS=serving the previous config (reload refused)",
    });
}

/// `STOPPING=1`: shutting down.
pub fn stopping() {
    send("STOPPING=1");
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// One datagram to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). A
/// failure is logged, never fatal: the service manager then sees a timeout, not a crash.
fn send(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().to_string();
    let result = (|| -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        match target.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(state.as_bytes(), &addr)?;
            }
            None => {
                sock.send_to(state.as_bytes(), &target)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
