//! Bad input, end to end: each test feeds the real `envbuild` binary one broken or hostile
//! input (a lockfile that lies about a wheel, a malformed or future lockfile, wheels no target
//! can use, wheels that escape their folder, lie in RECORD or collide, an empty cache offline,
//! an unreadable base, a bad SOURCE_DATE_EPOCH) and checks three things: the exit code is not
//! 0, stderr says what failed, on which input, and how to fix it, and nothing is left behind
//! (no output, no partial or unverifiable cache entry, an existing layout untouched).
//!
//! Lockfiles are written here by hand (or kept in `tests/data/bad/` when they are static);
//! hostile wheels are crafted here as real zip files with a correct RECORD unless the test is
//! about RECORD, and locked with their true sha256 through `path =`, so the only thing wrong
//! is the attack the test is named after.

mod common;
mod mutate_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

// ---------------------------------------------------------------------------------------------
// One bad build: a scratch folder with an empty output folder and a private cache

/// A scratch folder for one failing build: `out/` (empty; the output goes in it) and
/// `cache/` (the `--cache-dir`, not made in advance).
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = scratch_dir("bad-");
        fs_err::create_dir(dir.path().join("out")).unwrap();
        Case { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    /// `oci:<out>/layout:<tag>`.
    fn layout_output(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.out().join("layout").display())
    }

    /// `oci-archive:<out>/image.tar:<tag>`.
    fn archive_output(&self, tag: &str) -> String {
        format!(
            "oci-archive:{}:{tag}",
            self.out().join("image.tar").display()
        )
    }

    /// `envbuild image --lock LOCK --base <fixture base> --output OUTPUT --cache-dir <cache>`.
    fn image(&self, lock: &Path, output: &str) -> Envbuild {
        self.image_on(lock, &fixtures().base_ref, output)
    }

    /// As [`Case::image`], on another base.
    fn image_on(&self, lock: &Path, base: &str, output: &str) -> Envbuild {
        envbuild()
            .arg("image")
            .arg("--lock")
            .arg(lock)
            .arg("--base")
            .arg(base)
            .arg("--output")
            .arg(output)
            .arg("--cache-dir")
            .arg(self.cache())
    }

    /// Writes `text` as `<name>` in the scratch folder and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    /// The output folder is still empty and the cache holds only whole, verified entries,
    /// none of them a layer with a file whose path contains one of `never_in_a_layer`.
    fn assert_nothing_left(&self, never_in_a_layer: &[&str]) {
        let left: Vec<String> = fs_err::read_dir(self.out())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.is_empty(),
            "a failed build left {left:?} in the output folder {}",
            self.out().display()
        );
        assert_cache_is_consistent(&self.cache());
        for needle in never_in_a_layer {
            let layers = layer_blobs_with(&self.cache(), needle);
            assert!(
                layers.is_empty(),
                "a failed build left layers holding `{needle}` in the cache: {layers:?}"
            );
        }
    }
}

/// Checks that the run failed the way a bad input should: a non-zero exit code, nothing on
/// stdout, one `error:` on stderr. Returns stderr.
fn failure(output: &Output) -> String {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "expected a failure, got {}\n--- stdout\n{}\n--- stderr\n{err}",
        output.status,
        stdout(output)
    );
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stdout(output).trim().is_empty(),
        "a failed build prints no result on stdout: {}",
        stdout(output)
    );
    assert!(
        err.starts_with("error: "),
        "stderr starts with `error: `:\n{err}"
    );
    assert_eq!(
        err.matches("error:").count(),
        1,
        "one error, printed once:\n{err}"
    );
    err
}

/// Fails unless stderr contains every one of `words`.
#[track_caller]
fn assert_mentions(err: &str, words: &[&str]) {
    let missing: Vec<&&str> = words.iter().filter(|word| !err.contains(**word)).collect();
    assert!(missing.is_empty(), "stderr lacks {missing:?}:\n{err}");
}

