//! Helpers for envbuild's integration tests, which drive real parts only: the wheels pinned in
//! `tests/data/wheels.txt` and a CPython base image made from Debian packages (both made once
//! by `scripts/fixtures`), a PEP 503/691 index on 127.0.0.1 (`scripts/simple-index`), uv to
//! lock the example project (`scripts/lock-example`), the `envbuild` binary, and podman, skopeo
//! and umoci to read and run what it writes. A missing tool fails the test with a hint to run
//! `scripts/setup-tools`; nothing is skipped. Tests that run podman or umoci assume root.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example project the end-to-end tests lock and build.
pub fn hello_service() -> PathBuf {
    repo_root().join("examples/hello-service")
}

/// Where integration tests keep their scratch files (under `target/`).
pub fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A fresh scratch directory under [`scratch_root`], named `<prefix><pid>-...`, removed on
/// drop. Scratch folders of test processes that no longer run are removed first (a folder
/// held in a `static` is never dropped).
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    remove_stale_scratch();
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(scratch_root())
        .expect("creating a scratch directory")
}

/// Removes `<word>-<pid>-...` folders under [`scratch_root`] whose process is gone; once per
/// process.
fn remove_stale_scratch() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        fs_err::create_dir_all(scratch_root()).unwrap();
        for entry in fs_err::read_dir(scratch_root()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .split('-')
                .nth(1)
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid {
                let alive = Path::new(&format!("/proc/{pid}")).exists();
                if !alive && entry.file_type().unwrap().is_dir() {
                    let _ = fs_err::remove_dir_all(entry.path());
                }
            }
        }
    });
}

/// Panics, failing the test, when `tool` is not on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: run scripts/setup-tools (the tests need the real tool)"
    );
}

/// Runs `command`, failing the test with its output unless it exits 0.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `make` once per process and hands out its result; if it panicked, every later
/// caller fails at once with the first panic's message instead of running it again.
pub fn once<T>(cell: &'static OnceLock<Result<T, String>>, make: fn() -> T) -> &'static T {
    let result = cell.get_or_init(|| {
        std::panic::catch_unwind(make).map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned())
        })
    });
    match result {
        Ok(value) => value,
        Err(message) => {
            let first = message.lines().next().unwrap_or_default();
            panic!("a shared step failed in an earlier test (its output is above): {first}")
        }
    }
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The paths `scripts/fixtures` made.
#[derive(Debug, Clone)]
pub struct Fixtures {
    /// The cache folder that holds the rest.
    pub cache: PathBuf,
    /// A folder with exactly the wheels pinned in `tests/data/wheels.txt`.
    pub wheels: PathBuf,
    /// The base image's OCI layout (tag `py311`).
    pub base: PathBuf,
    /// `oci:<base>:py311`.
    pub base_ref: String,
}

/// The fixtures, made (or checked) once per test process by `scripts/fixtures`. When
/// `scripts/test` already ran it and exported the paths, those are used as they are.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let exported = [
            "ENVBUILD_TEST_CACHE",
            "ENVBUILD_FIXTURE_WHEELS",
            "ENVBUILD_FIXTURE_BASE",
            "ENVBUILD_FIXTURE_BASE_REF",
        ]
        .map(|key| std::env::var(key).ok());
        if let [Some(cache), Some(wheels), Some(base), Some(base_ref)] = exported
            && Path::new(&wheels).is_dir()
            && Path::new(&base).join("index.json").is_file()
        {
            return Fixtures {
                cache: cache.into(),
                wheels: wheels.into(),
                base: base.into(),
                base_ref,
            };
        }
        for tool in ["python3", "apt-get", "dpkg-deb", "umoci", "flock"] {
            require_tool(tool);
        }
        let output = run_ok(
            Command::new("bash")
                .arg(repo_root().join("scripts/fixtures"))
                .stderr(Stdio::inherit()),
        );
        let values: BTreeMap<String, String> = stdout(&output)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let get = |key: &str| {
            values
                .get(key)
                .unwrap_or_else(|| panic!("scripts/fixtures printed no {key}"))
                .clone()
        };
        Fixtures {
            cache: get("ENVBUILD_TEST_CACHE").into(),
            wheels: get("ENVBUILD_FIXTURE_WHEELS").into(),
            base: get("ENVBUILD_FIXTURE_BASE").into(),
            base_ref: get("ENVBUILD_FIXTURE_BASE_REF"),
        }
    })
}

