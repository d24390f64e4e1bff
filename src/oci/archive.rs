//! `oci-archive:` files: an OCI image layout in a tar (as containers/image writes
//! them). Reading streams the tar once, putting every `blobs/sha256/*` entry into the
//! cache (verified against its name); writing emits a deterministic tar.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::error::{OciError, io_error};
use super::layout::{check_layout_version, read_limited};
use crate::cache::{Cache, EntryKind};
use crate::digest::{HashingReader, Sha256Digest};
use crate::repro::{self, SourceDateEpoch};

/// What an archive holds besides its blobs, which went into the cache.
pub(crate) struct ImportedArchive {
    /// `index.json`, if present.
    pub index_json: Option<Vec<u8>>,
    /// `oci-layout`, if present.
    pub oci_layout: Option<Vec<u8>>,
}

impl ImportedArchive {
    /// Check that the archive is a layout and return its `index.json`.
    pub fn check_layout(self, name: &str) -> Result<Vec<u8>, OciError> {
        check_layout_version(name, self.oci_layout.as_deref())?;
        self.index_json.ok_or_else(|| OciError::NotALayout {
            reference: name.to_string(),
            reason: "the archive has no `index.json`".to_string(),
        })
    }
}

/// Stream the archive at `path` once: blobs go into `cache` (verified against their
/// names), `index.json` and `oci-layout` are returned. A gzip-compressed archive is
/// accepted too.
pub(crate) fn import(path: &Path, name: &str, cache: &Cache) -> Result<ImportedArchive, OciError> {
    let file = match fs_err::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(OciError::MissingImage {
                reference: name.to_string(),
                path: path.to_path_buf(),
            });
        }
        Err(error) => return Err(io_error(path)(error)),
    };
    if file.metadata().map_err(io_error(path))?.is_dir() {
        return Err(OciError::NotALayout {
            reference: name.to_string(),
            reason: "it is a folder, not a tar file; use `oci:` for a layout folder".to_string(),
        });
    }
    let mut buffered = BufReader::new(file);
    let is_gzip = buffered
        .fill_buf()
        .map_err(io_error(path))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if is_gzip {
        Box::new(flate2::read::GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let unreadable = |source: io::Error| OciError::UnreadableArchive {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    let mut imported = ImportedArchive {
        index_json: None,
        oci_layout: None,
    };
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let entry_path = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .into_owned();
        let entry_path = entry_path.trim_start_matches("./").trim_start_matches('/');
        match entry_path {
            "index.json" => {
                imported.index_json = Some(read_limited(name, "`index.json`", &mut entry, path)?);
            }
            "oci-layout" => {
                imported.oci_layout = Some(read_limited(name, "`oci-layout`", &mut entry, path)?);
            }
            _ => {
                let Some(digest) = entry_path
                    .strip_prefix("blobs/sha256/")
                    .and_then(|hex| Sha256Digest::from_hex(hex).ok())
                else {
                    continue;
                };
                let size = entry.size();
                if cache.lookup(EntryKind::Blob, &digest, Some(size)).is_some() {
                    continue;
                }
                let location = format!("{} (entry `{entry_path}`)", path.display());
                cache
                    .insert_from_reader(EntryKind::Blob, &mut entry, Some((digest, size)))
                    .map_err(|error| OciError::from_cache(error, digest, &location))?;
            }
        }
    }
    Ok(imported)
}

/// Where the bytes of a blob to write come from.
#[derive(Debug, Clone)]
pub(crate) enum BlobSource {
    /// Held in memory (configs, manifests, indexes).
    Bytes(Vec<u8>),
    /// A file of the cache.
    File(std::path::PathBuf),
}

/// A blob to write: its size and where its bytes are.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    /// Expected size.
    pub size: u64,
    /// The bytes.
    pub source: BlobSource,
}

