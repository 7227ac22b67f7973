//! `records`: how long verigate keeps what it remembers about people. Where a merchant must
//! choose (one-account records, ifree members), an unset key is warned about at start and by
//! `verigate check`, naming the lifetime that applies: never a silent default.

use super::*;

/// A lifetime as written: `until_forgotten`, or a duration of at least a day.
fn lifetime(ctx: &mut Ctx, path: &str, v: &str) -> Option<Duration> {
    if v.trim() == "until_forgotten" {
        return None;
    }
    match super::super::duration::parse(v) {
        Ok(d) if d >= Duration::from_secs(86_400) => Some(d),
        Ok(_) => {
            ctx.err(path, "must be at least 1d, or until_forgotten");
            None
        }
        Err(e) => {
            ctx.err(path, format!("{e}; or until_forgotten"));
            None
        }
    }
}

/// A lifetime that must be a duration (what no app call ends).
fn period(ctx: &mut Ctx, path: &str, v: Option<&str>, default: Duration, floor: u64) -> Duration {
    let Some(v) = v else { return default };
    match super::super::duration::parse(v) {
        Ok(d) if d >= Duration::from_secs(floor * 86_400) => d,
        Ok(_) => {
            ctx.err(path, format!("must be at least {floor}d"));
            default
        }
        Err(e) => {
            ctx.err(path, e);
            default
        }
    }
}

/// `records`, given whether any route keeps one-account records and whether ifree is on.
pub(super) fn records(
    ctx: &mut Ctx,
    f: Option<&FileRecords>,
    one_account: bool,
    ifree: bool,
) -> Records {
    let empty = FileRetention::default();
    let r = f.and_then(|f| f.retention.as_ref()).unwrap_or(&empty);
    let default = Retention::default();
    let accounts = match r.accounts.as_deref() {
        Some(v) => lifetime(ctx, "records.retention.accounts", v),
        None => {
            if one_account {
                ctx.warn(
                    "records.retention.accounts",
                    "not set: one-account records are kept until the app forgets the person \
                     (POST /accounts/forget); write until_forgotten or a lifetime (e.g. 1095d)",
                );
            }
            None
        }
    };
    let ifree_members = match r.ifree_members.as_deref() {
        Some(v) => lifetime(ctx, "records.retention.ifree_members", v),
        None => {
            if ifree {
                ctx.warn(
                    "records.retention.ifree_members",
                    "not set: registered ifree members are kept until the app forgets the \
                     person; write until_forgotten or a lifetime after the last login (e.g. 365d)",
                );
            }
            None
        }
    };
    // The proof of a guardian's consent: kept until the child is forgotten unless a lifetime
    // is chosen (no warning: which routes ask for consent is the routes' business).
    let consents = r
        .consents
        .as_deref()
        .and_then(|v| lifetime(ctx, "records.retention.consents", v));
    // Access records of personal data are kept at least a year (PIPA safety measures).
    let audit = period(
        ctx,
        "records.retention.audit",
        r.audit.as_deref(),
        default.audit,
        365,
    );
    let ledger = period(
        ctx,
        "records.retention.ledger",
        r.ledger.as_deref(),
        default.ledger,
        1,
    );
    Records {
        retention: Retention {
            accounts,
            ifree_members,
            audit,
            ledger,
            consents,
        },
        ledger: f.and_then(|f| f.ledger).unwrap_or(false),
    }
}
