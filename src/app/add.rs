//! `--add SRC:DEST`: a file or folder tree of the build machine copied into a layer of
//! its own, deterministically: files sorted by path bytes, modes normalized (0755 when
//! any execute bit is set, else 0644; folders 0755), owner root unless `--chown`,
//! timestamps from `SOURCE_DATE_EPOCH`. Excludes come from an ignore file with Docker's
//! pattern rules ([`super::ignore`]) plus `__pycache__`, `.git` and `*.pyc`. Symlinks
//! stay links when they point inside SRC; one pointing outside is an error, as are
//! sockets, devices and fifos (they cannot be copied meaningfully).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::AppError;
use super::ignore::IgnoreRules;
use crate::layer::{LayerContent, LayerEntry};
use crate::repro::{DIR_MODE, FILE_MODE};
use crate::wheel::{PycCompiler, PycOutcome, PycSource};

/// Patterns always excluded (an ignore file may re-include them with `!`).
pub const DEFAULT_IGNORES: &str = "**/__pycache__\n**/.git\n**/*.pyc\n";

/// The ignore files looked for in SRC when `--ignore-file` is not given; the first found
/// counts.
pub const IGNORE_FILES: [&str; 2] = [".envbuildignore", ".dockerignore"];

/// Mode of an executable file.
const EXECUTABLE_MODE: u32 = 0o755;

/// One `--add SRC:DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSpec {
    /// The file or folder on the build machine.
    pub source: PathBuf,
    /// The path in the image, without the leading `/`.
    pub dest: String,
    /// DEST ended in `/`: a file source goes into that folder under its own name.
    pub into_folder: bool,
}

impl AddSpec {
    /// Parse `SRC:DEST` (split at the last `:`; DEST absolute), SRC made absolute
    /// against `folder`.
    pub fn parse(text: &str, folder: &Path) -> Result<Self, AppError> {
        let invalid = |reason: &str| AppError::InvalidAdd {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (source, dest) = text
            .rsplit_once(':')
            .ok_or_else(|| invalid("it has no `:` between SRC and DEST"))?;
        if source.is_empty() {
            return Err(invalid("SRC is empty"));
        }
        if !dest.starts_with('/') {
            return Err(invalid(
                "DEST must be an absolute path in the image, such as `/app`",
            ));
        }
        let mut parts = Vec::new();
        for part in dest.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(invalid("DEST must not contain `..`")),
                part => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(invalid(
                "DEST must be a folder or file below `/`, not `/` itself",
            ));
        }
        Ok(Self {
            source: folder.join(source),
            dest: parts.join("/"),
            into_folder: dest.ends_with('/'),
        })
    }

    /// The spec as it would be written (`SRC:DEST`).
    pub fn display(&self) -> String {
        format!(
            "{}:/{}{}",
            self.source.display(),
            self.dest,
            if self.into_folder { "/" } else { "" }
        )
    }
}

/// How `--add` trees are copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// `--ignore-file` (default: `.envbuildignore`, then `.dockerignore`, in SRC).
    pub ignore_file: Option<PathBuf>,
    /// `--chown UID:GID` for the copied files and folders (default root).
    pub owner: Option<(u32, u32)>,
}

