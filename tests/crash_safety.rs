//! Crash safety and concurrency of what envbuild stores, through the real binary (issue 7:
//! defects 2, 5 and 12, and the robustness suite of section 4):
//!
//! - a kill loop: `kill -9` at random moments of builds and of pushes to a real registry,
//!   over an existing layout and one shared cache; after every kill the layout's blobs hash
//!   to their names and its old tag is intact, the registry's old tag is intact, and the
//!   cache verifies; a final build gives the fresh-cache digest and leaves no temporary;
//! - three builds at once into one layout, one archive and one cache: every tag present;
//! - SIGINT and SIGTERM during builds: exit 130 / 143 and no temporary left;
//! - full disks (small tmpfs mounts, so these tests need root, as CI has): for the cache
//!   and for each output kind, a clear error naming the path, and nothing half-written.
//!
//! The random moments come from a fixed seed, so a failure can be replayed.

mod common;
mod registry_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{
    IndexServer, LockedProject, envbuild, fixtures, hello_service, image_args, lock_example,
    printed_digest, run_ok, scratch_dir, sha256_hex, stderr,
};
use registry_support::Registry;
use serde_json::Value;

/// The example project, locked once per test process against a local index that stays up
/// (cold builds download their wheels from it).
struct Example {
    locked: LockedProject,
    _index: IndexServer,
}

fn example() -> &'static Example {
    static EXAMPLE: OnceLock<Result<Example, String>> = OnceLock::new();
    common::once(&EXAMPLE, || {
        let index = IndexServer::start(&fixtures().wheels);
        let locked = lock_example(&index.url, &hello_service());
        Example {
            locked,
            _index: index,
        }
    })
}

/// `envbuild image` of the example into `output` with `cache`.
fn build(cache: &Path, output: &str) -> common::Envbuild {
    envbuild()
        .args(image_args(&example().locked.pylock, output))
        .arg("--cache-dir")
        .arg(cache)
}

/// Start a build in the background, its output discarded.
fn spawn(build: &common::Envbuild) -> Child {
    build
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting envbuild")
}

/// A small deterministic generator (xorshift64*), for the moments of the kills.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

fn sha256_file(path: &Path) -> String {
    sha256_hex(&fs_err::read(path).unwrap())
}

/// Every file under `folder`, recursively.
fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = fs_err::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Temporary and lock files under `folders`: anything in a cache's `tmp/`, and every
/// name envbuild gives (or gave, in 0.1) a temporary or a lock file.
fn leftovers(folders: &[&Path]) -> Vec<PathBuf> {
    folders
        .iter()
        .flat_map(|folder| files_under(folder))
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            let in_tmp = path
                .parent()
                .is_some_and(|parent| parent.file_name().is_some_and(|name| name == "tmp"));
            in_tmp
                || name.ends_with(".envbuild-tmp")
                || name.contains("envbuild-lock")
                || name.starts_with(".partial-")
                || name.ends_with(".lock")
        })
        .collect()
}

/// Check a layout: only digest names in `blobs/sha256/`, each hashing to its name; a
/// parsable `index.json` whose entries' blobs are present. Returns tag → digest.
fn verify_layout(layout: &Path) -> BTreeMap<String, String> {
    let blobs = layout.join("blobs/sha256");
    for path in files_under(&blobs) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == 64 && name.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "`{}` is not a digest name",
            path.display()
        );
        assert_eq!(sha256_file(&path), name, "{}", path.display());
    }
    let index: Value = serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap())
        .expect("index.json parses");
    let mut tags = BTreeMap::new();
    for entry in index["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap().to_string();
        let hex = digest.strip_prefix("sha256:").unwrap();
        assert!(
            blobs.join(hex).is_file(),
            "{digest} of index.json is missing"
        );
        if let Some(tag) = entry["annotations"]["org.opencontainers.image.ref.name"].as_str() {
            tags.insert(tag.to_string(), digest);
        }
    }
    tags
}

