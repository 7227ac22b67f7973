//! Batched log output. A log line is appended to an in-memory batch (a short, uncontended lock)
//! and a background thread writes the batch out every 100 ms, or as soon as 64 KiB wait. A
//! per-line hand-off to a writer thread (what `tracing_appender::non_blocking` does) woke that
//! thread on every request: under load it cost a fifth of verigate's CPU, as much as the proxy
//! work itself (see docs/performance.md).
//!
//! Nothing is dropped: when 8 MiB are waiting (the output is stuck), writers wait for room.
//! [`FlushGuard`] writes what is left when dropped, so `main` keeps it until the server stops.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(100);
const SOON: usize = 64 * 1024;
const FULL: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// The flusher has been told to write early since its last batch.
    kicked: bool,
    closed: bool,
}

/// The batch every writer appends to (a `MakeWriter`'s per-line writer).
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    /// The flusher waits here.
    wake: Condvar,
    /// Writers wait here while the batch is full.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a byte buffer: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `MakeWriter` for tracing-subscriber: every line goes into the shared batch.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes out what is left and stops the flusher when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A batched writer in front of `out`, with its flusher thread started.
pub fn batched<W: Write + Send + 'static>(out: W) -> std::io::Result<(BatchWriter, FlushGuard)> {
    let shared = Arc::new(Shared::default());
    let flusher = shared.clone();
    let thread = std::thread::Builder::new()
        .name("verigate-log".into())
        .spawn(move || flush_loop(&flusher, out))?;
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn flush_loop<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut st = shared.lock();
            if !st.kicked && !st.closed {
                st = shared
                    .wake
                    .wait_timeout(st, EVERY)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            std::mem::swap(&mut st.buf, &mut batch);
            st.kicked = false;
            st.closed
        };
        shared.room.notify_all();
        if !batch.is_empty() {
            // Nowhere left to report a failing log output; the lines are gone either way.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
            if batch.capacity() > FULL {
                batch.shrink_to(SOON);
            }
        }
        if closed {
            let rest = std::mem::take(&mut shared.lock().buf);
            let _ = out.write_all(&rest);
            let _ = out.flush();
            return;
        }
    }
}

