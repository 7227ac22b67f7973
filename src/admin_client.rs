//! The command line's side of the admin listener: `verigate reload` and `verigate healthcheck`
//! find the running verigate through the config's `admin_listen` and ask it over HTTP.

use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("admin_listen: this command goes through the admin listener; set it in the config (or give --admin ADDR)")]
    NoAdmin,
    #[error("cannot reach verigate at {addr}: {message}")]
    Unreachable { addr: String, message: String },
}

/// The admin address named by the config at `path` (`override_addr` wins), with an
/// unspecified host (`0.0.0.0`, `[::]`) turned into loopback.
pub fn admin_addr(path: &Path, override_addr: Option<&str>) -> Result<String, AdminClientError> {
    let addr = match override_addr {
        Some(a) => a.to_string(),
        None => {
            let text = std::fs::read_to_string(path).map_err(|source| AdminClientError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let doc: serde_yaml::Value =
                serde_yaml::from_str(&text).map_err(|e| AdminClientError::Yaml {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            doc.get("admin_listen")
                .and_then(|v| v.as_str())
                .ok_or(AdminClientError::NoAdmin)?
                .to_string()
        }
    };
    Ok(addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]"))
}

/// One request to the admin listener: `(status, body)`.
pub fn call(
    addr: &str,
    method: http::Method,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), AdminClientError> {
    let unreachable = |message: String| AdminClientError::Unreachable {
        addr: addr.to_string(),
        message,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .request(method, format!("http://{addr}{path}"))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok((status, body))
    })
}

/// `verigate healthcheck`: is the running verigate ready (`GET /readyz` answers 200)?
pub fn healthcheck(path: &Path, override_addr: Option<&str>) -> Result<bool, AdminClientError> {
    let addr = admin_addr(path, override_addr)?;
    let (status, _) = call(&addr, http::Method::GET, "/readyz", Duration::from_secs(5))?;
    Ok(status == 200)
}
