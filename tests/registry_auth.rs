//! Registry authentication against the real distribution registry on 127.0.0.1: Basic
//! auth (htpasswd) over TLS with a CA made here, and token auth with a token issuer
//! served here (RS256 JWTs signed with the `openssl` CLI, their `x5c` chain leading to a
//! CA in the registry's `rootcertbundle`). Credentials come from a docker `config.json`,
//! a credential helper script, or `store_login`; wrong ones give clear errors that never
//! hold the secret.

mod registry_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::{BASE64, BASE64URL_NOPAD};
use envbuild::registry::auth::{
    AuthEnvironment, AuthError, Authenticator, Credential, Scope, credentials_for, store_login,
};
use envbuild::registry::tls::{TransportOptions, registry_http_client};
use registry_support::Registry;
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

const USER: &str = "ci-user";
const PASSWORD: &str = "correct-horse-7f3a9";
const WRONG_PASSWORD: &str = "wrong-battery-1b2c3";
const IDENTITY_TOKEN: &str = "identity-refresh-5e6d7c";
const SERVICE: &str = "envbuild-test-registry";
const ISSUER: &str = "envbuild-test-issuer";

// ---------------------------------------------------------------------------------------
// Tools and certificates

/// Run a command; panic with its output when it fails.
fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error} (run scripts/setup-tools)"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "`{tool}` is not installed: run scripts/setup-tools");
}

/// A test CA, a server certificate for 127.0.0.1 and a token-signing certificate, all
/// made with the `openssl` CLI.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        require_tool("openssl");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let openssl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(path));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=envbuild test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        fs_err::write(
            path.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        fs_err::write(
            path.join("signer.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "signer.key",
            "-out",
            "signer.csr",
            "-subj",
            "/CN=envbuild test token signer",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "signer.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "signer.pem",
            "-days",
            "2",
            "-extfile",
            "signer.ext",
        ]);
        openssl(&[
            "x509",
            "-in",
            "signer.pem",
            "-outform",
            "DER",
            "-out",
            "signer.der",
        ]);
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// An htpasswd file with one bcrypt entry (`htpasswd -B`, apache2-utils).
fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    require_tool("htpasswd");
    let line = run(Command::new("htpasswd").args(["-Bbn", user, password]));
    let path = dir.join("htpasswd");
    fs_err::write(&path, line).unwrap();
    path
}

/// A folder with a docker `config.json` and a `bin` folder for helper scripts, and the
/// [`AuthEnvironment`] pointing at them (nothing from the process environment).
struct CredentialHome {
    dir: tempfile::TempDir,
}

