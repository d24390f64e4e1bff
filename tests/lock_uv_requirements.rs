//! `uv.lock` and `requirements.txt` against the real uv, on local indexes only.
//!
//! - The example service (`examples/hello-service`, real wheels) is locked by uv; its
//!   `uv.lock`, the `pylock.toml` uv exports from it and the `requirements.txt` uv exports
//!   from it must select the same wheels for a CPython 3.11 / glibc 2.36 / linux/amd64
//!   target, and `envbuild image` must build the very same image from the `uv.lock` as
//!   from the `pylock.toml`.
//! - The toy projects of `tests/data/locks/` (forks, conflicts, a workspace, URL, path and
//!   flat-index sources) are locked again against a live index of the toy wheels
//!   (`tests/data/locks/toy-wheels.py`); for a matrix of extras, groups and marker
//!   environments, envbuild's walk of the `uv.lock` must select what
//!   `uv export --all-packages --no-emit-workspace` selects for the same choice, in both
//!   the pylock.toml and the requirements.txt formats.
//! - Malformed files make `envbuild image` fail with the file, line (and column).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use envbuild::fetch::FetchOptions;
use envbuild::index::{ConfigOrigin, IndexConfig, IndexUrl, resolve_lookups};
use envbuild::lock::{GroupSelection, Lock, LockedPackage, PackageSource};
use envbuild::platform::select::choose_wheels;
use envbuild::platform::{Libc, Target};
use uv_pep508::{MarkerEnvironment, MarkerEnvironmentBuilder};

/// The target of every build here: CPython 3.11 on linux/amd64 with glibc 2.36 (the
/// fixture base image).
fn target_311() -> Target {
    Target {
        platform: "linux/amd64".parse().unwrap(),
        python: "3.11".parse().unwrap(),
        libc: Libc::glibc("2.36").unwrap(),
        allow_linux_tag: false,
    }
}

/// A CPython marker environment on `sys_platform` with `python_full_version`, for
/// comparing selections beyond the Linux targets envbuild builds for.
fn environment(sys_platform: &str, python_full_version: &str) -> MarkerEnvironment {
    let python_version: Vec<&str> = python_full_version.split('.').take(2).collect();
    let python_version = python_version.join(".");
    let windows = sys_platform == "win32";
    MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: python_full_version,
        os_name: if windows { "nt" } else { "posix" },
        platform_machine: if windows { "AMD64" } else { "x86_64" },
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: if windows { "Windows" } else { "Linux" },
        platform_version: "",
        python_full_version,
        python_version: &python_version,
        sys_platform,
    })
    .unwrap()
}

/// `uv` in `dir`, seeing no user or system configuration and no index from the
/// environment, with a private cache and no Python downloads (as scripts/lock-example).
fn uv(dir: &Path, cache: &Path) -> Command {
    require_tool("uv");
    let mut command = Command::new("uv");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("UV_") || name.starts_with("PIP_") {
            command.env_remove(name.as_ref());
        }
    }
    command
        .env("UV_NO_CONFIG", "1")
        .env("UV_CACHE_DIR", cache)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .current_dir(dir);
    command
}

