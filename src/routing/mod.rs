//! Routes: the first rule whose host and path match the request's host and normalised path
//! decides (or refuses the method). Below config: imports only identity types.

pub mod host;
pub mod path;

pub use host::HostPattern;

use crate::identity::{Forward, ProviderId};
use http::Method;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MatchRule {
    /// The hosts the rule takes (empty: any host, and requests without one).
    hosts: Vec<HostPattern>,
    pattern: String,
    exact: bool,
    methods: Vec<Method>,
    case_sensitive: bool,
    /// A request whose method the route does not list goes on to the next route (opt-in);
    /// by default it is refused with 405.
    fall_through: bool,
}

impl MatchRule {
    /// `pattern` must already be canonical ([`path::normalize`] gives it back as it is;
    /// config validation checks this and reports the key path).
    pub fn new(
        pattern: &str,
        exact: bool,
        methods: Vec<Method>,
        case_sensitive: bool,
        fall_through: bool,
    ) -> Self {
        let pattern = if case_sensitive {
            pattern.to_string()
        } else {
            pattern.to_lowercase()
        };
        MatchRule {
            hosts: Vec::new(),
            pattern,
            exact,
            methods,
            case_sensitive,
            fall_through,
        }
    }

    /// Take only requests for these hosts.
    pub fn with_hosts(mut self, hosts: Vec<HostPattern>) -> Self {
        self.hosts = hosts;
        self
    }

    pub fn hosts(&self) -> &[HostPattern] {
        &self.hosts
    }

    /// `host` as [`host::request_host`] reads it (None: the request names no host).
    fn host_ok(&self, host: Option<&str>) -> bool {
        self.hosts.is_empty() || host.is_some_and(|h| self.hosts.iter().any(|p| p.matches(h)))
    }

    pub fn method_ok(&self, m: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(m)
            || (m == Method::HEAD && self.methods.contains(&Method::GET))
    }

    /// The methods to list in `Allow` (GET brings HEAD).
    pub fn allow(&self) -> String {
        let mut names: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        if self.methods.contains(&Method::GET) && !self.methods.contains(&Method::HEAD) {
            names.push("HEAD");
        }
        names.join(", ")
    }

    /// An exact pattern also matches itself with a format suffix (`/signup.json`, `/signup.`):
    /// Rails and Spring route those to the same action. A prefix pattern is a plain string
    /// prefix (`/checkout` also covers `/checkouts`): never narrower than a router's reading.
    fn path_ok(&self, path: &str) -> bool {
        if !self.exact {
            return path.starts_with(&self.pattern);
        }
        match path.strip_prefix(self.pattern.as_str()) {
            Some("") => true,
            Some(rest) => self.pattern != "/" && rest.starts_with('.') && !rest.contains('/'),
            None => false,
        }
    }

    fn fold<'a>(&self, path: &'a str, folded: &'a str) -> &'a str {
        if self.case_sensitive {
            path
        } else {
            folded
        }
    }

    /// Every request this rule takes is taken by `self` first (so a later `other` never
    /// decides anything).
    fn covers(&self, other: &MatchRule) -> bool {
        if self.case_sensitive && !other.case_sensitive {
            return false;
        }
        let path_covered = if other.exact {
            self.path_ok(&other.pattern)
        } else {
            !self.exact && other.pattern.starts_with(&self.pattern)
        };
        let hosts_covered = self.hosts.is_empty()
            || (!other.hosts.is_empty()
                && other
                    .hosts
                    .iter()
                    .all(|o| self.hosts.iter().any(|s| s.covers(o))));
        let methods_covered = !self.fall_through
            || self.methods.is_empty()
            || (!other.methods.is_empty() && other.methods.iter().all(|m| self.method_ok(m)));
        hosts_covered && path_covered && methods_covered
    }
}

#[derive(Debug, Clone)]
pub struct Require {
    pub providers: Vec<ProviderId>,
    pub min_age: Option<u32>,
    /// How age counts against `min_age` (`Birthday` where there is no `min_age`).
    pub age_rule: crate::identity::AgeRule,
    pub one_account_per_person: bool,
    /// Which upstream answers make a one-account reservation permanent.
    pub commit_on: CommitOn,
    pub max_session_age: Option<Duration>,
    /// After an erasure, the person's signup here is refused this long (`rejoin_too_soon`).
    pub rejoin_after: Option<Duration>,
    /// A browser's form post without a session is kept across the verification (None: the
    /// route opts out, `keep_request: false`).
    pub keep: Option<KeepRule>,
    /// The duplicate-account page's primary button: (url, label) (`require.on_duplicate`).
    pub on_duplicate: Option<(String, String)>,
    /// An age-only route (`age_status: true`, with `min_age`): an age status stands in for a
    /// session, and only the age headers go upstream, with a session or a status.
    pub age_status: bool,
    /// Children under an age need their guardian's consent (`require.guardian_consent`).
    pub guardian: Option<std::sync::Arc<GuardianRule>>,
}

