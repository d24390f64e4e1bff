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

pub(crate) use crate::mutate;
