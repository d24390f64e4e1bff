//! Deterministic layer tars, their compression and digests, and (in [`plan`]) which
//! wheels share a layer. [`write_wheels_layer`] writes the planned installs of one or
//! more wheels and [`write_venv_layer`] the venv skeleton, each in one pass: tar →
//! SHA-256 of the tar (diff_id) → gzip → cache entry (digest, size). Every header comes
//! from [`crate::repro::tar_header`]; entries are sorted by path bytes with every
//! parent first (standards §5.9). A wheel member whose bytes disagree with RECORD fails
//! the layer, and nothing is kept in the cache.

pub mod plan;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::cache::{Cache, CacheError, EntryKind};
use crate::digest::{HashingWriter, Sha256Digest};
use crate::repro::{self, DIR_MODE, FILE_MODE, SourceDateEpoch};
use crate::wheel::{
    EntryContent, InstallScheme, VenvEntry, WheelError, WheelInstall, into_wheel_error,
    merge_entries,
};

/// Mode of symbolic links, as GNU tar and the kernel report them (ignored on use).
const SYMLINK_MODE: u32 = 0o777;

/// A layer blob committed to the cache as [`EntryKind::Blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerBlob {
    /// SHA-256 of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Sha256Digest,
    /// SHA-256 of the gzip blob (manifest `layers[].digest`).
    pub digest: Sha256Digest,
    /// Size of the gzip blob in bytes.
    pub size: u64,
}

/// Errors from writing a layer. Reading a wheel member and writing the layer's
/// temporary file fail for different reasons, so they are different variants, each
/// with a message that is true of it.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A wheel failed validation while streaming (RECORD hash or size mismatch, a
    /// collision, an unreadable member).
    #[error(transparent)]
    Wheel(#[from] WheelError),
    /// A wheel member could not be read: its compressed data is corrupt, or it is not
    /// what the zip's directory says.
    #[error(
        "cannot read `{member}` from wheel `{wheel}`: the wheel file is damaged (its compressed data is corrupt or disagrees with the zip's directory); fetch it again, or lock another build of the package if the published file itself is broken"
    )]
    ReadMember {
        /// The wheel's file name.
        wheel: String,
        /// The member's name in the wheel.
        member: String,
        /// The zip or decompression error.
        #[source]
        source: io::Error,
    },
    /// The cache could not hold the blob.
    #[error("cannot store the layer blob in the cache")]
    Cache(#[source] CacheError),
    /// Writing an entry into the layer's temporary file failed.
    #[error("{}", write_message(&format!("layer entry `{path}`"), temp_path, source))]
    Write {
        /// The layer entry being written.
        path: String,
        /// The temporary file in the cache.
        temp_path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Closing the tar or gzip stream (writing its last bytes) failed.
    #[error("{}", write_message("the end of the layer", temp_path, source))]
    Finish {
        /// The temporary file in the cache.
        temp_path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// The message of a write error: a full disk is said plainly, with what to do.
fn write_message(what: &str, temp_path: &Path, source: &io::Error) -> String {
    if crate::cache::is_disk_full(source) {
        format!(
            "cannot write {what} into `{}`: the disk holding the cache is full; free some space, or point `--cache-dir` (`ENVBUILD_CACHE_DIR`) at a disk with room",
            temp_path.display()
        )
    } else {
        format!(
            "cannot write {what} into the cache's temporary file `{}`",
            temp_path.display()
        )
    }
}

/// A read error of a wheel member, told apart from write errors as it passes through
/// the tar writer (which reports both as `io::Error`).
#[derive(Debug)]
struct MemberReadError(io::Error);

impl std::fmt::Display for MemberReadError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl std::error::Error for MemberReadError {}

/// A reader whose errors are marked as [`MemberReadError`]s, except the RECORD checks
/// of [`crate::wheel`]'s verifying reader, which already carry a [`WheelError`].
struct MarkReadErrors<R>(R);

impl<R: io::Read> io::Read for MarkReadErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|error| {
            if error
                .get_ref()
                .is_some_and(|inner| inner.is::<WheelError>())
            {
                error
            } else {
                io::Error::new(error.kind(), MemberReadError(error))
            }
        })
    }
}

