//! Which repositories of a registry hold which blob, as seen by the pulls and pushes of
//! this machine, so a push to a new repository can mount a blob (distribution spec,
//! "Mounting a blob from another repository") instead of uploading it.
//!
//! One small JSON file per registry, `<cache>/registry/<registry>.json`:
//! `{"blobs": {"sha256:<hex>": ["team/base", "team/app"]}}`, most recently seen first,
//! at most [`MAX_REPOSITORIES`] per blob. It is only a hint: a mount the registry
//! refuses becomes an upload, and a file that cannot be read or written is ignored
//! (with a warning). Updates take a lock file and replace the JSON file by renaming a
//! temporary file into place, so concurrent builds never see half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::digest::Sha256Digest;

/// Most repositories remembered per blob.
const MAX_REPOSITORIES: usize = 8;

/// The recorded locations of one registry's blobs.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct BlobLocations {
    #[serde(default)]
    blobs: BTreeMap<Sha256Digest, Vec<String>>,
}

/// Serialises read-modify-write cycles within this process (the lock file does it
/// between processes).
static UPDATE: Mutex<()> = Mutex::new(());

impl BlobLocations {
    /// The records of `registry` (empty when there are none or they cannot be read).
    pub(crate) fn load(cache: &Cache, registry: &str) -> Self {
        let path = file_path(cache, registry);
        match fs_err::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(
                    "ignoring unreadable blob locations `{}`: {error}",
                    path.display()
                );
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    /// Repositories other than `except` known to hold `digest`, most recent first.
    pub(crate) fn sources(&self, digest: &Sha256Digest, except: &str) -> Vec<String> {
        self.blobs
            .get(digest)
            .map(|repositories| {
                repositories
                    .iter()
                    .filter(|repository| repository.as_str() != except)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Note that `repository` holds `digests`.
    fn add(&mut self, repository: &str, digests: &[Sha256Digest]) {
        for digest in digests {
            let repositories = self.blobs.entry(*digest).or_default();
            repositories.retain(|known| known != repository);
            repositories.insert(0, repository.to_string());
            repositories.truncate(MAX_REPOSITORIES);
        }
    }

    /// Record that `repository` of `registry` holds `digests`; failures are warnings.
    pub(crate) fn record(
        cache: &Cache,
        registry: &str,
        repository: &str,
        digests: &[Sha256Digest],
    ) {
        if digests.is_empty() {
            return;
        }
        if let Err(error) = Self::try_record(cache, registry, repository, digests) {
            tracing::warn!(
                "cannot record which blobs `{registry}/{repository}` holds (later pushes may upload instead of mounting): {error}"
            );
        }
    }

    fn try_record(
        cache: &Cache,
        registry: &str,
        repository: &str,
        digests: &[Sha256Digest],
    ) -> std::io::Result<()> {
        let _guard = UPDATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = file_path(cache, registry);
        let folder = path.parent().expect("the records live in a folder");
        fs_err::create_dir_all(folder)?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(&path))?;
        lock.file().lock()?;
        let mut records = Self::load(cache, registry);
        records.add(repository, digests);
        let bytes = serde_json::to_vec(&records).expect("blob locations serialize");
        let mut temporary = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(folder)?;
        temporary.write_all(&bytes)?;
        temporary.persist(&path).map_err(|error| error.error)?;
        lock.file().unlock()?;
        Ok(())
    }
}

/// `<cache>/registry/<registry with unsafe characters as _>.json`.
fn file_path(cache: &Cache, registry: &str) -> PathBuf {
    let name: String = registry
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '.' || character == '-' {
                character
            } else {
                '_'
            }
        })
        .collect();
    cache.root().join("registry").join(format!("{name}.json"))
}

fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("json.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_records_most_recent_first_and_bounded() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        let digest = Sha256Digest::of(b"layer");
        let registry = "127.0.0.1:5000";
        BlobLocations::record(&cache, registry, "team/base", &[digest]);
        BlobLocations::record(&cache, registry, "team/app", &[digest]);
        let records = BlobLocations::load(&cache, registry);
        assert_eq!(
            records.sources(&digest, "team/new"),
            ["team/app", "team/base"]
        );
        assert_eq!(records.sources(&digest, "team/app"), ["team/base"]);
        assert!(records.sources(&Sha256Digest::of(b"other"), "x").is_empty());
        assert!(folder.path().join("registry/127.0.0.1_5000.json").is_file());
        for index in 0..20 {
            BlobLocations::record(&cache, registry, &format!("r{index}"), &[digest]);
        }
        let records = BlobLocations::load(&cache, registry);
        let sources = records.sources(&digest, "");
        assert_eq!(sources.len(), MAX_REPOSITORIES);
        assert_eq!(sources[0], "r19");
        assert!(
            BlobLocations::load(&cache, "other.test")
                .sources(&digest, "")
                .is_empty()
        );
    }

    #[test]
    fn ok_unreadable_records_are_ignored() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        fs_err::create_dir_all(folder.path().join("registry")).unwrap();
        fs_err::write(folder.path().join("registry/r.test.json"), b"{not json").unwrap();
        let digest = Sha256Digest::of(b"x");
        assert!(
            BlobLocations::load(&cache, "r.test")
                .sources(&digest, "")
                .is_empty()
        );
        BlobLocations::record(&cache, "r.test", "a", &[digest]);
        assert_eq!(
            BlobLocations::load(&cache, "r.test").sources(&digest, ""),
            ["a"]
        );
    }
}
