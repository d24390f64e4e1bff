//! Shared helpers of the install-fidelity tests: walk an installed tree, tell an installer's
//! own files from a wheel's, read a wheel's WHEEL and entry points, and read RECORD files and
//! check them against the disk. Paths are `/`-separated and relative to a root (a venv prefix
//! or site-packages) unless said otherwise.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{sha256_record, wheel_dist_info, wheel_text};

/// Files an installer writes for itself into a `.dist-info`, not taken from the wheel
/// (uv adds `uv_cache.json` or `uv_build.json`; REQUESTED and direct_url.json are optional).
pub const INSTALLER_FILES: &[&str] = &[
    "INSTALLER",
    "RECORD",
    "REQUESTED",
    "direct_url.json",
    "uv_cache.json",
    "uv_build.json",
];

/// One non-directory entry of an installed tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeFile {
    /// Its permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// True for a symbolic link (never followed).
    pub symlink: bool,
}

impl TreeFile {
    /// True when any execute bit is set.
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// Every non-directory below `root` (regular files and symlinks, which are not followed), by
/// relative path; empty when `root` does not exist.
pub fn tree(root: &Path) -> BTreeMap<String, TreeFile> {
    let mut files = BTreeMap::new();
    if !root.is_dir() {
        return files;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
                .to_owned();
            files.insert(
                relative,
                TreeFile {
                    mode: meta.permissions().mode() & 0o7777,
                    symlink: meta.file_type().is_symlink(),
                },
            );
        }
    }
    files
}

/// True when `site_relative` (a path relative to site-packages) is one of
/// [`INSTALLER_FILES`] in a top-level `.dist-info` folder.
pub fn is_installer_file(site_relative: &str) -> bool {
    match site_relative.split_once('/') {
        Some((folder, file)) => folder.ends_with(".dist-info") && INSTALLER_FILES.contains(&file),
        None => false,
    }
}

/// `base/relative` with `.` and `..` resolved lexically; `None` when it climbs above the root
/// `base` is relative to.
pub fn join_normalized(base: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// One row of a RECORD file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordRow {
    /// The path as written (relative to site-packages).
    pub path: String,
    /// `sha256=...` or empty.
    pub hash: String,
    /// The size in bytes as written, or empty.
    pub size: String,
}

/// The rows of a RECORD file (CSV, as Python's `csv` module reads it).
pub fn read_record(path: &Path) -> Result<Vec<RecordRow>, String> {
    let bytes = fs_err::read(path).map_err(|e| e.to_string())?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut rows = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("{}:{}: {e}", path.display(), line + 1))?;
        if row.len() != 3 {
            return Err(format!(
                "{}:{}: {} fields, RECORD rows have 3",
                path.display(),
                line + 1,
                row.len()
            ));
        }
        rows.push(RecordRow {
            path: row[0].to_owned(),
            hash: row[1].to_owned(),
            size: row[2].to_owned(),
        });
    }
    Ok(rows)
}

/// Checks every row of `<prefix>/<site>/<dist_info>/RECORD` against the file it names, below
/// `prefix`: the file exists, and its sha256 and size are the ones written (RECORD itself has
/// neither, `.pyc` rows may have neither). Returns the problems found and the prefix-relative
/// paths RECORD lists.
pub fn check_record_against_disk(
    prefix: &Path,
    site: &str,
    dist_info: &str,
) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    let record = format!("{site}/{dist_info}/RECORD");
    let rows = match read_record(&prefix.join(&record)) {
        Ok(rows) => rows,
        Err(e) => return (vec![format!("{record} cannot be read: {e}")], listed),
    };
    for row in rows {
        let Some(path) = join_normalized(site, &row.path) else {
            problems.push(format!("{record} lists {}, outside the prefix", row.path));
            continue;
        };
        if !listed.insert(path.clone()) {
            problems.push(format!("{record} lists {} twice", row.path));
        }
        if row.path == format!("{dist_info}/RECORD") {
            if !row.hash.is_empty() || !row.size.is_empty() {
                problems.push(format!("{record} gives itself a hash or size"));
            }
            continue;
        }
        if row.path.ends_with(".pyc") && row.hash.is_empty() {
            continue;
        }
        let Ok(bytes) = fs_err::read(prefix.join(&path)) else {
            problems.push(format!("{record} lists {}, which is missing", row.path));
            continue;
        };
        let actual = format!("sha256={}", sha256_record(&bytes));
        if row.hash != actual {
            problems.push(format!(
                "{record}: {} has hash {:?}, the file's is {actual}",
                row.path, row.hash
            ));
        }
        if row.size != bytes.len().to_string() {
            problems.push(format!(
                "{record}: {} has size {:?}, the file has {} bytes",
                row.path,
                row.size,
                bytes.len()
            ));
        }
    }
    (problems, listed)
}

/// An entry point of a `console_scripts` or `gui_scripts` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntryPoint {
    /// `console_scripts` or `gui_scripts`.
    pub group: String,
    /// The launcher's name.
    pub name: String,
    /// The object reference, `module:object[.attr]` (extras dropped).
    pub value: String,
}

/// The `console_scripts` and `gui_scripts` entry points of a wheel (INI, `=` only, as
/// configparser reads `entry_points.txt`).
pub fn script_entry_points(wheel: &Path) -> Vec<ScriptEntryPoint> {
    let path = format!("{}/entry_points.txt", wheel_dist_info(wheel));
    let Some(text) = wheel_text(wheel, &path) else {
        return Vec::new();
    };
    let mut group: Option<String> = None;
    let mut points = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = Some(section.trim().to_owned())
                .filter(|s| s == "console_scripts" || s == "gui_scripts");
            continue;
        }
        if let (Some(group), Some((name, value))) = (&group, line.split_once('=')) {
            let value = value.split('[').next().unwrap().trim();
            points.push(ScriptEntryPoint {
                group: group.clone(),
                name: name.trim().to_owned(),
                value: value.to_owned(),
            });
        }
    }
    points
}

/// `Root-Is-Purelib` of a wheel's WHEEL file.
pub fn root_is_purelib(wheel: &Path) -> bool {
    let path = format!("{}/WHEEL", wheel_dist_info(wheel));
    let text =
        wheel_text(wheel, &path).unwrap_or_else(|| panic!("{} has no {path}", wheel.display()));
    text.lines()
        .find_map(|line| line.strip_prefix("Root-Is-Purelib:"))
        .map(|value| value.trim().eq_ignore_ascii_case("true"))
        .unwrap_or_else(|| panic!("{path} of {} has no Root-Is-Purelib", wheel.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_normalized_resolves_parents() {
        let site = "lib/python3.11/site-packages";
        assert_eq!(join_normalized(site, "../../../bin/x").unwrap(), "bin/x");
        assert_eq!(
            join_normalized(site, "./a/../b.py").unwrap(),
            format!("{site}/b.py")
        );
        assert_eq!(join_normalized(site, "../../../../x"), None);
    }

    #[test]
    fn installer_files_only_in_top_level_dist_info() {
        assert!(is_installer_file("a-1.dist-info/RECORD"));
        assert!(is_installer_file("a-1.dist-info/uv_cache.json"));
        assert!(!is_installer_file("a-1.dist-info/METADATA"));
        assert!(!is_installer_file("pkg/a-1.dist-info/RECORD"));
        assert!(!is_installer_file("RECORD"));
    }
}
