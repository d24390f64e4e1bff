//! Target flags that contradict the base image are errors naming both values; flags that
//! agree change nothing; flags fill in what a base cannot tell; `--force-target` lets the
//! flags win and is recorded. Built on a synthetic base (a fake CPython 3.11.4 on glibc
//! 2.36, see `tests/synthetic_support`), so every case takes a fraction of a second.

mod common;
mod synthetic_support;

use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};
use synthetic_support::*;

struct Setup {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    lock: PathBuf,
}

fn setup(kind: BaseKind) -> Setup {
    let scratch = scratch_dir("target-");
    let root = scratch.path().to_path_buf();
    let wheels = write_wheels(&root.join("wheels"));
    let lock = root.join("pylock.toml");
    write_lock(&lock, &wheels);
    write_base(&root.join("base"), "base", kind);
    Setup {
        _scratch: scratch,
        root,
        lock,
    }
}

fn run(setup: &Setup, name: &str, flags: &[&str]) -> std::process::Output {
    envbuild()
        .args(["image", "--json", "--lock"])
        .arg(&setup.lock)
        .args([
            "--base",
            &format!("oci:{}:base", setup.root.join("base").display()),
        ])
        .args([
            "--output",
            &format!("oci:{}:out", setup.root.join(name).display()),
        ])
        .arg("--cache-dir")
        .arg(setup.root.join("cache"))
        .args(flags)
        .output()
}

fn built(setup: &Setup, name: &str, flags: &[&str]) -> Value {
    let output = run(setup, name, flags);
    assert!(
        output.status.success(),
        "{flags:?} failed:\n{}",
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn refused(setup: &Setup, name: &str, flags: &[&str]) -> String {
    let output = run(setup, name, flags);
    assert!(!output.status.success(), "{flags:?} was accepted");
    assert!(
        !setup.root.join(name).exists(),
        "{flags:?}: a refused build left `{name}` behind"
    );
    stderr(&output)
}

fn assert_contains_all(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "expected {part:?} in:\n{message}");
    }
}

#[test]
fn detected_target_is_reported_with_its_sources() {
    let setup = setup(BaseKind::Python311);
    let report = built(&setup, "plain", &[]);
    assert_eq!(
        report["target"],
        json!({
            "implementation": "cpython",
            "python": {"value": "3.11.4", "source": "base"},
            "interpreter": {"value": "/usr/bin/python3.11", "source": "base"},
            "platform": {"value": "linux/amd64", "source": "base"},
            "libc": {"kind": "glibc", "version": "2.36", "source": "base"},
            "forced": false,
        })
    );
    // Flags that agree change nothing, not even the digest.
    let agreeing = built(
        &setup,
        "agreeing",
        &[
            "--python",
            "3.11",
            "--glibc",
            "2.36",
            "--platform",
            "linux/amd64",
            "--interpreter",
            "/usr/bin/python3.11",
        ],
    );
    assert_eq!(agreeing["digest"], report["digest"]);
    assert_eq!(
        agreeing["target"]["python"],
        json!({"value": "3.11.4", "source": "base"})
    );
}

#[test]
fn contradicting_flags_are_errors_naming_both_values() {
    let setup = setup(BaseKind::Python311);
    let base = format!("oci:{}:base", setup.root.join("base").display());
    let message = refused(&setup, "py312", &["--python", "3.12"]);
    assert_contains_all(
        &message,
        &[
            &format!("`--python 3.12` contradicts base image `{base}`"),
            "the flag says Python 3.12,",
            "its interpreter `/usr/bin/python3.11` is Python 3.11.4",
            "--force-target",
        ],
    );
    // The user's spelling is echoed: 3.12, not 3.12.0.
    assert!(!message.contains("3.12.0"), "{message}");

    let message = refused(&setup, "patch", &["--python", "3.11.9"]);
    assert_contains_all(&message, &["`--python 3.11.9`", "Python 3.11.4"]);

    let message = refused(&setup, "glibc", &["--glibc", "2.17"]);
    assert_contains_all(
        &message,
        &[
            "`--glibc 2.17` contradicts",
            "glibc 2.17",
            "its C library is glibc 2.36",
        ],
    );

    let message = refused(&setup, "musl", &["--musl", "1.2"]);
    assert_contains_all(
        &message,
        &[
            "`--musl 1.2` contradicts",
            "musl 1.2",
            "its C library is glibc 2.36",
        ],
    );

    let message = refused(
        &setup,
        "interpreter",
        &["--interpreter", "/usr/bin/python3.12"],
    );
    assert_contains_all(
        &message,
        &[
            "`--interpreter /usr/bin/python3.12` is not a file in the base image",
            "it has `/usr/bin/python3.11`",
        ],
    );

    let message = refused(&setup, "arm64", &["--platform", "linux/arm64"]);
    assert_contains_all(&message, &["linux/arm64", "linux/amd64"]);
}

#[test]
fn force_target_lets_flags_win_and_is_recorded() {
    let setup = setup(BaseKind::Python311);
    let plain = built(&setup, "plain", &[]);
    let forced = built(&setup, "forced", &["--python", "3.12", "--force-target"]);
    assert_eq!(forced["target"]["forced"], true);
    assert_eq!(
        forced["target"]["python"],
        json!({"value": "3.12", "source": "flag"})
    );
    assert_ne!(forced["digest"], plain["digest"]);
}

#[test]
fn flags_fill_in_what_a_base_cannot_tell() {
    let setup = setup(BaseKind::PythonElsewhere);
    let message = refused(&setup, "none", &[]);
    assert_contains_all(
        &message,
        &["cannot tell the target's Python version", "--python"],
    );
    let report = built(
        &setup,
        "given",
        &[
            "--python",
            "3.11",
            "--interpreter",
            "/opt/python/bin/python3.11",
        ],
    );
    assert_eq!(
        report["target"],
        json!({
            "implementation": "cpython",
            "python": {"value": "3.11.4", "source": "base"},
            "interpreter": {"value": "/opt/python/bin/python3.11", "source": "flag"},
            "platform": {"value": "linux/amd64", "source": "base"},
            "libc": {"kind": "glibc", "version": "2.36", "source": "base"},
            "forced": false,
        })
    );
    // The interpreter the flag names is checked like a detected one.
    let message = refused(
        &setup,
        "wrong",
        &[
            "--python",
            "3.12",
            "--interpreter",
            "/opt/python/bin/python3.11",
        ],
    );
    assert_contains_all(&message, &["`--python 3.12` contradicts", "Python 3.11.4"]);
}