/// (name, version, sha256) of the wheel envbuild chooses for each package of `lock`.
fn chosen_wheels(lock: &Path, selection: &GroupSelection) -> BTreeSet<(String, String, String)> {
    let target = target_311();
    let lock = Lock::load(lock).unwrap_or_else(|e| panic!("{e}"));
    let packages = lock
        .select(&target.marker_environment(), selection)
        .unwrap_or_else(|e| panic!("{e}"));
    choose_wheels(&packages, &target)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|wheel| {
            (
                wheel.name.to_string(),
                wheel.version,
                wheel.artifact.sha256.unwrap().hex(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The example service

/// The example locked once, with its index kept up for the image builds.
struct Example {
    index: IndexServer,
    locked: LockedProject,
    cache: tempfile::TempDir,
}

fn example() -> &'static Example {
    static EXAMPLE: OnceLock<Result<Example, String>> = OnceLock::new();
    once(&EXAMPLE, || {
        let index = IndexServer::start(&fixtures().wheels);
        let locked = lock_example(&index.url, &hello_service());
        assert!(locked.dir.join("uv.lock").is_file(), "uv wrote no uv.lock");
        Example {
            index,
            locked,
            cache: scratch_dir("uvcache-"),
        }
    })
}

#[test]
fn uv_lock_selects_the_wheels_of_the_exported_pylock() {
    let example = example();
    let from_uv_lock = chosen_wheels(
        &example.locked.dir.join("uv.lock"),
        &GroupSelection::default(),
    );
    let from_pylock = chosen_wheels(&example.locked.pylock, &GroupSelection::default());
    assert_eq!(from_uv_lock, from_pylock);
    // The example's 17 pins, backports-tarfile included (its marker holds on 3.11).
    assert_eq!(from_uv_lock.len(), 17, "{from_uv_lock:?}");
    assert!(
        from_uv_lock
            .iter()
            .any(|(name, _, _)| name == "backports-tarfile")
    );
}

#[test]
fn uv_export_requirements_allow_the_wheels_of_the_exported_pylock() {
    let example = example();
    let dir = &example.locked.dir;
    run_ok(
        uv(dir, example.cache.path())
            .args([
                "export",
                "--quiet",
                "--frozen",
                "--format",
                "requirements.txt",
            ])
            .args(["--no-emit-project", "--default-index", &example.index.url])
            .args(["-o", "requirements.txt"]),
    );
    let target = target_311();
    let lock = Lock::load(&dir.join("requirements.txt")).unwrap_or_else(|e| panic!("{e}"));
    let packages = lock
        .select(&target.marker_environment(), &GroupSelection::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let allowed: BTreeMap<(String, String), BTreeSet<String>> = packages
        .iter()
        .map(|package| {
            let PackageSource::IndexLookup { files } = &package.source else {
                panic!("expected files known by hash, got {package:?}");
            };
            (
                (package.name.to_string(), package.version.clone().unwrap()),
                files.iter().map(|file| file.sha256.hex()).collect(),
            )
        })
        .collect();
    let from_pylock = chosen_wheels(&example.locked.pylock, &GroupSelection::default());
    let pylock_pins: BTreeSet<(String, String)> = from_pylock
        .iter()
        .map(|(name, version, _)| (name.clone(), version.clone()))
        .collect();
    let requirement_pins: BTreeSet<(String, String)> = allowed.keys().cloned().collect();
    assert_eq!(requirement_pins, pylock_pins);
    for (name, version, sha256) in &from_pylock {
        let hashes = &allowed[&(name.clone(), version.clone())];
        assert!(
            hashes.contains(sha256),
            "{name} {version}: the requirements file allows {hashes:?}, not the pylock's {sha256}"
        );
    }
    // The file names no index of its own: `uv export` writes none by default.
    assert!(lock.indexes().is_empty());
}

/// The requirements file `uv export` writes, resolved through the local index by the
/// index client, gives the wheels of the pylock.toml. (`envbuild image` does not call the
/// index client yet, so this runs the library's stages directly.)
#[tokio::test]
async fn requirements_resolved_through_the_index_choose_the_pylock_wheels() {
    let example = example();
    let dir = &example.locked.dir;
    run_ok(
        uv(dir, example.cache.path())
            .args([
                "export",
                "--quiet",
                "--frozen",
                "--format",
                "requirements.txt",
            ])
            .args(["--no-emit-project", "--default-index", &example.index.url])
            .args(["-o", "requirements-resolved.txt"]),
    );
    let target = target_311();
    let lock = Lock::load(&dir.join("requirements-resolved.txt")).unwrap_or_else(|e| panic!("{e}"));
    let packages = lock
        .select(&target.marker_environment(), &GroupSelection::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let index = IndexUrl::new(
        url::Url::parse(&example.index.url).unwrap(),
        ConfigOrigin::Flag("--index-url"),
    );
    let config = IndexConfig::from_parts(vec![index], Vec::new());
    let resolved = resolve_lookups(packages, &lock.indexes(), &config, &FetchOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chosen: BTreeSet<(String, String, String)> = choose_wheels(&resolved, &target)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|wheel| {
            (
                wheel.name.to_string(),
                wheel.version,
                wheel.artifact.sha256.unwrap().hex(),
            )
        })
        .collect();
    assert_eq!(
        chosen,
        chosen_wheels(&example.locked.pylock, &GroupSelection::default())
    );
}

#[test]
fn image_from_uv_lock_equals_image_from_pylock() {
    let example = example();
    let scratch = scratch_dir("uvimage-");
    let mut built = Vec::new();
    for (name, lock) in [
        ("pylock", example.locked.pylock.clone()),
        ("uvlock", example.locked.dir.join("uv.lock")),
    ] {
        let layout = scratch.path().join(name);
        let reference = format!("oci:{}:hello", layout.display());
        let output = envbuild().args(image_args(&lock, &reference)).success();
        built.push((printed_digest(&output), reference));
    }
    let [
        (pylock_digest, pylock_image),
        (uv_lock_digest, uv_lock_image),
    ] = &built[..]
    else {
        unreachable!("two builds");
    };
    if pylock_digest != uv_lock_digest {
        // Show what differs: the layers, or the config (history, labels, ...).
        let layers = |image: &str| skopeo_inspect(image)["Layers"].clone();
        let history = |image: &str| {
            let config = skopeo_config(image);
            let entries: Vec<String> = config["history"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|entry| entry["created_by"].as_str().unwrap_or_default().to_owned())
                .collect();
            entries
        };
        let (pylock_history, uv_lock_history) = (history(pylock_image), history(uv_lock_image));
        let differing: Vec<(&String, &String)> = pylock_history
            .iter()
            .zip(&uv_lock_history)
            .filter(|(left, right)| left != right)
            .collect();
        panic!(
            "the same wheels must make the same image whatever the lock format, but pylock.toml gave {pylock_digest} and uv.lock gave {uv_lock_digest}; same layers: {}; differing history entries (pylock, uv.lock): {differing:#?}",
            layers(pylock_image) == layers(uv_lock_image)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The toy projects, against uv export

/// The toy wheels, served on 127.0.0.1.
struct ToyIndex {
    server: IndexServer,
    wheels: PathBuf,
    _scratch: tempfile::TempDir,
}

fn toy_index() -> &'static ToyIndex {
    static INDEX: OnceLock<Result<ToyIndex, String>> = OnceLock::new();
    once(&INDEX, || {
        require_tool("python3");
        let scratch = scratch_dir("toywheels-");
        let wheels = scratch.path().join("wheels");
        run_ok(
            Command::new("python3")
                .arg(locks_dir().join("toy-wheels.py"))
                .arg(&wheels),
        );
        ToyIndex {
            server: IndexServer::start(&wheels),
            wheels,
            _scratch: scratch,
        }
    })
}

fn locks_dir() -> PathBuf {
    repo_root().join("tests/data/locks")
}

/// A fixture project copied to scratch (its pyproject.toml files, with the fixed port
/// replaced by the live toy index's) and locked there by uv.
struct ToyProject {
    dir: PathBuf,
    cache: PathBuf,
    _scratch: tempfile::TempDir,
}

fn lock_toy(project: &str) -> ToyProject {
    let index = toy_index();
    let scratch = scratch_dir("toy-");
    let dir = scratch.path().join(project);
    let cache = scratch.path().join("uv-cache");
    copy_pyprojects(&locks_dir().join(project), &dir, index.server.port);
    if project == "uv-sources" {
        for (folder, wheel) in [
            ("vendor", "gamma-1.0-py3-none-any.whl"),
            ("flat", "delta-1.0-py3-none-any.whl"),
        ] {
            fs_err::create_dir_all(dir.join(folder)).unwrap();
            fs_err::copy(index.wheels.join(wheel), dir.join(folder).join(wheel)).unwrap();
        }
    }
    run_ok(uv(&dir, &cache).args(["lock", "--quiet", "--default-index", &index.server.url]));
    ToyProject {
        dir,
        cache,
        _scratch: scratch,
    }
}

fn copy_pyprojects(from: &Path, to: &Path, port: u16) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_pyprojects(&entry.path(), &target, port);
        } else if entry.file_name() == "pyproject.toml" {
            let text = fs_err::read_to_string(entry.path()).unwrap();
            fs_err::write(
                target,
                text.replace("127.0.0.1:8000", &format!("127.0.0.1:{port}")),
            )
            .unwrap();
        }
    }
}

/// A choice of extras and groups, as envbuild takes it and as `uv export` flags.
#[derive(Debug, Clone)]
struct Choice {
    extras: &'static [&'static str],
    groups: &'static [&'static str],
    no_default_groups: bool,
}

impl Choice {
    fn selection(&self) -> GroupSelection {
        GroupSelection {
            extras: self.extras.iter().map(|s| s.to_string()).collect(),
            groups: self.groups.iter().map(|s| s.to_string()).collect(),
            no_default_groups: self.no_default_groups,
        }
    }

    fn uv_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for extra in self.extras {
            flags.extend(["--extra".to_string(), extra.to_string()]);
        }
        for group in self.groups {
            flags.extend(["--group".to_string(), group.to_string()]);
        }
        // envbuild turns on no group by default (an image is for production), whatever
        // `no_default_groups` says: uv does so with `--no-default-groups`.
        flags.push("--no-default-groups".to_string());
        flags
    }
}

const fn choice(
    extras: &'static [&'static str],
    groups: &'static [&'static str],
    no_default_groups: bool,
) -> Choice {
    Choice {
        extras,
        groups,
        no_default_groups,
    }
}

