//! Korean rules end to end through the real proxy, the sandbox and an echoing upstream: the age
//! rule named per route, the provider hints, the person id, missing identifiers and the fields
//! merchants use.

mod common;
use common::*;
use serde_json::Value;

fn header<'a>(upstream: &'a Value, name: &str) -> Option<&'a str> {
    upstream["headers"][name][0].as_str()
}

/// The date in `tz`, at least a minute before its midnight, so a person chosen by it does
/// not meet a different date when the gate checks it a moment later.
async fn settled_today(tz: chrono_tz::Tz) -> chrono::NaiveDate {
    use chrono::Timelike;
    loop {
        let now = chrono::Utc::now().with_timezone(&tz);
        let left = 86_400 - i64::from(now.num_seconds_from_midnight());
        if left > 60 {
            return now.date_naive();
        }
        tokio::time::sleep(std::time::Duration::from_secs(left as u64 + 1)).await;
    }
}

/// An adult area under each rule, on Iamport.
fn two_rules() -> Proxy {
    Proxy::new().provider(Provider::iamport()).routes(vec![
        Route::prefix("/act").providers(["iamport"]).min_age(19),
        Route::prefix("/intl")
            .providers(["iamport"])
            .min_age(19)
            .age_rule("birthday"),
        Route::prefix("/"),
    ])
}

/// Under `youth_act` everyone born in the year of turning 19 is of age all year, before their
/// birthday too; under `birthday` only from the birthday. Both from the date in Seoul.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn youth_act_admits_the_whole_birth_year_birthday_waits_for_the_day() {
    use chrono::Datelike;
    let env = Env::with(two_rules()).await;
    let today = settled_today(chrono_tz::Asia::Seoul).await;
    let year = today.year();
    // Born on the last day of the year of turning 19: of age under the Act since 1 January.
    let last = format!("{}1231", year - 19);
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/act", &Person::born(&last))
        .await;
    assert_eq!(b.get_html("/act").await.status(), 200, "born {last}");
    assert_eq!(
        header(&env.last_upstream(), "x-verified-age-ok"),
        Some("true")
    );
    let hits = env.hits();
    let r = b.get_json("/intl").await;
    if (today.month(), today.day()) == (12, 31) {
        assert_eq!(r.status(), 200, "19 on its birthday, {today}");
    } else {
        assert_eq!(refusal(r).await, (403, "underage".into()), "{today}");
        assert_eq!(env.hits(), hits, "nothing reaches the app");
    }
    // Born on 1 January of the next year: a youth under both rules all year.
    let first = format!("{}0101", year - 18);
    let mut y = env.browser();
    y.verify_redirect(env.sandbox, "/act", &Person::born(&first))
        .await;
    let hits = env.hits();
    assert_eq!(refusal(y.get_json("/act").await).await, (403, "underage".into()));
    assert_eq!(refusal(y.get_json("/intl").await).await, (403, "underage".into()));
    assert_eq!(env.hits(), hits);
}
