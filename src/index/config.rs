//! Where package indexes come from. envbuild has **no implicit public index**: an index
//! is used only when the lockfile, a flag, the environment or a pip/uv configuration file
//! names it.
//!
//! Three settings are resolved: the default index (`index-url`), the extra indexes
//! (`extra-index-url`, uv's `[[index]]`) and the find-links locations. Each is taken whole
//! from the highest layer that sets it, as pip lets its environment override its
//! configuration files:
//!
//! 1. flags: `--index-url`, `--extra-index-url`, `--find-links` ([`IndexFlags`]);
//! 2. the environment: `UV_DEFAULT_INDEX`, then `UV_INDEX_URL`, then `PIP_INDEX_URL` for
//!    the default index; `UV_INDEX`, `UV_EXTRA_INDEX_URL` and `PIP_EXTRA_INDEX_URL`
//!    (space-separated lists, in that order) for extra indexes; `UV_FIND_LINKS` and
//!    `PIP_FIND_LINKS` for find-links;
//! 3. uv's `uv.toml`: `$XDG_CONFIG_HOME/uv/uv.toml` (else `~/.config/uv/uv.toml`) over
//!    `/etc/uv/uv.toml` (`index-url`, `extra-index-url`, `find-links`, and `[[index]]`
//!    tables: `default = true` is the default index, `explicit = true` ones are skipped
//!    because they serve only packages pinned to them); skipped when `UV_NO_CONFIG` is
//!    set;
//! 4. pip's `pip.conf`, key by key: `$PIP_CONFIG_FILE` over `$XDG_CONFIG_HOME/pip/pip.conf`
//!    (else `~/.config/pip/pip.conf`) over `~/.pip/pip.conf` over `/etc/xdg/pip/pip.conf`
//!    over `/etc/pip.conf`, and in each file `[install]` over `[global]`; none is read
//!    when `PIP_CONFIG_FILE` is `/dev/null`.
//!
//! [`IndexFlags::no_config`] skips both kinds of file (the environment still applies).
//! Lookups then try the indexes in this order (uv's "first-index" strategy): the
//! package's own index from the lockfile, the lockfile's indexes, the extra indexes, and
//! last the default index; see `resolve_lookups`.
//!
//! Credentials may sit in index URLs (`https://user:token@host/simple/`), or in `.netrc`
//! (`$NETRC`, else `~/.netrc`); both are used for requests and never printed: every
//! message and `Display` shows URLs without user or password.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::netrc::Netrc;
use crate::http::redact_text;
use crate::lock::Excerpt;
use crate::untrusted::Untrusted;

/// Index settings given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFlags {
    /// `--index-url`: the default index.
    pub index_url: Option<String>,
    /// `--extra-index-url`, repeatable: more indexes, tried before the default one.
    pub extra_index_urls: Vec<String>,
    /// `--find-links`, repeatable: folders of wheels, or HTML pages linking to them.
    pub find_links: Vec<String>,
    /// `--no-index-config`: read no pip.conf or uv.toml.
    pub no_config: bool,
}

/// What index resolution reads from outside the command line: environment variables and
/// the folders config files are looked up in. [`IndexEnvironment::from_process_env`] is
/// the one place envbuild reads them from the process; tests build one by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEnvironment {
    vars: BTreeMap<String, String>,
    system_root: PathBuf,
    current_dir: PathBuf,
}

impl IndexEnvironment {
    /// The process's environment variables and working folder; system config files
    /// under `/`.
    pub fn from_process_env() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Self {
            vars,
            system_root: PathBuf::from("/"),
            current_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }

    /// These variables only; system config files under `/`; relative paths resolved
    /// against `/`.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
            system_root: PathBuf::from("/"),
            current_dir: PathBuf::from("/"),
        }
    }

    /// Look for system config files (`/etc/pip.conf`, `/etc/uv/uv.toml`, …) under `root`
    /// instead of `/`.
    pub fn with_system_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.system_root = root.into();
        self
    }

    /// Resolve relative find-links paths against `dir`.
    pub fn with_current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = dir.into();
        self
    }

    fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.trim().is_empty())
    }

    fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }

    fn system_path(&self, path: &str) -> PathBuf {
        self.system_root.join(path.trim_start_matches('/'))
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    fn config_home(&self) -> Option<PathBuf> {
        self.var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| self.home().map(|home| home.join(".config")))
    }
}

/// Where a setting came from, for messages and `--show-settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The lockfile named it.
    Lockfile,
    /// A command-line flag, e.g. `--index-url`.
    Flag(&'static str),
    /// An environment variable.
    Environment(String),
    /// A configuration file.
    File(PathBuf),
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lockfile => f.write_str("the lockfile"),
            Self::Flag(flag) => write!(f, "`{flag}`"),
            Self::Environment(name) => write!(f, "`{name}`"),
            Self::File(path) => write!(f, "`{}`", path.display()),
        }
    }
}

/// A package index (PEP 503/691 "simple" API root): its URL, with credentials when given,
/// always ending in `/`, and where it was configured. `Display` shows it without
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct IndexUrl {
    url: url::Url,
    origin: ConfigOrigin,
}

