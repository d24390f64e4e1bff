//! Planning one wheel's install (binary distribution format, "Installing a wheel";
//! standards §3.2–§3.7), in one pass over the archive's metadata and without
//! unpacking: validate the archive, check that RECORD lists and hashes every file,
//! spread the files over the venv's install scheme, rewrite `#!python` scripts, make
//! entry-point launchers and `INSTALLER`, and regenerate RECORD. The result holds every
//! layer entry with its final hash, so the layer writer can stream the rest; bytecode,
//! when asked for, is compiled into the plan afterwards (standards §3.8).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use mailparse::MailHeaderMap;
use zip::read::ZipFile;

use crate::digest::{Hasher, Sha256Digest};
use crate::lock::PackageName;
use crate::repro::{EXEC_MODE, FILE_MODE};
use crate::wheel::archive::{self, VerifyingReader, WheelArchive, ZipItem, into_wheel_error};
use crate::wheel::bytecode::{BytecodeError, PycCompiler, PycOutcome, PycSource};
use crate::wheel::error::WheelError;
use crate::wheel::filename::WheelFilename;
use crate::wheel::record::{self, InstalledRow, RecordHash};
use crate::wheel::scheme::{InstallScheme, VenvEntry, parents};
use crate::wheel::scripts::{self, EntryPoint};

/// What `INSTALLER` holds (standards §3.7, [envbuild]).
const INSTALLER: &[u8] = b"envbuild\n";

/// A wheel's planned install: every layer entry (files and all their parent
/// directories) with its final content hash. Made by [`plan_install`].
#[derive(Debug, Clone)]
pub struct WheelInstall {
    name: PackageName,
    version: String,
    filename: String,
    wheel_path: PathBuf,
    /// The layer path of site-packages, which RECORD paths are relative to.
    site: String,
    /// The layer path of the installed RECORD.
    record: String,
    /// Keyed by layer path without a trailing `/`, so the map's order puts parents
    /// before their children.
    entries: BTreeMap<String, PlannedEntry>,
}

/// One entry of a planned install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedEntry {
    /// The path in the tar: relative, directories end in `/`.
    pub(crate) tar_path: String,
    /// What to write.
    pub(crate) content: EntryContent,
}

/// Where an entry's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryContent {
    /// A directory, mode 0755.
    Directory,
    /// A member streamed from the wheel, checked against its RECORD hash on the way.
    Archived(ArchivedFile),
    /// Bytes made in memory (rewritten scripts, launchers, INSTALLER, RECORD).
    Generated {
        /// The content.
        bytes: Vec<u8>,
        /// 0644 or 0755.
        mode: u32,
        /// Its sha256.
        sha256: Sha256Digest,
    },
}

/// A wheel member to copy unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchivedFile {
    /// Index in the zip central directory.
    pub(crate) index: usize,
    /// The member's name.
    pub(crate) name: String,
    /// 0644 or 0755.
    pub(crate) mode: u32,
    /// sha256 from RECORD (or computed while planning for sha384/sha512 rows).
    pub(crate) sha256: Sha256Digest,
    /// Size in bytes.
    pub(crate) size: u64,
}

impl EntryContent {
    /// The content hash of a file; `None` for a directory.
    pub(crate) fn sha256(&self) -> Option<Sha256Digest> {
        match self {
            Self::Directory => None,
            Self::Archived(file) => Some(file.sha256),
            Self::Generated { sha256, .. } => Some(*sha256),
        }
    }

    /// Whether two entries at one path are interchangeable: both directories, or files
    /// with the same bytes and mode.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        match (self.file_identity(), other.file_identity()) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    fn file_identity(&self) -> Option<(Sha256Digest, u32)> {
        match self {
            Self::Directory => None,
            Self::Archived(file) => Some((file.sha256, file.mode)),
            Self::Generated { mode, sha256, .. } => Some((*sha256, *mode)),
        }
    }
}

impl WheelInstall {
    /// The normalized project name (from the filename).
    pub fn name(&self) -> &PackageName {
        &self.name
    }

    /// The version, as the filename writes it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The wheel's file name.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// Every layer entry in layer order (parents first): the tar path (relative,
    /// directories end in `/`) and, for files, the sha256 of the installed content.
    pub fn files(&self) -> impl Iterator<Item = (&str, Option<Sha256Digest>)> {
        self.entries
            .values()
            .map(|entry| (entry.tar_path.as_str(), entry.content.sha256()))
    }

    /// Open the wheel again to stream its members.
    pub(crate) fn open_archive(&self) -> Result<WheelArchive, WheelError> {
        archive::open(&self.wheel_path, &self.filename)
    }

    /// A reader over an archived member that fails unless its bytes match RECORD.
    pub(crate) fn reader<'a>(
        &self,
        archive: &'a mut WheelArchive,
        file: &ArchivedFile,
    ) -> Result<VerifyingReader<ZipFile<'a, std::io::BufReader<fs_err::File>>>, WheelError> {
        let member = archive::open_member(archive, file.index, &file.name, false, &self.filename)?;
        Ok(VerifyingReader::new(
            member,
            file.sha256,
            file.size,
            &self.filename,
            &file.name,
        ))
    }

    /// Compile every `.py` file this install puts in site-packages (not scripts in
    /// `bin`, not `.data/data` files) to an unchecked-hash pyc at the path
    /// `importlib.util.cache_from_source` gives, and add the pycs, their `__pycache__`
    /// folders and their RECORD rows (with hash and size, as pip writes them) to the
    /// plan, so they land in this wheel's layer. Sources are read from the wheel and
    /// checked against RECORD; each pyc records the source's installed path in the
    /// image. Sources that do not compile are skipped, as `compileall` does, and
    /// logged at debug level. A pyc the wheel itself ships at the same path is
    /// replaced. One compiler process runs per call, fed in path order, so the result
    /// does not depend on how many wheels compile at once.
    pub fn add_bytecode(
        &mut self,
        compiler: &PycCompiler,
    ) -> Result<BytecodeSummary, BytecodeError> {
        let prefix = format!("{}/", self.site);
        let sources: Vec<(String, String)> = self
            .entries
            .iter()
            .filter(|(path, entry)| {
                path.starts_with(&prefix) && !matches!(entry.content, EntryContent::Directory)
            })
            .filter_map(|(path, _)| Some((path.clone(), compiler.pyc_path(path)?)))
            .collect();
        // A pyc name is longer than its source's (`x.cpython-311.pyc` for `x.py`): a
        // source near the limits stays uncompiled rather than failing the install, as
        // Python itself gives up writing such a pyc.
        let (sources, too_long): (Vec<_>, Vec<_>) = sources
            .into_iter()
            .partition(|(_, pyc)| check_path_limits(pyc).is_ok());
        let mut summary = BytecodeSummary::default();
        for (path, _) in too_long {
            tracing::debug!(
                "wheel `{}`: not compiling `/{path}`: its pyc's path would be too long",
                self.filename
            );
            summary.skipped.push(format!("/{path}"));
        }
        if sources.is_empty() {
            return Ok(summary);
        }
        let mut archive = self.open_archive()?;
        let mut too_large = Vec::new();
        let outcomes = {
            let this = &*self;
            let archive = &mut archive;
            let too_large = &mut too_large;
            let requests = sources.iter().filter_map(move |(path, _)| {
                let bytes = match &this.entries[path].content {
                    EntryContent::Archived(file) if file.size > archive::MEMORY_LIMIT => {
                        too_large.push(path.clone());
                        return None;
                    }
                    EntryContent::Archived(file) => {
                        let mut bytes = Vec::with_capacity(archive::initial_capacity(file.size));
                        let read = this.reader(archive, file).and_then(|mut reader| {
                            reader.read_to_end(&mut bytes).map_err(|error| {
                                into_wheel_error(error).unwrap_or_else(|source| WheelError::Read {
                                    wheel: this.filename.clone(),
                                    path: file.name.clone(),
                                    source,
                                })
                            })
                        });
                        if let Err(error) = read {
                            return Some(Err(BytecodeError::from(error)));
                        }
                        bytes
                    }
                    EntryContent::Generated { bytes, .. } => bytes.clone(),
                    EntryContent::Directory => unreachable!("filtered above"),
                };
                Some(Ok(PycSource {
                    path: format!("/{path}"),
                    source: bytes,
                }))
            });
            compiler.compile(&self.filename, requests)?
        };
        let compiled_sources = sources.iter().filter(|(path, _)| !too_large.contains(path));
        for ((source, pyc), outcome) in compiled_sources.zip(outcomes) {
            match outcome {
                PycOutcome::Compiled(bytes) => {
                    self.entries.insert(
                        pyc.clone(),
                        PlannedEntry {
                            tar_path: pyc.clone(),
                            content: generated(bytes, FILE_MODE),
                        },
                    );
                    summary.compiled += 1;
                }
                PycOutcome::Skipped(reason) => {
                    tracing::debug!(
                        "wheel `{}`: not compiling `/{source}`: {}",
                        self.filename,
                        crate::untrusted::Untrusted(&reason)
                    );
                    summary.skipped.push(format!("/{source}"));
                }
            }
        }
        for path in too_large {
            tracing::debug!(
                "wheel `{}`: not compiling `/{path}`: larger than {} bytes",
                self.filename,
                archive::MEMORY_LIMIT
            );
            summary.skipped.push(format!("/{path}"));
        }
        add_parent_directories(&mut self.entries, &self.filename)?;
        let bytes = record_bytes(&self.site, &self.entries, &self.record);
        let record = self
            .entries
            .get_mut(&self.record)
            .expect("every plan has its RECORD");
        record.content = generated(bytes, FILE_MODE);
        Ok(summary)
    }
}

/// What [`WheelInstall::add_bytecode`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BytecodeSummary {
    /// How many pycs were added.
    pub compiled: usize,
    /// Installed paths of the sources that were not compiled (syntax errors, Python 2
    /// files, templates), as `compileall` skips them.
    pub skipped: Vec<String>,
}

/// A wheel file to install, and what the lockfile says about it.
#[derive(Debug, Clone, Copy)]
pub struct WheelSource<'a> {
    /// The wheel file.
    pub path: &'a Path,
    /// Its file name (`{name}-{version}-{tags}.whl`), which the archive must agree with.
    pub filename: &'a str,
    /// The version the lockfile pins, which `METADATA` must agree with when given.
    pub locked_version: Option<&'a str>,
}

