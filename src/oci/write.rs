//! Writing images as an OCI image layout (image-spec `image-layout.md`): a folder
//! (`oci:`) or a deterministic tar of one (`oci-archive:`), or as a `docker-archive:`
//! (the layout plus `manifest.json`, see `docker_archive`; one platform, written anew).
//!
//! What `index.json` ends up holding:
//! - the entries of an existing layout are kept, except those the new image replaces:
//!   with a tag, the entry with the same `org.opencontainers.image.ref.name`; without
//!   one, every untagged entry (so repeated untagged builds do not pile up);
//! - the new entry is the image's manifest (with its platform) or, for several
//!   images, an image index whose manifests are sorted by platform string;
//! - entries are sorted by tag (untagged first), so the file depends only on the set
//!   of kept entries and the new images, not on the order earlier builds ran in.
//!
//! Concurrent builds: a layout folder is updated under an advisory lock on
//! `.envbuild-lock` at its root (an archive: `.<name>.envbuild-lock` next to it), held
//! from reading the existing `index.json` to renaming the new one into place, so
//! concurrent builds into one layout or archive keep each other's tags. The lock file
//! is deleted on release (`cache::temp::FileLock`).
//!
//! Crash safety: blobs are written first, each to a temporary file at the layout's root
//! (`.blob-*.envbuild-tmp`: never in `blobs/sha256/`, which holds only digest names)
//! and renamed into place, and `index.json` last, the same way, so a killed build never
//! leaves an entry pointing at missing blobs. Temporaries that killed builds left are
//! deleted before the next write (`cache::temp::sweep`). A blob already in the folder
//! is kept only if its bytes hash to its name. Blobs no entry references any more are
//! left in place (the spec allows unreferenced blobs); an archive is written anew and
//! holds only the blobs its entries reach.
//!
//! A write that fails (a full disk, a bad blob) takes back what it added: the blobs and
//! folders it created, its `oci-layout` and, for a new layout, the folder itself. An
//! existing layout is left as it was; an archive is only ever replaced whole.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::archive::{self, Blob, BlobSource};
use super::assemble::Image;
use super::descriptor::{Descriptor, annotation, media_type};
use super::docker_archive::{self, MANIFEST_JSON, REPOSITORIES};
use super::error::{OciError, io_error};
use super::index::ImageIndex;
use super::layout::{LAYOUT_VERSION, MAX_JSON_SIZE, check_layout_version};
use super::reference::{ImageReference, is_valid_tag};
use crate::cache::temp::{self, FileLock, TempFile, is_temporary_name};
use crate::cache::{Cache, EntryKind};
use crate::digest::{HashingReader, Sha256Digest};
use crate::registry::RegistryReference;
use crate::repro::canonical_json;

/// Name of the layout's entry point.
const INDEX_JSON: &str = "index.json";
/// Name of the layout's version file.
const OCI_LAYOUT: &str = "oci-layout";
/// The lock file envbuild holds while it updates a layout (and, prefixed with the
/// archive's name, next to an archive); deleted on release.
const LOCK_FILE: &str = ".envbuild-lock";

/// Mode of every file envbuild writes into a layout or as an archive.
const OUTPUT_FILE_MODE: u32 = 0o644;

/// Write `images` (one per platform) to `output`, keeping the layout's other tags.
/// Returns the digest of the new `index.json` entry: the manifest for one image, the
/// image index for several. Config and manifest blobs are also stored in `cache`.
pub fn write_images(
    images: &[Image],
    output: &ImageReference,
    cache: &Cache,
) -> Result<Sha256Digest, OciError> {
    let name = output.to_string();
    let platforms: Vec<String> = images
        .iter()
        .map(|image| image.platform.to_string())
        .collect();
    check_output(output, &platforms)?;
    let top = top_level(images, &name)?;
    let mut blobs = BTreeMap::new();
    for image in &top.images {
        add_bytes(&mut blobs, cache, &image.config)?;
        add_bytes(&mut blobs, cache, &image.manifest)?;
        for layer in &image.layers {
            let path = cache
                .lookup(EntryKind::Blob, &layer.digest, Some(layer.size))
                .ok_or_else(|| OciError::NotInCache {
                    digest: layer.digest,
                    size: layer.size,
                    path: cache.entry_path(EntryKind::Blob, &layer.digest),
                })?;
            blobs.insert(
                layer.digest,
                Blob {
                    size: layer.size,
                    source: BlobSource::File(path),
                },
            );
        }
    }
    if let Some(bytes) = &top.index {
        add_bytes(&mut blobs, cache, bytes)?;
    }
    let mut entry = top.descriptor.clone();
    if let Some(tag) = output.tag() {
        entry
            .annotations
            .insert(annotation::REF_NAME.to_string(), tag.to_string());
    }
    match output {
        ImageReference::OciLayout { path, .. } => write_folder(path, &name, entry, &blobs)?,
        ImageReference::OciArchive { path, .. } => write_archive(path, &name, entry, blobs, cache)?,
        ImageReference::DockerArchive {
            path,
            name: image_name,
        } => write_docker_archive(path, &name, image_name.as_ref(), &top, &blobs)?,
        // Registries are written by `crate::registry::Registry::push`.
        ImageReference::Registry(_) => {
            return Err(OciError::UnsupportedOutputTransport {
                reference: name,
                transport: output.transport(),
            });
        }
    }
    Ok(top.descriptor.digest)
}

