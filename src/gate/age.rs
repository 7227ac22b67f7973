//! Age-only routes (`require.age_status`): a route that needs to know a person's age and
//! nothing else takes a session or an age status, and tells the app only that the age rule
//! admits the person and when their age was verified (`X-Verified-Age-Ok`,
//! `X-Verified-Age-Checked-At`).
//!
//! The age status is a cookie of its own (`crate::cookies`, `<cookie>_age`), sealed with the
//! session keys under a purpose of its own ([`crate::session::AgeClaims`]): the birth year,
//! the provider, when it verified, the host, and the person's revocation ids. It is issued
//! here, on an age-only route, to a session that passes the route's age rule, and lasts
//! `session.age_status_ttl` from that verification. Logout revokes it (its id) and an erasure
//! too (the person's ids); it opens on the host it was issued on only.
//!
//! Routes without `age_status` never come here: their cost is the one flag read in `check`
//! (and one more name compared per cookie when verigate's cookies are stripped).

use super::headers::AgeOnly;
use super::{decide, refuse, session_refusal, Ctx, Gate, Live};
use crate::live::sessions::Verified;
use crate::session::{AgeClaims, Purpose};
use pingora::proxy::Session;
use pingora::Result;
use std::time::Instant;

impl Gate {
    /// [`Gate::check`] for an age-only route: a session the route's rules admit, else an age
    /// status they admit, else the way to verify.
    pub(super) async fn check_age_only(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &crate::routing::Route,
        state_changing: bool,
    ) -> Result<bool> {
        let cfg = &live.cfg;
        let s = &cfg.session;
        let now = crate::clock::unix_secs_at(ctx.started.unwrap_or_else(Instant::now));
        let mut reissue = Vec::new();
        // Both cookies read from the header parsed once (`gatekeep`), and verigate's dropped,
        // as for other routes.
        let jar = ctx
            .jar
            .get_or_insert_with(|| crate::cookies::Jar::parse(&session.req_header().headers, s));
        let opened = self.open_session(live, jar, now, &mut reissue);
        let status = jar.age().and_then(|a| self.open_status(live, a, now));
        jar.strip(session.req_header_mut());
        // Each opens only on the host it was issued on.
        let host = crate::routing::host::request_host(session.req_header());
        let opened = opened.filter(|v| v.claims.for_host(host));
        let status = status.filter(|st| st.for_host(host));
        if opened.is_some() {
            ctx.reissue = reissue;
        }
        ctx.cookies_stripped = true;
        ctx.body_done = session.is_body_empty();
        let today = || crate::clock::today(cfg.timezone, now);
        let mut why = None;
        if let Some(v) = &opened {
            match decide::decide(route, Some(v), now, today, state_changing) {
                decide::Decision::Admit { .. } | decide::Decision::Open => {
                    if let Some(c) = mint(live, v, status.as_ref(), now) {
                        ctx.reissue.push(c);
                    }
                    ctx.age_session = Some(v.clone());
                    return Ok(pass(ctx, v.claims.verified_at, v.claims.provider));
                }
                decide::Decision::Refuse(r) => {
                    let p = session_refusal(session, cfg, route, r);
                    return refuse(session, ctx, p).await;
                }
                // Not this route's session (another provider, too old): the status may do.
                decide::Decision::Verify(w) => why = why.or(w),
            }
        }
        if let (Some(st), Some(ttl)) = (&status, s.age_status_ttl) {
            match decide::decide_age_status(route, st, now, ttl, today) {
                decide::Decision::Admit { .. } | decide::Decision::Open => {
                    return Ok(pass(ctx, st.verified_at, st.provider));
                }
                decide::Decision::Refuse(r) => {
                    let p = session_refusal(session, cfg, route, r);
                    return refuse(session, ctx, p).await;
                }
                decide::Decision::Verify(w) => why = why.or(w),
            }
        }
        self.send_to_verify(live, session, ctx, route, why).await
    }

    /// The age status in `cookie`, if it opens, has not expired and is not revoked (by a
    /// logout, or with its person). None whenever `session.age_status_ttl` is unset.
    fn open_status(&self, live: &Live, cookie: &str, now: i64) -> Option<AgeClaims> {
        let s = &live.cfg.session;
        s.age_status_ttl?;
        let st = s.keys.open_age_status(cookie, now).ok()?;
        // Nothing revoked anywhere (the common case): no id to compute.
        if self.revoked.any()
            && (self
                .revoked
                .contains(&crate::live::age_status_id(&s.hash_key, cookie))
                || self.revoked.person_revoked(&st.person_ids, st.issued_at))
        {
            return None;
        }
        Some(st)
    }
}

/// Let the request through with the age headers only.
fn pass(ctx: &mut Ctx, checked_at: i64, provider: crate::identity::ProviderId) -> bool {
    ctx.age_only = Some(AgeOnly {
        checked_at,
        provider,
    });
    ctx.decision = "passed";
    false
}

/// The `Set-Cookie` of a fresh age status for a session that just passed an age-only route,
/// unless the browser holds one as recent already. None when age statuses are off, for a
/// birth date the provider did not verify, for a TomoIDV session of a person with a CI (the
/// status could not be refused where a CI provider is accepted), or when the verification
/// is already older than `session.age_status_ttl`.
fn mint(live: &Live, v: &Verified, held: Option<&AgeClaims>, now: i64) -> Option<String> {
    use chrono::Datelike;
    let s = &live.cfg.session;
    let ttl = s.age_status_ttl?;
    let c = &v.claims;
    if v.has_ci || !c.provider.verifies_birth() {
        return None;
    }
    let birth = c.birth?;
    if held.is_some_and(|h| h.verified_at >= c.verified_at) {
        return None;
    }
    let expires_at = c
        .verified_at
        .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    if expires_at <= now {
        return None;
    }
    let status = AgeClaims {
        birth_year: birth.year(),
        provider: c.provider,
        verified_at: c.verified_at,
        issued_at: now,
        expires_at,
        host: c.host.clone(),
        person_ids: v.person_ids.clone(),
    };
    let sealed = s.keys.seal_json(Purpose::AgeStatus, &status);
    crate::metrics::age_status_issued(c.provider.as_str());
    Some(crate::cookies::age_status(s, &sealed, expires_at - now))
}
