//! Header names as the app may receive them. One grammar and one folding, instead of lists of
//! spellings:
//!
//! - **Grammar**: a request header whose name has any byte besides ASCII letters, digits and
//!   `-` never reaches the app (as nginx's `ignore_invalid_headers on`). App servers fold
//!   `_`, `.` and other bytes into `-` or `_` in different ways (CGI and WSGI servers turn
//!   `-` into `_`), so such a name can be read as a protected one.
//! - **Folding**: protected names are compared folded ([`super::fold`]): `X_Verified-Name`,
//!   `x.verified.name` and `XVerifiedName` are one name.
//! - **Protected**: the identity prefix and the assertion header (verigate's own), and the
//!   names through which app servers take the path, the script prefix or the user from their
//!   proxy ([`environment`]), dropped from every peer. Forwarding headers are judged in
//!   [`super::forwarded`] and method overrides in [`super::target`], with the same folding.
//!
//! Dropped names are counted in `verigate_dropped_headers_total{why}` and, with
//! `clients.log_dropped_headers`, logged by name (never a value).

use super::edit::Edit;
use super::fold::*;
use crate::config::common_names::common;
use http::HeaderName;

/// Why a header is kept from the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A byte besides letters, digits and `-` in its name.
    InvalidName,
    /// Under the identity prefix, or the assertion's name, in any spelling.
    Identity,
    /// A name app servers read as their environment (path, prefix, user).
    Environment,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::InvalidName => "invalid_name",
            Why::Identity => "identity",
            Why::Environment => "environment",
        }
    }
}

/// What the app must never receive from a client: verigate's own names, in any spelling.
pub struct Protected<'a> {
    prefix: &'a str,
    assertion: &'a str,
    /// Both folded ([`crate::config::folded`], at config time).
    prefix_f: &'a [u8],
    assertion_f: &'a [u8],
    /// [`common_kept`] of the two (at config time).
    common_kept: u32,
}

impl<'a> Protected<'a> {
    /// From the identity prefix (`x-verified-`) and the assertion's header name, as the config
    /// has them (folded already).
    pub fn of(id: &'a crate::config::IdentityHeaders) -> Protected<'a> {
        Protected {
            prefix: &id.prefix,
            assertion: id.assertion.as_str(),
            prefix_f: &id.prefix_folded,
            assertion_f: &id.assertion_folded,
            common_kept: id.common_kept,
        }
    }

    /// Why `name` may not reach the app, if it may not. One pass over the name checks the
    /// grammar and folds it (on the stack); the rest compares short slices.
    pub fn judge(&self, name: &str) -> Option<Why> {
        self.judge_name(&Name::of(name))
    }

    /// [`Protected::judge`] of a name already worked out.
    pub fn judge_name(&self, n: &Name) -> Option<Why> {
        let f = &n.fold;
        if f.invalid {
            return Some(Why::InvalidName);
        }
        let bytes = n.text.as_bytes();
        let identity = match f.whole() {
            Some(n) => n.starts_with(self.prefix_f) || n == self.assertion_f,
            // A name past FOLD_MAX: compared byte by byte.
            None => {
                fold_strip(bytes, self.prefix.as_bytes()).is_some()
                    || fold_eq(bytes, self.assertion.as_bytes())
            }
        };
        if identity {
            return Some(Why::Identity);
        }
        environment_of(n).then_some(Why::Environment)
    }
}

/// What one header of a request becomes on its way to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It goes on.
    Keep,
    /// It goes on, and names a method the app may act on (a method-override header).
    Override,
    /// Kept from the app ([`Protected::judge`]): counted, and logged by name when asked.
    Drop(Why),
    /// A forwarding header this peer may not send ([`super::forwarded::doomed`]): removed,
    /// and verigate's own put in its place.
    Forwarding,
}

/// Each header name decided once: the app's names ([`Protected::judge`]), then what this
/// peer may say about the connection ([`super::forwarded::doomed`]), then the method
/// overrides ([`super::target`]).
pub fn verdict(protected: &Protected, name: &str, trusted: bool) -> Verdict {
    verdict_of(protected, name, common(name), trusted)
}

