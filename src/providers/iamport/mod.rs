//! Iamport (PortOne V1) identity verification: its API client, its flow endpoints, its sandbox and its settings.

pub mod client;
pub mod flow;
pub mod sandbox;
pub mod settings;
