//! Pulling a base image ([`Registry::pull_base`]): the manifest by tag or digest, indexes
//! and Docker manifest lists resolved to the wanted platform (image-spec: "the first
//! matching entry SHOULD be used"), and the config and layer blobs verified by digest and
//! size into the cache. Blobs already in the cache are not downloaded again, so a base
//! is fetched once per machine; manifests are always asked for, since tags move.
//!
//! Sizes are checked before digests, so a lie about a size is reported as one (with both
//! sizes): an index entry against the manifest it names, a config or layer against its
//! descriptor, first by the `Content-Length` (nothing is downloaded then), then while
//! the bytes arrive (a body longer than its descriptor is cut off there). Bodies are
//! read under the timeout and the minimum rate of the options, so an endless or
//! dripping answer fails in bounded time, and nothing unverified enters the cache.

use std::io::Write;

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::auth::Scope;
use super::client::{Call, Failure, Target, read_error_detail};
use super::error::RegistryError;
use super::locations::BlobLocations;
use super::reference::RegistryReference;
use super::{Counters, Registry};
use crate::cache::{Cache, CacheError, EntryKind};
use crate::digest::Sha256Digest;
use crate::http::{ByteSize, ReadError, ReceivedSize};
use crate::oci::BaseImage;
use crate::oci::descriptor::{Descriptor, media_type, platform_matches};
use crate::oci::index::ImageIndex;
use crate::oci::manifest::ImageManifest;
use crate::oci::select::{self, PlatformChoice, config_platform, diff_ids};
use crate::platform::Platform;

/// Largest manifest, index or config read into memory.
const MAX_DOCUMENT_SIZE: ByteSize = ByteSize::mib(32);
/// Deepest nesting of indexes followed.
const MAX_INDEX_DEPTH: usize = 16;

/// The `Accept` header of manifest requests: every type envbuild can read.
fn manifest_accept() -> String {
    [
        media_type::OCI_MANIFEST,
        media_type::OCI_INDEX,
        media_type::DOCKER_MANIFEST,
        media_type::DOCKER_MANIFEST_LIST,
    ]
    .join(", ")
}

/// Where the manifest of a base given by tag came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagResolution {
    /// The registry was asked what the tag points to now.
    Registry,
    /// Offline: the digest the tag pointed to when this cache last asked.
    Cache,
}

/// What a tag resolved to, remembered in the cache for offline builds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct TagRecord {
    digest: Sha256Digest,
}

impl TagRecord {
    const KIND: &'static str = "registry-tags";

    fn key(reference: &RegistryReference) -> Sha256Digest {
        Sha256Digest::of(&crate::repro::canonical_json(&(
            &reference.registry,
            &reference.repository,
            reference.tag_or_latest(),
        )))
    }

    fn lookup(cache: &Cache, reference: &RegistryReference) -> Option<Sha256Digest> {
        cache
            .record::<TagRecord>(Self::KIND, &Self::key(reference))
            .map(|record| record.digest)
    }

    fn store(
        cache: &Cache,
        reference: &RegistryReference,
        digest: Sha256Digest,
    ) -> Result<(), RegistryError> {
        cache
            .put_record(Self::KIND, &Self::key(reference), &TagRecord { digest })
            .map_err(|source| RegistryError::Cache {
                what: format!("the digest of tag `{}`", reference.canonical()),
                source: Box::new(source),
            })
    }
}

/// Keep a verified manifest or index in the cache, so an offline build can read it by
/// digest.
fn keep_document(cache: &Cache, bytes: &[u8]) -> Result<(), RegistryError> {
    cache
        .insert_blob_bytes(bytes)
        .map(drop)
        .map_err(|source| RegistryError::Cache {
            what: format!("manifest {}", Sha256Digest::of(bytes)),
            source: Box::new(source),
        })
}

