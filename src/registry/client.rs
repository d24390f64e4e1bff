//! The one path every registry request takes ([`Registry::send_once`] for one attempt,
//! [`Registry::send`] with retries):
//!
//! - the registry's base URL is found once per registry by pinging `/v2/` over each
//!   scheme [`tls::schemes`] allows (HTTPS, and for loopback or insecure registries
//!   then plain HTTP), keeping the first that answers as a registry does (200 or 401);
//! - `Authorization` comes from the registry's [`Authenticator`] for the request's
//!   scopes, and is only sent to the registry's own host (upload locations elsewhere,
//!   and redirect targets, get none: the client from [`tls::registry_http_client`]
//!   strips it on cross-host redirects);
//! - a 401 is answered by [`Authenticator::on_challenge`] once, then the request is
//!   sent again; a second 401, or a 403, is [`RegistryError::Denied`];
//! - connection errors, timeouts, 408, 429 and 5xx are transient: [`Registry::send`]
//!   retries them up to [`RegistryOptions::retries`] times with exponential backoff and
//!   jitter, or after the registry's `Retry-After` (capped at
//!   [`crate::http::retry::RETRY_AFTER_MAX`]), in the one loop of [`crate::http::retry`];
//! - the answer's head must come within the timeout (plus time to send the body), and
//!   bodies are read under the read timeout and [`RegistryOptions::min_rate`].
//!
//! Requests that change an upload session (`PATCH`, the closing `PUT`) are not retried
//! in place: whether a failed one reached the registry is unknown, so the caller asks
//! the registry where the upload stands, or starts the blob again (see `push`).
//!
//! [`RegistryOptions::retries`]: super::RegistryOptions::retries

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::auth::{self, Authenticator, Scope};
use super::error::{RegistryError, error_detail};
use super::reference::api_host;
use super::{Counters, Registry, tls};
use crate::http::retry::{RetryError, RetryPolicy, retry};
pub(crate) use crate::http::retry::{is_transient_status, render_chain, retry_after};
use crate::http::{Body, SendError};

/// Most bytes of an error answer read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Extra time allowed to send a request body, per this many bytes.
const BODY_BYTES_PER_SECOND: u64 = 256 * 1024;

/// Where a request goes, for authentication and messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The registry name (`host[:port]`, `docker.io` for Docker Hub).
    pub registry: &'a str,
    /// The repository.
    pub repository: &'a str,
}

/// One request, re-sendable.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub scopes: Vec<Scope>,
    /// What the request is for, in messages: `manifest \`v1\``, `upload of blob …`.
    pub what: String,
}

impl Target<'_> {
    /// `registry/repository`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl Call {
    /// A request without body.
    pub fn new(method: Method, url: Url, scopes: Vec<Scope>, what: String) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            scopes,
            what,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Set the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }
}

/// Why one attempt failed.
pub(crate) type Failure = crate::http::retry::Failure<RegistryError>;

/// Why sending a request failed.
type SendFailure = crate::http::retry::Failure<SendError>;

impl From<RegistryError> for Failure {
    fn from(error: RegistryError) -> Self {
        Self::Fatal(error)
    }
}

impl Registry {
    /// The authenticator of `registry`, made on first use with its credential.
    async fn authenticator(&self, registry: &str) -> Result<Arc<Authenticator>, RegistryError> {
        if let Some(found) = self.lock_authenticators().get(registry) {
            return Ok(Arc::clone(found));
        }
        // Credential helpers are programs: run them off the async threads.
        let name = registry.to_string();
        let environment = self.options.auth.clone();
        let credential =
            tokio::task::spawn_blocking(move || auth::credentials_for(&name, &environment))
                .await
                .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
                .map_err(|source| RegistryError::Credentials {
                    registry: registry.to_string(),
                    source: Box::new(source),
                })?;
        let made = Arc::new(Authenticator::new(self.http.clone(), registry, credential));
        let mut authenticators = self.lock_authenticators();
        Ok(Arc::clone(
            authenticators.entry(registry.to_string()).or_insert(made),
        ))
    }

