//! The listener's certificate chain and private key, read from PEM files into the form rustls
//! serves (`CertifiedKey`), with the key checked against the certificate. No key material is
//! ever put into an error or a log line: errors name the file and what is wrong with it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which of the two files a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        file: TlsFile,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no PEM private key (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 `BEGIN RSA PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY`)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("the first certificate in {} cannot be read: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("the private key in {} cannot be used for TLS: {reason}", path.display())]
    UnusableKey { path: PathBuf, reason: String },
    #[error("the private key in {} does not belong to the first certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
}

impl TlsLoadError {
    /// The file the problem is in (the key path a config error names).
    pub fn file(&self) -> TlsFile {
        match self {
            TlsLoadError::Read { file, .. } => *file,
            TlsLoadError::NoCertificate { .. } | TlsLoadError::BadCertificate { .. } => {
                TlsFile::Cert
            }
            TlsLoadError::NoKey { .. }
            | TlsLoadError::UnusableKey { .. }
            | TlsLoadError::Mismatch { .. } => TlsFile::Key,
        }
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsLoadError> {
    std::fs::read(path).map_err(|source| TlsLoadError::Read {
        file,
        path: path.to_path_buf(),
        source,
    })
}

/// Read the chain (leaf first, as in the file) and the key, and check that they belong
/// together. The key is parsed with the same crypto provider Pingora's listener uses (ring).
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsLoadError> {
    let cert_pem = read(TlsFile::Cert, cert_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsLoadError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key_pem = read(TlsFile::Key, key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsLoadError::NoKey {
        path: key_path.to_path_buf(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsLoadError::UnusableKey {
                path: key_path.to_path_buf(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        // ring's keys always know their public key, so "unknown" is a mismatch too.
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsLoadError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        }),
        Err(e) => Err(TlsLoadError::BadCertificate {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}
