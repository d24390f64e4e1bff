//! The HTTP client registries are reached with: rustls with the system's roots plus an
//! optional extra CA file, and plain HTTP only for loopback or listed insecure hosts.
//!
//! Trust: reqwest's `rustls` feature verifies servers with `rustls-platform-verifier`,
//! which on Linux loads the OS store through `rustls-native-certs` (`/etc/ssl/certs`,
//! or whatever `SSL_CERT_FILE` / `SSL_CERT_DIR` name). The PEM certificates of
//! [`TransportOptions::ca_file`] are added to those roots, never in place of them.
//!
//! Redirects (blob GETs are often sent to a CDN): followed up to ten times; reqwest
//! drops `Authorization`, `Cookie` and `Proxy-Authorization` whenever the next URL
//! differs from the previous one in host, port or scheme (`remove_sensitive_headers`
//! in reqwest's `redirect.rs`), so registry credentials and tokens are never forwarded
//! to another host. A redirect from HTTPS down to plain HTTP is refused outright.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{ACCEPT_ENCODING, HeaderMap, HeaderValue};

use crate::fetch::USER_AGENT;

/// Connect and read timeout of the registry client: a registry that accepts no
/// connection, or sends nothing for this long, has failed this attempt.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many redirects one request may follow.
const MAX_REDIRECTS: usize = 10;

/// TLS and transport settings for registries.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// Extra PEM CA certificates to trust (`--registry-ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Hosts (`host[:port]`) reached over plain HTTP (`--insecure-registry`); loopback
    /// hosts always may be.
    pub insecure: Vec<String>,
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("cannot read the registry CA file `{}`", path.display())]
    CaFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no PEM certificate, or a damaged one.
    #[error(
        "registry CA file `{}` {reason}: give a file of PEM certificates (`-----BEGIN CERTIFICATE-----`)",
        path.display()
    )]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS stack refused the certificates of the CA file.
    #[error("cannot trust the certificates of the registry CA file `{}`", path.display())]
    CaFileRejected {
        /// The file.
        path: PathBuf,
        /// The TLS stack's reason.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built (for example, no usable system certificate store).
    #[error(
        "cannot set up the registry HTTP client: check the system certificate store (`SSL_CERT_FILE`, `SSL_CERT_DIR`)"
    )]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

/// Whether `host[:port]` is reached over plain HTTP.
pub fn uses_plain_http(registry: &str, options: &TransportOptions) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        || host.starts_with("127.")
        || options.insecure.iter().any(|entry| entry == registry)
}

/// The URL schemes to try for `registry`, in order: `https` only, or — for the hosts
/// [`uses_plain_http`] allows — `https` first and then `http`, as the docker CLI does
/// for insecure registries, so a loopback registry serving TLS is still reached over TLS.
pub fn schemes(registry: &str, options: &TransportOptions) -> &'static [&'static str] {
    if uses_plain_http(registry, options) {
        &["https", "http"]
    } else {
        &["https"]
    }
}

/// Build the HTTP client for registries: the system roots plus the certificates of
/// [`TransportOptions::ca_file`], [`REGISTRY_TIMEOUT`] to connect and between reads,
/// the `envbuild/<version>` user agent, proxies from the environment, no content
/// decoding (`Accept-Encoding: identity`: digests cover the bytes as served), and the
/// redirect policy of the module documentation.
pub fn registry_http_client(options: &TransportOptions) -> Result<reqwest::Client, TlsError> {
    let extra_roots = match &options.ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .connect_timeout(REGISTRY_TIMEOUT)
        .read_timeout(REGISTRY_TIMEOUT)
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .redirect(redirect_policy())
        .tls_certs_merge(extra_roots)
        .build()
        .map_err(|source| match &options.ca_file {
            Some(path) => TlsError::CaFileRejected {
                path: path.clone(),
                source,
            },
            None => TlsError::Client { source },
        })
}

/// The PEM certificates of `path`, each checked to be an X.509 certificate.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let bytes = fs_err::read(path).map_err(|source| TlsError::CaFileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| TlsError::CaFileInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let certificates = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|error| invalid(format!("is not valid PEM ({error})")))?;
    if certificates.is_empty() {
        return Err(invalid("holds no PEM certificate".to_string()));
    }
    Ok(certificates)
}

