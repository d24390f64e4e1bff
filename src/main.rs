//! The `envbuild` command line: argument parsing, settings resolution, progress and
//! report rendering. All work happens in the library (`envbuild::build`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use envbuild::app::{AddOptions, AddSpec};
use envbuild::build::{AppLayers, BuildProgress, Bytecode, FetchRun, ImageBuild, TargetOverrides};
use envbuild::cache::Cache;
use envbuild::config::{CommandLine, ConfigFile, DriftPolicy, ImageConfig, Origin};
use envbuild::drift::DriftReport;
use envbuild::fetch::{FetchOptions, FetchProgress, FetchRequest};
use envbuild::http::{ByteSize, MinimumRate, redact_text};
use envbuild::index::{IndexConfig, IndexEnvironment, IndexFlags};
use envbuild::lock::GroupSelection;
use envbuild::oci::{ImageReference, ImageSettings};
use envbuild::platform::{Libc, Platform, PythonVersion};
use envbuild::registry::auth::AuthEnvironment;
use envbuild::registry::tls::TransportOptions;
use envbuild::registry::{RegistryOptions, RegistryReference};
use envbuild::repro::SourceDateEpoch;
use envbuild::source::SourceOptions;
use envbuild::untrusted::escape_except;

/// Turn a Python lockfile into a reproducible OCI image, without a container daemon.
#[derive(Debug, Parser)]
#[command(name = "envbuild", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a lockfile and a base image.
    Image(Box<ImageArgs>),
    /// Download every wheel a lockfile needs into the cache (for later `--offline` builds).
    Fetch(Box<FetchArgs>),
    /// Check that the locked packages satisfy each other's requirements on the target
    /// (exit code 1 and the chain to each problem if not).
    Check(Box<CheckArgs>),
    /// Show the settings `image` would use (flags over the config file over defaults)
    /// and where each came from; `--schema` prints the config file's JSON Schema.
    Config(Box<ConfigArgs>),
    /// Compare the versions the services of a fleet lock (or the `--lock` files given):
    /// every package locked at more than one version, and the `[drift]` policy's
    /// violations (exit code 1).
    Drift(Box<DriftArgs>),
    /// Store credentials for a registry in the docker config (`$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json`, mode 0600), where `image --push` and `--base` find them.
    Login(LoginArgs),
}

#[derive(Debug, Args)]
struct LoginArgs {
    /// The registry, `HOST[:PORT]`.
    registry: String,
    /// User name.
    #[arg(long, short = 'u')]
    username: String,
    /// Read the password (or access token) from standard input instead of
    /// `ENVBUILD_REGISTRY_PASSWORD`.
    #[arg(long)]
    password_stdin: bool,
}

