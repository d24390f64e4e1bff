//! The one builder of HTTP clients in envbuild: wheel downloads, index pages and
//! registries all use a client made by [`build_client`].
//!
//! - Trust: reqwest's `rustls` feature verifies servers with `rustls-platform-verifier`,
//!   which on Linux loads the OS store through `rustls-native-certs` (`/etc/ssl/certs`,
//!   or whatever `SSL_CERT_FILE` / `SSL_CERT_DIR` name, so corporate TLS proxies work).
//!   The PEM certificates of [`ClientSettings::ca_file`] are added to those roots, never
//!   in place of them.
//! - Proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`.
//! - The user agent is [`USER_AGENT`]; no content decoding is asked for or done
//!   (`Accept-Encoding: identity`): digests cover the bytes as served.
//! - [`ClientSettings::timeout`] bounds connecting and every single read; whole
//!   transfers are bounded by [`super::Body`].
//! - Redirects: followed up to [`MAX_REDIRECTS`] times, never from HTTPS down to plain
//!   HTTP. No `Referer` is ever sent (reqwest sends one on redirects by default, and it
//!   would carry the previous URL, query tokens included, to the next host). reqwest
//!   drops `Authorization`, `Cookie` and `Proxy-Authorization` whenever a hop changes
//!   host, port or scheme (`remove_sensitive_headers` in its `redirect.rs`), and
//!   credentials written in a URL travel as such a header, so no credential is ever
//!   forwarded to another host; the tests below hold reqwest to that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{ACCEPT_ENCODING, HeaderMap, HeaderValue};

use super::redact::redact_url;

/// The `User-Agent` of every request envbuild makes.
pub const USER_AGENT: &str = concat!("envbuild/", env!("CARGO_PKG_VERSION"));

/// How many redirects one request may follow.
pub const MAX_REDIRECTS: usize = 10;

/// What differs between envbuild's clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Connect timeout, and the longest wait for any single read.
    pub timeout: Duration,
    /// Extra PEM CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
}

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read.
    #[error("cannot read the CA file `{}`", path.display())]
    CaFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no PEM certificate, or a damaged one.
    #[error(
        "CA file `{}` {reason}: give a file of PEM certificates (`-----BEGIN CERTIFICATE-----`)",
        path.display()
    )]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS stack refused the certificates of the CA file.
    #[error("cannot trust the certificates of the CA file `{}`", path.display())]
    CaFileRejected {
        /// The file.
        path: PathBuf,
        /// The TLS stack's reason.
        #[source]
        source: reqwest::Error,
    },
    /// The client could not be built (usually: no usable system certificate store).
    #[error(
        "cannot set up the HTTPS client; envbuild trusts the system certificate store (`/etc/ssl/certs`, or the files named by `SSL_CERT_FILE` / `SSL_CERT_DIR`): check that it holds certificates"
    )]
    Build {
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
}

/// Build a client as the module documentation describes.
pub fn build_client(settings: &ClientSettings) -> Result<reqwest::Client, ClientError> {
    let extra_roots = match &settings.ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .connect_timeout(settings.timeout)
        .read_timeout(settings.timeout)
        // Off whatever features another crate turns on: digests cover the bytes as served.
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .redirect(redirect_policy())
        .referer(false)
        .tls_certs_merge(extra_roots)
        .build()
        .map_err(|source| match &settings.ca_file {
            Some(path) => ClientError::CaFileRejected {
                path: path.clone(),
                source,
            },
            None => ClientError::Build { source },
        })
}

/// The PEM certificates of `path`, each checked to be an X.509 certificate.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let bytes = fs_err::read(path).map_err(|source| ClientError::CaFileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| ClientError::CaFileInvalid {
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

