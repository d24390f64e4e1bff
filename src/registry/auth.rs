//! Registry authentication: where credentials come from (docker `config.json`,
//! credential helpers, containers `auth.json`), and the challenge flows (Basic, Bearer
//! tokens with scopes, identity tokens).
//!
//! Credentials are looked up in the docker CLI's order ([`credentials_for`]); the
//! [`Authenticator`] answers a registry's `401` (`WWW-Authenticate`, RFC 7235) with
//! Basic credentials, or with a Bearer token from the realm the registry names
//! (distribution `token.md`, and `oauth.md` for identity tokens), cached per scope set
//! until shortly before it expires. Secrets (passwords, identity tokens, access tokens)
//! never appear in `Debug` output, error messages or logs; the `Authorization` values
//! built here are marked sensitive so HTTP-level logging hides them too.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use data_encoding::{BASE64, BASE64_NOPAD};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::http::{Body, ByteSize, MinimumRate, redact_url};

/// The key Docker Hub's credentials are stored under in `config.json`, and the server
/// URL its credential helpers are asked about.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// How long a credential helper may run before it is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a credential helper or token endpoint may print or send (bytes).
const MAX_ANSWER: u64 = 1 << 20;

/// Token lifetime when the token endpoint gives none, and the least one honoured
/// (distribution `token.md`: "expires_in … defaults to 60 seconds").
const MIN_TOKEN_LIFETIME: u64 = 60;

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or access token used as a password).
    Basic {
        /// User name.
        username: String,
        /// Password; never printed.
        password: String,
    },
    /// An identity (refresh) token, exchanged at the token endpoint (OAuth2).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// Who the credential speaks for, as error messages name it (never the secret).
    fn describe(&self) -> String {
        match self {
            Self::Basic { username, .. } => format!("of user `{username}`"),
            Self::IdentityToken(_) => "(an identity token)".to_string(),
        }
    }

    /// The `Authorization: Basic` value, for a user name and password.
    fn basic_header(&self) -> Option<HeaderValue> {
        let Self::Basic { username, password } = self else {
            return None;
        };
        let encoded = BASE64.encode(format!("{username}:{password}").as_bytes());
        sensitive_header(&format!("Basic {encoded}"))
    }
}

/// An access scope on a repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `repository:<name>:pull`.
    Pull(String),
    /// `repository:<name>:pull,push`.
    PullPush(String),
}

impl Scope {
    /// The repository the scope is about.
    pub fn repository(&self) -> &str {
        match self {
            Self::Pull(repository) | Self::PullPush(repository) => repository,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pull(repository) => write!(f, "repository:{repository}:pull"),
            Self::PullPush(repository) => write!(f, "repository:{repository}:pull,push"),
        }
    }
}

/// Errors from finding credentials or obtaining a token. None carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A docker `config.json` or containers `auth.json` could not be read.
    #[error("cannot read the credentials file `{}`", path.display())]
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credentials file is not the JSON it should be.
    #[error(
        "credentials file `{}` is not valid docker `config.json` / `auth.json` JSON ({problem}): fix it, or log in again to rewrite it",
        path.display()
    )]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and where, never the file's content: a JSON error can quote a
        /// value, and the value may be a password.
        problem: String,
    },
    /// An `auth` value is not base64 of `user:password`.
    #[error(
        "the `auth` value of `{key}` in `{}` is not base64 of `user:password`: log in again (`envbuild login {registry}`)",
        path.display()
    )]
    AuthValueInvalid {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
        /// The registry looked up.
        registry: String,
    },
    /// A credential helper named by the configuration is not installed.
    #[error(
        "credential helper `{program}`, named by `{setting}` in `{}`, is not on PATH: install it, or remove `{setting}` from that file",
        path.display()
    )]
    HelperMissing {
        /// `docker-credential-<name>`.
        program: String,
        /// `credHelpers` or `credsStore`.
        setting: &'static str,
        /// The config file naming it.
        path: PathBuf,
    },
    /// A credential helper could not be run.
    #[error("cannot run credential helper `{program}`")]
    HelperIo {
        /// `docker-credential-<name>`.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credential helper failed.
    #[error("credential helper `{program}` failed for `{registry}` ({status}): {message}")]
    HelperFailed {
        /// `docker-credential-<name>`.
        program: String,
        /// The registry asked about.
        registry: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed (it prints no secret when it fails).
        message: String,
    },
    /// A credential helper ran too long.
    #[error(
        "credential helper `{program}` gave no answer for `{registry}` within {} s and was stopped; it may be waiting for a login prompt",
        timeout.as_secs()
    )]
    HelperTimedOut {
        /// `docker-credential-<name>`.
        program: String,
        /// The registry asked about.
        registry: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// A credential helper succeeded but printed no credential JSON.
    #[error(
        "credential helper `{program}` printed no valid credential for `{registry}` (expected JSON with `Username` and `Secret`)"
    )]
    HelperOutputInvalid {
        /// `docker-credential-<name>`.
        program: String,
        /// The registry asked about.
        registry: String,
    },
    /// The registry asks for credentials and none were found.
    #[error(
        "registry `{registry}` needs credentials: run `envbuild login {registry}`, or `docker login {registry}` / `podman login {registry}`"
    )]
    CredentialsNeeded {
        /// The registry.
        registry: String,
    },
    /// The registry (or its token service) refused the credentials.
    #[error(
        "registry `{registry}` refused the credentials {who}: check them and log in again (`envbuild login {registry}`)"
    )]
    CredentialsRefused {
        /// The registry.
        registry: String,
        /// Whose credentials (a user name, never the secret).
        who: String,
    },
    /// A Basic challenge, but the credential is an identity token.
    #[error(
        "registry `{registry}` asks for a user name and password, but its credential is an identity token: log in with a password (`envbuild login {registry}`)"
    )]
    IdentityTokenNotUsable {
        /// The registry.
        registry: String,
    },
    /// The token did not grant the access the request needs.
    #[error("registry `{registry}` did not grant `{scopes}`{hint}")]
    AccessDenied {
        /// The registry.
        registry: String,
        /// The scopes asked for, space-separated.
        scopes: String,
        /// Why, as a clause starting with `: `.
        hint: String,
    },
    /// The registry rejected tokens from its own token service again and again.
    #[error(
        "registry `{registry}` rejected the tokens issued by `{realm}`: the registry may not trust that token service, or the clocks of the two differ"
    )]
    TokenRejected {
        /// The registry.
        registry: String,
        /// The token realm (without query).
        realm: String,
    },
    /// The token request failed on the network.
    #[error("cannot get a token for registry `{registry}` from `{realm}`")]
    TokenRequest {
        /// The registry.
        registry: String,
        /// The token realm (without query).
        realm: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint answered with an error status.
    #[error(
        "token service `{realm}` of registry `{registry}` answered HTTP {status}: try again later, or check the registry's token service"
    )]
    TokenStatus {
        /// The registry.
        registry: String,
        /// The token realm (without query).
        realm: String,
        /// The status.
        status: StatusCode,
    },
    /// The token endpoint's answer is not a usable token.
    #[error("token service `{realm}` of registry `{registry}` sent an unusable answer: {reason}")]
    TokenResponseInvalid {
        /// The registry.
        registry: String,
        /// The token realm (without query).
        realm: String,
        /// What is wrong (never the token).
        reason: String,
    },
    /// The `WWW-Authenticate` header cannot be parsed.
    #[error("registry `{registry}` sent a malformed `WWW-Authenticate` header: {reason}")]
    ChallengeInvalid {
        /// The registry.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry asks only for schemes envbuild does not speak.
    #[error(
        "registry `{registry}` asks for authentication scheme {schemes}; envbuild supports `Basic` and `Bearer`"
    )]
    ChallengeUnsupported {
        /// The registry.
        registry: String,
        /// The schemes offered, quoted.
        schemes: String,
    },
    /// The token realm is not a URL credentials may be sent to.
    #[error("registry `{registry}` names the token realm `{realm}`, which {reason}")]
    RealmInvalid {
        /// The registry.
        registry: String,
        /// The realm as given (without query).
        realm: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Neither `DOCKER_CONFIG` nor `HOME` is known, so there is no config to write.
    #[error("cannot tell where the docker config lives: set `DOCKER_CONFIG` or `HOME`")]
    ConfigLocationUnknown,
    /// The docker config could not be written.
    #[error("cannot write the docker config `{}`", path.display())]
    ConfigWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A user name Basic authentication cannot carry.
    #[error(
        "the user name for registry `{registry}` is empty or contains `:`, which Basic authentication cannot carry"
    )]
    UsernameInvalid {
        /// The registry.
        registry: String,
    },
}

/// Where credentials are looked up; the caller reads the environment once
/// ([`AuthEnvironment::from_process_env`]).
#[derive(Debug, Clone, Default)]
pub struct AuthEnvironment {
    /// `$DOCKER_CONFIG` (a folder holding `config.json`).
    pub docker_config: Option<std::path::PathBuf>,
    /// `$HOME`.
    pub home: Option<std::path::PathBuf>,
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<std::path::PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<std::path::PathBuf>,
    /// `$PATH`, searched for `docker-credential-<name>` helpers and given to them;
    /// `None` leaves both to the process's own `PATH`.
    pub path: Option<OsString>,
}

