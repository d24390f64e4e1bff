//! Every lockfile format, end to end through the `envbuild` binary. One local index of the
//! fixture wheels serves the real lockers, which lock `examples/hello-service`: uv
//! (`pylock.toml`, `uv.lock`, and a requirements file from `uv export`), pip-tools
//! (`pip-compile --generate-hashes`), Poetry (`poetry.lock`) and Pipenv (`Pipfile.lock`),
//! the last three installed with pip by `scripts/lock-tools`.
//!
//! - Each lockfile, built with `envbuild image` (lockfiles without URLs find their files
//!   through `--index-url`, the environment or pip.conf), gives the very image the
//!   pylock.toml gives: the same wheels make the same layers. podman runs it.
//! - A malformed file of each format fails the build with its file and line, and writes
//!   nothing.
//! - A hand-made conflicting lock (`tests/data/conflict/`) fails `envbuild check` and
//!   `envbuild image` with the chain of the conflict, unless `--allow-conflicts`, which
//!   lists it in the JSON report; every real lock passes the check.
//! - `--compile-bytecode` gives the same image whatever `--jobs` and cache, and its pycs
//!   are what a read-only container imports.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The lockers and the locks they write

/// The executables `scripts/lock-tools` installs.
struct LockTools {
    poetry: PathBuf,
    pipenv: PathBuf,
    pip_compile: PathBuf,
}

fn lock_tools() -> LockTools {
    for tool in ["python3", "flock"] {
        require_tool(tool);
    }
    let mut command = Command::new("bash");
    command.arg(repo_root().join("scripts/lock-tools"));
    let output = run_ok(&mut command);
    let values: BTreeMap<String, String> = stdout(&output)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let get = |key: &str| -> PathBuf {
        values
            .get(key)
            .unwrap_or_else(|| panic!("scripts/lock-tools printed no {key}: {values:?}"))
            .into()
    };
    LockTools {
        poetry: get("ENVBUILD_POETRY"),
        pipenv: get("ENVBUILD_PIPENV"),
        pip_compile: get("ENVBUILD_PIP_COMPILE"),
    }
}

