//! GET of index pages, through [`crate::http`]: the retry loop under the policy of
//! `fetch` (transient failures, that is connection errors, timeouts, a broken, stalled
//! or too slow body, HTTP 408, 429 and 5xx, are retried up to `FetchOptions::retries`
//! times with backoff and jitter, or after the server's `Retry-After`), a deadline for
//! the answer's head and [`FetchOptions::min_rate`] for its body. Any other status is
//! handed back to the caller, which knows what a 404 means for it.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::fetch::FetchOptions;
use crate::http::retry::{Failure, RetryError, is_transient_status, retry, retry_after};
use crate::http::{Body, ByteSize, ReadError, redact_url};

/// Largest page accepted (the biggest projects' JSON pages are tens of MiB).
const BODY_MAX: ByteSize = ByteSize::mib(512);

/// A response whose status retrying would not change.
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    /// The URL after redirects (without credentials: the client moves them into a
    /// header before sending).
    pub(crate) url: url::Url,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Why a GET gave no response.
pub(crate) enum HttpFailure {
    /// Every attempt failed for a transient reason; `last_cause` has no credentials.
    Exhausted { attempts: u32, last_cause: String },
    /// A failure retrying will not fix (a redirect loop, an invalid URL, a body too big).
    Fatal { cause: String },
}

/// GET `url`, asking for `accept`, retrying transient failures as `options` say.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &url::Url,
    accept: &str,
    options: &FetchOptions,
) -> Result<Fetched, HttpFailure> {
    let outcome = retry(
        options.retry_policy(),
        || get_once(client, url, accept, options),
        |retrying| {
            tracing::warn!(
                url = %redact_url(url),
                "index request attempt {} failed: {}; retrying in {:.1} s",
                retrying.attempt,
                retrying.cause,
                retrying.delay.as_secs_f64()
            );
        },
    )
    .await;
    outcome.map_err(|error| match error {
        RetryError::Fatal(cause) => HttpFailure::Fatal { cause },
        RetryError::Exhausted {
            attempts,
            last_cause,
        } => HttpFailure::Exhausted {
            attempts,
            last_cause,
        },
    })
}

async fn get_once(
    client: &reqwest::Client,
    url: &url::Url,
    accept: &str,
    options: &FetchOptions,
) -> Result<Fetched, Failure<String>> {
    let request = client.get(url.clone()).header(ACCEPT, accept);
    let response = crate::http::send(request, options.timeout, &options.unreachable_hosts)
        .await
        .map_err(|failure| failure.map_fatal(|error| error.to_string()))?;
    let status = response.status();
    if is_transient_status(status) {
        return Err(Failure::Transient {
            cause: format!("the server answered {status}"),
            retry_after: retry_after(response.headers()),
        });
    }
    let final_url = response.url().clone();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = Body::new(response, options.timeout, options.min_rate)
        .read_to_end(BODY_MAX)
        .await
        .map_err(|error| match error {
            ReadError::Body(error) => Failure::transient(error.to_string()),
            too_large @ ReadError::TooLarge { .. } => Failure::Fatal(too_large.to_string()),
        })?;
    Ok(Fetched {
        status,
        url: final_url,
        content_type,
        body,
    })
}
