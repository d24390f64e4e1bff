//! `--output docker-archive:FILE:NAME:TAG` against the real readers: `podman load` takes the
//! archive and the loaded image runs; containers/image reads its `manifest.json` (`skopeo
//! inspect docker-archive:`, and `skopeo copy` out of it, which checks every layer against its
//! diff_id as `docker load` does); two builds give the same bytes; and an archive is refused
//! for several platforms before anything is built. There is no Docker engine on these
//! machines, so `docker load` itself is not run: the archive has the shape Docker 25+ gives
//! `docker save` (an OCI layout plus `manifest.json` and `repositories`).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use common::*;

/// The hello-service lockfile, locked once per process against the fixture wheels.
fn locked() -> &'static LockedProject {
    &served().project
}

/// The index the lock points at, kept serving for the whole test process (builds download
/// from it), and the project locked against it.
struct Served {
    _index: IndexServer,
    project: LockedProject,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Result<Served, String>> = OnceLock::new();
    once(&SERVED, || {
        let index = IndexServer::start(&fixtures().wheels);
        let project = lock_example(&index.url, &hello_service());
        Served {
            _index: index,
            project,
        }
    })
}

/// `envbuild image` of the example to `output` with a cache of its own; returns the printed
/// digest.
fn build(output: &str, cache: &Path) -> String {
    let output = envbuild()
        .args(image_args(&locked().pylock, output))
        .arg("--cache-dir")
        .arg(cache)
        .success();
    printed_digest(&output)
}

/// The small top-level files of a tar and the names of all its entries.
fn archive_contents(path: &Path) -> (Vec<String>, std::collections::BTreeMap<String, Vec<u8>>) {
    use std::io::Read;
    let mut names = Vec::new();
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(fs_err::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("blobs/") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            files.insert(name.clone(), bytes);
        }
        names.push(name);
    }
    (names, files)
}

/// podman with the flags it needs on these machines (as `common` runs it: runc, cgroupfs, no
/// default ulimits).
fn podman() -> Command {
    require_tool("podman");
    require_tool("runc");
    static CONF: OnceLock<std::path::PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        fs_err::create_dir_all(scratch_root()).unwrap();
        let path = scratch_root().join("containers-docker-archive.conf");
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
    command.stdin(Stdio::null());
    command
}

/// Removes a name from podman's store when dropped (the image's layers stay shared).
struct LoadedName(String);

impl Drop for LoadedName {
    fn drop(&mut self) {
        let _ = podman().arg("untag").arg(&self.0).output();
    }
}

fn output_text(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

#[test]
fn docker_archive_is_deterministic_and_read_by_containers_image() {
    require_tool("skopeo");
    let scratch = scratch_dir("docker-archive-");
    let first = scratch.path().join("first.tar");
    let second = scratch.path().join("second.tar");
    let digest = build(
        &format!("docker-archive:{}:hello:1.0", first.display()),
        &scratch.path().join("cache-1"),
    );
    // A fresh cache and another file name: the same bytes.
    let again = build(
        &format!("docker-archive:{}:hello:1.0", second.display()),
        &scratch.path().join("cache-2"),
    );
    assert_eq!(digest, again);
    let bytes = fs_err::read(&first).unwrap();
    assert!(
        bytes == fs_err::read(&second).unwrap(),
        "two builds of the same docker-archive differ"
    );
    // Rebuilding over the archive replaces it with the same bytes.
    build(
        &format!("docker-archive:{}:hello:1.0", first.display()),
        &scratch.path().join("cache-1"),
    );
    assert!(fs_err::read(&first).unwrap() == bytes);

    // What Docker's loaders read: manifest.json, repositories, and the OCI layout.
    let (names, files) = archive_contents(&first);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted");
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let item = &manifest.as_array().unwrap()[..];
    assert_eq!(item.len(), 1, "one image: {manifest}");
    assert_eq!(item[0]["RepoTags"], serde_json::json!(["hello:1.0"]));
    let layers: Vec<&str> = item[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer.as_str().unwrap())
        .collect();
    for path in layers
        .iter()
        .copied()
        .chain([item[0]["Config"].as_str().unwrap()])
    {
        assert!(
            names.iter().any(|name| name == path),
            "{path} is not in the archive"
        );
    }
    let repositories: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    let top = layers.last().unwrap().trim_start_matches("blobs/sha256/");
    assert_eq!(repositories, serde_json::json!({"hello": {"1.0": top}}));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/hello:1.0"
    );

    // containers/image reads it through manifest.json: skopeo reports the config's diff_ids
    // (gzip layers are decompressed), one per layer.
    let archive_ref = format!("docker-archive:{}", first.display());
    let inspected = skopeo_inspect(&archive_ref);
    assert_eq!(inspected["Architecture"], "amd64");
    let config: Value = skopeo_config(&archive_ref);
    assert_eq!(inspected["Layers"], config["rootfs"]["diff_ids"]);
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), layers.len());
    assert_eq!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.as_str() == Some("GREETING=hello"))
            .count(),
        1
    );

    // Copying out of the archive verifies each decompressed layer against its diff_id, as
    // `docker load` does; the copy runs.
    let copy = scratch.path().join("copy");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(&archive_ref)
            .arg(format!("oci:{}:copied", copy.display())),
    );
    let printed = podman_run_ok(
        &format!("oci:{}:copied", copy.display()),
        &[
            "python",
            "-c",
            "import yaml, markupsafe, charset_normalizer, flask; print('ok')",
        ],
    );
    assert_eq!(printed.trim(), "ok");
}

