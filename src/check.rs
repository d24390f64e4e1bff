//! The dependency consistency check, envbuild's `pipdeptree --warn fail`: from each
//! selected wheel's `METADATA` (`Requires-Dist`, PEP 508), evaluated for the target's
//! marker environment with the extras other distributions request of it, every
//! requirement must name a distribution in the set whose version satisfies the
//! specifier. Each problem carries the chain of requirers from a root (a distribution
//! nothing requires) so the message shows why the package is there. This module only
//! reads wheel metadata and reports; whether a problem fails the build is the caller's
//! choice (`--allow-conflicts`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use mailparse::MailHeaderMap;
use serde::Serialize;
use uv_normalize::ExtraName;
use uv_pep440::Version;
use uv_pep508::{MarkerEnvironment, Requirement, VersionOrUrl};

use crate::lock::{Excerpt, PackageName};
use crate::untrusted::Untrusted;

/// The most bytes of `METADATA` read into memory (the largest real ones are well
/// under a MiB, long descriptions included).
const METADATA_LIMIT: u64 = 16 * 1024 * 1024;

/// One distribution of the set being checked, as its wheel's `METADATA` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDistribution {
    /// The normalized project name.
    pub name: PackageName,
    /// The version, as `METADATA` writes it.
    pub version: String,
    /// Where the metadata was read.
    pub metadata: MetadataFile,
    /// The `Requires-Dist` values, in file order.
    pub requires_dist: Vec<RequiresDist>,
}

/// A wheel's `METADATA` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataFile {
    /// The wheel's path (or the label given to [`parse_metadata`]).
    pub wheel: String,
    /// The member, e.g. `flask-3.1.3.dist-info/METADATA`.
    pub member: String,
}

/// One `Requires-Dist` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiresDist {
    /// Its value, as written (surrounding whitespace removed).
    pub value: String,
    /// The line of `METADATA` it starts on (from 1).
    pub line: usize,
}

/// One distribution on a chain of requirers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    /// The normalized project name.
    pub name: PackageName,
    /// Its version.
    pub version: String,
}

impl fmt::Display for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, Untrusted(&self.version))
    }
}

/// One unsatisfied requirement. `chain` runs from a root (a distribution nothing in
/// the set requires) to the requirer, which is its last link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DependencyProblem {
    /// The required distribution is not in the set.
    Missing {
        /// Root first, the requirer last.
        chain: Vec<ChainLink>,
        /// The `Requires-Dist` value as written.
        requirement: String,
    },
    /// The required distribution is in the set, but its version does not satisfy the
    /// specifier.
    Conflict {
        /// Root first, the requirer last.
        chain: Vec<ChainLink>,
        /// The `Requires-Dist` value as written.
        requirement: String,
        /// The version in the set (several joined with `, ` if the set holds several).
        locked_version: String,
    },
    /// A `Requires-Dist` value is not a valid PEP 508 requirement, or goes past the
    /// bounds envbuild reads markers within, so it cannot be checked.
    InvalidRequirement {
        /// Root first, the distribution whose metadata holds it last.
        chain: Vec<ChainLink>,
        /// The `Requires-Dist` value as written.
        requirement: String,
        /// Why it is refused.
        reason: String,
        /// The wheel and `METADATA` member that hold it.
        metadata: MetadataFile,
        /// Its line in `METADATA`.
        line: usize,
    },
    /// A distribution's version is not a PEP 440 version, so no specifier can be
    /// checked against it.
    InvalidVersion {
        /// The distribution.
        distribution: ChainLink,
        /// Why it does not parse.
        reason: String,
    },
}

impl DependencyProblem {
    /// The chain from a root to the requirer (empty for [`Self::InvalidVersion`]).
    pub fn chain(&self) -> &[ChainLink] {
        match self {
            Self::Missing { chain, .. }
            | Self::Conflict { chain, .. }
            | Self::InvalidRequirement { chain, .. } => chain,
            Self::InvalidVersion { .. } => &[],
        }
    }
}