/// A wheel member to write into a layer.
struct Member<'a> {
    /// The wheel's file name.
    wheel: &'a str,
    /// The member's name in the wheel.
    name: &'a str,
    mode: u32,
    size: u64,
}

/// The tar → diff_id → gzip → cache pipeline of one layer.
struct LayerWriter {
    builder: tar::Builder<HashingWriter<flate2::write::GzEncoder<crate::cache::PendingEntry>>>,
    epoch: SourceDateEpoch,
    /// The cache's temporary file, for messages.
    temp_path: PathBuf,
}

impl LayerWriter {
    fn new(cache: &Cache, epoch: SourceDateEpoch) -> Result<Self, LayerError> {
        let mut pending = cache.begin(EntryKind::Blob).map_err(LayerError::Cache)?;
        let temp_path = pending.temp_path();
        let builder = tar::Builder::new(HashingWriter::new(repro::gzip_encoder(pending)));
        Ok(Self {
            builder,
            epoch,
            temp_path,
        })
    }

    fn write_error(&self, path: &str, source: io::Error) -> LayerError {
        LayerError::Write {
            path: path.to_string(),
            temp_path: self.temp_path.clone(),
            source,
        }
    }

    fn directory(&mut self, tar_path: &str) -> Result<(), LayerError> {
        let mut header = repro::tar_header(tar::EntryType::Directory, DIR_MODE, 0, self.epoch);
        self.builder
            .append_data(&mut header, tar_path, io::empty())
            .map_err(|source| self.write_error(tar_path, source))
    }

    /// A file made in memory.
    fn file(&mut self, tar_path: &str, mode: u32, bytes: &[u8]) -> Result<(), LayerError> {
        let mut header = repro::tar_header(
            tar::EntryType::Regular,
            mode,
            bytes.len() as u64,
            self.epoch,
        );
        self.builder
            .append_data(&mut header, tar_path, bytes)
            .map_err(|source| self.write_error(tar_path, source))
    }

    /// A file streamed from a wheel member.
    fn member(
        &mut self,
        tar_path: &str,
        member: &Member<'_>,
        reader: impl io::Read,
    ) -> Result<(), LayerError> {
        let mut header = repro::tar_header(
            tar::EntryType::Regular,
            member.mode,
            member.size,
            self.epoch,
        );
        self.builder
            .append_data(&mut header, tar_path, MarkReadErrors(reader))
            .map_err(|error| {
                // The verifying reader reports RECORD mismatches as a wrapped WheelError.
                let error = match into_wheel_error(error) {
                    Ok(wheel_error) => return LayerError::Wheel(wheel_error),
                    Err(error) => error,
                };
                if error
                    .get_ref()
                    .is_some_and(|inner| inner.is::<MemberReadError>())
                {
                    let inner = error.into_inner().expect("checked above");
                    let MemberReadError(source) =
                        *inner.downcast::<MemberReadError>().expect("checked above");
                    return LayerError::ReadMember {
                        wheel: member.wheel.to_string(),
                        member: member.name.to_string(),
                        source,
                    };
                }
                self.write_error(tar_path, error)
            })
    }

    fn symlink(&mut self, tar_path: &str, target: &str) -> Result<(), LayerError> {
        let mut header = repro::tar_header(tar::EntryType::Symlink, SYMLINK_MODE, 0, self.epoch);
        self.builder
            .append_link(&mut header, tar_path, target)
            .map_err(|source| self.write_error(tar_path, source))
    }

