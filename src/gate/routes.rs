//! Routes: the first rule that matches the normalised path (and method) decides.

use crate::config::Forward;
use crate::providers::ProviderId;
use http::Method;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MatchRule {
    pattern: String,
    exact: bool,
    methods: Vec<Method>,
    case_sensitive: bool,
}

impl MatchRule {
    pub fn new(pattern: &str, exact: bool, methods: Vec<Method>, case_sensitive: bool) -> Self {
        // Patterns get the same normalisation as requests; a pattern that cannot be normalised
        // (validated to start with /) falls back to its literal text.
        let mut p = super::path::normalize(pattern)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| pattern.to_string());
        if !case_sensitive {
            p = p.to_lowercase();
        }
        MatchRule {
            pattern: p,
            exact,
            methods,
            case_sensitive,
        }
    }

    fn method_ok(&self, m: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(m)
            || (m == Method::HEAD && self.methods.contains(&Method::GET))
    }

    fn path_ok(&self, path: &str) -> bool {
        if self.exact {
            path == self.pattern
        } else {
            path.starts_with(&self.pattern)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Require {
    pub providers: Vec<ProviderId>,
    pub min_age: Option<u32>,
    pub one_account_per_person: bool,
    pub max_session_age: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub rule: MatchRule,
    pub require: Option<Require>,
    pub forward: Forward,
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

    /// Index of the first route matching a *normalised* path.
    pub fn find(&self, method: &Method, normalized: &str) -> Option<usize> {
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
        self.routes.iter().position(|r| {
            let p = if r.rule.case_sensitive {
                normalized
            } else {
                folded
            };
            r.rule.path_ok(p) && r.rule.method_ok(method)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, pattern: &str, exact: bool, methods: &[&str]) -> Route {
        Route {
            name: name.into(),
            rule: MatchRule::new(
                pattern,
                exact,
                methods.iter().map(|m| m.parse().unwrap()).collect(),
                false,
            ),
            require: None,
            forward: Forward::default(),
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
        let n = crate::gate::path::normalize(raw).ok()?;
        t.find(&m.parse().unwrap(), &n)
            .map(|i| t.routes()[i].name.clone())
    }

    #[test]
    fn first_match_wins() {
        let t = table();
        assert_eq!(find(&t, "GET", "/signup").as_deref(), Some("signup"));
        assert_eq!(find(&t, "HEAD", "/signup").as_deref(), Some("signup"));
        assert_eq!(find(&t, "PUT", "/signup").as_deref(), Some("rest"));
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
            "//signup",
            "/./signup",
            "/x/../signup",
            "/%73ignup",
            "/%2573ignup",
            "/signup;a=b",
            "/signup/",
            "/%53IGNUP",
        ] {
            assert_eq!(find(&t, "POST", raw).as_deref(), Some("signup"), "{raw}");
        }
        assert_eq!(
            find(&t, "GET", "/CheckOut/%2e/x").as_deref(),
            Some("checkout")
        );
    }

    #[test]
    fn case_sensitive_rule() {
        let t = RouteTable::new(vec![Route {
            name: "cs".into(),
            rule: MatchRule::new("/Admin", true, vec![], true),
            require: None,
            forward: Forward::default(),
        }]);
        assert_eq!(t.find(&Method::GET, "/Admin"), Some(0));
        assert_eq!(t.find(&Method::GET, "/admin"), None);
    }
}
