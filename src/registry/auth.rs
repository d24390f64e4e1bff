//! Registry authentication: where credentials come from (docker `config.json`,
//! credential helpers, containers `auth.json`), and the challenge flows (Basic, Bearer
//! tokens with scopes, identity tokens).
//! (Stub: the agreed interface; to be implemented.)

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

/// An access scope on a repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `repository:<name>:pull`.
    Pull(String),
    /// `repository:<name>:pull,push`.
    PullPush(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pull(repository) => write!(f, "repository:{repository}:pull"),
            Self::PullPush(repository) => write!(f, "repository:{repository}:pull,push"),
        }
    }
}

/// Errors from finding credentials or obtaining a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Placeholder until implemented.
    #[error("registry authentication is not implemented yet")]
    NotImplemented,
}

/// Where credentials are looked up; the caller reads the environment once.
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
}

/// Find the credential for a registry host (`host[:port]`), in the docker CLI's order.
pub fn credentials_for(
    _registry: &str,
    _environment: &AuthEnvironment,
) -> Result<Option<Credential>, AuthError> {
    Ok(None)
}

/// Authorization state for one registry: its credential and cached tokens.
#[derive(Debug)]
pub struct Authenticator {
    _http: reqwest::Client,
    _registry: String,
    _credential: Option<Credential>,
}

impl Authenticator {
    /// A new authenticator for `registry` using `http` for token requests.
    pub fn new(http: reqwest::Client, registry: &str, credential: Option<Credential>) -> Self {
        Self {
            _http: http,
            _registry: registry.to_string(),
            _credential: credential,
        }
    }

    /// The `Authorization` header value to send for a request needing `scopes`, if any
    /// is known yet (a cached token, or Basic after a Basic challenge).
    pub async fn header(
        &self,
        _scopes: &[Scope],
    ) -> Result<Option<reqwest::header::HeaderValue>, AuthError> {
        Ok(None)
    }

    /// Handle a 401 answer's `WWW-Authenticate` value: obtain what `header` should send
    /// next for `scopes`.
    pub async fn on_challenge(
        &self,
        _www_authenticate: &str,
        _scopes: &[Scope],
    ) -> Result<(), AuthError> {
        Err(AuthError::NotImplemented)
    }
}