    /// Close the tar and gzip streams and commit the blob.
    fn finish(self) -> Result<LayerBlob, LayerError> {
        let finish_error = |source| LayerError::Finish {
            temp_path: self.temp_path.clone(),
            source,
        };
        let hashing = self.builder.into_inner().map_err(finish_error)?;
        let (encoder, diff_id, _) = hashing.finish();
        let pending = encoder.finish().map_err(finish_error)?;
        let (digest, size) = pending.commit(None).map_err(LayerError::Cache)?;
        Ok(LayerBlob {
            diff_id,
            digest,
            size,
        })
    }
}

/// Write one layer holding the planned installs of `installs`, merged and sorted by
/// path bytes (directories sort by their path without the `/`, so parents come
/// first). Shared directories appear once; two wheels with different files at one
/// path fail with [`WheelError::Collision`]. Archived files are streamed from the
/// wheels and checked against RECORD; on a mismatch the partial blob is discarded.
pub fn write_wheels_layer(
    installs: &[&WheelInstall],
    epoch: SourceDateEpoch,
    cache: &Cache,
) -> Result<LayerBlob, LayerError> {
    let merged = merge_entries(installs)?;
    let mut archives = installs
        .iter()
        .map(|install| install.open_archive())
        .collect::<Result<Vec<_>, _>>()?;
    let mut writer = LayerWriter::new(cache, epoch)?;
    for (index, entry) in merged.values() {
        match &entry.content {
            EntryContent::Directory => writer.directory(&entry.tar_path)?,
            EntryContent::Generated { bytes, mode, .. } => {
                writer.file(&entry.tar_path, *mode, bytes)?;
            }
            EntryContent::Archived(file) => {
                let install = installs[*index];
                let reader = install.reader(&mut archives[*index], file)?;
                let member = Member {
                    wheel: install.filename(),
                    name: &file.name,
                    mode: file.mode,
                    size: file.size,
                };
                writer.member(&entry.tar_path, &member, reader)?;
            }
        }
    }
    writer.finish()
}

/// An entry of a layer whose files come from outside wheels (`--add`, `--create-user`):
/// its path in the layer (no leading `/`; folders end in `/`), owner and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// The path in the layer.
    pub path: String,
    /// uid and gid.
    pub owner: (u32, u32),
    /// What it is.
    pub content: LayerContent,
}

/// The content of a [`LayerEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerContent {
    /// A folder with this mode.
    Directory(u32),
    /// A file made in memory.
    Bytes {
        /// Its mode.
        mode: u32,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A file streamed from the build machine.
    File {
        /// Its mode.
        mode: u32,
        /// Where it is read from.
        source: PathBuf,
        /// Its size when it was listed.
        size: u64,
    },
    /// A symbolic link.
    Symlink(String),
}

/// Write one layer holding `entries`, in the order given (the caller sorts them, parents
/// first), with the build's fixed timestamps and the entries' owners.
pub fn write_entries_layer(
    entries: &[LayerEntry],
    epoch: SourceDateEpoch,
    cache: &Cache,
) -> Result<LayerBlob, LayerError> {
    let mut writer = LayerWriter::new(cache, epoch)?;
    for entry in entries {
        let (kind, mode, size) = match &entry.content {
            LayerContent::Directory(mode) => (tar::EntryType::Directory, *mode, 0),
            LayerContent::Bytes { mode, bytes } => {
                (tar::EntryType::Regular, *mode, bytes.len() as u64)
            }
            LayerContent::File { mode, size, .. } => (tar::EntryType::Regular, *mode, *size),
            LayerContent::Symlink(_) => (tar::EntryType::Symlink, SYMLINK_MODE, 0),
        };
        let mut header = repro::tar_header(kind, mode, size, epoch);
        header.set_uid(u64::from(entry.owner.0));
        header.set_gid(u64::from(entry.owner.1));
        let path = entry.path.as_str();
        let result = match &entry.content {
            LayerContent::Directory(_) => {
                writer.builder.append_data(&mut header, path, io::empty())
            }
            LayerContent::Bytes { bytes, .. } => {
                writer.builder.append_data(&mut header, path, &bytes[..])
            }
            LayerContent::File { source, size, .. } => {
                let file = fs_err::File::open(source)
                    .map_err(|source| writer.write_error(path, source))?;
                // A file that grew since it was listed is cut at its listed size; one
                // that shrank fails the tar writer.
                writer
                    .builder
                    .append_data(&mut header, path, io::Read::take(file, *size))
            }
            LayerContent::Symlink(target) => writer.builder.append_link(&mut header, path, target),
        };
        result.map_err(|source| writer.write_error(path, source))?;
    }
    writer.finish()
}

