//! Errors of the OCI stage: reading a base, assembling an image, writing a layout.

use std::io;
use std::path::PathBuf;

use crate::cache::CacheError;
use crate::digest::Sha256Digest;

/// Errors from reading, assembling or writing OCI images. Each names the image
/// reference, path or digest involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// A file or folder could not be read or written.
    #[error("{}", io_message(path, source))]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The reference names a path that does not exist.
    #[error("image `{reference}` does not exist: there is nothing at `{}`; check the path", path.display())]
    MissingImage {
        /// The image reference.
        reference: String,
        /// The missing path.
        path: PathBuf,
    },
    /// The folder or archive is not an OCI image layout.
    #[error(
        "image `{reference}` is not an OCI image layout: {reason}; point it at a folder or tar archive with `oci-layout` and `index.json`, as `skopeo copy ... oci:DIR:TAG` or `umoci` write them"
    )]
    NotALayout {
        /// The image reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The archive is not a readable tar file.
    #[error("cannot read `{}` as a tar archive; is it an `oci-archive` file?", path.display())]
    UnreadableArchive {
        /// The archive.
        path: PathBuf,
        /// The tar or I/O error.
        #[source]
        source: io::Error,
    },
    /// No `index.json` entry has the requested tag.
    #[error(
        "image `{reference}` has no tag `{tag}`; its tags are: {}",
        list(available)
    )]
    TagNotFound {
        /// The image reference.
        reference: String,
        /// The tag asked for.
        tag: String,
        /// The tags present.
        available: Vec<String>,
    },
    /// The layout's `index.json` lists no image.
    #[error("image layout `{reference}` holds no image")]
    NoImage {
        /// The image reference.
        reference: String,
    },
    /// No tag was given and the layout holds several images.
    #[error(
        "image layout `{reference}` holds several images; name one with a tag (`…:TAG`); its tags are: {}",
        list(available)
    )]
    AmbiguousImage {
        /// The image reference.
        reference: String,
        /// The tags present.
        available: Vec<String>,
    },
    /// An index has no manifest for the requested platform.
    #[error(
        "image `{reference}` has no image for platform `{platform}`; it has: {}",
        list(available)
    )]
    PlatformNotFound {
        /// The image reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms present.
        available: Vec<String>,
    },
    /// An index has several platforms and no platform was requested.
    #[error(
        "image `{reference}` is a multi-platform index; choose one of its platforms: {}",
        list(available)
    )]
    PlatformRequired {
        /// The image reference.
        reference: String,
        /// The platforms present.
        available: Vec<String>,
    },
    /// A single-platform image is for another platform than the one requested.
    #[error(
        "image `{reference}` is for platform `{actual}`, but `{wanted}` was requested; use a base image built for `{wanted}`"
    )]
    PlatformMismatch {
        /// The image reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's platform.
        actual: String,
    },
    /// A blob's bytes do not match its descriptor.
    #[error(
        "blob {expected} in `{location}` has digest {actual} and size {actual_size}, but its descriptor says size {expected_size}; the image is corrupt, produce or fetch it again"
    )]
    DigestMismatch {
        /// The image reference or file.
        location: String,
        /// The digest the descriptor names.
        expected: Sha256Digest,
        /// The digest of the bytes found.
        actual: Sha256Digest,
        /// The size the descriptor names.
        expected_size: u64,
        /// The size of the bytes found.
        actual_size: u64,
    },
    /// A blob the image needs is not in the layout.
    #[error(
        "{what} blob {digest} is missing from image `{reference}`; the layout is incomplete, produce or fetch it again"
    )]
    MissingBlob {
        /// The image reference.
        reference: String,
        /// The blob.
        digest: Sha256Digest,
        /// What the blob is (`manifest`, `config`, `layer`, …).
        what: &'static str,
    },
    /// A JSON document (index, manifest, config) could not be parsed.
    #[error("cannot parse {what} of image `{reference}` as JSON")]
    InvalidJson {
        /// The image reference.
        reference: String,
        /// Which document, e.g. `index.json` or `manifest sha256:…`.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document is larger than envbuild reads into memory.
    #[error(
        "{what} of image `{reference}` is {size} bytes, more than the {limit} bytes envbuild accepts for a JSON document"
    )]
    JsonTooLarge {
        /// The image reference.
        reference: String,
        /// Which document.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A manifest, config or layer has a media type envbuild cannot use.
    #[error(
        "{what} {digest} of image `{reference}` has media type `{media_type}`, which envbuild cannot use as a base; use an OCI or Docker schema 2 container image"
    )]
    UnsupportedMediaType {
        /// The image reference.
        reference: String,
        /// What the blob is.
        what: &'static str,
        /// The blob.
        digest: Sha256Digest,
        /// Its media type.
        media_type: String,
    },
    /// A base layer's uncompressed content does not hash to the diff_id its config
    /// lists for it.
    #[error(
        "layer {layer} of image `{reference}` has diff_id {found} (the SHA-256 of its uncompressed tar), but the image's config lists {expected} in `rootfs.diff_ids`; the image is corrupt or was edited by hand: produce or fetch it again"
    )]
    DiffIdMismatch {
        /// The image reference.
        reference: String,
        /// The layer's (compressed) digest.
        layer: Sha256Digest,
        /// The diff_id the config lists.
        expected: Sha256Digest,
        /// The SHA-256 of the layer's uncompressed bytes.
        found: Sha256Digest,
    },
    /// A base layer cannot be decompressed to check its diff_id.
    #[error(
        "cannot decompress layer {layer} of image `{reference}` (`{}`) to check its diff_id; the layer is corrupt, or not a plain or gzip-compressed tar: produce or fetch the image again",
        path.display()
    )]
    UnreadableLayer {
        /// The image reference.
        reference: String,
        /// The layer's digest.
        layer: Sha256Digest,
        /// The layer blob in the cache.
        path: PathBuf,
        /// The I/O or decompression error.
        #[source]
        source: io::Error,
    },
    /// The base image's config is not usable.
    #[error("config {digest} of image `{reference}` is invalid: {reason}")]
    InvalidConfig {
        /// The image reference.
        reference: String,
        /// The config blob.
        digest: Sha256Digest,
        /// What is wrong.
        reason: String,
    },
    /// The base image's config cannot be turned into the new image's config.
    #[error("config of base image `{reference}` cannot be extended: {reason}")]
    InvalidBaseConfig {
        /// The base image reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The cache could not store or give back a blob.
    #[error("the cache failed while storing blob {digest}")]
    Cache {
        /// The blob.
        digest: Sha256Digest,
        /// The cache error (boxed: it is large).
        #[source]
        source: Box<CacheError>,
    },
    /// A blob to write is not in the cache.
    #[error("blob {digest} ({size} bytes) is not in the cache at `{}`; build the layer again", path.display())]
    NotInCache {
        /// The blob.
        digest: Sha256Digest,
        /// Its expected size.
        size: u64,
        /// Where the cache keeps it.
        path: PathBuf,
    },
    /// `write_images` was given no image.
    #[error("no image to write to `{reference}`")]
    NoImages {
        /// The output reference.
        reference: String,
    },
    /// Two images to write share a platform.
    #[error(
        "two images to write to `{reference}` are both for platform `{platform}`; build each platform once"
    )]
    DuplicatePlatform {
        /// The output reference.
        reference: String,
        /// The shared platform.
        platform: String,
    },
    /// The output path holds something that is not an OCI layout, which envbuild
    /// refuses to overwrite.
    #[error("cannot write image `{reference}`: {reason}; remove it or choose another path")]
    OutputNotALayout {
        /// The output reference.
        reference: String,
        /// What is there.
        reason: String,
    },
    /// The base reference uses a transport envbuild does not read bases from.
    #[error(
        "cannot read base image `{reference}`: envbuild does not read bases through `{transport}:` (yet); copy it into a layout with `skopeo copy {reference} oci:DIR:TAG` and pass `--base oci:DIR:TAG`"
    )]
    UnsupportedBaseTransport {
        /// The base reference.
        reference: String,
        /// The transport, e.g. `docker-archive`.
        transport: &'static str,
    },
    /// The output reference uses a transport envbuild does not write (yet).
    #[error(
        "cannot write image `{reference}`: envbuild does not write through `{transport}:` yet; write `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME[:TAG]]`, then copy it with `skopeo copy`"
    )]
    UnsupportedOutputTransport {
        /// The output reference.
        reference: String,
        /// The transport, e.g. `docker`.
        transport: &'static str,
    },
    /// Several platforms were requested for an output that holds one.
    #[error(
        "cannot write image `{reference}`: a docker-archive holds one platform, but {} were requested ({}); build one platform with `--platform`, or write the image index to `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`",
        platforms.len(),
        list(platforms)
    )]
    SinglePlatformOutput {
        /// The output reference.
        reference: String,
        /// The platforms requested or built.
        platforms: Vec<String>,
    },
    /// The output tag is not a valid tag.
    #[error(
        "`{tag}` in `{reference}` is not a valid tag: use letters, digits and single `.`, `_` or `-` between them, at most 128 characters"
    )]
    InvalidTag {
        /// The output reference.
        reference: String,
        /// The tag.
        tag: String,
    },
}

/// The message of [`OciError::Io`]: a full disk is said plainly, with what to do.
fn io_message(path: &std::path::Path, source: &io::Error) -> String {
    if crate::cache::is_disk_full(source) {
        format!(
            "the disk is full: cannot write `{}`; free some space on it, or write the image to another disk",
            path.display()
        )
    } else {
        format!("cannot read or write `{}`", path.display())
    }
}

/// Render a list for a message: `a, b, c`, or `(none)`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

impl OciError {
    /// Map a cache error met while storing `digest` read from `location`.
    pub(crate) fn from_cache(error: CacheError, digest: Sha256Digest, location: &str) -> Self {
        match error {
            CacheError::Mismatch {
                expected,
                actual,
                expected_size,
                actual_size,
                ..
            } => Self::DigestMismatch {
                location: location.to_string(),
                expected,
                actual,
                expected_size,
                actual_size,
            },
            source => Self::Cache {
                digest,
                source: Box::new(source),
            },
        }
    }
}

/// Attach a path to an I/O error.
pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> OciError {
    let path = path.into();
    move |source| OciError::Io { path, source }
}
