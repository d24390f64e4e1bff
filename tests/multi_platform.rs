//! `--platform linux/amd64,linux/arm64`: one lockfile (examples/multiarch-service, locked by uv
//! against the amd64 and arm64 fixture wheels) and one multi-platform base (`base-py311-multi`
//! from scripts/fixtures: a CPython 3.11 runtime from Debian's amd64 and arm64 packages) give an
//! OCI image index with one image per platform. Checked with real readers: skopeo reads the
//! index, the layer tars hold each platform's own compiled wheels (by file name and by ELF
//! machine), pure-Python layers are the same blobs on both platforms, podman runs the amd64
//! image, and a lock with no arm64 wheel for a package fails naming it and the platform.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use common::*;

/// The multi-platform fixtures `scripts/fixtures` makes besides the ones in [`fixtures`].
struct MultiFixtures {
    /// The amd64 and arm64 wheels in one folder.
    wheels: PathBuf,
    /// `oci:<base-py311-multi>:py311`: an index over the amd64 and arm64 bases.
    base_ref: String,
}

/// The multi-platform fixtures: from the environment when `scripts/test` exported them,
/// else from `scripts/fixtures` (which only checks what it made before).
fn multi_fixtures() -> &'static MultiFixtures {
    static FIXTURES: OnceLock<Result<MultiFixtures, String>> = OnceLock::new();
    once(&FIXTURES, || {
        fixtures();
        let exported = [
            "ENVBUILD_FIXTURE_WHEELS_MULTI",
            "ENVBUILD_FIXTURE_BASE_MULTI_REF",
        ]
        .map(|key| std::env::var(key).ok());
        if let [Some(wheels), Some(base_ref)] = exported
            && Path::new(&wheels).is_dir()
        {
            return MultiFixtures {
                wheels: wheels.into(),
                base_ref,
            };
        }
        let output = run_ok(
            Command::new("bash")
                .arg(repo_root().join("scripts/fixtures"))
                .stderr(std::process::Stdio::inherit()),
        );
        let values: BTreeMap<String, String> = stdout(&output)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        let get = |key: &str| {
            values
                .get(key)
                .unwrap_or_else(|| panic!("scripts/fixtures printed no {key}"))
                .clone()
        };
        MultiFixtures {
            wheels: get("ENVBUILD_FIXTURE_WHEELS_MULTI").into(),
            base_ref: get("ENVBUILD_FIXTURE_BASE_MULTI_REF"),
        }
    })
}

/// examples/multiarch-service locked for x86_64 and aarch64, once per process.
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
        let index = IndexServer::start(&multi_fixtures().wheels);
        let project = lock_example(&index.url, &repo_root().join("examples/multiarch-service"));
        Served {
            _index: index,
            project,
        }
    })
}

/// The multi-platform build every test looks at.
struct Built {
    _scratch: tempfile::TempDir,
    layout: PathBuf,
    reference: String,
    report: Value,
    cache: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    once(&BUILT, || {
        let scratch = scratch_dir("multi-");
        let layout = scratch.path().join("layout");
        let cache = scratch.path().join("cache");
        let reference = format!("oci:{}:multi", layout.display());
        let output = envbuild()
            .args(multi_args(
                &locked().pylock,
                &reference,
                "linux/amd64,linux/arm64",
            ))
            .arg("--json")
            .arg("--cache-dir")
            .arg(&cache)
            .success();
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("no JSON report ({error}):\n{}", stdout(&output)));
        Built {
            _scratch: scratch,
            layout,
            reference,
            report,
            cache,
        }
    })
}

/// `envbuild image` of the multiarch example on the multi-platform base.
fn multi_args(lock: &Path, output: &str, platforms: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "image",
        "--lock",
        &lock.to_string_lossy(),
        "--base",
        &multi_fixtures().base_ref,
        "--platform",
        platforms,
        "--output",
        output,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(EXAMPLE_SETTINGS.iter().map(|arg| (*arg).to_owned()));
    args
}

fn schema_errors(report: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_slice(
        &fs_err::read(repo_root().join("schemas/report.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    validator
        .iter_errors(report)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect()
}

/// A blob of the built layout.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs_err::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// The report's image for `platform`.
fn image<'a>(report: &'a Value, platform: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["platform"] == platform)
        .unwrap_or_else(|| panic!("the report has no image for {platform}: {report:#}"))
}

/// Every `.so` file in a gzip layer, with the ELF machine number of its header.
fn shared_objects(layer: &[u8]) -> Vec<(String, u16)> {
    let mut found = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if entry.header().entry_type().is_file() && path.ends_with(".so") {
            let mut header = [0u8; 20];
            entry.read_exact(&mut header).unwrap();
            assert_eq!(&header[..4], b"\x7fELF", "{path} is not an ELF file");
            found.push((path, u16::from_le_bytes([header[18], header[19]])));
        }
    }
    found
}