/// Check, before anything is built, that `output` can take images for `platforms`:
/// a transport envbuild writes, a valid tag, and one platform for a docker-archive.
pub fn check_output(output: &ImageReference, platforms: &[String]) -> Result<(), OciError> {
    let name = output.to_string();
    if let Some(tag) = output.tag()
        && !is_valid_tag(tag)
    {
        return Err(OciError::InvalidTag {
            reference: name,
            tag: tag.to_string(),
        });
    }
    if platforms.len() > 1 && !output.holds_several_platforms() {
        return Err(OciError::SinglePlatformOutput {
            reference: name,
            platforms: platforms.to_vec(),
        });
    }
    Ok(())
}

/// What a set of per-platform images is published as: the manifest itself for one
/// image, or an image index over all of them (sorted by platform) for several. Every
/// sink (layout, archive, registry) publishes exactly these bytes.
#[derive(Debug, Clone)]
pub struct TopLevel<'a> {
    /// The images, sorted by platform.
    pub images: Vec<&'a Image>,
    /// The image index's canonical JSON, when there are several images.
    pub index: Option<Vec<u8>>,
    /// The descriptor of the manifest or index (with platform for a lone manifest).
    pub descriptor: Descriptor,
}

/// Sort `images` by platform, refuse duplicates, and make the image index when there is
/// more than one. `name` names the destination in errors.
pub fn top_level<'a>(images: &'a [Image], name: &str) -> Result<TopLevel<'a>, OciError> {
    if images.is_empty() {
        return Err(OciError::NoImages {
            reference: name.to_string(),
        });
    }
    let mut sorted: Vec<(String, &Image)> = images
        .iter()
        .map(|image| (image.platform.to_string(), image))
        .collect();
    sorted.sort_by(|left, right| left.0.cmp(&right.0));
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(OciError::DuplicatePlatform {
            reference: name.to_string(),
            platform: pair[0].0.clone(),
        });
    }
    let manifests: Vec<Descriptor> = sorted
        .iter()
        .map(|(_, image)| Descriptor {
            platform: Some(image.platform.clone()),
            ..Descriptor::of_bytes(media_type::OCI_MANIFEST, &image.manifest)
        })
        .collect();
    let images: Vec<&Image> = sorted.into_iter().map(|(_, image)| image).collect();
    Ok(match <[Descriptor; 1]>::try_from(manifests) {
        Ok([manifest]) => TopLevel {
            images,
            index: None,
            descriptor: manifest,
        },
        Err(manifests) => {
            let index = ImageIndex {
                schema_version: 2,
                media_type: Some(media_type::OCI_INDEX.to_string()),
                manifests,
                annotations: BTreeMap::new(),
            };
            let bytes = canonical_json(&index);
            let descriptor = Descriptor::of_bytes(media_type::OCI_INDEX, &bytes);
            TopLevel {
                images,
                index: Some(bytes),
                descriptor,
            }
        }
    })
}

/// Store bytes in the cache and add them to the blobs to write.
fn add_bytes(
    blobs: &mut BTreeMap<Sha256Digest, Blob>,
    cache: &Cache,
    bytes: &[u8],
) -> Result<(), OciError> {
    let digest = cache
        .insert_blob_bytes(bytes)
        .map_err(|error| OciError::from_cache(error, Sha256Digest::of(bytes), "memory"))?;
    blobs.insert(
        digest,
        Blob {
            size: bytes.len() as u64,
            source: BlobSource::Bytes(bytes.to_vec()),
        },
    );
    Ok(())
}

/// The `ref.name` of an `index.json` entry.
fn ref_name(entry: &Value) -> Option<&str> {
    entry
        .get("annotations")?
        .get(annotation::REF_NAME)?
        .as_str()
}

/// The entries of an existing `index.json` that the new entry does not replace.
fn kept_entries(existing: Vec<Value>, tag: Option<&str>) -> Vec<Value> {
    existing
        .into_iter()
        .filter(|entry| match (tag, ref_name(entry)) {
            (Some(tag), Some(name)) => name != tag,
            (Some(_), None) => true,
            (None, name) => name.is_some(),
        })
        .collect()
}

/// The new `index.json`: kept entries plus the new one, sorted by tag.
fn index_json(kept: Vec<Value>, entry: &Descriptor) -> Vec<u8> {
    let mut manifests = kept;
    manifests.push(serde_json::to_value(entry).expect("a descriptor serializes"));
    manifests.sort_by(|left, right| ref_name(left).cmp(&ref_name(right)));
    canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    }))
}

/// The entries of an existing `index.json`.
fn existing_entries(name: &str, bytes: &[u8]) -> Result<Vec<Value>, OciError> {
    let index: Value = serde_json::from_slice(bytes).map_err(|source| OciError::InvalidJson {
        reference: name.to_string(),
        what: "the existing `index.json`".to_string(),
        source,
    })?;
    match index.get("manifests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => Ok(entries.clone()),
        Some(_) => Err(OciError::OutputNotALayout {
            reference: name.to_string(),
            reason: "its `index.json` has a `manifests` field that is not a list".to_string(),
        }),
    }
}

/// The `oci-layout` file envbuild writes.
fn layout_header() -> Vec<u8> {
    canonical_json(&json!({ "imageLayoutVersion": LAYOUT_VERSION }))
}

