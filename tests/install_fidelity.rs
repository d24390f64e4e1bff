//! Install fidelity: envbuild installs each wheel as a reference installer does. For every
//! wheel of the fixture set, `uv pip install --no-deps --target` is the reference; the files
//! envbuild put in the image (read back with `umoci unpack`) must be the same paths with the
//! same bytes and the same executable bit, except the installer's own files (INSTALLER,
//! RECORD, REQUESTED, direct_url.json, uv's extras) and the launchers in `bin/`, which must
//! exist, be executable and start with the venv's shebang (podman runs them in tests/e2e.rs).
//! Each installed RECORD must list every file of its distribution with the right hash.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SITE_PACKAGES: &str = "opt/venv/lib/python3.11/site-packages";
const BIN: &str = "opt/venv/bin";
const SHEBANG: &str = "#!/opt/venv/bin/python";

/// Files an installer writes for itself, not taken from the wheel.
const INSTALLER_FILES: &[&str] = &[
    "INSTALLER",
    "RECORD",
    "REQUESTED",
    "direct_url.json",
    "uv_cache.json",
    "uv_build.json",
];

/// Regular files below `root`, relative, with their modes (symlinks listed as files too).
fn files_under(root: &Path) -> BTreeMap<String, u32> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, meta.permissions().mode());
            }
        }
    }
    files
}

fn is_installer_file(relative: &str) -> bool {
    let mut parts = relative.rsplitn(2, '/');
    let file = parts.next().unwrap();
    let parent = parts.next().unwrap_or("");
    parent.ends_with(".dist-info") && !parent.contains('/') && INSTALLER_FILES.contains(&file)
}

/// Installs `wheel` with uv into a fresh target folder; returns (site-packages files, bin files).
fn reference_install(wheel: &Path, scratch: &Path) -> (BTreeMap<String, u32>, PathBuf) {
    let target = scratch.join(wheel.file_name().unwrap());
    run_ok(
        Command::new("uv")
            .args([
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-index",
                "--no-config",
            ])
            .args(["--link-mode", "copy", "--python", "python3.11", "--target"])
            .arg(&target)
            .arg(wheel)
            .env("UV_CACHE_DIR", scratch.join("uv-cache"))
            .env("UV_PYTHON_DOWNLOADS", "never"),
    );
    let mut files = files_under(&target);
    files.retain(|path, _| !path.starts_with("bin/") && path != ".lock");
    (files, target)
}

