//! What every provider's simulator (its `sandbox.rs`) is started with; `demo::sandbox` puts
//! them together for `verigate sandbox`.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Lifetime of issued access tokens (Iamport: 30 minutes, like the real service).
    pub token_ttl: Duration,
    /// Lifetime of TomoIDV access tokens (`expires_in`; unconfirmed upstream: 30 minutes
    /// here, as Iamport's and as `verigate sandbox --token-ttl` defaults to).
    pub tomo_token_ttl: Duration,
    /// Extra TomoIDV clients: (client_id, public JWK JSON).
    pub tomo_clients: Vec<(String, String)>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            token_ttl: Duration::from_secs(30 * 60),
            tomo_token_ttl: Duration::from_secs(30 * 60),
            tomo_clients: Vec::new(),
        }
    }
}