/// Flags that choose the target and the packages; shared by `image`, `fetch` and
/// `check`. Every one of them can also be a key of the config file (`envbuild.toml` or
/// `[tool.envbuild]` in `pyproject.toml`); a flag wins over its key.
#[derive(Debug, Args)]
struct SelectionArgs {
    /// The config file (default: `envbuild.toml`, or `pyproject.toml` with a
    /// `[tool.envbuild]` table, in the working folder or the nearest folder above it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Ignore config files.
    #[arg(long, conflicts_with = "config")]
    no_config: bool,
    /// The lockfile: `pylock.toml` (PEP 751), `uv.lock`, `poetry.lock`, `Pipfile.lock`
    /// or a requirements file with hashes.
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Target platform, e.g. `linux/amd64` or `linux/arm64` (default: the base image's).
    /// Several, comma-separated (`linux/amd64,linux/arm64`): `image` builds one image per
    /// platform from the same lockfile and writes an image index; `fetch` fills the cache
    /// for all of them.
    #[arg(long, value_name = "OS/ARCH", value_delimiter = ',')]
    platform: Vec<Platform>,
    /// Target Python version, `X.Y` or `X.Y.Z` (default: detected from the base image).
    #[arg(long, value_name = "X.Y")]
    python: Option<PythonVersion>,
    /// Target glibc version (default: detected from the base image).
    #[arg(long, value_name = "X.Y", conflicts_with = "musl")]
    glibc: Option<String>,
    /// Target musl version, for musllinux wheels (default: detected from the base image).
    #[arg(long, value_name = "X.Y")]
    musl: Option<String>,
    /// Accept wheels tagged plain `linux_<arch>` (not portable; off by default).
    #[arg(long)]
    allow_linux_tag: bool,
    /// Let `--python`, `--glibc`/`--musl` and `--platform` win over what the base image's
    /// files say (for bases whose files mislead detection; the report records it).
    #[arg(long)]
    force_target: bool,
    /// Extras to install (comma-separated or repeated).
    #[arg(long, value_name = "EXTRA", value_delimiter = ',')]
    extras: Vec<String>,
    /// Dependency groups to install in addition to the lock's default groups.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Do not install the lock's default groups.
    #[arg(long)]
    no_default_groups: bool,
    /// Cache folder for wheels, blobs and layers.
    #[arg(long, value_name = "DIR", env = "ENVBUILD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// No network at all: wheels, index lookups and registry bases come from the cache.
    #[arg(long)]
    offline: bool,
    /// Parallel downloads and layer writers [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Package index (simple API) for lockfiles that record hashes but no URLs
    /// (requirements files, `poetry.lock`, `Pipfile.lock`); overrides the environment
    /// (`UV_DEFAULT_INDEX`, `PIP_INDEX_URL`, ...), `uv.toml` and `pip.conf`.
    #[arg(long, value_name = "URL")]
    index_url: Option<String>,
    /// Further package indexes (repeatable).
    #[arg(long = "extra-index-url", value_name = "URL")]
    extra_index_urls: Vec<String>,
    /// Folders or pages of wheels to look in as well (repeatable).
    #[arg(long = "find-links", value_name = "DIR|URL")]
    find_links: Vec<String>,
    /// Ignore `pip.conf` and `uv.toml` (flags and the environment still count).
    #[arg(long)]
    no_index_config: bool,
    /// Extra PEM CA certificates to trust for registries (besides the system's).
    #[arg(long, value_name = "FILE", env = "ENVBUILD_REGISTRY_CA_FILE")]
    registry_ca_file: Option<PathBuf>,
    /// A registry (`HOST[:PORT]`) to reach over plain HTTP (repeatable; loopback
    /// registries always may be).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Largest artifact accepted when the lockfile records no size (`512MiB`, `4GiB`)
    /// [default: 2GiB].
    #[arg(long, value_name = "SIZE")]
    max_artifact_size: Option<ByteSize>,
    /// Slowest download accepted, per second averaged over 30 s (`0` turns it off)
    /// [default: 10KiB].
    #[arg(long, value_name = "SIZE")]
    min_transfer_rate: Option<ByteSize>,
}

#[derive(Debug, Args)]
struct ImageArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Base image holding the interpreter: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker://HOST/REPO[:TAG|@DIGEST]` or `REPO[:TAG]`; for several platforms, an
    /// image index that has them all.
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// The base image's name recorded in the `org.opencontainers.image.base.name`
    /// annotation, as a registry reference (`HOST/REPO:TAG`). Default: the `--base`
    /// reference when it is a registry's; nothing for a local layout or archive, whose
    /// path must not change the image.
    #[arg(long, value_name = "REF")]
    base_name: Option<String>,
    /// Where to write the image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE[:NAME[:TAG]]` for `docker load` / `podman load` (one platform;
    /// the file name cannot contain `:`, e.g. `docker-archive:app.tar:myapp:1.0`), or a
    /// registry: `docker://HOST/REPO[:TAG]`.
    #[arg(long, value_name = "REF", conflicts_with = "push")]
    output: Option<String>,
    /// Push to a registry: `HOST[:PORT]/REPO[:TAG]` (the same as `--output docker://...`).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    /// The base image's Python interpreter, an absolute path (default: detected).
    #[arg(long, value_name = "PATH")]
    interpreter: Option<String>,
    /// Install prefix of the virtual environment in the image [default: /opt/venv].
    #[arg(long, value_name = "DIR")]
    prefix: Option<String>,
    /// Most layers the image may have, counting the base image's [default: 100].
    #[arg(long, value_name = "N")]
    max_layers: Option<usize>,
    /// Image entrypoint: a JSON array or a whitespace-separated command.
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Image command: a JSON array or a whitespace-separated command.
    #[arg(long, value_name = "CMD")]
    cmd: Option<String>,
    /// Environment variable for the image (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Working directory of the image.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// User the image runs as.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Image label (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// Manifest annotation (repeatable).
    #[arg(long = "annotation", value_name = "K=V")]
    annotations: Vec<String>,
    /// Print a JSON report on stdout instead of the digest (schemas/report.schema.json;
    /// a multi-platform build lists each platform's image under `images`).
    #[arg(long)]
    json: bool,
    /// Print the settings (flags over the config file over defaults), with where each
    /// came from, and build nothing.
    #[arg(long)]
    print_config: bool,
    /// Compile `.pyc` files (PEP 552, unchecked hash) into each wheel's layer, with a
    /// host CPython of the target's minor version.
    #[arg(long)]
    compile_bytecode: bool,
    /// The host CPython used by `--compile-bytecode` (default: `python3.X` on `PATH`).
    #[arg(long, value_name = "PYTHON")]
    compile_with: Option<PathBuf>,
    /// Build even when the locked packages do not satisfy each other's requirements;
    /// the problems are printed as warnings and listed in the JSON report.
    #[arg(long)]
    allow_conflicts: bool,
    /// Refuse every source build (sdists, git and folder sources): wheels only.
    #[arg(long)]
    no_build: bool,
    /// Never build this package from source (repeatable).
    #[arg(long = "no-build-package", value_name = "NAME")]
    no_build_packages: Vec<String>,
    /// The host CPython that makes source-build environments (default: `python3.X`
    /// on `PATH`, for the target's Python `3.X`).
    #[arg(long, value_name = "PYTHON")]
    build_python: Option<PathBuf>,
    /// A pip/uv constraints file pinning the build requirements of source builds.
    #[arg(long, value_name = "FILE")]
    build_constraints: Option<PathBuf>,
    /// The time limit of each source-build step, in seconds (default 600).
    #[arg(long, value_name = "SECONDS")]
    build_timeout: Option<u64>,
    /// A wheel of the project itself (repeatable), installed like a locked wheel in a
    /// layer of its own above the dependencies; its requirements are checked against
    /// the lock.
    #[arg(long = "wheel", value_name = "FILE")]
    wheels: Vec<PathBuf>,
    /// Copy a file or folder into the image (repeatable), in a layer of its own:
    /// `SRC:DEST`, DEST absolute.
    #[arg(long = "add", value_name = "SRC:DEST")]
    add: Vec<String>,
    /// Exclude patterns for `--add` folders, with `.dockerignore` rules [default:
    /// `.envbuildignore`, then `.dockerignore`, in SRC].
    #[arg(long, value_name = "FILE")]
    ignore_file: Option<PathBuf>,
    /// Owner of the `--add` files (default root: read-only to the service).
    #[arg(long, value_name = "UID:GID")]
    chown: Option<String>,
    /// Add a user and group (default ids 65532) with a home folder, and run as it
    /// unless `--user` says otherwise.
    #[arg(long, value_name = "NAME[:UID[:GID]]")]
    create_user: Option<String>,
    /// Write one `REF@DIGEST` line per image built to FILE.
    #[arg(long, value_name = "FILE")]
    image_refs: Option<PathBuf>,
    /// Build every service of the config file's `[services.NAME]` tables in one run
    /// (after checking its `[drift]` policy).
    #[arg(long, conflicts_with = "service")]
    all: bool,
    /// Build this service of the config file (repeatable).
    #[arg(long = "service", value_name = "NAME")]
    service: Vec<String>,
}