/// A manifest or index from the cache, verified against `digest`.
fn cached_document(
    reference: &RegistryReference,
    cache: &Cache,
    digest: Sha256Digest,
) -> Result<Document, RegistryError> {
    let missing = || RegistryError::OfflineBaseNotCached {
        reference: reference.canonical(),
        missing: format!("manifest {digest}"),
    };
    let path = cache
        .lookup(EntryKind::Blob, &digest, None)
        .ok_or_else(missing)?;
    let bytes = fs_err::read(&path).map_err(|_| missing())?;
    let actual = Sha256Digest::of(&bytes);
    if actual != digest {
        return Err(RegistryError::CorruptCacheEntry {
            path,
            expected: digest,
            actual,
            expected_size: bytes.len() as u64,
            actual_size: bytes.len() as u64,
        });
    }
    Ok(Document {
        bytes,
        digest,
        content_type: None,
    })
}

/// A manifest or index as received.
struct Document {
    bytes: Vec<u8>,
    digest: Sha256Digest,
    /// The `Content-Type` the registry sent.
    content_type: Option<String>,
}

impl Registry {
    /// Pull the base image `reference` for `platform` (or its only platform when `None`):
    /// resolve its manifest, verify and cache its config and layers (blobs already cached
    /// are skipped), and record in the cache that the repository holds them (for later
    /// cross-repository mounts).
    ///
    /// [`BaseImage::reference`] is the fully qualified reference (`host/repo:tag`, or with
    /// `@digest`), and [`BaseImage::manifest_digest`] the digest of the chosen platform's
    /// manifest, so a base given by tag reports exactly what it stood on.
    pub async fn pull_base(
        &self,
        reference: &RegistryReference,
        platform: Option<&Platform>,
        cache: &Cache,
    ) -> Result<BaseImage, RegistryError> {
        Ok(self.resolve_base(reference, platform, cache).await?.0)
    }

