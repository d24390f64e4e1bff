//! A client for the OCI distribution spec: pulling base images from registries and
//! pushing built images to them.
//!
//! - [`RegistryReference`]: `[docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]` and the docker
//!   CLI's short forms;
//! - [`Registry::pull_base`]: a base image by tag or digest (OCI or Docker schema 2
//!   manifests, indexes and manifest lists, platform selection), every blob verified by
//!   digest into the cache, where a later pull finds it without downloading;
//! - [`Registry::push`]: blobs first (skipped when present, mounted from another
//!   repository of the same registry when the cache knows one that holds them, else
//!   uploaded: monolithic below [`RegistryOptions::chunk_size`], chunked above), then each
//!   platform manifest by digest, then the index, then the tag. The bytes sent are the
//!   bytes hashed, and the registry's `Docker-Content-Digest` answers are checked;
//! - `client` (private): the one function every request goes through, which adds
//!   `Authorization` (see [`auth`]), answers a 401 challenge once, retries connection
//!   errors, timeouts, 5xx and 429 with exponential backoff and jitter (honouring
//!   `Retry-After`), and never sends `Authorization` to another host on a redirect;
//! - [`tls`]: the HTTP client of [`crate::http`] (rustls with the system roots, an
//!   extra CA file), and plain HTTP only for loopback or listed insecure registries.
//!
//! The cache also records, per registry, which repositories were seen holding which blob
//! (`locations`, a cache record per registry), so a push to a new repository can mount shared
//! layers instead of uploading them.

pub mod auth;
mod client;
mod error;
mod locations;
mod pull;
mod push;
mod reference;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::RegistryError;
pub use pull::TagResolution;
pub use push::PushReport;
pub use reference::{DOCKER_HUB, DOCKER_HUB_API_HOST, RegistryReference, RegistryReferenceError};

/// How registries are reached and how hard envbuild tries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// TLS and plain-HTTP settings.
    pub transport: tls::TransportOptions,
    /// Where credentials are looked up.
    pub auth: auth::AuthEnvironment,
    /// Most blob transfers in flight at once (at least 1 is used). Default 4.
    pub jobs: usize,
    /// Further attempts after a transient failure (connection error, timeout, HTTP 408,
    /// 429 or 5xx), per request and per blob. Default 5.
    pub retries: u32,
    /// The longest wait for an answer (plus one second per 256 KiB of request body), and
    /// for each next piece of a downloaded body. Default 60 s.
    pub timeout: Duration,
    /// The slowest body accepted (manifests, configs, layers); a slower attempt fails
    /// and is retried. Default 10 KiB/s averaged over 30 s.
    pub min_rate: crate::http::MinimumRate,
    /// Blobs up to this size are uploaded in one request; larger ones in chunks of this
    /// size (`PATCH` with `Content-Range`). Default 8 MiB.
    pub chunk_size: u64,
    /// The first retry delay; each further retry doubles it (with jitter), up to
    /// [`RegistryOptions::max_backoff`]. Default 500 ms.
    pub initial_backoff: Duration,
    /// The longest delay the backoff chooses. Default 10 s. A registry's `Retry-After`
    /// is honoured up to 30 s.
    pub max_backoff: Duration,
    /// Never touch the network: bases come from the cache (by digest, or by the digest a
    /// tag resolved to the last time it was asked for), and pushes are refused.
    pub offline: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            transport: tls::TransportOptions::default(),
            auth: auth::AuthEnvironment::default(),
            jobs: 4,
            retries: 5,
            timeout: Duration::from_secs(60),
            min_rate: crate::http::MinimumRate::default(),
            chunk_size: 8 * 1024 * 1024,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            offline: false,
        }
    }
}

/// Counts of what a [`Registry`] has done so far (for reports and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// HTTP requests sent (each attempt and each redirect hop counts).
    pub requests: u64,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// Blobs downloaded into the cache (blobs already cached are not counted).
    pub blobs_downloaded: u64,
    /// Bytes of those blobs.
    pub bytes_downloaded: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    blobs_downloaded: AtomicU64,
    bytes_downloaded: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

/// A registry client: one HTTP client and one [`auth::Authenticator`] per registry host,
/// shared by every pull and push made with it.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    options: RegistryOptions,
    authenticators: Mutex<BTreeMap<String, Arc<auth::Authenticator>>>,
    /// The base URL (`scheme://host[:port]/`) found for each registry.
    base_urls: Mutex<BTreeMap<String, url::Url>>,
    counters: Counters,
    /// Hosts this client found unreachable: tried no more.
    unreachable: crate::http::UnreachableHosts,
}

impl Registry {
    /// A client with `options`; fails when the HTTP client cannot be built (for example
    /// an unreadable CA file).
    pub fn new(options: RegistryOptions) -> Result<Self, RegistryError> {
        let http = tls::registry_http_client(&options.transport).map_err(|source| {
            RegistryError::Client {
                source: Box::new(source),
            }
        })?;
        Ok(Self {
            http,
            options,
            authenticators: Mutex::new(BTreeMap::new()),
            base_urls: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
            unreachable: crate::http::UnreachableHosts::default(),
        })
    }

    /// What this client has transferred so far.
    pub fn stats(&self) -> TransferStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TransferStats {
            requests: load(&self.counters.requests),
            retries: load(&self.counters.retries),
            blobs_downloaded: load(&self.counters.blobs_downloaded),
            bytes_downloaded: load(&self.counters.bytes_downloaded),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn a_client_can_be_shared_between_threads() {
        let registry = Registry::new(RegistryOptions::default()).unwrap();
        assert_send(&registry);
    }
}
