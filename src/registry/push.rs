//! Pushing images ([`Registry::push`]) in the order the distribution spec asks for
//! (standards §0 rule 12, §6.2): every blob first, then each platform manifest by
//! digest, then the index (if any) by digest, then the tag.
//!
//! Each blob, at most [`RegistryOptions::jobs`] at once:
//! 1. `HEAD`: present, so skipped;
//! 2. else, when the cache knows another repository of the same registry holding it,
//!    `POST ?mount=<digest>&from=<repo>` (with pull scope on that repository): 201 means
//!    mounted, 202 opens an ordinary upload session;
//! 3. else `POST` opens a session, and the blob goes up in one `PUT ?digest=` when it
//!    is at most [`RegistryOptions::chunk_size`] bytes, or in `PATCH` chunks with
//!    `Content-Range: <start>-<end>` and a closing `PUT ?digest=` when larger.
//!
//! Blob bytes are read from the cache (configs from memory) and checked against their
//! digest before they are sent, so the bytes sent are the bytes hashed; the registry's
//! `Docker-Content-Digest` answers are checked against envbuild's digests.
//!
//! Faults: a failed chunk is followed by `GET <location>` (upload status); when the
//! registry still holds the session, the upload goes on from the `Range` it reports,
//! otherwise (distribution 2.8 drops a session whose state went stale) the blob starts
//! over from step 1, so a blob that did arrive is found by `HEAD`. Each blob gets
//! [`RegistryOptions::retries`] fresh starts; manifests are retried in place (a `PUT`
//! of the same bytes is idempotent). Re-running a failed push sends only what is
//! missing.
//!
//! [`RegistryOptions::jobs`]: super::RegistryOptions::jobs
//! [`RegistryOptions::chunk_size`]: super::RegistryOptions::chunk_size
//! [`RegistryOptions::retries`]: super::RegistryOptions::retries

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{CONTENT_TYPE, HeaderName, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::Registry;
use super::auth::Scope;
use super::client::{Call, Failure, Target, read_error_detail};
use super::error::{RegistryError, error_detail, has_error_code};
use super::locations::BlobLocations;
use super::reference::RegistryReference;
use crate::cache::{Cache, EntryKind};
use crate::digest::{Hasher, Sha256Digest};
use crate::oci::descriptor::media_type;
use crate::oci::{Image, top_level};

/// Buffer size for hashing cache files.
const HASH_BUFFER: usize = 1024 * 1024;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// Digest of what the tag points at: the manifest for one image, the index for
    /// several.
    pub digest: Sha256Digest,
    /// Blob bytes sent to the registry (every attempt counts; 0 when it had them all).
    pub bytes_uploaded: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had in the repository.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository of the registry.
    pub blobs_mounted: usize,
}

/// Where a blob's bytes are.
#[derive(Debug)]
enum Source {
    /// In memory (configs).
    Memory(Vec<u8>),
    /// A cache file (layers).
    File(PathBuf),
}

/// One blob to push.
#[derive(Debug)]
struct Blob {
    digest: Sha256Digest,
    size: u64,
    source: Source,
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Skipped,
    Mounted,
    Uploaded,
}

/// The state of one push, shared by its blob tasks.
struct Push<'a> {
    target: Target<'a>,
    scopes: Vec<Scope>,
    locations: BlobLocations,
    bytes_uploaded: AtomicU64,
}

