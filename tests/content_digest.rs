//! The image digest depends on content only, and its bytes are pinned.
//!
//! Everything here is made by the test itself, with no network and no fixture cache: two
//! small wheels (written with the `zip` crate, stored, fixed timestamps), a base image
//! layout holding a fake CPython 3.11 on glibc 2.36 (an uncompressed tar layer), and a
//! pylock.toml naming the wheels by path. So the test runs in a second anywhere.
//!
//! - `golden_bytes`: the digests of the image, its config and its new layers are pinned.
//!   A change in tar headers, entry order, gzip, JSON or launchers fails it; when such a
//!   change is on purpose, bump `LAYER_FORMAT_VERSION` in `src/repro.rs` and update the
//!   pins (the failure message prints the new values).
//! - `spelling_never_changes_the_digest`: the same content spelled differently (the base
//!   under another path and tag, as an OCI archive, the lockfile in another folder under
//!   another name, another working folder, cache, HOME, user name, TZ, umask) gives one
//!   digest; a registry-style `--base-name` is the only name that reaches the image.

mod common;
mod synthetic_support;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use synthetic_support::*;

/// The pinned values. See the module documentation before changing them.
mod golden {
    /// sha256 of the two wheels the test writes (a change here means the test's own
    /// wheel writer changed, e.g. a new `zip` crate: update these and the pins below,
    /// no format bump is needed).
    pub const WHEEL_GREET: &str =
        "ac8ab5c96e2e33cdf68061227e1bb2eaaf4d0b0bde75acba6e8c018e28c8966b";
    pub const WHEEL_SHOUT: &str =
        "43f2be36aa4c43d90720e298570ba0f2b788280450ee03e13a731bc5bca73abf";
    /// The base layout's manifest (written by the test, so it changes only with the test).
    pub const BASE_MANIFEST: &str =
        "sha256:d8e900a1060760d7f74ffbe6c5b65636963c6e8e30e09cea231f7b6e57c3f246";
    /// The built image.
    pub const IMAGE: &str =
        "sha256:ca2e170a9e42acf0aec495bc348ad5592ac488ccf2f8505b40782739f2451118";
    pub const CONFIG: &str =
        "sha256:eb2a71467e86a5748586ada3b614255b5e6a4d8b821492af65a11c95c1890b91";
    /// The venv layer and the one package layer (both small wheels share a bucket or
    /// not, as the planner decides; the list is in image order).
    pub const LAYERS: &[&str] = &[
        "sha256:3fb5e4309d5085af5e4bbdb4fab92edea1fa43230b2b1cd4a96b754e411a0048",
        "sha256:111d8bd28d94586923f7068b5b248b2ddf24d72cda29d9a96797e3e64b1cac1e",
    ];
}

/// One build's result.
struct Built {
    digest: String,
    report: Value,
}

/// How a build is spelled: everything here must not matter.
struct Spelling<'a> {
    base: String,
    lock: &'a Path,
    output: String,
    cache: PathBuf,
    cwd: PathBuf,
    home: PathBuf,
    user: &'a str,
    tz: &'a str,
    umask: u32,
    extra: &'a [&'a str],
}

fn build(spelling: &Spelling<'_>) -> Built {
    fs_err::create_dir_all(&spelling.cwd).unwrap();
    fs_err::create_dir_all(&spelling.home).unwrap();
    let output = envbuild()
        .args(["image", "--lock"])
        .arg(spelling.lock)
        .args(["--base", &spelling.base, "--output", &spelling.output])
        .args(["--cmd", "greet", "--json", "--cache-dir"])
        .arg(&spelling.cache)
        .args(spelling.extra)
        .env("HOME", &spelling.home)
        .env("USER", spelling.user)
        .env("LOGNAME", spelling.user)
        .env("TZ", spelling.tz)
        .umask(spelling.umask)
        .current_dir(&spelling.cwd)
        .success();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    Built {
        digest: report["digest"].as_str().unwrap().to_owned(),
        report,
    }
}

/// The raw manifest of `oci:LAYOUT:TAG`, read from the layout itself.
fn layout_manifest(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&fs_err::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

#[test]
fn golden_bytes() {
    let scratch = scratch_dir("golden-");
    let root = scratch.path();
    let wheels = write_wheels(&root.join("wheels"));
    let wheel_hashes: Vec<String> = wheels
        .iter()
        .map(|(_, _, path)| sha256_hex(&fs_err::read(path).unwrap()))
        .collect();
    let base_manifest = write_base(&root.join("base"), "py311", BaseKind::Python311);
    let lock = root.join("pylock.toml");
    write_lock(&lock, &wheels);
    let layout = root.join("out");
    let built = build(&Spelling {
        base: format!("oci:{}:py311", root.join("base").display()),
        lock: &lock,
        output: format!("oci:{}:golden", layout.display()),
        cache: root.join("cache"),
        cwd: root.to_path_buf(),
        home: root.join("home"),
        user: "golden",
        tz: "UTC",
        umask: 0o022,
        extra: &[],
    });
    let manifest = layout_manifest(&layout, &built.digest);
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let layers: Vec<String> = built.report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|layer| layer["kind"] != "base")
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect();

    let found = format!(
        "WHEEL_GREET = {:?}\nWHEEL_SHOUT = {:?}\nBASE_MANIFEST = {:?}\nIMAGE = {:?}\nCONFIG = {:?}\nLAYERS = {:?}",
        wheel_hashes[0], wheel_hashes[1], base_manifest, built.digest, config, layers
    );
    assert_eq!(
        (
            wheel_hashes[0].as_str(),
            wheel_hashes[1].as_str(),
            base_manifest.as_str()
        ),
        (
            golden::WHEEL_GREET,
            golden::WHEEL_SHOUT,
            golden::BASE_MANIFEST
        ),
        "the test's own inputs changed (its wheel or layout writer, not envbuild): update every pin in `mod golden` to\n{found}"
    );
    assert!(
        built.digest == golden::IMAGE && config == golden::CONFIG && layers == golden::LAYERS,
        "envbuild's output bytes changed for the same inputs (tar headers, entry order, gzip, JSON, launchers or layering). If this is on purpose, bump LAYER_FORMAT_VERSION in src/repro.rs, say why in the commit, and update the pins in `mod golden` to\n{found}\n\nmanifest: {manifest:#}"
    );
}