impl AuthEnvironment {
    /// Read `DOCKER_CONFIG`, `HOME`, `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR` and `PATH`
    /// from the process environment (empty values count as unset).
    pub fn from_process_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        Self {
            docker_config: var("DOCKER_CONFIG").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            registry_auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            path: var("PATH"),
        }
    }

    /// The docker CLI's config file: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`.
    pub fn docker_config_file(&self) -> Option<PathBuf> {
        match (&self.docker_config, &self.home) {
            (Some(folder), _) => Some(folder.join("config.json")),
            (None, Some(home)) => Some(home.join(".docker").join("config.json")),
            (None, None) => None,
        }
    }

    /// The containers (podman, skopeo, buildah) credentials file: `$REGISTRY_AUTH_FILE`,
    /// else `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub fn containers_auth_file(&self) -> Option<PathBuf> {
        match (&self.registry_auth_file, &self.xdg_runtime_dir) {
            (Some(file), _) => Some(file.clone()),
            (None, Some(runtime)) => Some(runtime.join("containers").join("auth.json")),
            (None, None) => None,
        }
    }
}

/// The parts of a docker `config.json` (or containers `auth.json`) read here.
#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

/// One `auths` entry. No `Debug`: it holds secrets.
#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Find the credential for a registry host (`host[:port]`), in the docker CLI's order:
/// in the docker config ([`AuthEnvironment::docker_config_file`]) `credHelpers[host]`,
/// then `credsStore`, then `auths[host]`; then the containers `auth.json`
/// ([`AuthEnvironment::containers_auth_file`]); else `None` (anonymous).
///
/// `auths` keys match by host, so `https://host/v1/` counts as `host`; Docker Hub's
/// names (`docker.io`, `index.docker.io`, `registry-1.docker.io`) all find its
/// `https://index.docker.io/v1/` entry. A helper that answers "credentials not found"
/// passes the lookup on; a `credsStore` helper that is not installed is skipped with a
/// warning, while a missing `credHelpers` helper (configured for this very host) is an
/// error. A helper's `Username` of `<token>` marks its secret as an identity token.
pub fn credentials_for(
    registry: &str,
    environment: &AuthEnvironment,
) -> Result<Option<Credential>, AuthError> {
    let host = normalize_host(registry);
    let server_url = helper_server_url(registry);
    if let Some(path) = environment.docker_config_file()
        && let Some(config) = read_config(&path)?
    {
        if let Some(helper) = lookup(&config.cred_helpers, registry, &host, KeyMatch::Host) {
            match run_helper(helper, &server_url, registry, environment, HELPER_TIMEOUT)? {
                HelperAnswer::Found(credential) => {
                    tracing::debug!("credentials for {registry} from credential helper `{helper}`");
                    return Ok(Some(credential));
                }
                HelperAnswer::NotFound => {}
                HelperAnswer::Missing(program) => {
                    return Err(AuthError::HelperMissing {
                        program,
                        setting: "credHelpers",
                        path,
                    });
                }
            }
        }
        if let Some(store) = config
            .creds_store
            .as_deref()
            .filter(|name| !name.is_empty())
        {
            match run_helper(store, &server_url, registry, environment, HELPER_TIMEOUT)? {
                HelperAnswer::Found(credential) => {
                    tracing::debug!("credentials for {registry} from credential store `{store}`");
                    return Ok(Some(credential));
                }
                HelperAnswer::NotFound => {}
                HelperAnswer::Missing(program) => tracing::warn!(
                    "credential helper `{program}`, named by `credsStore` in `{}`, is not on PATH; skipping it",
                    path.display()
                ),
            }
        }
        if let Some(credential) = from_auths(&config, &path, registry, &host, KeyMatch::Host)? {
            tracing::debug!("credentials for {registry} from `{}`", path.display());
            return Ok(Some(credential));
        }
    }
    if let Some(path) = environment.containers_auth_file()
        && let Some(config) = read_config(&path)?
        && let Some(credential) = from_auths(&config, &path, registry, &host, KeyMatch::HostOnly)?
    {
        tracing::debug!("credentials for {registry} from `{}`", path.display());
        return Ok(Some(credential));
    }
    Ok(None)
}

/// Store a user name and password for `registry` in the docker config's `auths` (as
/// `docker login` does without a credential store), keeping everything else in the
/// file. The file is replaced atomically and is readable by its owner only (0600).
/// Returns the file written.
pub fn store_login(
    registry: &str,
    username: &str,
    password: &str,
    environment: &AuthEnvironment,
) -> Result<PathBuf, AuthError> {
    if username.is_empty() || username.contains(':') {
        return Err(AuthError::UsernameInvalid {
            registry: registry.to_string(),
        });
    }
    let path = environment
        .docker_config_file()
        .ok_or(AuthError::ConfigLocationUnknown)?;
    let mut config = match fs_err::read(&path) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|error| config_invalid(&path, &error))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(source) => return Err(AuthError::ConfigUnreadable { path, source }),
    };
    let invalid = |path: &Path| AuthError::ConfigInvalid {
        path: path.to_path_buf(),
        problem: "expected an object with an `auths` object".to_string(),
    };
    let root = config.as_object_mut().ok_or_else(|| invalid(&path))?;
    let host = normalize_host(registry);
    let has_helper = root
        .get("credsStore")
        .and_then(|value| value.as_str())
        .is_some_and(|value| !value.is_empty())
        || root
            .get("credHelpers")
            .and_then(|value| value.as_object())
            .is_some_and(|helpers| helpers.keys().any(|key| normalize_host(key) == host));
    if has_helper {
        tracing::warn!(
            "`{}` names a credential helper that is asked before `auths`: it may answer for `{registry}` instead of this login",
            path.display()
        );
    }
    let auths = root
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| invalid(&path))?;
    let key = config_key(registry);
    // Drop any other spelling of the same host, so the lookup cannot pick a stale one.
    auths.retain(|existing, _| existing == &key || normalize_host(existing) != host);
    let entry = auths.entry(key).or_insert_with(|| serde_json::json!({}));
    if !entry.is_object() {
        *entry = serde_json::json!({});
    }
    let entry = entry.as_object_mut().ok_or_else(|| invalid(&path))?;
    for stale in ["identitytoken", "username", "password"] {
        entry.remove(stale);
    }
    entry.insert(
        "auth".to_string(),
        serde_json::Value::String(BASE64.encode(format!("{username}:{password}").as_bytes())),
    );
    let mut text =
        serde_json::to_vec_pretty(&config).map_err(|error| config_invalid(&path, &error))?;
    text.push(b'\n');
    write_private(&path, &text)?;
    Ok(path)
}

/// Write `bytes` to `path` through a 0600 temporary file next to it, then rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    let write_error = |source: std::io::Error| AuthError::ConfigWrite {
        path: path.to_path_buf(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    if !folder.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(folder).map_err(write_error)?;
    }
    // tempfile creates the file with mode 0600 on Unix.
    let mut temporary = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(folder)
        .map_err(write_error)?;
    temporary.write_all(bytes).map_err(write_error)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    temporary
        .persist(path)
        .map_err(|error| write_error(error.error))?;
    Ok(())
}

/// Read and parse a credentials file; `None` when it does not exist.
fn read_config(path: &Path) -> Result<Option<DockerConfig>, AuthError> {
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::ConfigUnreadable {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse_config(&bytes, path).map(Some)
}

/// Parse the bytes of a credentials file read from `path` (named in errors); an empty
/// file is an empty config, as the docker CLI treats it.
fn parse_config(bytes: &[u8], path: &Path) -> Result<DockerConfig, AuthError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DockerConfig::default());
    }
    serde_json::from_slice(bytes).map_err(|error| config_invalid(path, &error))
}

/// The error for a credentials file that `error` says is not valid: the kind of problem
/// and its position only, since serde's message can quote a value (a password).
fn config_invalid(path: &Path, error: &serde_json::Error) -> AuthError {
    use serde_json::error::Category;
    let kind = match error.classify() {
        Category::Syntax => "a syntax error",
        Category::Data => "a value of the wrong type",
        Category::Eof => "the file ends early",
        Category::Io => "a read error",
    };
    AuthError::ConfigInvalid {
        path: path.to_path_buf(),
        problem: format!("{kind} at line {} column {}", error.line(), error.column()),
    }
}

/// How `auths` / `credHelpers` keys are matched against a registry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyMatch {
    /// By host, ignoring any path (the docker CLI's `ConvertToHostname`).
    Host,
    /// By host, but only keys without a repository path (`auth.json` keys like
    /// `quay.io/team` are for one namespace, not the whole registry).
    HostOnly,
}

/// The value under the key for `registry`: the exact key first, then the first key (in
/// sorted order) naming the same host.
fn lookup<'a, V>(
    map: &'a BTreeMap<String, V>,
    registry: &str,
    host: &str,
    matching: KeyMatch,
) -> Option<&'a V> {
    map.get(registry)
        .or_else(|| map.get(&config_key(registry)))
        .or_else(|| {
            map.iter()
                .find(|(key, _)| {
                    normalize_host(key) == host
                        && (matching == KeyMatch::Host || key_path(key).is_empty())
                })
                .map(|(_, value)| value)
        })
}

/// The credential of the `auths` entry for `registry`, if there is a usable one.
fn from_auths(
    config: &DockerConfig,
    path: &Path,
    registry: &str,
    host: &str,
    matching: KeyMatch,
) -> Result<Option<Credential>, AuthError> {
    let Some(entry) = lookup(&config.auths, registry, host, matching) else {
        return Ok(None);
    };
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(token.to_string())));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.trim().is_empty()) {
        let key = config
            .auths
            .iter()
            .find(|(_, candidate)| std::ptr::eq(*candidate, entry))
            .map_or_else(|| registry.to_string(), |(key, _)| key.clone());
        return decode_auth(auth)
            .map(Some)
            .ok_or_else(|| AuthError::AuthValueInvalid {
                path: path.to_path_buf(),
                key,
                registry: registry.to_string(),
            });
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) if !username.is_empty() => Ok(Some(Credential::Basic {
            username: username.clone(),
            password: password.clone(),
        })),
        _ => Ok(None),
    }
}