impl Blob {
    /// Copy the blob to `writer`, checking digest and size on the way.
    pub fn copy_to(
        &self,
        digest: &Sha256Digest,
        writer: &mut dyn io::Write,
        target: &Path,
    ) -> Result<(), OciError> {
        let (actual, actual_size, location) = match &self.source {
            BlobSource::Bytes(bytes) => {
                writer.write_all(bytes).map_err(io_error(target))?;
                (
                    Sha256Digest::of(bytes),
                    bytes.len() as u64,
                    "memory".to_string(),
                )
            }
            BlobSource::File(path) => {
                let file = fs_err::File::open(path).map_err(io_error(path))?;
                let mut reader = HashingReader::new(file);
                io::copy(&mut reader, writer).map_err(io_error(target))?;
                let (actual, actual_size) = reader.finish();
                (actual, actual_size, path.display().to_string())
            }
        };
        if actual != *digest || actual_size != self.size {
            return Err(OciError::DigestMismatch {
                location,
                expected: *digest,
                actual,
                expected_size: self.size,
                actual_size,
            });
        }
        Ok(())
    }
}

/// Write a layout as a deterministic tar to `writer`: entries sorted by path, so
/// `blobs/`, `blobs/sha256/` and the blobs by digest come between the top-level `files`
/// that sort before and after `blobs/` (`index.json`, `oci-layout`, and for a
/// docker-archive `manifest.json` and `repositories`), directories present, and every
/// header fixed by [`repro::tar_header`] with mtime 0. The mtime is 0 rather than
/// SOURCE_DATE_EPOCH because everything in the archive is already pinned by digest, so
/// the archive is a pure function of its layout. Every archive envbuild writes goes
/// through here (`oci-archive:` and `docker-archive:`).
pub(crate) fn write_layout_tar(
    writer: &mut dyn io::Write,
    target: &Path,
    blobs: &BTreeMap<Sha256Digest, Blob>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), OciError> {
    let epoch = SourceDateEpoch::from_seconds(0);
    let mut builder = tar::Builder::new(writer);
    let append_file = |builder: &mut tar::Builder<&mut dyn io::Write>,
                       name: &str,
                       bytes: &[u8]|
     -> Result<(), OciError> {
        let mut header = repro::tar_header(
            tar::EntryType::Regular,
            repro::FILE_MODE,
            bytes.len() as u64,
            epoch,
        );
        builder
            .append_data(&mut header, name, bytes)
            .map_err(io_error(target))
    };
    let (before, after): (Vec<_>, Vec<_>) =
        files.iter().partition(|(name, _)| name.as_str() < "blobs/");
    for (name, bytes) in before {
        append_file(&mut builder, name, bytes)?;
    }
    for folder in ["blobs/", "blobs/sha256/"] {
        let mut header = repro::tar_header(tar::EntryType::Directory, repro::DIR_MODE, 0, epoch);
        builder
            .append_data(&mut header, folder, io::empty())
            .map_err(io_error(target))?;
    }
    // `Sha256Digest` orders by its bytes, which is the order of its lowercase hex.
    for (digest, blob) in blobs {
        let mut header =
            repro::tar_header(tar::EntryType::Regular, repro::FILE_MODE, blob.size, epoch);
        let entry_path = format!("blobs/sha256/{}", digest.hex());
        // Stream through a checking reader: a blob that is not what its name says must
        // not land in the archive.
        let reader: Box<dyn Read + '_> = match &blob.source {
            BlobSource::Bytes(data) => Box::new(&data[..]),
            BlobSource::File(path) => Box::new(fs_err::File::open(path).map_err(io_error(path))?),
        };
        let mut checked = HashingReader::new(reader.take(blob.size));
        builder
            .append_data(&mut header, &entry_path, &mut checked)
            .map_err(io_error(target))?;
        let (actual, actual_size) = checked.finish();
        if actual != *digest || actual_size != blob.size {
            return Err(OciError::DigestMismatch {
                location: match &blob.source {
                    BlobSource::File(path) => path.display().to_string(),
                    BlobSource::Bytes(_) => "memory".to_string(),
                },
                expected: *digest,
                actual,
                expected_size: blob.size,
                actual_size,
            });
        }
    }
    for (name, bytes) in after {
        append_file(&mut builder, name, bytes)?;
    }
    builder
        .into_inner()
        .map_err(io_error(target))?
        .flush()
        .map_err(io_error(target))
}
