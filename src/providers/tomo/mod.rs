//! TomoIDV eKYC for foreign visitors: its API client, its flow endpoints and its sandbox; its settings (with its kyc_policy check) are `config::providers::tomo`.

pub mod client;
pub mod flow;
pub mod sandbox;
