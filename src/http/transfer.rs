//! Bounds on one transfer, so a lying or broken server cannot keep envbuild busy for
//! ever nor fill the disk: a deadline for the answer's head ([`send`]), and for its body
//! ([`Body`]) the longest silence between two pieces plus a minimum transfer rate over a
//! sliding window ([`MinimumRate`]: by default a body averaging less than 10 KiB/s over
//! any 30 s fails, so a server dripping a byte every few seconds fails in bounded time).
//! Size limits depend on what is transferred and stay with the callers; [`ByteSize`]
//! writes and reads them (`512MiB`, `4GiB`), and [`ReceivedSize`] says what arrived.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::retry::{Failure, is_transient_error, render_chain};

/// A number of bytes, as flags write it: a whole number with an optional unit, binary
/// (`KiB`, `MiB`, `GiB`, `TiB`, also `K`, `M`, `G`, `T`) or decimal (`kB`, `MB`, `GB`,
/// `TB`), case-insensitive: `512MiB`, `4GiB`, `2000000`. Shown in the largest binary
/// unit that divides it (`2 GiB`), else in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        Self(n * 1024 * 1024 * 1024)
    }
}

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a size: {reason}; write a whole number with an optional unit, e.g. `512MiB`, `4GiB` or `2000000`"
)]
pub struct ByteSizeError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ByteSizeError {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let digits = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        if digits == 0 {
            return Err(error("it does not start with a number"));
        }
        let number: u64 = trimmed[..digits]
            .parse()
            .map_err(|_| error("the number is too large"))?;
        let unit = trimmed[digits..].trim_start().to_ascii_lowercase();
        let factor: u64 = match unit.as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => {
                return Err(error(
                    "the unit is not one of B, KiB, MiB, GiB, TiB, kB, MB, GB, TB",
                ));
            }
        };
        number
            .checked_mul(factor)
            .map(Self)
            .ok_or_else(|| error("the size is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            let size = 1u64 << shift;
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        if self.0 == 1 {
            f.write_str("1 byte")
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// The slowest body accepted: fewer than `bytes_per_second` on average over any
/// `window` (once a body has taken that long) fails the attempt. `bytes_per_second`
/// 0 turns the check off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinimumRate {
    /// The lowest average rate, in bytes per second.
    pub bytes_per_second: u64,
    /// The span the rate is averaged over.
    pub window: Duration,
}

impl MinimumRate {
    /// No minimum.
    pub const OFF: Self = Self {
        bytes_per_second: 0,
        window: Duration::from_secs(30),
    };

    /// Bytes that must arrive within every window.
    fn bytes_per_window(&self) -> u64 {
        let millis = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        self.bytes_per_second.saturating_mul(millis) / 1000
    }
}

impl Default for MinimumRate {
    /// 10 KiB/s over 30 s.
    fn default() -> Self {
        Self {
            bytes_per_second: 10 * 1024,
            window: Duration::from_secs(30),
        }
    }
}

impl fmt::Display for MinimumRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/s averaged over {} s",
            ByteSize(self.bytes_per_second),
            self.window.as_secs_f64()
        )
    }
}

/// Tracks a body's progress against a [`MinimumRate`].
///
/// It keeps samples `(time, bytes so far)`, at most one per 1/64 of the window (so a
/// body in tiny pieces costs little memory; that granularity only ever makes the check
/// more lenient). At time `t` the bytes of the last window are `total - count(t -
/// window)`; with no further byte, the check first fails at `t_j + window`, where `j` is
/// the first sample whose count is less than one window's worth below the total.
#[derive(Debug)]
struct RateGuard {
    minimum: MinimumRate,
    samples: VecDeque<(Instant, u64)>,
    total: u64,
}

impl RateGuard {
    fn new(minimum: MinimumRate, now: Instant) -> Self {
        Self {
            minimum,
            samples: VecDeque::from([(now, 0)]),
            total: 0,
        }
    }

