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

use envbuild::build::{BuildProgress, Bytecode, FetchRun, ImageBuild, TargetOverrides};
use envbuild::cache::Cache;
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

/// Flags that choose the target and the packages; shared by `image` and `fetch`.
#[derive(Debug, Args)]
struct SelectionArgs {
    /// The lockfile (`pylock.toml` or `pylock.<name>.toml`).
    #[arg(long, value_name = "FILE")]
    lock: PathBuf,
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
    /// Build only from the cache; fail listing every missing wheel.
    #[arg(long)]
    offline: bool,
    /// Parallel downloads and layer writers.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
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
    /// Largest artifact accepted when the lockfile records no size (`512MiB`, `4GiB`).
    #[arg(long, value_name = "SIZE", default_value = "2GiB")]
    max_artifact_size: ByteSize,
    /// Slowest download accepted, per second averaged over 30 s (`0` turns it off).
    #[arg(long, value_name = "SIZE", default_value = "10KiB")]
    min_transfer_rate: ByteSize,
}

#[derive(Debug, Args)]
struct ImageArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Base image holding the interpreter: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`; for
    /// several platforms, an image index that has them all.
    #[arg(long, value_name = "REF")]
    base: ImageReference,
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
    #[arg(
        long,
        value_name = "REF",
        required_unless_present = "push",
        conflicts_with = "push"
    )]
    output: Option<ImageReference>,
    /// Push to a registry: `HOST[:PORT]/REPO[:TAG]` (the same as `--output docker://...`).
    #[arg(long, value_name = "REF")]
    push: Option<String>,
    /// The base image's Python interpreter, an absolute path (default: detected).
    #[arg(long, value_name = "PATH")]
    interpreter: Option<String>,
    /// Install prefix of the virtual environment in the image.
    #[arg(long, value_name = "DIR", default_value = "/opt/venv")]
    prefix: String,
    /// Most layers the image may have, counting the base image's.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_layers: usize,
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
    /// Compile `.pyc` files (PEP 552, unchecked hash) into each wheel's layer, with a
    /// host CPython of the target's minor version.
    #[arg(long)]
    compile_bytecode: bool,
    /// The host CPython used by `--compile-bytecode` (default: `python3.X` on `PATH`).
    #[arg(long, value_name = "PYTHON", requires = "compile_bytecode")]
    compile_with: Option<PathBuf>,
    /// Build even when the locked packages do not satisfy each other's requirements;
    /// the problems are printed as warnings and listed in the JSON report.
    #[arg(long)]
    allow_conflicts: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Base image to detect the target from.
    #[arg(long, value_name = "REF")]
    base: Option<ImageReference>,
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
    base: Option<ImageReference>,
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

fn parse_libc(args: &SelectionArgs) -> Result<Option<Libc>> {
    fn version(text: &str, flag: &str) -> Result<(u32, u32)> {
        let parsed = text
            .split_once('.')
            .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
        parsed.with_context(|| format!("`{flag} {text}` is not a version of the form X.Y"))
    }
    if let Some(text) = &args.glibc {
        let (major, minor) = version(text, "--glibc")?;
        return Ok(Some(Libc::Glibc { major, minor }));
    }
    if let Some(text) = &args.musl {
        let (major, minor) = version(text, "--musl")?;
        return Ok(Some(Libc::Musl { major, minor }));
    }
    Ok(None)
}

/// Settings common to every command, resolved from flags and environment.
struct Common {
    selection: GroupSelection,
    cache_dir: PathBuf,
    fetch: FetchOptions,
    jobs: usize,
    index: IndexConfig,
    registry: RegistryOptions,
}

fn resolve_common(args: &SelectionArgs) -> Result<Common> {
    let SelectionArgs {
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
        ..
    } = args;
    let min_rate = MinimumRate {
        bytes_per_second: min_transfer_rate.0,
        ..MinimumRate::default()
    };
    let flags = IndexFlags {
        index_url: index_url.clone(),
        extra_index_urls: extra_index_urls.clone(),
        find_links: find_links.clone(),
        no_config: *no_index_config,
    };
    let index = IndexConfig::resolve(&flags, &IndexEnvironment::from_process_env())?;
    Ok(Common {
        selection: GroupSelection {
            extras: extras.iter().filter(|e| !e.is_empty()).cloned().collect(),
            groups: groups.iter().cloned().collect(),
            no_default_groups: *no_default_groups,
        },
        cache_dir: cache_dir.clone().unwrap_or_else(Cache::default_root),
        fetch: FetchOptions {
            jobs: usize::from(*jobs),
            offline: *offline,
            max_artifact_size: *max_artifact_size,
            min_rate,
            ..FetchOptions::default()
        },
        jobs: usize::from(*jobs),
        index,
        registry: RegistryOptions {
            transport: TransportOptions {
                ca_file: registry_ca_file.clone(),
                insecure: insecure_registries.clone(),
            },
            auth: AuthEnvironment::from_process_env(),
            jobs: usize::from(*jobs),
            offline: *offline,
            min_rate,
            ..RegistryOptions::default()
        },
    })
}