/// `require.guardian_consent`: children under `under` (counted by `age_rule`) reach the route
/// only once a guardian consented to their signup here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardianRule {
    pub under: u32,
    pub age_rule: crate::identity::AgeRule,
    pub children: Children,
    pub text_version: String,
    /// The consent text (Korean, English).
    pub text: (String, String),
    /// How long a guardian link lives.
    pub link_ttl: Duration,
}

/// How children come to a guardian-consent route (`guardian_consent.children`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children {
    /// The child verifies first, through a provider that verifies birth dates.
    Verified,
    /// A person without a session states a birth date on verigate's page.
    StatedBirthDate,
}

/// The adult age of Korean law (민법 제4조), by the birthday rule: a guardian must be this old.
pub const ADULT_AGE: u32 = 19;

impl GuardianRule {
    /// Whether a person born on `birth` is a child here on `today` (needs a guardian).
    pub fn is_child(&self, birth: chrono::NaiveDate, today: chrono::NaiveDate) -> bool {
        !self.age_rule.admits(self.under, birth, today)
    }
}

/// Whether a guardian born on `birth` is an adult on `today` (민법 제4조: 19, by the birthday).
pub fn adult(birth: chrono::NaiveDate, today: chrono::NaiveDate) -> bool {
    crate::identity::AgeRule::Birthday.admits(ADULT_AGE, birth, today)
}

/// How a route keeps a form post across the verification detour (`require.keep_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepRule {
    /// The largest body kept; a larger one is not (the person sends the form again).
    pub max_body: usize,
    /// How long a kept request waits for its verification (a flow's life by default).
    pub ttl: Duration,
}

impl Default for KeepRule {
    fn default() -> Self {
        KeepRule {
            max_body: 256 * 1024,
            ttl: Duration::from_secs(600),
        }
    }
}

/// Which upstream answers complete a one-account signup (anything else releases the
/// reservation). By default a 2xx, and of the redirects only `302` and `303`: the answer of a
/// form handled and sent on (post/redirect/get). `301`, `307` and `308` say the request was
/// moved, not processed (a framework's trailing-slash redirect, a moved page): no account was
/// made, so they release it. `require.commit_on` overrides the rule by class: `[2xx]`, `[3xx]`
/// (every redirect) or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOn {
    pub success: bool,
    pub redirection: Redirects,
}

/// Which redirects complete a signup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    None,
    /// `302` and `303` (post/redirect/get); not `301`, `307` or `308` (moved, not processed).
    SeeOther,
    /// Every 3xx (`commit_on: [3xx]`).
    All,
}

impl Default for CommitOn {
    fn default() -> Self {
        CommitOn {
            success: true,
            redirection: Redirects::SeeOther,
        }
    }
}

impl CommitOn {
    pub fn takes(self, status: http::StatusCode) -> bool {
        if status.is_success() {
            return self.success;
        }
        if !status.is_redirection() {
            return false;
        }
        match self.redirection {
            Redirects::None => false,
            Redirects::SeeOther => matches!(status.as_u16(), 302 | 303),
            Redirects::All => true,
        }
    }
}

#[cfg(test)]
mod commit_on_tests {
    use super::{CommitOn, Redirects};

