//! Test helpers: wheels built in memory with the zip crate, valid by default (WHEEL,
//! METADATA and a correct RECORD), and tools to break them in one precise way.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use crate::digest::Sha256Digest;
use crate::platform::PythonVersion;
use crate::wheel::InstallScheme;

/// The test wheel's file name.
pub(crate) const FILENAME: &str = "demo-1.0-py3-none-any.whl";

/// Unix regular-file type bits.
pub(crate) const REG: u32 = 0o100_000;

/// One zip member: name, bytes and full unix mode (type bits included).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) mode: u32,
}

/// The scheme every test installs into.
pub(crate) fn scheme() -> InstallScheme {
    InstallScheme {
        prefix: "/opt/venv".into(),
        python: PythonVersion {
            major: 3,
            minor: 11,
            patch: Some(4),
        },
        interpreter: "/usr/bin/python3.11".into(),
    }
}

/// WHEEL, METADATA, the given `(path, bytes, permissions)` files and a RECORD that
/// hashes them all correctly, for the `demo` 1.0 project.
pub(crate) fn members(files: &[(&str, &[u8], u32)]) -> Vec<Member> {
    project_members("demo", "1.0", files)
}

/// Like [`members`] for any project name and version.
pub(crate) fn project_members(
    name: &str,
    version: &str,
    files: &[(&str, &[u8], u32)],
) -> Vec<Member> {
    let dist_info = format!("{name}-{version}.dist-info");
    let mut members = vec![
        member(
            &format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            0o644,
        ),
        member(
            &format!("{dist_info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").as_bytes(),
            0o644,
        ),
    ];
    members.extend(
        files
            .iter()
            .map(|(path, bytes, mode)| member(path, bytes, *mode)),
    );
    with_record(members, &dist_info)
}

/// A regular-file member.
pub(crate) fn member(name: &str, bytes: &[u8], permissions: u32) -> Member {
    Member {
        name: name.into(),
        bytes: bytes.to_vec(),
        mode: REG | permissions,
    }
}

/// Replace any RECORD with one that lists every member correctly.
pub(crate) fn with_record(mut members: Vec<Member>, dist_info: &str) -> Vec<Member> {
    let record_name = format!("{dist_info}/RECORD");
    members.retain(|member| member.name != record_name);
    let mut text = String::new();
    for member in &members {
        let digest = Sha256Digest::of(&member.bytes);
        let name = if member.name.contains(',') {
            format!("\"{}\"", member.name)
        } else {
            member.name.clone()
        };
        text.push_str(&format!(
            "{name},{},{}\n",
            digest.record(),
            member.bytes.len()
        ));
    }
    text.push_str(&format!("{record_name},,\n"));
    members.push(member(&record_name, text.as_bytes(), 0o644));
    members
}

/// Zip the members (deflate) into bytes.
pub(crate) fn zip_bytes(members: &[Member]) -> Vec<u8> {
    zip_bytes_with(members, zip::CompressionMethod::Deflated)
}

/// Zip the members into bytes with one compression method.
pub(crate) fn zip_bytes_with(members: &[Member], method: zip::CompressionMethod) -> Vec<u8> {
    try_zip_bytes(members, method).unwrap()
}

