//! The whole flow, from lockfile and base image to a written image: the one function
//! the CLI calls for `envbuild image`, and the one for `envbuild fetch`. Each step is a
//! call into the stage modules; this module only wires them and adds context to their
//! errors.
//!
//! A multi-platform build (`--platform linux/amd64,linux/arm64`) runs the per-platform
//! steps once per platform from the same lockfile (each platform's own base manifest,
//! target detection from that platform's files, wheel choice and layers), choosing every
//! platform's wheels before anything is downloaded, so a platform the lockfile cannot
//! serve fails the build up front and never yields a smaller index. Wheels are fetched
//! once for all platforms, and the images are written together as one image index.
//! Layers depend only on their wheels, prefix and interpreter, so a pure-Python layer is
//! the same blob on every platform. Bases are read in one place ([`read_base`]) and
//! images written in one place ([`write_output`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::app::{AddOptions, AddSpec, NewUser};
use crate::cache::{Cache, CacheError, LayerRecord};
use crate::check::{CheckReport, DependencyProblem};
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, FetchOptions, FetchProgress, FetchRequest};
use crate::index::{IndexConfig, IndexError};
use crate::layer::plan::{LayerBudgetError, PlanInput, plan_layers};
use crate::layer::{LayerBlob, LayerError};
use crate::lock::{GroupSelection, Lock, LockError};
use crate::oci::{BaseImage, Image, ImageReference, ImageSettings, NewLayer, OciError};
use crate::platform::select::{ChosenWheel, SelectError, choose_wheels};
use crate::platform::{Platform, Target};
use crate::registry::{
    PushReport, Registry, RegistryError, RegistryOptions, RegistryReference, TagResolution,
};
use crate::repro::{COMPRESSOR_ID, LAYER_FORMAT_VERSION, SourceDateEpoch};
use crate::source::{BuiltPackage, SourceError, SourceOptions};
use crate::wheel::{InstallScheme, PycCompiler, WheelError, WheelInstall};

mod target;

pub use target::{
    LibcReport, ResolvedTarget, Source, Sourced, TargetError, TargetOverrides, TargetReport,
    resolve_target, target_without_base,
};

/// Settings of one `envbuild image` run, fully resolved (flags, environment, defaults).
#[derive(Debug, Clone)]
pub struct ImageBuild {
    /// The lockfile.
    pub lock: PathBuf,
    /// Extras and groups.
    pub selection: GroupSelection,
    /// The base image.
    pub base: ImageReference,
    /// Where to write the image.
    pub output: ImageReference,
    /// What to build: one entry per `--platform` (several make an image index), each
    /// with the shared overrides; a single entry without a platform builds the base
    /// image's platform. Never empty.
    pub targets: Vec<TargetOverrides>,
    /// Install prefix of the virtual environment, e.g. `/opt/venv`.
    pub prefix: String,
    /// The cache folder.
    pub cache_dir: PathBuf,
    /// Download settings (`--jobs`, `--offline`).
    pub fetch: FetchOptions,
    /// Threads for installing and compressing layers.
    pub jobs: usize,
    /// `--max-layers`, counting the base image's layers.
    pub max_layers: usize,
    /// Config and annotations of the new image.
    pub image: ImageSettings,
    /// The build timestamp.
    pub epoch: SourceDateEpoch,
    /// `--compile-bytecode` (with `--compile-with`).
    pub bytecode: Bytecode,
    /// `--allow-conflicts`: report dependency problems instead of failing.
    pub allow_conflicts: bool,
    /// Package indexes for lockfiles that record hashes but no URLs, and for build
    /// requirements.
    pub index: IndexConfig,
    /// How sdists, git and folder sources are built into wheels.
    pub source: SourceOptions,
    /// How registries are reached (bases and outputs given as `docker://` or bare
    /// references).
    pub registry: RegistryOptions,
    /// The service's own half: `--wheel`, `--add`, `--create-user`.
    pub app: AppLayers,
}

/// The layers above the dependencies: the project's wheels, copied files and the
/// service's user.
#[derive(Debug, Clone, Default)]
pub struct AppLayers {
    /// `--wheel`: wheels of the project, each installed in a layer of its own above the
    /// dependencies; a lock entry for the project itself (a source tree) is satisfied
    /// by the wheel of its name.
    pub wheels: Vec<PathBuf>,
    /// `--add SRC:DEST`, one layer each, above the wheels.
    pub adds: Vec<AddSpec>,
    /// `--ignore-file` and `--chown`.
    pub add_options: AddOptions,
    /// `--create-user`: a layer below the venv with the user, group and home folder.
    pub create_user: Option<NewUser>,
}

/// A `--wheel` file, read.
#[derive(Debug, Clone)]
struct ProjectWheel {
    path: PathBuf,
    filename: String,
    name: crate::lock::PackageName,
    sha256: Sha256Digest,
}

/// Whether to compile `.pyc` files into the layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Bytecode {
    /// No bytecode (the default, like uv).
    #[default]
    Off,
    /// PEP 552 unchecked-hash pycs, compiled by a host CPython of the target's minor
    /// version: the given one, or one found on `PATH`.
    Compile {
        /// `--compile-with`.
        interpreter: Option<PathBuf>,
    },
}

/// Settings of one `envbuild fetch` run.
#[derive(Debug, Clone)]
pub struct FetchRun {
    /// The lockfile.
    pub lock: PathBuf,
    /// Extras and groups.
    pub selection: GroupSelection,
    /// A base image to detect the target from, if any.
    pub base: Option<ImageReference>,
    /// Targets: one per `--platform`, with the shared overrides.
    pub targets: Vec<TargetOverrides>,
    /// The cache folder.
    pub cache_dir: PathBuf,
    /// Download settings.
    pub fetch: FetchOptions,
    /// Package indexes for lockfiles that record hashes but no URLs, and for build
    /// requirements.
    pub index: IndexConfig,
    /// How sdists, git and folder sources are built into wheels.
    pub source: SourceOptions,
    /// The timestamp of source builds (`SOURCE_DATE_EPOCH`), as for `image`.
    pub epoch: SourceDateEpoch,
    /// How registries are reached.
    pub registry: RegistryOptions,
}