/// A command that sees no index, pip, uv, Poetry or Pipenv setting of this machine (which
/// sets `PIP_FIND_LINKS`), with its caches and configuration under `scratch`.
fn isolated(program: &Path, dir: &Path, scratch: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["PIP_", "UV_", "POETRY_", "PIPENV_", "VIRTUAL_ENV"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    command
        .current_dir(dir)
        .env("XDG_CACHE_HOME", scratch.join("xdg-cache"))
        .env("XDG_CONFIG_HOME", scratch.join("xdg-config"))
        .env("XDG_DATA_HOME", scratch.join("xdg-data"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("UV_NO_CONFIG", "1")
        .env("UV_CACHE_DIR", scratch.join("uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .env("POETRY_CACHE_DIR", scratch.join("poetry-cache"))
        .env("POETRY_CONFIG_DIR", scratch.join("poetry-config"))
        .env("POETRY_VIRTUALENVS_IN_PROJECT", "true")
        .env("PIPENV_CACHE_DIR", scratch.join("pipenv-cache"))
        .env("PIPENV_VENV_IN_PROJECT", "1")
        .env("PIPENV_NOSPIN", "1")
        .env("PIPENV_YES", "1")
        .env("PIPENV_IGNORE_VIRTUALENVS", "1")
        .env("NO_COLOR", "1");
    command
}

/// The hello-service requirements, as its pyproject.toml writes them.
fn hello_requirements() -> Vec<String> {
    let text = fs_err::read_to_string(hello_service().join("pyproject.toml")).unwrap();
    let pyproject: toml::Table = toml::from_str(&text).unwrap();
    pyproject["project"]["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|requirement| requirement.as_str().unwrap().to_string())
        .collect()
}

/// hello-service locked by every locker against one local index, which stays up.
struct Locks {
    index: IndexServer,
    /// `pylock.toml` and `uv.lock`, by uv.
    uv: LockedProject,
    /// `uv export --format requirements.txt`: hashes, no index.
    uv_requirements: PathBuf,
    /// `pip-compile --generate-hashes`: hashes, and the index it compiled against.
    pip_compile_requirements: PathBuf,
    poetry: PathBuf,
    pipfile: PathBuf,
    scratch: tempfile::TempDir,
}

impl Locks {
    /// Every lockfile, named for messages, the pylock.toml first.
    fn all(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("pylock.toml (uv export)", self.uv.pylock.clone()),
            ("uv.lock (uv lock)", self.uv.dir.join("uv.lock")),
            ("requirements.txt (uv export)", self.uv_requirements.clone()),
            (
                "requirements.txt (pip-compile)",
                self.pip_compile_requirements.clone(),
            ),
            ("poetry.lock (poetry lock)", self.poetry.clone()),
            ("Pipfile.lock (pipenv lock)", self.pipfile.clone()),
        ]
    }
}

fn locks() -> &'static Locks {
    static LOCKS: OnceLock<Result<Locks, String>> = OnceLock::new();
    once(&LOCKS, make_locks)
}

fn make_locks() -> Locks {
    require_tool("python3.11");
    let index = IndexServer::start(&fixtures().wheels);
    let uv = lock_example(&index.url, &hello_service());
    let scratch = scratch_dir("formats-");
    let tools = lock_tools();
    let requirements = hello_requirements();
    let url = index.url.clone();

    let uv_requirements = uv.dir.join("requirements.txt");
    let uv_scratch = scratch.path().join("uv");
    run_ok(
        isolated(Path::new("uv"), &uv.dir, &uv_scratch)
            .args([
                "export",
                "--quiet",
                "--frozen",
                "--format",
                "requirements.txt",
            ])
            .args(["--no-emit-project", "--no-header", "-o"])
            .arg(&uv_requirements),
    );

    // The three lockers run at once: each mostly waits on its own start-up and the index.
    let pip_tools_dir = scratch.path().join("pip-tools");
    let poetry_dir = scratch.path().join("poetry");
    let pipenv_dir = scratch.path().join("pipenv");
    for dir in [&pip_tools_dir, &poetry_dir, &pipenv_dir] {
        fs_err::create_dir_all(dir.join("project")).unwrap();
    }
    std::thread::scope(|scope| {
        let pip_tools = scope.spawn(|| {
            let project = pip_tools_dir.join("project");
            fs_err::write(
                project.join("requirements.in"),
                requirements.join("\n") + "\n",
            )
            .unwrap();
            run_ok(
                isolated(&tools.pip_compile, &project, &pip_tools_dir)
                    .args(["--quiet", "--generate-hashes", "--strip-extras"])
                    .args(["--index-url", &url, "--cache-dir"])
                    .arg(pip_tools_dir.join("pip-cache"))
                    .args(["-o", "requirements.txt", "requirements.in"]),
            );
        });
        let poetry = scope.spawn(|| {
            let project = poetry_dir.join("project");
            let dependencies: Vec<String> = requirements
                .iter()
                .map(|requirement| format!("    {},", toml::Value::String(requirement.clone())))
                .collect();
            fs_err::write(
                project.join("pyproject.toml"),
                format!(
                    "[project]\nname = \"hello-service\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\n{}\n]\n\n[tool.poetry]\npackage-mode = false\n",
                    dependencies.join("\n")
                ),
            )
            .unwrap();
            run_ok(
                isolated(&tools.poetry, &project, &poetry_dir)
                    .args(["source", "add", "--priority=primary", "local", &url]),
            );
            run_ok(isolated(&tools.poetry, &project, &poetry_dir).args(["lock", "--no-interaction"]));
        });
        let pipenv = scope.spawn(|| {
            let project = pipenv_dir.join("project");
            let mut packages = String::new();
            for requirement in &requirements {
                let (pin, marker) = match requirement.split_once(';') {
                    Some((pin, marker)) => (pin.trim(), Some(marker.trim())),
                    None => (requirement.trim(), None),
                };
                let (name, version) = pin.split_once("==").unwrap();
                match marker {
                    Some(marker) => packages.push_str(&format!(
                        "{name} = {{version = \"=={version}\", markers = {}}}\n",
                        toml::Value::String(marker.to_string())
                    )),
                    None => packages.push_str(&format!("{name} = \"=={version}\"\n")),
                }
            }
            fs_err::write(
                project.join("Pipfile"),
                format!(
                    "[[source]]\nurl = \"{url}\"\nverify_ssl = false\nname = \"local\"\n\n[packages]\n{packages}\n[dev-packages]\n\n[requires]\npython_version = \"3.11\"\n"
                ),
            )
            .unwrap();
            run_ok(isolated(&tools.pipenv, &project, &pipenv_dir).arg("lock"));
        });
        for handle in [pip_tools, poetry, pipenv] {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });

    let locks = Locks {
        uv_requirements,
        pip_compile_requirements: pip_tools_dir.join("project/requirements.txt"),
        poetry: poetry_dir.join("project/poetry.lock"),
        pipfile: pipenv_dir.join("project/Pipfile.lock"),
        index,
        uv,
        scratch,
    };
    for (name, path) in locks.all() {
        assert!(path.is_file(), "{name}: no lockfile at {}", path.display());
    }
    locks
}

// ---------------------------------------------------------------------------------------------
// Building

/// An image `envbuild image --json` wrote into its own layout, with its own cache.
struct Built {
    /// `oci:<layout>:hello`.
    reference: String,
    digest: String,
    report: Value,
    _scratch: tempfile::TempDir,
}

/// Builds `lock` with the example's settings into a fresh layout and cache, with
/// `extra` arguments and `env` variables.
fn build(lock: &Path, extra: &[&str], env: &[(&str, &str)]) -> Built {
    let scratch = scratch_dir("build-");
    let reference = format!("oci:{}:hello", scratch.path().join("layout").display());
    let mut command = envbuild()
        .args(image_args(lock, &reference))
        .arg("--json")
        .arg("--cache-dir")
        .arg(scratch.path().join("cache"))
        .args(extra);
    for (key, value) in env {
        command = command.env(key, value);
    }
    let output = command.success();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "envbuild image --json printed no JSON ({e}):\n{}",
            stdout(&output)
        )
    });
    let digest = report["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("the report has no digest: {report}"))
        .to_string();
    assert!(is_digest(&digest), "{digest}");
    Built {
        reference,
        digest,
        report,
        _scratch: scratch,
    }
}

/// The pylock.toml built with `--index-url` (which it does not need), once.
fn pylock_image() -> &'static Built {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    once(&BUILT, || {
        let locks = locks();
        build(&locks.uv.pylock, &["--index-url", &locks.index.url], &[])
    })
}

