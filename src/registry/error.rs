//! Errors of the registry client. Each names the registry and repository, the blob or
//! manifest involved, the HTTP status and the registry's own error code and message
//! (distribution spec, "Error Codes") when there was one, and what to do about it.
//! Credentials never appear: neither `Authorization` values nor upload URLs (which can
//! carry signed state) are put in messages.

use std::path::PathBuf;

use reqwest::StatusCode;

use super::auth::AuthError;
use crate::cache::CacheError;
use crate::digest::Sha256Digest;
use crate::http::{ClientError, ReceivedSize, redact_text};
use crate::oci::OciError;

/// Errors from pulling or pushing images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The HTTP client for registries could not be built.
    #[error(
        "cannot set up the HTTP client for registries; check `--registry-ca-file` (`ENVBUILD_REGISTRY_CA_FILE`)"
    )]
    Client {
        /// Why.
        #[source]
        source: Box<ClientError>,
    },
    /// The credential store could not be read.
    #[error(
        "cannot look up the credentials for registry `{registry}`; check the docker `config.json`, `auth.json` or credential helper that holds them"
    )]
    Credentials {
        /// The registry.
        registry: String,
        /// Why.
        #[source]
        source: Box<AuthError>,
    },
    /// Answering the registry's authentication challenge failed.
    #[error(
        "cannot authenticate to registry `{registry}` for {what} in `{repository}`; check the credentials for `{registry}` (docker `config.json`, credential helper or `auth.json`)"
    )]
    Authentication {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The request, e.g. `manifest \`v1\``.
        what: String,
        /// Why.
        #[source]
        source: Box<AuthError>,
    },
    /// The registry refused access even after authenticating (401 or 403).
    #[error(
        "registry `{registry}` denied {what} in `{repository}` (HTTP {status}{detail}); check that the credentials for `{registry}` may {access} `{repository}`"
    )]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The request.
        what: String,
        /// The HTTP status.
        status: StatusCode,
        /// The registry's error codes and messages, as `: CODE message`, or empty.
        detail: String,
        /// `pull from` or `push to`.
        access: &'static str,
    },
    /// A manifest (tag or digest) does not exist.
    #[error(
        "registry `{registry}` has no manifest `{reference}` in repository `{repository}` (HTTP {status}{detail}); check the repository name and tag"
    )]
    ManifestNotFound {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The tag or digest asked for.
        reference: String,
        /// The HTTP status.
        status: StatusCode,
        /// The registry's error codes and messages.
        detail: String,
    },
    /// The registry answered with a status the protocol does not allow here.
    #[error("registry `{registry}` answered HTTP {status} to {what} in `{repository}`{detail}")]
    UnexpectedStatus {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The request.
        what: String,
        /// The HTTP status.
        status: StatusCode,
        /// The registry's error codes and messages (or the start of its answer).
        detail: String,
    },
    /// Transient failures (connection errors, timeouts, 5xx, 429) went on after every retry.
    #[error(
        "{what} in `{registry}/{repository}` failed {attempts} times; last cause: {cause}; check the network and the registry and run again (blobs already uploaded are not sent again){}",
        slow_hint(cause)
    )]
    RetriesExhausted {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The request, e.g. `upload of blob sha256:…`.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        cause: String,
    },
    /// Bytes received do not match their digest or size.
    #[error(
        "{what} from `{image}` has digest {actual}, but {expected} was expected; the registry or something between it and envbuild altered it"
    )]
    DigestMismatch {
        /// The registry and repository: `host[:port]/repository`.
        image: String,
        /// What was received, e.g. `blob sha256:…`.
        what: String,
        /// The expected digest.
        expected: Sha256Digest,
        /// The digest of what arrived.
        actual: Sha256Digest,
    },
    /// The registry cannot be reached at all (its name does not resolve, or it
    /// refuses connections): tried once, not retried.
    #[error(
        "{what} in `{registry}/{repository}` failed: {reason}; check the registry's name and port, and that it is running"
    )]
    Unreachable {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The request.
        what: String,
        /// The host and why (boxed, as it is large).
        reason: Box<crate::http::SendError>,
    },
    /// Bytes received do not have the size their descriptor gives (checked before the
    /// digest, so a wrong size is not reported as a wrong digest).
    #[error(
        "{what} from `{image}` has the wrong size: its descriptor says {expected} bytes, but the registry sent {actual}; the registry or something between it and envbuild altered it, or the manifest that describes it is wrong"
    )]
    SizeMismatch {
        /// The registry and repository: `host[:port]/repository`.
        image: String,
        /// What was received, e.g. `blob sha256:…`.
        what: String,
        /// The size the descriptor gives.
        expected: u64,
        /// What arrived, or was announced.
        actual: ReceivedSize,
    },
    /// The registry reports a digest for what was pushed that differs from envbuild's.
    #[error(
        "`{image}` stored {what} under digest {reported}, but envbuild computed {expected}; the registry changed the bytes, so the image cannot be addressed by its digest"
    )]
    PushedDigestMismatch {
        /// The registry and repository: `host[:port]/repository`.
        image: String,
        /// The manifest or blob.
        what: String,
        /// The digest envbuild computed over the bytes it sent.
        expected: Sha256Digest,
        /// The registry's `Docker-Content-Digest`.
        reported: String,
    },
    /// A manifest, index or config is not valid JSON of the expected shape.
    #[error("{what} from `{registry}/{repository}` is invalid: {reason}")]
    InvalidDocument {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The document, e.g. `manifest sha256:…`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document is larger than envbuild reads into memory.
    #[error(
        "{what} from `{registry}/{repository}` is larger than the {limit} bytes envbuild accepts for a JSON document"
    )]
    DocumentTooLarge {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The document.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest, config or layer has a media type envbuild cannot use.
    #[error(
        "{what} in `{registry}/{repository}` has media type `{media_type}`, which envbuild cannot use as a base; use an OCI or Docker schema 2 container image"
    )]
    UnsupportedMediaType {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The document or blob.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// An index has no manifest for the requested platform.
    #[error(
        "image `{reference}` has no image for platform `{platform}`; it has: {}",
        list(available)
    )]
    PlatformNotFound {
        /// The image.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// An index has several platforms and none was asked for.
    #[error(
        "image `{reference}` is a multi-platform index; choose one of its platforms: {}",
        list(available)
    )]
    PlatformRequired {
        /// The image.
        reference: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// A single-platform image is for another platform than the one asked for.
    #[error(
        "image `{reference}` is for platform `{actual}`, but `{wanted}` was requested; use a base image built for `{wanted}`"
    )]
    PlatformMismatch {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's platform.
        actual: String,
    },
    /// Redirects went in circles or pointed nowhere.
    #[error("{what} in `{registry}/{repository}` was redirected badly: {reason}")]
    Redirect {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The request.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry's `Location` for an upload is missing or not a URL.
    #[error(
        "registry `{registry}` gave no usable upload location for blob {digest} in `{repository}` ({reason})"
    )]
    InvalidUploadLocation {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// The blob.
        digest: Sha256Digest,
        /// What is wrong with the location.
        reason: String,
    },
    /// `--offline` was given, but the cache does not hold what the base needs.
    #[error(
        "base image `{reference}` is not in the cache for an offline build: {missing}; run `envbuild fetch --base {reference} --lock ...` (or a build) once with network access"
    )]
    OfflineBaseNotCached {
        /// The base reference, canonical.
        reference: String,
        /// What is missing, e.g. `tag \`py311\` was never resolved on this machine`.
        missing: String,
    },
    /// A blob to push is not in the cache.
    #[error(
        "blob {digest} ({size} bytes) to push is not in the cache at `{}`; build the image again", path.display()
    )]
    NotInCache {
        /// The blob.
        digest: Sha256Digest,
        /// Its size.
        size: u64,
        /// Where it should be.
        path: PathBuf,
    },
    /// A cache file does not hash to its name.
    #[error(
        "cache entry `{}` should hold blob {expected} ({expected_size} bytes) but holds {actual} ({actual_size} bytes); delete it and build again", path.display()
    )]
    CorruptCacheEntry {
        /// The cache file.
        path: PathBuf,
        /// Its name's digest.
        expected: Sha256Digest,
        /// Its contents' digest.
        actual: Sha256Digest,
        /// The expected size.
        expected_size: u64,
        /// Its size.
        actual_size: u64,
    },
    /// The cache failed.
    #[error("the cache failed while storing or reading {what}")]
    Cache {
        /// The entry, e.g. `blob sha256:…`.
        what: String,
        /// Why.
        #[source]
        source: Box<CacheError>,
    },
    /// A pulled base image fails a check of its content (its layers' diff_ids).
    #[error("cannot use base image `{reference}`")]
    InvalidBase {
        /// The base image reference.
        reference: String,
        /// Why.
        #[source]
        source: Box<OciError>,
    },
    /// The images to push cannot be published together.
    #[error("cannot push to `{destination}`")]
    Image {
        /// The destination.
        destination: String,
        /// Why.
        #[source]
        source: Box<OciError>,
    },
    /// The destination names a digest other than the image's.
    #[error(
        "destination `{destination}` names digest {given}, but the image to push has digest {actual}; drop the `@digest` part or push the matching image"
    )]
    DestinationDigestMismatch {
        /// The destination.
        destination: String,
        /// The digest in the destination.
        given: Sha256Digest,
        /// The image's digest.
        actual: Sha256Digest,
    },
}

