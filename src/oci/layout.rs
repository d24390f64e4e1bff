//! Reading a base image from an OCI image layout (image-spec `image-layout.md`): a
//! folder (`oci:`) or a tar of one (`oci-archive:`).
//!
//! The image is found through `index.json`: by tag (`org.opencontainers.image.ref.name`)
//! or, with no tag, its only entry. Indexes (nested ones too) are resolved to the
//! manifest for the wanted platform. Every blob read is checked against its digest and
//! size, and the config and layers end up in the cache, where later stages find them
//! with [`Cache::lookup`]. An archive is streamed once, straight into the cache.
//!
//! Each layer's uncompressed bytes are checked against the diff_id the config lists for
//! it ([`verify_diff_ids`], for registry bases too), since the config's `diff_ids` are
//! copied into every image built on the base. The diff_id a layer really has is kept in
//! the cache (record kind `diff-ids`, keyed by the layer's digest), so each layer is
//! decompressed once per cache, not once per build. zstd layers are not checked
//! (envbuild has no zstd decoder; a warning says so).

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::archive;
use super::descriptor::{Descriptor, media_type, platform_matches};
use super::error::{OciError, io_error};
use super::index::ImageIndex;
use super::manifest::ImageManifest;
use super::reference::ImageReference;
use super::select::{PlatformChoice, choose_platform, config_platform, diff_ids};
use crate::cache::{Cache, EntryKind};
use crate::digest::{HashingReader, Sha256Digest};
use crate::platform::Platform;

/// Largest JSON document (index, manifest, config) read into memory. Registries must
/// accept manifests of 4 MB; configs with long histories are rarely over 1 MB.
pub(crate) const MAX_JSON_SIZE: u64 = 32 * 1024 * 1024;

/// The only layout version envbuild writes, and the major version it reads.
pub(crate) const LAYOUT_VERSION: &str = "1.0.0";

/// A base image, read and verified, with its config and layers in the cache.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The reference it was read from, as given (e.g. `oci:/images/python:3.12`).
    pub reference: String,
    /// Digest of the chosen platform's manifest.
    pub manifest_digest: Sha256Digest,
    /// The image config, as JSON; unknown fields are kept so they can be re-emitted.
    pub config: serde_json::Value,
    /// The layer descriptors of the manifest, as they are (base first).
    pub layers: Vec<Descriptor>,
    /// `rootfs.diff_ids` of the config, one per layer.
    pub diff_ids: Vec<Sha256Digest>,
    /// The image's platform, from its config.
    pub platform: Platform,
}

/// Read the base image `reference` for `platform` (or its only platform when `None`),
/// verify every blob read, and copy its config and layer blobs into `cache`.
pub fn read_base(
    reference: &ImageReference,
    platform: Option<&Platform>,
    cache: &Cache,
) -> Result<BaseImage, OciError> {
    let name = reference.to_string();
    let (store, index_bytes) = match reference {
        ImageReference::OciLayout { path, .. } => {
            let index = open_folder(&name, path)?;
            (BlobStore::Folder(path.join("blobs").join("sha256")), index)
        }
        ImageReference::OciArchive { path, .. } => {
            let imported = archive::import(path, &name, cache)?;
            let index = imported.check_layout(&name)?;
            (BlobStore::Cache, index)
        }
        ImageReference::DockerArchive { .. } | ImageReference::Registry(_) => {
            return Err(OciError::UnsupportedBaseTransport {
                reference: name,
                transport: reference.transport(),
            });
        }
    };
    let reader = Reader { name, store, cache };
    let index: ImageIndex = reader.parse_json(&index_bytes, "`index.json`")?;
    let descriptor = reader.choose_entry(&index.manifests, reference.tag(), platform)?;
    let (manifest_descriptor, manifest) = reader.resolve(&descriptor, platform)?;
    reader.load(&manifest_descriptor, manifest, platform)
}

/// Check that `path` is a layout folder and return its `index.json`.
fn open_folder(name: &str, path: &Path) -> Result<Vec<u8>, OciError> {
    if !path.exists() {
        return Err(OciError::MissingImage {
            reference: name.to_string(),
            path: path.to_path_buf(),
        });
    }
    if !path.is_dir() {
        return Err(OciError::NotALayout {
            reference: name.to_string(),
            reason: "it is a file, not a folder; use `oci-archive:` for a tar file".to_string(),
        });
    }
    let layout = read_small_file(name, &path.join("oci-layout"))?;
    check_layout_version(name, layout.as_deref())?;
    read_small_file(name, &path.join("index.json"))?.ok_or_else(|| OciError::NotALayout {
        reference: name.to_string(),
        reason: "it has no `index.json` file".to_string(),
    })
}

