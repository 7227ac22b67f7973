//! The gate's decision for a request already matched to a route: a pure function of the route,
//! the person behind the session (if any), the time and whether the request changes state.
//! `request_filter` carries it out (answers, reserves, remembers the identity for the headers);
//! each rule is unit-tested here.

use super::headers::Verified;
use crate::answers::{Refusal, Why};
use crate::routing::Route;

/// What the gate does with a request on its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The route has no `require`: upstream as it is, with no identity.
    Open,
    /// No acceptable session (missing, from a provider the route does not accept, or older
    /// than its `max_session_age`): the person is sent to verify, told why when they had one.
    Verify(Option<Why>),
    /// Refused: `Underage` (under the route's `min_age`), `AgeUnknown` (a `min_age` route and
    /// a birth date that is unknown, or self-asserted: ifree's `ubifill` is written by the
    /// member's own client), `KoreanNational` (a TomoIDV session of a person with a CI, on a
    /// route that accepts a CI provider).
    Refuse(Refusal),
    /// Upstream with the person's identity. `reserve`: a state-changing request on a
    /// one-account route, which must first reserve the person for the route.
    Admit { age_ok: Option<bool>, reserve: bool },
}

/// Decide for `route`, given the opened session (`None`: none, or not valid), the time
/// (UNIX seconds), the route's "today" for the age rule, and whether any method of the
/// request changes state.
pub fn decide(
    route: &Route,
    verified: Option<&Verified>,
    now: i64,
    today: impl FnOnce() -> chrono::NaiveDate,
    state_changing: bool,
) -> Decision {
    let Some(req) = &route.require else {
        return Decision::Open;
    };
    let Some(v) = verified else {
        return Decision::Verify(None);
    };
    if !req.providers.contains(&v.provider()) {
        return Decision::Verify(Some(Why::OtherProvider));
    }
    if let Some(max) = req
        .max_session_age
        .filter(|max| now - v.claims.verified_at > max.as_secs() as i64)
    {
        return Decision::Verify(Some(Why::TooOld(max)));
    }
    // A Korean national's TomoIDV result where a CI provider is accepted: a second identity.
    if v.has_ci
        && req
            .providers
            .iter()
            .any(|p| p.namespace() == crate::identity::Namespace::Ci)
    {
        return Decision::Refuse(Refusal::KoreanNational);
    }
    // A route that tells people apart needs the person: a result without a CI (KG이니시스
    // 통합인증 with Kakao, say) cannot hold one account per person.
    if req.one_account_per_person && v.claims.ci_hash.is_empty() {
        return Decision::Refuse(Refusal::CiUnavailable);
    }
    let trusted_birth = v.trusted_birth();
    let age_ok = match (req.min_age, trusted_birth) {
        (None, _) => None,
        (Some(_), None) => return Decision::Refuse(Refusal::AgeUnknown),
        (Some(min), Some(birth)) => {
            if !req.age_rule.admits(min, birth, today()) {
                return Decision::Refuse(Refusal::Underage);
            }
            Some(true)
        }
    };
    Decision::Admit {
        age_ok,
        reserve: req.one_account_per_person && state_changing,
    }
}