#[derive(Debug, Args)]
struct DriftArgs {
    /// The config file whose services to compare (default: found as for `image`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Compare these lockfiles instead of the config's services (repeatable).
    #[arg(long = "lock", value_name = "FILE")]
    locks: Vec<PathBuf>,
    /// Target Python version for `--lock` files, whose markers are evaluated for it
    /// [default: 3.12].
    #[arg(long, value_name = "X.Y")]
    python: Option<PythonVersion>,
    /// Print the matrix and the violations as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Print the JSON Schema of the config file (`schemas/config.schema.json`).
    #[arg(long)]
    schema: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Base image to detect the target from.
    #[arg(long, value_name = "REF")]
    base: Option<String>,
    /// Print the problems as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct FetchArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Base image to detect the target from.
    #[arg(long, value_name = "REF")]
    base: Option<String>,
}

/// `Some(true)` for a flag that was given, `None` for one that was not (so the config
/// file's key counts).
fn given(flag: bool) -> Option<bool> {
    flag.then_some(true)
}

/// A list flag, `None` when it was not given.
fn given_list<T: ToString>(values: &[T]) -> Option<Vec<String>> {
    (!values.is_empty()).then(|| values.iter().map(ToString::to_string).collect())
}

/// `KEY=VALUE` flags as a map (a later value for a key wins), `None` when none was given.
fn given_map(values: &[String], flag: &str) -> Result<Option<BTreeMap<String, String>>> {
    if values.is_empty() {
        return Ok(None);
    }
    values
        .iter()
        .map(|text| parse_key_value(text, flag))
        .collect::<Result<BTreeMap<_, _>>>()
        .map(Some)
}

/// The shared flags as settings.
fn selection_flags(args: &SelectionArgs) -> ImageConfig {
    let SelectionArgs {
        config: _,
        no_config: _,
        lock,
        platform,
        python,
        glibc,
        musl,
        allow_linux_tag,
        force_target,
        extras,
        groups,
        no_default_groups,
        cache_dir,
        offline,
        jobs,
        index_url,
        extra_index_urls,
        find_links,
        no_index_config,
        registry_ca_file,
        insecure_registries,
        max_artifact_size,
        min_transfer_rate,
    } = args;
    ImageConfig {
        lock: lock.clone(),
        platforms: given_list(platform),
        python: python.map(|version| version.to_string()),
        glibc: glibc.clone(),
        musl: musl.clone(),
        allow_linux_tag: given(*allow_linux_tag),
        force_target: given(*force_target),
        extras: given_list(extras),
        groups: given_list(groups),
        no_default_groups: given(*no_default_groups),
        cache_dir: cache_dir.clone(),
        offline: given(*offline),
        jobs: *jobs,
        index_url: index_url.clone(),
        extra_index_urls: given_list(extra_index_urls),
        find_links: given_list(find_links),
        no_index_config: given(*no_index_config),
        registry_ca_file: registry_ca_file.clone(),
        insecure_registries: given_list(insecure_registries),
        max_artifact_size: max_artifact_size.map(|size| size.to_string()),
        min_transfer_rate: min_transfer_rate.map(|size| size.to_string()),
        ..ImageConfig::default()
    }
}

/// The `image` flags as settings.
fn image_flags(args: &ImageArgs) -> Result<ImageConfig> {
    let ImageArgs {
        selection,
        base,
        base_name,
        output,
        push,
        interpreter,
        prefix,
        max_layers,
        entrypoint,
        cmd,
        env,
        workdir,
        user,
        labels,
        annotations,
        json: _,
        print_config: _,
        compile_bytecode,
        compile_with,
        allow_conflicts,
        no_build,
        no_build_packages,
        build_python,
        build_constraints,
        build_timeout,
        wheels,
        add,
        ignore_file,
        chown,
        create_user,
        image_refs,
        all: _,
        service: _,
    } = args;
    let command = |text: &Option<String>, flag: &str| -> Result<Option<CommandLine>> {
        text.as_deref()
            .map(|text| parse_command(text, flag).map(CommandLine::Arguments))
            .transpose()
    };
    Ok(ImageConfig {
        base: base.clone(),
        base_name: base_name.clone(),
        output: output.clone(),
        push: push.clone(),
        interpreter: interpreter.clone(),
        prefix: prefix.clone(),
        max_layers: *max_layers,
        entrypoint: command(entrypoint, "--entrypoint")?,
        cmd: command(cmd, "--cmd")?,
        env: given_map(env, "--env")?,
        workdir: workdir.clone(),
        user: user.clone(),
        labels: given_map(labels, "--label")?,
        annotations: given_map(annotations, "--annotation")?,
        compile_bytecode: given(*compile_bytecode),
        compile_with: compile_with.clone(),
        allow_conflicts: given(*allow_conflicts),
        no_build: given(*no_build),
        no_build_packages: (!no_build_packages.is_empty()).then(|| no_build_packages.clone()),
        build_python: build_python.clone(),
        build_constraints: build_constraints.clone(),
        build_timeout: *build_timeout,
        wheels: (!wheels.is_empty()).then(|| wheels.clone()),
        add: given_list(add),
        ignore_file: ignore_file.clone(),
        chown: chown.clone(),
        create_user: create_user.clone(),
        image_refs: image_refs.clone(),
        ..selection_flags(selection)
    })
}