/// Errors of a build, each with the stage it came from.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The cache could not be opened or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The lockfile is invalid or does not fit the target.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The base image could not be read, or the image not written.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The target could not be told, or a flag contradicts the base image.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// No wheel fits for some packages (on one platform: the message names it).
    #[error(transparent)]
    Select(#[from] SelectError),
    /// Several of the requested platforms cannot be served by the lockfile.
    #[error(
        "the lockfile cannot serve {} of the requested platforms ({}); lock wheels for them or leave them out of `--platform`:\n{}",
        failures.len(),
        failures.iter().map(|failure| failure.target.platform.to_string()).collect::<Vec<_>>().join(", "),
        failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    )]
    UnservedPlatforms {
        /// One error per platform that failed, in `--platform` order.
        failures: Vec<SelectError>,
    },
    /// A source build failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A download failed or a wheel is missing offline.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A wheel is invalid or collides with another.
    #[error(transparent)]
    Wheel(#[from] WheelError),
    /// A layer could not be written.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The layer budget is too small.
    #[error(transparent)]
    LayerBudget(#[from] LayerBudgetError),
    /// A registry could not be reached, refused access, or failed a transfer.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A registry reference is malformed.
    #[error(transparent)]
    RegistryReference(#[from] crate::registry::RegistryReferenceError),
    /// A package could not be found on the configured indexes.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Bytecode could not be compiled.
    #[error(transparent)]
    Bytecode(#[from] crate::wheel::BytecodeError),
    /// The locked packages do not satisfy each other's requirements.
    #[error(transparent)]
    Check(#[from] crate::check::CheckError),
    /// `--offline` with a registry output: a push needs the network.
    #[error(
        "cannot push to `{output}` with `--offline`: a push needs the registry; write an `oci:` or `oci-archive:` output instead and push it later"
    )]
    OfflinePush {
        /// The output reference.
        output: String,
    },
    /// An `--add` or `--create-user` layer could not be made.
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    /// A `--wheel` file cannot be read or is not a wheel.
    #[error("invalid `--wheel {}`: {reason}", path.display())]
    ProjectWheel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `--wheel` names a package the lock provides as a wheel already.
    #[error(
        "`--wheel {}` installs `{name}`, which the lockfile also locks as a published package; lock the project itself (as an editable, directory or virtual entry) or leave out `--wheel`",
        path.display()
    )]
    ProjectWheelLocked {
        /// The file.
        path: PathBuf,
        /// The package.
        name: String,
    },
    /// A worker thread panicked or the runtime failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One package in a layer, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackageReport {
    /// Normalized name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Wheel filename.
    pub wheel: String,
    /// SHA-256 of the wheel file (hex).
    pub sha256: String,
}

/// One layer of the image, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LayerReport {
    /// `base`, `user`, `venv`, `packages`, `project` (a `--wheel`) or `app` (an `--add`).
    pub kind: &'static str,
    /// Digest of the compressed blob.
    pub digest: Sha256Digest,
    /// Digest of the uncompressed tar (absent for base layers, whose diff_ids come from
    /// the base config).
    pub diff_id: Sha256Digest,
    /// Compressed size.
    pub size: u64,
    /// Packages installed by this layer.
    pub packages: Vec<PackageReport>,
}

/// The base image a build stood on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BaseReport {
    /// The reference as given.
    pub reference: String,
    /// Its manifest digest (for a multi-platform base, the chosen platform's).
    pub digest: Sha256Digest,
    /// For a registry base given by tag: `registry` when the registry was asked what the
    /// tag points to, `cache` when an offline build used the digest it had the last time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_resolution: Option<TagResolution>,
}

/// One platform's image, as the report lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageReport {
    /// Digest of the image's manifest.
    pub digest: Sha256Digest,
    /// The image's platform, e.g. `linux/arm64`.
    pub platform: String,
    /// The target Python version.
    pub python: String,
    /// The whole target, with where each value came from.
    pub target: TargetReport,
    /// The base image this platform stood on.
    pub base: BaseReport,
    /// Every layer, base first.
    pub layers: Vec<LayerReport>,
    /// Requirements the locked packages do not satisfy (only with `--allow-conflicts`;
    /// otherwise they fail the build).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependency_problems: Vec<DependencyProblem>,
}

/// What a push to a registry transferred.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PushSummary {
    /// Blob bytes sent (0 when the registry already had every blob).
    pub bytes_uploaded: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the repository already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: usize,
}

impl From<PushReport> for PushSummary {
    fn from(report: PushReport) -> Self {
        Self {
            bytes_uploaded: report.bytes_uploaded,
            blobs_uploaded: report.blobs_uploaded,
            blobs_skipped: report.blobs_skipped,
            blobs_mounted: report.blobs_mounted,
        }
    }
}

/// What `envbuild image --json` prints (`schemas/report.schema.json`). A one-platform
/// build keeps the flat shape `{digest, platform, python, lock, base, layers}`; a
/// multi-platform build prints `{digest, lock, images: [...]}` with the image index's
/// digest and one [`ImageReport`] per platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Digest of what was written: the manifest for one platform, the image index for
    /// several.
    pub digest: Sha256Digest,
    /// The lockfile.
    pub lock: String,
    /// One image per platform, sorted by platform (the order of the image index).
    pub images: Vec<ImageReport>,
    /// What the push transferred, when the output is a registry.
    pub push: Option<PushSummary>,
    /// The packages built from source, with their provenance.
    pub built_from_source: Vec<BuiltPackage>,
}

