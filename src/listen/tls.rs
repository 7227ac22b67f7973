//! TLS on the proxy listener through Pingora's rustls acceptor. The certificate is chosen
//! per handshake from the config in force (`Live`), so a reload that reads renewed files
//! serves them to the next connection while open connections keep theirs: no restart, no
//! dropped connection.

use crate::live::Live;
use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ALPN;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// When the leaf certificate of `certified` expires (UNIX seconds), for the expiry metric.
pub fn not_after(certified: &CertifiedKey) -> Option<i64> {
    let leaf = certified.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Export the expiry of the config's listener certificate (`None`: no TLS listener).
pub fn export_expiry(tls: Option<&crate::config::ListenerTls>) {
    crate::metrics::tls_certificate_expiry(tls.and_then(|t| not_after(&t.certified)));
}

/// The certificate of the config in force.
pub struct LiveCertificate(pub Arc<ArcSwap<Live>>);

impl std::fmt::Debug for LiveCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCertificate")
    }
}

impl ResolvesServerCert for LiveCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // None ends the handshake; a config without TLS never reaches a TLS listener (a reload
        // may not turn TLS off).
        self.0.load().cfg.tls.as_ref().map(|t| t.certified.clone())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("TLS settings: {0}")]
pub struct TlsSetupError(String);

/// The listener's settings: certificates from `live`, ALPN `h2, http/1.1` when `http2`,
/// else `http/1.1` only.
pub fn settings(live: Arc<ArcSwap<Live>>, http2: bool) -> Result<TlsSettings, TlsSetupError> {
    // No files: the resolver above serves the certificate read with the config.
    let mut s = TlsSettings::intermediate("", "").map_err(|e| TlsSetupError(e.to_string()))?;
    s.set_cert_resolver(Arc::new(LiveCertificate(live)));
    if http2 {
        s.enable_h2();
    } else {
        s.set_alpn(ALPN::H1);
    }
    Ok(s)
}
