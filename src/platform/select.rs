//! Choosing one wheel per locked package for a target, offline, from the lock only
//! (PEP 751: "what file to install should be determined in an offline fashion").
//!
//! A wheel's priority is the best (lowest) index, over its expanded tags, in the
//! target's [`TagSet`]; the wheel with the best priority wins, ties going to the higher
//! build tag and then to the smaller file name, so the choice never depends on lock
//! order (standards §4.4). Sources that need a build reach this module only when the
//! `source` stage did not build them (`--no-build`): sdists, VCS checkouts, source
//! trees and non-wheel archives need a build backend and the target interpreter, so
//! they are reported, never skipped. Every problem of every package is collected
//! before failing, so one run shows everything to fix.

use std::fmt;
use std::str::FromStr;

use crate::lock::{Artifact, LockedPackage, PackageName, PackageSource};
use crate::wheel::filename::{WheelFilename, WheelFilenameError};

use super::{TagSet, Target};

/// How many of the target's most preferred tags a "no compatible wheel" message shows.
const PREFERRED_TAGS_SHOWN: usize = 4;
/// How many offered wheel filenames a "no compatible wheel" message lists.
const OFFERED_WHEELS_SHOWN: usize = 12;

/// The wheel chosen for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenWheel {
    /// The package's normalized name.
    pub name: PackageName,
    /// The package's version as locked (the wheel's, if the lock has none).
    pub version: String,
    /// The chosen artifact; its `sha256` is always present.
    pub artifact: Artifact,
    /// The artifact's parsed file name.
    pub filename: WheelFilename,
}

/// A locked source that is not a wheel, which envbuild cannot install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonWheelSource {
    /// Only an sdist (`packages.sdist`).
    Sdist {
        /// The sdist's file name.
        filename: String,
    },
    /// A direct archive that is not a wheel (`packages.archive`).
    Archive {
        /// The archive's file name.
        filename: String,
    },
    /// A version-control checkout (`packages.vcs`).
    Vcs {
        /// Repository URL or path.
        url: String,
    },
    /// A local source tree (`packages.directory`).
    Directory {
        /// The folder.
        path: String,
    },
}

impl NonWheelSource {
    /// What to do instead.
    fn hint(&self) -> &'static str {
        match self {
            Self::Sdist { .. } | Self::Archive { .. } => {
                "re-lock with binary-only resolution (e.g. `--only-binary :all:`), or build a wheel for the target and lock that instead"
            }
            Self::Vcs { .. } | Self::Directory { .. } => {
                "build a wheel from it for the target and lock that wheel (a `packages.archive` whose path ends in `.whl`), or leave it out of the lock (e.g. `--no-emit-project`)"
            }
        }
    }
}

impl fmt::Display for NonWheelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sdist { filename } => write!(f, "only an sdist (`{filename}`)"),
            Self::Archive { filename } => {
                write!(f, "a `packages.archive` that is not a wheel (`{filename}`)")
            }
            Self::Vcs { url } => write!(f, "a version-control checkout (`{url}`)"),
            Self::Directory { path } => write!(f, "a local source tree (`{path}`)"),
        }
    }
}

/// For offered wheels tagged plain `linux_<arch>` (built on one machine, no manylinux
/// promise), the flag that accepts them.
fn linux_tag_hint(offered: &[String]) -> &'static str {
    let plain_linux = offered.iter().any(|filename| {
        filename
            .strip_suffix(".whl")
            .and_then(|stem| stem.rsplit('-').next())
            .is_some_and(|platforms| platforms.split('.').any(|tag| tag.starts_with("linux_")))
    });
    if plain_linux {
        "; a `linux_<arch>` wheel is accepted only with `--allow-linux-tag` (it promises no glibc compatibility: use it for wheels built for this base)"
    } else {
        ""
    }
}

