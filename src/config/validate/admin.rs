//! Who may call the admin listener's record API.

use super::*;

pub(super) fn access(ctx: &mut Ctx, a: Option<&FileAdmin>, listen: Option<&Listen>) -> AdminAccess {
    // No `admin` section: the record API is closed (it answers 401 and says why).
    let Some(a) = a else {
        return AdminAccess::Closed;
    };
    let token = ctx.secret(
        "admin",
        "token",
        a.token_env.as_deref(),
        a.token_file.as_deref(),
        false,
    );
    if let Some(t) = &token {
        if t.len() < 16 {
            ctx.err(
                if a.token_env.is_some() {
                    "admin.token_env"
                } else {
                    "admin.token_file"
                },
                "the admin token must be at least 16 characters (verigate keygen prints one)",
            );
        }
    }
    let loopback = a.allow_unauthenticated_loopback.unwrap_or(false);
    if loopback {
        match listen {
            Some(l) if l.addr.ip().is_loopback() => {}
            Some(l) => ctx.err(
                "admin.allow_unauthenticated_loopback",
                format!(
                    "admin_listen {} is not a loopback address: anyone who reaches it could \
                     erase records; set admin.token_env or token_file",
                    l.addr
                ),
            ),
            None => ctx.err(
                "admin.allow_unauthenticated_loopback",
                "there is no admin_listen",
            ),
        }
    }
    match (token, loopback) {
        (Some(t), _) => AdminAccess::Token(t),
        (None, true) => AdminAccess::Loopback,
        (None, false) => {
            ctx.warn(
                "admin.token_env",
                "no admin token: POST /accounts/forget answers 401 (set admin.token_env or \
                 token_file, or allow_unauthenticated_loopback on a loopback admin_listen)",
            );
            AdminAccess::Closed
        }
    }
}