/// Fails unless stderr contains at least one of `hints` (the words of a fix).
#[track_caller]
fn assert_hint(err: &str, hints: &[&str]) {
    assert!(
        hints.iter().any(|hint| err.contains(hint)),
        "stderr gives no hint (expected one of {hints:?}):\n{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The cache after a failure

/// Every entry of the cache at `cache` is whole: `tmp/` is empty, every file under
/// `wheels/sha256/` and `blobs/sha256/` hashes to its name, every layer record names a blob
/// that is there with its size, and no temporary file is left anywhere.
fn assert_cache_is_consistent(cache: &Path) {
    if !cache.exists() {
        return;
    }
    let tmp = cache.join("tmp");
    if tmp.exists() {
        let left = names_in(&tmp);
        assert!(left.is_empty(), "partial cache entries in `tmp/`: {left:?}");
    }
    for kind in ["wheels", "blobs"] {
        let folder = cache.join(kind).join("sha256");
        if !folder.exists() {
            continue;
        }
        for name in names_in(&folder) {
            let path = folder.join(&name);
            assert!(
                is_hex_digest(&name) && path.is_file(),
                "`{}` is not a content-addressed entry",
                path.display()
            );
            let actual = sha256_hex(&fs_err::read(&path).unwrap());
            assert_eq!(
                actual,
                name,
                "`{}` does not hash to its name: a partial or corrupt cache entry",
                path.display()
            );
        }
    }
    let layers = cache.join("layers");
    if layers.exists() {
        for name in names_in(&layers) {
            let path = layers.join(&name);
            assert!(
                is_hex_digest(&name),
                "`{}` is not a layer key",
                path.display()
            );
            let record: serde_json::Value = serde_json::from_slice(&fs_err::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("layer record `{}` is not JSON: {e}", path.display()));
            let digest = record["digest"].as_str().unwrap_or_default();
            let blob = cache
                .join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap_or(digest));
            let size = fs_err::metadata(&blob).map(|m| m.len()).ok();
            assert!(
                is_digest(digest) && size.is_some() && size == record["size"].as_u64(),
                "layer record `{}` ({record}) names no whole blob",
                path.display()
            );
        }
    }
    for path in files_under(cache) {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with('.') && !name.contains("partial") && !name.ends_with(".tmp"),
            "temporary file left in the cache: {}",
            path.display()
        );
    }
}

/// The layer blobs in `cache` (gzip tars not taken from the fixture base) that hold an entry
/// whose path contains `needle`.
fn layer_blobs_with(cache: &Path, needle: &str) -> Vec<String> {
    let folder = cache.join("blobs/sha256");
    if !folder.exists() {
        return Vec::new();
    }
    let base_blobs = fixtures().base.join("blobs/sha256");
    let mut found = Vec::new();
    for name in names_in(&folder) {
        if base_blobs.join(&name).exists() {
            continue;
        }
        let bytes = fs_err::read(folder.join(&name)).unwrap();
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            continue;
        }
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if path.contains(needle) {
                found.push(format!("{name}: {path}"));
            }
        }
    }
    found
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file (not folder) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
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

/// Every file under `dir` with the sha256 of its bytes, to compare a folder before and after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let hash = sha256_hex(&fs_err::read(&path).unwrap());
            (path.strip_prefix(dir).unwrap().to_path_buf(), hash)
        })
        .collect()
}

fn is_hex_digest(name: &str) -> bool {
    is_digest(&format!("sha256:{name}"))
}

// ---------------------------------------------------------------------------------------------
// Lockfiles and wheels made by hand

const LOCK_HEADER: &str =
    "lock-version = \"1.0\"\ncreated-by = \"envbuild tests\"\nrequires-python = \">=3.11\"\n";

/// A lockfile: the header and these `[[packages]]` tables.
fn lockfile(packages: &[String]) -> String {
    let mut text = LOCK_HEADER.to_owned();
    for package in packages {
        text.push('\n');
        text.push_str(package);
    }
    text
}

/// A `[[packages]]` table with these wheels (inline tables from [`wheel_at_url`] or
/// [`wheel_at_path`]).
fn package(name: &str, version: &str, wheels: &[String]) -> String {
    format!(
        "[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\nwheels = [\n{}]\n",
        wheels
            .iter()
            .map(|wheel| format!("  {wheel},\n"))
            .collect::<String>()
    )
}

/// A `[[packages]]` table with only an sdist (the file does not exist; it is never fetched).
fn sdist_only_package(name: &str, version: &str) -> String {
    format!(
        "[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\n\
         sdist = {{ url = \"{}/files/{name}-{version}.tar.gz\", size = 1000, hashes = {{ sha256 = \"{}\" }} }}\n",
        unreachable_base(),
        sha256_hex(name.as_bytes())
    )
}

/// A wheel entry with a URL, size and sha256.
fn wheel_at_url(url: &str, size: u64, sha256: &str) -> String {
    format!("{{ url = \"{url}\", size = {size}, hashes = {{ sha256 = \"{sha256}\" }} }}")
}

/// A wheel entry for a file next to the lockfile, with its true size and sha256.
fn wheel_at_path(wheel: &Path) -> String {
    let bytes = fs_err::read(wheel).unwrap();
    format!(
        "{{ path = \"{}\", size = {}, hashes = {{ sha256 = \"{}\" }} }}",
        wheel.file_name().unwrap().to_string_lossy(),
        bytes.len(),
        sha256_hex(&bytes)
    )
}

