//! Cryptographic formats that settings and providers share: ifree's member-key cipher,
//! private keys as JWKs, the listener's TLS certificate and key. Imports nothing of the app.

pub mod ifree_cipher;
pub mod jwk;
pub mod tls;