/// ` (via a 1.0 → b 2.0)`: the requirers above the last link, if any.
fn via(chain: &[ChainLink]) -> String {
    match chain.split_last() {
        Some((_, above)) if !above.is_empty() => {
            let links: Vec<String> = above.iter().map(ToString::to_string).collect();
            format!(" (via {})", links.join(" → "))
        }
        _ => String::new(),
    }
}

fn requirer(chain: &[ChainLink]) -> String {
    chain.last().map(ToString::to_string).unwrap_or_default()
}

impl fmt::Display for DependencyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { chain, requirement } => write!(
                f,
                "{} requires {}, which is not locked{}",
                requirer(chain),
                Excerpt(requirement),
                via(chain)
            ),
            Self::Conflict {
                chain,
                requirement,
                locked_version,
            } => {
                // It parsed when the problem was found.
                let name = crate::lock::parse_requirement::<uv_pep508::VerbatimUrl>(requirement)
                    .map(|parsed| parsed.name.to_string())
                    .unwrap_or_default();
                write!(
                    f,
                    "{} requires {}, locked {name} {}{}",
                    requirer(chain),
                    Excerpt(requirement),
                    Untrusted(locked_version),
                    via(chain)
                )
            }
            Self::InvalidRequirement {
                chain,
                requirement,
                reason,
                metadata,
                line,
            } => write!(
                f,
                "{} has `Requires-Dist: {}` (wheel `{}`, `{}` line {line}), which is not a valid PEP 508 requirement ({}){}",
                requirer(chain),
                Excerpt(requirement),
                Untrusted(&metadata.wheel),
                Untrusted(&metadata.member),
                Untrusted(reason),
                via(chain)
            ),
            Self::InvalidVersion {
                distribution,
                reason,
            } => write!(
                f,
                "{distribution}: the version is not a PEP 440 version ({}), so requirements on `{}` cannot be checked",
                Untrusted(reason),
                distribution.name
            ),
        }
    }
}

/// The outcome of [`check_dependencies`], as the JSON report holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Every problem, ordered by requirer (name, version) and then by the order of
    /// `Requires-Dist` in its metadata.
    pub problems: Vec<DependencyProblem>,
}

impl CheckReport {
    /// Whether every requirement is satisfied.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One problem a line; `no dependency problems` when there are none.
impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return f.write_str("no dependency problems");
        }
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Errors of the dependency check: unreadable metadata, or a failed check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Some requirements are missing or conflict.
    #[error(
        "the locked packages do not satisfy their own requirements ({count} problem{s}):\n{listing}\nre-lock so every requirement is satisfied, or pass `--allow-conflicts` to build anyway",
        count = report.problems.len(),
        s = if report.problems.len() == 1 { "" } else { "s" },
        listing = indented(report)
    )]
    Unsatisfied {
        /// The failed check.
        report: CheckReport,
    },
    /// The wheel file cannot be opened.
    #[error("cannot open wheel `{path}` to read its metadata")]
    OpenWheel {
        /// The wheel path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The wheel is not a valid zip archive.
    #[error("wheel `{path}` is not a valid zip archive; fetch it again")]
    InvalidZip {
        /// The wheel path.
        path: String,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// No `*.dist-info/METADATA` at the wheel's root.
    #[error(
        "wheel `{path}` has no `*.dist-info/METADATA` at its root; the wheel is broken, fetch or rebuild it"
    )]
    MetadataMissing {
        /// The wheel path.
        path: String,
    },
    /// Several `*.dist-info/METADATA` at the wheel's root.
    #[error(
        "wheel `{path}` has several `.dist-info` folders with a `METADATA` ({found}), but a wheel has exactly one; the wheel is broken, rebuild it",
        found = Untrusted(found)
    )]
    MultipleMetadata {
        /// The wheel path.
        path: String,
        /// The metadata paths, comma-separated.
        found: String,
    },
    /// `METADATA` cannot be read, is too large, or is not UTF-8.
    #[error(
        "wheel `{path}`: cannot read `{member}` ({reason}); the wheel is broken, fetch or rebuild it",
        member = Untrusted(member),
        reason = Untrusted(reason)
    )]
    MetadataUnreadable {
        /// The wheel path.
        path: String,
        /// The member.
        member: String,
        /// What went wrong.
        reason: String,
    },
    /// `METADATA` is not in email-header format.
    #[error(
        "wheel `{path}`: `{member}` is not in email-header format; the wheel is broken, rebuild it",
        member = Untrusted(member)
    )]
    MalformedMetadata {
        /// The wheel path (or the label given to [`parse_metadata`]).
        path: String,
        /// The member.
        member: String,
        /// The parse error.
        #[source]
        source: mailparse::MailParseError,
    },
    /// `METADATA`'s `Name` is not a valid package name.
    #[error(
        "wheel `{path}`: `{}` has an invalid `Name`: {name}; the wheel is broken, rebuild it",
        Untrusted(member)
    )]
    InvalidName {
        /// The wheel path (or the label given to [`parse_metadata`]).
        path: String,
        /// The member.
        member: String,
        /// The name and why it is refused.
        name: crate::lock::InvalidPackageName,
    },
    /// `METADATA` lacks `Name` or `Version`.
    #[error(
        "wheel `{path}`: `{member}` has no `{field}` header; the wheel is broken, rebuild it",
        field = Untrusted(field),
        member = Untrusted(member)
    )]
    MetadataFieldMissing {
        /// The wheel path (or the label given to [`parse_metadata`]).
        path: String,
        /// The member.
        member: String,
        /// `Name` or `Version`.
        field: &'static str,
    },
}