/// Zip the members, or the zip writer's error (it refuses a name twice).
pub(crate) fn try_zip_bytes(
    members: &[Member],
    method: zip::CompressionMethod,
) -> zip::result::ZipResult<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for member in members {
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .system(zip::System::Unix)
            .external_attributes(member.mode << 16);
        writer.start_file(member.name.as_str(), options)?;
        writer.write_all(&member.bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// Write `bytes` as `filename` in `folder`.
pub(crate) fn write_wheel(folder: &Path, filename: &str, bytes: &[u8]) -> PathBuf {
    let path = folder.join(filename);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A valid demo wheel with the given files, written to `folder`.
pub(crate) fn valid_wheel(folder: &Path, files: &[(&str, &[u8], u32)]) -> PathBuf {
    write_wheel(folder, FILENAME, &zip_bytes(&members(files)))
}

/// Rename a member in zip bytes (local and central headers), keeping the length: the
/// zip writer refuses names a malicious archive can hold.
pub(crate) fn rename_in_zip(mut bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut index = 0;
    let mut count = 0;
    while index + from.len() <= bytes.len() {
        if &bytes[index..index + from.len()] == from {
            bytes[index..index + from.len()].copy_from_slice(to);
            count += 1;
            index += from.len();
        } else {
            index += 1;
        }
    }
    assert!(
        count >= 2,
        "name must be in the local and the central header"
    );
    bytes
}

/// Where member `name`'s stored (compressed) bytes are in zip `bytes`: after its local
/// header (30 bytes, the name, the extra field).
pub(crate) fn member_data(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let header = local_header(bytes, name);
    let field = |offset: usize| u16::from_le_bytes([bytes[offset], bytes[offset + 1]]);
    let compressed = u32::from_le_bytes(bytes[header + 18..header + 22].try_into().unwrap());
    let start = header + 30 + usize::from(field(header + 26)) + usize::from(field(header + 28));
    start..start + compressed as usize
}

/// A field that both zip headers of a member hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HeaderField {
    /// The CRC-32 of the uncompressed bytes.
    Crc32,
    /// The compressed size.
    CompressedSize,
    /// The uncompressed size.
    UncompressedSize,
}

/// Set `field` in both the local and the central header of member `name`.
pub(crate) fn set_header_field(bytes: &mut [u8], name: &str, field: HeaderField, value: u32) {
    let (local_offset, central_offset) = match field {
        HeaderField::Crc32 => (14, 16),
        HeaderField::CompressedSize => (18, 20),
        HeaderField::UncompressedSize => (22, 24),
    };
    let local = local_header(bytes, name) + local_offset;
    bytes[local..local + 4].copy_from_slice(&value.to_le_bytes());
    let central = find_header(bytes, b"PK\x01\x02", 46, name) + central_offset;
    bytes[central..central + 4].copy_from_slice(&value.to_le_bytes());
}

fn local_header(bytes: &[u8], name: &str) -> usize {
    find_header(bytes, b"PK\x03\x04", 30, name)
}

/// The offset of the header with `signature` whose name (at `name_offset`) is `name`.
fn find_header(bytes: &[u8], signature: &[u8; 4], name_offset: usize, name: &str) -> usize {
    (0..bytes.len().saturating_sub(name_offset + name.len()))
        .find(|&at| {
            &bytes[at..at + 4] == signature
                && &bytes[at + name_offset..at + name_offset + name.len()] == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("no zip header for `{name}`"))
}

/// Byte-level mutations for the no-panic property tests: the edits a fuzzer makes,
/// plus little-endian integers written over the input, which is how a zip header's
/// size or count field gets a hostile value.
pub(crate) mod mutate {
    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::test_runner::{Config, RngSeed};

    /// One edit of a byte string.
    #[derive(Debug, Clone)]
    pub(crate) enum Mutation {
        /// Flip one bit.
        Flip(Index, u8),
        /// Overwrite one byte.
        Set(Index, u8),
        /// Insert bytes.
        Insert(Index, Vec<u8>),
        /// Remove up to this many bytes.
        Remove(Index, usize),
        /// Cut the input here.
        Truncate(Index),
        /// Write a little-endian u32 here (a size, an offset, a count).
        Word(Index, u32),
        /// Write a little-endian u16 here.
        Short(Index, u16),
        /// Copy a slice of the input over another place.
        Copy(Index, Index, usize),
    }

    /// Values that break size and count fields.
    const WORDS: &[u32] = &[
        0,
        1,
        0x7f,
        0xff,
        0xffff,
        0x0010_0000,
        0x0400_0000,
        0x0400_0001,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fffe,
        0xffff_ffff,
    ];

    /// Characters that matter to the text parsers (separators, quotes, control).
    const BYTES: &[u8] = b"\0\n\r\t\x1b\x7f ,\"'=:[]./\\-_#;@!+~%";

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), proptest::sample::select(BYTES)]
    }

    /// One mutation.
    pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
            3 => (any::<Index>(), byte()).prop_map(|(at, value)| Mutation::Set(at, value)),
            2 => (any::<Index>(), proptest::collection::vec(byte(), 1..16))
                .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
            2 => (any::<Index>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove(at, len)),
            1 => any::<Index>().prop_map(Mutation::Truncate),
            2 => (
                any::<Index>(),
                prop_oneof![proptest::sample::select(WORDS), any::<u32>()]
            )
                .prop_map(|(at, value)| Mutation::Word(at, value)),
            1 => (any::<Index>(), any::<u16>()).prop_map(|(at, value)| Mutation::Short(at, value)),
            1 => (any::<Index>(), any::<Index>(), 1usize..256)
                .prop_map(|(from, to, len)| Mutation::Copy(from, to, len)),
        ]
    }

    /// One to `max` mutations.
    pub(crate) fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
        proptest::collection::vec(mutation(), 1..=max)
    }

    /// Apply `mutations` in order.
    pub(crate) fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
        for mutation in mutations {
            let len = bytes.len();
            // Positions for edits that need an existing byte, and for insertions.
            let at = |index: &Index| (len > 0).then(|| index.index(len));
            match mutation {
                Mutation::Flip(index, bit) => {
                    if let Some(at) = at(index) {
                        bytes[at] ^= 1 << bit;
                    }
                }
                Mutation::Set(index, value) => {
                    if let Some(at) = at(index) {
                        bytes[at] = *value;
                    }
                }
                Mutation::Insert(index, inserted) => {
                    let at = index.index(len + 1);
                    bytes.splice(at..at, inserted.iter().copied());
                }
                Mutation::Remove(index, count) => {
                    if let Some(at) = at(index) {
                        let end = (at + count).min(len);
                        bytes.drain(at..end);
                    }
                }
                Mutation::Truncate(index) => bytes.truncate(index.index(len + 1)),
                Mutation::Word(index, value) => write(&mut bytes, at(index), &value.to_le_bytes()),
                Mutation::Short(index, value) => {
                    write(&mut bytes, at(index), &value.to_le_bytes());
                }
                Mutation::Copy(from, to, count) => {
                    if let (Some(from), Some(to)) = (at(from), at(to)) {
                        let end = (from + count).min(len);
                        let slice = bytes[from..end].to_vec();
                        write(&mut bytes, Some(to), &slice);
                    }
                }
            }
        }
        bytes
    }

    fn write(bytes: &mut [u8], at: Option<usize>, value: &[u8]) {
        if let Some(at) = at {
            let end = (at + value.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&value[..end - at]);
        }
    }

    /// A deterministic run of `cases` cases: a fixed seed (so CI sees the same inputs
    /// every run), no regression files written into the source tree, and little
    /// shrinking (a failure prints its input either way).
    pub(crate) fn config(cases: u32, seed: u64) -> Config {
        Config {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            max_shrink_iters: 256,
            ..Config::default()
        }
    }

    /// Whether a one-line message is safe for a terminal: no control character at all.
    pub(crate) fn printable(message: &str) -> bool {
        !message.chars().any(|c| c.is_control())
    }
}
