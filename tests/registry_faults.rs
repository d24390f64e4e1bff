//! Pushing and pulling through a fault-injecting HTTP proxy in front of the real
//! distribution registry on 127.0.0.1. Per request, with a seeded generator, the proxy
//! drops the connection (before forwarding, or after forwarding so the answer is lost),
//! answers 500/502/503/429 (with `Retry-After: 0` or `1`), stalls (briefly, or past the
//! client's timeout, and then forwards), cuts the answer short, or forwards. Every push
//! must still complete with the fault-free digest, every blob the registry holds must
//! hash to its digest, a registry that never recovers must give an error naming the blob
//! and the registry, and a failed push must finish when run again.

mod common;
mod registry_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envbuild::cache::Cache;
use envbuild::digest::Sha256Digest;
use envbuild::oci::{BaseImage, Image};
use envbuild::registry::{Registry as Client, RegistryError, RegistryOptions, RegistryReference};
use registry_support::{Registry, assemble_image, file_layer, noise, open_cache, read_layout_base};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// The proxy

/// What the proxy does to requests.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A fault for `percent` % of requests, chosen by a generator seeded with `seed`.
    Faulty { seed: u64, percent: u64 },
    /// 503 for everything but the `/v2/` ping.
    AlwaysUnavailable,
    /// Forward until `uploads` blob uploads were completed (`PUT …?digest=` answered
    /// 201), then behave as [`Mode::AlwaysUnavailable`].
    FailAfterUploads { uploads: usize },
}

/// One fault, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Forward,
    DropBefore,
    DropAfter,
    Status(u16, Option<u32>),
    Stall(Duration),
    Truncate,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Self::Forward => "forward".to_string(),
            Self::DropBefore => "drop before forwarding".to_string(),
            Self::DropAfter => "drop after forwarding".to_string(),
            Self::Status(status, _) => format!("HTTP {status}"),
            Self::Stall(duration) if duration > CLIENT_TIMEOUT => "long stall".to_string(),
            Self::Stall(_) => "short stall".to_string(),
            Self::Truncate => "truncated answer".to_string(),
        }
    }
}

/// The client's timeout in these tests; a long stall outlasts it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// xorshift64*: small, seeded, good enough to spread faults.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[derive(Default)]
struct ProxyState {
    requests: AtomicUsize,
    completed_uploads: AtomicUsize,
    faults: Mutex<BTreeMap<String, usize>>,
}

/// A proxy on 127.0.0.1 in front of `upstream`; stopped on drop.
struct FaultProxy {
    addr: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    async fn start(upstream: &str, mode: Mode) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(ProxyState::default());
        let seed = match mode {
            Mode::Faulty { seed, .. } => seed.max(1),
            _ => 1,
        };
        let generator = Arc::new(Mutex::new(Generator(seed)));
        let upstream = upstream.to_string();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let state = Arc::clone(&shared);
                let generator = Arc::clone(&generator);
                tokio::spawn(async move {
                    let _ = handle(stream, &upstream, mode, &state, &generator).await;
                });
            }
        });
        FaultProxy { addr, state, task }
    }

    /// Faults injected so far.
    fn faults(&self) -> usize {
        self.state.faults.lock().unwrap().values().sum()
    }

    fn summary(&self) -> String {
        format!(
            "{} requests, faults: {:?}",
            self.state.requests.load(Ordering::Relaxed),
            self.state.faults.lock().unwrap()
        )
    }
}

/// A parsed request: its head (with `Connection: close`) and body.
struct Request {
    method: String,
    path: String,
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Read one HTTP/1.1 request (bodies framed by `Content-Length`); `None` when the
/// client closed or sent something else (a TLS probe: the proxy speaks plain HTTP).
async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 64 * 1024];
    let head_end = loop {
        let read = client.read(&mut piece).await.ok()?;
        if read == 0 {
            return None;
        }
        if buffer.is_empty() && piece[0] == 0x16 {
            return None;
        }
        buffer.extend_from_slice(&piece[..read]);
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
        if buffer.len() > 1024 * 1024 {
            return None;
        }
    };
    let text = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let mut length = 0usize;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let lower = name.trim().to_ascii_lowercase();
        if lower == "content-length" {
            length = value.trim().parse().ok()?;
        }
        if lower == "connection" || lower == "keep-alive" {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let read = client.read(&mut piece).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&piece[..read]);
    }
    Some(Request {
        method,
        path,
        head: head.into_bytes(),
        body,
    })
}

