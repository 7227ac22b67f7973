//! Identity headers: strip every client-sent one (any case, `_` for `-`), inject verigate's.

use super::edit::Edit;
use crate::config::IdentityHeaders;
use crate::identity::Forward;
use crate::live::sessions::encode;
pub use crate::live::sessions::Verified;
use crate::routing::Route;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// Does a header name fall under the identity prefix, once both are folded (letter case and
/// every byte that is no letter or digit left out, see [`super::names`])?
pub fn is_identity_header(name: &str, prefix: &str) -> bool {
    super::fold::fold_strip(name.as_bytes(), prefix.as_bytes()).is_some()
}

/// Can `req` go upstream rebuilt from its URI without changing its request line? True for
/// the origin-form targets browsers send; false for absolute-form, CONNECT and non-UTF-8
/// targets, which Pingora keeps verbatim outside the URI.
pub fn origin_form(req: &RequestHeader) -> bool {
    req.raw_path_is_utf8()
        && req
            .uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str().as_bytes() == req.raw_path())
}

/// Run `f` on `req`'s headers as a plain `http::HeaderMap`, then put the request back
/// together without Pingora's map of each name's original letter case. Header names then
/// go upstream in lower case (Pingora title-cases a dozen framing names: `Host`,
/// `Content-Length`, ...), as Pingora already sends them for HTTP/2 clients, and the edits
/// cost one map instead of two and no name parsing. Only for [`origin_form`] requests: the
/// request line is rebuilt from the URI.
pub fn edit_plain<R>(req: &mut RequestHeader, f: impl FnOnce(&mut http::HeaderMap) -> R) -> R {
    let end_stream = req.send_end_stream();
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, empty));
    let out = f(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if end_stream == Some(false) {
        req.set_send_end_stream(false);
    }
    out
}

/// Drop `req`'s map of each header name's original letter case, as [`edit_plain`] does, on
/// the request as received, once `request_filter` is done with it: the upstream request is a
/// copy of it (made by Pingora just before `upstream_request_filter`), which then copies one
/// map instead of two, and [`edit_plain`] has no second map to drop. Only where the upstream
/// request would go through [`edit_plain`] (an [`origin_form`] request whose upstream does not
/// preserve the case): it goes upstream with the same header lines either way.
pub fn drop_case(req: &mut RequestHeader) {
    if req.has_case() {
        edit_plain(req, |_| ());
    }
}

/// One `Content-Length` line for the app: Pingora accepts repeated equal values (`5, 5`, or two
/// headers) and would forward them as sent, which app servers read differently (waitress,
/// Express and the JDK refuse them, werkzeug takes them).
pub fn single_content_length(req: &mut impl Edit) {
    let name = http::header::CONTENT_LENGTH;
    let mut values = req.map().get_all(&name).iter();
    let (Some(first), more) = (values.next(), values.next().is_some()) else {
        return;
    };
    if !more && !first.as_bytes().contains(&b',') {
        return;
    }
    let Some(one) = first
        .to_str()
        .ok()
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .and_then(|v| HeaderValue::from_str(v).ok())
    else {
        return;
    };
    req.remove(&name);
    req.insert(&name, one);
}

/// Remove every identity header a client sent. Returns how many were removed.
pub fn strip_identity(req: &mut impl Edit, prefix: &str) -> usize {
    // The common case (none sent) allocates nothing.
    if !req
        .map()
        .keys()
        .any(|k| is_identity_header(k.as_str(), prefix))
    {
        return 0;
    }
    let doomed: Vec<HeaderName> = req
        .map()
        .keys()
        .filter(|k| is_identity_header(k.as_str(), prefix))
        .cloned()
        .collect();
    for name in &doomed {
        req.remove(name);
    }
    doomed.len()
}

/// What goes upstream for a verified request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub verified: std::sync::Arc<Verified>,
    pub age_ok: Option<bool>,
    pub forward: Forward,
    /// A child's guardian consent on a guardian-consent route (`gate::guardian`).
    pub guardian: Option<Box<GuardianConsent>>,
}

/// The guardian consent a child's request goes upstream with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardianConsent {
    /// The consent record's id.
    pub id: String,
    /// When the guardian consented (UNIX seconds).
    pub at: i64,
    /// The guardian's verified name and birth date, where the route forwards them (with the
    /// child's first state-changing request after the consent).
    pub name: Option<String>,
    pub birth: Option<chrono::NaiveDate>,
}

