//! What the listeners add before a request reaches the gate: TLS (and through it HTTP/2) on
//! the proxy listener, with the certificate of the config in force, and the optional
//! plain-HTTP listener that sends every request to HTTPS. Below the wiring in `lib.rs`.

pub mod redirect;
pub mod tls;