    #[test]
    fn by_default_a_moved_request_is_no_signup() {
        let d = CommitOn::default();
        for (status, takes) in [
            (200, true),
            (201, true),
            (204, true),
            (302, true),
            (303, true),
            (301, false),
            (307, false),
            (308, false),
            (300, false),
            (304, false),
            (400, false),
            (409, false),
            (500, false),
        ] {
            let s = http::StatusCode::from_u16(status).unwrap();
            assert_eq!(d.takes(s), takes, "{status}");
        }
        let all = CommitOn {
            success: false,
            redirection: Redirects::All,
        };
        for status in [301, 302, 303, 307, 308] {
            assert!(all.takes(http::StatusCode::from_u16(status).unwrap()));
        }
        assert!(!all.takes(http::StatusCode::OK));
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub rule: MatchRule,
    pub require: Option<Require>,
    pub forward: Forward,
    /// Index of the upstream its requests go to (`RuntimeConfig::upstreams`).
    pub upstream: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    any_case_insensitive: bool,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let any_case_insensitive = routes.iter().any(|r| !r.rule.case_sensitive);
        RouteTable {
            routes,
            any_case_insensitive,
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn get(&self, idx: usize) -> Option<&Route> {
        self.routes.get(idx)
    }

    /// What the route table says of a request: the first route whose host matches `host` (as
    /// [`host::request_host`] reads it) and whose path matches the *normalised* path decides,
    /// unless it does not list one of `methods` (the request method and any method-override
    /// header) and falls through.
    pub fn find(&self, methods: &[&Method], host: Option<&str>, normalized: &str) -> Option<Found> {
        let lower;
        let folded: &str = if self.any_case_insensitive
            && normalized
                .bytes()
                .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            lower = normalized.to_lowercase();
            &lower
        } else {
            normalized
        };
        for (i, r) in self.routes.iter().enumerate() {
            if !r.rule.host_ok(host) || !r.rule.path_ok(r.rule.fold(normalized, folded)) {
                continue;
            }
            if methods.iter().all(|m| r.rule.method_ok(m)) {
                return Some(Found::Route(i));
            }
            if !r.rule.fall_through {
                return Some(Found::MethodNotAllowed(i));
            }
        }
        None
    }

    /// Routes that can never decide anything, each with the earlier route that takes all of
    /// its requests: `(later, earlier)`.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, later) in self.routes.iter().enumerate() {
            if let Some(i) = self.routes[..j]
                .iter()
                .position(|e| e.rule.covers(&later.rule))
            {
                out.push((j, i));
            }
        }
        out
    }
}

/// A route table's answer for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// This route decides.
    Route(usize),
    /// This route's path matched, but it does not list the method: `405`.
    MethodNotAllowed(usize),
}

impl Found {
    pub fn route(self) -> Option<usize> {
        match self {
            Found::Route(i) => Some(i),
            Found::MethodNotAllowed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, exact: bool, methods: &[&str], fall: bool) -> MatchRule {
        let p = crate::routing::path::normalize(pattern).unwrap();
        let methods = methods.iter().map(|m| m.parse().unwrap()).collect();
        MatchRule::new(&p, exact, methods, false, fall)
    }

    fn route(name: &str, pattern: &str, exact: bool, methods: &[&str]) -> Route {
        Route {
            name: name.into(),
            rule: rule(pattern, exact, methods, false),
            require: None,
            forward: Forward::default(),
            upstream: 0,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("signup", "/signup", true, &["GET", "POST"]),
            route("checkout", "/checkout/", false, &[]),
            route("rest", "/", false, &[]),
        ])
    }

    fn find(t: &RouteTable, m: &str, raw: &str) -> Option<String> {
        let n = crate::routing::path::normalize(raw).ok()?;
        match t.find(&[&m.parse().unwrap()], None, &n)? {
            Found::Route(i) => Some(t.routes()[i].name.clone()),
            Found::MethodNotAllowed(i) => Some(format!("405:{}", t.routes()[i].name)),
        }
    }

    #[test]
    fn first_match_wins() {
        let t = table();
        assert_eq!(find(&t, "GET", "/signup").as_deref(), Some("signup"));
        assert_eq!(find(&t, "HEAD", "/signup").as_deref(), Some("signup"));
        assert_eq!(find(&t, "PUT", "/signup").as_deref(), Some("405:signup"));
        assert_eq!(
            find(&t, "DELETE", "/signup/").as_deref(),
            Some("405:signup")
        );
        assert_eq!(find(&t, "post", "/signup").as_deref(), Some("405:signup"));
        assert_eq!(find(&t, "GET", "/checkout").as_deref(), Some("checkout"));
        assert_eq!(
            find(&t, "GET", "/checkout/pay").as_deref(),
            Some("checkout")
        );
        assert_eq!(find(&t, "GET", "/other").as_deref(), Some("rest"));
    }

    #[test]
    fn spellings_do_not_slip_past() {
        let t = table();
        for raw in [
            "/SIGNUP",
            "/SignUp/",
            "/signup//",
            "/%73ignup",
            "/signup;a=b",
            "/signup/",
            "/%53IGNUP",
            "/signup.json",
            "/SIGNUP.",
            "/signup;x.json",
        ] {
            assert_eq!(find(&t, "POST", raw).as_deref(), Some("signup"), "{raw}");
        }
        assert_eq!(find(&t, "POST", "/signup.json/x").as_deref(), Some("rest"));
        assert_eq!(find(&t, "POST", "/signupx").as_deref(), Some("rest"));
        assert_eq!(find(&t, "GET", "/CheckOut//x").as_deref(), Some("checkout"));
        assert_eq!(find(&t, "GET", "/checkouts").as_deref(), Some("checkout"));
    }

