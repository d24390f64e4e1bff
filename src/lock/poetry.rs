//! Poetry's `poetry.lock`, lock-version 2.0 and 2.1: parsing, validation and selection of
//! the packages to install for one target environment and one choice of extras and
//! groups.
//!
//! A `poetry.lock` names each file and its hash but no URL, so packages from an index
//! become [`PackageSource::IndexLookup`] and the `index` module finds the files. Packages
//! from a `legacy` source carry that source's URL as their index.
//!
//! Selection follows Poetry's installer (`Installer` and `Transaction` in Poetry 2.x):
//! - **lock-version 2.1** records, per package, the dependency `groups` that need it and
//!   its `markers` (one string for every group, or a table per group; a group missing from
//!   the table has no marker). A package is installed when it belongs to a selected group
//!   (`main`, unless `--no-default-groups`, plus `--group`) and the marker of at least one
//!   of its selected groups is true for the target, with the selected extras as `extra`.
//! - **lock-version 2.0** records neither groups nor markers, and no roots, so envbuild
//!   cannot replay Poetry's resolution. Its approximation: every non-optional package
//!   whose `python-versions` admits the target Python, plus the optional packages that
//!   the selected extras pull in (the top-level `[extras]` table, then `dependencies`
//!   followed transitively, as Poetry's `get_extra_package_names` does). Packages only
//!   needed on other platforms (a dependency behind a false marker) are therefore kept,
//!   and dev packages are always kept; regenerate the lock with Poetry 2 for exact
//!   selection.
//!
//! Limits: lock-versions before 2.0 (per-file hashes under `[metadata.files]`) are
//! refused. `python-versions` is read with Poetry's constraint syntax (`*`, `^`, `~`,
//! `||`, bare versions) on top of PEP 440.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;
use uv_normalize::ExtraName;
use uv_pep440::{Version, VersionSpecifiers};
use uv_pep508::{MarkerEnvironment, MarkerTree};

use super::fields::{self, Excerpt, FieldError, Hash};
use super::source::Source;
use super::{
    Artifact, ArtifactLocation, DirectorySource, GroupSelection, IndexFile, LockFormat,
    LockedPackage, PackageName, PackageSource, VcsSource, is_commit_id,
};
use crate::http::redact_text;
use crate::untrusted::Untrusted;

/// Errors from a `poetry.lock`: the file is malformed, or it cannot be installed on the
/// chosen target.
///
/// `place` fields read `<lockfile>:<line>:<column>`, or just `<lockfile>` when the
/// problem has no single position in the file.
#[derive(Debug, thiserror::Error)]
pub enum PoetryError {
    /// A field every format shares is missing or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// `metadata.lock-version` is not 2.x.
    #[error(
        "unsupported lockfile `{place}`: `lock-version = \"{version}\"`, but envbuild reads Poetry lockfiles of version 2.0 and 2.1 (Poetry 1.5 and later); run `poetry lock` with a current Poetry to rewrite it",
        version = Excerpt(version)
    )]
    UnsupportedLockVersion {
        /// Where.
        place: String,
        /// The value, as written.
        version: String,
    },
    /// A `python-versions` constraint does not parse.
    #[error(
        "invalid lockfile `{place}`: {key} `{value}` is not a valid version constraint: {reason}",
        key = Untrusted(key),
        reason = Untrusted(reason),
        value = Excerpt(value)
    )]
    InvalidPythonVersions {
        /// Where.
        place: String,
        /// Which key, e.g. "`python-versions` of package `numpy`".
        key: String,
        /// The value, as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A `git` source without a resolved commit.
    #[error(
        "invalid lockfile `{place}`: package `{package}` has a `git` source whose `resolved_reference` is not a commit id, so the lock does not say which code to build; run `poetry lock` again",
        package = Untrusted(package)
    )]
    UnpinnedGit {
        /// Where.
        place: String,
        /// The package.
        package: String,
    },
    /// `[package.source]` has a `type` envbuild does not know.
    #[error(
        "invalid lockfile `{place}`: package `{package}` has a source of type `{source_type}`; Poetry writes `legacy`, `file`, `url`, `directory` or `git`",
        package = Untrusted(package),
        source_type = Untrusted(source_type)
    )]
    UnknownSourceType {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The type, as written.
        source_type: String,
    },
    /// The user asked for an extra the lock does not define.
    #[error(
        "cannot select extra `{extra}` from lockfile `{path}`: its `[extras]` table offers {offered}; choose one of those, or add the extra to pyproject.toml and run `poetry lock`",
        extra = Untrusted(extra),
        offered = Untrusted(offered)
    )]
    UnknownExtra {
        /// The lockfile.
        path: String,
        /// The requested extra.
        extra: String,
        /// What the lock offers.
        offered: String,
    },
    /// The user asked for a group no package of the lock belongs to.
    #[error(
        "cannot select dependency group `{group}` from lockfile `{path}`: its packages belong to {offered}; choose one of those, or add the group to pyproject.toml and run `poetry lock`",
        group = Untrusted(group),
        offered = Untrusted(offered)
    )]
    UnknownGroup {
        /// The lockfile.
        path: String,
        /// The requested group.
        group: String,
        /// The groups the packages belong to.
        offered: String,
    },
    /// `--no-default-groups` on a lock that records no groups.
    #[error(
        "cannot leave out the default group of lockfile `{path}`: it has `lock-version = \"2.0\"`, which records no dependency groups; run `poetry lock` with Poetry 2 to write lock-version 2.1"
    )]
    NoGroupsRecorded {
        /// The lockfile.
        path: String,
    },
    /// The target's Python does not satisfy the project's `python-versions`.
    #[error(
        "cannot install lockfile `{place}` on the target: the project requires Python `{specifier}`, but the target has Python {python}; choose a target Python that satisfies it",
        python = Untrusted(python),
        specifier = Excerpt(specifier)
    )]
    UnsupportedPython {
        /// Where.
        place: String,
        /// The target's `python_full_version`.
        python: String,
        /// The constraint, as written.
        specifier: String,
    },
    /// A selected package's `python-versions` excludes the target's Python.
    #[error(
        "cannot install package `{package}` {version} from lockfile `{place}`: it requires Python `{specifier}`, but the target has Python {python}; choose a target Python that satisfies it, or run `poetry lock` again",
        package = Untrusted(package),
        python = Untrusted(python),
        specifier = Excerpt(specifier),
        version = Excerpt(version)
    )]
    PackageUnsupportedPython {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The target's `python_full_version`.
        python: String,
        /// The constraint, as written.
        specifier: String,
    },
    /// Two entries of the same package are both selected.
    #[error(
        "cannot install lockfile `{path}` on the target: package `{package}` is selected twice, as {first} and as {second}; their markers both hold for the target, so fix the dependency markers in pyproject.toml and run `poetry lock`",
        first = Excerpt(first),
        package = Untrusted(package),
        second = Excerpt(second)
    )]
    AmbiguousPackage {
        /// The lockfile.
        path: String,
        /// The package.
        package: String,
        /// The first entry: version and place.
        first: String,
        /// The second entry: version and place.
        second: String,
    },
    /// A selected package from an index has no file with a sha256 hash.
    #[error(
        "cannot install package `{package}` {version} from lockfile `{place}`: its `files` hold no sha256 hash, and envbuild verifies every file it installs; run `poetry lock` again against an index that publishes hashes",
        package = Untrusted(package),
        version = Excerpt(version)
    )]
    NoHashes {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Its version.
        version: String,
    },
}