/// The config file that applies: `--config`, else the one found from the working folder
/// upward (none with `--no-config`).
fn config_file(args: &SelectionArgs) -> Result<Option<ConfigFile>> {
    if args.no_config {
        return Ok(None);
    }
    if let Some(path) = &args.config {
        return Ok(Some(envbuild::config::load(path)?));
    }
    let folder = std::env::current_dir().context("cannot read the working folder")?;
    Ok(envbuild::config::discover(&folder)?)
}

/// Flags over the config file: the settings and where each came from.
fn merged_settings(
    args: &SelectionArgs,
    flags: &ImageConfig,
) -> Result<(ImageConfig, BTreeMap<String, Origin>, Option<ConfigFile>)> {
    let file = config_file(args)?;
    let (merged, origins) = match &file {
        Some(file) => file.settings.overlay(flags, Some(file)),
        None => ImageConfig::default().overlay(flags, None),
    };
    Ok((merged, origins, file))
}

fn parse_key_value(text: &str, flag: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => bail!("`{flag} {text}` is not of the form KEY=VALUE"),
    }
}

fn parse_command(text: &str, flag: &str) -> Result<Vec<String>> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text).with_context(|| {
            format!("`{flag}` looks like a JSON array but is not a list of strings: {text}")
        })
    } else {
        Ok(text.split_whitespace().map(str::to_string).collect())
    }
}

fn parse_libc(settings: &ImageConfig) -> Result<Option<Libc>> {
    fn version(text: &str, flag: &str) -> Result<(u32, u32)> {
        let parsed = text
            .split_once('.')
            .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
        parsed.with_context(|| format!("`{flag} {text}` is not a version of the form X.Y"))
    }
    match (&settings.glibc, &settings.musl) {
        (Some(_), Some(_)) => {
            bail!("give either `--glibc` (`glibc`) or `--musl` (`musl`), not both")
        }
        (Some(text), None) => {
            let (major, minor) = version(text, "--glibc")?;
            Ok(Some(Libc::Glibc { major, minor }))
        }
        (None, Some(text)) => {
            let (major, minor) = version(text, "--musl")?;
            Ok(Some(Libc::Musl { major, minor }))
        }
        (None, None) => Ok(None),
    }
}

/// A value parsed from its text, the error naming the flag and key it came from.
fn parse_setting<T>(text: &str, flag: &str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .with_context(|| format!("invalid `{flag} {text}`"))
}

/// Settings common to every command, resolved from flags, config and environment.
struct Common {
    lock: PathBuf,
    selection: GroupSelection,
    cache_dir: PathBuf,
    fetch: FetchOptions,
    jobs: usize,
    index: IndexConfig,
    registry: RegistryOptions,
}

fn resolve_common(settings: &ImageConfig) -> Result<Common> {
    let lock = settings.lock.clone().context(
        "no lockfile: pass `--lock FILE`, or set `lock` in `envbuild.toml` (or `[tool.envbuild]` in `pyproject.toml`)",
    )?;
    let jobs = usize::from(settings.jobs.unwrap_or(4)).clamp(1, 64);
    let offline = settings.offline.unwrap_or(false);
    let size = |text: &Option<String>, flag: &str, default: &str| -> Result<ByteSize> {
        parse_setting(text.as_deref().unwrap_or(default), flag)
    };
    let max_artifact_size = size(&settings.max_artifact_size, "--max-artifact-size", "2GiB")?;
    let min_transfer_rate = size(&settings.min_transfer_rate, "--min-transfer-rate", "10KiB")?;
    let min_rate = MinimumRate {
        bytes_per_second: min_transfer_rate.0,
        ..MinimumRate::default()
    };
    let flags = IndexFlags {
        index_url: settings.index_url.clone(),
        extra_index_urls: settings.extra_index_urls.clone().unwrap_or_default(),
        find_links: settings.find_links.clone().unwrap_or_default(),
        no_config: settings.no_index_config.unwrap_or(false),
    };
    let index = IndexConfig::resolve(&flags, &IndexEnvironment::from_process_env())?;
    Ok(Common {
        lock,
        selection: GroupSelection {
            extras: settings
                .extras
                .iter()
                .flatten()
                .filter(|e| !e.is_empty())
                .cloned()
                .collect(),
            groups: settings.groups.iter().flatten().cloned().collect(),
            no_default_groups: settings.no_default_groups.unwrap_or(false),
        },
        cache_dir: settings
            .cache_dir
            .clone()
            .unwrap_or_else(Cache::default_root),
        fetch: FetchOptions {
            jobs,
            offline,
            max_artifact_size,
            min_rate,
            ..FetchOptions::default()
        },
        jobs,
        index,
        registry: RegistryOptions {
            transport: TransportOptions {
                ca_file: settings.registry_ca_file.clone(),
                insecure: settings.insecure_registries.clone().unwrap_or_default(),
            },
            auth: AuthEnvironment::from_process_env(),
            jobs,
            offline,
            min_rate,
            ..RegistryOptions::default()
        },
    })
}