/// Follow up to [`MAX_REDIRECTS`] redirects, never from HTTPS down to HTTP.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|previous| previous.scheme() == "https");
        if downgrade {
            let to = redact_url(attempt.url());
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
#[error("refusing a redirect from HTTPS to plain HTTP (`{to}`)")]
struct RedirectDowngrade {
    /// The target, redacted.
    to: String,
}

/// More than [`MAX_REDIRECTS`] redirects.
#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    fn settings(ca_file: Option<PathBuf>) -> ClientSettings {
        ClientSettings {
            timeout: Duration::from_secs(10),
            ca_file,
        }
    }

    #[test]
    fn ok_client_without_ca_file() {
        build_client(&settings(None)).unwrap();
    }

    #[test]
    fn err_ca_file_missing_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.pem");
        let error = build_client(&settings(Some(path.clone()))).unwrap_err();
        assert!(
            matches!(error, ClientError::CaFileUnreadable { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn err_ca_file_without_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        fs_err::write(&path, "not a certificate\n").unwrap();
        let error = build_client(&settings(Some(path.clone()))).unwrap_err();
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
        let error = build_client(&settings(Some(path.clone()))).unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::CaFileRejected { .. } | ClientError::CaFileInvalid { .. }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    /// A loopback HTTP/1.1 server answering its requests, in order, with `answers`, and
    /// recording the request heads it saw.
    fn serve(answers: Vec<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
        serve_own(|_| answers)
    }

    /// [`serve`], with answers that may name the server's own port.
    fn serve_own(answers: impl FnOnce(u16) -> Vec<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answers = answers(port);
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

    fn redirect_to(location: &str) -> String {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    #[tokio::test]
    async fn credentials_and_referer_never_reach_another_host_on_redirect() {
        let (cdn_port, cdn_seen) = serve(vec![OK.to_string(), OK.to_string()]);
        let (origin_port, origin_seen) = serve(vec![
            redirect_to(&format!("http://127.0.0.1:{cdn_port}/blob")),
            redirect_to(&format!("http://127.0.0.1:{cdn_port}/blob")),
        ]);
        let client = build_client(&settings(None)).unwrap();
        // A header set by the caller (registries), and credentials in the URL (indexes).
        let answer = client
            .get(format!(
                "http://127.0.0.1:{origin_port}/v2/a/blobs/sha256:00?token=query-secret"
            ))
            .header(reqwest::header::AUTHORIZATION, "Bearer secret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer = client
            .get(format!(
                "http://alice:url-secret@127.0.0.1:{origin_port}/simple/a/?token=query-secret"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);

        let origin = origin_seen.lock().unwrap().join("\n").to_ascii_lowercase();
        assert!(
            origin.contains("authorization: bearer secret-token"),
            "{origin}"
        );
        assert!(origin.contains("authorization: basic "), "{origin}");
        assert!(origin.contains("user-agent: envbuild/"), "{origin}");
        assert!(origin.contains("accept-encoding: identity"), "{origin}");
        let cdn_heads = cdn_seen.lock().unwrap().clone();
        assert_eq!(cdn_heads.len(), 2);
        for head in cdn_heads {
            let head = head.to_ascii_lowercase();
            assert!(head.starts_with("get /blob "), "{head}");
            for leaked in ["authorization", "referer", "secret", "alice"] {
                assert!(
                    !head.contains(leaked),
                    "{leaked} reached the other host: {head}"
                );
            }
        }
    }

    #[tokio::test]
    async fn err_endless_redirects_stop() {
        let (port, seen) = serve_own(|port| {
            (0..=MAX_REDIRECTS)
                .map(|_| redirect_to(&format!("http://127.0.0.1:{port}/again?token=s3cret")))
                .collect()
        });
        let client = build_client(&settings(None)).unwrap();
        let error = client
            .get(format!("http://127.0.0.1:{port}/start"))
            .send()
            .await
            .unwrap_err()
            .without_url();
        assert!(error.is_redirect(), "{error:?}");
        assert_eq!(seen.lock().unwrap().len(), MAX_REDIRECTS + 1);
        let message = super::super::retry::render_chain(&error);
        assert!(message.contains("more than 10 redirects"), "{message}");
    }
}