    fn lock_authenticators(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Arc<Authenticator>>> {
        self.authenticators
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `scheme://host[:port]/` of `registry`, chosen by pinging `/v2/` on first use.
    pub(crate) async fn base_url(&self, target: Target<'_>) -> Result<Url, RegistryError> {
        if let Some(found) = self
            .base_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(target.registry)
        {
            return Ok(found.clone());
        }
        let host = api_host(target.registry);
        let schemes = tls::schemes(host, &self.options.transport);
        let found = self
            .with_retries(target, "the registry's `/v2/` endpoint", || {
                self.ping(target, host, schemes)
            })
            .await?;
        self.base_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.registry.to_string(), found.clone());
        Ok(found)
    }

    /// One round of pings over `schemes`; the first answering as a registry wins.
    async fn ping(&self, target: Target<'_>, host: &str, schemes: &[&str]) -> Result<Url, Failure> {
        let mut causes = Vec::new();
        for scheme in schemes {
            let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|error| {
                RegistryError::Redirect {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what: "the registry's address".to_string(),
                    reason: format!("`{host}` does not make a URL: {error}"),
                }
            })?;
            let url = base.join("v2/").expect("a relative path joins");
            Counters::add(&self.counters.requests, 1);
            match crate::http::send(self.http.get(url), self.options.timeout, &self.unreachable)
                .await
            {
                Ok(response)
                    if response.status().is_success()
                        || response.status() == StatusCode::UNAUTHORIZED =>
                {
                    return Ok(base);
                }
                Ok(response) if is_transient_status(response.status()) => {
                    return Err(Failure::Transient {
                        cause: format!("{scheme}: HTTP {}", response.status()),
                        retry_after: retry_after(response.headers()),
                    });
                }
                Ok(response) => causes.push(format!("{scheme}: HTTP {}", response.status())),
                Err(SendFailure::Transient { cause, .. }) => {
                    causes.push(format!("{scheme}: {cause}"))
                }
                Err(SendFailure::Fatal(reason @ SendError::Unreachable { .. })) => {
                    // The host itself is unreachable: no scheme nor retry will help.
                    return Err(Failure::Fatal(RegistryError::Unreachable {
                        registry: target.registry.to_string(),
                        repository: target.repository.to_string(),
                        what: "the registry's `/v2/` endpoint".to_string(),
                        reason: Box::new(reason),
                    }));
                }
                Err(SendFailure::Fatal(error)) => causes.push(format!("{scheme}: {error}")),
            }
        }
        Err(Failure::Transient {
            cause: causes.join("; "),
            retry_after: None,
        })
    }

    /// The URL of `path` (relative, e.g. `v2/<name>/manifests/<ref>`) on the registry.
    pub(crate) async fn url(&self, target: Target<'_>, path: &str) -> Result<Url, RegistryError> {
        let base = self.base_url(target).await?;
        base.join(path).map_err(|error| RegistryError::Redirect {
            registry: target.registry.to_string(),
            repository: target.repository.to_string(),
            what: format!("`{path}`"),
            reason: format!("it does not make a URL: {error}"),
        })
    }