/// One target per platform (refusing one given twice), or one with no platform.
fn resolve_targets(settings: &ImageConfig) -> Result<Vec<TargetOverrides>> {
    if let Some(path) = &settings.interpreter
        && !path.starts_with('/')
    {
        bail!("`--interpreter {path}` must be an absolute path inside the image");
    }
    let overrides = |platform: Option<Platform>| -> Result<TargetOverrides> {
        Ok(TargetOverrides {
            platform,
            python: settings
                .python
                .as_deref()
                .map(|text| parse_setting(text, "--python"))
                .transpose()?,
            libc: parse_libc(settings)?,
            interpreter: settings.interpreter.clone(),
            allow_linux_tag: settings.allow_linux_tag.unwrap_or(false),
            force: settings.force_target.unwrap_or(false),
        })
    };
    let platforms: Vec<Platform> = settings
        .platforms
        .iter()
        .flatten()
        .map(|text| parse_setting(text, "--platform"))
        .collect::<Result<_>>()?;
    if platforms.is_empty() {
        return Ok(vec![overrides(None)?]);
    }
    let mut seen = std::collections::BTreeSet::new();
    for platform in &platforms {
        if !seen.insert(platform) {
            bail!("`--platform` names `{platform}` twice; give each platform once");
        }
    }
    platforms
        .into_iter()
        .map(|platform| overrides(Some(platform)))
        .collect()
}

/// The `org.opencontainers.image.base.name` annotation: `--base-name` or a registry
/// base, in canonical form; empty (no annotation) for a local base, so that where the
/// base sits on this machine never reaches the image or its digest.
fn base_name_annotation(base: &ImageReference, given: Option<&str>) -> Result<String> {
    let (flag, text) = match (given, base) {
        (Some(text), _) => ("--base-name", text),
        (None, ImageReference::Registry(text)) => ("--base", text.as_str()),
        (None, _) => return Ok(String::new()),
    };
    let reference: RegistryReference = text.parse().with_context(|| {
        format!(
            "`{flag} {text}` is not a registry reference such as `registry.example/python:3.12`"
        )
    })?;
    Ok(reference.canonical())
}

/// The settings of `envbuild image`, as a config file would hold them, with the source of
/// each: what `--print-config` shows.
fn render_settings(settings: &ImageConfig, origins: &BTreeMap<String, Origin>) -> String {
    let value = serde_json::to_value(settings).expect("settings serialize");
    let mut text = String::new();
    for (key, value) in value.as_object().into_iter().flatten() {
        if value.is_null() {
            continue;
        }
        let origin = origins
            .get(key)
            .map(ToString::to_string)
            .unwrap_or_else(|| "default".to_string());
        let value = toml::Value::try_from(value)
            .map(|value| value.to_string())
            .unwrap_or_else(|_| value.to_string());
        text.push_str(&format!("{key} = {value}  # {origin}\n"));
    }
    text
}

fn resolve_image(settings: &ImageConfig, epoch: SourceDateEpoch) -> Result<ImageBuild> {
    let prefix = settings
        .prefix
        .as_deref()
        .unwrap_or("/opt/venv")
        .trim_end_matches('/')
        .to_string();
    if !prefix.starts_with('/') || prefix.len() < 2 {
        bail!("`--prefix {prefix}` must be an absolute path other than `/`, such as `/opt/venv`");
    }
    let base: ImageReference = match &settings.base {
        Some(text) => parse_setting(text, "--base")?,
        None => bail!(
            "no base image: pass `--base REF`, or set `base` in `envbuild.toml` (or `[tool.envbuild]` in `pyproject.toml`)"
        ),
    };
    let output: ImageReference = match (&settings.output, &settings.push) {
        (Some(output), None) => parse_setting(output, "--output")?,
        (None, Some(destination)) => {
            let destination = destination.strip_prefix("docker://").unwrap_or(destination);
            parse_setting(&format!("docker://{destination}"), "--push")?
        }
        (Some(_), Some(_)) => bail!(
            "give either `--output REF` or `--push REF`, not both (the config file may set one of them)"
        ),
        (None, None) => bail!(
            "nowhere to write the image: pass `--output REF` or `--push REF`, or set `output` or `push` in `envbuild.toml`"
        ),
    };
    if settings.compile_with.is_some() && settings.compile_bytecode != Some(true) {
        bail!("`--compile-with` is for `--compile-bytecode`; give both, or neither");
    }
    let common = resolve_common(settings)?;
    let targets = resolve_targets(settings)?;
    let app = resolve_app(settings)?;
    let image = ImageSettings {
        env: settings
            .env
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        entrypoint: settings.entrypoint.as_ref().map(CommandLine::arguments),
        cmd: settings.cmd.as_ref().map(CommandLine::arguments),
        workdir: settings.workdir.clone(),
        user: settings.user.clone().or_else(|| {
            app.create_user
                .as_ref()
                .map(envbuild::app::NewUser::image_user)
        }),
        labels: settings.labels.clone().unwrap_or_default(),
        annotations: settings.annotations.clone().unwrap_or_default(),
        venv: prefix.clone(),
        base_name: base_name_annotation(&base, settings.base_name.as_deref())?,
    };
    Ok(ImageBuild {
        lock: common.lock,
        selection: common.selection,
        targets,
        base,
        output,
        prefix,
        cache_dir: common.cache_dir,
        fetch: common.fetch,
        jobs: common.jobs,
        max_layers: settings.max_layers.unwrap_or(100),
        image,
        epoch,
        bytecode: if settings.compile_bytecode == Some(true) {
            Bytecode::Compile {
                interpreter: settings.compile_with.clone(),
            }
        } else {
            Bytecode::Off
        },
        allow_conflicts: settings.allow_conflicts.unwrap_or(false),
        source: source_options(settings)?,
        index: common.index,
        registry: common.registry,
        app,
    })
}

