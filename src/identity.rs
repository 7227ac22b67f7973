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
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iamport" => Some(ProviderId::Iamport),
            "tomo" => Some(ProviderId::Tomo),
            "ifree" => Some(ProviderId::Ifree),
            "portone" => Some(ProviderId::Portone),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Iamport => "iamport",
            ProviderId::Tomo => "tomo",
            ProviderId::Ifree => "ifree",
            ProviderId::Portone => "portone",
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
            ProviderId::Portone => (
                "휴대폰 본인인증 (PortOne)",
                "Mobile phone verification (PortOne V2)",
            ),
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
