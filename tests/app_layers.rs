//! The service's own layers on synthetic inputs (`tests/synthetic_support`): `--wheel`
//! (its own layer, its requirements checked against the lock, a lock entry for the
//! project satisfied), `--add` (ignore files, normalized modes, umask, symlinks and
//! special files), `--create-user` (created files, conflicts with the base's accounts),
//! and their config keys giving the digest their flags give. What lands in a layer is
//! read back from the written layout's blobs.

mod common;
mod synthetic_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use synthetic_support::*;

struct Project {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    /// `greet` (requires `shout>=2`) and `shout`.
    wheels: Vec<(String, String, PathBuf)>,
}

impl Project {
    fn new() -> Self {
        let scratch = scratch_dir("app-");
        let root = scratch.path().to_path_buf();
        let wheels = write_wheels(&root.join("wheels"));
        write_base(&root.join("base"), "py311", BaseKind::Python311);
        // The lock holds `shout`; `greet` is the project, given as `--wheel`.
        write_lock(&root.join("pylock.toml"), &wheels[1..]);
        fs_err::create_dir_all(root.join("app/pkg")).unwrap();
        fs_err::write(root.join("app/pkg/main.py"), "print('app')\n").unwrap();
        fs_err::write(root.join("app/data.txt"), "data\n").unwrap();
        Self {
            _scratch: scratch,
            root,
            wheels,
        }
    }

    fn base(&self) -> String {
        format!("oci:{}:py311", self.root.join("base").display())
    }

    fn greet(&self) -> String {
        self.wheels[0].2.display().to_string()
    }

    /// `envbuild image` on the synthetic base into `oci:<root>/out:<tag>`, with `extra`.
    fn image(&self, tag: &str, extra: &[&str]) -> Envbuild {
        envbuild()
            .args([
                "image",
                "--lock",
                &self.root.join("pylock.toml").display().to_string(),
                "--base",
                &self.base(),
                "--output",
                &format!("oci:{}:{tag}", self.root.join("out").display()),
            ])
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1700000000")
    }
}

/// One entry of a layer as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    mode: u32,
    uid: u64,
    gid: u64,
    kind: tar::EntryType,
    bytes: Vec<u8>,
}

/// The manifest of `tag` in `layout`.
fn manifest(layout: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let descriptor = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag}"))
        .clone();
    blob_json(layout, descriptor["digest"].as_str().unwrap())
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&fs_err::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The layer digests of `tag`.
fn layer_digests(layout: &Path, tag: &str) -> Vec<String> {
    manifest(layout, tag)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The entries of layer `digest`, by path.
fn layer_entries(layout: &Path, digest: &str) -> BTreeMap<String, Entry> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let compressed = fs_err::read(layout.join("blobs/sha256").join(hex)).unwrap();
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if header.entry_type() == tar::EntryType::Symlink {
            bytes = entry.link_name_bytes().unwrap().into_owned();
        }
        entries.insert(
            path,
            Entry {
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                kind: header.entry_type(),
                bytes,
            },
        );
    }
    entries
}

fn last_layer(layout: &Path, tag: &str) -> BTreeMap<String, Entry> {
    let digests = layer_digests(layout, tag);
    layer_entries(layout, digests.last().unwrap())
}

