//! End to end: lock examples/hello-service with uv against a local index of real wheels, build
//! it with `envbuild image` on a Python base made from Debian packages, then check the result
//! with the real tools: skopeo reads it, umoci unpacks it, podman runs it, and the `--json`
//! report matches its schema, the lockfile and the image.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// The example, built once for this test binary.
fn built() -> &'static BuiltImage {
    static BUILT: OnceLock<Result<BuiltImage, String>> = OnceLock::new();
    once(&BUILT, build_example)
}

/// The example unpacked with umoci, once.
fn unpacked() -> &'static Path {
    static ROOTFS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&ROOTFS, || {
        let built = built();
        umoci_unpack(&built.layout, &built.tag, &built.dir.path().join("bundle"))
    })
    .as_path()
}

fn base_layer_count() -> usize {
    skopeo_inspect(&fixtures().base_ref)["Layers"]
        .as_array()
        .unwrap()
        .len()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn skopeo_reads_the_layout_as_a_linux_amd64_image() {
    let built = built();
    let inspect = skopeo_inspect(&built.reference);
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Digest"], built.digest.as_str());

    let layers = strings(&inspect["Layers"]);
    let report_layers = built.report["layers"].as_array().unwrap();
    let added = report_layers
        .iter()
        .filter(|layer| layer["kind"] != "base")
        .count();
    let with_packages = report_layers
        .iter()
        .filter(|layer| !layer["packages"].as_array().unwrap().is_empty())
        .count();
    assert!(
        with_packages >= 1,
        "no layer holds a package: {}",
        built.report
    );
    assert_eq!(
        layers.len(),
        base_layer_count() + added,
        "layers = base layers + added layers"
    );
    let reported: Vec<&str> = report_layers
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        reported, layers,
        "the report lists the manifest's layers in order"
    );

    // The base's layers come first, unchanged.
    let base = skopeo_inspect(&fixtures().base_ref);
    let base_layers = strings(&base["Layers"]);
    assert_eq!(&layers[..base_layers.len()], &base_layers[..]);
    let config = skopeo_config(&built.reference);
    let base_config = skopeo_config(&fixtures().base_ref);
    let diff_ids = strings(&config["rootfs"]["diff_ids"]);
    let base_diff_ids = strings(&base_config["rootfs"]["diff_ids"]);
    assert_eq!(&diff_ids[..base_diff_ids.len()], &base_diff_ids[..]);
    let reported_diff_ids: Vec<&str> = report_layers
        .iter()
        .map(|layer| layer["diff_id"].as_str().unwrap())
        .collect();
    assert_eq!(reported_diff_ids, diff_ids);

    // The manifest's bytes hash to the digest, and its layer sizes match the report.
    let manifest = skopeo_raw_manifest(&built.reference);
    assert_eq!(format!("sha256:{}", sha256_hex(&manifest)), built.digest);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    for (layer, reported) in manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(report_layers)
    {
        assert_eq!(layer["digest"], reported["digest"]);
        assert_eq!(layer["size"], reported["size"]);
    }
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.description"], "envbuild test image",
        "--annotation lands in the manifest"
    );

    // The layout's index names the image by its tag.
    let index: Value =
        serde_json::from_slice(&fs_err::read(built.layout.join("index.json")).unwrap()).unwrap();
    let tagged: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "hello")
        .collect();
    assert_eq!(tagged.len(), 1, "index.json: {index}");
    assert_eq!(tagged[0]["digest"], built.digest.as_str());
}

#[test]
fn image_config_carries_the_settings() {
    let built = built();
    let config = skopeo_config(&built.reference);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    let settings = &config["config"];
    assert_eq!(strings(&settings["Cmd"]), ["flask", "--version"]);
    assert_eq!(settings["WorkingDir"], "/srv");
    assert_eq!(settings["User"], "65534:65534");
    assert_eq!(
        settings["Labels"]["org.opencontainers.image.title"],
        "hello-service"
    );
    let env = strings(&settings["Env"]);
    assert!(env.contains(&"GREETING=hello".to_owned()), "Env: {env:?}");
    assert!(
        env.contains(&"VIRTUAL_ENV=/opt/venv".to_owned()),
        "Env: {env:?}"
    );
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or_else(|| panic!("no PATH in {env:?}"));
    assert!(
        path.starts_with("/opt/venv/bin:") && path.contains("/usr/bin"),
        "the venv comes first on the base's PATH: {path}"
    );
    // One history entry per layer that is not empty.
    let history = config["history"].as_array().unwrap();
    let non_empty = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(non_empty, strings(&config["rootfs"]["diff_ids"]).len());
}

