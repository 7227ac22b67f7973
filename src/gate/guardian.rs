//! The gate's part of guardian consent (`require.guardian_consent`): whether a verified person
//! is a child on this route, and if so whether the store holds a guardian's consent for this
//! child on this route. Only guardian-consent routes call it, and only for people the rule
//! makes children ask the store: everyone else pays nothing. The pages and the consent itself
//! are `providers::guardian`.

use super::headers::GuardianConsent;
use crate::answers::Refusal;
use crate::routing::{GuardianRule, Route};
use crate::session::Claims;
use crate::store::{ConsentRecord, Store};

/// What the rule makes of a verified person on a guardian-consent route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a child here: on as anyone.
    NotChild,
    /// A child with a guardian's consent for this route (the latest): on, with it.
    Consented(GuardianConsent),
    /// A child without one: held, and sent to the handover page.
    Held,
    /// Refused: the age is not verified (`age_unknown`), the child has no person id to bind a
    /// consent to (`ci_unavailable`), or the store cannot say (`store_unavailable`).
    Refused(Refusal),
}

/// Whether `claims` is a child under `rule` on `today`, as far as the session can tell: `None`
/// when its birth date is missing or not verified (ifree's is self-asserted).
pub fn is_child(rule: &GuardianRule, claims: &Claims, today: chrono::NaiveDate) -> Option<bool> {
    let birth = claims.birth.filter(|_| claims.provider.verifies_birth())?;
    Some(rule.is_child(birth, today))
}

/// The consent that admits this child on `route`: the latest one for this very child (never
/// another's), this route and the text version in force.
fn fitting<'a>(
    records: &'a [ConsentRecord],
    child: &str,
    route: &str,
    version: &str,
) -> Option<&'a ConsentRecord> {
    records
        .iter()
        .filter(|r| r.child == child && r.route == route && r.text_version == version)
        .max_by_key(|r| r.at_ms)
}

/// The guardian's fields of consent `c`, taken (once) from the store when the route forwards
/// them and `take` (a state-changing request: the signup itself). None: the store failed.
async fn with_fields(
    store: &dyn Store,
    keys: &crate::session::Keyring,
    route: &Route,
    mut c: GuardianConsent,
    take: bool,
) -> Option<GuardianConsent> {
    if !(take && route.forward.guardian()) {
        return Some(c);
    }
    let key = crate::session::GuardianFields::key(&c.id);
    match store.take_request(&key).await {
        Ok(Some(sealed)) => {
            let fields = keys
                .open_bytes(
                    crate::session::Purpose::GuardianFields,
                    key.as_bytes(),
                    &sealed,
                )
                .ok()
                .and_then(|p| serde_json::from_slice::<crate::session::GuardianFields>(&p).ok());
            if let Some(f) = fields {
                c.name = f.name.filter(|_| route.forward.guardian_name);
                c.birth = f.birth.filter(|_| route.forward.guardian_birth);
            }
            Some(c)
        }
        // Taken by an earlier request, or past the link's life: the consent alone.
        Ok(None) => Some(c),
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "store unavailable: a guardian's fields cannot be taken; failing closed");
            None
        }
    }
}

/// The consent of record `r`, with the guardian's fields when they go upstream now.
async fn consented(
    store: &dyn Store,
    keys: &crate::session::Keyring,
    route: &Route,
    r: &ConsentRecord,
    take: bool,
) -> Option<GuardianConsent> {
    let c = GuardianConsent {
        id: r.id.clone(),
        at: r.at_ms.div_euclid(1000),
        name: None,
        birth: None,
    };
    with_fields(store, keys, route, c, take).await
}

/// The rule of `route` (which has a guardian rule) applied to a verified person. `keys`: the
/// kept requests' (a guardian's fields are sealed under them); `take`: a state-changing
/// request, which takes the guardian's fields the route forwards.
pub async fn check(
    store: &dyn Store,
    keys: &crate::session::Keyring,
    route: &Route,
    rule: &GuardianRule,
    claims: &Claims,
    today: chrono::NaiveDate,
    take: bool,
) -> Outcome {
    match is_child(rule, claims, today) {
        None => return Outcome::Refused(Refusal::AgeUnknown),
        Some(false) => return Outcome::NotChild,
        Some(true) => {}
    }
    let Some(child) = crate::providers::guardian::child_of(claims) else {
        return Outcome::Refused(Refusal::CiUnavailable);
    };
    match store.consents_of(child).await {
        Ok(records) => match fitting(&records, child, &route.name, &rule.text_version) {
            Some(r) => match consented(store, keys, route, r, take).await {
                Some(c) => Outcome::Consented(c),
                None => Outcome::Refused(Refusal::StoreUnavailable),
            },
            None => Outcome::Held,
        },
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "store unavailable: a child's guardian consent cannot be read; failing closed");
            Outcome::Refused(Refusal::StoreUnavailable)
        }
    }
}

/// What the rule makes of a person without a session on a route whose children state a birth
/// date (`children: stated_birth_date`), from their stated child's cookie (opened: sealed by
/// these keys, live, for this host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stated {
    /// No stated birth date yet: the birth-date page.
    Ask,
    /// Not (or no longer) a child by the stated date: the normal verification.
    Verify,
    /// A stated child with their guardian's consent: on, with it (and nothing else).
    Consented(GuardianConsent),
    /// A stated child without one: held (their id).
    Held(String),
    /// The store cannot say.
    Refused(Refusal),
}

