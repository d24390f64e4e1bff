//! uv's `uv.lock` (schema `version = 1`, any revision): parsing, and selection by walking
//! the lock's dependency graph from the project roots for one target environment and one
//! choice of extras and groups, the way `uv sync --all-packages --no-editable
//! --no-default-groups` does (standards §2.1).
//!
//! A `uv.lock` has no per-package "install me" marker: what to install is what the graph
//! reaches. The roots are the workspace members (`[manifest] members`, or else the
//! packages whose source is `editable`, `virtual` or `directory` = `"."`), plus the
//! `[manifest]` requirements of script and non-project locks. From the roots the walk
//! follows each dependency edge whose marker holds on the target; `extra = [...]` on an
//! edge enables those optional dependencies of its target; the roots' extras and
//! dependency groups come from the user's selection alone: no group is on by default (an
//! image is for production, so uv's default `dev` group is in only with `--group dev`).
//! Conflict sets (`tool.uv.conflicts`) show up in markers as encoded extras
//! (`extra == 'extra-<len>-<package>-<extra>'`, `group-<len>-<package>-<group>`), which
//! are evaluated against the activated extras and groups encoded the same way.
//!
//! The roots themselves (workspace members, the project) are selected as source trees,
//! to be built into wheels, unless they are `virtual` (no build system); so is any other
//! source tree, VCS checkout or sdist-only package the walk reaches. Markers in `uv.lock` are simplified against `requires-python`, so
//! `requires-python` is checked before any of them is evaluated. Nothing here touches
//! the network or the files the lock points to.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;
use uv_normalize::{ExtraName, GroupName};
use uv_pep440::{Version, VersionSpecifiers};
use uv_pep508::{MarkerEnvironment, MarkerTree};

use super::fields::{self, Excerpt, FieldError, Hash};
use super::source::Source;
use super::{
    Artifact, ArtifactLocation, DirectorySource, GroupSelection, LockFormat, LockedPackage,
    PackageName, PackageSource, VcsSource,
};
use crate::http::redact_text;
use crate::untrusted::Untrusted;

/// The `uv.lock` schema version envbuild reads.
const SUPPORTED_VERSION: i64 = 1;
/// The newest schema revision envbuild was tested with. Revisions only add keys, so a
/// newer one is read all the same.
const NEWEST_KNOWN_REVISION: i64 = 5;

/// Errors from a `uv.lock`: the file is malformed, or it cannot be installed on the
/// chosen target with the chosen extras and groups.
///
/// `place` fields read `<lockfile>:<line>:<column>`, or just `<lockfile>` when the
/// problem has no single position in the file.
#[derive(Debug, thiserror::Error)]
pub enum UvLockError {
    /// A field every format shares is missing or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The schema `version` is not one envbuild reads.
    #[error(
        "unsupported lockfile `{place}`: `version = {version}`, but envbuild reads only `uv.lock` schema version 1; lock with a uv that writes version 1, or export the lock with `uv export --format pylock.toml` and build from that",
        version = Excerpt(version)
    )]
    UnsupportedVersion {
        /// Where.
        place: String,
        /// The value, as TOML.
        version: String,
    },
    /// A `source` table does not have exactly one kind of source.
    #[error(
        "invalid lockfile `{place}`: the `source` of {owner} has {found}, but uv writes exactly one of `registry`, `git`, `url`, `path`, `directory`, `editable` and `virtual`; run `uv lock` again",
        found = Untrusted(found),
        owner = Untrusted(owner)
    )]
    InvalidSource {
        /// Where.
        place: String,
        /// Whose source, e.g. "package `flask`".
        owner: String,
        /// What was found, e.g. "none of them" or "`url` and `path`".
        found: String,
    },
    /// A `git` source has no locked commit.
    #[error(
        "invalid lockfile `{place}`: package `{package}` has the git source `{url}`, which does not end in `#<commit>`; run `uv lock` again",
        package = Untrusted(package),
        url = Excerpt(url)
    )]
    MissingGitCommit {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The source, as written (credentials removed).
        url: String,
    },
    /// An artifact has none of the keys that say where it is.
    #[error(
        "invalid lockfile `{place}`: {artifact} of package `{package}` has none of {keys}, so it cannot be fetched; run `uv lock` again",
        artifact = Untrusted(artifact),
        keys = Untrusted(keys),
        package = Untrusted(package)
    )]
    MissingArtifactLocation {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// Which artifact, e.g. "`wheels[0]`".
        artifact: String,
        /// The keys that would do, e.g. "`url`, `path` and `filename`".
        keys: &'static str,
    },
    /// No file name can be derived for an artifact.
    #[error(
        "invalid lockfile `{place}`: cannot tell the file name of {artifact} of package `{package}`: its location ends without a file name",
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
    /// A `conflicts` item names neither an extra nor a group.
    #[error(
        "invalid lockfile `{place}`: a `conflicts` item must have `package` and exactly one of `extra` and `group`; run `uv lock` again"
    )]
    InvalidConflictItem {
        /// Where.
        place: String,
    },
    /// The same package (name, version and source) is listed twice.
    #[error(
        "invalid lockfile `{place}`: package `{package}` {version} is listed twice, first at `{first}`; run `uv lock` again",
        first = Excerpt(first),
        package = Untrusted(package),
        version = Excerpt(version)
    )]
    DuplicatePackage {
        /// Where the second entry starts.
        place: String,
        /// The package.
        package: String,
        /// Its version, e.g. "version `1.0`".
        version: String,
        /// Where the first entry starts.
        first: String,
    },
    /// A dependency names a package the lock does not list.
    #[error(
        "invalid lockfile `{place}`: {owner} depends on `{dependency}`, but the lock has no matching `[[package]]`; run `uv lock` again",
        dependency = Untrusted(dependency),
        owner = Untrusted(owner)
    )]
    UnknownDependency {
        /// Where the dependency is written.
        place: String,
        /// Who depends on it, e.g. "package `flask`".
        owner: String,
        /// The dependency, with its version and source if written.
        dependency: String,
    },
    /// A dependency matches several packages and has no `version`/`source` to choose.
    #[error(
        "invalid lockfile `{place}`: {owner} depends on `{dependency}`, which matches {candidates}; uv writes `version` and `source` on such dependencies, run `uv lock` again",
        candidates = Untrusted(candidates),
        dependency = Untrusted(dependency),
        owner = Untrusted(owner)
    )]
    AmbiguousDependency {
        /// Where the dependency is written.
        place: String,
        /// Who depends on it.
        owner: String,
        /// The dependency, as written.
        dependency: String,
        /// The matching packages, e.g. "versions `1.0` and `2.0`".
        candidates: String,
    },
    /// A workspace member listed in `[manifest] members` has no package entry (or
    /// several).
    #[error(
        "invalid lockfile `{place}`: `[manifest] members` lists `{member}`, but the lock has {found}; run `uv lock` again",
        found = Untrusted(found),
        member = Untrusted(member)
    )]
    BadMember {
        /// Where the member is listed.
        place: String,
        /// The member.
        member: String,
        /// What was found, e.g. "no package of that name".
        found: String,
    },
    /// Nothing to start the walk from.
    #[error(
        "invalid lockfile `{path}`: it has no project to install: no `[manifest] members`, no package with source `editable`, `virtual` or `directory` = \".\", and no `[manifest] requirements`; run `uv lock` in the project folder"
    )]
    NoRoots {
        /// The lockfile.
        path: String,
    },
    /// The target's Python does not satisfy the lock's `requires-python`.
    #[error(
        "cannot install lockfile `{place}` on the target: the lock requires Python `{specifier}`, but the target has Python {python}; choose a target Python that satisfies it, or lock again for this Python",
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
    /// The target matches none of the lock's `supported-markers` (`tool.uv.environments`).
    #[error(
        "cannot install lockfile `{place}` on the target: it was locked only for the environments {environments}, and the target matches none of them; choose a matching target, or add the target to `tool.uv.environments` and lock again",
        environments = Excerpt(environments)
    )]
    UnsupportedEnvironment {
        /// Where.
        place: String,
        /// The `supported-markers`, quoted and comma-separated.
        environments: String,
    },
    /// The user asked for an extra no root package offers.
    #[error(
        "cannot select extra `{extra}` from lockfile `{path}`: its projects offer {offered}; choose one of those",
        extra = Untrusted(extra),
        offered = Untrusted(offered)
    )]
    UnknownExtra {
        /// The lockfile.
        path: String,
        /// The requested extra.
        extra: String,
        /// What the roots offer, e.g. "the extras `a`, `b`" or "no extras".
        offered: String,
    },
    /// The user asked for a group no root package offers.
    #[error(
        "cannot select dependency group `{group}` from lockfile `{path}`: its projects offer {offered}; choose one of those",
        group = Untrusted(group),
        offered = Untrusted(offered)
    )]
    UnknownGroup {
        /// The lockfile.
        path: String,
        /// The requested group.
        group: String,
        /// What the roots offer.
        offered: String,
    },
    /// Two activated extras or groups are declared as conflicting (`tool.uv.conflicts`).
    #[error(
        "cannot install lockfile `{path}`: {first} and {second} are both enabled, but the lock declares them as conflicting (`tool.uv.conflicts`); enable at most one of them",
        first = Excerpt(first),
        second = Excerpt(second)
    )]
    ConflictingSelection {
        /// The lockfile.
        path: String,
        /// The first item, e.g. "extra `cpu` of `project`".
        first: String,
        /// The second item.
        second: String,
    },
    /// The walk reached two entries of one package.
    #[error(
        "cannot install lockfile `{path}` on the target: package `{package}` is reached twice, as {first} and as {second}; only one version of a package can be installed, check the extras and groups you chose, or run `uv lock` again",
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

