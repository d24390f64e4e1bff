//! Source builds, end to end with real parts: projects of tests/data/source built by
//! their real PEP 517 backends (flit-core, hatchling, setuptools, poetry-core,
//! pdm-backend, pinned in tests/data/build-backends.txt and served from a local index on
//! 127.0.0.1) as a folder, as sdists made here and verified by hash, and as a git
//! source from a repository made here, locked at its commit; the image runs in podman.
//! The failure cases use in-tree backends (`backend-path`), which need no index.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{IndexServer, envbuild, fixtures, podman_run_ok, run_ok, scratch_dir, stderr, stdout};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The backends' wheels, made by scripts/fixtures next to the other fixtures.
fn backends() -> PathBuf {
    let folder = std::env::var_os("ENVBUILD_FIXTURE_BUILD_BACKENDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures().cache.join("build-backends"));
    assert!(
        folder.join("flit_core-3.10.1-py3-none-any.whl").is_file(),
        "scripts/fixtures made no build backends in {}",
        folder.display()
    );
    folder
}

fn source_data(name: &str) -> PathBuf {
    common::repo_root().join("tests/data/source").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

/// An sdist of `project` (a folder of tests/data/source) named `<stem>.tar.gz`, with the
/// usual single top folder `<stem>/`; returns its path and sha256.
fn make_sdist(project: &str, stem: &str, into: &Path) -> (PathBuf, String) {
    let path = into.join(format!("{stem}.tar.gz"));
    let file = fs_err::File::create(&path).unwrap();
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_dir_all(stem, source_data(project)).unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let hash = hex(&Sha256::digest(fs_err::read(&path).unwrap()));
    (path, hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn git(folder: &Path, args: &[&str]) -> String {
    let output = run_ok(
        Command::new("git")
            .current_dir(folder)
            .args([
                "-c",
                "user.name=envbuild",
                "-c",
                "user.email=tests@envbuild.invalid",
            ])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args),
    );
    stdout(&output).trim().to_string()
}

/// A git repository holding `project` in `sub/`, one commit; returns the commit.
fn make_repo(project: &str, repo: &Path) -> String {
    fs_err::create_dir_all(repo).unwrap();
    git(repo, &["init", "--quiet"]);
    copy_dir(&source_data(project), &repo.join("sub"));
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "the project"]);
    git(repo, &["rev-parse", "HEAD"])
}

const HEADER: &str =
    "lock-version = \"1.0\"\ncreated-by = \"envbuild tests\"\nrequires-python = \">=3.11\"\n";

fn build(
    lock: &Path,
    output: &str,
    cache: &Path,
    index: &str,
    extra: &[&str],
) -> std::process::Output {
    envbuild()
        .args(["image", "--lock"])
        .arg(lock)
        .args(["--base", &fixtures().base_ref, "--output", output, "--json"])
        .arg("--cache-dir")
        .arg(cache)
        .args(["--no-index-config", "--index-url", index])
        .args(extra)
        .output()
}

#[test]
fn ok_each_backend_from_folder_sdist_and_git_builds_the_same_wheels_and_runs() {
    let scratch = scratch_dir("source-ok");
    let work = scratch.path();
    let index = IndexServer::start(&backends());

    // flit-core from a folder; hatchling, setuptools and pdm-backend from sdists;
    // poetry-core from a git repository, in a subfolder, at its commit.
    copy_dir(&source_data("flit-demo"), &work.join("flit-demo"));
    let mut lock = HEADER.to_string();
    lock.push_str("\n[[packages]]\nname = \"flit-demo\"\ndirectory = { path = \"flit-demo\" }\n");
    for (project, stem) in [
        ("hatch-demo", "hatch_demo-1.0"),
        ("setuptools-demo", "setuptools_demo-1.0"),
        ("pdm-demo", "pdm_demo-1.0"),
    ] {
        let (_, hash) = make_sdist(project, stem, work);
        lock.push_str(&format!(
            "\n[[packages]]\nname = \"{project}\"\nversion = \"1.0\"\nsdist = {{ name = \"{stem}.tar.gz\", path = \"{stem}.tar.gz\", hashes = {{ sha256 = \"{hash}\" }} }}\n"
        ));
    }
    let commit = make_repo("poetry-demo", &work.join("repo"));
    lock.push_str(&format!(
        "\n[[packages]]\nname = \"poetry-demo\"\nvcs = {{ type = \"git\", url = \"file://{}\", commit-id = \"{commit}\", subdirectory = \"sub\" }}\n",
        work.join("repo").display()
    ));
    let lock_path = work.join("pylock.toml");
    fs_err::write(&lock_path, &lock).unwrap();

    let image = format!("oci:{}:one", work.join("out").display());
    let first = build(&lock_path, &image, &work.join("cache-1"), &index.url, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    let built = report["built_from_source"]
        .as_array()
        .expect("built packages");
    let backends: Vec<(&str, &str)> = built
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().unwrap(),
                entry["backend"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        backends,
        [
            ("flit-demo", "flit_core.buildapi"),
            ("hatch-demo", "hatchling.build"),
            ("pdm-demo", "pdm.backend"),
            ("poetry-demo", "poetry.core.masonry.api"),
            ("setuptools-demo", "setuptools.build_meta"),
        ]
    );
    let poetry = &built[3];
    assert_eq!(poetry["source_hash"], format!("git:{commit}"));
    assert!(
        poetry["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|requirement| requirement == "poetry-core==2.0.1"),
        "{poetry}"
    );

    // The image runs the built packages and the console script.
    let out = podman_run_ok(
        &image,
        &[
            "python",
            "-c",
            "import hatch_demo, setuptools_demo, pdm_demo, poetry_demo; print(hatch_demo.GREETING, setuptools_demo.GREETING, pdm_demo.GREETING, poetry_demo.GREETING)",
        ],
    );
    assert_eq!(
        out.trim(),
        "hatch-demo says hello setuptools-demo says hello pdm-demo says hello poetry-demo says hello"
    );
    assert_eq!(
        podman_run_ok(&image, &["flit-demo"]).trim(),
        "flit-demo says hello"
    );

    // Another cache (so every build runs again, in other folders): the same wheels, the
    // same image. The first cache again: every wheel from it.
    let second = build(
        &lock_path,
        &format!("oci:{}:two", work.join("out").display()),
        &work.join("cache-2"),
        &index.url,
        &[],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let again: Value = serde_json::from_slice(&second.stdout).unwrap();
    let hashes = |report: &Value| -> Vec<String> {
        report["built_from_source"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["sha256"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(hashes(&report), hashes(&again));
    assert_eq!(report["digest"], again["digest"]);
    let cached = build(
        &lock_path,
        &format!("oci:{}:three", work.join("out").display()),
        &work.join("cache-1"),
        &index.url,
        &["--offline"],
    );
    assert!(cached.status.success(), "{}", stderr(&cached));
    let cached: Value = serde_json::from_slice(&cached.stdout).unwrap();
    assert!(
        cached["built_from_source"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["cached"] == true)
    );
    assert_eq!(report["digest"], cached["digest"]);
}

/// A project whose in-tree backend (`backend-path`) runs `body` as `build_wheel`.
fn in_tree_project(folder: &Path, name: &str, body: &str) {
    fs_err::create_dir_all(folder).unwrap();
    fs_err::write(
        folder.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n\n[project]\nname = \"{name}\"\nversion = \"1.0\"\n"
        ),
    )
    .unwrap();
    fs_err::write(
        folder.join("backend.py"),
        format!("import os, sys, time, zipfile\n\ndef build_wheel(out, config_settings=None, metadata_directory=None):\n{body}\n"),
    )
    .unwrap();
}

fn folder_lock(work: &Path, name: &str) -> PathBuf {
    let lock = work.join("pylock.toml");
    fs_err::write(
        &lock,
        format!("{HEADER}\n[[packages]]\nname = \"{name}\"\ndirectory = {{ path = \"{name}\" }}\n"),
    )
    .unwrap();
    lock
}

fn failing_build(name: &str, body: &str, extra: &[&str]) -> String {
    let scratch = scratch_dir("source-err");
    let work = scratch.path();
    in_tree_project(&work.join(name), name, body);
    let lock = folder_lock(work, name);
    let output = build(
        &lock,
        &format!("oci:{}:x", work.join("out").display()),
        &work.join("cache"),
        "http://127.0.0.1:9/simple/",
        extra,
    );
    assert!(!output.status.success(), "the build should fail");
    assert!(!work.join("out").exists(), "a failed build wrote an image");
    stderr(&output)
}

#[test]
fn err_backend_failure_shows_its_output() {
    let text = failing_build(
        "broken",
        "    print('the backend exploded on purpose')\n    sys.exit(3)",
        &[],
    );
    assert!(
        text.contains("package `broken`: the source build failed while building the wheel"),
        "{text}"
    );
    assert!(text.contains("the backend exploded on purpose"), "{text}");
}

#[test]
fn err_hanging_backend_is_stopped_at_the_time_limit() {
    let started = std::time::Instant::now();
    let text = failing_build(
        "sleepy",
        "    print('sleeping', flush=True)\n    time.sleep(600)",
        &["--build-timeout", "3"],
    );
    assert!(
        text.contains("stopped after 3 s while building the wheel"),
        "{text}"
    );
    assert!(text.contains("--build-timeout"), "{text}");
    assert!(started.elapsed().as_secs() < 120);
}

#[test]
fn err_wheel_of_another_package_is_refused() {
    let text = failing_build(
        "liar",
        "    name = 'other-1.0-py3-none-any.whl'\n    zipfile.ZipFile(os.path.join(out, name), 'w').close()\n    return name",
        &[],
    );
    assert!(
        text.contains(
            "the build backend made `other-1.0-py3-none-any.whl`, but the lock names the package `liar`"
        ),
        "{text}"
    );
}

#[test]
fn err_platform_wheel_is_refused() {
    let text = failing_build(
        "native",
        "    name = 'native-1.0-cp311-cp311-linux_x86_64.whl'\n    zipfile.ZipFile(os.path.join(out, name), 'w').close()\n    return name",
        &[],
    );
    assert!(text.contains("a wheel with compiled code"), "{text}");
}

#[test]
fn err_no_build_refuses_the_source() {
    let text = failing_build(
        "plain",
        "    raise SystemExit('never run')",
        &["--no-build"],
    );
    assert!(text.contains("a local source tree"), "{text}");
    assert!(!text.contains("never run"), "{text}");
}

#[test]
fn err_sdist_with_another_hash_and_git_at_a_missing_commit() {
    let scratch = scratch_dir("source-err-hash");
    let work = scratch.path();
    let (_, hash) = make_sdist("hatch-demo", "hatch_demo-1.0", work);
    let wrong = format!(
        "{}{}",
        if hash.starts_with('0') { "1" } else { "0" },
        &hash[1..]
    );
    let commit = make_repo("poetry-demo", &work.join("repo"));
    let missing = format!(
        "{}{}",
        if commit.starts_with('0') { "1" } else { "0" },
        &commit[1..]
    );

    let lock = work.join("pylock.toml");
    fs_err::write(
        &lock,
        format!("{HEADER}\n[[packages]]\nname = \"hatch-demo\"\nversion = \"1.0\"\nsdist = {{ name = \"hatch_demo-1.0.tar.gz\", path = \"hatch_demo-1.0.tar.gz\", hashes = {{ sha256 = \"{wrong}\" }} }}\n"),
    )
    .unwrap();
    let output = build(
        &lock,
        &format!("oci:{}:x", work.join("out").display()),
        &work.join("cache"),
        "http://127.0.0.1:9/simple/",
        &[],
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("hatch_demo-1.0.tar.gz"), "{text}");
    assert!(text.contains(&wrong[..12]), "{text}");

    fs_err::write(
        &lock,
        format!("{HEADER}\n[[packages]]\nname = \"poetry-demo\"\nvcs = {{ type = \"git\", url = \"file://{}\", commit-id = \"{missing}\", subdirectory = \"sub\" }}\n", work.join("repo").display()),
    )
    .unwrap();
    let output = build(
        &lock,
        &format!("oci:{}:x", work.join("out").display()),
        &work.join("cache"),
        "http://127.0.0.1:9/simple/",
        &[],
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains(&format!("at the locked commit `{missing}`")),
        "{text}"
    );
    assert!(!work.join("out").exists());
}

/// `uv` in `dir`, seeing no user or system configuration and no index from the
/// environment, with a private cache and no Python downloads.
fn uv(dir: &Path, cache: &Path) -> Command {
    common::require_tool("uv");
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

#[test]
fn ok_uv_workspace_member_is_built_from_its_folder_and_its_script_runs() {
    let scratch = scratch_dir("source-uv");
    let work = scratch.path();
    let wheels = IndexServer::start(&fixtures().wheels);
    let build_index = IndexServer::start(&backends());

    // A virtual workspace root that depends on its `app` member, the project's code.
    fs_err::write(
        work.join("pyproject.toml"),
        "[project]\nname = \"service\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"app\"]\n\n[tool.uv.workspace]\nmembers = [\"packages/app\"]\n\n[tool.uv.sources]\napp = { workspace = true }\n",
    )
    .unwrap();
    let app = work.join("packages/app");
    fs_err::create_dir_all(app.join("app")).unwrap();
    fs_err::write(
        app.join("pyproject.toml"),
        "[build-system]\nrequires = [\"flit_core>=3.4,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n\n[project]\nname = \"app\"\nversion = \"0.2.0\"\ndescription = \"The service's own code.\"\nrequires-python = \">=3.11\"\ndependencies = [\"pyyaml==6.0.4\"]\n\n[project.scripts]\napp-hello = \"app:main\"\n",
    )
    .unwrap();
    fs_err::write(
        app.join("app/__init__.py"),
        "\"\"\"The service's own code.\"\"\"\nimport yaml\n\n\ndef main():\n    print(yaml.safe_dump({\"app\": \"built from its folder\"}).strip())\n",
    )
    .unwrap();
    run_ok(uv(work, &work.join("uv-cache")).args([
        "lock",
        "--quiet",
        "--default-index",
        &wheels.url,
    ]));

    let image = format!("oci:{}:app", work.join("out").display());
    let output = build(
        &work.join("uv.lock"),
        &image,
        &work.join("cache"),
        &build_index.url,
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let built = report["built_from_source"].as_array().unwrap();
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(built[0]["name"], "app");
    assert_eq!(built[0]["wheel"], "app-0.2.0-py3-none-any.whl");
    assert_eq!(
        podman_run_ok(&image, &["app-hello"]).trim(),
        "app: built from its folder"
    );

    // `check` builds (here: takes from the cache) the member too, and checks its
    // requirements against the lock.
    let checked = envbuild()
        .args(["check", "--lock"])
        .arg(work.join("uv.lock"))
        .args([
            "--python",
            "3.11",
            "--glibc",
            "2.36",
            "--platform",
            "linux/amd64",
        ])
        .args(["--no-index-config", "--index-url", &build_index.url])
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .output();
    assert!(checked.status.success(), "{}", stderr(&checked));
}