/// `uv export` of the whole workspace (members left out) for one choice, no group on
/// unless named.
fn uv_export(project: &ToyProject, format: &str, output: &str, choice: &Choice) -> PathBuf {
    run_ok(
        uv(&project.dir, &project.cache)
            .args(["export", "--quiet", "--frozen", "--format", format])
            .args(["--all-packages", "--no-emit-workspace", "-o", output])
            .args(choice.uv_flags()),
    );
    project.dir.join(output)
}

/// name -> (version, sha256 of the first wheel or archive, when the lock has one).
type Picked = BTreeMap<String, (String, Option<String>)>;

fn picked(packages: &[LockedPackage]) -> Picked {
    packages
        .iter()
        .map(|package| {
            let sha256 = match &package.source {
                PackageSource::Distributions { wheels, .. } => {
                    wheels.first().and_then(|wheel| wheel.sha256)
                }
                PackageSource::Archive(archive) => archive.sha256,
                _ => None,
            };
            (
                package.name.to_string(),
                (
                    package.version.clone().unwrap_or_default(),
                    sha256.map(|hash| hash.hex()),
                ),
            )
        })
        .collect()
}

/// Versions equal, and hashes equal where both locks record one (uv.lock records none
/// for flat-index wheels; uv hashes them when exporting).
fn assert_same(ours: &Picked, theirs: &Picked, context: &str) {
    let names = |picked: &Picked| picked.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(ours), names(theirs), "{context}");
    for (name, (version, sha256)) in ours {
        let (their_version, their_sha256) = &theirs[name];
        assert_eq!(version, their_version, "{context}: {name}");
        if let (Some(ours), Some(theirs)) = (sha256, their_sha256) {
            assert_eq!(ours, theirs, "{context}: {name}");
        }
    }
}