/// A parsed `uv.lock`.
#[derive(Debug, Clone)]
pub(crate) struct UvLock {
    /// The lockfile, as given.
    path: PathBuf,
    /// `requires-python`, with its place.
    requires_python: (RequiresPython, String),
    /// `supported-markers`, as written and parsed; with the place of the key.
    supported_markers: Option<(Vec<(String, MarkerTree)>, String)>,
    /// `conflicts`: sets of extras and groups that cannot be enabled together.
    conflicts: Vec<Vec<ConflictItem>>,
    /// Indexes into `packages` of the walk's roots (workspace members).
    roots: Vec<usize>,
    /// `[manifest] requirements`: extra roots of script and non-project locks.
    manifest_requirements: Vec<RootRequirement>,
    /// `[manifest] dependency-groups`: groups of a non-project workspace root.
    manifest_groups: BTreeMap<GroupName, Vec<RootRequirement>>,
    /// `[[package]]`, in file order.
    packages: Vec<Package>,
}

/// A `requires-python` value, parsed and as written.
#[derive(Debug, Clone)]
struct RequiresPython {
    specifiers: VersionSpecifiers,
    written: String,
}

/// One `[[package]]` after parsing, with its dependencies resolved to package indexes.
#[derive(Debug, Clone)]
struct Package {
    /// The package as the lock model describes it.
    locked: LockedPackage,
    /// Its `source`.
    source: LockSource,
    /// Where the entry starts.
    place: String,
    /// `resolution-markers`: the forks this entry belongs to (empty: all).
    resolution_markers: Vec<MarkerTree>,
    /// `dependencies`.
    dependencies: Vec<Dependency>,
    /// `optional-dependencies`, by extra.
    optional_dependencies: BTreeMap<ExtraName, Vec<Dependency>>,
    /// `dev-dependencies` (alias `dependency-groups`), by group.
    dependency_groups: BTreeMap<GroupName, Vec<Dependency>>,
}

/// An edge of the lock graph.
#[derive(Debug, Clone)]
struct Dependency {
    /// Index of the target package.
    target: usize,
    /// The edge's marker (true when absent).
    marker: MarkerTree,
    /// Extras of the target the edge enables.
    extras: Vec<ExtraName>,
}

/// A `[manifest]` requirement: a root edge by name.
#[derive(Debug, Clone)]
struct RootRequirement {
    /// Candidate packages of that name.
    candidates: Vec<usize>,
    /// The requirement's marker.
    marker: MarkerTree,
    /// Extras it enables.
    extras: Vec<ExtraName>,
    /// The name, for messages.
    name: PackageName,
    /// Where it is written.
    place: String,
}

/// Which kind of source a package has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Registry,
    Git,
    Url,
    Path,
    Directory,
    Editable,
    Virtual,
}

impl SourceKind {
    const ALL: [(Self, &'static str); 7] = [
        (Self::Registry, "registry"),
        (Self::Git, "git"),
        (Self::Url, "url"),
        (Self::Path, "path"),
        (Self::Directory, "directory"),
        (Self::Editable, "editable"),
        (Self::Virtual, "virtual"),
    ];

    fn key(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("source", |(_, key)| key)
    }

    /// Source trees uv builds (or, for `virtual`, never installs).
    fn is_source_tree(self) -> bool {
        matches!(self, Self::Directory | Self::Editable | Self::Virtual)
    }
}

/// A package's `source`, which with name and version identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LockSource {
    kind: SourceKind,
    value: String,
    subdirectory: Option<String>,
}

impl fmt::Display for LockSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = \"{}\"", self.kind.key(), redact_text(&self.value))
    }
}

/// One item of a conflict set, or an activated extra or group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ConflictItem {
    package: PackageName,
    kind: ConflictKind,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ConflictKind {
    Extra(ExtraName),
    Group(GroupName),
}

impl ConflictItem {
    /// uv's encoding of an activated extra or group as a marker `extra` value
    /// (`uv-resolver/src/universal_marker.rs`, `encode_package_extra`): the kind, the
    /// package name's length in bytes, the package name and the extra or group name,
    /// joined by `-`. Both names are normalized, so the result is a valid extra name.
    fn encoded(&self) -> Option<ExtraName> {
        let package = self.package.as_str();
        let text = match &self.kind {
            ConflictKind::Extra(extra) => format!("extra-{}-{package}-{extra}", package.len()),
            ConflictKind::Group(group) => format!("group-{}-{package}-{group}", package.len()),
        };
        ExtraName::from_str(&text).ok()
    }
}

impl fmt::Display for ConflictItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConflictKind::Extra(extra) => write!(f, "extra `{extra}` of `{}`", self.package),
            ConflictKind::Group(group) => write!(f, "group `{group}` of `{}`", self.package),
        }
    }
}

// Wire types: the TOML as written. Keys uv always writes are `Option`s so that their
// absence gets a `MissingKey` error naming the key and table. Unknown keys (`options`,
// `package.metadata`, `upload-time`, `zstd`, keys of newer revisions) are ignored.

#[derive(Deserialize)]
struct VersionWire {
    version: Option<Spanned<toml::Value>>,
    revision: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UvLockWire {
    requires_python: Option<Spanned<String>>,
    #[serde(default)]
    resolution_markers: Vec<Spanned<String>>,
    supported_markers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    conflicts: Vec<Vec<Spanned<ConflictItemWire>>>,
    manifest: Option<ManifestWire>,
    #[serde(default, alias = "distribution")]
    package: Vec<Spanned<PackageWire>>,
}

#[derive(Deserialize)]
struct ConflictItemWire {
    package: Option<String>,
    extra: Option<String>,
    group: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ManifestWire {
    #[serde(default)]
    members: Vec<Spanned<String>>,
    #[serde(default)]
    requirements: Vec<Spanned<RequirementWire>>,
    #[serde(default)]
    dependency_groups: BTreeMap<String, Vec<Spanned<RequirementWire>>>,
}

#[derive(Deserialize)]
struct RequirementWire {
    name: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PackageWire {
    name: Option<Spanned<String>>,
    version: Option<String>,
    source: Option<Spanned<SourceWire>>,
    #[serde(default)]
    resolution_markers: Vec<Spanned<String>>,
    #[serde(default)]
    dependencies: Vec<Spanned<DependencyWire>>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<Spanned<DependencyWire>>>,
    #[serde(default, alias = "dependency-groups")]
    dev_dependencies: BTreeMap<String, Vec<Spanned<DependencyWire>>>,
    sdist: Option<Spanned<FileWire>>,
    #[serde(default)]
    wheels: Vec<Spanned<FileWire>>,
}

#[derive(Deserialize, Default)]
struct SourceWire {
    registry: Option<String>,
    git: Option<String>,
    url: Option<String>,
    path: Option<String>,
    directory: Option<String>,
    editable: Option<String>,
    #[serde(rename = "virtual")]
    virtual_: Option<String>,
    subdirectory: Option<String>,
}

#[derive(Deserialize)]
struct DependencyWire {
    name: Option<String>,
    version: Option<String>,
    source: Option<SourceWire>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

/// `sdist` and `wheels` entries share these keys.
#[derive(Deserialize)]
struct FileWire {
    url: Option<String>,
    path: Option<String>,
    filename: Option<String>,
    hash: Option<String>,
    size: Option<u64>,
}

/// A dependency before its target is looked up.
struct PendingDependency {
    name: PackageName,
    version: Option<Version>,
    source: Option<LockSource>,
    marker: MarkerTree,
    extras: Vec<ExtraName>,
    place: String,
}

impl PendingDependency {
    fn describe(&self) -> String {
        let mut text = self.name.to_string();
        if let Some(version) = &self.version {
            text.push_str(&format!(" {version}"));
        }
        if let Some(source) = &self.source {
            text.push_str(&format!(" ({source})"));
        }
        text
    }
}

/// A package before its dependencies are looked up.
struct PendingPackage {
    package: Package,
    parsed_version: Option<Version>,
    dependencies: Vec<PendingDependency>,
    optional_dependencies: BTreeMap<ExtraName, Vec<PendingDependency>>,
    dependency_groups: BTreeMap<GroupName, Vec<PendingDependency>>,
}

impl UvLock {
    /// Parse `text`, the contents of the lockfile at `path`. Relative paths in sources
    /// and artifacts are resolved against `path`'s folder, as uv does.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, UvLockError> {
        let places = Source {
            path,
            text,
            format: LockFormat::UvLock,
        };

        // The schema version first: a future schema may change every other key.
        let version: VersionWire = places.toml()?;
        check_version(&places, version)?;

        let wire: UvLockWire = places.toml()?;

        let Some(requires_python) = wire.requires_python else {
            return Err(places
                .missing_key(
                    places.whole_file(),
                    "the top-level table",
                    "requires-python",
                )
                .into());
        };
        let requires_python_place = places.place(requires_python.span());
        let written = requires_python.into_inner();
        let specifiers = VersionSpecifiers::from_str(&written).map_err(|error| {
            FieldError::InvalidSpecifier {
                place: requires_python_place.clone(),
                key: "`requires-python`".to_string(),
                value: written.clone(),
                reason: error.to_string(),
            }
        })?;
        let requires_python = (
            RequiresPython {
                specifiers,
                written,
            },
            requires_python_place,
        );

        // Only checked for validity: each package's `resolution-markers` says which
        // forks it belongs to, and the graph's edges already pick among them.
        for marker in &wire.resolution_markers {
            parse_marker(
                marker.get_ref(),
                "`resolution-markers` entry",
                &places.place(marker.span()),
            )?;
        }

