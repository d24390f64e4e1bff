//! How registries are reached: the client of [`crate::http::build_client`] (rustls with
//! the system's roots plus an optional extra CA file), and plain HTTP only for loopback
//! or listed insecure hosts.
//!
//! Redirects (blob GETs are often sent to a CDN) follow the one policy of
//! [`crate::http`]: at most [`crate::http::MAX_REDIRECTS`], never from HTTPS down to
//! plain HTTP, no `Referer`, and `Authorization` dropped whenever a hop changes host,
//! port or scheme, so registry credentials and tokens never reach another host.

use std::path::PathBuf;
use std::time::Duration;

use crate::http::{ClientError, ClientSettings, build_client};

/// Connect and read timeout of the registry client: a registry that accepts no
/// connection, or sends nothing for this long, has failed this attempt.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(60);

/// TLS and transport settings for registries.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// Extra PEM CA certificates to trust (`--registry-ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Hosts (`host[:port]`) reached over plain HTTP (`--insecure-registry`); loopback
    /// hosts always may be.
    pub insecure: Vec<String>,
}

/// Whether `host[:port]` is reached over plain HTTP.
pub fn uses_plain_http(registry: &str, options: &TransportOptions) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        || host.starts_with("127.")
        || options.insecure.iter().any(|entry| entry == registry)
}

/// The URL schemes to try for `registry`, in order: `https` only, or — for the hosts
/// [`uses_plain_http`] allows — `https` first and then `http`, as the docker CLI does
/// for insecure registries, so a loopback registry serving TLS is still reached over TLS.
pub fn schemes(registry: &str, options: &TransportOptions) -> &'static [&'static str] {
    if uses_plain_http(registry, options) {
        &["https", "http"]
    } else {
        &["https"]
    }
}

/// The HTTP client for registries: [`crate::http::build_client`] with the certificates
/// of [`TransportOptions::ca_file`] and [`REGISTRY_TIMEOUT`] to connect and between reads.
pub fn registry_http_client(options: &TransportOptions) -> Result<reqwest::Client, ClientError> {
    build_client(&ClientSettings {
        timeout: REGISTRY_TIMEOUT,
        ca_file: options.ca_file.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_hosts_use_plain_http() {
        let options = TransportOptions {
            ca_file: None,
            insecure: vec!["registry.internal:5000".to_string()],
        };
        assert!(uses_plain_http("127.0.0.1:5000", &options));
        assert!(uses_plain_http("localhost:5000", &options));
        assert!(uses_plain_http("[::1]:5000", &options));
        assert!(uses_plain_http("registry.internal:5000", &options));
        assert!(!uses_plain_http("registry.internal", &options));
        assert!(!uses_plain_http("example.test:5000", &options));
        assert_eq!(schemes("127.0.0.1:5000", &options), ["https", "http"]);
        assert_eq!(schemes("example.test", &options), ["https"]);
    }

    #[test]
    fn ok_client_without_ca_file() {
        registry_http_client(&TransportOptions::default()).unwrap();
    }
}