/// `http://127.0.0.1:PORT` on a port nobody listens on: a URL envbuild must never need.
fn unreachable_base() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// One pinned fixture wheel: its file name, size and sha256.
fn fixture_wheel(prefix: &str) -> (String, u64, String) {
    let path = fixture_wheels()
        .into_iter()
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .unwrap_or_else(|| panic!("no fixture wheel starts with {prefix}"));
    let bytes = fs_err::read(&path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (name, bytes.len() as u64, sha256_hex(&bytes))
}

/// A wheel entry for a fixture wheel served by `index`.
fn served_wheel(index: &IndexServer, prefix: &str) -> String {
    let (name, size, sha256) = fixture_wheel(prefix);
    wheel_at_url(
        &format!("http://127.0.0.1:{}/files/{name}", index.port),
        size,
        &sha256,
    )
}

/// What a crafted wheel holds.
struct WheelSpec<'a> {
    distribution: &'a str,
    version: &'a str,
    /// Entries besides the `.dist-info` files, in this order, with any name at all.
    files: &'a [(&'a str, &'a [u8])],
    /// An entry whose RECORD line gets the hash of other bytes.
    record_lies_about: Option<&'a str>,
    /// The `Version` METADATA gives, when it is not `version`.
    metadata_version: Option<&'a str>,
    /// A change to the zip bytes after writing (a damaged stream, a lying header).
    tamper: Option<fn(&mut Vec<u8>)>,
}

impl WheelSpec<'_> {
    fn file_name(&self) -> String {
        format!("{}-{}-py3-none-any.whl", self.distribution, self.version)
    }

    /// Writes the wheel (a real zip with METADATA, WHEEL and RECORD) into `dir`.
    fn write_in(&self, dir: &Path) -> PathBuf {
        let dist_info = format!("{}-{}.dist-info", self.distribution, self.version);
        let metadata = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.distribution,
            self.metadata_version.unwrap_or(self.version)
        );
        let wheel = "Wheel-Version: 1.0\nGenerator: envbuild-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
        let mut entries: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
            .collect();
        entries.push((format!("{dist_info}/METADATA"), metadata.into_bytes()));
        entries.push((format!("{dist_info}/WHEEL"), wheel.as_bytes().to_vec()));
        let mut record = String::new();
        for (name, bytes) in &entries {
            let hashed: &[u8] = if self.record_lies_about == Some(name.as_str()) {
                b"not these bytes"
            } else {
                bytes
            };
            record.push_str(&format!(
                "{name},sha256={},{}\n",
                sha256_record(hashed),
                bytes.len()
            ));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        entries.push((format!("{dist_info}/RECORD"), record.into_bytes()));

        let path = dir.join(self.file_name());
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in &entries {
            zip.start_file(name.as_str(), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        let mut bytes = zip.finish().unwrap().into_inner();
        if let Some(tamper) = self.tamper {
            tamper(&mut bytes);
        }
        fs_err::write(&path, bytes).unwrap();
        path
    }
}

/// A well-formed wheel, for tests about something else.
fn good_wheel(dir: &Path) -> PathBuf {
    WheelSpec {
        distribution: "good",
        version: "1.0",
        files: &[("good/__init__.py", b"GOOD = True\n")],
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    }
    .write_in(dir)
}

/// A lockfile next to a hostile wheel, which it locks with the wheel's true hash.
fn lock_crafted(case: &Case, spec: &WheelSpec) -> PathBuf {
    let wheel = spec.write_in(case.path());
    case.write(
        "pylock.toml",
        &lockfile(&[package(
            spec.distribution,
            spec.version,
            &[wheel_at_path(&wheel)],
        )]),
    )
}

// ---------------------------------------------------------------------------------------------
// 1, 2: the lockfile's hash or size does not match the served wheel

#[test]
fn hash_mismatch_names_the_package_and_both_hashes() {
    let case = Case::new();
    let index = IndexServer::start(&fixtures().wheels);
    let (name, size, actual) = fixture_wheel("blinker-");
    let wrong = sha256_hex(b"not blinker");
    let url = format!("http://127.0.0.1:{}/files/{name}", index.port);
    let lock = case.write(
        "pylock.toml",
        &lockfile(&[package(
            "blinker",
            "1.9.0",
            &[wheel_at_url(&url, size, &wrong)],
        )]),
    );

    let err = failure(&case.image(&lock, &case.archive_output("t")).output());
    assert_mentions(
        &err,
        &["sha256", "`blinker`", "1.9.0", &url, &wrong, &actual],
    );
    assert_hint(&err, &["lockfile", "index or mirror"]);
    case.assert_nothing_left(&["blinker"]);
    assert!(
        !case.cache().join("wheels/sha256").join(&wrong).exists(),
        "the wrong file is not cached under the locked hash"
    );
}

#[test]
fn size_mismatch_names_the_package_and_both_sizes() {
    let case = Case::new();
    let index = IndexServer::start(&fixtures().wheels);
    let (name, size, sha256) = fixture_wheel("blinker-");
    let url = format!("http://127.0.0.1:{}/files/{name}", index.port);
    let lock = case.write(
        "pylock.toml",
        &lockfile(&[package(
            "blinker",
            "1.9.0",
            &[wheel_at_url(&url, size - 1, &sha256)],
        )]),
    );

    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            "size",
            "`blinker`",
            "1.9.0",
            &url,
            &(size - 1).to_string(),
            &size.to_string(),
        ],
    );
    assert_hint(&err, &["lockfile", "index or mirror"]);
    case.assert_nothing_left(&["blinker"]);
}

