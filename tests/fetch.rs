//! Integration tests of `envbuild::fetch` against a real HTTP server on 127.0.0.1.
//!
//! The server is a few lines of tokio written here, so each test can make it misbehave
//! in one precise way: drop connections, answer 503 or 429, serve the wrong bytes or too
//! many, stall, send an endless body, drip one byte at a time, or redirect to another
//! server (which records what it is sent).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envbuild::cache::{Cache, EntryKind};
use envbuild::digest::Sha256Digest;
use envbuild::fetch::{
    FetchError, FetchOptions, FetchProgress, FetchRequest, NoProgress, ReceivedSize, fetch_all,
};
use envbuild::http::{ByteSize, MinimumRate};
use envbuild::lock::{Artifact, ArtifactLocation, PackageName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers one path.
#[derive(Clone, Debug)]
enum Behaviour {
    /// 200 with the file.
    Serve,
    /// Close the connection without an answer the first `n` times, then serve.
    DropFirst(usize),
    /// Answer `status` (with `Retry-After` if given) the first `times` times, then serve.
    StatusFirst {
        times: usize,
        status: u16,
        retry_after: Option<u64>,
    },
    /// Always answer `status`.
    Status(u16),
    /// 200 with these bytes instead of the file, with a `Content-Length`.
    Body(Vec<u8>),
    /// 200 with these bytes instead of the file, ended by closing (no `Content-Length`).
    BodyUntilClose(Vec<u8>),
    /// Send the headers and the first 100 bytes, then nothing.
    Stall,
    /// 200 with bytes for ever, announcing this `Content-Length` (or none).
    Endless(Option<u64>),
    /// 200 with the file's `Content-Length`, then one byte of it every this long.
    Drip(Duration),
    /// 307 to this URL.
    Redirect(String),
}

struct Route {
    content: Vec<u8>,
    behaviour: Behaviour,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    counts: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Delay before each answer, so concurrent requests overlap.
    delay: Mutex<Duration>,
    /// The head of every request received, as sent.
    heads: Mutex<Vec<String>>,
}

struct Server {
    address: SocketAddr,
    state: Arc<State>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(handle(stream, Arc::clone(&accept_state)));
            }
        });
        Self { address, state }
    }

    fn add(&self, path: &str, content: &[u8], behaviour: Behaviour) {
        let route = Route {
            content: content.to_vec(),
            behaviour,
        };
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), route);
    }

    fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{}{path}", self.address)).unwrap()
    }

    fn count(&self, path: &str) -> usize {
        self.state
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.state.heads.lock().unwrap().clone()
    }
}

async fn handle(mut stream: TcpStream, state: Arc<State>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    state.heads.lock().unwrap().push(head.to_string());
    // Routes ignore the query (tests put tokens there).
    let target = head.split(' ').nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target).to_string();
    let seen = {
        let mut counts = state.counts.lock().unwrap();
        let count = counts.entry(path.clone()).or_insert(0);
        *count += 1;
        *count - 1
    };
    state.total.fetch_add(1, Ordering::SeqCst);
    let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;

    let route = state
        .routes
        .lock()
        .unwrap()
        .get(&path)
        .map(|route| (route.content.clone(), route.behaviour.clone()));
    let answer = match route {
        None => Answer::Status(404, None),
        Some((content, behaviour)) => match behaviour {
            Behaviour::Serve => Answer::Body(content, true),
            Behaviour::DropFirst(times) if seen < times => Answer::Drop,
            Behaviour::DropFirst(_) => Answer::Body(content, true),
            Behaviour::StatusFirst {
                times,
                status,
                retry_after,
            } if seen < times => Answer::Status(status, retry_after),
            Behaviour::StatusFirst { .. } => Answer::Body(content, true),
            Behaviour::Status(status) => Answer::Status(status, None),
            Behaviour::Body(body) => Answer::Body(body, true),
            Behaviour::BodyUntilClose(body) => Answer::Body(body, false),
            Behaviour::Stall => Answer::Stall(content),
            Behaviour::Endless(announced) => Answer::Endless(announced),
            Behaviour::Drip(interval) => Answer::Drip(content, interval),
            Behaviour::Redirect(location) => Answer::Redirect(location),
        },
    };
    let _ = answer.write(&mut stream).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
}