impl Write for &Shared {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut st = self.lock();
        while st.buf.len() >= FULL && !st.closed {
            st.kicked = true;
            self.wake.notify_one();
            st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.buf.extend_from_slice(line);
        if st.buf.len() >= SOON && !st.kicked {
            st.kicked = true;
            self.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = &'a Shared;

    fn make_writer(&'a self) -> Self::Writer {
        &self.shared
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The process's log batch, for lines written without going through `tracing`'s formatter.
static GLOBAL: std::sync::OnceLock<BatchWriter> = std::sync::OnceLock::new();

/// Make `w` the batch [`access`] writes to (once per process; `main` does it).
pub fn install(w: BatchWriter) {
    let _ = GLOBAL.set(w);
}

/// The access log's target, as `VERIGATE_LOG` filters name it.
pub const ACCESS: &str = "verigate::access";

/// The log filter's word on the access log, once the process's subscriber is in place
/// ([`settle_access_filter`]).
static ACCESS_ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Ask the log filter once whether the access log is on: `main` calls this after setting
/// the process's subscriber, whose filter never changes after. Asking `tracing` on every
/// request went through its dispatcher each time.
pub fn settle_access_filter() {
    let _ = ACCESS_ON.set(tracing::enabled!(
        target: "verigate::access",
        tracing::Level::INFO
    ));
}

/// Is the access log enabled by the log filter?
pub fn access_enabled() -> bool {
    match ACCESS_ON.get() {
        Some(on) => *on,
        None => tracing::enabled!(target: "verigate::access", tracing::Level::INFO),
    }
}

/// Fields that write themselves as one JSON object, byte for byte as `serde_json` writes their
/// `Serialize` form: the access line's are written per request, and serde's generic path
/// (keys escaped at run time, a visitor per field, ryu for every float) was most of the line's
/// cost. [`JsonFields::write_plain`] is the fast path, for the usual line whose values need no
/// escaping; any other line goes through `serde_json`.
pub trait JsonFields: serde::Serialize {
    /// The most bytes [`JsonFields::write_plain`] writes.
    fn plain_len(&self) -> usize;
    /// The object into `w`, as `serde_json` writes it; a value that needs escaping (or byte
    /// text that is not plain visible ASCII) spoils `w`, and the caller writes the object
    /// through `serde_json` instead.
    fn write_plain(&self, w: &mut JsonLine<'_>);
}

/// `bytes` as the access line writes bytes it got as a header value (a host, a request id) or
/// made as text (addresses): the text when it is visible ASCII or tabs (what
/// `HeaderValue::to_str` accepts), else the empty string.
pub fn header_text(bytes: &[u8]) -> &str {
    if bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(bytes).unwrap_or("")
    } else {
        ""
    }
}

/// `serialize_with` for byte text ([`header_text`]).
pub fn ser_text<S: serde::Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(header_text(bytes))
}

/// `serialize_with` for optional byte text ([`header_text`]).
pub fn ser_opt_text<S: serde::Serializer>(bytes: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_some(header_text(b)),
        None => s.serialize_none(),
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of every byte of `x` that `serde_json` would escape in a string (a control
/// below 0x20, `"`, `\`), and with `ASCII` of every byte that is not visible ASCII either
/// (0x7f and up): the word tests for "a byte below n" and "a zero byte" of the bit-twiddling
/// folklore. Not every flagged bit is exact (a borrow runs on above a true hit), but a word
/// with a byte to flag always has some flag, and a word without one has none.
#[inline(always)]
fn flagged<const ASCII: bool>(x: u64) -> u64 {
    let zero = |y: u64| y.wrapping_sub(ONES) & !y;
    let mut f = (x.wrapping_sub(ONES * 0x20) & !x)
        | zero(x ^ (ONES * u64::from(b'"')))
        | zero(x ^ (ONES * u64::from(b'\\')));
    if ASCII {
        f |= x | zero(x ^ (ONES * 0x7f));
    }
    f & HIGH
}

/// Does `s` go into a JSON string as it is (see [`flagged`])? As [`JsonLine`] checks it.
#[cfg(test)]
fn plain<const ASCII: bool>(s: &[u8]) -> bool {
    let mut buf = vec![0; s.len()];
    let mut l = JsonLine::new(&mut buf);
    l.copy_plain::<ASCII>(s);
    l.finish().is_some_and(|n| buf.get(..n) == Some(s))
}

/// The two digits of every number below 100.
const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// The two digits of `x % 100`.
#[inline(always)]
fn pair(x: u64) -> [u8; 2] {
    PAIRS.get((x % 100) as usize).copied().unwrap_or([b'0'; 2])
}

/// `x % 10^6` in six digits, leading zeros kept (the decimals of a number of millionths).
fn six_digits(x: u64) -> [u8; 6] {
    let [a, b] = pair(x / 10_000);
    let [c, d] = pair(x / 100);
    let [e, f] = pair(x);
    [a, b, c, d, e, f]
}

/// A key as [`JsonLine`] takes it: quoted, with its colon and the comma before it
/// (`,"route":`), as a byte array made at compile time. Keys are the writer's own identifiers
/// and go out as given (nothing to escape).
#[macro_export]
macro_rules! json_key {
    ($k:literal) => {{
        const KEY: &[u8] = concat!(",\"", $k, "\":").as_bytes();
        const ARRAY: [u8; KEY.len()] = match KEY.first_chunk() {
            Some(a) => *a,
            None => [0; KEY.len()],
        };
        &ARRAY
    }};
}

/// A JSON object written into a buffer with room for it ([`JsonFields::plain_len`]), field by
/// field as `serde_json` writes it: its string escaping (here: none), its floats (ryu's
/// shortest form), its integers. The fixed parts are copied as arrays of known length, which
/// the compiler turns into a few moves even at `opt-level` 1 where a call to `memcpy` (and a
/// `Vec`'s capacity check) cost more than the bytes. A value the fast path cannot write as
/// `serde_json` would, or a buffer too short, spoils the line: [`JsonLine::finish`] says so
/// and the caller writes the object the general way. Nothing here panics.
pub struct JsonLine<'a> {
    buf: &'a mut [u8],
    pos: usize,
    /// Where the object opened.
    start: usize,
    spoiled: bool,
}

impl<'a> JsonLine<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        JsonLine {
            buf,
            pos: 0,
            start: 0,
            spoiled: false,
        }
    }

    /// Copy the array `src` (of known length) and move on by `len` of its bytes: for text
    /// made in a small array whose first `len` bytes are the value.
    #[inline(always)]
    fn put<const N: usize>(&mut self, src: &[u8; N], len: usize) {
        match self.buf.get_mut(self.pos..) {
            Some(rest) => match rest.first_chunk_mut::<N>() {
                Some(d) => {
                    *d = *src;
                    self.pos += len;
                }
                None => self.spoiled = true,
            },
            None => self.spoiled = true,
        }
    }

    /// Copy `src`, a literal.
    #[inline(always)]
    pub fn lit<const N: usize>(&mut self, src: &[u8; N]) {
        self.put(src, N);
    }

    /// Copy `s`, checking as it goes that it needs no escaping (see [`flagged`]); if it does,
    /// the line is spoiled. Eight bytes at a time (the last word overlapping the one before
    /// it), two overlapping halves of 4 to 7 bytes, the bytes of a shorter one.
    #[inline(always)]
    fn copy_plain<const ASCII: bool>(&mut self, s: &[u8]) {
        let n = s.len();
        let Some(d) = self.buf.get_mut(self.pos..self.pos + n) else {
            self.spoiled = true;
            return;
        };
        let load8 = |i: usize| match s.get(i..).and_then(|w| w.first_chunk::<8>()) {
            Some(w) => u64::from_ne_bytes(*w),
            None => 0,
        };
        let load4 = |i: usize| match s.get(i..).and_then(|w| w.first_chunk::<4>()) {
            Some(w) => u32::from_ne_bytes(*w),
            None => 0,
        };
        let f = if n >= 8 {
            let mut f = 0;
            let mut i = 0;
            while i + 8 <= n {
                let w = load8(i);
                f |= flagged::<ASCII>(w);
                if let Some(c) = d.get_mut(i..).and_then(|c| c.first_chunk_mut::<8>()) {
                    *c = w.to_ne_bytes();
                }
                i += 8;
            }
            if i < n {
                let w = load8(n - 8);
                f |= flagged::<ASCII>(w);
                if let Some(c) = d.get_mut(n - 8..).and_then(|c| c.first_chunk_mut::<8>()) {
                    *c = w.to_ne_bytes();
                }
            }
            f
        } else if n >= 4 {
            let (a, b) = (load4(0), load4(n - 4));
            if let Some(c) = d.first_chunk_mut::<4>() {
                *c = a.to_ne_bytes();
            }
            if let Some(c) = d.get_mut(n - 4..).and_then(|c| c.first_chunk_mut::<4>()) {
                *c = b.to_ne_bytes();
            }
            flagged::<ASCII>(u64::from(a) | u64::from(b) << 32)
        } else {
            // Shifted into a word of spaces (plain), for one check.
            let mut w = ONES * 0x20;
            for (i, &b) in s.iter().enumerate() {
                if let Some(c) = d.get_mut(i) {
                    *c = b;
                }
                w = w << 8 | u64::from(b);
            }
            flagged::<ASCII>(w)
        };
        self.pos += n;
        if f != 0 {
            self.spoiled = true;
        }
    }

    /// Every key comes with a comma before it: the first key's becomes the brace that
    /// opens the object, at [`JsonLine::close`].
    pub fn open(&mut self) {
        self.start = self.pos;
    }

    pub fn close(&mut self) {
        if self.pos == self.start {
            self.lit(b"{}");
            return;
        }
        match self.buf.get_mut(self.start) {
            Some(b) if *b == b',' => *b = b'{',
            _ => self.spoiled = true,
        }
        self.lit(b"}");
    }

    #[inline(always)]
    fn key<const N: usize>(&mut self, key: &[u8; N]) {
        self.lit(key);
    }

    /// A string (`key` as [`json_key!`] writes it).
    pub fn str<const N: usize>(&mut self, key: &[u8; N], v: &str) -> &mut Self {
        self.key(key);
        self.lit(b"\"");
        self.copy_plain::<false>(v.as_bytes());
        self.lit(b"\"");
        self
    }

    /// Byte text as [`header_text`] writes it, when it is plain visible ASCII (anything else
    /// spoils the line).
    pub fn text<const N: usize>(&mut self, key: &[u8; N], v: &[u8]) -> &mut Self {
        self.key(key);
        self.lit(b"\"");
        self.copy_plain::<true>(v);
        self.lit(b"\"");
        self
    }

    pub fn u16<const N: usize>(&mut self, key: &[u8; N], v: u16) -> &mut Self {
        self.key(key);
        if (100..1000).contains(&v) {
            let [b, c] = pair(u64::from(v));
            self.lit(&[b'0' + (v / 100) as u8, b, c]);
            return self;
        }
        let x = u64::from(v);
        let [a, b] = pair(x / 1000);
        let [c, d] = pair(x / 10);
        let t = [a, b, c, d, b'0' + (x % 10) as u8, 0, 0, 0, 0, 0, 0, 0, 0];
        let i = match v {
            0..10 => 4,
            10..100 => 3,
            100..1000 => 2,
            1000..10000 => 1,
            _ => 0,
        };
        match t.get(i..).and_then(|t| t.first_chunk::<8>()) {
            Some(d) => self.put(d, 5 - i),
            None => self.spoiled = true,
        }
        self
    }

    /// A float as `serde_json` writes it: ryu's shortest form that reads back as `v`, `null`
    /// when not finite.
    pub fn f64<const N: usize>(&mut self, key: &[u8; N], v: f64) -> &mut Self {
        self.key(key);
        self.f64_slow(v);
        self
    }

    /// A duration as [`millis`] makes it, written as `serde_json` writes that float: from
    /// its whole nanoseconds, without a float on the usual path.
    pub fn ms<const N: usize>(&mut self, key: &[u8; N], d: std::time::Duration) -> &mut Self {
        match nanos(d) {
            // `millis(d)` is the correctly rounded `m / 10^6` (see [`JsonLine::millionths`]).
            m @ 10..10_000_000_000_000 => {
                self.key(key);
                self.millionths(m);
                self
            }
            _ => self.f64(key, millis(d)),
        }
    }

    /// `m / 10^6` as ryu writes it, `m` in [10, 10^13). A decimal that reads back as a float
    /// is ryu's shortest one when no other decimal of as many significant digits does: those
    /// with `m`'s digits (at most 13) lie at least 10^-6 (10^-13 of the value) from it, and
    /// everything within the half-unit of the float's last bit (10^-16 of it) reads back as
    /// it; so the correctly rounded `m / 10^6` is written with `m`'s digits. Below 10^-5 ryu
    /// writes an exponent (`5e-6`): not here.
    fn millionths(&mut self, m: u64) {
        // The whole part (below 10^7: at most 7 digits) ending at 8, the point, 6 decimals.
        let mut t = [0u8; 32];
        let mut i = 8;
        let mut x = m / 1_000_000;
        while x >= 10 {
            let [a, b] = pair(x);
            i -= 2;
            if let Some(c) = t.get_mut(i..).and_then(|c| c.first_chunk_mut::<2>()) {
                *c = [a, b];
            }
            x /= 100;
        }
        if x > 0 || i == 8 {
            i -= 1;
            if let Some(c) = t.get_mut(i) {
                *c = b'0' + x as u8;
            }
        }
        let frac = m % 1_000_000;
        if let Some(c) = t.get_mut(8..).and_then(|c| c.first_chunk_mut::<7>()) {
            let [a, b, c1, d, e, f] = six_digits(frac);
            *c = [b'.', a, b, c1, d, e, f];
        }
        // Trailing zeros dropped, one decimal kept (`1.0`, as ryu writes it).
        let end = if !frac.is_multiple_of(10) {
            15
        } else if !frac.is_multiple_of(100) {
            14
        } else if !frac.is_multiple_of(1_000) {
            13
        } else if !frac.is_multiple_of(10_000) {
            12
        } else if !frac.is_multiple_of(100_000) {
            11
        } else {
            10
        };
        match t.get(i..).and_then(|t| t.first_chunk::<16>()) {
            Some(d) => self.put(d, end - i),
            None => self.spoiled = true,
        }
    }

    fn f64_slow(&mut self, v: f64) {
        use serde_json::ser::{CompactFormatter, Formatter};
        let Some(rest) = self.buf.get_mut(self.pos..) else {
            self.spoiled = true;
            return;
        };
        let room = rest.len();
        let mut w: &mut [u8] = rest;
        let wrote = if v.is_finite() {
            CompactFormatter.write_f64(&mut w, v)
        } else {
            CompactFormatter.write_null(&mut w)
        };
        match wrote {
            Ok(()) => self.pos += room - w.len(),
            Err(_) => self.spoiled = true,
        }
    }

    /// Give up on the fast path: the caller writes the object through `serde_json`.
    pub fn spoil(&mut self) {
        self.spoiled = true;
    }

    /// The bytes written, or `None` when the line is spoiled (write it the general way).
    pub fn finish(self) -> Option<usize> {
        (!self.spoiled).then_some(self.pos)
    }
}

/// `d`'s whole nanoseconds (saturated at `u64::MAX`, 584 years).
fn nanos(d: std::time::Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// `d` in milliseconds as the access line has it: its nanoseconds over 10^6, correctly
/// rounded, so the number written is the exact decimal (`1.234567`, not
/// `as_secs_f64() * 1000.0`'s `1.2345670000000001`).
pub fn millis(d: std::time::Duration) -> f64 {
    nanos(d) as f64 / 1e6
}

/// `serialize_with` for a duration written in milliseconds ([`millis`]).
pub fn ser_ms<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(millis(*d))
}

/// `serialize_with` for an optional duration written in milliseconds ([`millis`]).
pub fn ser_opt_ms<S: serde::Serializer>(
    d: &Option<std::time::Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&millis(*d)),
        None => s.serialize_none(),
    }
}