#[test]
fn podman_loads_the_archive_and_runs_it() {
    let scratch = scratch_dir("docker-archive-load-");
    let file = scratch.path().join("hello.tar");
    // A tag of this process's own, so parallel runs never untag each other's image.
    let tag = format!("p{}", std::process::id());
    build(
        &format!(
            "docker-archive:{}:localhost/envbuild-hello:{tag}",
            file.display()
        ),
        &scratch.path().join("cache"),
    );
    let name = format!("localhost/envbuild-hello:{tag}");
    let loaded = podman()
        .args(["load", "-i"])
        .arg(&file)
        .output()
        .expect("starting podman load");
    let _cleanup = LoadedName(name.clone());
    assert!(
        loaded.status.success(),
        "podman load failed:\n{}",
        output_text(&loaded)
    );
    assert!(
        output_text(&loaded).contains(&format!("Loaded image: {name}")),
        "podman load did not name the image {name}:\n{}",
        output_text(&loaded)
    );
    let script = import_everything_script();
    let ran = podman()
        .args(["run", "--rm", "--network=none", "--pull=never"])
        .arg(&name)
        .args(["python", "-c", &script])
        .output()
        .expect("starting podman run");
    assert!(
        ran.status.success(),
        "podman run {name} failed:\n{}",
        output_text(&ran)
    );
    assert!(stdout(&ran).starts_with("imported "), "{}", stdout(&ran));
    // The settings the build gave the image survive the load.
    let ran = podman()
        .args(["run", "--rm", "--network=none", "--pull=never"])
        .arg(&name)
        .args([
            "python",
            "-c",
            "import os; print(os.environ['GREETING'], os.getuid(), os.getcwd())",
        ])
        .output()
        .expect("starting podman run");
    assert_eq!(
        stdout(&ran).trim(),
        "hello 65534 /srv",
        "{}",
        output_text(&ran)
    );
}

#[test]
fn docker_archive_refuses_several_platforms_before_building() {
    let scratch = scratch_dir("docker-archive-multi-");
    let file = scratch.path().join("multi.tar");
    let output = envbuild()
        .args(image_args(
            &locked().pylock,
            &format!("docker-archive:{}:hello:1.0", file.display()),
        ))
        .args(["--platform", "linux/amd64,linux/arm64"])
        .arg("--cache-dir")
        .arg(scratch.path().join("cache"))
        .output();
    assert!(!output.status.success());
    let text = stderr(&output);
    for needle in [
        "docker-archive holds one platform",
        "linux/amd64, linux/arm64",
        "--platform",
        "oci-archive:",
    ] {
        assert!(text.contains(needle), "stderr lacks {needle:?}:\n{text}");
    }
    assert!(!file.exists());
    assert!(
        !scratch.path().join("cache").exists(),
        "the output is checked before anything is built"
    );
}