/// Decode an `auth` value: base64 (padded or not) of `user:password`.
fn decode_auth(auth: &str) -> Option<Credential> {
    let compact: String = auth.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = BASE64_NOPAD
        .decode(compact.trim_end_matches('=').as_bytes())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    if username.is_empty() {
        return None;
    }
    Some(Credential::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// Whether `host` names Docker Hub.
fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The host (`host[:port]`, lowercase) a registry name or config key stands for, with
/// Docker Hub's aliases folded into `docker.io`.
fn normalize_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    if is_docker_hub(&host) {
        "docker.io".to_string()
    } else {
        host
    }
}

/// The path part of a config key, without the `v1`/`v2` API suffixes.
fn key_path(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let path = rest.split_once('/').map_or("", |(_, path)| path);
    match path.trim_matches('/') {
        "v1" | "v2" => "",
        other => other,
    }
}

/// The key `docker login` stores `registry` under.
fn config_key(registry: &str) -> String {
    if normalize_host(registry) == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// The server URL a credential helper is asked about (the docker CLI's choice).
fn helper_server_url(registry: &str) -> String {
    config_key(registry)
}

/// What a credential helper said.
enum HelperAnswer {
    /// A credential.
    Found(Credential),
    /// "credentials not found" (or an empty secret).
    NotFound,
    /// The helper program is not installed (its name).
    Missing(String),
}

/// A helper's JSON answer. No `Debug`: it holds the secret.
#[derive(Deserialize)]
struct HelperCredential {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Run `docker-credential-<name> get` with `server_url` on stdin, within `timeout`.
fn run_helper(
    name: &str,
    server_url: &str,
    registry: &str,
    environment: &AuthEnvironment,
    timeout: Duration,
) -> Result<HelperAnswer, AuthError> {
    let program = format!("docker-credential-{name}");
    if name.is_empty() || name.contains(['/', '\\']) {
        return Ok(HelperAnswer::Missing(program));
    }
    let executable = match &environment.path {
        Some(path) => match find_in_path(&program, path) {
            Some(found) => found,
            None => return Ok(HelperAnswer::Missing(program)),
        },
        None => PathBuf::from(&program),
    };
    let mut command = Command::new(&executable);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = &environment.path {
        command.env("PATH", path);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HelperAnswer::Missing(program));
        }
        Err(source) => return Err(AuthError::HelperIo { program, source }),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input closes the pipe: not an error here.
        let _ = stdin.write_all(server_url.as_bytes());
    }
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AuthError::HelperTimedOut {
                    program,
                    registry: registry.to_string(),
                    timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => return Err(AuthError::HelperIo { program, source }),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        // Helpers print their error (never a secret) on stdout, some on stderr.
        let message = format!(
            "{} {}",
            String::from_utf8_lossy(&stdout).trim(),
            String::from_utf8_lossy(&stderr).trim()
        );
        let message = message.trim();
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(HelperAnswer::NotFound);
        }
        let mut message: String = message.chars().take(400).collect();
        if message.is_empty() {
            message = "it printed nothing".to_string();
        }
        return Err(AuthError::HelperFailed {
            program,
            registry: registry.to_string(),
            status,
            message,
        });
    }
    let answer: HelperCredential =
        serde_json::from_slice(&stdout).map_err(|_| AuthError::HelperOutputInvalid {
            program: program.clone(),
            registry: registry.to_string(),
        })?;
    if answer.secret.is_empty() {
        return Ok(HelperAnswer::NotFound);
    }
    if answer.username == "<token>" {
        return Ok(HelperAnswer::Found(Credential::IdentityToken(
            answer.secret,
        )));
    }
    if answer.username.is_empty() {
        return Err(AuthError::HelperOutputInvalid {
            program,
            registry: registry.to_string(),
        });
    }
    Ok(HelperAnswer::Found(Credential::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

/// Read a child's pipe to the end (at most [`MAX_ANSWER`] bytes) on a thread.
fn read_in_background<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(MAX_ANSWER).read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The first executable file `program` in the folders of `path`.
fn find_in_path(program: &str, path: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|folder| folder.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// An `Authorization` value, marked sensitive so HTTP logging never prints it.
fn sensitive_header(value: &str) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_str(value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// One challenge of a `WWW-Authenticate` header (RFC 7235 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    /// The scheme, lowercase (`basic`, `bearer`).
    scheme: String,
    /// The auth-params, names lowercase, quoted values unescaped.
    params: BTreeMap<String, String>,
}

/// Parse a `WWW-Authenticate` value into its challenges:
/// `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, comma-separated, with
/// `auth-param = token BWS "=" BWS ( token / quoted-string )`. A comma inside a quoted
/// string is part of the value; after a comma, `token =` continues the parameters and
/// a bare `token` starts the next challenge. token68 forms are accepted and ignored.
fn parse_challenges(input: &str) -> Result<Vec<Challenge>, String> {
    let mut parser = HeaderParser {
        bytes: input.as_bytes(),
        position: 0,
    };
    let mut challenges = Vec::new();
    loop {
        parser.skip_separators();
        if parser.at_end() {
            break;
        }
        let scheme = parser
            .token()
            .ok_or_else(|| parser.unexpected("an authentication scheme"))?;
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        let mut first = true;
        loop {
            if first {
                if !parser.skip_spaces() {
                    if parser.at_end() || parser.peek() == Some(b',') {
                        break;
                    }
                    return Err(parser.unexpected("a space after the scheme"));
                }
                if parser.at_end() || parser.peek() == Some(b',') {
                    break;
                }
            } else {
                parser.skip_spaces();
                if !parser.eat(b',') {
                    if parser.at_end() {
                        break;
                    }
                    return Err(parser.unexpected("`,` between parameters"));
                }
                parser.skip_separators();
                if parser.at_end() {
                    break;
                }
            }
            first = false;
            let start = parser.position;
            let name = parser
                .token68()
                .ok_or_else(|| parser.unexpected("a parameter name"))?;
            parser.skip_spaces();
            if !parser.eat(b'=') {
                if name.bytes().all(is_tchar) {
                    // `, token` without `=`: the next challenge begins.
                    parser.position = start;
                    break;
                }
                continue; // a token68 credential form: nothing to keep
            }
            if parser
                .peek()
                .is_none_or(|byte| byte == b',' || byte == b'=')
            {
                // `token68=` padding, not a parameter.
                while parser.eat(b'=') {}
                continue;
            }
            parser.skip_spaces();
            let value = if parser.peek() == Some(b'"') {
                parser.quoted()?
            } else {
                parser
                    .token()
                    .ok_or_else(|| parser.unexpected("a parameter value"))?
                    .to_string()
            };
            challenge
                .params
                .entry(name.to_ascii_lowercase())
                .or_insert(value);
        }
        challenges.push(challenge);
    }
    if challenges.is_empty() {
        return Err("it holds no challenge".to_string());
    }
    Ok(challenges)
}

/// A cursor over a header value.
struct HeaderParser<'a> {
    bytes: &'a [u8],
    position: usize,
}

/// RFC 7230 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

impl<'a> HeaderParser<'a> {
    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    /// Skip spaces and tabs; whether any were skipped.
    fn skip_spaces(&mut self) -> bool {
        let start = self.position;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.position += 1;
        }
        self.position > start
    }

    /// Skip spaces, tabs and commas (empty list elements are allowed).
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.position += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> Option<&'a str> {
        let start = self.position;
        while self.peek().is_some_and(&keep) {
            self.position += 1;
        }
        (self.position > start)
            .then(|| std::str::from_utf8(&self.bytes[start..self.position]).ok())
            .flatten()
    }

    fn token(&mut self) -> Option<&'a str> {
        self.take_while(is_tchar)
    }

    /// A token, or a token68 (which also allows `/`, but not `=` here).
    fn token68(&mut self) -> Option<&'a str> {
        self.take_while(|byte| is_tchar(byte) || byte == b'/')
    }

    /// A quoted string, unescaped.
    fn quoted(&mut self) -> Result<String, String> {
        let open = self.position;
        self.position += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "the quoted string at character {} is not closed",
                        open + 1
                    ));
                }
                Some(b'"') => {
                    self.position += 1;
                    break;
                }
                Some(b'\\') => {
                    self.position += 1;
                    if let Some(byte) = self.peek() {
                        value.push(byte);
                        self.position += 1;
                    }
                }
                Some(byte) => {
                    value.push(byte);
                    self.position += 1;
                }
            }
        }
        String::from_utf8(value).map_err(|_| "a quoted string is not UTF-8".to_string())
    }

    fn unexpected(&self, expected: &str) -> String {
        match self.peek() {
            Some(byte) => format!(
                "expected {expected} at character {}, found `{}`",
                self.position + 1,
                char::from(byte).escape_default()
            ),
            None => format!("expected {expected}, found the end"),
        }
    }
}

/// Requested or granted access: resource (`repository:<name>`) → actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScopeSet(BTreeMap<String, BTreeSet<String>>);

impl ScopeSet {
    fn from_scopes(scopes: &[Scope]) -> Self {
        let mut set = Self::default();
        for scope in scopes {
            set.add(&scope.to_string());
        }
        set
    }