fn indented(report: &CheckReport) -> String {
    let lines: Vec<String> = report
        .problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect();
    lines.join("\n")
}

/// Read `Name`, `Version` and every `Requires-Dist` from the `*.dist-info/METADATA`
/// at the root of the wheel at `wheel_path`.
pub fn read_metadata(wheel_path: &Path) -> Result<InstalledDistribution, CheckError> {
    read_wheel_metadata(wheel_path, &wheel_path.display().to_string())
}

/// [`read_metadata`] of a wheel whose messages call it `wheel` (its file name in the lock,
/// when the file itself sits in the cache under its digest).
pub fn read_wheel_metadata(
    wheel_path: &Path,
    wheel: &str,
) -> Result<InstalledDistribution, CheckError> {
    let path = wheel.to_string();
    let file = fs_err::File::open(wheel_path).map_err(|source| CheckError::OpenWheel {
        path: path.clone(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|source| {
        CheckError::InvalidZip {
            path: path.clone(),
            source,
        }
    })?;
    let found: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|name| {
            name.split_once('/')
                .is_some_and(|(top, rest)| top.ends_with(".dist-info") && rest == "METADATA")
        })
        .map(|name| name.into_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let member = match found.as_slice() {
        [] => return Err(CheckError::MetadataMissing { path }),
        [one] => one.clone(),
        _ => {
            return Err(CheckError::MultipleMetadata {
                path,
                found: found
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let unreadable = |reason: String| CheckError::MetadataUnreadable {
        path: path.clone(),
        member: member.clone(),
        reason,
    };
    let entry = archive
        .by_name(&member)
        .map_err(|error| unreadable(error.to_string()))?;
    let mut bytes = Vec::new();
    entry
        .take(METADATA_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| unreadable(error.to_string()))?;
    if bytes.len() as u64 > METADATA_LIMIT {
        return Err(unreadable(format!("larger than {METADATA_LIMIT} bytes")));
    }
    parse_metadata(&bytes, &path, &member)
}

/// Parse `METADATA` bytes (email-header format). `path` and `member` name the source
/// in errors.
pub fn parse_metadata(
    bytes: &[u8],
    path: &str,
    member: &str,
) -> Result<InstalledDistribution, CheckError> {
    let (headers, _) =
        mailparse::parse_headers(bytes).map_err(|source| CheckError::MalformedMetadata {
            path: path.to_string(),
            member: member.to_string(),
            source,
        })?;
    let field = |field: &'static str| {
        headers
            .get_first_value(field)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| CheckError::MetadataFieldMissing {
                path: path.to_string(),
                member: member.to_string(),
                field,
            })
    };
    let name = field("Name")?;
    let version = field("Version")?;
    let name = name.parse().map_err(|name| CheckError::InvalidName {
        path: path.to_string(),
        member: member.to_string(),
        name,
    })?;
    let mut lines = LineCounter::new(bytes);
    let requires_dist = headers
        .get_all_headers("Requires-Dist")
        .into_iter()
        .map(|header| RequiresDist {
            value: header.get_value().trim().to_string(),
            line: lines.line_of(header.get_key_raw()),
        })
        .filter(|requirement| !requirement.value.is_empty())
        .collect();
    Ok(InstalledDistribution {
        name,
        version,
        metadata: MetadataFile {
            wheel: path.to_string(),
            member: member.to_string(),
        },
        requires_dist,
    })
}

/// Line numbers of slices of a text, asked in the order they appear (headers in file
/// order), so the text is scanned once.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line (from 1) `part`, a slice of the text, starts on.
    fn line_of(&mut self, part: &[u8]) -> usize {
        // The header parser hands out slices of the text it was given; compare addresses
        // to find where this one starts.
        let offset = (part.as_ptr() as usize)
            .saturating_sub(self.bytes.as_ptr() as usize)
            .min(self.bytes.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.bytes[self.offset..offset]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

/// Fail with every problem of `report` listed, or succeed when it has none. The
/// caller turns the error into a warning for `--allow-conflicts`.
pub fn check_error(report: &CheckReport) -> Result<(), CheckError> {
    if report.is_ok() {
        Ok(())
    } else {
        Err(CheckError::Unsatisfied {
            report: report.clone(),
        })
    }
}

/// A parsed `Requires-Dist` line, or why it does not parse.
type Parsed = Result<Requirement, String>;

/// Check that every requirement of every distribution in `wheels`, evaluated for
/// `environment`, is satisfied by a distribution of the set.
///
/// Extras: a distribution's `extra == "…"` requirements are active when some active
/// requirement of another distribution asks for that extra (`pkg[extra]`); the
/// extras propagate until nothing changes, starting from none (the lock's own extras
/// are already resolved into the set of distributions). Versions are compared as
/// `pip check` does, with pre-releases allowed (a locked `2.0rc1` satisfies `>=1.0`).
pub fn check_dependencies(
    wheels: &[InstalledDistribution],
    environment: &MarkerEnvironment,
) -> CheckReport {
    // Work in (name, version) order so the report does not depend on input order.
    let mut order: Vec<usize> = (0..wheels.len()).collect();
    order.sort_by(|&a, &b| {
        (&wheels[a].name, &wheels[a].version).cmp(&(&wheels[b].name, &wheels[b].version))
    });
    let mut by_name: BTreeMap<&PackageName, Vec<usize>> = BTreeMap::new();
    for &index in &order {
        by_name.entry(&wheels[index].name).or_default().push(index);
    }
    let parsed: Vec<Vec<Parsed>> = wheels
        .iter()
        .map(|wheel| {
            wheel
                .requires_dist
                .iter()
                .map(|requirement| {
                    crate::lock::parse_requirement(&requirement.value)
                        .map_err(|error| error.to_string())
                })
                .collect()
        })
        .collect();
    let versions: Vec<Result<Version, String>> = wheels
        .iter()
        .map(|wheel| Version::from_str(&wheel.version).map_err(|error| error.to_string()))
        .collect();
    let targets = |requirement: &Requirement| -> &[usize] {
        by_name
            .get(&PackageName::from(requirement.name.clone()))
            .map_or(&[][..], Vec::as_slice)
    };

    // Extras requested of each distribution, to a fixpoint.
    let mut extras: Vec<BTreeSet<ExtraName>> = vec![BTreeSet::new(); wheels.len()];
    loop {
        let mut changed = false;
        for &index in &order {
            let active: Vec<ExtraName> = extras[index].iter().cloned().collect();
            for requirement in parsed[index].iter().flatten() {
                if requirement.extras.is_empty()
                    || !requirement.evaluate_markers(environment, &active)
                {
                    continue;
                }
                for &target in targets(requirement) {
                    for extra in &requirement.extras {
                        changed |= extras[target].insert(extra.clone());
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let active = |index: usize| -> Vec<(&RequiresDist, &Parsed)> {
        let extras: Vec<ExtraName> = extras[index].iter().cloned().collect();
        wheels[index]
            .requires_dist
            .iter()
            .zip(&parsed[index])
            .filter(|(_, parsed)| match parsed {
                Ok(requirement) => requirement.evaluate_markers(environment, &extras),
                // An unparseable line cannot be evaluated, so it is always reported.
                Err(_) => true,
            })
            .collect()
    };

    // The requirement graph, for the chains.
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); wheels.len()];
    let mut required = vec![false; wheels.len()];
    for &index in &order {
        for (_, parsed) in active(index) {
            let Ok(requirement) = parsed else { continue };
            for &target in targets(requirement) {
                if target != index {
                    edges[index].insert(target);
                    required[target] = true;
                }
            }
        }
    }
    let parents = shortest_parents(&order, &edges, &required);
    let chain = |index: usize| -> Vec<ChainLink> {
        let mut links = Vec::new();
        let mut current = Some(index);
        while let Some(at) = current {
            links.push(ChainLink {
                name: wheels[at].name.clone(),
                version: wheels[at].version.clone(),
            });
            current = parents[at];
        }
        links.reverse();
        links
    };

    let mut problems = Vec::new();
    for &index in &order {
        if let Err(reason) = &versions[index] {
            problems.push(DependencyProblem::InvalidVersion {
                distribution: ChainLink {
                    name: wheels[index].name.clone(),
                    version: wheels[index].version.clone(),
                },
                reason: reason.clone(),
            });
        }
    }
    for &index in &order {
        for (written, parsed) in active(index) {
            let line = &written.value;
            let requirement = match parsed {
                Ok(requirement) => requirement,
                Err(reason) => {
                    problems.push(DependencyProblem::InvalidRequirement {
                        chain: chain(index),
                        requirement: line.clone(),
                        reason: reason.clone(),
                        metadata: wheels[index].metadata.clone(),
                        line: written.line,
                    });
                    continue;
                }
            };
            let candidates = targets(requirement);
            if candidates.is_empty() {
                problems.push(DependencyProblem::Missing {
                    chain: chain(index),
                    requirement: line.clone(),
                });
                continue;
            }
            let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url
            else {
                // No specifier, or a direct URL: being present is all that can be checked.
                continue;
            };
            let satisfied = candidates
                .iter()
                .any(|&candidate| match &versions[candidate] {
                    Ok(version) => specifiers.contains(version),
                    // Reported once as InvalidVersion above.
                    Err(_) => true,
                });
            if !satisfied {
                let locked: Vec<&str> = candidates
                    .iter()
                    .map(|&candidate| wheels[candidate].version.as_str())
                    .collect();
                problems.push(DependencyProblem::Conflict {
                    chain: chain(index),
                    requirement: line.clone(),
                    locked_version: locked.join(", "),
                });
            }
        }
    }
    CheckReport { problems }
}

/// For each distribution, its parent on a shortest chain from a root, found by a
/// breadth-first walk from the roots in (name, version) order, so chains are stable.
/// Distributions reachable only through a cycle start a walk of their own.
fn shortest_parents(
    order: &[usize],
    edges: &[BTreeSet<usize>],
    required: &[bool],
) -> Vec<Option<usize>> {
    let mut parents: Vec<Option<usize>> = vec![None; edges.len()];
    let mut seen = vec![false; edges.len()];
    let roots = order.iter().copied().filter(|&index| !required[index]);
    let rest = order.iter().copied().filter(|&index| required[index]);
    for start in roots.chain(rest) {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            // Visit targets in (name, version) order, not index order.
            let mut next: Vec<usize> = edges[at].iter().copied().collect();
            next.sort_by_key(|&target| order.iter().position(|&index| index == target));
            for target in next {
                if !seen[target] {
                    seen[target] = true;
                    parents[target] = Some(at);
                    queue.push_back(target);
                }
            }
        }
    }
    parents
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{Libc, Platform, PythonVersion, Target};

    fn environment(minor: u32) -> MarkerEnvironment {
        Target {
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            python: PythonVersion {
                major: 3,
                minor,
                patch: None,
            },
            libc: Libc::Glibc {
                major: 2,
                minor: 36,
            },
            allow_linux_tag: false,
        }
        .marker_environment()
    }

    fn dist(name: &str, version: &str, requires: &[&str]) -> InstalledDistribution {
        InstalledDistribution {
            name: name.parse().unwrap(),
            version: version.into(),
            metadata: MetadataFile {
                wheel: format!("{name}.whl"),
                member: format!("{name}-{version}.dist-info/METADATA"),
            },
            requires_dist: requires
                .iter()
                .enumerate()
                .map(|(index, value)| RequiresDist {
                    value: value.to_string(),
                    line: index + 4,
                })
                .collect(),
        }
    }

    fn check(wheels: &[InstalledDistribution]) -> CheckReport {
        check_dependencies(wheels, &environment(11))
    }

    fn lines(report: &CheckReport) -> Vec<String> {
        report.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ok_consistent_set() {
        let report = check(&[
            dist("Flask", "3.1.3", &["Werkzeug>=3.1", "click>=8.1.3"]),
            dist("werkzeug", "3.1.9", &["MarkupSafe>=2.1.1"]),
            dist("markupsafe", "3.0.4", &[]),
            dist(
                "click",
                "8.5.1",
                &["colorama; platform_system == 'Windows'"],
            ),
        ]);
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.to_string(), "no dependency problems");
        check_error(&report).unwrap();
    }

    #[test]
    fn err_conflict_text_and_chain() {
        let report = check(&[
            dist("app", "1.0", &["flask"]),
            dist("flask", "3.1.3", &["werkzeug>=3.1"]),
            dist("werkzeug", "3.0.0", &[]),
        ]);
        assert_eq!(
            lines(&report),
            ["flask 3.1.3 requires werkzeug>=3.1, locked werkzeug 3.0.0 (via app 1.0)"]
        );
        let DependencyProblem::Conflict {
            chain,
            locked_version,
            ..
        } = &report.problems[0]
        else {
            panic!("{report}")
        };
        assert_eq!(locked_version, "3.0.0");
        let names: Vec<&str> = chain.iter().map(|link| link.name.as_str()).collect();
        assert_eq!(names, ["app", "flask"]);
    }

    #[test]
    fn err_missing_with_long_chain() {
        let report = check(&[
            dist("a", "1.0", &["b"]),
            dist("b", "2.0", &["c>=1"]),
            dist("c", "1.5", &["Missing.Pkg>=2 ; python_version >= '3.8'"]),
        ]);
        assert_eq!(
            lines(&report),
            [
                "c 1.5 requires Missing.Pkg>=2 ; python_version >= '3.8', which is not locked (via a 1.0 → b 2.0)"
            ]
        );
    }

    #[test]
    fn ok_root_requirer_has_no_via() {
        let report = check(&[dist("a", "1.0", &["b>=2"]), dist("b", "1.5", &[])]);
        assert_eq!(lines(&report), ["a 1.0 requires b>=2, locked b 1.5"]);
    }

    #[test]
    fn markers_follow_the_target() {
        let wheels = [dist(
            "jaraco.context",
            "6.1.2",
            &["backports.tarfile; python_version < \"3.12\""],
        )];
        assert!(check_dependencies(&wheels, &environment(12)).is_ok());
        let report = check_dependencies(&wheels, &environment(11));
        assert!(
            matches!(&report.problems[..], [DependencyProblem::Missing { .. }]),
            "{report}"
        );
    }

    #[test]
    fn extras_propagate_transitively() {
        let base = [
            dist("app", "1.0", &["lib[net]"]),
            dist(
                "lib",
                "1.0",
                &[
                    "plain",
                    "http[socks]; extra == 'net'",
                    "docs; extra == 'doc'",
                ],
            ),
            dist("plain", "1.0", &[]),
            dist("http", "2.0", &["pysocks>=1.5.6; extra == \"socks\""]),
        ];
        // `app` asks `lib[net]`, which asks `http[socks]`, which needs pysocks.
        let report = check(&base);
        assert_eq!(
            lines(&report),
            [
                "http 2.0 requires pysocks>=1.5.6; extra == \"socks\", which is not locked (via app 1.0 → lib 1.0)"
            ]
        );
        let mut fixed = base.to_vec();
        fixed.push(dist("PySocks", "1.7.1", &[]));
        assert!(check(&fixed).is_ok(), "{}", check(&fixed));
        // Without the request for `net`, nothing past `plain` is active.
        let mut unrequested = base.to_vec();
        unrequested[0] = dist("app", "1.0", &["lib"]);
        assert!(check(&unrequested).is_ok());
    }

    #[test]
    fn extras_requested_late_still_count() {
        // The request for `z[x]` comes from a distribution processed after `z`.
        let report = check(&[
            dist("a", "1.0", &["z"]),
            dist("y", "1.0", &["z[x]"]),
            dist("z", "1.0", &["needed; extra == 'x'"]),
        ]);
        assert_eq!(report.problems.len(), 1, "{report}");
        assert!(
            report.problems[0]
                .to_string()
                .starts_with("z 1.0 requires needed")
        );
    }

    #[test]
    fn prereleases_are_versions_like_any_other() {
        let ok = check(&[dist("a", "1.0", &["b>=1.0"]), dist("b", "2.0rc1", &[])]);
        assert!(ok.is_ok(), "{ok}");
        let report = check(&[dist("a", "1.0", &["b<2.0"]), dist("b", "2.0rc1", &[])]);
        assert_eq!(lines(&report), ["a 1.0 requires b<2.0, locked b 2.0rc1"]);
        let ok = check(&[dist("a", "1.0", &["b>=2.0b1"]), dist("b", "2.0b2", &[])]);
        assert!(ok.is_ok(), "{ok}");
    }

    #[test]
    fn names_are_compared_normalized() {
        let report = check(&[
            dist(
                "a",
                "1",
                &["Jaraco.Functools>=4", "charset_normalizer<4,>=2"],
            ),
            dist("jaraco-functools", "4.6.0", &[]),
            dist("charset-normalizer", "3.5.3", &[]),
        ]);
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn err_invalid_requirement_is_a_problem() {
        let report = check(&[dist("a", "1.0", &["b >>= 2", "c"]), dist("c", "1", &[])]);
        assert_eq!(report.problems.len(), 1, "{report}");
        let message = report.problems[0].to_string();
        assert!(
            message.starts_with(
                "a 1.0 has `Requires-Dist: b >>= 2` (wheel `a.whl`, `a-1.0.dist-info/METADATA` line 4), which is not a valid PEP 508 requirement"
            ),
            "{message}"
        );
    }

    #[test]
    fn err_invalid_locked_version() {
        let report = check(&[dist("a", "1.0", &["b>=1"]), dist("b", "not a version", &[])]);
        assert!(
            matches!(
                &report.problems[..],
                [DependencyProblem::InvalidVersion { .. }]
            ),
            "{report}"
        );
    }

    #[test]
    fn url_requirements_need_presence_only() {
        let report = check(&[
            dist(
                "a",
                "1.0",
                &["b @ https://example.invalid/b-1.0-py3-none-any.whl"],
            ),
            dist("b", "0.1", &[]),
        ]);
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn cycles_still_get_a_chain() {
        let report = check(&[
            dist("a", "1.0", &["b"]),
            dist("b", "1.0", &["a", "c>=2"]),
            dist("c", "1.0", &[]),
        ]);
        // No distribution is a root; the walk starts at the first by name.
        assert_eq!(
            lines(&report),
            ["b 1.0 requires c>=2, locked c 1.0 (via a 1.0)"]
        );
    }

    #[test]
    fn report_order_does_not_depend_on_input_order() {
        let mut wheels = vec![
            dist("z", "1", &["missing-one"]),
            dist("a", "1", &["missing-two", "z"]),
        ];
        let first = check(&wheels);
        wheels.reverse();
        assert_eq!(first, check(&wheels));
        assert_eq!(first.problems.len(), 2);
    }

    #[test]
    fn err_check_error_lists_every_problem() {
        let report = check(&[dist("a", "1.0", &["b>=2", "c"]), dist("b", "1.5", &[])]);
        let error = check_error(&report).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("(2 problems)"), "{message}");
        assert!(
            message.contains(
                "  - a 1.0 requires b>=2, locked b 1.5\n  - a 1.0 requires c, which is not locked"
            ),
            "{message}"
        );
        assert!(message.contains("--allow-conflicts"), "{message}");
    }

    #[test]
    fn report_serializes_for_json() {
        let report = check(&[dist("a", "1.0", &["b>=2"]), dist("b", "1.5", &[])]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"problems": [{
                "kind": "conflict",
                "chain": [{"name": "a", "version": "1.0"}],
                "requirement": "b>=2",
                "locked_version": "1.5",
            }]})
        );
    }

    #[test]
    fn ok_parse_metadata() {
        let metadata = b"Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.6\nRequires-Dist: MarkupSafe>=2.0\nRequires-Dist: Babel>=2.7 ; extra == \"i18n\"\nProvides-Extra: i18n\n\nLong description\nRequires-Dist: not-a-header\n";
        let parsed =
            parse_metadata(metadata, "jinja2.whl", "jinja2-3.1.6.dist-info/METADATA").unwrap();
        assert_eq!(
            parsed,
            dist(
                "jinja2",
                "3.1.6",
                &["MarkupSafe>=2.0", "Babel>=2.7 ; extra == \"i18n\""]
            )
        );
    }

    #[test]
    fn err_parse_metadata_without_version() {
        let error = parse_metadata(b"Name: a\n", "a.whl", "a-1.dist-info/METADATA").unwrap_err();
        assert!(
            matches!(
                error,
                CheckError::MetadataFieldMissing {
                    field: "Version",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("a.whl"));
    }

    #[test]
    fn ok_no_panic_on_hostile_metadata() {
        let seeds = [
            include_str!("../tests/data/robust/METADATA.ipython"),
            include_str!("../tests/data/robust/METADATA.jsonschema"),
            include_str!("../tests/data/robust/METADATA.requests"),
            include_str!("../tests/data/robust/METADATA.sqlalchemy"),
        ];
        // The hostile distribution is checked next to a real one it may require.
        let others = [parse_metadata(seeds[2].as_bytes(), "real.whl", "METADATA").unwrap()];
        let environment = environment(11);
        crate::lock::testing::assert_no_panic("METADATA", seeds, 2000, |text| {
            if let Ok(distribution) = parse_metadata(text.as_bytes(), "hostile.whl", "METADATA") {
                let mut set = others.to_vec();
                set.push(distribution);
                let report = check_dependencies(&set, &environment);
                let _ = report.to_string();
            }
        });
    }

    #[test]
    fn err_metadata_name_that_is_not_a_name() {
        let error = parse_metadata(
            b"Name: ../../x\x1b\nVersion: 1\n",
            "x.whl",
            "x-1.dist-info/METADATA",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "wheel `x.whl`: `x-1.dist-info/METADATA` has an invalid `Name`: `../../x\\u{1b}` is not a valid package name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit; the wheel is broken, rebuild it"
        );
    }
}
