//! The wheel's zip archive: opening it, refusing unsafe or malformed entries before
//! anything is installed, reading small members into memory, and streaming members
//! through a reader that checks their RECORD hash and size. Nothing here knows about
//! install schemes.

use std::io::{self, BufReader, Read};
use std::path::Path;

use zip::ZipArchive;
use zip::read::ZipFile;

use crate::digest::{Hasher, Sha256Digest};
use crate::wheel::error::{CorruptMemberReason, UnsafePathReason, WheelError};

/// An open wheel.
pub(crate) type WheelArchive = ZipArchive<BufReader<fs_err::File>>;

/// The most bytes read into memory from one member (metadata files, scripts to
/// rewrite). RECORD of the largest wheels is a few MiB.
pub(crate) const MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// File-type bits of a unix mode.
const S_IFMT: u32 = 0o170_000;
/// Regular file.
const S_IFREG: u32 = 0o100_000;
/// Directory.
const S_IFDIR: u32 = 0o040_000;
/// Symbolic link.
const S_IFLNK: u32 = 0o120_000;

/// One member of the archive, validated.
#[derive(Debug, Clone)]
pub(crate) struct ZipItem {
    /// Index in the central directory.
    pub(crate) index: usize,
    /// The name, without the trailing `/` of directories.
    pub(crate) name: String,
    /// Whether it is a directory entry.
    pub(crate) is_dir: bool,
    /// Whether the unix mode has an executable bit.
    pub(crate) executable: bool,
    /// Uncompressed size from the central directory.
    pub(crate) size: u64,
}

/// Open a wheel and check that its zip structure is sound.
pub(crate) fn open(path: &Path, wheel: &str) -> Result<WheelArchive, WheelError> {
    let file = fs_err::File::open(path).map_err(|source| WheelError::Open {
        wheel: wheel.to_string(),
        source,
    })?;
    ZipArchive::new(BufReader::new(file)).map_err(|source| WheelError::InvalidZip {
        wheel: wheel.to_string(),
        source,
    })
}

/// Validate and list every member. Standards §3.2: refuse duplicate names, local
/// headers that disagree with the central directory or hide from it, absolute paths,
/// `..`, backslashes, symlinks and anything that is not a regular file or directory;
/// envbuild also refuses `.wh.` components (OCI whiteouts).
pub(crate) fn list_entries(
    archive: &mut WheelArchive,
    wheel: &str,
) -> Result<Vec<ZipItem>, WheelError> {
    if archive.has_duplicate_names() {
        return Err(WheelError::DuplicateEntry {
            wheel: wheel.to_string(),
        });
    }
    archive
        .validate_header_consistency()
        .map_err(|source| WheelError::InconsistentZip {
            wheel: wheel.to_string(),
            source,
        })?;
    let mut items = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|source| WheelError::InvalidZip {
                wheel: wheel.to_string(),
                source,
            })?;
        // The binary distribution format stores names as UTF-8; a CP437 name would
        // decode differently in different tools, so refuse it.
        let Ok(name) = std::str::from_utf8(entry.name_raw()).map(str::to_string) else {
            return Err(WheelError::NotUtf8 {
                wheel: wheel.to_string(),
                path: String::from_utf8_lossy(entry.name_raw()).into_owned(),
            });
        };
        let is_dir = name.ends_with('/');
        let bare = if is_dir {
            &name[..name.len() - 1]
        } else {
            &name[..]
        };
        check_path(bare).map_err(|reason| WheelError::UnsafePath {
            wheel: wheel.to_string(),
            path: name.clone(),
            reason,
        })?;
        // pip reads permissions from `external_attr >> 16` whatever the host system
        // field says; do the same so the type check sees what pip would.
        let mode = entry.external_attributes() >> 16;
        match mode & S_IFMT {
            S_IFLNK => {
                return Err(WheelError::SymlinkEntry {
                    wheel: wheel.to_string(),
                    path: name,
                });
            }
            0 | S_IFREG if !is_dir => {}
            0 | S_IFDIR if is_dir => {}
            _ => {
                return Err(WheelError::NotRegularFile {
                    wheel: wheel.to_string(),
                    path: name,
                    mode,
                });
            }
        }
        if entry.encrypted() {
            return Err(WheelError::EncryptedEntry {
                wheel: wheel.to_string(),
                path: name,
            });
        }
        let method = entry.compression();
        if !is_dir
            && !matches!(
                method,
                zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
            )
        {
            return Err(WheelError::UnsupportedCompression {
                wheel: wheel.to_string(),
                path: name,
                method: method.to_string(),
            });
        }
        items.push(ZipItem {
            index,
            name: bare.to_string(),
            is_dir,
            executable: mode & 0o111 != 0,
            size: entry.size(),
        });
    }
    Ok(items)
}