fn choose(
    mode: Mode,
    request: &Request,
    state: &ProxyState,
    generator: &Mutex<Generator>,
) -> Fault {
    let ping = request.method == "GET" && request.path == "/v2/";
    match mode {
        Mode::AlwaysUnavailable if !ping => Fault::Status(503, Some(0)),
        Mode::FailAfterUploads { uploads }
            if !ping && state.completed_uploads.load(Ordering::SeqCst) >= uploads =>
        {
            Fault::Status(503, Some(0))
        }
        Mode::Faulty { percent, .. } => {
            let mut generator = generator.lock().unwrap();
            if generator.below(100) >= percent {
                return Fault::Forward;
            }
            let retry_after = Some(generator.below(2) as u32);
            match generator.below(100) {
                0..20 => Fault::DropBefore,
                20..30 => Fault::DropAfter,
                30..40 => Fault::Status(500, None),
                40..45 => Fault::Status(502, None),
                45..60 => Fault::Status(503, retry_after),
                60..75 => Fault::Status(429, retry_after),
                75..85 => Fault::Stall(Duration::from_millis(300)),
                85..90 => Fault::Stall(CLIENT_TIMEOUT + Duration::from_millis(500)),
                _ => Fault::Truncate,
            }
        }
        _ => Fault::Forward,
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: &str,
    mode: Mode,
    state: &ProxyState,
    generator: &Mutex<Generator>,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await else {
        return Ok(());
    };
    state.requests.fetch_add(1, Ordering::Relaxed);
    let fault = choose(mode, &request, state, generator);
    if fault != Fault::Forward {
        *state
            .faults
            .lock()
            .unwrap()
            .entry(fault.name())
            .or_default() += 1;
    }
    match fault {
        Fault::DropBefore => return Ok(()),
        Fault::Status(status, retry_after) => {
            let body = format!(
                r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected fault {status}"}}]}}"#
            );
            let mut answer = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            if let Some(seconds) = retry_after {
                answer.push_str(&format!("Retry-After: {seconds}\r\n"));
            }
            answer.push_str("\r\n");
            answer.push_str(&body);
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Fault::Stall(duration) => tokio::time::sleep(duration).await,
        _ => {}
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request.head).await?;
    server.write_all(&request.body).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    if request.method == "PUT"
        && request.path.contains("digest=")
        && answer.starts_with(b"HTTP/1.1 201")
    {
        state.completed_uploads.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Fault::DropAfter => Ok(()),
        Fault::Truncate => {
            client.write_all(&answer[..answer.len() / 2]).await?;
            Ok(())
        }
        _ => {
            client.write_all(&answer).await?;
            client.shutdown().await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Log the client's retries when `RUST_LOG` asks (e.g. `RUST_LOG=envbuild=warn`).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

fn options() -> RegistryOptions {
    init_logging();
    RegistryOptions {
        retries: 10,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        timeout: CLIENT_TIMEOUT,
        chunk_size: 4 * 1024 * 1024,
        ..RegistryOptions::default()
    }
}

fn reference(addr: &str, name: &str) -> RegistryReference {
    format!("{addr}/{name}").parse().unwrap()
}

/// A base (one 19 MB layer, so chunked), a small layer, and a 1 MB incompressible one.
fn image_in(dir: &std::path::Path) -> (Cache, BaseImage, Image) {
    let cache = open_cache(&dir.join("cache"));
    let base = read_layout_base(&common::fixtures().base_ref, &cache);
    let small = file_layer(&cache, &[("srv/app.py", b"print('faults')\n")]);
    let data = noise(11, 1024 * 1024);
    let large = file_layer(&cache, &[("srv/data.bin", &data)]);
    let image = assemble_image(&base, &[small, large], None);
    (cache, base, image)
}

/// GET the manifest and every blob of `image` straight from the registry (no proxy) and
/// check them, then hash every blob in the registry's storage.
async fn verify_registry(registry: &Registry, repository: &str, tag: &str, image: &Image) {
    let http = reqwest::Client::new();
    let manifest = http
        .get(format!(
            "{}/v2/{repository}/manifests/{tag}",
            registry.url()
        ))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(
        manifest.bytes().await.unwrap().as_ref(),
        image.manifest.as_slice()
    );
    let mut digests = vec![image.config_digest];
    digests.extend(image.layers.iter().map(|layer| layer.digest));
    for digest in digests {
        let answer = http
            .get(format!(
                "{}/v2/{repository}/blobs/{}",
                registry.url(),
                digest.oci()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "blob {digest}");
        let bytes = answer.bytes().await.unwrap();
        assert_eq!(Sha256Digest::of(&bytes), digest, "blob {digest} as served");
    }
    let stored = registry.stored_blobs();
    assert!(!stored.is_empty());
    for digest in stored {
        let bytes = registry.stored_blob(&digest).unwrap();
        assert_eq!(Sha256Digest::of(&bytes).oci(), digest, "stored blob");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_through_faults_complete_with_the_same_digest() {
    let scratch = common::scratch_dir("registry-faults-");
    let (cache, base, image) = image_in(scratch.path());
    let second_service = assemble_image(
        &base,
        &[file_layer(&cache, &[("srv/other.py", b"print('other')\n")])],
        None,
    );
    // `ENVBUILD_FAULT_SEED` picks other fault sequences (to reproduce or explore).
    let first_seed: u64 = std::env::var("ENVBUILD_FAULT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed);
    let mut faulted_pushes = 0;
    let mut retries = 0;
    let rounds = 4;
    for round in 0..rounds {
        let registry = Registry::start("");
        let proxy = FaultProxy::start(
            &registry.addr,
            Mode::Faulty {
                seed: first_seed + round,
                percent: 30,
            },
        )
        .await;
        let client = Client::new(options()).unwrap();
        let destination = reference(&proxy.addr, "faults/app:1");
        let report = match client
            .push(std::slice::from_ref(&image), &destination, &cache)
            .await
        {
            Ok(report) => report,
            Err(error) => panic!("round {round}: {error}\nproxy: {}", proxy.summary()),
        };
        assert_eq!(report.digest, image.manifest_digest, "round {round}");
        assert_eq!(report.blobs_skipped + report.blobs_mounted, 0, "{report:?}");
        let faults_in_push = proxy.faults();
        if faults_in_push > 0 {
            faulted_pushes += 1;
        }
        verify_registry(&registry, "faults/app", "1", &image).await;

        // A second service sharing the base, into another repository: the shared layer is
        // mounted (through the faults as well).
        let report = client
            .push(
                std::slice::from_ref(&second_service),
                &reference(&proxy.addr, "faults/other:1"),
                &cache,
            )
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}\nproxy: {}", proxy.summary()));
        assert_eq!(report.digest, second_service.manifest_digest);
        assert_eq!(report.blobs_mounted, base.layers.len(), "{report:?}");
        assert_eq!(report.blobs_skipped, 0, "{report:?}");
        verify_registry(&registry, "faults/other", "1", &second_service).await;

        // And pulled back through the faults into a fresh cache.
        let pull_cache = open_cache(&scratch.path().join(format!("pull-{round}")));
        let pulled = client
            .pull_base(&destination, None, &pull_cache)
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}\nproxy: {}", proxy.summary()));
        assert_eq!(pulled.manifest_digest, image.manifest_digest);
        assert_eq!(pulled.layers, image.layers);
        retries += client.stats().retries;
        eprintln!(
            "round {round} (seed {}): {}",
            first_seed + round,
            proxy.summary()
        );
    }
    assert!(
        faulted_pushes >= rounds - 1,
        "most pushes should meet faults ({faulted_pushes} of {rounds} did)"
    );
    assert!(retries > 0, "the client retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_recovers_gives_an_error_naming_blob_and_registry() {
    let scratch = common::scratch_dir("registry-unavailable-");
    let (cache, _base, image) = image_in(scratch.path());
    let registry = Registry::start("");
    let proxy = FaultProxy::start(&registry.addr, Mode::AlwaysUnavailable).await;
    let client = Client::new(RegistryOptions {
        retries: 2,
        ..options()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let error = client
        .push(
            std::slice::from_ref(&image),
            &reference(&proxy.addr, "down/app:1"),
            &cache,
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        matches!(error, RegistryError::RetriesExhausted { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    let names_a_blob = std::iter::once(image.config_digest)
        .chain(image.layers.iter().map(|layer| layer.digest))
        .any(|digest| message.contains(&format!("blob {}", digest.oci())));
    assert!(names_a_blob, "{message}");
    for part in [
        proxy.addr.as_str(),
        "down/app",
        "failed 3 times",
        "HTTP 503",
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_finishes_when_run_again() {
    let scratch = common::scratch_dir("registry-resume-");
    let (cache, _base, image) = image_in(scratch.path());
    let registry = Registry::start("");
    let proxy = FaultProxy::start(&registry.addr, Mode::FailAfterUploads { uploads: 2 }).await;
    let failing = Client::new(RegistryOptions {
        retries: 1,
        jobs: 1,
        ..options()
    })
    .unwrap();
    let error = failing
        .push(
            std::slice::from_ref(&image),
            &reference(&proxy.addr, "resume/app:1"),
            &cache,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::RetriesExhausted { .. }),
        "{error}"
    );

    // What arrived stays; the second run sends only the rest.
    let mut sizes: BTreeMap<String, u64> = image
        .layers
        .iter()
        .map(|layer| (layer.digest.oci(), layer.size))
        .collect();
    sizes.insert(image.config_digest.oci(), image.config.len() as u64);
    let stored: Vec<String> = registry
        .stored_blobs()
        .into_iter()
        .filter(|digest| sizes.contains_key(digest))
        .collect();
    assert_eq!(stored.len(), 2, "two uploads got through: {stored:?}");
    let total: u64 = sizes.values().sum();
    let already: u64 = stored.iter().map(|digest| sizes[digest]).sum();

    let report = Client::new(options())
        .unwrap()
        .push(
            std::slice::from_ref(&image),
            &reference(&registry.addr, "resume/app:1"),
            &cache,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest_digest);
    assert_eq!(report.blobs_skipped, 2, "{report:?}");
    assert_eq!(report.blobs_uploaded, sizes.len() - 2, "{report:?}");
    assert_eq!(report.bytes_uploaded, total - already);
    verify_registry(&registry, "resume/app", "1", &image).await;
}
