//! Shared helpers for the registry tests: the real CNCF distribution registry
//! (`docker-registry serve`) started on 127.0.0.1 at a free port with a generated config,
//! optionally behind TLS and with an `auth:` section, and killed by its PID on drop.
//!
//! Use it from a test file with `mod registry_support;`. It does not depend on
//! `tests/common`, so a test may include either or both. It also makes small images to
//! push: a base layout read into a cache ([`read_layout_base`]), layers of given files
//! ([`file_layer`]) and images assembled from them ([`assemble_image`]).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envbuild::cache::Cache;
use envbuild::digest::Sha256Digest;
use envbuild::oci::{BaseImage, Image, ImageReference, ImageSettings, NewLayer};
use envbuild::platform::Platform;
use envbuild::repro::SourceDateEpoch;

/// How long a registry may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The certificate and key the registry serves HTTPS with (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server certificate (chain), PEM.
    pub certificate: PathBuf,
    /// The server's private key, PEM.
    pub key: PathBuf,
}

/// What to start: extra top-level YAML (for example an `auth:` section) and TLS files.
#[derive(Debug, Clone, Default)]
pub struct RegistrySetup {
    /// YAML appended at the top level of the generated config: `auth:`, `notifications:`,
    /// ... (not `http:` or `storage:`, which the helper writes).
    pub extra_yaml: String,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A running `docker-registry` on 127.0.0.1; killed (by PID) on drop, its files removed.
pub struct Registry {
    /// `127.0.0.1:PORT`: the registry's `host:port` as image references name it.
    pub addr: String,
    /// The port it listens on.
    pub port: u16,
    /// The storage root (`storage.filesystem.rootdirectory`).
    pub data_dir: PathBuf,
    /// The folder holding the config, the log and `data_dir`.
    pub dir: PathBuf,
    /// Whether it serves HTTPS.
    pub tls: bool,
    setup: RegistrySetup,
    child: Option<Child>,
    _scratch: tempfile::TempDir,
}

impl Registry {
    /// Starts a plain-HTTP registry with `config_extra_yaml` appended to its config (may be
    /// empty) and waits until `/v2/` answers.
    pub fn start(config_extra_yaml: &str) -> Registry {
        Registry::start_with(RegistrySetup {
            extra_yaml: config_extra_yaml.to_owned(),
            tls: None,
        })
    }

    /// Starts an HTTPS registry serving `certificate` and `key`, with `config_extra_yaml`
    /// appended to its config, and waits until it accepts connections.
    pub fn start_tls(config_extra_yaml: &str, certificate: &Path, key: &Path) -> Registry {
        Registry::start_with(RegistrySetup {
            extra_yaml: config_extra_yaml.to_owned(),
            tls: Some(TlsFiles {
                certificate: certificate.to_owned(),
                key: key.to_owned(),
            }),
        })
    }

    /// Starts a registry as `setup` says and waits until it is ready.
    pub fn start_with(setup: RegistrySetup) -> Registry {
        require_registry();
        let scratch_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        fs_err::create_dir_all(&scratch_root).unwrap();
        let scratch = tempfile::Builder::new()
            .prefix(&format!("registry-{}-", std::process::id()))
            .tempdir_in(&scratch_root)
            .expect("creating the registry's scratch folder");
        let dir = scratch.path().to_owned();
        let data_dir = dir.join("data");
        fs_err::create_dir_all(&data_dir).unwrap();
        let mut registry = Registry {
            addr: String::new(),
            port: 0,
            data_dir,
            dir,
            tls: setup.tls.is_some(),
            setup,
            child: None,
            _scratch: scratch,
        };
        registry.launch();
        registry
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `127.0.0.1:PORT/<repository_and_tag>`, as image references name it.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.addr)
    }

    /// The registry's log so far (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The generated config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yml")
    }

    /// The PID of the running registry process, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the registry (by PID) and waits for it; its storage stays. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage (after [`stop`]).
    ///
    /// [`stop`]: Registry::stop
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn_on(port)
            .unwrap_or_else(|log| panic!("restarting docker-registry on port {port}:\n{log}"));
    }

    /// The blob digests (`sha256:<hex>`) the registry stores, from its storage folder.
    pub fn stored_blobs(&self) -> Vec<String> {
        let root = self.data_dir.join("docker/registry/v2/blobs/sha256");
        let mut digests = Vec::new();
        let Ok(prefixes) = fs_err::read_dir(&root) else {
            return digests;
        };
        for prefix in prefixes {
            let prefix = prefix.unwrap().path();
            for blob in fs_err::read_dir(&prefix).unwrap() {
                let blob = blob.unwrap().path();
                if blob.join("data").is_file() {
                    let hex = blob.file_name().unwrap().to_string_lossy().into_owned();
                    digests.push(format!("sha256:{hex}"));
                }
            }
        }
        digests.sort();
        digests
    }

    /// The stored bytes of a blob, read from the registry's storage folder.
    pub fn stored_blob(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:")?;
        let path = self
            .data_dir
            .join("docker/registry/v2/blobs/sha256")
            .join(hex.get(..2)?)
            .join(hex)
            .join("data");
        fs_err::read(path).ok()
    }

    /// Picks a free port and starts the registry, retrying when another process took the
    /// port between picking and binding.
    fn launch(&mut self) {
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            match self.spawn_on(port) {
                Ok(()) => return,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not start after 5 tries; last log:\n{last_log}");
    }

    /// Writes the config for `port`, starts the registry and waits until it answers; on
    /// failure kills it and returns its log.
    fn spawn_on(&mut self, port: u16) -> Result<(), String> {
        self.port = port;
        self.addr = format!("127.0.0.1:{port}");
        let config = self.config_text();
        fs_err::write(self.config_path(), config).unwrap();
        let log_path = self.dir.join("registry.log");
        let log = fs_err::File::create(&log_path).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap().into_parts().0)
            .stderr(log.into_parts().0)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if self.ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "no answer on {} in time:\n{}",
                    self.addr,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the registry answers: for plain HTTP, `GET /v2/` gives 200 or 401; for TLS,
    /// the port accepts connections (the registry listens only once it is set up).
    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(&self.addr) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 401")
    }

    fn config_text(&self) -> String {
        let mut http = format!(
            "http:\n  addr: {}\n  secret: envbuild-test-secret\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
            self.addr
        );
        if let Some(tls) = &self.setup.tls {
            http.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.certificate.display(),
                tls.key.display()
            ));
        }
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n{http}{}\n",
            self.data_dir.display(),
            self.setup.extra_yaml
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .port()
}

