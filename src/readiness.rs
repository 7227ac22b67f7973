//! What `/readyz` reports and the rule it answers by.
//!
//! The instance is ready while its store answers and at least one upstream that a route sends
//! requests to has an address. One app whose upstream has none (a misspelled name, an app not
//! deployed yet) is reported, and its own endpoint `/readyz/upstream/<name>` answers 503, but it
//! does not take the other apps out of a load balancer. Providers' credentials are reported
//! (see `live::probe`), never a reason to drain: every instance shares them, so draining one
//! helps no shopper.

use crate::live::probe::{Board, Outcome};
use crate::live::Live;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamReadiness {
    pub name: String,
    pub ready: bool,
    /// Some route sends requests here (an unused upstream never decides readiness).
    pub in_use: bool,
    pub addresses: usize,
    pub set_aside: usize,
    /// `(entry, why)` of each name whose last resolution failed.
    pub not_resolving: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderReadiness {
    pub provider: &'static str,
    /// `ok`, `failing`, `unchecked` (not tried yet) or `no_call` (nothing to try).
    pub credentials: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub store: StoreReadiness,
    pub upstreams: Vec<UpstreamReadiness>,
    pub providers: Vec<ProviderReadiness>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreReadiness {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every upstream's readiness, in config order.
pub fn upstreams(live: &Live) -> Vec<UpstreamReadiness> {
    let routes = live.cfg.routes.routes();
    live.pools()
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let s = p.status();
            UpstreamReadiness {
                ready: s.ready(),
                in_use: routes.is_empty() || routes.iter().any(|r| r.upstream == k),
                name: s.name,
                addresses: s.addresses,
                set_aside: s.ejected,
                not_resolving: s.failing,
            }
        })
        .collect()
}

/// Every configured provider's credential state for `/readyz`.
pub fn providers(board: Option<&Board>, live: &Live) -> Vec<ProviderReadiness> {
    live.flows()
        .iter()
        .map(|f| {
            let (credentials, detail) =
                match (f.as_ref().has_probe(), board.and_then(|b| b.outcome(f))) {
                    (false, _) => (
                        "no_call",
                        Some("this provider has no call to try credentials with".to_string()),
                    ),
                    (true, None) => ("unchecked", None),
                    (true, Some(Outcome::Ok)) => ("ok", None),
                    (true, Some(Outcome::Failing { error, failures })) => {
                        ("failing", Some(format!("{error} ({failures} tries)")))
                    }
                };
            ProviderReadiness {
                provider: f.id().as_str(),
                credentials,
                detail,
            }
        })
        .collect()
}

/// The instance's readiness: the store answers and an upstream in use has an address.
pub fn assess(
    store: Result<(), String>,
    upstreams: Vec<UpstreamReadiness>,
    providers: Vec<ProviderReadiness>,
) -> Readiness {
    let any_upstream = upstreams.iter().any(|u| u.in_use && u.ready);
    Readiness {
        ready: store.is_ok() && any_upstream,
        store: StoreReadiness {
            ok: store.is_ok(),
            error: store.err(),
        },
        upstreams,
        providers,
    }
}

impl Readiness {
    /// The plain-text body: `ready` or `not ready` (or `store: ...`), then one line per
    /// upstream and per provider.
    pub fn text(&self) -> String {
        let mut out = match (&self.store.error, self.ready) {
            (Some(e), _) => format!("store: {e}\n"),
            (None, true) => "ready\n".to_string(),
            (None, false) => "not ready\n".to_string(),
        };
        for u in &self.upstreams {
            out.push_str(&u.line());
            out.push('\n');
        }
        for p in &self.providers {
            out.push_str(&format!(
                "provider {}: credentials {}",
                p.provider, p.credentials
            ));
            if let Some(d) = &p.detail {
                out.push_str(&format!(" ({d})"));
            }
            out.push('\n');
        }
        out
    }
}

impl UpstreamReadiness {
    fn line(&self) -> String {
        let mut out = format!(
            "upstream {}: {} address{}",
            self.name,
            self.addresses,
            if self.addresses == 1 { "" } else { "es" }
        );
        if self.set_aside > 0 {
            out.push_str(&format!(
                ", {} set aside after failed connects",
                self.set_aside
            ));
        }
        for (name, why) in &self.not_resolving {
            out.push_str(&format!("; {name} does not resolve ({why})"));
            if self.addresses > 0 {
                out.push_str(", last good addresses kept");
            }
        }
        if !self.ready {
            out.push_str(" (not ready)");
        }
        if !self.in_use {
            out.push_str(" (no route uses it)");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str, ready: bool, in_use: bool) -> UpstreamReadiness {
        UpstreamReadiness {
            name: name.into(),
            ready,
            in_use,
            addresses: usize::from(ready),
            set_aside: 0,
            not_resolving: vec![],
        }
    }

    #[test]
    fn one_app_without_addresses_does_not_drain_the_others() {
        let r = assess(
            Ok(()),
            vec![up("shop", true, true), up("blog", false, true)],
            vec![],
        );
        assert!(r.ready);
        assert!(r.text().contains("upstream blog: 0 addresses (not ready)"));
        // None in use ready: not ready; an unused upstream's addresses do not count.
        let r = assess(
            Ok(()),
            vec![up("spare", true, false), up("blog", false, true)],
            vec![],
        );
        assert!(!r.ready);
        assert!(r.text().starts_with("not ready\n"));
        // The store decides for everyone.
        let r = assess(Err("down".into()), vec![up("shop", true, true)], vec![]);
        assert!(!r.ready);
        assert!(r.text().starts_with("store: down\n"));
    }
}
