//! Wall-clock time derived from monotonic instants the proxy takes anyway. Reading the clock
//! is not free on every machine (on the VM this was measured on, `clock_gettime` went through
//! the kernel, ~75 ns a read), and a verified request needs wall time twice: session expiry
//! and the access line's timestamp. Each thread maps an `Instant` to wall time through a base
//! pair (`Instant`, `SystemTime`), renewed when an instant is a second or more away from it, so
//! wall time here is the system clock's, give or take its adjustments within that second.
//! Also the other wall-time helpers: `unix_now` and the date in a time zone (`today`).

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RENEW: Duration = Duration::from_secs(1);

thread_local! {
    /// (instant, nanoseconds since the UNIX epoch at that instant)
    static BASE: Cell<Option<(Instant, i128)>> = const { Cell::new(None) };
}

/// Seconds since the UNIX epoch, now (a clock read; the proxy's hot path uses
/// [`unix_secs_at`] with an instant it already has).
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Nanoseconds since the UNIX epoch at `at`.
pub fn unix_nanos_at(at: Instant) -> i128 {
    BASE.with(|b| {
        // Through the base when `at` is within a second of it, after or before it (a
        // request that started before the last renewal): one instant comparison each way.
        if let Some((i, n)) = b.get() {
            match at.checked_duration_since(i) {
                Some(d) if d < RENEW => return n + d.as_nanos() as i128,
                Some(_) => {}
                None => {
                    if let Some(d) = i.checked_duration_since(at).filter(|d| *d < RENEW) {
                        return n - d.as_nanos() as i128;
                    }
                }
            }
        }
        let i = Instant::now();
        let n = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        b.set(Some((i, n)));
        match at.checked_duration_since(i) {
            Some(d) => n + d.as_nanos() as i128,
            None => n - i.duration_since(at).as_nanos() as i128,
        }
    })
}

/// Seconds since the UNIX epoch at `at` and the nanoseconds into that second: in 64 bits
/// (until 2262), where 128-bit division is a library call.
fn split_at(at: Instant) -> (i64, u32) {
    let n = unix_nanos_at(at);
    match i64::try_from(n) {
        Ok(n) => (
            n.div_euclid(1_000_000_000),
            n.rem_euclid(1_000_000_000) as u32,
        ),
        Err(_) => (
            n.div_euclid(1_000_000_000) as i64,
            n.rem_euclid(1_000_000_000) as u32,
        ),
    }
}

/// Seconds since the UNIX epoch at `at`.
pub fn unix_secs_at(at: Instant) -> i64 {
    split_at(at).0
}

/// `at` as RFC 3339 UTC with microseconds (`2026-11-24T06:19:44.123456Z`), appended to `out`.
pub fn write_rfc3339_micros(at: Instant, out: &mut Vec<u8>) {
    out.extend_from_slice(&rfc3339_micros(at));
}

/// `at` as RFC 3339 UTC with microseconds (`2026-11-24T06:19:44.123456Z`), in an array (the
/// access line copies it as one piece). Each thread keeps the instant its current second
/// began at (through [`unix_nanos_at`]) with that second's text: an instant within it needs
/// one comparison and its microseconds.
pub fn rfc3339_micros(at: Instant) -> [u8; 27] {
    thread_local! {
        static SECOND: Cell<Option<(Instant, [u8; 27])>> = const { Cell::new(None) };
    }
    SECOND.with(|c| {
        let (mut text, micros) = match c.get() {
            Some((start, text)) => match at.checked_duration_since(start) {
                Some(d) if d < RENEW => (text, d.subsec_micros()),
                _ => second_text(c, at),
            },
            None => second_text(c, at),
        };
        if let Some(d) = text.get_mut(20..).and_then(|d| d.first_chunk_mut::<6>()) {
            // The microseconds, six digits with leading zeros.
            let mut m = micros;
            for digit in d.iter_mut().rev() {
                *digit = b'0' + (m % 10) as u8;
                m /= 10;
            }
        }
        text
    })
}

/// The text of the second `at` is in, kept in `c` with the instant that second began at;
/// and `at`'s microseconds into it.
#[cold]
fn second_text(c: &Cell<Option<(Instant, [u8; 27])>>, at: Instant) -> ([u8; 27], u32) {
    let (secs, nanos) = split_at(at);
    let mut p = *b"0000-00-00T00:00:00.000000Z";
    if let Some(t) = chrono::DateTime::from_timestamp(secs, 0) {
        let f = t.format("%Y-%m-%dT%H:%M:%S").to_string();
        if let (Some(d), Some(f)) = (p.first_chunk_mut::<19>(), f.as_bytes().first_chunk()) {
            if f.len() == 19 {
                *d = *f;
            }
        }
    }
    c.set(
        at.checked_sub(Duration::from_nanos(u64::from(nanos)))
            .map(|start| (start, p)),
    );
    (p, nanos / 1_000)
}