/// Why no wheel could be chosen for one package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectProblem {
    /// The lock offers wheels, but none has a tag the target supports.
    #[error(
        "{}: no wheel in the lockfile is compatible with the target; the lockfile offers {}{}; the target's most preferred tags are {}, …; lock a wheel built for this target, or choose a target the offered wheels support (`--python`, `--platform`, `--glibc`/`--musl`){}",
        package_label(name, version.as_deref()),
        list_offered(offered),
        if *has_sdist { " (and an sdist, not built: source builds are off for it, `--no-build` or `--no-build-package`)" } else { "" },
        backticked(preferred),
        linux_tag_hint(offered)
    )]
    NoCompatibleWheel {
        /// The package.
        name: PackageName,
        /// Its locked version.
        version: Option<String>,
        /// The wheel file names the lock offers.
        offered: Vec<String>,
        /// Whether the lock also offers an sdist.
        has_sdist: bool,
        /// The first few tags the target supports, most preferred first.
        preferred: Vec<String>,
    },
    /// Only sources that need a build are locked.
    #[error(
        "{}: the lockfile has {source_kind}, which needs a source build, and source builds are off for it (`--no-build` or `--no-build-package`; of version-control systems only git is built); drop that flag to build it, or {}",
        package_label(name, version.as_deref()),
        source_kind.hint()
    )]
    NeedsBuild {
        /// The package.
        name: PackageName,
        /// Its locked version.
        version: Option<String>,
        /// What is locked instead of a wheel.
        source_kind: NonWheelSource,
    },
    /// A wheel file name in the lock does not parse.
    #[error("{}: {error}; fix the wheel `name` in the lockfile", package_label(name, version.as_deref()))]
    InvalidWheelFilename {
        /// The package.
        name: PackageName,
        /// Its locked version.
        version: Option<String>,
        /// The parse error (quotes the file name).
        error: WheelFilenameError,
    },
    /// A wheel's file name is for another package or version.
    #[error(
        "{}: wheel `{filename}` is for `{wheel_name}` {wheel_version}, not for this package; fix the lockfile entry",
        package_label(name, version.as_deref())
    )]
    MismatchedWheel {
        /// The package.
        name: PackageName,
        /// Its locked version.
        version: Option<String>,
        /// The wheel file name.
        filename: String,
        /// The name in the file name (normalized).
        wheel_name: PackageName,
        /// The version in the file name.
        wheel_version: String,
    },
    /// The chosen wheel has no sha256 in the lock.
    #[error(
        "{}: the chosen wheel `{filename}` has no sha256 hash in the lockfile, and envbuild requires one for every artifact it installs; re-lock so the lockfile records sha256 hashes",
        package_label(name, version.as_deref())
    )]
    MissingHash {
        /// The package.
        name: PackageName,
        /// Its locked version.
        version: Option<String>,
        /// The chosen wheel's file name.
        filename: String,
    },
}

fn package_label(name: &PackageName, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("`{name}` {version}"),
        None => format!("`{name}`"),
    }
}