/// Check one relative path, `/`-separated, without a trailing `/`.
pub(crate) fn check_path(path: &str) -> Result<(), UnsafePathReason> {
    if path.is_empty() {
        return Err(UnsafePathReason::Empty);
    }
    if path.starts_with('/') {
        return Err(UnsafePathReason::Absolute);
    }
    if path.contains('\\') {
        return Err(UnsafePathReason::Backslash);
    }
    if path.chars().any(char::is_control) {
        return Err(UnsafePathReason::ControlCharacter);
    }
    for component in path.split('/') {
        match component {
            "" => return Err(UnsafePathReason::EmptyComponent),
            "." => return Err(UnsafePathReason::CurrentComponent),
            ".." => return Err(UnsafePathReason::ParentComponent),
            _ if component.starts_with(".wh.") => return Err(UnsafePathReason::Whiteout),
            _ => {}
        }
    }
    Ok(())
}

/// Read a whole member into memory, refusing members over [`MEMORY_LIMIT`].
pub(crate) fn read_entry(
    archive: &mut WheelArchive,
    item: &ZipItem,
    wheel: &str,
) -> Result<Vec<u8>, WheelError> {
    if item.size > MEMORY_LIMIT {
        return Err(WheelError::EntryTooLarge {
            wheel: wheel.to_string(),
            path: item.name.clone(),
            size: item.size,
            limit: MEMORY_LIMIT,
        });
    }
    let mut file = by_item(archive, item, wheel)?;
    let mut bytes = Vec::with_capacity(initial_capacity(item.size));
    (&mut file)
        .take(MEMORY_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| member_read_error(wheel, &item.name, source))?;
    if bytes.len() as u64 != item.size {
        return Err(WheelError::RecordSizeMismatch {
            wheel: wheel.to_string(),
            path: item.name.clone(),
            recorded: item.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// How much to reserve for a member that declares `size` bytes: the declared size is
/// untrusted (a mutated header can claim 64 MiB for a few bytes), so reserve at most
/// 64 KiB and let the buffer grow with the bytes that really arrive.
pub(crate) fn initial_capacity(size: u64) -> usize {
    usize::try_from(size.min(64 * 1024)).unwrap_or(0)
}

/// Read up to `limit` leading bytes of a member.
pub(crate) fn read_head(
    archive: &mut WheelArchive,
    item: &ZipItem,
    wheel: &str,
    limit: u64,
) -> Result<Vec<u8>, WheelError> {
    let file = by_item(archive, item, wheel)?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|source| member_read_error(wheel, &item.name, source))?;
    Ok(bytes)
}

/// Open a member for streaming, checking that the index still names it.
pub(crate) fn by_item<'a>(
    archive: &'a mut WheelArchive,
    item: &ZipItem,
    wheel: &str,
) -> Result<ZipFile<'a, BufReader<fs_err::File>>, WheelError> {
    open_member(archive, item.index, &item.name, item.is_dir, wheel)
}

/// Open member `index`, which the plan says is `name`.
pub(crate) fn open_member<'a>(
    archive: &'a mut WheelArchive,
    index: usize,
    name: &str,
    is_dir: bool,
    wheel: &str,
) -> Result<ZipFile<'a, BufReader<fs_err::File>>, WheelError> {
    let file = archive
        .by_index(index)
        .map_err(|source| WheelError::InvalidZip {
            wheel: wheel.to_string(),
            source,
        })?;
    let actual = file.name_raw();
    let expected_len = name.len() + usize::from(is_dir);
    if actual.len() != expected_len || !actual.starts_with(name.as_bytes()) {
        return Err(WheelError::WheelChanged {
            wheel: wheel.to_string(),
            path: name.to_string(),
        });
    }
    Ok(file)
}