/// `fields` appended to `out` as `serde_json` writes them: through [`JsonFields::write_plain`]
/// when it can (then true), else through `serde_json`.
pub fn write_json(fields: &impl JsonFields, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.resize(start + fields.plain_len(), 0);
    let mut l = JsonLine::new(out.get_mut(start..).unwrap_or_default());
    fields.write_plain(&mut l);
    match l.finish() {
        Some(n) => {
            out.truncate(start + n);
            true
        }
        None => {
            out.truncate(start);
            let _ = serde_json::to_writer(out, fields);
            false
        }
    }
}

/// An address as text, formatted on the stack as `Display` writes it: an access line has two
/// (the client's, the upstream's), and `to_string` cost each a trip through the formatter and
/// an allocation.
#[derive(Clone, Copy)]
pub struct AddrText {
    buf: [u8; 64],
    len: usize,
}

/// `make(k)`, or the text this thread made last for `k`: a connection's peer and an app's
/// address come back request after request.
fn memo<K: Copy + PartialEq + 'static>(
    last: &'static std::thread::LocalKey<std::cell::Cell<Option<(K, AddrText)>>>,
    k: K,
    make: impl FnOnce(K) -> AddrText,
) -> AddrText {
    last.with(|c| match c.get() {
        Some((was, text)) if was == k => text,
        _ => {
            let text = make(k);
            c.set(Some((k, text)));
            text
        }
    })
}

