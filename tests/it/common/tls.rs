//! TLS for the tests: a test CA made with rcgen, server certificates it signs, their files,
//! and HTTPS clients that trust only that CA and reach the proxy by a test host name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The host name the test certificates are for (resolved to the proxy by the clients).
pub const HOST: &str = "shop.test";

/// A certificate authority of the test's own.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// The CA certificate, PEM (what a client trusts).
    pub fn root_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names`, signed by this CA: (certificate PEM, key PEM).
    pub fn server(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server certificate for `names` valid until `y-m-d` (midnight UTC).
    pub fn server_until(&self, names: &[&str], y: i32, m: u8, d: u8) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_after = rcgen::date_time_ymd(y, m, d);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Write a server certificate for [`HOST`] as `cert.pem` and `key.pem` in `dir` (over any
    /// there); returns their paths.
    pub fn write_server(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = self.server(&[HOST]);
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

/// Which HTTP a client speaks over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    /// HTTP/1.1 only (ALPN `http/1.1`).
    One,
    /// ALPN `h2, http/1.1`: HTTP/2 whenever the server offers it.
    Two,
}

/// A client that trusts only `ca`, reaches [`HOST`] at `proxy`, follows no redirects.
pub fn https_client(ca: &TestCa, proxy: SocketAddr, http: Http) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.root_pem().as_bytes()).unwrap();
    let b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve(HOST, proxy)
        .redirect(reqwest::redirect::Policy::none());
    match http {
        Http::One => b.http1_only(),
        Http::Two => b,
    }
    .build()
    .unwrap()
}

/// `https://shop.test:PORT`, the origin of the proxy at `proxy`.
pub fn origin(proxy: SocketAddr) -> String {
    format!("https://{HOST}:{}", proxy.port())
}

/// An HTTP/2 connection to the proxy at `proxy` as [`HOST`], made with the h2 crate (which
/// sends header fields and `:path` as given, where reqwest would normalise them).
pub async fn raw_h2(ca: &TestCa, proxy: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// Send a body-less request on `h2` and read the status, or the stream's error (a reset).
pub async fn h2_status(
    h2: &mut h2::client::SendRequest<bytes::Bytes>,
    req: http::Request<()>,
) -> Result<u16, String> {
    let mut ready = h2.clone().ready().await.map_err(|e| e.to_string())?;
    let (resp, _) = ready.send_request(req, true).map_err(|e| e.to_string())?;
    resp.await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}
