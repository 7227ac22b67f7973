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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_providers_serde_name_is_its_name() {
        for id in ProviderId::ALL {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            assert_eq!(ProviderId::parse(id.as_str()), Some(id));
        }
    }
}
