//! Which repositories of a registry hold which blob, as seen by the pulls and pushes of
//! this machine, so a push to a new repository can mount a blob (distribution spec,
//! "Mounting a blob from another repository") instead of uploading it.
//!
//! One cache record per registry (kind `registry`, keyed by the SHA-256 of the
//! registry's name): `{"blobs": {"sha256:<hex>": ["team/base", "team/app"]}}`, most
//! recently seen first, at most [`MAX_REPOSITORIES`] per blob. It is only a hint: a mount
//! the registry refuses becomes an upload, and a record that cannot be read or written is
//! ignored (with a warning). Updates go through [`Cache::update_record`], under a lock,
//! so concurrent builds never lose each other's locations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError};
use crate::digest::Sha256Digest;

/// Most repositories remembered per blob.
const MAX_REPOSITORIES: usize = 8;

/// The recorded locations of one registry's blobs.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct BlobLocations {
    #[serde(default)]
    blobs: BTreeMap<Sha256Digest, Vec<String>>,
}

impl BlobLocations {
    /// The records of `registry` (empty when there are none or they cannot be read).
    pub(crate) fn load(cache: &Cache, registry: &str) -> Self {
        cache
            .record(RECORD_KIND, &record_key(registry))
            .unwrap_or_default()
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
    ) -> Result<(), CacheError> {
        cache.update_record(RECORD_KIND, &record_key(registry), |records| {
            let mut records: Self = records.unwrap_or_default();
            records.add(repository, digests);
            records
        })
    }
}

/// The kind of cache record that holds blob locations.
const RECORD_KIND: &str = "registry";

/// The record key of `registry`.
fn record_key(registry: &str) -> Sha256Digest {
    Sha256Digest::of(registry.as_bytes())
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
        assert!(
            folder
                .path()
                .join("registry")
                .join(record_key(registry).hex())
                .is_file()
        );
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
        fs_err::write(
            folder
                .path()
                .join("registry")
                .join(record_key("r.test").hex()),
            b"{not json",
        )
        .unwrap();
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