/// A parsed `poetry.lock`.
#[derive(Debug, Clone)]
pub(crate) struct PoetryLock {
    /// The lockfile, as given.
    path: PathBuf,
    /// `2.0` or `2.1` (minor version only matters: 2.1 and later record groups).
    has_groups: bool,
    /// `[metadata] python-versions`, with its place.
    python_versions: Option<(PythonConstraint, String)>,
    /// `[extras]`: project extra → package names it pulls in.
    extras: BTreeMap<ExtraName, Vec<PackageName>>,
    /// `[[package]]`, in file order.
    packages: Vec<Package>,
}

/// One `[[package]]` entry after validation.
#[derive(Debug, Clone)]
struct Package {
    locked: LockedPackage,
    /// Where the entry starts (`path:line:column`).
    place: String,
    optional: bool,
    python_versions: PythonConstraint,
    /// Lock 2.1: the groups that need the package, each with its marker (`None` = any).
    groups: BTreeMap<String, Option<MarkerTree>>,
    /// Names of the package's dependencies (for extras in lock 2.0).
    dependencies: Vec<PackageName>,
    /// Whether any file had a sha256 (only checked for index packages).
    has_hashes: bool,
}

/// A Poetry version constraint: any of several PEP 440 specifier sets (`||`).
#[derive(Debug, Clone)]
struct PythonConstraint {
    alternatives: Vec<VersionSpecifiers>,
    written: String,
}

impl PythonConstraint {
    fn contains(&self, version: &Version) -> bool {
        self.alternatives
            .iter()
            .any(|specifiers| specifiers.contains(version))
    }
}