impl Serialize for BuildReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Single<'a> {
            digest: &'a Sha256Digest,
            platform: &'a str,
            python: &'a str,
            target: &'a TargetReport,
            lock: &'a str,
            base: &'a BaseReport,
            layers: &'a [LayerReport],
            #[serde(skip_serializing_if = "<[DependencyProblem]>::is_empty")]
            dependency_problems: &'a [DependencyProblem],
            #[serde(skip_serializing_if = "Option::is_none")]
            push: &'a Option<PushSummary>,
            #[serde(skip_serializing_if = "<[BuiltPackage]>::is_empty")]
            built_from_source: &'a [BuiltPackage],
        }
        #[derive(Serialize)]
        struct Multi<'a> {
            digest: &'a Sha256Digest,
            lock: &'a str,
            images: &'a [ImageReport],
            #[serde(skip_serializing_if = "Option::is_none")]
            push: &'a Option<PushSummary>,
            #[serde(skip_serializing_if = "<[BuiltPackage]>::is_empty")]
            built_from_source: &'a [BuiltPackage],
        }
        match self.images.as_slice() {
            [image] => Single {
                digest: &self.digest,
                platform: &image.platform,
                python: &image.python,
                target: &image.target,
                lock: &self.lock,
                base: &image.base,
                layers: &image.layers,
                dependency_problems: &image.dependency_problems,
                push: &self.push,
                built_from_source: &self.built_from_source,
            }
            .serialize(serializer),
            images => Multi {
                digest: &self.digest,
                lock: &self.lock,
                images,
                push: &self.push,
                built_from_source: &self.built_from_source,
            }
            .serialize(serializer),
        }
    }
}

/// Progress callbacks of a build (the CLI draws them; the library only reports).
pub trait BuildProgress: FetchProgress {
    /// A new stage began.
    fn stage(&self, _message: &str) {}
    /// A layer was written (or found in the cache).
    fn layer_done(&self, _cached: bool) {}
}

/// A progress sink that ignores everything.
pub struct Silent;
impl FetchProgress for Silent {}
impl BuildProgress for Silent {}

fn fetch_requests(chosen: &[ChosenWheel]) -> Vec<FetchRequest> {
    chosen
        .iter()
        .map(|wheel| FetchRequest {
            package: wheel.name.clone(),
            version: wheel.version.clone(),
            artifact: wheel.artifact.clone(),
        })
        .collect()
}

/// Download every chosen wheel once, however many targets install it; returns each
/// wheel's file in the cache by its SHA-256.
async fn fetch_wheels<'a>(
    chosen: impl Iterator<Item = &'a [ChosenWheel]>,
    cache: &Cache,
    options: &FetchOptions,
    progress: Arc<dyn FetchProgress>,
) -> Result<BTreeMap<Sha256Digest, PathBuf>, BuildError> {
    let mut unique: BTreeMap<Sha256Digest, FetchRequest> = BTreeMap::new();
    for wheels in chosen {
        for request in fetch_requests(wheels) {
            if let Some(sha256) = request.artifact.sha256 {
                unique.entry(sha256).or_insert(request);
            }
        }
    }
    let requests: Vec<FetchRequest> = unique.into_values().collect();
    let paths = crate::fetch::fetch_all(&requests, cache, options, progress).await?;
    Ok(requests
        .iter()
        .zip(paths)
        .filter_map(|(request, path)| Some((request.artifact.sha256?, path)))
        .collect())
}

/// The key under which a layer is cached: a hash of everything its bytes depend on.
fn layer_key(
    scheme: &InstallScheme,
    epoch: SourceDateEpoch,
    bytecode: Option<&str>,
    wheels: &[Option<Sha256Digest>],
) -> Sha256Digest {
    #[derive(Serialize)]
    struct Key<'a> {
        layer_format: u32,
        launcher_template: u32,
        bytecode: Option<&'a str>,
        compressor: &'static str,
        prefix: &'a str,
        interpreter: &'a str,
        python: String,
        epoch: i64,
        wheels: Vec<String>,
    }
    let key = Key {
        layer_format: LAYER_FORMAT_VERSION,
        launcher_template: crate::wheel::LAUNCHER_TEMPLATE_VERSION,
        bytecode,
        compressor: COMPRESSOR_ID,
        prefix: &scheme.prefix,
        interpreter: &scheme.interpreter,
        python: scheme.python.to_string(),
        epoch: epoch.seconds(),
        wheels: wheels
            .iter()
            .map(|digest| {
                digest
                    .map(|d| d.hex())
                    .unwrap_or_else(|| "venv".to_string())
            })
            .collect(),
    };
    Sha256Digest::of(&crate::repro::canonical_json(&key))
}

/// Run `jobs` workers over `count` items; results come back in item order.
fn parallel_map<T, F>(count: usize, jobs: usize, work: F) -> Result<Vec<T>, BuildError>
where
    T: Send,
    F: Fn(usize) -> Result<T, BuildError> + Sync,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<T, BuildError>>>> =
        std::sync::Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if index >= count {
                        break;
                    }
                    let result = work(index);
                    results
                        .lock()
                        .expect("no worker panics while holding the lock")[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .map_err(|_| BuildError::Internal("a worker thread panicked".to_string()))?
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| Err(BuildError::Internal("a work item was lost".to_string())))
        })
        .collect()
}

fn layer_from_cache_or_write(
    cache: &Cache,
    key: &Sha256Digest,
    write: impl FnOnce() -> Result<LayerBlob, BuildError>,
) -> Result<(LayerRecord, bool), BuildError> {
    if let Some(record) = cache.layer(key) {
        return Ok((record, true));
    }
    let blob = write()?;
    let record = LayerRecord {
        diff_id: blob.diff_id,
        digest: blob.digest,
        size: blob.size,
    };
    cache.put_layer(key, &record)?;
    Ok((record, false))
}

