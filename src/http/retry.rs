//! The one retry policy and the one retry loop of every HTTP request envbuild makes
//! (wheel downloads, index pages, registries): which answers are worth another try
//! ([`is_transient_status`], [`is_transient_error`]), how long to wait ([`backoff`],
//! [`retry_after`]), the loop itself ([`retry`], generic over what one attempt does),
//! and how to render an error chain into one line for the final message.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest `Retry-After` honoured; a server asking for more gets this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// Default first delay between tries.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Default longest delay between tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Statuses worth another try: request timeout, rate limiting, and server errors.
pub fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `Retry-After` in seconds, capped at [`RETRY_AFTER_MAX`]. The HTTP-date form is
/// ignored (the backoff applies instead), as client and server clocks disagree.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(RETRY_AFTER_MAX))
}

/// Exponential backoff with jitter: between half and all of `initial * 2^attempt`,
/// capped at `max`. Jitter keeps parallel clients from retrying in step.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let full = initial.saturating_mul(1u32 << attempt.min(16)).min(max);
    full.mul_f64(0.5 + 0.5 * random_fraction())
}

/// A number in `[0, 1)`, random enough for jitter without a random-number crate:
/// every `RandomState` is seeded with fresh keys.
fn random_fraction() -> f64 {
    use std::hash::BuildHasher;
    let bits = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// How hard the retry loop tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Further attempts after the first one fails for a transient reason.
    pub retries: u32,
    /// The first delay; each further one doubles it (with jitter).
    pub initial_backoff: Duration,
    /// The longest delay the backoff chooses.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// `retries` further attempts, with the default backoff ([`BACKOFF_BASE`] doubling
    /// up to [`BACKOFF_MAX`]).
    pub fn with_retries(retries: u32) -> Self {
        Self {
            retries,
            initial_backoff: BACKOFF_BASE,
            max_backoff: BACKOFF_MAX,
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Trying again may work.
    Transient {
        /// What happened, for the final message (no credentials).
        cause: String,
        /// The server's `Retry-After`, if it said.
        retry_after: Option<Duration>,
    },
    /// Trying again will not help.
    Fatal(E),
}

impl<E> Failure<E> {
    /// A transient failure without `Retry-After`.
    pub fn transient(cause: impl Into<String>) -> Self {
        Self::Transient {
            cause: cause.into(),
            retry_after: None,
        }
    }

    /// The same failure with the fatal error mapped.
    pub fn map_fatal<F>(self, map: impl FnOnce(E) -> F) -> Failure<F> {
        match self {
            Self::Transient { cause, retry_after } => Failure::Transient { cause, retry_after },
            Self::Fatal(error) => Failure::Fatal(map(error)),
        }
    }
}

/// How the retry loop ended without a result.
#[derive(Debug)]
pub enum RetryError<E> {
    /// An attempt failed for good.
    Fatal(E),
    /// Every attempt failed for a transient reason.
    Exhausted {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        last_cause: String,
    },
}

/// A transient failure the loop is about to retry, for logs and counters.
#[derive(Debug)]
pub struct Retrying<'a> {
    /// The attempt that failed, counted from 1.
    pub attempt: u32,
    /// Why it failed.
    pub cause: &'a str,
    /// How long the loop waits before the next attempt.
    pub delay: Duration,
}

/// Run `attempt` until it succeeds, fails for good, or has failed transiently
/// `policy.retries + 1` times. Between attempts it waits the server's `Retry-After`
/// (capped at [`RETRY_AFTER_MAX`]) or the [`backoff`]; `on_retry` hears of each retry
/// first (to log it or count it).
pub async fn retry<T, E, F, Fut>(
    policy: RetryPolicy,
    mut attempt: F,
    mut on_retry: impl FnMut(&Retrying<'_>),
) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let mut failures: u32 = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => return Err(RetryError::Fatal(error)),
            Err(Failure::Transient { cause, retry_after }) => {
                failures += 1;
                if failures > policy.retries {
                    return Err(RetryError::Exhausted {
                        attempts: failures,
                        last_cause: cause,
                    });
                }
                let delay = retry_after.unwrap_or_else(|| {
                    backoff(failures - 1, policy.initial_backoff, policy.max_backoff)
                });
                on_retry(&Retrying {
                    attempt: failures,
                    cause: &cause,
                    delay,
                });
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Whether a client error is worth another try: connection errors, timeouts and broken
/// bodies are; a refused redirect or a request that cannot be built is not.
pub fn is_transient_error(error: &reqwest::Error) -> bool {
    !(error.is_redirect() || error.is_builder())
        && (error.is_timeout()
            || error.is_connect()
            || error.is_request()
            || error.is_body()
            || error.is_decode())
}

/// An error and its sources, joined with `: ` on one line.
pub fn render_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let delay = backoff(attempt, BACKOFF_BASE, BACKOFF_MAX);
            let full = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_MAX);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn retry_after_is_capped_and_dates_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(RETRY_AFTER_MAX));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[tokio::test]
    async fn ok_retry_loop_retries_transient_failures_then_gives_up() {
        let policy = RetryPolicy {
            retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut calls = 0;
        let mut heard = Vec::new();
        let outcome: Result<(), RetryError<String>> = retry(
            policy,
            || {
                calls += 1;
                let cause = format!("failure {calls}");
                async move { Err(Failure::transient(cause)) }
            },
            |retrying| heard.push(retrying.attempt),
        )
        .await;
        assert_eq!(calls, 3);
        assert_eq!(heard, [1, 2]);
        match outcome {
            Err(RetryError::Exhausted {
                attempts,
                last_cause,
            }) => {
                assert_eq!(attempts, 3);
                assert_eq!(last_cause, "failure 3");
            }
            other => panic!("{other:?}"),
        }

        let mut calls = 0;
        let outcome: Result<u32, RetryError<&str>> = retry(
            policy,
            || {
                calls += 1;
                let this = calls;
                async move {
                    match this {
                        1 => Err(Failure::Transient {
                            cause: "busy".to_string(),
                            retry_after: Some(Duration::from_millis(1)),
                        }),
                        _ => Ok(this),
                    }
                }
            },
            |_| {},
        )
        .await;
        assert_eq!(outcome.unwrap(), 2);
    }

    #[tokio::test]
    async fn err_retry_loop_stops_at_a_fatal_failure() {
        let mut calls = 0;
        let outcome: Result<(), RetryError<&str>> = retry(
            RetryPolicy::with_retries(5),
            || {
                calls += 1;
                async { Err(Failure::Fatal("gone")) }
            },
            |_| panic!("a fatal failure is not retried"),
        )
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(outcome, Err(RetryError::Fatal("gone"))));
    }

    #[test]
    fn transient_statuses() {
        for status in [503, 500, 429, 408] {
            assert!(is_transient_status(StatusCode::from_u16(status).unwrap()));
        }
        for status in [404, 403, 401, 400] {
            assert!(!is_transient_status(StatusCode::from_u16(status).unwrap()));
        }
    }
}