// Wire types: the TOML as written. Keys Poetry always writes are `Option`s so their
// absence gets a `MissingKey` error naming the key; unknown keys are ignored.

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct VersionWire {
    metadata: Option<Spanned<MetadataVersionWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MetadataVersionWire {
    lock_version: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PoetryWire {
    #[serde(default)]
    package: Vec<Spanned<PackageWire>>,
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
    metadata: Option<MetadataWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MetadataWire {
    python_versions: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PackageWire {
    name: Option<Spanned<String>>,
    version: Option<String>,
    #[serde(default)]
    optional: bool,
    python_versions: Option<Spanned<String>>,
    #[serde(default)]
    files: Vec<Spanned<FileWire>>,
    #[serde(default)]
    dependencies: BTreeMap<String, DependencyWire>,
    source: Option<Spanned<SourceWire>>,
    groups: Option<Vec<String>>,
    markers: Option<Spanned<MarkersWire>>,
    #[serde(default)]
    develop: bool,
}

#[derive(Deserialize)]
struct FileWire {
    file: String,
    hash: String,
}

/// `[package.dependencies]` values: a constraint string, a table, or a list of either
/// (one per marker). Only the names matter to envbuild, but the shape is checked.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum DependencyWire {
    Constraint(String),
    Table(toml::Table),
    Several(Vec<DependencyItemWire>),
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum DependencyItemWire {
    Constraint(String),
    Table(toml::Table),
}

#[derive(Deserialize)]
struct SourceWire {
    r#type: Option<String>,
    url: Option<String>,
    reference: Option<String>,
    resolved_reference: Option<String>,
    subdirectory: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MarkersWire {
    All(String),
    PerGroup(BTreeMap<String, String>),
}

impl PoetryLock {
    /// Parse and validate `text`, the contents of the lockfile at `path`. Relative `file`
    /// and `directory` source paths are resolved against `path`'s folder.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, PoetryError> {
        let source = Source {
            path,
            text,
            format: LockFormat::PoetryLock,
        };

        // The version first: older formats keep hashes elsewhere and would only give
        // confusing errors below.
        let version: VersionWire = source.toml()?;
        let Some(metadata) = version.metadata else {
            return Err(source
                .missing_key(source.whole_file(), "the lockfile", "metadata")
                .into());
        };
        let metadata_place = source.place(metadata.span());
        let Some(lock_version) = metadata.into_inner().lock_version else {
            return Err(source
                .missing_key(metadata_place, "`[metadata]`", "lock-version")
                .into());
        };
        let version_place = source.place(lock_version.span());
        let lock_version = lock_version.into_inner();
        let parsed_version = Version::from_str(&lock_version).ok();
        let release = parsed_version
            .as_ref()
            .map(|version| version.release().to_vec())
            .unwrap_or_default();
        if release.first() != Some(&2) {
            return Err(PoetryError::UnsupportedLockVersion {
                place: version_place,
                version: lock_version,
            });
        }
        let minor = release.get(1).copied().unwrap_or(0);
        if minor > 1 {
            tracing::warn!(
                "lockfile `{version_place}` has `lock-version = \"{}\"`, newer than the 2.1 envbuild knows; keys added since are ignored",
                Untrusted(&lock_version)
            );
        }

        let wire: PoetryWire = source.toml()?;
        let python_versions = wire
            .metadata
            .and_then(|metadata| metadata.python_versions)
            .map(|written| {
                let place = source.place(written.span());
                let constraint = parse_constraint(
                    written.into_inner(),
                    "`python-versions` of `[metadata]`",
                    &place,
                )?;
                Ok::<_, PoetryError>((constraint, place))
            })
            .transpose()?;

        let mut extras = BTreeMap::new();
        for (extra, names) in wire.extras {
            // Poetry compares extra names normalized; so does envbuild.
            let Ok(extra) = ExtraName::from_str(&extra) else {
                continue;
            };
            let names = names
                .iter()
                .map(|name| {
                    fields::package_name_at(
                        strip_requirement(name),
                        &format!("{} (`[extras]`)", source.whole_file()),
                    )
                })
                .collect::<Result<_, _>>()?;
            extras.insert(extra, names);
        }

        let has_groups = minor >= 1;
        let packages = wire
            .package
            .into_iter()
            .map(|package| parse_package(&source, package, has_groups))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self {
            path: path.to_path_buf(),
            has_groups,
            python_versions,
            extras,
            packages,
        })
    }

    /// The packages to install on `environment` with `selection`, sorted by name.
    pub(crate) fn select(
        &self,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PoetryError> {
        let path = self.path.display().to_string();
        let python = environment.python_full_version();

        let mut extras = Vec::new();
        for requested in &selection.extras {
            let extra = ExtraName::from_str(requested)
                .ok()
                .filter(|extra| self.extras.contains_key(extra))
                .ok_or_else(|| PoetryError::UnknownExtra {
                    path: path.clone(),
                    extra: requested.clone(),
                    offered: fields::offered_list("extras", self.extras.keys()),
                })?;
            extras.push(extra);
        }

        if let Some((constraint, place)) = &self.python_versions
            && !constraint.contains(&python.version)
        {
            return Err(PoetryError::UnsupportedPython {
                place: place.clone(),
                python: python.to_string(),
                specifier: constraint.written.clone(),
            });
        }

        let chosen: Vec<&Package> = if self.has_groups {
            self.select_by_groups(environment, selection, &extras, &path)?
        } else {
            self.select_without_groups(selection, &extras, &path, &python.version)?
        };

        let mut selected: BTreeMap<&PackageName, &Package> = BTreeMap::new();
        for package in chosen {
            let version = package.locked.version.as_deref().unwrap_or("");
            if !package.python_versions.contains(&python.version) {
                return Err(PoetryError::PackageUnsupportedPython {
                    place: package.place.clone(),
                    package: package.locked.name.to_string(),
                    version: version.to_string(),
                    python: python.to_string(),
                    specifier: package.python_versions.written.clone(),
                });
            }
            if matches!(package.locked.source, PackageSource::IndexLookup { .. })
                && !package.has_hashes
            {
                return Err(PoetryError::NoHashes {
                    place: package.place.clone(),
                    package: package.locked.name.to_string(),
                    version: version.to_string(),
                });
            }
            if let Some(first) = selected.insert(&package.locked.name, package) {
                return Err(PoetryError::AmbiguousPackage {
                    path,
                    package: package.locked.name.to_string(),
                    first: describe_entry(first),
                    second: describe_entry(package),
                });
            }
        }
        Ok(selected
            .into_values()
            .map(|package| package.locked.clone())
            .collect())
    }

    /// Lock 2.1: a package is in when one of its selected groups has a true marker.
    fn select_by_groups(
        &self,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
        extras: &[ExtraName],
        path: &str,
    ) -> Result<Vec<&Package>, PoetryError> {
        let known: BTreeSet<&str> = self
            .packages
            .iter()
            .flat_map(|package| package.groups.keys().map(String::as_str))
            .collect();
        let mut groups: BTreeSet<String> = BTreeSet::new();
        if !selection.no_default_groups {
            groups.insert("main".to_string());
        }
        for requested in &selection.groups {
            let group = normalize_group(requested);
            if !known.contains(group.as_str()) {
                return Err(PoetryError::UnknownGroup {
                    path: path.to_string(),
                    group: requested.clone(),
                    offered: fields::offered_list("groups", known.iter()),
                });
            }
            groups.insert(group);
        }
        Ok(self
            .packages
            .iter()
            .filter(|package| {
                package.groups.iter().any(|(group, marker)| {
                    groups.contains(group)
                        && marker
                            .as_ref()
                            .is_none_or(|marker| marker.evaluate(environment, extras))
                })
            })
            .collect())
    }

    /// Lock 2.0: no groups, no markers; see the module documentation.
    fn select_without_groups(
        &self,
        selection: &GroupSelection,
        extras: &[ExtraName],
        path: &str,
        python: &Version,
    ) -> Result<Vec<&Package>, PoetryError> {
        if selection.no_default_groups {
            return Err(PoetryError::NoGroupsRecorded {
                path: path.to_string(),
            });
        }
        if !selection.groups.is_empty() {
            tracing::warn!(
                "lockfile `{path}` has lock-version 2.0, which records no dependency groups: every non-optional package is installed, whatever `--group` says"
            );
        }
        // Optional packages the selected extras pull in, transitively (Poetry's
        // `get_extra_package_names`).
        let mut by_name: BTreeMap<&PackageName, Vec<&Package>> = BTreeMap::new();
        for package in &self.packages {
            by_name
                .entry(&package.locked.name)
                .or_default()
                .push(package);
        }
        let mut wanted: BTreeSet<&PackageName> = BTreeSet::new();
        let mut stack: Vec<&PackageName> = extras
            .iter()
            .flat_map(|extra| self.extras.get(extra).into_iter().flatten())
            .collect();
        while let Some(name) = stack.pop() {
            let Some(entries) = by_name.get(name) else {
                continue;
            };
            if !wanted.insert(name) {
                continue;
            }
            for entry in entries {
                stack.extend(entry.dependencies.iter());
            }
        }
        Ok(self
            .packages
            .iter()
            .filter(|package| !package.optional || wanted.contains(&package.locked.name))
            // Without markers, `python-versions` is the only filter the lock offers.
            .filter(|package| package.python_versions.contains(python))
            .collect())
    }

    /// The URLs of the `legacy` sources packages came from, in order of first use.
    pub(crate) fn indexes(&self) -> Vec<url::Url> {
        let mut indexes: Vec<url::Url> = Vec::new();
        for package in &self.packages {
            if let Some(index) = &package.locked.index
                && !indexes.contains(index)
            {
                indexes.push(index.clone());
            }
        }
        indexes
    }
}

fn describe_entry(package: &Package) -> String {
    format!(
        "version `{}` at `{}`",
        package.locked.version.as_deref().unwrap_or(""),
        package.place
    )
}

/// The name part of a PEP 508 requirement or Poetry's `name (constraint)` form.
fn strip_requirement(requirement: &str) -> &str {
    let end = requirement
        .find(|character: char| {
            !(character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.'))
        })
        .unwrap_or(requirement.len());
    &requirement[..end]
}

fn parse_marker(written: &str, key: &str, place: &str) -> Result<MarkerTree, PoetryError> {
    Ok(fields::marker_at(written, key, place)?)
}

/// A dependency group's name for comparisons, normalized as Poetry does (lowercase, runs
/// of `-`, `_` and `.` as one `-`). Group names are only compared, never put into a path
/// or a URL, so any text Poetry accepted is kept.
fn normalize_group(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for character in name.chars() {
        if matches!(character, '-' | '_' | '.') {
            if !in_separator_run {
                normalized.push('-');
            }
            in_separator_run = true;
        } else {
            normalized.extend(character.to_lowercase());
            in_separator_run = false;
        }
    }
    normalized
}

fn parse_constraint(
    written: String,
    key: &str,
    place: &str,
) -> Result<PythonConstraint, PoetryError> {
    match poetry_constraint_to_pep440(&written) {
        Ok(alternatives) => Ok(PythonConstraint {
            alternatives,
            written,
        }),
        Err(reason) => Err(PoetryError::InvalidPythonVersions {
            place: place.to_string(),
            key: key.to_string(),
            value: written,
            reason,
        }),
    }
}

/// Translate a Poetry constraint (poetry-core `parse_constraint`) into PEP 440 specifier
/// sets, one per `||` alternative. Within an alternative, `,` or spaces separate
/// constraints; `*` admits everything; `^X.Y` means `>=X.Y,<(X+1)` (the first non-zero
/// component is bumped); `~X.Y` means `>=X.Y,<X.(Y+1)`; a bare `X.Y` means `==X.Y.*`.
fn poetry_constraint_to_pep440(written: &str) -> Result<Vec<VersionSpecifiers>, String> {
    let mut alternatives = Vec::new();
    for alternative in written.split('|').filter(|part| !part.trim().is_empty()) {
        let mut tokens: Vec<String> = Vec::new();
        let mut pending_operator: Option<String> = None;
        for token in alternative
            .split(|character: char| character == ',' || character.is_whitespace())
            .filter(|token| !token.is_empty())
        {
            let is_bare_operator = token
                .chars()
                .all(|character| matches!(character, '<' | '>' | '=' | '!' | '~' | '^'));
            if is_bare_operator {
                pending_operator = Some(token.to_string());
                continue;
            }
            let token = match pending_operator.take() {
                Some(operator) => format!("{operator}{token}"),
                None => token.to_string(),
            };
            tokens.push(token);
        }
        if let Some(operator) = pending_operator {
            return Err(format!("`{operator}` is not followed by a version"));
        }
        let mut specifiers: Vec<String> = Vec::new();
        for token in tokens {
            if token == "*" {
                continue;
            }
            if let Some(version) = token.strip_prefix('^') {
                let (lower, upper) = caret_bounds(version)?;
                specifiers.push(format!(">={lower}"));
                specifiers.push(format!("<{upper}"));
            } else if let Some(version) = token
                .strip_prefix('~')
                .filter(|rest| !rest.starts_with('='))
            {
                let (lower, upper) = tilde_bounds(version)?;
                specifiers.push(format!(">={lower}"));
                specifiers.push(format!("<{upper}"));
            } else if token.starts_with(|character: char| character.is_ascii_digit()) {
                if token.ends_with(".*") {
                    specifiers.push(format!("=={token}"));
                } else {
                    specifiers.push(format!("=={token}.*"));
                }
            } else {
                specifiers.push(token);
            }
        }
        let joined = specifiers.join(",");
        let parsed = VersionSpecifiers::from_str(&joined).map_err(|error| error.to_string())?;
        alternatives.push(parsed);
    }
    if alternatives.is_empty() {
        // `*`, or an empty string: any version.
        alternatives.push(VersionSpecifiers::empty());
    }
    Ok(alternatives)
}

fn release_of(version: &str) -> Result<Vec<u64>, String> {
    let release: Result<Vec<u64>, _> = version.split('.').map(str::parse::<u64>).collect();
    release
        .ok()
        .filter(|release| !release.is_empty())
        .ok_or_else(|| format!("`{version}` is not a release version such as `3.11`"))
}

fn render_release(release: &[u64]) -> String {
    release
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// `^1.2.3` → `1.2.3`, `2.0.0`; `^0.2` → `0.2`, `0.3`; `^0.0.3` → `0.0.3`, `0.0.4`.
fn caret_bounds(version: &str) -> Result<(String, String), String> {
    let release = release_of(version)?;
    let bump = release
        .iter()
        .position(|component| *component != 0)
        .unwrap_or(release.len() - 1);
    let mut upper: Vec<u64> = release[..=bump].to_vec();
    upper[bump] += 1;
    Ok((render_release(&release), render_release(&upper)))
}

/// `~1.2.3` → `1.2.3`, `1.3`; `~1.2` → `1.2`, `1.3`; `~1` → `1`, `2`.
fn tilde_bounds(version: &str) -> Result<(String, String), String> {
    let release = release_of(version)?;
    let keep = if release.len() >= 2 { 2 } else { 1 };
    let mut upper: Vec<u64> = release[..keep].to_vec();
    upper[keep - 1] += 1;
    Ok((render_release(&release), render_release(&upper)))
}

fn parse_package(
    source: &Source<'_>,
    package: Spanned<PackageWire>,
    has_groups: bool,
) -> Result<Package, PoetryError> {
    let place = source.place(package.span());
    let package = package.into_inner();
    let Some(name) = package.name else {
        return Err(source
            .missing_key(place, "a `[[package]]` entry", "name")
            .into());
    };
    // Checked once here: the name goes into index URLs and messages.
    let name_place = source.place(name.span());
    let label = name.into_inner();
    let name = source.package_name(&label, &name_place)?;
    let Some(version) = package.version else {
        return Err(source
            .missing_key(place, format!("package `{label}`"), "version")
            .into());
    };
    if let Err(error) = Version::from_str(&version) {
        return Err(FieldError::InvalidVersion {
            place,
            package: label,
            version,
            reason: error.to_string(),
        }
        .into());
    }
    let Some(python_versions) = package.python_versions else {
        return Err(source
            .missing_key(place, format!("package `{label}`"), "python-versions")
            .into());
    };
    let python_place = source.place(python_versions.span());
    let python_versions = parse_constraint(
        python_versions.into_inner(),
        &format!("`python-versions` of package `{label}`"),
        &python_place,
    )?;

    // Lock 2.1: groups and markers. Poetry reads a missing `markers` as "any", and a
    // group missing from a per-group table as "any" too.
    let mut groups: BTreeMap<String, Option<MarkerTree>> = BTreeMap::new();
    if has_groups {
        let Some(group_names) = package.groups else {
            return Err(source
                .missing_key(place, format!("package `{label}`"), "groups")
                .into());
        };
        let markers = package.markers.map(|markers| {
            let markers_place = source.place(markers.span());
            (markers.into_inner(), markers_place)
        });
        for group in group_names {
            let normalized = normalize_group(&group);
            let marker = match &markers {
                None => None,
                Some((MarkersWire::All(written), markers_place)) => Some(parse_marker(
                    written,
                    &format!("`markers` of package `{label}`"),
                    markers_place,
                )?),
                Some((MarkersWire::PerGroup(table), markers_place)) => table
                    .iter()
                    .find(|(key, _)| normalize_group(key) == normalized)
                    .map(|(key, written)| {
                        parse_marker(
                            written,
                            &format!("`markers.{key}` of package `{label}`"),
                            markers_place,
                        )
                    })
                    .transpose()?,
            };
            groups.insert(normalized, marker);
        }
    }

    let mut files = Vec::with_capacity(package.files.len());
    for file in package.files {
        let file_place = source.place(file.span());
        let file = file.into_inner();
        let sha256 = match fields::parse_hash(&file.hash) {
            Some(Hash::Sha256(digest)) => digest,
            // Other algorithms (md5 from very old indexes) cannot be checked: skip them.
            Some(Hash::Other) => continue,
            None => {
                return Err(source
                    .invalid_hash(
                        &file_place,
                        format!(
                            "`hash` of file `{}` of package `{label}`",
                            fields::Excerpt(&file.file)
                        ),
                        &file.hash,
                    )
                    .into());
            }
        };
        files.push(IndexFile {
            filename: Some(file.file),
            sha256,
        });
    }
    let has_hashes = !files.is_empty();

    let dependencies = package
        .dependencies
        .keys()
        .map(|name| fields::package_name_at(name, &place))
        .collect::<Result<_, _>>()?;

    let (index, package_source) = match package.source {
        None => (None, PackageSource::IndexLookup { files }),
        Some(source_wire) => {
            let source_place = source.place(source_wire.span());
            let source_wire = source_wire.into_inner();
            let source_type = source_wire.r#type.clone().unwrap_or_default();
            let url = || {
                source_wire.url.clone().ok_or_else(|| {
                    source.missing_key(
                        source_place.clone(),
                        format!("the `source` of package `{label}`"),
                        "url",
                    )
                })
            };
            let parse_url = |written: String| {
                url::Url::parse(&written).map_err(|reason| FieldError::InvalidUrl {
                    place: source_place.clone(),
                    key: format!("the source `url` of package `{label}`"),
                    value: redact_text(&written),
                    reason,
                })
            };
            let first_hash = files.first().map(|file| file.sha256);
            match source_type.as_str() {
                "legacy" => (
                    Some(parse_url(url()?)?),
                    PackageSource::IndexLookup { files },
                ),
                "file" => {
                    let written = url()?;
                    let location = resolve_path(source.path, &written);
                    let filename = file_name(&written);
                    (
                        None,
                        PackageSource::Archive(Artifact {
                            filename,
                            location: ArtifactLocation::Path(location),
                            size: None,
                            sha256: first_hash,
                        }),
                    )
                }
                "url" => {
                    let written = url()?;
                    let location = parse_url(written.clone())?;
                    let filename =
                        fields::url_filename(&location).unwrap_or_else(|| file_name(&written));
                    (
                        None,
                        PackageSource::Archive(Artifact {
                            filename,
                            location: ArtifactLocation::Url(location),
                            size: None,
                            sha256: first_hash,
                        }),
                    )
                }
                "directory" => (
                    None,
                    PackageSource::Directory(DirectorySource::at(
                        source.path,
                        &url()?,
                        package.develop,
                    )),
                ),
                "git" => {
                    let written = url()?;
                    let Some(commit) = source_wire
                        .resolved_reference
                        .clone()
                        .or(source_wire.reference.clone())
                        .filter(|commit| is_commit_id(commit))
                    else {
                        return Err(PoetryError::UnpinnedGit {
                            place: source_place,
                            package: label,
                        });
                    };
                    let location = if written.contains("://") || written.starts_with("git@") {
                        written
                    } else {
                        resolve_path(source.path, &written).display().to_string()
                    };
                    (
                        None,
                        PackageSource::Vcs(VcsSource::git(
                            &location,
                            &commit,
                            source_wire.subdirectory.clone(),
                        )),
                    )
                }
                _ => {
                    return Err(PoetryError::UnknownSourceType {
                        place: source_place,
                        package: label,
                        source_type,
                    });
                }
            }
        }
    };

    Ok(Package {
        locked: LockedPackage {
            name,
            version: Some(version),
            index,
            source: package_source,
        },
        place,
        optional: package.optional,
        python_versions,
        groups,
        dependencies,
        has_hashes,
    })
}

fn file_name(written: &str) -> String {
    written
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(written)
        .to_string()
}

/// Poetry writes `file` and `directory` paths relative to the lockfile's folder.
fn resolve_path(lockfile: &Path, written: &str) -> PathBuf {
    let folder = lockfile.parent().unwrap_or(Path::new(""));
    let joined = folder.join(written);
    std::path::absolute(&joined).unwrap_or(joined)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::digest::Sha256Digest;
    use crate::lock::testing::{environment, linux_311};

    const LOCKFILE: &str = "/work/project/poetry.lock";
    const HASH_A: &str = "77e284d754527b01fb1e6fa8a1afe577858ebe4e9dad8919e34c862cb399bc34";
    const HASH_B: &str = "ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc";
    const HASH_C: &str = "1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2";

    fn selection(extras: &[&str], groups: &[&str], no_default_groups: bool) -> GroupSelection {
        GroupSelection {
            extras: extras
                .iter()
                .map(|extra| extra.to_string())
                .collect::<BTreeSet<_>>(),
            groups: groups
                .iter()
                .map(|group| group.to_string())
                .collect::<BTreeSet<_>>(),
            no_default_groups,
        }
    }

    fn with_hashes(text: &str) -> String {
        text.replace("HASH_A", HASH_A)
            .replace("HASH_B", HASH_B)
            .replace("HASH_C", HASH_C)
    }

    fn parse(text: &str) -> Result<PoetryLock, PoetryError> {
        PoetryLock::parse(Path::new(LOCKFILE), &with_hashes(text))
    }

    fn parse_error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn names(packages: &[LockedPackage]) -> Vec<String> {
        packages
            .iter()
            .map(|package| format!("{} {}", package.name, package.version.as_deref().unwrap()))
            .collect()
    }

    fn select(
        text: &str,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Vec<String> {
        names(&parse(text).unwrap().select(environment, selection).unwrap())
    }

    fn select_error(
        text: &str,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> String {
        parse(text)
            .unwrap()
            .select(environment, selection)
            .unwrap_err()
            .to_string()
    }

    /// What Poetry 2.x writes (lock-version 2.1): a service with a `dev` group, a
    /// Windows-only dependency, a Python-version marker, a per-group marker table, an
    /// extra, a package from a private `legacy` source and one from a local wheel.
    const LOCK_21: &str = r#"# This file is automatically @generated by Poetry 2.5.1 and should not be changed by hand.

[[package]]
name = "backports-tarfile"
version = "1.2.0"
description = "Backport of CPython tarfile module"
optional = false
python-versions = ">=3.8"
groups = ["main"]
markers = "python_version < \"3.12\""
files = [
    {file = "backports.tarfile-1.2.0-py3-none-any.whl", hash = "sha256:HASH_A"},
    {file = "backports_tarfile-1.2.0.tar.gz", hash = "sha256:HASH_B"},
]

[package.extras]
docs = ["furo", "jaraco.packaging (>=9.3)"]

[[package]]
name = "blinker"
version = "1.9.0"
description = "Fast, simple object-to-object and broadcast signaling"
optional = false
python-versions = ">=3.9"
groups = ["main", "dev"]
markers = {main = "sys_platform == \"linux\"", dev = "sys_platform == \"win32\""}
files = [
    {file = "blinker-1.9.0-py3-none-any.whl", hash = "sha256:HASH_B"},
]

[package.source]
type = "legacy"
url = "https://user:secret@pkgs.example.internal/simple"
reference = "private"

[[package]]
name = "colorama"
version = "0.4.6"
description = "Cross-platform colored terminal text."
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,!=3.6.*,>=2.7"
groups = ["main"]
markers = "platform_system == \"Windows\""
files = [
    {file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:HASH_C"},
]

[[package]]
name = "click"
version = "8.1.7"
description = "Composable command line interface toolkit"
optional = false
python-versions = ">=3.7"
groups = ["main"]
files = [
    {file = "click-8.1.7-py3-none-any.whl", hash = "sha256:HASH_A"},
]

[package.dependencies]
colorama = {version = "*", markers = "platform_system == \"Windows\""}

[[package]]
name = "pytest"
version = "8.3.4"
description = "pytest: simple powerful testing with Python"
optional = false
python-versions = ">=3.8"
groups = ["dev"]
files = [
    {file = "pytest-8.3.4-py3-none-any.whl", hash = "sha256:HASH_B"},
]

[package.dependencies]
colorama = {version = "*", markers = "sys_platform == \"win32\""}
iniconfig = "*"
packaging = [
    {version = ">=20", markers = "python_version >= \"3.8\""},
    {version = ">=19", markers = "python_version < \"3.8\""},
]

[[package]]
name = "pyyaml"
version = "6.0.2"
description = "YAML parser and emitter for Python"
optional = true
python-versions = ">=3.8"
groups = ["main"]
markers = "extra == \"yaml\""
files = [
    {file = "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hash = "sha256:HASH_C"},
]

[[package]]
name = "toolkit"
version = "0.3.0"
description = "In-house helpers"
optional = false
python-versions = "^3.10"
groups = ["main"]
files = [
    {file = "toolkit-0.3.0-py3-none-any.whl", hash = "sha256:HASH_A"},
]

[package.source]
type = "file"
url = "vendor/toolkit-0.3.0-py3-none-any.whl"

[extras]
yaml = ["pyyaml"]

[metadata]
lock-version = "2.1"
python-versions = "^3.10"
content-hash = "5169cd99573f91e186ad2a88d150d6558f6ee8d7977ef1ce0143a99e0dd473fd"
"#;

    /// What Poetry 1.5–1.8 writes (lock-version 2.0): no groups and no markers.
    const LOCK_20: &str = r#"[[package]]
name = "certifi"
version = "2024.8.30"
description = "Python package for providing Mozilla's CA Bundle."
optional = false
python-versions = ">=3.6"
files = [
    {file = "certifi-2024.8.30-py3-none-any.whl", hash = "sha256:HASH_A"},
]

[[package]]
name = "exceptiongroup"
version = "1.2.2"
description = "Backport of PEP 654 (exception groups)"
optional = false
python-versions = ">=3.7,<3.11"
files = [
    {file = "exceptiongroup-1.2.2-py3-none-any.whl", hash = "sha256:HASH_B"},
]

[[package]]
name = "pyyaml"
version = "6.0.2"
description = "YAML parser and emitter for Python"
optional = true
python-versions = ">=3.8"
files = [
    {file = "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hash = "sha256:HASH_C"},
]

[package.dependencies]
yaml-helper = {version = ">=1", optional = true}

[[package]]
name = "yaml-helper"
version = "1.0"
description = ""
optional = true
python-versions = "*"
files = [
    {file = "yaml_helper-1.0-py3-none-any.whl", hash = "sha256:HASH_A"},
]

[extras]
yaml = ["PyYAML (>=6)"]

[metadata]
lock-version = "2.0"
python-versions = ">=3.8,<4.0"
content-hash = "0b6e2f1fd2d23c1d0c32cbd14dc8d5f8e4efb4b1f1a01c6bcb0b8a2e8b4c8c11"
"#;

    #[test]
    fn ok_lock_21_main_group_on_linux() {
        assert_eq!(
            select(LOCK_21, &linux_311(), &GroupSelection::default()),
            [
                "backports-tarfile 1.2.0",
                "blinker 1.9.0",
                "click 8.1.7",
                "toolkit 0.3.0"
            ]
        );
    }

    #[test]
    fn ok_lock_21_markers_on_windows_and_newer_python() {
        assert_eq!(
            select(
                LOCK_21,
                &environment("win32", "3.12.1"),
                &GroupSelection::default()
            ),
            ["click 8.1.7", "colorama 0.4.6", "toolkit 0.3.0"]
        );
    }

    #[test]
    fn ok_lock_21_groups_and_per_group_markers() {
        // `dev` adds pytest; blinker's `dev` marker is false on Linux but its `main` one holds.
        assert_eq!(
            select(LOCK_21, &linux_311(), &selection(&[], &["dev"], false)),
            [
                "backports-tarfile 1.2.0",
                "blinker 1.9.0",
                "click 8.1.7",
                "pytest 8.3.4",
                "toolkit 0.3.0"
            ]
        );
        // Only `dev`: blinker's `dev` marker (win32) is false on Linux.
        assert_eq!(
            select(LOCK_21, &linux_311(), &selection(&[], &["dev"], true)),
            ["pytest 8.3.4"]
        );
        assert_eq!(
            select(
                LOCK_21,
                &environment("win32", "3.11.2"),
                &selection(&[], &["DEV"], true)
            ),
            ["blinker 1.9.0", "pytest 8.3.4"]
        );
    }

    #[test]
    fn ok_lock_21_extras() {
        let packages = select(LOCK_21, &linux_311(), &selection(&["YAML"], &[], false));
        assert!(
            packages.contains(&"pyyaml 6.0.2".to_string()),
            "{packages:?}"
        );
    }

    #[test]
    fn ok_lock_21_sources() {
        let lock = parse(LOCK_21).unwrap();
        let packages = lock
            .select(&linux_311(), &GroupSelection::default())
            .unwrap();
        let blinker = &packages[1];
        assert_eq!(
            blinker.index.as_ref().map(url::Url::as_str),
            Some("https://user:secret@pkgs.example.internal/simple")
        );
        assert_eq!(
            blinker.source,
            PackageSource::IndexLookup {
                files: vec![IndexFile {
                    filename: Some("blinker-1.9.0-py3-none-any.whl".to_string()),
                    sha256: Sha256Digest::from_hex(HASH_B).unwrap(),
                }]
            }
        );
        let PackageSource::IndexLookup { files } = &packages[0].source else {
            panic!("expected an index lookup");
        };
        assert_eq!(files.len(), 2);
        assert_eq!(packages[0].index, None);
        assert_eq!(
            packages[3].source,
            PackageSource::Archive(Artifact {
                filename: "toolkit-0.3.0-py3-none-any.whl".to_string(),
                location: ArtifactLocation::Path(PathBuf::from(
                    "/work/project/vendor/toolkit-0.3.0-py3-none-any.whl"
                )),
                size: None,
                sha256: Some(Sha256Digest::from_hex(HASH_A).unwrap()),
            })
        );
        assert_eq!(
            lock.indexes()
                .iter()
                .map(url::Url::as_str)
                .collect::<Vec<_>>(),
            ["https://user:secret@pkgs.example.internal/simple"]
        );
    }

    #[test]
    fn ok_lock_21_other_sources() {
        let text = r#"
[[package]]
name = "local-lib"
version = "0.1.0"
optional = false
python-versions = "*"
groups = ["main"]
files = []
[package.source]
type = "directory"
url = "libs/local-lib"

[[package]]
name = "remote"
version = "1.0"
optional = false
python-versions = "*"
groups = ["main"]
files = [{file = "remote-1.0-py3-none-any.whl", hash = "sha256:HASH_A"}]
[package.source]
type = "url"
url = "https://files.example.internal/remote-1.0-py3-none-any.whl"

[[package]]
name = "tool"
version = "2.0"
optional = false
python-versions = "*"
groups = ["main"]
files = []
[package.source]
type = "git"
url = "https://git.example.internal/tool.git"
reference = "main"
resolved_reference = "0123456789abcdef0123456789abcdef01234567"

[metadata]
lock-version = "2.1"
python-versions = "*"
content-hash = "x"
"#;
        let packages = parse(text)
            .unwrap()
            .select(&linux_311(), &GroupSelection::default())
            .unwrap();
        assert_eq!(
            packages[0].source,
            PackageSource::Directory(DirectorySource {
                path: PathBuf::from("/work/project/libs/local-lib"),
                editable: false,
            })
        );
        let PackageSource::Archive(remote) = &packages[1].source else {
            panic!("expected an archive");
        };
        assert_eq!(remote.filename, "remote-1.0-py3-none-any.whl");
        assert_eq!(
            packages[2].source,
            PackageSource::Vcs(VcsSource {
                kind: "git".to_string(),
                url: "https://git.example.internal/tool.git".to_string(),
                commit_id: "0123456789abcdef0123456789abcdef01234567".to_string(),
                subdirectory: None,
            })
        );
    }

    #[test]
    fn ok_lock_20_everything_not_optional_that_fits_python() {
        assert_eq!(
            select(LOCK_20, &linux_311(), &GroupSelection::default()),
            ["certifi 2024.8.30"]
        );
        assert_eq!(
            select(
                LOCK_20,
                &environment("linux", "3.10.4"),
                &GroupSelection::default()
            ),
            ["certifi 2024.8.30", "exceptiongroup 1.2.2"]
        );
    }

    #[test]
    fn ok_lock_20_extras_pull_optional_packages_transitively() {
        assert_eq!(
            select(
                LOCK_20,
                &linux_311(),
                &selection(&["yaml"], &["dev"], false)
            ),
            ["certifi 2024.8.30", "pyyaml 6.0.2", "yaml-helper 1.0"]
        );
    }

    #[test]
    fn ok_poetry_constraints() {
        let cases = [
            ("*", "3.11.7", true),
            ("^3.10", "3.11.7", true),
            ("^3.10", "4.0", false),
            ("^0.2", "0.3", false),
            ("~3.11", "3.11.9", true),
            ("~3.11", "3.12.0", false),
            ("~=3.11", "3.12.0", true),
            (">=3.8, <3.11", "3.11.0", false),
            (">= 3.8 < 3.12", "3.11.0", true),
            (">=2.7, !=3.0.*, !=3.1.*", "3.11.0", true),
            (">=3.6,<3.9 || >=3.11", "3.11.7", true),
            (">=3.6,<3.9 || >=3.12", "3.11.7", false),
            ("3.11", "3.11.7", true),
            ("3.11", "3.12.0", false),
        ];
        for (constraint, version, expected) in cases {
            let parsed = poetry_constraint_to_pep440(constraint).unwrap();
            let version = Version::from_str(version).unwrap();
            assert_eq!(
                parsed
                    .iter()
                    .any(|specifiers| specifiers.contains(&version)),
                expected,
                "{constraint} with {version}"
            );
        }
    }

    #[test]
    fn err_toml_syntax_line_column() {
        let text = "[[package]]\nname = \"a\nversion = \"1\"\n";
        assert_eq!(
            parse_error(text),
            "cannot parse lockfile `/work/project/poetry.lock:2:10`: invalid basic string, expected `\"`; fix the file at that position or run `poetry lock` again"
        );
    }

    #[test]
    fn err_toml_type_line_column() {
        let text = LOCK_21.replace("optional = true", "optional = \"yes\"");
        let error = parse_error(&text);
        assert!(
            error.starts_with("cannot parse lockfile `/work/project/poetry.lock:"),
            "{error}"
        );
        assert!(
            error.contains("invalid type: string \"yes\", expected a boolean"),
            "{error}"
        );
    }

    #[test]
    fn err_old_lock_version() {
        let text = "[[package]]\nname = \"a\"\n\n[metadata]\nlock-version = \"1.1\"\npython-versions = \"*\"\ncontent-hash = \"x\"\n\n[metadata.files]\na = []\n";
        assert_eq!(
            parse_error(text),
            "unsupported lockfile `/work/project/poetry.lock:5:16`: `lock-version = \"1.1\"`, but envbuild reads Poetry lockfiles of version 2.0 and 2.1 (Poetry 1.5 and later); run `poetry lock` with a current Poetry to rewrite it"
        );
    }

    #[test]
    fn err_missing_metadata() {
        assert_eq!(
            parse_error("[[package]]\nname = \"a\"\n"),
            "invalid lockfile `/work/project/poetry.lock`: the lockfile has no `metadata`, which Poetry always writes; run `poetry lock` again"
        );
    }

    #[test]
    fn err_missing_groups_in_21() {
        let text = LOCK_21.replace("groups = [\"dev\"]\n", "");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/poetry.lock:62:1`: package `pytest` has no `groups`, which Poetry always writes; run `poetry lock` again"
        );
    }

    #[test]
    fn err_invalid_version() {
        let text = LOCK_21.replace("version = \"8.3.4\"", "version = \"eight\"");
        assert!(
            parse_error(&text).starts_with(
                "invalid lockfile `/work/project/poetry.lock:62:1`: package `pytest` has `version = \"eight\"`, which is not a PEP 440 version: "
            ),
            "{}",
            parse_error(&text)
        );
    }

    #[test]
    fn err_invalid_marker() {
        let text = LOCK_21.replace("python_version < \\\"3.12\\\"", "python_version <<< 3");
        let error = parse_error(&text);
        assert!(
            error.starts_with("invalid lockfile `/work/project/poetry.lock:10:11`: `markers` of package `backports-tarfile` `python_version <<< 3` is not a valid marker: "),
            "{error}"
        );
    }

    #[test]
    fn err_invalid_python_versions() {
        let text = LOCK_21.replace(
            "python-versions = \"^3.10\"\ngroups",
            "python-versions = \"^three\"\ngroups",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/poetry.lock:98:19`: `python-versions` of package `toolkit` `^three` is not a valid version constraint: `three` is not a release version such as `3.11`"
        );
    }

    #[test]
    fn err_invalid_hash() {
        let text = LOCK_21.replace(
            "sha256:HASH_C\"},\n]\n\n[[package]]\nname = \"click\"",
            "sha256:abc\"},\n]\n\n[[package]]\nname = \"click\"",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/poetry.lock:45:5`: `hash` of file `colorama-0.4.6-py2.py3-none-any.whl` of package `colorama` is `sha256:abc`, but hashes are written `sha256:<64 hexadecimal characters>`; fix it, or run `poetry lock` again"
        );
    }

    #[test]
    fn err_unknown_source_type() {
        let text = LOCK_21.replace("type = \"file\"", "type = \"hg\"");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/poetry.lock:104:1`: package `toolkit` has a source of type `hg`; Poetry writes `legacy`, `file`, `url`, `directory` or `git`"
        );
    }

    #[test]
    fn err_invalid_source_url_hides_credentials() {
        let text = LOCK_21.replace(
            "https://user:secret@pkgs.example.internal/simple",
            "https://user:secret@pkgs example/simple",
        );
        let error = parse_error(&text);
        assert!(!error.contains("secret"), "{error}");
        assert!(
            error.contains("`https://***@pkgs example/simple`"),
            "{error}"
        );
    }

    #[test]
    fn err_unknown_extra() {
        assert_eq!(
            select_error(LOCK_21, &linux_311(), &selection(&["toml"], &[], false)),
            "cannot select extra `toml` from lockfile `/work/project/poetry.lock`: its `[extras]` table offers the extras `yaml`; choose one of those, or add the extra to pyproject.toml and run `poetry lock`"
        );
    }

    #[test]
    fn err_unknown_group() {
        assert_eq!(
            select_error(LOCK_21, &linux_311(), &selection(&[], &["docs"], false)),
            "cannot select dependency group `docs` from lockfile `/work/project/poetry.lock`: its packages belong to the groups `dev`, `main`; choose one of those, or add the group to pyproject.toml and run `poetry lock`"
        );
    }

    #[test]
    fn err_no_default_groups_in_20() {
        assert_eq!(
            select_error(LOCK_20, &linux_311(), &selection(&[], &[], true)),
            "cannot leave out the default group of lockfile `/work/project/poetry.lock`: it has `lock-version = \"2.0\"`, which records no dependency groups; run `poetry lock` with Poetry 2 to write lock-version 2.1"
        );
    }

    #[test]
    fn err_project_python_unmet() {
        assert_eq!(
            select_error(
                LOCK_21,
                &environment("linux", "3.9.18"),
                &GroupSelection::default()
            ),
            "cannot install lockfile `/work/project/poetry.lock:113:19` on the target: the project requires Python `^3.10`, but the target has Python 3.9.18; choose a target Python that satisfies it"
        );
    }

    #[test]
    fn err_package_python_unmet() {
        let text = LOCK_21.replace(
            "python-versions = \">=3.7\"",
            "python-versions = \">=3.12\"",
        );
        assert_eq!(
            select_error(&text, &linux_311(), &GroupSelection::default()),
            "cannot install package `click` 8.1.7 from lockfile `/work/project/poetry.lock:48:1`: it requires Python `>=3.12`, but the target has Python 3.11.7; choose a target Python that satisfies it, or run `poetry lock` again"
        );
    }

    #[test]
    fn err_ambiguous_package() {
        let text = LOCK_21.replace(
            "[[package]]\nname = \"pytest\"",
            "[[package]]\nname = \"click\"\nversion = \"8.0.0\"\noptional = false\npython-versions = \"*\"\ngroups = [\"main\"]\nfiles = [{file = \"click-8.0.0-py3-none-any.whl\", hash = \"sha256:HASH_B\"}]\n\n[[package]]\nname = \"pytest\"",
        );
        let error = select_error(&text, &linux_311(), &GroupSelection::default());
        assert_eq!(
            error,
            "cannot install lockfile `/work/project/poetry.lock` on the target: package `click` is selected twice, as version `8.1.7` at `/work/project/poetry.lock:48:1` and as version `8.0.0` at `/work/project/poetry.lock:62:1`; their markers both hold for the target, so fix the dependency markers in pyproject.toml and run `poetry lock`"
        );
    }

    #[test]
    fn err_selected_package_without_hashes() {
        let text = LOCK_21.replace(
            "files = [\n    {file = \"click-8.1.7-py3-none-any.whl\", hash = \"sha256:HASH_A\"},\n]",
            "files = []",
        );
        assert_eq!(
            select_error(&text, &linux_311(), &GroupSelection::default()),
            "cannot install package `click` 8.1.7 from lockfile `/work/project/poetry.lock:48:1`: its `files` hold no sha256 hash, and envbuild verifies every file it installs; run `poetry lock` again against an index that publishes hashes"
        );
    }

    #[test]
    fn ok_error_is_small() {
        assert!(std::mem::size_of::<PoetryError>() <= 128);
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        let seeds = [
            with_hashes(LOCK_21),
            with_hashes(LOCK_20),
            include_str!("../../tests/data/locks/poetry-2.0/poetry.lock").to_string(),
            include_str!("../../tests/data/locks/bad-poetry/poetry.lock").to_string(),
        ];
        let selections = crate::lock::testing::hostile_selections();
        crate::lock::testing::assert_no_panic("poetry.lock", seeds, 2000, |text| {
            if let Ok(lock) = PoetryLock::parse(Path::new(LOCKFILE), text) {
                let _ = lock.indexes();
                for (environment, selection) in &selections {
                    let _ = lock.select(environment, selection);
                }
            }
        });
    }

    #[test]
    fn err_invalid_package_name_names_file_line_and_name() {
        // `//[` reached the index lookup's `Url::join(...).expect(...)` and panicked.
        for (name, shown) in [
            ("//[", "//["),
            ("//host", "//host"),
            ("a\\u001b[2J", "a\\u{1b}[2J"),
        ] {
            let text = LOCK_21.replacen(
                "name = \"backports-tarfile\"",
                &format!("name = \"{name}\""),
                1,
            );
            assert_eq!(
                parse_error(&text),
                format!(
                    "invalid lockfile `/work/project/poetry.lock:4:8`: `{shown}` is not a valid package name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit"
                )
            );
        }
    }

    #[test]
    fn err_invalid_dependency_name() {
        let text = LOCK_21.replacen(
            "[package.dependencies]\n",
            "[package.dependencies]\n\"a/b\" = \"*\"\n",
            1,
        );
        assert!(
            parse_error(&text).contains("`a/b` is not a valid package name"),
            "{}",
            parse_error(&text)
        );
    }
}