/// `--wheel`, `--add`, `--ignore-file`, `--chown` and `--create-user`.
fn resolve_app(settings: &ImageConfig) -> Result<AppLayers> {
    let folder = std::env::current_dir().context("cannot read the working folder")?;
    let adds = settings
        .add
        .iter()
        .flatten()
        .map(|text| AddSpec::parse(text, &folder))
        .collect::<Result<Vec<_>, _>>()?;
    let owner = settings
        .chown
        .as_deref()
        .map(|text| {
            text.split_once(':')
                .and_then(|(uid, gid)| Some((uid.parse().ok()?, gid.parse().ok()?)))
                .with_context(|| {
                    format!("`--chown {text}` is not of the form UID:GID, such as `1000:1000`")
                })
        })
        .transpose()?;
    if (owner.is_some() || settings.ignore_file.is_some()) && adds.is_empty() {
        bail!("`--chown` and `--ignore-file` are for `--add`; give `--add SRC:DEST` too");
    }
    Ok(AppLayers {
        wheels: settings.wheels.clone().unwrap_or_default(),
        adds,
        add_options: AddOptions {
            ignore_file: settings.ignore_file.clone(),
            owner,
        },
        create_user: settings
            .create_user
            .as_deref()
            .map(envbuild::app::NewUser::parse)
            .transpose()?,
    })
}

