//! Hostile lockfiles and wheels against the real `envbuild` binary: inputs that crashed
//! envbuild 0.1.0 (a marker nested 20,000 parentheses deep overflowed the stack and
//! aborted with exit code 134; a Poetry or Pipenv package name such as `//[` reached a
//! `Url::join(...).expect(...)` and panicked) and inputs that smuggle terminal control
//! characters into messages. Each must now end in one `error:` that names the file, the
//! line and the offending text, with an ordinary exit code: never a signal, never a
//! panic (exit code 101), never a raw control character on the terminal.
//!
//! The no-panic property tests of the same parsers live next to them
//! (`ok_no_panic_on_hostile_*` in `src/lock`, `src/index` and `src/check.rs`); these tests
//! cover the paths from the command line that those cannot (the index lookup, the
//! dependency check over a real wheel).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{envbuild, scratch_dir, sha256_hex, sha256_record, stderr, stdout};

/// A marker nested `depth` parentheses deep.
fn deep_marker(depth: usize) -> String {
    format!(
        "{}os_name == 'posix'{}",
        "(".repeat(depth),
        ")".repeat(depth)
    )
}

/// `envbuild check` of `lock` for CPython 3.11 on linux/amd64 (no base image needed),
/// with a private cache and, for locks that name files by hash only, an index nobody
/// listens on: nothing in these tests may get as far as a download.
fn check(dir: &Path, lock: &Path) -> Output {
    envbuild()
        .arg("check")
        .arg("--lock")
        .arg(lock)
        .args([
            "--platform",
            "linux/amd64",
            "--python",
            "3.11",
            "--glibc",
            "2.36",
        ])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--index-url")
        .arg(format!("{}/simple/", unreachable_base()))
        .arg("--no-index-config")
        .output()
}

/// `http://127.0.0.1:PORT` on a port nobody listens on.
fn unreachable_base() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// Checks the run failed as a bad input should, not as a crash: an exit code (no
/// signal, so no stack overflow), not 101 (a panic), and one `error:` line on stderr
/// holding no raw control character. Returns stderr.
fn refused(output: &Output) -> String {
    let err = stderr(output);
    let context = format!(
        "{}\n--- stdout\n{}\n--- stderr\n{err}",
        output.status,
        stdout(output)
    );
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal (a crash, not an error): {context}"));
    assert!(
        code != 0 && code != 101,
        "expected an error exit: {context}"
    );
    assert!(!err.contains("panicked"), "a panic: {context}");
    assert_eq!(
        err.lines()
            .filter(|line| line.starts_with("error:"))
            .count(),
        1,
        "{context}"
    );
    assert_no_control_characters(&err);
    err
}

fn assert_no_control_characters(text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "raw control characters {raw:?} in:\n{text}");
}

const HASH: &str = "3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe";

// ---------------------------------------------------------------------------------------------
// Defect 1: deep markers, in a lockfile, a requirements line and a wheel's Requires-Dist

#[test]
fn pylock_marker_nested_20000_deep_is_an_error_not_a_stack_overflow() {
    let dir = scratch_dir("robust-");
    let lock = dir.path().join("pylock.toml");
    fs_err::write(
        &lock,
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"test\"\n\n[[packages]]\nname = \"good\"\nversion = \"1.0\"\nmarker = \"{}\"\nwheels = [{{ url = \"{}/good-1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{HASH}\" }} }}]\n",
            deep_marker(20_000),
            unreachable_base()
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &lock));
    assert!(
        err.contains(&format!("{}:7:10`", lock.display())),
        "names the file, line and column: {err}"
    );
    assert!(
        err.contains("`marker` of package `good`")
            && err.contains(
                "it nests parentheses 20000 levels deep, more than the 32 envbuild reads"
            ),
        "{err}"
    );
    // The marker is quoted, but not all 40,000 characters of it.
    assert!(err.len() < 1_000, "{err}");
}

