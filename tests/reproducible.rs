//! Reproducibility: the same lockfile, base and settings give the same image digest whatever
//! the output folder, the cache (cold or warm, here or elsewhere), the umask, TZ, locale,
//! `--jobs`, the current directory or the URLs the wheels were fetched from; and a different
//! SOURCE_DATE_EPOCH gives a different image. On a difference, the test prints a diff of the
//! two manifests, configs and layer listings.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// How one build varies from another.
struct Variant<'a> {
    name: &'a str,
    lock: &'a Path,
    cache: PathBuf,
    umask: u32,
    tz: &'a str,
    lang: &'a str,
    jobs: &'a str,
    cwd: PathBuf,
    source_date_epoch: Option<&'a str>,
}

/// A finished build: its layout and printed digest.
struct Build {
    name: String,
    layout: PathBuf,
    reference: String,
    digest: String,
}

fn build(scratch: &Path, variant: Variant<'_>) -> Build {
    let out = scratch.join(format!("out-{}", variant.name));
    fs_err::create_dir_all(&out).unwrap();
    let layout = out.join("layout");
    let reference = format!("oci:{}:hello", layout.display());
    fs_err::create_dir_all(&variant.cwd).unwrap();
    let mut command = envbuild()
        .args(image_args(variant.lock, &reference))
        .arg("--cache-dir")
        .arg(&variant.cache)
        .arg("--jobs")
        .arg(variant.jobs)
        .umask(variant.umask)
        .env("TZ", variant.tz)
        .env("LANG", variant.lang)
        .env("LC_ALL", variant.lang)
        .current_dir(&variant.cwd);
    if let Some(epoch) = variant.source_date_epoch {
        command = command.env("SOURCE_DATE_EPOCH", epoch);
    }
    let output = command.success();
    let digest = printed_digest(&output);
    assert_eq!(
        skopeo_inspect(&reference)["Digest"],
        digest.as_str(),
        "build {}: the printed digest is the layout's",
        variant.name
    );
    Build {
        name: variant.name.to_owned(),
        layout,
        reference,
        digest,
    }
}

/// Fails with a diff of the two images unless their digests are equal.
fn assert_same_image(a: &Build, b: &Build) {
    if a.digest != b.digest {
        let diff = explain_difference(a, b);
        panic!(
            "builds `{}` and `{}` differ: {} vs {}\n{diff}",
            a.name, b.name, a.digest, b.digest
        );
    }
    // The same digest must also mean the same blobs on disk.
    assert_eq!(
        blob_names(&a.layout),
        blob_names(&b.layout),
        "builds `{}` and `{}` hold different blobs",
        a.name,
        b.name
    );
}

