//! Source builds: locked sdists (and non-wheel archives), git checkouts at their locked
//! commit and local source trees (workspace members, the project itself) are built into
//! wheels with the project's PEP 517 backend, then installed like any locked wheel.
//!
//! Each build runs in a fresh venv made by a host CPython of the target's minor version
//! (`--build-python`, or `python3.<minor>` on `PATH`), with the backend's
//! `build-system.requires` (and what `get_requires_for_build_wheel` adds) installed by
//! pip from the configured indexes only (`--isolated`: no host pip configuration, no
//! implicit public index), pinned by `--build-constraints`. The backend runs with a
//! clean environment (no host `PIP_*`/`PYTHON*`), `SOURCE_DATE_EPOCH` set to the build's
//! timestamp, in its own process group, under a time limit; its output is shown when it
//! fails. The sdist is verified against its locked hash before anything reads it; a git
//! checkout must resolve to the locked commit; a folder is copied as it is (without
//! virtual environments and caches) so the build never writes into the project.
//!
//! A pure wheel (`none-any`) serves every target. A wheel with compiled code is refused:
//! it can only be built on the target (a build inside a container of a build image is not
//! done yet). Built wheels are cached under a key of the source (its hash, commit or
//! content), the build Python's version, the constraints and the timestamp, so a second
//! build, and `--offline`, reuse them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheError, EntryKind};
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, FetchOptions, FetchProgress, FetchRequest};
use crate::http::redact_text;
use crate::index::IndexConfig;
use crate::lock::{Artifact, ArtifactLocation, LockedPackage, PackageName, PackageSource};
use crate::platform::Target;
use crate::untrusted::Untrusted;
use crate::wheel::filename::WheelFilename;

/// The PEP 517 front end the build venv runs.
const HOOK: &str = include_str!("hook.py");
/// The backend PEP 517 prescribes when `pyproject.toml` names none.
const DEFAULT_BACKEND: &str = "setuptools.build_meta:__legacy__";
/// How many lines of a failed build's output an error shows.
const LOG_LINES_SHOWN: usize = 40;
/// Folders never copied from a local source tree.
const SKIPPED_FOLDERS: [&str; 7] = [
    ".venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".tox",
    ".nox",
    "node_modules",
];
/// 1980-01-02T00:00:00Z: the earliest `SOURCE_DATE_EPOCH` a build gets, as zip files
/// (wheels) cannot record earlier times (a day after 1980-01-01, whatever the time zone).
const ZIP_EPOCH: u64 = 315_619_200;
/// The time limit of making the venv and installing build requirements (the backend's
/// own calls have `--build-timeout`), at least.
const SETUP_LIMIT: Duration = Duration::from_secs(600);
/// Bumped when anything that changes built wheels changes here.
const BUILD_FORMAT: &str = "envbuild-source-build 1";

/// How source builds run (`--no-build`, `--no-build-package`, `--build-python`,
/// `--build-constraints`, `--build-timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Refuse every source build (wheels only).
    pub no_build: bool,
    /// Packages never built from source.
    pub no_build_packages: Vec<PackageName>,
    /// The host Python that makes build venvs; `None`: `python3.<target minor>`.
    pub build_python: Option<PathBuf>,
    /// A pip constraints file for build requirements.
    pub build_constraints: Option<PathBuf>,
    /// The time limit of each backend call.
    pub timeout: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            no_build: false,
            no_build_packages: Vec::new(),
            build_python: None,
            build_constraints: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// What one source build used and made, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltPackage {
    /// The package.
    pub name: String,
    /// Its locked version, if the lock has one.
    pub version: Option<String>,
    /// Where the source came from (credentials removed).
    pub source: String,
    /// The sdist's sha256, the git commit, or the sha256 of the folder's contents.
    pub source_hash: String,
    /// The built wheel's file name.
    pub wheel: String,
    /// The built wheel's sha256.
    pub sha256: Sha256Digest,
    /// The PEP 517 backend.
    pub backend: String,
    /// Every build requirement installed, as `name==version`.
    pub requirements: Vec<String>,
    /// Whether the wheel came from the cache of an earlier build.
    #[serde(default)]
    pub cached: bool,
}

