//! The format-neutral lock model. Every lockfile format parses into a [`Lock`], and
//! [`Lock::select`] narrows it, for one target environment and one choice of extras and
//! groups, to the list of [`LockedPackage`]s to install. Nothing here touches the
//! network: artifact choice among a package's wheels belongs to `platform::select`.

mod fields;
mod pipfile;
mod poetry;
mod pylock;
mod requirements;
pub(crate) mod source;
#[cfg(test)]
pub(crate) mod testing;
mod uv_lock;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::digest::Sha256Digest;
use crate::untrusted::Untrusted;

pub use fields::{Excerpt, FieldError, MAX_MARKER_NESTING, MAX_MARKER_TERMS, Pep508Error};
pub(crate) use fields::{parse_requirement, percent_decode};
pub use pipfile::PipfileError;
pub use poetry::PoetryError;
pub use pylock::PylockError;
pub use requirements::RequirementsError;
pub(crate) use source::line_column;
pub use uv_lock::UvLockError;

/// A valid package name, in normalized form: it matches the PEP 508 name grammar
/// (letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit), and
/// is lowercased with runs of `-`, `_` and `.` turned into one `-` (PEP 503). uv-normalize
/// checks and normalizes it; a [`PackageName`] exists only once that succeeded, so a name
/// from an input can never carry `/`, `?`, control characters or anything else that
/// would change the meaning of a URL, a path or a message it is put into.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PackageName(uv_normalize::PackageName);

impl PackageName {
    /// The normalized name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for PackageName {
    type Err = InvalidPackageName;

    /// Check and normalize any valid spelling of a name (`Jaraco.Functools` gives
    /// `jaraco-functools`).
    fn from_str(written: &str) -> Result<Self, Self::Err> {
        uv_normalize::PackageName::from_str(written)
            .map(Self)
            .map_err(|_| InvalidPackageName {
                name: written.to_string(),
            })
    }
}

impl From<uv_normalize::PackageName> for PackageName {
    /// uv's names (in parsed requirements) are checked already.
    fn from(name: uv_normalize::PackageName) -> Self {
        Self(name)
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a valid package name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a valid package name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit",
    Untrusted(name)
)]
pub struct InvalidPackageName {
    /// The text, as written.
    pub name: String,
}

/// Which lockfile format a [`Lock`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockFormat {
    /// PEP 751 `pylock.toml`.
    Pylock,
    /// uv's `uv.lock`.
    UvLock,
    /// Poetry's `poetry.lock`.
    PoetryLock,
    /// A pip `requirements.txt` with hashes.
    Requirements,
    /// Pipenv's `Pipfile.lock`.
    PipfileLock,
}

impl fmt::Display for LockFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pylock => f.write_str("pylock.toml"),
            Self::UvLock => f.write_str("uv.lock"),
            Self::PoetryLock => f.write_str("poetry.lock"),
            Self::Requirements => f.write_str("requirements.txt"),
            Self::PipfileLock => f.write_str("Pipfile.lock"),
        }
    }
}

/// Where an artifact's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// A URL (http, https or file).
    Url(url::Url),
    /// A local file, already made absolute against the lockfile's folder.
    Path(PathBuf),
}

impl fmt::Display for ArtifactLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never print credentials embedded in a URL.
            Self::Url(url) => f.write_str(&crate::http::redact_url(url)),
            // A path from a lockfile may hold any character.
            Self::Path(path) => write!(f, "{}", Untrusted(&path.display().to_string())),
        }
    }
}

/// One downloadable file of a package: a wheel, an sdist or an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The file name (for wheels, the wheel filename with its tags).
    pub filename: String,
    /// Where to get it.
    pub location: ArtifactLocation,
    /// Size in bytes, when the lockfile records it.
    pub size: Option<u64>,
    /// SHA-256 of the file. envbuild requires one for every artifact it installs.
    pub sha256: Option<Sha256Digest>,
}