#[test]
fn envbuild_installs_every_wheel_as_uv_does() {
    require_tool("uv");
    let built = build_example();
    let rootfs = umoci_unpack(&built.layout, &built.tag, &built.dir.path().join("bundle"));
    let site = rootfs.join(SITE_PACKAGES);
    let bin = rootfs.join(BIN);
    let scratch = scratch_dir("fidelity-");

    let installed = files_under(&site);
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let mut compared = 0usize;
    let mut problems: Vec<String> = Vec::new();
    let mut scripts_checked = 0usize;

    let wheels = fixture_wheels();
    for wheel in &wheels {
        let (reference, target) = reference_install(wheel, scratch.path());
        let dist_info = wheel_dist_info(wheel);
        assert!(
            reference
                .keys()
                .any(|p| p.starts_with(&format!("{dist_info}/"))),
            "uv installed no {dist_info} for {}",
            wheel.display()
        );
        for (path, mode) in &reference {
            if path.ends_with(".pyc") {
                continue;
            }
            if is_installer_file(path) {
                claimed.insert(path.clone());
                continue;
            }
            claimed.insert(path.clone());
            let Some(our_mode) = installed.get(path) else {
                problems.push(format!("{}: missing {path}", wheel.display()));
                continue;
            };
            let ours = fs_err::read(site.join(path)).unwrap();
            let theirs = fs_err::read(target.join(path)).unwrap();
            if ours != theirs {
                problems.push(format!(
                    "{path}: {} bytes differ from uv's {} bytes",
                    ours.len(),
                    theirs.len()
                ));
            }
            if (our_mode & 0o111 != 0) != (mode & 0o111 != 0) {
                problems.push(format!(
                    "{path}: mode {our_mode:o}, uv gives {mode:o} (executable bit differs)"
                ));
            }
            compared += 1;
        }

        // Launchers: the scripts uv made exist in the venv, executable, with our shebang.
        let uv_bin = target.join("bin");
        let uv_scripts: Vec<String> = if uv_bin.is_dir() {
            files_under(&uv_bin).into_keys().collect()
        } else {
            Vec::new()
        };
        let declared = console_scripts(wheel);
        for script in &declared {
            assert!(
                uv_scripts.contains(script),
                "uv made no {script} for {}",
                wheel.display()
            );
        }
        for script in &uv_scripts {
            let path = bin.join(script);
            match fs_err::metadata(&path) {
                Err(_) => problems.push(format!("bin/{script} is missing")),
                Ok(meta) => {
                    if meta.permissions().mode() & 0o111 == 0 {
                        problems.push(format!("bin/{script} is not executable"));
                    }
                    let text = fs_err::read_to_string(&path).unwrap_or_default();
                    if text.lines().next() != Some(SHEBANG) {
                        problems.push(format!(
                            "bin/{script} starts with {:?}, not {SHEBANG:?}",
                            text.lines().next()
                        ));
                    }
                    scripts_checked += 1;
                }
            }
        }

        // RECORD lists every file of the distribution, each with its hash and size.
        problems.extend(check_record(&site, &dist_info, &reference, &uv_scripts));
    }

    // Nothing in site-packages that no wheel put there (bytecode aside, which uv does not
    // write by default and which RECORD checks above cover).
    let unclaimed: Vec<&String> = installed
        .keys()
        .filter(|p| !claimed.contains(*p) && !p.ends_with(".pyc"))
        .collect();
    if !unclaimed.is_empty() {
        problems.push(format!("site-packages files from no wheel: {unclaimed:?}"));
    }

    println!(
        "install fidelity: compared {compared} files and {scripts_checked} launchers from {} wheels",
        wheels.len()
    );
    assert!(
        problems.is_empty(),
        "{} differences from uv:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(compared >= 300, "only {compared} files were compared");
    assert!(
        scripts_checked >= 3,
        "only {scripts_checked} launchers checked"
    );
}

/// Checks `<dist_info>/RECORD` in `site` against the files on disk.
fn check_record(
    site: &Path,
    dist_info: &str,
    reference: &BTreeMap<String, u32>,
    scripts: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    let record_path = site.join(dist_info).join("RECORD");
    let Ok(text) = fs_err::read(&record_path) else {
        return vec![format!("{dist_info}/RECORD is missing")];
    };
    let mut listed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_slice());
    for row in reader.records() {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                problems.push(format!("{dist_info}/RECORD: {e}"));
                continue;
            }
        };
        let (path, hash, size) = (&row[0], row.get(1).unwrap_or(""), row.get(2).unwrap_or(""));
        let on_disk = normalize_path(&site.join(path));
        listed.insert(on_disk.clone());
        let is_record = path == format!("{dist_info}/RECORD");
        if is_record || path.ends_with(".pyc") {
            continue;
        }
        let Ok(bytes) = fs_err::read(&on_disk) else {
            problems.push(format!("{dist_info}/RECORD lists {path}, which is missing"));
            continue;
        };
        match hash.strip_prefix("sha256=") {
            Some(hash) if hash == sha256_record(&bytes) => {}
            _ => problems.push(format!(
                "{dist_info}/RECORD: {path} has hash {hash:?}, the file's sha256 is {}",
                sha256_record(&bytes)
            )),
        }
        if size != bytes.len().to_string() {
            problems.push(format!(
                "{dist_info}/RECORD: {path} has size {size:?}, the file has {}",
                bytes.len()
            ));
        }
    }
    let mut expected: Vec<PathBuf> = reference
        .keys()
        .filter(|p| !p.ends_with(".pyc"))
        .filter(|p| {
            !is_installer_file(p)
                || ["INSTALLER", "RECORD"]
                    .iter()
                    .any(|f| p.as_str() == format!("{dist_info}/{f}"))
        })
        .map(|p| site.join(p))
        .collect();
    expected.extend(scripts.iter().map(|s| site.join("../../../bin").join(s)));
    for path in expected {
        let path = normalize_path(&path);
        if !listed.contains(&path) {
            problems.push(format!(
                "{dist_info}/RECORD does not list {}",
                path.strip_prefix(site.parent().unwrap())
                    .unwrap_or(&path)
                    .display()
            ));
        }
    }
    problems
}

/// Resolves `.` and `..` without touching the disk.
fn normalize_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
