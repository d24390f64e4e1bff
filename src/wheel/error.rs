//! The one error type of the `wheel` module. Every message names the wheel file, the
//! path inside it when there is one, and what the user can do about it.

use std::fmt;
use std::io;

use crate::untrusted::Untrusted;
use crate::wheel::filename::WheelFilenameError;

/// What to tell the user when a wheel breaks the format or looks tampered with.
const HINT_BROKEN: &str = "the wheel is malformed or was tampered with; do not install it, pin another version or ask the project for a fixed build";

/// What to tell the user when a wheel's bytes disagree with its RECORD.
const HINT_CORRUPT: &str = "the wheel is corrupt or was tampered with; delete it from the envbuild cache and fetch it again, and if that does not help the published wheel is broken";

/// What to tell the user when a wheel is well-formed but cannot be installed on Linux.
const HINT_UNINSTALLABLE: &str = "pin another version or ask the project for a build with shorter paths (a shorter `--prefix` helps only when the whole path is just over the limit)";

/// Why the stored bytes of a wheel member cannot be read (the zip reader's checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptMemberReason {
    /// The deflate stream is invalid.
    CorruptCompressedData,
    /// The compressed data ends before the member does.
    TruncatedCompressedData,
    /// The member holds more bytes than its zip headers declare.
    LargerThanDeclared,
    /// The bytes do not match the CRC-32 the zip headers give.
    ChecksumMismatch,
}

impl fmt::Display for CorruptMemberReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CorruptCompressedData => "corrupt compressed data (invalid deflate stream)",
            Self::TruncatedCompressedData => "corrupt compressed data (the stream ends early)",
            Self::LargerThanDeclared => "member larger than its declared size",
            Self::ChecksumMismatch => "corrupt data (the CRC-32 in the zip headers does not match)",
        })
    }
}

/// Untrusted text that may be huge (a path, a header value): escaped, and cut in the
/// middle (`…`) when longer than [`Shortened::MAX`] bytes, so one error line stays
/// readable; messages that need the length state it.
struct Shortened<'a>(&'a str);

impl Shortened<'_> {
    /// The longest text shown whole.
    const MAX: usize = 200;
    /// How many bytes (at most) of each end are kept when cutting.
    const KEEP: usize = 60;
}

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if text.len() <= Self::MAX {
            return Untrusted(text).fmt(f);
        }
        let head_end = (0..=Self::KEEP)
            .rev()
            .find(|&index| text.is_char_boundary(index))
            .unwrap_or(0);
        let tail_start = (text.len() - Self::KEEP..text.len())
            .find(|&index| text.is_char_boundary(index))
            .unwrap_or(text.len());
        write!(
            f,
            "{}…{}",
            Untrusted(&text[..head_end]),
            Untrusted(&text[tail_start..])
        )
    }
}

/// `, and the lockfile pins `V`` when the lockfile's version is known.
struct LockedSuffix<'a>(Option<&'a str>);

impl fmt::Display for LockedSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(version) => write!(f, " and the lockfile pins `{}`", Shortened(version)),
            None => Ok(()),
        }
    }
}

/// Why a path inside a wheel is refused (binary distribution format, "Validation";
/// uv's zip hardening; OCI whiteout names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePathReason {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// The path does not start with `/` where an absolute path is needed.
    Relative,
    /// A component is `..`.
    ParentComponent,
    /// A component is `.`.
    CurrentComponent,
    /// The path contains `\`, which Windows tools read as a separator.
    Backslash,
    /// The path contains NUL, a newline or another control character.
    ControlCharacter,
    /// The path has an empty component (`a//b`).
    EmptyComponent,
    /// A component starts with `.wh.`, which OCI layers reserve for whiteouts.
    Whiteout,
}

impl fmt::Display for UnsafePathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "is empty",
            Self::Absolute => "is absolute",
            Self::Relative => "is not absolute",
            Self::ParentComponent => "climbs out of its folder with `..`",
            Self::CurrentComponent => "has a `.` component",
            Self::Backslash => "contains a backslash",
            Self::ControlCharacter => "contains a control character (NUL, newline, ...)",
            Self::EmptyComponent => "has an empty component (`//`)",
            Self::Whiteout => {
                "has a component starting with `.wh.`, which OCI layers reserve for whiteouts"
            }
        })
    }
}