/// For every choice and environment: envbuild's walk of the uv.lock selects what uv's
/// pylock.toml export (and, unless `with_requirements` is false, its requirements.txt
/// export) selects.
fn compare_with_uv_export(project_name: &str, choices: &[Choice], with_requirements: bool) {
    let project = lock_toy(project_name);
    let uv_lock = Lock::load(&project.dir.join("uv.lock")).unwrap_or_else(|e| panic!("{e}"));
    let environments = [
        environment("linux", "3.11.7"),
        environment("linux", "3.12.3"),
        environment("win32", "3.11.7"),
    ];
    for (number, choice) in choices.iter().enumerate() {
        let pylock = uv_export(
            &project,
            "pylock.toml",
            &format!("pylock.choice{number}.toml"),
            choice,
        );
        let pylock = Lock::load(&pylock).unwrap_or_else(|e| panic!("{e}"));
        let requirements = with_requirements.then(|| {
            let path = uv_export(
                &project,
                "requirements.txt",
                &format!("requirements-{number}.txt"),
                choice,
            );
            Lock::load(&path).unwrap_or_else(|e| panic!("{e}"))
        });
        for environment in &environments {
            let context = format!(
                "{project_name}, {choice:?}, {} {}",
                environment.sys_platform(),
                environment.python_full_version()
            );
            let ours = uv_lock
                .select(environment, &choice.selection())
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            let theirs = pylock
                .select(environment, &GroupSelection::default())
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            // The workspace members are built from their folders by envbuild, and left
            // out of the export (`--no-emit-workspace`): compare the rest.
            let ours: Vec<LockedPackage> = ours
                .into_iter()
                .filter(|package| !matches!(package.source, PackageSource::Directory(_)))
                .collect();
            assert_same(&picked(&ours), &picked(&theirs), &context);
            if let Some(requirements) = &requirements {
                let from_requirements = requirements
                    .select(environment, &GroupSelection::default())
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
                let pins: Vec<(String, String)> = from_requirements
                    .iter()
                    .map(|package| {
                        (
                            package.name.to_string(),
                            package.version.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                let expected: Vec<(String, String)> = picked(&ours)
                    .into_iter()
                    .map(|(name, (version, _))| (name, version))
                    .collect();
                assert_eq!(pins, expected, "{context}: requirements.txt");
                for (package, (_, sha256)) in from_requirements.iter().zip(picked(&ours).values()) {
                    let PackageSource::IndexLookup { files } = &package.source else {
                        panic!("{context}: expected files known by hash, got {package:?}");
                    };
                    let sha256 = sha256.clone().unwrap();
                    assert!(
                        files.iter().any(|file| file.sha256.hex() == sha256),
                        "{context}: {} allows {files:?}, not {sha256}",
                        package.name
                    );
                }
            }
        }
    }
}

#[test]
fn forks_extras_and_groups_match_uv_export() {
    compare_with_uv_export(
        "uv-forks",
        &[
            choice(&[], &[], false),
            choice(&[], &[], true),
            choice(&["extra1"], &[], false),
            choice(&[], &["docs"], true),
            choice(&["extra1"], &["docs", "dev"], false),
        ],
        true,
    );
}

#[test]
fn conflict_markers_match_uv_export() {
    compare_with_uv_export(
        "uv-conflicts",
        &[
            choice(&[], &[], false),
            choice(&["cpu"], &[], false),
            choice(&["gpu"], &[], false),
            choice(&[], &["old"], false),
            choice(&[], &["new"], true),
        ],
        true,
    );
}

#[test]
fn conflicting_extras_are_refused() {
    let project = lock_toy("uv-conflicts");
    let lock = Lock::load(&project.dir.join("uv.lock")).unwrap();
    let error = lock
        .select(
            &environment("linux", "3.11.7"),
            &choice(&["cpu"], &["new"], false).selection(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("extra `cpu` of `toy-b` and group `new` of `toy-b` are both enabled"),
        "{error}"
    );
}

#[test]
fn workspace_members_match_uv_export() {
    compare_with_uv_export(
        "uv-workspace",
        &[
            choice(&[], &[], false),
            choice(&[], &[], true),
            choice(&["more"], &[], true),
        ],
        true,
    );
}

#[test]
fn url_path_and_flat_index_sources_match_uv_export() {
    // No requirements.txt here: uv exports the flat-index wheel without a hash, which
    // hash-checking mode refuses (checked below).
    compare_with_uv_export("uv-sources", &[choice(&[], &[], false)], false);

    let project = lock_toy("uv-sources");
    let path = uv_export(
        &project,
        "requirements.txt",
        "requirements.txt",
        &choice(&[], &[], false),
    );
    let text = fs_err::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|line| line.starts_with("delta==1.0"))
        .unwrap_or_else(|| panic!("no `delta==1.0` line in:\n{text}"))
        + 1;
    let error = Lock::load(&path).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "requirement `delta==1.0` at `{}:{line}` has no `--hash`",
            path.display()
        )),
        "{error}"
    );
}