// ---------------------------------------------------------------------------------------------
// 3, 4: the lockfile itself is malformed or from the future

fn bad_data(name: &str) -> PathBuf {
    repo_root().join("tests/data/bad").join(name)
}

#[test]
fn toml_syntax_error_shows_path_line_and_column() {
    let case = Case::new();
    let lock = bad_data("pylock.syntax-error.toml");
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    // Line 7 is `name = "blinker`: the string runs to the end of the line, column 16.
    assert_mentions(&err, &[&format!("{}:7:16", lock.display()), "string"]);
    assert_hint(&err, &["fix the file", "export the lock again"]);
    case.assert_nothing_left(&[]);
}

#[test]
fn value_of_the_wrong_type_shows_path_line_and_column() {
    let case = Case::new();
    let lock = bad_data("pylock.version-is-a-float.toml");
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    // Line 9 is `version = 1.0`; the value starts at column 11.
    assert_mentions(
        &err,
        &[
            &format!("{}:9:11", lock.display()),
            "1.0",
            "floating point",
            "expected a string",
        ],
    );
    assert_hint(&err, &["fix the file", "export the lock again"]);
    case.assert_nothing_left(&[]);
}

#[test]
fn unsupported_lock_version_is_refused() {
    let case = Case::new();
    let lock = bad_data("pylock.lock-version-2.toml");
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            &format!("{}:2:16", lock.display()),
            "lock-version",
            "\"2.0\"",
            "1.0",
        ],
    );
    assert_hint(&err, &["export the lock in format version 1.0"]);
    case.assert_nothing_left(&[]);
}

// ---------------------------------------------------------------------------------------------
// 5, 6: no wheel envbuild can install (selection fails before any download)

#[test]
fn package_with_only_windows_and_macos_wheels_names_the_target_and_the_offered_wheels() {
    let case = Case::new();
    let base = unreachable_base();
    let windows = "winonly-1.0-cp311-cp311-win_amd64.whl";
    let macos = "winonly-1.0-cp311-cp311-macosx_11_0_arm64.whl";
    let lock = case.write(
        "pylock.toml",
        &lockfile(&[package(
            "winonly",
            "1.0",
            &[
                wheel_at_url(&format!("{base}/files/{windows}"), 1000, &sha256_hex(b"w")),
                wheel_at_url(&format!("{base}/files/{macos}"), 1000, &sha256_hex(b"m")),
            ],
        )]),
    );

    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            "`winonly` 1.0",
            "compatible",
            "3.11",
            "linux/amd64",
            "glibc 2.36",
            windows,
            macos,
        ],
    );
    assert_hint(&err, &["--python", "--platform"]);
    assert!(
        !err.to_lowercase().contains("connect"),
        "no download was tried:\n{err}"
    );
    case.assert_nothing_left(&[]);
}

#[test]
fn sdist_only_package_says_a_wheel_is_needed() {
    // With source builds off (`--no-build`); tests/source_builds.rs builds sdists.
    let case = Case::new();
    let lock = case.write(
        "pylock.toml",
        &lockfile(&[sdist_only_package("sdistonly", "2.0")]),
    );

    let err = failure(
        &case
            .image(&lock, &case.layout_output("t"))
            .arg("--no-build")
            .output(),
    );
    assert_mentions(
        &err,
        &["`sdistonly` 2.0", "sdist", "sdistonly-2.0.tar.gz", "wheel"],
    );
    assert_hint(&err, &["--only-binary", "build a wheel"]);
    case.assert_nothing_left(&[]);
}

#[test]
fn two_bad_packages_are_both_listed_in_one_error() {
    let case = Case::new();
    let windows = "winonly-1.0-cp311-cp311-win_amd64.whl";
    let lock = case.write(
        "pylock.toml",
        &lockfile(&[
            sdist_only_package("sdistonly", "2.0"),
            package(
                "winonly",
                "1.0",
                &[wheel_at_url(
                    &format!("{}/files/{windows}", unreachable_base()),
                    1000,
                    &sha256_hex(b"w"),
                )],
            ),
        ]),
    );

    let err = failure(
        &case
            .image(&lock, &case.layout_output("t"))
            .arg("--no-build")
            .output(),
    );
    assert_mentions(
        &err,
        &[
            "`sdistonly` 2.0",
            "sdistonly-2.0.tar.gz",
            "`winonly` 1.0",
            windows,
        ],
    );
    case.assert_nothing_left(&[]);
}

// ---------------------------------------------------------------------------------------------
// 7, 8, 9: hostile wheels

