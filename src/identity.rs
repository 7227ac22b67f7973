//! Identity types every layer shares: which provider vouched for a person, and which personal
//! fields a route forwards. Imports nothing of the app.

use serde::{Deserialize, Serialize};

/// The one list of identity providers, in the order the choice page offers them. Each line
/// is a provider's [`ProviderId`] variant, its name (in the config, in URLs and metrics, and
/// its folder `src/providers/<name>/`), whose identity it gives ([`Namespace`]) and whether it
/// verifies the birth date it gives. A new provider is one line here and its folder (and its
/// `pub mod` in `src/providers/mod.rs`): every list of providers in the code is made from this
/// one, by `each_provider!(m)`, which hands the list to the macro `m`.
macro_rules! each_provider {
    ($then:ident) => {
        $then! {
            Iamport iamport (Namespace::Ci, verifies_birth: true),
            Portone portone (Namespace::Ci, verifies_birth: true),
            Tomo tomo (Namespace::TomoPpid, verifies_birth: true),
            // ifree's birth date is written by the member's own client: self-asserted, never
            // enough for `min_age`.
            Ifree ifree (Namespace::IfreeMember, verifies_birth: false),
        }
    };
}
pub(crate) use each_provider;

macro_rules! provider_id {
    ($($variant:ident $name:ident ($namespace:expr, verifies_birth: $birth:literal),)*) => {
        /// A provider verigate knows: see `each_provider!`. Its serde name is its name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum ProviderId {
            $($variant,)*
        }

        impl ProviderId {
            /// Every provider, in the order the choice page offers them.
            pub const ALL: [ProviderId; [$(stringify!($name),)*].len()] =
                [$(ProviderId::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => stringify!($name),)*
                }
            }

            /// Whether the provider itself verifies the birth date it gives (a self-asserted
            /// one is never enough for `min_age`).
            pub fn verifies_birth(self) -> bool {
                match self {
                    $(ProviderId::$variant => $birth,)*
                }
            }

            /// Whose identity the provider gives: people are told apart (one account per
            /// person) only within one namespace.
            pub fn namespace(self) -> Namespace {
                match self {
                    $(ProviderId::$variant => $namespace,)*
                }
            }
        }
    };
}
each_provider!(provider_id);

impl ProviderId {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The identity a provider vouches for. Iamport and PortOne both give the person's CI (the
/// same for one person everywhere in Korea); TomoIDV gives a PPID (per person and client);
/// ifree a member code (per member and site). Identities in different namespaces cannot be
/// linked: one person can hold one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    Ci,
    TomoPpid,
    IfreeMember,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Ci => "CI",
            Namespace::TomoPpid => "TomoIDV PPID",
            Namespace::IfreeMember => "ifree member code",
        }
    }
}

/// How a route counts age against its `min_age` (`require.age_rule`). Korean law uses both:
/// the Youth Protection Act (청소년보호법 제2조) makes a person an adult for 19+ content,
/// alcohol and tobacco from 1 January of the year they turn 19, whatever their birthday;
/// PIPA's under-14 consent and most other statutes count the international age (만 나이)
/// with the birthday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgeRule {
    /// `youth_act`: of age from 1 January of the year of turning `min_age`.
    YouthAct,
    /// `birthday`: the international age, reached on the birthday (29 February birthdays on
    /// 1 March in common years).
    Birthday,
}

impl AgeRule {
    pub const NAMES: [&'static str; 2] = ["youth_act", "birthday"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "youth_act" => Some(AgeRule::YouthAct),
            "birthday" => Some(AgeRule::Birthday),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgeRule::YouthAct => "youth_act",
            AgeRule::Birthday => "birthday",
        }
    }

    /// Whether a person born on `birth` is at least `min` on `today` (the date in the
    /// configured time zone).
    pub fn admits(self, min: u32, birth: chrono::NaiveDate, today: chrono::NaiveDate) -> bool {
        use chrono::Datelike;
        let years = i64::from(today.year()) - i64::from(birth.year());
        match self {
            AgeRule::YouthAct => years >= i64::from(min),
            AgeRule::Birthday => i64::from(international_age(birth, today)) >= i64::from(min),
        }
    }

    /// Whether a person born in `year` is at least `min` on `today`, from the year alone
    /// (an age status keeps no more): `Some(true)` or `Some(false)` when the year settles it,
    /// `None` when it does not (under `birthday`, the year of turning `min`: it depends on a
    /// birthday the status does not know, so the person verifies again).
    pub fn admits_year(self, min: u32, year: i32, today: chrono::NaiveDate) -> Option<bool> {
        use chrono::Datelike;
        let years = i64::from(today.year()) - i64::from(year);
        let min = i64::from(min);
        match self {
            AgeRule::YouthAct => Some(years >= min),
            // Born in `year`, everyone is at least `years - 1` internationally (`years` after
            // their birthday): past `min` then whatever the birthday.
            AgeRule::Birthday if years > min => Some(true),
            AgeRule::Birthday if years < min => Some(false),
            AgeRule::Birthday => None,
        }
    }

    /// The international age a provider's own age window may be given for a route's limit
    /// without refusing anyone the rule admits: under `youth_act` a person born in the year
    /// of turning `min` may still be `min - 1` internationally.
    pub fn hint(self, min: u32) -> u32 {
        match self {
            AgeRule::YouthAct => min.saturating_sub(1),
            AgeRule::Birthday => min,
        }
    }
}

