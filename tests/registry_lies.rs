//! Pulling through a lying proxy in front of the real distribution registry on
//! 127.0.0.1 (with htpasswd credentials configured, so the client sends
//! `Authorization`). Per test the proxy tells one lie about blobs and manifests: bytes
//! that do not match their digest, a wrong `Content-Length`, manifests whose layer
//! sizes or index entry sizes are wrong, endless bodies, bodies dripping a byte at a
//! time, and redirects to a second listener on 127.0.0.1 that records every request it
//! gets. Each lie must give a clear error naming what was wrong (sizes as sizes, with
//! both numbers), in bounded time, with nothing stored in the cache; and neither
//! `Authorization` nor `Referer` may ever reach the other listener.

mod registry_support;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envbuild::cache::{Cache, EntryKind};
use envbuild::digest::Sha256Digest;
use envbuild::http::{MinimumRate, ReceivedSize};
use envbuild::oci::{BaseImage, Image};
use envbuild::platform::Platform;
use envbuild::registry::auth::AuthEnvironment;
use envbuild::registry::{Registry as Client, RegistryError, RegistryOptions, RegistryReference};
use registry_support::{Registry, assemble_image, file_layer, linux, noise, open_cache};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "robot";
const PASSWORD: &str = "lies-password-0";

// ---------------------------------------------------------------------------------------------
// The lying proxy

/// One lie, told about every matching answer.
#[derive(Debug, Clone)]
enum Lie {
    /// Forward everything as it is.
    None,
    /// Flip one byte of the body of blob `digest` (same length).
    CorruptBlob(String),
    /// Announce this `Content-Length` for blob `digest` (its body as it is).
    BlobLength(String, u64),
    /// Answer blob `digest` with bytes for ever, without `Content-Length`.
    EndlessBlob(String),
    /// Send blob `digest` one byte per interval.
    DripBlob(String, Duration),
    /// Send every manifest one byte per interval.
    DripManifests(Duration),
    /// Add this to the `size` of every layer in the manifests served (and drop their
    /// `Docker-Content-Digest`, which would betray the change).
    LayerSizes(i64),
    /// Add this to the `size` of every entry of the indexes served.
    IndexEntrySizes(i64),
    /// Redirect every blob GET to this base URL (path kept, a token query added).
    RedirectBlobs(String),
}

struct ProxyState {
    lie: Mutex<Lie>,
    /// The request heads received, as sent by the client.
    heads: Mutex<Vec<String>>,
}

/// A proxy on 127.0.0.1 in front of `upstream`; stopped on drop.
struct LyingProxy {
    addr: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LyingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LyingProxy {
    async fn start(upstream: &str) -> LyingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(ProxyState {
            lie: Mutex::new(Lie::None),
            heads: Mutex::new(Vec::new()),
        });
        let upstream = upstream.to_string();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = handle(stream, &upstream, &state).await;
                });
            }
        });
        LyingProxy { addr, state, task }
    }

    fn lie(&self, lie: Lie) {
        *self.state.lie.lock().unwrap() = lie;
    }

    fn heads(&self) -> String {
        self.state.heads.lock().unwrap().join("\n")
    }
}

/// One HTTP/1.1 request: its head (with `Connection: close`), body, method and path.
struct Request {
    method: String,
    path: String,
    raw_head: String,
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Read one request (bodies framed by `Content-Length`); `None` when the client closed
/// or probed for TLS (the proxy speaks plain HTTP).
async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 64 * 1024];
    let head_end = loop {
        let read = client.read(&mut piece).await.ok()?;
        if read == 0 || (buffer.is_empty() && piece[0] == 0x16) {
            return None;
        }
        buffer.extend_from_slice(&piece[..read]);
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
    };
    let raw_head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = raw_head.split("\r\n");
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
        raw_head,
        head: head.into_bytes(),
        body,
    })
}