/// Read a small file of a layout; `None` if it does not exist.
fn read_small_file(name: &str, path: &Path) -> Result<Option<Vec<u8>>, OciError> {
    let file = match fs_err::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path)(error)),
    };
    read_limited(name, &path.display().to_string(), file, path).map(Some)
}

/// Read at most [`MAX_JSON_SIZE`] bytes.
pub(crate) fn read_limited(
    name: &str,
    what: &str,
    reader: impl Read,
    path: &Path,
) -> Result<Vec<u8>, OciError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_JSON_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() as u64 > MAX_JSON_SIZE {
        return Err(OciError::JsonTooLarge {
            reference: name.to_string(),
            what: what.to_string(),
            size: bytes.len() as u64,
            limit: MAX_JSON_SIZE,
        });
    }
    Ok(bytes)
}

/// The `oci-layout` file: `{"imageLayoutVersion": "1.0.0"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutHeader {
    image_layout_version: String,
}

/// Check the `oci-layout` file: present, and of major version 1.
pub(crate) fn check_layout_version(name: &str, bytes: Option<&[u8]>) -> Result<(), OciError> {
    let not_a_layout = |reason: String| OciError::NotALayout {
        reference: name.to_string(),
        reason,
    };
    let bytes = bytes.ok_or_else(|| not_a_layout("it has no `oci-layout` file".to_string()))?;
    let header: LayoutHeader =
        serde_json::from_slice(bytes).map_err(|source| OciError::InvalidJson {
            reference: name.to_string(),
            what: "`oci-layout`".to_string(),
            source,
        })?;
    if header.image_layout_version.split('.').next() != Some("1") {
        return Err(not_a_layout(format!(
            "its `oci-layout` file has version `{}`, but envbuild reads version 1 layouts",
            header.image_layout_version
        )));
    }
    Ok(())
}

/// Where the blobs of the layout being read are.
enum BlobStore {
    /// `blobs/sha256` of a layout folder.
    Folder(PathBuf),
    /// The cache, which an archive was streamed into.
    Cache,
}

/// The state of one `read_base` call.
struct Reader<'a> {
    name: String,
    store: BlobStore,
    cache: &'a Cache,
}