impl CredentialHome {
    fn new() -> CredentialHome {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("docker")).unwrap();
        fs_err::create_dir_all(dir.path().join("bin")).unwrap();
        CredentialHome { dir }
    }

    fn environment(&self) -> AuthEnvironment {
        let path = std::env::join_paths([
            self.dir.path().join("bin"),
            PathBuf::from("/usr/bin"),
            PathBuf::from("/bin"),
        ])
        .unwrap();
        AuthEnvironment {
            docker_config: Some(self.dir.path().join("docker")),
            home: None,
            registry_auth_file: None,
            xdg_runtime_dir: None,
            path: Some(path),
        }
    }

    fn config(&self, json: serde_json::Value) {
        fs_err::write(self.dir.path().join("docker/config.json"), json.to_string()).unwrap();
    }

    /// `docker-credential-<name>`: answers `username`/`secret` for `server`, "credentials
    /// not found" otherwise; logs each server URL asked for.
    fn helper(&self, name: &str, server: &str, username: &str, secret: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let log = self.dir.path().join(format!("{name}.log"));
        let script = format!(
            "#!/bin/sh\nread -r url\necho \"$1 $url\" >> '{log}'\n\
             if [ \"$url\" = '{server}' ]; then\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}' \"$url\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            log = log.display()
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

fn b64(text: &str) -> String {
    BASE64.encode(text.as_bytes())
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", data_encoding::HEXLOWER.encode(&hash))
}

// ---------------------------------------------------------------------------------------
// A client doing what the registry client does: header, send, on 401 challenge, retry.

struct Session {
    http: reqwest::Client,
    auth: Authenticator,
    base: String,
}

impl Session {
    fn new(
        http: reqwest::Client,
        base: &str,
        registry: &str,
        credential: Option<Credential>,
    ) -> Session {
        Session {
            auth: Authenticator::new(http.clone(), registry, credential),
            http,
            base: base.to_string(),
        }
    }

    async fn send_raw(
        &self,
        method: &Method,
        url: &str,
        authorization: Option<&HeaderValue>,
        body: Option<&[u8]>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method.clone(), url);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/octet-stream")
                .body(body.to_vec());
        } else if *method == Method::POST || *method == Method::PUT {
            request = request.header("content-length", "0");
        }
        request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {url}: {error:?}"))
    }

    /// Send with authorization; on 401 answer the challenge and send once more; a second
    /// 401 goes to the authenticator too, which says why.
    async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        scopes: &[Scope],
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response, AuthError> {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let mut sent = self.auth.header(scopes).await?;
        let mut response = self.send_raw(&method, &url, sent.as_ref(), body).await;
        for _ in 0..2 {
            if response.status() != StatusCode::UNAUTHORIZED {
                break;
            }
            let challenge = challenge_of(&response);
            self.auth
                .on_challenge_after(&challenge, scopes, sent.as_ref())
                .await?;
            sent = self.auth.header(scopes).await?;
            response = self.send_raw(&method, &url, sent.as_ref(), body).await;
        }
        Ok(response)
    }

    /// Push `bytes` as a blob of `repository` (POST, then PUT with the digest) and check
    /// that the registry then has it.
    async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<String, AuthError> {
        let scopes = [Scope::PullPush(repository.to_string())];
        let digest = sha256(bytes);
        let started = self
            .send(
                Method::POST,
                &format!("v2/{repository}/blobs/uploads/"),
                &scopes,
                None,
            )
            .await?;
        assert_eq!(
            started.status(),
            StatusCode::ACCEPTED,
            "{:?}",
            started.headers()
        );
        let location = absolute(&self.base, started.headers().get(LOCATION).unwrap());
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let finished = self.send(Method::PUT, &put, &scopes, Some(bytes)).await?;
        assert_eq!(finished.status(), StatusCode::CREATED);
        let head = self
            .send(
                Method::HEAD,
                &format!("v2/{repository}/blobs/{digest}"),
                &[Scope::Pull(repository.to_string())],
                None,
            )
            .await?;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            head.headers()["docker-content-digest"].to_str().unwrap(),
            digest
        );
        Ok(digest)
    }
}

fn challenge_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .expect("a 401 carries WWW-Authenticate")
        .to_str()
        .unwrap()
        .to_string()
}