    fn record(&mut self, now: Instant, bytes: u64) {
        self.total += bytes;
        let granularity = self.minimum.window / 64;
        let last = self.samples.back().map_or(now, |(time, _)| *time);
        if now.saturating_duration_since(last) >= granularity {
            self.samples.push_back((now, self.total));
        }
        // Samples a full window's worth below the total can never set a deadline again.
        let need = self.minimum.bytes_per_window();
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(_, count)| self.total - count >= need)
        {
            self.samples.pop_front();
        }
    }

    /// When the check fails if no further byte arrives; `None` when it is off.
    fn deadline(&self) -> Option<Instant> {
        if self.minimum.bytes_per_second == 0 {
            return None;
        }
        let need = self.minimum.bytes_per_window();
        let (time, _) = self
            .samples
            .iter()
            .find(|(_, count)| self.total - count < need)
            .or(self.samples.back())?;
        Some(*time + self.minimum.window)
    }

    /// Bytes received within the window before `now`.
    fn in_window(&self, now: Instant) -> u64 {
        let start = now.checked_sub(self.minimum.window);
        let before = self
            .samples
            .iter()
            .take_while(|(time, _)| start.is_some_and(|start| *time <= start))
            .last()
            .map_or(0, |(_, count)| *count);
        self.total - before
    }
}

/// Why reading a body failed; every case is worth another attempt.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection broke (its URL is removed: callers name the URL themselves).
    #[error("the answer broke off: {}", render_chain(.0))]
    Broken(reqwest::Error),
    /// Nothing arrived for this long.
    #[error("the answer stalled for {:.1} s", .0.as_secs_f64())]
    Stalled(Duration),
    /// The body arrived slower than the minimum rate.
    #[error(
        "the answer arrived slower than the minimum transfer rate of {minimum} ({received} bytes in the last {:.1} s)",
        minimum.window.as_secs_f64()
    )]
    TooSlow {
        /// The minimum.
        minimum: MinimumRate,
        /// Bytes received within the last window.
        received: u64,
    },
}

/// A response body read piece by piece under a read timeout and a [`MinimumRate`].
#[derive(Debug)]
pub struct Body {
    response: reqwest::Response,
    read_timeout: Duration,
    guard: RateGuard,
}

impl Body {
    /// Read `response`'s body: each piece must come within `read_timeout`, and the
    /// whole at `minimum` or faster.
    pub fn new(response: reqwest::Response, read_timeout: Duration, minimum: MinimumRate) -> Self {
        Self {
            response,
            read_timeout,
            guard: RateGuard::new(minimum, Instant::now()),
        }
    }

    /// The answer's `Content-Length`, if it sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.guard.total
    }

    /// The next piece, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, BodyError> {
        let read_deadline = Instant::now() + self.read_timeout;
        let rate_deadline = self.guard.deadline();
        let deadline = rate_deadline.map_or(read_deadline, |rate| rate.min(read_deadline));
        match tokio::time::timeout_at(deadline, self.response.chunk()).await {
            Ok(Ok(Some(piece))) => {
                self.guard.record(Instant::now(), piece.len() as u64);
                Ok(Some(piece))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(error)) => Err(BodyError::Broken(error.without_url())),
            Err(_) if rate_deadline.is_some_and(|rate| rate <= read_deadline) => {
                Err(BodyError::TooSlow {
                    minimum: self.guard.minimum,
                    received: self.guard.in_window(Instant::now()),
                })
            }
            Err(_) => Err(BodyError::Stalled(self.read_timeout)),
        }
    }
}

/// Why [`Body::read_to_end`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body could not be read (worth another attempt).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The body is larger than the limit, by its `Content-Length` or its bytes.
    #[error("the answer is larger than {limit}")]
    TooLarge {
        /// The limit.
        limit: ByteSize,
    },
}

impl Body {
    /// The whole body, refused once it passes `limit` bytes (or announces more).
    pub async fn read_to_end(mut self, limit: ByteSize) -> Result<Vec<u8>, ReadError> {
        if self.content_length().is_some_and(|length| length > limit.0) {
            return Err(ReadError::TooLarge { limit });
        }
        let mut bytes = Vec::new();
        while let Some(piece) = self.chunk().await? {
            if (bytes.len() + piece.len()) as u64 > limit.0 {
                return Err(ReadError::TooLarge { limit });
            }
            bytes.extend_from_slice(&piece);
        }
        Ok(bytes)
    }
}

/// The hosts a run found unreachable (their name does not resolve, or they refuse
/// connections), with why: a circuit breaker. Such a host is tried once; every later
/// request to it in the run fails at once with the first cause, instead of being
/// retried for every package. Clones share one record, so a run keeps one for all its
/// requests.
#[derive(Debug, Clone, Default)]
pub struct UnreachableHosts(Arc<Mutex<BTreeMap<String, String>>>);