    #[test]
    fn case_sensitive_rule() {
        let t = RouteTable::new(vec![Route {
            name: "cs".into(),
            rule: MatchRule::new("/Admin", true, vec![], true, false),
            require: None,
            forward: Forward::default(),
            upstream: 0,
        }]);
        assert_eq!(
            t.find(&[&Method::GET], None, "/Admin"),
            Some(Found::Route(0))
        );
        assert_eq!(t.find(&[&Method::GET], None, "/admin"), None);
    }

    #[test]
    fn falling_through_is_opt_in() {
        let mut open = route("open-get", "/signup", true, &["GET"]);
        open.rule = rule("/signup", true, &["GET"], true);
        let t = RouteTable::new(vec![open, route("signup", "/signup", true, &["POST"])]);
        assert_eq!(find(&t, "GET", "/signup").as_deref(), Some("open-get"));
        assert_eq!(find(&t, "POST", "/signup").as_deref(), Some("signup"));
        assert_eq!(find(&t, "PUT", "/signup").as_deref(), Some("405:signup"));
        // Every method the request carries (an override header too) must be listed.
        let post = Method::POST;
        let put = Method::PUT;
        assert_eq!(
            t.find(&[&post, &put], None, "/signup"),
            Some(Found::MethodNotAllowed(1))
        );
    }

    #[test]
    fn shadowed_routes_are_found() {
        let t = RouteTable::new(vec![
            route("signup", "/signup", true, &["GET", "POST"]),
            route("signup-json", "/signup.json", true, &[]),
            route("again", "/SignUp/", true, &["PUT"]),
            route("checkout", "/checkout", false, &[]),
            route("pay", "/checkout/pay", true, &[]),
            route("pays", "/checkout/pay/", false, &[]),
            route("rest", "/", false, &[]),
            route("late", "/late", true, &[]),
            route("later", "/", false, &[]),
        ]);
        assert_eq!(
            t.shadowed(),
            vec![(1, 0), (2, 0), (4, 3), (5, 3), (7, 6), (8, 6)]
        );
        let mut get = route("get", "/signup", true, &["GET"]);
        get.rule = rule("/signup", true, &["GET"], true);
        let t = RouteTable::new(vec![get, route("post", "/signup", true, &["POST"])]);
        assert!(t.shadowed().is_empty());
    }

    fn on(r: Route, hosts: &[&str]) -> Route {
        let hosts = hosts
            .iter()
            .map(|h| HostPattern::parse(h).unwrap())
            .collect();
        Route {
            rule: r.rule.with_hosts(hosts),
            ..r
        }
    }

    #[test]
    fn hosts_choose_routes() {
        let t = RouteTable::new(vec![
            on(route("admin", "/", false, &[]), &["admin.example.com"]),
            on(route("shops", "/", false, &[]), &["*.shops.example"]),
            route("rest", "/", false, &[]),
        ]);
        let name = |host: Option<&str>| {
            t.find(&[&Method::GET], host, "/x")
                .and_then(Found::route)
                .map(|i| t.routes()[i].name.clone())
        };
        assert_eq!(name(Some("admin.example.com")).as_deref(), Some("admin"));
        assert_eq!(name(Some("ADMIN.example.com")).as_deref(), Some("admin"));
        assert_eq!(name(Some("a.shops.example")).as_deref(), Some("shops"));
        assert_eq!(name(Some("shops.example")).as_deref(), Some("rest"));
        assert_eq!(name(Some("other")).as_deref(), Some("rest"));
        assert_eq!(name(None).as_deref(), Some("rest"));
        assert!(t.shadowed().is_empty());
        // A route for any host takes what a later route for one host would.
        let t = RouteTable::new(vec![
            route("rest", "/", false, &[]),
            on(route("admin", "/", false, &[]), &["admin.example.com"]),
            on(
                route("a", "/a", true, &[]),
                &["a.example.com", "b.example.com"],
            ),
            on(route("b", "/a", true, &[]), &["b.example.com"]),
        ]);
        assert_eq!(t.shadowed(), vec![(1, 0), (2, 0), (3, 0)]);
        let t = RouteTable::new(vec![
            on(route("any", "/", false, &[]), &["*.example.com"]),
            on(
                route("a", "/a", true, &[]),
                &["a.example.com", "b.example.com"],
            ),
            on(route("c", "/a", true, &[]), &["c.example.org"]),
        ]);
        assert_eq!(t.shadowed(), vec![(1, 0)]);
    }
}
