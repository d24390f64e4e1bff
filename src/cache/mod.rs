//! The content-addressed cache. Wheels and OCI blobs are stored by SHA-256 under
//! `wheels/sha256/<hex>` and `blobs/sha256/<hex>`; the layer index maps a layer key (a
//! hash of everything a layer's bytes depend on) to the layer's digests. Every entry is
//! written to a temporary file in the same folder and renamed into place, so a killed
//! or concurrent build never leaves a partial entry; entries are checked by size on use.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{HashingWriter, Sha256Digest};

/// Errors from the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A cache folder or file could not be created, read or written.
    #[error("cache I/O failed on `{}`", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Content written into the cache did not match what was expected.
    #[error(
        "content for `{kind}` entry has digest {actual} and size {actual_size}, but {expected} and size {expected_size} were expected"
    )]
    Mismatch {
        /// `wheel` or `blob`.
        kind: &'static str,
        /// Expected digest.
        expected: Sha256Digest,
        /// Digest of the content.
        actual: Sha256Digest,
        /// Expected size.
        expected_size: u64,
        /// Size of the content.
        actual_size: u64,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The kinds of content-addressed entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A wheel file, by the SHA-256 the lockfile records.
    Wheel,
    /// An OCI blob (layer, config, manifest), by its digest.
    Blob,
}

impl EntryKind {
    fn folder(self) -> &'static str {
        match self {
            Self::Wheel => "wheels",
            Self::Blob => "blobs",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Wheel => "wheel",
            Self::Blob => "blob",
        }
    }
}

/// What the layer index remembers about a built layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// SHA-256 of the uncompressed tar.
    pub diff_id: Sha256Digest,
    /// SHA-256 of the compressed blob.
    pub digest: Sha256Digest,
    /// Size of the compressed blob.
    pub size: u64,
}

/// A content-addressed cache rooted at one folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A file being written into the cache; dropped without [`PendingEntry::commit`] it is
/// deleted.
pub struct PendingEntry {
    cache: Cache,
    kind: EntryKind,
    writer: HashingWriter<tempfile::NamedTempFile>,
}

impl PendingEntry {
    /// Verify against `expected` (if given), then move into place. Returns the digest
    /// and size of what was written.
    pub fn commit(
        self,
        expected: Option<(Sha256Digest, u64)>,
    ) -> Result<(Sha256Digest, u64), CacheError> {
        let (mut file, digest, size) = self.writer.finish();
        let temp_path = file.path().to_path_buf();
        file.flush().map_err(io_error(&temp_path))?;
        if let Some((expected_digest, expected_size)) = expected
            && (expected_digest != digest || expected_size != size)
        {
            return Err(CacheError::Mismatch {
                kind: self.kind.name(),
                expected: expected_digest,
                actual: digest,
                expected_size,
                actual_size: size,
            });
        }
        let destination = self.cache.entry_path(self.kind, &digest);
        file.as_file().sync_data().map_err(io_error(&temp_path))?;
        file.persist(&destination).map_err(|error| CacheError::Io {
            path: destination.clone(),
            source: error.error,
        })?;
        Ok((digest, size))
    }

    /// Path of the temporary file (for diagnostics).
    pub fn temp_path(&mut self) -> PathBuf {
        self.writer.get_mut().path().to_path_buf()
    }
}

impl Write for PendingEntry {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Cache {
    /// Open (creating if needed) a cache at `root`.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        for folder in ["wheels/sha256", "blobs/sha256", "layers", "tmp"] {
            let path = root.join(folder);
            fs_err::create_dir_all(&path).map_err(|error| CacheError::Io {
                path: path.clone(),
                source: io::Error::new(error.kind(), error),
            })?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The default cache folder: `$ENVBUILD_CACHE_DIR` is handled by the caller; this is
    /// the user's cache dir plus `envbuild`.
    pub fn default_root() -> PathBuf {
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("envbuild")
    }

    /// The cache's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an entry lives (whether or not it exists).
    pub fn entry_path(&self, kind: EntryKind, digest: &Sha256Digest) -> PathBuf {
        self.root
            .join(kind.folder())
            .join("sha256")
            .join(digest.hex())
    }

