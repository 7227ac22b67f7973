//! PortOne V2 identity verification: its API client, its flow endpoints and its sandbox; its settings are `config::providers::portone`.

pub mod client;
pub mod flow;
pub mod sandbox;
