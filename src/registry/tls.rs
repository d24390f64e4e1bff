//! The HTTP client registries are reached with: rustls with the system's roots plus an
//! optional extra CA file, and plain HTTP only for loopback or listed insecure hosts.
//! (Stub: the agreed interface; to be implemented.)

use std::path::PathBuf;

/// TLS and transport settings for registries.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// Extra PEM CA certificates to trust (`--registry-ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Hosts (`host[:port]`) reached over plain HTTP (`--insecure-registry`); loopback
    /// hosts always may be.
    pub insecure: Vec<String>,
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Placeholder until implemented.
    #[error("registry transport is not implemented yet")]
    NotImplemented,
}

/// Whether `host[:port]` is reached over plain HTTP.
pub fn uses_plain_http(registry: &str, options: &TransportOptions) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        || host.starts_with("127.")
        || options.insecure.iter().any(|entry| entry == registry)
}

/// Build the HTTP client for registries.
pub fn registry_http_client(_options: &TransportOptions) -> Result<reqwest::Client, TlsError> {
    Err(TlsError::NotImplemented)
}
