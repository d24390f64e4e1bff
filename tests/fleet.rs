//! A fleet in one run, with real parts: three services locked by uv against a local index
//! on 127.0.0.1 (two agree on `fleetlib` 2.0, one pins 1.0), each with its own project
//! wheel (`--wheel`), a data folder (`--add`) and a non-root user (`--create-user`),
//! built by one `envbuild image --all` on the Debian-built Python base and run by podman:
//! each runs as its uid, imports its app and runs its console script, reads its data and
//! cannot write its venv or its data. Shared layers are stored once in the shared layout,
//! and the report's bytes match the blobs on disk. `envbuild drift` finds the split,
//! passes after an `allow`, and a `deny` fails the fleet build.

mod common;
mod synthetic_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A pure-Python wheel of `name` `version` with module `module` and `extra` members.
fn wheel(dir: &Path, name: &str, version: &str, module: &str, requires: &[&str]) -> PathBuf {
    let dist_info = format!("{name}-{version}.dist-info");
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for requirement in requires {
        metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    let wheel_file =
        "Wheel-Version: 1.0\nGenerator: envbuild-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let entry_points = format!(
        "[console_scripts]\n{}-run = {name}:main\n",
        name.replace('_', "-")
    );
    let members: Vec<(String, Vec<u8>)> = vec![
        (format!("{name}.py"), module.as_bytes().to_vec()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (format!("{dist_info}/WHEEL"), wheel_file.as_bytes().to_vec()),
        (
            format!("{dist_info}/entry_points.txt"),
            entry_points.into_bytes(),
        ),
    ];
    let borrowed: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    synthetic_support::write_wheel(
        dir,
        &format!("{name}-{version}-py3-none-any.whl"),
        &dist_info,
        &borrowed,
    )
}

struct Fleet {
    _scratch: tempfile::TempDir,
    root: PathBuf,
    _index: IndexServer,
}

/// Services `a` and `b` lock fleetlib 2.0, `c` pins 1.0; all lock requests (and its
/// dependencies) from the fixture wheels.
fn fleet() -> Fleet {
    let fixtures = fixtures();
    let scratch = scratch_dir("fleet-");
    let root = scratch.path().to_path_buf();
    let index_dir = root.join("index");
    fs_err::create_dir_all(&index_dir).unwrap();
    for wheel in fixture_wheels() {
        std::os::unix::fs::symlink(&wheel, index_dir.join(wheel.file_name().unwrap())).unwrap();
    }
    for version in ["1.0", "2.0"] {
        wheel(
            &index_dir,
            "fleetlib",
            version,
            &format!("VERSION = '{version}'\ndef main():\n    print(VERSION)\n"),
            &[],
        );
    }
    let index = IndexServer::start(&index_dir);
    let dist = root.join("dist");
    fs_err::create_dir_all(&dist).unwrap();
    let mut config = format!(
        "base = \"{}\"\ncreate-user = \"svc:10001\"\n\n",
        fixtures.base_ref
    );
    for (service, fleetlib) in [("a", "2.0"), ("b", "2.0"), ("c", "1.0")] {
        let folder = root.join(service);
        fs_err::create_dir_all(folder.join("data")).unwrap();
        fs_err::write(
            folder.join("data/message.txt"),
            format!("data of {service}\n"),
        )
        .unwrap();
        fs_err::write(
            folder.join("pyproject.toml"),
            format!(
                "[project]\nname = \"svc-{service}\"\nversion = \"0.1\"\nrequires-python = \">=3.11\"\ndependencies = [\"fleetlib=={fleetlib}\", \"requests==2.34.2\"]\n\n[tool.uv]\npackage = false\nenvironments = [\"sys_platform == 'linux' and platform_machine == 'x86_64'\"]\n"
            ),
        )
        .unwrap();
        let output = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/lock-example"))
            .arg(&index.url)
            .arg(&folder)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let module = format!(
            "import fleetlib, requests\n\ndef main():\n    print('svc_{service}', fleetlib.VERSION, requests.__version__)\n"
        );
        wheel(
            &dist,
            &format!("svc_{service}"),
            "0.1",
            &module,
            &["fleetlib", "requests>=2"],
        );
        config.push_str(&format!(
            "[services.{service}]\nlock = \"{service}/pylock.toml\"\nwheels = [\"dist/svc_{service}-0.1-py3-none-any.whl\"]\nadd = [\"{service}/data:/srv/data\"]\ncmd = [\"svc-{service}-run\"]\noutput = \"oci:out:{service}\"\n\n"
        ));
    }
    fs_err::write(root.join("envbuild.toml"), config).unwrap();
    Fleet {
        _scratch: scratch,
        root,
        _index: index,
    }
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&fs_err::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

#[test]
fn one_run_builds_the_fleet_sharing_layers_as_non_root_users() {
    let fleet = fleet();
    let root = &fleet.root;

    // Drift: the split is found, with the services on each side.
    let output = envbuild()
        .args(["drift", "--json"])
        .current_dir(root)
        .output();
    assert!(!output.status.success(), "the split is a violation");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["versions"]["fleetlib"],
        serde_json::json!({"1.0": ["c"], "2.0": ["a", "b"]}),
        "{report}"
    );
    assert_eq!(
        report["versions"].as_object().unwrap().len(),
        1,
        "only fleetlib is split: {report}"
    );
    assert!(stderr(&output).contains("`fleetlib` must be locked at one version"));
    // `image --all` checks the same policy first and builds nothing.
    let output = envbuild()
        .args(["image", "--all"])
        .current_dir(root)
        .output();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("nothing was built"),
        "{}",
        stderr(&output)
    );
    assert!(!root.join("out").exists());

    // A deny that service c breaks.
    let config = fs_err::read_to_string(root.join("envbuild.toml")).unwrap();
    let allowed = config.replacen(
        "\n\n",
        "\n\n[drift]\nallow = [{ name = \"fleetlib\", services = [\"c\"] }]\n\n",
        1,
    );
    fs_err::write(
        root.join("envbuild.toml"),
        allowed.replacen("[drift]\n", "[drift]\ndeny = [\"fleetlib<2\"]\n", 1),
    )
    .unwrap();
    let output = envbuild()
        .args(["image", "--all"])
        .current_dir(root)
        .output();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("service `c` locks `fleetlib` 1.0"),
        "{}",
        stderr(&output)
    );
    fs_err::write(root.join("envbuild.toml"), &allowed).unwrap();
    envbuild().arg("drift").current_dir(root).success();

    // The fleet in one run.
    let refs = root.join("refs.txt");
    let output = envbuild()
        .args(["image", "--all", "--json", "--image-refs"])
        .arg(&refs)
        .current_dir(root)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .success();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let services = report["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    let layout = root.join("out");
    let lines: Vec<String> = fs_err::read_to_string(&refs)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3);
    for service in services {
        let name = service["name"].as_str().unwrap();
        let digest = service["digest"].as_str().unwrap();
        assert!(
            lines.contains(&format!("oci:{}:{name}@{digest}", layout.display())),
            "{lines:?}"
        );
    }

    // Every layer blob on disk once; the report's bytes are what is there.
    let index: Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let mut layers: BTreeMap<String, u64> = BTreeMap::new();
    let mut separate = 0;
    let mut referenced = BTreeSet::new();
    for entry in index["manifests"].as_array().unwrap() {
        let manifest_digest = entry["digest"].as_str().unwrap();
        referenced.insert(manifest_digest.to_string());
        let manifest = blob_json(&layout, manifest_digest);
        referenced.insert(manifest["config"]["digest"].as_str().unwrap().to_string());
        for layer in manifest["layers"].as_array().unwrap() {
            let digest = layer["digest"].as_str().unwrap().to_string();
            let size = layer["size"].as_u64().unwrap();
            separate += size;
            referenced.insert(digest.clone());
            layers.insert(digest, size);
        }
    }
    let on_disk: BTreeSet<String> = fs_err::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|entry| format!("sha256:{}", entry.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(on_disk, referenced, "each blob stored once, nothing else");
    let stored: u64 = layers
        .keys()
        .map(|digest| {
            fs_err::metadata(layout.join("blobs/sha256").join(&digest[7..]))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(report["bytes_stored"], stored);
    assert_eq!(report["bytes_separate"], separate);
    assert_eq!(report["bytes_saved"], separate - stored);
    assert!(separate - stored > 0, "the services share layers");
    assert_eq!(report["blobs_stored"], layers.len());

    // Each service runs as its user, with its code, its data and a read-only venv.
    for (service, fleetlib) in [("a", "2.0"), ("b", "2.0"), ("c", "1.0")] {
        let image = format!("oci:{}:{service}", layout.display());
        let out = podman_run_ok(&image, &[]);
        assert_eq!(out.trim(), format!("svc_{service} {fleetlib} 2.34.2"));
        let script = format!(
            "import os, svc_{service}\n\
             print(os.getuid())\n\
             print(open('/srv/data/message.txt').read().strip())\n\
             for path in ('/opt/venv/lib/hack', '/srv/data/hack', '/opt/venv/bin/svc-{service}-run'):\n\
             \x20   try:\n\
             \x20       open(path, 'a').close()\n\
             \x20       print('wrote', path)\n\
             \x20   except PermissionError:\n\
             \x20       print('denied')\n"
        );
        let out = podman_run_ok(&image, &["/opt/venv/bin/python", "-c", &script]);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "10001",
                &format!("data of {service}"),
                "denied",
                "denied",
                "denied"
            ]
        );
    }
}