/// The entries of the layer for `spec`: the parent folders of DEST (root's, 0755), then
/// the copied tree, sorted by path bytes, parents first.
pub fn plan_add(spec: &AddSpec, options: &AddOptions) -> Result<Vec<LayerEntry>, AppError> {
    let owner = options.owner.unwrap_or((0, 0));
    let metadata = fs_err::metadata(&spec.source).map_err(|source| AppError::Read {
        path: spec.source.clone(),
        source: std::io::Error::new(source.kind(), source),
    })?;
    let mut entries = Vec::new();
    let dest = if metadata.is_dir() {
        let rules = ignore_rules(spec, options)?;
        entries.push(LayerEntry {
            path: format!("{}/", spec.dest),
            owner,
            content: LayerContent::Directory(DIR_MODE),
        });
        let mut walker = Walker {
            root: &spec.source,
            dest: &spec.dest,
            rules: &rules,
            owner,
            entries: &mut entries,
        };
        walker.walk("")?;
        spec.dest.clone()
    } else if metadata.is_file() {
        let name = spec
            .source
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| AppError::NonUtf8Path {
                path: spec.source.clone(),
            })?;
        let path = if spec.into_folder {
            entries.push(LayerEntry {
                path: format!("{}/", spec.dest),
                owner,
                content: LayerContent::Directory(DIR_MODE),
            });
            format!("{}/{name}", spec.dest)
        } else {
            spec.dest.clone()
        };
        entries.push(LayerEntry {
            path,
            owner,
            content: file_content(&spec.source, &metadata),
        });
        spec.dest.clone()
    } else {
        return Err(AppError::SpecialFile {
            path: spec.source.clone(),
            kind: special_kind(&metadata.file_type()),
        });
    };
    // The folders above DEST, root's.
    let mut parent = String::new();
    for part in dest
        .split('/')
        .collect::<Vec<_>>()
        .split_last()
        .map_or(&[][..], |(_, rest)| rest)
    {
        parent = if parent.is_empty() {
            part.to_string()
        } else {
            format!("{parent}/{part}")
        };
        entries.push(LayerEntry {
            path: format!("{parent}/"),
            owner: (0, 0),
            content: LayerContent::Directory(DIR_MODE),
        });
    }
    sort_entries(&mut entries);
    Ok(entries)
}

/// Sort by path bytes, folders by their path without the `/` (so parents come first),
/// keeping the first of two entries at one path.
pub fn sort_entries(entries: &mut Vec<LayerEntry>) {
    entries.sort_by(|left, right| {
        left.path
            .trim_end_matches('/')
            .as_bytes()
            .cmp(right.path.trim_end_matches('/').as_bytes())
    });
    entries.dedup_by(|later, earlier| later.path == earlier.path);
}

/// Compile every `.py` file among `entries` to a PEP 552 unchecked-hash pyc next to it
/// (`__pycache__/NAME.cpython-3X.pyc`), owned like its source; sources that do not
/// compile are skipped, as `compileall` does.
pub fn add_bytecode(
    entries: &mut Vec<LayerEntry>,
    compiler: &PycCompiler,
    label: &str,
) -> Result<(), AppError> {
    let mut sources = Vec::new();
    for entry in entries.iter() {
        if let Some(pyc) = compiler.pyc_path(&entry.path) {
            let bytes = match &entry.content {
                LayerContent::File { source, .. } => {
                    fs_err::read(source).map_err(|error| AppError::Read {
                        path: source.clone(),
                        source: std::io::Error::new(error.kind(), error),
                    })?
                }
                LayerContent::Bytes { bytes, .. } => bytes.clone(),
                _ => continue,
            };
            sources.push((entry.path.clone(), pyc, entry.owner, bytes));
        }
    }
    if sources.is_empty() {
        return Ok(());
    }
    let requests: Vec<_> = sources
        .iter()
        .map(|(path, _, _, bytes)| {
            Ok(PycSource {
                path: format!("/{path}"),
                source: bytes.clone(),
            })
        })
        .collect();
    let outcomes = compiler.compile(label, requests)?;
    for ((_, pyc, owner, _), outcome) in sources.into_iter().zip(outcomes) {
        if let PycOutcome::Compiled(bytes) = outcome {
            let folder = pyc.rsplit_once('/').map_or("", |(folder, _)| folder);
            entries.push(LayerEntry {
                path: format!("{folder}/"),
                owner,
                content: LayerContent::Directory(DIR_MODE),
            });
            entries.push(LayerEntry {
                path: pyc,
                owner,
                content: LayerContent::Bytes {
                    mode: FILE_MODE,
                    bytes,
                },
            });
        }
    }
    sort_entries(entries);
    Ok(())
}