/// What an error from reading member `path` means: damaged bytes in the wheel (a
/// typed [`WheelError::CorruptMember`]) or an I/O failure reading the wheel file.
///
/// The zip reader reports its checks as [`io::Error`]s: flate2 gives `InvalidInput`
/// "corrupt deflate stream" and `UnexpectedEof` for a stream cut short; zip's CRC-32
/// reader gives `InvalidData` "Invalid checksum", or "… larger than its declared
/// uncompressed size" once a member outgrows its header. The texts are those of the
/// versions in Cargo.lock; `err_damaged_member_is_named_not_a_disk_error` (in `install.rs`) pins them.
pub(crate) fn member_read_error(wheel: &str, path: &str, source: io::Error) -> WheelError {
    let reason = match source.kind() {
        io::ErrorKind::UnexpectedEof => Some(CorruptMemberReason::TruncatedCompressedData),
        io::ErrorKind::InvalidInput => Some(CorruptMemberReason::CorruptCompressedData),
        io::ErrorKind::InvalidData => {
            let text = source.to_string();
            Some(if text.contains("larger than its declared") {
                CorruptMemberReason::LargerThanDeclared
            } else if text.contains("checksum") {
                CorruptMemberReason::ChecksumMismatch
            } else {
                CorruptMemberReason::CorruptCompressedData
            })
        }
        _ => None,
    };
    match reason {
        Some(reason) => WheelError::CorruptMember {
            wheel: wheel.to_string(),
            path: path.to_string(),
            reason,
        },
        None => WheelError::Read {
            wheel: wheel.to_string(),
            path: path.to_string(),
            source,
        },
    }
}

/// A reader over one member that fails unless the bytes match the RECORD hash and
/// size. It fails as soon as too many bytes arrive, and at EOF if the hash or size is
/// off, so a consumer copying to EOF (the tar writer) never sees a silent mismatch.
/// The error is an [`io::Error`] wrapping a [`WheelError`]; see [`into_wheel_error`].
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Sha256Digest,
    expected_size: u64,
    wheel: String,
    path: String,
}

impl<R: Read> VerifyingReader<R> {
    /// Wrap `inner`, which must hash to `expected` and hold `expected_size` bytes.
    pub(crate) fn new(
        inner: R,
        expected: Sha256Digest,
        expected_size: u64,
        wheel: &str,
        path: &str,
    ) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            expected,
            expected_size,
            wheel: wheel.to_string(),
            path: path.to_string(),
        }
    }

    fn size_error(&self, actual: u64) -> io::Error {
        io::Error::other(WheelError::RecordSizeMismatch {
            wheel: self.wheel.clone(),
            path: self.path.clone(),
            recorded: self.expected_size,
            actual,
        })
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A damaged member must not reach the layer writer as a bare I/O error, which
        // it would report as a failed write into the cache.
        let read = match self.inner.read(buf) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Err(error),
            Err(error) => {
                return Err(io::Error::other(member_read_error(
                    &self.wheel,
                    &self.path,
                    error,
                )));
            }
        };
        if read == 0 {
            if buf.is_empty() {
                return Ok(0);
            }
            // Binary distribution format: "installers must verify all the hashes in
            // RECORD against the file contents" — checked here, at EOF.
            if self.hasher.length() != self.expected_size {
                return Err(self.size_error(self.hasher.length()));
            }
            let actual = self.hasher.clone().finish();
            if actual != self.expected {
                return Err(io::Error::other(WheelError::RecordHashMismatch {
                    wheel: self.wheel.clone(),
                    path: self.path.clone(),
                    recorded: self.expected.record(),
                    actual: actual.record(),
                }));
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..read]);
        if self.hasher.length() > self.expected_size {
            return Err(self.size_error(self.hasher.length()));
        }
        Ok(read)
    }
}

/// Recover the [`WheelError`] a [`VerifyingReader`] raised, or `Err(error)` if the
/// I/O error came from elsewhere.
pub(crate) fn into_wheel_error(error: io::Error) -> Result<WheelError, io::Error> {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<WheelError>())
    {
        let inner = error.into_inner().expect("checked above");
        return Ok(*inner.downcast::<WheelError>().expect("checked above"));
    }
    Err(error)
}