fn backticked(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_offered(offered: &[String]) -> String {
    if offered.is_empty() {
        return "no wheel".to_string();
    }
    let shown = backticked(&offered[..offered.len().min(OFFERED_WHEELS_SHOWN)]);
    match offered.len().saturating_sub(OFFERED_WHEELS_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// Wheels could not be chosen for one or more packages. Lists every problem, in
/// package order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SelectError {
    /// The target wheels were chosen for (boxed to keep the error small).
    pub target: Box<Target>,
    /// One entry per package that failed (at least one).
    pub problems: Vec<SelectProblem>,
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let noun = if count == 1 { "package" } else { "packages" };
        write!(
            f,
            "cannot choose wheels for {}: {count} {noun} cannot be installed",
            self.target
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Choose the best wheel of each package for `target`, in input order (the lock model
/// gives packages sorted by name). Fails with every package's problem at once.
pub fn choose_wheels(
    packages: &[LockedPackage],
    target: &Target,
) -> Result<Vec<ChosenWheel>, SelectError> {
    let tags = target.tags();
    let mut chosen = Vec::with_capacity(packages.len());
    let mut problems = Vec::new();
    for package in packages {
        match choose_one(package, &tags) {
            Ok(wheel) => chosen.push(wheel),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(chosen)
    } else {
        Err(SelectError {
            target: Box::new(target.clone()),
            problems,
        })
    }
}

/// Whether two versions are equal under PEP 440 (`1.0` == `1.0.0`); falls back to
/// string equality when either does not parse.
fn same_version(left: &str, right: &str) -> bool {
    match (
        uv_pep440::Version::from_str(left),
        uv_pep440::Version::from_str(right),
    ) {
        (Ok(left), Ok(right)) => left == right,
        _ => left == right,
    }
}

fn choose_one(package: &LockedPackage, tags: &TagSet) -> Result<ChosenWheel, SelectProblem> {
    let name = &package.name;
    let version = &package.version;
    let needs_build = |source_kind| SelectProblem::NeedsBuild {
        name: name.clone(),
        version: version.clone(),
        source_kind,
    };
    let (candidates, sdist): (&[Artifact], Option<&Artifact>) = match &package.source {
        PackageSource::Distributions { wheels, sdist } => (wheels, sdist.as_ref()),
        PackageSource::Archive(archive) if archive.filename.ends_with(".whl") => {
            (std::slice::from_ref(archive), None)
        }
        PackageSource::Archive(archive) => {
            return Err(needs_build(NonWheelSource::Archive {
                filename: archive.filename.clone(),
            }));
        }
        PackageSource::Vcs(vcs) => {
            return Err(needs_build(NonWheelSource::Vcs {
                url: crate::http::redact_text(&vcs.url),
            }));
        }
        PackageSource::Directory(tree) => {
            return Err(needs_build(NonWheelSource::Directory {
                path: tree.path.display().to_string(),
            }));
        }
        // Files known only by hash are turned into wheels by the index lookup before
        // selection; one that reaches here offers no wheel.
        PackageSource::IndexLookup { .. } => (&[], None),
    };
    if let (true, Some(sdist)) = (candidates.is_empty(), sdist) {
        return Err(needs_build(NonWheelSource::Sdist {
            filename: sdist.filename.clone(),
        }));
    }

    let mut parsed = Vec::with_capacity(candidates.len());
    for artifact in candidates {
        let filename = WheelFilename::from_str(&artifact.filename).map_err(|error| {
            SelectProblem::InvalidWheelFilename {
                name: name.clone(),
                version: version.clone(),
                error,
            }
        })?;
        let version_differs = version
            .as_deref()
            .is_some_and(|locked| !same_version(locked, &filename.version));
        if &filename.name != name || version_differs {
            return Err(SelectProblem::MismatchedWheel {
                name: name.clone(),
                version: version.clone(),
                filename: artifact.filename.clone(),
                wheel_name: filename.name.clone(),
                wheel_version: filename.version.clone(),
            });
        }
        parsed.push(filename);
    }

    // Smallest (priority, reversed build tag, file name) wins: best tag, then the
    // higher build, then the file name so lock order never matters.
    let best = parsed
        .iter()
        .zip(candidates)
        .enumerate()
        .filter_map(|(position, (filename, artifact))| {
            let priority = filename
                .tags()
                .filter_map(|(python, abi, platform)| tags.priority(python, abi, platform))
                .min()?;
            Some((
                priority,
                std::cmp::Reverse(filename.build_tag_key()),
                artifact.filename.as_str(),
                position,
            ))
        })
        .min();
    let Some((.., position)) = best else {
        return Err(SelectProblem::NoCompatibleWheel {
            name: name.clone(),
            version: version.clone(),
            offered: candidates
                .iter()
                .map(|artifact| artifact.filename.clone())
                .collect(),
            has_sdist: sdist.is_some(),
            preferred: tags
                .iter()
                .take(PREFERRED_TAGS_SHOWN)
                .map(|(python, abi, platform)| format!("{python}-{abi}-{platform}"))
                .collect(),
        });
    };
    let artifact = &candidates[position];
    if artifact.sha256.is_none() {
        return Err(SelectProblem::MissingHash {
            name: name.clone(),
            version: version.clone(),
            filename: artifact.filename.clone(),
        });
    }
    let filename = parsed.swap_remove(position);
    Ok(ChosenWheel {
        name: name.clone(),
        version: version.clone().unwrap_or_else(|| filename.version.clone()),
        artifact: artifact.clone(),
        filename,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256Digest;
    use crate::lock::ArtifactLocation;
    use crate::platform::tests::target;

    fn artifact(filename: &str) -> Artifact {
        Artifact {
            filename: filename.to_string(),
            location: ArtifactLocation::Path(format!("/wheels/{filename}").into()),
            size: Some(1),
            sha256: Some(Sha256Digest::of(filename.as_bytes())),
        }
    }

    fn package(name: &str, version: &str, wheels: &[&str], sdist: Option<&str>) -> LockedPackage {
        LockedPackage {
            name: name.parse::<PackageName>().unwrap(),
            version: Some(version.to_string()),
            index: None,
            source: PackageSource::Distributions {
                wheels: wheels.iter().map(|wheel| artifact(wheel)).collect(),
                sdist: sdist.map(artifact),
            },
        }
    }

    fn chosen_filenames(packages: &[LockedPackage]) -> Vec<String> {
        choose_wheels(packages, &target("3.11", "linux/amd64", "glibc 2.36"))
            .unwrap()
            .into_iter()
            .map(|wheel| wheel.artifact.filename)
            .collect()
    }

    #[test]
    fn ok_best_priority_wins_regardless_of_order() {
        let wheels = [
            "numpy-2.2.3-cp311-cp311-musllinux_1_2_x86_64.whl",
            "numpy-2.2.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "numpy-2.2.3-cp311-cp311-manylinux_2_28_x86_64.whl",
            "numpy-2.2.3-cp312-cp312-manylinux_2_28_x86_64.whl",
            "numpy-2.2.3-cp311-cp311-manylinux_2_28_aarch64.whl",
            "numpy-2.2.3-cp311-cp311-manylinux_2_40_x86_64.whl",
        ];
        let expected = "numpy-2.2.3-cp311-cp311-manylinux_2_28_x86_64.whl";
        assert_eq!(
            chosen_filenames(&[package(
                "numpy",
                "2.2.3",
                &wheels,
                Some("numpy-2.2.3.tar.gz")
            )]),
            [expected]
        );
        let mut reversed = wheels;
        reversed.reverse();
        assert_eq!(
            chosen_filenames(&[package("numpy", "2.2.3", &reversed, None)]),
            [expected]
        );
    }

    #[test]
    fn ok_platform_wheel_beats_abi3_beats_pure() {
        let wheels = [
            "foo-1.0-py3-none-any.whl",
            "foo-1.0-cp38-abi3-manylinux_2_17_x86_64.whl",
            "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        ];
        assert_eq!(
            chosen_filenames(&[package("foo", "1.0", &wheels, None)]),
            [wheels[2]]
        );
        assert_eq!(
            chosen_filenames(&[package("foo", "1.0", &wheels[..2], None)]),
            [wheels[1]]
        );
    }

    #[test]
    fn ok_ties_by_higher_build_tag_then_filename() {
        let wheels = [
            "foo-1.0-2-py3-none-any.whl",
            "foo-1.0-10-py3-none-any.whl",
            "foo-1.0-py3-none-any.whl",
        ];
        assert_eq!(
            chosen_filenames(&[package("foo", "1.0", &wheels, None)]),
            [wheels[1]]
        );
        // Same tag and build: the smaller filename wins, whatever the order.
        let wheels = ["foo-1.0-py3-none-any.whl", "foo-1.0-py2.py3-none-any.whl"];
        assert_eq!(
            chosen_filenames(&[package("foo", "1.0", &wheels, None)]),
            [wheels[1]]
        );
    }

    #[test]
    fn ok_archive_wheel_and_input_order() {
        let archive = LockedPackage {
            name: "bar".parse::<PackageName>().unwrap(),
            version: None,
            index: None,
            source: PackageSource::Archive(artifact("bar-2.0-py3-none-any.whl")),
        };
        let packages = [
            archive,
            package("foo", "1.0", &["foo-1.0-py3-none-any.whl"], None),
        ];
        let chosen =
            choose_wheels(&packages, &target("3.11", "linux/amd64", "glibc 2.36")).unwrap();
        assert_eq!(chosen[0].name.as_str(), "bar");
        assert_eq!(chosen[0].version, "2.0");
        assert_eq!(chosen[0].filename.to_string(), "bar-2.0-py3-none-any.whl");
        assert_eq!(chosen[1].name.as_str(), "foo");
    }

    #[test]
    fn ok_legacy_name_and_equal_version() {
        let wheels = ["MarkupSafe-2.1.3.0-cp311-cp311-manylinux_2_17_x86_64.whl"];
        assert_eq!(
            chosen_filenames(&[package("markupsafe", "2.1.3", &wheels, None)]),
            wheels
        );
    }

    #[test]
    fn err_plain_linux_wheel_mentions_allow_linux_tag() {
        let packages = [package(
            "local",
            "1.0",
            &["local-1.0-cp311-cp311-linux_x86_64.whl"],
            None,
        )];
        let message = choose_wheels(&packages, &target("3.11", "linux/amd64", "glibc 2.36"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("`--allow-linux-tag`"), "{message}");
        let packages = [package(
            "win",
            "1.0",
            &["win-1.0-cp311-cp311-win_amd64.whl"],
            None,
        )];
        let message = choose_wheels(&packages, &target("3.11", "linux/amd64", "glibc 2.36"))
            .unwrap_err()
            .to_string();
        assert!(!message.contains("--allow-linux-tag"), "{message}");
    }

    #[test]
    fn err_collects_every_problem() {
        let mut no_hash = package("nohash", "1.0", &["nohash-1.0-py3-none-any.whl"], None);
        if let PackageSource::Distributions { wheels, .. } = &mut no_hash.source {
            wheels[0].sha256 = None;
        }
        let packages = [
            package(
                "numpy",
                "2.2.3",
                &["numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.whl"],
                Some("numpy-2.2.3.tar.gz"),
            ),
            package("ok", "1.0", &["ok-1.0-py3-none-any.whl"], None),
            package("sdistonly", "0.1", &[], Some("sdistonly-0.1.tar.gz")),
            LockedPackage {
                name: "vcs".parse::<PackageName>().unwrap(),
                version: None,
                index: None,
                source: PackageSource::Vcs(crate::lock::VcsSource::git(
                    "https://git.example/vcs.git",
                    "0123456789abcdef0123456789abcdef01234567",
                    None,
                )),
            },
            LockedPackage {
                name: "tree".parse::<PackageName>().unwrap(),
                version: None,
                index: None,
                source: PackageSource::Directory(crate::lock::DirectorySource {
                    path: "/work/tree".into(),
                    editable: false,
                }),
            },
            LockedPackage {
                name: "zipped".parse::<PackageName>().unwrap(),
                version: Some("3.0".into()),
                index: None,
                source: PackageSource::Archive(artifact("zipped-3.0.zip")),
            },
            no_hash,
            package("other", "1.0", &["wrong-1.0-py3-none-any.whl"], None),
            package("bad", "1.0", &["bad-1.0-py3-none.whl"], None),
        ];
        let error =
            choose_wheels(&packages, &target("3.11", "linux/amd64", "glibc 2.36")).unwrap_err();
        let names: Vec<&str> = error
            .problems
            .iter()
            .map(|problem| match problem {
                SelectProblem::NoCompatibleWheel { name, .. }
                | SelectProblem::NeedsBuild { name, .. }
                | SelectProblem::InvalidWheelFilename { name, .. }
                | SelectProblem::MismatchedWheel { name, .. }
                | SelectProblem::MissingHash { name, .. } => name.as_str(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "numpy",
                "sdistonly",
                "vcs",
                "tree",
                "zipped",
                "nohash",
                "other",
                "bad"
            ]
        );
        assert!(matches!(
            error.problems[0],
            SelectProblem::NoCompatibleWheel {
                has_sdist: true,
                ..
            }
        ));
        assert!(matches!(
            error.problems[1],
            SelectProblem::NeedsBuild {
                source_kind: NonWheelSource::Sdist { .. },
                ..
            }
        ));
        assert!(matches!(
            error.problems[4],
            SelectProblem::NeedsBuild {
                source_kind: NonWheelSource::Archive { .. },
                ..
            }
        ));
        assert!(matches!(
            error.problems[5],
            SelectProblem::MissingHash { .. }
        ));
        assert!(matches!(
            error.problems[6],
            SelectProblem::MismatchedWheel { .. }
        ));
        assert!(matches!(
            error.problems[7],
            SelectProblem::InvalidWheelFilename { .. }
        ));

        let message = error.to_string();
        assert!(message.starts_with("cannot choose wheels for CPython 3.11 on linux/amd64 with glibc 2.36: 8 packages cannot be installed\n  - `numpy` 2.2.3: no wheel"), "{message}");
        assert!(
            message.contains("`numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.whl`"),
            "{message}"
        );
        assert!(
            message.contains(
                "`cp311-cp311-manylinux_2_36_x86_64`, `cp311-cp311-manylinux_2_35_x86_64`"
            ),
            "{message}"
        );
        assert!(
            message.contains("and an sdist, not built: source builds are off"),
            "{message}"
        );
        assert!(message.contains("`sdistonly` 0.1: the lockfile has only an sdist (`sdistonly-0.1.tar.gz`), which needs a source build, and source builds are off"), "{message}");
        assert!(
            message.contains(
                "`nohash` 1.0: the chosen wheel `nohash-1.0-py3-none-any.whl` has no sha256 hash"
            ),
            "{message}"
        );
        assert_eq!(message.lines().count(), 9);
    }

    #[test]
    fn err_no_compatible_wheel_lists_offered_with_limit() {
        let wheels: Vec<String> = (0..15)
            .map(|minor| format!("foo-1.0-cp3{minor}-cp3{minor}-win_amd64.whl"))
            .collect();
        let wheels: Vec<&str> = wheels.iter().map(String::as_str).collect();
        let error = choose_wheels(
            &[package("foo", "1.0", &wheels, None)],
            &target("3.11", "linux/amd64", "musl 1.2"),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("and 3 more"), "{message}");
        assert!(
            message.contains("`cp311-cp311-musllinux_1_2_x86_64`"),
            "{message}"
        );
        assert!(message.contains("with musl 1.2"), "{message}");
    }

    #[test]
    fn err_linux_tag_needs_opt_in() {
        let packages = [package(
            "foo",
            "1.0",
            &["foo-1.0-cp311-cp311-linux_x86_64.whl"],
            None,
        )];
        let mut target = target("3.11", "linux/amd64", "glibc 2.36");
        assert!(choose_wheels(&packages, &target).is_err());
        target.allow_linux_tag = true;
        assert_eq!(choose_wheels(&packages, &target).unwrap().len(), 1);
    }
}