#[test]
fn umoci_unpacks_a_complete_venv() {
    let rootfs = unpacked();
    let venv = rootfs.join("opt/venv");

    let cfg = fs_err::read_to_string(venv.join("pyvenv.cfg")).unwrap();
    let cfg: BTreeMap<&str, &str> = cfg
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    assert!(cfg.contains_key("home"), "pyvenv.cfg: {cfg:?}");
    assert_eq!(cfg.get("include-system-site-packages"), Some(&"false"));
    let version = cfg
        .get("version")
        .or_else(|| cfg.get("version_info"))
        .unwrap_or_else(|| panic!("pyvenv.cfg has no version: {cfg:?}"));
    assert!(version.starts_with("3.11"), "pyvenv.cfg version {version}");

    // bin/python leads, inside the image, to the base's interpreter.
    let python = venv.join("bin/python");
    let target = resolve_in_rootfs(rootfs, Path::new("/opt/venv/bin/python"));
    assert!(
        target.is_file(),
        "{} resolves to {}, which is not a file",
        python.display(),
        target.display()
    );
    assert!(
        target.starts_with(rootfs.join("usr")),
        "{}",
        target.display()
    );

    for script in ["flask", "normalizer", "idna"] {
        let path = venv.join("bin").join(script);
        let meta = fs_err::metadata(&path).unwrap();
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{script} is not executable"
        );
        let text = fs_err::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(first, "#!/opt/venv/bin/python", "shebang of bin/{script}");
    }

    // Every locked package has its dist-info, with the locked version.
    let site = venv.join("lib/python3.11/site-packages");
    for package in read_pylock(&built().locked.pylock) {
        let dist_info = fs_err::read_dir(&site)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|name| {
                name.ends_with(".dist-info")
                    && normalize(name.split('-').next().unwrap()) == package.name
            })
            .unwrap_or_else(|| panic!("no dist-info for {}", package.name));
        assert_eq!(
            dist_info,
            format!(
                "{}-{}.dist-info",
                dist_info.split('-').next().unwrap(),
                package.version
            )
        );
        for file in ["METADATA", "RECORD", "INSTALLER"] {
            assert!(
                site.join(&dist_info).join(file).is_file(),
                "{dist_info}/{file} is missing"
            );
        }
    }
}

/// Follows symlinks of `path` as the image would, with `rootfs` as `/`.
fn resolve_in_rootfs(rootfs: &Path, path: &Path) -> PathBuf {
    let mut current = PathBuf::from("/");
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_owned()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            current.pop();
            continue;
        }
        if part == "." {
            continue;
        }
        let next = current.join(&part);
        let on_disk = rootfs.join(next.strip_prefix("/").unwrap());
        match fs_err::symlink_metadata(&on_disk) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                assert!(hops < 40, "symlink loop at {}", next.display());
                let link = fs_err::read_link(&on_disk).unwrap();
                if link.is_absolute() {
                    current = PathBuf::from("/");
                }
                for c in link.components().rev() {
                    match c {
                        std::path::Component::Normal(p) => pending.push(p.to_owned()),
                        std::path::Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => current = next,
        }
    }
    rootfs.join(current.strip_prefix("/").unwrap())
}

fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

