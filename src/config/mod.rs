//! The project's config file: every `envbuild image` flag as a key, so the settings of a
//! service live in its repository instead of a CI script.
//!
//! The file is `envbuild.toml`, or the `[tool.envbuild]` table of `pyproject.toml`, found
//! from the working folder upward (the first folder holding either wins; a folder holding
//! both is an error, since it is unclear which one counts), or named with `--config`.
//! Keys are the flags' long names (`max-layers`, `index-url`), lists for repeatable flags
//! (`extras`, `platforms`, `extra-index-urls`), tables for `KEY=VALUE` flags (`env`,
//! `labels`, `annotations`). Relative paths (the lockfile, `oci:`/`oci-archive:`/
//! `docker-archive:` references, `compile-with`, `cache-dir`, `registry-ca-file`) are
//! relative to the file's folder.
//!
//! Flags override keys; `env`, `labels` and `annotations` merge per key (a flag's value
//! wins). Unknown keys and values of the wrong type are errors naming `file:line:column`
//! and, for a misspelled key, the key meant. The JSON Schema of the file
//! (`schemas/config.schema.json`) is generated from [`ImageConfig`], so the two cannot
//! drift apart (a test compares them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lock::source::line_column;

/// The config file's name.
pub const CONFIG_FILE: &str = "envbuild.toml";
/// The file whose `[tool.envbuild]` table may hold the config instead.
pub const PYPROJECT_FILE: &str = "pyproject.toml";

/// A command: one string split at whitespace, or the arguments as a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    /// `"gunicorn app:main"`.
    Text(String),
    /// `["gunicorn", "app:main"]`.
    Arguments(Vec<String>),
}

impl CommandLine {
    /// The arguments.
    pub fn arguments(&self) -> Vec<String> {
        match self {
            Self::Text(text) => text.split_whitespace().map(str::to_string).collect(),
            Self::Arguments(arguments) => arguments.clone(),
        }
    }
}

