//! GET with the retry policy `fetch` uses for downloads: transient failures (connection
//! errors, timeouts, a broken body, HTTP 408, 429 and 5xx) are retried up to
//! `FetchOptions::retries` times with exponential backoff and jitter (0.5 s doubling,
//! capped at 10 s), or after the server's `Retry-After` (capped at 30 s). Any other
//! status is handed back to the caller, which knows what a 404 means for it.
//! The policy itself lives in `crate::retry`, shared with `fetch` and the registry
//! client.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::retry::{
    BACKOFF_BASE, BACKOFF_MAX, backoff, is_transient_status, render_chain, retry_after,
};

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
                let delay =
                    retry_after.unwrap_or_else(|| backoff(attempt, BACKOFF_BASE, BACKOFF_MAX));
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