/// For a transfer below the minimum rate: how to lower it.
fn slow_hint(cause: &str) -> &'static str {
    if cause.contains("minimum transfer rate") {
        "; on a slow link, lower the minimum with `--min-transfer-rate` (`0` turns it off)"
    } else {
        ""
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

/// The OCI error body (`{"errors":[{"code","message","detail"}]}`) as `: CODE message;
/// CODE message`, or the first line of a non-JSON answer, or empty.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Body>(body)
        && !parsed.errors.is_empty()
    {
        let entries: Vec<String> = parsed
            .errors
            .iter()
            .map(|entry| {
                let code = entry.code.trim();
                let message = entry.message.trim();
                match (code.is_empty(), message.is_empty()) {
                    (false, false) => format!("{code} {message}"),
                    (false, true) => code.to_string(),
                    _ => message.to_string(),
                }
            })
            .collect();
        return format!(": {}", shorten(&redact_text(&entries.join("; "))));
    }
    let text = String::from_utf8_lossy(body);
    let first = text.lines().map(str::trim).find(|line| !line.is_empty());
    match first {
        Some(line) => format!(": {}", shorten(&redact_text(line))),
        None => String::new(),
    }
}

/// At most 300 characters of `text`.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 300;
    match text.char_indices().nth(LIMIT) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_string(),
    }
}

/// Whether the OCI error body carries `code`.
pub(crate) fn has_error_code(body: &[u8], code: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("errors").cloned())
        .and_then(|errors| errors.as_array().cloned())
        .is_some_and(|errors| {
            errors
                .iter()
                .any(|error| error.get("code").and_then(|c| c.as_str()) == Some(code))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_error_detail_reads_oci_errors() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"DENIED","message":""}]}"#;
        assert_eq!(
            error_detail(body),
            ": MANIFEST_UNKNOWN manifest unknown; DENIED"
        );
        assert!(has_error_code(body, "DENIED"));
        assert!(!has_error_code(body, "BLOB_UNKNOWN"));
        assert_eq!(error_detail(b"\n  bad gateway\nmore"), ": bad gateway");
        assert_eq!(error_detail(b""), "");
        assert!(error_detail("x".repeat(1000).as_bytes()).chars().count() < 310);
        // A registry echoing a signed URL does not pass its secrets on.
        let body =
            br#"{"errors":[{"code":"DENIED","message":"see https://u:p@cdn.test/x?sig=s3cret"}]}"#;
        assert_eq!(
            error_detail(body),
            ": DENIED see https://***@cdn.test/x?sig=***"
        );
    }
}