impl GuardianConsent {
    fn at_text(&self) -> Option<String> {
        chrono::DateTime::<chrono::Utc>::from_timestamp(self.at, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

/// The personal fields one request carries upstream: those its route forwards, where the
/// session holds them. The headers ([`inject`]) and the signed assertion
/// ([`assertion_claims`]) both come from here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarded<'a> {
    pub name: Option<&'a str>,
    pub birth: Option<chrono::NaiveDate>,
    pub gender: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub foreigner: Option<bool>,
    pub carrier: Option<&'a str>,
}

impl Identity {
    /// How many headers [`inject`] adds at most (the assertion not counted).
    pub fn count(&self) -> usize {
        let f = self.forward;
        self.verified.header_count()
            + usize::from(self.age_ok.is_some())
            + 2 * usize::from(self.guardian.is_some())
            + [f.name, f.birth, f.gender, f.phone, f.foreigner, f.carrier]
                .iter()
                .filter(|on| **on)
                .count()
    }

    /// The personal fields this request may send upstream; none unless its route asks.
    pub fn forwarded(&self) -> Forwarded<'_> {
        let (f, c) = (self.forward, &self.verified.claims);
        // The route's choice first: a field it does not forward is not even read (the
        // session's claims may be far from any cache).
        Forwarded {
            name: if f.name { c.name.as_deref() } else { None },
            birth: if f.birth { c.birth } else { None },
            gender: if f.gender { c.gender.as_deref() } else { None },
            phone: if f.phone { c.phone.as_deref() } else { None },
            foreigner: if f.foreigner { c.foreigner } else { None },
            carrier: if f.carrier {
                c.carrier.as_deref()
            } else {
                None
            },
        }
    }
}

fn set(req: &mut impl Edit, name: &HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&encode(value)) {
        req.insert(name, v);
    }
}

/// The identity headers of a verified request. The caller reserves room for them
/// ([`Identity::count`]).
pub fn inject(req: &mut impl Edit, names: &IdentityHeaders, id: &Identity) {
    for (n, v) in id.verified.headers(names) {
        if let Some(v) = v {
            req.insert(n, v.clone());
        }
    }
    if let Some(ok) = id.age_ok {
        let v = HeaderValue::from_static(if ok { "true" } else { "false" });
        req.insert(&names.age_ok, v);
    }
    let f = id.forwarded();
    if let Some(v) = f.name {
        set(req, &names.name, v);
    }
    if let Some(v) = f.birth {
        set(req, &names.birth, &v.format("%Y-%m-%d").to_string());
    }
    if let Some(v) = f.gender {
        set(req, &names.gender, v);
    }
    if let Some(v) = f.phone {
        set(req, &names.phone, v);
    }
    if let Some(v) = f.foreigner {
        let v = HeaderValue::from_static(if v { "true" } else { "false" });
        req.insert(&names.foreigner, v);
    }
    if let Some(v) = f.carrier {
        set(req, &names.carrier, v);
    }
    if let Some(g) = &id.guardian {
        inject_guardian(req, names, g);
    }
}

/// How many headers [`inject_guardian`] adds at most.
pub const GUARDIAN_HEADERS: usize = 4;

/// `X-Verified-Guardian-Consent` and `X-Verified-Guardian-At`: a child's guardian consent (for
/// a stated child, all that goes upstream).
pub fn inject_guardian(req: &mut impl Edit, names: &IdentityHeaders, g: &GuardianConsent) {
    set(req, &names.guardian_consent, &g.id);
    if let Some(at) = g.at_text() {
        set(req, &names.guardian_at, &at);
    }
    if let Some(n) = &g.name {
        set(req, &names.guardian_name, n);
    }
    if let Some(b) = g.birth {
        set(
            req,
            &names.guardian_birth,
            &b.format("%Y-%m-%d").to_string(),
        );
    }
}

/// The signed assertion of a stated child's request: the consent and the route, nothing else.
pub fn guardian_assertion_claims<'a>(
    g: &'a GuardianConsent,
    route: &'a Route,
) -> crate::assertion::Claims<'a> {
    crate::assertion::Claims {
        route: Some(&route.name),
        guardian_consent: Some(&g.id),
        guardian_at: Some(g.at),
        guardian_name: g.name.as_deref(),
        guardian_birth: g.birth,
        ..Default::default()
    }
}