impl Registry {
    /// Push `images` (one per platform) to `destination`: the manifest for one image, an
    /// image index over all of them (sorted by platform, see [`top_level`]) for several.
    /// Tagged with the destination's tag (`latest` when it names neither tag nor
    /// digest); a destination naming only a digest is not tagged, and must match.
    ///
    /// Every layer must be in `cache`. On failure, what was uploaded stays in the
    /// registry, so running the push again finishes it.
    pub async fn push(
        &self,
        images: &[Image],
        destination: &RegistryReference,
        cache: &Cache,
    ) -> Result<PushReport, RegistryError> {
        let name = destination.to_string();
        let top = top_level(images, &name).map_err(|source| RegistryError::Image {
            destination: name.clone(),
            source: Box::new(source),
        })?;
        if let Some(given) = destination.digest
            && given != top.descriptor.digest
        {
            return Err(RegistryError::DestinationDigestMismatch {
                destination: name,
                given,
                actual: top.descriptor.digest,
            });
        }
        let target = Target {
            registry: &destination.registry,
            repository: &destination.repository,
        };

        let mut blobs: BTreeMap<Sha256Digest, Blob> = BTreeMap::new();
        for image in &top.images {
            blobs.entry(image.config_digest).or_insert_with(|| Blob {
                digest: image.config_digest,
                size: image.config.len() as u64,
                source: Source::Memory(image.config.clone()),
            });
            for layer in &image.layers {
                if blobs.contains_key(&layer.digest) {
                    continue;
                }
                let path = cache
                    .lookup(EntryKind::Blob, &layer.digest, Some(layer.size))
                    .ok_or_else(|| RegistryError::NotInCache {
                        digest: layer.digest,
                        size: layer.size,
                        path: cache.entry_path(EntryKind::Blob, &layer.digest),
                    })?;
                blobs.insert(
                    layer.digest,
                    Blob {
                        digest: layer.digest,
                        size: layer.size,
                        source: Source::File(path),
                    },
                );
            }
        }

        let push = Push {
            target,
            scopes: vec![Scope::PullPush(destination.repository.clone())],
            locations: BlobLocations::load(cache, &destination.registry),
            bytes_uploaded: AtomicU64::new(0),
        };
        // The futures are made up front (not by a stream `map` closure), which keeps the
        // returned future `Send` (rustc cannot prove it through the closure's lifetimes).
        let transfers: Vec<_> = blobs
            .values()
            .map(|blob| self.push_blob(&push, blob))
            .collect();
        let outcomes: Vec<Outcome> = stream::iter(transfers)
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect()
            .await?;
        let digests: Vec<Sha256Digest> = blobs.keys().copied().collect();
        BlobLocations::record(
            cache,
            &destination.registry,
            &destination.repository,
            &digests,
        );

        for image in &top.images {
            self.put_manifest(
                &push,
                &image.manifest_digest.oci(),
                media_type::OCI_MANIFEST,
                &image.manifest,
            )
            .await?;
        }
        let top_bytes: &[u8] = match &top.index {
            Some(index) => {
                self.put_manifest(
                    &push,
                    &top.descriptor.digest.oci(),
                    media_type::OCI_INDEX,
                    index,
                )
                .await?;
                index
            }
            None => &top.images[0].manifest,
        };
        if destination.tag.is_some() || destination.digest.is_none() {
            self.put_manifest(
                &push,
                destination.tag_or_latest(),
                &top.descriptor.media_type,
                top_bytes,
            )
            .await?;
        }

        let count = |wanted: Outcome| {
            outcomes
                .iter()
                .filter(|outcome| **outcome == wanted)
                .count()
        };
        Ok(PushReport {
            digest: top.descriptor.digest,
            bytes_uploaded: push.bytes_uploaded.load(Ordering::Relaxed),
            blobs_uploaded: count(Outcome::Uploaded),
            blobs_skipped: count(Outcome::Skipped),
            blobs_mounted: count(Outcome::Mounted),
        })
    }

    /// `PUT` a manifest or index under `reference` (a digest or the tag), with its media
    /// type as `Content-Type`, and check the digest the registry reports.
    async fn put_manifest(
        &self,
        push: &Push<'_>,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let target = push.target;
        let digest = Sha256Digest::of(bytes);
        let what = format!("manifest `{reference}` ({digest})");
        let url = self
            .url(
                target,
                &format!("v2/{}/manifests/{reference}", target.repository),
            )
            .await?;
        let call = Call::new(Method::PUT, url, push.scopes.clone(), what.clone())
            .header(CONTENT_TYPE, media_type)
            .body(bytes.to_vec());
        let response = self.send(target, &call).await?;
        let response = self
            .expect(
                target,
                &what,
                response,
                &[StatusCode::CREATED, StatusCode::OK],
            )
            .await?;
        check_reported_digest(target, &what, &response, digest)?;
        Ok(())
    }