#[test]
fn wheel_entry_climbing_out_with_dotdot_is_refused() {
    let case = Case::new();
    let spec = WheelSpec {
        distribution: "dotdot",
        version: "1.0",
        files: &[("../evil.py", b"print('escaped')\n")],
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(&err, &[&spec.file_name(), "`../evil.py`", ".."]);
    assert_hint(&err, &["do not install it", "tampered"]);
    case.assert_nothing_left(&["evil.py"]);
}

#[test]
fn wheel_entry_climbing_out_from_inside_its_package_is_refused() {
    let case = Case::new();
    let spec = WheelSpec {
        distribution: "nested",
        version: "1.0",
        files: &[
            ("nested/__init__.py", b""),
            ("nested/../../evil.py", b"print('escaped')\n"),
        ],
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(&err, &[&spec.file_name(), "`nested/../../evil.py`"]);
    assert_hint(&err, &["do not install it", "tampered"]);
    case.assert_nothing_left(&["evil.py", "nested"]);
}

#[test]
fn wheel_entry_with_an_absolute_path_is_refused() {
    let case = Case::new();
    let spec = WheelSpec {
        distribution: "absolute",
        version: "1.0",
        files: &[("/etc/evil.py", b"print('escaped')\n")],
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(&err, &[&spec.file_name(), "`/etc/evil.py`", "absolute"]);
    assert_hint(&err, &["do not install it", "tampered"]);
    case.assert_nothing_left(&["evil.py"]);
}

#[test]
fn record_with_a_wrong_hash_names_the_wheel_and_the_file() {
    let case = Case::new();
    let spec = WheelSpec {
        distribution: "liar",
        version: "1.0",
        files: &[
            ("liar/__init__.py", b"from .core import VALUE\n"),
            ("liar/core.py", b"VALUE = 'swapped after signing'\n"),
        ],
        record_lies_about: Some("liar/core.py"),
        metadata_version: None,
        tamper: None,
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.archive_output("t")).output());
    assert_mentions(
        &err,
        &[
            &spec.file_name(),
            "`liar/core.py`",
            "RECORD",
            &format!("sha256={}", sha256_record(b"not these bytes")),
            &format!(
                "sha256={}",
                sha256_record(b"VALUE = 'swapped after signing'\n")
            ),
        ],
    );
    assert_hint(&err, &["tampered", "fetch it again"]);
    case.assert_nothing_left(&["liar"]);
}

// ---------------------------------------------------------------------------------------------
// Issue 7: hostile wheels from the attack run (defects 3, 8, 9 and 11)

/// A wheel of `distribution` 1.0 holding `files`, honest but for the attack under test.
fn attack<'a>(distribution: &'a str, files: &'a [(&'a str, &'a [u8])]) -> WheelSpec<'a> {
    WheelSpec {
        distribution,
        version: "1.0",
        files,
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    }
}

/// A member path of exactly `length` bytes under `top/`, in components of 200 bytes.
fn deep_path(top: &str, length: usize) -> String {
    let mut path = format!("{top}/");
    while path.len() + 201 < length {
        path.push_str(&"d".repeat(200));
        path.push('/');
    }
    path.push_str(&"x".repeat(length - path.len()));
    path
}

/// Where the default prefix puts site-packages, with its trailing `/`.
const SITE: &str = "/opt/venv/lib/python3.11/site-packages/";

/// The longest absolute path envbuild installs (PATH_MAX less the NUL and 256 bytes kept
/// for the folder podman or umoci unpack under).
const LONGEST_PATH: usize = 4096 - 1 - 256;

#[test]
fn wheel_with_a_file_name_over_255_bytes_is_refused() {
    let case = Case::new();
    let name = format!("longname/{}.py", "n".repeat(253));
    let files = [(name.as_str(), &b""[..])];
    let spec = attack("longname", &files);
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[&spec.file_name(), "is 256 bytes", "255 bytes", "NAME_MAX"],
    );
    assert_hint(&err, &["pin another version"]);
    assert!(
        !err.contains(&"n".repeat(200)),
        "long names are shortened:\n{err}"
    );
    case.assert_nothing_left(&["longname"]);
}

#[test]
fn wheel_installing_a_path_over_3839_bytes_is_refused() {
    let case = Case::new();
    let member = deep_path("deep", LONGEST_PATH + 1 - SITE.len());
    let files = [(member.as_str(), &b""[..])];
    let spec = attack("deep", &files);
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.archive_output("t")).output());
    assert_mentions(
        &err,
        &[&spec.file_name(), "is 3840 bytes", "3839 bytes", "PATH_MAX"],
    );
    assert!(err.len() < 2000, "long paths are shortened:\n{err}");
    case.assert_nothing_left(&["deep/"]);
}

#[test]
fn wheel_with_an_entry_point_name_over_255_bytes_is_refused() {
    let case = Case::new();
    let entry_points = format!("[console_scripts]\n{} = longep:main\n", "e".repeat(300));
    let files = [
        ("longep/__init__.py", &b"def main(): pass\n"[..]),
        (
            "longep-1.0.dist-info/entry_points.txt",
            entry_points.as_bytes(),
        ),
    ];
    let spec = attack("longep", &files);
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            &spec.file_name(),
            "entry_points.txt",
            "/opt/venv/bin/eee",
            "is 300 bytes",
            "NAME_MAX",
        ],
    );
    case.assert_nothing_left(&["longep"]);
}