/// What goes upstream on an age-only route (`require.age_status`), whether the person came
/// with a session or an age status: that the route's age rule admits them, and when their age
/// was verified. Nothing that names the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeOnly {
    /// When the age was verified at the provider (UNIX seconds).
    pub checked_at: i64,
    /// Who verified it (for the access log only; never sent upstream).
    pub provider: crate::identity::ProviderId,
}

/// How many headers [`inject_age`] adds.
pub const AGE_HEADERS: usize = 2;

/// `X-Verified-Age-Ok: true` and `X-Verified-Age-Checked-At` (RFC 3339, UTC, seconds). The
/// caller reserves room for them ([`AGE_HEADERS`]).
pub fn inject_age(req: &mut impl Edit, names: &IdentityHeaders, a: &AgeOnly) {
    req.insert(&names.age_ok, HeaderValue::from_static("true"));
    if let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(a.checked_at, 0) {
        set(
            req,
            &names.age_checked_at,
            &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
}

/// The signed assertion of an age-only request: what [`inject_age`] sends, and the route.
pub fn age_assertion_claims<'a>(a: &AgeOnly, route: &'a Route) -> crate::assertion::Claims<'a> {
    crate::assertion::Claims {
        age_ok: Some(true),
        age_checked_at: Some(a.checked_at),
        route: Some(&route.name),
        min_age: route.require.as_ref().and_then(|r| r.min_age),
        ..Default::default()
    }
}

/// What the signed assertion of a request says: every identity header [`inject`] sends for
/// it (the same values, unencoded), and the route that let it through with its `min_age`.
/// Never the CI.
pub fn assertion_claims<'a>(id: &'a Identity, route: &'a Route) -> crate::assertion::Claims<'a> {
    let c = &id.verified.claims;
    let f = id.forwarded();
    crate::assertion::Claims {
        sub: Some(c.ci_hash.as_str()).filter(|h| !h.is_empty()),
        unique_in_site: Some(c.unique_in_site.as_str()).filter(|u| !u.is_empty()),
        provider: c.provider.as_str(),
        method: id.verified.method.as_str(),
        verified_at: c.verified_at,
        age_ok: id.age_ok,
        age_checked_at: None,
        route: Some(&route.name),
        min_age: route.require.as_ref().and_then(|r| r.min_age),
        name: f.name,
        birth: f.birth,
        gender: f.gender,
        phone: f.phone,
        foreigner: f.foreigner,
        carrier: f.carrier,
        guardian_consent: id.guardian.as_deref().map(|g| g.id.as_str()),
        guardian_at: id.guardian.as_deref().map(|g| g.at),
        guardian_name: id.guardian.as_deref().and_then(|g| g.name.as_deref()),
        guardian_birth: id.guardian.as_deref().and_then(|g| g.birth),
    }
}