/// Write a docker-archive anew: the layout of the one image plus `manifest.json` (and
/// `repositories` when it has a name), through the same tar writer as `oci-archive:`.
fn write_docker_archive(
    path: &Path,
    reference: &str,
    image_name: Option<&RegistryReference>,
    top: &TopLevel<'_>,
    blobs: &BTreeMap<Sha256Digest, Blob>,
) -> Result<(), OciError> {
    docker_archive::check_replaceable(path, reference)?;
    let [image] = top.images[..] else {
        return Err(OciError::SinglePlatformOutput {
            reference: reference.to_string(),
            platforms: top
                .images
                .iter()
                .map(|image| image.platform.to_string())
                .collect(),
        });
    };
    let files = docker_archive::docker_archive_files(image, &top.descriptor, image_name);
    let mut top_files = BTreeMap::from([
        (INDEX_JSON.to_string(), index_json(Vec::new(), &files.entry)),
        (OCI_LAYOUT.to_string(), layout_header()),
        (MANIFEST_JSON.to_string(), files.manifest_json),
    ]);
    if let Some(repositories) = files.repositories {
        top_files.insert(REPOSITORIES.to_string(), repositories);
    }
    write_archive_file(path, |file| {
        archive::write_layout_tar(file, path, blobs, &top_files)
    })
}

/// Write into a layout folder, creating it if needed (see the module doc for the lock
/// and for what a failed write leaves).
fn write_folder(
    path: &Path,
    name: &str,
    entry: Descriptor,
    blobs: &BTreeMap<Sha256Digest, Blob>,
) -> Result<(), OciError> {
    // Refuse before touching anything; checked again under the lock.
    check_layout_folder(path, name)?;
    let mut created_folders = create_folders(path)?;
    let result = lock_layout(path, &mut created_folders).and_then(|lock| {
        let mut written = Written::default();
        let result = update_layout(path, name, entry, blobs, &mut written);
        if result.is_err() {
            written.undo();
        }
        drop(lock);
        result
    });
    if result.is_err() {
        // Only empty folders go: a concurrent build may have filled one meanwhile.
        for folder in created_folders.iter().rev() {
            let _ = fs_err::remove_dir(folder);
        }
    }
    result
}

/// What [`update_layout`] added to a layout, to take back out if it fails.
#[derive(Default)]
struct Written {
    files: Vec<PathBuf>,
    folders: Vec<PathBuf>,
}

impl Written {
    /// Remove the files and folders this run added, newest first.
    fn undo(self) {
        for file in self.files.iter().rev() {
            let _ = fs_err::remove_file(file);
        }
        for folder in self.folders.iter().rev() {
            let _ = fs_err::remove_dir(folder);
        }
    }
}

/// Refuse a path that is a file, or a folder that is neither a version 1 layout nor
/// empty (envbuild's own lock and temporary files aside).
fn check_layout_folder(path: &Path, name: &str) -> Result<(), OciError> {
    let refuse = |reason: String| OciError::OutputNotALayout {
        reference: name.to_string(),
        reason,
    };
    match fs_err::metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(path)(error)),
        Ok(metadata) if !metadata.is_dir() => Err(refuse(format!(
            "`{}` is a file, not a layout folder",
            path.display()
        ))),
        Ok(_) => {
            let header = path.join(OCI_LAYOUT);
            if header.exists() {
                let bytes = fs_err::read(&header).map_err(io_error(&header))?;
                return check_layout_version(name, Some(&bytes)).map_err(|_| {
                    refuse(format!(
                        "`{}` is not an `oci-layout` file of version 1",
                        header.display()
                    ))
                });
            }
            for child in fs_err::read_dir(path).map_err(io_error(path))? {
                let child = child.map_err(io_error(path))?;
                let child_name = child.file_name();
                let child_name = child_name.to_string_lossy();
                if child_name != LOCK_FILE && !is_temporary_name(&child_name) {
                    return Err(refuse(format!(
                        "`{}` is a folder that is not empty and has no `oci-layout` file",
                        path.display()
                    )));
                }
            }
            Ok(())
        }
    }
}

/// Create `path` and its missing parents; returns the folders this call created,
/// outermost first.
fn create_folders(path: &Path) -> Result<Vec<PathBuf>, OciError> {
    let mut missing = Vec::new();
    let mut current = path;
    while !current.exists() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => break,
        }
    }
    let mut created = Vec::new();
    for folder in missing.into_iter().rev() {
        match fs_err::create_dir(&folder) {
            Ok(()) => created.push(folder),
            // Made by a concurrent build meanwhile: not ours to remove.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                for folder in created.iter().rev() {
                    let _ = fs_err::remove_dir(folder);
                }
                return Err(io_error(&folder)(error));
            }
        }
    }
    Ok(created)
}

/// Take the layout's lock. A concurrent first write that failed may have removed the
/// (then empty) folder: it is made again, and counted as made by this run.
fn lock_layout(path: &Path, created_folders: &mut Vec<PathBuf>) -> Result<FileLock, OciError> {
    let lock_path = path.join(LOCK_FILE);
    for _ in 0..3 {
        match FileLock::acquire(&lock_path) {
            Ok(lock) => return Ok(lock),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                created_folders.extend(create_folders(path)?);
            }
            Err(error) => return Err(io_error(&lock_path)(error)),
        }
    }
    Err(io_error(&lock_path)(io::Error::new(
        io::ErrorKind::NotFound,
        "the layout folder keeps disappearing",
    )))
}