/// The default patterns, then those of the ignore file.
fn ignore_rules(spec: &AddSpec, options: &AddOptions) -> Result<IgnoreRules, AppError> {
    let defaults = IgnoreRules::parse(DEFAULT_IGNORES, "the default ignore patterns")?;
    let file = match &options.ignore_file {
        Some(path) => Some(path.clone()),
        None => IGNORE_FILES
            .iter()
            .map(|name| spec.source.join(name))
            .find(|path| path.is_file()),
    };
    let Some(file) = file else {
        return Ok(defaults);
    };
    let text = fs_err::read_to_string(&file).map_err(|source| AppError::Read {
        path: file.clone(),
        source: std::io::Error::new(source.kind(), source),
    })?;
    Ok(defaults.then(IgnoreRules::parse(&text, &file.display().to_string())?))
}

fn file_content(path: &Path, metadata: &std::fs::Metadata) -> LayerContent {
    let mode = if metadata.permissions().mode() & 0o111 != 0 {
        EXECUTABLE_MODE
    } else {
        FILE_MODE
    };
    LayerContent::File {
        mode,
        source: path.to_path_buf(),
        size: metadata.len(),
    }
}

fn special_kind(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "a fifo"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "not a regular file, folder or symlink"
    }
}

struct Walker<'a> {
    root: &'a Path,
    dest: &'a str,
    rules: &'a IgnoreRules,
    owner: (u32, u32),
    entries: &'a mut Vec<LayerEntry>,
}

impl Walker<'_> {
    /// Walk the folder `relative` (`""` is SRC); returns whether anything in it was kept.
    fn walk(&mut self, relative: &str) -> Result<bool, AppError> {
        let folder = self.root.join(relative);
        let read_error = |path: &Path, source: std::io::Error| AppError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&folder).map_err(|error| read_error(&folder, error))? {
            let entry = entry.map_err(|error| read_error(&folder, error))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| AppError::NonUtf8Path { path: entry.path() })?;
            names.push(name.to_string());
        }
        names.sort();
        let mut kept_any = false;
        for name in names {
            let relative = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            let path = self.root.join(&relative);
            let excluded = self.rules.excludes(&relative);
            let metadata =
                std::fs::symlink_metadata(&path).map_err(|error| read_error(&path, error))?;
            let file_type = metadata.file_type();
            let tar_path = format!("{}/{relative}", self.dest);
            if file_type.is_dir() {
                if excluded && !self.rules.has_exceptions() {
                    continue;
                }
                let position = self.entries.len();
                let kept_inside = self.walk(&relative)?;
                if !excluded || kept_inside {
                    self.entries.insert(
                        position,
                        LayerEntry {
                            path: format!("{tar_path}/"),
                            owner: self.owner,
                            content: LayerContent::Directory(DIR_MODE),
                        },
                    );
                    kept_any = true;
                }
                continue;
            }
            if excluded {
                continue;
            }
            kept_any = true;
            let content = if file_type.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|error| read_error(&path, error))?;
                let text = target
                    .to_str()
                    .ok_or_else(|| AppError::NonUtf8Path { path: path.clone() })?;
                if !stays_inside(&relative, text) {
                    return Err(AppError::SymlinkEscapes {
                        link: path,
                        target: text.to_string(),
                        root: self.root.to_path_buf(),
                    });
                }
                LayerContent::Symlink(text.to_string())
            } else if file_type.is_file() {
                file_content(&path, &metadata)
            } else {
                return Err(AppError::SpecialFile {
                    path,
                    kind: special_kind(&file_type),
                });
            };
            self.entries.push(LayerEntry {
                path: tar_path,
                owner: self.owner,
                content,
            });
        }
        Ok(kept_any)
    }
}