/// The settings of `envbuild image`, one key per flag. Every field is optional: what the
/// file leaves out comes from the flags or the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(
    title = "envbuild configuration",
    description = "Settings of `envbuild image`, in `envbuild.toml` or the `[tool.envbuild]` table of `pyproject.toml`. Each key is the long name of a flag; flags given on the command line win. Relative paths are relative to the file's folder."
)]
pub struct ImageConfig {
    /// The lockfile (`--lock`).
    pub lock: Option<PathBuf>,
    /// The base image (`--base`): `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker://HOST/REPO[:TAG|@DIGEST]` or `REPO[:TAG]`.
    pub base: Option<String>,
    /// The name recorded in `org.opencontainers.image.base.name` (`--base-name`).
    pub base_name: Option<String>,
    /// Where to write the image (`--output`).
    pub output: Option<String>,
    /// Push to a registry instead (`--push`).
    pub push: Option<String>,
    /// Target platforms (`--platform`), e.g. `["linux/amd64", "linux/arm64"]`.
    pub platforms: Option<Vec<String>>,
    /// Target Python version, `X.Y` or `X.Y.Z` (`--python`).
    pub python: Option<String>,
    /// Target glibc version, `X.Y` (`--glibc`).
    pub glibc: Option<String>,
    /// Target musl version, `X.Y` (`--musl`).
    pub musl: Option<String>,
    /// The base image's interpreter, an absolute path in the image (`--interpreter`).
    pub interpreter: Option<String>,
    /// Accept `linux_<arch>` wheels (`--allow-linux-tag`).
    pub allow_linux_tag: Option<bool>,
    /// Let the target keys win over the base image's files (`--force-target`).
    pub force_target: Option<bool>,
    /// Extras to install (`--extras`).
    pub extras: Option<Vec<String>>,
    /// Dependency groups to install (`--group`).
    pub groups: Option<Vec<String>>,
    /// Leave out the lock's default groups (`--no-default-groups`).
    pub no_default_groups: Option<bool>,
    /// The virtual environment's path in the image (`--prefix`, default `/opt/venv`).
    pub prefix: Option<String>,
    /// The image's entrypoint (`--entrypoint`).
    pub entrypoint: Option<CommandLine>,
    /// The image's command (`--cmd`).
    pub cmd: Option<CommandLine>,
    /// Environment variables of the image (`--env`).
    pub env: Option<BTreeMap<String, String>>,
    /// The image's working folder (`--workdir`).
    pub workdir: Option<String>,
    /// The user the image runs as (`--user`).
    pub user: Option<String>,
    /// Image labels (`--label`).
    pub labels: Option<BTreeMap<String, String>>,
    /// Manifest annotations (`--annotation`).
    pub annotations: Option<BTreeMap<String, String>>,
    /// The layer budget, counting the base's layers (`--max-layers`, default 100).
    pub max_layers: Option<usize>,
    /// Compile `.pyc` files into the layers (`--compile-bytecode`).
    pub compile_bytecode: Option<bool>,
    /// The CPython that compiles them (`--compile-with`).
    pub compile_with: Option<PathBuf>,
    /// Build although the locked packages conflict (`--allow-conflicts`).
    pub allow_conflicts: Option<bool>,
    /// Refuse every source build: wheels only (`--no-build`).
    pub no_build: Option<bool>,
    /// Packages never built from source (`--no-build-package`).
    pub no_build_packages: Option<Vec<String>>,
    /// The host CPython that makes source-build environments (`--build-python`,
    /// default: `python3.X` on `PATH` for the target's `3.X`).
    pub build_python: Option<PathBuf>,
    /// A pip constraints file pinning build requirements (`--build-constraints`).
    pub build_constraints: Option<PathBuf>,
    /// The time limit of each source-build step, in seconds (`--build-timeout`,
    /// default 600).
    #[schemars(range(min = 1))]
    pub build_timeout: Option<u64>,
    /// Package index for lockfiles that record hashes only (`--index-url`).
    pub index_url: Option<String>,
    /// Further package indexes (`--extra-index-url`).
    pub extra_index_urls: Option<Vec<String>>,
    /// Folders or pages of wheels (`--find-links`).
    pub find_links: Option<Vec<String>>,
    /// Ignore `pip.conf` and `uv.toml` (`--no-index-config`).
    pub no_index_config: Option<bool>,
    /// The cache folder (`--cache-dir`).
    pub cache_dir: Option<PathBuf>,
    /// Build from the cache only (`--offline`).
    pub offline: Option<bool>,
    /// Parallel downloads and layer writers (`--jobs`, default 4).
    #[schemars(range(min = 1, max = 64))]
    pub jobs: Option<u16>,
    /// Largest artifact accepted when the lockfile records no size
    /// (`--max-artifact-size`, e.g. `4GiB`).
    pub max_artifact_size: Option<String>,
    /// Slowest download accepted, per second (`--min-transfer-rate`, e.g. `10KiB`).
    pub min_transfer_rate: Option<String>,
    /// Extra CA certificates for registries (`--registry-ca-file`).
    pub registry_ca_file: Option<PathBuf>,
    /// Registries reached over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Option<Vec<String>>,
    /// Wheels of the project itself, each in a layer above the dependencies (`--wheel`).
    pub wheels: Option<Vec<PathBuf>>,
    /// Files or folders copied into the image, `SRC:DEST` (`--add`).
    pub add: Option<Vec<String>>,
    /// The ignore file for `add` folders (`--ignore-file`; default `.envbuildignore`,
    /// then `.dockerignore`, in SRC).
    pub ignore_file: Option<PathBuf>,
    /// Owner of the `add` files, `UID:GID` (`--chown`; default root, read-only to the
    /// service).
    pub chown: Option<String>,
    /// Create the service's user, `NAME[:UID[:GID]]` (`--create-user`), and run as it.
    pub create_user: Option<String>,
    /// Write one `REF@DIGEST` line per image built to this file (`--image-refs`).
    pub image_refs: Option<PathBuf>,
    /// Services of a fleet, each with its own settings over the top-level ones
    /// (`envbuild image --all` or `--service NAME`).
    pub services: Option<BTreeMap<String, ImageConfig>>,
    /// The version policy across services (`envbuild drift`, and `image --all` first).
    pub drift: Option<DriftPolicy>,
}

/// `[drift]`: which version splits between services are violations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriftPolicy {
    /// Packages every service must lock at one version: a list of names, or `"*"` for
    /// all (the default).
    pub same_version: Option<SameVersion>,
    /// Splits that are allowed: package `name` may differ among `services`.
    pub allow: Option<Vec<DriftAllow>>,
    /// PEP 508 requirements no service may lock a match of, e.g. `"urllib3<2"`.
    pub deny: Option<Vec<String>>,
}