/// The wheel files of the fixture set, sorted by file name.
pub fn fixture_wheels() -> Vec<PathBuf> {
    let mut wheels: Vec<PathBuf> = fs_err::read_dir(&fixtures().wheels)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension() == Some(OsStr::new("whl")))
        .collect();
    wheels.sort();
    assert!(
        wheels.len() >= 14,
        "expected the pinned wheel set, found {wheels:?}"
    );
    wheels
}

// ---------------------------------------------------------------------------------------------
// A local package index

/// `scripts/simple-index` serving a folder on 127.0.0.1; killed on drop (and it exits by
/// itself if the test process dies).
pub struct IndexServer {
    /// The simple index URL, `http://127.0.0.1:PORT/simple/`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl IndexServer {
    /// Starts serving `dir` and waits until it listens.
    pub fn start(dir: &Path) -> IndexServer {
        require_tool("python3");
        let mut child = Command::new("python3")
            .arg(repo_root().join("scripts/simple-index"))
            .arg("--exit-with-parent")
            .arg(dir)
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting scripts/simple-index");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the index port");
        let port: u16 = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("scripts/simple-index printed {line:?} instead of its port");
            }
        };
        IndexServer {
            url: format!("http://127.0.0.1:{port}/simple/"),
            port,
            child,
        }
    }
}

impl Drop for IndexServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Locking with uv

/// A copy of a project, locked by uv; the files are removed on drop.
pub struct LockedProject {
    /// The exported PEP 751 lockfile.
    pub pylock: PathBuf,
    /// The project copy (holds pyproject.toml, uv.lock and pylock.toml).
    pub dir: PathBuf,
    _scratch: tempfile::TempDir,
}

/// Copies `project` (its top-level files) to a scratch folder and locks it against
/// `index_url` with `scripts/lock-example`.
pub fn lock_example(index_url: &str, project: &Path) -> LockedProject {
    require_tool("uv");
    let scratch = scratch_dir("lock-");
    let dir = scratch.path().join("project");
    fs_err::create_dir(&dir).unwrap();
    for entry in fs_err::read_dir(project).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if entry.file_type().unwrap().is_file() && name != "pylock.toml" && name != "uv.lock" {
            fs_err::copy(entry.path(), dir.join(&name)).unwrap();
        }
    }
    let output = run_ok(
        Command::new("bash")
            .arg(repo_root().join("scripts/lock-example"))
            .arg(index_url)
            .arg(&dir),
    );
    let pylock = PathBuf::from(stdout(&output).trim());
    assert!(pylock.is_file(), "no lockfile at {}", pylock.display());
    LockedProject {
        pylock,
        dir,
        _scratch: scratch,
    }
}

/// One package of a pylock.toml, with its (only) wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedWheel {
    /// The normalized package name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The wheel's file name (`name` key, else the URL's last segment, as PEP 751 says).
    pub wheel: String,
    /// The wheel's sha256, hex.
    pub sha256: String,
    /// The wheel's URL.
    pub url: String,
    /// The package's marker, if any.
    pub marker: Option<String>,
}