/// Fails the test when `docker-registry` is not installed.
fn require_registry() {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("docker-registry").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`docker-registry` is not installed: run scripts/setup-tools (the tests need the real registry)"
    );
}

// ---------------------------------------------------------------------------------------------
// Images to push

/// A cache in `dir` (created if needed).
pub fn open_cache(dir: &Path) -> Cache {
    Cache::open(dir).expect("opening a cache")
}

/// The base image of an `oci:DIR:TAG` reference, read into `cache`.
pub fn read_layout_base(reference: &str, cache: &Cache) -> BaseImage {
    let reference: ImageReference = reference.parse().expect("a layout reference");
    envbuild::oci::read_base(&reference, None, cache).expect("reading the base layout")
}

/// A gzip layer holding `files` (path, bytes; parents are added), stored in `cache`.
/// The same files give the same bytes.
pub fn file_layer(cache: &Cache, files: &[(&str, &[u8])]) -> NewLayer {
    let mut paths: Vec<(String, &[u8])> = files
        .iter()
        .map(|(path, bytes)| (path.trim_start_matches('/').to_string(), *bytes))
        .collect();
    paths.sort();
    let mut directories: Vec<String> = Vec::new();
    for (path, _) in &paths {
        let mut parent = Path::new(path).parent();
        while let Some(folder) = parent.filter(|folder| !folder.as_os_str().is_empty()) {
            let name = format!("{}/", folder.display());
            if !directories.contains(&name) {
                directories.push(name);
            }
            parent = folder.parent();
        }
    }
    directories.sort();
    let mut builder = tar::Builder::new(Vec::new());
    for directory in &directories {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(0);
        header.set_path(directory).unwrap();
        header.set_cksum();
        builder.append(&header, std::io::empty()).unwrap();
    }
    for (path, bytes) in &paths {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        header.set_path(path).unwrap();
        header.set_cksum();
        builder.append(&header, *bytes).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&tar).unwrap();
    let gzip = encoder.finish().unwrap();
    let digest = cache.insert_blob_bytes(&gzip).expect("storing the layer");
    NewLayer {
        diff_id: Sha256Digest::of(&tar),
        digest,
        size: gzip.len() as u64,
        created_by: format!("test layer of {} files", files.len()),
    }
}

/// `length` bytes that do not compress (a SHA-256 chain from `seed`).
pub fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(length + 32);
    let mut block = Sha256Digest::of(&seed.to_le_bytes());
    while bytes.len() < length {
        bytes.extend_from_slice(block.as_bytes());
        block = Sha256Digest::of(block.as_bytes());
    }
    bytes.truncate(length);
    bytes
}

/// `base` plus `layers`, for `platform` (default: the base's). Another platform is
/// written into the config too, so the image claims it consistently (it is only for
/// index tests: its binaries are still the base's).
pub fn assemble_image(base: &BaseImage, layers: &[NewLayer], platform: Option<&Platform>) -> Image {
    let mut base = base.clone();
    if let Some(platform) = platform {
        base.platform = platform.clone();
        base.config["architecture"] = serde_json::Value::from(platform.architecture.clone());
        base.config["os"] = serde_json::Value::from(platform.os.clone());
        match &platform.variant {
            Some(variant) => base.config["variant"] = serde_json::Value::from(variant.clone()),
            None => {
                if let Some(config) = base.config.as_object_mut() {
                    config.remove("variant");
                }
            }
        }
    }
    envbuild::oci::assemble(
        &base,
        layers,
        &ImageSettings::default(),
        SourceDateEpoch::from_seconds(1_700_000_000),
    )
    .expect("assembling the image")
}

/// `linux/<architecture>`.
pub fn linux(architecture: &str) -> Platform {
    Platform {
        os: "linux".to_string(),
        architecture: architecture.to_string(),
        variant: None,
    }
}
