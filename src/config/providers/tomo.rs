//! TomoIDV settings: the file's shape, the runtime values and their check.

pub mod policy;

use crate::config::ctx::Ctx;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub client_id: String,
    #[serde(default)]
    pub private_key_env: Option<String>,
    #[serde(default)]
    pub private_key_file: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub kyc_policy: Option<serde_yaml::Value>,
    #[serde(default)]
    pub policy_key: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    /// Countries whose nationals have a CI: where a route also accepts a CI provider, their
    /// TomoIDV results are refused (default `[kr, kor]`; `[]` turns the rule off).
    #[serde(default)]
    pub ci_countries: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Clone, PartialEq)]
pub struct Settings {
    pub client_id: String,
    /// The console's JWK, converted once at load to PKCS#8 PEM.
    pub private_key_pem: String,
    pub base_url: String,
    pub kyc_policy: serde_json::Value,
    /// What results made under the policy carry as `policy_key`.
    pub policy_key: String,
    pub country: Option<String>,
    /// `ci_countries`, upper-case.
    pub ci_countries: Vec<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .field("policy_key", &self.policy_key)
            .finish_non_exhaustive()
    }
}

const TOMO_PRODUCTION: &str = "https://api.tomopayment.com";
const TOMO_SANDBOX: &str = "https://test.tomopayment.com";

pub(crate) fn validate(ctx: &mut Ctx, t: &File, _flow_prefix: &str) -> Option<Settings> {
    let at = "providers.tomo";
    if t.client_id.trim().is_empty() {
        ctx.err(format!("{at}.client_id"), "must not be empty");
    }
    // No default: a client id works only on its own console's host, and a default would
    // silently pick one of the two (it used to be the sandbox).
    let base_url = match t.base_url.as_deref() {
        Some(u) => ctx.url(&format!("{at}.base_url"), Some(u), u),
        None => {
            ctx.err(
                format!("{at}.base_url"),
                format!(
                    "required: {TOMO_PRODUCTION} in production ({TOMO_SANDBOX} is TomoIDV's sandbox)"
                ),
            );
            String::new()
        }
    };
    let timeout = ctx.duration(
        &format!("{at}.timeout"),
        t.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let policy: serde_json::Value = match &t.kyc_policy {
        None => serde_json::json!({ "preset": "basic" }),
        Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
    };
    let derived = match policy::check_policy(&policy) {
        Ok(k) => k,
        Err(_) => {
            ctx.err(
                format!("{at}.kyc_policy"),
                "unsupported: use { preset: basic } or { subject: { kind: personal_info | document, id_type }, method: personal_info_verf, owner_assurance: { kind: owner_verf | owner_check, type: sms_otp } or { kind: no_owner_assurance } }",
            );
            String::new()
        }
    };
    if let Some(c) = &t.country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_lowercase()) {
            ctx.err(
                format!("{at}.country"),
                format!("`{c}` is not a lowercase ISO country code (e.g. us)"),
            );
        }
    }
    let ci_countries = match &t.ci_countries {
        None => ["KR", "KOR", "410"].map(String::from).to_vec(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(j, c)| {
                if is_country_code(c) {
                    Some(c.to_ascii_uppercase())
                } else {
                    ctx.err(
                        format!("{at}.ci_countries[{j}]"),
                        format!("`{c}` is not an ISO 3166 country code (kr, kor or 410)"),
                    );
                    None
                }
            })
            .collect(),
    };
    let secret = ctx.secret(
        at,
        "private_key",
        t.private_key_env.as_deref(),
        t.private_key_file.as_deref(),
        true,
    )?;
    let pem = match crate::crypto::jwk::jwk_to_pem(&secret) {
        Ok(p) => p,
        Err(e) => {
            let which = if t.private_key_env.is_some() {
                "private_key_env"
            } else {
                "private_key_file"
            };
            ctx.err(format!("{at}.{which}"), e.to_string());
            return None;
        }
    };
    Some(Settings {
        client_id: t.client_id.trim().to_string(),
        private_key_pem: pem,
        base_url,
        kyc_policy: policy,
        policy_key: t.policy_key.clone().unwrap_or(derived),
        country: t.country.clone(),
        ci_countries,
        timeout,
    })
}

/// An ISO 3166 code as written: two or three ASCII letters, or three digits.
fn is_country_code(c: &str) -> bool {
    (2..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Settings {
    /// Whether a person whose TomoIDV result names `countries` has a CI: one of them is in
    /// `ci_countries`, or none is named, or one is not a plain ISO code (`korea`, full-width
    /// letters: it cannot be told apart, so it fails closed). Never with `ci_countries: []`.
    pub fn has_ci(&self, countries: &[String]) -> bool {
        if self.ci_countries.is_empty() {
            return false;
        }
        countries.is_empty()
            || countries.iter().any(|c| {
                !is_country_code(c.trim())
                    || self
                        .ci_countries
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(c.trim()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ci: &[&str]) -> Settings {
        Settings {
            client_id: String::new(),
            private_key_pem: String::new(),
            base_url: String::new(),
            kyc_policy: serde_json::Value::Null,
            policy_key: String::new(),
            country: None,
            ci_countries: ci.iter().map(|c| c.to_string()).collect(),
            timeout: Duration::ZERO,
        }
    }

    #[test]
    fn who_has_a_ci_is_decided_by_the_settings_of_the_moment() {
        let default = settings(&["KR", "KOR", "410"]);
        let list = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for korean in [
            &["kr"][..],
            &["KR"],
            &[" kor "],
            &["410"],
            &["us", "KR"],
            &[],
            &["korea"],
            &["Korea"],
            &["ＫＲ"],
            &["k r"],
        ] {
            assert!(default.has_ci(&list(korean)), "{korean:?}");
        }
        for foreign in [&["us"][..], &["US", "usa"], &["jp"], &["840"]] {
            assert!(!default.has_ci(&list(foreign)), "{foreign:?}");
        }
        assert!(
            !settings(&[]).has_ci(&list(&["kr"])),
            "[] turns the rule off"
        );
    }
}