/// International age on `today`: a birthday on the day counts; 29 February birthdays are
/// reached on 1 March in common years.
pub fn international_age(birth: chrono::NaiveDate, today: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Fields a route may forward upstream (`forward: [name, birth, gender, phone, foreigner,
/// carrier, guardian_name, guardian_birth]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forward {
    pub name: bool,
    pub birth: bool,
    pub gender: bool,
    pub phone: bool,
    pub foreigner: bool,
    pub carrier: bool,
    /// The guardian's verified name and birth date, on a guardian-consent route, with the
    /// child's first state-changing request after the consent (`guardian_consent`).
    pub guardian_name: bool,
    pub guardian_birth: bool,
}

impl Forward {
    pub fn any(&self) -> bool {
        self.name
            || self.birth
            || self.gender
            || self.phone
            || self.foreigner
            || self.carrier
            || self.guardian()
    }

    /// Whether the guardian's fields go upstream.
    pub fn guardian(&self) -> bool {
        self.guardian_name || self.guardian_birth
    }
    pub fn union(self, o: Forward) -> Forward {
        Forward {
            name: self.name || o.name,
            birth: self.birth || o.birth,
            gender: self.gender || o.gender,
            phone: self.phone || o.phone,
            foreigner: self.foreigner || o.foreigner,
            carrier: self.carrier || o.carrier,
            guardian_name: self.guardian_name || o.guardian_name,
            guardian_birth: self.guardian_birth || o.guardian_birth,
        }
    }
}

/// How a PortOne identity-verification channel verifies (Iamport's `pg`, a PortOne V2
/// channel), as the choice and start pages name it: `providers.<id>.method`, else Iamport's
/// `pg` prefix, else Danal's phone verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelMethod {
    /// `danal`: 휴대폰 본인인증.
    #[default]
    Phone,
    /// `inicis_unified`: KG이니시스 통합인증 (PASS, 네이버, 카카오, 토스, 페이코, certificates).
    Unified,
    /// `inicis`: 신용카드 본인인증 through KG이니시스 (Iamport / V1 only).
    Card,
}

impl ChannelMethod {
    pub const NAMES: [&'static str; 3] = ["danal", "inicis_unified", "inicis"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "danal" => Some(ChannelMethod::Phone),
            "inicis_unified" => Some(ChannelMethod::Unified),
            "inicis" => Some(ChannelMethod::Card),
            _ => None,
        }
    }

    /// The method an Iamport `pg` value names (`danal.im0001` → Danal), if known.
    pub fn of_pg(pg: &str) -> Option<Self> {
        Self::parse(pg.split('.').next().unwrap_or(pg))
    }

    /// The choice page's label (Korean, English).
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            ChannelMethod::Phone => ("휴대폰 본인인증", "Mobile phone verification (Korea)"),
            ChannelMethod::Unified => (
                "간편인증 · 인증서 (통합인증)",
                "PASS, Naver, Kakao, Toss, PAYCO or a certificate (Korea)",
            ),
            ChannelMethod::Card => ("신용카드 본인인증", "Credit card verification (Korea)"),
        }
    }

    /// The start page's heading (Korean, English).
    pub fn heading(self) -> (&'static str, &'static str) {
        match self {
            ChannelMethod::Phone => ("휴대폰 본인인증", "Mobile phone verification"),
            ChannelMethod::Unified => ("통합인증", "Simple authentication or certificate"),
            ChannelMethod::Card => ("신용카드 본인인증", "Credit card verification"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_year_alone_decides_only_what_every_birthday_of_that_year_would() {
        // Every birth date of the years around the edge, on days around New Year and
        // mid-year: where the year settles it, it says what the full date says.
        for rule in [AgeRule::YouthAct, AgeRule::Birthday] {
            for today in [d(2026, 1, 1), d(2026, 6, 15), d(2026, 12, 31)] {
                for year in 2005..=2009 {
                    let mut day = d(year, 1, 1);
                    let answer = rule.admits_year(19, year, today);
                    let mut seen = Vec::new();
                    while day.format("%Y").to_string() == year.to_string() {
                        seen.push(rule.admits(19, day, today));
                        day = day.succ_opt().unwrap();
                    }
                    match answer {
                        Some(a) => assert!(seen.iter().all(|s| *s == a), "{rule:?} {year} {today}"),
                        // Unsettled only under the birthday rule, in the year of turning 19.
                        None => assert_eq!((rule, 2026 - year), (AgeRule::Birthday, 19)),
                    }
                }
            }
        }
        // youth_act is settled by the year, always.
        assert_eq!(
            AgeRule::YouthAct.admits_year(19, 2007, d(2026, 1, 1)),
            Some(true)
        );
        assert_eq!(
            AgeRule::YouthAct.admits_year(19, 2008, d(2026, 12, 31)),
            Some(false)
        );
        // birthday: born in 2007, on 1 June 2026 some are 19, some 18: not settled.
        assert_eq!(AgeRule::Birthday.admits_year(19, 2007, d(2026, 6, 1)), None);
        assert_eq!(
            AgeRule::Birthday.admits_year(19, 2006, d(2026, 1, 1)),
            Some(true)
        );
        assert_eq!(
            AgeRule::Birthday.admits_year(19, 2008, d(2026, 12, 31)),
            Some(false)
        );
    }

    #[test]
    fn youth_act_is_of_age_from_new_year_of_the_year_of_turning_min_age() {
        let y = AgeRule::YouthAct;
        for birth in [
            d(2007, 1, 1),
            d(2007, 6, 15),
            d(2007, 12, 31),
            d(2008, 2, 29),
        ] {
            let turning = birth.format("%Y").to_string().parse::<i32>().unwrap() + 19;
            // New Year's Eve of the year before: still a youth; New Year's Day: of age.
            assert!(!y.admits(19, birth, d(turning - 1, 12, 31)), "{birth}");
            assert!(y.admits(19, birth, d(turning, 1, 1)), "{birth}");
            // Before the birthday in that year: of age under the Act, 18 internationally.
            assert!(y.admits(19, birth, d(turning, 1, 1)));
            assert!(y.admits(19, birth, d(turning, 12, 31)));
        }
        // Born on 31 December 2007, on 1 January 2026: one day of age (international age 18).
        assert_eq!(international_age(d(2007, 12, 31), d(2026, 1, 1)), 18);
        assert!(y.admits(19, d(2007, 12, 31), d(2026, 1, 1)));
        assert!(!AgeRule::Birthday.admits(19, d(2007, 12, 31), d(2026, 1, 1)));
        // Born on 1 January 2008: of age only from 1 January 2027.
        assert!(!y.admits(19, d(2008, 1, 1), d(2026, 12, 31)));
        assert!(y.admits(19, d(2008, 1, 1), d(2027, 1, 1)));
        // A birth date after today is never of age, as under the birthday rule.
        assert!(!y.admits(0, d(2030, 1, 1), d(2026, 1, 1)));
        assert!(!AgeRule::Birthday.admits(0, d(2030, 1, 1), d(2026, 1, 1)));
    }

    #[test]
    fn birthday_counts_the_day_itself_and_leap_days() {
        let b = AgeRule::Birthday;
        assert!(!b.admits(19, d(2007, 11, 24), d(2026, 11, 23)));
        assert!(b.admits(19, d(2007, 11, 24), d(2026, 11, 24)));
        assert!(!b.admits(19, d(2007, 12, 31), d(2026, 12, 30)));
        assert!(b.admits(19, d(2007, 12, 31), d(2026, 12, 31)));
        assert!(b.admits(19, d(2007, 1, 1), d(2026, 1, 1)));
        assert!(!b.admits(19, d(2007, 1, 1), d(2025, 12, 31)));
        // 29 February: 1 March in a common year, the day itself in a leap year.
        assert!(!b.admits(19, d(2008, 2, 29), d(2027, 2, 28)));
        assert!(b.admits(19, d(2008, 2, 29), d(2027, 3, 1)));
        assert!(!b.admits(20, d(2008, 2, 29), d(2028, 2, 28)));
        assert!(b.admits(20, d(2008, 2, 29), d(2028, 2, 29)));
    }

    #[test]
    fn the_hint_never_refuses_whom_the_rule_admits() {
        // Every birth date over four years, every day of 2026: whoever the rule admits has at
        // least the hinted international age (the provider's window would let them through).
        let mut today = d(2026, 1, 1);
        while today <= d(2026, 12, 31) {
            let mut birth = d(2005, 1, 1);
            while birth <= d(2009, 12, 31) {
                for rule in [AgeRule::YouthAct, AgeRule::Birthday] {
                    if rule.admits(19, birth, today) {
                        assert!(
                            international_age(birth, today) >= rule.hint(19) as i32,
                            "{rule:?} born {birth} on {today}"
                        );
                    }
                }
                birth = birth.succ_opt().unwrap();
            }
            today = today + chrono::Days::new(7);
        }
        assert_eq!(AgeRule::YouthAct.hint(19), 18);
        assert_eq!(AgeRule::Birthday.hint(19), 19);
        assert_eq!(AgeRule::YouthAct.hint(0), 0);
    }

    #[test]
    fn a_providers_serde_name_is_its_name() {
        for id in ProviderId::ALL {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            assert_eq!(ProviderId::parse(id.as_str()), Some(id));
        }
    }
}