/// Why a source build failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No host Python of the target's minor version.
    #[error(
        "package `{package}` needs a build from source, which needs a host CPython {python} to make the build environment, and `python{python}` is not on PATH; install it or pass `--build-python PATH`, or refuse source builds with `--no-build`"
    )]
    NoBuildPython {
        /// The package.
        package: PackageName,
        /// The target's `major.minor`.
        python: String,
    },
    /// The build Python does not run or has the wrong version.
    #[error(
        "build Python `{python}`: {reason}; pass `--build-python` with a CPython of the target's version ({expected})"
    )]
    BuildPython {
        /// The interpreter.
        python: String,
        /// What is wrong.
        reason: String,
        /// The target's `major.minor`.
        expected: String,
    },
    /// Build requirements are needed but no index is configured.
    #[error(
        "package `{package}` is built from source and its build backend needs {requirements}, but no package index is configured to install them from; pass `--index-url URL` (or `--find-links`), or set it in envbuild.toml"
    )]
    NoIndex {
        /// The package.
        package: PackageName,
        /// The build requirements.
        requirements: String,
    },
    /// Build requirements would need the network under `--offline`.
    #[error(
        "package `{package}` must be built from source (no earlier build is cached) and its build requirements need the package index, but `--offline` is set; run once without `--offline` to fill the cache"
    )]
    Offline {
        /// The package.
        package: PackageName,
    },
    /// The source could not be prepared.
    #[error("package `{package}`: cannot read its source {source_name}: {reason}")]
    Prepare {
        /// The package.
        package: PackageName,
        /// The sdist, repository or folder.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// A git checkout failed or does not match the locked commit.
    #[error(
        "package `{package}`: cannot check out git repository `{url}` at the locked commit `{commit}`: {reason}; check the lockfile's commit and that the repository is reachable, then lock again"
    )]
    Git {
        /// The package.
        package: PackageName,
        /// The repository (credentials removed).
        url: String,
        /// The locked commit.
        commit: String,
        /// Why.
        reason: String,
    },
    /// A step of the build failed.
    #[error(
        "package `{package}`: the source build failed while {step} ({status}); its output ends with:\n{log}\nfix the build, pin working build requirements with `--build-constraints FILE`, or lock a wheel for it"
    )]
    Failed {
        /// The package.
        package: PackageName,
        /// What was running.
        step: String,
        /// The exit status.
        status: String,
        /// The last lines of the output.
        log: String,
    },
    /// A step of the build ran past the time limit.
    #[error(
        "package `{package}`: the source build was stopped after {seconds} s while {step} (the time limit); its output ends with:\n{log}\nraise the limit with `--build-timeout SECONDS` if the build is just slow"
    )]
    TimedOut {
        /// The package.
        package: PackageName,
        /// What was running.
        step: String,
        /// The limit.
        seconds: u64,
        /// The last lines of the output.
        log: String,
    },
    /// The backend made something else than the locked package's wheel.
    #[error(
        "package `{package}`: the build backend made {made}, but {expected}; the source does not match the lock: lock again"
    )]
    WrongWheel {
        /// The package.
        package: PackageName,
        /// What was made.
        made: String,
        /// What was expected.
        expected: String,
    },
    /// The backend made a wheel with compiled code.
    #[error(
        "package `{package}`: the source build made `{wheel}`, a wheel with compiled code, which only serves the platform it was built on; build a wheel for the target ({target}) and lock it (with its hash), or refuse the build with `--no-build-package {package}` to see what else is missing"
    )]
    PlatformWheel {
        /// The package.
        package: PackageName,
        /// The wheel's file name.
        wheel: String,
        /// The target platform.
        target: String,
    },
    /// A file operation failed.
    #[error("source build: cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Downloading an sdist failed (including a hash mismatch).
    #[error(transparent)]
    Fetch(Box<FetchError>),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SourceError {
    let path = path.display().to_string();
    move |source| SourceError::Io {
        action,
        path,
        source,
    }
}

/// What a package is built from.
enum Tree {
    Sdist(Artifact),
    Git(crate::lock::VcsSource),
    Directory(PathBuf),
}

/// The source a package needs built for `target`, or `None` when a locked wheel serves
/// it (or no build is possible, which wheel selection then reports).
fn needs_build(package: &LockedPackage, target: &Target) -> Option<Tree> {
    match &package.source {
        // No wheel, or none that serves the target: the sdist.
        PackageSource::Distributions {
            wheels,
            sdist: Some(sdist),
        } if wheels.is_empty()
            || crate::platform::select::choose_wheels(std::slice::from_ref(package), target)
                .is_err() =>
        {
            Some(Tree::Sdist(sdist.clone()))
        }
        PackageSource::Archive(archive) if !archive.filename.ends_with(".whl") => {
            Some(Tree::Sdist(archive.clone()))
        }
        PackageSource::Vcs(vcs) if vcs.kind == "git" => Some(Tree::Git(vcs.clone())),
        PackageSource::Directory(tree) => Some(Tree::Directory(tree.path.clone())),
        _ => None,
    }
}

/// The cached outcome of one build.
#[derive(Serialize, Deserialize)]
struct BuildRecord {
    built: BuiltPackage,
    size: u64,
}