    /// Send `call` once: authorization, one challenge round, and transient statuses
    /// turned into [`Failure::Transient`]. Any other answer is returned for the caller
    /// to judge (see [`Registry::expect`]).
    pub(crate) async fn send_once(
        &self,
        target: Target<'_>,
        call: &Call,
    ) -> Result<Response, Failure> {
        let authenticator = self.authenticator(target.registry).await?;
        let base = self.base_url(target).await?;
        let same_host = authority(&call.url) == authority(&base);
        let body_length = call.body.as_ref().map_or(0, Vec::len) as u64;
        let deadline =
            self.options.timeout + Duration::from_secs(body_length / BODY_BYTES_PER_SECOND);
        let mut challenged = false;
        loop {
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            let mut sent = None;
            if same_host
                && let Some(value) = authenticator
                    .header(&call.scopes)
                    .await
                    .map_err(|source| self.authentication_error(target, call, source))?
            {
                sent = Some(value.clone());
                request = request.header(AUTHORIZATION, value);
            }
            request = match &call.body {
                Some(body) => request.body(body.clone()),
                None if matches!(call.method, Method::POST | Method::PUT | Method::PATCH) => {
                    request.header(CONTENT_LENGTH, "0").body(Vec::new())
                }
                None => request,
            };
            Counters::add(&self.counters.requests, 1);
            let response = crate::http::send(request, deadline, &self.unreachable)
                .await
                .map_err(|failure| self.classify(target, call, failure))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && same_host {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string);
                if let Some(challenge) = challenge {
                    // Telling the authenticator what was sent lets it say "these
                    // credentials were refused" after the retry, instead of a bare 401.
                    authenticator
                        .on_challenge_after(&challenge, &call.scopes, sent.as_ref())
                        .await
                        .map_err(|source| self.authentication_error(target, call, source))?;
                    if !challenged {
                        challenged = true;
                        continue;
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let detail = read_error_detail(response, self.options.timeout).await;
                return Err(Failure::Fatal(RegistryError::Denied {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what: call.what.clone(),
                    status,
                    detail,
                    access: access(&call.scopes),
                }));
            }
            if is_transient_status(status) {
                let retry_after = retry_after(response.headers());
                let detail = read_error_detail(response, self.options.timeout).await;
                return Err(Failure::Transient {
                    cause: format!("{}: HTTP {status}{detail}", call.method),
                    retry_after,
                });
            }
            return Ok(response);
        }
    }

    /// Send `call`, retrying transient failures (see the module documentation).
    pub(crate) async fn send(
        &self,
        target: Target<'_>,
        call: &Call,
    ) -> Result<Response, RegistryError> {
        self.with_retries(target, &call.what, || self.send_once(target, call))
            .await
    }

    /// Run `attempt` until it succeeds, fails for good, or has failed transiently
    /// [`RegistryOptions::retries`] + 1 times (the loop of [`crate::http::retry`]).
    ///
    /// [`RegistryOptions::retries`]: super::RegistryOptions::retries
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        target: Target<'_>,
        what: &str,
        attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let outcome = retry(self.retry_policy(), attempt, |retrying| {
            tracing::warn!(
                registry = target.registry,
                repository = target.repository,
                "{what}: attempt {} failed: {}; retrying in {:.1} s",
                retrying.attempt,
                retrying.cause,
                retrying.delay.as_secs_f64()
            );
            Counters::add(&self.counters.retries, 1);
        })
        .await;
        outcome.map_err(|error| match error {
            RetryError::Fatal(error) => error,
            RetryError::Exhausted {
                attempts,
                last_cause,
            } => RegistryError::RetriesExhausted {
                registry: target.registry.to_string(),
                repository: target.repository.to_string(),
                what: what.to_string(),
                attempts,
                cause: last_cause,
            },
        })
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.options.retries,
            initial_backoff: self.options.initial_backoff,
            max_backoff: self.options.max_backoff,
        }
    }

    /// Exponential backoff with jitter: between half and all of
    /// `initial_backoff * 2^attempt`, capped at `max_backoff`. Jitter keeps parallel
    /// uploads from retrying in step.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        crate::http::retry::backoff(
            attempt,
            self.options.initial_backoff,
            self.options.max_backoff,
        )
    }

    /// `response`'s body, to be read under the timeout and the minimum rate.
    pub(crate) fn body(&self, response: Response) -> Body {
        Body::new(response, self.options.timeout, self.options.min_rate)
    }

    /// Turn an answer with a status other than `expected` into an error.
    pub(crate) async fn expect(
        &self,
        target: Target<'_>,
        what: &str,
        response: Response,
        expected: &[StatusCode],
    ) -> Result<Response, RegistryError> {
        if expected.contains(&response.status()) {
            return Ok(response);
        }
        Err(self.unexpected(target, what, response).await)
    }

    /// The error for an answer whose status the protocol does not allow here.
    pub(crate) async fn unexpected(
        &self,
        target: Target<'_>,
        what: &str,
        response: Response,
    ) -> RegistryError {
        let status = response.status();
        let detail = read_error_detail(response, self.options.timeout).await;
        RegistryError::UnexpectedStatus {
            registry: target.registry.to_string(),
            repository: target.repository.to_string(),
            what: what.to_string(),
            status,
            detail,
        }
    }

    fn authentication_error(
        &self,
        target: Target<'_>,
        call: &Call,
        source: auth::AuthError,
    ) -> Failure {
        Failure::Fatal(RegistryError::Authentication {
            registry: target.registry.to_string(),
            repository: target.repository.to_string(),
            what: call.what.clone(),
            source: Box::new(source),
        })
    }

    /// A failed send as the registry reports it: a transient cause names the method;
    /// a fatal one (a refused redirect, an unusable request) is
    /// [`RegistryError::Redirect`]. (The message names the request itself: the client's
    /// URL, which may carry signed upload state, was already removed.)
    fn classify(&self, target: Target<'_>, call: &Call, failure: SendFailure) -> Failure {
        match failure {
            SendFailure::Transient { cause, retry_after } => Failure::Transient {
                cause: format!("{}: {cause}", call.method),
                retry_after,
            },
            SendFailure::Fatal(reason @ SendError::Unreachable { .. }) => {
                Failure::Fatal(RegistryError::Unreachable {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what: call.what.clone(),
                    reason: Box::new(reason),
                })
            }
            SendFailure::Fatal(SendError::Client(error)) => {
                Failure::Fatal(RegistryError::Redirect {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what: call.what.clone(),
                    reason: render_chain(&error),
                })
            }
        }
    }
}

