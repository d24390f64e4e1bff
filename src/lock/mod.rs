//! The format-neutral lock model. Every lockfile format parses into a [`Lock`], and
//! [`Lock::select`] narrows it, for one target environment and one choice of extras and
//! groups, to the list of [`LockedPackage`]s to install. Nothing here touches the
//! network: artifact choice among a package's wheels belongs to `target::select`.

mod pylock;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::digest::Sha256Digest;

pub use pylock::PylockError;

/// A normalized package name (PEP 503: lowercase, runs of `-`, `_`, `.` become `-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PackageName(String);

impl PackageName {
    /// Normalize any spelling of a name.
    pub fn normalize(name: &str) -> Self {
        let mut out = String::with_capacity(name.len());
        let mut in_separator_run = false;
        for character in name.chars() {
            if matches!(character, '-' | '_' | '.') {
                if !in_separator_run {
                    out.push('-');
                }
                in_separator_run = true;
            } else {
                out.push(character.to_ascii_lowercase());
                in_separator_run = false;
            }
        }
        Self(out)
    }

    /// Whether `name` is already in normalized form.
    pub fn is_normalized(name: &str) -> bool {
        Self::normalize(name).0 == name
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which lockfile format a [`Lock`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockFormat {
    /// PEP 751 `pylock.toml`.
    Pylock,
}

impl fmt::Display for LockFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pylock => f.write_str("pylock.toml"),
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
            Self::Url(url) => {
                // Never print credentials embedded in a URL.
                let mut shown = url.clone();
                if !shown.username().is_empty() || shown.password().is_some() {
                    let _ = shown.set_username("");
                    let _ = shown.set_password(None);
                }
                write!(f, "{shown}")
            }
            Self::Path(path) => write!(f, "{}", path.display()),
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
    /// Built distributions (and possibly an sdist, which envbuild cannot use).
    Distributions {
        /// The wheels the lock offers.
        wheels: Vec<Artifact>,
        /// The sdist, if any.
        sdist: Option<Artifact>,
    },
    /// A direct archive (`packages.archive`); installable when it is a wheel.
    Archive(Artifact),
    /// A version-control checkout: needs a build, so envbuild refuses it.
    Vcs {
        /// Repository URL or path, as written.
        url: String,
        /// The locked commit.
        commit_id: String,
    },
    /// A local source tree: needs a build, so envbuild refuses it.
    Directory {
        /// The folder, as written.
        path: String,
    },
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
    #[error("cannot tell the format of lockfile `{}`: envbuild reads `pylock.toml` and `pylock.<name>.toml`", path.display())]
    UnknownFormat {
        /// The lockfile.
        path: PathBuf,
    },
    /// A `pylock.toml` is invalid or cannot be installed on the target.
    #[error(transparent)]
    Pylock(#[from] Box<PylockError>),
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
        if pylock::is_pylock_file_name(file_name) || text.contains("lock-version") {
            let parsed = pylock::Pylock::parse(path, &text).map_err(Box::new)?;
            return Ok(Self {
                path: path.to_path_buf(),
                format: LockFormat::Pylock,
                inner: LockInner::Pylock(Box::new(parsed)),
            });
        }
        Err(LockError::UnknownFormat {
            path: path.to_path_buf(),
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
            LockInner::Pylock(pylock) => {
                Ok(pylock.select(environment, selection).map_err(Box::new)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(
            PackageName::normalize("Jaraco.Functools").as_str(),
            "jaraco-functools"
        );
        assert_eq!(PackageName::normalize("a__b-.c").as_str(), "a-b-c");
        assert!(PackageName::is_normalized("markupsafe"));
        assert!(!PackageName::is_normalized("MarkupSafe"));
    }
}