impl fmt::Debug for IndexUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexUrl")
            .field("url", &super::redact(&self.url))
            .field("origin", &self.origin)
            .finish()
    }
}

impl fmt::Display for IndexUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::redact(&self.url))
    }
}

impl IndexUrl {
    /// An index at `url` (a trailing `/` is added if missing), configured by `origin`.
    pub fn new(mut url: url::Url, origin: ConfigOrigin) -> Self {
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url.set_fragment(None);
        Self { url, origin }
    }

    /// A page URL kept as written (no `/` added), for a find-links page; the fragment is
    /// dropped.
    pub fn page(mut url: url::Url, origin: ConfigOrigin) -> Self {
        url.set_fragment(None);
        Self { url, origin }
    }

    /// The URL, with its credentials: for requests only, never for messages.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// Where it was configured.
    pub fn origin(&self) -> &ConfigOrigin {
        &self.origin
    }

    /// The URL without credentials, to compare two indexes.
    pub(crate) fn identity(&self) -> String {
        super::redact(&self.url)
    }
}

/// A find-links location: a folder of distributions (or a local HTML file), or an HTML
/// page whose links point at them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindLinks {
    /// A local folder, or a local HTML page.
    Local {
        /// The path, absolute.
        path: PathBuf,
        /// Where it was configured.
        origin: ConfigOrigin,
    },
    /// A remote HTML page.
    Page(IndexUrl),
}

impl fmt::Display for FindLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { path, .. } => write!(f, "{}", path.display()),
            Self::Page(page) => write!(f, "{page}"),
        }
    }
}

/// The resolved index configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexConfig {
    default_index: Option<IndexUrl>,
    extra_indexes: Vec<IndexUrl>,
    find_links: Vec<FindLinks>,
    netrc: Netrc,
    variables: UrlVariables,
}

/// The environment, kept to expand `${NAME}` in lockfile index URLs; `Debug` shows no
/// value, as they are often tokens.
#[derive(Clone, Default, PartialEq, Eq)]
struct UrlVariables(BTreeMap<String, String>);

impl fmt::Debug for UrlVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlVariables({} variables)", self.0.len())
    }
}

/// Errors from resolving the index configuration.
#[derive(Debug, thiserror::Error)]
pub enum IndexConfigError {
    /// A configured index or find-links URL does not parse.
    #[error(
        "the index URL `{value}` from {origin} is not a URL: {reason}; write an absolute `http://` or `https://` URL",
        reason = Untrusted(reason),
        value = Excerpt(value)
    )]
    InvalidUrl {
        /// Where it was configured.
        origin: ConfigOrigin,
        /// The value, without credentials.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A configured index uses a scheme envbuild cannot query.
    #[error(
        "the index URL `{value}` from {origin} uses the scheme `{scheme}`, but package indexes are read over `http` or `https` (use `--find-links` for a local folder)",
        scheme = Untrusted(scheme),
        value = Excerpt(value)
    )]
    UnsupportedScheme {
        /// Where it was configured.
        origin: ConfigOrigin,
        /// The value, without credentials.
        value: String,
        /// The scheme.
        scheme: String,
    },
    /// A `uv.toml` is not valid TOML or has a key of the wrong type.
    #[error(
        "cannot read uv configuration `{place}`: {message}; fix the file, or pass `--no-index-config` to ignore it",
        message = Untrusted(message)
    )]
    InvalidUvToml {
        /// `path:line:column`.
        place: String,
        /// The TOML parser's message.
        message: String,
    },
    /// A `pip.conf` line is neither a section, an option, a continuation nor a comment.
    #[error(
        "cannot read pip configuration `{place}`: `{line}` is not a `[section]`, a `key = value` line or an indented continuation; fix the file, or pass `--no-index-config` to ignore it",
        line = Excerpt(line)
    )]
    InvalidPipConf {
        /// `path:line`.
        place: String,
        /// The line, as written.
        line: String,
    },
    /// A config file exists but cannot be read.
    #[error("cannot read configuration file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// One layer's settings; `None` means "not set here".
#[derive(Default)]
struct Layer {
    default_index: Option<IndexUrl>,
    extra_indexes: Option<Vec<IndexUrl>>,
    find_links: Option<Vec<FindLinks>>,
}

impl IndexConfig {
    /// Resolve the configuration from `flags` and `environment`; see the module
    /// documentation for the order.
    pub fn resolve(
        flags: &IndexFlags,
        environment: &IndexEnvironment,
    ) -> Result<Self, IndexConfigError> {
        let mut layers = vec![flag_layer(flags, environment)?, env_layer(environment)?];
        if !flags.no_config {
            layers.push(uv_toml_layer(environment)?);
            layers.push(pip_conf_layer(environment)?);
        }
        // Each setting from the highest layer that sets it.
        let mut merged = Layer::default();
        for layer in layers {
            merged.default_index = merged.default_index.or(layer.default_index);
            merged.extra_indexes = merged.extra_indexes.or(layer.extra_indexes);
            merged.find_links = merged.find_links.or(layer.find_links);
        }
        let mut config = Self {
            default_index: merged.default_index,
            extra_indexes: merged.extra_indexes.unwrap_or_default(),
            find_links: merged.find_links.unwrap_or_default(),
            netrc: Netrc::default(),
            variables: UrlVariables(environment.vars.clone()),
        };
        let netrc_path = environment
            .var("NETRC")
            .map(PathBuf::from)
            .or_else(|| environment.home().map(|home| home.join(".netrc")));
        if let Some(path) = netrc_path {
            config.netrc = Netrc::load(&path);
        }
        Ok(config)
    }