/// `host:port` of a URL (with the scheme's default port).
fn authority(url: &Url) -> (String, Option<u16>, String) {
    (
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default(),
        url.scheme().to_string(),
    )
}

/// `pull from` or `push to`, for [`RegistryError::Denied`].
fn access(scopes: &[Scope]) -> &'static str {
    if scopes
        .iter()
        .any(|scope| matches!(scope, Scope::PullPush(_)))
    {
        "push to"
    } else {
        "pull from"
    }
}

/// The error detail of an answer's body (read up to [`ERROR_BODY_LIMIT`] bytes).
pub(crate) async fn read_error_detail(response: Response, timeout: Duration) -> String {
    error_detail(&read_limited(response, ERROR_BODY_LIMIT, timeout).await)
}

/// Up to `limit` bytes of a body; whatever arrived when it fails, or when `timeout`
/// has passed in all (an error body is not worth waiting longer for, whatever pace it
/// arrives at).
pub(crate) async fn read_limited(
    mut response: Response,
    limit: usize,
    timeout: Duration,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while bytes.len() < limit {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    bytes.truncate(limit);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryOptions;

    #[test]
    fn backoff_grows_and_is_capped() {
        let registry = Registry::new(RegistryOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..RegistryOptions::default()
        })
        .unwrap();
        for attempt in 0..20 {
            let delay = registry.backoff(attempt);
            let full = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(2));
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn transient_statuses() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(status).unwrap()));
        }
        for status in [400, 401, 403, 404, 416] {
            assert!(!is_transient_status(StatusCode::from_u16(status).unwrap()));
        }
    }

    #[test]
    fn authorization_only_for_the_registry_host() {
        let base = Url::parse("https://registry.test/").unwrap();
        let same = Url::parse("https://registry.test:443/v2/a/blobs/uploads/x").unwrap();
        let other = Url::parse("https://storage.test/upload/x").unwrap();
        let downgraded = Url::parse("http://registry.test/v2/").unwrap();
        assert_eq!(authority(&same), authority(&base));
        assert_ne!(authority(&other), authority(&base));
        assert_ne!(authority(&downgraded), authority(&base));
    }
}