enum Answer {
    Drop,
    Status(u16, Option<u64>),
    /// The body, and whether to send a `Content-Length`.
    Body(Vec<u8>, bool),
    /// Headers and the start of this body, then a long silence.
    Stall(Vec<u8>),
    /// Bytes for ever, with this `Content-Length` (or none).
    Endless(Option<u64>),
    /// This body, one byte every so long.
    Drip(Vec<u8>, Duration),
    /// A redirect.
    Redirect(String),
}

impl Answer {
    async fn write(self, stream: &mut TcpStream) -> std::io::Result<()> {
        match self {
            Self::Drop => Ok(()),
            Self::Status(status, retry_after) => {
                let retry = retry_after
                    .map(|seconds| format!("Retry-After: {seconds}\r\n"))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 {status} Test\r\n{retry}Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await
            }
            Self::Body(body, with_length) => {
                let length = if with_length {
                    format!("Content-Length: {}\r\n", body.len())
                } else {
                    String::new()
                };
                let head = format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body).await?;
                stream.shutdown().await
            }
            Self::Stall(body) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body[..100]).await?;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }
            Self::Endless(announced) => {
                let length = announced
                    .map(|length| format!("Content-Length: {length}\r\n"))
                    .unwrap_or_default();
                let head = format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
                stream.write_all(head.as_bytes()).await?;
                let block = vec![b'z'; 64 * 1024];
                // Until the client hangs up.
                loop {
                    stream.write_all(&block).await?;
                }
            }
            Self::Drip(body, interval) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                for byte in body {
                    stream.write_all(&[byte]).await?;
                    stream.flush().await?;
                    tokio::time::sleep(interval).await;
                }
                Ok(())
            }
            Self::Redirect(location) => {
                let head = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await
            }
        }
    }
}

/// Records progress events.
#[derive(Default)]
struct Recorder {
    finished: Mutex<Vec<(String, bool)>>,
    bytes: AtomicUsize,
}

impl FetchProgress for Recorder {
    fn advance(&self, _: &FetchRequest, bytes: u64) {
        self.bytes.fetch_add(bytes as usize, Ordering::SeqCst);
    }
    fn finish(&self, request: &FetchRequest, cached: bool) {
        self.finished
            .lock()
            .unwrap()
            .push((request.package.to_string(), cached));
    }
}

fn content(name: &str) -> Vec<u8> {
    format!("the wheel of {name}\n").repeat(2000).into_bytes()
}

fn request(name: &str, location: ArtifactLocation, content: &[u8]) -> FetchRequest {
    FetchRequest {
        package: name.parse::<PackageName>().unwrap(),
        version: "1.0".to_string(),
        artifact: Artifact {
            filename: format!("{name}-1.0-py3-none-any.whl"),
            location,
            size: Some(content.len() as u64),
            sha256: Some(Sha256Digest::of(content)),
        },
    }
}

/// A request for `/<name>.whl` on `server`, which serves it with `behaviour`.
fn served(server: &Server, name: &str, behaviour: Behaviour) -> FetchRequest {
    let path = format!("/{name}.whl");
    let bytes = content(name);
    server.add(&path, &bytes, behaviour);
    request(name, ArtifactLocation::Url(server.url(&path)), &bytes)
}

fn quick_options() -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_secs(5),
        ..FetchOptions::default()
    }
}

fn entries(folder: &Path) -> usize {
    std::fs::read_dir(folder).unwrap().count()
}

fn assert_cache_empty(cache: &Cache) {
    assert_eq!(
        entries(&cache.root().join("wheels/sha256")),
        0,
        "no wheel may be kept"
    );
    assert_eq!(
        entries(&cache.root().join("tmp")),
        0,
        "no temporary file may be left"
    );
}