/// `same-version = "*"` or a list of package names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SameVersion {
    /// `"*"`: every package.
    All(String),
    /// These packages.
    Packages(Vec<String>),
}

/// One allowed split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriftAllow {
    /// The package.
    pub name: String,
    /// The services that may lock their own version of it.
    pub services: Vec<String>,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Flag,
    /// The config file, at `path:line:column`.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
        }
    }
}

/// A config file, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// Its settings, relative paths already made absolute.
    pub settings: ImageConfig,
    /// Where each top-level key is written.
    pub positions: BTreeMap<String, (usize, usize)>,
}

/// A config file that cannot be found, read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type.
    #[error("invalid config file `{}:{line}:{column}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, from the TOML reader.
        message: String,
    },
    /// A key envbuild does not know.
    #[error(
        "invalid config file `{}:{line}:{column}`: unknown key `{key}`{}{}",
        path.display(),
        table.as_deref().map(|table| format!(" in `[{table}]`")).unwrap_or_default(),
        suggestion.as_deref().map(|key| format!("; did you mean `{key}`?")).unwrap_or_else(|| "; see schemas/config.schema.json for the keys".to_string())
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key as written.
        key: String,
        /// The table it is in (`tool.envbuild` in `pyproject.toml`).
        table: Option<String>,
        /// The known key it is closest to.
        suggestion: Option<String>,
    },
    /// One folder holds both `envbuild.toml` and a `[tool.envbuild]` table.
    #[error(
        "both `{}` and the `[tool.envbuild]` table of `{}` configure envbuild; keep one of them",
        envbuild_toml.display(),
        pyproject.display()
    )]
    TwoConfigs {
        /// The `envbuild.toml`.
        envbuild_toml: PathBuf,
        /// The `pyproject.toml`.
        pyproject: PathBuf,
    },
}

/// The JSON Schema of the config file, as `schemas/config.schema.json` holds it.
pub fn json_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(ImageConfig))
        .expect("a JSON Schema always serializes");
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".to_string(),
            Value::String("https://envbuild.dev/schemas/config.schema.json".to_string()),
        );
    }
    schema
}

/// The config file that applies in `folder`: `envbuild.toml` or a `pyproject.toml` with a
/// `[tool.envbuild]` table, in `folder` or the nearest folder above it that has one.
pub fn discover(folder: &Path) -> Result<Option<ConfigFile>, ConfigError> {
    for candidate in folder.ancestors() {
        let envbuild_toml = candidate.join(CONFIG_FILE);
        let pyproject = candidate.join(PYPROJECT_FILE);
        let has_pyproject_table = pyproject.is_file() && {
            let text = read(&pyproject)?;
            // Whether the table is there, whatever it holds: `load` judges its keys.
            toml::from_str::<toml::Table>(&text)
                .ok()
                .and_then(|document| document.get("tool")?.get("envbuild").cloned())
                .is_some()
        };
        match (envbuild_toml.is_file(), has_pyproject_table) {
            (true, true) => {
                return Err(ConfigError::TwoConfigs {
                    envbuild_toml,
                    pyproject,
                });
            }
            (true, false) => return load(&envbuild_toml).map(Some),
            (false, true) => return load(&pyproject).map(Some),
            (false, false) => {}
        }
    }
    Ok(None)
}

