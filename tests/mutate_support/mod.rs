//! Mutations for the no-panic property tests of parsers of untrusted input: the edits a
//! fuzzer makes to bytes (bit flips, inserted and removed bytes, cuts, copied slices, and
//! little-endian integers written anywhere), hostile values written into one field of a
//! zip member's headers or of the end of central directory (sizes, counts, offsets, name
//! lengths: the fields a byte flip rarely hits, and the ones that size allocations), and
//! the proptest settings every such test uses (a fixed seed, bounded cases, nothing
//! written into the source tree). For text formats there are also the edits hostile
//! files use: thousands of nested brackets and tokens of some format in the wrong place
//! ([`text_mutation`]), and [`assert_no_panic`] runs a parser over them. The one mutator
//! of the project: the unit tests include this file (`src/lib.rs`, `mod mutate`) and so
//! do the integration tests.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
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
    /// Insert this opening bracket `depth` times (and, if `closed`, as many closing ones).
    Nest {
        /// Where.
        at: Index,
        /// The opening bracket.
        open: &'static str,
        /// The closing bracket.
        close: &'static str,
        /// How many.
        depth: usize,
        /// Whether the closing ones follow.
        closed: bool,
    },
    /// Insert a text some format gives meaning to, or a number no field expects.
    Token(Index, &'static str),
}

/// Texts with meaning in some format, or numbers no field expects.
const TOKENS: &[&str] = &[
    "99999999999999999999999999999",
    "18446744073709551616",
    "-1",
    "1e999",
    "NaN",
    "\u{1b}[31m",
    "\u{202e}",
    "\n[[packages]]\nname = \"",
    "\n[[package]]\nname = \"",
    "\n[metadata]\nlock-version = \"",
    "\"_meta\": {",
    "{\"files\": [",
    "{\"schemaVersion\": 2, \"manifests\": [",
    "\"mediaType\": \"application/vnd.oci.image.index.v1+json\"",
    "\"digest\": \"sha256:",
    "\"size\": -1",
    "\"rootfs\": {\"diff_ids\": [",
    "extra == '",
    " and ",
    " or ",
    "'x' in extras",
    " ; ",
    " @ ",
    "==",
    "===",
    "://",
    "file:///",
    "http://user:pass@127.0.0.1:99999/",
    "%",
    "%ff",
    "${HOME}",
    "\\\n",
    "-r ",
    "-c ",
    "--hash=sha256:",
    "--index-url ",
    "sha256:",
    "<a href=\"",
    "<base href=\"",
    "<!--",
    "&#",
    "&#x110000;",
    "&amp",
    "machine ",
    "macdef x\n",
    "[global]\nindex-url = ",
    "Bearer realm=\"",
    ", Basic ",
    "=\"\\\"",
    "\n  ",
    "//[",
    "//host",
    "..",
];

/// Brackets of the formats envbuild reads.
const OPENERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("[", "]"),
    ("{", "}"),
    ("[[", "]]"),
    ("{\"a\":", "}"),
    ("x = [", "]"),
    ("a = {b=", "}"),
    ("<a>", "</a>"),
];

/// Values that break size and count fields.
const WORDS: &[u32] = &[
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x0010_0000,
    0x0200_0000,
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
pub fn mutation() -> impl Strategy<Value = Mutation> {
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
pub fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..=max)
}

/// One mutation of a text format: a byte edit, deep nesting or a misplaced token.
pub fn text_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => mutation(),
        1 => (
            any::<Index>(),
            proptest::sample::select(OPENERS),
            prop_oneof![1..40usize, 1..25_000usize],
            any::<bool>()
        )
            .prop_map(|(at, (open, close), depth, closed)| Mutation::Nest {
                at,
                open,
                close,
                depth,
                closed
            }),
        3 => (any::<Index>(), proptest::sample::select(TOKENS))
            .prop_map(|(at, token)| Mutation::Token(at, token)),
    ]
}

