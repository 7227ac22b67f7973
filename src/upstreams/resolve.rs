//! Names to addresses: a hosts file of the operator's (read afresh each time, so a changed file
//! is seen at the next resolution), then the system's resolver (getaddrinfo: /etc/hosts, DNS).

use crate::config::ResolverConfig;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot read the hosts file {path}: {source}")]
    HostsFile {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not in the hosts file (and resolver.system is false)")]
    NotInHostsFile(String),
    #[error("{name} does not resolve: {source}")]
    System {
        name: String,
        source: std::io::Error,
    },
    #[error("{0} resolves to no address")]
    Empty(String),
    #[error("resolving {0} took longer than resolver.timeout")]
    Timeout(String),
}

/// Every address `host` has on `port`, in the order the source gives them, without repeats.
/// Blocking (file read, getaddrinfo): run it off the request path.
pub fn resolve(
    cfg: &ResolverConfig,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(path) = &cfg.hosts_file {
        let text = std::fs::read_to_string(path).map_err(|source| ResolveError::HostsFile {
            path: path.display().to_string(),
            source,
        })?;
        let ips = hosts_lookup(&text, host);
        if !ips.is_empty() {
            return Ok(dedup(ips.into_iter().map(|ip| SocketAddr::new(ip, port))));
        }
        if !cfg.system {
            return Err(ResolveError::NotInHostsFile(host.to_string()));
        }
    }
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|source| ResolveError::System {
            name: host.to_string(),
            source,
        })?;
    let out = dedup(addrs);
    if out.is_empty() {
        return Err(ResolveError::Empty(host.to_string()));
    }
    Ok(out)
}

fn dedup(addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The addresses a hosts file (`/etc/hosts` form: `address name [alias...]`, `#` comments)
/// gives `name` (case-insensitive), in file order.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            fields
                .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(name))
                .then_some(ip)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines() {
        let text = "# comment\n127.0.0.1 localhost app\n10.0.0.5\tApp.internal app # two\n::1 app\nnot-an-ip app\n";
        let got = hosts_lookup(text, "app");
        assert_eq!(
            got,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.5".parse().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            hosts_lookup(text, "APP.internal."),
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(hosts_lookup(text, "two").is_empty());
        assert!(hosts_lookup(text, "ap").is_empty());
    }

    #[test]
    fn hosts_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.2 app app\n").unwrap();
        let cfg = ResolverConfig {
            hosts_file: Some(path.clone()),
            system: false,
            ..ResolverConfig::default()
        };
        assert_eq!(
            resolve(&cfg, "app", 80).unwrap(),
            vec!["127.0.0.2:80".parse::<SocketAddr>().unwrap()]
        );
        assert!(matches!(
            resolve(&cfg, "localhost", 80),
            Err(ResolveError::NotInHostsFile(_))
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            resolve(&cfg, "app", 80),
            Err(ResolveError::HostsFile { .. })
        ));
    }
}