/// Errors from reading a wheel and planning its install.
#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    /// The wheel's file name does not parse.
    #[error(transparent)]
    InvalidFilename(#[from] WheelFilenameError),
    /// The install prefix is not an absolute, normalized path.
    #[error(
        "install prefix `{prefix}` {reason}; use an absolute, normalized path such as `/opt/venv`",
        prefix = Untrusted(.prefix)
    )]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
        /// Why it is refused.
        reason: UnsafePathReason,
    },
    /// The interpreter path is not an absolute, normalized path.
    #[error(
        "interpreter path `{interpreter}` {reason}; give the absolute path of the base image's python, such as `/usr/bin/python3.11`",
        interpreter = Untrusted(.interpreter)
    )]
    InvalidInterpreter {
        /// The interpreter path.
        interpreter: String,
        /// Why it is refused.
        reason: UnsafePathReason,
    },
    /// The wheel file could not be opened.
    #[error(
        "cannot open wheel `{wheel}`; check that the file exists and is readable",
        wheel = Untrusted(.wheel)
    )]
    Open {
        /// The wheel file name.
        wheel: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The wheel is not a zip archive the reader accepts.
    #[error(
        "wheel `{wheel}` is not a readable zip archive; {HINT_CORRUPT}",
        wheel = Untrusted(.wheel)
    )]
    InvalidZip {
        /// The wheel file name.
        wheel: String,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// The local headers disagree with the central directory, or an entry is hidden
    /// from it.
    #[error(
        "wheel `{wheel}` has zip local headers that disagree with its central directory; {HINT_BROKEN}",
        wheel = Untrusted(.wheel)
    )]
    InconsistentZip {
        /// The wheel file name.
        wheel: String,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// The central directory lists one name twice.
    #[error(
        "wheel `{wheel}` lists the same entry name twice in its zip central directory; {HINT_BROKEN}",
        wheel = Untrusted(.wheel)
    )]
    DuplicateEntry {
        /// The wheel file name.
        wheel: String,
    },
    /// An entry name is unsafe to install.
    #[error(
        "wheel `{wheel}`: entry `{path}` {reason}; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    UnsafePath {
        /// The wheel file name.
        wheel: String,
        /// The entry name (escaped when it holds control characters).
        path: String,
        /// Why it is refused.
        reason: UnsafePathReason,
    },
    /// An entry is a symbolic link.
    #[error(
        "wheel `{wheel}`: entry `{path}` is a symbolic link, which wheels may not contain; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    SymlinkEntry {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
    },
    /// An entry is neither a regular file nor a directory.
    #[error(
        "wheel `{wheel}`: entry `{path}` is not a regular file or directory (unix mode {mode:o}); {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    NotRegularFile {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
        /// Its unix mode.
        mode: u32,
    },
    /// An entry is encrypted.
    #[error(
        "wheel `{wheel}`: entry `{path}` is encrypted, which wheels may not be; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    EncryptedEntry {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
    },
    /// An entry uses a compression method other than stored or deflate.
    #[error(
        "wheel `{wheel}`: entry `{path}` uses compression method `{method}`, but wheels use only stored or deflate; rebuild the wheel with a standard tool",
        wheel = Untrusted(.wheel), path = Untrusted(.path), method = Untrusted(.method)
    )]
    UnsupportedCompression {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
        /// The compression method.
        method: String,
    },
    /// A file that must be read into memory (metadata, a script to rewrite) is too big.
    #[error(
        "wheel `{wheel}`: `{path}` is {size} bytes, more than the {limit} bytes envbuild reads into memory; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    EntryTooLarge {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No `.dist-info` folder at the root.
    #[error(
        "wheel `{wheel}` has no `{expected}` folder at its root; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), expected = Untrusted(.expected)
    )]
    DistInfoMissing {
        /// The wheel file name.
        wheel: String,
        /// The folder the filename asks for.
        expected: String,
    },
    /// More than one `.dist-info` folder at the root.
    #[error(
        "wheel `{wheel}` has several `.dist-info` folders at its root ({found}), but a wheel has exactly one; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), found = Untrusted(.found)
    )]
    MultipleDistInfo {
        /// The wheel file name.
        wheel: String,
        /// The folders, comma-separated.
        found: String,
    },
    /// The `.dist-info` folder names another project or version than the filename.
    #[error(
        "wheel `{wheel}` holds `{found}`, but its filename says `{expected}`; the file was renamed or is another project's wheel, fetch the right file",
        wheel = Untrusted(.wheel), found = Untrusted(.found), expected = Untrusted(.expected)
    )]
    DistInfoMismatch {
        /// The wheel file name.
        wheel: String,
        /// The folder found.
        found: String,
        /// The folder the filename asks for.
        expected: String,
    },
    /// `METADATA`, `WHEEL` or `RECORD` is missing.
    #[error(
        "wheel `{wheel}` has no `{path}`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    MetadataFileMissing {
        /// The wheel file name.
        wheel: String,
        /// The missing path.
        path: String,
    },
    /// A metadata file is not UTF-8.
    #[error(
        "wheel `{wheel}`: `{path}` is not valid UTF-8; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    NotUtf8 {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
    },
    /// `WHEEL` or `METADATA` is not in email-header format.
    #[error(
        "wheel `{wheel}`: `{path}` is not in email-header format; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    MalformedHeaders {
        /// The wheel file name.
        wheel: String,
        /// The entry name.
        path: String,
        /// The parse error.
        #[source]
        source: mailparse::MailParseError,
    },
    /// `WHEEL` has no `Wheel-Version`.
    #[error(
        "wheel `{wheel}`: `{path}` has no `Wheel-Version` header; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    WheelVersionMissing {
        /// The wheel file name.
        wheel: String,
        /// The `WHEEL` path.
        path: String,
    },
    /// `Wheel-Version` is not `major.minor`.
    #[error(
        "wheel `{wheel}`: `Wheel-Version` is `{value}`, not `major.minor`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), value = Untrusted(.value)
    )]
    WheelVersionInvalid {
        /// The wheel file name.
        wheel: String,
        /// The header value.
        value: String,
    },
    /// `Wheel-Version` has a major version other than 1.
    #[error(
        "wheel `{wheel}` has `Wheel-Version: {value}`, but envbuild installs only version 1.x wheels; pick a wheel built for format 1 (binary distribution format: installers must fail on an unknown major version)",
        wheel = Untrusted(.wheel), value = Untrusted(.value)
    )]
    UnsupportedWheelVersion {
        /// The wheel file name.
        wheel: String,
        /// The header value.
        value: String,
    },
    /// `METADATA` has no `Name`.
    #[error(
        "wheel `{wheel}`: `{path}` has no `Name` header; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    MetadataNameMissing {
        /// The wheel file name.
        wheel: String,
        /// The `METADATA` path.
        path: String,
    },
    /// `METADATA`'s `Name` is not a valid project name.
    #[error(
        "wheel `{wheel}`: `METADATA` names the project `{name}`, which is not a valid project name; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), name = Untrusted(.name)
    )]
    InvalidMetadataName {
        /// The wheel file name.
        wheel: String,
        /// The name.
        name: String,
    },
    /// `METADATA`'s `Name` is another project than the filename's.
    #[error(
        "wheel `{wheel}`: `METADATA` names the project `{name}`, but the filename says `{expected}`; the file was renamed or is another project's wheel, fetch the right file",
        wheel = Untrusted(.wheel), name = Untrusted(.name), expected = Untrusted(.expected)
    )]
    MetadataNameMismatch {
        /// The wheel file name.
        wheel: String,
        /// The name in `METADATA`.
        name: String,
        /// The normalized name from the filename.
        expected: String,
    },
    /// `METADATA` has no `Version`.
    #[error(
        "wheel `{wheel}`: `{path}` has no `Version` header; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    MetadataVersionMissing {
        /// The wheel file name.
        wheel: String,
        /// The `METADATA` path.
        path: String,
    },
    /// `METADATA`'s `Version` is not a PEP 440 version.
    #[error(
        "wheel `{wheel}`: `METADATA` gives the version `{version}`, which is not a PEP 440 version; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), version = Shortened(.version)
    )]
    InvalidMetadataVersion {
        /// The wheel file name.
        wheel: String,
        /// The `Version` header.
        version: String,
    },
    /// `METADATA`'s `Version` is another version than the filename's or the lockfile's.
    #[error(
        "wheel `{wheel}`: `METADATA` says version `{metadata}`, but the filename says `{filename}`{locked}; the image's `.dist-info` would contradict the lockfile, so envbuild refuses the wheel (as uv does); the file was renamed or rebuilt, fetch the right file or lock the version the wheel holds",
        wheel = Untrusted(.wheel), metadata = Shortened(.metadata),
        filename = Untrusted(.filename), locked = LockedSuffix(.locked.as_deref())
    )]
    MetadataVersionMismatch {
        /// The wheel file name.
        wheel: String,
        /// The `Version` header.
        metadata: String,
        /// The version in the file name.
        filename: String,
        /// The version the lockfile pins, when the caller knows it.
        locked: Option<String>,
    },
    /// RECORD is not CSV.
    #[error(
        "wheel `{wheel}`: `{path}` is not valid CSV; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    MalformedRecord {
        /// The wheel file name.
        wheel: String,
        /// The RECORD path.
        path: String,
        /// The CSV error.
        #[source]
        source: csv::Error,
    },
    /// A RECORD row does not have three fields.
    #[error(
        "wheel `{wheel}`: row {line} of `{path}` has {fields} fields, but RECORD rows are `path,hash,size`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    RecordRowInvalid {
        /// The wheel file name.
        wheel: String,
        /// The RECORD path.
        path: String,
        /// The 1-based line.
        line: u64,
        /// How many fields it has.
        fields: usize,
    },
    /// RECORD lists one path twice.
    #[error(
        "wheel `{wheel}`: RECORD lists `{path}` twice; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    DuplicateRecordEntry {
        /// The wheel file name.
        wheel: String,
        /// The path listed twice.
        path: String,
    },
    /// A RECORD hash is not `algorithm=urlsafe-base64`.
    #[error(
        "wheel `{wheel}`: RECORD gives `{path}` the hash `{value}`, which is not `sha256=<urlsafe base64>`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), value = Untrusted(.value)
    )]
    InvalidRecordHash {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The hash field.
        value: String,
    },
    /// A RECORD hash uses md5, sha1 or sha224.
    #[error(
        "wheel `{wheel}`: RECORD hashes `{path}` with `{algorithm}`, but wheels must use sha256 or stronger; rebuild the wheel with a current tool",
        wheel = Untrusted(.wheel), path = Untrusted(.path), algorithm = Untrusted(.algorithm)
    )]
    WeakRecordHash {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The algorithm.
        algorithm: String,
    },
    /// A RECORD hash uses an algorithm envbuild does not know.
    #[error(
        "wheel `{wheel}`: RECORD hashes `{path}` with `{algorithm}`, which envbuild does not know (it checks sha256, sha384 and sha512); rebuild the wheel with a current tool",
        wheel = Untrusted(.wheel), path = Untrusted(.path), algorithm = Untrusted(.algorithm)
    )]
    UnknownRecordHashAlgorithm {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The algorithm.
        algorithm: String,
    },
    /// A RECORD size is not a decimal number.
    #[error(
        "wheel `{wheel}`: RECORD gives `{path}` the size `{value}`, which is not a number of bytes; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), value = Untrusted(.value)
    )]
    InvalidRecordSize {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The size field.
        value: String,
    },
    /// A file in the archive is not listed in RECORD.
    #[error(
        "wheel `{wheel}`: `{path}` is in the archive but not in RECORD, and installers must refuse unlisted files; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    FileNotInRecord {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
    },
    /// A file in the archive is listed in RECORD without a hash.
    #[error(
        "wheel `{wheel}`: RECORD lists `{path}` without a hash, and installers must refuse unhashed files; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    FileWithoutHash {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
    },
    /// RECORD lists a file the archive does not hold.
    #[error(
        "wheel `{wheel}`: RECORD lists `{path}`, but the archive has no such file; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    RecordedFileMissing {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
    },
    /// A file's size differs from RECORD (or from the zip header while streaming).
    #[error(
        "wheel `{wheel}`: `{path}` is {actual} bytes, but RECORD says {recorded}; {HINT_CORRUPT}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    RecordSizeMismatch {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The size RECORD gives.
        recorded: u64,
        /// The real size.
        actual: u64,
    },
    /// A file's hash differs from RECORD.
    #[error(
        "wheel `{wheel}`: `{path}` hashes to `{actual}`, but RECORD says `{recorded}`; {HINT_CORRUPT}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    RecordHashMismatch {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The hash RECORD gives.
        recorded: String,
        /// The real hash.
        actual: String,
    },
    /// The wheel file changed between planning and writing.
    #[error(
        "wheel `{wheel}` changed on disk while envbuild was installing it (entry `{path}` moved); run the build again",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    WheelChanged {
        /// The wheel file name.
        wheel: String,
        /// The entry.
        path: String,
    },
    /// Reading an entry failed.
    #[error(
        "wheel `{wheel}`: cannot read `{path}`; {HINT_CORRUPT}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    Read {
        /// The wheel file name.
        wheel: String,
        /// The entry.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An entry's stored bytes do not decode: the wheel is damaged, not the disk
    /// envbuild writes to.
    #[error(
        "wheel `{wheel}`: cannot read `{path}`: {reason}; {HINT_CORRUPT}",
        wheel = Untrusted(.wheel), path = Untrusted(.path)
    )]
    CorruptMember {
        /// The wheel file name.
        wheel: String,
        /// The entry.
        path: String,
        /// What is wrong with its bytes.
        reason: CorruptMemberReason,
    },
    /// An installed path has a component longer than a Linux file name may be.
    #[error(
        "wheel `{wheel}`: `{path}` would install `{destination}`, whose name `{component}` is {length} bytes, more than the {limit} bytes a file name may have on Linux (NAME_MAX); podman and umoci could not unpack the image and pip and uv cannot install the wheel either; {HINT_UNINSTALLABLE}",
        wheel = Untrusted(.wheel), path = Shortened(.path),
        destination = Shortened(.destination), component = Shortened(.component)
    )]
    PathComponentTooLong {
        /// The wheel file name.
        wheel: String,
        /// The entry (or `entry_points.txt` for a launcher).
        path: String,
        /// The absolute installed path.
        destination: String,
        /// The component that is too long.
        component: String,
        /// Its length in bytes.
        length: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// An installed path is longer than a Linux path may be.
    #[error(
        "wheel `{wheel}`: `{path}` would install `{destination}`, which is {length} bytes, more than the {limit} bytes envbuild allows: Linux's PATH_MAX is 4096 bytes, and podman and umoci unpack an image below a folder of their own, so they could not unpack it; {HINT_UNINSTALLABLE}",
        wheel = Untrusted(.wheel), path = Shortened(.path), destination = Shortened(.destination)
    )]
    PathTooLong {
        /// The wheel file name.
        wheel: String,
        /// The entry (or `entry_points.txt` for a launcher).
        path: String,
        /// The absolute installed path.
        destination: String,
        /// Its length in bytes.
        length: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// `.data/<key>` with an unknown key.
    #[error(
        "wheel `{wheel}`: `{path}` is in `.data/{key}`, but the only install scheme keys are `purelib`, `platlib`, `scripts`, `headers` and `data`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), key = Untrusted(.key)
    )]
    UnknownDataKey {
        /// The wheel file name.
        wheel: String,
        /// The path.
        path: String,
        /// The key.
        key: String,
    },
    /// A script or launcher would replace the venv's interpreter.
    #[error(
        "wheel `{wheel}`: `{path}` would install `{name}` into the venv's `bin`, replacing the interpreter; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), name = Untrusted(.name)
    )]
    ScriptShadowsInterpreter {
        /// The wheel file name.
        wheel: String,
        /// The entry (or `entry point NAME`).
        path: String,
        /// The script name.
        name: String,
    },
    /// A file would replace part of the venv itself (`pyvenv.cfg`, `lib64`, a folder).
    #[error(
        "wheel `{wheel}`: `{path}` would install `{destination}`, which is part of the venv itself; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), destination = Untrusted(.destination)
    )]
    ConflictsWithVenv {
        /// The wheel file name.
        wheel: String,
        /// The entry.
        path: String,
        /// The absolute destination.
        destination: String,
    },
    /// Two entries of one wheel install to the same place.
    #[error(
        "wheel `{wheel}`: `{path}` and `{other}` both install to `{destination}`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), other = Untrusted(.other), destination = Untrusted(.destination)
    )]
    DuplicateDestination {
        /// The wheel file name.
        wheel: String,
        /// The entry.
        path: String,
        /// The other entry.
        other: String,
        /// The absolute destination.
        destination: String,
    },
    /// One path of a wheel is both a file and a folder.
    #[error(
        "wheel `{wheel}`: `{destination}` would be both a file and a folder; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), destination = Untrusted(.destination)
    )]
    FileDirectoryConflict {
        /// The wheel file name.
        wheel: String,
        /// The absolute destination.
        destination: String,
    },
    /// `entry_points.txt` has a line that is not a section, comment or `name = value`.
    #[error(
        "wheel `{wheel}`: line {line} of `{path}` is not a `[section]`, a comment or a `name = value` pair: `{text}`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), path = Untrusted(.path), text = Untrusted(.text)
    )]
    EntryPointsSyntax {
        /// The wheel file name.
        wheel: String,
        /// The `entry_points.txt` path.
        path: String,
        /// The 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// An entry point name is given twice.
    #[error(
        "wheel `{wheel}`: entry point script `{name}` is defined twice in `entry_points.txt`; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), name = Untrusted(.name)
    )]
    DuplicateEntryPoint {
        /// The wheel file name.
        wheel: String,
        /// The script name.
        name: String,
    },
    /// An entry point name is not a safe file name.
    #[error(
        "wheel `{wheel}`: entry point script name `{name}` is not a safe file name (it is empty, `.`/`..`, starts with `.wh.` or holds `/`, `\\` or control characters); {HINT_BROKEN}",
        wheel = Untrusted(.wheel), name = Untrusted(.name)
    )]
    InvalidEntryPointName {
        /// The wheel file name.
        wheel: String,
        /// The script name.
        name: String,
    },
    /// An entry point value has no `:callable`.
    #[error(
        "wheel `{wheel}`: entry point script `{name}` is `{value}`, which has no `:callable` suffix (pip: MissingCallableSuffix); {HINT_BROKEN}",
        wheel = Untrusted(.wheel), name = Untrusted(.name), value = Untrusted(.value)
    )]
    MissingCallableSuffix {
        /// The wheel file name.
        wheel: String,
        /// The script name.
        name: String,
        /// The value.
        value: String,
    },
    /// An entry point value is not `module:attr` made of Python identifiers.
    #[error(
        "wheel `{wheel}`: entry point script `{name}` is `{value}`, which is not `module.sub:object.attr` made of Python identifiers; {HINT_BROKEN}",
        wheel = Untrusted(.wheel), name = Untrusted(.name), value = Untrusted(.value)
    )]
    InvalidEntryPointValue {
        /// The wheel file name.
        wheel: String,
        /// The script name.
        name: String,
        /// The value.
        value: String,
    },
    /// Two wheels install different contents at one path.
    #[error(
        "`/{path}` is installed by both `{first}` and `{second}` with different contents or modes; keep only one of the two packages in the lockfile, or make sure they ship the same file",
        path = Untrusted(.path), first = Untrusted(.first), second = Untrusted(.second)
    )]
    Collision {
        /// The layer path.
        path: String,
        /// The first wheel.
        first: String,
        /// The second wheel.
        second: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_shortened_keeps_short_text_and_cuts_long_text_at_characters() {
        assert_eq!(Shortened("a\u{1b}b").to_string(), "a\\u{1b}b");
        let long = "é".repeat(300);
        let shown = Shortened(&long).to_string();
        assert_eq!(shown, format!("{}…{}", "é".repeat(30), "é".repeat(30)));
        let mixed = format!("{}\n{}", "x".repeat(150), "y".repeat(150));
        assert_eq!(
            Shortened(&mixed).to_string(),
            format!("{}…{}", "x".repeat(60), "y".repeat(60))
        );
    }

    #[test]
    fn err_messages_escape_control_characters() {
        let error = WheelError::MetadataVersionMismatch {
            wheel: "w\u{1b}[31m.whl".into(),
            metadata: "9\n9".into(),
            filename: "1.0".into(),
            locked: Some("1.0\r".into()),
        };
        let message = error.to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(
            message.contains("`w\\u{1b}[31m.whl`")
                && message.contains("`9\\n9`")
                && message.contains("`1.0\\r`"),
            "{message}"
        );
    }
}