fn resolve_overrides(
    args: &SelectionArgs,
    platform: Option<Platform>,
    interpreter: Option<String>,
) -> Result<TargetOverrides> {
    Ok(TargetOverrides {
        platform,
        python: args.python,
        libc: parse_libc(args)?,
        interpreter,
        allow_linux_tag: args.allow_linux_tag,
        force: args.force_target,
    })
}

/// One target per `--platform` (refusing one given twice), or one with no platform.
fn resolve_targets(
    args: &SelectionArgs,
    interpreter: Option<String>,
) -> Result<Vec<TargetOverrides>> {
    if args.platform.is_empty() {
        return Ok(vec![resolve_overrides(args, None, interpreter)?]);
    }
    let mut seen = std::collections::BTreeSet::new();
    for platform in &args.platform {
        if !seen.insert(platform) {
            bail!("`--platform` names `{platform}` twice; give each platform once");
        }
    }
    args.platform
        .iter()
        .map(|platform| resolve_overrides(args, Some(platform.clone()), interpreter.clone()))
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

fn resolve_image(args: ImageArgs, epoch: SourceDateEpoch) -> Result<(ImageBuild, bool)> {
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
        json,
        compile_bytecode,
        compile_with,
        allow_conflicts,
    } = args;
    let prefix = prefix.trim_end_matches('/').to_string();
    if !prefix.starts_with('/') || prefix.len() < 2 {
        bail!("`--prefix {prefix}` must be an absolute path other than `/`, such as `/opt/venv`");
    }
    if let Some(path) = &interpreter
        && !path.starts_with('/')
    {
        bail!("`--interpreter {path}` must be an absolute path inside the image");
    }
    let output = match (output, push) {
        (Some(output), None) => output,
        (None, Some(destination)) => {
            let destination = destination
                .strip_prefix("docker://")
                .unwrap_or(&destination);
            format!("docker://{destination}").parse()?
        }
        _ => bail!("give either `--output REF` or `--push REF`"),
    };
    let common = resolve_common(&selection)?;
    let targets = resolve_targets(&selection, interpreter)?;
    let image = ImageSettings {
        env: env
            .iter()
            .map(|e| parse_key_value(e, "--env"))
            .collect::<Result<_>>()?,
        entrypoint: entrypoint
            .as_deref()
            .map(|e| parse_command(e, "--entrypoint"))
            .transpose()?,
        cmd: cmd
            .as_deref()
            .map(|c| parse_command(c, "--cmd"))
            .transpose()?,
        workdir,
        user,
        labels: labels
            .iter()
            .map(|l| parse_key_value(l, "--label"))
            .collect::<Result<BTreeMap<_, _>>>()?,
        annotations: annotations
            .iter()
            .map(|a| parse_key_value(a, "--annotation"))
            .collect::<Result<BTreeMap<_, _>>>()?,
        venv: prefix.clone(),
        base_name: base_name_annotation(&base, base_name.as_deref())?,
    };
    let build = ImageBuild {
        lock: selection.lock.clone(),
        selection: common.selection,
        targets,
        base,
        output,
        prefix,
        cache_dir: common.cache_dir,
        fetch: common.fetch,
        jobs: common.jobs,
        max_layers,
        image,
        epoch,
        bytecode: if compile_bytecode {
            Bytecode::Compile {
                interpreter: compile_with,
            }
        } else {
            Bytecode::Off
        },
        allow_conflicts,
        index: common.index,
        registry: common.registry,
    };
    Ok((build, json))
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
            let (build, json) = resolve_image(*args, read_epoch()?)?;
            let progress = Arc::new(TerminalProgress::new());
            let result = runtime.block_on(envbuild::build::build_image(&build, progress.clone()));
            progress.done();
            let report = result?;
            let mut stdout = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                writeln!(stdout, "{}", report.digest)?;
            }
        }
        Command::Fetch(args) => {
            let common = resolve_common(&args.selection)?;
            let run = FetchRun {
                lock: args.selection.lock.clone(),
                selection: common.selection,
                base: args.base,
                targets: resolve_targets(&args.selection, None)?,
                cache_dir: common.cache_dir,
                fetch: common.fetch,
                index: common.index,
                registry: common.registry,
            };
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
            let common = resolve_common(&args.selection)?;
            let run = FetchRun {
                lock: args.selection.lock.clone(),
                selection: common.selection,
                base: args.base,
                targets: resolve_targets(&args.selection, None)?,
                cache_dir: common.cache_dir,
                fetch: common.fetch,
                index: common.index,
                registry: common.registry,
            };
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