#[test]
fn spelling_never_changes_the_digest() {
    let scratch = scratch_dir("spelling-");
    let root = scratch.path();
    let wheels = write_wheels(&root.join("wheels"));
    // The same base bytes in two layouts under different paths and tags, and as an archive.
    let base_a = root.join("a/images/base");
    let base_b = root.join("b2");
    let digest_a = write_base(&base_a, "py311", BaseKind::Python311);
    let digest_b = write_base(&base_b, "python-3.11-slim", BaseKind::Python311);
    assert_eq!(digest_a, digest_b);
    let archive = root.join("elsewhere/base.tar");
    fs_err::create_dir_all(archive.parent().unwrap()).unwrap();
    archive_layout(&base_b, &archive);
    // The same lockfile in two folders under two names.
    let lock_a = root.join("project/pylock.toml");
    let lock_b = root.join("ci/checkout/deploy/pylock.service.toml");
    for lock in [&lock_a, &lock_b] {
        fs_err::create_dir_all(lock.parent().unwrap()).unwrap();
        write_lock(lock, &wheels);
    }

    let reference = build(&Spelling {
        base: format!("oci:{}:py311", base_a.display()),
        lock: &lock_a,
        output: format!("oci:{}:one", root.join("out-a").display()),
        cache: root.join("cache-a"),
        cwd: root.join("project"),
        home: root.join("home-alice"),
        user: "alice",
        tz: "UTC",
        umask: 0o022,
        extra: &[],
    });
    let variants = [
        Spelling {
            base: format!("oci:{}:python-3.11-slim", base_b.display()),
            lock: &lock_b,
            output: format!("oci:{}:two", root.join("out-b").display()),
            cache: root.join("cache-b"),
            cwd: root.join("somewhere/else"),
            home: root.join("home-bob"),
            user: "bob",
            tz: "Pacific/Kiritimati",
            umask: 0o077,
            extra: &[],
        },
        Spelling {
            base: format!("oci-archive:{}:python-3.11-slim", archive.display()),
            lock: &lock_b,
            output: format!("oci-archive:{}", root.join("out-c.tar").display()),
            // A warm cache this time.
            cache: root.join("cache-a"),
            cwd: root.join("ci"),
            home: root.join("home-ci"),
            user: "runner",
            tz: "America/St_Johns",
            umask: 0o027,
            extra: &[],
        },
    ];
    for variant in &variants {
        let built = build(variant);
        assert_eq!(
            built.digest,
            reference.digest,
            "base `{}` and lock `{}` gave another digest than the same content spelled as base `oci:…/a/images/base:py311`",
            variant.base,
            variant.lock.display()
        );
    }
    let manifest = layout_manifest(&root.join("out-a"), &reference.digest);
    let annotations = &manifest["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.base.digest"],
        digest_a.as_str()
    );
    assert!(
        annotations
            .get("org.opencontainers.image.base.name")
            .is_none(),
        "a local base's path must not reach the image: {annotations}"
    );
    assert!(
        !manifest.to_string().contains(&root.display().to_string()),
        "a build folder reached the manifest: {manifest}"
    );

    // `--base-name` records a registry name, in its canonical spelling; spelled two ways,
    // it gives one digest, which differs from the unnamed image's.
    let named = |extra: &'static [&'static str], out: &str| {
        build(&Spelling {
            base: format!("oci:{}:py311", base_a.display()),
            lock: &lock_a,
            output: format!("oci:{}:named", root.join(out).display()),
            cache: root.join("cache-a"),
            cwd: root.join("project"),
            home: root.join("home-alice"),
            user: "alice",
            tz: "UTC",
            umask: 0o022,
            extra,
        })
    };
    let first = named(&["--base-name", "python:3.11-slim"], "named-1");
    let second = named(
        &["--base-name", "docker.io/library/python:3.11-slim"],
        "named-2",
    );
    assert_eq!(first.digest, second.digest);
    assert_ne!(first.digest, reference.digest);
    let manifest = layout_manifest(&root.join("named-1"), &first.digest);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.name"],
        "docker.io/library/python:3.11-slim"
    );

    let refused = envbuild()
        .args(["image", "--lock"])
        .arg(&lock_a)
        .args(["--base", &format!("oci:{}:py311", base_a.display())])
        .args(["--output", &format!("oci:{}", root.join("never").display())])
        .args(["--base-name", "not a reference!"])
        .output();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("`--base-name not a reference!` is not a registry reference"),
        "{}",
        stderr(&refused)
    );
    assert!(!root.join("never").exists());
}