async fn fetch(
    requests: &[FetchRequest],
    cache: &Cache,
    options: &FetchOptions,
) -> Result<Vec<PathBuf>, FetchError> {
    fetch_all(requests, cache, options, Arc::new(NoProgress)).await
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn cold_fetch_is_concurrent_and_verified_then_warm_fetch_is_offline() {
    let server = Server::start().await;
    server.set_delay(Duration::from_millis(200));
    let names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    let requests: Vec<_> = names
        .iter()
        .map(|name| served(&server, name, Behaviour::Serve))
        .collect();
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        jobs: 3,
        ..quick_options()
    };
    let recorder = Arc::new(Recorder::default());

    let future = fetch_all(&requests, &cache, &options, recorder.clone());
    assert_send(&future);
    let paths = future.await.unwrap();

    assert_eq!(paths.len(), names.len());
    for (name, (path, request)) in names.iter().zip(paths.iter().zip(&requests)) {
        let digest = request.artifact.sha256.unwrap();
        assert_eq!(
            path,
            &cache.entry_path(EntryKind::Wheel, &digest),
            "{name}: paths come in request order"
        );
        assert_eq!(Sha256Digest::of(&std::fs::read(path).unwrap()), digest);
    }
    assert_eq!(server.total(), names.len());
    let most = server.state.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&most),
        "at most `jobs` requests at once, and more than one: {most}"
    );
    assert_eq!(entries(&folder.path().join("tmp")), 0);
    let total_bytes: usize = names.iter().map(|name| content(name).len()).sum();
    assert_eq!(recorder.bytes.load(Ordering::SeqCst), total_bytes);
    assert!(
        recorder
            .finished
            .lock()
            .unwrap()
            .iter()
            .all(|(_, cached)| !cached)
    );

    // Warm: everything is cached, so not one request is made.
    let recorder = Arc::new(Recorder::default());
    let again = fetch_all(&requests, &cache, &options, recorder.clone())
        .await
        .unwrap();
    assert_eq!(again, paths);
    assert_eq!(server.total(), names.len(), "a warm fetch makes no request");
    let finished = recorder.finished.lock().unwrap();
    assert_eq!(finished.len(), names.len());
    assert!(finished.iter().all(|(_, cached)| *cached));
}