/// Build every package of `packages` that has no wheel but a buildable source, and
/// return the packages with those sources replaced by the built wheels (cached, with
/// their hashes), and what was built.
#[allow(clippy::too_many_arguments)]
pub async fn build_sources(
    packages: Vec<LockedPackage>,
    target: &Target,
    options: &SourceOptions,
    index: &IndexConfig,
    fetch: &FetchOptions,
    cache: &Cache,
    epoch: u64,
    progress: Arc<dyn FetchProgress>,
) -> Result<(Vec<LockedPackage>, Vec<BuiltPackage>), SourceError> {
    if options.no_build {
        return Ok((packages, Vec::new()));
    }
    let wanted: Vec<(usize, Tree)> = packages
        .iter()
        .enumerate()
        .filter(|(_, package)| !options.no_build_packages.contains(&package.name))
        .filter_map(|(position, package)| Some((position, needs_build(package, target)?)))
        .collect();
    if wanted.is_empty() {
        return Ok((packages, Vec::new()));
    }

    // Every sdist is downloaded and verified against its locked hash first.
    let requests: Vec<FetchRequest> = wanted
        .iter()
        .filter_map(|(position, tree)| match tree {
            Tree::Sdist(artifact) => Some(FetchRequest {
                package: packages[*position].name.clone(),
                version: packages[*position].version.clone().unwrap_or_default(),
                artifact: artifact.clone(),
            }),
            _ => None,
        })
        .collect();
    let sdist_paths = crate::fetch::fetch_all(&requests, cache, fetch, progress)
        .await
        .map_err(|error| SourceError::Fetch(Box::new(error)))?;
    let mut sdist_paths = sdist_paths.into_iter();

    let python = target.python.to_string();
    let python_minor = format!("{}.{}", target.python.major, target.python.minor);
    let mut built = Vec::new();
    let mut packages = packages;
    let mut interpreter: Option<(PathBuf, String)> = None;
    for (position, tree) in wanted {
        let package = packages[position].clone();
        let sdist = match tree {
            Tree::Sdist(_) => sdist_paths.next(),
            _ => None,
        };
        let (build_python, build_version) = match &interpreter {
            Some(found) => found.clone(),
            None => {
                let found = find_python(options, &package.name, &python_minor)?;
                interpreter = Some(found.clone());
                found
            }
        };
        let job = BuildJob {
            package: package.clone(),
            tree,
            sdist,
            python: build_python,
            python_version: build_version,
            options: options.clone(),
            index: index.clone(),
            offline: fetch.offline,
            cache: cache.clone(),
            // Zip files cannot hold times before 1980: backends fail on earlier ones.
            epoch: epoch.max(ZIP_EPOCH),
            target: python.clone(),
        };
        let (artifact, record) = tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|error| SourceError::Prepare {
                package: package.name.clone(),
                source_name: "(build task)".to_string(),
                reason: error.to_string(),
            })??;
        packages[position].source = PackageSource::Archive(artifact);
        built.push(record);
    }
    Ok((packages, built))
}

/// The build Python and its full version.
fn find_python(
    options: &SourceOptions,
    package: &PackageName,
    minor: &str,
) -> Result<(PathBuf, String), SourceError> {
    let python = match &options.build_python {
        Some(python) => python.clone(),
        None => {
            find_on_path(&format!("python{minor}")).ok_or_else(|| SourceError::NoBuildPython {
                package: package.clone(),
                python: minor.to_string(),
            })?
        }
    };
    let shown = python.display().to_string();
    let output = Command::new(&python)
        .args([
            "-I",
            "-c",
            "import sys; print('%d.%d.%d %s' % (sys.version_info[:3] + (sys.implementation.name,)))",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|error| SourceError::BuildPython {
            python: shown.clone(),
            reason: format!("it does not run ({error})"),
            expected: minor.to_string(),
        })?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let (version, implementation) = text.split_once(' ').unwrap_or((&text, ""));
    if !output.status.success() || implementation != "cpython" {
        return Err(SourceError::BuildPython {
            python: shown,
            reason: format!("it is not a working CPython (it printed `{text}`)"),
            expected: minor.to_string(),
        });
    }
    if !version.starts_with(&format!("{minor}.")) {
        return Err(SourceError::BuildPython {
            python: shown,
            reason: format!("it is CPython {version}, not {minor}"),
            expected: minor.to_string(),
        });
    }
    Ok((python, version.to_string()))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(program))
        .find(|candidate| candidate.is_file())
}

/// One package's build, run on a blocking thread.
struct BuildJob {
    package: LockedPackage,
    tree: Tree,
    sdist: Option<PathBuf>,
    python: PathBuf,
    python_version: String,
    options: SourceOptions,
    index: IndexConfig,
    offline: bool,
    cache: Cache,
    epoch: u64,
    target: String,
}

/// `[build-system]` of a project.
struct BuildSystem {
    requires: Vec<String>,
    backend: String,
    backend_path: Vec<String>,
}

impl BuildJob {
    fn name(&self) -> &PackageName {
        &self.package.name
    }