    /// A configuration with exactly these indexes and find-links and no credentials
    /// file: the first index is the default one, the rest are extra indexes.
    pub fn from_parts(indexes: Vec<IndexUrl>, find_links: Vec<FindLinks>) -> Self {
        let mut indexes = indexes.into_iter();
        Self {
            default_index: indexes.next(),
            extra_indexes: indexes.collect(),
            find_links,
            netrc: Netrc::default(),
            variables: UrlVariables::default(),
        }
    }

    /// Add the find-links locations a lockfile names (`--find-links` lines in a
    /// requirements file) before the configured ones: `file:` URLs are local folders or
    /// pages, other URLs remote pages.
    pub fn with_lock_find_links(mut self, links: &[url::Url]) -> Self {
        let mut from_lock: Vec<FindLinks> = links
            .iter()
            .map(|url| match url.to_file_path() {
                Ok(path) if url.scheme() == "file" => FindLinks::Local {
                    path,
                    origin: ConfigOrigin::Lockfile,
                },
                _ => FindLinks::Page(IndexUrl::page(url.clone(), ConfigOrigin::Lockfile)),
            })
            .filter(|link| !self.find_links.contains(link))
            .collect();
        from_lock.append(&mut self.find_links);
        self.find_links = from_lock;
        self
    }

    /// Use these `.netrc` credentials (replacing any read by [`IndexConfig::resolve`]).
    pub fn with_netrc_text(mut self, text: &str) -> Self {
        self.netrc = Netrc::parse(text, None);
        self
    }

    /// The default index, if any.
    pub fn default_index(&self) -> Option<&IndexUrl> {
        self.default_index.as_ref()
    }

    /// The extra indexes, in configured order.
    pub fn extra_indexes(&self) -> &[IndexUrl] {
        &self.extra_indexes
    }

    /// Every configured index in lookup order: the extra indexes, then the default index.
    pub fn indexes(&self) -> Vec<&IndexUrl> {
        self.extra_indexes
            .iter()
            .chain(self.default_index.as_ref())
            .collect()
    }

    /// The find-links locations.
    pub fn find_links(&self) -> &[FindLinks] {
        &self.find_links
    }

    /// Whether no index and no find-links location is configured.
    pub fn is_empty(&self) -> bool {
        self.default_index.is_none() && self.extra_indexes.is_empty() && self.find_links.is_empty()
    }

    /// A lockfile's index URL with each `${NAME}` in its user name or password replaced
    /// by that environment variable, as Pipenv does for `[[source]]` URLs (its
    /// `Pipfile.lock` keeps them unexpanded); unset variables stay as written.
    pub fn expand_lock_url(&self, url: &url::Url) -> url::Url {
        let expand = |written: &str| -> String {
            let written = crate::lock::percent_decode(written);
            let mut out = String::with_capacity(written.len());
            let mut rest: &str = &written;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        let name = &after[..end];
                        match self.variables.0.get(name) {
                            Some(value) => out.push_str(value),
                            None => out.push_str(&rest[start..start + 3 + end]),
                        }
                        rest = &after[end + 1..];
                    }
                    None => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            out
        };
        let mut expanded = url.clone();
        if url.username().contains("%7B")
            || url
                .password()
                .is_some_and(|password| password.contains("%7B"))
        {
            let _ = expanded.set_username(&expand(url.username()));
            if let Some(password) = url.password() {
                let _ = expanded.set_password(Some(&expand(password)));
            }
        }
        expanded
    }

    /// `url` with `.netrc` credentials for its host, when it has none.
    pub fn authenticate(&self, url: &url::Url) -> url::Url {
        self.netrc.authenticate(url)
    }

    /// One line per setting, without credentials, e.g.
    /// ``index: https://pkgs.example/simple/ (from `PIP_INDEX_URL`)``.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for index in &self.extra_indexes {
            lines.push(format!("extra index: {index} (from {})", index.origin));
        }
        if let Some(index) = &self.default_index {
            lines.push(format!("default index: {index} (from {})", index.origin));
        }
        for location in &self.find_links {
            let origin = match location {
                FindLinks::Local { origin, .. } => origin,
                FindLinks::Page(page) => &page.origin,
            };
            lines.push(format!("find-links: {location} (from {origin})"));
        }
        lines
    }
}

