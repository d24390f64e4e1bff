//! `poetry.lock` and `Pipfile.lock` made by the real tools: Poetry and Pipenv (installed
//! with pip by `scripts/lock-tools`) lock the hello-service dependency set against the
//! local index of the fixture wheels. envbuild reads each lockfile, selects for the
//! fixture target, looks the files up in the index the lockfile names (no other index is
//! configured) and chooses wheels: the result must be exactly the wheel set of the
//! pylock.toml that uv exports for the same project.

mod common;
mod index_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use envbuild::fetch::FetchOptions;
use envbuild::index::{IndexConfig, resolve_lookups};
use envbuild::lock::{GroupSelection, Lock, LockFormat, PackageSource};
use envbuild::platform::select::choose_wheels;

use common::{
    IndexServer, fixtures, hello_service, lock_example, repo_root, require_tool, run_ok,
    scratch_dir, stdout,
};
use index_support::target_311;

/// The lockers' executables, installed once by `scripts/lock-tools`.
struct LockTools {
    poetry: PathBuf,
    pipenv: PathBuf,
}

fn lock_tools() -> &'static LockTools {
    static TOOLS: OnceLock<Result<LockTools, String>> = OnceLock::new();
    common::once(&TOOLS, || {
        for tool in ["python3", "flock"] {
            require_tool(tool);
        }
        let mut command = Command::new("bash");
        command.arg(repo_root().join("scripts/lock-tools"));
        if let Some(cache) = std::env::var_os("ENVBUILD_TEST_CACHE") {
            command.env("ENVBUILD_TEST_CACHE", cache);
        }
        let output = run_ok(&mut command);
        let values: BTreeMap<String, String> = stdout(&output)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        LockTools {
            poetry: values["ENVBUILD_POETRY"].clone().into(),
            pipenv: values["ENVBUILD_PIPENV"].clone().into(),
        }
    })
}

/// The hello-service requirements, as written in its pyproject.toml.
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

/// A command for a locker: no index or pip/uv/Poetry/Pipenv setting from this machine,
/// caches and config in `scratch`.
fn locker(program: &Path, project: &Path, scratch: &Path) -> Command {
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
        .current_dir(project)
        .env("XDG_CACHE_HOME", scratch.join("xdg-cache"))
        .env("XDG_CONFIG_HOME", scratch.join("xdg-config"))
        .env("XDG_DATA_HOME", scratch.join("xdg-data"))
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

/// (name, version, sha256) of the wheel envbuild installs for each package of `lock`,
/// looking files up through the lockfile's own indexes only.
fn chosen_wheels(lock: &Path) -> BTreeSet<(String, String, String)> {
    let target = target_311();
    let lock = Lock::load(lock).unwrap_or_else(|error| panic!("{error}"));
    let packages = lock
        .select(&target.marker_environment(), &GroupSelection::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let resolved = runtime
        .block_on(resolve_lookups(
            packages,
            &lock.indexes(),
            &IndexConfig::default(),
            &FetchOptions::default(),
        ))
        .unwrap_or_else(|error| panic!("{error}"));
    choose_wheels(&resolved, &target)
        .unwrap_or_else(|error| panic!("{error}"))
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

/// The wheel set of uv's pylock.toml for hello-service, locked against `index_url`.
fn uv_wheels(index_url: &str) -> BTreeSet<(String, String, String)> {
    let locked = lock_example(index_url, &hello_service());
    let set = chosen_wheels(&locked.pylock);
    assert_eq!(set.len(), 17, "the hello-service set: {set:?}");
    set
}

#[test]
fn poetry_lock_matches_uv_pylock() {
    let tools = lock_tools();
    let server = IndexServer::start(&fixtures().wheels);
    let scratch = scratch_dir("poetry-");
    let project = scratch.path().join("project");
    fs_err::create_dir(&project).unwrap();
    let dependencies: Vec<String> = hello_requirements()
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
        locker(&tools.poetry, &project, scratch.path())
            .args(["source", "add", "--priority=primary", "local"])
            .arg(&server.url),
    );
    run_ok(locker(&tools.poetry, &project, scratch.path()).args(["lock", "--no-interaction"]));

    let lockfile = project.join("poetry.lock");
    let text = fs_err::read_to_string(&lockfile).unwrap();
    assert!(text.contains("lock-version = \"2.1\""), "{text}");
    let lock = Lock::load(&lockfile).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(lock.format(), LockFormat::PoetryLock);
    // Every package names the local source; nothing else is configured.
    assert_eq!(
        lock.indexes()
            .iter()
            .map(|url| url.as_str().trim_end_matches('/').to_string())
            .collect::<Vec<_>>(),
        [server.url.trim_end_matches('/')]
    );
    let packages = lock
        .select(
            &target_311().marker_environment(),
            &GroupSelection::default(),
        )
        .unwrap();
    assert!(
        packages
            .iter()
            .all(|package| matches!(package.source, PackageSource::IndexLookup { .. })),
        "{packages:?}"
    );

    assert_eq!(chosen_wheels(&lockfile), uv_wheels(&server.url));
}

#[test]
fn pipfile_lock_matches_uv_pylock() {
    let tools = lock_tools();
    require_tool("python3.11");
    let server = IndexServer::start(&fixtures().wheels);
    let scratch = scratch_dir("pipenv-");
    let project = scratch.path().join("project");
    fs_err::create_dir(&project).unwrap();
    let mut packages = String::new();
    for requirement in hello_requirements() {
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
            "[[source]]\nurl = \"{}\"\nverify_ssl = false\nname = \"local\"\n\n[packages]\n{packages}\n[dev-packages]\n\n[requires]\npython_version = \"3.11\"\n",
            server.url
        ),
    )
    .unwrap();
    run_ok(locker(&tools.pipenv, &project, scratch.path()).arg("lock"));

    let lockfile = project.join("Pipfile.lock");
    let lock = Lock::load(&lockfile).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(lock.format(), LockFormat::PipfileLock);
    assert_eq!(
        lock.indexes()
            .iter()
            .map(url::Url::as_str)
            .collect::<Vec<_>>(),
        [server.url.as_str()]
    );

    assert_eq!(chosen_wheels(&lockfile), uv_wheels(&server.url));
}
