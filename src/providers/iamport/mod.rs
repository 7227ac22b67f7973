//! Iamport (PortOne V1) identity verification: its API client, its flow endpoints and its sandbox; its settings are `config::providers::iamport`.

pub mod client;
pub mod flow;
pub mod sandbox;
