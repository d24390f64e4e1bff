//! The config file (`envbuild.toml`, `[tool.envbuild]` in `pyproject.toml`): every image
//! flag has a key, a build from keys gives the digest the same flags give, flags win over
//! keys, relative paths are relative to the file, and bad files are errors naming
//! `file:line:column`. Built on the synthetic inputs of `tests/synthetic_support`.

mod common;
mod synthetic_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use synthetic_support::*;

struct Project {
    _scratch: tempfile::TempDir,
    root: PathBuf,
}

/// A project folder with wheels, a lockfile and a base image, all under `root`.
fn project() -> Project {
    let scratch = scratch_dir("config-");
    let root = scratch.path().to_path_buf();
    let wheels = write_wheels(&root.join("wheels"));
    fs_err::create_dir_all(root.join("deploy")).unwrap();
    write_lock(&root.join("deploy/pylock.toml"), &wheels);
    write_base(&root.join("images/base"), "py311", BaseKind::Python311);
    Project {
        _scratch: scratch,
        root,
    }
}

/// The image settings every build here uses, as flags.
fn flags(root: &Path, output: &str) -> Vec<String> {
    [
        "--lock",
        &root.join("deploy/pylock.toml").display().to_string(),
        "--base",
        &format!("oci:{}:py311", root.join("images/base").display()),
        "--output",
        output,
        "--base-name",
        "registry.example/python:3.11",
        "--prefix",
        "/srv/venv",
        "--entrypoint",
        "[\"/srv/venv/bin/python\", \"-m\"]",
        "--cmd",
        "greet",
        "--env",
        "MODE=prod",
        "--env",
        "LEVEL=3",
        "--workdir",
        "/srv",
        "--user",
        "65534:65534",
        "--label",
        "org.opencontainers.image.title=greet",
        "--annotation",
        "org.opencontainers.image.description=config test",
        "--max-layers",
        "40",
        "--python",
        "3.11",
        "--glibc",
        "2.36",
        "--platform",
        "linux/amd64",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// The same settings as `envbuild.toml` keys, with paths relative to `deploy/`.
const CONFIG: &str = r#"
lock = "pylock.toml"
base = "oci:../images/base:py311"
output = "oci:../out-config:app"
base-name = "registry.example/python:3.11"
prefix = "/srv/venv"
entrypoint = ["/srv/venv/bin/python", "-m"]
cmd = "greet"
env = { MODE = "prod", LEVEL = "3" }
workdir = "/srv"
user = "65534:65534"
labels = { "org.opencontainers.image.title" = "greet" }
annotations = { "org.opencontainers.image.description" = "config test" }
max-layers = 40
python = "3.11"
glibc = "2.36"
platforms = ["linux/amd64"]
"#;

fn digest_of(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", stderr(output));
    printed_digest(output)
}

#[test]
fn keys_build_the_image_the_flags_build() {
    let project = project();
    let root = &project.root;
    let from_flags = digest_of(
        &envbuild()
            .arg("image")
            .args(flags(
                root,
                &format!("oci:{}:app", root.join("out-flags").display()),
            ))
            .arg("--no-config")
            .output(),
    );
    fs_err::write(root.join("deploy/envbuild.toml"), CONFIG).unwrap();
    // No flags at all, from a folder below the config's.
    let below = root.join("deploy/src/app");
    fs_err::create_dir_all(&below).unwrap();
    let from_keys = digest_of(&envbuild().arg("image").current_dir(&below).output());
    assert_eq!(from_keys, from_flags);
    assert!(root.join("out-config/index.json").is_file());

    // The same table in pyproject.toml.
    fs_err::remove_file(root.join("deploy/envbuild.toml")).unwrap();
    fs_err::write(
        root.join("deploy/pyproject.toml"),
        format!("[project]\nname = \"greet-service\"\n\n[tool.envbuild]{CONFIG}"),
    )
    .unwrap();
    let from_pyproject = digest_of(&envbuild().arg("image").current_dir(&below).output());
    assert_eq!(from_pyproject, from_flags);

    // A flag wins over its key; maps merge per key.
    let overridden = digest_of(
        &envbuild()
            .args(["image", "--cmd", "shout", "--env", "LEVEL=4"])
            .args([
                "--output",
                &format!("oci:{}:app", root.join("out-over").display()),
            ])
            .current_dir(&below)
            .output(),
    );
    let mut expected_flags = flags(
        root,
        &format!("oci:{}:app", root.join("out-expected").display()),
    );
    let position = expected_flags
        .iter()
        .position(|flag| flag == "greet")
        .unwrap();
    expected_flags[position] = "shout".to_string();
    let position = expected_flags
        .iter()
        .position(|flag| flag == "LEVEL=3")
        .unwrap();
    expected_flags[position] = "LEVEL=4".to_string();
    let expected = digest_of(
        &envbuild()
            .arg("image")
            .args(expected_flags)
            .arg("--no-config")
            .output(),
    );
    assert_eq!(overridden, expected);

    // --print-config shows each value and where it came from.
    let shown = envbuild()
        .args(["image", "--print-config", "--cmd", "shout"])
        .current_dir(&below)
        .success();
    let text = stdout(&shown);
    let pyproject = root.join("deploy/pyproject.toml").display().to_string();
    assert!(text.contains("cmd = [\"shout\"]  # flag"), "{text}");
    assert!(
        text.contains(&format!("max-layers = 40  # {pyproject}:")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "lock = \"{}\"",
            root.join("deploy/pylock.toml").display()
        )),
        "relative paths are shown resolved against the file's folder:\n{text}"
    );
}

#[test]
fn every_image_flag_has_a_key() {
    let help = stdout(&envbuild().args(["image", "--help"]).success());
    let flags: BTreeSet<String> = help
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("--"))
        .map(|flag| {
            flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .filter(|flag| !flag.is_empty())
        .collect();
    let schema: Value = serde_json::from_slice(
        &fs_err::read(repo_root().join("schemas/config.schema.json")).unwrap(),
    )
    .unwrap();
    let keys: BTreeSet<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    // Flags about this run rather than the image, and repeatable flags whose key is plural.
    let not_settings = [
        "help",
        "json",
        "print-config",
        "config",
        "no-config",
        "version",
        // Which services of the config to build: a choice of the run, not a setting.
        "all",
        "service",
    ];
    let plural = [
        ("platform", "platforms"),
        ("group", "groups"),
        ("label", "labels"),
        ("annotation", "annotations"),
        ("extra-index-url", "extra-index-urls"),
        ("insecure-registry", "insecure-registries"),
        ("no-build-package", "no-build-packages"),
        ("wheel", "wheels"),
    ];
    let missing: Vec<&String> = flags
        .iter()
        .filter(|flag| !not_settings.contains(&flag.as_str()))
        .filter(|flag| {
            let key = plural
                .iter()
                .find(|(singular, _)| singular == flag)
                .map_or(flag.as_str(), |(_, key)| key);
            !keys.contains(key)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "image flags without a config key: {missing:?}"
    );
    assert!(flags.len() > 30, "the help text was not read: {flags:?}");
}

#[test]
fn bad_config_files_name_file_line_and_column() {
    let project = project();
    let deploy = project.root.join("deploy");
    let config = deploy.join("envbuild.toml");
    let shown = config.display().to_string();
    let cases = [
        (
            "lock = \"pylock.toml\"\nbase-nmae = \"x\"\n",
            format!("`{shown}:2:1`: unknown key `base-nmae`; did you mean `base-name`?"),
        ),
        (
            "lock = \"pylock.toml\"\nmax-layers = \"forty\"\n",
            format!("`{shown}:2:14`"),
        ),
        (
            "lock = \"missing/pylock.toml\"\nbase = \"oci:../images/base:py311\"\noutput = \"oci:../out:x\"\n",
            deploy.join("missing/pylock.toml").display().to_string(),
        ),
    ];
    for (text, expected) in cases {
        fs_err::write(&config, text).unwrap();
        let output = envbuild().arg("image").current_dir(&deploy).output();
        assert!(!output.status.success(), "{text}");
        assert!(
            stderr(&output).contains(&expected),
            "{text}: {}",
            stderr(&output)
        );
    }
    fs_err::write(&config, "lock = \"pylock.toml\"\n").unwrap();
    fs_err::write(
        deploy.join("pyproject.toml"),
        "[tool.envbuild]\nlock = \"pylock.toml\"\n",
    )
    .unwrap();
    let output = envbuild().arg("image").current_dir(&deploy).output();
    assert!(
        stderr(&output).contains("configure envbuild; keep one of them"),
        "{}",
        stderr(&output)
    );
    assert!(!project.root.join("out").exists());
}

#[test]
fn example_configs_validate_against_the_schema() {
    let schema: Value = serde_json::from_slice(
        &fs_err::read(repo_root().join("schemas/config.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut configs: Vec<PathBuf> = fs_err::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("envbuild.toml"))
        .filter(|path| path.is_file())
        .collect();
    let test_config =
        std::env::temp_dir().join(format!("envbuild-config-{}.toml", std::process::id()));
    fs_err::write(&test_config, CONFIG).unwrap();
    configs.push(test_config.clone());
    for path in &configs {
        let value: toml::Value = toml::from_str(&fs_err::read_to_string(path).unwrap()).unwrap();
        let json = serde_json::to_value(value).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
    let _ = fs_err::remove_file(test_config);
}