impl Reader<'_> {
    fn parse_json<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: &str,
    ) -> Result<T, OciError> {
        serde_json::from_slice(bytes).map_err(|source| OciError::InvalidJson {
            reference: self.name.clone(),
            what: what.to_string(),
            source,
        })
    }

    /// Path of a blob of the layout, if present.
    fn blob_path(&self, digest: &Sha256Digest) -> Option<PathBuf> {
        match &self.store {
            BlobStore::Folder(folder) => {
                let path = folder.join(digest.hex());
                path.is_file().then_some(path)
            }
            BlobStore::Cache => self.cache.lookup(EntryKind::Blob, digest, None),
        }
    }

    /// Read a JSON blob into memory and verify it against its descriptor.
    fn read_blob(&self, descriptor: &Descriptor, what: &'static str) -> Result<Vec<u8>, OciError> {
        let label = format!("{what} {}", descriptor.digest);
        if descriptor.size > MAX_JSON_SIZE {
            return Err(OciError::JsonTooLarge {
                reference: self.name.clone(),
                what: label,
                size: descriptor.size,
                limit: MAX_JSON_SIZE,
            });
        }
        let path = self
            .blob_path(&descriptor.digest)
            .ok_or_else(|| OciError::MissingBlob {
                reference: self.name.clone(),
                digest: descriptor.digest,
                what,
            })?;
        let file = fs_err::File::open(&path).map_err(io_error(&path))?;
        let bytes = read_limited(&self.name, &label, file, &path)?;
        let actual = Sha256Digest::of(&bytes);
        if actual != descriptor.digest || bytes.len() as u64 != descriptor.size {
            return Err(OciError::DigestMismatch {
                location: self.name.clone(),
                expected: descriptor.digest,
                actual,
                expected_size: descriptor.size,
                actual_size: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// Make sure a blob is in the cache, copying (and verifying) it from the layout.
    fn import_blob(&self, descriptor: &Descriptor, what: &'static str) -> Result<(), OciError> {
        let (digest, size) = (descriptor.digest, descriptor.size);
        if self
            .cache
            .lookup(EntryKind::Blob, &digest, Some(size))
            .is_some()
        {
            return Ok(());
        }
        let missing = || OciError::MissingBlob {
            reference: self.name.clone(),
            digest,
            what,
        };
        match &self.store {
            BlobStore::Folder(_) => {
                let path = self.blob_path(&digest).ok_or_else(missing)?;
                let mut file = fs_err::File::open(&path).map_err(io_error(&path))?;
                self.cache
                    .insert_from_reader(EntryKind::Blob, &mut file, Some((digest, size)))
                    .map_err(|error| OciError::from_cache(error, digest, &self.name))?;
                Ok(())
            }
            BlobStore::Cache => {
                // The archive's blob was verified against its name when it was streamed
                // in, so only its size can disagree with the descriptor.
                let path = self.blob_path(&digest).ok_or_else(missing)?;
                let actual_size = fs_err::metadata(&path).map_err(io_error(&path))?.len();
                Err(OciError::DigestMismatch {
                    location: self.name.clone(),
                    expected: digest,
                    actual: digest,
                    expected_size: size,
                    actual_size,
                })
            }
        }
    }

    /// Pick the `index.json` entry: by tag, or the only one, or by platform when every
    /// entry has one.
    fn choose_entry(
        &self,
        entries: &[Descriptor],
        tag: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<Descriptor, OciError> {
        let tags = || {
            let mut tags: Vec<String> = entries
                .iter()
                .filter_map(|entry| entry.ref_name().map(str::to_string))
                .collect();
            tags.sort();
            tags.dedup();
            tags
        };
        let candidates: Vec<Descriptor> = match tag {
            Some(tag) => entries
                .iter()
                .filter(|entry| entry.ref_name() == Some(tag))
                .cloned()
                .collect(),
            None => entries.to_vec(),
        };
        match (candidates.as_slice(), tag) {
            ([], Some(tag)) => Err(OciError::TagNotFound {
                reference: self.name.clone(),
                tag: tag.to_string(),
                available: tags(),
            }),
            ([], None) => Err(OciError::NoImage {
                reference: self.name.clone(),
            }),
            ([only], _) => Ok(only.clone()),
            // Several entries: some tools list one entry per platform, under one tag or
            // untagged. Several tags and no tag asked for is ambiguous.
            (several, _)
                if several.iter().all(|entry| entry.platform.is_some())
                    && (tag.is_some()
                        || several.iter().all(|entry| entry.ref_name().is_none())) =>
            {
                self.choose_platform(several, platform)
            }
            _ => Err(OciError::AmbiguousImage {
                reference: self.name.clone(),
                available: tags(),
            }),
        }
    }

    /// Pick the manifest for `platform` among index entries.
    fn choose_platform(
        &self,
        entries: &[Descriptor],
        platform: Option<&Platform>,
    ) -> Result<Descriptor, OciError> {
        choose_platform(entries, platform).map_err(|choice| match choice {
            PlatformChoice::Empty => OciError::NoImage {
                reference: self.name.clone(),
            },
            PlatformChoice::NotFound(available) => OciError::PlatformNotFound {
                reference: self.name.clone(),
                platform: platform.map(ToString::to_string).unwrap_or_default(),
                available,
            },
            PlatformChoice::Required(available) => OciError::PlatformRequired {
                reference: self.name.clone(),
                available,
            },
        })
    }

    /// Follow indexes down to an image manifest.
    fn resolve(
        &self,
        descriptor: &Descriptor,
        platform: Option<&Platform>,
    ) -> Result<(Descriptor, ImageManifest), OciError> {
        let mut descriptor = descriptor.clone();
        // Content addressing makes cycles impossible; the bound only stops absurd nesting.
        for _ in 0..16 {
            let bytes = self.read_blob(&descriptor, "manifest")?;
            let label = format!("manifest {}", descriptor.digest);
            let document: serde_json::Value = self.parse_json(&bytes, &label)?;
            // The document's own `mediaType` is authoritative; fall back on the
            // descriptor's, then on the shape (Docker lists always set one).
            let kind = document
                .get("mediaType")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&descriptor.media_type)
                .to_string();
            let is_index = media_type::is_index(&kind)
                || (!media_type::is_manifest(&kind) && document.get("manifests").is_some());
            if is_index {
                let index: ImageIndex =
                    self.parse_json(&bytes, &format!("index {}", descriptor.digest))?;
                descriptor = self.choose_platform(&index.manifests, platform)?;
                continue;
            }
            if !media_type::is_manifest(&kind) && document.get("config").is_none() {
                return Err(OciError::UnsupportedMediaType {
                    reference: self.name.clone(),
                    what: "manifest",
                    digest: descriptor.digest,
                    media_type: kind,
                });
            }
            let manifest: ImageManifest = self.parse_json(&bytes, &label)?;
            return Ok((descriptor, manifest));
        }
        Err(OciError::NotALayout {
            reference: self.name.clone(),
            reason: "its indexes are nested more than 16 deep".to_string(),
        })
    }

    /// Read and check the config, and bring config and layers into the cache.
    fn load(
        &self,
        manifest_descriptor: &Descriptor,
        manifest: ImageManifest,
        wanted: Option<&Platform>,
    ) -> Result<BaseImage, OciError> {
        let config_descriptor = &manifest.config;
        if !media_type::is_config(&config_descriptor.media_type) {
            return Err(OciError::UnsupportedMediaType {
                reference: self.name.clone(),
                what: "config",
                digest: config_descriptor.digest,
                media_type: config_descriptor.media_type.clone(),
            });
        }
        for layer in &manifest.layers {
            if !media_type::is_layer(&layer.media_type) {
                return Err(OciError::UnsupportedMediaType {
                    reference: self.name.clone(),
                    what: "layer",
                    digest: layer.digest,
                    media_type: layer.media_type.clone(),
                });
            }
        }
        let config_bytes = self.read_blob(config_descriptor, "config")?;
        let config: serde_json::Value = self.parse_json(
            &config_bytes,
            &format!("config {}", config_descriptor.digest),
        )?;
        let invalid = |reason: String| OciError::InvalidConfig {
            reference: self.name.clone(),
            digest: config_descriptor.digest,
            reason,
        };
        if !config.is_object() {
            return Err(invalid("it is not a JSON object".to_string()));
        }
        let diff_ids = diff_ids(&config).map_err(invalid)?;
        // Standards §0 rule 9: `rootfs.diff_ids` and the manifest's layers go in step.
        if diff_ids.len() != manifest.layers.len() {
            return Err(invalid(format!(
                "it lists {} `rootfs.diff_ids`, but manifest {} has {} layers",
                diff_ids.len(),
                manifest_descriptor.digest,
                manifest.layers.len()
            )));
        }
        let platform = config_platform(&config)
            .or_else(|| manifest_descriptor.platform.clone())
            .ok_or_else(|| invalid("it names no `os` and `architecture`".to_string()))?;
        if let Some(wanted) = wanted
            && !platform_matches(&platform, wanted)
        {
            return Err(OciError::PlatformMismatch {
                reference: self.name.clone(),
                wanted: wanted.to_string(),
                actual: platform.to_string(),
            });
        }
        self.cache
            .insert_blob_bytes(&config_bytes)
            .map_err(|error| OciError::from_cache(error, config_descriptor.digest, &self.name))?;
        for layer in &manifest.layers {
            self.import_blob(layer, "layer")?;
        }
        verify_diff_ids(&self.name, &manifest.layers, &diff_ids, self.cache)?;
        Ok(BaseImage {
            reference: self.name.clone(),
            manifest_digest: manifest_descriptor.digest,
            config,
            layers: manifest.layers,
            diff_ids,
            platform,
        })
    }
}

/// The kind of cache record that holds the diff_id a layer blob really has.
const DIFF_ID_RECORD: &str = "diff-ids";

/// What the cache remembers about a layer blob: the SHA-256 of its uncompressed bytes.
#[derive(Serialize, Deserialize)]
struct DiffIdRecord {
    diff_id: Sha256Digest,
}

/// Check that each of `layers` (already in `cache`) decompresses to the diff_id at the
/// same position of `diff_ids`, as image-spec `config.md` requires of `rootfs.diff_ids`.
/// A layer's real diff_id is remembered in the cache, keyed by the layer's digest, so
/// it is computed once per cache. `reference` names the image in errors.
pub fn verify_diff_ids(
    reference: &str,
    layers: &[Descriptor],
    diff_ids: &[Sha256Digest],
    cache: &Cache,
) -> Result<(), OciError> {
    for (layer, expected) in layers.iter().zip(diff_ids) {
        let found = match cache.record::<DiffIdRecord>(DIFF_ID_RECORD, &layer.digest) {
            Some(record) => record.diff_id,
            None => {
                let path = cache
                    .lookup(EntryKind::Blob, &layer.digest, Some(layer.size))
                    .ok_or_else(|| OciError::NotInCache {
                        digest: layer.digest,
                        size: layer.size,
                        path: cache.entry_path(EntryKind::Blob, &layer.digest),
                    })?;
                let unreadable = |source: io::Error| OciError::UnreadableLayer {
                    reference: reference.to_string(),
                    layer: layer.digest,
                    path: path.clone(),
                    source,
                };
                let Some(found) = uncompressed_digest(&path).map_err(unreadable)? else {
                    tracing::warn!(
                        "layer {} of image `{reference}` is zstd-compressed; envbuild cannot check it against its diff_id {expected}",
                        layer.digest
                    );
                    continue;
                };
                cache
                    .put_record(
                        DIFF_ID_RECORD,
                        &layer.digest,
                        &DiffIdRecord { diff_id: found },
                    )
                    .map_err(|error| OciError::from_cache(error, layer.digest, reference))?;
                found
            }
        };
        if found != *expected {
            return Err(OciError::DiffIdMismatch {
                reference: reference.to_string(),
                layer: layer.digest,
                expected: *expected,
                found,
            });
        }
    }
    Ok(())
}

/// The SHA-256 of a layer blob's uncompressed bytes: gzip (one or more members) or a
/// plain tar, told apart by their first bytes as container runtimes do; `None` for zstd.
fn uncompressed_digest(path: &Path) -> io::Result<Option<Sha256Digest>> {
    let mut buffered = BufReader::new(fs_err::File::open(path)?);
    let magic = buffered.fill_buf()?;
    let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(None);
    } else {
        Box::new(buffered)
    };
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(Some(hashing.finish().0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::testing::{finish_layout, platform, put_image, put_index, tagged};

    fn setup() -> (tempfile::TempDir, PathBuf, Cache) {
        let folder = tempfile::tempdir().unwrap();
        let layout = folder.path().join("layout");
        let cache = Cache::open(&folder.path().join("cache")).unwrap();
        (folder, layout, cache)
    }

    fn oci(path: &Path, tag: Option<&str>) -> ImageReference {
        ImageReference::OciLayout {
            path: path.to_path_buf(),
            tag: tag.map(str::to_string),
        }
    }

    /// Point every descriptor in `value` that names `old` at `new` instead.
    fn repoint(value: &mut serde_json::Value, old: &str, new: &Descriptor) {
        match value {
            serde_json::Value::Object(object) => {
                if object.get("digest").and_then(|digest| digest.as_str()) == Some(old) {
                    object.insert("digest".into(), new.digest.oci().into());
                    object.insert("size".into(), new.size.into());
                }
                object
                    .values_mut()
                    .for_each(|child| repoint(child, old, new));
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|child| repoint(child, old, new));
            }
            _ => {}
        }
    }

    #[test]
    fn ok_no_panic_on_hostile_index_manifest_and_config() {
        // A layout: index.json -> inner index -> (amd64 OCI image, arm64 Docker image).
        let (folder, template, _) = setup();
        let amd64 = platform("linux", "amd64", None);
        let arm64 = platform("linux", "arm64", Some("v8"));
        let manifest = put_image(&template, &amd64, "etc/a", false);
        let other = put_image(&template, &arm64, "etc/b", true);
        let inner = put_index(&template, &[manifest.clone(), other]);
        finish_layout(&template, &[tagged(&inner, "latest")]);
        let blob = |digest: &Sha256Digest| {
            fs_err::read(template.join("blobs/sha256").join(digest.hex())).unwrap()
        };
        let manifest_bytes = blob(&manifest.digest);
        let manifest_value: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let config: Descriptor = serde_json::from_value(manifest_value["config"].clone()).unwrap();
        // The chain from the config up: (bytes, digest as written in its parent).
        let chain = [
            (blob(&config.digest), config.digest.oci()),
            (manifest_bytes, manifest.digest.oci()),
            (blob(&inner.digest), inner.digest.oci()),
            (
                fs_err::read(template.join("index.json")).unwrap(),
                String::new(),
            ),
        ];
        let cache = Cache::open(&folder.path().join("mutated-cache")).unwrap();
        let layout = folder.path().join("mutated");
        // The template, with `bytes` in place of the document at `level` and its parents
        // re-pointed at it, so it is verified and then parsed.
        let rebuild = |level: usize, bytes: &[u8]| {
            let _ = fs_err::remove_dir_all(&layout);
            fs_err::create_dir_all(layout.join("blobs/sha256")).unwrap();
            for entry in fs_err::read_dir(template.join("blobs/sha256")).unwrap() {
                let entry = entry.unwrap();
                fs_err::copy(
                    entry.path(),
                    layout.join("blobs/sha256").join(entry.file_name()),
                )
                .unwrap();
            }
            fs_err::copy(template.join("oci-layout"), layout.join("oci-layout")).unwrap();
            let mut current = bytes.to_vec();
            for above in level + 1..chain.len() {
                let written = Descriptor::of_bytes("x", &current);
                fs_err::write(
                    layout.join("blobs/sha256").join(written.digest.hex()),
                    &current,
                )
                .unwrap();
                let mut parent: serde_json::Value =
                    serde_json::from_slice(&chain[above].0).unwrap();
                repoint(&mut parent, &chain[above - 1].1, &written);
                current = serde_json::to_vec(&parent).unwrap();
            }
            fs_err::write(layout.join("index.json"), &current).unwrap();
        };
        for (level, name) in ["config", "manifest", "inner index", "index.json"]
            .into_iter()
            .enumerate()
        {
            // Re-serialized but unchanged, the layout reads: mutations reach the parser.
            let same = serde_json::to_vec(
                &serde_json::from_slice::<serde_json::Value>(&chain[level].0).unwrap(),
            )
            .unwrap();
            rebuild(level, &same);
            read_base(&oci(&layout, Some("latest")), Some(&amd64), &cache).unwrap();
            crate::mutate::assert_no_panic(name, [chain[level].0.clone()], 300, |bytes| {
                rebuild(level, bytes);
                for wanted in [None, Some(&amd64), Some(&arm64)] {
                    for tag in [None, Some("latest")] {
                        if let Err(error) = read_base(&oci(&layout, tag), wanted, &cache) {
                            assert!(!error.to_string().is_empty());
                        }
                    }
                }
            });
        }
    }

    #[test]
    fn ok_reads_tagged_docker_image_into_cache() {
        let (_folder, layout, cache) = setup();
        let amd64 = platform("linux", "amd64", None);
        let manifest = put_image(&layout, &amd64, "etc/hello", true);
        let other = put_image(
            &layout,
            &platform("linux", "arm64", None),
            "etc/other",
            false,
        );
        finish_layout(
            &layout,
            &[tagged(&manifest, "3.12"), tagged(&other, "other")],
        );
        let base = read_base(&oci(&layout, Some("3.12")), None, &cache).unwrap();
        assert_eq!(base.manifest_digest, manifest.digest);
        assert_eq!(base.platform, amd64);
        assert_eq!(base.layers.len(), 1);
        assert_eq!(base.layers[0].media_type, media_type::DOCKER_LAYER_TAR_GZIP);
        assert_eq!(base.diff_ids.len(), 1);
        assert_eq!(base.config["config"]["Cmd"][0], "sh");
        let layer = &base.layers[0];
        assert!(
            cache
                .lookup(EntryKind::Blob, &layer.digest, Some(layer.size))
                .is_some()
        );
    }

    #[test]
    fn ok_nested_index_selects_platform() {
        let (_folder, layout, cache) = setup();
        let amd64 = put_image(&layout, &platform("linux", "amd64", None), "a", false);
        let arm64 = put_image(&layout, &platform("linux", "arm64", Some("v8")), "b", false);
        let mut attestation = amd64.clone();
        attestation.platform = Some(platform("unknown", "unknown", None));
        let inner = put_index(&layout, &[amd64.clone(), arm64.clone(), attestation]);
        let outer = put_index(&layout, &[inner]);
        finish_layout(&layout, &[outer]);
        let wanted = platform("linux", "arm64", None);
        let base = read_base(&oci(&layout, None), Some(&wanted), &cache).unwrap();
        assert_eq!(base.manifest_digest, arm64.digest);
        assert_eq!(base.platform, platform("linux", "arm64", Some("v8")));

        let error = read_base(&oci(&layout, None), None, &cache).unwrap_err();
        assert!(
            matches!(error, OciError::PlatformRequired { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("linux/amd64, linux/arm64/v8"),
            "{error}"
        );

        let error = read_base(
            &oci(&layout, None),
            Some(&platform("linux", "s390x", None)),
            &cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::PlatformNotFound { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("`linux/s390x`")
                && error.to_string().contains("linux/amd64"),
            "{error}"
        );
    }

    #[test]
    fn err_tag_not_found_lists_tags() {
        let (_folder, layout, cache) = setup();
        let manifest = put_image(&layout, &platform("linux", "amd64", None), "a", false);
        finish_layout(&layout, &[tagged(&manifest, "b"), tagged(&manifest, "a")]);
        let error = read_base(&oci(&layout, Some("c")), None, &cache).unwrap_err();
        assert!(matches!(error, OciError::TagNotFound { .. }));
        assert!(
            error.to_string().contains("no tag `c`; its tags are: a, b"),
            "{error}"
        );
        let error = read_base(&oci(&layout, None), None, &cache).unwrap_err();
        assert!(matches!(error, OciError::AmbiguousImage { .. }), "{error}");
        assert!(error.to_string().contains("its tags are: a, b"), "{error}");
    }

    #[test]
    fn err_single_image_for_other_platform() {
        let (_folder, layout, cache) = setup();
        let mut manifest = put_image(&layout, &platform("linux", "amd64", None), "a", false);
        manifest.platform = None;
        finish_layout(&layout, &[manifest]);
        let error = read_base(
            &oci(&layout, None),
            Some(&platform("linux", "arm64", None)),
            &cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::PlatformMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_corrupt_layer_is_caught() {
        let (_folder, layout, cache) = setup();
        let manifest = put_image(&layout, &platform("linux", "amd64", None), "a", false);
        finish_layout(&layout, &[manifest]);
        // Corrupt the largest blob: the gzip layer.
        let mut blobs: Vec<PathBuf> = fs_err::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        blobs.sort_by_key(|path| {
            std::cmp::Reverse(fs_err::read(path).unwrap().starts_with(&[0x1f, 0x8b]))
        });
        let mut bytes = fs_err::read(&blobs[0]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs_err::write(&blobs[0], bytes).unwrap();
        let error = read_base(&oci(&layout, None), None, &cache).unwrap_err();
        assert!(matches!(error, OciError::DigestMismatch { .. }), "{error}");
        assert_eq!(
            fs_err::read_dir(cache.root().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn err_missing_or_not_a_layout() {
        let (folder, layout, cache) = setup();
        let error = read_base(&oci(&layout, None), None, &cache).unwrap_err();
        assert!(matches!(error, OciError::MissingImage { .. }), "{error}");
        fs_err::create_dir_all(&layout).unwrap();
        let error = read_base(&oci(&layout, None), None, &cache).unwrap_err();
        assert!(
            error.to_string().contains("no `oci-layout` file"),
            "{error}"
        );
        let file = folder.path().join("file.tar");
        fs_err::write(
            &file,
            b"not a tar at all, just some bytes that are long enough",
        )
        .unwrap();
        let archive = ImageReference::OciArchive {
            path: file,
            tag: None,
        };
        let error = read_base(&archive, None, &cache).unwrap_err();
        assert!(
            matches!(
                error,
                OciError::UnreadableArchive { .. } | OciError::NotALayout { .. }
            ),
            "{error}"
        );
    }

    #[test]
    fn err_diff_ids_out_of_step() {
        let (_folder, layout, cache) = setup();
        let blob = |bytes: &[u8], media: &str| crate::oci::testing::put_blob(&layout, media, bytes);
        let config = blob(
            br#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}"#,
            media_type::OCI_CONFIG,
        );
        let layer = blob(b"layer", media_type::OCI_LAYER_TAR_GZIP);
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST, "config": config, "layers": [layer]});
        let manifest = blob(
            &serde_json::to_vec(&manifest).unwrap(),
            media_type::OCI_MANIFEST,
        );
        finish_layout(&layout, &[manifest]);
        let error = read_base(&oci(&layout, None), None, &cache).unwrap_err();
        assert!(matches!(error, OciError::InvalidConfig { .. }), "{error}");
        assert!(error.to_string().contains("0 `rootfs.diff_ids`"), "{error}");
    }

    /// A one-layer image whose config lists `diff_id` for the layer `layer`.
    fn put_image_with_diff_id(
        layout: &Path,
        layer: &[u8],
        diff_id: Sha256Digest,
    ) -> (Descriptor, Descriptor) {
        use crate::oci::testing::put_blob;
        let layer = put_blob(layout, media_type::OCI_LAYER_TAR_GZIP, layer);
        let config = serde_json::json!({
            "os": "linux",
            "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": [diff_id.oci()]},
        });
        let config = put_blob(
            layout,
            media_type::OCI_CONFIG,
            &serde_json::to_vec(&config).unwrap(),
        );
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST, "config": config, "layers": [layer]});
        let manifest = put_blob(
            layout,
            media_type::OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        (manifest, layer)
    }

    #[test]
    fn err_wrong_diff_id_is_refused_and_verdicts_are_cached() {
        let (folder, layout, cache) = setup();
        let (blob, diff_id) =
            crate::oci::testing::gzip_layer(&[("etc/hello", b"hello from the base\n")]);
        let wrong = Sha256Digest::of(b"not the tar");
        let (good, layer) = put_image_with_diff_id(&layout, &blob, diff_id);
        let (bad, _) = put_image_with_diff_id(&layout, &blob, wrong);
        finish_layout(&layout, &[tagged(&good, "good"), tagged(&bad, "bad")]);

        let error = read_base(&oci(&layout, Some("bad")), None, &cache).unwrap_err();
        match &error {
            OciError::DiffIdMismatch {
                layer: named,
                expected,
                found,
                ..
            } => {
                assert_eq!((*named, *expected, *found), (layer.digest, wrong, diff_id));
            }
            other => panic!("{other}"),
        }
        let message = error.to_string();
        for part in [
            layer.digest.to_string(),
            wrong.to_string(),
            diff_id.to_string(),
        ] {
            assert!(message.contains(&part), "{message} names {part}");
        }
        // The same layer in an archive is refused too.
        let archive_path = folder.path().join("bad.tar");
        let mut builder = tar::Builder::new(fs_err::File::create(&archive_path).unwrap());
        builder.append_dir_all(".", &layout).unwrap();
        builder.into_inner().unwrap();
        let archive = ImageReference::OciArchive {
            path: archive_path,
            tag: Some("bad".to_string()),
        };
        let fresh = Cache::open(&folder.path().join("fresh")).unwrap();
        let error = read_base(&archive, None, &fresh).unwrap_err();
        assert!(matches!(error, OciError::DiffIdMismatch { .. }), "{error}");

        // The layer's real diff_id is remembered by its digest: reading the good image
        // again does not decompress the layer (garbage of the same size in the cache
        // would fail to).
        let record: DiffIdRecord = cache.record(DIFF_ID_RECORD, &layer.digest).unwrap();
        assert_eq!(record.diff_id, diff_id);
        let cached = cache.entry_path(EntryKind::Blob, &layer.digest);
        let mut garbage = vec![0; blob.len()];
        garbage[..2].copy_from_slice(&[0x1f, 0x8b]);
        fs_err::write(&cached, garbage).unwrap();
        let base = read_base(&oci(&layout, Some("good")), None, &cache).unwrap();
        assert_eq!(base.diff_ids, [diff_id]);
        // Without the record, the garbage is found out.
        fs_err::remove_file(cache.record_path(DIFF_ID_RECORD, &layer.digest)).unwrap();
        let error = read_base(&oci(&layout, Some("good")), None, &cache).unwrap_err();
        assert!(matches!(error, OciError::UnreadableLayer { .. }), "{error}");
    }
}