#[test]
fn requirements_line_nested_20000_deep_is_an_error_not_a_stack_overflow() {
    let dir = scratch_dir("robust-");
    let lock = dir.path().join("requirements.txt");
    fs_err::write(
        &lock,
        format!(
            "flask==3.1.3 --hash=sha256:{HASH}\ngood==1.0 ; {} --hash=sha256:{HASH}\n",
            deep_marker(20_000)
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &lock));
    assert!(
        err.contains(&format!("at `{}:2`", lock.display())),
        "names the file and line: {err}"
    );
    assert!(
        err.contains("it nests parentheses 20000 levels deep"),
        "{err}"
    );
}

#[test]
fn uv_lock_and_poetry_markers_nested_deep_are_errors() {
    let dir = scratch_dir("robust-");
    let uv = dir.path().join("uv.lock");
    fs_err::write(
        &uv,
        format!(
            "version = 1\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"app\"\nversion = \"1.0\"\nsource = {{ virtual = \".\" }}\ndependencies = [{{ name = \"good\", marker = \"{}\" }}]\n\n[[package]]\nname = \"good\"\nversion = \"1.0\"\nsource = {{ registry = \"{}/simple/\" }}\n",
            deep_marker(20_000),
            unreachable_base()
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &uv));
    assert!(err.contains(&format!("{}:8:17`", uv.display())), "{err}");
    assert!(
        err.contains("it nests parentheses 20000 levels deep"),
        "{err}"
    );

    let poetry = dir.path().join("poetry.lock");
    fs_err::write(
        &poetry,
        format!(
            "[[package]]\nname = \"good\"\nversion = \"1.0\"\noptional = false\npython-versions = \"*\"\ngroups = [\"main\"]\nmarkers = \"{}\"\nfiles = [{{ file = \"good-1.0-py3-none-any.whl\", hash = \"sha256:{HASH}\" }}]\n\n[metadata]\nlock-version = \"2.1\"\npython-versions = \">=3.11\"\ncontent-hash = \"0\"\n",
            deep_marker(20_000)
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &poetry));
    assert!(
        err.contains(&format!("{}:7:11`", poetry.display())),
        "{err}"
    );
    assert!(
        err.contains("it nests parentheses 20000 levels deep"),
        "{err}"
    );
}