/// Follow up to [`MAX_REDIRECTS`] redirects, never from HTTPS down to HTTP. reqwest
/// itself strips `Authorization` when a hop changes host, port or scheme.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|previous| previous.scheme() == "https");
        if downgrade {
            let to = attempt.url().clone();
            attempt.error(RedirectDowngrade { to })
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(TooManyRedirects)
        } else {
            attempt.follow()
        }
    })
}

/// A redirect from HTTPS to plain HTTP.
#[derive(Debug, thiserror::Error)]
#[error("refusing a redirect from HTTPS to plain HTTP (`{}`)", redacted(to))]
struct RedirectDowngrade {
    to: url::Url,
}

/// More than [`MAX_REDIRECTS`] redirects.
#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

/// A URL without user information or query (which may carry signed credentials).
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    #[test]
    fn loopback_and_listed_hosts_use_plain_http() {
        let options = TransportOptions {
            ca_file: None,
            insecure: vec!["registry.internal:5000".to_string()],
        };
        assert!(uses_plain_http("127.0.0.1:5000", &options));
        assert!(uses_plain_http("localhost:5000", &options));
        assert!(uses_plain_http("[::1]:5000", &options));
        assert!(uses_plain_http("registry.internal:5000", &options));
        assert!(!uses_plain_http("registry.internal", &options));
        assert!(!uses_plain_http("example.test:5000", &options));
        assert_eq!(schemes("127.0.0.1:5000", &options), ["https", "http"]);
        assert_eq!(schemes("example.test", &options), ["https"]);
    }

    #[test]
    fn ok_client_without_ca_file() {
        registry_http_client(&TransportOptions::default()).unwrap();
    }

    #[test]
    fn err_ca_file_missing_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.pem");
        let error = registry_http_client(&TransportOptions {
            ca_file: Some(path.clone()),
            insecure: Vec::new(),
        })
        .unwrap_err();
        assert!(
            matches!(error, TlsError::CaFileUnreadable { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn err_ca_file_without_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        fs_err::write(&path, "not a certificate\n").unwrap();
        let error = registry_http_client(&TransportOptions {
            ca_file: Some(path.clone()),
            insecure: Vec::new(),
        })
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("holds no PEM certificate"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn err_ca_file_with_damaged_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        fs_err::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = registry_http_client(&TransportOptions {
            ca_file: Some(path.clone()),
            insecure: Vec::new(),
        })
        .unwrap_err();
        assert!(
            matches!(
                error,
                TlsError::CaFileRejected { .. } | TlsError::CaFileInvalid { .. }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    /// A one-shot HTTP/1.1 server on loopback answering every request with `answer(port
    /// of the other server)` and recording the request heads it saw.
    fn serve(answers: Vec<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                record.lock().unwrap().push(head);
                let mut stream = stream;
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn authorization_is_not_forwarded_to_another_host_on_redirect() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        let (cdn_port, cdn_seen) = serve(vec![ok.to_string()]);
        let redirect = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{cdn_port}/blob\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (registry_port, registry_seen) = serve(vec![redirect]);
        let client = registry_http_client(&TransportOptions::default()).unwrap();
        let answer = client
            .get(format!(
                "http://127.0.0.1:{registry_port}/v2/a/blobs/sha256:00"
            ))
            .header(reqwest::header::AUTHORIZATION, "Bearer secret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let registry_head = registry_seen.lock().unwrap()[0].to_ascii_lowercase();
        assert!(registry_head.contains("authorization: bearer secret-token"));
        assert!(registry_head.contains("user-agent: envbuild/"));
        assert!(registry_head.contains("accept-encoding: identity"));
        let cdn_head = cdn_seen.lock().unwrap()[0].to_ascii_lowercase();
        assert!(cdn_head.starts_with("get /blob "), "{cdn_head}");
        assert!(!cdn_head.contains("authorization"), "{cdn_head}");
        assert!(!cdn_head.contains("secret-token"), "{cdn_head}");
    }

    #[test]
    fn redacted_url_drops_credentials_and_query() {
        let url = url::Url::parse("http://user:pw@cdn.test/blob?sig=abc").unwrap();
        assert_eq!(redacted(&url), "http://cdn.test/blob");
    }
}