    fn source_description(&self) -> String {
        match &self.tree {
            Tree::Sdist(artifact) => artifact.location.to_string(),
            Tree::Git(vcs) => format!("git+{}@{}", redact_text(&vcs.url), vcs.commit_id),
            Tree::Directory(path) => path.display().to_string(),
        }
    }

    fn run(self) -> Result<(Artifact, BuiltPackage), SourceError> {
        let work = tempfile::Builder::new()
            .prefix("envbuild-source-")
            .tempdir()
            .map_err(io_error(
                "create a temporary folder in",
                &std::env::temp_dir(),
            ))?;
        let (folder, source_hash) = self.prepare(work.path())?;
        let constraints = match &self.options.build_constraints {
            Some(path) => Some(fs_err::read(path).map_err(|error| SourceError::Prepare {
                package: self.name().clone(),
                source_name: format!("(build constraints `{}`)", path.display()),
                reason: error.to_string(),
            })?),
            None => None,
        };
        let key = {
            let mut hasher = Sha256::new();
            for part in [
                BUILD_FORMAT,
                &source_hash,
                &self.python_version,
                &self.epoch.to_string(),
            ] {
                hasher.update(part.as_bytes());
                hasher.update([0]);
            }
            if let Some(constraints) = &constraints {
                hasher.update(Sha256::digest(constraints));
            }
            Sha256Digest::from_bytes(hasher.finalize().into())
        };
        if let Some(record) = self.cache.record::<BuildRecord>("source-builds", &key)
            && let Some(path) =
                self.cache
                    .lookup(EntryKind::Wheel, &record.built.sha256, Some(record.size))
        {
            let mut built = record.built;
            built.cached = true;
            return Ok((self.artifact(&built, path, record.size), built));
        }
        if self.offline {
            return Err(SourceError::Offline {
                package: self.name().clone(),
            });
        }
        let system = self.build_system(&folder)?;
        let (wheel_path, requirements) =
            self.build(work.path(), &folder, &system, constraints.is_some())?;
        let wheel_name = wheel_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.check_wheel(&wheel_name)?;
        let mut file = fs_err::File::open(&wheel_path).map_err(io_error("read", &wheel_path))?;
        let (sha256, size) = self
            .cache
            .insert_from_reader(EntryKind::Wheel, &mut file, None)?;
        let built = BuiltPackage {
            name: self.name().to_string(),
            version: self.package.version.clone(),
            source: self.source_description(),
            source_hash,
            wheel: wheel_name,
            sha256,
            backend: system.backend.clone(),
            requirements,
            cached: false,
        };
        self.cache.put_record(
            "source-builds",
            &key,
            &BuildRecord {
                built: built.clone(),
                size,
            },
        )?;
        let path = self.cache.entry_path(EntryKind::Wheel, &sha256);
        Ok((self.artifact(&built, path, size), built))
    }

    fn artifact(&self, built: &BuiltPackage, path: PathBuf, size: u64) -> Artifact {
        Artifact {
            filename: built.wheel.clone(),
            location: ArtifactLocation::Path(path),
            size: Some(size),
            sha256: Some(built.sha256),
        }
    }

    /// The source tree in `work`, and the hash that identifies it.
    fn prepare(&self, work: &Path) -> Result<(PathBuf, String), SourceError> {
        let prepare_error = |source_name: String, reason: String| SourceError::Prepare {
            package: self.name().clone(),
            source_name,
            reason,
        };
        match &self.tree {
            Tree::Sdist(artifact) => {
                let sdist = self.sdist.as_ref().ok_or_else(|| {
                    prepare_error(
                        format!("`{}`", artifact.filename),
                        "it was not downloaded".to_string(),
                    )
                })?;
                let unpacked = work.join("sdist");
                fs_err::create_dir_all(&unpacked).map_err(io_error("create", &unpacked))?;
                unpack(sdist, &artifact.filename, &unpacked).map_err(|reason| {
                    prepare_error(format!("sdist `{}`", artifact.filename), reason)
                })?;
                let folder = project_root(&unpacked).ok_or_else(|| {
                    prepare_error(
                        format!("sdist `{}`", artifact.filename),
                        "it has no `pyproject.toml` or `setup.py` at its top level".to_string(),
                    )
                })?;
                let hash = artifact
                    .sha256
                    .map(|digest| digest.hex())
                    .unwrap_or_default();
                Ok((folder, format!("sha256:{hash}")))
            }
            Tree::Git(vcs) => {
                let checkout = work.join("git");
                self.checkout(vcs, &checkout)?;
                let folder = match &vcs.subdirectory {
                    Some(subdirectory) => checkout.join(subdirectory),
                    None => checkout,
                };
                if project_root(&folder).as_deref() != Some(folder.as_path()) {
                    return Err(prepare_error(
                        format!("git repository `{}`", redact_text(&vcs.url)),
                        "the locked commit has no `pyproject.toml` or `setup.py` in the project's folder".to_string(),
                    ));
                }
                Ok((folder, format!("git:{}", vcs.commit_id)))
            }
            Tree::Directory(path) => {
                let copy = work.join("tree");
                let mut hasher = Sha256::new();
                copy_tree(path, &copy, Path::new(""), &mut hasher).map_err(|reason| {
                    prepare_error(format!("folder `{}`", path.display()), reason)
                })?;
                if project_root(&copy).as_deref() != Some(copy.as_path()) {
                    return Err(prepare_error(
                        format!("folder `{}`", path.display()),
                        "it has no `pyproject.toml` or `setup.py`".to_string(),
                    ));
                }
                Ok((copy, format!("tree:{}", hex(&hasher.finalize()))))
            }
        }
    }