thread_local! {
    static LAST_IP: std::cell::Cell<Option<(std::net::IpAddr, AddrText)>> =
        const { std::cell::Cell::new(None) };
    static LAST_NET: std::cell::Cell<Option<((std::net::IpAddr, u8), AddrText)>> =
        const { std::cell::Cell::new(None) };
    static LAST_SOCKET: std::cell::Cell<Option<(std::net::SocketAddr, AddrText)>> =
        const { std::cell::Cell::new(None) };
}

impl AddrText {
    fn write(f: impl FnOnce(&mut std::io::Cursor<&mut [u8]>) -> std::io::Result<()>) -> Self {
        let mut buf = [0u8; 64];
        let mut w = std::io::Cursor::new(&mut buf[..]);
        // The longest address ("[v6%scope]:port", "v6/48") fits: nothing is cut.
        let len = match f(&mut w) {
            Ok(()) => usize::try_from(w.position()).unwrap_or(0),
            Err(_) => 0,
        };
        AddrText { buf, len }
    }

    /// An IPv4 address's octets by hand (`Display` goes through the formatter).
    fn v4(w: &mut impl Write, ip: std::net::Ipv4Addr) -> std::io::Result<()> {
        for (i, o) in ip.octets().into_iter().enumerate() {
            let mut d = [b'.', b'0' + o / 100, b'0' + o / 10 % 10, b'0' + o % 10];
            let skip = if o >= 100 {
                1
            } else if o >= 10 {
                2
            } else {
                3
            };
            if i > 0 {
                d[skip - 1] = b'.';
                w.write_all(&d[skip - 1..])?;
            } else {
                w.write_all(&d[skip..])?;
            }
        }
        Ok(())
    }

    pub fn ip(ip: std::net::IpAddr) -> Self {
        memo(&LAST_IP, ip, Self::ip_text)
    }