/// Check a cache: every wheel and blob hashes to its name.
fn verify_cache(cache: &Path) {
    for kind in ["wheels", "blobs"] {
        for path in files_under(&cache.join(kind).join("sha256")) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(sha256_file(&path), name, "{}", path.display());
        }
    }
}

/// The digest of the manifest a registry serves for `reference` (`HOST/REPO:TAG`).
fn registry_digest(reference: &str) -> String {
    let output = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    format!("sha256:{}", sha256_hex(&output.stdout))
}

#[test]
fn kill_loop_keeps_layout_registry_and_cache_valid() {
    common::require_tool("skopeo");
    common::require_tool("umoci");
    let scratch = scratch_dir("kill-");
    let cache = scratch.path().join("cache");
    let layout = scratch.path().join("layout");
    let at = |tag: &str| format!("oci:{}:{tag}", layout.display());
    let registry = Registry::start("");
    let pushed = |tag: &str| registry.reference(&format!("crash/app:{tag}"));

    // The existing layout and registry tag, from a fresh cache: its digest is the one
    // every later build must give.
    let started = Instant::now();
    let fresh = printed_digest(&build(&cache, &at("old")).success());
    let cold = started.elapsed();
    let started = Instant::now();
    let pushed_digest =
        printed_digest(&build(&cache, &format!("docker://{}", pushed("old"))).success());
    let warm = started.elapsed();
    assert_eq!(pushed_digest, fresh);
    let old = verify_layout(&layout);
    assert_eq!(old["old"], fresh);

    // Twenty kills that land while a build runs (at most fifty rounds): a build that
    // finishes before its kill shows how long such builds take, and later kills of the
    // same kind come sooner.
    let mut random = Random(0x5eed_2026_0007);
    let mut estimates: BTreeMap<(bool, bool), Duration> = BTreeMap::new();
    let mut landed = 0;
    for round in 0..50 {
        if landed == 20 {
            break;
        }
        // Every third round starts without layers and blobs (wheels stay), so the kill
        // can land while the base is imported and layers are written; every fourth
        // pushes to the registry.
        let cold_round = round % 3 == 0;
        if cold_round {
            for folder in ["blobs", "layers", "diff-ids"] {
                let _ = fs_err::remove_dir_all(cache.join(folder));
            }
        }
        let push = round % 4 == 3;
        let tag = format!("t{round}");
        let output = if push {
            format!("docker://{}", pushed(&tag))
        } else {
            at(&tag)
        };
        let estimate = estimates
            .entry((cold_round, push))
            .or_insert(if cold_round { cold } else { warm });
        let delay = Duration::from_millis(random.below(estimate.as_millis() as u64));
        let mut child = spawn(&build(&cache, &output));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            landed += 1;
        } else {
            *estimate = delay;
        }
        let _ = child.kill();
        child.wait().unwrap();

        let tags = verify_layout(&layout);
        assert_eq!(tags["old"], fresh, "round {round}: the old tag changed");
        if let Some(digest) = tags.get(&tag) {
            assert_eq!(*digest, fresh, "round {round}");
        }
        verify_cache(&cache);
        if push {
            assert_eq!(registry_digest(&pushed("old")), fresh, "round {round}");
        }
    }
    assert_eq!(landed, 20, "kills that landed while a build ran");

    // One more build and push: the fresh-cache digest, and no temporary anywhere.
    assert_eq!(
        printed_digest(&build(&cache, &at("final")).success()),
        fresh
    );
    assert_eq!(
        printed_digest(&build(&cache, &format!("docker://{}", pushed("final"))).success()),
        fresh
    );
    assert_eq!(registry_digest(&pushed("final")), fresh);
    let left = leftovers(&[&layout, &cache]);
    assert!(left.is_empty(), "temporaries left: {left:?}");
    let tags = verify_layout(&layout);
    assert_eq!((&tags["old"], &tags["final"]), (&fresh, &fresh));
    verify_cache(&cache);
    // umoci refuses layouts with stray files in `blobs/sha256/`.
    run_ok(Command::new("umoci").args(["gc", "--layout"]).arg(&layout));
}