    fn checkout(&self, vcs: &crate::lock::VcsSource, into: &Path) -> Result<(), SourceError> {
        let git_error = |reason: String| SourceError::Git {
            package: self.name().clone(),
            url: redact_text(&vcs.url),
            commit: vcs.commit_id.clone(),
            reason: redact_text(&reason),
        };
        let git = |args: &[&std::ffi::OsStr], folder: Option<&Path>| {
            let mut command = Command::new("git");
            if let Some(folder) = folder {
                command.current_dir(folder);
            }
            command
                .args(args)
                .env("GIT_TERMINAL_PROMPT", "0")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdin(Stdio::null());
            let output = command
                .output()
                .map_err(|error| git_error(format!("git does not run ({error})")))?;
            if output.status.success() {
                Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
            } else {
                Err(git_error(
                    String::from_utf8_lossy(&output.stderr).trim().to_string(),
                ))
            }
        };
        git(
            &[
                "clone".as_ref(),
                "--quiet".as_ref(),
                "--no-checkout".as_ref(),
                "--".as_ref(),
                vcs.url.as_ref(),
                into.as_os_str(),
            ],
            None,
        )?;
        git(
            &[
                "-c".as_ref(),
                "advice.detachedHead=false".as_ref(),
                "checkout".as_ref(),
                "--quiet".as_ref(),
                "--detach".as_ref(),
                format!("{}^{{commit}}", vcs.commit_id).as_ref(),
            ],
            Some(into),
        )?;
        let head = git(&["rev-parse".as_ref(), "HEAD".as_ref()], Some(into))?;
        if !head.eq_ignore_ascii_case(&vcs.commit_id) {
            return Err(git_error(format!(
                "the checkout is at `{head}`, not at the locked commit"
            )));
        }
        Ok(())
    }