    /// [`Registry::pull_base`], also telling where a tag was resolved: by the registry,
    /// or (with [`super::RegistryOptions::offline`]) from the digest the tag had the last
    /// time this cache asked the registry. `None` for a base given by digest.
    ///
    /// Offline, no request is made at all: the manifests, config and layers must all be
    /// in the cache, as an earlier online pull (`envbuild fetch --base`, or a build)
    /// leaves them, and anything missing is one error saying what and how to fill it.
    pub async fn resolve_base(
        &self,
        reference: &RegistryReference,
        platform: Option<&Platform>,
        cache: &Cache,
    ) -> Result<(BaseImage, Option<TagResolution>), RegistryError> {
        let target = Target {
            registry: &reference.registry,
            repository: &reference.repository,
        };
        let scopes = vec![Scope::Pull(reference.repository.clone())];
        let name = reference.to_string();
        let offline = self.options.offline;
        let tag_resolution = match (reference.digest, offline) {
            (Some(_), _) => None,
            (None, false) => Some(TagResolution::Registry),
            (None, true) => Some(TagResolution::Cache),
        };
        // Online, the manifests and indexes received (and what the tag resolved to) are
        // kept in the cache for offline builds, once the whole base has been verified.
        let mut received: Vec<Vec<u8>> = Vec::new();
        let mut top_digest: Option<Sha256Digest> = None;
        let mut document = if offline {
            let digest = match reference.digest {
                Some(digest) => digest,
                None => TagRecord::lookup(cache, reference).ok_or_else(|| {
                    RegistryError::OfflineBaseNotCached {
                        reference: reference.canonical(),
                        missing: format!(
                            "tag `{}` was never resolved with this cache",
                            reference.tag_or_latest()
                        ),
                    }
                })?,
            };
            cached_document(reference, cache, digest)?
        } else {
            let document = self
                .get_manifest(
                    target,
                    &scopes,
                    &reference.manifest_reference(),
                    reference.digest,
                )
                .await?;
            top_digest = Some(document.digest);
            received.push(document.bytes.clone());
            document
        };
        let mut chosen: Option<Descriptor> = None;
        let mut depth = 0;
        let manifest = loop {
            let what = format!("manifest {}", document.digest);
            let value: serde_json::Value = parse(target, &what, &document.bytes)?;
            // The document's own `mediaType` is authoritative; then the `Content-Type`;
            // then the shape.
            let kind = value
                .get("mediaType")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .or_else(|| document.content_type.clone())
                .unwrap_or_default();
            let is_index = media_type::is_index(&kind)
                || (!media_type::is_manifest(&kind) && value.get("manifests").is_some());
            if is_index {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(invalid(
                        target,
                        &what,
                        format!("its indexes are nested more than {MAX_INDEX_DEPTH} deep"),
                    ));
                }
                let index: ImageIndex = parse(
                    target,
                    &format!("index {}", document.digest),
                    &document.bytes,
                )?;
                let entry = choose_platform(&name, &index.manifests, platform)?;
                let index_digest = document.digest;
                document = if offline {
                    cached_document(reference, cache, entry.digest)?
                } else {
                    let document = self
                        .get_manifest(target, &scopes, &entry.digest.oci(), Some(entry.digest))
                        .await?;
                    received.push(document.bytes.clone());
                    document
                };
                if document.bytes.len() as u64 != entry.size {
                    return Err(RegistryError::SizeMismatch {
                        image: target.name(),
                        what: format!("manifest {} (listed in index {index_digest})", entry.digest),
                        expected: entry.size,
                        actual: ReceivedSize::Exactly(document.bytes.len() as u64),
                    });
                }
                chosen = Some(entry);
                continue;
            }
            if !media_type::is_manifest(&kind) && value.get("config").is_none() {
                return Err(RegistryError::UnsupportedMediaType {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what,
                    media_type: kind,
                });
            }
            break parse::<ImageManifest>(target, &what, &document.bytes)?;
        };
        let config_descriptor = &manifest.config;
        if !media_type::is_config(&config_descriptor.media_type) {
            return Err(RegistryError::UnsupportedMediaType {
                registry: target.registry.to_string(),
                repository: target.repository.to_string(),
                what: format!("config {}", config_descriptor.digest),
                media_type: config_descriptor.media_type.clone(),
            });
        }
        for layer in &manifest.layers {
            if !media_type::is_layer(&layer.media_type) {
                return Err(RegistryError::UnsupportedMediaType {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what: format!("layer {}", layer.digest),
                    media_type: layer.media_type.clone(),
                });
            }
        }

        if offline {
            let missing: Vec<String> = std::iter::once(config_descriptor)
                .chain(&manifest.layers)
                .filter(|blob| {
                    cache
                        .lookup(EntryKind::Blob, &blob.digest, Some(blob.size))
                        .is_none()
                })
                .map(|blob| format!("{} ({} bytes)", blob.digest, blob.size))
                .collect();
            if !missing.is_empty() {
                return Err(RegistryError::OfflineBaseNotCached {
                    reference: reference.canonical(),
                    missing: format!("blobs {}", missing.join(", ")),
                });
            }
        }
        let config_what = format!("config {}", config_descriptor.digest);
        let config_bytes = self
            .get_config(target, &scopes, config_descriptor, cache)
            .await?;
        let config: serde_json::Value = parse(target, &config_what, &config_bytes)?;
        if !config.is_object() {
            return Err(invalid(
                target,
                &config_what,
                "it is not a JSON object".to_string(),
            ));
        }
        let diff_ids = diff_ids(&config).map_err(|reason| invalid(target, &config_what, reason))?;
        // Standards §0 rule 9: `rootfs.diff_ids` and the manifest's layers go in step.
        if diff_ids.len() != manifest.layers.len() {
            return Err(invalid(
                target,
                &config_what,
                format!(
                    "it lists {} `rootfs.diff_ids`, but manifest {} has {} layers",
                    diff_ids.len(),
                    document.digest,
                    manifest.layers.len()
                ),
            ));
        }
        let image_platform = config_platform(&config)
            .or_else(|| chosen.as_ref().and_then(|entry| entry.platform.clone()))
            .ok_or_else(|| {
                invalid(
                    target,
                    &config_what,
                    "it names no `os` and `architecture`".to_string(),
                )
            })?;
        if let Some(wanted) = platform
            && !platform_matches(&image_platform, wanted)
        {
            return Err(RegistryError::PlatformMismatch {
                reference: name,
                wanted: wanted.to_string(),
                actual: image_platform.to_string(),
            });
        }
        cache
            .insert_blob_bytes(&config_bytes)
            .map_err(|source| RegistryError::Cache {
                what: config_what.clone(),
                source: Box::new(source),
            })?;