/// Add the blobs and the new `index.json` entry to the layout at `path`, whose lock the
/// caller holds; what it adds is listed in `written`.
fn update_layout(
    path: &Path,
    name: &str,
    entry: Descriptor,
    blobs: &BTreeMap<Sha256Digest, Blob>,
    written: &mut Written,
) -> Result<(), OciError> {
    check_layout_folder(path, name)?;
    let folder = path.join("blobs").join("sha256");
    // Temporaries of killed builds: at the root, and inside `blobs/sha256/` where
    // envbuild 0.1 wrote them.
    temp::sweep(path, is_temporary_name);
    temp::sweep(&folder, is_temporary_name);
    let index_path = path.join(INDEX_JSON);
    let existing = match fs_err::read(&index_path) {
        Ok(bytes) => existing_entries(name, &bytes)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io_error(&index_path)(error)),
    };
    // `oci-layout` first: a folder holding blobs always has one, even after a kill, so
    // the next build takes it for a layout. An existing one (of version 1, checked
    // above) is kept as it is.
    let header_path = path.join(OCI_LAYOUT);
    if !header_path.exists() {
        let header = layout_header();
        write_atomically(&header_path, path, "oci-layout.", |file| {
            file.write_all(&header).map_err(io_error(&header_path))
        })?;
        written.files.push(header_path);
    }
    for folder in [path.join("blobs"), folder.clone()] {
        match fs_err::create_dir(&folder) {
            Ok(()) => written.folders.push(folder),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error(&folder)(error)),
        }
    }
    for (digest, blob) in blobs {
        let destination = folder.join(digest.hex());
        let existed = destination.exists();
        if existed && file_has_digest(&destination, digest, blob.size)? {
            continue;
        }
        write_atomically(&destination, path, "blob-", |file| {
            blob.copy_to(digest, file, &destination)
        })?;
        if !existed {
            written.files.push(destination);
        }
    }
    let index = index_json(kept_entries(existing, entry.ref_name()), &entry);
    write_atomically(&index_path, path, "index.json.", |file| {
        file.write_all(&index).map_err(io_error(&index_path))
    })
}

/// Whether the file at `path` exists with exactly this digest and size.
fn file_has_digest(path: &Path, digest: &Sha256Digest, size: u64) -> Result<bool, OciError> {
    let file = match fs_err::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(io_error(path)(error)),
    };
    if file.metadata().map_err(io_error(path))?.len() != size {
        return Ok(false);
    }
    let mut reader = HashingReader::new(file);
    io::copy(&mut reader, &mut io::sink()).map_err(io_error(path))?;
    Ok(reader.finish() == (*digest, size))
}

/// Write `destination` through a temporary file in `temp_folder` (on the same file
/// system; never a layout's `blobs/sha256/`, which holds only digest names), renamed
/// into place. `label` starts the temporary's name.
fn write_atomically(
    destination: &Path,
    temp_folder: &Path,
    label: &str,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), OciError>,
) -> Result<(), OciError> {
    let temporary = TempFile::new_in(temp_folder, label).map_err(io_error(temp_folder))?;
    {
        let mut writer = BufWriter::new(temporary.as_file());
        fill(&mut writer)?;
        writer.flush().map_err(io_error(destination))?;
    }
    set_output_mode(temporary.as_file(), destination)?;
    temporary
        .as_file()
        .sync_data()
        .map_err(io_error(destination))?;
    temporary
        .persist(destination)
        .map_err(io_error(destination))
}

/// Write an archive file at `path` anew through a temporary file next to it, holding the
/// archive's lock; first remove what killed builds left next to it.
fn write_archive_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), OciError>,
) -> Result<(), OciError> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let label = format!("{file_name}.");
    temp::sweep(folder, |name| {
        name.starts_with(&format!(".{label}")) && is_temporary_name(name)
    });
    write_atomically(path, folder, &label, fill)
}

/// The lock of the archive at `path`: a lock file next to it.
fn lock_archive(path: &Path) -> Result<FileLock, OciError> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = path.with_file_name(format!(".{file_name}{LOCK_FILE}"));
    FileLock::acquire(&lock_path).map_err(|error| match path.parent() {
        // A missing folder: name the folder, as writing the archive would.
        Some(folder) if error.kind() == io::ErrorKind::NotFound => io_error(folder)(error),
        _ => io_error(&lock_path)(error),
    })
}

/// Give an output file mode 0644 whatever the umask (temporary files start at 0600).
fn set_output_mode(file: &std::fs::File, path: &Path) -> Result<(), OciError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(OUTPUT_FILE_MODE))
            .map_err(io_error(path))?;
    }
    #[cfg(not(unix))]
    let _ = (file, path, OUTPUT_FILE_MODE);
    Ok(())
}

/// Write an archive anew, keeping the entries (and the blobs they reach) of an
/// existing archive at `path`.
fn write_archive(
    path: &Path,
    name: &str,
    entry: Descriptor,
    mut blobs: BTreeMap<Sha256Digest, Blob>,
    cache: &Cache,
) -> Result<(), OciError> {
    let refuse = |reason: String| OciError::OutputNotALayout {
        reference: name.to_string(),
        reason,
    };
    // Held from reading the existing entries to renaming the new archive into place, so
    // concurrent builds into one archive keep each other's tags.
    let _lock = lock_archive(path)?;
    let existing = match fs_err::metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io_error(path)(error)),
        Ok(metadata) if metadata.is_dir() => {
            return Err(refuse(format!(
                "`{}` is a folder, not an archive",
                path.display()
            )));
        }
        Ok(_) => {
            let not_an_archive = |_| {
                refuse(format!(
                    "`{}` exists and is not an OCI archive",
                    path.display()
                ))
            };
            let imported = archive::import(path, name, cache).map_err(|error| match error {
                OciError::UnreadableArchive { .. } | OciError::NotALayout { .. } => {
                    not_an_archive(())
                }
                other => other,
            })?;
            let bytes = imported.check_layout(name).map_err(|error| match error {
                OciError::NotALayout { .. } | OciError::InvalidJson { .. } => not_an_archive(()),
                other => other,
            })?;
            existing_entries(name, &bytes)?
        }
    };
    let kept = kept_entries(existing, entry.ref_name());
    for kept_entry in &kept {
        collect_reachable(kept_entry, cache, &mut blobs)?;
    }
    let files = BTreeMap::from([
        (INDEX_JSON.to_string(), index_json(kept, &entry)),
        (OCI_LAYOUT.to_string(), layout_header()),
    ]);
    write_archive_file(path, |file| {
        archive::write_layout_tar(file, path, &blobs, &files)
    })
}