/// Read the base image `reference` for `platform` (its only platform when `None`), on a
/// blocking thread (it streams whole layers through a hasher). The one place a build
/// reads a base: every transport is dispatched here.
async fn read_base(
    reference: &ImageReference,
    platform: Option<&Platform>,
    cache: &Cache,
    registry: &Registry,
) -> Result<(BaseImage, Option<TagResolution>), BuildError> {
    if let ImageReference::Registry(text) = reference {
        let parsed: RegistryReference = text.parse()?;
        return Ok(registry.resolve_base(&parsed, platform, cache).await?);
    }
    let cache = cache.clone();
    let reference = reference.clone();
    let platform = platform.cloned();
    tokio::task::spawn_blocking(move || {
        crate::oci::read_base(&reference, platform.as_ref(), &cache)
    })
    .await
    .map_err(|error| BuildError::Internal(error.to_string()))?
    .map(|base| (base, None))
    .map_err(BuildError::from)
}

/// Write `images` (one per platform) to `output`, as one manifest or an image index,
/// and return the digest of what was written (and, for a registry, what the push
/// transferred). The one place a build writes its result: every transport is
/// dispatched here.
async fn write_output(
    images: Vec<Image>,
    output: &ImageReference,
    cache: &Cache,
    registry: &Registry,
) -> Result<(Sha256Digest, Option<PushSummary>), BuildError> {
    if let ImageReference::Registry(text) = output {
        let destination: RegistryReference = text.parse()?;
        let report = registry.push(&images, &destination, cache).await?;
        return Ok((report.digest, Some(PushSummary::from(report))));
    }
    let cache = cache.clone();
    let output = output.clone();
    let digest =
        tokio::task::spawn_blocking(move || crate::oci::write_images(&images, &output, &cache))
            .await
            .map_err(|error| BuildError::Internal(error.to_string()))??;
    Ok((digest, None))
}

/// One platform of a build, once its wheels are chosen.
struct PlatformPlan {
    base: BaseImage,
    tag_resolution: Option<TagResolution>,
    target: Target,
    target_report: TargetReport,
    interpreter: String,
    chosen: Vec<ChosenWheel>,
}

/// `message`, with the platform when the build has several.
fn stage_label(message: &str, platform: Option<&Platform>, several: bool) -> String {
    match (platform, several) {
        (Some(platform), true) => format!("{message} ({platform})"),
        _ => message.to_string(),
    }
}

/// Build an image (or one per platform, as an image index) and write it. Returns the
/// report the CLI prints.
pub async fn build_image(
    settings: &ImageBuild,
    progress: Arc<dyn BuildProgress>,
) -> Result<BuildReport, BuildError> {
    if settings.targets.is_empty() {
        return Err(BuildError::Internal(
            "a build was started with no target".to_string(),
        ));
    }
    let several = settings.targets.len() > 1;
    // Refuse an output that cannot take these platforms before any work is done.
    let requested: Vec<String> = settings
        .targets
        .iter()
        .map(|overrides| match &overrides.platform {
            Some(platform) => platform.to_string(),
            None => "the base image's platform".to_string(),
        })
        .collect();
    crate::oci::check_output(&settings.output, &requested)?;
    if settings.fetch.offline && matches!(settings.output, ImageReference::Registry(_)) {
        return Err(BuildError::OfflinePush {
            output: settings.output.to_string(),
        });
    }
    let cache = Cache::open(&settings.cache_dir)?;
    let registry = Registry::new(settings.registry.clone())?;

    progress.stage("reading lockfile");
    let lock = Lock::load(&settings.lock)?;
    let project_wheels = read_project_wheels(&settings.app.wheels)?;

    // Choose every platform's wheels first: a platform the lock cannot serve fails the
    // build before anything is downloaded, and every such platform is reported at once.
    let mut plans = Vec::with_capacity(settings.targets.len());
    let mut unserved = Vec::new();
    let mut built_from_source = Vec::new();
    for overrides in &settings.targets {
        progress.stage(&stage_label(
            "reading base image",
            overrides.platform.as_ref(),
            several,
        ));
        let (base, tag_resolution) = read_base(
            &settings.base,
            overrides.platform.as_ref(),
            &cache,
            &registry,
        )
        .await?;
        let ResolvedTarget {
            target,
            interpreter,
            report: target_report,
        } = resolve_target(overrides, &base, &cache)?;
        progress.stage(&stage_label(
            "selecting wheels",
            overrides.platform.as_ref(),
            several,
        ));
        let packages = select_packages(
            &lock,
            &target,
            &settings.selection,
            &settings.index,
            &settings.fetch,
            &cache,
        )
        .await?;
        // A `--wheel` of the project stands for its lock entry: nothing to build.
        let packages = without_project_entries(packages, &project_wheels)?;
        let (packages, built) = crate::source::build_sources(
            packages,
            &target,
            &settings.source,
            &settings.index,
            &settings.fetch,
            &cache,
            u64::try_from(settings.epoch.seconds()).unwrap_or(0),
            progress.clone() as Arc<dyn FetchProgress>,
        )
        .await?;
        for package in built {
            if !built_from_source.iter().any(|known: &BuiltPackage| {
                known.name == package.name && known.sha256 == package.sha256
            }) {
                built_from_source.push(package);
            }
        }
        match choose_wheels(&packages, &target) {
            Ok(chosen) => plans.push(PlatformPlan {
                base,
                tag_resolution,
                target,
                target_report,
                interpreter,
                chosen,
            }),
            Err(error) => unserved.push(error),
        }
    }
    match unserved.len() {
        0 => {}
        1 => return Err(BuildError::Select(unserved.remove(0))),
        _ => return Err(BuildError::UnservedPlatforms { failures: unserved }),
    }

    progress.stage("fetching wheels");
    // One download per wheel, however many platforms install it.
    let fetch_progress: Arc<dyn FetchProgress> = progress.clone() as Arc<dyn FetchProgress>;
    let wheel_files = fetch_wheels(
        plans.iter().map(|plan| plan.chosen.as_slice()),
        &cache,
        &settings.fetch,
        fetch_progress,
    )
    .await?;

    let mut images = Vec::with_capacity(plans.len());
    let mut reports = Vec::with_capacity(plans.len());
    for plan in plans {
        progress.stage(&stage_label(
            "installing wheels into layers",
            Some(&plan.target.platform),
            several,
        ));
        let wheel_paths = plan
            .chosen
            .iter()
            .map(|wheel| {
                wheel
                    .artifact
                    .sha256
                    .and_then(|sha256| wheel_files.get(&sha256).cloned())
                    .ok_or_else(|| {
                        BuildError::Internal(format!(
                            "wheel `{}` was not fetched",
                            wheel.artifact.filename
                        ))
                    })
            })
            .collect::<Result<Vec<PathBuf>, BuildError>>()?;
        progress.stage(&stage_label(
            "checking dependencies",
            Some(&plan.target.platform),
            several,
        ));
        let check = check_wheels(&plan.chosen, &wheel_paths, &project_wheels, &plan.target)?;
        if !settings.allow_conflicts {
            crate::check::check_error(&check)?;
        } else if !check.problems.is_empty() {
            tracing::warn!(
                "the locked packages do not satisfy each other's requirements on {} (allowed by --allow-conflicts):\n{check}",
                plan.target.platform
            );
        }
        let scheme = InstallScheme {
            prefix: settings.prefix.clone(),
            python: plan.target.python,
            interpreter: plan.interpreter.clone(),
        };
        let (layer_reports, new_layers) = {
            let settings = settings.clone();
            let cache = cache.clone();
            let progress = progress.clone();
            let base = plan.base.clone();
            let chosen = plan.chosen.clone();
            let project_wheels = project_wheels.clone();
            tokio::task::spawn_blocking(move || {
                write_layers(
                    &settings,
                    &cache,
                    &scheme,
                    &LayerInputs {
                        chosen: &chosen,
                        wheel_paths: &wheel_paths,
                        project: &project_wheels,
                    },
                    &base,
                    progress.as_ref(),
                )
            })
            .await
            .map_err(|error| BuildError::Internal(error.to_string()))??
        };
        let image = crate::oci::assemble(&plan.base, &new_layers, &settings.image, settings.epoch)?;
        let mut layers: Vec<LayerReport> = plan
            .base
            .layers
            .iter()
            .zip(plan.base.diff_ids.iter())
            .map(|(descriptor, diff_id)| LayerReport {
                kind: "base",
                digest: descriptor.digest,
                diff_id: *diff_id,
                size: descriptor.size,
                packages: Vec::new(),
            })
            .collect();
        layers.extend(layer_reports);
        reports.push(ImageReport {
            digest: image.manifest_digest,
            platform: image.platform.to_string(),
            python: plan.target.python.to_string(),
            target: plan.target_report.clone(),
            base: BaseReport {
                reference: plan.base.reference.clone(),
                digest: plan.base.manifest_digest,
                tag_resolution: plan.tag_resolution,
            },
            layers,
            dependency_problems: check.problems,
        });
        images.push(image);
    }

    progress.stage("writing image");
    let (digest, push) = write_output(images, &settings.output, &cache, &registry).await?;
    reports.sort_by(|left, right| left.platform.cmp(&right.platform));
    Ok(BuildReport {
        digest,
        lock: settings.lock.display().to_string(),
        images: reports,
        push,
        built_from_source,
    })
}