/// Write the venv skeleton of `scheme`: `pyvenv.cfg`, `bin/python` linking to the
/// base interpreter, `bin/python3` and `bin/python3.X` linking to `python`,
/// `lib/python3.X/site-packages/`, `lib64` linking to `lib`, and every parent.
pub fn write_venv_layer(
    scheme: &InstallScheme,
    epoch: SourceDateEpoch,
    cache: &Cache,
) -> Result<LayerBlob, LayerError> {
    scheme.validate()?;
    let layout: BTreeMap<String, VenvEntry> = scheme.venv_layout();
    let mut writer = LayerWriter::new(cache, epoch)?;
    for (path, entry) in &layout {
        match entry {
            VenvEntry::Directory => writer.directory(&format!("{path}/"))?,
            VenvEntry::Symlink(target) => writer.symlink(path, target)?,
            VenvEntry::File(bytes) => writer.file(path, FILE_MODE, bytes)?,
        }
    }
    writer.finish()
}

/// What an entry of a layer tar means for the paths below it (OCI image spec, "Whiteouts").
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// `FOLDER/.wh..wh..opq`: the lower layers' contents of `FOLDER` (`""`: the root) are
    /// hidden.
    Opaque(&'a str),
    /// `FOLDER/.wh.NAME`: the path `FOLDER/NAME` (and what is below it) is deleted.
    Deletes(String),
}