    /// Add one scope string (`type:name:action[,action]`).
    fn add(&mut self, scope: &str) {
        let scope = scope.trim();
        if scope.is_empty() {
            return;
        }
        match scope
            .rsplit_once(':')
            .filter(|(resource, _)| resource.contains(':'))
        {
            Some((resource, actions)) => {
                let entry = self.0.entry(resource.to_string()).or_default();
                entry.extend(
                    actions
                        .split(',')
                        .map(str::trim)
                        .filter(|action| !action.is_empty())
                        .map(str::to_string),
                );
            }
            None => {
                self.0.entry(scope.to_string()).or_default();
            }
        }
    }

    /// Whether a token for `self` also allows everything `wanted` asks for.
    fn covers(&self, wanted: &ScopeSet) -> bool {
        wanted.0.iter().all(|(resource, actions)| {
            self.0.get(resource).is_some_and(|granted| {
                granted.contains("*") || actions.iter().all(|action| granted.contains(action))
            })
        })
    }

    /// The `scope` parameters, one per resource, in a stable order.
    fn params(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(resource, actions)| {
                if actions.is_empty() {
                    resource.clone()
                } else {
                    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                    format!("{resource}:{}", actions.join(","))
                }
            })
            .collect()
    }
}

/// A token and the scopes it was asked for. No `Debug` of the value.
struct CachedToken {
    scopes: ScopeSet,
    header: HeaderValue,
    usable_until: Instant,
}

/// How the registry wants to be authenticated, once a challenge said so.
#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: url::Url,
        service: Option<String>,
    },
}

/// Mutable state of an [`Authenticator`].
#[derive(Default)]
struct State {
    scheme: Option<Scheme>,
    tokens: Vec<CachedToken>,
    /// How often a token for a scope set (its `params` joined) was rejected as invalid.
    rejections: BTreeMap<String, u32>,
}

/// Authorization state for one registry: its credential and cached tokens.
///
/// Use: send a request with [`header`](Self::header)'s value (if any); on `401`, pass
/// the `WWW-Authenticate` value to [`on_challenge`](Self::on_challenge) (or, knowing
/// the `Authorization` value the request carried,
/// [`on_challenge_after`](Self::on_challenge_after)), then ask `header` again and
/// retry once. Safe to share between concurrent requests.
pub struct Authenticator {
    http: reqwest::Client,
    registry: String,
    credential: Option<Credential>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scheme, tokens) = match self.state.try_lock() {
            Ok(state) => (
                format!(
                    "{:?}",
                    state.scheme.as_ref().map(|scheme| match scheme {
                        Scheme::Basic => "Basic",
                        Scheme::Bearer { .. } => "Bearer",
                    })
                ),
                state.tokens.len().to_string(),
            ),
            Err(_) => ("<busy>".to_string(), "<busy>".to_string()),
        };
        f.debug_struct("Authenticator")
            .field("registry", &self.registry)
            .field("credential", &self.credential)
            .field("scheme", &format_args!("{scheme}"))
            .field("cached_tokens", &format_args!("{tokens}"))
            .finish_non_exhaustive()
    }
}

/// What the refused request carried, as far as the caller knows.
enum Sent<'a> {
    Unknown,
    Known(Option<&'a HeaderValue>),
}