/// Reads the packages of a pylock.toml whose packages each have exactly one wheel (as the
/// fixture index makes them).
pub fn read_pylock(path: &Path) -> Vec<LockedWheel> {
    let text = fs_err::read_to_string(path).unwrap();
    let lock: toml::Table = toml::from_str(&text).unwrap();
    let packages = lock["packages"].as_array().expect("`packages` array");
    packages
        .iter()
        .map(|package| {
            let s = |v: &toml::Value| v.as_str().unwrap().to_owned();
            let wheels = package["wheels"].as_array().expect("`packages.wheels`");
            assert_eq!(wheels.len(), 1, "one wheel per package: {package}");
            let wheel = &wheels[0];
            let url = s(&wheel["url"]);
            let file_name = match wheel.get("name") {
                Some(name) => s(name),
                None => url.rsplit('/').next().unwrap().to_owned(),
            };
            LockedWheel {
                name: s(&package["name"]),
                version: s(&package["version"]),
                wheel: file_name,
                sha256: s(&wheel["hashes"]["sha256"]),
                url,
                marker: package.get("marker").map(s),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Running envbuild

/// Variables that could change what envbuild does behind a test's back.
const ISOLATED_ENV: &[&str] = &[
    "SOURCE_DATE_EPOCH",
    "ENVBUILD_CACHE_DIR",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_CONFIG_FILE",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
];

/// A command line for the `envbuild` binary under test, with the environment isolated:
/// SOURCE_DATE_EPOCH, ENVBUILD_CACHE_DIR and index settings are cleared unless set here,
/// and the cache defaults to a scratch folder shared by the test process.
pub struct Envbuild {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    umask: Option<u32>,
}

/// Starts an `envbuild` command line.
pub fn envbuild() -> Envbuild {
    Envbuild {
        args: Vec::new(),
        env: Vec::new(),
        current_dir: None,
        umask: None,
    }
}

impl Envbuild {
    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Runs under this umask.
    pub fn umask(mut self, umask: u32) -> Self {
        self.umask = Some(umask);
        self
    }

    /// The command line, ready to run.
    pub fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_envbuild");
        let mut command = match self.umask {
            Some(umask) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {umask:03o} && exec \"$0\" \"$@\""))
                    .arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command.args(&self.args).stdin(Stdio::null());
        for key in ISOLATED_ENV {
            command.env_remove(key);
        }
        command.env("ENVBUILD_CACHE_DIR", default_cache_dir());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs it and returns its output, whatever the exit status.
    pub fn output(&self) -> Output {
        let mut command = self.command();
        command
            .output()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"))
    }

    /// Runs it, failing the test with stdout and stderr unless it exits 0.
    pub fn success(&self) -> Output {
        run_ok(&mut self.command())
    }
}

/// The cache folder used when a test names none: one per test process.
fn default_cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_scratch();
        let dir = scratch_root().join(format!("cache-{}-default", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The image digest `envbuild image` printed (its only stdout line), checked for shape.
pub fn printed_digest(output: &Output) -> String {
    let text = stdout(output);
    let digest = text.trim_end_matches('\n');
    assert!(
        is_digest(digest) && text.ends_with('\n') && !digest.contains('\n'),
        "expected one line `sha256:<64 hex>` on stdout, got {text:?}"
    );
    digest.to_owned()
}

/// True for `sha256:` followed by 64 lowercase hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The standard arguments that build the example: `envbuild image --lock LOCK --base BASE
/// --output OUTPUT` plus image settings every build of the example uses.
pub fn image_args(lock: &Path, output: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "image".into(),
        "--lock".into(),
        lock.into(),
        "--base".into(),
        fixtures().base_ref.clone().into(),
        "--output".into(),
        output.into(),
    ];
    for arg in EXAMPLE_SETTINGS {
        args.push(arg.into());
    }
    args
}

/// The image settings of the example build (as scripts/example passes them, plus a user).
pub const EXAMPLE_SETTINGS: &[&str] = &[
    "--cmd",
    "flask --version",
    "--env",
    "GREETING=hello",
    "--workdir",
    "/srv",
    "--user",
    "65534:65534",
    "--label",
    "org.opencontainers.image.title=hello-service",
    "--annotation",
    "org.opencontainers.image.description=envbuild test image",
];

// ---------------------------------------------------------------------------------------------
// skopeo, umoci, podman

/// `skopeo inspect REF` as JSON (digest, architecture, os, layers, env, ...).
pub fn skopeo_inspect(reference: &str) -> Value {
    require_tool("skopeo");
    let output = run_ok(Command::new("skopeo").arg("inspect").arg(reference));
    serde_json::from_slice(&output.stdout).expect("skopeo inspect prints JSON")
}

/// The exact manifest bytes (`skopeo inspect --raw REF`).
pub fn skopeo_raw_manifest(reference: &str) -> Vec<u8> {
    require_tool("skopeo");
    run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(reference),
    )
    .stdout
}

/// The image config (`skopeo inspect --config REF`) as JSON.
pub fn skopeo_config(reference: &str) -> Value {
    require_tool("skopeo");
    let output = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(reference),
    );
    serde_json::from_slice(&output.stdout).expect("skopeo inspect --config prints JSON")
}

/// `umoci unpack --image LAYOUT:TAG DEST` (DEST must not exist); returns `DEST/rootfs`.
pub fn umoci_unpack(layout: &Path, tag: &str, dest: &Path) -> PathBuf {
    require_tool("umoci");
    let mut image = layout.as_os_str().to_owned();
    image.push(format!(":{tag}"));
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(image)
            .arg(dest),
    );
    dest.join("rootfs")
}

/// `podman run --rm --network=none IMAGE ARGS...` the way podman works on these machines.
pub fn podman_run(image: &str, args: &[&str]) -> Output {
    podman_run_with(image, &[], args)
}

/// As [`podman_run`], with extra `podman run` options (`-v`, `-e`, `--user`, ...).
pub fn podman_run_with(image: &str, options: &[&str], args: &[&str]) -> Output {
    require_tool("podman");
    require_tool("runc");
    let (transport, path, tag) = split_local_reference(image);
    // podman names a local image after its path, which must then be a valid image name
    // (lowercase, no component starting with a dot): run it through a plain symlink.
    let link = podman_link_dir().join(format!(
        "p{}-{}",
        std::process::id(),
        LINKS.fetch_add(1, Ordering::SeqCst)
    ));
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let mut reference = format!("{transport}:{}", link.display());
    if let Some(tag) = &tag {
        reference.push(':');
        reference.push_str(tag);
    }
    let mut command = podman();
    command
        .args(["run", "--rm", "--network=none", "--pull=never"])
        .args(options)
        .arg(&reference)
        .args(args)
        .stdin(Stdio::null());
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    // Drop the names podman gave the image it copied into its store (after the path, or for
    // an archive after its tag). Untagging deletes nothing that a parallel run may be using;
    // the same image is stored once however often it is run.
    let mut names = vec![format!("localhost{}", link.display())];
    if transport == "oci-archive"
        && let Some(tag) = &tag
    {
        names.push(format!("localhost/{tag}"));
    }
    for name in names {
        let _ = podman().arg("untag").arg(name).output();
    }
    let _ = fs_err::remove_file(&link);
    output
}

/// As [`podman_run`], failing the test unless the command exits 0; returns its stdout.
pub fn podman_run_ok(image: &str, args: &[&str]) -> String {
    podman_run_ok_with(image, &[], args)
}

/// As [`podman_run_with`], failing the test unless the command exits 0; returns its stdout.
pub fn podman_run_ok_with(image: &str, options: &[&str], args: &[&str]) -> String {
    let output = podman_run_with(image, options, args);
    assert!(
        output.status.success(),
        "podman run {image} {args:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

static LINKS: AtomicUsize = AtomicUsize::new(0);

fn podman_link_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from("/tmp/envbuild-podman");
        fs_err::create_dir_all(&dir).unwrap();
        dir
    })
}

