//! SHA-256 digests: the one validated newtype every stage passes around, and readers
//! and writers that hash bytes as they stream through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, held as 32 bytes. Renders as lowercase hex; [`Sha256Digest::oci`]
/// gives the `sha256:<hex>` form OCI uses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest([u8; 32]);

/// A string that is not a SHA-256 digest.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{text}` is not a SHA-256 digest: expected 64 hexadecimal characters (optionally after `sha256:`)"
)]
pub struct DigestParseError {
    /// The rejected text.
    pub text: String,
}

impl Sha256Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// `sha256:<hex>`, as OCI descriptors and registries write it.
    pub fn oci(&self) -> String {
        format!("sha256:{}", self.hex())
    }

    /// `sha256=<urlsafe base64, no padding>`, as wheel RECORD files write it.
    pub fn record(&self) -> String {
        format!("sha256={}", data_encoding::BASE64URL_NOPAD.encode(&self.0))
    }

    /// Parse hex, accepting upper or lower case (lockfiles vary), with or without a
    /// `sha256:` prefix.
    pub fn from_hex(text: &str) -> Result<Self, DigestParseError> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        let error = || DigestParseError {
            text: text.to_string(),
        };
        if hex.len() != 64 {
            return Err(error());
        }
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| error())?;
        Ok(Self(bytes.try_into().map_err(|_| error())?))
    }

    /// Parse the RECORD form (`urlsafe-base64`, padding optional), without the
    /// `sha256=` prefix.
    pub fn from_record_base64(text: &str) -> Option<Self> {
        let trimmed = text.trim_end_matches('=');
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(trimmed.as_bytes())
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.oci())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.oci())
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text)
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.oci())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A running SHA-256 with a byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    state: Sha256,
    length: u64,
}

impl Hasher {
    /// A new, empty hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
        self.length += bytes.len() as u64;
    }
    /// Bytes fed so far.
    pub fn length(&self) -> u64 {
        self.length
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Sha256Digest {
        Sha256Digest(self.state.finalize().into())
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap a writer.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        let length = self.hasher.length();
        (self.inner, self.hasher.finish(), length)
    }
    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wrap a reader.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// The digest and byte count of everything read.
    pub fn finish(self) -> (Sha256Digest, u64) {
        let length = self.hasher.length();
        (self.hasher.finish(), length)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let digest = Sha256Digest::of(b"");
        assert_eq!(
            digest.oci(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Sha256Digest::from_hex(&digest.oci()).unwrap(), digest);
        assert_eq!(
            Sha256Digest::from_hex(&digest.hex().to_uppercase()).unwrap(),
            digest
        );
        let record = digest.record();
        assert_eq!(record, "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_eq!(
            Sha256Digest::from_record_base64(&record[7..]).unwrap(),
            digest
        );
    }

    #[test]
    fn err_not_a_digest() {
        assert!(Sha256Digest::from_hex("abc").is_err());
        assert!(Sha256Digest::from_hex(&"g".repeat(64)).is_err());
    }
}