/// Decide for an age-only route (`require.age_status`) given an opened age status that is
/// not revoked and was issued on this host: the provider must be one the route accepts, the
/// verification no older than `max_session_age` nor than `ttl` (`session.age_status_ttl` now:
/// a shorter one applies at once), and the route's age rule is re-evaluated from the birth
/// year on `today`. A year that does not settle it (the `birthday` rule in the year of turning
/// `min_age`) sends the person to verify; one that settles it against them is `Underage`.
pub fn decide_age_status(
    route: &Route,
    status: &crate::session::AgeClaims,
    now: i64,
    ttl: std::time::Duration,
    today: impl FnOnce() -> chrono::NaiveDate,
) -> Decision {
    let Some(req) = route.require.as_ref().filter(|r| r.age_status) else {
        return Decision::Verify(None);
    };
    let age = now - status.verified_at;
    if !req.providers.contains(&status.provider) || !status.provider.verifies_birth() {
        return Decision::Verify(Some(Why::OtherProvider));
    }
    if age >= ttl.as_secs() as i64 {
        return Decision::Verify(None);
    }
    if let Some(max) = req.max_session_age.filter(|max| age > max.as_secs() as i64) {
        return Decision::Verify(Some(Why::TooOld(max)));
    }
    let Some(min) = req.min_age else {
        return Decision::Verify(None);
    };
    match req.age_rule.admits_year(min, status.birth_year, today()) {
        Some(true) => Decision::Admit {
            age_ok: Some(true),
            reserve: false,
        },
        Some(false) => Decision::Refuse(Refusal::Underage),
        None => Decision::Verify(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Forward;
    use crate::identity::ProviderId;
    use crate::routing::{MatchRule, Require};
    use crate::session::Claims;
    use chrono::NaiveDate;
    use std::time::Duration;

    const NOW: i64 = 1_800_000_000;

    fn route(require: Option<Require>) -> Route {
        Route {
            name: "r".into(),
            rule: MatchRule::new("/r", true, vec![], false, false),
            require,
            forward: Forward::default(),
            upstream: 0,
        }
    }

    fn require() -> Require {
        Require {
            providers: vec![ProviderId::Iamport],
            min_age: None,
            age_rule: crate::identity::AgeRule::Birthday,
            one_account_per_person: false,
            commit_on: Default::default(),
            max_session_age: None,
            rejoin_after: None,
            keep: None,
            on_duplicate: None,
            age_status: false,
            guardian: None,
        }
    }

    fn person(provider: ProviderId, birth: Option<&str>, verified_ago: i64) -> Verified {
        let claims = Claims {
            unique_in_site: "DI".into(),
            ci_hash: "H".into(),
            birth: birth.map(|b| NaiveDate::parse_from_str(b, "%Y-%m-%d").unwrap()),
            provider,
            verified_at: NOW - verified_ago,
            issued_at: NOW - verified_ago,
            expires_at: NOW + 3600,
            name: None,
            gender: None,
            phone: None,
            countries: Vec::new(),
            foreigner: None,
            carrier: None,
            method: String::new(),
            host: Some("shop.example".into()),
            host_only: false,
            kept: None,
        };
        Verified::new(claims)
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, 1).unwrap()
    }

    fn status(provider: ProviderId, year: i32, verified_ago: i64) -> crate::session::AgeClaims {
        crate::session::AgeClaims {
            birth_year: year,
            provider,
            verified_at: NOW - verified_ago,
            issued_at: NOW - verified_ago,
            expires_at: NOW + 3600,
            host: Some("shop.example".into()),
            person_ids: Vec::new(),
        }
    }

    #[test]
    fn an_age_status_is_re_evaluated_by_its_year_on_the_day_of_use() {
        const YEAR: Duration = Duration::from_secs(365 * 86400);
        let mut q = require();
        q.min_age = Some(19);
        q.age_rule = crate::identity::AgeRule::YouthAct;
        q.age_status = true;
        let youth = route(Some(q.clone()));
        let admit = Decision::Admit {
            age_ok: Some(true),
            reserve: false,
        };
        // today() is 2027-03-01: born in 2008, of age under the Act whatever the birthday
        // (a status issued last year, at 18, passes now); born in 2009, not yet.
        let s = status(ProviderId::Iamport, 2008, 200 * 86400);
        assert_eq!(decide_age_status(&youth, &s, NOW, YEAR, today), admit);
        let minor = status(ProviderId::Iamport, 2009, 0);
        assert_eq!(
            decide_age_status(&youth, &minor, NOW, YEAR, today),
            Decision::Refuse(Refusal::Underage)
        );
        // Under the birthday rule the year of turning 19 is not settled: verify again.
        let mut b = q.clone();
        b.age_rule = crate::identity::AgeRule::Birthday;
        let birthday = route(Some(b));
        assert_eq!(
            decide_age_status(&birthday, &s, NOW, YEAR, today),
            Decision::Verify(None)
        );
        let older = status(ProviderId::Iamport, 2007, 0);
        assert_eq!(
            decide_age_status(&birthday, &older, NOW, YEAR, today),
            admit
        );
        // Past the ttl of now (however long it was issued for), past max_session_age, from a
        // provider the route does not take or whose birth dates are self-asserted: verify.
        let old = status(ProviderId::Iamport, 1990, 366 * 86400);
        assert_eq!(
            decide_age_status(&youth, &old, NOW, YEAR, today),
            Decision::Verify(None)
        );
        let day = Duration::from_secs(86400);
        let recent = status(ProviderId::Iamport, 1990, 86400);
        assert_eq!(
            decide_age_status(&youth, &recent, NOW, day, today),
            Decision::Verify(None)
        );
        let mut strict = q.clone();
        strict.max_session_age = Some(Duration::from_secs(600));
        let strict = route(Some(strict));
        assert_eq!(
            decide_age_status(&strict, &recent, NOW, YEAR, today),
            Decision::Verify(Some(Why::TooOld(Duration::from_secs(600))))
        );
        let fresh = status(ProviderId::Iamport, 1990, 600);
        assert_eq!(decide_age_status(&strict, &fresh, NOW, YEAR, today), admit);
        let portone = status(ProviderId::Portone, 1990, 0);
        assert_eq!(
            decide_age_status(&youth, &portone, NOW, YEAR, today),
            Decision::Verify(Some(Why::OtherProvider))
        );
        let mut with_ifree = q.clone();
        with_ifree.providers.push(ProviderId::Ifree);
        let ifree = status(ProviderId::Ifree, 1990, 0);
        assert_eq!(
            decide_age_status(&route(Some(with_ifree)), &ifree, NOW, YEAR, today),
            Decision::Verify(Some(Why::OtherProvider))
        );
        // A route that does not take age statuses never admits one.
        q.age_status = false;
        assert_eq!(
            decide_age_status(&route(Some(q)), &fresh, NOW, YEAR, today),
            Decision::Verify(None)
        );
    }

    #[test]
    fn a_route_without_require_is_open_to_anyone() {
        let adult = person(ProviderId::Iamport, Some("1990-01-01"), 0);
        for v in [None, Some(&adult)] {
            for changing in [false, true] {
                assert_eq!(
                    decide(&route(None), v, NOW, today, changing),
                    Decision::Open
                );
            }
        }
    }

    #[test]
    fn no_session_or_another_provider_or_too_old_is_sent_to_verify() {
        let mut r = require();
        r.max_session_age = Some(Duration::from_secs(600));
        let r = route(Some(r));
        assert_eq!(decide(&r, None, NOW, today, false), Decision::Verify(None));
        let tomo = person(ProviderId::Tomo, Some("1990-01-01"), 0);
        assert_eq!(
            decide(&r, Some(&tomo), NOW, today, false),
            Decision::Verify(Some(Why::OtherProvider))
        );
        let old = person(ProviderId::Iamport, Some("1990-01-01"), 601);
        assert_eq!(
            decide(&r, Some(&old), NOW, today, false),
            Decision::Verify(Some(Why::TooOld(Duration::from_secs(600))))
        );
        let fresh = person(ProviderId::Iamport, Some("1990-01-01"), 600);
        assert!(matches!(
            decide(&r, Some(&fresh), NOW, today, false),
            Decision::Admit { .. }
        ));
    }

    #[test]
    fn the_age_rule_counts_the_birthday_and_leap_days() {
        let mut r = require();
        r.min_age = Some(19);
        let r = route(Some(r));
        for (birth, want) in [
            (
                "2008-03-01",
                Decision::Admit {
                    age_ok: Some(true),
                    reserve: false,
                },
            ),
            ("2008-03-02", Decision::Refuse(Refusal::Underage)),
            // 29 February counts from 1 March in a common year.
            (
                "2008-02-29",
                Decision::Admit {
                    age_ok: Some(true),
                    reserve: false,
                },
            ),
        ] {
            let p = person(ProviderId::Iamport, Some(birth), 0);
            assert_eq!(decide(&r, Some(&p), NOW, today, false), want, "{birth}");
        }
        // An unknown birth date never passes a min_age route; nor does ifree's, which the
        // member's own client writes.
        let p = person(ProviderId::Iamport, None, 0);
        assert_eq!(
            decide(&r, Some(&p), NOW, today, false),
            Decision::Refuse(Refusal::AgeUnknown)
        );
        let mut r_if = require();
        r_if.min_age = Some(19);
        r_if.providers.push(ProviderId::Ifree);
        let r_if = route(Some(r_if));
        let member = person(ProviderId::Ifree, Some("1990-01-01"), 0);
        assert_eq!(
            decide(&r_if, Some(&member), NOW, today, false),
            Decision::Refuse(Refusal::AgeUnknown)
        );
        // No min_age: no age header, and "today" is never asked for.
        let p = person(ProviderId::Iamport, Some("2020-01-01"), 0);
        let no_age = route(Some(require()));
        let never = || -> NaiveDate { panic!("today asked for without min_age") };
        assert_eq!(
            decide(&no_age, Some(&p), NOW, never, false),
            Decision::Admit {
                age_ok: None,
                reserve: false
            }
        );
    }

    #[test]
    fn the_youth_act_rule_counts_the_year_only() {
        let mut r = require();
        r.min_age = Some(19);
        r.age_rule = crate::identity::AgeRule::YouthAct;
        let r = route(Some(r));
        let admit = Decision::Admit {
            age_ok: Some(true),
            reserve: false,
        };
        // today() is 2027-03-01: everyone born in 2008 is of age, the birthday to come or not.
        for (birth, want) in [
            ("2008-12-31", admit),
            ("2008-03-02", admit),
            ("2008-01-01", admit),
            ("2009-01-01", Decision::Refuse(Refusal::Underage)),
        ] {
            let p = person(ProviderId::Iamport, Some(birth), 0);
            assert_eq!(decide(&r, Some(&p), NOW, today, false), want, "{birth}");
        }
    }

    #[test]
    fn a_one_account_route_refuses_a_person_without_a_ci_others_take_them() {
        let mut no_ci = person(ProviderId::Iamport, Some("1990-01-01"), 0);
        no_ci.claims.ci_hash = String::new();
        let mut one = require();
        one.one_account_per_person = true;
        let one = route(Some(one));
        for changing in [false, true] {
            assert_eq!(
                decide(&one, Some(&no_ci), NOW, today, changing),
                Decision::Refuse(Refusal::CiUnavailable)
            );
        }
        let mut adult = require();
        adult.min_age = Some(19);
        adult.age_rule = crate::identity::AgeRule::YouthAct;
        assert_eq!(
            decide(&route(Some(adult)), Some(&no_ci), NOW, today, true),
            Decision::Admit {
                age_ok: Some(true),
                reserve: false
            }
        );
    }

    #[test]
    fn only_a_state_changing_request_on_a_one_account_route_reserves() {
        let mut one = require();
        one.one_account_per_person = true;
        let one = route(Some(one));
        let plain = route(Some(require()));
        let p = person(ProviderId::Iamport, None, 0);
        let admit = |reserve| Decision::Admit {
            age_ok: None,
            reserve,
        };
        assert_eq!(decide(&one, Some(&p), NOW, today, true), admit(true));
        assert_eq!(decide(&one, Some(&p), NOW, today, false), admit(false));
        assert_eq!(decide(&plain, Some(&p), NOW, today, true), admit(false));
    }

    #[test]
    fn a_korean_nationals_tomoidv_session_is_refused_where_a_ci_provider_is_accepted() {
        let mut korean = person(ProviderId::Tomo, Some("1990-01-01"), 0);
        korean.has_ci = true;
        let foreign = person(ProviderId::Tomo, Some("1990-01-01"), 0);
        let admit = Decision::Admit {
            age_ok: None,
            reserve: false,
        };
        for ci in [ProviderId::Iamport, ProviderId::Portone] {
            let mut mixed = require();
            mixed.providers = vec![ci, ProviderId::Tomo];
            let mixed = route(Some(mixed));
            for changing in [false, true] {
                assert_eq!(
                    decide(&mixed, Some(&korean), NOW, today, changing),
                    Decision::Refuse(Refusal::KoreanNational),
                    "{ci:?}"
                );
            }
            assert_eq!(decide(&mixed, Some(&foreign), NOW, today, false), admit);
        }
        // Where TomoIDV is the only way in, the rule has nothing to protect.
        let mut tomo_only = require();
        tomo_only.providers = vec![ProviderId::Tomo, ProviderId::Ifree];
        let tomo_only = route(Some(tomo_only));
        assert_eq!(decide(&tomo_only, Some(&korean), NOW, today, false), admit);
    }
}