fn absolute(base: &str, location: &HeaderValue) -> String {
    let location = location.to_str().unwrap();
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

fn assert_secret_free(error: &AuthError) {
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(" {cause}"));
        source = cause.source();
    }
    for secret in [PASSWORD, WRONG_PASSWORD, IDENTITY_TOKEN] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
        assert!(!text.contains(&b64(&format!("{USER}:{secret}"))), "{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Basic auth over TLS

fn basic_tls_registry(pki: &Pki) -> Registry {
    let htpasswd = htpasswd(pki.dir.path(), USER, PASSWORD);
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: envbuild-test\n    path: {}\n",
        htpasswd.display()
    );
    Registry::start_tls(&auth, &pki.file("server.pem"), &pki.file("server.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls_with_a_test_ca() {
    let pki = Pki::new();
    let registry = basic_tls_registry(&pki);
    let base = format!("{}/", registry.url());
    assert!(base.starts_with("https://127.0.0.1:"));
    let ca_options = TransportOptions {
        ca_file: Some(pki.file("ca.pem")),
        insecure: Vec::new(),
    };
    let http = registry_http_client(&ca_options).unwrap();

    // Without the CA, the system roots do not trust the test certificate.
    let untrusting = registry_http_client(&TransportOptions::default()).unwrap();
    let error = untrusting
        .get(format!("{base}v2/"))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{error:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.to_lowercase().contains("certificate"),
        "expected a certificate error, got {chain}"
    );

    // Credentials from a docker config.json (unpadded `auth`, URL-shaped key).
    let home = CredentialHome::new();
    let unpadded = b64(&format!("{USER}:{PASSWORD}"))
        .trim_end_matches('=')
        .to_string();
    home.config(serde_json::json!({
        "auths": {format!("https://{}/v1/", registry.addr): {"auth": unpadded}}
    }));
    let credential = credentials_for(&registry.addr, &home.environment()).unwrap();
    assert_eq!(
        credential,
        Some(Credential::Basic {
            username: USER.into(),
            password: PASSWORD.into()
        })
    );

    // Step by step: GET /v2/ → 401 Basic → on_challenge → the retry succeeds.
    let auth = Authenticator::new(http.clone(), &registry.addr, credential.clone());
    assert_eq!(auth.header(&[]).await.unwrap(), None);
    let first = http.get(format!("{base}v2/")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge_of(&first);
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    auth.on_challenge(&challenge, &[]).await.unwrap();
    let header = auth.header(&[]).await.unwrap().unwrap();
    let second = http
        .get(format!("{base}v2/"))
        .header(AUTHORIZATION, header)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::OK, "{}", registry.log());

    // A blob pushed with those credentials lands in the registry.
    let session = Session::new(http.clone(), &base, &registry.addr, credential);
    let blob = b"basic auth over tls\n";
    let digest = session.push_blob("team/app", blob).await.unwrap();
    assert_eq!(registry.stored_blob(&digest).unwrap(), blob);

    // A wrong password: refused, named, never echoed.
    let wrong = Session::new(
        http.clone(),
        &base,
        &registry.addr,
        Some(Credential::Basic {
            username: USER.into(),
            password: WRONG_PASSWORD.into(),
        }),
    );
    let error = wrong.send(Method::GET, "v2/", &[], None).await.unwrap_err();
    assert!(
        matches!(error, AuthError::CredentialsRefused { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "registry `{}` refused the credentials of user `{USER}`",
            registry.addr
        )),
        "{message}"
    );
    assert_secret_free(&error);

    // No credentials at all: says how to log in.
    let anonymous = Session::new(http.clone(), &base, &registry.addr, None);
    let error = anonymous
        .send(Method::GET, "v2/", &[], None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::CredentialsNeeded { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("envbuild login {}", registry.addr)),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_from_helpers_and_login() {
    let pki = Pki::new();
    let registry = basic_tls_registry(&pki);
    let base = format!("{}/", registry.url());
    let http = registry_http_client(&TransportOptions {
        ca_file: Some(pki.file("ca.pem")),
        insecure: Vec::new(),
    })
    .unwrap();

    // credHelpers beats a wrong password in auths.
    let home = CredentialHome::new();
    let log = home.helper("envtest", &registry.addr, USER, PASSWORD);
    home.config(serde_json::json!({
        "auths": {registry.addr.clone(): {"auth": b64(&format!("{USER}:{WRONG_PASSWORD}"))}},
        "credHelpers": {registry.addr.clone(): "envtest"}
    }));
    let credential = credentials_for(&registry.addr, &home.environment()).unwrap();
    assert_eq!(
        fs_err::read_to_string(&log).unwrap(),
        format!("get {}\n", registry.addr)
    );
    let session = Session::new(http.clone(), &base, &registry.addr, credential);
    let digest = session
        .push_blob("helper/app", b"from a credential helper\n")
        .await
        .unwrap();
    assert!(registry.stored_blob(&digest).is_some());

    // credsStore: the store answers for this registry.
    let store_home = CredentialHome::new();
    store_home.helper("envstore", &registry.addr, USER, PASSWORD);
    store_home.config(serde_json::json!({"credsStore": "envstore"}));
    let credential = credentials_for(&registry.addr, &store_home.environment()).unwrap();
    let session = Session::new(http.clone(), &base, &registry.addr, credential);
    let response = session.send(Method::GET, "v2/", &[], None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // `store_login` writes what the lookup then finds, and the registry accepts it.
    let login_home = CredentialHome::new();
    let written = store_login(&registry.addr, USER, PASSWORD, &login_home.environment()).unwrap();
    assert!(written.ends_with("docker/config.json"));
    let credential = credentials_for(&registry.addr, &login_home.environment()).unwrap();
    let session = Session::new(http, &base, &registry.addr, credential);
    let response = session.send(Method::GET, "v2/", &[], None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Token auth

/// One request the token issuer answered.
#[derive(Debug, Clone)]
struct IssuerRequest {
    method: String,
    service: Option<String>,
    scopes: Vec<String>,
    /// The user the request authenticated as (Basic or identity token), if any.
    user: Option<String>,
    grant_type: Option<String>,
    status: u16,
}

/// A token issuer on 127.0.0.1 in the style of distribution's `token.md` and
/// `oauth.md`: Basic credentials or a refresh token in, an RS256 JWT out, granting the
/// asked actions except `push` on `readonly/*`, and nothing to anonymous users.
struct TokenIssuer {
    realm: String,
    requests: Arc<Mutex<Vec<IssuerRequest>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TokenIssuer {
    fn start(pki: &Pki) -> TokenIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let signer_key = pki.file("signer.key");
        let x5c = BASE64.encode(&fs_err::read(pki.file("signer.der")).unwrap());
        let record = Arc::clone(&requests);
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            let counter = AtomicU64::new(0);
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = serve_token(stream, &signer_key, &x5c, &counter, &record);
            }
        });
        TokenIssuer {
            realm: format!("http://127.0.0.1:{port}/token"),
            requests,
            stop,
            port,
        }
    }

    fn requests(&self) -> Vec<IssuerRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_token(
    stream: TcpStream,
    signer_key: &Path,
    x5c: &str,
    counter: &AtomicU64,
    record: &Mutex<Vec<IssuerRequest>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;

    let url = url::Url::parse(&format!("http://issuer{target}")).unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let first = |pairs: &[(String, String)], name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let (service, scopes, grant_type, user, refused) = if method == "POST" {
        // OAuth2 (`oauth.md`): a refresh token, scopes space-separated in one field.
        let grant_type = first(&form, "grant_type");
        let refresh = first(&form, "refresh_token");
        let scopes: Vec<String> = first(&form, "scope")
            .map(|scope| scope.split(' ').map(str::to_string).collect())
            .unwrap_or_default();
        let valid = grant_type.as_deref() == Some("refresh_token")
            && refresh.as_deref() == Some(IDENTITY_TOKEN);
        let user = valid.then(|| USER.to_string());
        (first(&form, "service"), scopes, grant_type, user, !valid)
    } else {
        // `token.md`: GET with one `scope` parameter per scope, Basic credentials.
        let scopes = query
            .iter()
            .filter(|(key, _)| key == "scope")
            .map(|(_, value)| value.clone())
            .collect();
        let (user, refused) = match headers.get("authorization") {
            None => (None, false),
            Some(value) => {
                let decoded = value
                    .strip_prefix("Basic ")
                    .and_then(|encoded| BASE64.decode(encoded.as_bytes()).ok())
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .unwrap_or_default();
                match decoded.split_once(':') {
                    Some((user, password)) if user == USER && password == PASSWORD => {
                        (Some(user.to_string()), false)
                    }
                    Some((user, _)) => (Some(user.to_string()), true),
                    None => (None, true),
                }
            }
        };
        (first(&query, "service"), scopes, None, user, refused)
    };
    let status = if refused { 401 } else { 200 };
    record.lock().unwrap().push(IssuerRequest {
        method: method.clone(),
        service: service.clone(),
        scopes: scopes.clone(),
        user: user.clone(),
        grant_type,
        status,
    });
    let body = if refused {
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_string()
    } else {
        let token = sign_token(
            signer_key,
            x5c,
            user.as_deref(),
            service.as_deref().unwrap_or_default(),
            &scopes,
            counter.fetch_add(1, Ordering::SeqCst),
        );
        let field = if method == "POST" {
            "access_token"
        } else {
            "token"
        };
        serde_json::json!({field: token, "expires_in": 300}).to_string()
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if refused { "Unauthorized" } else { "OK" },
        body.len()
    )?;
    stream.flush()
}

/// An RS256 JWT as distribution verifies it: `x5c` leading to the `rootcertbundle`,
/// `iss`, `aud` = service, `exp`/`nbf`/`iat`, `jti`, and the granted `access`.
fn sign_token(
    signer_key: &Path,
    x5c: &str,
    user: Option<&str>,
    service: &str,
    scopes: &[String],
    serial: u64,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut access = Vec::new();
    if user.is_some() {
        for scope in scopes {
            let mut parts = scope.splitn(3, ':');
            let (Some(kind), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|action| !(name.starts_with("readonly/") && *action != "pull"))
                .collect();
            access.push(serde_json::json!({"type": kind, "name": name, "actions": granted}));
        }
    }
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user.unwrap_or(""),
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("envbuild-test-{serial}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(signer_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&output.stdout))
}

fn token_registry(pki: &Pki, issuer: &TokenIssuer) -> Registry {
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        issuer.realm,
        pki.file("ca.pem").display()
    );
    Registry::start(&auth)
}

fn basic_credential(password: &str) -> Option<Credential> {
    Some(Credential::Basic {
        username: USER.into(),
        password: password.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_with_a_test_issuer() {
    let pki = Pki::new();
    let issuer = TokenIssuer::start(&pki);
    let registry = token_registry(&pki, &issuer);
    let base = format!("{}/", registry.url());
    let http = registry_http_client(&TransportOptions::default()).unwrap();

    // The challenge names the issuer; the token for no scope opens `/v2/`.
    let session = Session::new(
        http.clone(),
        &base,
        &registry.addr,
        basic_credential(PASSWORD),
    );
    let first = http.get(format!("{base}v2/")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge_of(&first);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&issuer.realm), "{challenge}");
    let response = session.send(Method::GET, "v2/", &[], None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", registry.log());

    // Push: the token asks for pull,push on the repository, with the Basic credentials.
    let blob = b"pushed with a bearer token\n";
    let digest = session.push_blob("team/app", blob).await.unwrap();
    assert_eq!(registry.stored_blob(&digest).unwrap(), blob);
    let requests = issuer.requests();
    let push_request = requests
        .iter()
        .find(|request| request.scopes == ["repository:team/app:pull,push"])
        .unwrap_or_else(|| panic!("no push token request in {requests:#?}"));
    assert_eq!(push_request.method, "GET");
    assert_eq!(push_request.service.as_deref(), Some(SERVICE));
    assert_eq!(push_request.user.as_deref(), Some(USER));
    assert_eq!(push_request.status, 200);

    // Cached: a second blob to the same repository needs no token request.
    let before = issuer.requests().len();
    session
        .push_blob("team/app", b"second blob\n")
        .await
        .unwrap();
    assert_eq!(issuer.requests().len(), before);

    // A cross-repository mount: one token with the destination's pull,push and the
    // source's pull.
    let mount_scopes = [
        Scope::PullPush("team/other".into()),
        Scope::Pull("team/app".into()),
    ];
    let mounted = session
        .send(
            Method::POST,
            &format!("v2/team/other/blobs/uploads/?mount={digest}&from=team/app"),
            &mount_scopes,
            None,
        )
        .await
        .unwrap();
    assert_eq!(mounted.status(), StatusCode::CREATED, "{}", registry.log());
    let last = issuer.requests().last().cloned().unwrap();
    assert_eq!(
        last.scopes,
        [
            "repository:team/app:pull",
            "repository:team/other:pull,push"
        ]
    );
    assert_eq!(issuer.requests().len(), before + 1);

    // A partial grant (no push on readonly/*) is a clear error, not a silent failure.
    let error = session
        .push_blob("readonly/app", b"not allowed\n")
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::AccessDenied { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("did not grant `repository:readonly/app:pull,push`")
            && message.contains(&format!("user `{USER}` lack this access")),
        "{message}"
    );
    assert_secret_free(&error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_refusals_and_identity_tokens() {
    let pki = Pki::new();
    let issuer = TokenIssuer::start(&pki);
    let registry = token_registry(&pki, &issuer);
    let base = format!("{}/", registry.url());
    let http = registry_http_client(&TransportOptions::default()).unwrap();
    let push = [Scope::PullPush("team/app".into())];

    // A wrong password: the issuer refuses it; the error says so and hides the secret.
    let wrong = Session::new(
        http.clone(),
        &base,
        &registry.addr,
        basic_credential(WRONG_PASSWORD),
    );
    let error = wrong
        .send(Method::POST, "v2/team/app/blobs/uploads/", &push, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::CredentialsRefused { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&format!(
            "registry `{}` refused the credentials of user `{USER}`",
            registry.addr
        )),
        "{error}"
    );
    assert_secret_free(&error);
    let refused = issuer.requests().last().cloned().unwrap();
    assert_eq!((refused.status, refused.user.as_deref()), (401, Some(USER)));
    assert_eq!(refused.scopes, ["repository:team/app:pull,push"]);

    // Anonymous: a token without access; pushing says credentials are missing.
    let anonymous = Session::new(http.clone(), &base, &registry.addr, None);
    let error = anonymous
        .push_blob("team/app", b"anonymous\n")
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::AccessDenied { .. }), "{error:?}");
    assert!(
        error.to_string().contains("no credentials were found"),
        "{error}"
    );

    // An identity token from a credential helper (`Username: <token>`): the OAuth2
    // refresh-token grant.
    let home = CredentialHome::new();
    home.helper("envtoken", &registry.addr, "<token>", IDENTITY_TOKEN);
    home.config(serde_json::json!({"credHelpers": {registry.addr.clone(): "envtoken"}}));
    let credential = credentials_for(&registry.addr, &home.environment()).unwrap();
    assert_eq!(
        credential,
        Some(Credential::IdentityToken(IDENTITY_TOKEN.into()))
    );
    let session = Session::new(http.clone(), &base, &registry.addr, credential);
    let digest = session
        .push_blob("team/app", b"pushed with an identity token\n")
        .await
        .unwrap();
    assert!(registry.stored_blob(&digest).is_some());
    let oauth = issuer
        .requests()
        .into_iter()
        .find(|request| request.method == "POST")
        .expect("an OAuth2 token request");
    assert_eq!(oauth.grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(oauth.scopes, ["repository:team/app:pull,push"]);
    assert_eq!(oauth.service.as_deref(), Some(SERVICE));
    assert_eq!(oauth.status, 200);

    // Credentials from a docker config.json work with token auth too.
    let home = CredentialHome::new();
    home.config(serde_json::json!({
        "auths": {registry.addr.clone(): {"auth": b64(&format!("{USER}:{PASSWORD}"))}}
    }));
    let credential = credentials_for(&registry.addr, &home.environment()).unwrap();
    let session = Session::new(http, &base, &registry.addr, credential);
    session
        .push_blob("config/app", b"from config.json\n")
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Full pushes with envbuild's registry client

/// A one-layer OCI layout (tag `base`) made by hand, and a cache holding its blobs once
/// read as a base.
fn tiny_base(dir: &Path) -> (envbuild::oci::Image, envbuild::cache::Cache) {
    use flate2::write::GzEncoder;
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = sha256(bytes);
        fs_err::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        (digest, bytes.len())
    };
    let mut tar = tar::Builder::new(Vec::new());
    let content = b"hello from an authenticated push\n";
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", &content[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gzip = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&tar).unwrap();
    let (layer, layer_size) = put(&gzip.finish().unwrap());
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]}
    });
    let (config, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}]
    });
    let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "base"}
        }]
    });
    fs_err::write(layout.join("index.json"), index.to_string()).unwrap();
    fs_err::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let cache = envbuild::cache::Cache::open(&dir.join("cache")).unwrap();
    let reference: envbuild::oci::ImageReference =
        format!("oci:{}:base", layout.display()).parse().unwrap();
    let base = envbuild::oci::read_base(&reference, None, &cache).unwrap();
    let epoch = envbuild::repro::SourceDateEpoch::from_env_value(None).unwrap();
    let image =
        envbuild::oci::assemble(&base, &[], &envbuild::oci::ImageSettings::default(), epoch)
            .unwrap();
    (image, cache)
}