/// Run `parse` over `cases` hostile variations of `seeds` (more with
/// `ENVBUILD_HOSTILE_CASES`), each seed changed by up to eight [`text_mutation`]s, with a
/// seed derived from `name`: the same inputs on every run, so a failure reproduces.
/// `parse` returns nothing; a panic fails the test with the input that caused it, and a
/// stack overflow aborts the test process, which fails the run as well.
pub fn assert_no_panic<S: AsRef<[u8]>>(
    name: &str,
    seeds: impl IntoIterator<Item = S>,
    cases: u32,
    parse: impl Fn(&[u8]),
) {
    let seeds: Vec<Vec<u8>> = seeds
        .into_iter()
        .map(|seed| seed.as_ref().to_vec())
        .collect();
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let cases = std::env::var("ENVBUILD_HOSTILE_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(cases);
    // One stream per parser (FNV-1a of its name), the same on every run.
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut runner = proptest::test_runner::TestRunner::new(config(cases, seed));
    let started = std::time::Instant::now();
    let inputs = (
        proptest::sample::select(seeds),
        proptest::collection::vec(text_mutation(), 0..8),
    )
        .prop_map(|(seed, mutations)| apply(seed, &mutations));
    if let Err(error) = runner.run(&inputs, |input| {
        parse(&input);
        Ok(())
    }) {
        panic!("{name}: a hostile input made the parser panic: {error}");
    }
    eprintln!(
        "{name}: {cases} hostile inputs in {:.1?}",
        started.elapsed()
    );
}

/// Apply `mutations` in order.
pub fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
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
            Mutation::Nest {
                at,
                open,
                close,
                depth,
                closed,
            } => {
                let at = at.index(len + 1);
                let mut nested = open.repeat(*depth).into_bytes();
                if *closed {
                    nested.extend(close.repeat(*depth).into_bytes());
                }
                bytes.splice(at..at, nested);
            }
            Mutation::Token(index, token) => {
                let at = index.index(len + 1);
                bytes.splice(at..at, token.bytes());
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
pub fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// Whether a one-line message is safe for a terminal: no control character at all.
pub fn printable(message: &str) -> bool {
    !message.chars().any(|c| c.is_control())
}

// ---------------------------------------------------------------------------------------------
// Zip headers

/// The signature of a local file header.
const LOCAL: &[u8; 4] = b"PK\x03\x04";
/// The signature of a central directory header.
const CENTRAL: &[u8; 4] = b"PK\x01\x02";
/// The signature of the end of central directory record.
const END: &[u8; 4] = b"PK\x05\x06";

/// A field that both headers of a zip member hold (APPNOTE 4.3.7 and 4.3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField {
    /// The compression method (2 bytes).
    Method,
    /// The CRC-32 of the uncompressed bytes.
    Crc32,
    /// The compressed size.
    CompressedSize,
    /// The uncompressed size.
    UncompressedSize,
    /// The name's length (2 bytes).
    NameLength,
    /// The extra field's length (2 bytes).
    ExtraLength,
}

impl HeaderField {
    /// Every field.
    pub const ALL: [HeaderField; 6] = [
        HeaderField::Method,
        HeaderField::Crc32,
        HeaderField::CompressedSize,
        HeaderField::UncompressedSize,
        HeaderField::NameLength,
        HeaderField::ExtraLength,
    ];

    /// (offset in the local header, offset in the central header, width in bytes).
    fn place(self) -> (usize, usize, usize) {
        match self {
            HeaderField::Method => (8, 10, 2),
            HeaderField::Crc32 => (14, 16, 4),
            HeaderField::CompressedSize => (18, 20, 4),
            HeaderField::UncompressedSize => (22, 24, 4),
            HeaderField::NameLength => (26, 28, 2),
            HeaderField::ExtraLength => (28, 30, 2),
        }
    }
}

/// Which of a member's two headers to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// The local header only.
    Local,
    /// The central directory header only.
    Central,
    /// Both, so the two still agree and the reader trusts the value.
    Both,
}