/// [`verdict`] of a name whose place among the common names (`common(name)`) is known.
fn verdict_of(
    protected: &Protected,
    name: &str,
    common: Option<(u32, &[u8])>,
    trusted: bool,
) -> Verdict {
    if let Some((i, _)) = common {
        if protected.common_kept & (1 << i) != 0 {
            return Verdict::Keep;
        }
    }
    judged(protected, name, trusted)
}

/// [`verdict`] by the rules themselves.
fn judged(protected: &Protected, name: &str, trusted: bool) -> Verdict {
    let n = Name::of(name);
    if let Some(why) = protected.judge_name(&n) {
        return Verdict::Drop(why);
    }
    if super::forwarded::doomed(&n, trusted) {
        return Verdict::Forwarding;
    }
    if super::target::method_override(&n) {
        return Verdict::Override;
    }
    Verdict::Keep
}

/// What [`screen`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Screened {
    /// Headers removed by [`Protected::judge`] (forwarding headers not counted).
    pub dropped: usize,
    /// A method-override header stays on the request.
    pub method_override: bool,
    /// The common names ([`common`]) among the request's header names, one bit each, and
    /// whether any other name was there: which headers it may have ([`Screened::may_have`]).
    common: u32,
    uncommon: bool,
}

impl Screened {
    /// May the screened request have a header named `name` (lower case, as `http` keeps
    /// names)? False only when no header of that name was there when it was screened, so a
    /// lookup that could only find nothing is spared (a header removed since may still be
    /// said to be there).
    pub fn may_have(&self, name: &http::HeaderName) -> bool {
        match common(name.as_str()) {
            Some((i, _)) => self.common & (1 << i) != 0,
            None => self.uncommon,
        }
    }
}

