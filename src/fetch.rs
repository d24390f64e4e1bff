//! Concurrent, verified downloads of locked artifacts into the content-addressed cache.
//!
//! [`fetch_all`] brings every requested artifact into the cache as an
//! [`EntryKind::Wheel`] entry keyed by the SHA-256 the lockfile records, and returns
//! the entries' paths in request order. An artifact already in the cache costs no
//! network. Otherwise its bytes are streamed, exactly as served (no content decoding),
//! into a temporary cache file, checked against the locked size while they arrive and
//! against the locked SHA-256 at the end, and only then renamed into place: a failed or
//! interrupted download leaves nothing behind.
//!
//! Bounds: a local file must be a regular file (not `/dev/zero` or a fifo); an artifact
//! whose size the lockfile does not record may not exceed
//! [`FetchOptions::max_artifact_size`] (checked while the bytes arrive, not only
//! against `Content-Length`); and a download slower than [`FetchOptions::min_rate`]
//! fails its attempt, so a server dripping bytes cannot hold a build for ever.
//!
//! Limits: this module never asks an index where a file lives (the URL comes from the
//! lockfile) and never chooses between artifacts (that is `platform::select`'s job).
//!
//! The client, the retry loop and URL redaction are the ones of [`crate::http`]: TLS
//! from the operating system's certificate store (honouring `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`), proxies from `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use reqwest::StatusCode;

use crate::cache::{Cache, CacheError, EntryKind, PendingEntry};
use crate::digest::Sha256Digest;
use crate::http::retry::{
    Failure, RetryError, RetryPolicy, is_transient_status, render_chain, retry, retry_after,
};
use crate::http::{
    Body, ByteSize, ClientError, ClientSettings, MinimumRate, SendError, UnreachableHosts,
    build_client, redact_url,
};
use crate::lock::{Artifact, ArtifactLocation, PackageName};

pub use crate::http::{ReceivedSize, USER_AGENT};

/// Size of the buffer used to copy local files into the cache.
const COPY_BUFFER: usize = 256 * 1024;

/// One artifact to bring into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The package the artifact belongs to (for messages and progress).
    pub package: PackageName,
    /// The package's version, as locked (for messages and progress).
    pub version: String,
    /// The artifact. Its `sha256` must be set: envbuild installs nothing unverified.
    pub artifact: Artifact,
}

impl FetchRequest {
    fn name(&self) -> ArtifactName {
        ArtifactName {
            package: self.package.clone(),
            version: self.version.clone(),
            filename: self.artifact.filename.clone(),
        }
    }
}

/// How [`fetch_all`] downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Most downloads in flight at once (at least 1 is used). Default 4.
    pub jobs: usize,
    /// Never touch the network: everything must already be in the cache (local files
    /// named by the lockfile are still read).
    pub offline: bool,
    /// Further attempts after the first one fails for a transient reason (connection
    /// error, timeout, HTTP 408, 429 or 5xx). Default 4, so at most 5 attempts.
    pub retries: u32,
    /// Connect timeout, and the longest wait for the answer's head or for any next
    /// part of the body. Not a deadline for the whole download, so large wheels on
    /// slow links still complete ([`FetchOptions::min_rate`] bounds those). Default 30 s.
    pub timeout: Duration,
    /// The largest artifact accepted when the lockfile records no size (with a size,
    /// exactly that many bytes are accepted). Default 2 GiB (`--max-artifact-size`).
    pub max_artifact_size: ByteSize,
    /// The slowest download (and index page) accepted; a slower attempt fails and is
    /// retried. Default 10 KiB/s averaged over 30 s.
    pub min_rate: MinimumRate,
    /// Hosts found unreachable so far (shared by clones: one record per run), tried no
    /// more.
    pub unreachable_hosts: UnreachableHosts,
}