/// (name, version, wheel sha256) of every package the report lists.
fn installed(report: &Value) -> BTreeSet<(String, String, String)> {
    report["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("the report has no layers: {report}"))
        .iter()
        .flat_map(|layer| layer["packages"].as_array().unwrap().iter())
        .map(|package| {
            let field = |key: &str| package[key].as_str().unwrap().to_string();
            (field("name"), field("version"), field("sha256"))
        })
        .collect()
}

/// What differs between two images: layers (with their packages) and history entries.
fn explain_difference(left: &Built, right: &Built) -> String {
    let layers = |built: &Built| -> Vec<String> {
        built.report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| format!("{} {}", layer["digest"], layer["packages"]))
            .collect()
    };
    let history = |built: &Built| -> Vec<String> {
        skopeo_config(&built.reference)["history"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| entry["created_by"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (left_layers, right_layers) = (layers(left), layers(right));
    let only_left: Vec<&String> = left_layers
        .iter()
        .filter(|layer| !right_layers.contains(layer))
        .collect();
    let only_right: Vec<&String> = right_layers
        .iter()
        .filter(|layer| !left_layers.contains(layer))
        .collect();
    let (left_history, right_history) = (history(left), history(right));
    let history_differs: Vec<(&String, &String)> = left_history
        .iter()
        .zip(&right_history)
        .filter(|(l, r)| l != r)
        .collect();
    format!(
        "layers only in the first: {only_left:#?}\nlayers only in the second: {only_right:#?}\ndiffering history entries: {history_differs:#?}"
    )
}

// ---------------------------------------------------------------------------------------------
// Every format gives the pylock.toml's image

/// One build of the example: a lockfile and how it finds its index.
struct Variant<'a> {
    name: String,
    lock: PathBuf,
    extra: Vec<&'a str>,
    env: Vec<(&'a str, &'a str)>,
}

#[test]
fn every_lock_format_builds_the_pylock_image_that_podman_runs() {
    let locks = locks();
    let url = locks.index.url.as_str();
    let reference = pylock_image();
    let expected = installed(&reference.report);
    assert_eq!(
        expected.len(),
        17,
        "the 17 hello-service wheels: {expected:?}"
    );

    // Where lockfiles without URLs find their index: the flag, the environment users
    // already set, or pip.conf. Lockfiles with URLs (or their own index) ignore it.
    let config = locks.scratch.path().join("config");
    let empty_config_home = config.join("xdg");
    fs_err::create_dir_all(&empty_config_home).unwrap();
    let pip_conf = config.join("pip.conf");
    fs_err::write(&pip_conf, format!("[global]\nindex-url = {url}\n")).unwrap();
    let empty = empty_config_home.to_str().unwrap();
    let pip_conf = pip_conf.to_str().unwrap();
    let mut variants: Vec<Variant> = Vec::new();
    for (name, lock) in locks.all().into_iter().skip(1) {
        variants.push(Variant {
            name: format!("{name}, --index-url"),
            lock,
            extra: vec!["--index-url", url],
            env: Vec::new(),
        });
    }
    for (how, key, value) in [
        ("PIP_INDEX_URL", "PIP_INDEX_URL", url),
        ("UV_DEFAULT_INDEX", "UV_DEFAULT_INDEX", url),
        ("pip.conf", "PIP_CONFIG_FILE", pip_conf),
    ] {
        variants.push(Variant {
            name: format!("requirements.txt (uv export), {how}"),
            lock: locks.uv_requirements.clone(),
            extra: Vec::new(),
            env: vec![(key, value), ("XDG_CONFIG_HOME", empty)],
        });
    }

    let mut pipfile_image = None;
    for variant in &variants {
        let name = &variant.name;
        let image = build(&variant.lock, &variant.extra, &variant.env);
        assert_eq!(
            installed(&image.report),
            expected,
            "{name}: the wheels differ from the pylock.toml's"
        );
        assert!(
            image.digest == reference.digest,
            "{name}: the same wheels must make the same image, but pylock.toml gave {} and this gave {}\n{}",
            reference.digest,
            image.digest,
            explain_difference(reference, &image)
        );
        if name.starts_with("Pipfile.lock") {
            pipfile_image = Some(image);
        }
    }

    // One podman run: the image of the Pipfile.lock (the same as every other) imports
    // every module, and Python sees exactly the locked distributions.
    let pipfile_image = pipfile_image.expect("a Pipfile.lock build");
    let mut script = import_everything_script();
    script.push_str(
        "import importlib.metadata\nprint(sorted((d.metadata['Name'].lower().replace('_', '-').replace('.', '-'), d.version) for d in importlib.metadata.distributions()))\n",
    );
    let output = podman_run_ok(&pipfile_image.reference, &["python", "-c", &script]);
    let mut lines = output.lines();
    assert!(
        lines.next().unwrap_or_default().starts_with("imported "),
        "{output}"
    );
    let locked: Vec<String> = expected
        .iter()
        .map(|(name, version, _)| format!("('{name}', '{version}')"))
        .collect();
    assert_eq!(
        lines.next().unwrap_or_default(),
        format!("[{}]", locked.join(", ")),
        "the distributions Python sees"
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed files

/// `text` with the first line after the line equal to `after` that starts with `starts`
/// replaced by `with`, and that line's number (1-based).
fn corrupt(text: &str, after: &str, starts: &str, with: &str) -> (String, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let anchor = lines
        .iter()
        .position(|line| line.trim() == after)
        .unwrap_or_else(|| panic!("no line `{after}` in:\n{text}"));
    let index = anchor
        + lines[anchor..]
            .iter()
            .position(|line| line.trim_start().starts_with(starts))
            .unwrap_or_else(|| panic!("no line starting `{starts}` after `{after}` in:\n{text}"));
    let mut out: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
    out[index] = with.to_string();
    (out.join("\n") + "\n", index + 1)
}

/// True when `dir` holds no file at any depth (a missing folder holds none).
fn holds_no_file(dir: &Path) -> bool {
    if !dir.exists() {
        return true;
    }
    fs_err::read_dir(dir).unwrap().all(|entry| {
        let entry = entry.unwrap();
        entry.file_type().unwrap().is_dir() && holds_no_file(&entry.path())
    })
}

/// A requirements file that names its own `--find-links` folder needs no index at all:
/// with every index setting cleared, the build finds the wheels there (by hash) and gives
/// the pylock.toml image.
#[test]
fn requirements_find_links_line_is_used_without_any_index() {
    let locks = locks();
    let dir = scratch_dir("find-links-");
    let with_links = dir.path().join("requirements.txt");
    let text = fs_err::read_to_string(&locks.uv_requirements).unwrap();
    let wheels = &fixtures().wheels;
    fs_err::write(
        &with_links,
        format!("--find-links {}\n{text}", wheels.display()),
    )
    .unwrap();
    let built = build(&with_links, &["--no-index-config"], &[]);
    assert_eq!(
        built.digest,
        pylock_image().digest,
        "{}",
        explain_difference(pylock_image(), &built)
    );
    // Without the line (and with no index configured), the same file cannot be built.
    let output = envbuild()
        .args(image_args(
            &locks.uv_requirements,
            &format!("oci:{}:x", dir.path().join("out").display()),
        ))
        .arg("--no-index-config")
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--index-url"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn malformed_lock_of_each_format_names_its_file_and_line() {
    let locks = locks();
    let scratch = scratch_dir("malformed-");
    let read = |path: &Path| fs_err::read_to_string(path).unwrap();

    // One real file of each format with one line broken: an unterminated TOML string, a
    // JSON value without its opening quote, and a requirement whose `--hash` is gone.
    let uv_lock = corrupt(
        &read(&locks.uv.dir.join("uv.lock")),
        "name = \"flask\"",
        "version = ",
        "version = \"3.1.3",
    );
    let poetry_lock = corrupt(
        &read(&locks.poetry),
        "name = \"flask\"",
        "version = ",
        "version = \"3.1.3",
    );
    let pipfile_lock = corrupt(
        &read(&locks.pipfile),
        "\"flask\": {",
        "\"version\":",
        "            \"version\": ==3.1.3\"",
    );
    let requirements = {
        let text = read(&locks.pip_compile_requirements);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|line| line.starts_with("click==8.5.1"))
            .unwrap_or_else(|| panic!("no click pin in:\n{text}"));
        assert!(
            lines[at + 1].trim_start().starts_with("--hash=sha256:")
                && !lines[at + 1].ends_with('\\'),
            "click has one hash on the next line:\n{text}"
        );
        let mut out: Vec<&str> = lines[..at].to_vec();
        out.push("click==8.5.1");
        out.extend(&lines[at + 2..]);
        (out.join("\n") + "\n", at + 1)
    };

    for (file, (text, line), expected) in [
        ("uv.lock", uv_lock, None),
        ("poetry.lock", poetry_lock, None),
        ("Pipfile.lock", pipfile_lock, None),
        (
            "requirements.txt",
            requirements,
            Some("requirement `click==8.5.1` at `{place}` has no `--hash`"),
        ),
    ] {
        let dir = scratch.path().join(file.replace('.', "-"));
        fs_err::create_dir(&dir).unwrap();
        let lock = dir.join(file);
        fs_err::write(&lock, &text).unwrap();
        let layout = dir.join("layout");
        let cache = dir.join("cache");
        let output = envbuild()
            .args(image_args(&lock, &format!("oci:{}:bad", layout.display())))
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--index-url", &locks.index.url])
            .output();
        let stderr = stderr(&output);
        assert!(
            !output.status.success(),
            "{file}: a malformed lock must fail the build; stderr:\n{stderr}"
        );
        let place = format!("{}:{line}", lock.display());
        match expected {
            Some(message) => {
                let message = message.replace("{place}", &place);
                assert!(
                    stderr.contains(&message),
                    "{file}: expected `{message}` in:\n{stderr}"
                );
            }
            None => assert!(
                stderr.contains(&format!("{place}:")),
                "{file}: expected the position `{place}:<column>` in:\n{stderr}"
            ),
        }
        assert!(
            stdout(&output).trim().is_empty(),
            "{file}: no digest on failure"
        );
        assert!(!layout.exists(), "{file}: a failed build writes no image");
        assert!(
            holds_no_file(&cache),
            "{file}: a failed build caches nothing"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The dependency check

/// A wheel of one module `name` whose metadata requires `requires`, written to `dir`.
fn handmade_wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}-{version}-py3-none-any.whl"));
    let dist_info = format!("{name}-{version}.dist-info");
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for requirement in requires {
        metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    let files = [
        (format!("{name}/__init__.py"), format!("VERSION = {version:?}\n")),
        (format!("{dist_info}/METADATA"), metadata),
        (
            format!("{dist_info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: envbuild-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_string(),
        ),
    ];
    let mut record = String::new();
    for (file, text) in &files {
        record.push_str(&format!(
            "{file},sha256={},{}\n",
            sha256_record(text.as_bytes()),
            text.len()
        ));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (file, text) in files
        .iter()
        .chain([(format!("{dist_info}/RECORD"), record)].iter())
    {
        zip.start_file(file.as_str(), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// `tests/data/conflict/pylock.toml` copied to `dir`, with its two wheels made next to it.
fn conflicting_lock(dir: &Path) -> PathBuf {
    let wheels = dir.join("wheels");
    fs_err::create_dir_all(&wheels).unwrap();
    let a = handmade_wheel(&wheels, "a", "1.0", &["b>=2"]);
    let b = handmade_wheel(&wheels, "b", "1.5", &[]);
    let template =
        fs_err::read_to_string(repo_root().join("tests/data/conflict/pylock.toml")).unwrap();
    let text = template
        .replace("@A_SHA256@", &sha256_hex(&fs_err::read(&a).unwrap()))
        .replace("@B_SHA256@", &sha256_hex(&fs_err::read(&b).unwrap()));
    let lock = dir.join("pylock.toml");
    fs_err::write(&lock, text).unwrap();
    lock
}

/// Asserts stderr names the conflict as the issue asks.
fn assert_names_the_conflict(output: &Output, what: &str) {
    let stderr = stderr(output);
    assert!(
        stderr.contains("a 1.0 requires b>=2") && stderr.contains("locked b 1.5"),
        "{what}: expected `a 1.0 requires b>=2` and `locked b 1.5` in:\n{stderr}"
    );
}

#[test]
fn conflicting_lock_fails_check_and_build_unless_allowed() {
    let scratch = scratch_dir("conflict-");
    let lock = conflicting_lock(scratch.path());
    let cache = scratch.path().join("cache");

    // `envbuild check`, with the target given on the command line: exit code 1.
    let check = |extra: &[&str]| {
        envbuild()
            .arg("check")
            .arg("--lock")
            .arg(&lock)
            .args(["--python", "3.11", "--glibc", "2.36", "--cache-dir"])
            .arg(&cache)
            .args(extra)
            .output()
    };
    let output = check(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_names_the_conflict(&output, "envbuild check");
    let output = check(&["--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}): {}", stdout(&output)));
    let problems = json[0]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(problems.len(), 1, "{json}");
    assert_eq!(problems[0]["kind"], "conflict", "{json}");

    // `envbuild image` fails the same way and writes nothing.
    let layout = scratch.path().join("layout");
    let reference = format!("oci:{}:conflict", layout.display());
    let output = envbuild()
        .args(image_args(&lock, &reference))
        .arg("--cache-dir")
        .arg(&cache)
        .output();
    assert!(!output.status.success(), "a conflict fails the build");
    assert_names_the_conflict(&output, "envbuild image");
    assert!(stdout(&output).trim().is_empty(), "no digest on failure");
    assert!(!layout.exists(), "a failed build writes no image");

    // `--allow-conflicts` builds, warns, and lists the problem in the report.
    let output = envbuild()
        .args(image_args(&lock, &reference))
        .args(["--allow-conflicts", "--json", "--cache-dir"])
        .arg(&cache)
        .success();
    assert_names_the_conflict(&output, "envbuild image --allow-conflicts");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("image --json printed no JSON ({e}): {}", stdout(&output)));
    let problems = report["dependency_problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no dependency_problems in {report}"));
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], "conflict");
    assert_eq!(problems[0]["requirement"], "b>=2");
    assert_eq!(problems[0]["locked_version"], "1.5");
    let digest = report["digest"].as_str().unwrap();
    assert_eq!(skopeo_inspect(&reference)["Digest"], digest);
}

#[test]
fn every_real_lock_passes_the_check() {
    let locks = locks();
    for (name, lock) in locks.all() {
        let output = envbuild()
            .arg("check")
            .arg("--lock")
            .arg(&lock)
            .args(["--python", "3.11", "--glibc", "2.36"])
            .args(["--index-url", &locks.index.url])
            .output();
        assert!(
            output.status.success(),
            "{name}: envbuild check failed with {}:\n{}",
            output.status,
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("every requirement is satisfied"),
            "{name}: {}",
            stderr(&output)
        );
    }
    // The target read from the base image instead.
    envbuild()
        .arg("check")
        .arg("--lock")
        .arg(&locks.uv.pylock)
        .arg("--base")
        .arg(&fixtures().base_ref)
        .success();
}

// ---------------------------------------------------------------------------------------------
// Bytecode

#[test]
fn bytecode_is_reproducible_and_imported_from_a_read_only_image() {
    let locks = locks();
    require_tool("python3.11");
    // The real interpreter behind `python3.11` on PATH (which may be a shim).
    let interpreter = stdout(&run_ok(
        Command::new("python3.11").args(["-c", "import sys; print(sys.executable)"]),
    ))
    .trim()
    .to_string();
    let one = build(
        &locks.uv.pylock,
        &["--compile-bytecode", "--jobs", "1"],
        &[],
    );
    let four = build(
        &locks.uv.pylock,
        &[
            "--compile-bytecode",
            "--compile-with",
            &interpreter,
            "--jobs",
            "4",
        ],
        &[],
    );
    assert!(
        one.digest == four.digest,
        "bytecode must not depend on --jobs or the cache: {} and {}\n{}",
        one.digest,
        four.digest,
        explain_difference(&one, &four)
    );
    let plain = pylock_image();
    assert_ne!(one.digest, plain.digest, "bytecode changes the image");
    assert_eq!(installed(&one.report), installed(&plain.report));

    // On a read-only root, Python can write no pyc: every module imported from the venv
    // has its pyc in the image, unchecked-hash (PEP 552 flags 0b01).
    let script = r#"
import errno, os, sys
import yaml, flask
print(yaml.__cached__)
assert not sys.dont_write_bytecode
try:
    open("/opt/venv/probe", "w")
    print("writable")
except OSError as error:
    print("read-only" if error.errno == errno.EROFS else error)
missing, checked = [], 0
for name, module in sorted(sys.modules.items()):
    cached = getattr(module, "__cached__", None)
    if cached and cached.startswith("/opt/venv/"):
        checked += 1
        if not os.path.isfile(cached):
            missing.append(cached)
        else:
            with open(cached, "rb") as f:
                header = f.read(16)
            if int.from_bytes(header[4:8], "little") != 1:
                missing.append(cached + " (not unchecked-hash)")
print(checked, missing)
"#;
    let output = podman_run_ok_with(&one.reference, &["--read-only"], &["python", "-c", script]);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("/opt/venv/lib/python3.11/site-packages/yaml/__pycache__/__init__.cpython-311.pyc"),
        "{output}"
    );
    assert_eq!(lines.get(1).copied(), Some("read-only"), "{output}");
    let (checked, missing) = lines
        .get(2)
        .and_then(|line| line.split_once(' '))
        .unwrap_or_else(|| panic!("{output}"));
    assert_eq!(missing, "[]", "pycs missing from the image: {output}");
    let checked: usize = checked.parse().unwrap();
    assert!(checked >= 20, "yaml, flask and their imports: {output}");
}