    fn ip_text(ip: std::net::IpAddr) -> Self {
        Self::write(|w| match ip {
            std::net::IpAddr::V4(v4) => Self::v4(w, v4),
            std::net::IpAddr::V6(v6) => write!(w, "{v6}"),
        })
    }

    /// The network of `prefix` bits `ip` is in, as `ipnet` writes it (`203.0.113.0/24`).
    pub fn net(ip: std::net::IpAddr, prefix: u8) -> Self {
        memo(&LAST_NET, (ip, prefix), |(ip, prefix)| {
            Self::net_text(ip, prefix)
        })
    }

    fn net_text(ip: std::net::IpAddr, prefix: u8) -> Self {
        let Ok(net) = ipnet::IpNet::new(ip, prefix) else {
            return Self::write(|_| Ok(()));
        };
        let net = net.trunc();
        Self::write(|w| {
            match net.addr() {
                std::net::IpAddr::V4(v4) => Self::v4(w, v4)?,
                std::net::IpAddr::V6(v6) => write!(w, "{v6}")?,
            }
            let p = net.prefix_len();
            let d = [b'0' + p / 100, b'0' + p / 10 % 10, b'0' + p % 10];
            let skip = if p >= 100 {
                0
            } else if p >= 10 {
                1
            } else {
                2
            };
            w.write_all(b"/")?;
            w.write_all(&d[skip..])
        })
    }

    pub fn socket(a: std::net::SocketAddr) -> Self {
        memo(&LAST_SOCKET, a, Self::socket_text)
    }