    /// Push one blob: skip, mount or upload it, starting over on transient failures.
    async fn push_blob(&self, push: &Push<'_>, blob: &Blob) -> Result<Outcome, RegistryError> {
        let target = push.target;
        let what = format!("upload of blob {}", blob.digest);
        // The bytes are checked once, before anything is sent.
        let memory = match &blob.source {
            Source::Memory(bytes) => {
                check_bytes(&PathBuf::from("memory"), blob, bytes)?;
                None
            }
            Source::File(path) if blob.size <= self.chunk_size() => {
                let bytes = read_file(
                    path.clone(),
                    0,
                    usize::try_from(blob.size).unwrap_or(usize::MAX),
                )
                .await
                .map_err(|source| cache_io(blob, path, source))?;
                check_bytes(path, blob, &bytes)?;
                Some(bytes)
            }
            Source::File(path) => {
                let (digest, size) = hash_file(path.clone())
                    .await
                    .map_err(|source| cache_io(blob, path, source))?;
                if digest != blob.digest || size != blob.size {
                    return Err(RegistryError::CorruptCacheEntry {
                        path: path.clone(),
                        expected: blob.digest,
                        actual: digest,
                        expected_size: blob.size,
                        actual_size: size,
                    });
                }
                None
            }
        };
        let bytes = match (&blob.source, &memory) {
            (Source::Memory(bytes), _) | (_, Some(bytes)) => Some(bytes.as_slice()),
            _ => None,
        };
        let tries = Tries::default();
        let tries = &tries;
        self.with_retries(target, &what, || async move {
            self.push_blob_once(push, blob, bytes, tries).await
        })
        .await
    }

    fn chunk_size(&self) -> u64 {
        self.options.chunk_size.max(1)
    }