        let supported_markers = wire
            .supported_markers
            .map(|list| {
                let list_place = places.place(list.span());
                let parsed = list
                    .into_inner()
                    .into_iter()
                    .map(|entry| {
                        let place = places.place(entry.span());
                        let written = entry.into_inner();
                        let marker = parse_marker(&written, "`supported-markers` entry", &place)?;
                        Ok((written, marker))
                    })
                    .collect::<Result<Vec<_>, UvLockError>>()?;
                Ok::<_, UvLockError>((parsed, list_place))
            })
            .transpose()?
            .filter(|(list, _)| !list.is_empty());

        let conflicts = wire
            .conflicts
            .into_iter()
            .map(|set| {
                set.into_iter()
                    .map(|item| parse_conflict_item(&places, item))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;

        let pending = wire
            .package
            .into_iter()
            .map(|package| parse_package(&places, package))
            .collect::<Result<Vec<_>, _>>()?;

        // Index packages by name, and reject the same package listed twice.
        let mut by_name: BTreeMap<PackageName, Vec<usize>> = BTreeMap::new();
        for (index, entry) in pending.iter().enumerate() {
            let candidates = by_name
                .entry(entry.package.locked.name.clone())
                .or_default();
            if let Some(&first) = candidates.iter().find(|&&other| {
                let other = &pending[other];
                other.parsed_version == entry.parsed_version
                    && other.package.source == entry.package.source
            }) {
                return Err(UvLockError::DuplicatePackage {
                    place: entry.package.place.clone(),
                    package: entry.package.locked.name.to_string(),
                    version: describe_version(&entry.package.locked),
                    first: pending[first].package.place.clone(),
                });
            }
            candidates.push(index);
        }

        let packages = resolve_dependencies(pending, &by_name)?;

        let manifest = wire.manifest;
        let (members, requirements_wire, groups_wire) = match manifest {
            Some(manifest) => (
                manifest.members,
                manifest.requirements,
                manifest.dependency_groups,
            ),
            None => (Vec::new(), Vec::new(), BTreeMap::new()),
        };

        let mut roots = Vec::new();
        if members.is_empty() {
            // A single project: the package at the lockfile's own folder.
            roots.extend(packages.iter().enumerate().filter_map(|(index, package)| {
                (package.source.kind.is_source_tree() && is_own_folder(&package.source.value))
                    .then_some(index)
            }));
        } else {
            for member in members {
                let place = places.place(member.span());
                let member = member.into_inner();
                let name = fields::package_name_at(&member, &place)?;
                let found: Vec<usize> = by_name.get(&name).cloned().unwrap_or_default();
                match found[..] {
                    [index] => roots.push(index),
                    [] => {
                        return Err(UvLockError::BadMember {
                            place,
                            member,
                            found: "no package of that name".to_string(),
                        });
                    }
                    _ => {
                        return Err(UvLockError::BadMember {
                            place,
                            member,
                            found: format!("{} packages of that name", found.len()),
                        });
                    }
                }
            }
        }

        let manifest_requirements = requirements_wire
            .into_iter()
            .map(|requirement| parse_root_requirement(&places, requirement, &by_name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut manifest_groups = BTreeMap::new();
        for (group, requirements) in groups_wire {
            let place = requirements
                .first()
                .map_or_else(|| places.whole_file(), |first| places.place(first.span()));
            let group =
                parse_name::<GroupName>(&group, "`[manifest] dependency-groups` group", &place)?;
            let requirements = requirements
                .into_iter()
                .map(|requirement| parse_root_requirement(&places, requirement, &by_name))
                .collect::<Result<Vec<_>, _>>()?;
            manifest_groups.insert(group, requirements);
        }

        if roots.is_empty() && manifest_requirements.is_empty() && manifest_groups.is_empty() {
            return Err(UvLockError::NoRoots {
                path: places.whole_file(),
            });
        }

        Ok(Self {
            path: path.to_path_buf(),
            requires_python,
            supported_markers,
            conflicts,
            roots,
            manifest_requirements,
            manifest_groups,
            packages,
        })
    }

    /// The packages to install on `environment` with `selection`, sorted by name: the
    /// packages the walk from the roots reaches, without the roots themselves.
    pub(crate) fn select(
        &self,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, UvLockError> {
        let path = self.path.display().to_string();

        // Markers in uv.lock are simplified against `requires-python`, so it must hold
        // before any marker means what it says.
        let python = environment.python_full_version();
        let (requires_python, place) = &self.requires_python;
        if !requires_python.specifiers.contains(&python.version) {
            return Err(UvLockError::UnsupportedPython {
                place: place.clone(),
                python: python.to_string(),
                specifier: requires_python.written.clone(),
            });
        }
        if let Some((markers, place)) = &self.supported_markers
            && !markers
                .iter()
                .any(|(_, marker)| marker.evaluate(environment, &[]))
        {
            let listed: Vec<String> = markers
                .iter()
                .map(|(written, _)| format!("`{written}`"))
                .collect();
            return Err(UvLockError::UnsupportedEnvironment {
                place: place.clone(),
                environments: listed.join(", "),
            });
        }

        let (extras, groups) = self.requested(selection, &path)?;

        // The extras and groups the roots activate, as (package, name) items.
        let mut activated: BTreeSet<ConflictItem> = BTreeSet::new();
        for &root in &self.roots {
            let package = &self.packages[root];
            for extra in &extras {
                if package.optional_dependencies.contains_key(extra) {
                    activated.insert(ConflictItem {
                        package: package.locked.name.clone(),
                        kind: ConflictKind::Extra(extra.clone()),
                    });
                }
            }
            for group in &groups {
                if package.dependency_groups.contains_key(group) {
                    activated.insert(ConflictItem {
                        package: package.locked.name.clone(),
                        kind: ConflictKind::Group(group.clone()),
                    });
                }
            }
        }

        // Conflict markers can only be evaluated once every activated extra is known,
        // including those enabled by `extra = [...]` on edges deep in the graph. As uv
        // does (`installable.rs`), walk once to collect them, check them against the
        // declared conflicts, then walk again for real.
        if !self.conflicts.is_empty() {
            let mut walk = Walk::new(self, environment, &activated);
            walk.run(&extras, &groups, true)?;
            activated = walk.activated;
            self.check_conflicts(&activated, &path)?;
        }
        let mut walk = Walk::new(self, environment, &activated);
        walk.run(&extras, &groups, false)?;

        // The roots (workspace members, the project itself) are installed like `uv sync
        // --no-editable` does: built from their folders. Virtual packages have no build
        // system and are never installed, wherever they are.
        let mut selected: BTreeMap<&PackageName, &Package> = BTreeMap::new();
        for (index, package) in self.packages.iter().enumerate() {
            if !walk.reached[index] || package.source.kind == SourceKind::Virtual {
                continue;
            }
            if let Some(first) = selected.insert(&package.locked.name, package) {
                return Err(UvLockError::AmbiguousPackage {
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

    /// The requested extras and the enabled groups, validated against what the roots
    /// offer. No group is on by default: an image is for production, so uv's default
    /// `dev` group (like every other) is in only when `--group` names it.
    fn requested(
        &self,
        selection: &GroupSelection,
        path: &str,
    ) -> Result<(Vec<ExtraName>, Vec<GroupName>), UvLockError> {
        let offered_extras: BTreeSet<&ExtraName> = self
            .roots
            .iter()
            .flat_map(|&root| self.packages[root].optional_dependencies.keys())
            .collect();
        let offered_groups: BTreeSet<&GroupName> = self
            .roots
            .iter()
            .flat_map(|&root| self.packages[root].dependency_groups.keys())
            .chain(self.manifest_groups.keys())
            .collect();

        let mut extras = Vec::new();
        for requested in &selection.extras {
            let extra = ExtraName::from_str(requested)
                .ok()
                .filter(|extra| offered_extras.contains(extra))
                .ok_or_else(|| UvLockError::UnknownExtra {
                    path: path.to_string(),
                    extra: requested.clone(),
                    offered: fields::offered_list("extras", &offered_extras),
                })?;
            extras.push(extra);
        }

        let mut groups = Vec::new();
        for requested in &selection.groups {
            let group = GroupName::from_str(requested)
                .ok()
                .filter(|group| offered_groups.contains(group))
                .ok_or_else(|| UvLockError::UnknownGroup {
                    path: path.to_string(),
                    group: requested.clone(),
                    offered: fields::offered_list("groups", &offered_groups),
                })?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Ok((extras, groups))
    }

    /// uv refuses to install two items of one conflict set together.
    fn check_conflicts(
        &self,
        activated: &BTreeSet<ConflictItem>,
        path: &str,
    ) -> Result<(), UvLockError> {
        for set in &self.conflicts {
            let active: Vec<&ConflictItem> = set
                .iter()
                .filter(|item| activated.contains(*item))
                .collect();
            if let [first, second, ..] = active[..] {
                return Err(UvLockError::ConflictingSelection {
                    path: path.to_string(),
                    first: first.to_string(),
                    second: second.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// One breadth-first walk of the lock graph.
struct Walk<'a> {
    lock: &'a UvLock,
    environment: &'a MarkerEnvironment,
    /// Activated extras and groups (grows during a collecting walk).
    activated: BTreeSet<ConflictItem>,
    /// `activated`, encoded as marker extras.
    encoded: Vec<ExtraName>,
    /// Which packages the walk reached.
    reached: Vec<bool>,
    /// (package, extra) pairs already queued.
    seen: BTreeSet<(usize, Option<ExtraName>)>,
    queue: VecDeque<(usize, Option<ExtraName>)>,
}

impl<'a> Walk<'a> {
    fn new(
        lock: &'a UvLock,
        environment: &'a MarkerEnvironment,
        activated: &BTreeSet<ConflictItem>,
    ) -> Self {
        let mut walk = Self {
            lock,
            environment,
            activated: BTreeSet::new(),
            encoded: Vec::new(),
            reached: vec![false; lock.packages.len()],
            seen: BTreeSet::new(),
            queue: VecDeque::new(),
        };
        for item in activated {
            walk.activate(item.clone());
        }
        walk
    }

    fn activate(&mut self, item: ConflictItem) {
        if let Some(encoded) = item.encoded()
            && !self.encoded.contains(&encoded)
        {
            self.encoded.push(encoded);
        }
        self.activated.insert(item);
    }

    /// Whether an edge is followed: its marker holds on the target with the activated
    /// extras and groups, plus the extra whose optional dependencies are being walked.
    /// A collecting walk also counts the extras the edge itself enables, as uv does.
    fn follows(
        &self,
        dependency: &Dependency,
        walking_extra: Option<&ExtraName>,
        collecting: bool,
    ) -> bool {
        let own_extras = collecting && !dependency.extras.is_empty();
        if walking_extra.is_none() && !own_extras {
            return dependency.marker.evaluate(self.environment, &self.encoded);
        }
        let mut extras = self.encoded.clone();
        extras.extend(walking_extra.cloned());
        if own_extras {
            let package = &self.lock.packages[dependency.target].locked.name;
            extras.extend(dependency.extras.iter().filter_map(|extra| {
                ConflictItem {
                    package: package.clone(),
                    kind: ConflictKind::Extra(extra.clone()),
                }
                .encoded()
            }));
        }
        dependency.marker.evaluate(self.environment, &extras)
    }

    fn reach(&mut self, target: usize, extras: &[ExtraName], collecting: bool) {
        self.reached[target] = true;
        if self.seen.insert((target, None)) {
            self.queue.push_back((target, None));
        }
        for extra in extras {
            if collecting {
                self.activate(ConflictItem {
                    package: self.lock.packages[target].locked.name.clone(),
                    kind: ConflictKind::Extra(extra.clone()),
                });
            }
            if self.seen.insert((target, Some(extra.clone()))) {
                self.queue.push_back((target, Some(extra.clone())));
            }
        }
    }

    /// Walk from the roots. A collecting walk also records the extras edges enable.
    fn run(
        &mut self,
        extras: &[ExtraName],
        groups: &[GroupName],
        collecting: bool,
    ) -> Result<(), UvLockError> {
        let lock = self.lock;
        for &root in &lock.roots {
            self.reached[root] = true;
            if self.seen.insert((root, None)) {
                self.queue.push_back((root, None));
            }
            let package = &lock.packages[root];
            for extra in extras {
                if package.optional_dependencies.contains_key(extra)
                    && self.seen.insert((root, Some(extra.clone())))
                {
                    self.queue.push_back((root, Some(extra.clone())));
                }
            }
            for group in groups {
                for dependency in package.dependency_groups.get(group).into_iter().flatten() {
                    if self.follows(dependency, None, collecting) {
                        self.reach(dependency.target, &dependency.extras, collecting);
                    }
                }
            }
        }

        let manifest_groups = groups
            .iter()
            .filter_map(|group| lock.manifest_groups.get(group))
            .flatten();
        for requirement in lock.manifest_requirements.iter().chain(manifest_groups) {
            if !requirement.marker.evaluate(self.environment, &[]) {
                continue;
            }
            let target = lock.pick_by_fork(requirement, self.environment, &self.encoded)?;
            self.reach(target, &requirement.extras, collecting);
        }

        while let Some((index, extra)) = self.queue.pop_front() {
            let package = &lock.packages[index];
            let dependencies = match &extra {
                None => &package.dependencies,
                Some(extra) => match package.optional_dependencies.get(extra) {
                    Some(dependencies) => dependencies,
                    None => continue,
                },
            };
            for dependency in dependencies {
                if self.follows(dependency, extra.as_ref(), collecting) {
                    self.reach(dependency.target, &dependency.extras, collecting);
                }
            }
        }
        Ok(())
    }
}

impl UvLock {
    /// The package a `[manifest]` requirement means on this target: the only entry of
    /// that name, or the one whose `resolution-markers` hold.
    fn pick_by_fork(
        &self,
        requirement: &RootRequirement,
        environment: &MarkerEnvironment,
        encoded: &[ExtraName],
    ) -> Result<usize, UvLockError> {
        if let [only] = requirement.candidates[..] {
            return Ok(only);
        }
        let matching: Vec<usize> = requirement
            .candidates
            .iter()
            .copied()
            .filter(|&index| {
                let markers = &self.packages[index].resolution_markers;
                markers.is_empty()
                    || markers
                        .iter()
                        .any(|marker| marker.evaluate(environment, encoded))
            })
            .collect();
        match matching[..] {
            [only] => Ok(only),
            _ => Err(UvLockError::AmbiguousDependency {
                place: requirement.place.clone(),
                owner: "`[manifest]`".to_string(),
                dependency: requirement.name.to_string(),
                candidates: describe_candidates(&self.packages, &requirement.candidates),
            }),
        }
    }
}

fn check_version(places: &Source<'_>, wire: VersionWire) -> Result<(), UvLockError> {
    let Some(version) = wire.version else {
        return Err(places
            .missing_key(places.whole_file(), "the top-level table", "version")
            .into());
    };
    let place = places.place(version.span());
    let version = version.into_inner();
    if version.as_integer() != Some(SUPPORTED_VERSION) {
        return Err(UvLockError::UnsupportedVersion {
            place,
            version: version.to_string(),
        });
    }
    // Revisions add keys without changing the meaning of existing ones; uv itself reads
    // a lockfile of a newer revision within the same version.
    if let Some(revision) = wire.revision
        && revision
            .get_ref()
            .as_integer()
            .is_some_and(|revision| revision > NEWEST_KNOWN_REVISION)
    {
        tracing::debug!(
            "lockfile `{}` has `revision = {}`, newer than revision {NEWEST_KNOWN_REVISION} envbuild was tested with; keys added since are ignored",
            places.place(revision.span()),
            revision.get_ref()
        );
    }
    Ok(())
}

fn parse_marker(written: &str, key: &str, place: &str) -> Result<MarkerTree, UvLockError> {
    Ok(fields::marker_at(written, key, place)?)
}

fn parse_name<T: FromStr>(written: &str, key: &str, place: &str) -> Result<T, UvLockError> {
    Ok(fields::name_at(written, key, place)?)
}

fn parse_package_name(written: &str, place: &str) -> Result<PackageName, UvLockError> {
    Ok(fields::package_name_at(written, place)?)
}

fn parse_conflict_item(
    places: &Source<'_>,
    item: Spanned<ConflictItemWire>,
) -> Result<ConflictItem, UvLockError> {
    let place = places.place(item.span());
    let item = item.into_inner();
    let (Some(package), kind) = (item.package, (item.extra, item.group)) else {
        return Err(UvLockError::InvalidConflictItem { place });
    };
    let package = parse_package_name(&package, &place)?;
    let kind = match kind {
        (Some(extra), None) => {
            ConflictKind::Extra(parse_name(&extra, "`conflicts` extra", &place)?)
        }
        (None, Some(group)) => {
            ConflictKind::Group(parse_name(&group, "`conflicts` group", &place)?)
        }
        _ => return Err(UvLockError::InvalidConflictItem { place }),
    };
    Ok(ConflictItem { package, kind })
}

fn parse_source(wire: SourceWire, owner: &str, place: &str) -> Result<LockSource, UvLockError> {
    let SourceWire {
        registry,
        git,
        url,
        path,
        directory,
        editable,
        virtual_,
        subdirectory,
    } = wire;
    let set: Vec<(SourceKind, String)> = [registry, git, url, path, directory, editable, virtual_]
        .into_iter()
        .zip(SourceKind::ALL)
        .filter_map(|(value, (kind, _))| value.map(|value| (kind, value)))
        .collect();
    match &set[..] {
        [(kind, value)] => Ok(LockSource {
            kind: *kind,
            value: value.clone(),
            subdirectory,
        }),
        _ => {
            let found = if set.is_empty() {
                "none of them".to_string()
            } else {
                let keys: Vec<String> = set
                    .iter()
                    .map(|(kind, _)| format!("`{}`", kind.key()))
                    .collect();
                fields::join_and(&keys)
            };
            Err(UvLockError::InvalidSource {
                place: place.to_string(),
                owner: owner.to_string(),
                found,
            })
        }
    }
}

fn parse_version(written: &str, package: &str, place: &str) -> Result<Version, UvLockError> {
    Version::from_str(written).map_err(|error| {
        FieldError::InvalidVersion {
            place: place.to_string(),
            package: package.to_string(),
            version: written.to_string(),
            reason: error.to_string(),
        }
        .into()
    })
}

fn parse_dependency(
    places: &Source<'_>,
    wire: Spanned<DependencyWire>,
    owner: &str,
) -> Result<PendingDependency, UvLockError> {
    let place = places.place(wire.span());
    let wire = wire.into_inner();
    let Some(name) = wire.name else {
        return Err(places
            .missing_key(place, format!("a dependency of {owner}"), "name")
            .into());
    };
    let name = parse_package_name(&name, &place)?;
    let version = wire
        .version
        .map(|written| parse_version(&written, name.as_str(), &place))
        .transpose()?;
    let source = wire
        .source
        .map(|source| parse_source(source, &format!("dependency `{name}` of {owner}"), &place))
        .transpose()?;
    let marker = match &wire.marker {
        Some(written) => parse_marker(
            written,
            &format!("`marker` of dependency `{name}` of {owner}"),
            &place,
        )?,
        None => MarkerTree::TRUE,
    };
    let extras = wire
        .extra
        .iter()
        .map(|extra| parse_name(extra, &format!("extra of dependency `{name}`"), &place))
        .collect::<Result<Vec<ExtraName>, _>>()?;
    Ok(PendingDependency {
        name,
        version,
        source,
        marker,
        extras,
        place,
    })
}

fn parse_package(
    places: &Source<'_>,
    wire: Spanned<PackageWire>,
) -> Result<PendingPackage, UvLockError> {
    let place = places.place(wire.span());
    let wire = wire.into_inner();
    let Some(name) = wire.name else {
        return Err(places
            .missing_key(place, "a `[[package]]` entry", "name")
            .into());
    };
    let name_place = places.place(name.span());
    let name = parse_package_name(name.get_ref(), &name_place)?;
    let owner = format!("package `{name}`");

    let parsed_version = wire
        .version
        .as_deref()
        .map(|written| parse_version(written, name.as_str(), &place))
        .transpose()?;

    let Some(source) = wire.source else {
        return Err(places.missing_key(place, owner, "source").into());
    };
    let source_place = places.place(source.span());
    let source = parse_source(source.into_inner(), &owner, &source_place)?;

    let resolution_markers = wire
        .resolution_markers
        .iter()
        .map(|marker| {
            parse_marker(
                marker.get_ref(),
                &format!("`resolution-markers` entry of {owner}"),
                &places.place(marker.span()),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    let dependencies = wire
        .dependencies
        .into_iter()
        .map(|dependency| parse_dependency(places, dependency, &owner))
        .collect::<Result<Vec<_>, _>>()?;
    let mut optional_dependencies = BTreeMap::new();
    for (extra, list) in wire.optional_dependencies {
        let extra: ExtraName = parse_name(&extra, &format!("extra of {owner}"), &place)?;
        let list = list
            .into_iter()
            .map(|dependency| parse_dependency(places, dependency, &owner))
            .collect::<Result<Vec<_>, _>>()?;
        optional_dependencies.insert(extra, list);
    }
    let mut dependency_groups = BTreeMap::new();
    for (group, list) in wire.dev_dependencies {
        let group: GroupName = parse_name(&group, &format!("dependency group of {owner}"), &place)?;
        let list = list
            .into_iter()
            .map(|dependency| parse_dependency(places, dependency, &owner))
            .collect::<Result<Vec<_>, _>>()?;
        dependency_groups.insert(group, list);
    }

    let context = ArtifactContext {
        places,
        package: name.as_str(),
        source: &source,
        place: &source_place,
    };
    let package_source = context.package_source(wire.wheels, wire.sdist)?;
    let index = match source.kind {
        SourceKind::Registry => url::Url::parse(&source.value)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https" | "file")),
        _ => None,
    };

    Ok(PendingPackage {
        package: Package {
            locked: LockedPackage {
                name,
                version: wire.version,
                index,
                source: package_source,
            },
            source,
            place,
            resolution_markers,
            dependencies: Vec::new(),
            optional_dependencies: BTreeMap::new(),
            dependency_groups: BTreeMap::new(),
        },
        parsed_version,
        dependencies,
        optional_dependencies,
        dependency_groups,
    })
}

/// Turn each dependency into an edge to exactly one package: the packages of that name,
/// narrowed by the dependency's `version` and `source` when it has them.
fn resolve_dependencies(
    pending: Vec<PendingPackage>,
    by_name: &BTreeMap<PackageName, Vec<usize>>,
) -> Result<Vec<Package>, UvLockError> {
    let identities: Vec<(Option<Version>, LockSource)> = pending
        .iter()
        .map(|entry| (entry.parsed_version.clone(), entry.package.source.clone()))
        .collect();
    let labels: Vec<(String, Option<String>)> = pending
        .iter()
        .map(|entry| {
            (
                entry.package.locked.name.to_string(),
                entry.package.locked.version.clone(),
            )
        })
        .collect();
    let resolve = |dependency: PendingDependency, owner: &str| {
        let candidates: Vec<usize> = by_name
            .get(&dependency.name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&index| {
                let (version, source) = &identities[index];
                dependency
                    .version
                    .as_ref()
                    .is_none_or(|wanted| version.as_ref() == Some(wanted))
                    && dependency
                        .source
                        .as_ref()
                        .is_none_or(|wanted| wanted == source)
            })
            .collect();
        match candidates[..] {
            [target] => Ok(Dependency {
                target,
                marker: dependency.marker,
                extras: dependency.extras,
            }),
            [] => Err(UvLockError::UnknownDependency {
                place: dependency.place.clone(),
                owner: owner.to_string(),
                dependency: dependency.describe(),
            }),
            _ => {
                let versions: Vec<String> = candidates
                    .iter()
                    .map(|&index| match &labels[index].1 {
                        Some(version) => format!("`{version}`"),
                        None => "an unversioned entry".to_string(),
                    })
                    .collect();
                Err(UvLockError::AmbiguousDependency {
                    place: dependency.place.clone(),
                    owner: owner.to_string(),
                    dependency: dependency.describe(),
                    candidates: format!("versions {}", fields::join_and(&versions)),
                })
            }
        }
    };

    let mut packages = Vec::with_capacity(pending.len());
    for entry in pending {
        let owner = format!("package `{}`", entry.package.locked.name);
        let mut package = entry.package;
        package.dependencies = entry
            .dependencies
            .into_iter()
            .map(|dependency| resolve(dependency, &owner))
            .collect::<Result<_, _>>()?;
        for (extra, list) in entry.optional_dependencies {
            let list = list
                .into_iter()
                .map(|dependency| resolve(dependency, &owner))
                .collect::<Result<_, _>>()?;
            package.optional_dependencies.insert(extra, list);
        }
        for (group, list) in entry.dependency_groups {
            let list = list
                .into_iter()
                .map(|dependency| resolve(dependency, &owner))
                .collect::<Result<_, _>>()?;
            package.dependency_groups.insert(group, list);
        }
        packages.push(package);
    }
    Ok(packages)
}

fn parse_root_requirement(
    places: &Source<'_>,
    wire: Spanned<RequirementWire>,
    by_name: &BTreeMap<PackageName, Vec<usize>>,
) -> Result<RootRequirement, UvLockError> {
    let place = places.place(wire.span());
    let wire = wire.into_inner();
    let Some(name) = wire.name else {
        return Err(places
            .missing_key(place, "a `[manifest]` requirement", "name")
            .into());
    };
    let name = parse_package_name(&name, &place)?;
    let marker = match &wire.marker {
        Some(written) => parse_marker(
            written,
            &format!("`marker` of `[manifest]` requirement `{name}`"),
            &place,
        )?,
        None => MarkerTree::TRUE,
    };
    let extras = wire
        .extras
        .iter()
        .map(|extra| parse_name(extra, &format!("extra of requirement `{name}`"), &place))
        .collect::<Result<Vec<ExtraName>, _>>()?;
    let candidates = by_name.get(&name).cloned().unwrap_or_default();
    if candidates.is_empty() {
        return Err(UvLockError::UnknownDependency {
            place,
            owner: "`[manifest]`".to_string(),
            dependency: name.to_string(),
        });
    }
    Ok(RootRequirement {
        candidates,
        marker,
        extras,
        name,
        place,
    })
}

/// What artifact parsing needs to know about the package it belongs to.
struct ArtifactContext<'a> {
    places: &'a Source<'a>,
    package: &'a str,
    source: &'a LockSource,
    place: &'a str,
}

/// Which artifact of a package.
#[derive(Clone, Copy)]
enum ArtifactKind {
    Wheel(usize),
    Sdist,
}

impl ArtifactKind {
    fn label(self) -> String {
        match self {
            Self::Wheel(index) => format!("`wheels[{index}]`"),
            Self::Sdist => "`sdist`".to_string(),
        }
    }
}

impl ArtifactContext<'_> {
    /// The lock model's view of a package's files, by source kind.
    fn package_source(
        &self,
        wheels: Vec<Spanned<FileWire>>,
        sdist: Option<Spanned<FileWire>>,
    ) -> Result<PackageSource, UvLockError> {
        match self.source.kind {
            SourceKind::Git => {
                let (url, commit) = self
                    .source
                    .value
                    .split_once('#')
                    .unwrap_or((&self.source.value, ""));
                if commit.is_empty() {
                    return Err(UvLockError::MissingGitCommit {
                        place: self.place.to_string(),
                        package: self.package.to_string(),
                        url: redact_text(&self.source.value),
                    });
                }
                let (url, subdirectory) = split_git_options(url);
                Ok(PackageSource::Vcs(VcsSource::git(
                    &url,
                    commit,
                    subdirectory.or_else(|| self.source.subdirectory.clone()),
                )))
            }
            SourceKind::Directory | SourceKind::Editable | SourceKind::Virtual => {
                Ok(PackageSource::Directory(DirectorySource::at(
                    self.places.path,
                    &self.source.value,
                    self.source.kind == SourceKind::Editable,
                )))
            }
            SourceKind::Registry | SourceKind::Url | SourceKind::Path => {
                let wheels = wheels
                    .into_iter()
                    .enumerate()
                    .map(|(index, wheel)| {
                        let place = self.places.place(wheel.span());
                        self.artifact(wheel.into_inner(), ArtifactKind::Wheel(index), &place)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sdist = sdist
                    .map(|sdist| {
                        let place = self.places.place(sdist.span());
                        self.artifact(sdist.into_inner(), ArtifactKind::Sdist, &place)
                    })
                    .transpose()?;
                Ok(PackageSource::Distributions { wheels, sdist })
            }
        }
    }

    /// Map a `wheels` or `sdist` entry into an [`Artifact`]. Where the file is depends
    /// on the package's source (`uv-resolver/src/lock/mod.rs`, `WheelWireSource`):
    /// - `registry`: each file has a `url`, or, for a local (flat) registry, a `path`
    ///   relative to the registry folder;
    /// - `url`: wheels carry their `url`; the sdist is the source URL itself;
    /// - `path`: the source path is the file, and wheels carry only a `filename`.
    fn artifact(
        &self,
        file: FileWire,
        kind: ArtifactKind,
        place: &str,
    ) -> Result<Artifact, UvLockError> {
        let label = kind.label();
        let key = |name: &str| {
            format!(
                "`{}.{name}` of package `{}`",
                label.trim_matches('`'),
                self.package
            )
        };
        let parse_url = |written: &str, key_name: &str| {
            url::Url::parse(written).map_err(|reason| FieldError::InvalidUrl {
                place: place.to_string(),
                key: key(key_name),
                value: redact_text(written),
                reason,
            })
        };

        let location = match (&file.url, &file.path, self.source.kind) {
            (Some(url), _, _) => ArtifactLocation::Url(parse_url(url, "url")?),
            (None, Some(path), SourceKind::Registry) => {
                // A flat registry folder, itself relative to the lockfile.
                ArtifactLocation::Path(self.resolve_path(&self.source.value).join(path))
            }
            (None, Some(path), _) => ArtifactLocation::Path(self.resolve_path(path)),
            (None, None, SourceKind::Url) => {
                ArtifactLocation::Url(parse_url(&self.source.value, "source.url")?)
            }
            (None, None, SourceKind::Path) => {
                ArtifactLocation::Path(self.resolve_path(&self.source.value))
            }
            (None, None, _) => {
                return Err(UvLockError::MissingArtifactLocation {
                    place: place.to_string(),
                    package: self.package.to_string(),
                    artifact: label,
                    keys: "`url` and `path`",
                });
            }
        };

        let filename = file
            .filename
            .clone()
            .filter(|name| !name.is_empty())
            .or_else(|| match &location {
                ArtifactLocation::Url(url) => fields::url_filename(url),
                ArtifactLocation::Path(path) => path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .map(str::to_string),
            });
        let Some(filename) = filename else {
            return Err(UvLockError::NoArtifactFilename {
                place: place.to_string(),
                package: self.package.to_string(),
                artifact: label,
            });
        };

        // Without a sha256 (another algorithm) the artifact keeps `None`, and envbuild
        // refuses it if it is chosen.
        let sha256 = match file
            .hash
            .as_deref()
            .map(|written| (written, fields::parse_hash(written)))
        {
            None | Some((_, Some(Hash::Other))) => None,
            Some((_, Some(Hash::Sha256(digest)))) => Some(digest),
            Some((written, None)) => {
                return Err(self
                    .places
                    .invalid_hash(
                        place,
                        format!("`hash` of {label} of package `{}`", self.package),
                        written,
                    )
                    .into());
            }
        };

        Ok(Artifact {
            filename,
            location,
            size: file.size,
            sha256,
        })
    }

    /// uv writes paths relative to the lockfile's folder (absolute ones stay as they are).
    fn resolve_path(&self, written: &str) -> PathBuf {
        let folder = self.places.path.parent().unwrap_or(Path::new(""));
        let joined = folder.join(written);
        std::path::absolute(&joined).unwrap_or(joined)
    }
}

/// uv writes a git source as `<repository>?<options>#<commit>`, its options
/// (`uv-resolver/src/lock/mod.rs`, `GitSource`) being `rev`, `tag`, `branch`, `lfs` and
/// `subdirectory`. Returns the repository URL without them, and the subdirectory. Any other
/// query parameter is part of the repository's URL and is kept.
fn split_git_options(written: &str) -> (String, Option<String>) {
    let Some((base, query)) = written.split_once('?') else {
        return (written.to_string(), None);
    };
    let mut subdirectory = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "subdirectory" => subdirectory = Some(fields::percent_decode(value).into_owned()),
            "rev" | "tag" | "branch" | "lfs" => {}
            _ => kept.push(pair),
        }
    }
    if kept.is_empty() {
        (base.to_string(), subdirectory)
    } else {
        (format!("{base}?{}", kept.join("&")), subdirectory)
    }
}

/// Whether a source path is the lockfile's own folder.
fn is_own_folder(path: &str) -> bool {
    matches!(path, "." | "./" | "")
}

fn describe_version(package: &LockedPackage) -> String {
    match &package.version {
        Some(version) => format!("version `{version}`"),
        None => "(no version)".to_string(),
    }
}

fn describe_entry(package: &Package) -> String {
    format!(
        "{} ({}) at `{}`",
        describe_version(&package.locked),
        package.source,
        package.place
    )
}

fn describe_candidates(packages: &[Package], candidates: &[usize]) -> String {
    let versions: Vec<String> = candidates
        .iter()
        .map(|&index| describe_version(&packages[index].locked))
        .collect();
    fields::join_and(&versions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::digest::Sha256Digest;
    use crate::lock::testing::{environment, linux_311};

    const LOCKFILE: &str = "/work/project/uv.lock";
    const HASH_A: &str = "3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe";
    const HASH_B: &str = "c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a";

    /// Locks made by the real uv (`tests/data/locks/regenerate-uv`).
    const FORKS: &str = include_str!("../../tests/data/locks/uv-forks/uv.lock");
    const CONFLICTS: &str = include_str!("../../tests/data/locks/uv-conflicts/uv.lock");
    const WORKSPACE: &str = include_str!("../../tests/data/locks/uv-workspace/uv.lock");
    const SOURCES: &str = include_str!("../../tests/data/locks/uv-sources/uv.lock");
    const DIRECTORY: &str = include_str!("../../tests/data/locks/uv-directory/uv.lock");

    fn parse(text: &str) -> Result<UvLock, UvLockError> {
        let text = text.replace("HASH_A", HASH_A).replace("HASH_B", HASH_B);
        UvLock::parse(Path::new(LOCKFILE), &text)
    }

    fn parse_error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
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

    /// `name version` of each selected package.
    fn select(
        text: &str,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Vec<String> {
        parse(text)
            .unwrap()
            .select(environment, selection)
            .unwrap()
            .iter()
            .map(|package| {
                format!(
                    "{} {}",
                    package.name,
                    package.version.as_deref().unwrap_or("-")
                )
            })
            .collect()
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

    fn defaults() -> GroupSelection {
        GroupSelection::default()
    }

    #[test]
    fn ok_forks_pick_the_version_for_the_target_python() {
        // The `dev` group (epsilon) is off unless asked for (an image is for
        // production); `plat`'s epsilon edge is Windows-only; `beta[fast]` brings gamma.
        assert_eq!(
            select(FORKS, &linux_311(), &defaults()),
            ["alpha 1.0", "beta 1.0", "gamma 1.0", "plat 1.0"]
        );
        assert_eq!(
            select(FORKS, &environment("linux", "3.12.1"), &defaults()),
            ["alpha 2.0", "beta 1.0", "gamma 1.0", "plat 1.0"]
        );
    }

    #[test]
    fn ok_registry_wheels_become_artifacts() {
        let lock = parse(FORKS).unwrap();
        let packages = lock.select(&linux_311(), &defaults()).unwrap();
        let alpha = &packages[0];
        assert_eq!(
            alpha.index.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:8000/simple/")
        );
        let PackageSource::Distributions { wheels, sdist } = &alpha.source else {
            panic!("expected distributions, got {:?}", alpha.source);
        };
        assert!(sdist.is_none());
        assert_eq!(
            wheels,
            &[Artifact {
                filename: "alpha-1.0-py3-none-any.whl".to_string(),
                location: ArtifactLocation::Url(
                    url::Url::parse("http://127.0.0.1:8000/files/alpha-1.0-py3-none-any.whl")
                        .unwrap()
                ),
                size: Some(919),
                sha256: Some(
                    Sha256Digest::from_hex(
                        "47d4133101384f348c824c7d8f3b82270dc42f54e9e28fa76b89d1b600937b7b"
                    )
                    .unwrap()
                ),
            }]
        );
    }

    #[test]
    fn ok_no_default_groups_drops_dev() {
        assert_eq!(
            select(FORKS, &linux_311(), &selection(&[], &[], true)),
            ["alpha 1.0", "beta 1.0", "gamma 1.0", "plat 1.0"]
        );
    }

    #[test]
    fn ok_extras_and_groups_of_the_root() {
        assert_eq!(
            select(
                FORKS,
                &linux_311(),
                &selection(&["extra1"], &["docs"], true)
            ),
            [
                "alpha 1.0",
                "beta 1.0",
                "delta 1.0",
                "gamma 1.0",
                "plat 1.0"
            ]
        );
        // Names are normalized.
        assert_eq!(
            select(FORKS, &linux_311(), &selection(&["Extra1"], &[], true)),
            [
                "alpha 1.0",
                "beta 1.0",
                "delta 1.0",
                "gamma 1.0",
                "plat 1.0"
            ]
        );
    }

    #[test]
    fn ok_platform_markers_on_edges() {
        // On Windows, `plat` needs epsilon even without the `dev` group.
        assert_eq!(
            select(
                FORKS,
                &environment("win32", "3.11.7"),
                &selection(&[], &[], true)
            ),
            [
                "alpha 1.0",
                "beta 1.0",
                "epsilon 1.0",
                "gamma 1.0",
                "plat 1.0"
            ]
        );
    }

    #[test]
    fn ok_edge_extra_enables_optional_dependencies() {
        let text = r#"
version = 1
requires-python = ">=3.9"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "requests", extra = ["socks"] }]

[[package]]
name = "requests"
version = "2.32.3"
source = { registry = "https://example.com/simple" }
dependencies = [{ name = "idna" }]
wheels = [{ url = "https://example.com/files/requests-2.32.3-py3-none-any.whl", hash = "sha256:HASH_A" }]

[package.optional-dependencies]
socks = [{ name = "pysocks" }]
security = [{ name = "pyopenssl" }]

[[package]]
name = "idna"
version = "3.10"
source = { registry = "https://example.com/simple" }
wheels = [{ url = "https://example.com/files/idna-3.10-py3-none-any.whl", hash = "sha256:HASH_A" }]

[[package]]
name = "pysocks"
version = "1.7.1"
source = { registry = "https://example.com/simple" }
wheels = [{ url = "https://example.com/files/PySocks-1.7.1-py3-none-any.whl", hash = "sha256:HASH_B" }]

[[package]]
name = "pyopenssl"
version = "25.0.0"
source = { registry = "https://example.com/simple" }
wheels = [{ url = "https://example.com/files/pyOpenSSL-25.0.0-py3-none-any.whl", hash = "sha256:HASH_B" }]
"#;
        assert_eq!(
            select(text, &linux_311(), &defaults()),
            ["idna 3.10", "pysocks 1.7.1", "requests 2.32.3"]
        );
    }

    #[test]
    fn ok_conflict_markers_follow_the_chosen_extra_or_group() {
        let none = select(CONFLICTS, &linux_311(), &defaults());
        assert_eq!(none, ["alpha 2.0", "beta 1.0"]);
        let cpu = select(CONFLICTS, &linux_311(), &selection(&["cpu"], &[], false));
        assert_eq!(cpu, ["alpha 1.0", "beta 1.0"]);
        let gpu = select(CONFLICTS, &linux_311(), &selection(&["gpu"], &[], false));
        assert_eq!(gpu, ["alpha 2.0", "beta 1.0"]);
        let old = select(CONFLICTS, &linux_311(), &selection(&[], &["old"], false));
        assert_eq!(old, ["alpha 1.0", "beta 1.0"]);
    }

    #[test]
    fn err_conflicting_extras_selected_together() {
        let error = select_error(
            CONFLICTS,
            &linux_311(),
            &selection(&["cpu", "gpu"], &[], false),
        );
        assert_eq!(
            error,
            "cannot install lockfile `/work/project/uv.lock`: extra `cpu` of `toy-b` and extra `gpu` of `toy-b` are both enabled, but the lock declares them as conflicting (`tool.uv.conflicts`); enable at most one of them"
        );
    }

    #[test]
    fn ok_encoded_conflict_names() {
        let item = ConflictItem {
            package: "toy-b".parse::<PackageName>().unwrap(),
            kind: ConflictKind::Extra(ExtraName::from_str("cpu").unwrap()),
        };
        assert_eq!(item.encoded().unwrap().as_str(), "extra-5-toy-b-cpu");
        let item = ConflictItem {
            package: "Toy_B".parse::<PackageName>().unwrap(),
            kind: ConflictKind::Group(GroupName::from_str("Old").unwrap()),
        };
        assert_eq!(item.encoded().unwrap().as_str(), "group-5-toy-b-old");
    }

    #[test]
    fn ok_workspace_members_are_roots_and_built() {
        // Members lib-a, lib-b and toy-c (virtual: never installed); lib-b enables
        // lib-a[more] (epsilon); the `dev` groups (alpha, delta) are off by default.
        assert_eq!(
            select(WORKSPACE, &linux_311(), &defaults()),
            [
                "epsilon 1.0",
                "gamma 1.0",
                "lib-a 1.2.0",
                "lib-b 0.3.0",
                "plat 1.0"
            ]
        );
        assert_eq!(
            select(WORKSPACE, &linux_311(), &selection(&[], &[], true)),
            [
                "epsilon 1.0",
                "gamma 1.0",
                "lib-a 1.2.0",
                "lib-b 0.3.0",
                "plat 1.0"
            ]
        );
    }

    #[test]
    fn ok_url_path_and_flat_registry_sources() {
        let lock = parse(SOURCES).unwrap();
        let packages = lock.select(&linux_311(), &defaults()).unwrap();
        let wheels: Vec<(&str, &Artifact)> = packages
            .iter()
            .map(|package| match &package.source {
                PackageSource::Distributions { wheels, .. } => (package.name.as_str(), &wheels[0]),
                other => panic!("expected wheels, got {other:?}"),
            })
            .collect();
        let [(delta, flat), (epsilon, url), (gamma, path)] = wheels[..] else {
            panic!("expected three packages, got {wheels:?}");
        };
        assert_eq!((delta, epsilon, gamma), ("delta", "epsilon", "gamma"));
        // A flat registry folder, relative to the lockfile; uv records no hash.
        assert_eq!(
            flat.location,
            ArtifactLocation::Path(PathBuf::from(
                "/work/project/flat/delta-1.0-py3-none-any.whl"
            ))
        );
        assert_eq!(flat.sha256, None);
        assert_eq!(
            url.location,
            ArtifactLocation::Url(
                url::Url::parse("http://127.0.0.1:8000/files/epsilon-1.0-py3-none-any.whl")
                    .unwrap()
            )
        );
        assert!(url.sha256.is_some());
        // A path source: the file is the source path; the wheel entry has its name.
        assert_eq!(path.filename, "gamma-1.0-py3-none-any.whl");
        assert_eq!(
            path.location,
            ArtifactLocation::Path(PathBuf::from(
                "/work/project/vendor/gamma-1.0-py3-none-any.whl"
            ))
        );
        assert!(path.sha256.is_some());
        // Neither a URL nor a path source has an index.
        assert!(packages.iter().all(|package| package.index.is_none()));
    }

    #[test]
    fn ok_editable_root_and_directory_dependency() {
        // The editable root `.` (toy-e) and the directory dependency are both selected
        // as source trees, to be built into wheels.
        let lock = parse(DIRECTORY).unwrap();
        let packages = lock.select(&linux_311(), &defaults()).unwrap();
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["lib-x", "plat", "toy-e"]);
        let PackageSource::Directory(tree) = &packages[0].source else {
            panic!("expected a source tree: {:?}", packages[0].source);
        };
        assert!(
            tree.path.is_absolute() && tree.path.ends_with("lib"),
            "{tree:?}"
        );
        assert!(!tree.editable);
    }

    /// Hand-written: git, URL sdist and sdist-only registry sources, percent-encoded
    /// wheel URLs.
    const OTHER_SOURCES: &str = r#"
version = 1
revision = 3
requires-python = ">=3.9"

[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "from-git" },
    { name = "from-url" },
    { name = "sdist-only" },
    { name = "encoded" },
]

[[package]]
name = "from-git"
version = "1.0"
source = { git = "https://git.example.com/org/repo?rev=main#0123456789abcdef0123456789abcdef01234567" }

[[package]]
name = "from-url"
version = "2.0"
source = { url = "https://example.com/from_url-2.0.tar.gz" }
sdist = { hash = "sha256:HASH_A" }

[[package]]
name = "sdist-only"
version = "3.0"
source = { registry = "https://example.com/simple" }
sdist = { url = "https://example.com/files/sdist_only-3.0.tar.gz", hash = "sha256:HASH_B", size = 1234 }

[[package]]
name = "encoded"
version = "1.0+local"
source = { registry = "https://example.com/simple" }
wheels = [{ url = "https://example.com/files/encoded-1.0%2Blocal-py3-none-any.whl", hash = "sha256:HASH_B" }]
"#;

    #[test]
    fn ok_git_url_and_sdist_sources() {
        let packages = parse(OTHER_SOURCES)
            .unwrap()
            .select(&linux_311(), &defaults())
            .unwrap();
        let by_name: BTreeMap<&str, &PackageSource> = packages
            .iter()
            .map(|package| (package.name.as_str(), &package.source))
            .collect();
        assert_eq!(
            by_name["from-git"],
            &PackageSource::Vcs(VcsSource {
                kind: "git".to_string(),
                url: "https://git.example.com/org/repo".to_string(),
                commit_id: "0123456789abcdef0123456789abcdef01234567".to_string(),
                subdirectory: None,
            })
        );
        let PackageSource::Distributions { wheels, sdist } = by_name["from-url"] else {
            panic!("expected distributions");
        };
        assert!(wheels.is_empty());
        let sdist = sdist.as_ref().unwrap();
        assert_eq!(sdist.filename, "from_url-2.0.tar.gz");
        assert_eq!(
            sdist.location,
            ArtifactLocation::Url(
                url::Url::parse("https://example.com/from_url-2.0.tar.gz").unwrap()
            )
        );
        let PackageSource::Distributions { wheels, sdist } = by_name["sdist-only"] else {
            panic!("expected distributions");
        };
        assert!(wheels.is_empty());
        assert_eq!(sdist.as_ref().unwrap().size, Some(1234));
        let PackageSource::Distributions { wheels, .. } = by_name["encoded"] else {
            panic!("expected distributions");
        };
        assert_eq!(wheels[0].filename, "encoded-1.0+local-py3-none-any.whl");
    }

    #[test]
    fn ok_script_lock_with_manifest_requirements() {
        let text = r#"
version = 1
revision = 2
requires-python = ">=3.11"
resolution-markers = ["python_full_version >= '3.12'", "python_full_version < '3.12'"]

[manifest]
requirements = [{ name = "alpha" }, { name = "delta", marker = "sys_platform == 'win32'" }]

[[package]]
name = "alpha"
version = "1.0"
source = { registry = "https://example.com/simple" }
resolution-markers = ["python_full_version < '3.12'"]
wheels = [{ url = "https://example.com/files/alpha-1.0-py3-none-any.whl", hash = "sha256:HASH_A" }]

[[package]]
name = "alpha"
version = "2.0"
source = { registry = "https://example.com/simple" }
resolution-markers = ["python_full_version >= '3.12'"]
wheels = [{ url = "https://example.com/files/alpha-2.0-py3-none-any.whl", hash = "sha256:HASH_B" }]

[[package]]
name = "delta"
version = "1.0"
source = { registry = "https://example.com/simple" }
wheels = [{ url = "https://example.com/files/delta-1.0-py3-none-any.whl", hash = "sha256:HASH_B" }]
"#;
        assert_eq!(select(text, &linux_311(), &defaults()), ["alpha 1.0"]);
        assert_eq!(
            select(text, &environment("win32", "3.12.0"), &defaults()),
            ["alpha 2.0", "delta 1.0"]
        );
    }

    #[test]
    fn err_requires_python_checked_first() {
        let error = select_error(FORKS, &environment("linux", "3.9.18"), &defaults());
        assert_eq!(
            error,
            "cannot install lockfile `/work/project/uv.lock:3:19` on the target: the lock requires Python `>=3.10`, but the target has Python 3.9.18; choose a target Python that satisfies it, or lock again for this Python"
        );
    }

    #[test]
    fn err_target_outside_supported_markers() {
        let text = FORKS.replace(
            "requires-python = \">=3.10\"\n",
            "requires-python = \">=3.10\"\nsupported-markers = [\"sys_platform == 'darwin'\"]\n",
        );
        let error = select_error(&text, &linux_311(), &defaults());
        assert_eq!(
            error,
            "cannot install lockfile `/work/project/uv.lock:4:21` on the target: it was locked only for the environments `sys_platform == 'darwin'`, and the target matches none of them; choose a matching target, or add the target to `tool.uv.environments` and lock again"
        );
    }

    #[test]
    fn err_unknown_extra_and_group() {
        assert_eq!(
            select_error(FORKS, &linux_311(), &selection(&["gpu"], &[], false)),
            "cannot select extra `gpu` from lockfile `/work/project/uv.lock`: its projects offer the extras `extra1`; choose one of those"
        );
        assert_eq!(
            select_error(FORKS, &linux_311(), &selection(&[], &["lint"], false)),
            "cannot select dependency group `lint` from lockfile `/work/project/uv.lock`: its projects offer the groups `dev`, `docs`; choose one of those"
        );
    }

    #[test]
    fn err_newer_schema_version() {
        assert_eq!(
            parse_error("version = 2\nrevision = 1\nrequires-python = \">=3.9\"\n"),
            "unsupported lockfile `/work/project/uv.lock:1:11`: `version = 2`, but envbuild reads only `uv.lock` schema version 1; lock with a uv that writes version 1, or export the lock with `uv export --format pylock.toml` and build from that"
        );
    }

    #[test]
    fn ok_any_revision_of_version_1() {
        let text = FORKS.replace("revision = 5", "revision = 99");
        assert_eq!(
            select(&text, &linux_311(), &selection(&[], &[], true)).len(),
            4
        );
        let text = FORKS.replace("revision = 5\n", "");
        assert_eq!(
            select(&text, &linux_311(), &selection(&[], &[], true)).len(),
            4
        );
    }

    #[test]
    fn err_toml_syntax_has_line_and_column() {
        let text = FORKS.replacen("name = \"beta\"", "name = \"beta", 1);
        let error = parse_error(&text);
        assert!(
            error.starts_with("cannot parse lockfile `/work/project/uv.lock:32:"),
            "{error}"
        );
    }

    #[test]
    fn err_wrong_type_names_the_position() {
        let text = FORKS.replace("size = 919 }", "size = \"919\" }");
        let error = parse_error(&text);
        assert!(
            error.starts_with("cannot parse lockfile `/work/project/uv.lock:17:"),
            "{error}"
        );
    }

    #[test]
    fn err_dependency_without_package() {
        let text = FORKS.replace(
            "{ name = \"plat\" },",
            "{ name = \"plat\" },\n    { name = \"missing\" },",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/uv.lock:92:5`: package `toy-a` depends on `missing`, but the lock has no matching `[[package]]`; run `uv lock` again"
        );
    }

    #[test]
    fn err_ambiguous_dependency_without_version() {
        let text = FORKS.replace(
            "{ name = \"alpha\", version = \"1.0\", source = { registry = \"http://127.0.0.1:8000/simple/\" }, marker = \"python_full_version < '3.12'\" },\n    { name = \"alpha\", version = \"2.0\", source = { registry = \"http://127.0.0.1:8000/simple/\" }, marker = \"python_full_version >= '3.12'\" },\n]\nwheels",
            "{ name = \"alpha\" },\n]\nwheels",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/uv.lock:36:5`: package `beta` depends on `alpha`, which matches versions `1.0` and `2.0`; uv writes `version` and `source` on such dependencies, run `uv lock` again"
        );
    }

    #[test]
    fn err_dependency_source_must_match() {
        let text = FORKS.replace(
            "{ name = \"alpha\", version = \"1.0\", source = { registry = \"http://127.0.0.1:8000/simple/\" }, marker = \"python_full_version < '3.12'\" },\n    { name = \"alpha\", version = \"2.0\"",
            "{ name = \"alpha\", version = \"1.0\", source = { registry = \"http://127.0.0.1:9999/simple/\" }, marker = \"python_full_version < '3.12'\" },\n    { name = \"alpha\", version = \"2.0\"",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/uv.lock:36:5`: package `beta` depends on `alpha 1.0 (registry = \"http://127.0.0.1:9999/simple/\")`, but the lock has no matching `[[package]]`; run `uv lock` again"
        );
    }

    #[test]
    fn err_source_with_two_kinds() {
        let text = FORKS.replace(
            "name = \"gamma\"\nversion = \"1.0\"\nsource = { registry = \"http://127.0.0.1:8000/simple/\" }",
            "name = \"gamma\"\nversion = \"1.0\"\nsource = { registry = \"http://127.0.0.1:8000/simple/\", path = \"x.whl\" }",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/uv.lock:67:10`: the `source` of package `gamma` has `registry` and `path`, but uv writes exactly one of `registry`, `git`, `url`, `path`, `directory`, `editable` and `virtual`; run `uv lock` again"
        );
    }

    #[test]
    fn err_bad_hash_and_marker() {
        let text = FORKS.replace(
            "hash = \"sha256:47d4133101384f348c824c7d8f3b82270dc42f54e9e28fa76b89d1b600937b7b\"",
            "hash = \"sha256:47d4\"",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/uv.lock:17:5`: `hash` of `wheels[0]` of package `alpha` is `sha256:47d4`, but hashes are written `sha256:<64 hexadecimal characters>`; fix it, or run `uv lock` again"
        );
        let text = FORKS.replace(
            "marker = \"sys_platform == 'win32'\"",
            "marker = \"sys_platform = 'win32'\"",
        );
        let error = parse_error(&text);
        assert!(
            error.starts_with("invalid lockfile `/work/project/uv.lock:77:5`: `marker` of dependency `epsilon` of package `plat` `sys_platform = 'win32'` is not a valid marker: "),
            "{error}"
        );
    }

    #[test]
    fn err_missing_member() {
        let text = WORKSPACE.replace("    \"lib-b\",\n", "    \"lib-b\",\n    \"lib-z\",\n");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/uv.lock:9:5`: `[manifest] members` lists `lib-z`, but the lock has no package of that name; run `uv lock` again"
        );
    }

    #[test]
    fn err_no_roots() {
        let text = r#"
version = 1
requires-python = ">=3.9"

[[package]]
name = "alpha"
version = "1.0"
source = { registry = "https://example.com/simple" }
"#;
        assert_eq!(
            parse_error(text),
            "invalid lockfile `/work/project/uv.lock`: it has no project to install: no `[manifest] members`, no package with source `editable`, `virtual` or `directory` = \".\", and no `[manifest] requirements`; run `uv lock` in the project folder"
        );
    }

    #[test]
    fn err_two_versions_reached() {
        // A hand-made lock whose edges reach both versions on every target.
        let text = r#"
version = 1
requires-python = ">=3.9"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "alpha", version = "1.0" },
    { name = "alpha", version = "2.0" },
]

[[package]]
name = "alpha"
version = "1.0"
source = { registry = "https://example.com/simple" }

[[package]]
name = "alpha"
version = "2.0"
source = { registry = "https://example.com/simple" }
"#;
        assert_eq!(
            select_error(text, &linux_311(), &defaults()),
            "cannot install lockfile `/work/project/uv.lock` on the target: package `alpha` is reached twice, as version `1.0` (registry = \"https://example.com/simple\") at `/work/project/uv.lock:14:1` and as version `2.0` (registry = \"https://example.com/simple\") at `/work/project/uv.lock:19:1`; only one version of a package can be installed, check the extras and groups you chose, or run `uv lock` again"
        );
    }

    #[test]
    fn ok_credentials_never_shown() {
        let text = r#"
version = 1
requires-python = ">=3.9"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "private" }]

[[package]]
name = "private"
version = "1.0"
source = { git = "https://user:secret@git.example.com/org/repo" }
"#;
        let error = parse_error(text);
        assert!(!error.contains("secret"), "{error}");
        assert!(
            error.contains("https://***@git.example.com/org/repo"),
            "{error}"
        );
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        let seeds = [
            FORKS,
            CONFLICTS,
            WORKSPACE,
            SOURCES,
            DIRECTORY,
            OTHER_SOURCES,
        ];
        let selections = crate::lock::testing::hostile_selections();
        crate::lock::testing::assert_no_panic("uv.lock", seeds, 2000, |text| {
            if let Ok(lock) = UvLock::parse(Path::new(LOCKFILE), text) {
                for (environment, selection) in &selections {
                    let _ = lock.select(environment, selection);
                }
            }
        });
    }
}
