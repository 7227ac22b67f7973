//! Identity types every layer shares: which provider vouched for a person, and which personal
//! fields a route forwards. Imports nothing of the app.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProviderId {
    #[serde(rename = "iamport")]
    Iamport,
    #[serde(rename = "tomo")]
    Tomo,
    #[serde(rename = "ifree")]
    Ifree,
    #[serde(rename = "portone")]
    Portone,
}

impl ProviderId {
    /// Every provider, in the order the choice page offers them.
    pub const ALL: [ProviderId; 4] = [
        ProviderId::Iamport,
        ProviderId::Portone,
        ProviderId::Tomo,
        ProviderId::Ifree,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Iamport => "iamport",
            ProviderId::Tomo => "tomo",
            ProviderId::Ifree => "ifree",
            ProviderId::Portone => "portone",
        }
    }
    /// Whether the provider itself verifies the birth date it gives (ifree's is written by
    /// the member's own client: self-asserted, never enough for `min_age`).
    pub fn verifies_birth(self) -> bool {
        match self {
            ProviderId::Iamport | ProviderId::Tomo | ProviderId::Portone => true,
            ProviderId::Ifree => false,
        }
    }

    /// Whose identity the provider gives: people are told apart (one account per person)
    /// only within one namespace.
    pub fn namespace(self) -> Namespace {
        match self {
            ProviderId::Iamport | ProviderId::Portone => Namespace::Ci,
            ProviderId::Tomo => Namespace::TomoPpid,
            ProviderId::Ifree => Namespace::IfreeMember,
        }
    }

    /// What the choice page shows (Korean / English).
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            ProviderId::Iamport => ("휴대폰 본인인증", "Mobile phone verification (Korea)"),
            ProviderId::Tomo => (
                "외국인 신분증 인증",
                "Foreign visitor? Verify with your passport / ID",
            ),
            ProviderId::Ifree => ("ifree 로그인", "Log in with ifree"),
            ProviderId::Portone => ("휴대폰 본인인증", "Mobile phone verification (Korea)"),
        }
    }

    /// Who runs it, for the choice page: two ways of the same kind (Iamport and PortOne are
    /// both mobile phone verification) are told apart by it.
    pub fn via(self) -> &'static str {
        match self {
            ProviderId::Iamport => "아임포트 · Iamport",
            ProviderId::Portone => "포트원 · PortOne",
            ProviderId::Tomo => "TomoIDV",
            ProviderId::Ifree => "ifree",
        }
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

/// Fields a route may forward upstream (`forward: [name, birth, gender, phone]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forward {
    pub name: bool,
    pub birth: bool,
    pub gender: bool,
    pub phone: bool,
}

impl Forward {
    pub fn any(&self) -> bool {
        self.name || self.birth || self.gender || self.phone
    }
    pub fn union(self, o: Forward) -> Forward {
        Forward {
            name: self.name || o.name,
            birth: self.birth || o.birth,
            gender: self.gender || o.gender,
            phone: self.phone || o.phone,
        }
    }
}