    /// One try at a blob: `HEAD`, then mount or upload.
    async fn push_blob_once(
        &self,
        push: &Push<'_>,
        blob: &Blob,
        bytes: Option<&[u8]>,
        tries: &Tries,
    ) -> Result<Outcome, Failure> {
        let target = push.target;
        let blob_url = self
            .url(
                target,
                &format!("v2/{}/blobs/{}", target.repository, blob.digest.oci()),
            )
            .await?;
        let head = Call::new(
            Method::HEAD,
            blob_url,
            push.scopes.clone(),
            format!("check for blob {}", blob.digest),
        );
        // Steps that change nothing, or only open a session, are retried in place.
        let response = self.send(target, &head).await?;
        match response.status() {
            StatusCode::OK => {
                // Found: either it was there, or an earlier try of this push got it up
                // even though the answer was lost.
                return Ok(if tries.sent.load(Ordering::Relaxed) > 0 {
                    Outcome::Uploaded
                } else if tries.mount_sent.load(Ordering::Relaxed) {
                    Outcome::Mounted
                } else {
                    Outcome::Skipped
                });
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(self.unexpected(target, &head.what, response).await.into()),
        }

        let mut location = None;
        if let Some(source) = push
            .locations
            .sources(&blob.digest, target.repository)
            .first()
        {
            tries.mount_sent.store(true, Ordering::Relaxed);
            match self.mount(push, blob, source).await? {
                Mount::Mounted => return Ok(Outcome::Mounted),
                Mount::Session(session) => location = Some(session),
                Mount::Refused => {}
            }
        }
        let session = match location {
            Some(session) => session,
            None => self.start_upload(push, blob).await?,
        };
        match bytes {
            Some(bytes) => {
                self.upload_monolithic(push, blob, session.url, bytes, &tries.sent)
                    .await?
            }
            None => {
                self.upload_chunked(push, blob, session, &tries.sent)
                    .await?
            }
        }
        Ok(Outcome::Uploaded)
    }

    /// `POST ?mount=&from=`: mounted (201), or an upload session to use (202).
    async fn mount(&self, push: &Push<'_>, blob: &Blob, source: &str) -> Result<Mount, Failure> {
        let target = push.target;
        let mut url = self
            .url(target, &format!("v2/{}/blobs/uploads/", target.repository))
            .await?;
        url.query_pairs_mut()
            .append_pair("mount", &blob.digest.oci())
            .append_pair("from", source);
        let what = format!("mount of blob {} from `{source}`", blob.digest);
        // Standards §6.4: the token needs push on the destination and pull on the source.
        let scopes = vec![
            Scope::PullPush(target.repository.to_string()),
            Scope::Pull(source.to_string()),
        ];
        let call = Call::new(Method::POST, url.clone(), scopes, what.clone());
        // A mount is an optimisation: when the credentials may not pull from the source
        // (or the registry refuses mounts), the blob is uploaded instead.
        let response = match self.send(target, &call).await {
            Ok(response) => response,
            Err(error @ (RegistryError::Denied { .. } | RegistryError::Authentication { .. })) => {
                tracing::info!("{what} refused, uploading instead: {error}");
                return Ok(Mount::Refused);
            }
            Err(error) => return Err(error.into()),
        };
        match response.status() {
            StatusCode::CREATED => {
                check_reported_digest(target, &what, &response, blob.digest)?;
                Ok(Mount::Mounted)
            }
            StatusCode::ACCEPTED => Ok(Mount::Session(location(target, blob, &url, &response)?)),
            _ => {
                let error = self.unexpected(target, &what, response).await;
                tracing::info!("{what} refused, uploading instead: {error}");
                Ok(Mount::Refused)
            }
        }
    }

    /// `POST` a new upload session and return its location.
    async fn start_upload(&self, push: &Push<'_>, blob: &Blob) -> Result<Session, Failure> {
        let target = push.target;
        let url = self
            .url(target, &format!("v2/{}/blobs/uploads/", target.repository))
            .await?;
        let what = format!("start of the upload of blob {}", blob.digest);
        let call = Call::new(Method::POST, url.clone(), push.scopes.clone(), what.clone());
        let response = self.send(target, &call).await?;
        let response = self
            .expect(target, &what, response, &[StatusCode::ACCEPTED])
            .await?;
        Ok(location(target, blob, &url, &response)?)
    }

    /// One `PUT <location>?digest=` with the whole blob.
    async fn upload_monolithic(
        &self,
        push: &Push<'_>,
        blob: &Blob,
        location: Url,
        bytes: &[u8],
        sent: &AtomicU64,
    ) -> Result<(), Failure> {
        let target = push.target;
        let what = format!("upload of blob {}", blob.digest);
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", &blob.digest.oci());
        let call = Call::new(Method::PUT, url, push.scopes.clone(), what.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec());
        self.count_sent(push, sent, bytes.len() as u64);
        let response = self.send_once(target, &call).await?;
        self.finish_upload(target, blob, &what, response).await
    }

    /// `PATCH` chunks, then `PUT <location>?digest=`. A failed chunk asks the registry
    /// where the upload stands and goes on from there; a lost session starts the blob
    /// over (a transient failure for [`Registry::with_retries`]).
    async fn upload_chunked(
        &self,
        push: &Push<'_>,
        blob: &Blob,
        session: Session,
        sent: &AtomicU64,
    ) -> Result<(), Failure> {
        let target = push.target;
        let Source::File(path) = &blob.source else {
            unreachable!("blobs in memory go up in one request")
        };
        let what = format!("upload of blob {}", blob.digest);
        // The registry may ask for larger chunks (`OCI-Chunk-Min-Length`).
        let chunk_size = self.chunk_size().max(session.min_chunk);
        let mut location = session.url;
        let mut offset: u64 = 0;
        let mut recoveries: u32 = 0;
        loop {
            let problem = if offset < blob.size {
                let length = chunk_size.min(blob.size - offset);
                let bytes = read_file(
                    path.clone(),
                    offset,
                    usize::try_from(length).unwrap_or(usize::MAX),
                )
                .await
                .map_err(|source| Failure::Fatal(cache_io(blob, path, source)))?;
                let call = Call::new(
                    Method::PATCH,
                    location.clone(),
                    push.scopes.clone(),
                    what.clone(),
                )
                .header(CONTENT_TYPE, "application/octet-stream")
                // Standards §0 rule 12: inclusive, no `bytes=` prefix.
                .header(
                    HeaderName::from_static("content-range"),
                    &format!("{offset}-{}", offset + length - 1),
                )
                .body(bytes);
                self.count_sent(push, sent, length);
                match self.send_once(target, &call).await {
                    Ok(response) if response.status() == StatusCode::ACCEPTED => {
                        let next = location_of(&location, &response);
                        match (next, range_end(&response)) {
                            (Some(next), Some(end)) if end + 1 == offset + length => {
                                location = next;
                                offset = end + 1;
                                continue;
                            }
                            (Some(next), None) => {
                                location = next;
                                offset += length;
                                continue;
                            }
                            (_, end) => format!(
                                "the registry acknowledged the chunk at {offset} with range end {end:?} and no usable location"
                            ),
                        }
                    }
                    Ok(response) => {
                        let status = response.status();
                        let detail = read_error_detail(response, self.options.timeout).await;
                        format!("chunk at {offset}: HTTP {status}{detail}")
                    }
                    Err(Failure::Transient { cause, .. }) => {
                        format!("chunk at {offset}: {cause}")
                    }
                    Err(fatal) => return Err(fatal),
                }
            } else {
                let mut url = location.clone();
                url.query_pairs_mut()
                    .append_pair("digest", &blob.digest.oci());
                let call = Call::new(Method::PUT, url, push.scopes.clone(), what.clone());
                match self.send_once(target, &call).await {
                    Ok(response) => return self.finish_upload(target, blob, &what, response).await,
                    Err(Failure::Transient { cause, .. }) => format!("closing the upload: {cause}"),
                    Err(fatal) => return Err(fatal),
                }
            };
            recoveries += 1;
            if recoveries > self.options.retries {
                return Err(Failure::Transient {
                    cause: problem,
                    retry_after: None,
                });
            }
            tracing::warn!(
                registry = target.registry,
                repository = target.repository,
                "{what}: {problem}; asking the registry where the upload stands"
            );
            tokio::time::sleep(self.backoff(recoveries - 1)).await;
            match self.upload_status(push, blob, &location).await? {
                Some((next, end)) => {
                    location = next;
                    offset = end;
                }
                None => {
                    // Gone: dropped as stale, or (after the closing request) committed;
                    // starting over begins with `HEAD`, which tells.
                    return Err(Failure::Transient {
                        cause: format!("{problem}; the registry no longer has the upload session"),
                        retry_after: None,
                    });
                }
            }
        }
    }

    /// `GET <location>`: where a session stands, as (latest location, next offset), or
    /// `None` when the registry no longer has it.
    async fn upload_status(
        &self,
        push: &Push<'_>,
        blob: &Blob,
        location: &Url,
    ) -> Result<Option<(Url, u64)>, Failure> {
        let target = push.target;
        let what = format!("status of the upload of blob {}", blob.digest);
        let call = Call::new(Method::GET, location.clone(), push.scopes.clone(), what);
        let response = self.send(target, &call).await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let next = location_of(location, &response).unwrap_or_else(|| location.clone());
        // `Range: 0-<end>` is inclusive; distribution also says `0-0` for an empty
        // session, which then resumes at 0 (a wrong guess fails the digest check, and the
        // blob starts over).
        let offset = match range_end(&response) {
            Some(0) | None => 0,
            Some(end) => end + 1,
        };
        Ok(Some((next, offset)))
    }

    /// Judge the answer to the closing `PUT`: 201 with our digest is done; a lost
    /// session or a digest the registry computed differently starts the blob over.
    async fn finish_upload(
        &self,
        target: Target<'_>,
        blob: &Blob,
        what: &str,
        response: Response,
    ) -> Result<(), Failure> {
        let status = response.status();
        if status == StatusCode::CREATED {
            check_reported_digest(target, what, &response, blob.digest)?;
            return Ok(());
        }
        let body = super::client::read_limited(response, 64 * 1024, self.options.timeout).await;
        let restart = status == StatusCode::NOT_FOUND
            || status == StatusCode::RANGE_NOT_SATISFIABLE
            || [
                "BLOB_UPLOAD_UNKNOWN",
                "BLOB_UPLOAD_INVALID",
                "DIGEST_INVALID",
                "SIZE_INVALID",
            ]
            .iter()
            .any(|code| has_error_code(&body, code));
        let detail = error_detail(&body);
        if restart {
            return Err(Failure::Transient {
                cause: format!("closing the upload: HTTP {status}{detail}"),
                retry_after: None,
            });
        }
        Err(Failure::Fatal(RegistryError::UnexpectedStatus {
            registry: target.registry.to_string(),
            repository: target.repository.to_string(),
            what: what.to_string(),
            status,
            detail,
        }))
    }

    fn count_sent(&self, push: &Push<'_>, sent: &AtomicU64, bytes: u64) {
        sent.fetch_add(bytes, Ordering::Relaxed);
        push.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What earlier tries at one blob sent, to tell what a later `HEAD` that finds the
/// blob means.
#[derive(Debug, Default)]
struct Tries {
    /// Blob bytes sent.
    sent: AtomicU64,
    /// Whether a mount request was sent.
    mount_sent: std::sync::atomic::AtomicBool,
}

/// The outcome of a mount request.
enum Mount {
    /// The blob is now in the repository.
    Mounted,
    /// Not mounted; upload through this session.
    Session(Session),
    /// Not mounted, no session: upload as usual.
    Refused,
}

/// The `Location` of an answer, resolved against the request URL (it may be relative,
/// and may carry query parameters that must be kept).
fn location_of(request: &Url, response: &Response) -> Option<Url> {
    let text = response.headers().get(LOCATION)?.to_str().ok()?;
    request.join(text).ok()
}

/// An upload session the registry opened.
struct Session {
    /// Where to send the blob (the latest `Location`).
    url: Url,
    /// The registry's `OCI-Chunk-Min-Length`, or 0.
    min_chunk: u64,
}

/// The session a `POST` answer opened, or an error naming the blob.
fn location(
    target: Target<'_>,
    blob: &Blob,
    request: &Url,
    response: &Response,
) -> Result<Session, RegistryError> {
    let min_chunk = response
        .headers()
        .get("oci-chunk-min-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let url =
        location_of(request, response).ok_or_else(|| RegistryError::InvalidUploadLocation {
            registry: target.registry.to_string(),
            repository: target.repository.to_string(),
            digest: blob.digest,
            reason: if response.headers().contains_key(LOCATION) {
                "its `Location` header is not a URL".to_string()
            } else {
                "the answer has no `Location` header".to_string()
            },
        })?;
    Ok(Session { url, min_chunk })
}

/// The inclusive end of a `Range: 0-<end>` header (`bytes=` tolerated).
fn range_end(response: &Response) -> Option<u64> {
    let text = response.headers().get("range")?.to_str().ok()?;
    parse_range_end(text)
}

fn parse_range_end(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix("bytes=").unwrap_or(text);
    let (start, end) = text.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse().ok()
}

/// Check a `Docker-Content-Digest` answer, when there is one, against `expected`.
fn check_reported_digest(
    target: Target<'_>,
    what: &str,
    response: &Response,
    expected: Sha256Digest,
) -> Result<(), RegistryError> {
    let Some(reported) = response
        .headers()
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    if Sha256Digest::from_hex(reported).ok() == Some(expected) && reported.starts_with("sha256:") {
        return Ok(());
    }
    Err(RegistryError::PushedDigestMismatch {
        image: target.name(),
        what: what.to_string(),
        expected,
        reported: reported.to_string(),
    })
}

/// Check bytes about to be sent against the blob's digest and size.
fn check_bytes(path: &std::path::Path, blob: &Blob, bytes: &[u8]) -> Result<(), RegistryError> {
    let actual = Sha256Digest::of(bytes);
    if actual == blob.digest && bytes.len() as u64 == blob.size {
        return Ok(());
    }
    Err(RegistryError::CorruptCacheEntry {
        path: path.to_path_buf(),
        expected: blob.digest,
        actual,
        expected_size: blob.size,
        actual_size: bytes.len() as u64,
    })
}

fn cache_io(blob: &Blob, path: &std::path::Path, source: std::io::Error) -> RegistryError {
    RegistryError::Cache {
        what: format!("blob {}", blob.digest),
        source: Box::new(crate::cache::CacheError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Read `length` bytes of `path` from `offset` (fewer at the end of the file).
async fn read_file(path: PathBuf, offset: u64, length: usize) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut file = fs_err::File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::with_capacity(length);
        file.take(length as u64).read_to_end(&mut bytes)?;
        Ok(bytes)
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// SHA-256 and size of a file.
async fn hash_file(path: PathBuf) -> std::io::Result<(Sha256Digest, u64)> {
    tokio::task::spawn_blocking(move || {
        let mut file = fs_err::File::open(&path)?;
        let mut hasher = Hasher::new();
        let mut buffer = vec![0u8; HASH_BUFFER];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        let length = hasher.length();
        Ok((hasher.finish(), length))
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_range_headers() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-5"), Some(5));
        assert_eq!(parse_range_end("0-0"), Some(0));
        assert_eq!(parse_range_end("5-9"), None);
        assert_eq!(parse_range_end("junk"), None);
    }

    #[test]
    fn ok_digest_query_is_appended() {
        let digest = Sha256Digest::of(b"x");
        let mut url = Url::parse("http://r.test/v2/a/blobs/uploads/u?_state=abc").unwrap();
        url.query_pairs_mut().append_pair("digest", &digest.oci());
        assert_eq!(
            url.as_str(),
            format!(
                "http://r.test/v2/a/blobs/uploads/u?_state=abc&digest=sha256%3A{}",
                digest.hex()
            )
        );
        let mut url = Url::parse("http://r.test/v2/a/blobs/uploads/u").unwrap();
        url.query_pairs_mut().append_pair("digest", &digest.oci());
        assert!(
            url.as_str()
                .ends_with(&format!("/u?digest=sha256%3A{}", digest.hex()))
        );
    }
}