/// The date in `tz` at UNIX time `now`, remembered per thread for the minute (time zones
/// offsets are whole minutes), so a gated request does not convert time zones every time.
pub fn today(tz: chrono_tz::Tz, now: i64) -> chrono::NaiveDate {
    thread_local! {
        static LAST: Cell<Option<(i64, chrono_tz::Tz, chrono::NaiveDate)>> = const { Cell::new(None) };
    }
    let minute = now.div_euclid(60);
    LAST.with(|last| match last.get() {
        Some((m, t, d)) if m == minute && t == tz => d,
        _ => {
            let d = chrono::DateTime::from_timestamp(minute * 60, 0)
                .unwrap_or_default()
                .with_timezone(&tz)
                .date_naive();
            last.set(Some((minute, tz, d)));
            d
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn today_follows_the_zone_across_midnight() {
        let seoul = chrono_tz::Asia::Seoul;
        // 2026-03-01 00:00 KST is 2026-02-28 15:00 UTC.
        let midnight = chrono::NaiveDate::from_ymd_opt(2026, 2, 28)
            .unwrap()
            .and_hms_opt(15, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        for (t, want) in [
            (midnight - 61, d(2026, 2, 28)),
            (midnight - 1, d(2026, 2, 28)),
            (midnight, d(2026, 3, 1)),
            (midnight + 59, d(2026, 3, 1)),
            (midnight - 1, d(2026, 2, 28)),
        ] {
            assert_eq!(today(seoul, t), want, "{t}");
        }
        // Another zone in the same minute is not served from the cache.
        assert_eq!(today(chrono_tz::UTC, midnight), d(2026, 2, 28));
        assert_eq!(today(seoul, midnight), d(2026, 3, 1));
    }

    #[test]
    fn follows_the_system_clock() {
        let now = Instant::now();
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((unix_secs_at(now) - sys).abs() <= 1);
        // Within one base, instants map exactly.
        let earlier = now.checked_sub(Duration::from_millis(250)).unwrap();
        assert_eq!(unix_nanos_at(now) - unix_nanos_at(earlier), 250_000_000);
    }

    #[test]
    fn instants_mapped_through_two_bases_agree() {
        let base = || BASE.with(|b| b.get()).expect("a base is set");
        let now = Instant::now();
        // `now` maps through the first base...
        let at_now = unix_nanos_at(now);
        let first = base();
        // ...and, once both clocks have moved on, an instant more than a second from that
        // base renews it: `later` maps through a second base, made of fresh clock reads.
        std::thread::sleep(Duration::from_millis(50));
        let later = now + Duration::from_millis(1500);
        let at_later = unix_nanos_at(later);
        let second = base();
        assert_ne!(first, second, "mapping `later` renewed the base");
        assert!(second.0 >= first.0 + Duration::from_millis(50));
        // Across the renewal, wall times differ as the instants do, within the time between
        // the two clock reads that make a base (well under a millisecond).
        let gap = at_later - at_now;
        assert!(
            (gap - 1_500_000_000).abs() < 1_000_000,
            "instants 1.5 s apart map to wall times {gap} ns apart across a renewal"
        );
        // And `now` maps through the second base (within a second of it) to the same wall
        // time as through the first, within the same margin.
        let again = unix_nanos_at(now);
        assert_eq!(
            base(),
            second,
            "`now` is within a second of the second base"
        );
        assert!(
            (again - at_now).abs() < 1_000_000,
            "one instant maps to wall times {} ns apart through the two bases",
            again - at_now
        );
    }

    #[test]
    fn timestamps_follow_the_clock_across_seconds() {
        let now = Instant::now();
        for k in 0..40u64 {
            let at = now + Duration::from_millis(k * 77);
            let text = rfc3339_micros(at);
            let t =
                chrono::DateTime::parse_from_rfc3339(std::str::from_utf8(&text).unwrap()).unwrap();
            let want = unix_nanos_at(at) / 1000;
            let got = t.timestamp_nanos_opt().unwrap() as i128 / 1000;
            assert!((got - want).abs() <= 1_000, "{k}: {got} against {want}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let now = Instant::now();
        let mut out = Vec::new();
        write_rfc3339_micros(now, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.len(), 27, "{s}");
        let t = chrono::DateTime::parse_from_rfc3339(&s).unwrap();
        assert_eq!(
            t.timestamp_nanos_opt().unwrap() as i128 / 1000,
            unix_nanos_at(now) / 1000
        );
        // Within one second the cached prefix is reused and the fraction still moves.
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_rfc3339_micros(now, &mut a);
        write_rfc3339_micros(now + Duration::from_micros(7), &mut b);
        let (ta, tb) = (
            chrono::DateTime::parse_from_rfc3339(std::str::from_utf8(&a).unwrap()).unwrap(),
            chrono::DateTime::parse_from_rfc3339(std::str::from_utf8(&b).unwrap()).unwrap(),
        );
        assert_eq!((tb - ta).num_microseconds(), Some(7));
    }
}