/// Plan the install of the wheel at `wheel_path`, whose file name is `filename`, into
/// `scheme`, with no lockfile version to check against: [`plan_locked_install`] with
/// `locked_version: None`.
pub fn plan_install(
    wheel_path: &Path,
    filename: &str,
    scheme: &InstallScheme,
) -> Result<WheelInstall, WheelError> {
    plan_locked_install(
        &WheelSource {
            path: wheel_path,
            filename,
            locked_version: None,
        },
        scheme,
    )
}

/// Plan the install of `source` into `scheme`. Reads the archive's directory and
/// metadata only; file bodies are streamed later by the layer writer, which checks each
/// against the hash planned here. The wheel is refused when its `.dist-info` or
/// `METADATA` names another project or version than its file name (or the lockfile),
/// or when it would install a path Linux cannot hold.
pub fn plan_locked_install(
    source: &WheelSource<'_>,
    scheme: &InstallScheme,
) -> Result<WheelInstall, WheelError> {
    let (wheel_path, filename) = (source.path, source.filename);
    scheme.validate()?;
    let parsed = WheelFilename::from_str(filename)?;
    let wheel = filename;
    let mut archive = archive::open(wheel_path, wheel)?;
    let items = archive::list_entries(&mut archive, wheel)?;
    let dist_info = find_dist_info(&items, &parsed, wheel)?;
    let files: BTreeMap<&str, &ZipItem> = items
        .iter()
        .filter(|item| !item.is_dir)
        .map(|item| (item.name.as_str(), item))
        .collect();

    // RECORD, RECORD.jws and RECORD.p7s are the only files RECORD need not hash; the
    // signatures sign the wheel's RECORD, which is not installed, so they are dropped.
    let record_path = format!("{dist_info}/RECORD");
    let is_record_file = |path: &str| {
        path.strip_prefix(record_path.as_str())
            .is_some_and(|rest| matches!(rest, "" | ".jws" | ".p7s"))
    };
    let record_item = metadata_item(&files, &record_path, wheel)?;
    let record_bytes = archive::read_entry(&mut archive, record_item, wheel)?;
    let record = record::parse(&record_bytes, wheel, &record_path)?;

    // Binary distribution format: "installation will fail if any file in the archive
    // is not both mentioned and correctly hashed in RECORD". The hash is checked while
    // streaming (sha256 rows) or right here (sha384/sha512 rows).
    let mut hashes: HashMap<&str, Sha256Digest> = HashMap::new();
    for item in files.values().filter(|item| !is_record_file(&item.name)) {
        let missing = || WheelError::FileNotInRecord {
            wheel: wheel.into(),
            path: item.name.clone(),
        };
        let row = record.get(&item.name).ok_or_else(missing)?;
        let Some(hash) = &row.hash else {
            return Err(WheelError::FileWithoutHash {
                wheel: wheel.into(),
                path: item.name.clone(),
            });
        };
        if let Some(recorded) = row.size
            && recorded != item.size
        {
            return Err(WheelError::RecordSizeMismatch {
                wheel: wheel.into(),
                path: item.name.clone(),
                recorded,
                actual: item.size,
            });
        }
        let sha256 = match hash {
            RecordHash::Sha256(digest) => *digest,
            RecordHash::Stronger { .. } => hash_stronger(&mut archive, item, hash, wheel)?,
        };
        hashes.insert(&item.name, sha256);
    }
    if let Some(path) = record
        .keys()
        .find(|path| !files.contains_key(path.as_str()) && !is_record_file(path))
    {
        return Err(WheelError::RecordedFileMissing {
            wheel: wheel.into(),
            path: path.clone(),
        });
    }

    let read_verified = |archive: &mut WheelArchive, path: &str| -> Result<Vec<u8>, WheelError> {
        let item = metadata_item(&files, path, wheel)?;
        let bytes = archive::read_entry(archive, item, wheel)?;
        check_bytes(&bytes, hashes[item.name.as_str()], wheel, path)?;
        Ok(bytes)
    };
    let wheel_file_path = format!("{dist_info}/WHEEL");
    check_wheel_file(
        &read_verified(&mut archive, &wheel_file_path)?,
        wheel,
        &wheel_file_path,
    )?;
    let metadata_path = format!("{dist_info}/METADATA");
    let dist_name = check_metadata(
        &read_verified(&mut archive, &metadata_path)?,
        &parsed,
        source.locked_version,
        wheel,
        &metadata_path,
    )?;
    let entry_points_path = format!("{dist_info}/entry_points.txt");
    let entry_points = if files.contains_key(entry_points_path.as_str()) {
        let bytes = read_verified(&mut archive, &entry_points_path)?;
        let text = String::from_utf8(bytes).map_err(|_| WheelError::NotUtf8 {
            wheel: wheel.into(),
            path: entry_points_path.clone(),
        })?;
        scripts::apply_installer_script_names(
            scripts::parse_entry_points(&text, wheel, &entry_points_path)?,
            scheme.python,
        )
    } else {
        Vec::new()
    };

    let mut plan = Plan::new(scheme, wheel);
    let shebang = scripts::shebang(&scheme.venv_python());
    // Standards §3.3: `{name}-{version}.data/<key>/…` goes to the scheme path of
    // `<key>`; the rest of the archive to purelib or platlib, which are both
    // site-packages in a venv, so `Root-Is-Purelib` changes nothing here.
    let data_prefix = format!(
        "{}.data/",
        dist_info.strip_suffix(".dist-info").unwrap_or(&dist_info)
    );
    let installer_path = format!("{dist_info}/INSTALLER");
    for item in files.values() {
        if is_record_file(&item.name) || item.name == installer_path {
            continue;
        }
        let sha256 = hashes[item.name.as_str()];
        let Some(data) = item.name.strip_prefix(&data_prefix) else {
            let destination = format!("{}/{}", plan.site, item.name);
            plan.insert(
                destination,
                archived(item, sha256, item_mode(item)),
                &item.name,
            )?;
            continue;
        };
        let unknown = |key: &str| WheelError::UnknownDataKey {
            wheel: wheel.into(),
            path: item.name.clone(),
            key: key.to_string(),
        };
        let (key, rest) = data.split_once('/').ok_or_else(|| unknown(data))?;
        let destination = match key {
            "purelib" | "platlib" => format!("{}/{rest}", plan.site),
            "headers" => format!("{}/{rest}", scheme.headers(&dist_name)),
            "data" => format!("{}/{rest}", scheme.data()),
            "scripts" => format!("{}/{rest}", plan.bin),
            _ => return Err(unknown(key)),
        };
        if key != "scripts" {
            plan.insert(
                destination,
                archived(item, sha256, item_mode(item)),
                &item.name,
            )?;
            continue;
        }
        // Standards §3.5: skip scripts that a generated launcher replaces.
        if !rest.contains('/')
            && entry_points
                .iter()
                .any(|point| scripts::shadowed_by_launcher(rest, &point.name))
        {
            continue;
        }
        // Standards §3.4: scripts are always executable; `#!python` is rewritten.
        let head = archive::read_head(&mut archive, item, wheel, 8)?;
        let content = if scripts::needs_rewrite(&head) {
            let bytes = read_verified(&mut archive, &item.name)?;
            generated(scripts::rewrite_script(&bytes, &shebang), EXEC_MODE)
        } else {
            archived(item, sha256, EXEC_MODE)
        };
        plan.insert(destination, content, &item.name)?;
    }
    for point in &entry_points {
        let destination = format!("{}/{}", plan.bin, point.name);
        let content = generated(scripts::launcher(&shebang, point), EXEC_MODE);
        plan.insert_launcher(destination, content, point, &entry_points_path)?;
    }
    plan.insert(
        format!("{}/{installer_path}", plan.site),
        generated(INSTALLER.to_vec(), FILE_MODE),
        &installer_path,
    )?;
    let record = format!("{}/{record_path}", plan.site);
    plan.finish_record(record.clone(), &record_path)?;
    plan.add_parents()?;
    Ok(WheelInstall {
        name: parsed.name.clone(),
        version: parsed.version.clone(),
        filename: filename.to_string(),
        wheel_path: wheel_path.to_path_buf(),
        site: plan.site,
        record,
        entries: plan.entries,
    })
}

/// Check that no two installs put different files (or a file and a directory) at one
/// path. Standards §0.13 and §3.9: with one layer per wheel the later layer would win
/// silently and the other package's RECORD would lie; byte-identical files (same mode)
/// are fine, as are shared directories.
pub fn check_collisions(installs: &[WheelInstall]) -> Result<(), WheelError> {
    let installs: Vec<&WheelInstall> = installs.iter().collect();
    merge_entries(&installs).map(|_| ())
}

