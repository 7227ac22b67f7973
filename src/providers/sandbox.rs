//! What every provider's simulator (its `sandbox.rs`) is started with; `demo::sandbox` puts
//! them together for `verigate sandbox`.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Lifetime of issued access tokens (Iamport: 30 minutes, like the real service).
    pub token_ttl: Duration,
    /// Lifetime of TomoIDV access tokens (`expires_in`; unconfirmed upstream: 30 minutes
    /// here, as Iamport's and as `verigate sandbox --token-ttl` defaults to).
    pub tomo_token_ttl: Duration,
    /// Extra TomoIDV clients: (client_id, public JWK JSON).
    pub tomo_clients: Vec<(String, String)>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            token_ttl: Duration::from_secs(30 * 60),
            tomo_token_ttl: Duration::from_secs(30 * 60),
            tomo_clients: Vec::new(),
        }
    }
}

/// An age limit a merchant's page passed to a simulated window (Iamport `min_age`, PortOne V2
/// Danal `AGELIMIT`): a whole number, or nothing when blank or absent.
pub fn age_limit(v: Option<&str>) -> Option<u32> {
    v.map(str::trim).filter(|v| !v.is_empty())?.parse().ok()
}

/// Whether a simulated window refuses the person for the age limit, as the real windows do:
/// the international age on today's date in Seoul below the limit.
pub fn under_age_limit(limit: Option<u32>, birth: chrono::NaiveDate) -> bool {
    let today = crate::clock::today(chrono_tz::Asia::Seoul, crate::clock::unix_now());
    limit.is_some_and(|min| crate::identity::international_age(birth, today) < min as i32)
}

/// A simulated person's CI: one per person (name, birth date, phone digits) whichever
/// simulated provider or channel verifies them, as the real CI is one per person across
/// Iamport, PortOne and every channel (88 characters of base64, as the real one).
pub fn person_ci(name: &str, birth: chrono::NaiveDate, phone: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Mac, SimpleHmac};
    let digits: String = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    let msg = [
        "ci",
        name.trim(),
        &birth.format("%Y%m%d").to_string(),
        &digits,
    ]
    .join("\u{1f}");
    let mut m =
        <SimpleHmac<sha2::Sha512> as Mac>::new_from_slice(b"verigate-sandbox-person-seed-v1")
            .expect("any key length");
    m.update(msg.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

/// The people a tester picks with one press in a sandbox window, for the guardian-consent flow
/// (a child, an adult guardian, a minor guardian), each born that many years before today: the
/// same button twice is the same person (the same CI), so "the child as their own guardian" is
/// the child's button again. Buttons that fill `name`, the birth field (`birth`, written as
/// `format`: `%Y%m%d` or `%Y-%m-%d`) and `phone` of the window's form, and their script.
pub fn people_presets(name: &str, birth: &str, format: &str, phone: &str) -> String {
    let today = chrono::Local::now().date_naive();
    let born = |years: i32| {
        use chrono::Datelike;
        let d = today - chrono::Duration::days(31);
        d.with_year(d.year() - years)
            .or_else(|| (d - chrono::Duration::days(1)).with_year(d.year() - years))
            .unwrap_or(d)
            .format(format)
            .to_string()
    };
    let people = [
        (
            "child",
            "어린이 (12세) · Child (12)",
            "김아이",
            born(12),
            "01055550012",
        ),
        (
            "guardian",
            "성인 보호자 (45세) · Adult guardian (45)",
            "김보호",
            born(45),
            "01055550045",
        ),
        (
            "minor",
            "미성년 보호자 (17세) · Minor guardian (17)",
            "김언니",
            born(17),
            "01055550017",
        ),
    ];
    let buttons: String = people
        .iter()
        .map(|(id, label, n, b, p)| {
            format!(
                r#"<button type="button" class="secondary" data-preset="{id}" data-name="{n}" data-birth="{b}" data-phone="{p}">{label}</button>"#
            )
        })
        .collect();
    format!(
        r#"<fieldset style="border:0;margin:0;padding:0"><legend>보호자 동의 시험용 · For the guardian-consent flow</legend>{buttons}<p class="en">The same button twice is the same person (the same CI): the child's button again is the child as their own guardian.</p></fieldset>
<script>document.querySelectorAll('[data-preset]').forEach(function (b) {{ b.addEventListener('click', function () {{ var f = b.closest('form'); f.elements['{name}'].value = b.dataset.name; f.elements['{birth}'].value = b.dataset.birth; f.elements['{phone}'].value = b.dataset.phone; }}); }});</script>"#
    )
}