    fn socket_text(a: std::net::SocketAddr) -> Self {
        Self::write(|w| match a {
            std::net::SocketAddr::V4(a) => {
                Self::v4(w, *a.ip())?;
                w.write_all(b":")?;
                let mut port = [0u8; 5];
                let mut n = a.port();
                let mut i = port.len();
                loop {
                    i -= 1;
                    port[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                w.write_all(&port[i..])
            }
            std::net::SocketAddr::V6(a) => write!(w, "{a}"),
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text's bytes (ASCII), without the UTF-8 check of [`AddrText::as_str`].
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// One access line, time-stamped `at`, in the layout of tracing-subscriber's JSON formatter
/// (`timestamp`, `level`, `fields`, `target`), written straight into the batch: one is
/// written per request, and the generic formatter (a map of owned field values per event)
/// cost about as much as the gate's own work. Without an installed batch (verigate used as a library) the
/// line goes through `tracing` instead. The caller checks [`access_enabled`].
pub fn access(at: std::time::Instant, fields: &impl JsonFields) {
    const HEAD: &[u8; 14] = b"{\"timestamp\":\"";
    const LEVEL: &[u8; 26] = b"\",\"level\":\"INFO\",\"fields\":";
    const TAIL: &[u8; 30] = b",\"target\":\"verigate::access\"}\n";
    let Some(w) = GLOBAL.get() else {
        let mut f = Vec::new();
        write_json(fields, &mut f);
        tracing::info!(target: "verigate::access", "{}", String::from_utf8_lossy(&f));
        return;
    };
    thread_local! {
        /// Kept at the longest line's length: written over, never cleared or zeroed again.
        static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        let stamp = crate::clock::rfc3339_micros(at);
        let need = HEAD.len() + stamp.len() + LEVEL.len() + fields.plain_len() + TAIL.len();
        if line.len() < need {
            line.resize(need, 0);
        }
        let mut l = JsonLine::new(&mut line);
        l.lit(HEAD);
        l.lit(&stamp);
        l.lit(LEVEL);
        fields.write_plain(&mut l);
        l.lit(TAIL);
        if let Some(n) = l.finish() {
            let _ = (&*w.shared).write_all(line.get(..n).unwrap_or_default());
            return;
        }
        // A value to escape: the general way.
        let mut slow = Vec::with_capacity(need);
        slow.extend_from_slice(HEAD);
        slow.extend_from_slice(&stamp);
        slow.extend_from_slice(LEVEL);
        let _ = serde_json::to_writer(&mut slow, fields);
        slow.extend_from_slice(TAIL);
        let _ = (&*w.shared).write_all(&slow);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// A Write that appends to a shared Vec the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_the_guard_flushes_the_rest() {
        let sink = Sink::default();
        let (w, guard) = batched(sink.clone()).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let line = format!("{t} {i}\n");
                        w.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in writers {
            t.join().unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in out.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines arrive once each, in order");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    impl JsonFields for serde_json::Value {
        fn plain_len(&self) -> usize {
            0
        }
        fn write_plain(&self, w: &mut JsonLine<'_>) {
            w.spoil();
        }
    }

    /// One field of each kind, for the writer's property tests.
    #[derive(serde::Serialize)]
    struct Kinds<'a> {
        s: &'a str,
        #[serde(serialize_with = "ser_text")]
        b: &'a [u8],
        n: u16,
        f: f64,
        #[serde(serialize_with = "ser_ms")]
        d: std::time::Duration,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "ser_opt_text"
        )]
        o: Option<&'a [u8]>,
    }

    impl JsonFields for Kinds<'_> {
        fn plain_len(&self) -> usize {
            100 + 3 * 24 + self.s.len() + self.b.len() + self.o.map_or(0, <[u8]>::len)
        }
        fn write_plain(&self, w: &mut JsonLine<'_>) {
            w.open();
            w.str(json_key!("s"), self.s)
                .text(json_key!("b"), self.b)
                .u16(json_key!("n"), self.n)
                .f64(json_key!("f"), self.f)
                .ms(json_key!("d"), self.d);
            if let Some(o) = self.o {
                w.text(json_key!("o"), o);
            }
            w.close();
        }
    }

    fn check(k: &Kinds<'_>) -> bool {
        let mut ours = b"before".to_vec();
        let fast = write_json(k, &mut ours);
        let mut reference = b"before".to_vec();
        serde_json::to_writer(&mut reference, k).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&reference)
        );
        fast
    }

    #[test]
    fn the_plain_tests_flag_every_byte_to_escape_and_nothing_else() {
        // Every byte that needs escaping, at every place in an 8-byte word and the tail.
        for bad in [0u8, 0x1f, b'"', b'\\'] {
            for len in 1..20 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = bad;
                    assert!(!plain::<false>(&v), "{v:?}");
                    assert!(!plain::<true>(&v), "{v:?}");
                }
            }
        }
        for bad in [0x7fu8, 0x80, 0xc3, 0xff] {
            for len in 1..20 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = bad;
                    assert!(plain::<false>(&v), "{v:?}");
                    assert!(!plain::<true>(&v), "{v:?}");
                }
            }
        }
        for ok in [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7e] {
            for len in 0..20 {
                assert!(plain::<true>(&vec![ok; len]), "{ok:#x}");
            }
        }
        // Every byte alone and next to each other byte, in a word and in the tail.
        for a in 0..=255u8 {
            let esc = a < 0x20 || a == b'"' || a == b'\\';
            for v in [
                vec![a],
                vec![b'x', a, b'y'],
                vec![a; 9],
                [vec![b'x'; 8], vec![a]].concat(),
            ] {
                assert_eq!(plain::<false>(&v), !esc, "{v:?}");
                assert_eq!(plain::<true>(&v), !esc && a < 0x7f, "{v:?}");
            }
            for b in 0..=255u8 {
                let v = [b'x', b'x', b'x', a, b, b'x', b'x', b'x'];
                let esc = esc || b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(plain::<false>(&v), !esc, "{v:?}");
                assert_eq!(plain::<true>(&v), !esc && a < 0x7f && b < 0x7f, "{v:?}");
            }
        }
    }

    #[test]
    fn byte_text_is_what_header_value_to_str_accepts() {
        use proptest::prelude::*;
        proptest!(|(b in proptest::collection::vec(any::<u8>(), 0..40))| {
            if let Ok(h) = http::HeaderValue::from_bytes(&b) {
                prop_assert_eq!(header_text(&b), h.to_str().unwrap_or(""));
            }
        });
    }

    #[test]
    fn json_lines_are_written_as_serde_json_writes_them() {
        use proptest::prelude::*;
        let usual = Kinds {
            s: "/member/home",
            b: b"5f0c3a9d2e7b4c1a8f6e0d9c7b5a3e1f",
            n: 200,
            f: 0.123456,
            d: std::time::Duration::from_nanos(1_234_567),
            o: Some(b"203.0.113.0/24"),
        };
        assert!(check(&usual), "the usual line takes the fast path");
        for f in [
            0.0,
            -0.0,
            1.0,
            1.5,
            1e-5,
            1.2e-5,
            9e-6,
            5e-7,
            1e-6,
            0.1,
            0.001,
            9_999_999.999_999,
            1e7,
            1e21,
            1e-300,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
            -1.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            check(&Kinds { f, ..usual });
        }
        for n in [
            0,
            1,
            9,
            10,
            12,
            999_999,
            1_000_000,
            9_999_999_999_999,
            10_000_000_000_000,
        ] {
            let d = std::time::Duration::from_nanos(n);
            check(&Kinds { d, ..usual });
        }
        check(&Kinds {
            d: std::time::Duration::MAX,
            ..usual
        });
        for n in [0, 9, 10, 99, 100, 999, 1000, 65535] {
            assert!(check(&Kinds { n, ..usual }));
        }
        assert!(!check(&Kinds { s: "a\"b", ..usual }));
        assert!(
            !check(&Kinds {
                b: "한".as_bytes(),
                ..usual
            }),
            "not ASCII: empty"
        );
        assert!(
            !check(&Kinds {
                o: Some(b"a\tb"),
                ..usual
            }),
            "a tab, escaped"
        );
        assert!(check(&Kinds {
            s: "한글 \u{7f}",
            o: None,
            ..usual
        }));
        let text = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(0x20u8..0x7f, 0..40),
        ];
        let float = prop_oneof![
            any::<f64>(),
            // Durations in milliseconds, as the access line has them.
            (0u64..20_000_000_000_000)
                .prop_map(|n| std::time::Duration::from_nanos(n).as_secs_f64() * 1000.0),
            (0u64..100_000).prop_map(|n| n as f64 / 1e6),
            (0u64..10_000_000_000_000).prop_map(|n| n as f64 / 1e6),
        ];
        let duration = prop_oneof![
            (0u64..100_000).prop_map(std::time::Duration::from_nanos),
            (0u64..20_000_000_000_000).prop_map(std::time::Duration::from_nanos),
            any::<u64>().prop_map(std::time::Duration::from_nanos),
        ];
        proptest!(|(s in any::<String>(), ascii in "[ -~]{0,40}", b in text, n in any::<u16>(), f in float, d in duration)| {
            for s in [&s, &ascii] {
                let k = Kinds { s, b: &b, n, f, d, o: Some(&b) };
                let fast = check(&k);
                prop_assert_eq!(fast, plain::<false>(s.as_bytes()) && plain::<true>(&b));
                // What serde_json writes reads back as the same values.
                let mut out = Vec::new();
                write_json(&k, &mut out);
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(v["s"].as_str(), Some(s.as_str()));
                prop_assert_eq!(v["b"].as_str(), Some(header_text(&b)));
                prop_assert_eq!(v["n"].as_u64(), Some(u64::from(n)));
                // The number's text through Rust's exact parser (serde_json's own, without its
                // `float_roundtrip` feature, may miss the last bit of an extreme value).
                let text = String::from_utf8(out).unwrap();
                let num = text.split("\"f\":").nth(1).unwrap().split([',', '}']).next().unwrap();
                if f.is_finite() {
                    prop_assert!(v["f"].is_f64());
                    prop_assert_eq!(num.parse::<f64>().unwrap().to_bits(), f.to_bits());
                } else {
                    prop_assert!(v["f"].is_null());
                }
            }
        });
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        use proptest::prelude::*;
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
        let fixed: [IpAddr; 6] = [
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv4Addr::new(10, 9, 100, 1).into(),
            Ipv6Addr::LOCALHOST.into(),
            "2001:db8:abcd:12:1:2:3:4".parse().unwrap(),
            "::ffff:192.0.2.1".parse().unwrap(),
        ];
        let check = |ip: IpAddr, port: u16| {
            assert_eq!(AddrText::ip(ip).as_str(), ip.to_string());
            let prefix = if ip.is_ipv4() { 24 } else { 48 };
            let net = ipnet::IpNet::new(ip, prefix).unwrap().trunc().to_string();
            assert_eq!(AddrText::net(ip, prefix).as_str(), net);
            let sa = SocketAddr::new(ip, port);
            assert_eq!(AddrText::socket(sa).as_str(), sa.to_string());
        };
        for ip in fixed {
            for port in [0, 9, 80, 65535] {
                check(ip, port);
            }
        }
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 8080, 0, 7));
        assert_eq!(AddrText::socket(scoped).as_str(), scoped.to_string());
        proptest!(|(a in any::<u32>(), b in any::<u128>(), port in any::<u16>())| {
            check(Ipv4Addr::from(a).into(), port);
            check(Ipv6Addr::from(b).into(), port);
        });
    }

    #[test]
    fn access_lines_have_the_tracing_json_layout() {
        let sink = Sink::default();
        let (w, guard) = batched(sink.clone()).unwrap();
        install(w);
        access(
            std::time::Instant::now(),
            &serde_json::json!({"route": "signup", "decision": "passed", "method": "G\"ET"}),
        );
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert!(out.ends_with("}\n") && out.lines().count() == 1, "{out}");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "verigate::access");
        assert_eq!(line["fields"]["route"], "signup");
        assert_eq!(line["fields"]["method"], "G\"ET");
        let ts = line["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }

    #[test]
    fn a_quiet_line_is_written_without_waiting_for_more() {
        let sink = Sink::default();
        let (w, _guard) = batched(sink.clone()).unwrap();
        w.make_writer().write_all(b"one line\n").unwrap();
        // Poll: the periodic flush writes it without anything else happening.
        for _ in 0..500 {
            if sink.0.lock().unwrap().as_slice() == b"one line\n" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the line was not written");
    }

    #[test]
    fn a_stuck_output_holds_writers_back_instead_of_dropping_lines() {
        // An output that blocks until released.
        #[derive(Clone)]
        struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl Write for Gate {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut o = open.lock().unwrap();
                while !*o {
                    o = cv.wait(o).unwrap();
                }
                self.1.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let gate = Gate(Arc::new((Mutex::new(false), Condvar::new())), sink.clone());
        let (w, guard) = batched(gate.clone()).unwrap();
        let line = vec![b'x'; 1023];
        let total = 3 * FULL / 1024;
        let writer = std::thread::spawn(move || {
            for _ in 0..total {
                let mut l = line.clone();
                l.push(b'\n');
                w.make_writer().write_all(&l).unwrap();
            }
        });
        // The writer cannot finish while the output is stuck: it waits for room.
        let mut waited = 0;
        while !writer.is_finished() && waited < 50 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        assert!(!writer.is_finished(), "writers wait for room");
        *gate.0 .0.lock().unwrap() = true;
        gate.0 .1.notify_all();
        writer.join().unwrap();
        drop(guard);
        assert_eq!(sink.0.lock().unwrap().len(), total * 1024);
    }
}

/// Pingora logs an ordinary connection-pool miss at ERROR: "failed to acquire reusable stream"
/// (the pool's idle watcher still held the connection, so a new one is made; nothing failed).
/// This layer drops that one event, so an ERROR line stays something to act on; every other
/// event passes.
pub struct QuietPoolMiss;

/// Target and message of the event [`QuietPoolMiss`] drops.
const POOL_MISS: (&str, &str) = (
    "pingora_core::connectors",
    "failed to acquire reusable stream",
);

impl QuietPoolMiss {
    fn is_pool_miss(event: &tracing::Event<'_>) -> bool {
        /// The event's message, and (a record bridged from the `log` crate, whose metadata
        /// target is `log`) the target it names in its `log.target` field.
        #[derive(Default)]
        struct Fields {
            message: bool,
            log_target: bool,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.message = format!("{v:?}") == POOL_MISS.1;
                }
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                match f.name() {
                    "message" => self.message = v == POOL_MISS.1,
                    "log.target" => self.log_target = v == POOL_MISS.0,
                    _ => {}
                }
            }
        }
        let meta = event.metadata();
        if *meta.level() != tracing::Level::ERROR {
            return false;
        }
        let from_log = match meta.target() {
            "log" => true,
            t if t == POOL_MISS.0 => false,
            _ => return false,
        };
        let mut f = Fields::default();
        event.record(&mut f);
        f.message && (!from_log || f.log_target)
    }
}