/// How a locked package is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// Built distributions, and possibly an sdist (built into a wheel when no wheel fits).
    Distributions {
        /// The wheels the lock offers.
        wheels: Vec<Artifact>,
        /// The sdist, if any.
        sdist: Option<Artifact>,
    },
    /// A direct archive (`packages.archive`, a `url` or `file` source): installed as is
    /// when it is a wheel, built into one otherwise.
    Archive(Artifact),
    /// A version-control checkout at a locked commit, built into a wheel.
    Vcs(VcsSource),
    /// A local source tree (a workspace member, the project itself), built into a wheel.
    Directory(DirectorySource),
    /// Files known only by hash (and maybe file name), to be found through a package
    /// index: what `requirements.txt`, `poetry.lock` and `Pipfile.lock` record. The
    /// `index` module turns this into [`PackageSource::Distributions`] before wheels
    /// are chosen.
    IndexLookup {
        /// The files the lock allows.
        files: Vec<IndexFile>,
    },
}

/// A version-control source pinned to a commit. Only git is built; the lock records
/// other systems (`hg`, `svn`, `bzr` in PEP 751) so the build can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcsSource {
    /// The version-control system, lowercase (`git`).
    pub kind: String,
    /// The repository as git takes it: a URL (`https://`, `ssh://`, `file://`) without
    /// the `git+` prefix, the `@revision` and the fragment, or an absolute path. It may
    /// hold credentials: show it through [`crate::http::redact_text`].
    pub url: String,
    /// The locked commit (a full hexadecimal object name, as lockers write it).
    pub commit_id: String,
    /// The project's folder inside the repository, when it is not the root.
    pub subdirectory: Option<String>,
}

impl VcsSource {
    /// A git source from the spellings lockers use: `git+https://host/repo.git`,
    /// `https://host/repo.git@<rev>` (the `@rev` is dropped: the commit decides),
    /// `...#subdirectory=<dir>` or `#egg=<name>` fragments, and a `subdirectory` given
    /// apart.
    pub fn git(written: &str, commit_id: &str, subdirectory: Option<String>) -> Self {
        let mut url = written.strip_prefix("git+").unwrap_or(written).to_string();
        let mut subdirectory = subdirectory;
        if let Some((base, fragment)) = url.split_once('#') {
            for part in fragment.split('&') {
                if let Some(value) = part.strip_prefix("subdirectory=") {
                    subdirectory.get_or_insert_with(|| value.to_string());
                }
            }
            url = base.to_string();
        }
        // `@rev` after the path (not the `user@` of the authority).
        let path_start = url.find("://").map_or(0, |index| {
            let rest = &url[index + 3..];
            index + 3 + rest.find('/').unwrap_or(rest.len())
        });
        if let Some(at) = url[path_start..].rfind('@') {
            url.truncate(path_start + at);
        }
        Self {
            kind: "git".to_string(),
            url,
            commit_id: commit_id.trim().to_ascii_lowercase(),
            subdirectory: subdirectory.filter(|dir| !dir.is_empty() && dir != "."),
        }
    }
}

/// Whether `text` is a full commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits.
pub(crate) fn is_commit_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// A local source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySource {
    /// The folder, made absolute against the lockfile's folder.
    pub path: PathBuf,
    /// Whether the lock asks for an editable install. An image holds a copy of the
    /// project, so envbuild installs it as a regular wheel either way.
    pub editable: bool,
}

impl DirectorySource {
    /// `written`, relative to the lockfile at `lockfile` (or absolute), as a source.
    pub(crate) fn at(lockfile: &Path, written: &str, editable: bool) -> Self {
        let written = written.strip_prefix("file://").unwrap_or(written);
        let folder = lockfile.parent().unwrap_or(Path::new(""));
        let joined = folder.join(written);
        let absolute = std::path::absolute(&joined).unwrap_or(joined);
        Self {
            path: normalize_path(&absolute),
            editable,
        }
    }
}

/// `path` with `.` and `..` components resolved lexically (no file system access), so
/// the same folder reached through different spellings has one name.
pub(crate) fn normalize_path(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}

/// A file a lock allows, known by hash and sometimes by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// The file name, when the lock records it (Poetry does).
    pub filename: Option<String>,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// A package selected from a lock for installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// Normalized name.
    pub name: PackageName,
    /// Version, as written in the lockfile (absent only for source trees).
    pub version: Option<String>,
    /// Simple-API index the package came from, if recorded.
    pub index: Option<url::Url>,
    /// Its artifacts.
    pub source: PackageSource,
}

