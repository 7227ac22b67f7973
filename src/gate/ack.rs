//! Prompt ACKs on upstream connections, so that an app which writes its answer in several
//! small sends with Nagle's algorithm on (headers, then body; or chunk by chunk) is not held
//! back by verigate's delayed ACK.
//!
//! On a kept-alive upstream connection Linux puts verigate's socket in "pingpong" mode as soon
//! as verigate sends a request shortly after it received the previous answer: it then delays
//! the ACK of a small segment (up to 40 ms), hoping to carry it on data of its own. verigate
//! has nothing to send while it waits for the answer, and the app's next small send waits for
//! that ACK (Nagle): every such answer took 40 ms more. `TCP_QUICKACK` leaves pingpong mode
//! (and sends an ACK already due): each small segment is then ACKed as soon as verigate reads
//! it. Linux re-enters pingpong mode on the next request that verigate writes, so this is set
//! once per request, after its last write (see `Gate::request_body_filter` and
//! `Gate::upstream_response_filter`). Elsewhere than Linux it does nothing.

use std::os::fd::RawFd;

/// Leave delayed-ACK pingpong mode on the TCP socket `fd` and send any ACK already due.
#[cfg(target_os = "linux")]
pub fn quickack(fd: RawFd) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `one`, a live local. A
    // descriptor that is not (or no longer) a TCP socket only makes the call fail.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere: nothing to do (no `TCP_QUICKACK`).
#[cfg(not(target_os = "linux"))]
pub fn quickack(_fd: RawFd) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::quickack;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    /// Whether the socket is in quick-ACK mode (Linux reports "not pingpong").
    fn quick(s: &TcpStream) -> bool {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, a live local.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        v != 0
    }

    #[test]
    fn a_request_sent_right_after_an_answer_is_undone_by_quickack() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        // An exchange, then the next request at once: the kernel enters pingpong mode.
        c.write_all(b"req").unwrap();
        s.read_exact(&mut buf[..3]).unwrap();
        s.write_all(b"answer").unwrap();
        c.read_exact(&mut buf[..6]).unwrap();
        c.write_all(b"next").unwrap();
        assert!(!quick(&c), "the kernel did not enter pingpong mode");
        quickack(c.as_raw_fd()).unwrap();
        assert!(quick(&c));
        // A descriptor that is not a socket is an error, not a crash.
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(quickack(f.as_raw_fd()).is_err());
    }
}
