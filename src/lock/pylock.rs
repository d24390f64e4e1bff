//! PEP 751 `pylock.toml` (packaging.python.org, "pylock.toml Specification"): parsing,
//! validation of everything the spec makes mandatory, and selection of the packages to
//! install for one target environment and one choice of extras and groups.
//!
//! Limits: this module never touches the network or the files the lock points to, and
//! it does not choose among a package's wheels (that is `platform::select`'s job). sdist,
//! `archive`, `vcs` and `directory` sources are parsed and validated into the model; the
//! `source` stage builds them into wheels. sdist file names are not checked against the
//! package here: the built wheel's name and version are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;
use uv_normalize::{ExtraName, GroupName};
use uv_pep440::{Version, VersionSpecifiers};
use uv_pep508::{MarkerEnvironment, MarkerOperator, MarkerTree};

use super::fields::{self, Excerpt, FieldError};
use super::source::Source;
use super::{
    Artifact, ArtifactLocation, DirectorySource, GroupSelection, LockFormat, LockedPackage,
    PackageName, PackageSource, VcsSource,
};
use crate::digest::Sha256Digest;
use crate::untrusted::Untrusted;
use crate::wheel::filename::{WheelFilename, WheelFilenameError};

/// Whether a file name is a valid pylock file name: `pylock.toml`, or
/// `pylock.<name>.toml` where `<name>` is non-empty and has no `.`
/// (spec regex `^pylock\.([^.]+)\.toml$`).
pub(crate) fn is_pylock_file_name(name: &str) -> bool {
    if name == "pylock.toml" {
        return true;
    }
    name.strip_prefix("pylock.")
        .and_then(|rest| rest.strip_suffix(".toml"))
        .is_some_and(|middle| !middle.is_empty() && !middle.contains('.'))
}

/// Errors from a `pylock.toml`: the file breaks a PEP 751 rule, or it cannot be
/// installed on the chosen target.
///
/// `place` fields read `<lockfile>:<line>:<column>`, or just `<lockfile>` when the
/// problem has no single position in the file.
#[derive(Debug, thiserror::Error)]
pub enum PylockError {
    /// A field every format shares is missing or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// `lock-version` is not a version number.
    #[error(
        "invalid lockfile `{place}`: `lock-version = {version}` is not a version; PEP 751 lockfiles have `lock-version = \"1.0\"`",
        version = Excerpt(version)
    )]
    InvalidLockVersion {
        /// Where.
        place: String,
        /// The value, as TOML.
        version: String,
    },
    /// `lock-version` has a major version envbuild does not know (PEP 751: MUST error).
    #[error(
        "unsupported lockfile `{place}`: `lock-version = {version}`, but envbuild reads only major version 1 (`1.x`); export the lock in format version 1.0, or use an envbuild that supports this version",
        version = Excerpt(version)
    )]
    UnsupportedLockVersion {
        /// Where.
        place: String,
        /// The value, as TOML.
        version: String,
    },
    /// A package name is not in normalized form (PEP 751 requires it).
    #[error(
        "invalid lockfile `{place}`: package name `{name}` is not normalized; PEP 751 requires the normalized form `{normalized}`, write that instead",
        name = Untrusted(name),
        normalized = Untrusted(normalized)
    )]
    UnnormalizedPackageName {
        /// Where.
        place: String,
        /// The name, as written.
        name: String,
        /// Its normalized form.
        normalized: String,
    },
    /// `version` is set on a source tree (`vcs` or `directory`), which PEP 751 forbids.
    #[error(
        "invalid lockfile `{place}`: package `{package}` has both `version` and `{source_key}`; PEP 751 forbids a version on source trees, remove `version` or the `{source_key}` table",
        package = Untrusted(package),
        source_key = Untrusted(source_key)
    )]
    VersionWithSourceTree {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// `vcs` or `directory`.
        source_key: &'static str,
    },
    /// Sources that exclude each other are both set.
    #[error(
        "invalid lockfile `{place}`: package `{package}` sets {sources}; PEP 751 allows `wheels` and/or `sdist`, or else exactly one of `vcs`, `directory` and `archive`, so remove all but one kind of source",
        package = Untrusted(package),
        sources = Untrusted(sources)
    )]
    ConflictingSources {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The keys set, e.g. "`wheels` and `archive`".
        sources: String,
    },
    /// A package has no source at all.
    #[error(
        "invalid lockfile `{place}`: package `{package}` has none of `wheels`, `sdist`, `vcs`, `directory` and `archive`, so there is nothing to install; export the lock again with wheels",
        package = Untrusted(package)
    )]
    NoSource {
        /// Where.
        place: String,
        /// The package.
        package: String,
    },
    /// An artifact has neither `url` nor `path`.
    #[error(
        "invalid lockfile `{place}`: {artifact} of package `{package}` has neither `url` nor `path`, so it cannot be fetched; add one of them",
        artifact = Untrusted(artifact),
        package = Untrusted(package)
    )]
    MissingArtifactLocation {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Which artifact, e.g. "`wheels[0]`".
        artifact: String,
    },
    /// No file name can be derived for an artifact.
    #[error(
        "invalid lockfile `{place}`: cannot tell the file name of {artifact} of package `{package}`: its `path` and `url` end without a file name; add `name` with the file name",
        artifact = Untrusted(artifact),
        package = Untrusted(package)
    )]
    NoArtifactFilename {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Which artifact.
        artifact: String,
    },
    /// A wheel's file name does not parse; the cause says why.
    #[error(
        "invalid lockfile `{place}`: package `{package}` lists a wheel whose file name is not a valid wheel file name",
        package = Untrusted(package)
    )]
    InvalidWheelFilename {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Why the file name is rejected.
        #[source]
        source: Box<WheelFilenameError>,
    },
    /// A wheel's file name names another distribution.
    #[error(
        "invalid lockfile `{place}`: package `{package}` lists wheel `{filename}`, which is for package `{wheel_name}`; fix the wheel entry or the package `name`",
        filename = Excerpt(filename),
        package = Untrusted(package),
        wheel_name = Untrusted(wheel_name)
    )]
    WheelNameMismatch {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The wheel file name.
        filename: String,
        /// The (normalized) name in the file name.
        wheel_name: String,
    },
    /// A wheel's file name has another version than the package.
    #[error(
        "invalid lockfile `{place}`: package `{package}` has version `{version}`, but its wheel `{filename}` has version `{wheel_version}`; fix the wheel entry or the package `version`",
        filename = Excerpt(filename),
        package = Untrusted(package),
        version = Excerpt(version),
        wheel_version = Untrusted(wheel_version)
    )]
    WheelVersionMismatch {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The package version, as written.
        version: String,
        /// The wheel file name.
        filename: String,
        /// The version in the file name.
        wheel_version: String,
    },
    /// A `hashes` table is empty.
    #[error(
        "invalid lockfile `{place}`: `hashes` of {artifact} of package `{package}` is empty; PEP 751 requires at least one hash, add its `sha256`",
        artifact = Untrusted(artifact),
        package = Untrusted(package)
    )]
    EmptyHashes {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Which artifact.
        artifact: String,
    },
    /// `hashes.sha256` is not a hex SHA-256 digest.
    #[error(
        "invalid lockfile `{place}`: `hashes.sha256` of {artifact} of package `{package}` is `{value}`, which is not a SHA-256 digest (64 hexadecimal characters); fix or remove it",
        artifact = Untrusted(artifact),
        package = Untrusted(package),
        value = Excerpt(value)
    )]
    InvalidSha256 {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Which artifact.
        artifact: String,
        /// The value, as written.
        value: String,
    },
    /// `upload-time` is neither a TOML datetime nor a datetime string.
    #[error(
        "invalid lockfile `{place}`: `upload-time` of {artifact} of package `{package}` is `{value}`, but PEP 751 expects a TOML datetime such as `2025-02-13T16:50:00Z`",
        artifact = Untrusted(artifact),
        package = Untrusted(package),
        value = Excerpt(value)
    )]
    InvalidUploadTime {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Which artifact.
        artifact: String,
        /// The value, as TOML.
        value: String,
    },
    /// A package marker uses the legacy `extra == "name"` form, which PEP 751 forbids in
    /// lockfiles (installers SHOULD reject such files).
    #[error(
        "invalid lockfile `{place}`: `marker` of package `{package}` is `{marker}`, which uses the legacy `extra == \"{extra}\"` form that PEP 751 does not allow in lockfiles; write `'{extra}' in extras` instead, or export the lock again",
        extra = Untrusted(extra),
        marker = Excerpt(marker),
        package = Untrusted(package)
    )]
    LegacyExtraMarker {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The marker, as written.
        marker: String,
        /// The extra it names.
        extra: String,
    },
    /// The user asked for an extra the lock does not offer.
    #[error(
        "cannot select extra `{extra}` from lockfile `{path}`: the lock offers {offered}; choose one of those, or export the lock again with this extra",
        extra = Untrusted(extra),
        offered = Untrusted(offered)
    )]
    UnknownExtra {
        /// The lockfile.
        path: String,
        /// The requested extra.
        extra: String,
        /// What the file's `extras` lists, e.g. "the extras `a`, `b`" or "no extras".
        offered: String,
    },
    /// The user asked for a group the lock does not offer.
    #[error(
        "cannot select dependency group `{group}` from lockfile `{path}`: the lock offers {offered}; choose one of those, or export the lock again with this group",
        group = Untrusted(group),
        offered = Untrusted(offered)
    )]
    UnknownGroup {
        /// The lockfile.
        path: String,
        /// The requested group.
        group: String,
        /// What the file's `dependency-groups` and `default-groups` list.
        offered: String,
    },
    /// The target's Python does not satisfy the lock's `requires-python` (PEP 751: MUST
    /// error).
    #[error(
        "cannot install lockfile `{place}` on the target: the lock requires Python `{specifier}`, but the target has Python {python}; choose a target Python that satisfies it, or export the lock again for this Python",
        python = Untrusted(python),
        specifier = Excerpt(specifier)
    )]
    UnsupportedPython {
        /// Where.
        place: String,
        /// The target's `python_full_version`.
        python: String,
        /// The specifier, as written.
        specifier: String,
    },
    /// No `environments` entry matches the target (PEP 751: MUST error).
    #[error(
        "cannot install lockfile `{place}` on the target: it supports only the environments {environments}, and the target matches none of them; choose a matching target platform and Python, or export the lock again for this target",
        environments = Excerpt(environments)
    )]
    NoMatchingEnvironment {
        /// Where.
        place: String,
        /// The `environments` entries, quoted and comma-separated.
        environments: String,
    },
    /// A selected package's `requires-python` fails for the target (PEP 751: MUST error).
    #[error(
        "cannot install package `{package}` ({version}) from lockfile `{place}`: it requires Python `{specifier}`, but the target has Python {python}; choose a target Python that satisfies it, or export the lock again for this Python",
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
        /// Its version, e.g. "version `1.0`", or "no version".
        version: String,
        /// The target's `python_full_version`.
        python: String,
        /// The specifier, as written.
        specifier: String,
    },
    /// Two entries of the same package both apply to the target (PEP 751: MUST error).
    #[error(
        "cannot install lockfile `{path}` on the target: package `{package}` is selected twice, as {first} and as {second}; PEP 751 requires the markers to leave exactly one entry per package, fix the markers or export the lock again",
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
}