/// podman with the flags it needs here: runc, cgroupfs, and no default ulimits (they cannot be
/// raised in this sandbox).
fn podman() -> Command {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        fs_err::create_dir_all(scratch_root()).unwrap();
        let path = scratch_root().join("containers.conf");
        fs_err::write(&path, "[containers]\ndefault_ulimits = []\n").unwrap();
        path
    });
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf).args([
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]);
    command
}

/// Splits `oci:PATH[:TAG]` or `oci-archive:PATH[:TAG]` into transport, absolute path, tag.
fn split_local_reference(image: &str) -> (String, PathBuf, Option<String>) {
    let (transport, rest) = image
        .split_once(':')
        .unwrap_or_else(|| panic!("not a transport:path reference: {image}"));
    assert!(
        matches!(transport, "oci" | "oci-archive"),
        "podman_run takes oci: or oci-archive: references, not {image}"
    );
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag.to_owned())),
        _ => (rest, None),
    };
    let path = std::path::absolute(path).unwrap();
    (transport.to_owned(), path, tag)
}

// ---------------------------------------------------------------------------------------------
// Wheels and images

/// The entry names of a wheel (a zip file).
pub fn wheel_entries(wheel: &Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(fs_err::File::open(wheel).unwrap()).unwrap();
    archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect()
}

/// One entry of a wheel, as text.
pub fn wheel_text(wheel: &Path, name: &str) -> Option<String> {
    let mut archive = zip::ZipArchive::new(fs_err::File::open(wheel).unwrap()).unwrap();
    let mut file = archive.by_name(name).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    Some(text)
}

/// The `.dist-info` folder name of a wheel.
pub fn wheel_dist_info(wheel: &Path) -> String {
    let entries = wheel_entries(wheel);
    let dist_info = entries
        .iter()
        .filter_map(|name| name.split_once('/').map(|(top, _)| top))
        .find(|top| top.ends_with(".dist-info"))
        .unwrap_or_else(|| panic!("{} has no .dist-info", wheel.display()));
    dist_info.to_owned()
}