fn blob_names(layout: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A unified diff of the manifests, configs and `tar -tv` listings of every layer.
fn explain_difference(a: &Build, b: &Build) -> String {
    let scratch = scratch_dir("diff-");
    let mut report = String::new();
    let mut compare = |what: &str, left: String, right: String| {
        if left == right {
            report.push_str(&format!("=== {what}: identical\n"));
            return;
        }
        let l = scratch.path().join("a");
        let r = scratch.path().join("b");
        fs_err::write(&l, left).unwrap();
        fs_err::write(&r, right).unwrap();
        let diff = Command::new("diff")
            .args(["-u", "--label", &a.name, "--label", &b.name])
            .arg(&l)
            .arg(&r)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(diff failed: {e})"));
        // Keep the report readable: a layer whose mtimes all moved differs on every line.
        const MAX_LINES: usize = 200;
        let lines: Vec<&str> = diff.lines().collect();
        report.push_str(&format!("=== {what}\n"));
        for line in lines.iter().take(MAX_LINES) {
            report.push_str(line);
            report.push('\n');
        }
        if lines.len() > MAX_LINES {
            report.push_str(&format!(
                "... ({} more diff lines)\n",
                lines.len() - MAX_LINES
            ));
        }
    };
    let pretty = |bytes: Vec<u8>| -> String {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .map(|v| format!("{v:#}"))
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
    };
    compare(
        "manifest",
        pretty(skopeo_raw_manifest(&a.reference)),
        pretty(skopeo_raw_manifest(&b.reference)),
    );
    compare(
        "config",
        format!("{:#}", skopeo_config(&a.reference)),
        format!("{:#}", skopeo_config(&b.reference)),
    );
    let layers = |build: &Build| -> Vec<String> {
        let manifest: serde_json::Value =
            serde_json::from_slice(&skopeo_raw_manifest(&build.reference)).unwrap();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let (left, right) = (layers(a), layers(b));
    for (i, (l, r)) in left.iter().zip(&right).enumerate() {
        if l == r {
            continue;
        }
        compare(
            &format!("layer {i} listing ({l} vs {r})"),
            tar_listing(&a.layout, l),
            tar_listing(&b.layout, r),
        );
    }
    if left.len() != right.len() {
        report.push_str(&format!(
            "=== layer counts differ: {} vs {}\n",
            left.len(),
            right.len()
        ));
    }
    report
}

fn tar_listing(layout: &Path, digest: &str) -> String {
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    Command::new("tar")
        .args(["-tvv", "--full-time", "--numeric-owner", "-f"])
        .arg(&blob)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(tar failed: {e})"))
}

#[test]
fn the_same_inputs_give_the_same_digest_and_source_date_epoch_changes_it() {
    let fixtures = fixtures();
    let scratch = scratch_dir("repro-");
    let s = scratch.path();
    let index = IndexServer::start(&fixtures.wheels);
    let lock_a = lock_example(&index.url, &hello_service());
    // Another server (another port): the same wheels under other URLs.
    let other_index = IndexServer::start(&fixtures.wheels);
    let lock_b = lock_example(&other_index.url, &hello_service());
    assert_ne!(
        fs_err::read_to_string(&lock_a.pylock).unwrap(),
        fs_err::read_to_string(&lock_b.pylock).unwrap(),
        "the two lockfiles name different URLs"
    );

    let epoch = Some("1700000000");
    let cold = build(
        s,
        Variant {
            name: "cold",
            lock: &lock_a.pylock,
            cache: s.join("cache-a"),
            umask: 0o022,
            tz: "UTC",
            lang: "C.UTF-8",
            jobs: "1",
            cwd: s.join("cwd-a"),
            source_date_epoch: epoch,
        },
    );
    let elsewhere = build(
        s,
        Variant {
            name: "elsewhere",
            lock: &lock_b.pylock,
            cache: s.join("cache-b"),
            umask: 0o077,
            tz: "Asia/Tokyo",
            lang: "C",
            jobs: "4",
            cwd: s.join("cwd-b/deeper"),
            source_date_epoch: epoch,
        },
    );
    assert_same_image(&cold, &elsewhere);

    let warm = build(
        s,
        Variant {
            name: "warm",
            lock: &lock_a.pylock,
            cache: s.join("cache-a"),
            umask: 0o077,
            tz: "America/St_Johns",
            lang: "C.UTF-8",
            jobs: "4",
            cwd: std::env::temp_dir(),
            source_date_epoch: epoch,
        },
    );
    assert_same_image(&cold, &warm);

    // Without SOURCE_DATE_EPOCH the fixed default applies: still reproducible.
    let unset_a = build(
        s,
        Variant {
            name: "unset-a",
            lock: &lock_a.pylock,
            cache: s.join("cache-a"),
            umask: 0o022,
            tz: "UTC",
            lang: "C.UTF-8",
            jobs: "1",
            cwd: s.join("cwd-a"),
            source_date_epoch: None,
        },
    );
    let unset_b = build(
        s,
        Variant {
            name: "unset-b",
            lock: &lock_b.pylock,
            cache: s.join("cache-c"),
            umask: 0o077,
            tz: "Asia/Tokyo",
            lang: "C",
            jobs: "3",
            cwd: s.join("cwd-c"),
            source_date_epoch: None,
        },
    );
    assert_same_image(&unset_a, &unset_b);

    // A different SOURCE_DATE_EPOCH is a different image.
    let later = build(
        s,
        Variant {
            name: "later",
            lock: &lock_a.pylock,
            cache: s.join("cache-a"),
            umask: 0o022,
            tz: "UTC",
            lang: "C.UTF-8",
            jobs: "1",
            cwd: s.join("cwd-a"),
            source_date_epoch: Some("1700000001"),
        },
    );
    assert_ne!(
        cold.digest, later.digest,
        "SOURCE_DATE_EPOCH must reach the image (timestamps in layers and config)"
    );
    let created = skopeo_config(&later.reference)["created"].clone();
    assert_eq!(
        created, "2023-11-14T22:13:21Z",
        "config `created` is SOURCE_DATE_EPOCH"
    );
    drop((index, other_index));
}