#[test]
fn podman_imports_every_module_as_the_image_user() {
    let built = built();
    let mut script = import_everything_script();
    script.push_str(concat!(
        "import json, os, sys, importlib.metadata\n",
        "import backports.tarfile, yaml._yaml, markupsafe._speedups, charset_normalizer.md\n",
        "import yaml, markupsafe\n",
        "print(json.dumps({\n",
        "  'prefix': sys.prefix, 'base_prefix': sys.base_prefix,\n",
        "  'executable': sys.executable, 'virtual_env': os.environ.get('VIRTUAL_ENV'),\n",
        "  'uid': os.getuid(), 'cwd': os.getcwd(), 'version': sys.version.split()[0],\n",
        "  'libyaml': yaml.__with_libyaml__,\n",
        "  'speedups': markupsafe._escape_inner.__module__,\n",
        "  'md': charset_normalizer.md.__file__,\n",
        "  'dists': {d.metadata['Name']: d.version for d in importlib.metadata.distributions()},\n",
        "}))\n",
    ));
    let out = podman_run_ok(&built.reference, &["python", "-c", &script]);
    let mut lines = out.lines();
    let imported = lines.next().unwrap_or_default();
    assert!(imported.starts_with("imported "), "{out}");
    let facts: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(facts["prefix"], "/opt/venv");
    assert_ne!(facts["base_prefix"], "/opt/venv");
    assert_eq!(facts["virtual_env"], "/opt/venv");
    assert!(
        facts["executable"]
            .as_str()
            .unwrap()
            .starts_with("/opt/venv/bin/python"),
        "{facts}"
    );
    assert_eq!(facts["uid"], 65534, "--user applies");
    assert_eq!(facts["cwd"], "/srv", "--workdir applies");
    assert!(facts["version"].as_str().unwrap().starts_with("3.11."));
    assert_eq!(facts["libyaml"], true, "PyYAML's C extension loads");
    assert_eq!(facts["speedups"], "markupsafe._speedups");
    assert!(facts["md"].as_str().unwrap().ends_with(".so"), "{facts}");

    // importlib.metadata sees exactly the locked distributions, at the locked versions.
    let dists: BTreeMap<String, String> = facts["dists"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, version)| (normalize(name), version.as_str().unwrap().to_owned()))
        .collect();
    let locked: BTreeMap<String, String> = read_pylock(&built.locked.pylock)
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect();
    assert_eq!(dists, locked);
}

#[test]
fn console_scripts_and_the_default_command_run() {
    let built = built();
    let flask = podman_run_ok(&built.reference, &["flask", "--version"]);
    assert!(
        flask.contains("Flask 3.1.3") && flask.contains("Werkzeug 3.1.9"),
        "{flask}"
    );
    let normalizer = podman_run_ok(&built.reference, &["normalizer", "--version"]);
    assert!(normalizer.contains("3.5.3"), "{normalizer}");
    let idna = podman_run_ok(&built.reference, &["idna", "--help"]);
    assert!(!idna.is_empty());
    // No arguments: the image's CMD (`flask --version`).
    let default = podman_run_ok(&built.reference, &[]);
    assert!(default.contains("Flask 3.1.3"), "{default}");
    // The image's environment.
    let env = podman_run_ok(
        &built.reference,
        &[
            "python",
            "-c",
            "import os; print(os.environ['GREETING'], os.environ['VIRTUAL_ENV'])",
        ],
    );
    assert_eq!(env.trim(), "hello /opt/venv");
}

#[test]
fn the_example_app_runs_from_a_mount() {
    let built = built();
    let app = hello_service().join("app.py");
    let mount = format!("{}:/app/app.py:ro", app.display());
    let out = podman_run_ok_with(
        &built.reference,
        &["-v", &mount],
        &["python", "/app/app.py"],
    );
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["reply"]["message"], "Hello, envbuild!");
    assert_eq!(report["signals"], serde_json::json!(["envbuild"]));
    assert_eq!(report["prefix"], "/opt/venv");
    assert_eq!(report["libyaml"], true);
    assert_eq!(report["markupsafe_speedups"], true);
    assert_eq!(report["charset"], "utf_8");
}

#[test]
fn json_report_matches_its_schema_the_lockfile_and_the_image() {
    let built = built();
    let report = &built.report;
    let schema_path = repo_root().join("schemas/report.schema.json");
    let schema: Value = serde_json::from_slice(&fs_err::read(&schema_path).unwrap())
        .expect("schemas/report.schema.json is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema: {errors:#?}\n{report:#}"
    );

    assert!(is_digest(report["digest"].as_str().unwrap()));
    assert_eq!(
        report["base"]["digest"],
        skopeo_inspect(&fixtures().base_ref)["Digest"],
        "the report names the base by its manifest digest"
    );
    assert_eq!(report["base"]["reference"], fixtures().base_ref.as_str());
    assert_eq!(
        report["lock"],
        built.locked.pylock.to_string_lossy().as_ref(),
        "the lockfile, as given"
    );
    assert_eq!(report["platform"], "linux/amd64");
    assert!(
        report["python"].as_str().unwrap().starts_with("3.11"),
        "python: {}",
        report["python"]
    );

    // Every locked package exactly once, with the locked wheel and hash.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let locked: BTreeMap<String, LockedWheel> = read_pylock(&built.locked.pylock)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    assert!(locked.len() >= 14);
    let layers = report["layers"].as_array().unwrap();
    let base_layers = base_layer_count();
    for (position, layer) in layers.iter().enumerate() {
        assert!(is_digest(layer["digest"].as_str().unwrap()), "{layer}");
        assert!(is_digest(layer["diff_id"].as_str().unwrap()), "{layer}");
        assert!(layer["size"].as_u64().unwrap() > 0, "{layer}");
        let packages = layer["packages"].as_array().unwrap();
        if position < base_layers {
            assert_eq!(layer["kind"], "base", "layer {position} is the base's");
            assert!(
                packages.is_empty(),
                "base layer {position} lists packages: {layer}"
            );
            continue;
        }
        assert_ne!(layer["kind"], "base", "layer {position} is not the base's");
        if layer["kind"] == "venv" {
            assert!(
                packages.is_empty(),
                "the venv layer lists packages: {layer}"
            );
            continue;
        }
        assert!(
            !packages.is_empty(),
            "added layer {position} lists no package: {layer}"
        );
        for package in packages {
            let name = package["name"].as_str().unwrap();
            *seen.entry(name.to_owned()).or_default() += 1;
            let expected = locked
                .get(name)
                .unwrap_or_else(|| panic!("the report lists {name}, which is not locked"));
            assert_eq!(package["version"], expected.version.as_str(), "{name}");
            assert_eq!(package["wheel"], expected.wheel.as_str(), "{name}");
            assert_eq!(package["sha256"], expected.sha256.as_str(), "{name}");
        }
    }
    let once: BTreeSet<&String> = seen
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        once,
        locked.keys().collect::<BTreeSet<_>>(),
        "every locked package exactly once: {seen:?}"
    );
}