/// An upstream answer: status line, headers, body (the registry frames its answers by
/// `Content-Length` and closes, as the proxy asked).
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn parse(bytes: &[u8]) -> Option<Answer> {
        let end = bytes.windows(4).position(|window| window == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?.to_string();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        Some(Answer {
            status_line,
            headers,
            body: bytes[end + 4..].to_vec(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn remove(&mut self, name: &str) {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    }

    fn set(&mut self, name: &str, value: String) {
        self.remove(name);
        self.headers.push((name.to_string(), value));
    }

    /// The head as bytes, with the headers as they now are.
    fn head(&self) -> Vec<u8> {
        let mut head = format!("{}\r\n", self.status_line);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// The answer with its body and a `Content-Length` that fits it.
    fn bytes(mut self) -> Vec<u8> {
        self.set("Content-Length", self.body.len().to_string());
        let mut bytes = self.head();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// `/v2/<repository>/blobs/<digest>` → the digest.
fn blob_of(path: &str) -> Option<&str> {
    let path = path.split('?').next()?;
    let (_, digest) = path.rsplit_once("/blobs/")?;
    (path.starts_with("/v2/") && digest.starts_with("sha256:")).then_some(digest)
}

fn is_manifest(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/manifests/")
}

/// Add `delta` to the `size` of every object in `list` (a JSON array of descriptors).
fn resize(document: &[u8], list: &str, delta: i64) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(document).unwrap();
    if let Some(entries) = value.get_mut(list).and_then(|list| list.as_array_mut()) {
        for entry in entries {
            let size = entry["size"].as_i64().unwrap();
            entry["size"] = serde_json::Value::from(size + delta);
        }
    }
    serde_json::to_vec(&value).unwrap()
}

async fn handle(mut client: TcpStream, upstream: &str, state: &ProxyState) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await else {
        return Ok(());
    };
    state.heads.lock().unwrap().push(request.raw_head.clone());
    let lie = state.lie.lock().unwrap().clone();
    let get = request.method == "GET";
    let blob = blob_of(&request.path).filter(|_| get).map(str::to_string);
    let targets = |digest: &str| blob.as_deref() == Some(digest);
    match &lie {
        Lie::EndlessBlob(digest) if targets(digest) => {
            client
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                .await?;
            let block = vec![0x5a; 64 * 1024];
            loop {
                client.write_all(&block).await?;
            }
        }
        Lie::RedirectBlobs(base) if blob.is_some() => {
            let location = format!("{base}{}?token=redirect-secret", request.path);
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        _ => {}
    }

    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request.head).await?;
    server.write_all(&request.body).await?;
    let mut raw = Vec::new();
    server.read_to_end(&mut raw).await?;
    let Some(mut answer) = Answer::parse(&raw).filter(|answer| answer.status_line.contains(" 200"))
    else {
        client.write_all(&raw).await?;
        return client.shutdown().await;
    };
    match lie {
        Lie::CorruptBlob(digest) if targets(&digest) => {
            let middle = answer.body.len() / 2;
            answer.body[middle] ^= 0xff;
        }
        Lie::BlobLength(digest, length) if targets(&digest) => {
            // The head lies; the body is sent as it is, then the connection closes.
            answer.set("Content-Length", length.to_string());
            client.write_all(&answer.head()).await?;
            client.write_all(&answer.body).await?;
            return client.shutdown().await;
        }
        Lie::DripBlob(digest, interval) if targets(&digest) => {
            return drip(&mut client, answer, interval).await;
        }
        Lie::DripManifests(interval) if get && is_manifest(&request.path) => {
            return drip(&mut client, answer, interval).await;
        }
        Lie::LayerSizes(delta)
            if get
                && is_manifest(&request.path)
                && answer
                    .header("Content-Type")
                    .is_some_and(|kind| kind.contains("manifest.v1")) =>
        {
            answer.body = resize(&answer.body, "layers", delta);
            answer.remove("Docker-Content-Digest");
        }
        Lie::IndexEntrySizes(delta)
            if get
                && is_manifest(&request.path)
                && answer
                    .header("Content-Type")
                    .is_some_and(|kind| kind.contains("index")) =>
        {
            answer.body = resize(&answer.body, "manifests", delta);
            answer.remove("Docker-Content-Digest");
        }
        _ => {}
    }
    client.write_all(&answer.bytes()).await?;
    client.shutdown().await
}

/// Send `answer` one byte per `interval` (a correct `Content-Length` first).
async fn drip(
    client: &mut TcpStream,
    mut answer: Answer,
    interval: Duration,
) -> std::io::Result<()> {
    answer.set("Content-Length", answer.body.len().to_string());
    client.write_all(&answer.head()).await?;
    for byte in answer.body {
        client.write_all(&[byte]).await?;
        client.flush().await?;
        tokio::time::sleep(interval).await;
    }
    client.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// The other host: records every request, serves blobs from the registry's storage

struct OtherHost {
    base: String,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtherHost {
    /// Serves `/v2/<repository>/blobs/<digest>` with the registry's stored bytes, with
    /// the middle byte flipped when `corrupt`.
    async fn start(storage: &Path, corrupt: bool) -> OtherHost {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&heads);
        let storage = storage.to_path_buf();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let record = Arc::clone(&record);
                let storage = storage.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    record.lock().unwrap().push(request.raw_head.clone());
                    let stored = blob_of(&request.path).and_then(|digest| {
                        let hex = digest.strip_prefix("sha256:")?;
                        fs_err::read(
                            storage
                                .join("docker/registry/v2/blobs/sha256")
                                .join(&hex[..2])
                                .join(hex)
                                .join("data"),
                        )
                        .ok()
                    });
                    let answer = match stored {
                        Some(mut bytes) => {
                            if corrupt {
                                let middle = bytes.len() / 2;
                                bytes[middle] ^= 0xff;
                            }
                            let mut answer = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                bytes.len()
                            )
                            .into_bytes();
                            answer.extend_from_slice(&bytes);
                            answer
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        OtherHost { base, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

/// A registry with htpasswd credentials, holding `lies/app:1` (one platform) and
/// `lies/multi:1` (an index of two), and a proxy in front of it.
struct Setup {
    registry: Registry,
    proxy: LyingProxy,
    image: Image,
    multi: Vec<Image>,
    scratch: tempfile::TempDir,
    auth: AuthEnvironment,
}

fn htpasswd(dir: &Path) -> std::path::PathBuf {
    let output = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .expect("`htpasswd` (apache2-utils) is needed: run scripts/setup-tools");
    assert!(output.status.success());
    let path = dir.join("htpasswd");
    fs_err::write(&path, output.stdout).unwrap();
    path
}

/// A base with no layers for `platform` (its config only).
fn empty_base(platform: &Platform) -> BaseImage {
    BaseImage {
        reference: "scratch".to_string(),
        manifest_digest: Sha256Digest::of(b"scratch"),
        config: serde_json::json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []}
        }),
        layers: Vec::new(),
        diff_ids: Vec::new(),
        platform: platform.clone(),
    }
}

impl Setup {
    async fn new() -> Setup {
        let scratch = tempfile::tempdir().unwrap();
        let htpasswd = htpasswd(scratch.path());
        let registry = Registry::start(&format!(
            "auth:\n  htpasswd:\n    realm: envbuild-lies\n    path: {}\n",
            htpasswd.display()
        ));
        let proxy = LyingProxy::start(&registry.addr).await;

        // Credentials for both the registry and the proxy (as a user would configure
        // the host they pull from).
        let docker = scratch.path().join("docker");
        fs_err::create_dir_all(&docker).unwrap();
        let auth = data_encoding::BASE64.encode(format!("{USER}:{PASSWORD}").as_bytes());
        fs_err::write(
            docker.join("config.json"),
            serde_json::json!({"auths": {
                registry.addr.clone(): {"auth": auth},
                proxy.addr.clone(): {"auth": auth},
            }})
            .to_string(),
        )
        .unwrap();
        let auth = AuthEnvironment {
            docker_config: Some(docker),
            home: None,
            registry_auth_file: None,
            xdg_runtime_dir: None,
            path: None,
        };

        let cache = open_cache(&scratch.path().join("push-cache"));
        let amd64 = linux("amd64");
        let small = file_layer(&cache, &[("srv/app.py", b"print('lies')\n")]);
        let data = noise(7, 96 * 1024);
        let large = file_layer(&cache, &[("srv/data.bin", &data)]);
        let image = assemble_image(&empty_base(&amd64), &[small.clone(), large], None);
        let arm64 = linux("arm64");
        let multi = vec![
            assemble_image(&empty_base(&amd64), std::slice::from_ref(&small), None),
            assemble_image(&empty_base(&arm64), std::slice::from_ref(&small), None),
        ];
        let client = Client::new(options(&auth)).unwrap();
        client
            .push(
                std::slice::from_ref(&image),
                &reference(&registry.addr, "lies/app:1"),
                &cache,
            )
            .await
            .unwrap();
        client
            .push(&multi, &reference(&registry.addr, "lies/multi:1"), &cache)
            .await
            .unwrap();
        Setup {
            registry,
            proxy,
            image,
            multi,
            scratch,
            auth,
        }
    }

    /// A fresh cache.
    fn cache(&self, name: &str) -> Cache {
        open_cache(&self.scratch.path().join(name))
    }

    /// Pull `repository:1` through the proxy into `cache`.
    async fn pull(
        &self,
        options: RegistryOptions,
        repository: &str,
        platform: Option<&Platform>,
        cache: &Cache,
    ) -> Result<BaseImage, RegistryError> {
        Client::new(options)
            .unwrap()
            .pull_base(
                &reference(&self.proxy.addr, &format!("{repository}:1")),
                platform,
                cache,
            )
            .await
    }

    /// The digest and size of the image's larger layer.
    fn large_layer(&self) -> (Sha256Digest, u64) {
        let layer = self
            .image
            .layers
            .iter()
            .max_by_key(|layer| layer.size)
            .unwrap();
        (layer.digest, layer.size)
    }
}

fn options(auth: &AuthEnvironment) -> RegistryOptions {
    RegistryOptions {
        auth: auth.clone(),
        retries: 1,
        timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RegistryOptions::default()
    }
}

fn reference(addr: &str, name: &str) -> RegistryReference {
    format!("{addr}/{name}").parse().unwrap()
}

/// No blob, wheel or temporary file in `cache`.
fn assert_nothing_stored(cache: &Cache) {
    for folder in ["blobs/sha256", "wheels/sha256", "tmp"] {
        let entries: Vec<_> = fs_err::read_dir(cache.root().join(folder))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(entries.is_empty(), "{folder} holds {entries:?}");
    }
}

/// The blob is not in `cache`, and no temporary file is left. (Another blob verified
/// while the lie was found may still be finishing its move into the cache: wait for
/// that, briefly.)
fn assert_not_stored(cache: &Cache, digest: &Sha256Digest) {
    assert!(
        !cache.entry_path(EntryKind::Blob, digest).exists(),
        "blob {digest} was stored"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = fs_err::read_dir(cache.root().join("tmp"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "temporary files left: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !cache.entry_path(EntryKind::Blob, digest).exists(),
        "blob {digest} was stored"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_honest_proxy_pulls_with_credentials() {
    let setup = Setup::new().await;
    let cache = setup.cache("honest");
    let pulled = setup
        .pull(options(&setup.auth), "lies/app", None, &cache)
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, setup.image.manifest_digest);
    let heads = setup.proxy.heads().to_ascii_lowercase();
    assert!(heads.contains("authorization: basic"), "{heads}");
    assert!(!heads.contains("referer"), "{heads}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_blob_bytes_that_do_not_match_the_digest() {
    let setup = Setup::new().await;
    let (digest, _) = setup.large_layer();
    setup.proxy.lie(Lie::CorruptBlob(digest.oci()));
    let cache = setup.cache("corrupt");

    let error = setup
        .pull(options(&setup.auth), "lies/app", None, &cache)
        .await
        .unwrap_err();

    let RegistryError::DigestMismatch {
        expected, actual, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*expected, digest);
    assert_ne!(*actual, digest);
    let message = error.to_string();
    for part in [
        digest.to_string(),
        setup.proxy.addr.clone(),
        "altered".to_string(),
    ] {
        assert!(message.contains(&part), "{part} missing from: {message}");
    }
    assert_not_stored(&cache, &digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_wrong_content_length_is_a_size_mismatch_and_nothing_is_downloaded() {
    let setup = Setup::new().await;
    let (digest, size) = setup.large_layer();
    for announced in [size + 1000, size - 1] {
        setup.proxy.lie(Lie::BlobLength(digest.oci(), announced));
        let cache = setup.cache(&format!("length-{announced}"));

        let error = setup
            .pull(options(&setup.auth), "lies/app", None, &cache)
            .await
            .unwrap_err();

        let RegistryError::SizeMismatch {
            expected, actual, ..
        } = &error
        else {
            panic!("{announced}: {error:?}")
        };
        assert_eq!(*expected, size);
        assert_eq!(*actual, ReceivedSize::Announced(announced));
        let message = error.to_string();
        for part in [
            format!("blob {digest}"),
            format!("says {size} bytes"),
            format!("`Content-Length` of {announced} bytes"),
        ] {
            assert!(message.contains(&part), "{part} missing from: {message}");
        }
        assert_not_stored(&cache, &digest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_wrong_descriptor_size_is_reported_as_a_size() {
    let setup = Setup::new().await;
    setup.proxy.lie(Lie::LayerSizes(3));
    let cache = setup.cache("descriptor");

    let error = setup
        .pull(options(&setup.auth), "lies/app", None, &cache)
        .await
        .unwrap_err();

    let RegistryError::SizeMismatch {
        what,
        expected,
        actual,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    let layer = setup
        .image
        .layers
        .iter()
        .find(|layer| what.contains(&layer.digest.to_string()))
        .unwrap_or_else(|| panic!("{what} names no layer"));
    assert_eq!(*expected, layer.size + 3);
    assert_eq!(*actual, ReceivedSize::Announced(layer.size));
    let message = error.to_string();
    assert!(!message.contains("was expected"), "{message}");
    assert_not_stored(&cache, &layer.digest);
}

/// Defect 11: an index entry with the wrong size said "has digest X, but X was
/// expected".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_index_entry_with_the_wrong_size_names_both_sizes() {
    let setup = Setup::new().await;
    setup.proxy.lie(Lie::IndexEntrySizes(7));
    let cache = setup.cache("index");

    let error = setup
        .pull(
            options(&setup.auth),
            "lies/multi",
            Some(&linux("arm64")),
            &cache,
        )
        .await
        .unwrap_err();

    let RegistryError::SizeMismatch {
        expected, actual, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    let manifest = &setup.multi[1];
    assert_eq!(*expected, manifest.manifest.len() as u64 + 7);
    assert_eq!(
        *actual,
        ReceivedSize::Exactly(manifest.manifest.len() as u64)
    );
    let message = error.to_string();
    for part in [
        format!("manifest {}", manifest.manifest_digest),
        "listed in index".to_string(),
        format!("says {expected} bytes"),
        format!("sent {} bytes", manifest.manifest.len()),
    ] {
        assert!(message.contains(&part), "{part} missing from: {message}");
    }
    assert!(!message.contains("was expected"), "{message}");
    assert_nothing_stored(&cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_endless_blob_stops_at_its_descriptor_size() {
    let setup = Setup::new().await;
    let (digest, size) = setup.large_layer();
    setup.proxy.lie(Lie::EndlessBlob(digest.oci()));
    let cache = setup.cache("endless");
    let started = Instant::now();

    let error = setup
        .pull(options(&setup.auth), "lies/app", None, &cache)
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(20));
    let RegistryError::SizeMismatch { actual, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*actual, ReceivedSize::MoreThan(size));
    assert!(
        error
            .to_string()
            .contains(&format!("more than {size} bytes")),
        "{error}"
    );
    assert_not_stored(&cache, &digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_dripping_blob_and_manifest_fail_in_bounded_time() {
    let setup = Setup::new().await;
    let (digest, _) = setup.large_layer();
    let slow = RegistryOptions {
        min_rate: MinimumRate {
            bytes_per_second: 1024,
            window: Duration::from_secs(1),
        },
        ..options(&setup.auth)
    };
    for (lie, what) in [
        (
            Lie::DripBlob(digest.oci(), Duration::from_millis(100)),
            format!("blob {digest}"),
        ),
        (
            Lie::DripManifests(Duration::from_millis(100)),
            "manifest `1`".to_string(),
        ),
    ] {
        setup.proxy.lie(lie);
        let cache = setup.cache(&format!("drip-{}", what.len()));
        let started = Instant::now();

        let error = setup
            .pull(slow.clone(), "lies/app", None, &cache)
            .await
            .unwrap_err();

        // Two attempts of about a second each (every single read comes in time).
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(10),
            "{what}: took {elapsed:?}"
        );
        assert!(
            matches!(error, RegistryError::RetriesExhausted { attempts: 2, .. }),
            "{what}: {error:?}"
        );
        let message = error.to_string();
        for part in [
            what.as_str(),
            "minimum transfer rate of 1 KiB/s",
            "--min-transfer-rate",
        ] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
        assert_not_stored(&cache, &digest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_another_host_gets_no_authorization_and_no_referer() {
    let setup = Setup::new().await;
    // An honest other host: the pull completes, and the other host never saw a
    // credential or where the client came from.
    let other = OtherHost::start(&setup.registry.data_dir, false).await;
    setup.proxy.lie(Lie::RedirectBlobs(other.base.clone()));
    let cache = setup.cache("redirect");

    let pulled = setup
        .pull(options(&setup.auth), "lies/app", None, &cache)
        .await
        .unwrap();

    assert_eq!(pulled.manifest_digest, setup.image.manifest_digest);
    let heads = other.heads();
    assert!(heads.len() >= setup.image.layers.len(), "{heads:?}");
    for head in &heads {
        let head = head.to_ascii_lowercase();
        assert!(head.contains("token=redirect-secret"), "{head}");
        for leaked in ["authorization", "referer", USER, "cookie"] {
            assert!(
                !head.contains(leaked),
                "{leaked} reached the other host: {head}"
            );
        }
    }
    let proxy_heads = setup.proxy.heads().to_ascii_lowercase();
    assert!(
        proxy_heads.contains("authorization: basic"),
        "{proxy_heads}"
    );

    // A lying other host: the bytes are refused, nothing is stored, and the message
    // shows no token of the redirect.
    let liar = OtherHost::start(&setup.registry.data_dir, true).await;
    setup.proxy.lie(Lie::RedirectBlobs(liar.base.clone()));
    let cache = setup.cache("redirect-liar");

    let error = setup
        .pull(options(&setup.auth), "lies/app", None, &cache)
        .await
        .unwrap_err();

    assert!(
        matches!(error, RegistryError::DigestMismatch { .. }),
        "{error:?}"
    );
    assert!(
        !format!("{error} {error:?}").contains("redirect-secret"),
        "{error:?}"
    );
    // The config comes first, from the liar too: refused before anything is stored.
    assert_nothing_stored(&cache);
    for head in liar.heads() {
        let head = head.to_ascii_lowercase();
        assert!(
            !head.contains("authorization") && !head.contains("referer"),
            "{head}"
        );
    }
}