#[cfg(test)]
mod quiet_tests {
    use super::QuietPoolMiss;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn only_the_pool_miss_is_dropped() {
        let seen = Arc::new(AtomicUsize::new(0));
        let sub = tracing_subscriber::registry()
            .with(QuietPoolMiss)
            .with(Count(seen.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "pingora_core::connectors", "failed to acquire reusable stream");
            assert_eq!(seen.load(Ordering::SeqCst), 0, "the pool miss is dropped");
            tracing::error!(target: "pingora_core::connectors", "connect failed");
            tracing::error!(target: "verigate", "failed to acquire reusable stream");
            tracing::warn!(target: "pingora_core::connectors", "failed to acquire reusable stream");
            assert_eq!(seen.load(Ordering::SeqCst), 3, "everything else passes");
        });
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QuietPoolMiss {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        !Self::is_pool_miss(event)
    }
}

/// Drops Pingora's ERROR lines for what a client does on its own (it closed or reset the
/// connection, sent a malformed request, stalled): every scanner and every phone that loses
/// its signal wrote one, and an operator paged on ERROR learned nothing. `keep` (set when the
/// log level asks for debug) lets them through, so they are demoted rather than gone.
pub struct QuietClientErrors {
    pub keep: bool,
}

/// Pingora's error kinds (as its messages spell them, after the error's source) that a client
/// causes by itself.
const CLIENT_KINDS: [&str; 9] = [
    "Downstream ConnectionClosed",
    "Downstream ReadError",
    "Downstream WriteError",
    "Downstream ReadTimedout",
    "Downstream WriteTimedout",
    "Downstream InvalidHTTPHeader",
    "Downstream H1Error",
    "Downstream H2Error",
    "Downstream InvalidH2",
];