fn client_options(
    ca_file: Option<PathBuf>,
    auth: AuthEnvironment,
) -> envbuild::registry::RegistryOptions {
    envbuild::registry::RegistryOptions {
        transport: TransportOptions {
            ca_file,
            insecure: Vec::new(),
        },
        auth,
        retries: 1,
        ..envbuild::registry::RegistryOptions::default()
    }
}

/// The manifest digest the registry serves for `repository:tag`.
async fn served_manifest_digest(session: &Session, repository: &str, tag: &str) -> String {
    let url = format!("{}v2/{repository}/manifests/{tag}", session.base);
    let scopes = [Scope::Pull(repository.to_string())];
    let sent = session.auth.header(&scopes).await.unwrap();
    let mut request = session.http.get(&url).header(
        "accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
    );
    if let Some(value) = sent {
        request = request.header(AUTHORIZATION, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    sha256(&bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_push_through_basic_auth_over_tls() {
    let pki = Pki::new();
    let registry = basic_tls_registry(&pki);
    let scratch = tempfile::tempdir().unwrap();
    let (image, cache) = tiny_base(scratch.path());
    let home = CredentialHome::new();
    home.helper("envtest", &registry.addr, USER, PASSWORD);
    home.config(serde_json::json!({"credHelpers": {registry.addr.clone(): "envtest"}}));
    let client = envbuild::registry::Registry::new(client_options(
        Some(pki.file("ca.pem")),
        home.environment(),
    ))
    .unwrap();
    let destination: envbuild::registry::RegistryReference =
        format!("{}/team/full:v1", registry.addr).parse().unwrap();
    let report = client
        .push(std::slice::from_ref(&image), &destination, &cache)
        .await
        .unwrap_or_else(|error| panic!("push failed: {error}\n{}", registry.log()));
    assert_eq!(report.digest, image.manifest_digest);
    assert_eq!(report.blobs_uploaded, 2);
    for layer in &image.layers {
        assert!(registry.stored_blob(&layer.digest.to_string()).is_some());
    }
    let http = registry_http_client(&TransportOptions {
        ca_file: Some(pki.file("ca.pem")),
        insecure: Vec::new(),
    })
    .unwrap();
    let session = Session::new(
        http,
        &format!("{}/", registry.url()),
        &registry.addr,
        basic_credential(PASSWORD),
    );
    session.send(Method::GET, "v2/", &[], None).await.unwrap();
    assert_eq!(
        served_manifest_digest(&session, "team/full", "v1").await,
        image.manifest_digest.to_string()
    );

    // Wrong credentials: the push fails naming the registry, without the secret.
    let wrong_home = CredentialHome::new();
    wrong_home.config(serde_json::json!({
        "auths": {registry.addr.clone(): {"auth": b64(&format!("{USER}:{WRONG_PASSWORD}"))}}
    }));
    let client = envbuild::registry::Registry::new(client_options(
        Some(pki.file("ca.pem")),
        wrong_home.environment(),
    ))
    .unwrap();
    let destination: envbuild::registry::RegistryReference =
        format!("{}/team/denied:v1", registry.addr).parse().unwrap();
    let error = client
        .push(std::slice::from_ref(&image), &destination, &cache)
        .await
        .unwrap_err();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    assert!(text.contains(&registry.addr), "{text}");
    // The client tells refused credentials apart from a bare 401.
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains(WRONG_PASSWORD) && !format!("{error:?}").contains(WRONG_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_push_through_token_auth() {
    let pki = Pki::new();
    let issuer = TokenIssuer::start(&pki);
    let registry = token_registry(&pki, &issuer);
    let scratch = tempfile::tempdir().unwrap();
    let (image, cache) = tiny_base(scratch.path());
    let home = CredentialHome::new();
    home.config(serde_json::json!({
        "auths": {registry.addr.clone(): {"auth": b64(&format!("{USER}:{PASSWORD}"))}}
    }));
    let client =
        envbuild::registry::Registry::new(client_options(None, home.environment())).unwrap();
    let destination: envbuild::registry::RegistryReference =
        format!("{}/team/full:v1", registry.addr).parse().unwrap();
    let report = client
        .push(std::slice::from_ref(&image), &destination, &cache)
        .await
        .unwrap_or_else(|error| panic!("push failed: {error}\n{}", registry.log()));
    assert_eq!(report.digest, image.manifest_digest);
    let requests = issuer.requests();
    assert!(
        requests
            .iter()
            .all(|request| request.status == 200 && request.user.as_deref() == Some(USER)),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|request| request.scopes == ["repository:team/full:pull,push"]),
        "{requests:#?}"
    );
    let http = registry_http_client(&TransportOptions::default()).unwrap();
    let session = Session::new(
        http,
        &format!("{}/", registry.url()),
        &registry.addr,
        basic_credential(PASSWORD),
    );
    session.send(Method::GET, "v2/", &[], None).await.unwrap();
    assert_eq!(
        served_manifest_digest(&session, "team/full", "v1").await,
        image.manifest_digest.to_string()
    );
}