/// A wheel of `name` 1.0 whose METADATA has these `Requires-Dist` lines (from line 4),
/// with a RECORD that matches, in `dir`.
fn wheel_requiring(dir: &Path, name: &str, requires: &[&str]) -> PathBuf {
    let dist_info = format!("{name}-1.0.dist-info");
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n");
    for requirement in requires {
        metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (format!("{name}/__init__.py"), b"".to_vec()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    let mut record: String = entries
        .iter()
        .map(|(entry, bytes)| format!("{entry},sha256={},{}\n", sha256_record(bytes), bytes.len()))
        .collect();
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    entries.push((format!("{dist_info}/RECORD"), record.into_bytes()));
    let path = dir.join(format!("{name}-1.0-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
    for (entry, bytes) in &entries {
        zip.start_file(entry.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

#[test]
fn wheel_requires_dist_nested_20000_deep_is_reported_not_a_stack_overflow() {
    let dir = scratch_dir("robust-");
    let deep = format!("other ; {}", deep_marker(20_000));
    let wheel = wheel_requiring(dir.path(), "deep", &["good", &deep]);
    let good = wheel_requiring(dir.path(), "good", &[]);
    let entry = |wheel: &Path| {
        let bytes = fs_err::read(wheel).unwrap();
        format!(
            "wheels = [{{ path = \"{}\", size = {}, hashes = {{ sha256 = \"{}\" }} }}]",
            wheel.file_name().unwrap().to_string_lossy(),
            bytes.len(),
            sha256_hex(&bytes)
        )
    };
    let lock = dir.path().join("pylock.toml");
    fs_err::write(
        &lock,
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"test\"\n\n[[packages]]\nname = \"deep\"\nversion = \"1.0\"\n{}\n\n[[packages]]\nname = \"good\"\nversion = \"1.0\"\n{}\n",
            entry(&wheel),
            entry(&good)
        ),
    )
    .unwrap();
    let output = check(dir.path(), &lock);
    // The check runs, and reports the requirement it cannot read as a problem (exit 1).
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {}", stderr(&output)));
    let report = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("deep 1.0 has `Requires-Dist: other ; ((((")
            && report.contains(
                "(wheel `deep-1.0-py3-none-any.whl`, `deep-1.0.dist-info/METADATA` line 5), which is not a valid PEP 508 requirement (it nests parentheses 20000 levels deep, more than the 32 envbuild reads)"
            ),
        "{report}"
    );
    assert!(report.len() < 4_000, "{report}");
    assert_no_control_characters(&report);
}

// ---------------------------------------------------------------------------------------------
// Defect 13: package names that are not names, in every format

#[test]
fn poetry_name_that_would_break_the_index_url_is_refused_with_file_line_and_name() {
    for name in ["//[", "//host", "../../admin", "a?b#c"] {
        let dir = scratch_dir("robust-");
        let lock = dir.path().join("poetry.lock");
        fs_err::write(
            &lock,
            format!(
                "[[package]]\nname = \"{name}\"\nversion = \"1.0\"\noptional = false\npython-versions = \"*\"\ngroups = [\"main\"]\nfiles = [{{ file = \"x-1.0-py3-none-any.whl\", hash = \"sha256:{HASH}\" }}]\n\n[metadata]\nlock-version = \"2.1\"\npython-versions = \">=3.11\"\ncontent-hash = \"0\"\n"
            ),
        )
        .unwrap();
        let err = refused(&check(dir.path(), &lock));
        assert!(
            err.contains(&format!(
                "invalid lockfile `{}:2:8`: `{name}` is not a valid package name",
                lock.display()
            )),
            "{name}: {err}"
        );
    }
}

#[test]
fn pipfile_name_that_would_send_the_lookup_elsewhere_is_refused_with_file_line_and_name() {
    let dir = scratch_dir("robust-");
    let lock = dir.path().join("Pipfile.lock");
    fs_err::write(
        &lock,
        format!(
            "{{\n    \"_meta\": {{\"pipfile-spec\": 6, \"requires\": {{}}, \"sources\": []}},\n    \"default\": {{\n        \"//host\": {{\n            \"hashes\": [\"sha256:{HASH}\"],\n            \"version\": \"==1.0\"\n        }}\n    }},\n    \"develop\": {{}}\n}}\n"
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &lock));
    assert!(
        err.contains(&format!(
            "invalid lockfile `{}:4:9`: `//host` is not a valid package name",
            lock.display()
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Defect 8: control characters from a lockfile never reach the terminal raw

#[test]
fn control_characters_in_lockfile_names_are_escaped() {
    let dir = scratch_dir("robust-");
    // A name that would turn the terminal red and forge an `error:` line of its own.
    let evil = "evil\\u001b[31m\\nerror: all good\\r";
    let lock = dir.path().join("poetry.lock");
    fs_err::write(
        &lock,
        format!(
            "[[package]]\nname = \"{evil}\"\nversion = \"1.0\"\noptional = false\npython-versions = \"*\"\ngroups = [\"main\"]\nfiles = []\n\n[metadata]\nlock-version = \"2.1\"\npython-versions = \">=3.11\"\ncontent-hash = \"0\"\n"
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &lock));
    assert!(
        err.contains("`evil\\u{1b}[31m\\nerror: all good\\r` is not a valid package name"),
        "{err}"
    );

    let pylock = dir.path().join("pylock.toml");
    fs_err::write(
        &pylock,
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"test\"\n\n[[packages]]\nname = \"good\"\nversion = \"1.0\"\nmarker = \"os_name == 'x' {evil}\"\nwheels = [{{ url = \"{}/good-1.0-py3-none-any.whl\", hashes = {{ sha256 = \"{HASH}\" }} }}]\n",
            unreachable_base()
        ),
    )
    .unwrap();
    let err = refused(&check(dir.path(), &pylock));
    assert!(
        err.contains("`os_name == 'x' evil\\u{1b}[31m\\nerror: all good\\r`"),
        "{err}"
    );
}