#[test]
fn concurrent_builds_keep_every_tag() {
    let scratch = scratch_dir("concurrent-");
    let cache = scratch.path().join("cache");
    let layout = scratch.path().join("layout");
    let archive = scratch.path().join("image.tar");
    // Three builds into one layout, then three into one archive, each set at once and
    // from one cache (the first set starts it empty).
    for (output, read_as) in [(&layout, "oci"), (&archive, "oci-archive")] {
        let children: Vec<(String, Child)> = ["a", "b", "c"]
            .iter()
            .map(|tag| {
                let reference = format!("{read_as}:{}:{tag}", output.display());
                let child = build(&cache, &reference)
                    .command()
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (tag.to_string(), child)
            })
            .collect();
        let digests: Vec<String> = children
            .into_iter()
            .map(|(tag, child)| {
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "build of `{tag}` failed: {}",
                    stderr(&output)
                );
                printed_digest(&output)
            })
            .collect();
        assert!(
            digests.windows(2).all(|pair| pair[0] == pair[1]),
            "{digests:?}"
        );
        for tag in ["a", "b", "c"] {
            let inspected =
                common::skopeo_inspect(&format!("{read_as}:{}:{tag}", output.display()));
            assert_eq!(inspected["Digest"], digests[0], "{read_as} tag {tag}");
        }
    }
    let tags = verify_layout(&layout);
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    verify_cache(&cache);
    let left = leftovers(&[scratch.path()]);
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

/// Start a cold build and send `signal` once a temporary exists; `None` when the build
/// finished before one was seen.
fn signal_mid_build(cache: &Path, layout: &Path, signal: &str) -> Option<ExitStatus> {
    let _ = fs_err::remove_dir_all(cache);
    let mut child = spawn(&build(cache, &format!("oci:{}:sig", layout.display())));
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if !leftovers(&[cache, layout]).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // The shell's own `kill`: no procps needed.
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{signal} {}", child.id())),
    );
    Some(child.wait().unwrap())
}

#[test]
fn interrupted_builds_leave_no_temporaries() {
    let scratch = scratch_dir("signal-");
    let cache = scratch.path().join("cache");
    let layout = scratch.path().join("layout");
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let mut signalled = 0;
        for _ in 0..10 {
            let Some(status) = signal_mid_build(&cache, &layout, signal) else {
                continue;
            };
            let left = leftovers(&[&cache, &layout]);
            // The build may have finished between the look and the signal.
            if status.success() {
                assert!(left.is_empty(), "a finished build left {left:?}");
                continue;
            }
            signalled += 1;
            assert_eq!(status.code(), Some(code), "SIG{signal}: {status}");
            assert!(left.is_empty(), "SIG{signal} left {left:?}");
            verify_cache(&cache);
            if signalled == 3 {
                break;
            }
        }
        assert!(
            signalled > 0,
            "no SIG{signal} landed while a temporary existed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Full disks

/// A tmpfs of `size` mounted on a scratch folder, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        common::require_tool("mount");
        let scratch = scratch_dir("tmpfs-");
        let path = scratch.path().join("disk");
        fs_err::create_dir(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cannot mount a tmpfs (these tests run as root, as in CI): {}",
            stderr(&output)
        );
        Tmpfs {
            path,
            _scratch: scratch,
        }
    }

    /// Fill the disk but for about `room` bytes.
    fn fill_leaving(&self, room: u64) {
        use std::io::Write;
        let mut filler = fs_err::File::create(self.path.join("filler")).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        drop(filler);
        let length = fs_err::metadata(self.path.join("filler")).unwrap().len();
        fs_err::OpenOptions::new()
            .write(true)
            .open(self.path.join("filler"))
            .unwrap()
            .set_len(length.saturating_sub(room))
            .unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Every file and folder under `folder` with its bytes.
fn snapshot(folder: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs_err::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                all.insert(path.clone(), Vec::new());
                pending.push(path);
            } else {
                all.insert(path.clone(), fs_err::read(&path).unwrap());
            }
        }
    }
    all
}