/// `uv pip compile --generate-hashes --emit-index-url` output selects what uv's own
/// pylock.toml for the same input selects, and names the index it was compiled against.
#[test]
fn uv_pip_compile_requirements_match_its_pylock() {
    let index = toy_index();
    let scratch = scratch_dir("pipcompile-");
    let dir = scratch.path();
    let cache = dir.join("uv-cache");
    fs_err::write(
        dir.join("requirements.in"),
        "beta[fast]\nplat\nalpha<2 ; python_version < \"3.12\"\n",
    )
    .unwrap();
    for (output, hashes) in [("requirements.txt", true), ("pylock.toml", false)] {
        let mut command = uv(dir, &cache);
        command
            .args([
                "pip",
                "compile",
                "--quiet",
                "--universal",
                "--emit-index-url",
            ])
            .args([
                "--index-url",
                &index.server.url,
                "requirements.in",
                "-o",
                output,
            ]);
        if hashes {
            command.arg("--generate-hashes");
        }
        run_ok(&mut command);
    }
    let requirements = Lock::load(&dir.join("requirements.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        requirements
            .indexes()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![index.server.url.clone()]
    );
    let pylock = Lock::load(&dir.join("pylock.toml")).unwrap_or_else(|e| panic!("{e}"));
    for environment in [
        environment("linux", "3.11.7"),
        environment("linux", "3.12.3"),
        environment("win32", "3.11.7"),
    ] {
        let context = format!(
            "{} {}",
            environment.sys_platform(),
            environment.python_full_version()
        );
        let theirs = picked(
            &pylock
                .select(&environment, &GroupSelection::default())
                .unwrap_or_else(|e| panic!("{context}: {e}")),
        );
        let ours = requirements
            .select(&environment, &GroupSelection::default())
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        let pins: Vec<(String, String)> = ours
            .iter()
            .map(|package| (package.name.to_string(), package.version.clone().unwrap()))
            .collect();
        let expected: Vec<(String, String)> = theirs
            .iter()
            .map(|(name, (version, _))| (name.clone(), version.clone()))
            .collect();
        assert_eq!(pins, expected, "{context}");
        for package in &ours {
            let PackageSource::IndexLookup { files } = &package.source else {
                panic!("{context}: expected files known by hash, got {package:?}");
            };
            let sha256 = theirs[package.name.as_str()].1.clone().unwrap();
            assert!(
                files.iter().any(|file| file.sha256.hex() == sha256),
                "{context}: {}",
                package.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed files through the CLI

#[test]
fn malformed_uv_lock_fails_the_build_with_its_position() {
    let scratch = scratch_dir("baduv-");
    let lock = scratch.path().join("uv.lock");
    let text = fs_err::read_to_string(locks_dir().join("uv-forks/uv.lock")).unwrap();
    let text = text.replacen(
        "marker = \"sys_platform == 'win32'\"",
        "marker = \"sys_platform === 'win32'\"",
        1,
    );
    let line = text.lines().position(|line| line.contains("===")).unwrap() + 1;
    fs_err::write(&lock, text).unwrap();
    let reference = format!("oci:{}:bad", scratch.path().join("layout").display());
    let output = envbuild().args(image_args(&lock, &reference)).output();
    assert!(!output.status.success());
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!("{}:{line}:5", lock.display()))
            && stderr.contains("is not a valid marker"),
        "{stderr}"
    );
}

#[test]
fn unhashed_requirement_fails_the_build_with_its_line() {
    let scratch = scratch_dir("badreq-");
    let requirements = scratch.path().join("requirements.txt");
    fs_err::write(
        &requirements,
        "flask==3.1.3 \\\n    --hash=sha256:f4bcbefc124291925f1a26446da31a5178f9483862233b23c0c96a20701f670c\n    # via hello-service\nclick==8.5.1\n",
    )
    .unwrap();
    let reference = format!("oci:{}:bad", scratch.path().join("layout").display());
    let output = envbuild()
        .args(image_args(&requirements, &reference))
        .output();
    assert!(!output.status.success());
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!(
            "requirement `click==8.5.1` at `{}:4` has no `--hash`",
            requirements.display()
        )),
        "{stderr}"
    );
}