        let mut missing: Vec<&Descriptor> = Vec::new();
        for layer in &manifest.layers {
            let cached = cache
                .lookup(EntryKind::Blob, &layer.digest, Some(layer.size))
                .is_some();
            if !cached && !missing.iter().any(|seen| seen.digest == layer.digest) {
                missing.push(layer);
            }
        }
        // Futures made up front, not in a stream `map` closure: keeps this future `Send`.
        let downloads: Vec<_> = missing
            .into_iter()
            .map(|layer| self.download_blob(target, &scopes, layer, cache))
            .collect();
        stream::iter(downloads)
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        // The config's diff_ids go into every image built on this base: check them
        // (on a blocking thread: it decompresses layers not checked before).
        let verified = {
            let (cache, name, layers, diff_ids) = (
                cache.clone(),
                name.clone(),
                manifest.layers.clone(),
                diff_ids.clone(),
            );
            tokio::task::spawn_blocking(move || {
                crate::oci::verify_diff_ids(&name, &layers, &diff_ids, &cache)
            })
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
        };
        verified.map_err(|source| RegistryError::InvalidBase {
            reference: name.clone(),
            source: Box::new(source),
        })?;

        if !offline {
            let mut held: Vec<Sha256Digest> = vec![config_descriptor.digest];
            held.extend(manifest.layers.iter().map(|layer| layer.digest));
            BlobLocations::record(cache, &reference.registry, &reference.repository, &held);
            for bytes in &received {
                keep_document(cache, bytes)?;
            }
            if let (None, Some(digest)) = (reference.digest, top_digest) {
                TagRecord::store(cache, reference, digest)?;
            }
        }

