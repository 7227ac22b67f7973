//! Cryptographic formats that settings and providers share: ifree's member-key cipher and
//! private keys as JWKs. Imports nothing of the app.

pub mod ifree_cipher;
pub mod jwk;