#[test]
fn project_wheel_gets_its_own_layer_and_is_checked_against_the_lock() {
    let project = Project::new();
    let greet = project.greet();
    let output = project
        .image("wheel", &["--wheel", &greet, "--json"])
        .success();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let layers = report["layers"].as_array().unwrap();
    let last = layers.last().unwrap();
    assert_eq!(last["kind"], "project", "{report}");
    assert_eq!(last["packages"][0]["name"], "greet");
    assert_eq!(
        last["packages"][0]["sha256"],
        sha256_hex(&fs_err::read(&greet).unwrap())
    );
    let entries = last_layer(&project.root.join("out"), "wheel");
    assert!(
        entries.contains_key("opt/venv/bin/greet"),
        "{:?}",
        entries.keys()
    );
    assert!(entries.contains_key("opt/venv/lib/python3.11/site-packages/greet.py"));

    // A lock with `shout` 1.0: greet's `shout>=2` conflicts, named with its chain.
    let empty_lock = project.root.join("empty/pylock.toml");
    fs_err::create_dir_all(empty_lock.parent().unwrap()).unwrap();
    let old_shout = write_wheel(
        &project.root.join("empty"),
        "shout-1.0-py3-none-any.whl",
        "shout-1.0.dist-info",
        &[
            (
                "shout-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: shout\nVersion: 1.0\n",
            ),
            (
                "shout-1.0.dist-info/WHEEL",
                b"Wheel-Version: 1.0\nGenerator: envbuild-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            ),
        ],
    );
    write_lock(
        &empty_lock,
        &[("shout".to_string(), "1.0".to_string(), old_shout)],
    );
    let output = envbuild()
        .args([
            "image",
            "--lock",
            &empty_lock.display().to_string(),
            "--base",
            &project.base(),
            "--output",
            &format!("oci:{}:x", project.root.join("missing-out").display()),
            "--wheel",
            &greet,
        ])
        .output();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("greet 1.0 requires shout>=2"),
        "{}",
        stderr(&output)
    );
    assert!(!project.root.join("missing-out").exists());

    // A lock entry for the project itself (a source tree) is satisfied by the wheel.
    let lock = project.root.join("pylock.toml");
    let mut text = fs_err::read_to_string(&lock).unwrap();
    text.push_str("\n[[packages]]\nname = \"greet\"\ndirectory = { path = \".\" }\n");
    let with_self = project.root.join("self/pylock.toml");
    fs_err::create_dir_all(with_self.parent().unwrap()).unwrap();
    fs_err::write(
        &with_self,
        text.replace("path = \"wheels/", "path = \"../wheels/"),
    )
    .unwrap();
    let from_self = envbuild()
        .args([
            "image",
            "--lock",
            &with_self.display().to_string(),
            "--base",
            &project.base(),
            "--output",
            &format!("oci:{}:self", project.root.join("out").display()),
            "--wheel",
            &greet,
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .success();
    assert_eq!(
        printed_digest(&from_self),
        report["digest"].as_str().unwrap()
    );
}

#[test]
fn add_copies_a_normalized_tree_whatever_the_umask() {
    let project = Project::new();
    let app = project.root.join("app");
    fs_err::write(app.join("secret.txt"), "s\n").unwrap();
    fs_err::set_permissions(
        app.join("secret.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs_err::write(app.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs_err::set_permissions(app.join("run.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
    fs_err::create_dir_all(app.join("node_modules/x")).unwrap();
    fs_err::write(app.join("node_modules/x/index.js"), "x").unwrap();
    fs_err::create_dir_all(app.join("pkg/__pycache__")).unwrap();
    fs_err::write(app.join("pkg/__pycache__/main.cpython-311.pyc"), "junk").unwrap();
    fs_err::write(app.join(".dockerignore"), "node_modules\n.dockerignore\n").unwrap();
    std::os::unix::fs::symlink("pkg/main.py", app.join("main.py")).unwrap();
    let add = format!("{}:/srv/app", app.display());
    let first = printed_digest(&project.image("a", &["--add", &add]).umask(0o022).success());
    let second = printed_digest(&project.image("b", &["--add", &add]).umask(0o077).success());
    assert_eq!(first, second, "the umask changed the image");
    let entries = last_layer(&project.root.join("out"), "a");
    let paths: Vec<&str> = entries.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "srv/",
            "srv/app/",
            "srv/app/data.txt",
            "srv/app/main.py",
            "srv/app/pkg/",
            "srv/app/pkg/main.py",
            "srv/app/run.sh",
            "srv/app/secret.txt",
        ]
    );
    assert_eq!(entries["srv/app/secret.txt"].mode, 0o644);
    assert_eq!(entries["srv/app/run.sh"].mode, 0o755);
    assert_eq!(entries["srv/app/pkg/"].mode, 0o755);
    assert_eq!(entries["srv/app/main.py"].kind, tar::EntryType::Symlink);
    assert_eq!(entries["srv/app/main.py"].bytes, b"pkg/main.py");
    assert!(
        entries
            .values()
            .all(|entry| entry.uid == 0 && entry.gid == 0)
    );

    // --chown gives the copied tree (not the folders above it) to the service.
    let owned = project
        .image("c", &["--add", &add, "--chown", "1000:1001"])
        .success();
    assert_ne!(printed_digest(&owned), first);
    let entries = last_layer(&project.root.join("out"), "c");
    assert_eq!((entries["srv/"].uid, entries["srv/"].gid), (0, 0));
    assert_eq!(
        (
            entries["srv/app/data.txt"].uid,
            entries["srv/app/data.txt"].gid
        ),
        (1000, 1001)
    );
}

#[test]
fn add_refuses_escaping_links_and_special_files() {
    let project = Project::new();
    let app = project.root.join("app");
    std::os::unix::fs::symlink("../../etc/shadow", app.join("pkg/evil")).unwrap();
    let add = format!("{}:/srv/app", app.display());
    let output = project.image("bad", &["--add", &add]).output();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("pkg/evil"), "{message}");
    assert!(message.contains("points outside"), "{message}");
    assert!(!project.root.join("out").exists(), "nothing is written");

    // Excluded, the link is no problem.
    fs_err::write(app.join(".envbuildignore"), "pkg/evil\n").unwrap();
    project.image("ok", &["--add", &add]).success();

    let fifo = app.join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let output = project.image("fifo", &["--add", &add]).output();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is a fifo"), "{}", stderr(&output));
}

#[test]
fn create_user_writes_accounts_home_and_user() {
    let project = Project::new();
    // The synthetic base has no /etc/passwd: it is created.
    project.image("user", &["--create-user", "app"]).success();
    let layout = project.root.join("out");
    let manifest = manifest(&layout, "user");
    let config = blob_json(&layout, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["config"]["User"], "65532:65532");
    // Base layer, then the user's layer below the venv.
    let digests = layer_digests(&layout, "user");
    let entries = layer_entries(&layout, &digests[1]);
    let passwd = String::from_utf8(entries["etc/passwd"].bytes.clone()).unwrap();
    assert_eq!(
        passwd,
        "root:x:0:0:root:/root:/bin/sh\napp:x:65532:65532::/home/app:/sbin/nologin\n"
    );
    let group = String::from_utf8(entries["etc/group"].bytes.clone()).unwrap();
    assert_eq!(group, "root:x:0:\napp:x:65532:\n");
    assert_eq!(
        (entries["home/app/"].uid, entries["home/app/"].gid),
        (65532, 65532)
    );
    // `--user` wins over the created user.
    project
        .image("user2", &["--create-user", "app", "--user", "nobody"])
        .success();
    let manifest2 = image_config(&layout, "user2");
    assert_eq!(manifest2["config"]["User"], "nobody");

    // A base whose passwd already has uid 1000 (another name): an error naming the line.
    let accounts = project.root.join("accounts");
    fs_err::create_dir_all(&accounts).unwrap();
    fs_err::write(
        accounts.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
    )
    .unwrap();
    fs_err::write(accounts.join("group"), "root:x:0:\nbob:x:1000:\n").unwrap();
    let add = format!("{}:/etc", accounts.display());
    project.image("withbob", &["--add", &add]).success();
    let with_bob = format!("oci:{}:withbob", layout.display());
    let build_on = |user: &str, tag: &str| {
        envbuild()
            .args([
                "image",
                "--lock",
                &project.root.join("pylock.toml").display().to_string(),
                "--base",
                &with_bob,
                "--output",
                &format!("oci:{}:{tag}", project.root.join("out2").display()),
                "--create-user",
                user,
            ])
            .output()
    };
    let output = build_on("app:1000", "clash");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("bob:x:1000:1000"), "{message}");
    assert!(message.contains("/etc/passwd"), "{message}");
    // The same user with the same ids is already there: nothing to add.
    let output = build_on("bob:1000:1000", "same");
    assert!(output.status.success(), "{}", stderr(&output));
    let digests = layer_digests(&project.root.join("out2"), "same");
    let base_layers = layer_digests(&layout, "withbob").len();
    let entries = layer_entries(&project.root.join("out2"), &digests[base_layers]);
    assert_eq!(
        String::from_utf8(entries["etc/passwd"].bytes.clone()).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n"
    );
}