/// The JSON answer of a token endpoint. No `Debug`: it holds the token.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Authenticator {
    /// A new authenticator for `registry` using `http` for token requests.
    pub fn new(http: reqwest::Client, registry: &str, credential: Option<Credential>) -> Self {
        Self {
            http,
            registry: registry.to_string(),
            credential,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The registry (`host[:port]`) this authenticator is for.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The `Authorization` header value to send for a request needing `scopes`, if any
    /// is known yet (a cached token, or Basic after a Basic challenge).
    ///
    /// Once the registry has asked for Bearer tokens, a missing token for `scopes` is
    /// fetched here (all scopes in one token), which saves the `401` round trip.
    pub async fn header(&self, scopes: &[Scope]) -> Result<Option<HeaderValue>, AuthError> {
        let mut state = self.state.lock().await;
        match state.scheme.clone() {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(self.credential.as_ref().and_then(Credential::basic_header)),
            Some(Scheme::Bearer { realm, service }) => {
                let wanted = ScopeSet::from_scopes(scopes);
                let now = Instant::now();
                state.tokens.retain(|token| token.usable_until > now);
                if let Some(token) = state
                    .tokens
                    .iter()
                    .find(|token| token.scopes.covers(&wanted))
                {
                    return Ok(Some(token.header.clone()));
                }
                let token = self.fetch_token(&realm, service.as_deref(), wanted).await?;
                let header = token.header.clone();
                state.tokens.push(token);
                Ok(Some(header))
            }
        }
    }

    /// Handle a 401 answer's `WWW-Authenticate` value: obtain what `header` should send
    /// next for `scopes`.
    ///
    /// Without knowing what the refused request carried, only a Bearer challenge with an
    /// `error` parameter (RFC 6750 §3.1: sent only when a token was presented) counts as
    /// a refusal; Basic challenges repeat alike for missing and for wrong credentials, so
    /// telling "refused" from "not sent yet" needs
    /// [`on_challenge_after`](Self::on_challenge_after). A client that retries once
    /// should pass a second `401` to `on_challenge_after` for the precise error.
    pub async fn on_challenge(
        &self,
        www_authenticate: &str,
        scopes: &[Scope],
    ) -> Result<(), AuthError> {
        self.challenge(www_authenticate, scopes, Sent::Unknown)
            .await
    }

    /// [`on_challenge`](Self::on_challenge) for a request that carried `sent` as its
    /// `Authorization` value (or none): exact about whether credentials or a token were
    /// refused, also when requests run concurrently.
    pub async fn on_challenge_after(
        &self,
        www_authenticate: &str,
        scopes: &[Scope],
        sent: Option<&HeaderValue>,
    ) -> Result<(), AuthError> {
        self.challenge(www_authenticate, scopes, Sent::Known(sent))
            .await
    }

    async fn challenge(
        &self,
        www_authenticate: &str,
        scopes: &[Scope],
        sent: Sent<'_>,
    ) -> Result<(), AuthError> {
        let challenges =
            parse_challenges(www_authenticate).map_err(|reason| AuthError::ChallengeInvalid {
                registry: self.registry.clone(),
                reason,
            })?;
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic = challenges.iter().find(|c| c.scheme == "basic");
        match (bearer, basic) {
            (Some(bearer), _) => self.bearer_challenge(bearer, scopes, sent).await,
            (None, Some(_)) => self.basic_challenge(sent).await,
            (None, None) => Err(AuthError::ChallengeUnsupported {
                registry: self.registry.clone(),
                schemes: challenges
                    .iter()
                    .map(|c| format!("`{}`", c.scheme))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    async fn basic_challenge(&self, sent: Sent<'_>) -> Result<(), AuthError> {
        let registry = self.registry.clone();
        let credential = match &self.credential {
            None => return Err(AuthError::CredentialsNeeded { registry }),
            Some(Credential::IdentityToken(_)) => {
                return Err(AuthError::IdentityTokenNotUsable { registry });
            }
            Some(credential) => credential,
        };
        let header = credential.basic_header();
        let mut state = self.state.lock().await;
        let refused = match sent {
            Sent::Known(sent) => sent.is_some() && sent == header.as_ref(),
            // Concurrent first requests all carry nothing and all get this challenge:
            // without knowing what was sent, a repeated Basic challenge is no evidence.
            Sent::Unknown => false,
        };
        if refused || header.is_none() {
            return Err(AuthError::CredentialsRefused {
                registry,
                who: credential.describe(),
            });
        }
        state.scheme = Some(Scheme::Basic);
        Ok(())
    }

    async fn bearer_challenge(
        &self,
        challenge: &Challenge,
        scopes: &[Scope],
        sent: Sent<'_>,
    ) -> Result<(), AuthError> {
        let realm = self.realm(challenge)?;
        let service = challenge.params.get("service").cloned();
        let mut wanted = ScopeSet::from_scopes(scopes);
        if let Some(asked) = challenge.params.get("scope") {
            for scope in asked.split(' ') {
                wanted.add(scope);
            }
        }
        let error = challenge.params.get("error").map(String::as_str);
        let mut state = self.state.lock().await;
        let now = Instant::now();
        // The refused token: the one sent, if known; else, when the registry says a token
        // was refused, the cached one covering these scopes.
        let refused = match sent {
            Sent::Known(Some(sent)) => state.tokens.iter().position(|token| token.header == *sent),
            Sent::Known(None) => None,
            Sent::Unknown if error.is_some() => state
                .tokens
                .iter()
                .position(|token| token.usable_until > now && token.scopes.covers(&wanted)),
            Sent::Unknown => None,
        };
        if let Some(index) = refused {
            let token = state.tokens.remove(index);
            if token.scopes.covers(&wanted) {
                if error == Some("insufficient_scope") {
                    return Err(self.access_denied(&wanted));
                }
                let key = wanted.params().join(" ");
                let count = state.rejections.entry(key).or_insert(0);
                *count += 1;
                if *count >= 2 {
                    return Err(AuthError::TokenRejected {
                        registry: self.registry.clone(),
                        realm: redact_url(&realm),
                    });
                }
            }
        }
        state.scheme = Some(Scheme::Bearer {
            realm: realm.clone(),
            service: service.clone(),
        });
        state.tokens.retain(|token| token.usable_until > now);
        if state
            .tokens
            .iter()
            .any(|token| token.scopes.covers(&wanted))
        {
            // Another request already fetched what this one needs.
            return Ok(());
        }
        let token = self.fetch_token(&realm, service.as_deref(), wanted).await?;
        state.tokens.push(token);
        Ok(())
    }

    /// The realm of a Bearer challenge, checked to be a URL credentials may go to.
    fn realm(&self, challenge: &Challenge) -> Result<url::Url, AuthError> {
        let invalid = |realm: &str, reason| AuthError::RealmInvalid {
            registry: self.registry.clone(),
            realm: realm.split('?').next().unwrap_or(realm).to_string(),
            reason,
        };
        let Some(text) = challenge.params.get("realm") else {
            return Err(AuthError::ChallengeInvalid {
                registry: self.registry.clone(),
                reason: "the Bearer challenge has no `realm`".to_string(),
            });
        };
        let realm = url::Url::parse(text).map_err(|_| invalid(text, "is not a URL"))?;
        match realm.scheme() {
            "https" => Ok(realm),
            "http" => {
                // Plain HTTP carries the credentials in the clear: only to loopback, or to
                // the registry's own host (an insecure registry the user listed).
                let host = realm.host_str().unwrap_or_default();
                let registry_host = normalize_host(&self.registry);
                let registry_host = registry_host
                    .rsplit_once(':')
                    .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                    .map_or(registry_host.as_str(), |(host, _)| host);
                let loopback = host == "localhost"
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if loopback || host.eq_ignore_ascii_case(registry_host) {
                    Ok(realm)
                } else {
                    Err(invalid(
                        text,
                        "is plain HTTP on another host: credentials would travel unencrypted",
                    ))
                }
            }
            _ => Err(invalid(text, "is not an http(s) URL")),
        }
    }

    fn access_denied(&self, wanted: &ScopeSet) -> AuthError {
        let hint = match &self.credential {
            None => format!(
                ": no credentials were found for it; run `envbuild login {}`, or `docker login` / `podman login`",
                self.registry
            ),
            Some(credential) => format!(
                ": the credentials {} lack this access",
                credential.describe()
            ),
        };
        AuthError::AccessDenied {
            registry: self.registry.clone(),
            scopes: wanted.params().join(" "),
            hint,
        }
    }

    /// Get a token for `scopes` from `realm`: the OAuth2 refresh-token POST for an
    /// identity token (falling back to GET on 404/405), else `GET realm?service=&scope=…`
    /// with Basic credentials if there are any.
    async fn fetch_token(
        &self,
        realm: &url::Url,
        service: Option<&str>,
        scopes: ScopeSet,
    ) -> Result<CachedToken, AuthError> {
        let started = Instant::now();
        let scope_params = scopes.params();
        let mut answer = None;
        if let Some(Credential::IdentityToken(refresh_token)) = &self.credential {
            // Built in a block: the serializer must not live across the `.await`, or
            // the future would not be `Send`.
            let body = {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh_token);
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                form.append_pair("client_id", "envbuild");
                if !scope_params.is_empty() {
                    form.append_pair("scope", &scope_params.join(" "));
                }
                form.finish()
            };
            let response = self
                .http
                .post(realm.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|source| self.token_request_error(realm, source))?;
            if !matches!(
                response.status(),
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ) {
                answer = Some(response);
            }
        }
        let response = match answer {
            Some(response) => response,
            None => {
                let mut url = realm.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scope_params {
                        query.append_pair("scope", scope);
                    }
                    if let Some(Credential::Basic { username, .. }) = &self.credential {
                        query.append_pair("account", username);
                    }
                }
                let mut request = self.http.get(url);
                if let Some(header) = self.credential.as_ref().and_then(Credential::basic_header) {
                    request = request.header(AUTHORIZATION, header);
                }
                request
                    .send()
                    .await
                    .map_err(|source| self.token_request_error(realm, source))?
            }
        };
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(match &self.credential {
                Some(credential) => AuthError::CredentialsRefused {
                    registry: self.registry.clone(),
                    who: credential.describe(),
                },
                None => AuthError::CredentialsNeeded {
                    registry: self.registry.clone(),
                },
            });
        }
        if !status.is_success() {
            return Err(AuthError::TokenStatus {
                registry: self.registry.clone(),
                realm: redact_url(realm),
                status,
            });
        }
        let invalid = |reason: &str| AuthError::TokenResponseInvalid {
            registry: self.registry.clone(),
            realm: redact_url(realm),
            reason: reason.to_string(),
        };
        // Bounded in size and time: an endless or dripping token answer fails.
        let body = Body::new(
            response,
            super::tls::REGISTRY_TIMEOUT,
            MinimumRate::default(),
        )
        .read_to_end(ByteSize(MAX_ANSWER))
        .await
        .map_err(|error| invalid(&format!("it could not be read: {error}")))?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| invalid("it is not JSON with a `token` or `access_token`"))?;
        let token = answer
            .token
            .filter(|token| !token.is_empty())
            .or(answer.access_token.filter(|token| !token.is_empty()))
            .ok_or_else(|| invalid("it has neither `token` nor `access_token`"))?;
        let header = sensitive_header(&format!("Bearer {token}"))
            .ok_or_else(|| invalid("the token holds characters a header cannot carry"))?;
        Ok(CachedToken {
            scopes,
            header,
            usable_until: started + usable_for(answer.expires_in),
        })
    }

    fn token_request_error(&self, realm: &url::Url, source: reqwest::Error) -> AuthError {
        AuthError::TokenRequest {
            registry: self.registry.clone(),
            realm: redact_url(realm),
            source: source.without_url(),
        }
    }
}

/// How long a token that lives `expires_in` seconds (default and minimum 60) is used:
/// its lifetime minus a margin of a quarter of it, at most 30 s, so a token is never
/// sent just as it expires.
fn usable_for(expires_in: Option<u64>) -> Duration {
    let lifetime = Duration::from_secs(
        expires_in
            .unwrap_or(MIN_TOKEN_LIFETIME)
            .max(MIN_TOKEN_LIFETIME),
    );
    let margin = (lifetime / 4).min(Duration::from_secs(30));
    lifetime - margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    const PASSWORD: &str = "hunter2-very-secret";

    fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    fn b64(text: &str) -> String {
        BASE64.encode(text.as_bytes())
    }

    // ---- WWW-Authenticate parsing ----

    #[test]
    fn ok_bearer_challenge_with_comma_inside_quotes() {
        let challenges = parse_challenges(
            r#"Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(challenges.len(), 1);
        let bearer = &challenges[0];
        assert_eq!(bearer.scheme, "bearer");
        assert_eq!(bearer.params["realm"], "https://auth.example.test/token");
        assert_eq!(bearer.params["service"], "registry.example.test");
        assert_eq!(
            bearer.params["scope"],
            "repository:samalba/my-app:pull,push"
        );
    }

    #[test]
    fn ok_several_challenges_escapes_and_spacing() {
        // RFC 7235 §4.1's example, with bad whitespace and an unquoted value.
        let challenges = parse_challenges(
            r#"Newauth realm="apps", type=1,  title="Login to \"apps\"", Basic realm="simple""#,
        )
        .unwrap();
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].scheme, "newauth");
        assert_eq!(challenges[0].params["type"], "1");
        assert_eq!(challenges[0].params["title"], r#"Login to "apps""#);
        assert_eq!(challenges[1].scheme, "basic");
        assert_eq!(challenges[1].params["realm"], "simple");
        let spaced =
            parse_challenges(r#"BASIC Realm = "x" , , Bearer realm="y",error="invalid_token""#)
                .unwrap();
        assert_eq!(spaced[0].scheme, "basic");
        assert_eq!(spaced[0].params["realm"], "x");
        assert_eq!(spaced[1].params["error"], "invalid_token");
    }

    #[test]
    fn ok_scheme_without_params_and_token68() {
        let challenges = parse_challenges("Negotiate, Basic").unwrap();
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["negotiate", "basic"]);
        let challenges = parse_challenges("Negotiate abc/def==, Basic realm=r").unwrap();
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[1].params["realm"], "r");
    }

    #[test]
    fn err_malformed_challenges() {
        assert!(parse_challenges("").unwrap_err().contains("no challenge"));
        assert!(
            parse_challenges(r#"Bearer realm="https://x"#)
                .unwrap_err()
                .contains("not closed")
        );
        assert!(parse_challenges(r#"Bearer realm=="#).is_ok());
        assert!(parse_challenges(r#""quoted" realm=x"#).is_err());
    }

    // ---- scopes ----

    #[test]
    fn scope_strings() {
        assert_eq!(Scope::Pull("a/b".into()).to_string(), "repository:a/b:pull");
        assert_eq!(
            Scope::PullPush("a/b".into()).to_string(),
            "repository:a/b:pull,push"
        );
        let mut set = ScopeSet::from_scopes(&[
            Scope::PullPush("team/dst".into()),
            Scope::Pull("team/src".into()),
            Scope::Pull("team/dst".into()),
        ]);
        assert_eq!(
            set.params(),
            ["repository:team/dst:pull,push", "repository:team/src:pull"]
        );
        set.add("registry:catalog:*");
        set.add("repository:team/src:push");
        assert_eq!(
            set.params(),
            [
                "registry:catalog:*",
                "repository:team/dst:pull,push",
                "repository:team/src:pull,push"
            ]
        );
    }

    #[test]
    fn scope_coverage() {
        let push = ScopeSet::from_scopes(&[Scope::PullPush("a".into())]);
        let pull = ScopeSet::from_scopes(&[Scope::Pull("a".into())]);
        let other = ScopeSet::from_scopes(&[Scope::Pull("b".into())]);
        assert!(push.covers(&pull));
        assert!(!pull.covers(&push));
        assert!(!push.covers(&other));
        assert!(push.covers(&ScopeSet::default()));
        let mut star = ScopeSet::default();
        star.add("repository:a:*");
        assert!(star.covers(&push));
    }

    #[test]
    fn token_lifetime_margin() {
        assert_eq!(usable_for(None), Duration::from_secs(45));
        assert_eq!(usable_for(Some(10)), Duration::from_secs(45));
        assert_eq!(usable_for(Some(300)), Duration::from_secs(270));
        assert_eq!(usable_for(Some(3600)), Duration::from_secs(3570));
    }

    // ---- config.json and auth.json ----

    #[test]
    fn base64_variants() {
        let expected = basic("user", "pa:ss=wo");
        let padded = b64("user:pa:ss=wo");
        assert!(padded.ends_with('='));
        assert_eq!(decode_auth(&padded), Some(expected.clone()));
        assert_eq!(
            decode_auth(padded.trim_end_matches('=')),
            Some(expected.clone())
        );
        assert_eq!(decode_auth(&format!(" {padded}\n")), Some(expected));
        assert_eq!(decode_auth("!!!"), None);
        assert_eq!(decode_auth(&b64("no-colon")), None);
        assert_eq!(decode_auth(&b64(":empty-user")), None);
    }

    /// A temporary home for credentials files and helper scripts.
    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            fs_err::create_dir_all(dir.path().join("bin")).unwrap();
            Self { dir }
        }

        fn environment(&self) -> AuthEnvironment {
            let mut paths = vec![self.dir.path().join("bin")];
            paths.extend(["/usr/bin", "/bin"].map(PathBuf::from));
            AuthEnvironment {
                docker_config: Some(self.dir.path().join("docker")),
                home: Some(self.dir.path().join("home")),
                registry_auth_file: None,
                xdg_runtime_dir: Some(self.dir.path().join("run")),
                path: Some(std::env::join_paths(paths).unwrap()),
            }
        }

        fn docker_config(&self, json: serde_json::Value) {
            let folder = self.dir.path().join("docker");
            fs_err::create_dir_all(&folder).unwrap();
            fs_err::write(folder.join("config.json"), json.to_string()).unwrap();
        }

        fn auth_json(&self, json: serde_json::Value) {
            let folder = self.dir.path().join("run").join("containers");
            fs_err::create_dir_all(&folder).unwrap();
            fs_err::write(folder.join("auth.json"), json.to_string()).unwrap();
        }

        /// A `docker-credential-<name>` script answering `answer` (a shell snippet run
        /// after reading the server URL into `$url`), logging the URLs it was asked for.
        fn helper(&self, name: &str, answer: &str) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let log = self.dir.path().join(format!("{name}.log"));
            let script = format!(
                "#!/bin/sh\nread -r url\necho \"$1 $url\" >> '{}'\n{answer}\n",
                log.display()
            );
            let path = self
                .dir
                .path()
                .join("bin")
                .join(format!("docker-credential-{name}"));
            fs_err::write(&path, script).unwrap();
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            log
        }
    }

    fn found_helper(username: &str, secret: &str) -> String {
        format!(
            r#"printf '{{"ServerURL":"%s","Username":"{username}","Secret":"{secret}"}}' "$url""#
        )
    }

    const NOT_FOUND: &str = "echo 'credentials not found in native keychain'; exit 1";

    #[test]
    fn ok_no_files_means_anonymous() {
        let home = Home::new();
        assert_eq!(
            credentials_for("r.test", &home.environment()).unwrap(),
            None
        );
        assert_eq!(
            credentials_for("r.test", &AuthEnvironment::default()).unwrap(),
            None
        );
    }

    #[test]
    fn ok_auths_by_host_url_key_and_fields() {
        let home = Home::new();
        home.docker_config(serde_json::json!({
            "auths": {
                "https://r.test/v1/": {"auth": b64("url-user:pw1")},
                "plain.test:5000": {"auth": b64("port-user:pw2").trim_end_matches('=')},
                "fields.test": {"username": "field-user", "password": "pw3"},
                "token.test": {"auth": b64("ignored:pw"), "identitytoken": "id-token"},
                "empty.test": {}
            },
            "otherSetting": {"kept": true}
        }));
        let env = home.environment();
        assert_eq!(
            credentials_for("r.test", &env).unwrap(),
            Some(basic("url-user", "pw1"))
        );
        assert_eq!(
            credentials_for("plain.test:5000", &env).unwrap(),
            Some(basic("port-user", "pw2"))
        );
        assert_eq!(credentials_for("plain.test", &env).unwrap(), None);
        assert_eq!(
            credentials_for("fields.test", &env).unwrap(),
            Some(basic("field-user", "pw3"))
        );
        assert_eq!(
            credentials_for("token.test", &env).unwrap(),
            Some(Credential::IdentityToken("id-token".into()))
        );
        assert_eq!(credentials_for("empty.test", &env).unwrap(), None);
    }

    #[test]
    fn ok_docker_hub_aliases() {
        let home = Home::new();
        home.docker_config(serde_json::json!({
            "auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}}
        }));
        let env = home.environment();
        for name in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                credentials_for(name, &env).unwrap(),
                Some(basic("hub", "pw")),
                "{name}"
            );
        }
        assert_eq!(credentials_for("ghcr.test", &env).unwrap(), None);
    }

    #[test]
    fn ok_home_docker_config_when_docker_config_unset() {
        let home = Home::new();
        let folder = home.dir.path().join("home/.docker");
        fs_err::create_dir_all(&folder).unwrap();
        fs_err::write(
            folder.join("config.json"),
            serde_json::json!({"auths": {"r.test": {"auth": b64("u:p")}}}).to_string(),
        )
        .unwrap();
        let env = AuthEnvironment {
            docker_config: None,
            ..home.environment()
        };
        assert_eq!(
            credentials_for("r.test", &env).unwrap(),
            Some(basic("u", "p"))
        );
    }

    #[test]
    fn cred_helper_beats_creds_store_and_auths() {
        let home = Home::new();
        let log = home.helper("pertest", &found_helper("helper-user", "helper-secret"));
        let store_log = home.helper("store", &found_helper("store-user", "store-secret"));
        home.docker_config(serde_json::json!({
            "auths": {"r.test:5000": {"auth": b64("file-user:file-secret")}},
            "credsStore": "store",
            "credHelpers": {"r.test:5000": "pertest"}
        }));
        let env = home.environment();
        assert_eq!(
            credentials_for("r.test:5000", &env).unwrap(),
            Some(basic("helper-user", "helper-secret"))
        );
        assert_eq!(fs_err::read_to_string(log).unwrap(), "get r.test:5000\n");
        assert!(!store_log.exists(), "the store must not be asked");
        // Another host: no credHelpers entry, so the store answers.
        assert_eq!(
            credentials_for("other.test", &env).unwrap(),
            Some(basic("store-user", "store-secret"))
        );
    }

    #[test]
    fn creds_store_beats_auths_and_not_found_falls_through() {
        let home = Home::new();
        let log = home.helper(
            "store",
            &format!(
                "if [ \"$url\" = known.test ]; then {}; else {NOT_FOUND}; fi",
                found_helper("store-user", "store-secret")
            ),
        );
        home.docker_config(serde_json::json!({
            "auths": {
                "known.test": {"auth": b64("file-user:x")},
                "unknown.test": {"auth": b64("file-user:y")}
            },
            "credsStore": "store"
        }));
        let env = home.environment();
        assert_eq!(
            credentials_for("known.test", &env).unwrap(),
            Some(basic("store-user", "store-secret"))
        );
        assert_eq!(
            credentials_for("unknown.test", &env).unwrap(),
            Some(basic("file-user", "y"))
        );
        assert_eq!(credentials_for("none.test", &env).unwrap(), None);
        assert_eq!(
            fs_err::read_to_string(log).unwrap(),
            "get known.test\nget unknown.test\nget none.test\n"
        );
    }

    #[test]
    fn helper_token_username_means_identity_token() {
        let home = Home::new();
        home.helper("tok", &found_helper("<token>", "refresh-me"));
        home.docker_config(serde_json::json!({"credHelpers": {"docker.io": "tok"}}));
        let env = home.environment();
        assert_eq!(
            credentials_for("registry-1.docker.io", &env).unwrap(),
            Some(Credential::IdentityToken("refresh-me".into()))
        );
    }

    #[test]
    fn docker_hub_helper_is_asked_with_the_index_url() {
        let home = Home::new();
        let log = home.helper("hub", &found_helper("u", "s"));
        home.docker_config(serde_json::json!({"credsStore": "hub"}));
        credentials_for("docker.io", &home.environment()).unwrap();
        assert_eq!(
            fs_err::read_to_string(log).unwrap(),
            "get https://index.docker.io/v1/\n"
        );
    }

    #[test]
    fn err_missing_cred_helper_names_it_and_missing_store_is_skipped() {
        let home = Home::new();
        home.docker_config(serde_json::json!({
            "auths": {"r.test": {"auth": b64("file-user:pw")}},
            "credsStore": "absent-store",
            "credHelpers": {"h.test": "absent-helper"}
        }));
        let env = home.environment();
        assert_eq!(
            credentials_for("r.test", &env).unwrap(),
            Some(basic("file-user", "pw"))
        );
        let error = credentials_for("h.test", &env).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("docker-credential-absent-helper"),
            "{message}"
        );
        assert!(message.contains("credHelpers"), "{message}");
    }

    #[test]
    fn err_helper_failure_timeout_and_garbage_never_echo_secrets() {
        let home = Home::new();
        home.helper("broken", "echo 'keychain locked' >&2; exit 3");
        home.helper("garbage", &format!("echo 'Secret={PASSWORD}'"));
        home.helper("slow", "sleep 5");
        let env = home.environment();
        let error = run_helper("broken", "r.test", "r.test", &env, HELPER_TIMEOUT)
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(message.contains("keychain locked"), "{message}");
        assert!(message.contains("docker-credential-broken"), "{message}");
        let error = run_helper("garbage", "r.test", "r.test", &env, HELPER_TIMEOUT)
            .err()
            .unwrap();
        assert!(
            matches!(error, AuthError::HelperOutputInvalid { .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains(PASSWORD));
        assert!(!format!("{error:?}").contains(PASSWORD));
        let started = Instant::now();
        let error = run_helper("slow", "r.test", "r.test", &env, Duration::from_millis(300))
            .err()
            .unwrap();
        assert!(
            matches!(error, AuthError::HelperTimedOut { .. }),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn err_invalid_auth_value_names_key_not_value() {
        let home = Home::new();
        home.docker_config(serde_json::json!({
            "auths": {"r.test": {"auth": format!("{PASSWORD}!!")}}
        }));
        let error = credentials_for("r.test", &home.environment()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`r.test`"), "{message}");
        assert!(!message.contains(PASSWORD), "{message}");
    }

    #[test]
    fn err_invalid_json_names_the_file() {
        let home = Home::new();
        let folder = home.dir.path().join("docker");
        fs_err::create_dir_all(&folder).unwrap();
        fs_err::write(
            folder.join("config.json"),
            format!("{{\"auths\": {PASSWORD}"),
        )
        .unwrap();
        let error = credentials_for("r.test", &home.environment()).unwrap_err();
        let text = crate::http::retry::render_chain(&error);
        assert!(
            text.contains("config.json") && text.contains("line 1 column"),
            "{text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");
        // A value of the wrong type: serde would quote it.
        fs_err::write(
            folder.join("config.json"),
            format!("{{\"auths\": {{\"r.test\": \"{PASSWORD}\"}}}}"),
        )
        .unwrap();
        let text = crate::http::retry::render_chain(
            &credentials_for("r.test", &home.environment()).unwrap_err(),
        );
        assert!(text.contains("a value of the wrong type"), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }

    #[test]
    fn containers_auth_json_after_docker_config() {
        let home = Home::new();
        home.docker_config(serde_json::json!({"auths": {"d.test": {"auth": b64("docker:pw")}}}));
        home.auth_json(serde_json::json!({"auths": {
            "d.test": {"auth": b64("podman:pw")},
            "p.test": {"auth": b64("podman:pw2")},
            "n.test/team": {"auth": b64("namespaced:pw")}
        }}));
        let env = home.environment();
        assert_eq!(
            credentials_for("d.test", &env).unwrap(),
            Some(basic("docker", "pw"))
        );
        assert_eq!(
            credentials_for("p.test", &env).unwrap(),
            Some(basic("podman", "pw2"))
        );
        assert_eq!(credentials_for("n.test", &env).unwrap(), None);
        // REGISTRY_AUTH_FILE wins over XDG_RUNTIME_DIR.
        let override_file = home.dir.path().join("override.json");
        fs_err::write(
            &override_file,
            serde_json::json!({"auths": {"p.test": {"auth": b64("override:pw")}}}).to_string(),
        )
        .unwrap();
        let env = AuthEnvironment {
            registry_auth_file: Some(override_file),
            ..env
        };
        assert_eq!(
            credentials_for("p.test", &env).unwrap(),
            Some(basic("override", "pw"))
        );
    }

    #[test]
    fn store_login_round_trips_privately_and_keeps_other_settings() {
        use std::os::unix::fs::PermissionsExt;
        let home = Home::new();
        home.docker_config(serde_json::json!({
            "auths": {
                "https://r.test:5000/v1/": {"auth": b64("old:old")},
                "other.test": {"auth": b64("o:p")}
            },
            "psFormat": "table"
        }));
        let env = home.environment();
        let path = store_login("r.test:5000", "new-user", PASSWORD, &env).unwrap();
        assert_eq!(path, home.dir.path().join("docker/config.json"));
        let mode = fs_err::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            credentials_for("r.test:5000", &env).unwrap(),
            Some(basic("new-user", PASSWORD))
        );
        let written: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written["psFormat"], "table");
        assert!(written["auths"]["other.test"].is_object());
        assert!(written["auths"].get("https://r.test:5000/v1/").is_none());
        // A fresh home: the folders are made.
        let fresh = Home::new();
        let env = AuthEnvironment {
            docker_config: None,
            ..fresh.environment()
        };
        let path = store_login("docker.io", "hub", "pw", &env).unwrap();
        assert_eq!(path, fresh.dir.path().join("home/.docker/config.json"));
        assert_eq!(
            credentials_for("docker.io", &env).unwrap(),
            Some(basic("hub", "pw"))
        );
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(text.contains("https://index.docker.io/v1/"), "{text}");
        assert!(matches!(
            store_login("r.test", "a:b", "pw", &env),
            Err(AuthError::UsernameInvalid { .. })
        ));
        assert!(matches!(
            store_login("r.test", "a", "pw", &AuthEnvironment::default()),
            Err(AuthError::ConfigLocationUnknown)
        ));
    }

    // ---- challenge flows against a scripted token endpoint ----

    /// A request the scripted server saw.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        authorization: Option<String>,
        body: String,
    }

    impl Seen {
        fn query(&self, name: &str) -> Vec<String> {
            let url = url::Url::parse(&format!("http://x{}", self.target)).unwrap();
            url.query_pairs()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
                .collect()
        }
    }

    /// A loopback HTTP server answering the scripted `(status, body)` answers in turn.
    fn token_server(answers: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mut authorization = None;
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    let value = value.trim().to_string();
                    match name.to_ascii_lowercase().as_str() {
                        "authorization" => authorization = Some(value),
                        "content-length" => length = value.parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body_bytes = vec![0; length];
                reader.read_exact(&mut body_bytes).unwrap();
                record.lock().unwrap().push(Seen {
                    method,
                    target,
                    authorization,
                    body: String::from_utf8(body_bytes).unwrap(),
                });
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = stream;
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (format!("http://127.0.0.1:{port}/token"), seen)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().build().unwrap()
    }

    fn bearer_challenge(realm: &str, extra: &str) -> String {
        format!(r#"Bearer realm="{realm}",service="registry.test"{extra}"#)
    }

    fn text(header: &HeaderValue) -> String {
        header.to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn bearer_token_fetched_with_basic_cached_and_refreshed() {
        let (realm, seen) = token_server(vec![
            (200, r#"{"token":"tok-1","expires_in":300}"#.into()),
            (200, r#"{"access_token":"tok-2"}"#.into()),
            (200, r#"{"token":"tok-3","access_token":"ignored"}"#.into()),
        ]);
        let auth = Authenticator::new(client(), "r.test", Some(basic("ci", PASSWORD)));
        let push = [Scope::PullPush("team/app".into())];
        assert_eq!(auth.header(&push).await.unwrap(), None);
        auth.on_challenge(
            &bearer_challenge(&realm, r#",scope="repository:team/app:pull,push""#),
            &push,
        )
        .await
        .unwrap();
        let header = auth.header(&push).await.unwrap().unwrap();
        assert_eq!(text(&header), "Bearer tok-1");
        assert!(header.is_sensitive());
        // Cached: a pull on the same repository needs no new token.
        let pull = [Scope::Pull("team/app".into())];
        assert_eq!(
            text(&auth.header(&pull).await.unwrap().unwrap()),
            "Bearer tok-1"
        );
        {
            let requests = seen.lock().unwrap();
            assert_eq!(requests.len(), 1);
            let first = &requests[0];
            assert_eq!(first.method, "GET");
            assert_eq!(first.query("service"), ["registry.test"]);
            assert_eq!(first.query("scope"), ["repository:team/app:pull,push"]);
            assert_eq!(
                first.authorization.as_deref(),
                Some(format!("Basic {}", b64(&format!("ci:{PASSWORD}"))).as_str())
            );
        }
        // A mount needs the destination and the source in one token.
        let mount = [
            Scope::PullPush("team/app".into()),
            Scope::Pull("team/base".into()),
        ];
        assert_eq!(
            text(&auth.header(&mount).await.unwrap().unwrap()),
            "Bearer tok-2"
        );
        assert_eq!(
            seen.lock().unwrap()[1].query("scope"),
            ["repository:team/app:pull,push", "repository:team/base:pull"]
        );
        // Expiry: once past its usable time, a token is fetched again.
        for token in auth.state.lock().await.tokens.iter_mut() {
            token.usable_until = Instant::now() - Duration::from_secs(1);
        }
        assert_eq!(
            text(&auth.header(&push).await.unwrap().unwrap()),
            "Bearer tok-3"
        );
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn err_token_endpoint_refuses_wrong_password_without_echo() {
        let (realm, _seen) = token_server(vec![(401, r#"{"details":"no"}"#.into())]);
        let auth = Authenticator::new(client(), "r.test", Some(basic("ci", PASSWORD)));
        let error = auth
            .on_challenge(&bearer_challenge(&realm, ""), &[Scope::Pull("a".into())])
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, AuthError::CredentialsRefused { .. }),
            "{error:?}"
        );
        assert!(message.contains("registry `r.test` refused the credentials of user `ci`"));
        assert!(!message.contains(PASSWORD));
        assert!(!format!("{error:?}").contains(PASSWORD));
        assert!(!format!("{auth:?}").contains(PASSWORD));
    }

    #[tokio::test]
    async fn identity_token_uses_oauth_post_then_get_on_404() {
        let (realm, seen) = token_server(vec![
            (
                200,
                r#"{"access_token":"oauth-tok","expires_in":120}"#.into(),
            ),
            (404, "{}".into()),
            (200, r#"{"token":"get-tok"}"#.into()),
        ]);
        let auth = Authenticator::new(
            client(),
            "r.test",
            Some(Credential::IdentityToken("refresh-secret".into())),
        );
        let scopes = [Scope::PullPush("a".into()), Scope::Pull("b".into())];
        auth.on_challenge(&bearer_challenge(&realm, ""), &scopes)
            .await
            .unwrap();
        assert_eq!(
            text(&auth.header(&scopes).await.unwrap().unwrap()),
            "Bearer oauth-tok"
        );
        let post = seen.lock().unwrap()[0].clone();
        assert_eq!(post.method, "POST");
        assert_eq!(post.authorization, None);
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(post.body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "refresh-secret");
        assert_eq!(form["service"], "registry.test");
        assert_eq!(form["client_id"], "envbuild");
        assert_eq!(form["scope"], "repository:a:pull,push repository:b:pull");
        // A realm without the OAuth2 endpoint: GET instead.
        let other = Authenticator::new(
            client(),
            "r.test",
            Some(Credential::IdentityToken("refresh-secret".into())),
        );
        other
            .on_challenge(&bearer_challenge(&realm, ""), &scopes)
            .await
            .unwrap();
        assert_eq!(
            text(&other.header(&scopes).await.unwrap().unwrap()),
            "Bearer get-tok"
        );
        let get = seen.lock().unwrap()[2].clone();
        assert_eq!(get.method, "GET");
        assert_eq!(get.query("scope").len(), 2);
    }

    #[tokio::test]
    async fn refused_tokens_give_clear_errors() {
        let (realm, _seen) = token_server(vec![
            (200, r#"{"token":"partial"}"#.into()),
            (200, r#"{"token":"bad-1"}"#.into()),
            (200, r#"{"token":"bad-2"}"#.into()),
        ]);
        let auth = Authenticator::new(client(), "r.test", None);
        let push = [Scope::PullPush("a".into())];
        auth.on_challenge(&bearer_challenge(&realm, ""), &push)
            .await
            .unwrap();
        let sent = auth.header(&push).await.unwrap().unwrap();
        // The registry says the token lacks push: a partial grant.
        let error = auth
            .on_challenge_after(
                &bearer_challenge(
                    &realm,
                    r#",scope="repository:a:pull,push",error="insufficient_scope""#,
                ),
                &push,
                Some(&sent),
            )
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("registry `r.test` did not grant `repository:a:pull,push`: no credentials were found"),
            "{message}"
        );
        // A token the registry does not accept: fetched again once, then an error.
        let pull = [Scope::Pull("b".into())];
        let first = auth.header(&pull).await.unwrap().unwrap();
        assert_eq!(text(&first), "Bearer bad-1");
        let invalid = bearer_challenge(&realm, r#",error="invalid_token""#);
        auth.on_challenge(&invalid, &pull).await.unwrap();
        assert_eq!(
            text(&auth.header(&pull).await.unwrap().unwrap()),
            "Bearer bad-2"
        );
        let error = auth.on_challenge(&invalid, &pull).await.unwrap_err();
        assert!(
            matches!(error, AuthError::TokenRejected { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_first_challenges_are_not_refusals() {
        let (realm, seen) = token_server(vec![(200, r#"{"token":"t"}"#.into())]);
        let auth = Authenticator::new(client(), "r.test", Some(basic("u", "p")));
        let scopes = [Scope::Pull("a".into())];
        auth.on_challenge_after(&bearer_challenge(&realm, ""), &scopes, None)
            .await
            .unwrap();
        auth.on_challenge_after(&bearer_challenge(&realm, ""), &scopes, None)
            .await
            .unwrap();
        auth.on_challenge(&bearer_challenge(&realm, ""), &scopes)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn basic_challenge_flow() {
        let challenge = r#"Basic realm="Registry Realm""#;
        let anonymous = Authenticator::new(client(), "r.test:5000", None);
        let error = anonymous.on_challenge(challenge, &[]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "registry `r.test:5000` needs credentials: run `envbuild login r.test:5000`, or `docker login r.test:5000` / `podman login r.test:5000`"
        );
        let auth = Authenticator::new(client(), "r.test:5000", Some(basic("ci", PASSWORD)));
        assert_eq!(auth.header(&[]).await.unwrap(), None);
        auth.on_challenge(challenge, &[]).await.unwrap();
        let header = auth
            .header(&[Scope::Pull("x".into())])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            text(&header),
            format!("Basic {}", b64(&format!("ci:{PASSWORD}")))
        );
        assert!(header.is_sensitive());
        // Concurrent first requests sent nothing: not a refusal.
        auth.on_challenge(challenge, &[]).await.unwrap();
        auth.on_challenge_after(challenge, &[], None).await.unwrap();
        // The same challenge for a request that carried the credentials: refused.
        let error = auth
            .on_challenge_after(challenge, &[], Some(&header))
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::CredentialsRefused { .. }));
        assert!(!error.to_string().contains(PASSWORD));
        let identity = Authenticator::new(
            client(),
            "r.test",
            Some(Credential::IdentityToken("t".into())),
        );
        assert!(matches!(
            identity.on_challenge(challenge, &[]).await,
            Err(AuthError::IdentityTokenNotUsable { .. })
        ));
    }

    #[tokio::test]
    async fn err_unusable_challenges_and_realms() {
        let auth = Authenticator::new(client(), "r.test", Some(basic("u", PASSWORD)));
        let error = auth.on_challenge("Negotiate", &[]).await.unwrap_err();
        assert!(error.to_string().contains("`negotiate`"), "{error}");
        let error = auth
            .on_challenge(r#"Bearer service="s""#, &[])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no `realm`"), "{error}");
        let error = auth
            .on_challenge(r#"Bearer realm="http://auth.elsewhere.test/token""#, &[])
            .await
            .unwrap_err();
        assert!(matches!(error, AuthError::RealmInvalid { .. }), "{error}");
        let error = auth
            .on_challenge(r#"Bearer realm="ftp://r.test/token""#, &[])
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not an http(s) URL"), "{error}");
    }

    #[test]
    fn ok_no_panic_on_hostile_challenges() {
        let seeds = [
            r#"Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:a/b:pull,push""#,
            r#"Basic realm="x", Bearer realm="http://127.0.0.1:1/t", error="insufficient_scope""#,
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
            "Bearer abc.def==, Basic",
        ];
        crate::mutate::assert_no_panic("www-authenticate", seeds, 4000, |bytes| {
            let text = String::from_utf8_lossy(bytes);
            if let Ok(challenges) = parse_challenges(&text) {
                // Every scheme is a token, lowercase, never empty.
                for challenge in challenges {
                    assert!(!challenge.scheme.is_empty());
                    assert_eq!(challenge.scheme, challenge.scheme.to_ascii_lowercase());
                }
            }
        });
    }

    #[test]
    fn ok_no_panic_on_hostile_credential_files_and_no_secret_in_errors() {
        let seed = serde_json::json!({
            "auths": {
                "https://r.test/v1/": {"auth": b64(&format!("url-user:{PASSWORD}"))},
                "plain.test:5000": {"username": "field-user", "password": PASSWORD},
                "token.test": {"identitytoken": PASSWORD}
            },
            "credsStore": "desktop",
            "credHelpers": {"helper.test": "ecr-login"}
        })
        .to_string();
        let path = Path::new("/home/ci/.docker/config.json");
        crate::mutate::assert_no_panic("docker-config", [seed], 4000, |bytes| {
            match parse_config(bytes, path) {
                Ok(config) => {
                    for registry in ["r.test", "plain.test:5000", "token.test", "docker.io"] {
                        let host = normalize_host(registry);
                        for matching in [KeyMatch::Host, KeyMatch::HostOnly] {
                            if let Err(error) = from_auths(&config, path, registry, &host, matching)
                            {
                                let text = crate::http::retry::render_chain(&error);
                                assert!(!text.contains(PASSWORD), "{text}");
                            }
                        }
                    }
                }
                Err(error) => {
                    let text = crate::http::retry::render_chain(&error);
                    assert!(text.contains("config.json"), "{text}");
                    assert!(!text.contains(PASSWORD), "a secret in an error: {text}");
                }
            }
        });
    }

    #[test]
    fn secrets_absent_from_debug() {
        let credential = basic("ci", PASSWORD);
        assert_eq!(format!("{credential:?}"), "Basic(ci, <redacted>)");
        let token = Credential::IdentityToken(PASSWORD.into());
        assert!(!format!("{token:?}").contains(PASSWORD));
        let auth = Authenticator::new(client(), "r.test", Some(credential));
        let debug = format!("{auth:?}");
        assert!(
            debug.contains("r.test") && !debug.contains(PASSWORD),
            "{debug}"
        );
    }
}