pub use crate::identity::international_age as age_on;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn prefix_matching_folds_case_and_underscore() {
        let p = "x-verified-";
        for n in [
            "x-verified-age-ok",
            "X-VERIFIED-AGE-OK",
            "x_verified_age_ok",
            "X_Verified-x",
        ] {
            assert!(is_identity_header(n, p), "{n}");
        }
        assert!(is_identity_header("x.verified.name", p));
        assert!(is_identity_header("xverifiedname", p));
        for n in ["x-verify-", "accept", "x-verifie"] {
            assert!(!is_identity_header(n, p), "{n}");
        }
    }

    #[test]
    fn strips_every_variant() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("X-Verified-Age-Ok", "true").unwrap();
        r.append_header("x-verified-unique-in-site", "a").unwrap();
        r.append_header("x-verified-unique-in-site", "b").unwrap();
        r.append_header("X_VERIFIED_PROVIDER", "iamport").unwrap();
        r.append_header("Accept", "*/*").unwrap();
        assert_eq!(strip_identity(&mut r, "x-verified-"), 3);
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn plain_edits_keep_the_request_and_drop_only_the_case() {
        let mut r = RequestHeader::build("POST", b"/a/b?c=d", None).unwrap();
        r.append_header("X-Custom", "1").unwrap();
        r.append_header("X-Verified-Age-Ok", "true").unwrap();
        r.append_header("Cookie", "vg=S; a=1").unwrap();
        r.append_header("Content-Length", "0").unwrap();
        assert!(origin_form(&r));
        let left = edit_plain(&mut r, |h| {
            strip_identity(h, "x-verified-");
            crate::cookies::strip(h, &["vg"]);
            Edit::insert(
                h,
                &HeaderName::from_static("x-verified-provider"),
                HeaderValue::from_static("iamport"),
            );
            h.len()
        });
        assert_eq!(left, 4);
        assert_eq!(r.method, http::Method::POST);
        assert_eq!(r.raw_path(), b"/a/b?c=d");
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        let mut lines: Vec<&str> = wire.split_terminator("\r\n").collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "Content-Length: 0",
                "cookie: a=1",
                "x-custom: 1",
                "x-verified-provider: iamport"
            ]
        );
    }

    /// `drop_case` on the request as received (before Pingora copies it into the upstream
    /// request), then the plain edits on the copy: the same request goes upstream, byte for
    /// byte, as when the copy kept the case map and the edits dropped it.
    #[test]
    fn dropping_the_case_before_the_copy_sends_the_same_request() {
        let mut received = RequestHeader::build("POST", b"/a/b?c=d", None).unwrap();
        received.set_version(http::Version::HTTP_11);
        for (n, v) in [
            ("Host", "shop.example"),
            ("User-Agent", "Mozilla/5.0"),
            ("Sec-Fetch-Mode", "navigate"),
            ("X-Custom", "1"),
            ("x-custom", "2"),
            ("Content-Length", "0"),
        ] {
            received.append_header(n, v).unwrap();
        }
        received.extensions_mut().insert(7_u32);
        let edits = |h: &mut http::HeaderMap| {
            h.reserve(2);
            Edit::insert(
                h,
                &HeaderName::from_static("x-forwarded-host"),
                HeaderValue::from_static("shop.example"),
            );
            Edit::insert(
                h,
                &HeaderName::from_static("x-verified-provider"),
                HeaderValue::from_static("iamport"),
            );
        };
        let wire = |r: &RequestHeader| {
            let mut w = Vec::new();
            r.header_to_h1_wire(&mut w);
            String::from_utf8(w).unwrap()
        };
        let mut kept_case = received.clone();
        edit_plain(&mut kept_case, edits);

        drop_case(&mut received);
        assert!(!received.has_case());
        assert_eq!(received.method, http::Method::POST);
        assert_eq!(received.version, http::Version::HTTP_11);
        assert_eq!(received.raw_path(), b"/a/b?c=d");
        assert_eq!(received.extensions.get::<u32>(), Some(&7));
        let values: Vec<_> = received.headers.get_all("x-custom").iter().collect();
        assert_eq!(values, ["1", "2"]);
        let mut copy = received.clone();
        edit_plain(&mut copy, edits);

        assert_eq!(wire(&copy), wire(&kept_case));
        assert!(wire(&copy).starts_with("Host: shop.example\r\nuser-agent: Mozilla/5.0\r\n"));
        assert_eq!(copy.raw_path(), kept_case.raw_path());
        assert_eq!(copy.method, kept_case.method);
        // Without a case map there is nothing to drop: the request is left as it is.
        let before = wire(&received);
        drop_case(&mut received);
        assert_eq!(wire(&received), before);
        assert_eq!(received.raw_path(), b"/a/b?c=d");
    }

    #[test]
    fn only_origin_form_targets_are_rebuilt_from_the_uri() {
        for (target, origin) in [
            (&b"/"[..], true),
            (b"/a?b=c", true),
            (b"http://shop.example/a", false),
            (b"/caf\xc3\xa9", true),
            (b"/\xff", false),
        ] {
            let r = RequestHeader::build("GET", target, None).unwrap();
            assert_eq!(
                origin_form(&r),
                origin,
                "{}",
                String::from_utf8_lossy(target)
            );
        }
    }

    #[test]
    fn birthday_boundaries() {
        assert_eq!(age_on(d(2007, 11, 24), d(2026, 11, 24)), 19);
        assert_eq!(age_on(d(2007, 11, 25), d(2026, 11, 24)), 18);
        assert_eq!(age_on(d(2008, 2, 29), d(2027, 2, 28)), 18);
        assert_eq!(age_on(d(2008, 2, 29), d(2027, 3, 1)), 19);
        assert_eq!(age_on(d(2008, 2, 29), d(2028, 2, 29)), 20);
    }

    /// The youth_act rule on the date in Seoul: a person born in 2007 is of age from 00:00 KST
    /// on 1 January 2026, which is 15:00 UTC on 31 December 2025; still a youth one second
    /// before, and not of age by the UTC date until UTC's own New Year.
    #[test]
    fn new_year_in_seoul_not_utc() {
        let seoul = chrono_tz::Asia::Seoul;
        let rule = crate::identity::AgeRule::YouthAct;
        let midnight_kst = d(2025, 12, 31)
            .and_hms_opt(15, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        for birth in [d(2007, 1, 1), d(2007, 12, 31)] {
            let at =
                |tz: chrono_tz::Tz, now: i64| rule.admits(19, birth, crate::clock::today(tz, now));
            assert!(!at(seoul, midnight_kst - 1), "{birth}");
            assert!(at(seoul, midnight_kst), "{birth}");
            // UTC is still on 31 December at that instant...
            assert!(!at(chrono_tz::UTC, midnight_kst));
            // ...until nine hours later.
            assert!(!at(chrono_tz::UTC, midnight_kst + 9 * 3600 - 1));
            assert!(at(chrono_tz::UTC, midnight_kst + 9 * 3600));
        }
        // Born on 1 January 2008: not of age on 31 December 2026 in Seoul at any hour.
        let eve = d(2026, 12, 31)
            .and_hms_opt(14, 59, 59)
            .unwrap()
            .and_utc()
            .timestamp();
        assert!(!rule.admits(19, d(2008, 1, 1), crate::clock::today(seoul, eve)));
        assert!(rule.admits(19, d(2008, 1, 1), crate::clock::today(seoul, eve + 1)));
    }

    /// The gate's age check is `age_on(birth, clock::today(timezone, now))`: the same two
    /// calls here, with `now` injected, at instants through four whole UTC days around each
    /// birthday. Asia/Seoul is UTC+9, so its midnight is 15:00 UTC the day before: the age
    /// must follow the date in Seoul whatever the UTC hour.
    #[test]
    fn birthday_in_seoul_at_every_utc_hour() {
        let seoul = chrono_tz::Asia::Seoul;
        let age_at = |birth: NaiveDate, now: i64| age_on(birth, crate::clock::today(seoul, now));
        let utc = |day: NaiveDate, h: u32, m: u32, s: u32| {
            day.and_hms_opt(h, m, s).unwrap().and_utc().timestamp()
        };
        // (birth, the day the new age counts from in Seoul, the age from then on)
        for (birth, from, age) in [
            (d(2007, 11, 24), d(2026, 11, 24), 19),
            (d(2007, 1, 1), d(2026, 1, 1), 19),
            (d(2007, 12, 31), d(2026, 12, 31), 19),
            // Born on 29 February: in a common year the birthday counts from 1 March...
            (d(2008, 2, 29), d(2027, 3, 1), 19),
            // ...and in a leap year on the day itself.
            (d(2008, 2, 29), d(2028, 2, 29), 20),
        ] {
            let midnight_kst = utc(from.pred_opt().unwrap(), 15, 0, 0);
            assert_eq!(
                age_at(birth, midnight_kst - 1),
                age - 1,
                "born {birth}: 23:59:59 KST on the eve of {from}"
            );
            assert_eq!(
                age_at(birth, midnight_kst),
                age,
                "born {birth}: 00:00:00 KST on {from}"
            );
            let mut day = from - chrono::Days::new(2);
            while day <= from + chrono::Days::new(1) {
                for h in 0..24 {
                    for (m, s) in [(0, 0), (0, 1), (30, 0), (59, 59)] {
                        let now = utc(day, h, m, s);
                        let want = if now >= midnight_kst { age } else { age - 1 };
                        assert_eq!(
                            age_at(birth, now),
                            want,
                            "born {birth}, at {day} {h:02}:{m:02}:{s:02} UTC"
                        );
                    }
                }
                day = day.succ_opt().unwrap();
            }
        }
    }
}