    /// The path of an entry if it is present with the expected size (a cheap check on
    /// every use; the full hash was checked when it was written).
    pub fn lookup(
        &self,
        kind: EntryKind,
        digest: &Sha256Digest,
        size: Option<u64>,
    ) -> Option<PathBuf> {
        let path = self.entry_path(kind, digest);
        let metadata = std::fs::metadata(&path).ok()?;
        if !metadata.is_file() {
            return None;
        }
        match size {
            Some(expected) if metadata.len() != expected => None,
            _ => Some(path),
        }
    }

    /// Start writing a new entry of `kind`.
    pub fn begin(&self, kind: EntryKind) -> Result<PendingEntry, CacheError> {
        let folder = self.root.join("tmp");
        let file = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&folder)
            .map_err(io_error(&folder))?;
        Ok(PendingEntry {
            cache: self.clone(),
            kind,
            writer: HashingWriter::new(file),
        })
    }

    /// Copy everything from `reader` into a new entry, verifying it against `expected`.
    pub fn insert_from_reader(
        &self,
        kind: EntryKind,
        reader: &mut dyn Read,
        expected: Option<(Sha256Digest, u64)>,
    ) -> Result<(Sha256Digest, u64), CacheError> {
        let mut pending = self.begin(kind)?;
        let temp_path = pending.temp_path();
        io::copy(reader, &mut pending).map_err(io_error(&temp_path))?;
        pending.commit(expected)
    }

    /// Store bytes held in memory as a blob.
    pub fn insert_blob_bytes(&self, bytes: &[u8]) -> Result<Sha256Digest, CacheError> {
        let digest = Sha256Digest::of(bytes);
        if self
            .lookup(EntryKind::Blob, &digest, Some(bytes.len() as u64))
            .is_none()
        {
            self.insert_from_reader(
                EntryKind::Blob,
                &mut &bytes[..],
                Some((digest, bytes.len() as u64)),
            )?;
        }
        Ok(digest)
    }

    /// The layer recorded under `key`, if its blob is still present.
    pub fn layer(&self, key: &Sha256Digest) -> Option<LayerRecord> {
        let record: LayerRecord = self.record("layers", key)?;
        self.lookup(EntryKind::Blob, &record.digest, Some(record.size))?;
        Some(record)
    }

    /// Remember a built layer under `key`.
    pub fn put_layer(&self, key: &Sha256Digest, record: &LayerRecord) -> Result<(), CacheError> {
        self.put_record("layers", key, record)
    }

    /// A small JSON record of `kind` (a folder name) stored under `key`, if present and
    /// readable. Records are derived data: an unreadable one is treated as absent.
    pub fn record<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        key: &Sha256Digest,
    ) -> Option<T> {
        let bytes = std::fs::read(self.root.join(kind).join(key.hex())).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Store a small JSON record of `kind` under `key` (temporary file, then rename).
    pub fn put_record<T: Serialize>(
        &self,
        kind: &str,
        key: &Sha256Digest,
        record: &T,
    ) -> Result<(), CacheError> {
        let folder = self.root.join(kind);
        fs_err::create_dir_all(&folder).map_err(|error| CacheError::Io {
            path: folder.clone(),
            source: io::Error::new(error.kind(), error),
        })?;
        let bytes = serde_json::to_vec(record).expect("cache records serialize");
        let mut file = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&folder)
            .map_err(io_error(&folder))?;
        file.write_all(&bytes).map_err(io_error(&folder))?;
        let destination = folder.join(key.hex());
        file.persist(&destination).map_err(|error| CacheError::Io {
            path: destination.clone(),
            source: error.error,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_insert_and_lookup() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        let digest = cache.insert_blob_bytes(b"hello").unwrap();
        assert_eq!(digest, Sha256Digest::of(b"hello"));
        assert!(cache.lookup(EntryKind::Blob, &digest, Some(5)).is_some());
        assert!(cache.lookup(EntryKind::Blob, &digest, Some(6)).is_none());
        assert!(cache.lookup(EntryKind::Wheel, &digest, None).is_none());
    }

    #[test]
    fn err_mismatch_leaves_nothing() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        let wrong = Sha256Digest::of(b"other");
        let error = cache
            .insert_from_reader(EntryKind::Wheel, &mut &b"hello"[..], Some((wrong, 5)))
            .unwrap_err();
        assert!(matches!(error, CacheError::Mismatch { .. }));
        assert_eq!(
            std::fs::read_dir(folder.path().join("tmp"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(folder.path().join("wheels/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}