/// The config of `tag`.
fn image_config(layout: &Path, tag: &str) -> Value {
    let manifest = manifest(layout, tag);
    blob_json(layout, manifest["config"]["digest"].as_str().unwrap())
}

#[test]
fn a_code_change_changes_only_the_app_layer() {
    let project = Project::new();
    let greet = project.greet();
    let add = format!("{}:/srv/app", project.root.join("app").display());
    let flags = ["--wheel", &greet, "--add", &add, "--create-user", "app"];
    project.image("one", &flags).success();
    fs_err::write(
        project.root.join("app/pkg/main.py"),
        "print('app, changed')\n",
    )
    .unwrap();
    project.image("two", &flags).success();
    let layout = project.root.join("out");
    let one = layer_digests(&layout, "one");
    let two = layer_digests(&layout, "two");
    assert_eq!(one.len(), two.len());
    let differ: Vec<usize> = (0..one.len()).filter(|&i| one[i] != two[i]).collect();
    assert_eq!(differ, [one.len() - 1], "only the top (app) layer changes");
}

#[test]
fn app_keys_build_the_image_the_flags_build() {
    let project = Project::new();
    let greet = project.greet();
    let add = format!("{}:/srv/app", project.root.join("app").display());
    let from_flags = printed_digest(
        &project
            .image(
                "flags",
                &[
                    "--wheel",
                    &greet,
                    "--add",
                    &add,
                    "--chown",
                    "10:20",
                    "--create-user",
                    "svc:4000",
                ],
            )
            .success(),
    );
    fs_err::write(
        project.root.join("envbuild.toml"),
        format!(
            "lock = \"pylock.toml\"\nbase = \"oci:base:py311\"\noutput = \"oci:out:keys\"\nwheels = [\"wheels/{}\"]\nadd = [\"app:/srv/app\"]\nchown = \"10:20\"\ncreate-user = \"svc:4000\"\n",
            Path::new(&greet).file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    let from_keys = printed_digest(
        &envbuild()
            .arg("image")
            .current_dir(&project.root)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .success(),
    );
    assert_eq!(from_keys, from_flags);
}
