//! The content-addressed cache. Wheels and OCI blobs are stored by SHA-256 under
//! `wheels/sha256/<hex>` and `blobs/sha256/<hex>`; small JSON records (the layer index,
//! base detections, diff_id verdicts, index lookups, blob locations) under
//! `<kind>/<hex>`, where the key is a hash of everything the record depends on. Every
//! entry and record is written to a temporary file in `tmp/` and renamed into place, so
//! a killed or concurrent build never leaves a partial entry; entries are checked by
//! size on use. Records are derived data: an unreadable one counts as absent, two
//! builds writing the same key write the same content, and a record that merges what
//! several builds saw is updated under a lock ([`Cache::update_record`]).
//!
//! [`temp`] keeps temporaries from outliving their process: opening a cache deletes the
//! temporaries and record lock files in `tmp/` that no live process holds.

pub mod temp;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use temp::remove_temporaries;
use temp::{FileLock, TempFile};

use crate::digest::{HashingWriter, Sha256Digest};

/// Errors from the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A cache folder or file could not be created, read or written.
    #[error("{}", io_message(path, source))]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Content written into the cache did not match what was expected.
    #[error("content for `{kind}` entry {}", mismatch_detail(expected, actual, *expected_size, *actual_size))]
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

/// What differs, and only that: the sizes when they differ (the digests then differ too,
/// and say nothing more), else the digests.
fn mismatch_detail(
    expected: &Sha256Digest,
    actual: &Sha256Digest,
    expected_size: u64,
    actual_size: u64,
) -> String {
    if expected_size != actual_size {
        format!("has {actual_size} bytes, but {expected_size} were expected")
    } else {
        format!("has digest {actual}, but {expected} was expected (both {actual_size} bytes)")
    }
}

fn io_message(path: &Path, source: &io::Error) -> String {
    if is_disk_full(source) {
        format!(
            "the disk holding the cache is full: cannot write `{}`; free some space, or point `--cache-dir` (`ENVBUILD_CACHE_DIR`) at a disk with room",
            path.display()
        )
    } else {
        format!("cache I/O failed on `{}`", path.display())
    }
}

/// Whether `error` says the disk (or the user's quota on it) is full.
pub fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Create `path` and its parents, keeping the error's kind.
fn create_folder(path: &Path) -> Result<(), CacheError> {
    fs_err::create_dir_all(path).map_err(|error| CacheError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(error.kind(), error),
    })
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
    writer: HashingWriter<TempFile>,
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
        file.persist(&destination).map_err(io_error(&destination))?;
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
    /// Open (creating if needed) a cache at `root`, and delete the temporaries that
    /// killed builds left in it.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        for folder in ["wheels/sha256", "blobs/sha256", "layers", "tmp"] {
            create_folder(&root.join(folder))?;
        }
        let cache = Self {
            root: root.to_path_buf(),
        };
        // Everything in `tmp/` is a temporary (older versions named them `.partial-*`)
        // or a record's lock file: only those nobody holds go.
        temp::sweep(&cache.temp_folder(), |_| true);
        Ok(cache)
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

    /// Where temporaries are written before they are renamed into place.
    fn temp_folder(&self) -> PathBuf {
        self.root.join("tmp")
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
        let metadata = fs_err::metadata(&path).ok()?;
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
        let folder = self.temp_folder();
        let file =
            TempFile::new_in(&folder, &format!("{}-", kind.name())).map_err(io_error(&folder))?;
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

    /// Where the record of `kind` (a folder name, fixed by the caller's code) under
    /// `key` lives.
    pub(crate) fn record_path(&self, kind: &str, key: &Sha256Digest) -> PathBuf {
        self.root.join(kind).join(key.hex())
    }

    /// A small JSON record of `kind` stored under `key`, if present and readable.
    /// Records are derived data: an unreadable one is treated as absent.
    pub fn record<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        key: &Sha256Digest,
    ) -> Option<T> {
        let bytes = fs_err::read(self.record_path(kind, key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Store a small JSON record of `kind` under `key`, replacing any (a temporary file
    /// renamed into place: readers see the old record or the new one, never a mix).
    pub fn put_record<T: Serialize>(
        &self,
        kind: &str,
        key: &Sha256Digest,
        record: &T,
    ) -> Result<(), CacheError> {
        let destination = self.record_path(kind, key);
        create_folder(destination.parent().expect("a record has a folder"))?;
        let bytes = serde_json::to_vec(record).expect("cache records serialize");
        let folder = self.temp_folder();
        let mut file = TempFile::new_in(&folder, "record-").map_err(io_error(&folder))?;
        let temp_path = file.path().to_path_buf();
        file.write_all(&bytes).map_err(io_error(&temp_path))?;
        file.persist(&destination).map_err(io_error(&destination))
    }

    /// Read, change and store the record of `kind` under `key` while holding its lock,
    /// so concurrent builds that merge into one record never lose each other's
    /// updates. `update` gets the current record (`None` when absent or unreadable).
    pub fn update_record<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        key: &Sha256Digest,
        update: impl FnOnce(Option<T>) -> T,
    ) -> Result<(), CacheError> {
        // In `tmp/`, so the sweep of `Cache::open` removes one a killed build left.
        let lock_path = self.temp_folder().join(format!(
            ".record-{}-{}.lock",
            kind.replace('/', "_"),
            key.hex()
        ));
        let _lock = FileLock::acquire(&lock_path).map_err(io_error(&lock_path))?;
        let record = update(self.record(kind, key));
        self.put_record(kind, key, &record)
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
    fn ok_update_record_keeps_every_concurrent_update() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        let key = Sha256Digest::of(b"shared");
        let threads: Vec<_> = (0..6)
            .map(|thread| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for item in 0..10 {
                        cache
                            .update_record("merged", &key, |old: Option<Vec<String>>| {
                                let mut items = old.unwrap_or_default();
                                items.push(format!("{thread}-{item}"));
                                items
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let items: Vec<String> = cache.record("merged", &key).unwrap();
        assert_eq!(items.len(), 60, "no update is lost");
        // Nothing but the record is left: no lock file, no temporary.
        let names: Vec<_> = fs_err::read_dir(folder.path().join("merged"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(key.hex())]);
        assert_eq!(
            fs_err::read_dir(folder.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn ok_open_removes_abandoned_temporaries() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        // What a killed build leaves, in this version's and in 0.1's naming.
        let abandoned = [".blob-x1.envbuild-tmp", ".partial-Ab12"];
        for name in abandoned {
            fs_err::write(folder.path().join("tmp").join(name), b"partial").unwrap();
        }
        let mut live = cache.begin(EntryKind::Blob).unwrap();
        live.write_all(b"in progress").unwrap();
        Cache::open(folder.path()).unwrap();
        let left: Vec<PathBuf> = fs_err::read_dir(folder.path().join("tmp"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(left, [live.temp_path()], "only the live temporary stays");
        live.commit(None).unwrap();
        assert_eq!(
            fs_err::read_dir(folder.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn err_disk_full_is_said_plainly() {
        let error = CacheError::Io {
            path: PathBuf::from("/cache/tmp/.blob-x.envbuild-tmp"),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert_eq!(
            error.to_string(),
            "the disk holding the cache is full: cannot write `/cache/tmp/.blob-x.envbuild-tmp`; free some space, or point `--cache-dir` (`ENVBUILD_CACHE_DIR`) at a disk with room"
        );
        let error = CacheError::Io {
            path: PathBuf::from("/cache/x"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(error.to_string(), "cache I/O failed on `/cache/x`");
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
