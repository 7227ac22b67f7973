//! ifree login: its API client, its flow endpoints and its sandbox; its settings are `config::providers::ifree`.

pub mod client;
pub mod flow;
pub mod sandbox;