/// The packages to install on `target`: the lock's selection, with files known only
/// by hash looked up on the package indexes (offline: from the cache of earlier
/// lookups).
async fn select_packages(
    lock: &Lock,
    target: &Target,
    selection: &GroupSelection,
    index: &IndexConfig,
    fetch: &FetchOptions,
    cache: &Cache,
) -> Result<Vec<crate::lock::LockedPackage>, BuildError> {
    let packages = lock.select(&target.marker_environment(), selection)?;
    let needs_lookup = packages.iter().any(|package| {
        matches!(
            package.source,
            crate::lock::PackageSource::IndexLookup { .. }
        )
    });
    if !needs_lookup {
        return Ok(packages);
    }
    let find_links = lock.find_links();
    let index = if find_links.is_empty() {
        index.clone()
    } else {
        index.clone().with_lock_find_links(&find_links)
    };
    Ok(
        crate::index::resolve_lookups_cached(packages, &lock.indexes(), &index, fetch, cache)
            .await?,
    )
}

/// Check that the chosen wheels satisfy each other's `Requires-Dist` on `target`.
fn check_wheels(
    chosen: &[ChosenWheel],
    wheel_paths: &[PathBuf],
    project: &[ProjectWheel],
    target: &Target,
) -> Result<CheckReport, BuildError> {
    let distributions = wheel_paths
        .iter()
        .zip(chosen.iter().map(|wheel| &wheel.artifact.filename))
        .chain(project.iter().map(|wheel| (&wheel.path, &wheel.filename)))
        .map(|(path, filename)| crate::check::read_wheel_metadata(path, filename))
        .collect::<Result<Vec<_>, _>>()?;
    debug_assert_eq!(chosen.len() + project.len(), distributions.len());
    Ok(crate::check::check_dependencies(
        &distributions,
        &target.marker_environment(),
    ))
}

/// The wheels one platform's layers install.
struct LayerInputs<'a> {
    chosen: &'a [ChosenWheel],
    wheel_paths: &'a [PathBuf],
    project: &'a [ProjectWheel],
}