/// One pass over the request's header names: remove every header [`Protected::judge`] keeps
/// from the app (counted, and with `log` logged by name) and every forwarding header this
/// peer (`trusted`: one of `clients.trusted_proxies`) may not send, and note whether a
/// method-override header stays. The common case (nothing to remove) allocates nothing.
pub fn screen(req: &mut impl Edit, protected: &Protected, trusted: bool, log: bool) -> Screened {
    let mut out = Screened::default();
    let mut doomed: Vec<(HeaderName, Verdict)> = Vec::new();
    for k in req.map().keys() {
        let name = k.as_str();
        let place = common(name);
        match place {
            Some((i, _)) => out.common |= 1 << i,
            None => out.uncommon = true,
        }
        match verdict_of(protected, name, place, trusted) {
            Verdict::Keep => {}
            Verdict::Override => out.method_override = true,
            v => doomed.push((k.clone(), v)),
        }
    }
    for (name, v) in &doomed {
        if let Verdict::Drop(why) = v {
            crate::metrics::DROPPED_HEADERS
                .with_label_values(&[why.label()])
                .inc();
            out.dropped += 1;
        }
        req.remove(name);
    }
    if log && out.dropped > 0 {
        let names: Vec<&str> = doomed
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Drop(_)))
            .map(|(n, _)| n.as_str())
            .collect();
        tracing::info!(names = ?names, "dropped request headers");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::common_names::{common_kept, COMMON_NAMES};

    /// The names under `prefix` and the assertion's, as the config makes them.
    fn protected(prefix: &str, assertion: &'static str) -> Protected<'static> {
        let prefix_folded = crate::config::folded(prefix);
        let assertion_folded = crate::config::folded(assertion);
        let id = crate::config::IdentityHeaders {
            prefix: prefix.into(),
            assertion: HeaderName::from_static(assertion),
            common_kept: common_kept(&prefix_folded, &assertion_folded),
            prefix_folded,
            assertion_folded,
            ..Default::default()
        };
        Protected::of(Box::leak(Box::new(id)))
    }

    fn p() -> Protected<'static> {
        protected("x-verified-", "x-verified-assertion")
    }

    #[test]
    fn the_grammar_and_the_folding() {
        let p = p();
        for ok in [
            "accept",
            "content-type",
            "x-custom-1",
            "x-forwarded-for",
            "x-http-method-override",
            "user-agent",
            "sec-fetch-user",
            "x-requested-with",
            "x-csrf-token",
            "x-database",
        ] {
            assert_eq!(p.judge(ok), None, "{ok}");
        }
        for bad in [
            "x_custom", "foo.bar", "a!b", "a#b", "a$b", "a'b", "a|b", "a~b", "a^b", "a`b", "a*b",
            "a+b", "a&b", "a%b",
        ] {
            assert_eq!(p.judge(bad), Some(Why::InvalidName), "{bad}");
        }
        for id in [
            "x-verified-name",
            "xverified-name",
            "x-verifiedname",
            "xverifiedname",
            "x-verified-assertion",
            "x-verifiedish",
        ] {
            assert_eq!(p.judge(id), Some(Why::Identity), "{id}");
        }
        for env in [
            "script-name",
            "path-info",
            "remote-user",
            "x-forwarded-prefix",
            "x-script-name",
            "x-forwarded-path",
            "x-forwarded-uri",
            "x-original-url",
            "x-rewrite-url",
            "x-original-uri",
            "x-forwarded-script-name",
            "x-remote-user",
            "x-forwarded-user",
            "proxy",
            "request-uri",
            "xoriginalurl",
            "x-webauth-user",
            "x-forwarded-email",
            "x-forwarded-preferred-username",
            "x-ms-client-principal-name",
            "oidc-claim-sub",
            "x-amzn-oidc-data",
            "x-auth-request-access-token",
            "x-forwarded-base",
            "x-base-url",
            "x-envoy-original-path",
            "x-a-very-long-header-name-of-some-vendor-which-ends-with-user",
        ] {
            assert_eq!(p.judge(env), Some(Why::Environment), "{env}");
        }
        // Another assertion name outside the prefix is protected too.
        let q = protected("x-id-", "x-app-proof");
        assert_eq!(q.judge("x-app-proof"), Some(Why::Identity));
        assert_eq!(q.judge("xapp-proof"), Some(Why::Identity));
        assert_eq!(q.judge("x-verified-name"), None);
    }

    /// Every common name folds as its table says and is kept by the rules, from any peer;
    /// under any identity prefix or assertion name, the table's verdict is the rules'.
    #[test]
    fn common_names_are_kept_as_the_rules_keep_them() {
        // Each name's number is its place in the table: `common` numbers them alike.
        let names = COMMON_NAMES;
        let default = p();
        for (n, name) in names.into_iter().enumerate() {
            let (i, folded) = common(name).unwrap_or_else(|| panic!("{name} is common"));
            assert_eq!(i as usize, n, "{name}'s number");
            assert_eq!(Some(folded), Fold::of(name.as_bytes()).whole(), "{name}");
            for trusted in [false, true] {
                assert_eq!(judged(&default, name, trusted), Verdict::Keep, "{name}");
            }
        }
        for (prefix, assertion) in [
            ("x-verified-", "x-verified-assertion"),
            ("accept-", "x-proof"),
            ("sec-", "x-proof"),
            ("user_", "user-agent"),
            ("co", "cookie"),
            ("x-", "x-id"),
            ("host-", "host"),
            ("if-", "x_requested_with"),
        ] {
            let q = protected(
                prefix,
                Box::leak(assertion.replace('_', "-").into_boxed_str()),
            );
            for name in names
                .iter()
                .chain(&["x-custom", "x-verified-name", "accepts"])
            {
                for trusted in [false, true] {
                    assert_eq!(
                        verdict(&q, name, trusted),
                        judged(&q, name, trusted),
                        "{prefix} {assertion} {name}"
                    );
                }
            }
        }
        assert_eq!(common("x-custom"), None);
        assert_eq!(common("Accept"), None, "names in the map are lower case");
    }

    #[test]
    fn screening_removes_and_keeps() {
        let mut h = http::HeaderMap::new();
        for (n, v) in [
            ("accept", "*/*"),
            ("x_verified_name", "forged"),
            ("x.verified.name", "forged"),
            ("script_name", "/signup"),
            ("x-script-name", "/signup"),
            ("x-custom", "1"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        assert_eq!(screen(&mut h, &p(), true, false).dropped, 4);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-custom"]);
        let again = screen(&mut h, &p(), true, true);
        assert_eq!((again.dropped, again.method_override), (0, false));
    }

    #[test]
    fn one_pass_drops_forwarding_claims_by_peer_and_notes_overrides() {
        let sent = [
            ("accept", Verdict::Keep),
            ("x-verified-name", Verdict::Drop(Why::Identity)),
            ("x-forwarded-for", Verdict::Forwarding),
            ("x-forwarded-host", Verdict::Forwarding),
            ("x-forwarded-host-2", Verdict::Forwarding),
            ("x-host", Verdict::Forwarding),
            ("xforwardedfor", Verdict::Forwarding),
            ("x-real-ip", Verdict::Forwarding),
            ("cf-connecting-ip", Verdict::Forwarding),
            ("x-scheme", Verdict::Forwarding),
            ("x-http-method-override", Verdict::Override),
            ("xhttpmethod", Verdict::Override),
        ];
        let mut h = http::HeaderMap::new();
        for (n, _) in sent {
            h.append(HeaderName::from_static(n), "1".parse().unwrap());
        }
        for (n, v) in sent {
            assert_eq!(verdict(&p(), n, false), v, "{n}");
        }
        // From a trusted proxy its claims about the connection stay; odd spellings of
        // verigate's own names and host claims go all the same.
        for (n, v) in [
            ("x-forwarded-for", Verdict::Keep),
            ("x-forwarded-host", Verdict::Keep),
            ("x-forwarded-host-2", Verdict::Forwarding),
            ("x-real-ip", Verdict::Keep),
            ("cf-connecting-ip", Verdict::Keep),
            ("xforwardedfor", Verdict::Forwarding),
            ("x-host", Verdict::Forwarding),
            ("x-verified-name", Verdict::Drop(Why::Identity)),
        ] {
            assert_eq!(verdict(&p(), n, true), v, "{n}");
        }
        let s = screen(&mut h, &p(), false, false);
        assert_eq!((s.dropped, s.method_override), (1, true));
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-http-method-override", "xhttpmethod"]);
    }

    #[test]
    fn a_screened_request_may_have_the_names_it_had() {
        use http::header::{ACCEPT, CONTENT_LENGTH, COOKIE, HOST, UPGRADE};
        let check = |sent: &[&'static str], want: &[(HeaderName, bool)]| {
            let mut h = http::HeaderMap::new();
            for n in sent {
                h.append(HeaderName::from_static(n), "1".parse().unwrap());
            }
            let s = screen(&mut h, &p(), false, false);
            for (n, may) in want {
                assert_eq!(s.may_have(n), *may, "{n} after {sent:?}");
            }
        };
        check(
            &["host", "accept", "content-length", "x-verified-name"],
            &[
                (HOST, true),
                (ACCEPT, true),
                (CONTENT_LENGTH, true),
                (COOKIE, false),
                // An uncommon name was there (and dropped): any other may be.
                (UPGRADE, true),
            ],
        );
        check(
            &["host", "cookie", "user-agent"],
            &[
                (HOST, true),
                (COOKIE, true),
                (CONTENT_LENGTH, false),
                (UPGRADE, false),
                (HeaderName::from_static("x-other"), false),
            ],
        );
    }

    /// The role words as lists, compared one by one: what [`Roles::of`] decides by last letter.
    fn roles_by_lists(folded: &[u8]) -> Roles {
        Roles {
            user_or_path: USER_AND_PATH_ENDS.iter().any(|w| folded.ends_with(w)),
            connection: CONNECTION_ENDS.iter().any(|w| folded.ends_with(w)),
        }
    }

    #[test]
    fn role_words_by_last_letter_are_the_lists() {
        for w in USER_AND_PATH_ENDS.iter().chain(CONNECTION_ENDS.iter()) {
            for pre in [&b""[..], b"x", b"xforwarded", b"a"] {
                let name = [pre, *w].concat();
                assert_eq!(Roles::of(&name), roles_by_lists(&name), "{name:?}");
                // One letter short of the word, and the word with a letter after it.
                assert_eq!(Roles::of(&name[1..]), roles_by_lists(&name[1..]));
                let more = [&name[..], b"s"].concat();
                assert_eq!(Roles::of(&more), roles_by_lists(&more), "{more:?}");
            }
        }
        for w in CLAIM_FAMILIES {
            for name in [
                w.to_vec(),
                [w, &b"-x"[..]].concat(),
                w[..w.len() - 1].to_vec(),
            ] {
                let by_list = CLAIM_FAMILIES.iter().any(|f| name.starts_with(f));
                assert_eq!(claim_family(&name), by_list, "{name:?}");
            }
        }
        // A long name's end is read from its bytes.
        let long = "x-a-very-long-header-name-of-some-vendor-which-ends-with-Client-IP";
        let n = Name::of(long);
        assert!(n.fold.whole().is_none() && n.roles.connection && !n.roles.user_or_path);
        assert_eq!(Name::of("sec-websocket-user").roles, Roles::default());
    }

    proptest::proptest! {
        /// Any name made of the role words' letters: the role words by last letter are the
        /// lists', for a name held whole and for one past FOLD_MAX (read from its end).
        #[test]
        fn role_words_of_any_name(
            name in proptest::collection::vec(proptest::sample::select(
                b"userloginasrtcmpdyhfxlxontgpi".to_vec()), 0..20),
            pad in 0usize..60,
        ) {
            proptest::prop_assert_eq!(Roles::of(&name), roles_by_lists(&name));
            let long: Vec<u8> = std::iter::repeat_n(b'a', pad).chain(name.iter().copied()).collect();
            let text = std::str::from_utf8(&long).unwrap_or("");
            let expect = if text.starts_with("sec") { Roles::default() } else { roles_by_lists(&long) };
            proptest::prop_assert_eq!(Name::of(text).roles, expect);
        }

        /// The families by first letter are the list's.
        #[test]
        fn claim_families_of_any_name(
            name in proptest::collection::vec(proptest::sample::select(
                b"oidcamznuthrqeslpfx".to_vec()), 0..20),
        ) {
            let by_list = CLAIM_FAMILIES.iter().any(|f| name.starts_with(f));
            proptest::prop_assert_eq!(claim_family(&name), by_list);
        }

        /// Whatever a name's bytes: it reaches the app only when it is of the grammar, and a
        /// name that folds to a protected one never does, whatever bytes it is spelled with.
        #[test]
        fn names_by_grammar_and_folding(
            name in proptest::collection::vec(proptest::sample::select(
                b"aXvVerifiedNnSsCcrRiptTpPhHx-_.!#$%&'*+^`|~09".to_vec()), 1..24),
        ) {
            let Ok(hn) = HeaderName::from_bytes(&name) else { return Ok(()); };
            let text = hn.as_str();
            let verdict = p().judge(text);
            let folded: Vec<u8> = text.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase()).collect();
            if !plain(text.as_bytes()) {
                proptest::prop_assert_eq!(verdict, Some(Why::InvalidName));
            } else if folded.starts_with(b"xverified") {
                proptest::prop_assert_eq!(verdict, Some(Why::Identity));
            } else if environment(&folded) {
                proptest::prop_assert_eq!(verdict, Some(Why::Environment));
            } else {
                proptest::prop_assert_eq!(verdict, None);
            }
            // The same name spelled with `-` for every other byte is of the grammar, and is
            // judged by its folding alone: a protected name stays protected in any spelling.
            let dashed: String = text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            let d = p().judge(&dashed);
            proptest::prop_assert_ne!(d, Some(Why::InvalidName));
            if verdict != Some(Why::InvalidName) {
                proptest::prop_assert_eq!(d, verdict);
            }
        }
    }
}