#[tokio::test]
async fn err_hash_mismatch_keeps_nothing() {
    let server = Server::start().await;
    let good = content("tampered");
    let mut wrong = good.clone();
    wrong[0] ^= 1;
    let request = served(&server, "tampered", Behaviour::Body(wrong.clone()));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(std::slice::from_ref(&request), &cache, &quick_options())
        .await
        .unwrap_err();

    assert!(matches!(error, FetchError::HashMismatch(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&Sha256Digest::of(&good).hex()), "{text}");
    assert!(text.contains(&Sha256Digest::of(&wrong).hex()), "{text}");
    assert!(text.contains("`tampered` 1.0"), "{text}");
    assert!(
        text.contains(&server.url("/tampered.whl").to_string()),
        "{text}"
    );
    assert_eq!(
        server.count("/tampered.whl"),
        1,
        "a hash mismatch is not retried"
    );
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_size_mismatch_announced_by_content_length() {
    let server = Server::start().await;
    let mut longer = content("long");
    longer.extend_from_slice(b"trailing bytes");
    let request = served(&server, "long", Behaviour::Body(longer.clone()));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(std::slice::from_ref(&request), &cache, &quick_options())
        .await
        .unwrap_err();

    let FetchError::SizeMismatch {
        expected, actual, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*expected, request.artifact.size.unwrap());
    assert_eq!(*actual, ReceivedSize::Announced(longer.len() as u64));
    let text = error.to_string();
    assert!(
        text.contains(&format!("expected {expected} bytes")),
        "{text}"
    );
    assert_eq!(server.count("/long.whl"), 1);
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_size_mismatch_stops_an_unannounced_longer_body() {
    let server = Server::start().await;
    let mut longer = content("endless");
    longer.extend(std::iter::repeat_n(b'x', 1 << 20));
    let request = served(&server, "endless", Behaviour::BodyUntilClose(longer));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(std::slice::from_ref(&request), &cache, &quick_options())
        .await
        .unwrap_err();

    let FetchError::SizeMismatch { actual, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        *actual,
        ReceivedSize::MoreThan(request.artifact.size.unwrap())
    );
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_size_mismatch_shorter_body() {
    let server = Server::start().await;
    let shorter = content("short")[..100].to_vec();
    let request = served(&server, "short", Behaviour::BodyUntilClose(shorter));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(&[request], &cache, &quick_options())
        .await
        .unwrap_err();

    let FetchError::SizeMismatch { actual, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*actual, ReceivedSize::Exactly(100));
    assert!(error.to_string().contains("got 100 bytes"), "{error}");
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn retries_dropped_connections_503_and_429() {
    let server = Server::start().await;
    let requests = [
        served(&server, "dropped", Behaviour::DropFirst(2)),
        served(
            &server,
            "unavailable",
            Behaviour::StatusFirst {
                times: 1,
                status: 503,
                retry_after: None,
            },
        ),
        served(
            &server,
            "limited",
            Behaviour::StatusFirst {
                times: 1,
                status: 429,
                retry_after: Some(1),
            },
        ),
    ];
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let started = Instant::now();

    let paths = fetch(&requests, &cache, &quick_options()).await.unwrap();

    assert_eq!(paths.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "`Retry-After: 1` is honoured"
    );
    assert_eq!(server.count("/dropped.whl"), 3);
    assert_eq!(server.count("/unavailable.whl"), 2);
    assert_eq!(server.count("/limited.whl"), 2);
    for (path, request) in paths.iter().zip(&requests) {
        assert_eq!(
            Sha256Digest::of(&std::fs::read(path).unwrap()),
            request.artifact.sha256.unwrap()
        );
    }
}

#[tokio::test]
async fn err_not_found_is_not_retried() {
    let server = Server::start().await;
    let request = served(&server, "gone", Behaviour::Status(404));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(&[request], &cache, &quick_options())
        .await
        .unwrap_err();

    assert!(
        matches!(error, FetchError::UnexpectedStatus { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("404") && text.contains("`gone` 1.0"),
        "{text}"
    );
    assert!(
        text.contains(&server.url("/gone.whl").to_string()),
        "{text}"
    );
    assert_eq!(server.count("/gone.whl"), 1);
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_retries_exhausted_names_package_url_and_cause() {
    let server = Server::start().await;
    let request = served(&server, "down", Behaviour::Status(503));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        retries: 2,
        ..quick_options()
    };

    let error = fetch(&[request], &cache, &options).await.unwrap_err();

    assert!(
        matches!(error, FetchError::RetriesExhausted { attempts: 3, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("`down` 1.0"), "{text}");
    assert!(
        text.contains(&server.url("/down.whl").to_string()),
        "{text}"
    );
    assert!(
        text.contains("after 3 attempts") && text.contains("503"),
        "{text}"
    );
    assert_eq!(server.count("/down.whl"), 3);
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_stalled_body_times_out() {
    let server = Server::start().await;
    let request = served(&server, "stalled", Behaviour::Stall);
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        retries: 1,
        timeout: Duration::from_millis(400),
        ..FetchOptions::default()
    };
    let started = Instant::now();

    let error = fetch(&[request], &cache, &options).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(error, FetchError::RetriesExhausted { attempts: 2, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("timed out"), "{error}");
    assert_eq!(server.count("/stalled.whl"), 2);
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_several_failures_are_all_listed() {
    let server = Server::start().await;
    server.set_delay(Duration::from_millis(200));
    let requests = [
        served(&server, "first", Behaviour::Status(404)),
        served(&server, "second", Behaviour::Status(410)),
    ];
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(&requests, &cache, &quick_options())
        .await
        .unwrap_err();

    let FetchError::Several { errors } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(errors.len(), 2);
    let text = error.to_string();
    assert!(
        text.contains("2 downloads failed")
            && text.contains("`first`")
            && text.contains("`second`"),
        "{text}"
    );
}

#[tokio::test]
async fn err_offline_lists_every_missing_artifact() {
    let server = Server::start().await;
    let requests = [
        served(&server, "present", Behaviour::Serve),
        served(&server, "absent-one", Behaviour::Serve),
        served(&server, "absent-two", Behaviour::Serve),
    ];
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    fetch(&requests[..1], &cache, &quick_options())
        .await
        .unwrap();
    let before = server.total();
    let options = FetchOptions {
        offline: true,
        ..quick_options()
    };

    let error = fetch(&requests, &cache, &options).await.unwrap_err();

    let FetchError::MissingOffline { artifacts, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(artifacts.len(), 2);
    let text = error.to_string();
    for name in [
        "`absent-one` 1.0 (`absent-one-1.0-py3-none-any.whl`)",
        "`absent-two` 1.0",
    ] {
        assert!(text.contains(name), "{text}");
    }
    assert!(!text.contains("`present`"), "{text}");
    assert!(
        text.contains("envbuild fetch") && text.contains("--cache-dir"),
        "{text}"
    );
    assert!(
        text.contains(&folder.path().display().to_string()),
        "{text}"
    );
    assert_eq!(server.total(), before, "offline never touches the network");

    // What is cached is enough offline.
    fetch(&requests[..1], &cache, &options).await.unwrap();
}

#[tokio::test]
async fn local_path_and_file_url_are_verified_and_copied() {
    let source = tempfile::tempdir().unwrap();
    let first = content("local");
    let second = content("file-url");
    let first_path = source.path().join("local-1.0-py3-none-any.whl");
    let second_path = source.path().join("file_url-1.0-py3-none-any.whl");
    std::fs::write(&first_path, &first).unwrap();
    std::fs::write(&second_path, &second).unwrap();
    let requests = [
        request("local", ArtifactLocation::Path(first_path), &first),
        request(
            "file-url",
            ArtifactLocation::Url(url::Url::from_file_path(&second_path).unwrap()),
            &second,
        ),
    ];
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    // Offline still reads local files: they need no network.
    let options = FetchOptions {
        offline: true,
        ..quick_options()
    };

    let paths = fetch(&requests, &cache, &options).await.unwrap();

    assert_eq!(std::fs::read(&paths[0]).unwrap(), first);
    assert_eq!(std::fs::read(&paths[1]).unwrap(), second);
    assert!(paths.iter().all(|path| path.starts_with(folder.path())));
}

#[tokio::test]
async fn err_local_path_with_wrong_hash_or_size() {
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("local-1.0-py3-none-any.whl");
    let bytes = content("local");
    let mut changed = bytes.clone();
    changed[10] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let wrong_hash = request("local", ArtifactLocation::Path(path.clone()), &bytes);
    let error = fetch(&[wrong_hash], &cache, &quick_options())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::HashMismatch(_)), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert_cache_empty(&cache);

    let mut wrong_size = request("local", ArtifactLocation::Path(path.clone()), &changed);
    wrong_size.artifact.size = Some(1);
    let error = fetch(&[wrong_size], &cache, &quick_options())
        .await
        .unwrap_err();
    assert!(
        matches!(error, FetchError::SizeMismatch { .. }),
        "{error:?}"
    );
    assert_cache_empty(&cache);

    let missing = request(
        "local",
        ArtifactLocation::Path(source.path().join("nothing.whl")),
        &bytes,
    );
    let error = fetch(&[missing], &cache, &quick_options())
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::LocalRead { .. }), "{error:?}");
}

#[tokio::test]
async fn err_missing_sha256_names_every_package() {
    let server = Server::start().await;
    let mut unhashed = served(&server, "unhashed", Behaviour::Serve);
    unhashed.artifact.sha256 = None;
    let requests = [served(&server, "hashed", Behaviour::Serve), unhashed];
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(&requests, &cache, &quick_options())
        .await
        .unwrap_err();

    let FetchError::MissingHash { artifacts } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(artifacts.len(), 1);
    let text = error.to_string();
    assert!(
        text.contains("`unhashed` 1.0") && text.contains("sha256"),
        "{text}"
    );
    assert_eq!(
        server.total(),
        0,
        "nothing is fetched when a hash is missing"
    );
}

#[tokio::test]
async fn err_messages_never_show_url_credentials() {
    let server = Server::start().await;
    let mut request = served(&server, "private", Behaviour::Status(403));
    let ArtifactLocation::Url(url) = &mut request.artifact.location else {
        unreachable!()
    };
    url.set_username("user").unwrap();
    url.set_password(Some("hunter2")).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(&[request], &cache, &quick_options())
        .await
        .unwrap_err();

    let text = format!("{error} {error:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("user@"),
        "{text}"
    );
    assert!(text.contains("403"), "{text}");
}

// Lying servers: bounds on every download (defect 6), and URLs that carry secrets
// (defect 4).

/// `request` with no size in the lockfile (so only the size limit bounds it).
fn without_size(mut request: FetchRequest) -> FetchRequest {
    request.artifact.size = None;
    request
}

#[tokio::test]
async fn err_endless_body_without_locked_size_stops_at_the_limit() {
    let server = Server::start().await;
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        max_artifact_size: ByteSize::kib(256),
        ..quick_options()
    };
    // Without `Content-Length`, and with one that lies (claims less than it sends).
    for (name, announced) in [("endless", None), ("liar", Some(1000))] {
        let request = without_size(served(&server, name, Behaviour::Endless(announced)));
        let started = Instant::now();

        let error = fetch(&[request], &cache, &options).await.unwrap_err();

        assert!(started.elapsed() < Duration::from_secs(10), "{name}");
        match (&error, announced) {
            (
                FetchError::TooLarge {
                    limit,
                    actual: ReceivedSize::MoreThan(stopped),
                    ..
                },
                None,
            ) => {
                assert_eq!(*limit, ByteSize::kib(256));
                assert_eq!(*stopped, 256 * 1024);
            }
            // The lying `Content-Length` cuts the body short: the client sees a body
            // that does not end where it said, whatever the bytes; never more than it.
            (FetchError::HashMismatch(_) | FetchError::RetriesExhausted { .. }, Some(_)) => {}
            _ => panic!("{name}: {error:?}"),
        }
        let text = error.to_string();
        assert!(
            text.contains(&server.url(&format!("/{name}.whl")).to_string()),
            "{text}"
        );
        if announced.is_none() {
            for part in ["256 KiB", "--max-artifact-size"] {
                assert!(text.contains(part), "{part} missing from: {text}");
            }
        }
        assert_cache_empty(&cache);
    }
}

#[tokio::test]
async fn err_announced_size_over_the_limit_downloads_nothing() {
    let server = Server::start().await;
    let request = without_size(served(
        &server,
        "huge",
        Behaviour::Endless(Some(64 * 1024 * 1024 * 1024)),
    ));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        max_artifact_size: ByteSize::mib(1),
        ..quick_options()
    };

    let error = fetch(&[request], &cache, &options).await.unwrap_err();

    let FetchError::TooLarge { actual, limit, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*actual, ReceivedSize::Announced(64 << 30));
    assert_eq!(*limit, ByteSize::mib(1));
    assert!(error.to_string().contains("1 MiB"), "{error}");
    assert_eq!(
        server.count("/huge.whl"),
        1,
        "a size over the limit is not retried"
    );
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn ok_body_within_the_limit_without_locked_size() {
    let server = Server::start().await;
    let request = without_size(served(
        &server,
        "unsized",
        Behaviour::BodyUntilClose(content("unsized")),
    ));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        max_artifact_size: ByteSize(content("unsized").len() as u64),
        ..quick_options()
    };

    let paths = fetch(&[request], &cache, &options).await.unwrap();

    assert_eq!(std::fs::read(&paths[0]).unwrap(), content("unsized"));
}

#[tokio::test]
async fn err_dripping_body_fails_in_bounded_time() {
    let server = Server::start().await;
    let request = served(&server, "drip", Behaviour::Drip(Duration::from_millis(100)));
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    // Every single read comes well within the timeout: only the rate catches it.
    let options = FetchOptions {
        retries: 1,
        timeout: Duration::from_secs(5),
        min_rate: MinimumRate {
            bytes_per_second: 1024,
            window: Duration::from_secs(1),
        },
        ..FetchOptions::default()
    };
    let started = Instant::now();

    let error = fetch(&[request], &cache, &options).await.unwrap_err();

    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    assert!(
        matches!(error, FetchError::RetriesExhausted { attempts: 2, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    for part in [
        "minimum transfer rate of 1 KiB/s",
        "--min-transfer-rate",
        "/drip.whl",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    assert_eq!(server.count("/drip.whl"), 2);
    assert_cache_empty(&cache);
}

#[tokio::test]
async fn err_not_found_never_shows_a_query_token() {
    let server = Server::start().await;
    let mut request = served(&server, "private", Behaviour::Status(404));
    let ArtifactLocation::Url(url) = &mut request.artifact.location else {
        unreachable!()
    };
    url.set_query(Some("token=secret-token&expires=123"));
    url.set_username("alice").unwrap();
    url.set_password(Some("S3cret")).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let error = fetch(&[request], &cache, &quick_options())
        .await
        .unwrap_err();

    let text = format!("{error} {error:?}");
    for secret in ["secret", "S3cret", "alice", "123"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(
        error.to_string().contains(&format!(
            "http://***@{}/private.whl?token=***&expires=***",
            server.address
        )),
        "{error}"
    );
    assert!(error.to_string().contains("404"), "{error}");
}

#[tokio::test]
async fn redirect_to_another_host_gets_no_credentials_and_no_referer() {
    let origin = Server::start().await;
    let other = Server::start().await;
    let bytes = content("moved");
    other.add("/files/moved.whl", &bytes, Behaviour::Serve);
    let mut request = served(
        &origin,
        "moved",
        Behaviour::Redirect(other.url("/files/moved.whl").to_string()),
    );
    let ArtifactLocation::Url(url) = &mut request.artifact.location else {
        unreachable!()
    };
    url.set_query(Some("token=query-secret"));
    url.set_username("alice").unwrap();
    url.set_password(Some("url-secret")).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();

    let paths = fetch(&[request], &cache, &quick_options()).await.unwrap();

    assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes);
    let origin_heads = origin.heads().join("").to_ascii_lowercase();
    assert!(
        origin_heads.contains("authorization: basic"),
        "{origin_heads}"
    );
    let other_heads = other.heads();
    assert_eq!(other_heads.len(), 1);
    let head = other_heads[0].to_ascii_lowercase();
    for leaked in ["authorization", "referer", "secret", "alice"] {
        assert!(
            !head.contains(leaked),
            "{leaked} reached the other host: {head}"
        );
    }
}

#[tokio::test]
async fn err_local_paths_that_are_not_regular_files() {
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let fifo = folder.path().join("fifo.whl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let cases = [
        (PathBuf::from("/dev/zero"), "a device"),
        (fifo, "a fifo"),
        (folder.path().to_path_buf(), "a directory"),
    ];
    for (path, kind) in cases {
        let mut request = request("odd", ArtifactLocation::Path(path.clone()), b"x");
        request.artifact.size = None;
        // A fifo would block a reader for ever: the check must come before reading.
        let error = tokio::time::timeout(
            Duration::from_secs(10),
            fetch(&[request], &cache, &quick_options()),
        )
        .await
        .expect("refused at once")
        .unwrap_err();
        let FetchError::NotARegularFile { kind: found, .. } = &error else {
            panic!("{path:?}: {error:?}")
        };
        assert_eq!(*found, kind);
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("not a regular file"), "{text}");
        assert_cache_empty(&cache);
    }
}

#[tokio::test]
async fn err_local_file_over_the_limit_without_locked_size() {
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("big-1.0-py3-none-any.whl");
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    let mut request = request("big", ArtifactLocation::Path(path.clone()), b"");
    request.artifact.size = None;
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    let options = FetchOptions {
        max_artifact_size: ByteSize::kib(1),
        ..quick_options()
    };

    let error = fetch(&[request], &cache, &options).await.unwrap_err();

    let FetchError::TooLarge { actual, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*actual, ReceivedSize::Exactly(4096));
    let text = error.to_string();
    assert!(
        text.contains("1 KiB") && text.contains(&path.display().to_string()),
        "{text}"
    );
    assert_cache_empty(&cache);
}

/// Issue 8, item 2: a host that refuses connections is tried once, then skipped for
/// the rest of the run, instead of being retried for every package.
#[tokio::test]
async fn err_unreachable_host_is_tried_once_per_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let requests: Vec<FetchRequest> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            let url = url::Url::parse(&format!("http://127.0.0.1:{port}/{name}.whl")).unwrap();
            request(name, ArtifactLocation::Url(url), &content(name))
        })
        .collect();
    let folder = tempfile::tempdir().unwrap();
    let cache = Cache::open(folder.path()).unwrap();
    // Retried with backoff, each would take seconds; one run shares one record.
    let options = FetchOptions {
        jobs: 1,
        retries: 4,
        ..quick_options()
    };
    let started = Instant::now();

    let error = fetch(&requests[..1], &cache, &options).await.unwrap_err();
    let again = fetch(&requests[1..], &cache, &options.clone())
        .await
        .unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for error in [&error, &again] {
        assert!(matches!(error, FetchError::Unreachable { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains(&format!("`127.0.0.1:{port}` cannot be reached")),
            "{text}"
        );
        assert!(text.contains("not try it again"), "{text}");
    }
    // A new run tries again.
    let fresh = fetch(&requests[..1], &cache, &quick_options())
        .await
        .unwrap_err();
    assert!(matches!(fresh, FetchError::Unreachable { .. }), "{fresh:?}");
}