/// Read the config at `path`: the `[tool.envbuild]` table of a `pyproject.toml`, else the
/// whole file.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = read(path)?;
    let in_pyproject = path.file_name().is_some_and(|name| name == PYPROJECT_FILE);
    let invalid = |offset: usize, message: String| {
        let (line, column) = line_column(&text, offset);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let document = toml::de::DeTable::parse(&text).map_err(|error| {
        invalid(
            error.span().map_or(0, |span| span.start),
            error.message().to_string(),
        )
    })?;
    let root = document.get_ref();
    let (table, table_name) = if in_pyproject {
        let tool = root
            .get("tool")
            .and_then(|value| value.get_ref().as_table());
        let envbuild = tool
            .and_then(|tool| tool.get("envbuild"))
            .and_then(|value| value.get_ref().as_table());
        match envbuild {
            Some(table) => (table, Some("tool.envbuild")),
            None => {
                return Err(invalid(
                    0,
                    "it has no `[tool.envbuild]` table; add one, or name an `envbuild.toml`"
                        .to_string(),
                ));
            }
        }
    } else {
        (root, None)
    };

    let schema = json_schema();
    let known: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default();
    let mut positions = BTreeMap::new();
    for (key, _) in table.iter() {
        let name = key.get_ref().as_ref();
        let (line, column) = line_column(&text, key.span().start);
        if !known.iter().any(|known| known == name) {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                line,
                column,
                key: name.to_string(),
                table: table_name.map(str::to_string),
                suggestion: closest(name, &known),
            });
        }
        positions.insert(name.to_string(), (line, column));
    }

    let settings = if in_pyproject {
        toml::from_str::<PyProject>(&text)
            .map(|project| {
                project
                    .tool
                    .and_then(|tool| tool.envbuild)
                    .unwrap_or_default()
            })
            .map_err(|error| {
                invalid(
                    error.span().map_or(0, |span| span.start),
                    error.message().to_string(),
                )
            })?
    } else {
        toml::from_str::<ImageConfig>(&text).map_err(|error| {
            invalid(
                error.span().map_or(0, |span| span.start),
                error.message().to_string(),
            )
        })?
    };
    for (name, service) in settings.services.iter().flatten() {
        if service.services.is_some() || service.drift.is_some() {
            let offset = text.find(&format!("services.{name}")).unwrap_or(0);
            return Err(invalid(
                offset,
                format!(
                    "service `{name}` has its own `services` or `drift`; those are top-level keys only"
                ),
            ));
        }
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    Ok(ConfigFile {
        path: path.to_path_buf(),
        settings: settings.relative_to(folder),
        positions,
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    fs_err::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(source.kind(), source),
    })
}

/// The known key most like `key`, if one is close enough to be a misspelling.
fn closest(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(key, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|left, right| left.0.total_cmp(&right.0))
        .map(|(_, candidate)| candidate.clone())
}

#[derive(Deserialize)]
struct PyProject {
    tool: Option<Tool>,
}

#[derive(Deserialize)]
struct Tool {
    envbuild: Option<ImageConfig>,
}

/// `path` made absolute against `folder` when it is relative.
fn rebase(folder: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        folder.join(path)
    }
}

/// An image reference with a relative local path made absolute against `folder`.
fn rebase_reference(folder: &Path, reference: &str) -> String {
    for transport in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = reference.strip_prefix(transport)
            && !rest.starts_with('/')
            && !rest.is_empty()
        {
            return format!("{transport}{}", folder.join(rest).display());
        }
    }
    reference.to_string()
}