/// A parsed and validated `pylock.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Pylock {
    /// The lockfile, as given.
    path: PathBuf,
    /// Top-level `requires-python`, with its place.
    requires_python: Option<(RequiresPython, String)>,
    /// Top-level `environments`, as written and parsed; with the place of the key.
    environments: Option<(Vec<(String, MarkerTree)>, String)>,
    /// `extras`: the extras the file offers.
    extras: Vec<ExtraName>,
    /// `dependency-groups`: the groups the file offers.
    dependency_groups: Vec<GroupName>,
    /// `default-groups`: the groups selected unless the user opts out.
    default_groups: Vec<GroupName>,
    /// `[[packages]]`, in file order.
    packages: Vec<Package>,
}

/// A `requires-python` value, parsed and as written.
#[derive(Debug, Clone)]
struct RequiresPython {
    specifiers: VersionSpecifiers,
    written: String,
}

/// One `[[packages]]` entry after validation.
#[derive(Debug, Clone)]
struct Package {
    locked: LockedPackage,
    /// Where the entry starts (`path:line:column`).
    place: String,
    marker: Option<(MarkerTree, String)>,
    requires_python: Option<RequiresPython>,
}

// Wire types: the TOML as written. Every key PEP 751 requires is an `Option` here, so
// its absence gets a `MissingKey` error that names the key and table rather than
// serde's generic message. Unknown keys (including `[tool]`, `dependencies` and keys
// of newer minor versions) are ignored by serde's default.

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct VersionWire {
    lock_version: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PylockWire {
    environments: Option<Spanned<Vec<Spanned<String>>>>,
    requires_python: Option<Spanned<String>>,
    #[serde(default)]
    extras: Vec<Spanned<String>>,
    #[serde(default)]
    dependency_groups: Vec<Spanned<String>>,
    #[serde(default)]
    default_groups: Vec<Spanned<String>>,
    created_by: Option<String>,
    packages: Option<Vec<Spanned<PackageWire>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PackageWire {
    name: Option<Spanned<String>>,
    version: Option<String>,
    marker: Option<Spanned<String>>,
    requires_python: Option<Spanned<String>>,
    index: Option<String>,
    vcs: Option<Spanned<VcsWire>>,
    directory: Option<Spanned<DirectoryWire>>,
    archive: Option<Spanned<FileWire>>,
    sdist: Option<Spanned<FileWire>>,
    #[serde(default)]
    wheels: Vec<Spanned<FileWire>>,
    #[serde(default)]
    attestation_identities: Vec<Spanned<AttestationWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct VcsWire {
    r#type: Option<String>,
    url: Option<String>,
    path: Option<String>,
    commit_id: Option<String>,
    subdirectory: Option<String>,
}

#[derive(Deserialize)]
struct DirectoryWire {
    path: Option<String>,
    #[serde(default)]
    editable: bool,
    subdirectory: Option<String>,
}

/// `archive`, `sdist` and `wheels` entries share these keys (`archive` has no `name`,
/// and its `name`, if any, is ignored like any unknown key).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileWire {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    upload_time: Option<toml::Value>,
    hashes: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct AttestationWire {
    kind: Option<String>,
}

/// Which kind of artifact a [`FileWire`] is.
#[derive(Clone, Copy)]
enum ArtifactKind {
    Wheel(usize),
    Sdist,
    Archive,
}

impl ArtifactKind {
    fn label(self) -> String {
        match self {
            Self::Wheel(index) => format!("`wheels[{index}]`"),
            Self::Sdist => "`sdist`".to_string(),
            Self::Archive => "`archive`".to_string(),
        }
    }
}

impl Pylock {
    /// Parse and validate `text`, the contents of the lockfile at `path`. Relative
    /// artifact `path`s are resolved against `path`'s folder.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, PylockError> {
        let source = Source {
            path,
            text,
            format: LockFormat::Pylock,
        };

        // Check `lock-version` first, before the rest of the file is read with version 1
        // types: a future major version may change them. PEP 751: an unsupported major
        // version MUST be an error; an unknown minor version is accepted.
        let version: VersionWire = source.toml()?;
        check_lock_version(&source, version.lock_version)?;

        let wire: PylockWire = source.toml()?;
        if wire.created_by.is_none() {
            return Err(source
                .missing_key(source.whole_file(), "the top-level table", "created-by")
                .into());
        }
        let Some(packages_wire) = wire.packages else {
            return Err(source
                .missing_key(source.whole_file(), "the top-level table", "packages")
                .into());
        };

        let requires_python = wire
            .requires_python
            .map(|value| {
                let place = source.place(value.span());
                parse_requires_python(value.into_inner(), "`requires-python`".to_string(), &place)
                    .map(|parsed| (parsed, place))
            })
            .transpose()?;

        let environments = wire
            .environments
            .map(|list| {
                let list_place = source.place(list.span());
                let parsed = list
                    .into_inner()
                    .into_iter()
                    .map(|entry| {
                        let place = source.place(entry.span());
                        let written = entry.into_inner();
                        let marker = source.marker(&written, "`environments` entry", &place)?;
                        Ok((written, marker))
                    })
                    .collect::<Result<Vec<_>, PylockError>>()?;
                Ok::<_, PylockError>((parsed, list_place))
            })
            .transpose()?;

        let extras = parse_names::<ExtraName>(&source, wire.extras, "extras")?;
        let dependency_groups =
            parse_names::<GroupName>(&source, wire.dependency_groups, "dependency-groups")?;
        let default_groups =
            parse_names::<GroupName>(&source, wire.default_groups, "default-groups")?;

        let packages = packages_wire
            .into_iter()
            .map(|package| parse_package(&source, package))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self {
            path: path.to_path_buf(),
            requires_python,
            environments,
            extras,
            dependency_groups,
            default_groups,
            packages,
        })
    }

    /// The packages to install on `environment` with `selection`, sorted by name,
    /// following PEP 751's installation steps in order: choose extras and groups, check
    /// `requires-python`, check `environments`, then select packages by `marker`, with
    /// the mandatory errors on an unmet package `requires-python` and on two selected
    /// entries of one package.
    pub(crate) fn select(
        &self,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PylockError> {
        let path = self.path.display().to_string();

        // Step 1: extras and groups. The marker sets hold the *selected* ones:
        // `extras` = what was asked for, `dependency_groups` = default-groups (unless
        // opted out) plus what was asked for.
        let mut extras = Vec::new();
        for requested in &selection.extras {
            let extra = ExtraName::from_str(requested)
                .ok()
                .filter(|extra| self.extras.contains(extra))
                .ok_or_else(|| PylockError::UnknownExtra {
                    path: path.clone(),
                    extra: requested.clone(),
                    offered: fields::offered_list("extras", &self.extras),
                })?;
            extras.push(extra);
        }
        let mut groups: Vec<GroupName> = Vec::new();
        if !selection.no_default_groups {
            groups.extend(self.default_groups.iter().cloned());
        }
        for requested in &selection.groups {
            let group = GroupName::from_str(requested)
                .ok()
                .filter(|group| {
                    self.dependency_groups.contains(group) || self.default_groups.contains(group)
                })
                .ok_or_else(|| {
                    let offered: Vec<&GroupName> = self
                        .dependency_groups
                        .iter()
                        .chain(&self.default_groups)
                        .collect();
                    PylockError::UnknownGroup {
                        path: path.clone(),
                        group: requested.clone(),
                        offered: fields::offered_list("groups", &offered),
                    }
                })?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }

        let python = environment.python_full_version();

        // Step 3: top-level `requires-python` MUST be satisfied.
        if let Some((requires_python, place)) = &self.requires_python
            && !requires_python.specifiers.contains(&python.version)
        {
            return Err(PylockError::UnsupportedPython {
                place: place.clone(),
                python: python.to_string(),
                specifier: requires_python.written.clone(),
            });
        }

        // Step 4: if `environments` is present, at least one entry MUST match.
        if let Some((environments, place)) = &self.environments
            && !environments
                .iter()
                .any(|(_, marker)| marker.evaluate(environment, &[]))
        {
            let listed: Vec<String> = environments
                .iter()
                .map(|(written, _)| format!("`{}`", Excerpt(written)))
                .collect();
            return Err(PylockError::NoMatchingEnvironment {
                place: place.clone(),
                environments: listed.join(", "),
            });
        }

        // Step 5: per package, skip on a false marker; a selected package's
        // `requires-python` MUST hold, and two selected entries of one name MUST error.
        let mut selected: BTreeMap<&PackageName, &Package> = BTreeMap::new();
        for package in &self.packages {
            if let Some((marker, _)) = &package.marker
                && !marker.evaluate_pep751(environment, &extras, &groups)
            {
                continue;
            }
            if let Some(requires_python) = &package.requires_python
                && !requires_python.specifiers.contains(&python.version)
            {
                return Err(PylockError::PackageUnsupportedPython {
                    place: package.place.clone(),
                    package: package.locked.name.to_string(),
                    version: describe_version(&package.locked),
                    python: python.to_string(),
                    specifier: requires_python.written.clone(),
                });
            }
            if let Some(first) = selected.insert(&package.locked.name, package) {
                return Err(PylockError::AmbiguousPackage {
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
}

fn describe_version(package: &LockedPackage) -> String {
    match &package.version {
        Some(version) => format!("version `{version}`"),
        None => "no version".to_string(),
    }
}

fn describe_entry(package: &Package) -> String {
    format!(
        "{} at `{}`",
        describe_version(&package.locked),
        package.place
    )
}

fn check_lock_version(
    source: &Source<'_>,
    value: Option<Spanned<toml::Value>>,
) -> Result<(), PylockError> {
    let Some(value) = value else {
        return Err(source
            .missing_key(source.whole_file(), "the top-level table", "lock-version")
            .into());
    };
    let place = source.place(value.span());
    let value = value.into_inner();
    let parsed = value.as_str().and_then(|text| Version::from_str(text).ok());
    let Some(parsed) = parsed else {
        return Err(PylockError::InvalidLockVersion {
            place,
            version: value.to_string(),
        });
    };
    match parsed.release().first() {
        Some(1) => {
            if parsed.release().get(1).is_some_and(|minor| *minor > 0) {
                tracing::warn!(
                    "lockfile `{place}` has `lock-version = {value}`, newer than the 1.0 envbuild knows; keys added since are ignored"
                );
            }
            Ok(())
        }
        _ => Err(PylockError::UnsupportedLockVersion {
            place,
            version: value.to_string(),
        }),
    }
}

fn parse_requires_python(
    written: String,
    key: String,
    place: &str,
) -> Result<RequiresPython, PylockError> {
    match VersionSpecifiers::from_str(&written) {
        Ok(specifiers) => Ok(RequiresPython {
            specifiers,
            written,
        }),
        Err(error) => Err(FieldError::InvalidSpecifier {
            place: place.to_string(),
            key,
            value: written,
            reason: error.to_string(),
        }
        .into()),
    }
}

fn parse_names<T: std::str::FromStr>(
    source: &Source<'_>,
    entries: Vec<Spanned<String>>,
    key: &'static str,
) -> Result<Vec<T>, PylockError> {
    entries
        .into_iter()
        .map(|entry| {
            let place = source.place(entry.span());
            Ok(fields::name_at(
                entry.get_ref(),
                format!("`{key}` entry"),
                &place,
            )?)
        })
        .collect()
}

fn parse_package(
    source: &Source<'_>,
    package: Spanned<PackageWire>,
) -> Result<Package, PylockError> {
    let place = source.place(package.span());
    let package = package.into_inner();

    let Some(name) = package.name else {
        return Err(source
            .missing_key(place, "a `[[packages]]` entry", "name")
            .into());
    };
    let name_place = source.place(name.span());
    let written = name.into_inner();
    let name = source.package_name(&written, &name_place)?;
    // PEP 751: `packages.name` MUST be normalized.
    if name.as_str() != written {
        return Err(PylockError::UnnormalizedPackageName {
            place: name_place,
            name: written,
            normalized: name.to_string(),
        });
    }
    let package_label = name.to_string();

    let version = package
        .version
        .map(|written| match Version::from_str(&written) {
            Ok(parsed) => Ok((written, parsed)),
            Err(error) => Err(FieldError::InvalidVersion {
                place: place.clone(),
                package: package_label.clone(),
                version: written.clone(),
                reason: error.to_string(),
            }),
        })
        .transpose()?;

    // Sources: `wheels`/`sdist` exclude `vcs`/`directory`/`archive`, and without
    // wheels or sdist exactly one of those three is required.
    let has_distributions = package.sdist.is_some() || !package.wheels.is_empty();
    let mut set_keys: Vec<&str> = Vec::new();
    if !package.wheels.is_empty() {
        set_keys.push("wheels");
    }
    if package.sdist.is_some() {
        set_keys.push("sdist");
    }
    let mut tree_keys: Vec<&str> = Vec::new();
    for (key, present) in [
        ("vcs", package.vcs.is_some()),
        ("directory", package.directory.is_some()),
        ("archive", package.archive.is_some()),
    ] {
        if present {
            tree_keys.push(key);
        }
    }
    set_keys.extend(&tree_keys);
    if (has_distributions && !tree_keys.is_empty()) || tree_keys.len() > 1 {
        let quoted: Vec<String> = set_keys.iter().map(|key| format!("`{key}`")).collect();
        return Err(PylockError::ConflictingSources {
            place,
            package: package_label,
            sources: fields::join_and(&quoted),
        });
    }
    if !has_distributions && tree_keys.is_empty() {
        return Err(PylockError::NoSource {
            place,
            package: package_label,
        });
    }
    // PEP 751: `version` MUST NOT be present for source trees.
    if version.is_some() {
        for (key, present) in [
            ("vcs", package.vcs.is_some()),
            ("directory", package.directory.is_some()),
        ] {
            if present {
                return Err(PylockError::VersionWithSourceTree {
                    place,
                    package: package_label,
                    source_key: key,
                });
            }
        }
    }

    for identity in &package.attestation_identities {
        if identity.get_ref().kind.is_none() {
            return Err(source
                .missing_key(
                    source.place(identity.span()),
                    format!("an `attestation-identities` entry of package `{package_label}`"),
                    "kind",
                )
                .into());
        }
    }

    let index = package
        .index
        .map(|written| {
            url::Url::parse(&written).map_err(|reason| FieldError::InvalidUrl {
                place: place.clone(),
                key: format!("`index` of package `{package_label}`"),
                value: crate::http::redact_text(&written),
                reason,
            })
        })
        .transpose()?;

    let marker = package
        .marker
        .map(|written| {
            let marker_place = source.place(written.span());
            let written = written.into_inner();
            let marker = source.marker(
                &written,
                format!("`marker` of package `{package_label}`"),
                &marker_place,
            )?;
            // PEP 751 / dependency specifiers: `extra == "name"` is not permitted in
            // `packages.marker`; installers SHOULD reject such lock files.
            let mut legacy_extra = None;
            marker.visit_extras(|_: MarkerOperator, extra| {
                legacy_extra.get_or_insert_with(|| extra.to_string());
            });
            if let Some(extra) = legacy_extra {
                return Err(PylockError::LegacyExtraMarker {
                    place: marker_place,
                    package: package_label.clone(),
                    marker: written,
                    extra,
                });
            }
            Ok((marker, written))
        })
        .transpose()?;

    let requires_python = package
        .requires_python
        .map(|written| {
            let requires_place = source.place(written.span());
            parse_requires_python(
                written.into_inner(),
                format!("`requires-python` of package `{package_label}`"),
                &requires_place,
            )
        })
        .transpose()?;

    let context = PackageContext {
        source,
        package: &package_label,
    };
    let package_source = if has_distributions {
        let mut wheels = Vec::with_capacity(package.wheels.len());
        for (index, wheel) in package.wheels.into_iter().enumerate() {
            let wheel_place = source.place(wheel.span());
            let artifact =
                context.artifact(wheel.into_inner(), ArtifactKind::Wheel(index), &wheel_place)?;
            check_wheel_filename(
                &artifact.filename,
                &name,
                version.as_ref(),
                &package_label,
                &wheel_place,
            )?;
            wheels.push(artifact);
        }
        let sdist = package
            .sdist
            .map(|sdist| {
                let sdist_place = source.place(sdist.span());
                context.artifact(sdist.into_inner(), ArtifactKind::Sdist, &sdist_place)
            })
            .transpose()?;
        PackageSource::Distributions { wheels, sdist }
    } else if let Some(archive) = package.archive {
        let archive_place = source.place(archive.span());
        PackageSource::Archive(context.artifact(
            archive.into_inner(),
            ArtifactKind::Archive,
            &archive_place,
        )?)
    } else if let Some(vcs) = package.vcs {
        let vcs_place = source.place(vcs.span());
        let vcs = vcs.into_inner();
        let table = format!("`vcs` of package `{package_label}`");
        let Some(kind) = vcs.r#type else {
            return Err(source.missing_key(vcs_place, table, "type").into());
        };
        // PEP 751: a `path` is relative to the lockfile's folder; a `url` is taken as is.
        let location = match (vcs.path, vcs.url) {
            (Some(path), _) => Some(context.resolve_path(&path).display().to_string()),
            (None, url) => url,
        };
        let Some(url) = location else {
            return Err(PylockError::MissingArtifactLocation {
                place: vcs_place,
                package: package_label,
                artifact: "`vcs`".to_string(),
            });
        };
        let Some(commit_id) = vcs.commit_id else {
            return Err(source.missing_key(vcs_place, table, "commit-id").into());
        };
        let mut vcs_source = VcsSource::git(&url, &commit_id, vcs.subdirectory);
        vcs_source.kind = kind.to_ascii_lowercase();
        PackageSource::Vcs(vcs_source)
    } else if let Some(directory) = package.directory {
        let directory_place = source.place(directory.span());
        let directory = directory.into_inner();
        let Some(path) = directory.path else {
            return Err(source
                .missing_key(
                    directory_place,
                    format!("`directory` of package `{package_label}`"),
                    "path",
                )
                .into());
        };
        let mut tree = DirectorySource::at(source.path, &path, directory.editable);
        if let Some(subdirectory) = directory.subdirectory.filter(|dir| !dir.is_empty()) {
            tree.path = super::normalize_path(&tree.path.join(subdirectory));
        }
        PackageSource::Directory(tree)
    } else {
        unreachable!("the source checks above guarantee one source")
    };

    Ok(Package {
        locked: LockedPackage {
            name,
            version: version.map(|(written, _)| written),
            index,
            source: package_source,
        },
        place,
        marker,
        requires_python,
    })
}

/// PEP 751: each wheel's file name must parse, and its name and version must equal the
/// package's (versions compared by PEP 440 equality, so `1.0` matches `1.0.0`).
fn check_wheel_filename(
    filename: &str,
    name: &PackageName,
    version: Option<&(String, Version)>,
    package_label: &str,
    place: &str,
) -> Result<(), PylockError> {
    let wheel =
        WheelFilename::from_str(filename).map_err(|error| PylockError::InvalidWheelFilename {
            place: place.to_string(),
            package: package_label.to_string(),
            source: Box::new(error),
        })?;
    if &wheel.name != name {
        return Err(PylockError::WheelNameMismatch {
            place: place.to_string(),
            package: package_label.to_string(),
            filename: filename.to_string(),
            wheel_name: wheel.name.to_string(),
        });
    }
    if let Some((written, parsed)) = version {
        // The wheel parser has already checked that its version is PEP 440.
        let matches =
            Version::from_str(&wheel.version).is_ok_and(|wheel_version| &wheel_version == parsed);
        if !matches {
            return Err(PylockError::WheelVersionMismatch {
                place: place.to_string(),
                package: package_label.to_string(),
                version: written.clone(),
                filename: filename.to_string(),
                wheel_version: wheel.version.clone(),
            });
        }
    }
    Ok(())
}

/// What artifact parsing needs to know about the package it belongs to.
struct PackageContext<'a> {
    source: &'a Source<'a>,
    package: &'a str,
}

impl PackageContext<'_> {
    /// Map an `archive`, `sdist` or `wheels` entry into an [`Artifact`].
    fn artifact(
        &self,
        file: FileWire,
        kind: ArtifactKind,
        place: &str,
    ) -> Result<Artifact, PylockError> {
        let label = kind.label();
        let url = file
            .url
            .as_ref()
            .map(|written| {
                url::Url::parse(written).map_err(|reason| FieldError::InvalidUrl {
                    place: place.to_string(),
                    key: format!(
                        "`{}.url` of package `{}`",
                        label.trim_matches('`'),
                        self.package
                    ),
                    value: crate::http::redact_text(written),
                    reason,
                })
            })
            .transpose()?;

        // PEP 751: fetch from `path` when given, else from `url`.
        let location = match (&file.path, url.clone()) {
            (Some(written), _) => ArtifactLocation::Path(self.resolve_path(written)),
            (None, Some(url)) => ArtifactLocation::Url(url),
            (None, None) => {
                return Err(PylockError::MissingArtifactLocation {
                    place: place.to_string(),
                    package: self.package.to_string(),
                    artifact: label,
                });
            }
        };

        // The file name: `name` (not for `archive`), then `path`'s last component
        // (PEP 751: it takes precedence over `url`'s), then `url`'s last segment.
        let name = match kind {
            ArtifactKind::Archive => None,
            ArtifactKind::Wheel(_) | ArtifactKind::Sdist => {
                file.name.clone().filter(|name| !name.is_empty())
            }
        };
        let filename = name
            .or_else(|| {
                file.path.as_deref().and_then(|written| {
                    Path::new(written)
                        .file_name()
                        .and_then(|name| name.to_str())
                        .map(str::to_string)
                })
            })
            .or_else(|| url.as_ref().and_then(fields::url_filename));
        let Some(filename) = filename else {
            return Err(PylockError::NoArtifactFilename {
                place: place.to_string(),
                package: self.package.to_string(),
                artifact: label,
            });
        };

        if let Some(value) = &file.upload_time {
            // Lenient, as the spec notes some producers write a string: accept a TOML
            // datetime, or a string holding one.
            let valid = match value {
                toml::Value::Datetime(_) => true,
                toml::Value::String(text) => toml::value::Datetime::from_str(text).is_ok(),
                _ => false,
            };
            if !valid {
                return Err(PylockError::InvalidUploadTime {
                    place: place.to_string(),
                    package: self.package.to_string(),
                    artifact: label,
                    value: value.to_string(),
                });
            }
        }

        let Some(hashes) = file.hashes else {
            return Err(self
                .source
                .missing_key(
                    place.to_string(),
                    format!("{label} of package `{}`", self.package),
                    "hashes",
                )
                .into());
        };
        if hashes.is_empty() {
            return Err(PylockError::EmptyHashes {
                place: place.to_string(),
                package: self.package.to_string(),
                artifact: label,
            });
        }
        // Algorithm names SHOULD be lowercase; accept any case. Without a sha256 the
        // artifact keeps `None`, and the fetch stage refuses it.
        let sha256 = hashes
            .iter()
            .find(|(algorithm, _)| algorithm.eq_ignore_ascii_case("sha256"))
            .map(|(_, value)| {
                // Hex only: `from_hex` would also take a `sha256:` prefix, which
                // PEP 751 hash values never have.
                Sha256Digest::from_hex(value)
                    .ok()
                    .filter(|_| !value.contains(':'))
                    .ok_or_else(|| PylockError::InvalidSha256 {
                        place: place.to_string(),
                        package: self.package.to_string(),
                        artifact: label.clone(),
                        value: value.clone(),
                    })
            })
            .transpose()?;

        Ok(Artifact {
            filename,
            location,
            size: file.size,
            sha256,
        })
    }

    /// PEP 751: relative paths are relative to the lockfile's folder.
    fn resolve_path(&self, written: &str) -> PathBuf {
        let folder = self.source.path.parent().unwrap_or(Path::new(""));
        let joined = folder.join(written);
        // `absolute` does not touch the file system beyond reading the working
        // directory, which only matters for a lockfile given by a relative path.
        std::path::absolute(&joined).unwrap_or(joined)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::lock::testing::environment;

    const LOCKFILE: &str = "/work/project/pylock.toml";
    const HASH_A: &str = "3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe";
    const HASH_B: &str = "c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a";

    fn linux_312() -> MarkerEnvironment {
        environment("linux", "3.12.3")
    }

    fn with_hashes(text: &str) -> String {
        text.replace("HASH_A", HASH_A).replace("HASH_B", HASH_B)
    }

    fn parse(text: &str) -> Result<Pylock, PylockError> {
        Pylock::parse(Path::new(LOCKFILE), &with_hashes(text))
    }

    fn parse_error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn select(
        text: &str,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PylockError> {
        parse(text).unwrap().select(environment, selection)
    }

    fn select_error(
        text: &str,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> String {
        select(text, environment, selection)
            .unwrap_err()
            .to_string()
    }

    fn names(packages: &[LockedPackage]) -> Vec<&str> {
        packages
            .iter()
            .map(|package| package.name.as_str())
            .collect()
    }

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

    fn only_wheels(package: &LockedPackage) -> &[Artifact] {
        match &package.source {
            PackageSource::Distributions { wheels, .. } => wheels,
            other => panic!("expected wheels, got {other:?}"),
        }
    }

    /// The shape `uv export --format pylock.toml` writes.
    const UV_EXPORT: &str = r#"# This file was autogenerated by uv via the following command:
#    uv export --format pylock.toml -o pylock.toml
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.9"

[[packages]]
name = "anyio"
version = "4.9.0"
index = "https://example.com/simple"
dependencies = [{ name = "idna" }, { name = "exceptiongroup" }]
sdist = { url = "https://files.example.com/packages/95/7d/anyio-4.9.0.tar.gz", upload-time = 2025-03-17T00:02:54Z, size = 190949, hashes = { sha256 = "HASH_A" } }
wheels = [{ url = "https://files.example.com/packages/a1/ee/anyio-4.9.0-py3-none-any.whl", upload-time = 2025-03-17T00:02:52Z, size = 100916, hashes = { sha256 = "HASH_B" } }]

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
index = "https://example.com/simple"
wheels = [{ url = "https://files.example.com/packages/d1/d6/colorama-0.4.6-py2.py3-none-any.whl", upload-time = 2022-10-25T02:36:20.889Z, size = 25335, hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "exceptiongroup"
version = "1.2.2"
marker = "python_full_version < '3.11'"
index = "https://example.com/simple"
wheels = [{ url = "https://files.example.com/packages/02/cc/exceptiongroup-1.2.2-py3-none-any.whl", upload-time = 2024-07-12T22:25:58.476Z, size = 16453, hashes = { sha256 = "HASH_B" } }]

[[packages]]
name = "idna"
version = "3.10"
index = "https://example.com/simple"
wheels = [{ url = "https://files.example.com/packages/76/c6/idna-3.10-py3-none-any.whl", upload-time = 2024-09-15T18:07:37.964Z, size = 70442, hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "markupsafe"
version = "3.0.2"
index = "https://example.com/simple"
wheels = [
    { url = "https://files.example.com/packages/22/09/MarkupSafe-3.0.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", upload-time = 2024-10-18T15:21:14.822Z, size = 23903, hashes = { sha256 = "HASH_A" } },
    { url = "https://files.example.com/packages/3c/45/MarkupSafe-3.0.2-cp312-cp312-win_amd64.whl", upload-time = 2024-10-18T15:21:25.382Z, size = 15506, hashes = { sha256 = "HASH_B" } },
]

[[packages]]
name = "typing-extensions"
version = "4.13.2"
marker = "python_full_version < '3.13'"
index = "https://example.com/simple"
wheels = [{ url = "https://files.example.com/packages/8b/54/typing_extensions-4.13.2-py3-none-any.whl", upload-time = 2025-04-10T14:19:03.967Z, size = 45806, hashes = { sha256 = "HASH_B" } }]

[tool.uv]
some-setting = true
"#;

    /// The shape PDM writes: default groups, and extras and groups in markers.
    const GROUPS: &str = r#"
lock-version = "1.0"
created-by = "pdm"
extras = ["socks"]
dependency-groups = ["dev", "docs"]
default-groups = ["default"]

[[packages]]
name = "requests"
version = "2.32.3"
marker = "'default' in dependency_groups"
wheels = [{ url = "https://example.com/requests-2.32.3-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "pysocks"
version = "1.7.1"
marker = "'default' in dependency_groups and 'socks' in extras"
wheels = [{ url = "https://example.com/PySocks-1.7.1-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "pytest"
version = "8.3.5"
marker = "'dev' in dependency_groups"
wheels = [{ url = "https://example.com/pytest-8.3.5-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "sphinx"
version = "8.2.3"
marker = "'docs' in dependency_groups and python_full_version >= '3.11'"
wheels = [{ url = "https://example.com/sphinx-8.2.3-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "tomli"
version = "2.2.1"
marker = "'dev' not in dependency_groups"
wheels = [{ url = "https://example.com/tomli-2.2.1-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]
"#;

    /// One package with one wheel; error tests edit it.
    const MINIMAL: &str = r#"lock-version = "1.0"
created-by = "test"

[[packages]]
name = "attrs"
version = "25.1.0"

[[packages.wheels]]
url = "https://example.com/attrs-25.1.0-py3-none-any.whl"
hashes = { sha256 = "HASH_A" }
"#;

    #[test]
    fn ok_pylock_file_names() {
        assert!(is_pylock_file_name("pylock.toml"));
        assert!(is_pylock_file_name("pylock.dev.toml"));
        assert!(!is_pylock_file_name("pylock.a.b.toml"));
        assert!(!is_pylock_file_name("pylock..toml"));
        assert!(!is_pylock_file_name("Pylock.toml"));
        assert!(!is_pylock_file_name("uv.lock"));
    }

    #[test]
    fn ok_uv_export_linux() {
        let packages = select(UV_EXPORT, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(
            names(&packages),
            ["anyio", "idna", "markupsafe", "typing-extensions"]
        );

        let anyio = &packages[0];
        assert_eq!(anyio.version.as_deref(), Some("4.9.0"));
        assert_eq!(
            anyio.index.as_ref().unwrap().as_str(),
            "https://example.com/simple"
        );
        let PackageSource::Distributions { wheels, sdist } = &anyio.source else {
            panic!("expected distributions");
        };
        assert_eq!(
            wheels,
            &[Artifact {
                filename: "anyio-4.9.0-py3-none-any.whl".to_string(),
                location: ArtifactLocation::Url(
                    url::Url::parse(
                        "https://files.example.com/packages/a1/ee/anyio-4.9.0-py3-none-any.whl"
                    )
                    .unwrap()
                ),
                size: Some(100916),
                sha256: Some(Sha256Digest::from_hex(HASH_B).unwrap()),
            }]
        );
        let sdist = sdist.as_ref().unwrap();
        assert_eq!(sdist.filename, "anyio-4.9.0.tar.gz");
        assert_eq!(sdist.size, Some(190949));
        assert_eq!(sdist.sha256, Some(Sha256Digest::from_hex(HASH_A).unwrap()));

        let markupsafe = only_wheels(&packages[2]);
        assert_eq!(
            markupsafe
                .iter()
                .map(|wheel| wheel.filename.as_str())
                .collect::<Vec<_>>(),
            [
                "MarkupSafe-3.0.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "MarkupSafe-3.0.2-cp312-cp312-win_amd64.whl",
            ]
        );
    }

    #[test]
    fn ok_uv_export_windows_old_python() {
        let packages = select(
            UV_EXPORT,
            &environment("win32", "3.9.13"),
            &GroupSelection::default(),
        )
        .unwrap();
        assert_eq!(
            names(&packages),
            [
                "anyio",
                "colorama",
                "exceptiongroup",
                "idna",
                "markupsafe",
                "typing-extensions"
            ]
        );
    }

    #[test]
    fn ok_uv_export_newest_python_skips_backports() {
        let packages = select(
            UV_EXPORT,
            &environment("linux", "3.13.1"),
            &GroupSelection::default(),
        )
        .unwrap();
        assert_eq!(names(&packages), ["anyio", "idna", "markupsafe"]);
    }

    #[test]
    fn ok_default_groups_selected_by_default() {
        let packages = select(GROUPS, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(names(&packages), ["requests", "tomli"]);
    }

    #[test]
    fn ok_extras_and_groups_in_markers() {
        let packages = select(
            GROUPS,
            &linux_312(),
            &selection(&["socks"], &["dev"], false),
        )
        .unwrap();
        assert_eq!(names(&packages), ["pysocks", "pytest", "requests"]);
    }

    #[test]
    fn ok_extra_and_group_names_are_normalized() {
        let packages = select(
            GROUPS,
            &linux_312(),
            &selection(&["SOCKS"], &["Dev"], false),
        )
        .unwrap();
        assert_eq!(names(&packages), ["pysocks", "pytest", "requests"]);
    }

    #[test]
    fn ok_no_default_groups() {
        let packages = select(GROUPS, &linux_312(), &selection(&[], &["docs"], true)).unwrap();
        assert_eq!(names(&packages), ["sphinx", "tomli"]);
        // A default group can still be asked for by name.
        let packages = select(GROUPS, &linux_312(), &selection(&[], &["default"], true)).unwrap();
        assert_eq!(names(&packages), ["requests", "tomli"]);
        // Group and python markers combine.
        let packages = select(
            GROUPS,
            &environment("linux", "3.10.4"),
            &selection(&[], &["docs"], true),
        )
        .unwrap();
        assert_eq!(names(&packages), ["tomli"]);
    }

    #[test]
    fn ok_spec_example_with_environments() {
        let text = r#"
lock-version = '1.0'
environments = ["sys_platform == 'win32'", "sys_platform == 'linux'"]
requires-python = '== 3.12.*'
created-by = 'mousebender'

[[packages]]
name = 'numpy'
version = '2.2.3'
requires-python = '>= 3.10'
    [[packages.wheels]]
    name = 'numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'
    upload-time = 2025-02-13T16:50:00.079662+00:00
    url = 'https://files.example.com/packages/39/04/numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'
    size = 16116679
    hashes = {sha256 = '3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe'}

    [[packages.attestation-identities]]
    environment = 'release'
    kind = 'GitHub'
    repository = 'numpy/numpy'
    workflow = 'wheels.yml'

[tool.mousebender]
command = ['.', 'lock', '--platform', 'cpython3.12-windows-x64']
"#;
        let packages = select(text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(names(&packages), ["numpy"]);
        assert_eq!(only_wheels(&packages[0])[0].size, Some(16116679));
    }

    #[test]
    fn ok_unknown_minor_version_and_unknown_keys() {
        let text = MINIMAL
            .replace(
                r#"lock-version = "1.0""#,
                "lock-version = \"1.7\"\nfuture-key = 3",
            )
            .replace(
                "[[packages.wheels]]",
                "future-package-key = { a = 1 }\n[[packages.wheels]]",
            );
        let packages = select(&text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(names(&packages), ["attrs"]);
    }

    #[test]
    fn ok_relative_path_resolves_against_lockfile_folder() {
        let text = with_hashes(
            r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "attrs"
version = "25.1.0"
wheels = [{ path = "../wheels/attrs-25.1.0-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]
[[packages]]
name = "idna"
version = "3.10"
wheels = [{ path = "/srv/wheels/idna-3.10-py3-none-any.whl", hashes = { sha256 = "HASH_A" } }]
"#,
        );
        let lock = Pylock::parse(Path::new("/work/project/locks/pylock.toml"), &text).unwrap();
        let packages = lock
            .select(&linux_312(), &GroupSelection::default())
            .unwrap();
        assert_eq!(
            only_wheels(&packages[0])[0].location,
            ArtifactLocation::Path(PathBuf::from(
                "/work/project/locks/../wheels/attrs-25.1.0-py3-none-any.whl"
            ))
        );
        assert_eq!(
            only_wheels(&packages[1])[0].location,
            ArtifactLocation::Path(PathBuf::from("/srv/wheels/idna-3.10-py3-none-any.whl"))
        );
    }

    #[test]
    fn ok_path_takes_precedence_over_url() {
        let text = MINIMAL.replace(
            r#"url = "https://example.com/attrs-25.1.0-py3-none-any.whl""#,
            "url = \"https://example.com/download?id=7\"\npath = \"dist/attrs-25.1.0-py3-none-any.whl\"",
        );
        let packages = select(&text, &linux_312(), &GroupSelection::default()).unwrap();
        let wheel = &only_wheels(&packages[0])[0];
        assert_eq!(wheel.filename, "attrs-25.1.0-py3-none-any.whl");
        assert_eq!(
            wheel.location,
            ArtifactLocation::Path(PathBuf::from(
                "/work/project/dist/attrs-25.1.0-py3-none-any.whl"
            ))
        );
    }

    #[test]
    fn ok_url_wheel_with_filename_in_name() {
        let text = MINIMAL.replace(
            r#"url = "https://example.com/attrs-25.1.0-py3-none-any.whl""#,
            "name = \"attrs-25.1.0-py3-none-any.whl\"\nurl = \"http://127.0.0.1:8080/blobs/3f2a9c\"",
        );
        let packages = select(&text, &linux_312(), &GroupSelection::default()).unwrap();
        let wheel = &only_wheels(&packages[0])[0];
        assert_eq!(wheel.filename, "attrs-25.1.0-py3-none-any.whl");
        assert_eq!(
            wheel.location,
            ArtifactLocation::Url(url::Url::parse("http://127.0.0.1:8080/blobs/3f2a9c").unwrap())
        );
    }

    #[test]
    fn ok_percent_encoded_url_filename() {
        let text = r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "torch"
version = "2.5.1+cpu"
wheels = [{ url = "https://example.com/whl/cpu/torch-2.5.1%2Bcpu-cp312-cp312-linux_x86_64.whl", hashes = { sha256 = "HASH_A" } }]
"#;
        let packages = select(text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(
            only_wheels(&packages[0])[0].filename,
            "torch-2.5.1+cpu-cp312-cp312-linux_x86_64.whl"
        );
    }

    #[test]
    fn ok_wheel_version_compared_by_pep440() {
        let text = MINIMAL.replace("attrs-25.1.0-py3", "attrs-25.1-py3");
        assert!(parse(&text).is_ok());
        let text = MINIMAL.replace(r#"version = "25.1.0""#, r#"version = "25.1.0.0""#);
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn ok_upload_time_as_string() {
        let text = MINIMAL.replace(
            "hashes =",
            "upload-time = \"2024-07-26T18:15:03.762Z\"\nhashes =",
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn ok_sha256_absent_or_uppercase() {
        let text = MINIMAL.replace(
            r#"hashes = { sha256 = "HASH_A" }"#,
            r#"hashes = { sha512 = "abcd" }"#,
        );
        let packages = select(&text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(only_wheels(&packages[0])[0].sha256, None);

        let text = MINIMAL.replace("HASH_A", &HASH_A.to_uppercase());
        let packages = select(&text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(
            only_wheels(&packages[0])[0].sha256,
            Some(Sha256Digest::from_hex(HASH_A).unwrap())
        );
    }

    #[test]
    fn ok_other_sources() {
        let text = r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "local-lib"
directory = { path = "./libs/local-lib", editable = true }
[[packages]]
name = "from-git"
vcs = { type = "git", url = "https://example.com/from-git.git", requested-revision = "main", commit-id = "0123456789abcdef0123456789abcdef01234567" }
[[packages]]
name = "from-archive"
version = "1.0"
archive = { url = "https://example.com/get?file=1", path = "archives/from_archive-1.0-py3-none-any.whl", size = 1234, hashes = { sha256 = "HASH_A" } }
[[packages]]
name = "only-sdist"
version = "0.1"
sdist = { name = "only_sdist-0.1.tar.gz", url = "https://example.com/sdist/download", hashes = { sha256 = "HASH_B" } }
"#;
        let packages = select(text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(
            names(&packages),
            ["from-archive", "from-git", "local-lib", "only-sdist"]
        );
        assert_eq!(
            packages[0].source,
            PackageSource::Archive(Artifact {
                filename: "from_archive-1.0-py3-none-any.whl".to_string(),
                location: ArtifactLocation::Path(PathBuf::from(
                    "/work/project/archives/from_archive-1.0-py3-none-any.whl"
                )),
                size: Some(1234),
                sha256: Some(Sha256Digest::from_hex(HASH_A).unwrap()),
            })
        );
        assert_eq!(
            packages[1].source,
            PackageSource::Vcs(VcsSource {
                kind: "git".to_string(),
                url: "https://example.com/from-git.git".to_string(),
                commit_id: "0123456789abcdef0123456789abcdef01234567".to_string(),
                subdirectory: None,
            })
        );
        assert_eq!(packages[1].version, None);
        assert_eq!(
            packages[2].source,
            PackageSource::Directory(DirectorySource {
                path: PathBuf::from("/work/project/libs/local-lib"),
                editable: true,
            })
        );
        let PackageSource::Distributions { wheels, sdist } = &packages[3].source else {
            panic!("expected distributions");
        };
        assert!(wheels.is_empty());
        assert_eq!(sdist.as_ref().unwrap().filename, "only_sdist-0.1.tar.gz");
    }

    #[test]
    fn err_toml_syntax_line_column() {
        let text = "lock-version = \"1.0\"\ncreated-by = \"uv\"\n[[packages]]\nname = \"attrs\nversion = \"1\"\n";
        assert_eq!(
            parse_error(text),
            "cannot parse lockfile `/work/project/pylock.toml:4:14`: invalid basic string, expected `\"`; fix the file at that position or export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_toml_type_line_column() {
        let text = MINIMAL.replace("hashes =", "size = \"big\"\nhashes =");
        assert_eq!(
            parse_error(&text),
            "cannot parse lockfile `/work/project/pylock.toml:10:8`: invalid type: string \"big\", expected u64; fix the file at that position or export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_missing_lock_version() {
        let text = MINIMAL.replace("lock-version = \"1.0\"\n", "");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml`: the top-level table has no `lock-version`, which PEP 751 requires; export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_unsupported_major_version() {
        // Checked before anything else, so version-2 shapes do not get type errors.
        let text = "lock-version = \"2.0\"\npackages = \"elsewhere\"\n";
        assert_eq!(
            parse_error(text),
            "unsupported lockfile `/work/project/pylock.toml:1:16`: `lock-version = \"2.0\"`, but envbuild reads only major version 1 (`1.x`); export the lock in format version 1.0, or use an envbuild that supports this version"
        );
    }

    #[test]
    fn err_lock_version_not_a_version() {
        let text = MINIMAL.replace(r#"lock-version = "1.0""#, "lock-version = 1.0");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:1:16`: `lock-version = 1.0` is not a version; PEP 751 lockfiles have `lock-version = \"1.0\"`"
        );
    }

    #[test]
    fn err_missing_created_by() {
        let text = MINIMAL.replace("created-by = \"test\"\n", "");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml`: the top-level table has no `created-by`, which PEP 751 requires; export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_missing_packages() {
        let text = "lock-version = \"1.0\"\ncreated-by = \"test\"\n";
        assert_eq!(
            parse_error(text),
            "invalid lockfile `/work/project/pylock.toml`: the top-level table has no `packages`, which PEP 751 requires; export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_missing_package_name() {
        let text = MINIMAL.replace("name = \"attrs\"\n", "");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:4:1`: a `[[packages]]` entry has no `name`, which PEP 751 requires; export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_unnormalized_name() {
        let text = MINIMAL.replace(r#"name = "attrs""#, r#"name = "Jaraco.Functools""#);
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:5:8`: package name `Jaraco.Functools` is not normalized; PEP 751 requires the normalized form `jaraco-functools`, write that instead"
        );
    }

    #[test]
    fn err_invalid_name() {
        let text = MINIMAL.replace(r#"name = "attrs""#, r#"name = "-attrs""#);
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:5:8`: `-attrs` is not a valid package name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit"
        );
    }

    #[test]
    fn err_invalid_version() {
        let text = MINIMAL.replace(r#"version = "25.1.0""#, r#"version = "latest""#);
        assert!(
            parse_error(&text).starts_with(
                "invalid lockfile `/work/project/pylock.toml:4:1`: package `attrs` has `version = \"latest\"`, which is not a PEP 440 version: "
            ),
            "{}",
            parse_error(&text)
        );
    }

    #[test]
    fn err_version_with_vcs() {
        let text = r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "from-git"
version = "1.0"
vcs = { type = "git", url = "https://example.com/from-git.git", commit-id = "0123456789abcdef0123456789abcdef01234567" }
"#;
        assert_eq!(
            parse_error(text),
            "invalid lockfile `/work/project/pylock.toml:3:1`: package `from-git` has both `version` and `vcs`; PEP 751 forbids a version on source trees, remove `version` or the `vcs` table"
        );
    }

    #[test]
    fn err_version_with_directory() {
        let text = r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "local"
version = "1.0"
directory = { path = "." }
"#;
        assert_eq!(
            parse_error(text),
            "invalid lockfile `/work/project/pylock.toml:3:1`: package `local` has both `version` and `directory`; PEP 751 forbids a version on source trees, remove `version` or the `directory` table"
        );
    }

    #[test]
    fn err_conflicting_wheels_and_archive() {
        let text = MINIMAL.replace(
            "[[packages.wheels]]",
            "archive = { url = \"https://example.com/attrs.zip\", hashes = { sha256 = \"HASH_A\" } }\n[[packages.wheels]]",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:4:1`: package `attrs` sets `wheels` and `archive`; PEP 751 allows `wheels` and/or `sdist`, or else exactly one of `vcs`, `directory` and `archive`, so remove all but one kind of source"
        );
    }

    #[test]
    fn err_conflicting_source_trees() {
        let text = r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "local"
directory = { path = "." }
vcs = { type = "git", url = "https://example.com/local.git", commit-id = "0123456789abcdef0123456789abcdef01234567" }
"#;
        assert_eq!(
            parse_error(text),
            "invalid lockfile `/work/project/pylock.toml:3:1`: package `local` sets `vcs` and `directory`; PEP 751 allows `wheels` and/or `sdist`, or else exactly one of `vcs`, `directory` and `archive`, so remove all but one kind of source"
        );
    }

    #[test]
    fn err_no_source() {
        let text = "lock-version = \"1.0\"\ncreated-by = \"test\"\n[[packages]]\nname = \"attrs\"\nversion = \"25.1.0\"\nwheels = []\n";
        assert_eq!(
            parse_error(text),
            "invalid lockfile `/work/project/pylock.toml:3:1`: package `attrs` has none of `wheels`, `sdist`, `vcs`, `directory` and `archive`, so there is nothing to install; export the lock again with wheels"
        );
    }

    #[test]
    fn err_missing_hashes() {
        let text = MINIMAL.replace("hashes = { sha256 = \"HASH_A\" }\n", "");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: `wheels[0]` of package `attrs` has no `hashes`, which PEP 751 requires; export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_empty_hashes() {
        let text = MINIMAL.replace("hashes = { sha256 = \"HASH_A\" }", "hashes = {}");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: `hashes` of `wheels[0]` of package `attrs` is empty; PEP 751 requires at least one hash, add its `sha256`"
        );
    }

    #[test]
    fn err_malformed_sha256() {
        let text = MINIMAL.replace("HASH_A", "sha256:abc");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: `hashes.sha256` of `wheels[0]` of package `attrs` is `sha256:abc`, which is not a SHA-256 digest (64 hexadecimal characters); fix or remove it"
        );
        let text = MINIMAL.replace("HASH_A", &format!("sha256:{HASH_A}"));
        assert!(parse_error(&text).contains("is not a SHA-256 digest"));
    }

    #[test]
    fn err_wheel_without_url_or_path() {
        let text = MINIMAL.replace(
            r#"url = "https://example.com/attrs-25.1.0-py3-none-any.whl""#,
            r#"name = "attrs-25.1.0-py3-none-any.whl""#,
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: `wheels[0]` of package `attrs` has neither `url` nor `path`, so it cannot be fetched; add one of them"
        );
    }

    #[test]
    fn err_wheel_without_filename() {
        let text = MINIMAL.replace("attrs-25.1.0-py3-none-any.whl", "");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: cannot tell the file name of `wheels[0]` of package `attrs`: its `path` and `url` end without a file name; add `name` with the file name"
        );
    }

    #[test]
    fn err_invalid_wheel_filename() {
        let text = MINIMAL.replace("attrs-25.1.0-py3-none-any.whl", "attrs-25.1.0.tar.gz");
        let error = parse(&text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid lockfile `/work/project/pylock.toml:8:1`: package `attrs` lists a wheel whose file name is not a valid wheel file name"
        );
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("`attrs-25.1.0.tar.gz`"), "{cause}");
    }

    #[test]
    fn err_wheel_name_mismatch() {
        let text = MINIMAL.replace("attrs-25.1.0-py3", "cattrs-25.1.0-py3");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: package `attrs` lists wheel `cattrs-25.1.0-py3-none-any.whl`, which is for package `cattrs`; fix the wheel entry or the package `name`"
        );
    }

    #[test]
    fn err_wheel_version_mismatch() {
        let text = MINIMAL.replace("attrs-25.1.0-py3", "attrs-24.3.0-py3");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: package `attrs` has version `25.1.0`, but its wheel `attrs-24.3.0-py3-none-any.whl` has version `24.3.0`; fix the wheel entry or the package `version`"
        );
    }

    #[test]
    fn err_invalid_url() {
        let text = MINIMAL.replace("https://example.com/attrs", "example.com/attrs");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: `wheels[0].url` of package `attrs` is `example.com/attrs-25.1.0-py3-none-any.whl`, which is not a URL: relative URL without a base"
        );
    }

    #[test]
    fn err_upload_time_wrong_type() {
        let text = MINIMAL.replace("hashes =", "upload-time = 1700000000\nhashes =");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:1`: `upload-time` of `wheels[0]` of package `attrs` is `1700000000`, but PEP 751 expects a TOML datetime such as `2025-02-13T16:50:00Z`"
        );
    }

    #[test]
    fn err_missing_attestation_kind() {
        let text = format!("{MINIMAL}[[packages.attestation-identities]]\nrepository = \"x/y\"\n");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:11:1`: an `attestation-identities` entry of package `attrs` has no `kind`, which PEP 751 requires; export the lock again with a PEP 751 compliant tool"
        );
    }

    #[test]
    fn err_legacy_extra_marker() {
        let text = MINIMAL.replace(
            "[[packages.wheels]]",
            "marker = \"sys_platform == 'linux' and extra == 'socks'\"\n[[packages.wheels]]",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:8:10`: `marker` of package `attrs` is `sys_platform == 'linux' and extra == 'socks'`, which uses the legacy `extra == \"socks\"` form that PEP 751 does not allow in lockfiles; write `'socks' in extras` instead, or export the lock again"
        );
    }

    #[test]
    fn err_invalid_marker() {
        let text = MINIMAL.replace(
            "[[packages.wheels]]",
            "marker = \"sys_platform = 'linux'\"\n[[packages.wheels]]",
        );
        let error = parse_error(&text);
        assert!(
            error.starts_with(
                "invalid lockfile `/work/project/pylock.toml:8:10`: `marker` of package `attrs` `sys_platform = 'linux'` is not a valid marker: "
            ),
            "{error}"
        );
    }

    #[test]
    fn err_invalid_requires_python() {
        let text = MINIMAL.replace("created-by", "requires-python = \"3.10+\"\ncreated-by");
        let error = parse_error(&text);
        assert!(
            error.starts_with(
                "invalid lockfile `/work/project/pylock.toml:2:19`: `requires-python` `3.10+` is not a valid version specifier: "
            ),
            "{error}"
        );
    }

    #[test]
    fn err_invalid_listed_name() {
        let text = MINIMAL.replace("created-by", "extras = [\"a b\"]\ncreated-by");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/pylock.toml:2:11`: `extras` entry `a b` is not a valid name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit"
        );
    }

    #[test]
    fn err_unknown_extra() {
        assert_eq!(
            select_error(GROUPS, &linux_312(), &selection(&["gui"], &[], false)),
            "cannot select extra `gui` from lockfile `/work/project/pylock.toml`: the lock offers the extras `socks`; choose one of those, or export the lock again with this extra"
        );
        assert_eq!(
            select_error(UV_EXPORT, &linux_312(), &selection(&["socks"], &[], false)),
            "cannot select extra `socks` from lockfile `/work/project/pylock.toml`: the lock offers no extras; choose one of those, or export the lock again with this extra"
        );
    }

    #[test]
    fn err_unknown_group() {
        assert_eq!(
            select_error(GROUPS, &linux_312(), &selection(&[], &["lint"], false)),
            "cannot select dependency group `lint` from lockfile `/work/project/pylock.toml`: the lock offers the groups `dev`, `docs`, `default`; choose one of those, or export the lock again with this group"
        );
    }

    #[test]
    fn err_requires_python_unmet() {
        assert_eq!(
            select_error(
                UV_EXPORT,
                &environment("linux", "3.8.18"),
                &GroupSelection::default()
            ),
            "cannot install lockfile `/work/project/pylock.toml:5:19` on the target: the lock requires Python `>=3.9`, but the target has Python 3.8.18; choose a target Python that satisfies it, or export the lock again for this Python"
        );
    }

    #[test]
    fn err_no_matching_environment() {
        let text = MINIMAL.replace(
            "created-by",
            "environments = [\"sys_platform == 'win32'\", \"sys_platform == 'darwin'\"]\ncreated-by",
        );
        assert_eq!(
            select_error(&text, &linux_312(), &GroupSelection::default()),
            "cannot install lockfile `/work/project/pylock.toml:2:16` on the target: it supports only the environments `sys_platform == 'win32'`, `sys_platform == 'darwin'`, and the target matches none of them; choose a matching target platform and Python, or export the lock again for this target"
        );
    }

    #[test]
    fn err_package_requires_python_unmet() {
        let text = MINIMAL.replace(
            "[[packages.wheels]]",
            "requires-python = \">=3.13\"\n[[packages.wheels]]",
        );
        assert_eq!(
            select_error(&text, &linux_312(), &GroupSelection::default()),
            "cannot install package `attrs` (version `25.1.0`) from lockfile `/work/project/pylock.toml:4:1`: it requires Python `>=3.13`, but the target has Python 3.12.3; choose a target Python that satisfies it, or export the lock again for this Python"
        );
        // A package whose marker excludes the target is skipped before its
        // `requires-python` is checked.
        let text = text.replace(
            "requires-python",
            "marker = \"python_full_version >= '3.13'\"\nrequires-python",
        );
        assert_eq!(
            select(&text, &linux_312(), &GroupSelection::default()).unwrap(),
            []
        );
    }

    #[test]
    fn err_ambiguous_package() {
        let text = r#"lock-version = "1.0"
created-by = "test"

[[packages]]
name = "numpy"
version = "1.26.4"
marker = "python_full_version < '3.10'"
wheels = [{ url = "https://example.com/numpy-1.26.4-cp39-cp39-manylinux_2_17_x86_64.whl", hashes = { sha256 = "HASH_A" } }]

[[packages]]
name = "numpy"
version = "2.0.2"
marker = "python_full_version >= '3.9'"
wheels = [{ url = "https://example.com/numpy-2.0.2-cp312-cp312-manylinux_2_17_x86_64.whl", hashes = { sha256 = "HASH_B" } }]
"#;
        let packages = select(text, &linux_312(), &GroupSelection::default()).unwrap();
        assert_eq!(packages[0].version.as_deref(), Some("2.0.2"));
        assert_eq!(
            select_error(
                text,
                &environment("linux", "3.9.18"),
                &GroupSelection::default()
            ),
            "cannot install lockfile `/work/project/pylock.toml` on the target: package `numpy` is selected twice, as version `1.26.4` at `/work/project/pylock.toml:4:1` and as version `2.0.2` at `/work/project/pylock.toml:10:1`; PEP 751 requires the markers to leave exactly one entry per package, fix the markers or export the lock again"
        );
    }

    #[test]
    fn ok_error_is_small() {
        // `Result<_, PylockError>` stays cheap to return.
        assert!(std::mem::size_of::<PylockError>() <= 128);
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        let seeds = [
            UV_EXPORT.to_string(),
            with_hashes(GROUPS),
            with_hashes(MINIMAL),
            include_str!("../../tests/data/conflict/pylock.toml").to_string(),
            include_str!("../../tests/data/robust/pylock.forks.toml").to_string(),
            include_str!("../../tests/data/robust/pylock.conflicts.toml").to_string(),
        ];
        let selections = crate::lock::testing::hostile_selections();
        crate::lock::testing::assert_no_panic("pylock.toml", seeds, 2000, |text| {
            if let Ok(lock) = Pylock::parse(Path::new(LOCKFILE), text) {
                for (environment, selection) in &selections {
                    let _ = lock.select(environment, selection);
                }
            }
        });
    }
}