/// Read the `--wheel` files: name and version from the file name, SHA-256 and size.
fn read_project_wheels(paths: &[PathBuf]) -> Result<Vec<ProjectWheel>, BuildError> {
    let mut wheels: Vec<ProjectWheel> = Vec::with_capacity(paths.len());
    for path in paths {
        let invalid = |reason: String| BuildError::ProjectWheel {
            path: path.clone(),
            reason,
        };
        let filename = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| invalid("it has no file name".to_string()))?
            .to_string();
        let parsed: crate::wheel::filename::WheelFilename = filename
            .parse()
            .map_err(|error| invalid(format!("{error}")))?;
        let bytes = fs_err::read(path).map_err(|error| {
            invalid(format!(
                "{}; build it first (e.g. `uv build --wheel`) or fix the path",
                std::io::Error::new(error.kind(), error)
            ))
        })?;
        if wheels.iter().any(|other| other.name == parsed.name) {
            return Err(invalid(format!(
                "another `--wheel` installs `{}` too; give each project once",
                parsed.name
            )));
        }
        wheels.push(ProjectWheel {
            path: path.clone(),
            filename,
            name: parsed.name,
            sha256: Sha256Digest::of(&bytes),
        });
    }
    Ok(wheels)
}

/// `packages` without the lock's entries for the projects given as `--wheel`: a source
/// tree entry of that name is what the wheel was built from; a published package of
/// that name is an error.
fn without_project_entries(
    packages: Vec<crate::lock::LockedPackage>,
    project: &[ProjectWheel],
) -> Result<Vec<crate::lock::LockedPackage>, BuildError> {
    let mut kept = Vec::with_capacity(packages.len());
    for package in packages {
        match project.iter().find(|wheel| wheel.name == package.name) {
            None => kept.push(package),
            Some(_) if matches!(package.source, crate::lock::PackageSource::Directory { .. }) => {}
            Some(wheel) => {
                return Err(BuildError::ProjectWheelLocked {
                    path: wheel.path.clone(),
                    name: wheel.name.to_string(),
                });
            }
        }
    }
    Ok(kept)
}

fn layer_report(
    kind: &'static str,
    record: &LayerRecord,
    packages: Vec<PackageReport>,
) -> LayerReport {
    LayerReport {
        kind,
        digest: record.digest,
        diff_id: record.diff_id,
        size: record.size,
        packages,
    }
}

fn new_layer(record: &LayerRecord, created_by: String) -> NewLayer {
    NewLayer {
        diff_id: record.diff_id,
        digest: record.digest,
        size: record.size,
        created_by,
    }
}

fn entries_layer(
    entries: &[crate::layer::LayerEntry],
    epoch: SourceDateEpoch,
    cache: &Cache,
) -> Result<LayerRecord, BuildError> {
    let blob = crate::layer::write_entries_layer(entries, epoch, cache)?;
    Ok(LayerRecord {
        diff_id: blob.diff_id,
        digest: blob.digest,
        size: blob.size,
    })
}

