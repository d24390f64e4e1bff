//! GET with the retry policy `fetch` uses for downloads: transient failures (connection
//! errors, timeouts, a broken body, HTTP 408, 429 and 5xx) are retried up to
//! `FetchOptions::retries` times with exponential backoff and jitter (0.5 s doubling,
//! capped at 10 s), or after the server's `Retry-After` (capped at 30 s). Any other
//! status is handed back to the caller, which knows what a 404 means for it.
//!
//! The same policy lives in `fetch.rs`, private there; this copy keeps the index client
//! independent until the two share one helper.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};

/// First retry delay; each further retry doubles it, up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest delay between two attempts chosen by the backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);
/// Largest page accepted (the biggest projects' JSON pages are tens of MiB).
const BODY_MAX: u64 = 512 * 1024 * 1024;

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

enum Attempt {
    Done(Fetched),
    Transient {
        cause: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
}

/// GET `url`, asking for `accept`, retrying transient failures `retries` times.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &url::Url,
    accept: &str,
    retries: u32,
) -> Result<Fetched, HttpFailure> {
    let mut attempt: u32 = 0;
    loop {
        match get_once(client, url, accept).await {
            Attempt::Done(fetched) => return Ok(fetched),
            Attempt::Fatal(cause) => return Err(HttpFailure::Fatal { cause }),
            Attempt::Transient { cause, retry_after } => {
                if attempt >= retries {
                    return Err(HttpFailure::Exhausted {
                        attempts: attempt + 1,
                        last_cause: cause,
                    });
                }
                let delay = retry_after.unwrap_or_else(|| backoff(attempt));
                tracing::warn!(
                    url = %super::redact(url),
                    "index request attempt {} failed: {cause}; retrying in {:.1} s",
                    attempt + 1,
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

async fn get_once(client: &reqwest::Client, url: &url::Url, accept: &str) -> Attempt {
    let response = match client.get(url.clone()).header(ACCEPT, accept).send().await {
        Ok(response) => response,
        Err(error) => return classify(error),
    };
    let status = response.status();
    if is_transient_status(status) {
        return Attempt::Transient {
            cause: format!("the server answered {status}"),
            retry_after: retry_after(response.headers()),
        };
    }
    if response
        .content_length()
        .is_some_and(|length| length > BODY_MAX)
    {
        return Attempt::Fatal(format!("the page is larger than {BODY_MAX} bytes"));
    }
    let final_url = response.url().clone();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > BODY_MAX {
                    return Attempt::Fatal(format!("the page is larger than {BODY_MAX} bytes"));
                }
            }
            Ok(None) => break,
            Err(error) => return classify(error),
        }
    }
    Attempt::Done(Fetched {
        status,
        url: final_url,
        content_type,
        body,
    })
}

fn classify(error: reqwest::Error) -> Attempt {
    // Drop the client's copy of the URL: callers name it without credentials.
    let error = error.without_url();
    let cause = render_chain(&error);
    if error.is_timeout()
        || error.is_connect()
        || error.is_request()
        || error.is_body()
        || error.is_decode()
    {
        Attempt::Transient {
            cause,
            retry_after: None,
        }
    } else {
        Attempt::Fatal(cause)
    }
}

/// An error and its causes on one line, `outer: inner: innermost`.
fn render_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(RETRY_AFTER_MAX))
}

fn backoff(attempt: u32) -> Duration {
    let exponential = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16));
    let capped = exponential.min(BACKOFF_MAX);
    // Up to 25% jitter, so parallel clients do not retry in step.
    capped.mul_f64(1.0 + 0.25 * random_fraction())
}

/// A fraction in [0, 1) from the clock's nanoseconds: jitter needs no better randomness.
fn random_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= BACKOFF_BASE && backoff(0) < BACKOFF_BASE * 2);
        assert!(backoff(1) >= BACKOFF_BASE * 2);
        assert!(backoff(10) <= BACKOFF_MAX.mul_f64(1.25));
    }

    #[test]
    fn transient_statuses() {
        assert!(is_transient_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_transient_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient_status(StatusCode::NOT_FOUND));
        assert!(!is_transient_status(StatusCode::UNAUTHORIZED));
    }
}