/// Whether the link at `relative` (inside SRC) with `target` resolves inside SRC, by
/// its path alone (an absolute target never does: SRC is not `/` in the image).
fn stays_inside(relative: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut parts: Vec<&str> = relative.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return false;
                }
            }
            part => parts.push(part),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(entries: &[LayerEntry]) -> Vec<&str> {
        entries.iter().map(|entry| entry.path.as_str()).collect()
    }

    #[test]
    fn ok_tree_sorted_normalized_and_ignored() {
        let folder = tempfile::tempdir().unwrap();
        let src = folder.path().join("src");
        fs_err::create_dir_all(src.join("pkg/__pycache__")).unwrap();
        fs_err::create_dir_all(src.join("build/keep")).unwrap();
        fs_err::write(src.join("pkg/a.py"), "x = 1\n").unwrap();
        fs_err::write(src.join("pkg/__pycache__/a.cpython-311.pyc"), "junk").unwrap();
        fs_err::write(src.join("run.sh"), "#!/bin/sh\n").unwrap();
        fs_err::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        fs_err::write(src.join("secret.txt"), "s").unwrap();
        fs_err::set_permissions(
            src.join("secret.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs_err::write(src.join("build/out.o"), "o").unwrap();
        fs_err::write(src.join("build/keep/me"), "m").unwrap();
        fs_err::write(
            src.join(".dockerignore"),
            "build\n!build/keep\n.dockerignore\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("pkg/a.py", src.join("link.py")).unwrap();
        let spec = AddSpec::parse("src:/srv/app", folder.path()).unwrap();
        let entries = plan_add(&spec, &AddOptions::default()).unwrap();
        assert_eq!(
            paths(&entries),
            [
                "srv/",
                "srv/app/",
                "srv/app/build/",
                "srv/app/build/keep/",
                "srv/app/build/keep/me",
                "srv/app/link.py",
                "srv/app/pkg/",
                "srv/app/pkg/a.py",
                "srv/app/run.sh",
                "srv/app/secret.txt",
            ]
        );
        let mode = |path: &str| match &entries.iter().find(|e| e.path == path).unwrap().content {
            LayerContent::File { mode, .. } => *mode,
            other => panic!("{other:?}"),
        };
        assert_eq!(mode("srv/app/run.sh"), 0o755);
        assert_eq!(mode("srv/app/secret.txt"), 0o644);
        assert!(entries.iter().all(|entry| entry.owner == (0, 0)));
    }

    #[test]
    fn ok_chown_applies_below_dest_only() {
        let folder = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(folder.path().join("data")).unwrap();
        fs_err::write(folder.path().join("data/x"), "x").unwrap();
        let spec = AddSpec::parse("data:/srv/data", folder.path()).unwrap();
        let options = AddOptions {
            owner: Some((1000, 1000)),
            ..AddOptions::default()
        };
        let entries = plan_add(&spec, &options).unwrap();
        let owners: Vec<_> = entries.iter().map(|e| (e.path.as_str(), e.owner)).collect();
        assert_eq!(
            owners,
            [
                ("srv/", (0, 0)),
                ("srv/data/", (1000, 1000)),
                ("srv/data/x", (1000, 1000))
            ]
        );
    }

    #[test]
    fn ok_single_file_into_folder() {
        let folder = tempfile::tempdir().unwrap();
        fs_err::write(folder.path().join("conf.ini"), "c").unwrap();
        let spec = AddSpec::parse("conf.ini:/etc/app/", folder.path()).unwrap();
        let entries = plan_add(&spec, &AddOptions::default()).unwrap();
        assert_eq!(paths(&entries), ["etc/", "etc/app/", "etc/app/conf.ini"]);
    }

    #[test]
    fn err_symlink_escaping_src() {
        let folder = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(folder.path().join("src")).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", folder.path().join("src/evil")).unwrap();
        let spec = AddSpec::parse("src:/app", folder.path()).unwrap();
        let error = plan_add(&spec, &AddOptions::default()).unwrap_err();
        assert!(error.to_string().contains("src/evil"), "{error}");
        assert!(error.to_string().contains("outside"), "{error}");
    }

    #[test]
    fn err_bad_specs() {
        for text in ["nocolon", "src:relative", "src:/", ":/app", "src:/a/../b"] {
            assert!(AddSpec::parse(text, Path::new("/w")).is_err(), "{text}");
        }
    }
}