/// ELF `e_machine` of x86-64 and of AArch64.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

#[test]
fn index_lists_both_platforms_and_the_report_matches() {
    let built = built();
    let report = &built.report;
    assert_eq!(schema_errors(report), Vec::<String>::new(), "{report:#}");
    assert!(
        report.get("platform").is_none(),
        "multi-platform shape: {report:#}"
    );

    let raw = skopeo_raw_manifest(&built.reference);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw)),
        report["digest"].as_str().unwrap(),
        "the report's digest is the image index's"
    );
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<(String, String)> = manifests
        .iter()
        .map(|entry| {
            (
                entry["platform"]["os"].as_str().unwrap().to_owned(),
                entry["platform"]["architecture"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".to_owned(), "amd64".to_owned()),
            ("linux".to_owned(), "arm64".to_owned())
        ]
    );
    for (entry, platform) in manifests.iter().zip(["linux/amd64", "linux/arm64"]) {
        let image = image(report, platform);
        assert_eq!(entry["digest"], image["digest"], "{platform}");
        assert_eq!(
            entry["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        // skopeo picks each platform's image out of the index.
        let architecture = platform.rsplit('/').next().unwrap();
        let inspected = run_ok(
            Command::new("skopeo")
                .args(["--override-os", "linux", "--override-arch", architecture])
                .args(["inspect", "--config"])
                .arg(&built.reference),
        );
        let config: Value = serde_json::from_slice(&inspected.stdout).unwrap();
        assert_eq!(config["architecture"], architecture);
        assert_eq!(config["os"], "linux");
        assert!(image["python"].as_str().unwrap().starts_with("3.11"));
    }

    // Each platform stood on its own manifest of the base index.
    let base_index: Value =
        serde_json::from_slice(&skopeo_raw_manifest(&multi_fixtures().base_ref)).unwrap();
    for entry in base_index["manifests"].as_array().unwrap() {
        let platform = format!(
            "linux/{}",
            entry["platform"]["architecture"].as_str().unwrap()
        );
        let base = &image(report, &platform)["base"];
        assert_eq!(base["digest"], entry["digest"], "{platform}");
        assert_eq!(base["reference"], multi_fixtures().base_ref.as_str());
    }
}

#[test]
fn each_platform_installs_its_own_compiled_wheels() {
    let built = built();
    for (platform, machine, arch, other_arch) in [
        ("linux/amd64", EM_X86_64, "x86_64", "aarch64"),
        ("linux/arm64", EM_AARCH64, "aarch64", "x86_64"),
    ] {
        let image = image(&built.report, platform);
        let manifest: Value =
            serde_json::from_slice(&blob(&built.layout, image["digest"].as_str().unwrap()))
                .unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        let reported = image["layers"].as_array().unwrap();
        assert_eq!(layers.len(), reported.len());
        let mut objects = Vec::new();
        for (layer, report) in layers.iter().zip(reported) {
            assert_eq!(layer["digest"], report["digest"]);
            if report["kind"] == "base" {
                continue;
            }
            objects.extend(shared_objects(&blob(
                &built.layout,
                layer["digest"].as_str().unwrap(),
            )));
            for package in report["packages"].as_array().unwrap() {
                let wheel = package["wheel"].as_str().unwrap();
                assert!(!wheel.contains(other_arch), "{platform} installs {wheel}");
            }
        }
        // markupsafe, pyyaml and charset-normalizer carry extension modules.
        for module in [
            "markupsafe/_speedups",
            "yaml/_yaml",
            "charset_normalizer/md",
        ] {
            let name = format!("{module}.cpython-311-{arch}-linux-gnu.so");
            assert!(
                objects.iter().any(|(path, _)| path.ends_with(&name)),
                "{platform} has no {name}: {objects:?}"
            );
        }
        for (path, found) in &objects {
            assert_eq!(
                *found, machine,
                "{platform}: {path} is built for ELF machine {found}"
            );
            assert!(!path.contains(other_arch), "{platform}: {path}");
        }
    }
}

#[test]
fn pure_python_layers_are_the_same_blobs_on_both_platforms() {
    let built = built();
    let layers = |platform: &str| -> BTreeMap<Vec<String>, (String, String)> {
        image(&built.report, platform)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|layer| layer["kind"] != "base")
            .map(|layer| {
                let wheels: Vec<String> = layer["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|package| package["wheel"].as_str().unwrap().to_owned())
                    .collect();
                let name = |package: &Value| package["name"].as_str().unwrap().to_owned();
                let names: Vec<String> = layer["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(name)
                    .collect();
                let key = if names.is_empty() {
                    vec![layer["kind"].as_str().unwrap().to_owned()]
                } else {
                    names
                };
                let pure = wheels.iter().all(|wheel| wheel.ends_with("-none-any.whl"));
                let kind = if pure { "pure" } else { "platform" };
                (
                    key,
                    (
                        layer["digest"].as_str().unwrap().to_owned(),
                        kind.to_owned(),
                    ),
                )
            })
            .collect()
    };
    let amd64 = layers("linux/amd64");
    let arm64 = layers("linux/arm64");
    assert_eq!(
        amd64.keys().collect::<Vec<_>>(),
        arm64.keys().collect::<Vec<_>>(),
        "both platforms group the same packages into layers"
    );
    let mut shared = 0;
    for (packages, (digest, kind)) in &amd64 {
        let (other, _) = &arm64[packages];
        if kind == "pure" {
            assert_eq!(digest, other, "pure-Python layer {packages:?} differs");
            shared += 1;
        } else {
            assert_ne!(digest, other, "layer {packages:?} holds compiled wheels");
        }
    }
    assert!(
        shared >= 3,
        "expected the venv and several pure-Python layers to be shared: {amd64:#?}"
    );
    // The layout stores a shared layer once, and every layer of both images is there.
    let blobs: Vec<String> = fs_err::read_dir(built.layout.join("blobs/sha256"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (digest, _) in amd64.values().chain(arm64.values()) {
        let hex = digest.strip_prefix("sha256:").unwrap();
        assert_eq!(blobs.iter().filter(|name| *name == hex).count(), 1);
    }
}

#[test]
fn the_amd64_image_runs() {
    let built = built();
    let printed = podman_run_ok(
        &built.reference,
        &[
            "python",
            "-c",
            "import platform, yaml, markupsafe, charset_normalizer, flask, requests; \
             print(platform.machine(), yaml.__with_libyaml__, \
             markupsafe._escape_inner.__module__)",
        ],
    );
    assert_eq!(printed.trim(), "x86_64 True markupsafe._speedups");
}

#[test]
fn one_platform_of_the_index_builds_the_same_image() {
    let built = built();
    let scratch = scratch_dir("multi-one-");
    let reference = format!("oci:{}:arm64", scratch.path().join("layout").display());
    let output = envbuild()
        .args(multi_args(&locked().pylock, &reference, "linux/arm64"))
        .arg("--json")
        .arg("--cache-dir")
        .arg(&built.cache)
        .success();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema_errors(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(report["platform"], "linux/arm64", "the one-platform shape");
    assert_eq!(
        report["digest"],
        image(&built.report, "linux/arm64")["digest"],
        "the arm64 image is the same whether built alone or with amd64"
    );
}

#[test]
fn a_lock_without_arm64_wheels_fails_naming_the_package_and_platform() {
    let scratch = scratch_dir("multi-unserved-");
    let text = fs_err::read_to_string(&locked().pylock).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !(line.contains("markupsafe-3.0.4-") && line.contains("aarch64")))
        .collect();
    assert_eq!(
        kept.len() + 1,
        text.lines().count(),
        "one wheel line removed"
    );
    let lock = scratch.path().join("pylock.toml");
    fs_err::write(&lock, kept.join("\n") + "\n").unwrap();

    let layout = scratch.path().join("layout");
    let cache = scratch.path().join("cache");
    let output = envbuild()
        .args(multi_args(
            &lock,
            &format!("oci:{}:multi", layout.display()),
            "linux/amd64,linux/arm64",
        ))
        .arg("--cache-dir")
        .arg(&cache)
        .output();
    assert!(!output.status.success(), "{}", stdout(&output));
    let text = stderr(&output);
    for needle in [
        "`markupsafe` 3.0.4",
        "linux/arm64",
        "no wheel in the lockfile",
    ] {
        assert!(text.contains(needle), "stderr lacks {needle:?}:\n{text}");
    }
    assert!(
        !text.contains("`pyyaml`"),
        "only markupsafe is unserved:\n{text}"
    );
    assert!(!layout.exists(), "no smaller index is written");
    let downloaded = fs_err::read_dir(cache.join("wheels/sha256"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(
        downloaded, 0,
        "nothing is downloaded before every platform is served"
    );

    // amd64 alone is still served by that lock.
    let output = envbuild()
        .args(multi_args(
            &lock,
            &format!("oci:{}:amd64", layout.display()),
            "linux/amd64",
        ))
        .arg("--cache-dir")
        .arg(&cache)
        .success();
    printed_digest(&output);
}