fn parse_index(value: &str, origin: &ConfigOrigin) -> Result<IndexUrl, IndexConfigError> {
    // uv's `--index` and `UV_INDEX` accept `name=url`.
    let value = value.trim();
    let value = match value.split_once('=') {
        Some((name, rest)) if !name.contains([':', '/']) => rest,
        _ => value,
    };
    let url = url::Url::parse(value).map_err(|error| IndexConfigError::InvalidUrl {
        origin: origin.clone(),
        value: redact_text(value),
        reason: error.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(IndexConfigError::UnsupportedScheme {
            origin: origin.clone(),
            value: super::redact(&url),
            scheme: url.scheme().to_string(),
        });
    }
    Ok(IndexUrl::new(url, origin.clone()))
}

fn parse_find_links(
    value: &str,
    origin: &ConfigOrigin,
    base: &Path,
) -> Result<FindLinks, IndexConfigError> {
    let value = value.trim();
    if value.contains("://") {
        let url = url::Url::parse(value).map_err(|error| IndexConfigError::InvalidUrl {
            origin: origin.clone(),
            value: redact_text(value),
            reason: error.to_string(),
        })?;
        return match url.scheme() {
            "http" | "https" => Ok(FindLinks::Page(IndexUrl::page(url, origin.clone()))),
            "file" => match url.to_file_path() {
                Ok(path) => Ok(FindLinks::Local {
                    path,
                    origin: origin.clone(),
                }),
                Err(()) => Err(IndexConfigError::UnsupportedScheme {
                    origin: origin.clone(),
                    value: super::redact(&url),
                    scheme: "file".to_string(),
                }),
            },
            scheme => Err(IndexConfigError::UnsupportedScheme {
                origin: origin.clone(),
                value: super::redact(&url),
                scheme: scheme.to_string(),
            }),
        };
    }
    let path = base.join(value);
    Ok(FindLinks::Local {
        path: std::path::absolute(&path).unwrap_or(path),
        origin: origin.clone(),
    })
}

fn flag_layer(
    flags: &IndexFlags,
    environment: &IndexEnvironment,
) -> Result<Layer, IndexConfigError> {
    let mut layer = Layer::default();
    if let Some(value) = &flags.index_url {
        layer.default_index = Some(parse_index(value, &ConfigOrigin::Flag("--index-url"))?);
    }
    if !flags.extra_index_urls.is_empty() {
        let origin = ConfigOrigin::Flag("--extra-index-url");
        layer.extra_indexes = Some(
            flags
                .extra_index_urls
                .iter()
                .map(|value| parse_index(value, &origin))
                .collect::<Result<_, _>>()?,
        );
    }
    if !flags.find_links.is_empty() {
        let origin = ConfigOrigin::Flag("--find-links");
        layer.find_links = Some(
            flags
                .find_links
                .iter()
                .map(|value| parse_find_links(value, &origin, &environment.current_dir))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(layer)
}

fn env_layer(environment: &IndexEnvironment) -> Result<Layer, IndexConfigError> {
    let mut layer = Layer::default();
    for name in ["UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"] {
        if let Some(value) = environment.var(name) {
            layer.default_index = Some(parse_index(
                value,
                &ConfigOrigin::Environment(name.to_string()),
            )?);
            break;
        }
    }
    let mut extra = Vec::new();
    for name in ["UV_INDEX", "UV_EXTRA_INDEX_URL", "PIP_EXTRA_INDEX_URL"] {
        if let Some(value) = environment.var(name) {
            let origin = ConfigOrigin::Environment(name.to_string());
            for item in value.split_whitespace() {
                extra.push(parse_index(item, &origin)?);
            }
        }
    }
    if !extra.is_empty() {
        layer.extra_indexes = Some(extra);
    }
    let mut find_links = Vec::new();
    for name in ["UV_FIND_LINKS", "PIP_FIND_LINKS"] {
        if let Some(value) = environment.var(name) {
            let origin = ConfigOrigin::Environment(name.to_string());
            // uv separates with commas, pip with whitespace: accept both.
            for item in value
                .split(|character: char| character == ',' || character.is_whitespace())
                .filter(|item| !item.is_empty())
            {
                find_links.push(parse_find_links(item, &origin, &environment.current_dir)?);
            }
        }
    }
    if !find_links.is_empty() {
        layer.find_links = Some(find_links);
    }
    Ok(layer)
}

/// Read a config file; a missing file is `None`.
fn read_optional(path: &Path) -> Result<Option<String>, IndexConfigError> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(IndexConfigError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(error.kind(), error),
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UvTomlWire {
    index_url: Option<String>,
    extra_index_url: Option<Vec<String>>,
    find_links: Option<Vec<String>>,
    index: Option<Vec<UvIndexWire>>,
}

#[derive(Deserialize)]
struct UvIndexWire {
    url: String,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    explicit: bool,
}

fn uv_toml_layer(environment: &IndexEnvironment) -> Result<Layer, IndexConfigError> {
    let mut layer = Layer::default();
    if environment.var("UV_NO_CONFIG").is_some() {
        return Ok(layer);
    }
    // User over system: read the system file first so the user's settings replace it.
    let mut paths = vec![environment.system_path("/etc/uv/uv.toml")];
    if let Some(config_home) = environment.config_home() {
        paths.push(config_home.join("uv/uv.toml"));
    }
    for path in paths {
        let Some(text) = read_optional(&path)? else {
            continue;
        };
        let wire: UvTomlWire =
            toml::from_str(&text).map_err(|error| IndexConfigError::InvalidUvToml {
                place: match error.span() {
                    Some(span) => {
                        let (line, column) = crate::lock::line_column(&text, span.start);
                        format!("{}:{line}:{column}", path.display())
                    }
                    None => path.display().to_string(),
                },
                message: error.message().trim_end().to_string(),
            })?;
        let origin = ConfigOrigin::File(path.clone());
        let mut extra: Option<Vec<IndexUrl>> = None;
        let mut default_index = None;
        for index in wire.index.unwrap_or_default() {
            let parsed = parse_index(&index.url, &origin)?;
            if index.default {
                default_index = Some(parsed);
            } else if !index.explicit {
                extra.get_or_insert_with(Vec::new).push(parsed);
            }
        }
        if let Some(value) = &wire.index_url {
            default_index = default_index.or(Some(parse_index(value, &origin)?));
        }
        for value in wire.extra_index_url.unwrap_or_default() {
            extra
                .get_or_insert_with(Vec::new)
                .push(parse_index(&value, &origin)?);
        }
        let find_links = wire
            .find_links
            .map(|values| {
                let base = path.parent().unwrap_or(Path::new("/"));
                values
                    .iter()
                    .map(|value| parse_find_links(value, &origin, base))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if default_index.is_some() {
            layer.default_index = default_index;
        }
        if extra.is_some() {
            layer.extra_indexes = extra;
        }
        if find_links.is_some() {
            layer.find_links = find_links;
        }
    }
    Ok(layer)
}

/// pip's configuration files, lowest precedence first.
fn pip_conf_paths(environment: &IndexEnvironment) -> Vec<PathBuf> {
    let mut paths = vec![
        environment.system_path("/etc/pip.conf"),
        environment.system_path("/etc/xdg/pip/pip.conf"),
    ];
    if let Some(home) = environment.home() {
        paths.push(home.join(".pip/pip.conf"));
    }
    if let Some(config_home) = environment.config_home() {
        paths.push(config_home.join("pip/pip.conf"));
    }
    if let Some(file) = environment.var("PIP_CONFIG_FILE") {
        paths.push(PathBuf::from(file));
    }
    paths
}

fn pip_conf_layer(environment: &IndexEnvironment) -> Result<Layer, IndexConfigError> {
    let mut layer = Layer::default();
    // pip: `PIP_CONFIG_FILE=os.devnull` turns every configuration file off.
    if environment.var("PIP_CONFIG_FILE") == Some("/dev/null") {
        return Ok(layer);
    }
    for path in pip_conf_paths(environment) {
        let Some(text) = read_optional(&path)? else {
            continue;
        };
        let sections = parse_ini(&text, &path)?;
        let origin = ConfigOrigin::File(path.clone());
        let get = |key: &str| {
            ["install", "global"].iter().find_map(|section| {
                sections
                    .get(*section)
                    .and_then(|options| options.get(key))
                    .cloned()
            })
        };
        if let Some(value) = get("index-url") {
            layer.default_index = Some(parse_index(&value, &origin)?);
        }
        if let Some(value) = get("extra-index-url") {
            layer.extra_indexes = Some(
                value
                    .split_whitespace()
                    .map(|item| parse_index(item, &origin))
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(value) = get("find-links") {
            let base = path.parent().unwrap_or(Path::new("/"));
            layer.find_links = Some(
                value
                    .split_whitespace()
                    .map(|item| parse_find_links(item, &origin, base))
                    .collect::<Result<_, _>>()?,
            );
        }
    }
    Ok(layer)
}

/// A small reading of Python's `configparser` as pip uses it: `[section]` headers,
/// `key = value` or `key: value` options (keys lowercased, `_` read as `-`), indented
/// continuation lines appended to the previous value, `#` and `;` comment lines.
fn parse_ini(
    text: &str,
    path: &Path,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, IndexConfigError> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let invalid = || IndexConfigError::InvalidPipConf {
            place: format!("{}:{}", path.display(), number + 1),
            line: line.to_string(),
        };
        if line.starts_with(char::is_whitespace) {
            let (Some(section), Some(key)) = (&section, &last_key) else {
                return Err(invalid());
            };
            let value = sections
                .entry(section.clone())
                .or_default()
                .entry(key.clone())
                .or_default();
            value.push('\n');
            value.push_str(trimmed);
            continue;
        }
        if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = Some(name.trim().to_ascii_lowercase());
            last_key = None;
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(invalid());
        };
        let Some(current) = &section else {
            return Err(invalid());
        };
        let key = trimmed[..split]
            .trim()
            .to_ascii_lowercase()
            .replace('_', "-");
        let value = trimmed[split + 1..].trim().to_string();
        sections
            .entry(current.clone())
            .or_default()
            .insert(key.clone(), value);
        last_key = Some(key);
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake home and system root with the given files; `vars` gets `HOME` set.
    struct Setup {
        root: tempfile::TempDir,
    }

    impl Setup {
        fn new(files: &[(&str, &str)]) -> Self {
            let root = tempfile::tempdir().unwrap();
            for (path, text) in files {
                let path = root.path().join(path);
                fs_err::create_dir_all(path.parent().unwrap()).unwrap();
                fs_err::write(&path, text).unwrap();
            }
            Self { root }
        }

        fn path(&self, relative: &str) -> String {
            self.root.path().join(relative).display().to_string()
        }

        fn environment(&self, vars: &[(&str, &str)]) -> IndexEnvironment {
            let mut all: Vec<(String, String)> = vec![("HOME".to_string(), self.path("home"))];
            all.extend(
                vars.iter()
                    .map(|(key, value)| (key.to_string(), value.replace("{root}", &self.path("")))),
            );
            IndexEnvironment::from_vars(all)
                .with_system_root(self.root.path().join("system"))
                .with_current_dir(self.root.path().join("work"))
        }

        fn resolve(&self, flags: &IndexFlags, vars: &[(&str, &str)]) -> IndexConfig {
            IndexConfig::resolve(flags, &self.environment(vars)).unwrap()
        }

        fn resolve_error(&self, flags: &IndexFlags, vars: &[(&str, &str)]) -> String {
            IndexConfig::resolve(flags, &self.environment(vars))
                .unwrap_err()
                .to_string()
                .replace(&self.path(""), "{root}/")
        }
    }

    fn urls(indexes: Vec<&IndexUrl>) -> Vec<String> {
        indexes.iter().map(|index| index.to_string()).collect()
    }

    fn origins(indexes: Vec<&IndexUrl>) -> Vec<String> {
        indexes
            .iter()
            .map(|index| index.origin().to_string())
            .collect()
    }

    const PIP_CONF: &str =
        "[global]\nindex-url = https://system.example/simple\ncert = /etc/ssl/certs/ca.crt\n";
    const USER_PIP_CONF: &str = "# user settings\n[global]\nindex-url = https://user.example/simple/\nextra-index-url =\n    https://extra-one.example/simple/\n    https://extra-two.example/simple/\nfind-links = wheels\n\n[install]\nindex_url: https://install-section.example/simple/\n";

    #[test]
    fn ok_nothing_configured() {
        let setup = Setup::new(&[]);
        let config = setup.resolve(&IndexFlags::default(), &[]);
        assert!(config.is_empty());
        assert!(config.indexes().is_empty());
    }

    #[test]
    fn ok_flags_over_environment_over_files() {
        let setup = Setup::new(&[
            ("system/etc/pip.conf", PIP_CONF),
            ("home/.config/pip/pip.conf", USER_PIP_CONF),
        ]);
        let flags = IndexFlags {
            index_url: Some("https://flag.example/simple".to_string()),
            ..IndexFlags::default()
        };
        let vars = [
            ("PIP_INDEX_URL", "https://env.example/simple/"),
            ("PIP_EXTRA_INDEX_URL", "https://env-extra.example/simple/"),
        ];
        let config = setup.resolve(&flags, &vars);
        assert_eq!(
            urls(config.indexes()),
            [
                "https://env-extra.example/simple/",
                "https://flag.example/simple/"
            ]
        );
        assert_eq!(
            origins(config.indexes()),
            ["`PIP_EXTRA_INDEX_URL`", "`--index-url`"]
        );

        // Without the flag the environment wins; without both, pip.conf.
        let config = setup.resolve(&IndexFlags::default(), &vars[..1]);
        assert_eq!(
            urls(config.indexes()),
            [
                "https://extra-one.example/simple/",
                "https://extra-two.example/simple/",
                "https://env.example/simple/"
            ]
        );
        let config = setup.resolve(&IndexFlags::default(), &[]);
        assert_eq!(
            config.default_index().unwrap().to_string(),
            "https://install-section.example/simple/"
        );
        assert_eq!(
            config.default_index().unwrap().origin().to_string(),
            format!("`{}`", setup.path("home/.config/pip/pip.conf"))
        );
        assert_eq!(
            config.find_links(),
            [FindLinks::Local {
                path: setup.root.path().join("home/.config/pip/wheels"),
                origin: ConfigOrigin::File(setup.root.path().join("home/.config/pip/pip.conf")),
            }]
        );
    }

    #[test]
    fn ok_environment_order() {
        let setup = Setup::new(&[]);
        let config = setup.resolve(
            &IndexFlags::default(),
            &[
                ("PIP_INDEX_URL", "https://pip.example/simple/"),
                ("UV_INDEX_URL", "https://uv-index-url.example/simple/"),
                ("UV_DEFAULT_INDEX", "https://uv-default.example/simple/"),
                (
                    "UV_INDEX",
                    "internal=https://internal.example/simple/ https://other.example/simple/",
                ),
                ("UV_EXTRA_INDEX_URL", "https://uv-extra.example/simple/"),
            ],
        );
        assert_eq!(
            urls(config.indexes()),
            [
                "https://internal.example/simple/",
                "https://other.example/simple/",
                "https://uv-extra.example/simple/",
                "https://uv-default.example/simple/"
            ]
        );
        let config = setup.resolve(
            &IndexFlags::default(),
            &[
                ("PIP_INDEX_URL", "https://pip.example/simple/"),
                ("UV_INDEX_URL", "https://uv-index-url.example/simple/"),
            ],
        );
        assert_eq!(
            urls(config.indexes()),
            ["https://uv-index-url.example/simple/"]
        );
    }

    #[test]
    fn ok_find_links_from_environment() {
        let setup = Setup::new(&[]);
        let config = setup.resolve(
            &IndexFlags::default(),
            &[
                (
                    "PIP_FIND_LINKS",
                    "/opt/wheels  relative https://links.example/wheels.html",
                ),
                ("UV_FIND_LINKS", "file:///srv/wheels"),
            ],
        );
        let shown: Vec<String> = config
            .find_links()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "/srv/wheels".to_string(),
                "/opt/wheels".to_string(),
                setup.path("work/relative"),
                "https://links.example/wheels.html".to_string()
            ]
        );
    }

    #[test]
    fn ok_pip_conf_file_precedence() {
        let setup = Setup::new(&[
            (
                "system/etc/pip.conf",
                "[global]\nindex-url = https://system.example/simple/\nextra-index-url = https://system-extra.example/simple/\n",
            ),
            (
                "home/.pip/pip.conf",
                "[global]\nindex-url = https://legacy.example/simple/\n",
            ),
            (
                "xdg/pip/pip.conf",
                "[global]\nindex-url = https://xdg.example/simple/\n",
            ),
            (
                "custom.conf",
                "[global]\nindex-url = https://custom.example/simple/\n",
            ),
        ]);
        let xdg = setup.path("xdg");
        let custom = setup.path("custom.conf");
        let default_of = |vars: &[(&str, &str)]| {
            setup
                .resolve(&IndexFlags::default(), vars)
                .default_index()
                .map(ToString::to_string)
        };
        assert_eq!(
            default_of(&[]),
            Some("https://legacy.example/simple/".to_string())
        );
        assert_eq!(
            default_of(&[("XDG_CONFIG_HOME", &xdg)]),
            Some("https://xdg.example/simple/".to_string())
        );
        assert_eq!(
            default_of(&[("XDG_CONFIG_HOME", &xdg), ("PIP_CONFIG_FILE", &custom)]),
            Some("https://custom.example/simple/".to_string())
        );
        assert_eq!(default_of(&[("PIP_CONFIG_FILE", "/dev/null")]), None);
        // Key by key: the system file's extra index survives the user file's index-url.
        let config = setup.resolve(&IndexFlags::default(), &[]);
        assert_eq!(
            urls(config.indexes()),
            [
                "https://system-extra.example/simple/",
                "https://legacy.example/simple/"
            ]
        );
    }

    #[test]
    fn ok_uv_toml() {
        let setup = Setup::new(&[
            (
                "system/etc/uv/uv.toml",
                "index-url = \"https://uv-system.example/simple/\"\n",
            ),
            (
                "home/.config/uv/uv.toml",
                "extra-index-url = [\"https://uv-extra.example/simple/\"]\n\n[[index]]\nname = \"torch\"\nurl = \"https://torch.example/whl/\"\nexplicit = true\n\n[[index]]\nname = \"corp\"\nurl = \"https://corp.example/simple\"\n\n[[index]]\nurl = \"https://uv-default.example/simple/\"\ndefault = true\n",
            ),
            ("system/etc/pip.conf", PIP_CONF),
        ]);
        let config = setup.resolve(&IndexFlags::default(), &[]);
        assert_eq!(
            urls(config.indexes()),
            [
                "https://corp.example/simple/",
                "https://uv-extra.example/simple/",
                "https://uv-default.example/simple/"
            ]
        );
        // UV_NO_CONFIG skips uv.toml: pip.conf applies.
        let config = setup.resolve(&IndexFlags::default(), &[("UV_NO_CONFIG", "1")]);
        assert_eq!(urls(config.indexes()), ["https://system.example/simple/"]);
    }

    #[test]
    fn ok_no_config_skips_files_not_environment() {
        let setup = Setup::new(&[("system/etc/pip.conf", PIP_CONF)]);
        let flags = IndexFlags {
            no_config: true,
            ..IndexFlags::default()
        };
        assert!(setup.resolve(&flags, &[]).is_empty());
        assert_eq!(
            urls(
                setup
                    .resolve(&flags, &[("PIP_INDEX_URL", "https://env.example/simple")])
                    .indexes()
            ),
            ["https://env.example/simple/"]
        );
    }

    #[test]
    fn ok_netrc_and_url_credentials_never_shown() {
        let setup = Setup::new(&[(
            "creds/netrc",
            "machine netrc.example login ci password netrc-secret\n",
        )]);
        let netrc = setup.path("creds/netrc");
        let config = setup.resolve(
            &IndexFlags {
                index_url: Some("https://user:url-secret@url.example/simple/".to_string()),
                extra_index_urls: vec!["https://netrc.example/simple/".to_string()],
                ..IndexFlags::default()
            },
            &[("NETRC", &netrc)],
        );
        let indexes = config.indexes();
        assert_eq!(
            config.authenticate(indexes[0].url()).as_str(),
            "https://ci:netrc-secret@netrc.example/simple/"
        );
        assert_eq!(
            indexes[1].url().as_str(),
            "https://user:url-secret@url.example/simple/"
        );
        let shown = format!("{:?} {}", config, config.describe().join("\n"));
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(
            config.describe(),
            [
                "extra index: https://netrc.example/simple/ (from `--extra-index-url`)",
                "default index: https://***@url.example/simple/ (from `--index-url`)"
            ]
        );
    }

    #[test]
    fn ok_lock_url_variables_expanded() {
        let setup = Setup::new(&[]);
        let config = setup.resolve(
            &IndexFlags::default(),
            &[("PIPENV_USER", "ci"), ("PIPENV_TOKEN", "t0k/en")],
        );
        let written =
            url::Url::parse("https://${PIPENV_USER}:${PIPENV_TOKEN}@pkgs.example.internal/simple/")
                .unwrap();
        assert_eq!(
            config.expand_lock_url(&written).as_str(),
            "https://ci:t0k%2Fen@pkgs.example.internal/simple/"
        );
        let unset = url::Url::parse("https://${NOT_SET}@pkgs.example.internal/simple/").unwrap();
        assert_eq!(config.expand_lock_url(&unset), unset);
        let shown = format!("{config:?}");
        assert!(!shown.contains("t0k"), "{shown}");
    }

    #[test]
    fn err_invalid_url_hides_credentials() {
        let setup = Setup::new(&[]);
        assert_eq!(
            setup.resolve_error(
                &IndexFlags::default(),
                &[("PIP_INDEX_URL", "https://user:secret@bad host/simple/")]
            ),
            "the index URL `https://***@bad host/simple/` from `PIP_INDEX_URL` is not a URL: invalid international domain name; write an absolute `http://` or `https://` URL"
        );
        assert_eq!(
            setup.resolve_error(
                &IndexFlags {
                    index_url: Some("ftp://user:secret@mirror.example/simple/".to_string()),
                    ..IndexFlags::default()
                },
                &[]
            ),
            "the index URL `ftp://***@mirror.example/simple/` from `--index-url` uses the scheme `ftp`, but package indexes are read over `http` or `https` (use `--find-links` for a local folder)"
        );
    }

    #[test]
    fn err_pip_conf_line() {
        let setup = Setup::new(&[(
            "system/etc/pip.conf",
            "[global]\nindex-url = https://x.example/\nthis is not an option\n",
        )]);
        assert_eq!(
            setup.resolve_error(&IndexFlags::default(), &[]),
            "cannot read pip configuration `{root}/system/etc/pip.conf:3`: `this is not an option` is not a `[section]`, a `key = value` line or an indented continuation; fix the file, or pass `--no-index-config` to ignore it"
        );
    }

    #[test]
    fn err_uv_toml_line_column() {
        let setup = Setup::new(&[(
            "home/.config/uv/uv.toml",
            "\nextra-index-url = \"https://x.example/\"\n",
        )]);
        assert_eq!(
            setup.resolve_error(&IndexFlags::default(), &[]),
            "cannot read uv configuration `{root}/home/.config/uv/uv.toml:2:19`: invalid type: string \"https://x.example/\", expected a sequence; fix the file, or pass `--no-index-config` to ignore it"
        );
    }

    /// Runs [`IndexConfig::resolve`] on hostile versions of one configuration file, and
    /// uses what it gives.
    fn assert_no_panic_on_config(name: &str, file: &str, seeds: Vec<String>) {
        let setup = Setup::new(&[]);
        let path = setup.root.path().join(file);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        let environment = setup.environment(&[]);
        let lock_url = url::Url::parse("https://${USER}:${TOKEN}@127.0.0.1/simple/").unwrap();
        crate::lock::testing::assert_no_panic(name, seeds, 1500, |text| {
            fs_err::write(&path, text).unwrap();
            if let Ok(config) = IndexConfig::resolve(&IndexFlags::default(), &environment) {
                let _ = config.describe();
                let _ = config.expand_lock_url(&lock_url);
                for index in config.indexes() {
                    let _ = config.authenticate(index.url());
                }
            }
        });
    }

    #[test]
    fn ok_no_panic_on_hostile_pip_conf() {
        assert_no_panic_on_config(
            "pip.conf",
            "system/etc/pip.conf",
            vec![PIP_CONF.to_string(), USER_PIP_CONF.to_string()],
        );
    }

    #[test]
    fn ok_no_panic_on_hostile_uv_toml() {
        assert_no_panic_on_config(
            "uv.toml",
            "system/etc/uv/uv.toml",
            vec![
                "extra-index-url = [\"https://uv-extra.example/simple/\"]\nfind-links = [\"wheels\", \"https://127.0.0.1/links.html\"]\n\n[[index]]\nname = \"torch\"\nurl = \"https://torch.example/whl/\"\nexplicit = true\n\n[[index]]\nurl = \"https://uv-default.example/simple/\"\ndefault = true\n".to_string(),
                "index-url = \"https://uv-system.example/simple/\"\n".to_string(),
            ],
        );
    }
}