/// The limits refuse nothing an unpacker can hold: a 255-byte file name at the end of a
/// path of the longest length allowed unpacks with umoci and runs in podman.
#[test]
fn wheel_with_the_longest_allowed_names_unpacks_in_umoci_and_podman() {
    let case = Case::new();
    let member = deep_path("roomy", LONGEST_PATH - SITE.len());
    let name = format!("roomy/{}", "n".repeat(255));
    let files = [
        ("roomy/__init__.py", &b""[..]),
        (member.as_str(), &b"deep\n"[..]),
        (name.as_str(), &b"long\n"[..]),
    ];
    let spec = attack("roomy", &files);
    let lock = lock_crafted(&case, &spec);
    let layout = case.out().join("layout");
    case.image(&lock, &case.layout_output("t")).success();

    let rootfs = umoci_unpack(&layout, "t", &case.path().join("bundle"));
    let deep = rootfs.join(format!("{}{member}", &SITE[1..]));
    assert_eq!(fs_err::read(&deep).unwrap(), b"deep\n");
    assert_eq!(
        fs_err::read(rootfs.join(format!("{}{name}", &SITE[1..]))).unwrap(),
        b"long\n"
    );

    let script = "import sys; print(open(sys.argv[1]).read().strip(), len(sys.argv[1]))";
    let printed = podman_run_ok(
        &case.layout_output("t"),
        &[
            "/opt/venv/bin/python",
            "-c",
            script,
            &format!("{SITE}{member}"),
        ],
    );
    assert_eq!(printed.trim(), format!("deep {LONGEST_PATH}"));
}

#[test]
fn wheel_whose_metadata_lies_about_its_version_is_refused() {
    let case = Case::new();
    let files = [("versionliar/__init__.py", &b""[..])];
    let spec = WheelSpec {
        metadata_version: Some("9.9.9"),
        ..attack("versionliar", &files)
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            &spec.file_name(),
            "`METADATA` says version `9.9.9`",
            "the filename says `1.0`",
            "the lockfile pins `1.0`",
        ],
    );
    assert_hint(&err, &["fetch the right file"]);
    case.assert_nothing_left(&["versionliar"]);
}

#[test]
fn wheel_with_a_symlink_member_is_refused() {
    let case = Case::new();
    let files = [
        ("linked/__init__.py", &b""[..]),
        ("linked/passwd", &b"/etc/passwd"[..]),
    ];
    let spec = WheelSpec {
        tamper: Some(|bytes| mutate_support::set_unix_mode(bytes, "linked/passwd", 0o120_777)),
        ..attack("linked", &files)
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[&spec.file_name(), "`linked/passwd`", "symbolic link"],
    );
    case.assert_nothing_left(&["linked"]);
}

#[test]
fn wheel_with_a_corrupt_deflate_stream_is_named_not_blamed_on_the_disk() {
    let case = Case::new();
    let body = b"VALUE = 'some text that deflate will compress'\n".repeat(100);
    let files = [("corrupt/__init__.py", &body[..])];
    let spec = WheelSpec {
        tamper: Some(|bytes| {
            let range = mutate_support::member_data(bytes, "corrupt/__init__.py");
            bytes[range].fill(0xff);
        }),
        ..attack("corrupt", &files)
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            &spec.file_name(),
            "`corrupt/__init__.py`",
            "corrupt compressed data",
        ],
    );
    assert_hint(&err, &["fetch it again"]);
    assert!(
        !err.contains("disk space"),
        "the disk is not the problem:\n{err}"
    );
    case.assert_nothing_left(&["corrupt"]);
}

#[test]
fn wheel_member_larger_than_its_headers_say_is_refused() {
    let case = Case::new();
    let body = b"x = 1\n".repeat(100);
    let files = [("oversized/__init__.py", &body[..])];
    let spec = WheelSpec {
        tamper: Some(|bytes| {
            use mutate_support::{HeaderField, set_header_field};
            set_header_field(
                bytes,
                "oversized/__init__.py",
                HeaderField::UncompressedSize,
                60,
            );
        }),
        ..attack("oversized", &files)
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            &spec.file_name(),
            "`oversized/__init__.py` is 60 bytes",
            "RECORD says 600",
        ],
    );
    assert!(
        !err.contains("disk space"),
        "the disk is not the problem:\n{err}"
    );
    case.assert_nothing_left(&["oversized"]);
}

#[test]
fn wheel_whose_record_claims_four_gigabytes_is_refused_without_reading_it() {
    let case = Case::new();
    let files = [("claims/__init__.py", &b""[..])];
    let spec = WheelSpec {
        tamper: Some(|bytes| {
            use mutate_support::{HeaderField, set_header_field};
            let record = "claims-1.0.dist-info/RECORD";
            set_header_field(bytes, record, HeaderField::UncompressedSize, u32::MAX);
        }),
        ..attack("claims", &files)
    };
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[
            &spec.file_name(),
            "RECORD` is 4294967295 bytes",
            "reads into memory",
        ],
    );
    case.assert_nothing_left(&["claims"]);
}

