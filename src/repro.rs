//! Every rule that keeps envbuild's output byte-for-byte reproducible lives here:
//! the build timestamp (SOURCE_DATE_EPOCH), the tar header policy, the compressor and
//! its level, and canonical JSON. Other modules take these values; none of them reads
//! the clock or the environment on its own.

use std::fmt;

use serde::Serialize;

/// Version of the layer format: bump it whenever the bytes of an installed layer can
/// change for the same wheel (launcher template, RECORD layout, tar policy). It is part
/// of every layer-cache key.
pub const LAYER_FORMAT_VERSION: u32 = 1;

/// gzip level used for every layer. Changing it changes every digest.
pub const GZIP_LEVEL: u32 = 6;

/// Identity of the compressor: the deflate implementation and its exact version are
/// pinned in Cargo.toml (`flate2` with the `miniz_oxide` backend). Part of cache keys.
pub const COMPRESSOR_ID: &str = "gzip-6/flate2-1.1.11/miniz_oxide-0.9.1";

/// Timestamp used when SOURCE_DATE_EPOCH is not set: the Unix epoch.
pub const DEFAULT_EPOCH: i64 = 0;

/// Mode of directories in every layer.
pub const DIR_MODE: u32 = 0o755;
/// Mode of regular, non-executable files.
pub const FILE_MODE: u32 = 0o644;
/// Mode of executables and scripts.
pub const EXEC_MODE: u32 = 0o755;

/// Errors from reading reproducibility settings.
#[derive(Debug, thiserror::Error)]
pub enum ReproError {
    /// SOURCE_DATE_EPOCH is set but is not a non-negative integer.
    #[error(
        "SOURCE_DATE_EPOCH is `{0}`, which is not a whole number of seconds since 1970-01-01; set it to a value such as `$(git log -1 --format=%ct)` or unset it"
    )]
    InvalidSourceDateEpoch(String),
}

/// The build timestamp: SOURCE_DATE_EPOCH if set, else [`DEFAULT_EPOCH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDateEpoch(i64);

impl SourceDateEpoch {
    /// Read the value of the `SOURCE_DATE_EPOCH` variable (the caller reads the
    /// environment once and passes the value down).
    pub fn from_env_value(value: Option<&str>) -> Result<Self, ReproError> {
        match value {
            None => Ok(Self(DEFAULT_EPOCH)),
            Some(text) => {
                let trimmed = text.trim();
                match trimmed.parse::<i64>() {
                    Ok(seconds) if seconds >= 0 && !trimmed.starts_with('+') => Ok(Self(seconds)),
                    _ => Err(ReproError::InvalidSourceDateEpoch(text.to_string())),
                }
            }
        }
    }

    /// A timestamp from seconds since the Unix epoch.
    pub fn from_seconds(seconds: i64) -> Self {
        Self(seconds)
    }

    /// Seconds since the Unix epoch.
    pub fn seconds(self) -> i64 {
        self.0
    }

    /// Seconds as the unsigned value tar headers hold.
    pub fn tar_mtime(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }

    /// RFC 3339 in UTC with `Z` and no fractional seconds.
    pub fn rfc3339(self) -> String {
        let timestamp = jiff::Timestamp::from_second(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

impl Default for SourceDateEpoch {
    fn default() -> Self {
        Self(DEFAULT_EPOCH)
    }
}

impl fmt::Display for SourceDateEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Serialize a value as canonical JSON: compact, object keys sorted bytewise, no
/// trailing newline. Going through [`serde_json::Value`] sorts keys because envbuild
/// never enables serde_json's `preserve_order` feature (a test guards that).
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("envbuild's own types always serialize");
    serde_json::to_vec(&value).expect("a JSON value always serializes")
}

/// A gzip encoder with envbuild's fixed header (no name, mtime 0, OS 255) and level.
pub fn gzip_encoder<W: std::io::Write>(inner: W) -> flate2::write::GzEncoder<W> {
    flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(inner, flate2::Compression::new(GZIP_LEVEL))
}

/// A tar header with every field fixed by envbuild's policy: GNU format, the given
/// type, mode and size, mtime from `epoch`, uid and gid 0, empty user and group names,
/// no device numbers. Paths and link targets are set by the `tar` crate's
/// `append_data` / `append_link`, which write GNU long-name entries when needed.
pub fn tar_header(
    entry_type: tar::EntryType,
    mode: u32,
    size: u64,
    epoch: SourceDateEpoch,
) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(epoch.tar_mtime());
    header.set_uid(0);
    header.set_gid(0);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_epoch_default_and_set() {
        assert_eq!(SourceDateEpoch::from_env_value(None).unwrap().seconds(), 0);
        let epoch = SourceDateEpoch::from_env_value(Some("1700000000")).unwrap();
        assert_eq!(epoch.rfc3339(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn err_epoch_malformed() {
        for bad in ["", "abc", "-5", "1.5", "+3"] {
            let error = SourceDateEpoch::from_env_value(Some(bad)).unwrap_err();
            assert!(error.to_string().contains("SOURCE_DATE_EPOCH"), "{bad}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut map = std::collections::HashMap::new();
        map.insert("b", 1);
        map.insert("a", 2);
        map.insert("c", 3);
        assert_eq!(canonical_json(&map), br#"{"a":2,"b":1,"c":3}"#);
    }

    /// The compressor's bytes are pinned: a new flate2 or miniz_oxide (or a changed level
    /// or header) that compresses the same input differently must not ship unnoticed,
    /// because it changes every layer digest.
    #[test]
    fn gzip_bytes_are_pinned() {
        use std::io::Write;
        // Text with repeats (as source files have) and bytes that do not compress.
        let mut input = Vec::new();
        for line in 0..2000u32 {
            input.extend_from_slice(
                format!("def function_{line}(x):\n    return x * {line}\n").as_bytes(),
            );
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..65536 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            input.push(state as u8);
        }
        let mut encoder = gzip_encoder(Vec::new());
        encoder.write_all(&input).unwrap();
        let compressed = encoder.finish().unwrap();
        // Header: magic, CM=8, FLG=0, MTIME=0, XFL=0, OS=255.
        assert_eq!(&compressed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let digest = crate::digest::Sha256Digest::of(&compressed);
        assert_eq!(
            (digest.hex().as_str(), compressed.len()),
            (GZIP_GOLDEN_SHA256, GZIP_GOLDEN_SIZE),
            "the gzip bytes for a fixed input changed ({COMPRESSOR_ID}); every layer digest changes with them. If on purpose, bump LAYER_FORMAT_VERSION, update COMPRESSOR_ID and these pins to {} / {}",
            digest.hex(),
            compressed.len()
        );
    }

    const GZIP_GOLDEN_SHA256: &str =
        "592cb217593f03dcf8b02ecd6b3beeebf52f464105a87542e317e55ed912301d";
    const GZIP_GOLDEN_SIZE: usize = 79602;
}