/// One member of a well-formed zip: its name and where its two headers start.
#[derive(Debug, Clone)]
pub struct ZipMember {
    /// The name.
    pub name: Vec<u8>,
    /// Offset of the local header.
    pub local: usize,
    /// Offset of the central directory header.
    pub central: usize,
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// The offset of the end of central directory record (the last one).
fn end_record(bytes: &[u8]) -> usize {
    (0..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&at| &bytes[at..at + 4] == END)
        .expect("a zip has an end of central directory record")
}

/// The members of a well-formed zip (no zip64), in central directory order.
pub fn zip_members(bytes: &[u8]) -> Vec<ZipMember> {
    let end = end_record(bytes);
    let count = u16_at(bytes, end + 10);
    let mut at = u32_at(bytes, end + 16);
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(&bytes[at..at + 4], CENTRAL, "central header at {at}");
        let name_length = u16_at(bytes, at + 28);
        let local = u32_at(bytes, at + 42);
        assert_eq!(&bytes[local..local + 4], LOCAL, "local header at {local}");
        members.push(ZipMember {
            name: bytes[at + 46..at + 46 + name_length].to_vec(),
            local,
            central: at,
        });
        at += 46 + name_length + u16_at(bytes, at + 30) + u16_at(bytes, at + 32);
    }
    members
}

fn member_named(bytes: &[u8], name: &str) -> ZipMember {
    zip_members(bytes)
        .into_iter()
        .find(|member| member.name == name.as_bytes())
        .unwrap_or_else(|| panic!("no member `{name}`"))
}

/// Where member `name`'s stored (compressed) bytes are.
pub fn member_data(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let member = member_named(bytes, name);
    let start =
        member.local + 30 + u16_at(bytes, member.local + 26) + u16_at(bytes, member.local + 28);
    start..start + u32_at(bytes, member.local + 18)
}

/// Write `value` (cut to the field's width) into `field` of `member`'s `headers`.
pub fn set_field(
    bytes: &mut [u8],
    member: &ZipMember,
    field: HeaderField,
    headers: Headers,
    value: u32,
) {
    let (local, central, width) = field.place();
    let value = &value.to_le_bytes()[..width];
    if headers != Headers::Central {
        bytes[member.local + local..member.local + local + width].copy_from_slice(value);
    }
    if headers != Headers::Local {
        bytes[member.central + central..member.central + central + width].copy_from_slice(value);
    }
}

/// Set `field` in both headers of member `name`.
pub fn set_header_field(bytes: &mut [u8], name: &str, field: HeaderField, value: u32) {
    let member = member_named(bytes, name);
    set_field(bytes, &member, field, Headers::Both, value);
}

/// Give member `name` this unix mode (type and permission bits) in its central header's
/// external attributes, where pip and envbuild read it.
pub fn set_unix_mode(bytes: &mut [u8], name: &str, mode: u32) {
    let member = member_named(bytes, name);
    let at = member.central + 38;
    bytes[at..at + 4].copy_from_slice(&(mode << 16).to_le_bytes());
}

/// A field of the end of central directory record (APPNOTE 4.3.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndField {
    /// Entries on this disk (2 bytes).
    EntriesOnDisk,
    /// Entries in all (2 bytes).
    Entries,
    /// The central directory's size.
    DirectorySize,
    /// The central directory's offset.
    DirectoryOffset,
    /// The comment's length (2 bytes).
    CommentLength,
}

impl EndField {
    /// Every field.
    pub const ALL: [EndField; 5] = [
        EndField::EntriesOnDisk,
        EndField::Entries,
        EndField::DirectorySize,
        EndField::DirectoryOffset,
        EndField::CommentLength,
    ];
}

/// Write `value` (cut to the field's width) into `field` of the end record.
pub fn set_end_field(bytes: &mut [u8], field: EndField, value: u32) {
    let end = end_record(bytes);
    let (offset, width) = match field {
        EndField::EntriesOnDisk => (8, 2),
        EndField::Entries => (10, 2),
        EndField::DirectorySize => (12, 4),
        EndField::DirectoryOffset => (16, 4),
        EndField::CommentLength => (20, 2),
    };
    bytes[end + offset..end + offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// A hostile value for a zip field: a boundary, a size near the real one, or anything.
pub fn field_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => proptest::sample::select(WORDS),
        1 => (0u32..64).prop_map(|small| small),
        1 => any::<u32>(),
    ]
}