/// How source builds run, from the merged settings.
fn source_options(settings: &ImageConfig) -> Result<SourceOptions> {
    Ok(SourceOptions {
        no_build: settings.no_build.unwrap_or(false),
        no_build_packages: settings
            .no_build_packages
            .iter()
            .flatten()
            .map(|name| {
                name.parse::<envbuild::lock::PackageName>()
                    .map_err(|error| {
                        anyhow::anyhow!(
                            "`--no-build-package {name}` is not a package name: {error}"
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?,
        build_python: settings.build_python.clone(),
        build_constraints: settings.build_constraints.clone(),
        timeout: std::time::Duration::from_secs(match settings.build_timeout {
            Some(0) => bail!("`--build-timeout` must be at least 1 second"),
            Some(seconds) => seconds,
            None => 600,
        }),
    })
}

/// `fetch` and `check`: the shared flags over the config file.
fn resolve_fetch(args: &SelectionArgs, base: &Option<String>) -> Result<FetchRun> {
    let flags = ImageConfig {
        base: base.clone(),
        ..selection_flags(args)
    };
    let (settings, _, _) = merged_settings(args, &flags)?;
    fetch_run(settings)
}

/// A `fetch` run (also what `drift` reads a service's lock with) from settings.
fn fetch_run(settings: ImageConfig) -> Result<FetchRun> {
    let common = resolve_common(&settings)?;
    let source = source_options(&settings)?;
    Ok(FetchRun {
        lock: common.lock,
        selection: common.selection,
        base: settings
            .base
            .as_deref()
            .map(|text| parse_setting(text, "--base"))
            .transpose()?,
        targets: resolve_targets(&ImageConfig {
            interpreter: None,
            ..settings
        })?,
        cache_dir: common.cache_dir,
        fetch: common.fetch,
        index: common.index,
        source,
        epoch: read_epoch()?,
        registry: common.registry,
    })
}

/// The services `image --all` / `--service NAME` builds, each with its keys over the
/// top-level keys, and the flags over both.
fn fleet_settings(args: &ImageArgs) -> Result<(ConfigFile, Vec<(String, ImageConfig)>)> {
    let file = config_file(&args.selection)?.context(
        "`--all` and `--service` build the services of a config file, and none applies here: pass `--config FILE` or run inside the project",
    )?;
    let names = file.settings.service_names();
    if names.is_empty() {
        bail!(
            "config file `{}` has no `[services.NAME]` tables; add one per service, or build without `--all`",
            file.path.display()
        );
    }
    let chosen = if args.all {
        names.clone()
    } else {
        for name in &args.service {
            if !names.contains(name) {
                bail!(
                    "`--service {name}`: config file `{}` has no such service; it has {}",
                    file.path.display(),
                    names.join(", ")
                );
            }
        }
        args.service.clone()
    };
    let flags = image_flags(args)?;
    let services = chosen
        .into_iter()
        .map(|name| {
            let service = file
                .settings
                .service_settings(&name)
                .expect("the name was checked");
            (name, service.overlay(&flags, None).0)
        })
        .collect();
    Ok((file, services))
}

/// `drift`: the services of the config file, or the `--lock` files, and the policy.
fn drift_inputs(args: &DriftArgs) -> Result<(Vec<(String, ImageConfig)>, DriftPolicy)> {
    if !args.locks.is_empty() {
        let python = args
            .python
            .map_or_else(|| "3.12".to_string(), |version| version.to_string());
        let services = args
            .locks
            .iter()
            .map(|lock| {
                let settings = ImageConfig {
                    lock: Some(lock.clone()),
                    python: Some(python.clone()),
                    glibc: Some("2.36".to_string()),
                    ..ImageConfig::default()
                };
                (lock.display().to_string(), settings)
            })
            .collect();
        let policy = match &args.config {
            Some(path) => envbuild::config::load(path)?.settings.drift,
            None => None,
        };
        return Ok((services, policy.unwrap_or_default()));
    }
    let file = match &args.config {
        Some(path) => envbuild::config::load(path)?,
        None => {
            let folder = std::env::current_dir().context("cannot read the working folder")?;
            envbuild::config::discover(&folder)?.context(
                "no config file with services applies here: pass `--config FILE`, or `--lock FILE` for each service",
            )?
        }
    };
    let services: Vec<(String, ImageConfig)> = file
        .settings
        .service_names()
        .into_iter()
        .filter_map(|name| Some((name.clone(), file.settings.service_settings(&name)?)))
        .collect();
    if services.is_empty() {
        bail!(
            "config file `{}` has no `[services.NAME]` tables to compare; pass `--lock FILE` for each service instead",
            file.path.display()
        );
    }
    Ok((services, file.settings.drift.clone().unwrap_or_default()))
}

/// What each service locks, compared under `policy`.
fn drift_report(
    services: &[(String, ImageConfig)],
    policy: &DriftPolicy,
    runtime: &tokio::runtime::Runtime,
) -> Result<DriftReport> {
    let mut locked = BTreeMap::new();
    for (name, settings) in services {
        let run = fetch_run(ImageConfig {
            interpreter: None,
            ..settings.clone()
        })
        .with_context(|| format!("service `{name}`"))?;
        let packages = runtime
            .block_on(envbuild::build::locked_packages(&run))
            .with_context(|| format!("service `{name}`"))?;
        locked.insert(name.clone(), envbuild::drift::locked(&packages));
    }
    Ok(envbuild::drift::compare(&locked, policy)?)
}

/// `image --all` / `--service`: the drift policy, then every service's image.
fn run_fleet(args: &ImageArgs, runtime: &tokio::runtime::Runtime) -> Result<()> {
    let (file, services) = fleet_settings(args)?;
    let policy = file.settings.drift.clone().unwrap_or_default();
    let drift = drift_report(&services, &policy, runtime)?;
    if !drift.violations.is_empty() {
        bail!(
            "the services break the `[drift]` policy of `{}`, so nothing was built:\n{}",
            file.path.display(),
            drift.violations.join("\n")
        );
    }
    let epoch = read_epoch()?;
    let builds = services
        .iter()
        .map(|(name, settings)| {
            Ok((
                name.clone(),
                resolve_image(settings, epoch).with_context(|| format!("service `{name}`"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut outputs = std::collections::BTreeSet::new();
    for (name, build) in &builds {
        if !outputs.insert(build.output.to_string()) {
            bail!(
                "service `{name}` writes to `{}` as another service does; give each service its own `output` (another tag is enough)",
                build.output
            );
        }
    }
    let progress = Arc::new(TerminalProgress::new());
    let result = runtime.block_on(envbuild::fleet::build_fleet(&builds, progress.clone()));
    progress.done();
    let report = result?;
    let refs = args
        .image_refs
        .clone()
        .or_else(|| file.settings.image_refs.clone());
    if let Some(path) = refs {
        let lines: Vec<String> = builds
            .iter()
            .filter_map(|(name, build)| {
                let service = report.services.iter().find(|s| &s.name == name)?;
                Some(image_ref(&build.output, &service.digest))
            })
            .collect();
        write_image_refs(&path, &lines)?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        for service in &report.services {
            writeln!(stdout, "{} {}", service.name, service.digest)?;
        }
    }
    eprintln!(
        "{} services: {} layer blobs, {} bytes stored ({} bytes as separate builds; {} saved)",
        report.services.len(),
        report.blobs_stored,
        report.bytes_stored,
        report.bytes_separate,
        report.bytes_saved
    );
    Ok(())
}

/// `REF@DIGEST` for an image written to `output` (ko's convention; `docker://` dropped).
fn image_ref(output: &ImageReference, digest: &envbuild::digest::Sha256Digest) -> String {
    let text = output.to_string();
    let text = text.strip_prefix("docker://").unwrap_or(&text);
    format!("{text}@{}", digest.oci())
}

/// Write `lines` to `path` whole (a temporary file renamed into place).
fn write_image_refs(path: &std::path::Path, lines: &[String]) -> Result<()> {
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("cannot write `--image-refs {}`", path.display()))?;
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.persist(path)
        .with_context(|| format!("cannot write `--image-refs {}`", path.display()))?;
    Ok(())
}

/// Progress on a terminal: a spinner for stages and a counter of wheels and layers.
struct TerminalProgress {
    bar: Option<ProgressBar>,
}

impl TerminalProgress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }
    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl FetchProgress for TerminalProgress {
    fn finish(&self, request: &FetchRequest, cached: bool) {
        if let Some(bar) = &self.bar {
            let how = if cached { "cached" } else { "downloaded" };
            bar.set_message(format!("{} {} {how}", request.package, request.version));
        }
    }
}

impl BuildProgress for TerminalProgress {
    fn stage(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(message.to_string());
            bar.set_message("");
        }
    }
}

fn read_epoch() -> Result<SourceDateEpoch> {
    let value = std::env::var("SOURCE_DATE_EPOCH").ok();
    Ok(SourceDateEpoch::from_env_value(value.as_deref())?)
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    stop_on_signals(&runtime)?;
    match cli.command {
        Command::Image(args) => {
            let (settings, origins, _) = merged_settings(&args.selection, &image_flags(&args)?)?;
            if args.print_config {
                print!("{}", render_settings(&settings, &origins));
                return Ok(());
            }
            if args.all || !args.service.is_empty() {
                return run_fleet(&args, &runtime);
            }
            let json = args.json;
            let build = resolve_image(&settings, read_epoch()?)?;
            let progress = Arc::new(TerminalProgress::new());
            let result = runtime.block_on(envbuild::build::build_image(&build, progress.clone()));
            progress.done();
            let report = result?;
            if let Some(path) = &settings.image_refs {
                write_image_refs(path, &[image_ref(&build.output, &report.digest)])?;
            }
            let mut stdout = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                writeln!(stdout, "{}", report.digest)?;
            }
        }
        Command::Config(args) => {
            if args.schema {
                let schema = envbuild::config::json_schema();
                println!("{}", serde_json::to_string_pretty(&schema)?);
                return Ok(());
            }
            let (settings, origins, file) =
                merged_settings(&args.image.selection, &image_flags(&args.image)?)?;
            match &file {
                Some(file) => eprintln!("config file: {}", file.path.display()),
                None => eprintln!(
                    "no config file (envbuild.toml or [tool.envbuild] in pyproject.toml) applies here"
                ),
            }
            print!("{}", render_settings(&settings, &origins));
        }
        Command::Drift(args) => {
            let (services, policy) = drift_inputs(&args)?;
            let report = drift_report(&services, &policy, &runtime)?;
            let mut stdout = std::io::stdout().lock();
            if args.json {
                serde_json::to_writer_pretty(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                write!(stdout, "{report}")?;
            }
            if !report.violations.is_empty() {
                bail!(
                    "the services break the `[drift]` policy:\n{}",
                    report.violations.join("\n")
                );
            }
        }
        Command::Fetch(args) => {
            let run = resolve_fetch(&args.selection, &args.base)?;
            let progress = Arc::new(TerminalProgress::new());
            let result = runtime.block_on(envbuild::build::fetch(&run, progress.clone()));
            progress.done();
            let fetched = result?;
            let count: std::collections::BTreeSet<_> = fetched
                .iter()
                .flat_map(|entry| {
                    entry
                        .chosen
                        .iter()
                        .filter_map(|wheel| wheel.artifact.sha256)
                })
                .collect();
            eprintln!(
                "{} wheels are in the cache at {}",
                count.len(),
                run.cache_dir.display()
            );
        }
        Command::Login(args) => {
            let password = if args.password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_line(&mut text)
                    .context("cannot read the password from standard input")?;
                text.trim_end_matches(['\r', '\n']).to_string()
            } else {
                std::env::var("ENVBUILD_REGISTRY_PASSWORD").map_err(|_| {
                    anyhow::anyhow!(
                        "no password: pipe it into `--password-stdin` or set `ENVBUILD_REGISTRY_PASSWORD`"
                    )
                })?
            };
            if password.is_empty() {
                bail!("the password for `{}` is empty", args.registry);
            }
            let path = envbuild::registry::auth::store_login(
                &args.registry,
                &args.username,
                &password,
                &AuthEnvironment::from_process_env(),
            )?;
            eprintln!(
                "credentials for `{}` stored in {}",
                args.registry,
                path.display()
            );
        }
        Command::Check(args) => {
            let run = resolve_fetch(&args.selection, &args.base)?;
            let progress = Arc::new(TerminalProgress::new());
            let result = runtime.block_on(envbuild::build::check(&run, progress.clone()));
            progress.done();
            let reports = result?;
            let mut stdout = std::io::stdout().lock();
            if args.json {
                let rendered: Vec<serde_json::Value> = reports
                    .iter()
                    .map(|(target, report)| {
                        serde_json::json!({
                            "platform": target.platform.to_string(),
                            "python": target.python.to_string(),
                            "problems": report.problems,
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut stdout, &rendered)?;
                writeln!(stdout)?;
            }
            let mut failed = false;
            for (target, report) in &reports {
                if report.problems.is_empty() {
                    eprintln!("{}: every requirement is satisfied", target.platform);
                } else {
                    failed = true;
                    eprintln!("{}:\n{report}", target.platform);
                }
            }
            if failed {
                bail!("the locked packages do not satisfy each other's requirements (see above)");
            }
        }
    }
    Ok(())
}

/// On SIGINT or SIGTERM, delete this process's temporary and lock files and exit with
/// 128 + the signal's number (130, 143), as a shell reports a process the signal ended.
/// The handlers are installed before any work starts, so no temporary predates them.
#[cfg(unix)]
fn stop_on_signals(runtime: &tokio::runtime::Runtime) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let _context = runtime.enter();
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    runtime.spawn(async move {
        let (name, code) = tokio::select! {
            _ = interrupt.recv() => ("SIGINT", 130),
            _ = terminate.recv() => ("SIGTERM", 143),
        };
        envbuild::cache::remove_temporaries();
        eprintln!("error: stopped by {name}; the partial files of this run were removed");
        std::process::exit(code);
    });
    Ok(())
}

#[cfg(not(unix))]
fn stop_on_signals(_runtime: &tokio::runtime::Runtime) -> Result<()> {
    Ok(())
}

/// Standard error for log lines, which quote package names, URLs and registry answers:
/// credentials in URLs are redacted and control characters escaped (the lines' own newlines
/// kept), as in error messages.
struct EscapingStderr;

impl Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr()
            .lock()
            .write_all(escape_except(&redact_text(&text), &['\n']).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(|| EscapingStderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENVBUILD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .without_time()
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A closed stdout (e.g. piped into `head`) is not a failure.
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            // Messages quote lockfiles, wheels and registry answers: whatever escaped
            // escaping at its source is escaped here, keeping the messages' own newlines.
            // The same for URLs: credentials and query values are hidden.
            let shown = |text: String| escape_except(&redact_text(&text), &['\n']).into_owned();
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {}", shown(error.to_string()));
            let mut source = error.source();
            if source.is_some() {
                let _ = writeln!(stderr, "\nCaused by:");
            }
            while let Some(cause) = source {
                let _ = writeln!(stderr, "  {}", shown(cause.to_string()));
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