/// All entries of several installs in layer order, each with the index of the first
/// install that has it; an error on the first collision.
pub(crate) fn merge_entries<'a>(
    installs: &[&'a WheelInstall],
) -> Result<BTreeMap<&'a str, (usize, &'a PlannedEntry)>, WheelError> {
    let mut merged: BTreeMap<&'a str, (usize, &'a PlannedEntry)> = BTreeMap::new();
    for (index, install) in installs.iter().enumerate() {
        for (key, entry) in &install.entries {
            match merged.entry(key.as_str()) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((index, entry));
                }
                std::collections::btree_map::Entry::Occupied(slot) => {
                    let (first, existing) = *slot.get();
                    if !existing.content.same_as(&entry.content) {
                        return Err(WheelError::Collision {
                            path: key.clone(),
                            first: installs[first].filename.clone(),
                            second: install.filename.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(merged)
}

/// The entries being planned, with the wheel member each came from.
struct Plan<'a> {
    wheel: &'a str,
    site: String,
    bin: String,
    venv: BTreeMap<String, VenvEntry>,
    entries: BTreeMap<String, PlannedEntry>,
    sources: HashMap<String, String>,
}

impl<'a> Plan<'a> {
    fn new(scheme: &'a InstallScheme, wheel: &'a str) -> Self {
        Self {
            wheel,
            site: scheme.site_packages(),
            bin: scheme.scripts(),
            venv: scheme.venv_layout(),
            entries: BTreeMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Add a file at `destination` (a layer path), from wheel member `source`.
    fn insert(
        &mut self,
        destination: String,
        content: EntryContent,
        source: &str,
    ) -> Result<(), WheelError> {
        let absolute = || format!("/{destination}");
        check_path_limits(&destination).map_err(|limit| match limit {
            PathLimit::Component(component) => WheelError::PathComponentTooLong {
                wheel: self.wheel.into(),
                path: source.into(),
                destination: absolute(),
                length: component.len(),
                component: component.into(),
                limit: MAX_NAME_BYTES,
            },
            PathLimit::Whole(length) => WheelError::PathTooLong {
                wheel: self.wheel.into(),
                path: source.into(),
                destination: absolute(),
                length,
                limit: MAX_PATH_BYTES,
            },
        })?;
        if let Some((parent, name)) = destination.rsplit_once('/')
            && parent == self.bin
            && scripts::is_interpreter_name(name)
        {
            return Err(WheelError::ScriptShadowsInterpreter {
                wheel: self.wheel.into(),
                path: source.into(),
                name: name.into(),
            });
        }
        // The venv layer owns pyvenv.cfg, bin/python*, lib64 and the scheme folders;
        // a wheel file there would replace them in the image.
        let under_venv_link = parents(&destination).any(|parent| {
            matches!(
                self.venv.get(parent),
                Some(VenvEntry::Symlink(_) | VenvEntry::File(_))
            )
        });
        if self.venv.contains_key(&destination) || under_venv_link {
            return Err(WheelError::ConflictsWithVenv {
                wheel: self.wheel.into(),
                path: source.into(),
                destination: absolute(),
            });
        }
        if let Some(other) = self.sources.get(&destination) {
            return Err(WheelError::DuplicateDestination {
                wheel: self.wheel.into(),
                path: source.into(),
                other: other.clone(),
                destination: absolute(),
            });
        }
        self.sources.insert(destination.clone(), source.into());
        self.entries.insert(
            destination.clone(),
            PlannedEntry {
                tar_path: destination,
                content,
            },
        );
        Ok(())
    }

    fn insert_launcher(
        &mut self,
        destination: String,
        content: EntryContent,
        point: &EntryPoint,
        entry_points_path: &str,
    ) -> Result<(), WheelError> {
        if scripts::is_interpreter_name(&point.name) {
            return Err(WheelError::ScriptShadowsInterpreter {
                wheel: self.wheel.into(),
                path: entry_points_path.into(),
                name: point.name.clone(),
            });
        }
        self.insert(destination, content, entry_points_path)
    }

    /// Standards §3.6: RECORD lists every installed file relative to site-packages
    /// (`../../../bin/x` for scripts) with `sha256=…,size`, and itself as `path,,`.
    fn finish_record(&mut self, destination: String, source: &str) -> Result<(), WheelError> {
        let bytes = record_bytes(&self.site, &self.entries, &destination);
        self.insert(destination, generated(bytes, FILE_MODE), source)
    }

    /// Add every parent directory, so a layer holds all of them (standards §5.9).
    fn add_parents(&mut self) -> Result<(), WheelError> {
        add_parent_directories(&mut self.entries, self.wheel)
    }
}

/// Linux's `NAME_MAX`: the most bytes in one file name.
const MAX_NAME_BYTES: usize = 255;

/// The most bytes in an installed absolute path. Linux's `PATH_MAX` is 4096 with the
/// terminating NUL, but no tool opens the image's paths from `/`: podman extracts a
/// layer under its storage folder (`/var/lib/containers/storage/overlay/<id>/diff/`,
/// about 105 bytes; more for rootless storage), docker and containerd likewise, umoci
/// under the bundle folder it is given. Measured with podman 4 and umoci 0.4, a path
/// that leaves less room than that fails to unpack ("file name too long"), so 256 bytes
/// are kept free for the unpacker's own folder.
const MAX_PATH_BYTES: usize = 4096 - 1 - 256;

/// Which Linux limit an installed path breaks.
enum PathLimit<'a> {
    /// This component is longer than [`MAX_NAME_BYTES`].
    Component(&'a str),
    /// The absolute path has this many bytes, more than [`MAX_PATH_BYTES`].
    Whole(usize),
}

/// Check a layer path (relative, the image's `/` left out) against [`MAX_NAME_BYTES`]
/// and [`MAX_PATH_BYTES`]: podman and umoci cannot unpack an image holding a longer name
/// or path, and pip and uv fail on such a wheel with `ENAMETOOLONG` (for a path, once it
/// reaches `PATH_MAX`), so envbuild refuses it while planning, before any layer exists.
fn check_path_limits(destination: &str) -> Result<(), PathLimit<'_>> {
    if let Some(component) = destination
        .split('/')
        .find(|component| component.len() > MAX_NAME_BYTES)
    {
        return Err(PathLimit::Component(component));
    }
    let length = destination.len() + 1;
    if length > MAX_PATH_BYTES {
        return Err(PathLimit::Whole(length));
    }
    Ok(())
}

/// The installed RECORD for `entries` (standards §3.6): every file relative to
/// site-packages (`../../../bin/x` for scripts) with `sha256=…,size`, and RECORD
/// itself, at layer path `record`, as `path,,`. Directories are not listed.
fn record_bytes(site: &str, entries: &BTreeMap<String, PlannedEntry>, record: &str) -> Vec<u8> {
    let mut rows: Vec<InstalledRow> = entries
        .iter()
        .filter(|(path, _)| path.as_str() != record)
        .filter_map(|(path, entry)| {
            let hash = match &entry.content {
                EntryContent::Archived(file) => (file.sha256, file.size),
                EntryContent::Generated { bytes, sha256, .. } => (*sha256, bytes.len() as u64),
                EntryContent::Directory => return None,
            };
            Some(InstalledRow {
                path: relative_to(site, path),
                hash: Some(hash),
            })
        })
        .collect();
    rows.push(InstalledRow {
        path: relative_to(site, record),
        hash: None,
    });
    record::write(rows)
}

/// Add every missing parent directory of every entry; a parent that is a file is an
/// error.
fn add_parent_directories(
    entries: &mut BTreeMap<String, PlannedEntry>,
    wheel: &str,
) -> Result<(), WheelError> {
    let files: Vec<String> = entries.keys().cloned().collect();
    for file in &files {
        for parent in parents(file) {
            match entries.get(parent) {
                Some(PlannedEntry {
                    content: EntryContent::Directory,
                    ..
                }) => {}
                Some(_) => {
                    return Err(WheelError::FileDirectoryConflict {
                        wheel: wheel.into(),
                        destination: format!("/{parent}"),
                    });
                }
                None => {
                    entries.insert(
                        parent.to_string(),
                        PlannedEntry {
                            tar_path: format!("{parent}/"),
                            content: EntryContent::Directory,
                        },
                    );
                }
            }
        }
    }
    Ok(())
}

/// Find the one `{name}-{version}.dist-info` folder and check that it matches the
/// filename (standards §3.2), comparing normalized names and PEP 440 versions.
fn find_dist_info(
    items: &[ZipItem],
    parsed: &WheelFilename,
    wheel: &str,
) -> Result<String, WheelError> {
    let found: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|item| item.name.split_once('/'))
        .map(|(top, _)| top)
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    let expected = format!(
        "{}-{}.dist-info",
        parsed.name.as_str().replace('-', "_"),
        parsed.version
    );
    let dist_info = match found.len() {
        0 => {
            return Err(WheelError::DistInfoMissing {
                wheel: wheel.into(),
                expected,
            });
        }
        1 => found.first().expect("one element").to_string(),
        _ => {
            let found = found
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(WheelError::MultipleDistInfo {
                wheel: wheel.into(),
                found,
            });
        }
    };
    let stem = dist_info.strip_suffix(".dist-info").unwrap_or(&dist_info);
    let matches = stem.rsplit_once('-').is_some_and(|(name, version)| {
        name.parse::<PackageName>()
            .is_ok_and(|name| name == parsed.name)
            && versions_equal(version, &parsed.version)
    });
    if !matches {
        return Err(WheelError::DistInfoMismatch {
            wheel: wheel.into(),
            found: dist_info,
            expected,
        });
    }
    Ok(dist_info)
}

fn versions_equal(a: &str, b: &str) -> bool {
    match (
        uv_pep440::Version::from_str(a),
        uv_pep440::Version::from_str(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn metadata_item<'b>(
    files: &BTreeMap<&str, &'b ZipItem>,
    path: &str,
    wheel: &str,
) -> Result<&'b ZipItem, WheelError> {
    files
        .get(path)
        .copied()
        .ok_or_else(|| WheelError::MetadataFileMissing {
            wheel: wheel.into(),
            path: path.into(),
        })
}

/// `WHEEL` is email-header format. Binary distribution format: a major
/// `Wheel-Version` greater than supported MUST fail; a greater minor warns.
fn check_wheel_file(bytes: &[u8], wheel: &str, path: &str) -> Result<(), WheelError> {
    let (headers, _) =
        mailparse::parse_headers(bytes).map_err(|source| WheelError::MalformedHeaders {
            wheel: wheel.into(),
            path: path.into(),
            source,
        })?;
    let value = headers.get_first_value("Wheel-Version").ok_or_else(|| {
        WheelError::WheelVersionMissing {
            wheel: wheel.into(),
            path: path.into(),
        }
    })?;
    let value = value.trim().to_string();
    let parsed = value
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    match parsed {
        None => Err(WheelError::WheelVersionInvalid {
            wheel: wheel.into(),
            value,
        }),
        Some((1, minor)) => {
            if minor > 0 {
                tracing::warn!(
                    "wheel `{wheel}` has `Wheel-Version: {value}`, newer than the 1.0 envbuild knows; installing it as 1.0"
                );
            }
            Ok(())
        }
        Some(_) => Err(WheelError::UnsupportedWheelVersion {
            wheel: wheel.into(),
            value,
        }),
    }
}

/// Check `METADATA` against the file name (and the lockfile's version, when known) and
/// return the project name as `METADATA` writes it (pip's `headers` folder uses it).
/// The name must be a valid project name (PEP 508) for the project the file name
/// names, and `Version` the same PEP 440 version as the file name's and the lock's:
/// otherwise the image's `.dist-info` would contradict the report (uv refuses such a
/// wheel too).
fn check_metadata(
    bytes: &[u8],
    filename: &WheelFilename,
    locked_version: Option<&str>,
    wheel: &str,
    path: &str,
) -> Result<String, WheelError> {
    let (headers, _) =
        mailparse::parse_headers(bytes).map_err(|source| WheelError::MalformedHeaders {
            wheel: wheel.into(),
            path: path.into(),
            source,
        })?;
    let name = headers
        .get_first_value("Name")
        .ok_or_else(|| WheelError::MetadataNameMissing {
            wheel: wheel.into(),
            path: path.into(),
        })?;
    let name = name.trim().to_string();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(WheelError::InvalidMetadataName {
            wheel: wheel.into(),
            name,
        });
    }
    if name.parse::<PackageName>().ok().as_ref() != Some(&filename.name) {
        return Err(WheelError::MetadataNameMismatch {
            wheel: wheel.into(),
            name,
            expected: filename.name.to_string(),
        });
    }
    let version =
        headers
            .get_first_value("Version")
            .ok_or_else(|| WheelError::MetadataVersionMissing {
                wheel: wheel.into(),
                path: path.into(),
            })?;
    let version = version.trim().to_string();
    let Ok(parsed) = uv_pep440::Version::from_str(&version) else {
        return Err(WheelError::InvalidMetadataVersion {
            wheel: wheel.into(),
            version,
        });
    };
    let same = |other: &str| {
        uv_pep440::Version::from_str(other).map_or(other == version, |other| other == parsed)
    };
    if !same(&filename.version) || locked_version.is_some_and(|locked| !same(locked)) {
        return Err(WheelError::MetadataVersionMismatch {
            wheel: wheel.into(),
            metadata: version,
            filename: filename.version.clone(),
            locked: locked_version.map(str::to_string),
        });
    }
    Ok(name)
}

/// Check bytes read into memory against their planned sha256.
fn check_bytes(
    bytes: &[u8],
    expected: Sha256Digest,
    wheel: &str,
    path: &str,
) -> Result<(), WheelError> {
    let actual = Sha256Digest::of(bytes);
    if actual != expected {
        return Err(WheelError::RecordHashMismatch {
            wheel: wheel.into(),
            path: path.into(),
            recorded: expected.record(),
            actual: actual.record(),
        });
    }
    Ok(())
}

/// Check a member against a sha384/sha512 RECORD row while computing its sha256.
fn hash_stronger(
    archive: &mut WheelArchive,
    item: &ZipItem,
    hash: &RecordHash,
    wheel: &str,
) -> Result<Sha256Digest, WheelError> {
    let mut stronger = hash
        .stronger_hasher()
        .expect("only called for stronger hashes");
    let mut sha256 = Hasher::new();
    let mut member = archive::by_item(archive, item, wheel)?;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = member
            .read(&mut buffer)
            .map_err(|source| archive::member_read_error(wheel, &item.name, source))?;
        if read == 0 {
            break;
        }
        sha256.update(&buffer[..read]);
        stronger.update(&buffer[..read]);
    }
    if sha256.length() != item.size {
        return Err(WheelError::RecordSizeMismatch {
            wheel: wheel.into(),
            path: item.name.clone(),
            recorded: item.size,
            actual: sha256.length(),
        });
    }
    let RecordHash::Stronger { algorithm, digest } = hash else {
        unreachable!("only called for stronger hashes");
    };
    let actual = stronger.finish();
    if actual != *digest {
        return Err(WheelError::RecordHashMismatch {
            wheel: wheel.into(),
            path: item.name.clone(),
            recorded: hash.render(),
            actual: RecordHash::Stronger {
                algorithm,
                digest: actual,
            }
            .render(),
        });
    }
    Ok(sha256.finish())
}

/// Standards §3.4 [envbuild]: an executable bit in the zip's unix mode gives 0755,
/// anything else 0644; never the host umask.
fn item_mode(item: &ZipItem) -> u32 {
    if item.executable {
        EXEC_MODE
    } else {
        FILE_MODE
    }
}

fn archived(item: &ZipItem, sha256: Sha256Digest, mode: u32) -> EntryContent {
    EntryContent::Archived(ArchivedFile {
        index: item.index,
        name: item.name.clone(),
        mode,
        sha256,
        size: item.size,
    })
}

fn generated(bytes: Vec<u8>, mode: u32) -> EntryContent {
    let sha256 = Sha256Digest::of(&bytes);
    EntryContent::Generated {
        bytes,
        mode,
        sha256,
    }
}

/// `path` relative to the folder `base`, both layer paths: `../` for each component
/// of `base` past the common prefix.
fn relative_to(base: &str, path: &str) -> String {
    let base: Vec<&str> = base.split('/').collect();
    let target: Vec<&str> = path.split('/').collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; base.len() - common];
    parts.extend(&target[common..]);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wheel::CorruptMemberReason;
    use crate::wheel::testing::{
        FILENAME, Member, member, members, project_members, rename_in_zip, scheme, try_zip_bytes,
        valid_wheel, with_record, write_wheel, zip_bytes, zip_bytes_with,
    };

    const SITE: &str = "opt/venv/lib/python3.11/site-packages";

    fn plan(files: &[(&str, &[u8], u32)]) -> Result<WheelInstall, WheelError> {
        let folder = tempfile::tempdir().unwrap();
        let path = valid_wheel(folder.path(), files);
        plan_install(&path, FILENAME, &scheme())
    }

    fn plan_members(members: &[Member]) -> Result<WheelInstall, WheelError> {
        plan_zip(zip_bytes(members))
    }

    fn plan_zip(bytes: Vec<u8>) -> Result<WheelInstall, WheelError> {
        let folder = tempfile::tempdir().unwrap();
        let path = write_wheel(folder.path(), FILENAME, &bytes);
        plan_install(&path, FILENAME, &scheme())
    }

    fn entry<'a>(install: &'a WheelInstall, path: &str) -> &'a EntryContent {
        let Some(entry) = install.entries.get(path) else {
            panic!(
                "no `{path}` in {:#?}",
                install.entries.keys().collect::<Vec<_>>()
            );
        };
        &entry.content
    }

    fn text(install: &WheelInstall, path: &str) -> String {
        match entry(install, path) {
            EntryContent::Generated { bytes, .. } => String::from_utf8(bytes.clone()).unwrap(),
            other => panic!("`{path}` is not generated: {other:?}"),
        }
    }

    fn mode(install: &WheelInstall, path: &str) -> u32 {
        match entry(install, path) {
            EntryContent::Directory => crate::repro::DIR_MODE,
            EntryContent::Archived(file) => file.mode,
            EntryContent::Generated { mode, .. } => *mode,
        }
    }

    /// Bytecode goes to site-packages only, next to its source in `__pycache__`, with
    /// RECORD rows; Python 2 sources are skipped; a pyc the wheel ships is replaced.
    #[test]
    fn ok_add_bytecode_to_site_packages_only() {
        let compiler = PycCompiler::find(scheme().python, None)
            .unwrap_or_else(|error| panic!("the test needs a host CPython 3.11: {error}"));
        let folder = tempfile::tempdir().unwrap();
        let stale = b"stale pyc shipped in the wheel";
        let path = valid_wheel(
            folder.path(),
            &[
                ("demo/__init__.py", b"x = 1\n", 0o644),
                ("demo/py2.py", b"print 'old'\n", 0o644),
                ("demo/__pycache__/__init__.cpython-311.pyc", stale, 0o644),
                ("demo-1.0.data/purelib/pure.py", b"p = 1\n", 0o644),
                (
                    "demo-1.0.data/scripts/tool.py",
                    b"#!python\nprint(1)\n",
                    0o755,
                ),
                (
                    "demo-1.0.data/data/share/demo/example.py",
                    b"e = 1\n",
                    0o644,
                ),
            ],
        );
        let mut install = plan_install(&path, FILENAME, &scheme()).unwrap();
        let summary = install.add_bytecode(&compiler).unwrap();
        assert_eq!(summary.compiled, 2);
        assert_eq!(summary.skipped, [format!("/{SITE}/demo/py2.py")]);
        let pycs: Vec<&str> = install
            .files()
            .map(|(path, _)| path)
            .filter(|path| path.contains("__pycache__"))
            .collect();
        assert_eq!(
            pycs,
            [
                format!("{SITE}/__pycache__/"),
                format!("{SITE}/__pycache__/pure.cpython-311.pyc"),
                format!("{SITE}/demo/__pycache__/"),
                format!("{SITE}/demo/__pycache__/__init__.cpython-311.pyc"),
            ]
        );
        let EntryContent::Generated { bytes, .. } = entry(
            &install,
            &format!("{SITE}/demo/__pycache__/__init__.cpython-311.pyc"),
        ) else {
            panic!("the shipped pyc is replaced")
        };
        assert_ne!(&bytes[..], stale);
        let pyc_row = format!(
            "demo/__pycache__/__init__.cpython-311.pyc,{},{}",
            Sha256Digest::of(bytes).record(),
            bytes.len()
        );
        let record = text(&install, &format!("{SITE}/demo-1.0.dist-info/RECORD"));
        assert!(record.contains(&pyc_row), "{record}");
        assert!(
            record.contains("__pycache__/pure.cpython-311.pyc,sha256="),
            "{record}"
        );
        assert!(record.contains("demo-1.0.dist-info/RECORD,,"), "{record}");
        // Calling it again changes nothing.
        let before: Vec<(String, Option<Sha256Digest>)> = install
            .files()
            .map(|(path, hash)| (path.to_string(), hash))
            .collect();
        install.add_bytecode(&compiler).unwrap();
        let after: Vec<(String, Option<Sha256Digest>)> = install
            .files()
            .map(|(path, hash)| (path.to_string(), hash))
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn ok_spreads_files_over_the_venv_scheme() {
        let install = plan(&[
            ("demo/__init__.py", b"x = 1\n", 0o644),
            ("demo-1.0.data/purelib/pure.py", b"p = 1\n", 0o644),
            ("demo-1.0.data/platlib/plat.so", b"\x7fELF", 0o755),
            (
                "demo-1.0.data/scripts/run.sh",
                b"#!/bin/sh\necho hi\n",
                0o644,
            ),
            ("demo-1.0.data/headers/demo.h", b"int x;\n", 0o644),
            (
                "demo-1.0.data/data/share/demo/readme.txt",
                b"hello\n",
                0o644,
            ),
        ])
        .unwrap();
        assert_eq!(install.name().as_str(), "demo");
        assert_eq!(install.version(), "1.0");
        assert_eq!(install.filename(), FILENAME);
        let files: Vec<&str> = install
            .files()
            .filter(|(_, hash)| hash.is_some())
            .map(|(path, _)| path)
            .collect();
        assert_eq!(
            files,
            [
                "opt/venv/bin/run.sh",
                "opt/venv/include/site/python3.11/demo/demo.h",
                "opt/venv/lib/python3.11/site-packages/demo-1.0.dist-info/INSTALLER",
                "opt/venv/lib/python3.11/site-packages/demo-1.0.dist-info/METADATA",
                "opt/venv/lib/python3.11/site-packages/demo-1.0.dist-info/RECORD",
                "opt/venv/lib/python3.11/site-packages/demo-1.0.dist-info/WHEEL",
                "opt/venv/lib/python3.11/site-packages/demo/__init__.py",
                "opt/venv/lib/python3.11/site-packages/plat.so",
                "opt/venv/lib/python3.11/site-packages/pure.py",
                "opt/venv/share/demo/readme.txt",
            ]
        );
        assert_eq!(
            text(&install, &format!("{SITE}/demo-1.0.dist-info/INSTALLER")),
            "envbuild\n"
        );
        // A script without `#!python` is copied as is, but always executable.
        assert!(matches!(
            entry(&install, "opt/venv/bin/run.sh"),
            EntryContent::Archived(_)
        ));
        assert_eq!(mode(&install, "opt/venv/bin/run.sh"), 0o755);
        // The `.data` folder itself is never installed.
        assert!(install.files().all(|(path, _)| !path.contains(".data")));
    }

    #[test]
    fn ok_every_parent_directory_planned_first() {
        let install = plan(&[("demo/sub/deep.py", b"", 0o644)]).unwrap();
        let paths: Vec<&str> = install.files().map(|(path, _)| path).collect();
        for parent in [
            "opt/",
            "opt/venv/",
            "opt/venv/lib/",
            "opt/venv/lib/python3.11/",
            &format!("{SITE}/"),
            &format!("{SITE}/demo/sub/"),
        ] {
            let position = paths
                .iter()
                .position(|path| path == &parent)
                .unwrap_or_else(|| panic!("{parent}"));
            let child = paths
                .iter()
                .position(|path| path.starts_with(parent) && path != &parent)
                .unwrap();
            assert!(position < child, "{parent}");
        }
        assert!(
            install
                .files()
                .filter(|(path, _)| path.ends_with('/'))
                .all(|(_, hash)| hash.is_none())
        );
    }

    #[test]
    fn ok_modes_from_zip_executable_bit() {
        let install = plan(&[
            ("demo/tool.py", b"", 0o775),
            ("demo/lib.py", b"", 0o600),
            ("demo/group_exec.py", b"", 0o610),
        ])
        .unwrap();
        assert_eq!(mode(&install, &format!("{SITE}/demo/tool.py")), 0o755);
        assert_eq!(mode(&install, &format!("{SITE}/demo/lib.py")), 0o644);
        assert_eq!(mode(&install, &format!("{SITE}/demo/group_exec.py")), 0o755);
        assert_eq!(mode(&install, &format!("{SITE}/demo")), 0o755);
    }

    #[test]
    fn ok_python_shebang_rewritten() {
        let install = plan(&[
            (
                "demo-1.0.data/scripts/tool",
                b"#!python\nimport sys\n",
                0o644,
            ),
            (
                "demo-1.0.data/scripts/gui",
                b"#!pythonw -E\r\nprint(1)\n",
                0o644,
            ),
        ])
        .unwrap();
        assert_eq!(
            text(&install, "opt/venv/bin/tool"),
            "#!/opt/venv/bin/python\nimport sys\n"
        );
        assert_eq!(
            text(&install, "opt/venv/bin/gui"),
            "#!/opt/venv/bin/python\nprint(1)\n"
        );
        assert_eq!(mode(&install, "opt/venv/bin/tool"), 0o755);
    }

    #[test]
    fn ok_long_prefix_uses_sh_trampoline() {
        let folder = tempfile::tempdir().unwrap();
        let path = valid_wheel(
            folder.path(),
            &[("demo-1.0.data/scripts/tool", b"#!python\nx\n", 0o644)],
        );
        let prefix = format!("/opt/{}", "v".repeat(120));
        let scheme = InstallScheme {
            prefix: prefix.clone(),
            ..scheme()
        };
        let install = plan_install(&path, FILENAME, &scheme).unwrap();
        assert_eq!(
            text(&install, &format!("{}/bin/tool", &prefix[1..])),
            format!("#!/bin/sh\n'''exec' '{prefix}/bin/python' \"$0\" \"$@\"\n' '''\nx\n")
        );
    }

    #[test]
    fn ok_console_and_gui_launchers() {
        let entry_points = b"[console_scripts]\ndemo = demo.cli:app.main\n\n[gui_scripts]\ndemo-gui = demo.gui:run [qt]\n";
        let install = plan(&[
            ("demo/cli.py", b"", 0o644),
            ("demo-1.0.dist-info/entry_points.txt", entry_points, 0o644),
            // Shadowed by the generated launcher: skipped, as pip does.
            ("demo-1.0.data/scripts/demo", b"#!python\nold\n", 0o644),
            ("demo-1.0.data/scripts/demo-script.py", b"old\n", 0o644),
        ])
        .unwrap();
        let console = text(&install, "opt/venv/bin/demo");
        assert!(console.starts_with("#!/opt/venv/bin/python\n"), "{console}");
        assert!(console.contains("from demo.cli import app\n"), "{console}");
        assert!(console.contains("sys.exit(app.main())\n"), "{console}");
        let gui = text(&install, "opt/venv/bin/demo-gui");
        assert!(
            gui.contains("from demo.gui import run\n") && gui.contains("sys.exit(run())\n"),
            "{gui}"
        );
        assert_eq!(mode(&install, "opt/venv/bin/demo"), 0o755);
        assert_eq!(mode(&install, "opt/venv/bin/demo-gui"), 0o755);
        assert!(!install.entries.contains_key("opt/venv/bin/demo-script.py"));
    }

    #[test]
    fn ok_record_regenerated() {
        let install = plan(&[
            ("demo/a,b.py", b"q\n", 0o644),
            ("demo/__init__.py", b"x = 1\n", 0o644),
            (
                "demo-1.0.data/scripts/tool",
                b"#!python\nimport sys\n",
                0o644,
            ),
            (
                "demo-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\nrun = demo:main\n",
                0o644,
            ),
        ])
        .unwrap();
        let record = text(&install, &format!("{SITE}/demo-1.0.dist-info/RECORD"));
        let lines: Vec<&str> = record.lines().collect();
        let paths: Vec<String> = lines
            .iter()
            .map(|line| {
                if let Some(rest) = line.strip_prefix('"') {
                    rest.split_once("\",").unwrap().0.replace("\"\"", "\"")
                } else {
                    line.split(',').next().unwrap().to_string()
                }
            })
            .collect();
        assert_eq!(
            paths,
            [
                "../../../bin/run",
                "../../../bin/tool",
                "demo-1.0.dist-info/INSTALLER",
                "demo-1.0.dist-info/METADATA",
                "demo-1.0.dist-info/RECORD",
                "demo-1.0.dist-info/WHEEL",
                "demo-1.0.dist-info/entry_points.txt",
                "demo/__init__.py",
                "demo/a,b.py",
            ]
        );
        assert!(record.ends_with('\n') && !record.contains('\r'));
        assert!(lines.contains(&"demo-1.0.dist-info/RECORD,,"));
        assert!(lines.contains(
            &format!("\"demo/a,b.py\",{},2", Sha256Digest::of(b"q\n").record()).as_str()
        ));
        // Every installed file's row carries the hash and size of what is installed.
        for (path, hash) in install.files() {
            let Some(hash) = hash else { continue };
            if path.ends_with("/RECORD") {
                continue;
            }
            let relative = relative_to(SITE, path.trim_end_matches('/'));
            let row = lines
                .iter()
                .find(|line| line.trim_start_matches('"').starts_with(&relative))
                .unwrap();
            assert!(row.contains(&hash.record()), "{row} vs {path}");
        }
        let tool = text(&install, "opt/venv/bin/tool");
        assert!(
            lines.contains(
                &format!(
                    "../../../bin/tool,{},{}",
                    Sha256Digest::of(tool.as_bytes()).record(),
                    tool.len()
                )
                .as_str()
            )
        );
    }

    #[test]
    fn ok_sha512_record_row_checked_at_plan() {
        use sha2::Digest as _;
        let mut members = members(&[("demo/big.py", b"data\n", 0o644)]);
        let record = members
            .iter_mut()
            .find(|member| member.name.ends_with("RECORD"))
            .unwrap();
        let sha512 = data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha512::digest(b"data\n"));
        let old = format!("demo/big.py,{},5", Sha256Digest::of(b"data\n").record());
        let text = String::from_utf8(record.bytes.clone())
            .unwrap()
            .replace(&old, &format!("demo/big.py,sha512={sha512},5"));
        record.bytes = text.into_bytes();
        let install = plan_members(&members).unwrap();
        assert_eq!(
            entry(&install, &format!("{SITE}/demo/big.py")).sha256(),
            Some(Sha256Digest::of(b"data\n"))
        );

        let lie = String::from_utf8(members.last().unwrap().bytes.clone())
            .unwrap()
            .replace(&sha512, &sha512.replace('A', "B").replace('a', "A"));
        members.last_mut().unwrap().bytes = lie.into_bytes();
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(error, WheelError::RecordHashMismatch { .. }),
            "{error}"
        );
    }

    fn attack_zip(bad_name: &str) -> Vec<u8> {
        let placeholder: String = "z".repeat(bad_name.len());
        let bytes = zip_bytes(&members(&[(&placeholder, b"evil", 0o644)]));
        rename_in_zip(bytes, &placeholder, bad_name)
    }

    fn assert_unsafe(bad_name: &str, expected: crate::wheel::UnsafePathReason) {
        let error = plan_zip(attack_zip(bad_name)).unwrap_err();
        match &error {
            WheelError::UnsafePath { reason, wheel, .. } => {
                assert_eq!(*reason, expected, "{bad_name}: {error}");
                assert_eq!(wheel, FILENAME);
            }
            _ => panic!("{bad_name}: {error}"),
        }
    }

    #[test]
    fn err_path_traversal_dotdot() {
        use crate::wheel::UnsafePathReason::ParentComponent;
        assert_unsafe("../../etc/passwd", ParentComponent);
        assert_unsafe("demo/../../x.py", ParentComponent);
        assert_unsafe("demo-1.0.data/data/../../../../x", ParentComponent);
    }

    #[test]
    fn err_absolute_path() {
        assert_unsafe("/etc/cron.d/evil", crate::wheel::UnsafePathReason::Absolute);
    }

    #[test]
    fn err_backslash_in_name() {
        assert_unsafe(
            "demo\\..\\..\\x.py",
            crate::wheel::UnsafePathReason::Backslash,
        );
    }

    #[test]
    fn err_nul_and_empty_components() {
        assert_unsafe(
            "demo/x\0.py",
            crate::wheel::UnsafePathReason::ControlCharacter,
        );
        assert_unsafe("demo//x.py", crate::wheel::UnsafePathReason::EmptyComponent);
        assert_unsafe(
            "demo/./x.py",
            crate::wheel::UnsafePathReason::CurrentComponent,
        );
    }

    #[test]
    fn err_whiteout_name() {
        assert_unsafe(
            "demo/.wh.__init__.py",
            crate::wheel::UnsafePathReason::Whiteout,
        );
        assert_unsafe(".wh..wh..opq", crate::wheel::UnsafePathReason::Whiteout);
    }

    /// The zip form of a hard link: a second central directory entry that points at
    /// another member's data, so one stored file would install under two names.
    #[test]
    fn err_two_names_for_one_stored_file() {
        use crate::wheel::testing::mutate::zip_members;

        let mut bytes = zip_bytes(&members(&[
            ("demo/a.py", b"one", 0o644),
            ("demo/b.py", b"two", 0o644),
        ]));
        let listed = zip_members(&bytes);
        let a = listed
            .iter()
            .find(|m| m.name == b"demo/a.py")
            .unwrap()
            .local;
        let b = listed
            .iter()
            .find(|m| m.name == b"demo/b.py")
            .unwrap()
            .central;
        bytes[b + 42..b + 46].copy_from_slice(&u32::try_from(a).unwrap().to_le_bytes());
        let error = plan_zip(bytes).unwrap_err();
        assert!(
            matches!(error, WheelError::InconsistentZip { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_duplicate_entry() {
        let bytes = zip_bytes(&members(&[
            ("demo/a.py", b"one", 0o644),
            ("demo/b.py", b"two", 0o644),
        ]));
        let error = plan_zip(rename_in_zip(bytes, "demo/b.py", "demo/a.py")).unwrap_err();
        assert!(
            matches!(error, WheelError::DuplicateEntry { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_symlink_entry() {
        let mut members = members(&[]);
        members.push(Member {
            name: "demo/link".into(),
            bytes: b"/etc/passwd".to_vec(),
            mode: 0o120_777,
        });
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(&error, WheelError::SymlinkEntry { path, .. } if path == "demo/link"),
            "{error}"
        );
    }

    #[test]
    fn err_device_entry() {
        let mut members = members(&[]);
        members.push(Member {
            name: "demo/null".into(),
            bytes: Vec::new(),
            mode: 0o020_666,
        });
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(
                error,
                WheelError::NotRegularFile {
                    mode: 0o020_666,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn err_file_missing_from_record() {
        let mut members = members(&[("demo/a.py", b"", 0o644)]);
        members.push(member("demo/smuggled.py", b"import os", 0o644));
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(&error, WheelError::FileNotInRecord { path, .. } if path == "demo/smuggled.py"),
            "{error}"
        );
        assert!(error.to_string().contains(FILENAME));
    }

    #[test]
    fn err_file_without_hash_in_record() {
        let mut members = members(&[("demo/a.py", b"abc", 0o644)]);
        let record = members.last_mut().unwrap();
        let text = String::from_utf8(record.bytes.clone()).unwrap();
        let row = format!("demo/a.py,{},3", Sha256Digest::of(b"abc").record());
        record.bytes = text.replace(&row, "demo/a.py,,").into_bytes();
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(error, WheelError::FileWithoutHash { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_record_lists_missing_file() {
        let mut members = members(&[("demo/a.py", b"", 0o644)]);
        let record = members.last_mut().unwrap();
        let mut text = String::from_utf8(record.bytes.clone()).unwrap();
        text.push_str(&format!(
            "demo/ghost.py,{},0\n",
            Sha256Digest::of(b"").record()
        ));
        record.bytes = text.into_bytes();
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(&error, WheelError::RecordedFileMissing { path, .. } if path == "demo/ghost.py"),
            "{error}"
        );
    }

    #[test]
    fn err_record_size_lie() {
        let mut members = members(&[("demo/a.py", b"abc", 0o644)]);
        let record = members.last_mut().unwrap();
        let text = String::from_utf8(record.bytes.clone()).unwrap();
        let row = format!("demo/a.py,{},3", Sha256Digest::of(b"abc").record());
        record.bytes = text
            .replace(
                &row,
                &format!("demo/a.py,{},4", Sha256Digest::of(b"abc").record()),
            )
            .into_bytes();
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(
                error,
                WheelError::RecordSizeMismatch {
                    recorded: 4,
                    actual: 3,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn err_metadata_hash_lie_detected_at_plan() {
        let mut members = members(&[]);
        let wheel_file = members
            .iter_mut()
            .find(|member| member.name.ends_with("/WHEEL"))
            .unwrap();
        // Same length, different bytes: RECORD no longer matches.
        wheel_file.bytes = String::from_utf8(wheel_file.bytes.clone())
            .unwrap()
            .replace("test", "evil")
            .into_bytes();
        let error = plan_members(&members).unwrap_err();
        assert!(
            matches!(error, WheelError::RecordHashMismatch { .. }),
            "{error}"
        );
    }

    fn with_wheel_file(text: &str) -> Vec<Member> {
        let mut members = members(&[]);
        members
            .iter_mut()
            .find(|member| member.name.ends_with("/WHEEL"))
            .unwrap()
            .bytes = text.as_bytes().to_vec();
        with_record(members, "demo-1.0.dist-info")
    }

    #[test]
    fn err_wheel_version_2() {
        let error = plan_members(&with_wheel_file(
            "Wheel-Version: 2.0\nRoot-Is-Purelib: true\n",
        ))
        .unwrap_err();
        assert!(
            matches!(error, WheelError::UnsupportedWheelVersion { .. }),
            "{error}"
        );
        let error = plan_members(&with_wheel_file("Generator: x\n")).unwrap_err();
        assert!(
            matches!(error, WheelError::WheelVersionMissing { .. }),
            "{error}"
        );
        // A newer minor version only warns.
        plan_members(&with_wheel_file(
            "Wheel-Version: 1.9\nRoot-Is-Purelib: false\n",
        ))
        .unwrap();
    }

    #[test]
    fn err_unknown_data_key() {
        let error = plan(&[("demo-1.0.data/etc/passwd", b"root", 0o644)]).unwrap_err();
        assert!(
            matches!(&error, WheelError::UnknownDataKey { key, .. } if key == "etc"),
            "{error}"
        );
    }

    #[test]
    fn err_script_named_python() {
        for name in ["python", "python3", "python3.11", "pypy3"] {
            let path = format!("demo-1.0.data/scripts/{name}");
            let error = plan(&[(&path, b"#!/bin/sh\n", 0o755)]).unwrap_err();
            assert!(
                matches!(error, WheelError::ScriptShadowsInterpreter { .. }),
                "{name}: {error}"
            );
        }
        let error = plan(&[("demo-1.0.data/data/bin/python", b"x", 0o755)]).unwrap_err();
        assert!(
            matches!(error, WheelError::ScriptShadowsInterpreter { .. }),
            "{error}"
        );
        let error = plan(&[(
            "demo-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\npython3 = demo:main\n",
            0o644,
        )])
        .unwrap_err();
        assert!(
            matches!(error, WheelError::ScriptShadowsInterpreter { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_data_overwrites_venv() {
        for path in [
            "demo-1.0.data/data/pyvenv.cfg",
            "demo-1.0.data/data/lib64/evil.py",
            "demo-1.0.data/data/bin",
        ] {
            let error = plan(&[(path, b"x", 0o644)]).unwrap_err();
            assert!(
                matches!(error, WheelError::ConflictsWithVenv { .. }),
                "{path}: {error}"
            );
        }
    }

    #[test]
    fn err_two_members_one_destination() {
        let error = plan(&[
            ("demo/x.py", b"1", 0o644),
            ("demo-1.0.data/purelib/demo/x.py", b"2", 0o644),
        ])
        .unwrap_err();
        assert!(
            matches!(error, WheelError::DuplicateDestination { .. }),
            "{error}"
        );
        let error = plan(&[
            ("demo/x", b"1", 0o644),
            ("demo-1.0.data/platlib/demo/x/y.py", b"2", 0o644),
        ])
        .unwrap_err();
        assert!(
            matches!(error, WheelError::FileDirectoryConflict { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_dist_info_mismatch() {
        let folder = tempfile::tempdir().unwrap();
        let path = write_wheel(
            folder.path(),
            "other-1.0-py3-none-any.whl",
            &zip_bytes(&members(&[])),
        );
        let error = plan_install(&path, "other-1.0-py3-none-any.whl", &scheme()).unwrap_err();
        assert!(
            matches!(error, WheelError::DistInfoMismatch { .. }),
            "{error}"
        );
        let mut two = members(&[]);
        two.extend(project_members("other", "1.0", &[]));
        let error = plan_members(&two).unwrap_err();
        assert!(
            matches!(error, WheelError::MultipleDistInfo { .. }),
            "{error}"
        );
    }

    #[test]
    fn ok_dist_info_name_and_version_normalized() {
        let folder = tempfile::tempdir().unwrap();
        let members = project_members("Demo.Pkg", "1.0.0", &[("x.py", b"", 0o644)]);
        let filename = "demo_pkg-1.0-py3-none-any.whl";
        let path = write_wheel(folder.path(), filename, &zip_bytes(&members));
        let install = plan_install(&path, filename, &scheme()).unwrap();
        assert_eq!(install.name().as_str(), "demo-pkg");
    }

    fn project_install(folder: &Path, name: &str, files: &[(&str, &[u8], u32)]) -> WheelInstall {
        let filename = format!("{name}-1.0-py3-none-any.whl");
        let path = write_wheel(
            folder,
            &filename,
            &zip_bytes(&project_members(name, "1.0", files)),
        );
        plan_install(&path, &filename, &scheme()).unwrap()
    }

    #[test]
    fn err_collision_different_bytes_names_both() {
        let folder = tempfile::tempdir().unwrap();
        let first = project_install(
            folder.path(),
            "alpha",
            &[("shared/__init__.py", b"a", 0o644)],
        );
        let second = project_install(
            folder.path(),
            "beta",
            &[("shared/__init__.py", b"b", 0o644)],
        );
        let error = check_collisions(&[first, second]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("alpha-1.0-py3-none-any.whl")
                && message.contains("beta-1.0-py3-none-any.whl"),
            "{message}"
        );
        assert!(
            message.contains(&format!("/{SITE}/shared/__init__.py")),
            "{message}"
        );
    }

    #[test]
    fn ok_collision_identical_bytes_and_shared_dirs() {
        let folder = tempfile::tempdir().unwrap();
        let first = project_install(
            folder.path(),
            "alpha",
            &[("shared/__init__.py", b"same", 0o644), ("a.py", b"", 0o644)],
        );
        let second = project_install(
            folder.path(),
            "beta",
            &[("shared/__init__.py", b"same", 0o644), ("b.py", b"", 0o644)],
        );
        check_collisions(&[first, second]).unwrap();
    }

    /// Run a generated launcher with the host's python3 against a tiny module on
    /// PYTHONPATH: the dotted attribute is followed, `argv[0]` loses `.exe`, and the
    /// callable's return value becomes the exit status.
    #[test]
    fn launcher_runs_and_propagates_exit_code() {
        let python = std::process::Command::new("python3")
            .arg("--version")
            .output();
        if !python.is_ok_and(|output| output.status.success()) {
            eprintln!("skipped: no python3 on this host");
            return;
        }
        let install = plan(&[(
            "demo-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\ndemo = launchdemo.cli:app.main\n",
            0o644,
        )])
        .unwrap();
        let launcher = text(&install, "opt/venv/bin/demo");
        let folder = tempfile::tempdir().unwrap();
        let package = folder.path().join("launchdemo");
        std::fs::create_dir(&package).unwrap();
        std::fs::write(package.join("__init__.py"), "").unwrap();
        std::fs::write(
            package.join("cli.py"),
            "import os, sys\nclass app:\n    @staticmethod\n    def main():\n        print(sys.argv[0])\n        return int(os.environ['DEMO_EXIT'])\n",
        )
        .unwrap();
        let script = folder.path().join("demo.exe");
        std::fs::write(&script, launcher).unwrap();
        for code in [0, 3, 42] {
            let output = std::process::Command::new("python3")
                .arg(&script)
                .env("PYTHONPATH", folder.path())
                .env("DEMO_EXIT", code.to_string())
                .output()
                .unwrap();
            assert_eq!(
                output.status.code(),
                Some(code),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let argv0 = String::from_utf8(output.stdout).unwrap();
            assert_eq!(
                argv0.trim_end(),
                folder.path().join("demo").to_str().unwrap()
            );
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to(SITE, &format!("{SITE}/a/b.py")), "a/b.py");
        assert_eq!(
            relative_to(SITE, "opt/venv/bin/flask"),
            "../../../bin/flask"
        );
        assert_eq!(
            relative_to(SITE, "opt/venv/include/site/python3.11/X/x.h"),
            "../../../include/site/python3.11/X/x.h"
        );
    }

    // ---------------------------------------------------------------------------------
    // Lying METADATA (issue 7, defect 9)

    fn with_metadata(text: &str) -> Vec<Member> {
        let mut members = members(&[("demo/__init__.py", b"", 0o644)]);
        members
            .iter_mut()
            .find(|member| member.name.ends_with("/METADATA"))
            .unwrap()
            .bytes = text.as_bytes().to_vec();
        with_record(members, "demo-1.0.dist-info")
    }

    fn plan_locked(members: &[Member], locked: Option<&str>) -> Result<WheelInstall, WheelError> {
        let folder = tempfile::tempdir().unwrap();
        let path = write_wheel(folder.path(), FILENAME, &zip_bytes(members));
        plan_locked_install(
            &WheelSource {
                path: &path,
                filename: FILENAME,
                locked_version: locked,
            },
            &scheme(),
        )
    }

    #[test]
    fn err_metadata_version_lies_about_the_locked_version() {
        let members = with_metadata("Metadata-Version: 2.1\nName: demo\nVersion: 9.9.9\n");
        let error = plan_locked(&members, Some("1.0")).unwrap_err();
        assert!(
            matches!(
                &error,
                WheelError::MetadataVersionMismatch { metadata, filename, locked, .. }
                    if metadata == "9.9.9" && filename == "1.0" && locked.as_deref() == Some("1.0")
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "wheel `{FILENAME}`: `METADATA` says version `9.9.9`, but the filename says `1.0` and the lockfile pins `1.0`; the image's `.dist-info` would contradict the lockfile, so envbuild refuses the wheel (as uv does); the file was renamed or rebuilt, fetch the right file or lock the version the wheel holds"
            )
        );
        // Without a lockfile version the file name alone is the reference.
        let error = plan_locked(&members, None).unwrap_err();
        assert!(!error.to_string().contains("lockfile pins"), "{error}");
    }

    #[test]
    fn err_metadata_version_agrees_with_the_filename_but_not_the_lock() {
        let members = with_metadata("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n");
        let error = plan_locked(&members, Some("2.0")).unwrap_err();
        assert!(
            matches!(error, WheelError::MetadataVersionMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn ok_metadata_version_equal_under_pep440() {
        let members = with_metadata("Metadata-Version: 2.1\nName: Demo\nVersion: 1.0.0\n");
        plan_locked(&members, Some("1.0.0")).unwrap();
        plan_locked(&members, Some("1")).unwrap();
    }

    #[test]
    fn err_metadata_version_missing_or_invalid() {
        let error =
            plan_locked(&with_metadata("Metadata-Version: 2.1\nName: demo\n"), None).unwrap_err();
        assert!(
            matches!(error, WheelError::MetadataVersionMissing { .. }),
            "{error}"
        );
        let members = with_metadata("Metadata-Version: 2.1\nName: demo\nVersion: one\u{1b}[2J\n");
        let error = plan_locked(&members, None).unwrap_err();
        assert!(
            matches!(error, WheelError::InvalidMetadataVersion { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("`one\\u{1b}[2J`"), "{error}");
    }

    #[test]
    fn err_metadata_names_another_project() {
        let members = with_metadata("Metadata-Version: 2.1\nName: other\nVersion: 1.0\n");
        let error = plan_locked(&members, Some("1.0")).unwrap_err();
        assert!(
            matches!(error, WheelError::MetadataNameMismatch { .. }),
            "{error}"
        );
    }

    // ---------------------------------------------------------------------------------
    // Names and paths Linux cannot hold (issue 7, defect 3)

    /// A member path of exactly `length` bytes under `demo/`, in components of 200.
    fn deep_member(length: usize) -> String {
        let mut path = String::from("demo/");
        while path.len() + 201 < length {
            path.push_str(&"d".repeat(200));
            path.push('/');
        }
        path.push_str(&"x".repeat(length - path.len()));
        path
    }

    /// The absolute installed path of member `path` is `/` + SITE + `/` + `path`.
    const SITE_OVERHEAD: usize = SITE.len() + 2;

    #[test]
    fn err_file_name_over_255_bytes() {
        let name = format!("demo/{}.py", "a".repeat(253));
        let error = plan(&[(&name, b"", 0o644)]).unwrap_err();
        assert!(
            matches!(
                &error,
                WheelError::PathComponentTooLong { length: 256, limit: 255, path, .. } if *path == name
            ),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(FILENAME) && message.contains("NAME_MAX"),
            "{message}"
        );
        // Shortened, so one error line stays readable.
        assert!(!message.contains(&"a".repeat(200)), "{message}");
        assert!(
            message.contains(&format!("`demo/{}…{}.py`", "a".repeat(55), "a".repeat(57))),
            "{message}"
        );
        // 255 bytes is allowed.
        plan(&[(&format!("demo/{}.py", "a".repeat(252)), b"", 0o644)]).unwrap();
    }

    #[test]
    fn err_installed_path_over_3839_bytes() {
        let limit = MAX_PATH_BYTES - SITE_OVERHEAD;
        plan(&[(&deep_member(limit), b"", 0o644)]).unwrap();
        let member = deep_member(limit + 1);
        let error = plan(&[(&member, b"", 0o644)]).unwrap_err();
        assert!(
            matches!(
                &error,
                WheelError::PathTooLong { length, limit: MAX_PATH_BYTES, destination, .. }
                    if *length == MAX_PATH_BYTES + 1
                        && *destination == format!("/{SITE}/{member}")
            ),
            "{error}"
        );
        assert!(error.to_string().len() < 1000, "{error}");
    }

    #[test]
    fn err_installed_path_too_long_only_with_the_prefix() {
        // The member alone is under the limit; the prefix pushes it over.
        let member = deep_member(MAX_PATH_BYTES - SITE_OVERHEAD - 50);
        plan(&[(&member, b"", 0o644)]).unwrap();
        let folder = tempfile::tempdir().unwrap();
        let path = valid_wheel(folder.path(), &[(&member, b"", 0o644)]);
        let scheme = InstallScheme {
            prefix: format!("/opt/{}", "p".repeat(100)),
            ..scheme()
        };
        let error = plan_install(&path, FILENAME, &scheme).unwrap_err();
        assert!(matches!(error, WheelError::PathTooLong { .. }), "{error}");
    }

    #[test]
    fn err_entry_point_name_over_255_bytes() {
        let name = "x".repeat(256);
        let entry_points = format!("[console_scripts]\n{name} = demo:main\n");
        let error = plan(&[(
            "demo-1.0.dist-info/entry_points.txt",
            entry_points.as_bytes(),
            0o644,
        )])
        .unwrap_err();
        assert!(
            matches!(
                &error,
                WheelError::PathComponentTooLong { component, destination, .. }
                    if *component == name && *destination == format!("/opt/venv/bin/{name}")
            ),
            "{error}"
        );
    }

    #[test]
    fn err_data_script_name_over_255_bytes() {
        let name = format!("demo-1.0.data/scripts/{}", "s".repeat(256));
        let error = plan(&[(&name, b"#!/bin/sh\n", 0o755)]).unwrap_err();
        assert!(
            matches!(error, WheelError::PathComponentTooLong { .. }),
            "{error}"
        );
    }

    // ---------------------------------------------------------------------------------
    // Damaged members (issue 7, defect 11)

    /// Stream every archived file as the layer writer does; the first error.
    fn stream_all(install: &WheelInstall) -> Result<(), WheelError> {
        let mut archive = install.open_archive()?;
        for entry in install.entries.values() {
            if let EntryContent::Archived(file) = &entry.content {
                let mut reader = install.reader(&mut archive, file)?;
                std::io::copy(&mut reader, &mut std::io::sink()).map_err(|error| {
                    into_wheel_error(error)
                        .unwrap_or_else(|error| panic!("a bare I/O error: {error}"))
                })?;
            }
        }
        Ok(())
    }

    /// Each kind of damage to a member's stored bytes is reported as what it is, by the
    /// reader and by the layer writer, never as a failed write into the cache.
    #[test]
    fn err_damaged_member_is_named_not_a_disk_error() {
        use crate::wheel::CorruptMemberReason::*;
        use crate::wheel::testing::mutate::{HeaderField, member_data, set_header_field};

        const NAME: &str = "demo/big.py";
        let content = b"print('hello, world')\n".repeat(200);
        type Damage = fn(&mut Vec<u8>);
        let cases: [(&str, Damage, CorruptMemberReason); 4] = [
            (
                "invalid deflate block",
                |bytes| {
                    let range = member_data(bytes, NAME);
                    bytes[range].fill(0xff);
                },
                CorruptCompressedData,
            ),
            (
                "stream cut short",
                |bytes| {
                    let range = member_data(bytes, NAME);
                    set_header_field(
                        bytes,
                        NAME,
                        HeaderField::CompressedSize,
                        range.len() as u32 / 2,
                    );
                },
                TruncatedCompressedData,
            ),
            (
                "member larger than its headers and RECORD say",
                |bytes| set_header_field(bytes, NAME, HeaderField::UncompressedSize, 100),
                LargerThanDeclared,
            ),
            (
                "wrong CRC-32",
                |bytes| set_header_field(bytes, NAME, HeaderField::Crc32, 0x1234_5678),
                ChecksumMismatch,
            ),
        ];
        for (what, damage, expected) in cases {
            let mut members = members(&[(NAME, &content, 0o644)]);
            if matches!(expected, LargerThanDeclared) {
                // RECORD agrees with the lying headers, so only the stream can tell.
                let record = members.last_mut().unwrap();
                let text = String::from_utf8(record.bytes.clone()).unwrap();
                let row = format!(
                    "{NAME},{},{}",
                    Sha256Digest::of(&content).record(),
                    content.len()
                );
                assert!(text.contains(&row));
                record.bytes = text
                    .replace(
                        &row,
                        &format!("{NAME},{},100", Sha256Digest::of(&content).record()),
                    )
                    .into_bytes();
            }
            let mut bytes = zip_bytes(&members);
            damage(&mut bytes);
            let folder = tempfile::tempdir().unwrap();
            let path = write_wheel(folder.path(), FILENAME, &bytes);
            let install = plan_install(&path, FILENAME, &scheme())
                .unwrap_or_else(|error| panic!("{what}: planning reads no body: {error}"));
            let error = stream_all(&install).unwrap_err();
            assert!(
                matches!(&error, WheelError::CorruptMember { reason, path, .. } if *reason == expected && path == NAME),
                "{what}: {error}"
            );
            let message = error.to_string();
            assert!(
                message.contains(FILENAME) && message.contains(&expected.to_string()),
                "{what}: {message}"
            );

            let cache = crate::cache::Cache::open(&folder.path().join("cache")).unwrap();
            let epoch = crate::repro::SourceDateEpoch::from_seconds(0);
            let error = crate::layer::write_wheels_layer(&[&install], epoch, &cache).unwrap_err();
            assert!(
                matches!(
                    &error,
                    crate::layer::LayerError::Wheel(WheelError::CorruptMember { reason, .. })
                        if *reason == expected
                ),
                "{what}: {error}"
            );
            assert!(!error.to_string().contains("disk space"), "{what}: {error}");
        }
    }

    // ---------------------------------------------------------------------------------
    // No panics on hostile input (issue 7, section 4)

    /// A small wheel that uses every part of the format.
    fn full_members() -> Vec<Member> {
        members(&[
            ("demo/__init__.py", b"x = 1\n", 0o644),
            ("demo/a,b.py", &b"long text ".repeat(300), 0o644),
            ("demo-1.0.data/scripts/tool", b"#!python\nprint(1)\n", 0o755),
            ("demo-1.0.data/scripts/run.sh", b"#!/bin/sh\n", 0o644),
            ("demo-1.0.data/headers/demo.h", b"int x;\n", 0o644),
            ("demo-1.0.data/data/share/demo/readme.txt", b"hi\n", 0o644),
            (
                "demo-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\ndemo = demo.cli:app.main\n[gui_scripts]\ng = demo:g [x]\n",
                0o644,
            ),
        ])
    }

    /// Mutated wheels: the zip bytes mutated (deflated or stored), or one member's
    /// bytes or name mutated and the wheel zipped again with a RECORD that matches
    /// (unless the member is RECORD), so the metadata checks see the mutation too.
    fn mutated_wheels() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        use proptest::sample::Index;

        use crate::wheel::testing::mutate;

        let full = full_members();
        let seeds = vec![
            zip_bytes(&full),
            zip_bytes_with(&full, zip::CompressionMethod::Stored),
            zip_bytes(&members(&[])),
        ];
        let zipped = (proptest::sample::select(seeds), mutate::mutations(4))
            .prop_map(|(seed, mutations)| mutate::apply(seed, &mutations));
        let rezipped = (any::<Index>(), any::<bool>(), mutate::mutations(4)).prop_map(
            move |(index, rename, mutations)| {
                let mut members = full.clone();
                let member = &mut members[index.index(full.len())];
                let is_record = member.name.ends_with("/RECORD");
                if rename {
                    let name = mutate::apply(member.name.clone().into_bytes(), &mutations);
                    member.name = String::from_utf8_lossy(&name).into_owned();
                } else {
                    member.bytes = mutate::apply(std::mem::take(&mut member.bytes), &mutations);
                }
                if !is_record {
                    members = with_record(members, "demo-1.0.dist-info");
                }
                // The zip writer refuses some names (duplicates); those wheels are
                // covered by the byte mutations.
                try_zip_bytes(&members, zip::CompressionMethod::Deflated).unwrap_or_default()
            },
        );
        prop_oneof![zipped, rezipped]
    }

    /// No mutated wheel makes planning or streaming panic; every failure is a typed
    /// [`WheelError`] on one printable line (a damaged member is never a bare I/O error,
    /// which the layer writer would report as a disk problem).
    #[test]
    fn ok_no_panic_on_mutated_wheels() {
        use crate::wheel::testing::mutate;

        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(FILENAME);
        proptest::test_runner::TestRunner::new(mutate::config(2000, 0x5eed_0003))
            .run(&mutated_wheels(), |bytes| {
                std::fs::write(&path, &bytes).unwrap();
                let outcome = plan_install(&path, FILENAME, &scheme())
                    .and_then(|install| stream_all(&install));
                if let Err(error) = outcome {
                    proptest::prop_assert!(mutate::printable(&error.to_string()), "{error}");
                }
                Ok(())
            })
            .unwrap();
    }

    /// `WHEEL` and `METADATA` as builders write them, with continuation lines and
    /// encoded words, the seeds of the header test.
    const HEADER_SEEDS: &[&str] = &[
        "Wheel-Version: 1.0\nGenerator: bdist_wheel (0.45.1)\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "Metadata-Version: 2.4\nName: Demo.Pkg\nVersion: 1.0.0\nSummary: A demo\n  continued\nRequires-Dist: other>=1; extra == \"x\"\nDescription-Content-Type: text/markdown\n\n# Demo\n",
        "Metadata-Version: 2.1\r\nName: =?utf-8?q?demo?=\r\nVersion: 1.0\r\n\r\n",
    ];

    /// No `WHEEL` or `METADATA` text makes their checks panic; errors are one printable
    /// line.
    #[test]
    fn ok_no_panic_on_mutated_wheel_and_metadata_files() {
        use proptest::prelude::*;

        use crate::wheel::testing::mutate;

        let filename = WheelFilename::from_str(FILENAME).unwrap();
        let inputs = prop_oneof![
            4 => (proptest::sample::select(HEADER_SEEDS), mutate::mutations(6))
                .prop_map(|(seed, mutations)| mutate::apply(seed.as_bytes().to_vec(), &mutations)),
            1 => proptest::collection::vec(any::<u8>(), 0..256),
        ];
        proptest::test_runner::TestRunner::new(mutate::config(4000, 0x5eed_0004))
            .run(&inputs, |bytes| {
                let wheel = check_wheel_file(&bytes, FILENAME, "demo-1.0.dist-info/WHEEL");
                let metadata = check_metadata(
                    &bytes,
                    &filename,
                    Some("1.0"),
                    FILENAME,
                    "demo-1.0.dist-info/METADATA",
                );
                for error in [wheel.err(), metadata.err()].into_iter().flatten() {
                    prop_assert!(mutate::printable(&error.to_string()), "{error}");
                }
                Ok(())
            })
            .unwrap();
    }
}