/// Add the blob `descriptor` points at, and everything it reaches, from the cache.
/// Blobs that are missing are skipped: a layout may lack blobs (image-spec
/// `image-layout.md`), and the kept entries are not envbuild's to repair.
fn collect_reachable(
    descriptor: &Value,
    cache: &Cache,
    blobs: &mut BTreeMap<Sha256Digest, Blob>,
) -> Result<(), OciError> {
    let Ok(descriptor) = serde_json::from_value::<Descriptor>(descriptor.clone()) else {
        return Ok(());
    };
    if blobs.contains_key(&descriptor.digest) {
        return Ok(());
    }
    let Some(path) = cache.lookup(EntryKind::Blob, &descriptor.digest, Some(descriptor.size))
    else {
        return Ok(());
    };
    blobs.insert(
        descriptor.digest,
        Blob {
            size: descriptor.size,
            source: BlobSource::File(path.clone()),
        },
    );
    let is_json = media_type::is_index(&descriptor.media_type)
        || media_type::is_manifest(&descriptor.media_type);
    if !is_json || descriptor.size > MAX_JSON_SIZE {
        return Ok(());
    }
    let bytes = fs_err::read(&path).map_err(io_error(&path))?;
    let Ok(document) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(());
    };
    let mut nested = Vec::new();
    nested_descriptors(&document, &mut nested);
    for child in nested {
        collect_reachable(child, cache, blobs)?;
    }
    Ok(())
}