pub async fn stated(
    store: &dyn Store,
    keys: &crate::session::Keyring,
    route: &Route,
    rule: &GuardianRule,
    child: Option<crate::session::StatedChild>,
    today: chrono::NaiveDate,
    take: bool,
) -> Stated {
    let Some(child) = child else {
        return Stated::Ask;
    };
    if !rule.is_child(child.birth, today) {
        return Stated::Verify;
    }
    match store.consents_of(&child.id).await {
        Ok(records) => match fitting(&records, &child.id, &route.name, &rule.text_version) {
            Some(r) => match consented(store, keys, route, r, take).await {
                Some(c) => Stated::Consented(c),
                None => Stated::Refused(Refusal::StoreUnavailable),
            },
            None => Stated::Held(child.id),
        },
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "store unavailable: a child's guardian consent cannot be read; failing closed");
            Stated::Refused(Refusal::StoreUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{AgeRule, ProviderId};
    use crate::routing::Children;
    use chrono::NaiveDate;
    use std::time::Duration;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn rule(under: u32, age_rule: AgeRule) -> GuardianRule {
        GuardianRule {
            under,
            age_rule,
            children: Children::Verified,
            text_version: "v1".into(),
            text: ("ko".into(), "en".into()),
            link_ttl: Duration::from_secs(600),
        }
    }

    fn claims(provider: ProviderId, birth: Option<NaiveDate>) -> Claims {
        Claims {
            unique_in_site: "DI".into(),
            ci_hash: "H".into(),
            birth,
            provider,
            verified_at: 0,
            issued_at: 0,
            expires_at: 1,
            name: None,
            gender: None,
            phone: None,
            foreigner: None,
            carrier: None,
            method: String::new(),
            countries: Vec::new(),
            host: None,
            host_only: false,
            kept: None,
        }
    }

    #[test]
    fn under_14_by_the_birthday_the_eve_and_the_day() {
        let r = rule(14, AgeRule::Birthday);
        let born = d(2012, 6, 15);
        assert!(r.is_child(born, d(2026, 6, 14)), "the eve of 14: a child");
        assert!(!r.is_child(born, d(2026, 6, 15)), "the 14th birthday: not");
        assert!(
            r.is_child(born, d(2026, 1, 1)),
            "the year of 14, before: a child"
        );
    }

    #[test]
    fn a_leap_day_birthday_is_reached_on_1_march_in_common_years() {
        let r = rule(14, AgeRule::Birthday);
        let leap = d(2012, 2, 29);
        assert!(r.is_child(leap, d(2026, 2, 28)), "2026 has no 29 February");
        assert!(!r.is_child(leap, d(2026, 3, 1)));
        // In a leap year, on the day itself.
        let r16 = rule(16, AgeRule::Birthday);
        assert!(r16.is_child(leap, d(2028, 2, 28)));
        assert!(!r16.is_child(leap, d(2028, 2, 29)));
    }

    #[test]
    fn youth_act_counts_the_year_of_birth() {
        let r = rule(18, AgeRule::YouthAct);
        let born = d(2008, 12, 31);
        assert!(r.is_child(born, d(2025, 12, 31)));
        assert!(!r.is_child(born, d(2026, 1, 1)), "18 from 1 January");
    }

    #[test]
    fn a_guardian_is_an_adult_from_the_19th_birthday() {
        let born = d(2007, 6, 15);
        assert!(!crate::routing::adult(born, d(2026, 6, 14)));
        assert!(crate::routing::adult(born, d(2026, 6, 15)));
        // Turning 19 this year is not enough before the birthday (no youth_act here).
        assert!(!crate::routing::adult(d(2007, 12, 31), d(2026, 1, 1)));
        let leap = d(2008, 2, 29);
        assert!(!crate::routing::adult(leap, d(2027, 2, 28)));
        assert!(crate::routing::adult(leap, d(2027, 3, 1)));
    }

    #[test]
    fn an_unverified_birth_date_is_no_age() {
        let r = rule(14, AgeRule::Birthday);
        let today = d(2026, 6, 1);
        assert_eq!(
            is_child(&r, &claims(ProviderId::Ifree, Some(d(2015, 1, 1))), today),
            None
        );
        assert_eq!(
            is_child(&r, &claims(ProviderId::Iamport, None), today),
            None
        );
        assert_eq!(
            is_child(&r, &claims(ProviderId::Iamport, Some(d(2015, 1, 1))), today),
            Some(true)
        );
    }

    fn rec(id: &str, child: &str, route: &str, version: &str, at_ms: i64) -> ConsentRecord {
        ConsentRecord {
            id: id.into(),
            child: child.into(),
            child_stated_birth: None,
            guardian: "G".into(),
            provider: "iamport".into(),
            stated_relation: Some("parent".into()),
            route: route.into(),
            text_version: version.into(),
            at_ms,
        }
    }

    #[test]
    fn a_consent_is_this_childs_on_this_route_for_this_text() {
        let records = vec![
            rec("a", "A", "signup", "v1", 1),
            rec("b", "B", "signup", "v1", 2),
            rec("c", "A", "other", "v1", 3),
            rec("d", "A", "signup", "v0", 4),
            rec("e", "A", "signup", "v1", 5),
        ];
        assert_eq!(
            fitting(&records, "A", "signup", "v1").map(|r| r.id.as_str()),
            Some("e")
        );
        assert!(fitting(&records, "C", "signup", "v1").is_none());
        assert!(fitting(&records, "B", "other", "v1").is_none());
        assert!(fitting(&records, "A", "signup", "v2").is_none());
    }
}