        let base = BaseImage {
            reference: name,
            manifest_digest: document.digest,
            config,
            layers: manifest.layers,
            diff_ids,
            platform: image_platform,
        };
        Ok((base, tag_resolution))
    }

    /// GET a manifest or index by tag or digest, verified against `expected` when given
    /// and against the registry's `Docker-Content-Digest`.
    async fn get_manifest(
        &self,
        target: Target<'_>,
        scopes: &[Scope],
        reference: &str,
        expected: Option<Sha256Digest>,
    ) -> Result<Document, RegistryError> {
        let url = self
            .url(
                target,
                &format!("v2/{}/manifests/{reference}", target.repository),
            )
            .await?;
        let what = format!("manifest `{reference}`");
        let call = Call::new(Method::GET, url, scopes.to_vec(), what.clone())
            .header(ACCEPT, &manifest_accept());
        let (call, what) = (&call, &what);
        let (bytes, content_type, reported) = self
            .with_retries(target, what, || async move {
                let response = self.send_once(target, call).await?;
                if response.status() == StatusCode::NOT_FOUND {
                    let status = response.status();
                    let detail = read_error_detail(response, self.options.timeout).await;
                    return Err(Failure::Fatal(RegistryError::ManifestNotFound {
                        registry: target.registry.to_string(),
                        repository: target.repository.to_string(),
                        reference: reference.to_string(),
                        status,
                        detail,
                    }));
                }
                let response = self
                    .expect(target, what, response, &[StatusCode::OK])
                    .await?;
                let header = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|value: &reqwest::header::HeaderValue| value.to_str().ok())
                        .map(|value| value.split(';').next().unwrap_or(value).trim().to_string())
                };
                let content_type = header(CONTENT_TYPE);
                let reported = header(reqwest::header::HeaderName::from_static(
                    "docker-content-digest",
                ));
                let bytes = self.read_document(target, what, response, None).await?;
                Ok((bytes, content_type, reported))
            })
            .await?;
        let digest = Sha256Digest::of(&bytes);
        let mismatch = |expected: Sha256Digest| RegistryError::DigestMismatch {
            image: target.name(),
            what: what.clone(),
            expected,
            actual: digest,
        };
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(mismatch(expected));
        }
        if let Some(reported) = reported.as_deref().and_then(|text| {
            text.starts_with("sha256:")
                .then(|| Sha256Digest::from_hex(text).ok())
                .flatten()
        }) && reported != digest
        {
            return Err(mismatch(reported));
        }
        Ok(Document {
            bytes,
            digest,
            content_type,
        })
    }

    /// Read a JSON document's body, up to [`MAX_DOCUMENT_SIZE`] bytes (or `expected`
    /// bytes, when a descriptor gives its size).
    async fn read_document(
        &self,
        target: Target<'_>,
        what: &str,
        response: reqwest::Response,
        expected: Option<u64>,
    ) -> Result<Vec<u8>, Failure> {
        let body = self.body(response);
        if let (Some(expected), Some(announced)) = (expected, body.content_length())
            && expected != announced
        {
            return Err(Failure::Fatal(size_mismatch(
                target,
                what,
                expected,
                ReceivedSize::Announced(announced),
            )));
        }
        let limit = expected.map_or(MAX_DOCUMENT_SIZE, |size| {
            ByteSize(size.min(MAX_DOCUMENT_SIZE.0))
        });
        match body.read_to_end(limit).await {
            Ok(bytes) => Ok(bytes),
            Err(ReadError::Body(error)) => Err(Failure::transient(error.to_string())),
            Err(ReadError::TooLarge { .. }) if expected.is_some_and(|size| size == limit.0) => {
                Err(Failure::Fatal(size_mismatch(
                    target,
                    what,
                    limit.0,
                    ReceivedSize::MoreThan(limit.0),
                )))
            }
            Err(ReadError::TooLarge { .. }) => {
                Err(Failure::Fatal(RegistryError::DocumentTooLarge {
                    registry: target.registry.to_string(),
                    repository: target.repository.to_string(),
                    what: what.to_string(),
                    limit: MAX_DOCUMENT_SIZE.0,
                }))
            }
        }
    }

    /// The config blob's bytes: from the cache when present, else downloaded and
    /// verified.
    async fn get_config(
        &self,
        target: Target<'_>,
        scopes: &[Scope],
        descriptor: &Descriptor,
        cache: &Cache,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("config {}", descriptor.digest);
        if descriptor.size > MAX_DOCUMENT_SIZE.0 {
            return Err(RegistryError::DocumentTooLarge {
                registry: target.registry.to_string(),
                repository: target.repository.to_string(),
                what,
                limit: MAX_DOCUMENT_SIZE.0,
            });
        }
        if let Some(path) = cache.lookup(EntryKind::Blob, &descriptor.digest, Some(descriptor.size))
            && let Ok(bytes) = fs_err::read(&path)
            && Sha256Digest::of(&bytes) == descriptor.digest
        {
            return Ok(bytes);
        }
        if self.options.offline {
            return Err(RegistryError::OfflineBaseNotCached {
                reference: format!("{}/{}", target.registry, target.repository),
                missing: format!("{what} (or its cache entry is damaged)"),
            });
        }
        let call = self.blob_call(target, scopes, descriptor, &what).await?;
        let (call, what_ref) = (&call, &what);
        let bytes = self
            .with_retries(target, what_ref, || async move {
                let response = self.send_once(target, call).await?;
                let response = self
                    .expect(target, what_ref, response, &[StatusCode::OK])
                    .await?;
                self.read_document(target, what_ref, response, Some(descriptor.size))
                    .await
            })
            .await?;
        if bytes.len() as u64 != descriptor.size {
            return Err(size_mismatch(
                target,
                &what,
                descriptor.size,
                ReceivedSize::Exactly(bytes.len() as u64),
            ));
        }
        let actual = Sha256Digest::of(&bytes);
        if actual != descriptor.digest {
            return Err(RegistryError::DigestMismatch {
                image: target.name(),
                what,
                expected: descriptor.digest,
                actual,
            });
        }
        Counters::add(&self.counters.blobs_downloaded, 1);
        Counters::add(&self.counters.bytes_downloaded, descriptor.size);
        Ok(bytes)
    }

    /// The GET request of a blob (no content decoding: the digest covers the bytes as
    /// stored).
    async fn blob_call(
        &self,
        target: Target<'_>,
        scopes: &[Scope],
        descriptor: &Descriptor,
        what: &str,
    ) -> Result<Call, RegistryError> {
        let url = self
            .url(
                target,
                &format!("v2/{}/blobs/{}", target.repository, descriptor.digest.oci()),
            )
            .await?;
        Ok(
            Call::new(Method::GET, url, scopes.to_vec(), what.to_string())
                .header(ACCEPT_ENCODING, "identity"),
        )
    }

    /// Download a blob into the cache, verified by digest and size; a broken transfer
    /// starts over.
    async fn download_blob(
        &self,
        target: Target<'_>,
        scopes: &[Scope],
        descriptor: &Descriptor,
        cache: &Cache,
    ) -> Result<(), RegistryError> {
        let what = format!("download of blob {}", descriptor.digest);
        let call = self.blob_call(target, scopes, descriptor, &what).await?;
        self.with_retries(target, &what, || {
            self.download_blob_once(target, &call, descriptor, cache)
        })
        .await?;
        Counters::add(&self.counters.blobs_downloaded, 1);
        Counters::add(&self.counters.bytes_downloaded, descriptor.size);
        Ok(())
    }

    async fn download_blob_once(
        &self,
        target: Target<'_>,
        call: &Call,
        descriptor: &Descriptor,
        cache: &Cache,
    ) -> Result<(), Failure> {
        let response = self.send_once(target, call).await?;
        let response = self
            .expect(target, &call.what, response, &[StatusCode::OK])
            .await?;
        let what = format!("blob {}", descriptor.digest);
        let wrong_size = |actual: ReceivedSize| {
            Failure::Fatal(size_mismatch(target, &what, descriptor.size, actual))
        };
        let mismatch = |actual: Sha256Digest| {
            Failure::Fatal(RegistryError::DigestMismatch {
                image: target.name(),
                what: what.clone(),
                expected: descriptor.digest,
                actual,
            })
        };
        let mut body = self.body(response);
        if let Some(announced) = body.content_length()
            && announced != descriptor.size
        {
            return Err(wrong_size(ReceivedSize::Announced(announced)));
        }
        let cache_error = |source: CacheError| {
            Failure::Fatal(RegistryError::Cache {
                what: format!("blob {}", descriptor.digest),
                source: Box::new(source),
            })
        };
        let mut pending = cache.begin(EntryKind::Blob).map_err(cache_error)?;
        let temp_path = pending.temp_path();
        let mut received: u64 = 0;
        while let Some(chunk) = body
            .chunk()
            .await
            .map_err(|error| Failure::transient(error.to_string()))?
        {
            received += chunk.len() as u64;
            if received > descriptor.size {
                // A body larger than its descriptor can never verify: stop early.
                return Err(wrong_size(ReceivedSize::MoreThan(descriptor.size)));
            }
            pending.write_all(&chunk).map_err(|source| {
                cache_error(CacheError::Io {
                    path: temp_path.clone(),
                    source,
                })
            })?;
        }
        if received != descriptor.size {
            return Err(wrong_size(ReceivedSize::Exactly(received)));
        }
        let expected = (descriptor.digest, descriptor.size);
        let committed = tokio::task::spawn_blocking(move || pending.commit(Some(expected)))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        match committed {
            Ok(_) => Ok(()),
            Err(CacheError::Mismatch { actual, .. }) => Err(mismatch(actual)),
            Err(error) => Err(cache_error(error)),
        }
    }
}