#[test]
fn control_characters_in_a_wheel_reach_the_terminal_escaped() {
    let case = Case::new();
    let files = [
        ("escapes/__init__.py", &b""[..]),
        (
            "escapes-1.0.dist-info/entry_points.txt",
            &b"[console_scripts]\nevil\x1b]2;owned\x07\x1b[2J = escapes:main\n"[..],
        ),
    ];
    let spec = attack("escapes", &files);
    let lock = lock_crafted(&case, &spec);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(
        &err,
        &[&spec.file_name(), "evil\\u{1b}]2;owned\\u{7}\\u{1b}[2J"],
    );
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached stderr: {err:?}"
    );
    case.assert_nothing_left(&["escapes"]);
}

/// Two wheels that each install `common/thing.py`, with different bytes, and a lockfile of
/// both, in `case`.
fn lock_colliding_wheels(case: &Case) -> (PathBuf, String, String) {
    let alpha = WheelSpec {
        distribution: "alpha",
        version: "1.0",
        files: &[("common/thing.py", b"OWNER = 'alpha'\n")],
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    };
    let beta = WheelSpec {
        distribution: "beta",
        version: "1.0",
        files: &[("common/thing.py", b"OWNER = 'beta'\n")],
        record_lies_about: None,
        metadata_version: None,
        tamper: None,
    };
    let lock = case.write(
        "pylock.toml",
        &lockfile(&[
            package(
                "alpha",
                "1.0",
                &[wheel_at_path(&alpha.write_in(case.path()))],
            ),
            package("beta", "1.0", &[wheel_at_path(&beta.write_in(case.path()))]),
        ]),
    );
    (lock, alpha.file_name(), beta.file_name())
}

#[test]
fn two_wheels_installing_the_same_path_with_different_bytes_collide() {
    let case = Case::new();
    let (lock, alpha, beta) = lock_colliding_wheels(&case);
    let err = failure(&case.image(&lock, &case.layout_output("t")).output());
    assert_mentions(&err, &["common/thing.py", &alpha, &beta]);
    assert_hint(&err, &["keep only one"]);
    case.assert_nothing_left(&["common/thing.py"]);
}

// ---------------------------------------------------------------------------------------------
// 10: offline with an empty cache, then the air-gapped flow

#[test]
fn offline_build_with_an_empty_cache_lists_every_missing_wheel_and_fetch_fixes_it() {
    let case = Case::new();
    let index = IndexServer::start(&fixtures().wheels);
    let packages = [
        ("blinker", "1.9.0", "blinker-"),
        ("click", "8.5.1", "click-"),
        ("itsdangerous", "2.2.0", "itsdangerous-"),
        ("markupsafe", "3.0.4", "markupsafe-"),
    ];
    let lock = case.write(
        "pylock.toml",
        &lockfile(
            &packages
                .iter()
                .map(|(name, version, prefix)| {
                    package(name, version, &[served_wheel(&index, prefix)])
                })
                .collect::<Vec<_>>(),
        ),
    );
    let output = case.layout_output("offline");

    let err = failure(&case.image(&lock, &output).arg("--offline").output());
    for (name, version, prefix) in packages {
        let (wheel, _, _) = fixture_wheel(prefix);
        assert_mentions(&err, &[&format!("`{name}` {version}"), &wheel]);
    }
    assert_mentions(&err, &["offline", &case.cache().display().to_string()]);
    assert_hint(&err, &["envbuild fetch"]);
    case.assert_nothing_left(&[]);

    envbuild()
        .args(["fetch", "--lock"])
        .arg(&lock)
        .args(["--python", "3.11", "--glibc", "2.36", "--cache-dir"])
        .arg(case.cache())
        .success();
    let port = index.port;
    drop(index);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the index is down for the offline build"
    );

    let built = case.image(&lock, &output).arg("--offline").success();
    let digest = printed_digest(&built);
    let index_json = fs_err::read_to_string(case.out().join("layout/index.json")).unwrap();
    assert!(index_json.contains(&digest), "{index_json}");
    assert_cache_is_consistent(&case.cache());
    assert!(
        !layer_blobs_with(&case.cache(), "blinker/__init__.py").is_empty(),
        "the offline build made its layers from the fetched wheels"
    );
}

// ---------------------------------------------------------------------------------------------
// 11: a base that cannot be read

/// A lockfile of one good wheel next to it, in `case`.
fn lock_good(case: &Case) -> PathBuf {
    lock_good_in(case.path())
}

#[test]
fn base_that_does_not_exist_is_named() {
    let case = Case::new();
    let lock = lock_good(&case);
    let missing = case.path().join("no-such-base");
    let base = format!("oci:{}:py311", missing.display());
    let err = failure(
        &case
            .image_on(&lock, &base, &case.layout_output("t"))
            .output(),
    );
    assert_mentions(&err, &[&base, "does not exist"]);
    assert_hint(&err, &["check the path", "--base"]);
    case.assert_nothing_left(&["good"]);
}