#[test]
fn plain_output_is_the_digest_and_oci_archive_gives_the_same_image() {
    let built = built();
    let dir = scratch_dir("archive-");
    let archive = dir.path().join("hello.tar");
    let reference = format!("oci-archive:{}:hello", archive.display());
    let output = envbuild()
        .args(image_args(&built.locked.pylock, &reference))
        .arg("--cache-dir")
        .arg(&built.cache)
        .success();
    let digest = printed_digest(&output);
    assert_eq!(digest, built.digest, "the same inputs give the same image");
    assert!(archive.is_file());
    let inspect = skopeo_inspect(&reference);
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    let out = podman_run_ok(
        &reference,
        &["python", "-c", "import flask, yaml, requests; print('ok')"],
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn fetch_fills_the_cache_for_an_offline_build() {
    let built = built();
    let index = IndexServer::start(&fixtures().wheels);
    // A second lock of the same project: other URLs (another port), the same wheels.
    let locked = lock_example(&index.url, &hello_service());
    let dir = scratch_dir("offline-");
    let cache = dir.path().join("cache");
    envbuild()
        .args(["fetch", "--lock"])
        .arg(&locked.pylock)
        .arg("--base")
        .arg(&fixtures().base_ref)
        .arg("--cache-dir")
        .arg(&cache)
        .success();
    drop(index);

    let reference = format!("oci:{}:hello", dir.path().join("layout").display());
    let output = envbuild()
        .args(image_args(&locked.pylock, &reference))
        .arg("--offline")
        .env("ENVBUILD_CACHE_DIR", &cache)
        .success();
    let digest = printed_digest(&output);
    assert_eq!(
        digest, built.digest,
        "the image depends on the wheels, not on where they were downloaded from"
    );
    assert_eq!(skopeo_inspect(&reference)["Digest"], digest.as_str());
}

#[test]
fn offline_build_with_an_empty_cache_fails_and_writes_nothing() {
    let built = built();
    let dir = scratch_dir("empty-");
    let layout = dir.path().join("layout");
    let reference = format!("oci:{}:hello", layout.display());
    let output = envbuild()
        .args(image_args(&built.locked.pylock, &reference))
        .arg("--offline")
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output();
    assert!(
        !output.status.success(),
        "an offline build needs cached wheels"
    );
    assert!(!stderr(&output).trim().is_empty(), "the error is on stderr");
    assert!(stdout(&output).trim().is_empty(), "no digest on failure");
    assert!(
        !layout.join("index.json").exists(),
        "a failed build leaves no output image"
    );
}

#[test]
fn a_missing_lockfile_is_an_error_that_names_it() {
    let dir = scratch_dir("missing-");
    let lock = dir.path().join("no-such-pylock.toml");
    let reference = format!("oci:{}:x", dir.path().join("layout").display());
    let output = envbuild().args(image_args(&lock, &reference)).output();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no-such-pylock.toml"),
        "stderr: {}",
        stderr(&output)
    );
    assert!(stdout(&output).trim().is_empty());
}