fn write_layers(
    settings: &ImageBuild,
    cache: &Cache,
    scheme: &InstallScheme,
    inputs: &LayerInputs<'_>,
    base: &BaseImage,
    progress: &dyn BuildProgress,
) -> Result<(Vec<LayerReport>, Vec<NewLayer>), BuildError> {
    let LayerInputs {
        chosen,
        wheel_paths,
        project,
    } = *inputs;
    let compiler = match &settings.bytecode {
        Bytecode::Off => None,
        Bytecode::Compile { interpreter } => {
            Some(PycCompiler::find(scheme.python, interpreter.as_deref())?)
        }
    };
    let bytecode_identity = compiler.as_ref().map(PycCompiler::identity);
    // Locked wheels first, then the project's: one install plan each.
    let sources: Vec<(&PathBuf, &str, Option<&str>)> = wheel_paths
        .iter()
        .zip(chosen)
        .map(|(path, wheel)| {
            (
                path,
                wheel.artifact.filename.as_str(),
                Some(wheel.version.as_str()),
            )
        })
        .chain(
            project
                .iter()
                .map(|wheel| (&wheel.path, wheel.filename.as_str(), None)),
        )
        .collect();
    let installs: Vec<WheelInstall> = parallel_map(sources.len(), settings.jobs, |index| {
        let (path, filename, locked_version) = sources[index];
        let mut install = crate::wheel::plan_locked_install(
            &crate::wheel::WheelSource {
                path,
                filename,
                locked_version,
            },
            scheme,
        )?;
        if let Some(compiler) = &compiler {
            install.add_bytecode(compiler)?;
        }
        Ok(install)
    })?;
    crate::wheel::check_collisions(&installs)?;

    let plan_inputs: Vec<PlanInput> = chosen
        .iter()
        .zip(wheel_paths)
        .map(|(wheel, path)| PlanInput {
            name: wheel.name.clone(),
            size: wheel
                .artifact
                .size
                .or_else(|| std::fs::metadata(path).ok().map(|m| m.len()))
                .unwrap_or(0),
        })
        .collect();
    // The venv skeleton, the user, the project's wheels and the copied trees take one
    // layer each of the budget.
    let app = &settings.app;
    let own_layers = 1 + usize::from(app.create_user.is_some()) + project.len() + app.adds.len();
    let plan = plan_layers(
        &plan_inputs,
        settings.max_layers,
        base.layers.len() + own_layers,
    )?;

    let mut reports = Vec::new();
    let mut new_layers = Vec::new();

    if let Some(user) = &app.create_user {
        let entries = crate::app::plan_user(user, base, cache)?;
        let record = entries_layer(&entries, settings.epoch, cache)?;
        progress.layer_done(false);
        reports.push(layer_report("user", &record, Vec::new()));
        new_layers.push(new_layer(
            &record,
            format!(
                "envbuild: user {} ({}:{}) with home {}",
                user.name,
                user.uid,
                user.gid,
                user.home()
            ),
        ));
    }

    // The venv skeleton holds no Python sources: bytecode never changes it.
    let venv_key = layer_key(scheme, settings.epoch, None, &[None]);
    let (venv_record, venv_cached) = layer_from_cache_or_write(cache, &venv_key, || {
        Ok(crate::layer::write_venv_layer(
            scheme,
            settings.epoch,
            cache,
        )?)
    })?;
    progress.layer_done(venv_cached);
    reports.push(layer_report("venv", &venv_record, Vec::new()));
    new_layers.push(new_layer(
        &venv_record,
        format!(
            "envbuild: virtual environment at {} for {}",
            scheme.prefix, scheme.interpreter
        ),
    ));

    // Dependency layers as planned, then one layer per project wheel.
    let mut groups: Vec<(Vec<usize>, &'static str)> = plan
        .layers
        .iter()
        .map(|members| (members.clone(), "packages"))
        .collect();
    groups.extend((0..project.len()).map(|index| (vec![chosen.len() + index], "project")));
    let sha256 = |index: usize| -> Sha256Digest {
        match chosen.get(index) {
            Some(wheel) => wheel.artifact.sha256.unwrap_or(project_placeholder()),
            None => project[index - chosen.len()].sha256,
        }
    };
    let records = parallel_map(groups.len(), settings.jobs, |layer_index| {
        let members = &groups[layer_index].0;
        let digests: Vec<Option<Sha256Digest>> = members.iter().map(|&i| Some(sha256(i))).collect();
        let key = layer_key(
            scheme,
            settings.epoch,
            bytecode_identity.as_deref(),
            &digests,
        );
        let result = layer_from_cache_or_write(cache, &key, || {
            let group: Vec<&WheelInstall> = members.iter().map(|&i| &installs[i]).collect();
            Ok(crate::layer::write_wheels_layer(
                &group,
                settings.epoch,
                cache,
            )?)
        })?;
        progress.layer_done(result.1);
        Ok(result.0)
    })?;
    for ((members, kind), record) in groups.iter().zip(records) {
        let packages: Vec<PackageReport> = members
            .iter()
            .map(|&i| match chosen.get(i) {
                // A locked wheel as the lock names it (the image must not depend on how
                // a wheel spells its own version).
                Some(wheel) => PackageReport {
                    name: wheel.name.to_string(),
                    version: wheel.version.clone(),
                    wheel: wheel.artifact.filename.clone(),
                    sha256: sha256(i).hex(),
                },
                None => PackageReport {
                    name: installs[i].name().to_string(),
                    version: installs[i].version().to_string(),
                    wheel: installs[i].filename().to_string(),
                    sha256: sha256(i).hex(),
                },
            })
            .collect();
        // Name each wheel by its hash, not its file name: lockfile formats spell the same
        // wheel's file name differently (`backports_tarfile-…` vs `backports.tarfile-…`),
        // and the image must not depend on which format locked it.
        let described: Vec<String> = packages
            .iter()
            .map(|package| {
                format!(
                    "{}=={} (sha256:{})",
                    package.name, package.version, package.sha256
                )
            })
            .collect();
        new_layers.push(new_layer(
            &record,
            format!("envbuild: install {}", described.join(", ")),
        ));
        reports.push(layer_report(kind, &record, packages));
    }

    // The copied trees, last: the code changes most often.
    for spec in &app.adds {
        let mut entries = crate::app::plan_add(spec, &app.add_options)?;
        if let Some(compiler) = &compiler {
            crate::app::add::add_bytecode(&mut entries, compiler, &spec.display())?;
        }
        let record = entries_layer(&entries, settings.epoch, cache)?;
        progress.layer_done(false);
        reports.push(layer_report("app", &record, Vec::new()));
        let owner = app.add_options.owner.unwrap_or((0, 0));
        new_layers.push(new_layer(
            &record,
            format!(
                "envbuild: add {} files to /{} (owner {}:{})",
                entries.len(),
                spec.dest,
                owner.0,
                owner.1
            ),
        ));
    }
    Ok((reports, new_layers))
}

/// A locked wheel always has a SHA-256 (selection refuses one without); this stands in
/// where the type cannot say so.
fn project_placeholder() -> Sha256Digest {
    Sha256Digest::from_bytes([0; 32])
}

/// One target of a `fetch` or `check` run, with its wheels in the cache.
#[derive(Debug, Clone)]
pub struct FetchedTarget {
    /// The target.
    pub target: Target,
    /// The chosen wheels.
    pub chosen: Vec<ChosenWheel>,
    /// Their files in the cache, in the same order.
    pub paths: Vec<PathBuf>,
}

/// Fill the cache with every wheel a lock needs for the given targets; returns each
/// target's wheels.
pub async fn fetch(
    run: &FetchRun,
    progress: Arc<dyn FetchProgress>,
) -> Result<Vec<FetchedTarget>, BuildError> {
    let cache = Cache::open(&run.cache_dir)?;
    let registry = Registry::new(run.registry.clone())?;
    let lock = Lock::load(&run.lock)?;
    let mut prepared = Vec::with_capacity(run.targets.len());
    let mut unserved = Vec::new();
    for overrides in &run.targets {
        let target = match &run.base {
            Some(reference) => {
                let (base, _) =
                    read_base(reference, overrides.platform.as_ref(), &cache, &registry).await?;
                resolve_target(overrides, &base, &cache)?.target
            }
            None => target_without_base(overrides)?,
        };
        let packages = select_packages(
            &lock,
            &target,
            &run.selection,
            &run.index,
            &run.fetch,
            &cache,
        )
        .await?;
        let (packages, _) = crate::source::build_sources(
            packages,
            &target,
            &run.source,
            &run.index,
            &run.fetch,
            &cache,
            u64::try_from(run.epoch.seconds()).unwrap_or(0),
            progress.clone(),
        )
        .await?;
        match choose_wheels(&packages, &target) {
            Ok(chosen) => prepared.push((target, chosen)),
            Err(error) => unserved.push(error),
        }
    }
    match unserved.len() {
        0 => {}
        1 => return Err(BuildError::Select(unserved.remove(0))),
        _ => return Err(BuildError::UnservedPlatforms { failures: unserved }),
    }
    let files = fetch_wheels(
        prepared.iter().map(|(_, chosen)| chosen.as_slice()),
        &cache,
        &run.fetch,
        progress,
    )
    .await?;
    Ok(prepared
        .into_iter()
        .map(|(target, chosen)| {
            let paths = chosen
                .iter()
                .filter_map(|wheel| files.get(&wheel.artifact.sha256?).cloned())
                .collect();
            FetchedTarget {
                target,
                chosen,
                paths,
            }
        })
        .collect())
}

/// The packages a run's lock selects for its first target (the base's, or the one the
/// target flags describe), for `envbuild drift`. Nothing is downloaded but index pages
/// for locks that record hashes only.
pub async fn locked_packages(
    run: &FetchRun,
) -> Result<Vec<crate::lock::LockedPackage>, BuildError> {
    let cache = Cache::open(&run.cache_dir)?;
    let registry = Registry::new(run.registry.clone())?;
    let lock = Lock::load(&run.lock)?;
    let overrides = run.targets.first().cloned().unwrap_or_default();
    let target = match &run.base {
        Some(reference) => {
            let (base, _) =
                read_base(reference, overrides.platform.as_ref(), &cache, &registry).await?;
            resolve_target(&overrides, &base, &cache)?.target
        }
        None => target_without_base(&overrides)?,
    };
    select_packages(
        &lock,
        &target,
        &run.selection,
        &run.index,
        &run.fetch,
        &cache,
    )
    .await
}

/// `envbuild check`: fetch what a lock needs and check, per target, that the locked
/// packages satisfy each other's requirements.
pub async fn check(
    run: &FetchRun,
    progress: Arc<dyn FetchProgress>,
) -> Result<Vec<(Target, CheckReport)>, BuildError> {
    let fetched = fetch(run, progress).await?;
    fetched
        .into_iter()
        .map(|entry| {
            let report = check_wheels(&entry.chosen, &entry.paths, &[], &entry.target)?;
            Ok((entry.target, report))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::platform::Libc;

    fn digest(text: &str) -> Sha256Digest {
        Sha256Digest::of(text.as_bytes())
    }

    fn image(platform: &str) -> ImageReport {
        ImageReport {
            digest: digest(platform),
            platform: platform.to_string(),
            python: "3.11.2".to_string(),
            target: TargetReport {
                implementation: "cpython",
                python: Sourced {
                    value: "3.11.2".to_string(),
                    source: Source::Base,
                },
                interpreter: Sourced {
                    value: "/usr/bin/python3.11".to_string(),
                    source: Source::Base,
                },
                platform: Sourced {
                    value: platform.to_string(),
                    source: Source::Flag,
                },
                libc: LibcReport {
                    kind: "glibc",
                    version: "2.36".to_string(),
                    source: Source::Base,
                },
                forced: false,
            },
            base: BaseReport {
                reference: "oci:/images/base:py311".to_string(),
                digest: digest("base"),
                tag_resolution: None,
            },
            dependency_problems: Vec::new(),
            layers: vec![LayerReport {
                kind: "venv",
                digest: digest("venv"),
                diff_id: digest("venv diff"),
                size: 320,
                packages: Vec::new(),
            }],
        }
    }

    fn schema_errors(report: &Value) -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/report.schema.json");
        let schema: Value = serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(report)
            .map(|error| error.to_string())
            .collect()
    }

    #[test]
    fn ok_one_platform_report_keeps_the_flat_shape() {
        let report = BuildReport {
            digest: digest("linux/amd64"),
            lock: "pylock.toml".to_string(),
            images: vec![image("linux/amd64")],
            push: None,
            built_from_source: Vec::new(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "base", "digest", "layers", "lock", "platform", "python", "target"
            ]
        );
        assert_eq!(json["platform"], "linux/amd64");
        assert_eq!(json["digest"], digest("linux/amd64").oci());
        assert_eq!(json["layers"][0]["kind"], "venv");
        assert_eq!(schema_errors(&json), Vec::<String>::new());
    }

    #[test]
    fn ok_multi_platform_report_lists_images() {
        let report = BuildReport {
            digest: digest("index"),
            lock: "pylock.toml".to_string(),
            images: vec![image("linux/amd64"), image("linux/arm64")],
            push: None,
            built_from_source: Vec::new(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["digest", "images", "lock"]
        );
        assert_eq!(json["digest"], digest("index").oci());
        assert_eq!(json["images"][1]["platform"], "linux/arm64");
        assert_eq!(json["images"][1]["digest"], digest("linux/arm64").oci());
        assert_eq!(schema_errors(&json), Vec::<String>::new());
        // The shapes do not mix: a multi-platform report with a top-level platform fails.
        let mut mixed = json.clone();
        mixed["platform"] = json!("linux/amd64");
        assert!(!schema_errors(&mixed).is_empty());
    }

    #[test]
    fn err_unserved_platforms_name_each_platform_and_package() {
        use crate::lock::PackageName;
        use crate::platform::select::SelectProblem;
        let failure = |platform: &str| SelectError {
            target: Box::new(Target {
                platform: platform.parse().unwrap(),
                python: "3.11".parse().unwrap(),
                libc: Libc::Glibc {
                    major: 2,
                    minor: 36,
                },
                allow_linux_tag: false,
            }),
            problems: vec![SelectProblem::NoCompatibleWheel {
                name: "markupsafe".parse::<PackageName>().unwrap(),
                version: Some("3.0.4".to_string()),
                offered: vec!["markupsafe-3.0.4-cp311-cp311-manylinux2014_x86_64.whl".to_string()],
                has_sdist: false,
                preferred: vec!["cp311-cp311-manylinux_2_36_aarch64".to_string()],
            }],
        };
        let error = BuildError::UnservedPlatforms {
            failures: vec![failure("linux/arm64"), failure("linux/s390x")],
        };
        let message = error.to_string();
        assert!(
            message.starts_with(
                "the lockfile cannot serve 2 of the requested platforms (linux/arm64, linux/s390x)"
            ),
            "{message}"
        );
        assert!(message.contains("CPython 3.11 on linux/arm64"), "{message}");
        assert!(message.contains("CPython 3.11 on linux/s390x"), "{message}");
        assert!(message.contains("`markupsafe` 3.0.4"), "{message}");
    }
}