impl ImageConfig {
    /// The names of the services, sorted.
    pub fn service_names(&self) -> Vec<String> {
        self.services
            .iter()
            .flatten()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The settings of service `name`: its keys over the top-level ones (`env`,
    /// `labels` and `annotations` merge per key); `None` if there is no such service.
    pub fn service_settings(&self, name: &str) -> Option<ImageConfig> {
        let service = self.services.as_ref()?.get(name)?;
        let top = ImageConfig {
            services: None,
            drift: None,
            ..self.clone()
        };
        Some(top.overlay(service, None).0)
    }

    /// These settings with relative paths made absolute against `folder`.
    pub fn relative_to(mut self, folder: &Path) -> Self {
        for path in [
            &mut self.lock,
            &mut self.compile_with,
            &mut self.build_python,
            &mut self.build_constraints,
            &mut self.cache_dir,
            &mut self.registry_ca_file,
            &mut self.ignore_file,
            &mut self.image_refs,
        ]
        .into_iter()
        .flatten()
        {
            *path = rebase(folder, path);
        }
        // A bare name (`python3.11`) for `compile-with` is looked up on PATH, not here.
        if let Some(compile_with) = &self.compile_with
            && let Ok(relative) = compile_with.strip_prefix(folder)
            && relative.components().count() == 1
            && !folder.join(relative).exists()
        {
            self.compile_with = Some(relative.to_path_buf());
        }
        if let Some(build_python) = &self.build_python
            && let Ok(relative) = build_python.strip_prefix(folder)
            && relative.components().count() == 1
            && !folder.join(relative).exists()
        {
            self.build_python = Some(relative.to_path_buf());
        }
        for reference in [&mut self.base, &mut self.output].into_iter().flatten() {
            *reference = rebase_reference(folder, reference);
        }
        self.wheels = self.wheels.map(|wheels| {
            wheels
                .into_iter()
                .map(|wheel| rebase(folder, &wheel))
                .collect()
        });
        self.add = self.add.map(|adds| {
            adds.into_iter()
                .map(|add| match add.rsplit_once(':') {
                    Some((source, dest)) if !source.is_empty() => {
                        format!("{}:{dest}", rebase(folder, Path::new(source)).display())
                    }
                    _ => add,
                })
                .collect()
        });
        self.services = self.services.map(|services| {
            services
                .into_iter()
                .map(|(name, service)| (name, service.relative_to(folder)))
                .collect()
        });
        self.find_links = self.find_links.map(|links| {
            links
                .into_iter()
                .map(|link| {
                    if link.contains("://") || Path::new(&link).is_absolute() {
                        link
                    } else {
                        folder.join(link).display().to_string()
                    }
                })
                .collect()
        });
        self
    }

    /// `flags` over `self` (the file): a key given as a flag wins, except that `env`,
    /// `labels` and `annotations` merge per key. Returns the merged settings and where
    /// each key came from.
    pub fn overlay(
        &self,
        flags: &ImageConfig,
        file: Option<&ConfigFile>,
    ) -> (ImageConfig, BTreeMap<String, Origin>) {
        let strip = |config: &ImageConfig| -> serde_json::Map<String, Value> {
            let value = serde_json::to_value(config).expect("settings serialize");
            value
                .as_object()
                .map(|object| {
                    object
                        .iter()
                        .filter(|(_, value)| !value.is_null())
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut merged = strip(self);
        let mut origins: BTreeMap<String, Origin> = merged
            .keys()
            .map(|key| {
                let (line, column) = file
                    .and_then(|file| file.positions.get(key).copied())
                    .unwrap_or((1, 1));
                let origin = match file {
                    Some(file) => Origin::File {
                        path: file.path.clone(),
                        line,
                        column,
                    },
                    None => Origin::Flag,
                };
                (key.clone(), origin)
            })
            .collect();
        for (key, value) in strip(flags) {
            match (merged.get_mut(&key), &value) {
                (Some(Value::Object(existing)), Value::Object(given))
                    if matches!(key.as_str(), "env" | "labels" | "annotations") =>
                {
                    existing.extend(given.clone());
                }
                _ => {
                    merged.insert(key.clone(), value);
                }
            }
            origins.insert(key, Origin::Flag);
        }
        let merged = serde_json::from_value(Value::Object(merged))
            .expect("merged settings have the settings' shape");
        (merged, origins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(folder: &Path, name: &str, text: &str) -> PathBuf {
        let path = folder.join(name);
        fs_err::write(&path, text).unwrap();
        path
    }

    #[test]
    fn ok_keys_paths_and_commands() {
        let folder = tempfile::tempdir().unwrap();
        let path = write(
            folder.path(),
            CONFIG_FILE,
            r#"
lock = "locks/pylock.toml"
base = "oci:../images/base:py311"
output = "docker://registry.example/app:1"
platforms = ["linux/amd64", "linux/arm64"]
cmd = "gunicorn app:main"
entrypoint = ["/opt/venv/bin/python", "-m"]
env = { MODE = "prod" }
max-layers = 60
compile-with = "python3.11"
"#,
        );
        let config = load(&path).unwrap();
        let settings = &config.settings;
        assert_eq!(
            settings.lock.as_deref(),
            Some(folder.path().join("locks/pylock.toml").as_path())
        );
        assert_eq!(
            settings.base.as_deref(),
            Some(format!("oci:{}/../images/base:py311", folder.path().display()).as_str())
        );
        assert_eq!(
            settings.output.as_deref(),
            Some("docker://registry.example/app:1")
        );
        assert_eq!(
            settings.cmd.as_ref().unwrap().arguments(),
            ["gunicorn", "app:main"]
        );
        assert_eq!(
            settings.entrypoint.as_ref().unwrap().arguments(),
            ["/opt/venv/bin/python", "-m"]
        );
        assert_eq!(settings.max_layers, Some(60));
        assert_eq!(
            settings.compile_with.as_deref(),
            Some(Path::new("python3.11"))
        );
        assert_eq!(config.positions["max-layers"], (9, 1));
    }

    #[test]
    fn err_unknown_key_names_position_and_suggestion() {
        let folder = tempfile::tempdir().unwrap();
        let path = write(folder.path(), CONFIG_FILE, "lock = \"a\"\nmax-layer = 3\n");
        let error = load(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "invalid config file `{}:2:1`: unknown key `max-layer`; did you mean `max-layers`?",
                path.display()
            )
        );
        let path = write(folder.path(), CONFIG_FILE, "zzzz = 1\n");
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .ends_with("unknown key `zzzz`; see schemas/config.schema.json for the keys")
        );
    }

    #[test]
    fn err_wrong_type_names_position() {
        let folder = tempfile::tempdir().unwrap();
        let path = write(
            folder.path(),
            CONFIG_FILE,
            "lock = \"a\"\nmax-layers = \"many\"\n",
        );
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("invalid config file `{}:2:14`", path.display())),
            "{message}"
        );
        let path = write(folder.path(), CONFIG_FILE, "lock = [\n");
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.contains("envbuild.toml:1:9`: unclosed array"),
            "{message}"
        );
    }

    #[test]
    fn ok_pyproject_table_and_discovery_upward() {
        let folder = tempfile::tempdir().unwrap();
        write(
            folder.path(),
            PYPROJECT_FILE,
            "[project]\nname = \"app\"\n\n[tool.envbuild]\nlock = \"pylock.toml\"\nbogus-tool-key-elsewhere = false\n",
        );
        let deep = folder.path().join("src/app");
        fs_err::create_dir_all(&deep).unwrap();
        let error = discover(&deep).unwrap_err().to_string();
        assert!(
            error.contains(":6:1`: unknown key `bogus-tool-key-elsewhere` in `[tool.envbuild]`"),
            "{error}"
        );
        write(
            folder.path(),
            PYPROJECT_FILE,
            "[project]\nname = \"app\"\n[tool.other]\nx = 1\n[tool.envbuild]\nlock = \"pylock.toml\"\n",
        );
        let found = discover(&deep).unwrap().unwrap();
        assert_eq!(found.path, folder.path().join(PYPROJECT_FILE));
        assert_eq!(found.settings.lock, Some(folder.path().join("pylock.toml")));
        // A pyproject.toml without the table is not a config.
        let other = tempfile::tempdir().unwrap();
        write(other.path(), PYPROJECT_FILE, "[project]\nname = \"x\"\n");
        assert_eq!(discover(other.path()).unwrap(), None);
    }

    #[test]
    fn err_two_configs_in_one_folder() {
        let folder = tempfile::tempdir().unwrap();
        write(folder.path(), CONFIG_FILE, "lock = \"a\"\n");
        write(
            folder.path(),
            PYPROJECT_FILE,
            "[tool.envbuild]\nlock = \"b\"\n",
        );
        let error = discover(folder.path()).unwrap_err();
        assert!(matches!(error, ConfigError::TwoConfigs { .. }), "{error}");
    }

    #[test]
    fn ok_flags_win_and_maps_merge() {
        let folder = tempfile::tempdir().unwrap();
        let path = write(
            folder.path(),
            CONFIG_FILE,
            "prefix = \"/srv/venv\"\njobs = 2\nenv = { A = \"file\", B = \"file\" }\n",
        );
        let file = load(&path).unwrap();
        let flags = ImageConfig {
            jobs: Some(8),
            env: Some(BTreeMap::from([("B".to_string(), "flag".to_string())])),
            ..ImageConfig::default()
        };
        let (merged, origins) = file.settings.overlay(&flags, Some(&file));
        assert_eq!(merged.jobs, Some(8));
        assert_eq!(merged.prefix.as_deref(), Some("/srv/venv"));
        assert_eq!(
            merged.env.unwrap(),
            BTreeMap::from([
                ("A".to_string(), "file".to_string()),
                ("B".to_string(), "flag".to_string())
            ])
        );
        assert_eq!(origins["jobs"], Origin::Flag);
        assert_eq!(
            origins["prefix"].to_string(),
            format!("{}:1:1", path.display())
        );
    }

    /// `schemas/config.schema.json` is what the code generates (regenerate with
    /// `envbuild config --schema > schemas/config.schema.json`).
    #[test]
    fn committed_schema_is_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/config.schema.json");
        let committed: Value = serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap();
        assert_eq!(
            committed,
            json_schema(),
            "schemas/config.schema.json is stale: regenerate it with `envbuild config --schema > schemas/config.schema.json`"
        );
    }
}