/// Whether the entry at `path` (relative, no leading `/`) is a whiteout, and of what.
pub(crate) fn whiteout(path: &str) -> Option<Whiteout<'_>> {
    let (parent, basename) = path.rsplit_once('/').unwrap_or(("", path));
    if basename == ".wh..wh..opq" {
        return Some(Whiteout::Opaque(parent));
    }
    let hidden = basename.strip_prefix(".wh.")?;
    Some(Whiteout::Deletes(if parent.is_empty() {
        hidden.to_string()
    } else {
        format!("{parent}/{hidden}")
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use super::*;
    use crate::wheel::testing::{project_members, scheme, write_wheel, zip_bytes};
    use crate::wheel::{WheelInstall, plan_install};

    const EPOCH: i64 = 1_700_000_000;

    /// One tar entry as read back.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Listed {
        path: String,
        kind: tar::EntryType,
        mode: u32,
        link: Option<String>,
        content: Vec<u8>,
    }

    fn install(folder: &Path, name: &str, files: &[(&str, &[u8], u32)]) -> WheelInstall {
        let filename = format!("{name}-1.0-py3-none-any.whl");
        let path = write_wheel(
            folder,
            &filename,
            &zip_bytes(&project_members(name, "1.0", files)),
        );
        plan_install(&path, &filename, &scheme()).unwrap()
    }

    /// Read a blob back, checking the diff_id, the digest and every fixed header field.
    fn list(cache: &Cache, blob: &LayerBlob) -> Vec<Listed> {
        let path = cache
            .lookup(EntryKind::Blob, &blob.digest, Some(blob.size))
            .expect("blob in cache");
        let compressed = std::fs::read(path).unwrap();
        assert_eq!(Sha256Digest::of(&compressed), blob.digest);
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(Sha256Digest::of(&tar_bytes), blob.diff_id);
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut listed = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.mtime().unwrap(), EPOCH as u64);
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            assert_eq!(header.groupname_bytes(), Some(&b""[..]));
            assert!(entry.pax_extensions().unwrap().is_none());
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let link = entry
                .link_name_bytes()
                .map(|bytes| String::from_utf8(bytes.into_owned()).unwrap());
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            listed.push(Listed {
                path,
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                link,
                content,
            });
        }
        listed
    }

    /// Sorted by path bytes (directories without their `/`), every parent present
    /// before its children, directories ending in `/`.
    fn assert_layer_order(listed: &[Listed]) {
        let keys: Vec<&str> = listed
            .iter()
            .map(|entry| entry.path.trim_end_matches('/'))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        sorted.dedup();
        assert_eq!(keys, sorted, "sorted and unique");
        for (index, key) in keys.iter().enumerate() {
            for (slash, _) in key.match_indices('/') {
                let parent = &key[..slash];
                let position = keys.iter().position(|other| *other == parent);
                assert!(
                    position.is_some_and(|position| position < index),
                    "parent `{parent}` of `{key}`"
                );
                assert!(listed[position.unwrap()].path.ends_with('/'));
                assert_eq!(listed[position.unwrap()].kind, tar::EntryType::Directory);
            }
            assert!(!listed[index].path.starts_with('/') && !listed[index].path.starts_with("./"));
        }
    }

    #[test]
    fn ok_wheels_layer_is_deterministic() {
        let folder = tempfile::tempdir().unwrap();
        let long = format!("alpha/{}/module.py", "deep".repeat(30));
        let alpha = install(
            folder.path(),
            "alpha",
            &[
                ("shared/__init__.py", b"same", 0o644),
                ("alpha/tool.py", b"print(1)\n", 0o755),
                (&long, b"long = True\n", 0o644),
            ],
        );
        let beta = install(
            folder.path(),
            "beta",
            &[
                ("shared/__init__.py", b"same", 0o644),
                ("beta/__init__.py", b"", 0o644),
                (
                    "beta-1.0.dist-info/entry_points.txt",
                    b"[console_scripts]\nbeta = beta:main\n",
                    0o644,
                ),
            ],
        );
        let epoch = SourceDateEpoch::from_seconds(EPOCH);
        let first_cache = tempfile::tempdir().unwrap();
        let first_cache = Cache::open(first_cache.path()).unwrap();
        let second_cache = tempfile::tempdir().unwrap();
        let second_cache = Cache::open(second_cache.path()).unwrap();
        let first = write_wheels_layer(&[&alpha, &beta], epoch, &first_cache).unwrap();
        let second = write_wheels_layer(&[&beta, &alpha], epoch, &second_cache).unwrap();
        assert_eq!(first, second);

        let listed = list(&first_cache, &first);
        assert_layer_order(&listed);
        assert_eq!(listed[0].path, "opt/");
        let site = "opt/venv/lib/python3.11/site-packages";
        let find = |path: &str| {
            listed
                .iter()
                .find(|entry| entry.path == path)
                .unwrap_or_else(|| panic!("{path}"))
        };
        assert_eq!(
            listed
                .iter()
                .filter(|entry| entry.path == format!("{site}/shared/__init__.py"))
                .count(),
            1
        );
        let tool = find(&format!("{site}/alpha/tool.py"));
        assert_eq!((tool.mode, &tool.content[..]), (0o755, &b"print(1)\n"[..]));
        assert_eq!(find(&format!("{site}/shared/")).mode, 0o755);
        assert_eq!(find(&format!("{site}/{long}")).content, b"long = True\n");
        let launcher = find("opt/venv/bin/beta");
        assert_eq!(launcher.mode, 0o755);
        assert!(launcher.content.starts_with(b"#!/opt/venv/bin/python\n"));
        let record = find(&format!("{site}/beta-1.0.dist-info/RECORD"));
        assert!(String::from_utf8_lossy(&record.content).contains("../../../bin/beta,sha256="));
        // The planned hashes are the hashes of what was written.
        for install in [&alpha, &beta] {
            for (path, hash) in install.files() {
                let entry = find(path);
                assert_eq!(
                    hash,
                    (entry.kind == tar::EntryType::Regular)
                        .then(|| Sha256Digest::of(&entry.content))
                );
            }
        }
    }

    #[test]
    fn err_record_hash_lie_detected_while_streaming_and_nothing_cached() {
        let folder = tempfile::tempdir().unwrap();
        let mut members = project_members(
            "liar",
            "1.0",
            &[("liar/__init__.py", b"print('good')\n", 0o644)],
        );
        // Same length, so RECORD's size still matches and planning passes; the zip's
        // own CRC is of the new bytes, so only the RECORD hash can catch it.
        let member = members
            .iter_mut()
            .find(|member| member.name == "liar/__init__.py")
            .unwrap();
        member.bytes = b"import os#bad\n".to_vec();
        let filename = "liar-1.0-py3-none-any.whl";
        let path = write_wheel(folder.path(), filename, &zip_bytes(&members));
        let liar = plan_install(&path, filename, &scheme()).unwrap();

        let cache_folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_folder.path()).unwrap();
        let error =
            write_wheels_layer(&[&liar], SourceDateEpoch::from_seconds(EPOCH), &cache).unwrap_err();
        assert!(
            matches!(&error, LayerError::Wheel(WheelError::RecordHashMismatch { path, .. }) if path == "liar/__init__.py"),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(filename) && message.contains("liar/__init__.py"),
            "{message}"
        );
        for folder in ["blobs/sha256", "tmp"] {
            assert_eq!(
                std::fs::read_dir(cache_folder.path().join(folder))
                    .unwrap()
                    .count(),
                0,
                "{folder}"
            );
        }
    }

    #[test]
    fn err_collision_refused_in_layer() {
        let folder = tempfile::tempdir().unwrap();
        let alpha = install(
            folder.path(),
            "alpha",
            &[("shared/__init__.py", b"a", 0o644)],
        );
        let beta = install(
            folder.path(),
            "beta",
            &[("shared/__init__.py", b"b", 0o644)],
        );
        let cache_folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_folder.path()).unwrap();
        let error =
            write_wheels_layer(&[&alpha, &beta], SourceDateEpoch::default(), &cache).unwrap_err();
        assert!(
            matches!(error, LayerError::Wheel(WheelError::Collision { .. })),
            "{error}"
        );
    }

    #[test]
    fn ok_venv_layer() {
        let epoch = SourceDateEpoch::from_seconds(EPOCH);
        let first_folder = tempfile::tempdir().unwrap();
        let first_cache = Cache::open(first_folder.path()).unwrap();
        let second_folder = tempfile::tempdir().unwrap();
        let second_cache = Cache::open(second_folder.path()).unwrap();
        let first = write_venv_layer(&scheme(), epoch, &first_cache).unwrap();
        assert_eq!(
            first,
            write_venv_layer(&scheme(), epoch, &second_cache).unwrap()
        );
        let listed = list(&first_cache, &first);
        assert_layer_order(&listed);
        let summary: Vec<(&str, Option<&str>)> = listed
            .iter()
            .map(|entry| (entry.path.as_str(), entry.link.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("opt/", None),
                ("opt/venv/", None),
                ("opt/venv/bin/", None),
                ("opt/venv/bin/python", Some("/usr/bin/python3.11")),
                ("opt/venv/bin/python3", Some("python")),
                ("opt/venv/bin/python3.11", Some("python")),
                ("opt/venv/lib/", None),
                ("opt/venv/lib/python3.11/", None),
                ("opt/venv/lib/python3.11/site-packages/", None),
                ("opt/venv/lib64", Some("lib")),
                ("opt/venv/pyvenv.cfg", None),
            ]
        );
        let config = listed.last().unwrap();
        assert_eq!((config.kind, config.mode), (tar::EntryType::Regular, 0o644));
        assert_eq!(
            config.content,
            b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.4\n"
        );
        assert!(
            listed
                .iter()
                .filter(|entry| entry.link.is_some())
                .all(|entry| entry.kind == tar::EntryType::Symlink)
        );
    }

    #[test]
    fn err_venv_layer_relative_prefix() {
        let folder = tempfile::tempdir().unwrap();
        let cache = Cache::open(folder.path()).unwrap();
        let scheme = InstallScheme {
            prefix: "opt/venv".into(),
            ..scheme()
        };
        let error = write_venv_layer(&scheme, SourceDateEpoch::default(), &cache).unwrap_err();
        assert!(
            matches!(error, LayerError::Wheel(WheelError::InvalidPrefix { .. })),
            "{error}"
        );
    }

    #[test]
    fn err_corrupt_member_is_a_read_error_not_a_disk_error() {
        let folder = tempfile::tempdir().unwrap();
        let cache_folder = folder.path().join("cache");
        let cache = Cache::open(&cache_folder).unwrap();
        let text: String = (0..20_000).map(|line| format!("line {line}\n")).collect();
        let mut bytes = zip_bytes(&project_members(
            "demo",
            "1.0",
            &[("demo/big.py", text.as_bytes(), 0o644)],
        ));
        // Break the member's deflate stream in the middle: find its local header
        // (signature, then the name at offset 30) and overwrite compressed bytes.
        let name = b"demo/big.py";
        let header = (0..bytes.len() - 30 - name.len())
            .find(|&at| {
                bytes[at..at + 4] == *b"PK\x03\x04" && bytes[at + 30..at + 30 + name.len()] == *name
            })
            .expect("the member's local header");
        let field = |at: usize, width: usize| {
            bytes[header + at..header + at + width]
                .iter()
                .rev()
                .fold(0usize, |value, byte| value * 256 + usize::from(*byte))
        };
        let (compressed, name_length, extra_length) = (field(18, 4), field(26, 2), field(28, 2));
        let start = header + 30 + name_length + extra_length + compressed / 2;
        bytes[start..start + 64].fill(0xff);
        let filename = "demo-1.0-py3-none-any.whl";
        let path = write_wheel(folder.path(), filename, &bytes);
        let install = plan_install(&path, filename, &scheme()).unwrap();

        let error = write_wheels_layer(&[&install], SourceDateEpoch::from_seconds(EPOCH), &cache)
            .unwrap_err();
        // The wheel reader names the damage itself; the layer writer passes it through.
        assert!(
            matches!(&error, LayerError::Wheel(WheelError::CorruptMember { wheel, path, .. })
                if wheel == filename && path == "demo/big.py"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("corrupt compressed data") && !message.contains("disk"),
            "{message}"
        );
        assert_eq!(
            fs_err::read_dir(cache_folder.join("tmp")).unwrap().count(),
            0,
            "the partial layer is deleted"
        );
    }

    #[test]
    fn err_write_errors_say_whether_the_disk_is_full() {
        let full = LayerError::Write {
            path: "demo/a.py".to_string(),
            temp_path: PathBuf::from("/cache/tmp/.blob-1.envbuild-tmp"),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert_eq!(
            full.to_string(),
            "cannot write layer entry `demo/a.py` into `/cache/tmp/.blob-1.envbuild-tmp`: the disk holding the cache is full; free some space, or point `--cache-dir` (`ENVBUILD_CACHE_DIR`) at a disk with room"
        );
        let other = LayerError::Finish {
            temp_path: PathBuf::from("/cache/tmp/.blob-1.envbuild-tmp"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            other.to_string(),
            "cannot write the end of the layer into the cache's temporary file `/cache/tmp/.blob-1.envbuild-tmp`"
        );
    }
}