/// Every object in `value` that looks like a descriptor (config, layers, manifests,
/// subject, blobs of artifacts).
fn nested_descriptors<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map)
            if map.contains_key("digest")
                && map.contains_key("mediaType")
                && map.contains_key("size") =>
        {
            found.push(value);
        }
        Value::Object(map) => map
            .values()
            .for_each(|child| nested_descriptors(child, found)),
        Value::Array(items) => items
            .iter()
            .for_each(|child| nested_descriptors(child, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::oci::testing::{finish_layout, gzip_layer, platform, put_image, tagged};
    use crate::oci::{ImageSettings, NewLayer, assemble, read_base};
    use crate::platform::Platform;
    use crate::repro::SourceDateEpoch;

    struct Fixture {
        folder: tempfile::TempDir,
        cache: Cache,
    }

    impl Fixture {
        fn new() -> Self {
            let folder = tempfile::tempdir().unwrap();
            let cache = Cache::open(&folder.path().join("cache")).unwrap();
            Self { folder, cache }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.folder.path().join(name)
        }

        /// An image for `platform` with one new layer holding `file`.
        fn image(&self, platform: &Platform, file: &str) -> Image {
            let base_folder = self.path(&format!("base-{platform}").replace('/', "-"));
            let manifest = put_image(&base_folder, platform, "etc/base", false);
            finish_layout(&base_folder, &[tagged(&manifest, "base")]);
            let reference = ImageReference::OciLayout {
                path: base_folder,
                tag: Some("base".to_string()),
            };
            let base = read_base(&reference, Some(platform), &self.cache).unwrap();
            let (blob, diff_id) = gzip_layer(&[(file, b"new")]);
            let digest = self.cache.insert_blob_bytes(&blob).unwrap();
            let layer = NewLayer {
                diff_id,
                digest,
                size: blob.len() as u64,
                created_by: format!("add {file}"),
            };
            assemble(
                &base,
                &[layer],
                &ImageSettings::default(),
                SourceDateEpoch::default(),
            )
            .unwrap()
        }
    }

    fn oci(path: &Path, tag: Option<&str>) -> ImageReference {
        ImageReference::OciLayout {
            path: path.to_path_buf(),
            tag: tag.map(str::to_string),
        }
    }

    fn archive(path: &Path, tag: Option<&str>) -> ImageReference {
        ImageReference::OciArchive {
            path: path.to_path_buf(),
            tag: tag.map(str::to_string),
        }
    }

    fn entries(layout: &Path) -> Vec<(Option<String>, String)> {
        let index: Value =
            serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    ref_name(entry).map(str::to_string),
                    entry["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn ok_tags_kept_and_replaced() {
        let fixture = Fixture::new();
        let amd64 = platform("linux", "amd64", None);
        let [first, second, third] = ["a", "b", "c"].map(|file| fixture.image(&amd64, file));
        let out = fixture.path("out");
        assert_eq!(
            write_images(
                std::slice::from_ref(&first),
                &oci(&out, Some("v2")),
                &fixture.cache
            )
            .unwrap(),
            first.manifest_digest
        );
        write_images(
            std::slice::from_ref(&second),
            &oci(&out, Some("v1")),
            &fixture.cache,
        )
        .unwrap();
        write_images(
            std::slice::from_ref(&third),
            &oci(&out, Some("v2")),
            &fixture.cache,
        )
        .unwrap();
        write_images(
            std::slice::from_ref(&first),
            &oci(&out, None),
            &fixture.cache,
        )
        .unwrap();
        write_images(
            std::slice::from_ref(&second),
            &oci(&out, None),
            &fixture.cache,
        )
        .unwrap();
        assert_eq!(
            entries(&out),
            vec![
                (None, second.manifest_digest.oci()),
                (Some("v1".to_string()), second.manifest_digest.oci()),
                (Some("v2".to_string()), third.manifest_digest.oci()),
            ]
        );
        assert_eq!(
            fs_err::read(out.join("oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let base = read_base(&oci(&out, Some("v2")), None, &fixture.cache).unwrap();
        assert_eq!(base.manifest_digest, third.manifest_digest);
        assert_eq!(base.layers.len(), 2);
    }

    #[test]
    fn ok_several_platforms_make_an_index() {
        let fixture = Fixture::new();
        let arm64 = fixture.image(&platform("linux", "arm64", Some("v8")), "x");
        let amd64 = fixture.image(&platform("linux", "amd64", None), "x");
        let out = fixture.path("out");
        let digest = write_images(
            &[arm64.clone(), amd64.clone()],
            &oci(&out, Some("multi")),
            &fixture.cache,
        )
        .unwrap();
        let index: Value = serde_json::from_slice(
            &fs_err::read(out.join("blobs/sha256").join(digest.hex())).unwrap(),
        )
        .unwrap();
        assert_eq!(index["mediaType"], media_type::OCI_INDEX);
        let platforms: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"], "sorted by platform string");
        assert_eq!(
            entries(&out),
            vec![(Some("multi".to_string()), digest.oci())]
        );
        let wanted = platform("linux", "arm64", None);
        let base = read_base(&oci(&out, Some("multi")), Some(&wanted), &fixture.cache).unwrap();
        assert_eq!(base.manifest_digest, arm64.manifest_digest);
    }

    #[test]
    fn ok_archive_is_deterministic_and_keeps_tags() {
        let fixture = Fixture::new();
        let amd64 = platform("linux", "amd64", None);
        let [first, second] = ["a", "b"].map(|file| fixture.image(&amd64, file));
        let out = fixture.path("image.tar");
        write_images(
            std::slice::from_ref(&first),
            &archive(&out, Some("one")),
            &fixture.cache,
        )
        .unwrap();
        let bytes = fs_err::read(&out).unwrap();
        write_images(
            std::slice::from_ref(&first),
            &archive(&out, Some("one")),
            &fixture.cache,
        )
        .unwrap();
        assert_eq!(
            Sha256Digest::of(&fs_err::read(&out).unwrap()),
            Sha256Digest::of(&bytes),
            "rewriting gives the same bytes"
        );
        let other = fixture.path("other.tar");
        write_images(
            std::slice::from_ref(&first),
            &archive(&other, Some("one")),
            &fixture.cache,
        )
        .unwrap();
        assert_eq!(
            Sha256Digest::of(&fs_err::read(&other).unwrap()),
            Sha256Digest::of(&bytes),
            "the output path does not matter"
        );

        let mut tar = tar::Archive::new(&bytes[..]);
        let listing: Vec<(String, u64)> = tar
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    entry.header().mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = listing.iter().map(|(name, _)| name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(&names[..2], ["blobs/", "blobs/sha256/"]);
        assert_eq!(&names[names.len() - 2..], ["index.json", "oci-layout"]);
        assert!(listing.iter().all(|(_, mtime)| *mtime == 0));

        write_images(
            std::slice::from_ref(&second),
            &archive(&out, Some("two")),
            &fixture.cache,
        )
        .unwrap();
        // Read back through a fresh cache, so every blob must come from the archive.
        let fresh = Cache::open(&fixture.path("fresh-cache")).unwrap();
        let one = read_base(&archive(&out, Some("one")), None, &fresh).unwrap();
        assert_eq!(one.manifest_digest, first.manifest_digest);
        let two = read_base(&archive(&out, Some("two")), None, &fresh).unwrap();
        assert_eq!(two.manifest_digest, second.manifest_digest);
    }

    fn docker_archive(path: &Path, name: Option<&str>) -> ImageReference {
        ImageReference::DockerArchive {
            path: path.to_path_buf(),
            name: name.map(|name| name.parse().unwrap()),
        }
    }

    /// Entry names and the bytes of the small files, in archive order.
    fn tar_listing(bytes: &[u8]) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
        let mut names = Vec::new();
        let mut files = BTreeMap::new();
        let mut tar = tar::Archive::new(bytes);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            assert_eq!(entry.header().mtime().unwrap(), 0, "{name}");
            if !name.starts_with("blobs/") {
                let mut data = Vec::new();
                io::Read::read_to_end(&mut entry, &mut data).unwrap();
                files.insert(name.clone(), data);
            }
            names.push(name);
        }
        (names, files)
    }

    #[test]
    fn ok_docker_archive_layout_and_manifest() {
        let fixture = Fixture::new();
        let image = fixture.image(&platform("linux", "amd64", None), "a");
        let out = fixture.path("app.tar");
        let digest = write_images(
            std::slice::from_ref(&image),
            &docker_archive(&out, Some("myapp:1.0")),
            &fixture.cache,
        )
        .unwrap();
        assert_eq!(digest, image.manifest_digest);
        let bytes = fs_err::read(&out).unwrap();
        let (names, files) = tar_listing(&bytes);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries sorted by path");
        assert_eq!(&names[..2], ["blobs/", "blobs/sha256/"]);
        assert_eq!(
            files.keys().map(String::as_str).collect::<Vec<_>>(),
            ["index.json", "manifest.json", "oci-layout", "repositories"]
        );
        // Every blob the manifest names is in the archive.
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let config = manifest[0]["Config"].as_str().unwrap();
        assert_eq!(
            config,
            format!("blobs/sha256/{}", image.config_digest.hex())
        );
        let layers = manifest[0]["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), image.layers.len());
        for path in layers
            .iter()
            .map(|layer| layer.as_str().unwrap())
            .chain([config])
        {
            assert!(names.iter().any(|name| name == path), "{path} is missing");
        }
        assert_eq!(manifest[0]["RepoTags"], json!(["myapp:1.0"]));
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.manifest_digest.oci());
        assert_eq!(entry["platform"]["architecture"], "amd64");
        assert_eq!(
            entry["annotations"]["io.containerd.image.name"],
            "docker.io/library/myapp:1.0"
        );
        assert_eq!(entry["annotations"][annotation::REF_NAME], "1.0");

        // The same image gives the same bytes, also when it replaces the archive.
        write_images(
            std::slice::from_ref(&image),
            &docker_archive(&out, Some("myapp:1.0")),
            &fixture.cache,
        )
        .unwrap();
        assert_eq!(fs_err::read(&out).unwrap(), bytes);
        // And it reads back as a layout, through a fresh cache.
        let fresh = Cache::open(&fixture.path("fresh-cache")).unwrap();
        let layout = ImageReference::OciArchive {
            path: out.clone(),
            tag: Some("1.0".to_string()),
        };
        let base = read_base(&layout, None, &fresh).unwrap();
        assert_eq!(base.manifest_digest, image.manifest_digest);
    }

    #[test]
    fn err_docker_archive_holds_one_platform() {
        let fixture = Fixture::new();
        let amd64 = fixture.image(&platform("linux", "amd64", None), "x");
        let arm64 = fixture.image(&platform("linux", "arm64", None), "x");
        let out = fixture.path("app.tar");
        let error = write_images(
            &[amd64, arm64],
            &docker_archive(&out, Some("myapp:1.0")),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::SinglePlatformOutput { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("linux/amd64, linux/arm64")
                && message.contains("--platform")
                && message.contains("oci-archive:"),
            "{message}"
        );
        assert!(!out.exists());
        // A registry takes several platforms (as an image index).
        check_output(
            &ImageReference::Registry("127.0.0.1:5000/app:1".to_string()),
            &["linux/amd64".to_string(), "linux/arm64".to_string()],
        )
        .unwrap();
    }

    #[test]
    fn err_docker_archive_does_not_replace_other_files() {
        let fixture = Fixture::new();
        let image = fixture.image(&platform("linux", "amd64", None), "a");
        let oci_tar = fixture.path("oci.tar");
        write_images(
            std::slice::from_ref(&image),
            &archive(&oci_tar, Some("one")),
            &fixture.cache,
        )
        .unwrap();
        let before = fs_err::read(&oci_tar).unwrap();
        let error = write_images(
            std::slice::from_ref(&image),
            &docker_archive(&oci_tar, None),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::OutputNotALayout { .. }),
            "{error}"
        );
        assert_eq!(fs_err::read(&oci_tar).unwrap(), before);
    }

    #[test]
    fn err_refuses_to_overwrite_other_things() {
        let fixture = Fixture::new();
        let image = fixture.image(&platform("linux", "amd64", None), "a");
        let folder = fixture.path("not-a-layout");
        fs_err::create_dir_all(&folder).unwrap();
        fs_err::write(folder.join("notes.txt"), b"mine").unwrap();
        let error = write_images(
            std::slice::from_ref(&image),
            &oci(&folder, None),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::OutputNotALayout { .. }),
            "{error}"
        );
        let file = fixture.path("notes.txt");
        fs_err::write(
            &file,
            b"not an archive, and long enough to not be a tar header",
        )
        .unwrap();
        let error = write_images(
            std::slice::from_ref(&image),
            &archive(&file, None),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::OutputNotALayout { .. }),
            "{error}"
        );
        assert_eq!(
            fs_err::read(&file).unwrap(),
            b"not an archive, and long enough to not be a tar header"
        );
    }

    #[test]
    fn err_bad_inputs() {
        let fixture = Fixture::new();
        let image = fixture.image(&platform("linux", "amd64", None), "a");
        let out = fixture.path("out");
        let error = write_images(&[], &oci(&out, None), &fixture.cache).unwrap_err();
        assert!(matches!(error, OciError::NoImages { .. }));
        let error = write_images(
            &[image.clone(), image.clone()],
            &oci(&out, None),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::DuplicatePlatform { .. }),
            "{error}"
        );
        let error = write_images(
            std::slice::from_ref(&image),
            &oci(&out, Some("bad tag")),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(matches!(error, OciError::InvalidTag { .. }), "{error}");
        let mut missing = image.clone();
        missing.layers[1].digest = Sha256Digest::of(b"not in the cache");
        let error = write_images(&[missing], &oci(&out, None), &fixture.cache).unwrap_err();
        assert!(matches!(error, OciError::NotInCache { .. }), "{error}");
        assert!(!out.exists(), "nothing is written on error");
    }

    /// Every file under `folder` with its bytes.
    fn snapshot(folder: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut pending = vec![folder.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in fs_err::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    files.insert(path.clone(), Vec::new());
                    pending.push(path);
                } else {
                    files.insert(path.clone(), fs_err::read(&path).unwrap());
                }
            }
        }
        files
    }

    /// Replace the cached blob of the image's new layer with other bytes of the same
    /// size, so writing it fails half-way (after the folders and `oci-layout`).
    fn corrupt_new_layer(fixture: &Fixture, image: &Image) {
        let layer = image.layers.last().unwrap();
        let path = fixture.cache.entry_path(EntryKind::Blob, &layer.digest);
        fs_err::write(&path, vec![0; layer.size as usize]).unwrap();
    }

    #[test]
    fn err_failed_first_write_leaves_nothing() {
        let fixture = Fixture::new();
        let image = fixture.image(&platform("linux", "amd64", None), "a");
        corrupt_new_layer(&fixture, &image);
        let out = fixture.path("new/deeper/layout");
        let error = write_images(
            std::slice::from_ref(&image),
            &oci(&out, Some("v1")),
            &fixture.cache,
        )
        .unwrap_err();
        assert!(matches!(error, OciError::DigestMismatch { .. }), "{error}");
        assert!(
            !fixture.path("new").exists(),
            "the folders this write made are gone"
        );
        // A folder that existed, empty, stays, and stays empty.
        let empty = fixture.path("empty");
        fs_err::create_dir(&empty).unwrap();
        write_images(
            std::slice::from_ref(&image),
            &oci(&empty, Some("v1")),
            &fixture.cache,
        )
        .unwrap_err();
        assert_eq!(fs_err::read_dir(&empty).unwrap().count(), 0);
    }

    #[test]
    fn err_failed_write_leaves_existing_layout_unchanged() {
        let fixture = Fixture::new();
        let amd64 = platform("linux", "amd64", None);
        let [good, bad] = ["a", "b"].map(|file| fixture.image(&amd64, file));
        let out = fixture.path("out");
        write_images(
            std::slice::from_ref(&good),
            &oci(&out, Some("v1")),
            &fixture.cache,
        )
        .unwrap();
        let before = snapshot(&out);
        corrupt_new_layer(&fixture, &bad);
        write_images(
            std::slice::from_ref(&bad),
            &oci(&out, Some("v2")),
            &fixture.cache,
        )
        .unwrap_err();
        assert_eq!(snapshot(&out), before);
    }

    #[test]
    fn ok_concurrent_writes_keep_every_tag() {
        let fixture = Fixture::new();
        let amd64 = platform("linux", "amd64", None);
        let images = ["a", "b", "c", "d"].map(|file| fixture.image(&amd64, file));
        for (out, reference) in [
            (
                fixture.path("layout"),
                oci as fn(&Path, Option<&str>) -> ImageReference,
            ),
            (fixture.path("image.tar"), archive),
        ] {
            std::thread::scope(|scope| {
                for (index, image) in images.iter().enumerate() {
                    let (out, cache) = (&out, &fixture.cache);
                    scope.spawn(move || {
                        let tag = format!("t{index}");
                        for _ in 0..3 {
                            write_images(
                                std::slice::from_ref(image),
                                &reference(out, Some(&tag)),
                                cache,
                            )
                            .unwrap();
                        }
                    });
                }
            });
            let fresh = Cache::open(&fixture.path("fresh")).unwrap();
            for (index, image) in images.iter().enumerate() {
                let tag = format!("t{index}");
                let base = read_base(&reference(&out, Some(&tag)), None, &fresh).unwrap();
                assert_eq!(base.manifest_digest, image.manifest_digest, "{tag}");
            }
            let parent = out.parent().unwrap();
            let leftovers: Vec<_> = fs_err::read_dir(parent)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
        assert_eq!(entries(&fixture.path("layout")).len(), 4);
    }

    #[test]
    fn ok_stale_temporaries_are_swept_and_none_left_in_blobs() {
        let fixture = Fixture::new();
        let image = fixture.image(&platform("linux", "amd64", None), "a");
        let out = fixture.path("out");
        write_images(
            std::slice::from_ref(&image),
            &oci(&out, Some("v1")),
            &fixture.cache,
        )
        .unwrap();
        // What killed builds leave: envbuild 0.1 wrote its temporaries into
        // `blobs/sha256/`, this version at the root; and a lock file.
        let stale = [
            out.join("blobs/sha256/.0123abcd.Xy12.envbuild-tmp"),
            out.join(".blob-Xy12.envbuild-tmp"),
            out.join(LOCK_FILE),
        ];
        for path in &stale {
            fs_err::write(path, b"partial").unwrap();
        }
        write_images(
            std::slice::from_ref(&image),
            &oci(&out, Some("v2")),
            &fixture.cache,
        )
        .unwrap();
        for path in &stale {
            assert!(!path.exists(), "{}", path.display());
        }
        let mut root: Vec<String> = fs_err::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        root.sort();
        assert_eq!(root, ["blobs", "index.json", "oci-layout"]);
        for entry in fs_err::read_dir(out.join("blobs/sha256")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let digest = Sha256Digest::from_hex(&name).unwrap();
            assert!(
                file_has_digest(&path, &digest, fs_err::metadata(&path).unwrap().len()).unwrap()
            );
        }
    }
}