/// Extras and dependency groups chosen by the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSelection {
    /// `--extras`: extras to enable.
    pub extras: BTreeSet<String>,
    /// `--group`: groups to enable in addition to the defaults.
    pub groups: BTreeSet<String>,
    /// `--no-default-groups`: do not enable the lock's default groups.
    pub no_default_groups: bool,
}

/// A parsed lockfile of any supported format.
#[derive(Debug, Clone)]
pub struct Lock {
    path: PathBuf,
    format: LockFormat,
    inner: LockInner,
}

#[derive(Debug, Clone)]
enum LockInner {
    Pylock(Box<pylock::Pylock>),
    UvLock(Box<uv_lock::UvLock>),
    Poetry(Box<poetry::PoetryLock>),
    Requirements(Box<requirements::Requirements>),
    Pipfile(Box<pipfile::PipfileLock>),
}

/// Errors from reading a lockfile or selecting from it.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lockfile could not be read.
    #[error("cannot read lockfile `{}`", path.display())]
    Read {
        /// The lockfile.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The format could not be told from the file name.
    #[error("cannot tell the format of lockfile `{}`: envbuild reads `pylock.toml` (and `pylock.<name>.toml`), `uv.lock`, `poetry.lock`, `Pipfile.lock` and requirements files with hashes (`*.txt`); rename the file or export it in one of these formats", path.display())]
    UnknownFormat {
        /// The lockfile.
        path: PathBuf,
    },
    /// A `pylock.toml` is invalid or cannot be installed on the target.
    #[error(transparent)]
    Pylock(#[from] Box<PylockError>),
    /// A `uv.lock` is invalid or cannot be installed on the target.
    #[error(transparent)]
    UvLock(#[from] Box<UvLockError>),
    /// A `poetry.lock` is invalid or cannot be installed on the target.
    #[error(transparent)]
    Poetry(#[from] Box<PoetryError>),
    /// A requirements file is invalid or cannot be installed on the target.
    #[error(transparent)]
    Requirements(#[from] Box<RequirementsError>),
    /// A `Pipfile.lock` is invalid or cannot be installed on the target.
    #[error(transparent)]
    Pipfile(#[from] Box<PipfileError>),
}

impl Lock {
    /// Read a lockfile, detecting its format from the file name and content.
    pub fn load(path: &Path) -> Result<Self, LockError> {
        let text = fs_err::read_to_string(path).map_err(|source| LockError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(source.kind(), source),
        })?;
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        let format = detect_format(file_name, &text).ok_or_else(|| LockError::UnknownFormat {
            path: path.to_path_buf(),
        })?;
        let inner = match format {
            LockFormat::Pylock => LockInner::Pylock(Box::new(
                pylock::Pylock::parse(path, &text).map_err(Box::new)?,
            )),
            LockFormat::UvLock => LockInner::UvLock(Box::new(
                uv_lock::UvLock::parse(path, &text).map_err(Box::new)?,
            )),
            LockFormat::PoetryLock => LockInner::Poetry(Box::new(
                poetry::PoetryLock::parse(path, &text).map_err(Box::new)?,
            )),
            LockFormat::Requirements => LockInner::Requirements(Box::new(
                requirements::Requirements::parse(path, &text).map_err(Box::new)?,
            )),
            LockFormat::PipfileLock => LockInner::Pipfile(Box::new(
                pipfile::PipfileLock::parse(path, &text).map_err(Box::new)?,
            )),
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            inner,
        })
    }

    /// The lockfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lockfile's format.
    pub fn format(&self) -> LockFormat {
        self.format
    }

    /// The packages to install for `environment` with `selection`, sorted by name.
    /// Applies every check the format's spec makes mandatory at install time.
    pub fn select(
        &self,
        environment: &uv_pep508::MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, LockError> {
        match &self.inner {
            LockInner::Pylock(lock) => Ok(lock.select(environment, selection).map_err(Box::new)?),
            LockInner::UvLock(lock) => Ok(lock.select(environment, selection).map_err(Box::new)?),
            LockInner::Poetry(lock) => Ok(lock.select(environment, selection).map_err(Box::new)?),
            LockInner::Requirements(lock) => {
                Ok(lock.select(environment, selection).map_err(Box::new)?)
            }
            LockInner::Pipfile(lock) => {
                Ok(lock.select(environment, selection).map_err(Box::new)?)
            }
        }
    }

    /// Find-links locations the lockfile itself names (`--find-links` lines of a
    /// requirements file).
    pub fn find_links(&self) -> Vec<url::Url> {
        match &self.inner {
            LockInner::Requirements(lock) => lock.find_links(),
            _ => Vec::new(),
        }
    }

    /// Package indexes the lockfile itself names (`--index-url` lines, Pipfile sources,
    /// Poetry sources), most preferred first. Index lookups use these before the
    /// configured ones.
    pub fn indexes(&self) -> Vec<url::Url> {
        match &self.inner {
            LockInner::Pylock(_) | LockInner::UvLock(_) => Vec::new(),
            LockInner::Poetry(lock) => lock.indexes(),
            LockInner::Requirements(lock) => lock.indexes(),
            LockInner::Pipfile(lock) => lock.indexes(),
        }
    }
}

/// Tell a lockfile's format from its file name, then from its content.
fn detect_format(file_name: &str, text: &str) -> Option<LockFormat> {
    let by_name = match file_name {
        "uv.lock" => Some(LockFormat::UvLock),
        "poetry.lock" => Some(LockFormat::PoetryLock),
        "Pipfile.lock" => Some(LockFormat::PipfileLock),
        name if pylock::is_pylock_file_name(name) => Some(LockFormat::Pylock),
        name if name.ends_with(".txt") || name.ends_with(".in") => Some(LockFormat::Requirements),
        _ => None,
    };
    by_name.or_else(|| {
        let start = text.trim_start();
        if start.starts_with('{') && text.contains("\"_meta\"") {
            Some(LockFormat::PipfileLock)
        } else if text.contains("lock-version") && text.contains("[[packages]]") {
            Some(LockFormat::Pylock)
        } else if text.contains("[[package]]") && text.contains("content-hash") {
            Some(LockFormat::PoetryLock)
        } else if text.contains("[[package]]")
            && text.lines().any(|line| line.starts_with("version = "))
        {
            Some(LockFormat::UvLock)
        } else if text.contains("--hash=") {
            Some(LockFormat::Requirements)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_names_are_normalized() {
        let name: PackageName = "Jaraco.Functools".parse().unwrap();
        assert_eq!(name.as_str(), "jaraco-functools");
        assert_eq!(PackageName::from_str("a__b-.c").unwrap().as_str(), "a-b-c");
        // Display and FromStr round-trip.
        assert_eq!(PackageName::from_str(&name.to_string()).unwrap(), name);
    }

    #[test]
    fn err_names_that_could_change_a_url_or_a_message() {
        for written in [
            "", "//[", "//host", "a/b", "../x", "-a", "a-", "a b", "a?b", "a#b", "é",
        ] {
            assert!(PackageName::from_str(written).is_err(), "{written:?}");
        }
        assert_eq!(
            PackageName::from_str("evil\u{1b}[31m\n")
                .unwrap_err()
                .to_string(),
            "`evil\\u{1b}[31m\\n` is not a valid package name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit"
        );
    }

    #[test]
    fn ok_no_panic_on_hostile_names_and_format_sniffing() {
        let seeds = [
            include_str!("../../tests/data/robust/pylock.forks.toml"),
            include_str!("../../tests/data/locks/poetry-2.0/poetry.lock"),
            include_str!("../../tests/data/locks/bad-pipfile/Pipfile.lock"),
        ];
        crate::lock::testing::assert_no_panic("format detection", seeds, 1000, |text| {
            let _ = detect_format("lockfile", text);
            for word in text.split_whitespace().take(64) {
                if let Ok(name) = PackageName::from_str(word) {
                    assert_eq!(PackageName::from_str(name.as_str()).unwrap(), name);
                }
            }
        });
    }
}