/// Parse JSON, or say which document is invalid.
fn parse<T: serde::de::DeserializeOwned>(
    target: Target<'_>,
    what: &str,
    bytes: &[u8],
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|error| {
        invalid(
            target,
            what,
            format!("it is not valid JSON of its kind ({error})"),
        )
    })
}

fn size_mismatch(
    target: Target<'_>,
    what: &str,
    expected: u64,
    actual: ReceivedSize,
) -> RegistryError {
    RegistryError::SizeMismatch {
        image: target.name(),
        what: what.to_string(),
        expected,
        actual,
    }
}

fn invalid(target: Target<'_>, what: &str, reason: String) -> RegistryError {
    RegistryError::InvalidDocument {
        registry: target.registry.to_string(),
        repository: target.repository.to_string(),
        what: what.to_string(),
        reason,
    }
}

/// Pick the index entry for `platform` (see [`crate::oci::select::choose_platform`]).
fn choose_platform(
    name: &str,
    entries: &[Descriptor],
    platform: Option<&Platform>,
) -> Result<Descriptor, RegistryError> {
    select::choose_platform(entries, platform).map_err(|choice| match choice {
        PlatformChoice::NotFound(available) => RegistryError::PlatformNotFound {
            reference: name.to_string(),
            platform: platform.map(ToString::to_string).unwrap_or_default(),
            available,
        },
        PlatformChoice::Empty => RegistryError::PlatformRequired {
            reference: name.to_string(),
            available: Vec::new(),
        },
        PlatformChoice::Required(available) => RegistryError::PlatformRequired {
            reference: name.to_string(),
            available,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, architecture: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            platform: Some(Platform {
                os: os.into(),
                architecture: architecture.into(),
                variant: variant.map(str::to_string),
            }),
            ..Descriptor::of_bytes(
                media_type::OCI_MANIFEST,
                format!("{os}{architecture}").as_bytes(),
            )
        }
    }

    #[test]
    fn ok_platform_choice_skips_attestations() {
        let entries = [
            entry("linux", "amd64", None),
            entry("linux", "arm64", Some("v8")),
            entry("unknown", "unknown", None),
        ];
        let arm64 = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        };
        let chosen = choose_platform("r", &entries, Some(&arm64)).unwrap();
        assert_eq!(chosen.digest, entries[1].digest);
        let error = choose_platform("r", &entries, None).unwrap_err();
        assert!(
            error.to_string().contains("linux/amd64, linux/arm64/v8"),
            "{error}"
        );
        let s390x = Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        let error = choose_platform("r", &entries, Some(&s390x)).unwrap_err();
        assert!(matches!(error, RegistryError::PlatformNotFound { .. }));
        let only = [
            entry("linux", "amd64", None),
            entry("unknown", "unknown", None),
        ];
        assert_eq!(
            choose_platform("r", &only, None).unwrap().digest,
            only[0].digest
        );
    }

    #[test]
    fn err_bad_diff_ids() {
        let config = serde_json::json!({"rootfs": {"diff_ids": ["md5:00"]}});
        assert!(
            diff_ids(&config)
                .unwrap_err()
                .contains("not a sha256 digest")
        );
        let config = serde_json::json!({"rootfs": {}});
        assert!(diff_ids(&config).is_err());
    }
}