    fn build_system(&self, folder: &Path) -> Result<BuildSystem, SourceError> {
        let pyproject = folder.join("pyproject.toml");
        let mut system = BuildSystem {
            requires: vec!["setuptools>=40.8.0".to_string()],
            backend: DEFAULT_BACKEND.to_string(),
            backend_path: Vec::new(),
        };
        if !pyproject.is_file() {
            return Ok(system);
        }
        let text = fs_err::read_to_string(&pyproject).map_err(io_error("read", &pyproject))?;
        let invalid = |reason: String| SourceError::Prepare {
            package: self.name().clone(),
            source_name: "`pyproject.toml`".to_string(),
            reason,
        };
        let document: toml::Table = toml::from_str(&text)
            .map_err(|error| invalid(format!("it is not valid TOML: {}", error.message())))?;
        let Some(table) = document.get("build-system") else {
            return Ok(system);
        };
        let strings = |key: &str| -> Result<Option<Vec<String>>, SourceError> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_string).ok_or_else(|| {
                            invalid(format!("`build-system.{key}` holds a non-string"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(invalid(format!("`build-system.{key}` is not a list"))),
            }
        };
        if let Some(requires) = strings("requires")? {
            system.requires = requires;
        }
        if let Some(backend_path) = strings("backend-path")? {
            system.backend_path = backend_path;
        }
        match table.get("build-backend") {
            None => {}
            Some(toml::Value::String(backend)) => system.backend = backend.clone(),
            Some(_) => {
                return Err(invalid(
                    "`build-system.build-backend` is not a string".into(),
                ));
            }
        }
        Ok(system)
    }

    /// Make the venv, install the build requirements, build; returns the wheel and the
    /// installed build requirements.
    fn build(
        &self,
        work: &Path,
        folder: &Path,
        system: &BuildSystem,
        has_constraints: bool,
    ) -> Result<(PathBuf, Vec<String>), SourceError> {
        let venv = work.join("venv");
        let home = work.join("home");
        let temp = work.join("tmp");
        let out = work.join("out");
        for dir in [&home, &temp, &out] {
            fs_err::create_dir_all(dir).map_err(io_error("create", dir))?;
        }
        let hook = work.join("envbuild_pep517.py");
        fs_err::write(&hook, HOOK).map_err(io_error("write", &hook))?;
        let log = work.join("build.log");

        let mut command = self.clean_command(&self.python, &home, &temp, &venv);
        command.args(["-I", "-m", "venv"]).arg(&venv);
        self.run_step(command, &log, "making the build venv")?;
        let python = venv.join("bin").join("python");
        // ensurepip of CPython < 3.12 adds setuptools: the build environment holds pip
        // and what the backend asks for, nothing else.
        let mut command = self.clean_command(&python, &home, &temp, &venv);
        command.args([
            "-I",
            "-m",
            "pip",
            "uninstall",
            "--yes",
            "--quiet",
            "--disable-pip-version-check",
            "setuptools",
        ]);
        self.run_step(command, &log, "making the build venv")?;

        self.install(&python, work, &system.requires, has_constraints, &log)?;
        let requires_out = work.join("requires.json");
        let mut command = self.clean_command(&python, &home, &temp, &venv);
        command
            .arg(&hook)
            .arg(&system.backend)
            .arg(serde_json::to_string(&system.backend_path).unwrap_or_else(|_| "[]".into()))
            .arg("requires")
            .arg(&requires_out)
            .current_dir(folder);
        self.run_backend(
            command,
            &log,
            "asking the backend for its build requirements",
        )?;
        let extra: Vec<String> = fs_err::read(&requires_out)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        self.install(&python, work, &extra, has_constraints, &log)?;

        let mut command = self.clean_command(&python, &home, &temp, &venv);
        command
            .arg(&hook)
            .arg(&system.backend)
            .arg(serde_json::to_string(&system.backend_path).unwrap_or_else(|_| "[]".into()))
            .arg("wheel")
            .arg(&out)
            .current_dir(folder);
        self.run_backend(command, &log, "building the wheel")?;

        let mut wheels = Vec::new();
        for entry in fs_err::read_dir(&out).map_err(io_error("list", &out))? {
            let entry = entry.map_err(io_error("list", &out))?;
            if entry.file_name().to_string_lossy().ends_with(".whl") {
                wheels.push(entry.path());
            }
        }
        let [wheel] = wheels.as_slice() else {
            return Err(SourceError::WrongWheel {
                package: self.name().clone(),
                made: format!("{} wheels", wheels.len()),
                expected: "a PEP 517 build makes exactly one".to_string(),
            });
        };

        let mut command = self.clean_command(&python, &home, &temp, &venv);
        command.args([
            "-I",
            "-m",
            "pip",
            "freeze",
            "--all",
            "--disable-pip-version-check",
        ]);
        let freeze_log = work.join("freeze.log");
        self.run_step(command, &freeze_log, "listing the build requirements")?;
        let mut requirements: Vec<String> = fs_err::read_to_string(&freeze_log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("=="))
            .map(str::to_string)
            .collect();
        requirements.sort();
        Ok((wheel.clone(), requirements))
    }

    fn install(
        &self,
        python: &Path,
        work: &Path,
        requirements: &[String],
        has_constraints: bool,
        log: &Path,
    ) -> Result<(), SourceError> {
        if requirements.is_empty() {
            return Ok(());
        }
        let mut command = self.clean_command(
            python,
            &work.join("home"),
            &work.join("tmp"),
            &work.join("venv"),
        );
        command.args([
            "-I",
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-input",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--only-binary",
            ":all:",
        ]);
        let indexes = self.index.indexes();
        match indexes.split_first() {
            Some((first, rest)) => {
                command
                    .arg("--index-url")
                    .arg(self.index.authenticate(first.url()).as_str());
                for extra in rest {
                    command
                        .arg("--extra-index-url")
                        .arg(self.index.authenticate(extra.url()).as_str());
                }
            }
            None => {
                command.arg("--no-index");
            }
        }
        for links in self.index.find_links() {
            match links {
                crate::index::FindLinks::Local { path, .. } => {
                    command.arg("--find-links").arg(path);
                }
                crate::index::FindLinks::Page(page) => {
                    command
                        .arg("--find-links")
                        .arg(self.index.authenticate(page.url()).as_str());
                }
            }
        }
        if indexes.is_empty() && self.index.find_links().is_empty() {
            return Err(SourceError::NoIndex {
                package: self.name().clone(),
                requirements: requirements
                    .iter()
                    .map(|requirement| format!("`{}`", Untrusted(requirement)))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if has_constraints && let Some(constraints) = &self.options.build_constraints {
            command.arg("--constraint").arg(constraints);
        }
        // Proxy settings are the only host environment pip gets.
        for name in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
            "SSL_CERT_FILE",
        ] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.arg("--").args(requirements);
        self.run_step(command, log, "installing the build requirements")
    }

    /// A command with nothing of the host environment but a minimal `PATH`.
    fn clean_command(&self, program: &Path, home: &Path, temp: &Path, venv: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    venv.join("bin").display()
                ),
            )
            .env("HOME", home)
            .env("TMPDIR", temp)
            .env("LC_ALL", "C.UTF-8")
            .env("LANG", "C.UTF-8")
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONNOUSERSITE", "1")
            .stdin(Stdio::null());
        command
    }

    /// Run one setup step (venv, pip) with its output appended to `log`.
    fn run_step(&self, command: Command, log: &Path, step: &str) -> Result<(), SourceError> {
        self.run_limited(command, log, step, self.options.timeout.max(SETUP_LIMIT))
    }

    /// Run a call into the backend, under `--build-timeout`.
    fn run_backend(&self, command: Command, log: &Path, step: &str) -> Result<(), SourceError> {
        self.run_limited(command, log, step, self.options.timeout)
    }

    /// Run one step with its output appended to `log`, under `limit`.
    fn run_limited(
        &self,
        mut command: Command,
        log: &Path,
        step: &str,
        limit: Duration,
    ) -> Result<(), SourceError> {
        use std::os::unix::process::CommandExt;
        let file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_error("write", log))?;
        let (file, _) = file.into_parts();
        let error_file = file.try_clone().map_err(io_error("write", log))?;
        command
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(error_file))
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(io_error("run", Path::new(command.get_program())))?;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io_error("wait for", log))? {
                break status;
            }
            if Instant::now() >= deadline {
                // The whole process group: a backend's own children go too.
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg("--")
                    .arg(format!("-{}", child.id()))
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(SourceError::TimedOut {
                    package: self.name().clone(),
                    step: step.to_string(),
                    seconds: limit.as_secs(),
                    log: log_tail(log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if status.success() {
            Ok(())
        } else {
            Err(SourceError::Failed {
                package: self.name().clone(),
                step: step.to_string(),
                status: status.to_string(),
                log: log_tail(log),
            })
        }
    }

    fn check_wheel(&self, wheel: &str) -> Result<(), SourceError> {
        let wrong = |expected: String| SourceError::WrongWheel {
            package: self.name().clone(),
            made: format!("`{}`", Untrusted(wheel)),
            expected,
        };
        let filename = WheelFilename::from_str(wheel)
            .map_err(|error| wrong(format!("that is not a valid wheel name ({error})")))?;
        if &filename.name != self.name() {
            return Err(wrong(format!(
                "the lock names the package `{}`",
                self.name()
            )));
        }
        if let Some(locked) = &self.package.version {
            let same = match (
                uv_pep440::Version::from_str(locked),
                uv_pep440::Version::from_str(&filename.version),
            ) {
                (Ok(left), Ok(right)) => left == right,
                _ => locked == &filename.version,
            };
            if !same {
                return Err(wrong(format!("the lock pins version `{locked}`")));
            }
        }
        let pure = filename.abi_tags.iter().all(|tag| tag == "none")
            && filename.platform_tags.iter().all(|tag| tag == "any");
        if !pure {
            return Err(SourceError::PlatformWheel {
                package: self.name().clone(),
                wheel: wheel.to_string(),
                target: self.target.clone(),
            });
        }
        Ok(())
    }
}

/// The last lines of a build log, indented, with credentials removed.
fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs_err::File::open(log) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_LINES_SHOWN);
    let shown: Vec<String> = lines[start..]
        .iter()
        .map(|line| format!("    {}", redact_text(line)))
        .collect();
    if shown.is_empty() {
        "    (no output)".to_string()
    } else {
        shown.join("\n")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Unpack an sdist (`.tar.gz`, `.tgz`, `.tar.bz2` is refused, `.tar`, `.zip`) into
/// `into`; entries that would land outside it are refused by the unpackers.
fn unpack(archive: &Path, filename: &str, into: &Path) -> Result<(), String> {
    let file = std::fs::File::open(archive).map_err(|error| error.to_string())?;
    if filename.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(file).map_err(|error| error.to_string())?;
        zip.extract(into).map_err(|error| error.to_string())
    } else if filename.ends_with(".tar.gz") || filename.ends_with(".tgz") {
        unpack_tar(tar::Archive::new(flate2::read::GzDecoder::new(file)), into)
    } else if filename.ends_with(".tar") {
        unpack_tar(tar::Archive::new(file), into)
    } else {
        Err("envbuild builds `.tar.gz`, `.tgz`, `.tar` and `.zip` sdists only".to_string())
    }
}

fn unpack_tar<R: Read>(mut archive: tar::Archive<R>, into: &Path) -> Result<(), String> {
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    for entry in archive.entries().map_err(|error| error.to_string())? {
        let mut entry = entry.map_err(|error| error.to_string())?;
        let kind = entry.header().entry_type();
        if !(kind.is_file()
            || kind.is_dir()
            || kind.is_symlink()
            || kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions())
        {
            continue;
        }
        let unpacked = entry.unpack_in(into).map_err(|error| error.to_string())?;
        if !unpacked {
            return Err(format!(
                "entry `{}` would be written outside the sdist's folder",
                entry
                    .path()
                    .map(|path| path.display().to_string())
                    .unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The project folder of an unpacked tree: `folder` itself, or its one subfolder, when
/// it holds `pyproject.toml` or `setup.py`.
fn project_root(folder: &Path) -> Option<PathBuf> {
    let is_project =
        |dir: &Path| dir.join("pyproject.toml").is_file() || dir.join("setup.py").is_file();
    if is_project(folder) {
        return Some(folder.to_path_buf());
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    match entries.as_slice() {
        [only] if is_project(only) => Some(only.clone()),
        _ => None,
    }
}

/// Copy the tree at `from` into `to` (files, folders and symlinks; virtual
/// environments and caches left out), hashing relative paths and contents in name order.
fn copy_tree(from: &Path, to: &Path, relative: &Path, hasher: &mut Sha256) -> Result<(), String> {
    let describe = |error: std::io::Error, path: &Path| format!("`{}`: {error}", path.display());
    std::fs::create_dir_all(to).map_err(|error| describe(error, to))?;
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(from)
        .map_err(|error| describe(error, from))?
        .collect::<Result<_, _>>()
        .map_err(|error| describe(error, from))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let source = entry.path();
        let target = to.join(&name);
        let path = relative.join(&name);
        let kind = entry
            .file_type()
            .map_err(|error| describe(error, &source))?;
        if kind.is_dir() {
            if SKIPPED_FOLDERS.iter().any(|skipped| name == *skipped) {
                continue;
            }
            hasher.update(format!("d {}\0", path.display()).as_bytes());
            copy_tree(&source, &target, &path, hasher)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(|error| describe(error, &source))?;
            hasher.update(format!("l {} {}\0", path.display(), link.display()).as_bytes());
            std::os::unix::fs::symlink(&link, &target).map_err(|error| describe(error, &target))?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&source).map_err(|error| describe(error, &source))?;
            hasher.update(format!("f {} {}\0", path.display(), bytes.len()).as_bytes());
            hasher.update(&bytes);
            let mut file =
                std::fs::File::create(&target).map_err(|error| describe(error, &target))?;
            file.write_all(&bytes)
                .map_err(|error| describe(error, &target))?;
            let mode = std::fs::metadata(&source)
                .map(|metadata| std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()))
                .unwrap_or(0o644);
            std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(|error| describe(error, &target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_hash(folder: &Path) -> String {
        let copy = tempfile::tempdir().unwrap();
        let mut hasher = Sha256::new();
        copy_tree(folder, &copy.path().join("c"), Path::new(""), &mut hasher).unwrap();
        hex(&hasher.finalize())
    }

    #[test]
    fn ok_tree_hash_follows_content_not_place_and_skips_venvs() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        for dir in [one.path(), two.path()] {
            fs_err::create_dir_all(dir.join("pkg")).unwrap();
            fs_err::write(dir.join("pyproject.toml"), "[project]\nname='x'\n").unwrap();
            fs_err::write(dir.join("pkg/__init__.py"), "X = 1\n").unwrap();
        }
        fs_err::create_dir_all(two.path().join(".venv/bin")).unwrap();
        fs_err::write(two.path().join(".venv/bin/python"), "junk").unwrap();
        assert_eq!(tree_hash(one.path()), tree_hash(two.path()));
        fs_err::write(two.path().join("pkg/__init__.py"), "X = 2\n").unwrap();
        assert_ne!(tree_hash(one.path()), tree_hash(two.path()));
    }

    #[test]
    fn ok_project_root_finds_the_one_top_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("demo-1.0")).unwrap();
        assert_eq!(project_root(dir.path()), None);
        fs_err::write(dir.path().join("demo-1.0/setup.py"), "").unwrap();
        assert_eq!(project_root(dir.path()), Some(dir.path().join("demo-1.0")));
    }

    #[test]
    fn err_tar_entry_outside_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("evil-1.0.tar");
        {
            let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
            let mut header = tar::Header::new_gnu();
            let data = b"boom";
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // `set_path` refuses `..`; write the name bytes directly.
            header.as_old_mut().name[..12].copy_from_slice(b"../escape.py");
            header.set_cksum();
            builder.append(&header, &data[..]).unwrap();
            builder.finish().unwrap();
        }
        let into = dir.path().join("out");
        fs_err::create_dir_all(&into).unwrap();
        let error = unpack(&archive, "evil-1.0.tar", &into).unwrap_err();
        assert!(error.contains("outside"), "{error}");
        assert!(!dir.path().join("escape.py").exists());
    }
}
