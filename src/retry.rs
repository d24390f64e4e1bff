//! The one retry policy of every HTTP client in envbuild (wheel downloads, index
//! lookups, registries): which answers are worth another try, how long to wait, and how
//! to render an error chain into one line for the final message.

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