/// A failed build: non-zero exit, and an error that says the disk is full at a path
/// under `disk`.
fn assert_disk_full(output: &Output, disk: &Path, says: &str) {
    let text = stderr(output);
    assert!(!output.status.success(), "the build succeeded: {text}");
    assert!(text.contains(says), "no `{says}` in: {text}");
    assert!(
        text.contains(&format!("`{}", disk.display())),
        "the error names no path under {}: {text}",
        disk.display()
    );
}

#[test]
fn full_cache_disk_is_reported_and_leaves_nothing_half_written() {
    // An empty cache on a disk too small for the base image.
    let disk = Tmpfs::mount("1m");
    let cache = disk.path.join("cache");
    let scratch = scratch_dir("full-cache-");
    let layout = scratch.path().join("layout");
    let output = build(&cache, &format!("oci:{}:x", layout.display())).output();
    assert_disk_full(&output, &cache, "the disk holding the cache is full");
    assert!(
        leftovers(&[&cache]).is_empty(),
        "{:?}",
        leftovers(&[&cache])
    );
    verify_cache(&cache);
    assert!(!layout.exists());

    // A warm cache whose layers must be written again, on a disk with little room left:
    // writing a layer fails.
    let warm = scratch.path().join("warm");
    build(&warm, &format!("oci:{}:x", layout.display())).success();
    drop(disk);
    let disk = Tmpfs::mount("64m");
    let cache = disk.path.join("cache");
    run_ok(Command::new("cp").arg("-a").arg(&warm).arg(&cache));
    for record in fs_err::read_dir(cache.join("layers")).unwrap() {
        let record: Value =
            serde_json::from_slice(&fs_err::read(record.unwrap().path()).unwrap()).unwrap();
        let hex = record["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        let _ = fs_err::remove_file(cache.join("blobs/sha256").join(hex));
    }
    fs_err::remove_dir_all(cache.join("layers")).unwrap();
    disk.fill_leaving(64 * 1024);
    let output = build(&cache, &format!("oci:{}:y", layout.display())).output();
    assert_disk_full(&output, &cache, "the disk holding the cache is full");
    assert!(
        leftovers(&[&cache]).is_empty(),
        "{:?}",
        leftovers(&[&cache])
    );
    verify_cache(&cache);
}

#[test]
fn full_output_disk_is_reported_and_leaves_nothing_half_written() {
    common::require_tool("umoci");
    let scratch = scratch_dir("full-output-");
    let cache = scratch.path().join("cache");
    // Warm the cache, so only the output runs out of room.
    build(
        &cache,
        &format!("oci:{}:x", scratch.path().join("warm").display()),
    )
    .success();
    let disk = Tmpfs::mount("4m");
    let says = "the disk is full";

    // A new layout: nothing of it is left.
    let new = disk.path.join("new");
    let output = build(&cache, &format!("oci:{}:x", new.display())).output();
    assert_disk_full(&output, &disk.path, says);
    assert!(
        !new.exists(),
        "the new layout folder is left: {:?}",
        files_under(&new)
    );

    // An existing layout (a small one umoci made) and an existing archive of it stay
    // byte for byte as they were.
    let existing = disk.path.join("existing");
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&existing),
    );
    run_ok(
        Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:empty", existing.display())),
    );
    let archive = disk.path.join("existing.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&existing)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
    );
    let before = snapshot(&disk.path);
    for reference in [
        format!("oci:{}:new", existing.display()),
        format!("oci-archive:{}:new", archive.display()),
    ] {
        let output = build(&cache, &reference).output();
        assert_disk_full(&output, &disk.path, says);
        assert_eq!(snapshot(&disk.path), before, "after {reference}");
    }

    // New archives of both kinds: nothing is left.
    for reference in [
        format!("oci-archive:{}:x", disk.path.join("new.tar").display()),
        format!(
            "docker-archive:{}:app:1",
            disk.path.join("docker.tar").display()
        ),
    ] {
        let output = build(&cache, &reference).output();
        assert_disk_full(&output, &disk.path, says);
        assert_eq!(snapshot(&disk.path), before, "after {reference}");
    }
}