/// Pingora's messages that are about the client's connection whatever the error's kind.
const CLIENT_MESSAGES: [&str; 4] = [
    "failed to send error response to downstream",
    "HTTP server fails to read from downstream",
    "H2 handshake error",
    "Error finish sending body to downstream",
];

impl QuietClientErrors {
    /// An ERROR from Pingora (its own target, or a `log` record naming a pingora target)
    /// whose message is a client's own doing.
    pub fn is_client_noise(event: &tracing::Event<'_>) -> bool {
        #[derive(Default)]
        struct Fields {
            message: String,
            log_target: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.message = format!("{v:?}");
                }
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                match f.name() {
                    "message" => self.message = v.to_string(),
                    "log.target" => self.log_target = v.to_string(),
                    _ => {}
                }
            }
        }
        let meta = event.metadata();
        if *meta.level() != tracing::Level::ERROR {
            return false;
        }
        let from_log = match meta.target() {
            "log" => true,
            t if t.starts_with("pingora") => false,
            _ => return false,
        };
        let mut f = Fields::default();
        event.record(&mut f);
        if from_log && !f.log_target.starts_with("pingora") {
            return false;
        }
        CLIENT_KINDS.iter().any(|k| f.message.contains(k))
            || CLIENT_MESSAGES.iter().any(|m| f.message.starts_with(m))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for QuietClientErrors {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.keep || !Self::is_client_noise(event)
    }
}

#[cfg(test)]
mod client_noise_tests {
    use super::QuietClientErrors;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn seen(keep: bool, emit: impl FnOnce()) -> usize {
        let n = Arc::new(AtomicUsize::new(0));
        let sub = tracing_subscriber::registry()
            .with(QuietClientErrors { keep })
            .with(Count(n.clone()));
        tracing::subscriber::with_default(sub, emit);
        n.load(Ordering::SeqCst)
    }

    #[test]
    fn a_clients_own_failures_are_dropped_and_nothing_else() {
        let client = || {
            tracing::error!(target: "pingora_proxy", "Fail to proxy: Downstream ConnectionClosed context: peer closed, downstream session type: HTTP/1.1");
            tracing::error!(target: "pingora_proxy", "Fail to proxy: Downstream ReadError context: Connection reset by peer, status: 0");
            tracing::error!(target: "pingora_proxy", "failed to send error response to downstream: Downstream WriteError");
            tracing::error!(target: "pingora_core::apps::http_app", "HTTP server fails to read from downstream: Downstream InvalidHTTPHeader");
        };
        assert_eq!(
            seen(false, client),
            0,
            "a client's own doing is not an ERROR"
        );
        assert_eq!(
            seen(true, client),
            4,
            "kept when the log level asks for debug"
        );
        let others = || {
            tracing::error!(target: "pingora_proxy", "Fail to proxy: Upstream ConnectRefused context: 127.0.0.1:1");
            tracing::error!(target: "pingora_proxy", "Fail to proxy: Internal InternalError");
            tracing::error!(target: "verigate", "Fail to proxy: Downstream ConnectionClosed");
            tracing::warn!(target: "pingora_proxy", "Fail to proxy: Downstream ConnectionClosed");
        };
        assert_eq!(
            seen(false, others),
            4,
            "upstream, internal and our own errors stay"
        );
    }
}