/// The default of [`FetchOptions::max_artifact_size`].
pub const DEFAULT_MAX_ARTIFACT_SIZE: ByteSize = ByteSize::gib(2);

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            offline: false,
            retries: 4,
            timeout: Duration::from_secs(30),
            max_artifact_size: DEFAULT_MAX_ARTIFACT_SIZE,
            min_rate: MinimumRate::default(),
            unreachable_hosts: UnreachableHosts::default(),
        }
    }
}

impl FetchOptions {
    /// The retry policy of these options.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::with_retries(self.retries)
    }
}

/// Receives progress events from [`fetch_all`]. Every method has an empty default.
///
/// For an artifact found in the cache only [`FetchProgress::finish`] is called, with
/// `cached` true. For a transfer, `start` is called when the transfer begins (again on
/// every retry, after which the byte count starts over), `advance` for each part
/// received, and `finish` with `cached` false once the entry is verified and stored.
/// A failed artifact gets no `finish`.
pub trait FetchProgress: Send + Sync {
    /// A transfer of `request` begins; `total` is its size in bytes, when known.
    fn start(&self, request: &FetchRequest, total: Option<u64>) {
        let _ = (request, total);
    }
    /// `bytes` more bytes of `request` arrived.
    fn advance(&self, request: &FetchRequest, bytes: u64) {
        let _ = (request, bytes);
    }
    /// `request` is verified and in the cache; `cached` says it was there already.
    fn finish(&self, request: &FetchRequest, cached: bool) {
        let _ = (request, cached);
    }
}

/// A [`FetchProgress`] that ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl FetchProgress for NoProgress {}