/// The console scripts a wheel declares (`[console_scripts]` in entry_points.txt).
pub fn console_scripts(wheel: &Path) -> Vec<String> {
    let path = format!("{}/entry_points.txt", wheel_dist_info(wheel));
    let Some(text) = wheel_text(wheel, &path) else {
        return Vec::new();
    };
    let mut in_section = false;
    let mut scripts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[console_scripts]";
        } else if in_section
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            scripts.push(name.trim().to_owned());
        }
    }
    scripts
}

/// The outermost importable modules a wheel installs: regular packages (a folder with
/// `__init__.py` under no other regular package), and modules (`.py` or extension files)
/// under only namespace folders, e.g. `jaraco.functools` for the `jaraco` namespace.
pub fn top_level_modules(wheel: &Path) -> Vec<String> {
    let entries = wheel_entries(wheel);
    let is_package = |parts: &[&str]| entries.contains(&format!("{}/__init__.py", parts.join("/")));
    let mut modules = std::collections::BTreeSet::new();
    for entry in &entries {
        let parts: Vec<&str> = entry.split('/').collect();
        if parts[0].ends_with(".dist-info") || parts[0].ends_with(".data") {
            continue;
        }
        if let Some(depth) = (1..parts.len()).find(|&depth| is_package(&parts[..depth])) {
            modules.insert(parts[..depth].join("."));
            continue;
        }
        let file = parts[parts.len() - 1];
        let stem = if let Some(stem) = file.strip_suffix(".py") {
            Some(stem)
        } else if file.ends_with(".so") {
            file.split('.').next()
        } else {
            None
        };
        if let Some(stem) = stem
            && stem != "__init__"
            && stem.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            let mut dotted: Vec<&str> = parts[..parts.len() - 1].to_vec();
            dotted.push(stem);
            modules.insert(dotted.join("."));
        }
    }
    modules.into_iter().collect()
}

/// Python source that imports every top-level module of every fixture wheel.
pub fn import_everything_script() -> String {
    let mut modules: Vec<String> = fixture_wheels()
        .iter()
        .flat_map(|wheel| top_level_modules(wheel))
        .collect();
    modules.sort();
    modules.dedup();
    assert!(modules.len() >= 15, "too few modules found: {modules:?}");
    format!(
        "import importlib\nfor name in {modules:?}:\n    importlib.import_module(name)\nprint('imported', {})\n",
        modules.len()
    )
}

/// A built image and what made it.
pub struct BuiltImage {
    /// The scratch folder holding everything below.
    pub dir: tempfile::TempDir,
    /// The OCI layout.
    pub layout: PathBuf,
    /// Its tag.
    pub tag: String,
    /// `oci:<layout>:<tag>`.
    pub reference: String,
    /// The digest envbuild reported.
    pub digest: String,
    /// The `--json` report.
    pub report: Value,
    /// The lockfile it was built from.
    pub locked: LockedProject,
    /// The envbuild cache used.
    pub cache: PathBuf,
}

/// Locks the example against a fresh local index and builds it with `--json` into a new
/// layout (tag `hello`), with a fresh cache, and checks the printed report parses.
pub fn build_example() -> BuiltImage {
    let fixtures = fixtures();
    let index = IndexServer::start(&fixtures.wheels);
    let locked = lock_example(&index.url, &hello_service());
    let dir = scratch_dir("image-");
    let layout = dir.path().join("layout");
    let cache = dir.path().join("cache");
    let tag = "hello".to_owned();
    let reference = format!("oci:{}:{tag}", layout.display());
    let output = envbuild()
        .args(image_args(&locked.pylock, &reference))
        .arg("--json")
        .arg("--cache-dir")
        .arg(&cache)
        .success();
    drop(index);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "envbuild image --json printed no JSON ({e}):\n{}",
            stdout(&output)
        )
    });
    let digest = report["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("the report has no digest: {report}"))
        .to_owned();
    BuiltImage {
        dir,
        layout,
        tag,
        reference,
        digest,
        report,
        locked,
        cache,
    }
}

/// sha256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes))
}

/// sha256 of bytes, urlsafe base64 without padding (the RECORD form).
pub fn sha256_record(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(bytes))
}