#[test]
fn base_folder_that_is_not_a_layout_is_named() {
    let case = Case::new();
    let lock = lock_good(&case);
    let folder = case.path().join("not-a-layout");
    fs_err::create_dir(&folder).unwrap();
    fs_err::write(folder.join("README"), "just a folder\n").unwrap();
    let base = format!("oci:{}:py311", folder.display());
    let err = failure(
        &case
            .image_on(&lock, &base, &case.layout_output("t"))
            .output(),
    );
    assert_mentions(&err, &[&base, "not an OCI image layout", "oci-layout"]);
    // What to do about it: point `--base` elsewhere, or make a layout (skopeo/umoci copy).
    assert_hint(
        &err,
        &["--base", "skopeo", "umoci", "oci-archive", "check", "point"],
    );
    case.assert_nothing_left(&["good"]);
}

#[test]
fn base_tag_that_does_not_exist_lists_the_tags() {
    let case = Case::new();
    let lock = lock_good(&case);
    let base = format!("oci:{}:py312", fixtures().base.display());
    let err = failure(
        &case
            .image_on(&lock, &base, &case.layout_output("t"))
            .output(),
    );
    assert_mentions(&err, &[&base, "`py312`", "py311"]);
    case.assert_nothing_left(&["good"]);
}

// ---------------------------------------------------------------------------------------------
// 12: SOURCE_DATE_EPOCH

#[test]
fn source_date_epoch_that_is_not_a_number_is_refused() {
    let case = Case::new();
    let lock = lock_good(&case);
    let err = failure(
        &case
            .image(&lock, &case.layout_output("t"))
            .env("SOURCE_DATE_EPOCH", "yesterday")
            .output(),
    );
    assert_mentions(&err, &["SOURCE_DATE_EPOCH", "`yesterday`", "seconds"]);
    assert_hint(&err, &["unset it", "git log"]);
    case.assert_nothing_left(&["good"]);
}

// ---------------------------------------------------------------------------------------------
// 13: a failed build into an existing layout

#[test]
fn failed_build_into_an_existing_layout_leaves_it_unchanged() {
    let case = Case::new();
    let good_dir = case.path().join("good");
    fs_err::create_dir(&good_dir).unwrap();
    let good_lock = lock_good_in(&good_dir);
    let layout = case.out().join("layout");
    printed_digest(
        &case
            .image(&good_lock, &case.layout_output("first"))
            .success(),
    );
    assert!(
        !layer_blobs_with(&case.cache(), "good/__init__.py").is_empty(),
        "the layer check sees what a build leaves in the cache"
    );
    let index_before = fs_err::read(layout.join("index.json")).unwrap();
    let files_before = snapshot(&layout);

    // The colliding wheels fail late: after the download, while the wheels are installed into
    // layers.
    let (bad_lock, alpha, beta) = lock_colliding_wheels(&case);
    let err = failure(
        &case
            .image(&bad_lock, &case.layout_output("second"))
            .output(),
    );
    assert_mentions(&err, &["common/thing.py", &alpha, &beta]);

    let index_after = fs_err::read(layout.join("index.json")).unwrap();
    assert!(
        index_after == index_before,
        "index.json changed:\n--- before\n{}\n--- after\n{}",
        String::from_utf8_lossy(&index_before),
        String::from_utf8_lossy(&index_after)
    );
    assert_eq!(
        snapshot(&layout),
        files_before,
        "the failed build changed the layout"
    );
    assert_cache_is_consistent(&case.cache());
    assert!(layer_blobs_with(&case.cache(), "common/thing.py").is_empty());
}

/// A lockfile of one good wheel, both written in `dir`.
fn lock_good_in(dir: &Path) -> PathBuf {
    let wheel = good_wheel(dir);
    let path = dir.join("pylock.toml");
    fs_err::write(
        &path,
        lockfile(&[package("good", "1.0", &[wheel_at_path(&wheel)])]),
    )
    .unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// The checks above catch what they claim to

#[test]
fn the_cache_check_catches_partial_and_corrupt_entries() {
    let case = Case::new();
    let cache = case.cache();
    let wheels = cache.join("wheels/sha256");
    fs_err::create_dir_all(&wheels).unwrap();
    fs_err::create_dir_all(cache.join("tmp")).unwrap();
    let bytes = b"a whole wheel";
    fs_err::write(wheels.join(sha256_hex(bytes)), bytes).unwrap();
    assert_cache_is_consistent(&cache);

    let catches = |what: &str| {
        let caught = std::panic::catch_unwind(|| assert_cache_is_consistent(&cache));
        assert!(caught.is_err(), "the cache check misses {what}");
    };
    let partial = cache.join("tmp/.partial-abc");
    fs_err::write(&partial, b"half").unwrap();
    catches("a file left in tmp/");
    fs_err::remove_file(&partial).unwrap();

    let corrupt = wheels.join(sha256_hex(b"other bytes"));
    fs_err::write(&corrupt, b"truncated").unwrap();
    catches("an entry that does not hash to its name");
}