/// A package, version and file name, as error messages list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactName {
    /// The package.
    pub package: PackageName,
    /// Its locked version.
    pub version: String,
    /// The artifact's file name.
    pub filename: String,
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` {} (`{}`)",
            self.package, self.version, self.filename
        )
    }
}

/// Details of [`FetchError::HashMismatch`]: an artifact whose bytes do not have the
/// SHA-256 the lockfile records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMismatch {
    /// The package.
    pub package: PackageName,
    /// Its version.
    pub version: String,
    /// The URL (without credentials) or file path.
    pub location: String,
    /// The SHA-256 the lockfile records.
    pub expected: Sha256Digest,
    /// The SHA-256 of the bytes received.
    pub actual: Sha256Digest,
}

impl fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sha256 mismatch for `{}` {} from `{}`: expected {}, got {}; the file is not the one that was locked: check the index or mirror serving it, or regenerate the lockfile if the change is expected",
            self.package,
            self.version,
            self.location,
            self.expected.hex(),
            self.actual.hex()
        )
    }
}

/// Errors from [`fetch_all`] and [`http_client`].
///
/// Locations in messages never show credentials: URLs are shown through
/// [`crate::http::redact_url`] (user information and query values hidden).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Some artifacts have no SHA-256 in the lockfile.
    #[error(
        "the lockfile records no sha256 for {}:{}\nenvbuild verifies every file it installs, so it needs a sha256 for each; regenerate the lockfile with hashes",
        count(artifacts.len(), "artifact"),
        list(artifacts)
    )]
    MissingHash {
        /// Every artifact without a SHA-256, in request order.
        artifacts: Vec<ArtifactName>,
    },

    /// Offline, and some artifacts are not in the cache.
    #[error(
        "working offline, but {} missing from the cache at `{}`:{}\nrun `envbuild fetch` with the same lockfile on a connected machine with the same `--cache-dir`, then bring that cache folder here",
        count_are(artifacts.len()),
        cache_dir.display(),
        list(artifacts)
    )]
    MissingOffline {
        /// The cache's root folder.
        cache_dir: PathBuf,
        /// Every missing artifact, in request order.
        artifacts: Vec<ArtifactName>,
    },

    /// The bytes do not have the locked SHA-256 (boxed, as two digests are large).
    #[error("{0}")]
    HashMismatch(Box<DigestMismatch>),

    /// The bytes do not have the locked size.
    #[error(
        "size mismatch for `{package}` {version} from `{location}`: expected {expected} bytes, got {actual}; the file is not the one that was locked: check the index or mirror serving it, or regenerate the lockfile if the change is expected"
    )]
    SizeMismatch {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL (without credentials) or file path.
        location: String,
        /// The size the lockfile records.
        expected: u64,
        /// What arrived.
        actual: ReceivedSize,
    },

    /// The server answered with an HTTP status that retrying will not fix.
    #[error("`{url}` answered {status} for `{package}` {version}; {}", status_hint(*status))]
    UnexpectedStatus {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL, without credentials.
        url: String,
        /// The status received.
        status: StatusCode,
    },

    /// Every attempt failed for a transient reason.
    #[error(
        "could not download `{package}` {version} from `{url}` after {}: the last one failed with: {last_cause}; {}",
        count(*attempts as usize, "attempt"),
        transient_hint(last_cause)
    )]
    RetriesExhausted {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL, without credentials.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt failed, with its causes.
        last_cause: String,
    },

    /// The transfer failed in a way retrying will not fix (e.g. a redirect loop).
    #[error("could not download `{package}` {version} from `{url}`")]
    Transfer {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL, without credentials.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },

    /// The artifact is larger than [`FetchOptions::max_artifact_size`], and the
    /// lockfile records no size for it.
    #[error(
        "`{package}` {version} from `{location}` is larger than the limit of {limit} for artifacts whose size the lockfile does not record: got {actual}; if the file is meant to be that large, raise the limit with `--max-artifact-size` (e.g. `--max-artifact-size 8GiB`), or record its `size` in the lockfile"
    )]
    TooLarge {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL (redacted) or file path.
        location: String,
        /// The limit.
        limit: ByteSize,
        /// What arrived, or was announced.
        actual: ReceivedSize,
    },

    /// A local path named by the lockfile is not a regular file.
    #[error(
        "the local file `{}` of `{package}` {version} named by the lockfile is {kind}, not a regular file; point the lockfile at the artifact file itself",
        path.display()
    )]
    NotARegularFile {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The path.
        path: PathBuf,
        /// What it is instead: `a directory`, `a device`, `a fifo`, ...
        kind: &'static str,
    },

    /// The host cannot be reached at all (its name does not resolve, or it refuses
    /// connections), now or earlier in the run: tried once, not retried.
    #[error(
        "could not download `{package}` {version} from `{url}`: {reason}; check the URL in the lockfile, the network and the proxy settings (`HTTPS_PROXY`, `NO_PROXY`)"
    )]
    Unreachable {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL, without credentials.
        url: String,
        /// The host and why.
        reason: SendError,
    },

    /// The URL's scheme is neither `http`, `https` nor `file`, or a `file` URL names
    /// no local path.
    #[error(
        "cannot download `{package}` {version} from `{url}`: envbuild reads `http`, `https` and local `file` URLs only"
    )]
    UnsupportedUrl {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The URL, without credentials.
        url: String,
    },

    /// A local file named by the lockfile could not be read.
    #[error("cannot read the local file of `{package}` {version} named by the lockfile")]
    LocalRead {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The file.
        path: PathBuf,
        /// The I/O error, naming the file.
        #[source]
        source: io::Error,
    },

    /// Writing into the cache failed.
    #[error("cannot store `{package}` {version} in the cache")]
    CacheWrite {
        /// The package.
        package: PackageName,
        /// Its version.
        version: String,
        /// The cache's error, naming the path (boxed, as it is large).
        #[source]
        source: Box<CacheError>,
    },

    /// The HTTP client could not be built (usually: no usable root certificates).
    #[error("cannot set up the HTTP client for downloads")]
    Client {
        /// The client's error.
        #[source]
        source: ClientError,
    },

    /// More than one artifact failed; each error is listed with its causes.
    #[error("{} failed:{}", count(errors.len(), "download"), list_errors(errors))]
    Several {
        /// The failures, in request order.
        errors: Vec<FetchError>,
    },
}

fn count(number: usize, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

fn count_are(number: usize) -> String {
    if number == 1 {
        "1 artifact is".to_string()
    } else {
        format!("{number} artifacts are")
    }
}

fn list(artifacts: &[ArtifactName]) -> String {
    artifacts
        .iter()
        .map(|artifact| format!("\n  - {artifact}"))
        .collect()
}

fn list_errors(errors: &[FetchError]) -> String {
    errors
        .iter()
        .map(|error| format!("\n  - {}", render_chain(error)))
        .collect()
}

fn status_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "the server refused access: check the credentials configured for this index"
        }
        StatusCode::NOT_FOUND | StatusCode::GONE => {
            "the file is not there: check the URL in the lockfile, or regenerate the lockfile"
        }
        _ => "check the URL in the lockfile and the server serving it",
    }
}

fn transient_hint(cause: &str) -> &'static str {
    if cause.contains("minimum transfer rate") {
        "the server or the network is too slow: check them and the proxy settings, or lower the minimum with `--min-transfer-rate` (e.g. `--min-transfer-rate 1KiB`, `0` turns it off)"
    } else if cause.contains("certificate") {
        "the server's certificate is not trusted: envbuild trusts the system certificate store; point `SSL_CERT_FILE` or `SSL_CERT_DIR` at your CA if a TLS proxy sits in between"
    } else {
        "check the network connection and the proxy settings (`HTTPS_PROXY`, `NO_PROXY`), then run again"
    }
}

/// The HTTP client for downloads and index pages: [`crate::http::build_client`] with
/// [`FetchOptions::timeout`] to connect and between reads.
pub fn http_client(options: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    build_client(&ClientSettings {
        timeout: options.timeout,
        ca_file: None,
    })
    .map_err(|source| FetchError::Client { source })
}

/// Bring every artifact of `requests` into `cache` and return the cache paths
/// ([`EntryKind::Wheel`] entries, keyed by the locked SHA-256) in request order.
///
/// Checks first, before any transfer: every request must carry a SHA-256
/// ([`FetchError::MissingHash`] lists all that do not), and when
/// [`FetchOptions::offline`] is set every remote artifact must already be cached
/// ([`FetchError::MissingOffline`] lists all that are not).
///
/// Cached entries (present with the locked size) are used as they are. Local files
/// (`ArtifactLocation::Path` and `file:` URLs) are copied in; `http`/`https` URLs are
/// downloaded, at most [`FetchOptions::jobs`] at once, retrying transient failures
/// with exponential backoff and jitter (or the server's `Retry-After`, capped at 30 s).
/// Each artifact is checked against its locked size and SHA-256 before it is stored.
///
/// On failure no new transfer starts, the ones in flight run to their end (what they
/// verified stays in the cache), and the error is returned: the failure itself when
/// one artifact failed, or [`FetchError::Several`] listing every failure in request
/// order. Dropping the returned future cancels every transfer and leaves no partial
/// entry behind.
pub async fn fetch_all(
    requests: &[FetchRequest],
    cache: &Cache,
    options: &FetchOptions,
    progress: Arc<dyn FetchProgress>,
) -> Result<Vec<PathBuf>, FetchError> {
    let missing_hash: Vec<ArtifactName> = requests
        .iter()
        .filter(|request| request.artifact.sha256.is_none())
        .map(FetchRequest::name)
        .collect();
    if !missing_hash.is_empty() {
        return Err(FetchError::MissingHash {
            artifacts: missing_hash,
        });
    }

    let mut paths: Vec<Option<PathBuf>> = vec![None; requests.len()];
    let mut to_fetch = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let digest = expected_digest(request);
        match cache.lookup(EntryKind::Wheel, &digest, request.artifact.size) {
            Some(path) => {
                progress.finish(request, true);
                paths[index] = Some(path);
            }
            None => to_fetch.push(index),
        }
    }

    let needs_network = |index: &usize| is_remote(&requests[*index].artifact.location);
    if options.offline {
        let missing: Vec<ArtifactName> = to_fetch
            .iter()
            .filter(|index| needs_network(index))
            .map(|&index| requests[index].name())
            .collect();
        if !missing.is_empty() {
            return Err(FetchError::MissingOffline {
                cache_dir: cache.root().to_path_buf(),
                artifacts: missing,
            });
        }
    }
    let client = if to_fetch.iter().any(needs_network) {
        Some(http_client(options)?)
    } else {
        None
    };

    let stop = AtomicBool::new(false);
    let context = Context {
        cache,
        options,
        client: client.as_ref(),
        progress: &progress,
        stop: &stop,
    };
    let mut outcomes: Vec<(usize, Option<Result<PathBuf, FetchError>>)> = stream::iter(to_fetch)
        .map(|index| {
            let context = &context;
            async move {
                // Once something failed, start nothing new; what is in flight finishes.
                if context.stop.load(Ordering::Relaxed) {
                    return (index, None);
                }
                let outcome = context.fetch_one(&requests[index]).await;
                if outcome.is_err() {
                    context.stop.store(true, Ordering::Relaxed);
                }
                (index, Some(outcome))
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;

    let mut errors = Vec::new();
    outcomes.sort_by_key(|(index, _)| *index);
    for (index, outcome) in outcomes {
        match outcome {
            Some(Ok(path)) => paths[index] = Some(path),
            Some(Err(error)) => errors.push(error),
            None => {}
        }
    }
    match errors.len() {
        0 => Ok(paths
            .into_iter()
            .map(|path| path.expect("every request was fetched or failed"))
            .collect()),
        1 => Err(errors.pop().expect("one error")),
        _ => Err(FetchError::Several { errors }),
    }
}

fn expected_digest(request: &FetchRequest) -> Sha256Digest {
    request
        .artifact
        .sha256
        .expect("fetch_all checks every sha256 first")
}

fn is_remote(location: &ArtifactLocation) -> bool {
    match location {
        ArtifactLocation::Url(url) => url.scheme() != "file",
        ArtifactLocation::Path(_) => false,
    }
}

/// Why one attempt at a download failed.
type AttemptError = Failure<FetchError>;

/// What every fetch of one [`fetch_all`] call shares.
struct Context<'a> {
    cache: &'a Cache,
    options: &'a FetchOptions,
    client: Option<&'a reqwest::Client>,
    progress: &'a Arc<dyn FetchProgress>,
    stop: &'a AtomicBool,
}

impl Context<'_> {
    async fn fetch_one(&self, request: &FetchRequest) -> Result<PathBuf, FetchError> {
        let path = match &request.artifact.location {
            ArtifactLocation::Path(path) => {
                self.copy_local(request, path.clone(), path.display().to_string())
                    .await?
            }
            ArtifactLocation::Url(url) => match url.scheme() {
                "http" | "https" => self.download(request, url).await?,
                "file" => {
                    let path = url
                        .to_file_path()
                        .map_err(|()| unsupported_url(request, url))?;
                    self.copy_local(request, path, redact_url(url)).await?
                }
                _ => return Err(unsupported_url(request, url)),
            },
        };
        self.progress.finish(request, false);
        Ok(path)
    }

    /// Copy a local file into the cache, verifying it on the way.
    async fn copy_local(
        &self,
        request: &FetchRequest,
        path: PathBuf,
        location: String,
    ) -> Result<PathBuf, FetchError> {
        let request = request.clone();
        let cache = self.cache.clone();
        let progress = Arc::clone(self.progress);
        let max_size = self.options.max_artifact_size;
        let task = tokio::task::spawn_blocking(move || {
            copy_local_blocking(&request, &cache, &*progress, &path, location, max_size)
        });
        join(task).await
    }

    /// Download `url`, retrying transient failures.
    async fn download(
        &self,
        request: &FetchRequest,
        url: &url::Url,
    ) -> Result<PathBuf, FetchError> {
        let client = self
            .client
            .expect("a client exists when something is remote");
        let outcome = retry(
            self.options.retry_policy(),
            || self.download_once(client, request, url),
            |retrying| {
                tracing::warn!(
                    package = %request.package,
                    url = %redact_url(url),
                    "download attempt {} failed: {}; retrying in {:.1} s",
                    retrying.attempt,
                    retrying.cause,
                    retrying.delay.as_secs_f64()
                );
            },
        )
        .await;
        match outcome {
            Ok(path) => Ok(path),
            Err(RetryError::Fatal(error)) => Err(error),
            Err(RetryError::Exhausted {
                attempts,
                last_cause,
            }) => Err(FetchError::RetriesExhausted {
                package: request.package.clone(),
                version: request.version.clone(),
                url: redact_url(url),
                attempts,
                last_cause,
            }),
        }
    }

    async fn download_once(
        &self,
        client: &reqwest::Client,
        request: &FetchRequest,
        url: &url::Url,
    ) -> Result<PathBuf, AttemptError> {
        let response = crate::http::send(
            client.get(url.clone()),
            self.options.timeout,
            &self.options.unreachable_hosts,
        )
        .await
        .map_err(|failure| {
            failure.map_fatal(|error| match error {
                SendError::Client(source) => FetchError::Transfer {
                    package: request.package.clone(),
                    version: request.version.clone(),
                    url: redact_url(url),
                    source,
                },
                unreachable @ SendError::Unreachable { .. } => FetchError::Unreachable {
                    package: request.package.clone(),
                    version: request.version.clone(),
                    url: redact_url(url),
                    reason: unreachable,
                },
            })
        })?;
        let status = response.status();
        if !status.is_success() {
            if is_transient_status(status) {
                return Err(AttemptError::Transient {
                    cause: format!("the server answered {status}"),
                    retry_after: retry_after(response.headers()),
                });
            }
            return Err(AttemptError::Fatal(FetchError::UnexpectedStatus {
                package: request.package.clone(),
                version: request.version.clone(),
                url: redact_url(url),
                status,
            }));
        }

        let limit = SizeLimit::of(request, self.options);
        let mut body = Body::new(response, self.options.timeout, self.options.min_rate);
        if let Some(announced) = body.content_length() {
            limit
                .check_announced(announced)
                .map_err(|error| AttemptError::Fatal(error.into_fetch_error(request, url)))?;
        }

        self.progress
            .start(request, request.artifact.size.or(body.content_length()));
        let mut pending = self
            .cache
            .begin(EntryKind::Wheel)
            .map_err(|source| AttemptError::Fatal(cache_error(request, source)))?;
        let temp_path = pending.temp_path();
        let mut received: u64 = 0;
        while let Some(chunk) = body
            .chunk()
            .await
            .map_err(|error| AttemptError::transient(error.to_string()))?
        {
            received += chunk.len() as u64;
            // Stop early: a body larger than locked (or than the limit) never verifies.
            limit
                .check_received(received)
                .map_err(|error| AttemptError::Fatal(error.into_fetch_error(request, url)))?;
            pending.write_all(&chunk).map_err(|source| {
                AttemptError::Fatal(cache_error(
                    request,
                    CacheError::Io {
                        path: temp_path.clone(),
                        source,
                    },
                ))
            })?;
            self.progress.advance(request, chunk.len() as u64);
        }

        let request_owned = request.clone();
        let cache = self.cache.clone();
        let location = redact_url(url);
        let task = tokio::task::spawn_blocking(move || {
            commit(&request_owned, &cache, pending, received, location)
        });
        join(task).await.map_err(AttemptError::Fatal)
    }
}

/// Wait for a blocking task, passing its panic on.
async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

fn copy_local_blocking(
    request: &FetchRequest,
    cache: &Cache,
    progress: &dyn FetchProgress,
    path: &Path,
    location: String,
    max_size: ByteSize,
) -> Result<PathBuf, FetchError> {
    let read_error = |source: io::Error| FetchError::LocalRead {
        package: request.package.clone(),
        version: request.version.clone(),
        path: path.to_path_buf(),
        source,
    };
    // Checked before opening, as opening a fifo waits for a writer; and again on the
    // open file, in case the path changed in between.
    let not_regular = |metadata: &std::fs::Metadata| {
        (!metadata.is_file()).then(|| FetchError::NotARegularFile {
            package: request.package.clone(),
            version: request.version.clone(),
            path: path.to_path_buf(),
            kind: file_kind(metadata),
        })
    };
    let metadata =
        fs_err::metadata(path).map_err(|error| read_error(io::Error::new(error.kind(), error)))?;
    if let Some(error) = not_regular(&metadata) {
        return Err(error);
    }
    let mut file = fs_err::File::open(path)
        .map_err(|error| read_error(io::Error::new(error.kind(), error)))?;
    let metadata = file
        .metadata()
        .map_err(|error| read_error(io::Error::new(error.kind(), error)))?;
    if let Some(error) = not_regular(&metadata) {
        return Err(error);
    }
    let length = metadata.len();
    let limit = SizeLimit::of_local(request, max_size);
    let in_location = |error: SizeError| error.into_error(request, location.clone());
    match request.artifact.size {
        Some(expected) if expected != length => {
            return Err(size_mismatch(
                request,
                location,
                expected,
                ReceivedSize::Exactly(length),
            ));
        }
        _ => limit.check_announced(length).map_err(|error| {
            // A file's length is what it is, not an announcement.
            in_location(error.exactly())
        })?,
    }

    progress.start(request, Some(length));
    let mut pending = cache
        .begin(EntryKind::Wheel)
        .map_err(|source| cache_error(request, source))?;
    let temp_path = pending.temp_path();
    let mut buffer = vec![0; COPY_BUFFER];
    let mut received: u64 = 0;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(io::Error::new(error.kind(), error))),
        };
        received += read as u64;
        // The file grew while being read.
        limit.check_received(received).map_err(&in_location)?;
        pending.write_all(&buffer[..read]).map_err(|source| {
            cache_error(
                request,
                CacheError::Io {
                    path: temp_path.clone(),
                    source,
                },
            )
        })?;
        progress.advance(request, read as u64);
    }
    commit(request, cache, pending, received, location)
}

/// Check the size, then let the cache check the digest and move the entry into place.
fn commit(
    request: &FetchRequest,
    cache: &Cache,
    pending: PendingEntry,
    received: u64,
    location: String,
) -> Result<PathBuf, FetchError> {
    let expected = expected_digest(request);
    if let Some(expected_size) = request.artifact.size
        && expected_size != received
    {
        return Err(size_mismatch(
            request,
            location,
            expected_size,
            ReceivedSize::Exactly(received),
        ));
    }
    match pending.commit(Some((expected, received))) {
        Ok(_) => Ok(cache.entry_path(EntryKind::Wheel, &expected)),
        Err(CacheError::Mismatch { actual, .. }) => {
            Err(FetchError::HashMismatch(Box::new(DigestMismatch {
                package: request.package.clone(),
                version: request.version.clone(),
                location,
                expected,
                actual,
            })))
        }
        Err(source) => Err(cache_error(request, source)),
    }
}

fn size_mismatch(
    request: &FetchRequest,
    location: String,
    expected: u64,
    actual: ReceivedSize,
) -> FetchError {
    FetchError::SizeMismatch {
        package: request.package.clone(),
        version: request.version.clone(),
        location,
        expected,
        actual,
    }
}

fn cache_error(request: &FetchRequest, source: CacheError) -> FetchError {
    FetchError::CacheWrite {
        package: request.package.clone(),
        version: request.version.clone(),
        source: Box::new(source),
    }
}

fn unsupported_url(request: &FetchRequest, url: &url::Url) -> FetchError {
    FetchError::UnsupportedUrl {
        package: request.package.clone(),
        version: request.version.clone(),
        url: redact_url(url),
    }
}

/// What a file kind is called in [`FetchError::NotARegularFile`].
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// The most bytes an artifact may have: exactly its locked size, or at most the limit.
#[derive(Debug, Clone, Copy)]
enum SizeLimit {
    Locked(u64),
    AtMost(ByteSize),
}

/// A size check that failed.
#[derive(Debug, Clone, Copy)]
enum SizeError {
    Mismatch {
        expected: u64,
        actual: ReceivedSize,
    },
    TooLarge {
        limit: ByteSize,
        actual: ReceivedSize,
    },
}

impl SizeLimit {
    fn of(request: &FetchRequest, options: &FetchOptions) -> Self {
        Self::of_local(request, options.max_artifact_size)
    }

    fn of_local(request: &FetchRequest, max_size: ByteSize) -> Self {
        match request.artifact.size {
            Some(size) => Self::Locked(size),
            None => Self::AtMost(max_size),
        }
    }

    /// Check an announced size (`Content-Length`).
    fn check_announced(self, announced: u64) -> Result<(), SizeError> {
        let actual = ReceivedSize::Announced(announced);
        match self {
            Self::Locked(expected) if announced != expected => {
                Err(SizeError::Mismatch { expected, actual })
            }
            Self::AtMost(limit) if announced > limit.0 => {
                Err(SizeError::TooLarge { limit, actual })
            }
            _ => Ok(()),
        }
    }

    /// Check the bytes received so far.
    fn check_received(self, received: u64) -> Result<(), SizeError> {
        match self {
            Self::Locked(expected) if received > expected => Err(SizeError::Mismatch {
                expected,
                actual: ReceivedSize::MoreThan(expected),
            }),
            Self::AtMost(limit) if received > limit.0 => Err(SizeError::TooLarge {
                limit,
                actual: ReceivedSize::MoreThan(limit.0),
            }),
            _ => Ok(()),
        }
    }
}

impl SizeError {
    /// The same failure, for a size that is known rather than announced.
    fn exactly(self) -> Self {
        let exact = |actual| match actual {
            ReceivedSize::Announced(size) => ReceivedSize::Exactly(size),
            other => other,
        };
        match self {
            Self::Mismatch { expected, actual } => Self::Mismatch {
                expected,
                actual: exact(actual),
            },
            Self::TooLarge { limit, actual } => Self::TooLarge {
                limit,
                actual: exact(actual),
            },
        }
    }

    fn into_fetch_error(self, request: &FetchRequest, url: &url::Url) -> FetchError {
        self.into_error(request, redact_url(url))
    }

    fn into_error(self, request: &FetchRequest, location: String) -> FetchError {
        match self {
            Self::Mismatch { expected, actual } => {
                size_mismatch(request, location, expected, actual)
            }
            Self::TooLarge { limit, actual } => FetchError::TooLarge {
                package: request.package.clone(),
                version: request.version.clone(),
                location,
                limit,
                actual,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_size_limits() {
        let locked = SizeLimit::Locked(10);
        assert!(locked.check_announced(10).is_ok());
        assert!(locked.check_received(10).is_ok());
        assert!(matches!(
            locked.check_announced(11),
            Err(SizeError::Mismatch { expected: 10, .. })
        ));
        assert!(matches!(
            locked.check_received(11),
            Err(SizeError::Mismatch {
                actual: ReceivedSize::MoreThan(10),
                ..
            })
        ));
        let capped = SizeLimit::AtMost(ByteSize(100));
        assert!(capped.check_announced(100).is_ok());
        assert!(capped.check_received(100).is_ok());
        assert!(matches!(
            capped.check_received(101),
            Err(SizeError::TooLarge {
                actual: ReceivedSize::MoreThan(100),
                ..
            })
        ));
        assert!(matches!(
            capped.check_announced(101).map_err(SizeError::exactly),
            Err(SizeError::TooLarge {
                actual: ReceivedSize::Exactly(101),
                ..
            })
        ));
    }

    #[test]
    fn client_builds() {
        http_client(&FetchOptions::default()).unwrap();
    }
}