impl PartialEq for UnreachableHosts {
    /// The same record.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for UnreachableHosts {}

impl UnreachableHosts {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why `host` was found unreachable, if it was.
    pub fn cause(&self, host: &str) -> Option<String> {
        self.lock().get(host).cloned()
    }

    fn record(&self, host: &str, cause: &str) {
        self.lock()
            .entry(host.to_string())
            .or_insert_with(|| cause.to_string());
    }
}

/// `host:port` of a URL, as [`UnreachableHosts`] keys it.
fn host_key(url: &url::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => url.scheme().to_string(),
    }
}

/// Whether a client error says the host cannot be reached at all: its name does not
/// resolve, or it refuses the connection.
fn is_unreachable(error: &reqwest::Error) -> bool {
    if !error.is_connect() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        // hyper-util's connector names a failed lookup so; the resolver's own error
        // carries no kind to test.
        if cause.to_string().starts_with("dns error") {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Why [`send`] failed for good.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A refused redirect or an unusable request (the client's error, its URL removed:
    /// callers name the URL themselves).
    #[error("{}", render_chain(.0))]
    Client(reqwest::Error),
    /// The host's name does not resolve or it refuses connections, on this request or
    /// an earlier one of the run (see [`UnreachableHosts`]).
    #[error("`{host}` cannot be reached ({cause}); envbuild does not try it again in this run")]
    Unreachable {
        /// `host:port`.
        host: String,
        /// Why, as the first failed request found.
        cause: String,
    },
}

/// Send `request` and wait at most `deadline` for the answer's head. Connection
/// errors, timeouts and a late head are transient; a host that cannot be reached at
/// all is recorded in `unreachable` and fails this and every later request to it
/// ([`SendError::Unreachable`]); anything else (a refused redirect, an unusable
/// request) is fatal.
pub async fn send(
    request: reqwest::RequestBuilder,
    deadline: Duration,
    unreachable: &UnreachableHosts,
) -> Result<reqwest::Response, Failure<SendError>> {
    let (client, request) = request.build_split();
    let request =
        request.map_err(|error| Failure::Fatal(SendError::Client(error.without_url())))?;
    let host = host_key(request.url());
    if let Some(cause) = unreachable.cause(&host) {
        return Err(Failure::Fatal(SendError::Unreachable { host, cause }));
    }
    match tokio::time::timeout(deadline, client.execute(request)).await {
        Err(_) => Err(Failure::transient(format!(
            "no answer within {:.1} s",
            deadline.as_secs_f64()
        ))),
        Ok(Err(error)) => {
            let error = error.without_url();
            if is_unreachable(&error) {
                let cause = render_chain(&error);
                unreachable.record(&host, &cause);
                let cause = unreachable.cause(&host).unwrap_or(cause);
                Err(Failure::Fatal(SendError::Unreachable { host, cause }))
            } else if is_transient_error(&error) {
                Err(Failure::transient(render_chain(&error)))
            } else {
                Err(Failure::Fatal(SendError::Client(error)))
            }
        }
        Ok(Ok(response)) => Ok(response),
    }
}

/// How many bytes arrived when a size check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceivedSize {
    /// The whole body, of this many bytes.
    Exactly(u64),
    /// The transfer was stopped once it passed this many bytes.
    MoreThan(u64),
    /// The server announced this `Content-Length`, so nothing was downloaded.
    Announced(u64),
}

impl fmt::Display for ReceivedSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(size) => write!(f, "{size} bytes"),
            Self::MoreThan(size) => write!(f, "more than {size} bytes (stopped there)"),
            Self::Announced(size) => write!(f, "a `Content-Length` of {size} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_byte_sizes_parse_and_show() {
        let cases = [
            ("512MiB", 512 << 20),
            ("4GiB", 4 << 30),
            ("4 gib", 4 << 30),
            ("2G", 2 << 30),
            ("10KiB", 10 << 10),
            ("1kB", 1000),
            ("3MB", 3_000_000),
            ("2000000", 2_000_000),
            ("0", 0),
            ("7b", 7),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        assert_eq!(ByteSize::gib(2).to_string(), "2 GiB");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536 KiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
        assert_eq!(ByteSize(1).to_string(), "1 byte");
        for size in [ByteSize::mib(512), ByteSize(12345), ByteSize::gib(4)] {
            let shown = size.to_string().replace(' ', "");
            assert_eq!(shown.trim_end_matches("bytes").parse(), Ok(size));
        }
    }

    #[test]
    fn err_byte_sizes() {
        for text in ["", "MiB", "-1GiB", "1.5GiB", "4 gigs", "99999999999TiB"] {
            let error = text.parse::<ByteSize>().unwrap_err();
            assert!(error.to_string().contains("e.g. `512MiB`"), "{error}");
        }
    }

    #[test]
    fn ok_rate_guard_passes_a_steady_transfer() {
        let minimum = MinimumRate {
            bytes_per_second: 1000,
            window: Duration::from_secs(10),
        };
        let start = Instant::now();
        let mut guard = RateGuard::new(minimum, start);
        // 2000 bytes a second for a minute: the deadline always lies ahead.
        for tenth in 1..=600u64 {
            let now = start + Duration::from_millis(tenth * 100);
            guard.record(now, 200);
            let deadline = guard.deadline().unwrap();
            assert!(deadline > now + Duration::from_secs(4), "{tenth}");
            assert!(guard.samples.len() <= 70, "{}", guard.samples.len());
        }
    }

    #[test]
    fn err_rate_guard_fails_a_dripping_transfer_in_bounded_time() {
        let minimum = MinimumRate {
            bytes_per_second: 1000,
            window: Duration::from_secs(10),
        };
        let start = Instant::now();
        let mut guard = RateGuard::new(minimum, start);
        // Nothing yet: one window from the start.
        assert_eq!(guard.deadline(), Some(start + Duration::from_secs(10)));
        // A byte a second never reaches 10000 bytes in 10 s: the deadline stays put.
        for second in 1..10u64 {
            guard.record(start + Duration::from_secs(second), 1);
            assert_eq!(guard.deadline(), Some(start + Duration::from_secs(10)));
        }
        assert_eq!(guard.in_window(start + Duration::from_secs(10)), 9);
    }

    #[test]
    fn ok_rate_guard_moves_on_after_a_fast_start() {
        let minimum = MinimumRate {
            bytes_per_second: 1000,
            window: Duration::from_secs(10),
        };
        let start = Instant::now();
        let mut guard = RateGuard::new(minimum, start);
        // A fast first second, then silence: the window must hold 10000 bytes, so the
        // check fails one window after the last moment the previous 10000 bytes began.
        guard.record(start + Duration::from_secs(1), 50_000);
        assert_eq!(guard.deadline(), Some(start + Duration::from_secs(11)));
        assert_eq!(guard.in_window(start + Duration::from_secs(10)), 50_000);
        assert_eq!(guard.in_window(start + Duration::from_secs(11)), 0);
    }

    #[tokio::test]
    async fn err_unreachable_host_is_tried_once() {
        // A port nothing listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = reqwest::Client::new();
        let hosts = UnreachableHosts::default();
        let url = format!("http://127.0.0.1:{port}/a?token=s3cret");
        let first = send(client.get(&url), Duration::from_secs(5), &hosts)
            .await
            .unwrap_err();
        let Failure::Fatal(SendError::Unreachable { host, cause }) = &first else {
            panic!("{first:?}")
        };
        assert_eq!(host, &format!("127.0.0.1:{port}"));
        assert!(!cause.contains("s3cret"), "{cause}");
        // Now a listener exists, but the run does not try again.
        let _listener = std::net::TcpListener::bind(("127.0.0.1", port));
        let second = send(
            client.get(format!("http://127.0.0.1:{port}/b")),
            Duration::from_secs(5),
            &hosts.clone(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&second, Failure::Fatal(SendError::Unreachable { cause: again, .. }) if again == cause),
            "{second:?}"
        );
        // Another run's record knows nothing of it.
        assert_ne!(hosts, UnreachableHosts::default());
        assert_eq!(hosts, hosts.clone());
    }

    #[tokio::test]
    async fn err_unresolvable_name_is_unreachable() {
        let hosts = UnreachableHosts::default();
        let failure = send(
            reqwest::Client::new().get("http://envbuild-no-such-host.invalid/simple/"),
            Duration::from_secs(20),
            &hosts,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(failure, Failure::Fatal(SendError::Unreachable { .. })),
            "{failure:?}"
        );
        assert!(hosts.cause("envbuild-no-such-host.invalid:80").is_some());
    }

    #[test]
    fn ok_rate_guard_off() {
        let mut guard = RateGuard::new(MinimumRate::OFF, Instant::now());
        guard.record(Instant::now(), 1);
        assert_eq!(guard.deadline(), None);
    }
}
