//! Reading the target's facts from a base image: the Python interpreter's path and
//! version, and the C library (glibc or musl) and its version.
//!
//! Each layer blob (gzip-compressed or plain tar, bottom to top) is streamed once. The
//! image's final file tree is modelled only as far as detection needs it: symlinks, and
//! the facts scanned from *candidate* files, chosen by file name (`libc.so.6`,
//! `libc-2.N.so`, `ld-musl-<arch>.so.1`, `python3`, `python3.N`, `libpython3.N*.so*`).
//! A candidate's bytes are held only while it is scanned; other files are never read.
//! Later layers override earlier ones and OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`)
//! hide lower-layer paths (image-spec "Representing Changes"; standards §5.8).
//!
//! Limits: layer paths are taken literally (a layer writing `lib/x` under a lower
//! `lib -> usr/lib` symlink is modelled as a directory `lib`, as an overlay snapshot
//! would show it); a hardlink keeps its target's facts only if the target was itself a
//! candidate; zstd layers are refused.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{Libc, PythonVersion};

/// How many symlinks one lookup may follow before giving up (a loop or a very long
/// chain: real images need two or three).
const MAX_SYMLINK_HOPS: usize = 16;
/// Candidates larger than this are not read (no real libc or libpython is this big).
const MAX_CANDIDATE_BYTES: u64 = 256 * 1024 * 1024;
/// musl minor assumed when the loader carries no readable version string: 1.1 is the
/// oldest musl that musllinux wheels are commonly built for (`musllinux_1_1`), so it
/// errs towards wheels that run.
const DEFAULT_MUSL_MINOR: u32 = 1;

/// Where the interpreter is looked for, most preferred first.
const BIN_DIRECTORIES: [&str; 2] = ["usr/local/bin", "usr/bin"];
/// Multiarch triplets of the architectures envbuild supports (Debian/Ubuntu layout).
const TRIPLETS: [&str; 8] = [
    "x86_64-linux-gnu",
    "aarch64-linux-gnu",
    "arm-linux-gnueabihf",
    "arm-linux-gnueabi",
    "i386-linux-gnu",
    "powerpc64le-linux-gnu",
    "s390x-linux-gnu",
    "riscv64-linux-gnu",
];

/// What [`detect_base`] found in a base image; `None` where it found nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectedBase {
    /// Absolute path of the interpreter in the image, e.g. `/usr/bin/python3.11`.
    pub interpreter: Option<String>,
    /// The interpreter's version; `patch` is `None` when no version string was found.
    pub python: Option<PythonVersion>,
    /// The image's C library.
    pub libc: Option<Libc>,
}

/// A base-image layer that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The layer blob cannot be opened.
    #[error("cannot open base image layer `{}` to detect the target", path.display())]
    OpenLayer {
        /// The layer blob.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The layer is not a readable (gzip-compressed) tar archive.
    #[error("cannot read base image layer `{}` as a tar archive (plain or gzip-compressed); the blob may be truncated or corrupt: delete it from the cache and retry", path.display())]
    ReadLayer {
        /// The layer blob.
        path: PathBuf,
        /// The I/O or tar error.
        #[source]
        source: io::Error,
    },
    /// The interpreter named with `--interpreter` is not in the base image.
    #[error(
        "`--interpreter {path}` is not a file in the base image{found}; name an interpreter the base has, or leave `--interpreter` out to use the one detected"
    )]
    InterpreterNotFound {
        /// The path as given.
        path: String,
        /// `` (it has `/usr/bin/python3.11`)`` or empty.
        found: String,
    },
    /// The interpreter's version cannot be told from its name, its link target or its
    /// bytes.
    #[error(
        "cannot tell the Python version of `{path}` in the base image: neither its name, its link target nor its contents name one; give `--python X.Y`"
    )]
    UnknownInterpreterVersion {
        /// The interpreter.
        path: String,
    },
    /// The interpreter's name and what it really is disagree (for example a
    /// `python3.15` link to a `python3.11` binary).
    #[error(
        "the base image's interpreter `{path}` is named for Python {named}, but {evidence}; envbuild would install into `lib/python{named}`, where the real interpreter never looks. Fix the base image, or name the real interpreter with `--interpreter`"
    )]
    InconsistentInterpreter {
        /// The interpreter path.
        path: String,
        /// `3.N` from its name.
        named: String,
        /// What disagrees, e.g. ``its link target `/usr/bin/python3.11` is Python 3.11``.
        evidence: String,
    },
    /// The layer uses a compression envbuild does not read.
    #[error("cannot read base image layer `{}`: it is {compression}-compressed, and envbuild reads only plain or gzip-compressed layers; use a base image with gzip layers, or give `--python`, `--glibc`/`--musl` and `--interpreter` so no detection is needed", path.display())]
    UnsupportedCompression {
        /// The layer blob.
        path: PathBuf,
        /// The compression's name.
        compression: &'static str,
    },
}

/// Read the interpreter, Python version and libc of a base image.
///
/// `config_env` is the image config's `Env` (`KEY=value` strings); `layers` are the layer
/// blobs, bottom to top.
///
/// - Interpreter: in `/usr/local/bin`, then `/usr/bin`, the `python3.N` that `python3`
///   leads to (through symlinks), else the highest `python3.N` there.
/// - Python: `3.N` from the interpreter's name; the patch from `PYTHON_VERSION` in
///   `config_env` (as official Python images set it) when it names the same `3.N`, else
///   from a NUL-delimited `3.N.<patch>` string (pre-release suffix dropped) in the
///   interpreter binary, else in a `libpython3.N` shared library.
/// - libc: glibc when a `libc.so.6` in a standard library directory names its version
///   (`GNU C Library … version 2.N`) or is a link to `libc-2.N.so`; otherwise musl when
///   `/lib/ld-musl-<arch>.so.1` exists, its version from a NUL-delimited `1.N.<patch>`
///   string in it, or 1.1 when none is found.
///
/// With `interpreter` (`--interpreter`), that path is the interpreter: it must exist, and
/// its version comes from it. Either way the version is cross-checked: the name of the
/// file a link leads to, the version strings in the binary, the standard library folder
/// next to it (`<prefix>/lib/python3.N`) and the `libpython3.N` libraries must not name
/// another minor version ([`DetectError::InconsistentInterpreter`]), so a
/// `python3.15 -> python3.11` link can never make envbuild install for 3.15.
pub fn detect_base(
    config_env: &[String],
    layers: &[PathBuf],
    interpreter: Option<&str>,
) -> Result<DetectedBase, DetectError> {
    let mut tree = Tree::default();
    for layer in layers {
        tree.apply_layer(layer)?;
    }
    let environment_version = config_env
        .iter()
        .filter_map(|entry| entry.strip_prefix("PYTHON_VERSION="))
        .next_back()
        .and_then(parse_python_version);

    let mut detected = DetectedBase {
        libc: tree.libc(),
        ..DetectedBase::default()
    };
    let found = match interpreter {
        Some(given) => Some(tree.given_interpreter(given)?),
        None => tree.interpreter(),
    };
    if let Some((interpreter, minor)) = found {
        tree.check_interpreter(&interpreter, minor)?;
        let patch = environment_version
            .filter(|&(environment_minor, _)| environment_minor == minor)
            .map(|(_, patch)| patch)
            .or_else(|| {
                tree.resolve(&interpreter)
                    .and_then(|(_, facts)| facts.python_patch(minor))
            })
            .or_else(|| tree.libpython_patch(minor));
        detected.python = Some(PythonVersion {
            major: 3,
            minor,
            patch,
        });
        detected.interpreter = Some(format!("/{interpreter}"));
    }
    Ok(detected)
}

/// What was learned from a candidate file's name and bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    /// glibc `(major, minor)`.
    glibc: Option<(u32, u32)>,
    /// Whether the file is a musl loader, and the musl `(major, minor)` it names.
    musl: Option<Option<(u32, u32)>>,
    /// Every `3.N.<patch>` string found, as `(N, patch)`, in file order.
    python: Vec<(u32, u32)>,
    /// For a standard library marker (`lib/python3.N/os.py`): N.
    stdlib: Option<u32>,
}

impl Facts {
    fn python_patch(&self, minor: u32) -> Option<u32> {
        self.python
            .iter()
            .find(|(found, _)| *found == minor)
            .map(|&(_, patch)| patch)
    }
}

/// A path in the image that detection cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A symlink and its target, as written.
    Symlink(String),
    /// A candidate file (anything not a directory or symlink).
    File(Facts),
}

/// Which facts a file name promises.
enum Candidate {
    /// `libc.so.6`: scan for the glibc banner.
    GlibcLibrary,
    /// `libc-2.N.so`: the name is the version.
    GlibcNamed(u32, u32),
    /// `ld-musl-<arch>.so.1`.
    MuslLoader,
    /// `python3`, `python3.N`, `libpython3.N…so…`: scan for `3.N.<patch>`.
    Python,
}

fn classify(basename: &str) -> Option<Candidate> {
    if basename == "libc.so.6" {
        return Some(Candidate::GlibcLibrary);
    }
    if let Some(version) = basename
        .strip_prefix("libc-")
        .and_then(|rest| rest.strip_suffix(".so"))
    {
        let (major, minor) = version.split_once('.')?;
        return Some(Candidate::GlibcNamed(
            parse_number(major)?,
            parse_number(minor)?,
        ));
    }
    if basename.starts_with("ld-musl-") && basename.ends_with(".so.1") {
        return Some(Candidate::MuslLoader);
    }
    if basename == "python3"
        || versioned_python(basename).is_some()
        || libpython_minor(basename).is_some()
    {
        return Some(Candidate::Python);
    }
    None
}

fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `[usr/[local/]]lib/python3.N/os.py` → N: the file that marks a standard library
/// folder (CPython's `site` looks for `os.py` to find its prefix).
fn stdlib_marker(path: &str) -> Option<u32> {
    let folder = path.strip_suffix("/os.py")?;
    let (parent, name) = split_parent(folder);
    if !matches!(parent, "lib" | "usr/lib" | "usr/local/lib") {
        return None;
    }
    versioned_python(name)
}

/// `python3.N` → N.
fn versioned_python(basename: &str) -> Option<u32> {
    parse_number(basename.strip_prefix("python3.")?)
}

/// `libpython3.N.so`, `libpython3.N.so.1.0`, `libpython3.Nm.so.1.0`, … → N.
fn libpython_minor(basename: &str) -> Option<u32> {
    let rest = basename.strip_prefix("libpython3.")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &rest[digits..];
    let flags = suffix
        .bytes()
        .take_while(|byte| matches!(byte, b'd' | b'm' | b't'))
        .count();
    if !suffix[flags..].starts_with(".so") {
        return None;
    }
    parse_number(&rest[..digits])
}

/// `3.N.P`, optionally followed by a pre-release (`a1`, `b2`, `rc1`) or `+`: `(N, P)`.
fn parse_python_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.strip_prefix("3.")?;
    let (minor, rest) = rest.split_once('.')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &rest[digits..];
    let valid_suffix = suffix.is_empty()
        || suffix == "+"
        || ["a", "b", "rc"].iter().any(|marker| {
            suffix
                .strip_prefix(marker)
                .is_some_and(|number| parse_number(number.trim_end_matches('+')).is_some())
        });
    if !valid_suffix {
        return None;
    }
    Some((parse_number(minor)?, parse_number(&rest[..digits])?))
}

/// The NUL-delimited strings of a binary that are short enough to be version strings.
fn short_strings(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|byte| *byte == 0)
        .filter(|segment| (5..=16).contains(&segment.len()))
        .filter_map(|segment| std::str::from_utf8(segment).ok())
}

/// `GNU C Library (…) stable release version 2.36.` → (2, 36).
fn scan_glibc(bytes: &[u8]) -> Option<(u32, u32)> {
    const BANNER: &[u8] = b"GNU C Library";
    const VERSION: &[u8] = b"version ";
    let mut start = 0;
    while let Some(offset) = find(&bytes[start..], BANNER) {
        let banner_start = start + offset;
        let banner = &bytes[banner_start..];
        let banner = &banner[..banner
            .iter()
            .position(|byte| *byte == 0)
            .unwrap_or(banner.len())
            .min(1024)];
        if let Some(at) = find(banner, VERSION) {
            let text = String::from_utf8_lossy(&banner[at + VERSION.len()..]);
            let mut numbers = text.split('.');
            let major = numbers.next().and_then(parse_number);
            let minor = numbers.next().map(|part| {
                let digits = part.bytes().take_while(u8::is_ascii_digit).count();
                &part[..digits]
            });
            if let (Some(major), Some(minor)) = (major, minor.and_then(parse_number)) {
                return Some((major, minor));
            }
        }
        start = banner_start + BANNER.len();
    }
    None
}

/// musl's `__libc_version`, a NUL-delimited `1.N.P`.
fn scan_musl(bytes: &[u8]) -> Option<(u32, u32)> {
    short_strings(bytes).find_map(|text| {
        let mut parts = text.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || major != "1" {
            return None;
        }
        parse_number(patch)?;
        Some((1, parse_number(minor)?))
    })
}

/// Every NUL-delimited `3.N.P` (CPython's `PY_VERSION`), deduplicated, in file order.
fn scan_python(bytes: &[u8]) -> Vec<(u32, u32)> {
    let mut found = Vec::new();
    for version in short_strings(bytes).filter_map(parse_python_version) {
        if !found.contains(&version) {
            found.push(version);
        }
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A layer path without `./`, leading `/` or trailing `/`; `None` for the root and for
/// paths with `..` (which no valid layer has).
fn normalize_entry_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The image's final file tree, as far as detection needs it. Paths are relative to
/// the root, without a leading `/`.
#[derive(Debug, Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    /// Remove `path` and everything below it.
    fn remove_tree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_children(path);
    }

    /// Remove everything below directory `path` (`""` is the root).
    fn remove_children(&mut self, path: &str) {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.nodes.remove(&key);
        }
    }

    fn apply_layer(&mut self, path: &Path) -> Result<(), DetectError> {
        let read_error = |source: io::Error| DetectError::ReadLayer {
            path: path.to_path_buf(),
            source,
        };
        let file = fs_err::File::open(path).map_err(|source| DetectError::OpenLayer {
            path: path.to_path_buf(),
            source: io::Error::new(source.kind(), source),
        })?;
        let mut buffered = BufReader::new(file);
        let magic = buffered.fill_buf().map_err(read_error)?;
        let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(DetectError::UnsupportedCompression {
                path: path.to_path_buf(),
                compression: "zstd",
            });
        } else {
            Box::new(buffered)
        };
        self.apply_tar(reader).map_err(read_error)
    }

    /// Apply one layer. Its own entries go to `upper` and join the tree at the end, so
    /// that its whiteouts only hide lower layers (image-spec: whiteouts never apply to
    /// their own layer).
    fn apply_tar(&mut self, reader: impl Read) -> io::Result<()> {
        let mut upper: BTreeMap<String, Node> = BTreeMap::new();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let entry_type = entry.header().entry_type();
            if matches!(
                entry_type,
                tar::EntryType::XGlobalHeader
                    | tar::EntryType::XHeader
                    | tar::EntryType::GNULongName
                    | tar::EntryType::GNULongLink
            ) {
                continue;
            }
            let Some(path) = normalize_entry_path(&entry.path()?.to_string_lossy()) else {
                continue;
            };
            let (_, basename) = split_parent(&path);
            match crate::layer::whiteout(&path) {
                Some(crate::layer::Whiteout::Opaque(folder)) => {
                    self.remove_children(folder);
                    continue;
                }
                Some(crate::layer::Whiteout::Deletes(hidden)) => {
                    self.remove_tree(&hidden);
                    continue;
                }
                None => {}
            }
            if entry_type.is_dir() {
                // A directory replaces a lower non-directory, but merges with a lower
                // directory.
                self.nodes.remove(&path);
                upper.remove(&path);
                continue;
            }
            // Anything else replaces whatever was at its path, directories included.
            self.remove_tree(&path);
            let node = if entry_type.is_symlink() {
                entry
                    .link_name()?
                    .map(|target| Node::Symlink(target.to_string_lossy().into_owned()))
            } else if entry_type.is_hard_link() {
                let target = entry
                    .link_name()?
                    .and_then(|target| normalize_entry_path(&target.to_string_lossy()));
                let linked = target.and_then(|target| {
                    upper
                        .get(&target)
                        .or_else(|| self.nodes.get(&target))
                        .cloned()
                });
                linked.or_else(|| classify(basename).map(|_| Node::File(Facts::default())))
            } else if let Some(minor) = stdlib_marker(&path) {
                Some(Node::File(Facts {
                    stdlib: Some(minor),
                    ..Facts::default()
                }))
            } else {
                classify(basename).map(|candidate| Node::File(scan_entry(candidate, &mut entry)))
            };
            match node {
                Some(node) => upper.insert(path, node),
                None => upper.remove(&path),
            };
        }
        self.nodes.extend(upper);
        Ok(())
    }

    /// Find `path` with every directory on the way resolved through symlinks, but the
    /// last component not followed. Returns the canonical path and its node, if known.
    fn lookup_no_follow(&self, path: &str) -> Option<(String, &Node)> {
        let (parent, basename) = split_parent(path);
        let parent = if parent.is_empty() {
            String::new()
        } else {
            self.resolve_directory(parent)?
        };
        let canonical = if parent.is_empty() {
            basename.to_string()
        } else {
            format!("{parent}/{basename}")
        };
        let node = self.nodes.get(&canonical)?;
        Some((canonical, node))
    }

    /// A directory path with every symlink on it followed.
    fn resolve_directory(&self, path: &str) -> Option<String> {
        match self.walk(path)? {
            (canonical, None) => Some(canonical),
            (_, Some(_)) => None,
        }
    }

    /// Follow every symlink of `path`, to a candidate file: its canonical path and facts.
    fn resolve(&self, path: &str) -> Option<(String, &Facts)> {
        match self.walk(path)? {
            (canonical, Some(facts)) => Some((canonical, facts)),
            (_, None) => None,
        }
    }

    /// Walk `path` component by component, following symlinks (relative ones from their
    /// directory, absolute ones from the image root). Ends on a candidate file
    /// (`Some(facts)`) or on a path the tree has no node for (`None`: a directory, or a
    /// file detection does not track). `None` overall for a loop, too many hops, or a
    /// file used as a directory.
    fn walk(&self, path: &str) -> Option<(String, Option<&Facts>)> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => current.push(component),
            }
            let joined = current.join("/");
            match self.nodes.get(&joined) {
                Some(Node::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return None;
                    }
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                Some(Node::File(facts)) => {
                    return if pending.iter().all(|rest| rest.is_empty() || rest == ".") {
                        Some((joined, Some(facts)))
                    } else {
                        None
                    };
                }
                None => {}
            }
        }
        Some((current.join("/"), None))
    }

    /// The interpreter path (relative to the root) and its minor version.
    fn interpreter(&self) -> Option<(String, u32)> {
        for directory in BIN_DIRECTORIES {
            if let Some(found) = self.follow_to_versioned_python(&format!("{directory}/python3")) {
                return Some(found);
            }
            let prefix = format!("{directory}/python3.");
            let best = self
                .nodes
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .filter_map(|(key, _)| Some((versioned_python(split_parent(key).1)?, key)))
                .filter(|(_, key)| self.resolve(key).is_some())
                .max_by_key(|(minor, _)| *minor);
            if let Some((minor, key)) = best {
                return Some((key.clone(), minor));
            }
        }
        None
    }

    /// The interpreter the user named: it must lead to a file; its minor version from
    /// the first `python3.N` name on the way, else from the version strings in it.
    fn given_interpreter(&self, given: &str) -> Result<(String, u32), DetectError> {
        let path = given.trim_start_matches('/');
        let not_found = || DetectError::InterpreterNotFound {
            path: given.to_string(),
            found: self
                .interpreter()
                .map(|(path, _)| format!(" (it has `/{path}`)"))
                .unwrap_or_default(),
        };
        let (canonical, facts) = self.resolve(path).ok_or_else(not_found)?;
        if let Some(found) = self.follow_to_versioned_python(path) {
            let (_, basename) = split_parent(path);
            // Keep the path as given when it is itself versioned (`/usr/bin/python3.12`).
            let kept = if versioned_python(basename).is_some() {
                path.to_string()
            } else {
                found.0
            };
            return Ok((kept, found.1));
        }
        let mut minors: Vec<u32> = facts.python.iter().map(|&(minor, _)| minor).collect();
        minors.dedup();
        match minors.as_slice() {
            [minor] => Ok((canonical, *minor)),
            _ => Err(DetectError::UnknownInterpreterVersion {
                path: given.to_string(),
            }),
        }
    }

    /// Refuse an interpreter whose name says 3.`minor` when what it is says otherwise.
    fn check_interpreter(&self, interpreter: &str, minor: u32) -> Result<(), DetectError> {
        let named = format!("3.{minor}");
        let inconsistent = |evidence: String| DetectError::InconsistentInterpreter {
            path: format!("/{interpreter}"),
            named: named.clone(),
            evidence,
        };
        let Some((canonical, facts)) = self.resolve(interpreter) else {
            return Ok(());
        };
        if let Some(real) = versioned_python(split_parent(&canonical).1)
            && real != minor
        {
            return Err(inconsistent(format!(
                "its link target `/{canonical}` is Python 3.{real}"
            )));
        }
        let in_binary: Vec<u32> = facts.python.iter().map(|&(found, _)| found).collect();
        if !in_binary.is_empty() && !in_binary.contains(&minor) {
            return Err(inconsistent(format!(
                "the binary `/{canonical}` names Python {}",
                versions(&in_binary)
            )));
        }
        // The standard library next to the binary: `usr/bin` -> `usr/lib/python3.N`.
        let (bin, _) = split_parent(&canonical);
        let prefix = bin.strip_suffix("bin").unwrap_or(bin);
        let stdlib_folder = format!("{prefix}lib/python3.");
        let stdlib: Vec<u32> = self
            .nodes
            .range(stdlib_folder.clone()..)
            .take_while(|(key, _)| key.starts_with(&stdlib_folder))
            .filter_map(|(_, node)| match node {
                Node::File(facts) => facts.stdlib,
                Node::Symlink(_) => None,
            })
            .collect();
        if !stdlib.is_empty() && !stdlib.contains(&minor) {
            return Err(inconsistent(format!(
                "the only standard library next to it is `/{prefix}lib/python{}`",
                versions(&stdlib)
            )));
        }
        let libpython: Vec<u32> = self
            .nodes
            .keys()
            .filter_map(|key| libpython_minor(split_parent(key).1))
            .collect();
        if in_binary.is_empty() && !libpython.is_empty() && !libpython.contains(&minor) {
            return Err(inconsistent(format!(
                "the image's only `libpython` is for Python {}",
                versions(&libpython)
            )));
        }
        Ok(())
    }

    /// Follow `path` (e.g. `usr/bin/python3`) link by link until a name `python3.N`
    /// that leads to a file.
    fn follow_to_versioned_python(&self, path: &str) -> Option<(String, u32)> {
        let mut current = path.to_string();
        for _ in 0..=MAX_SYMLINK_HOPS {
            let (canonical, node) = self.lookup_no_follow(&current)?;
            let (parent, basename) = split_parent(&canonical);
            if let Some(minor) = versioned_python(basename)
                && self.resolve(&canonical).is_some()
            {
                return Some((canonical, minor));
            }
            let Node::Symlink(target) = node else {
                return None;
            };
            current = if target.starts_with('/') || parent.is_empty() {
                target.clone()
            } else {
                format!("{parent}/{target}")
            };
        }
        None
    }

    /// The patch level found in any `libpython3.N` shared library (first in path order).
    fn libpython_patch(&self, minor: u32) -> Option<u32> {
        self.nodes.iter().find_map(|(key, node)| match node {
            Node::File(facts) if libpython_minor(split_parent(key).1) == Some(minor) => {
                facts.python_patch(minor)
            }
            _ => None,
        })
    }

    fn libc(&self) -> Option<Libc> {
        if let Some((major, minor)) = self.glibc() {
            return Some(Libc::Glibc { major, minor });
        }
        let musl = self.nodes.keys().find_map(|key| {
            let (parent, basename) = split_parent(key);
            if !matches!(parent, "lib" | "usr/lib")
                || !matches!(classify(basename), Some(Candidate::MuslLoader))
            {
                return None;
            }
            self.resolve(key).and_then(|(_, facts)| facts.musl)
        })?;
        let (major, minor) = musl.unwrap_or((1, DEFAULT_MUSL_MINOR));
        Some(Libc::Musl { major, minor })
    }

    /// glibc from the `libc.so.6` the dynamic loader would find, else from any
    /// `libc.so.6` or `libc-2.N.so` in the image (first in path order).
    fn glibc(&self) -> Option<(u32, u32)> {
        let mut standard = Vec::new();
        for triplet in TRIPLETS {
            standard.push(format!("lib/{triplet}/libc.so.6"));
            standard.push(format!("usr/lib/{triplet}/libc.so.6"));
        }
        for directory in ["lib64", "usr/lib64", "lib", "usr/lib"] {
            standard.push(format!("{directory}/libc.so.6"));
        }
        standard
            .iter()
            .find_map(|path| self.resolve(path).and_then(|(_, facts)| facts.glibc))
            .or_else(|| {
                self.nodes.values().find_map(|node| match node {
                    Node::File(facts) => facts.glibc,
                    Node::Symlink(_) => None,
                })
            })
    }
}

/// `3.11` or `3.11, 3.12` for a list of minor versions.
fn versions(minors: &[u32]) -> String {
    let mut unique = minors.to_vec();
    unique.sort_unstable();
    unique.dedup();
    unique
        .iter()
        .map(|minor| format!("3.{minor}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Read a candidate entry (bounded) and scan it for what its name promises.
fn scan_entry(candidate: Candidate, entry: &mut impl Read) -> Facts {
    let mut facts = Facts::default();
    if let Candidate::GlibcNamed(major, minor) = candidate {
        facts.glibc = Some((major, minor));
        return facts;
    }
    let mut bytes = Vec::new();
    // An unreadable or oversized candidate just yields no facts; a broken layer is
    // reported by the next entry read.
    if entry
        .take(MAX_CANDIDATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .is_err()
        || bytes.len() as u64 > MAX_CANDIDATE_BYTES
    {
        if matches!(candidate, Candidate::MuslLoader) {
            facts.musl = Some(None);
        }
        return facts;
    }
    match candidate {
        Candidate::GlibcLibrary => facts.glibc = scan_glibc(&bytes),
        Candidate::MuslLoader => facts.musl = Some(scan_musl(&bytes)),
        Candidate::Python => facts.python = scan_python(&bytes),
        Candidate::GlibcNamed(..) => {}
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    /// One entry of a synthetic layer.
    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Directory(&'a str),
    }
    use Item::{Directory, File, Hardlink, Symlink};

    fn tar_bytes(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_mtime(0);
            match item {
                File(path, content) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, path, *content).unwrap();
                }
                Symlink(path, target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Hardlink(path, target) => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Directory(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    /// Layers written to a temporary folder: gzip-compressed unless `plain`.
    struct Layers {
        folder: tempfile::TempDir,
        paths: Vec<PathBuf>,
    }

    impl Layers {
        fn new() -> Self {
            Self {
                folder: tempfile::tempdir().unwrap(),
                paths: Vec::new(),
            }
        }

        fn add_bytes(&mut self, bytes: &[u8]) -> &mut Self {
            let path = self
                .folder
                .path()
                .join(format!("layer{}", self.paths.len()));
            fs_err::write(&path, bytes).unwrap();
            self.paths.push(path);
            self
        }

        fn gzip(&mut self, items: &[Item]) -> &mut Self {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&tar_bytes(items)).unwrap();
            self.add_bytes(&encoder.finish().unwrap())
        }

        fn plain(&mut self, items: &[Item]) -> &mut Self {
            self.add_bytes(&tar_bytes(items))
        }

        fn detect(&self, env: &[&str]) -> DetectedBase {
            let env: Vec<String> = env.iter().map(|entry| entry.to_string()).collect();
            detect_base(&env, &self.paths, None).unwrap()
        }
    }

    const LIBC_236: &[u8] =
        b"\x7fELF junk\x00GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\nCopyright (C) 2022\x00more";
    const LIBC_241: &[u8] =
        b"\x00GNU C Library (Debian GLIBC 2.41-1) stable release version 2.41.\n\x00";
    const PYTHON_3112: &[u8] = b"\x7fELF\x003.2.0\x00Python %s\x003.11.2\x00tail";

    fn python(minor: u32, patch: Option<u32>) -> Option<PythonVersion> {
        Some(PythonVersion {
            major: 3,
            minor,
            patch,
        })
    }

    #[test]
    fn ok_no_panic_on_hostile_base_layers() {
        // Real shapes: links through folders, link cycles, hardlinks, whiteouts, opaque
        // folders, the version strings detection scans for.
        let debian = tar_bytes(&[
            Directory("usr/"),
            Directory("usr/lib/x86_64-linux-gnu/"),
            File("usr/lib/x86_64-linux-gnu/libc.so.6", LIBC_236),
            Symlink("lib", "usr/lib"),
            File("usr/bin/python3.11", PYTHON_3112),
            Symlink("usr/bin/python3", "python3.11"),
            Hardlink("usr/bin/python", "usr/bin/python3.11"),
            File("usr/lib/python3.11/os.py", b"import abc"),
            File(
                "usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0",
                b"\x003.11.2\x00",
            ),
        ]);
        let hostile = tar_bytes(&[
            Symlink("usr/local/bin/python3", "../../local/bin/python3"),
            Symlink("usr/bin/python3", "/usr/bin/python3.12"),
            Symlink("usr/bin/python3.12", "python3"),
            File("usr/local/bin/.wh..wh..opq", b""),
            File("usr/bin/.wh.python3.11", b""),
            File("lib/ld-musl-x86_64.so.1", b"\x001.2.4\x00"),
            File("usr/lib/libc-2.17.so", b""),
        ]);
        let folder = tempfile::tempdir().unwrap();
        let first = folder.path().join("first");
        let second = folder.path().join("second");
        fs_err::write(&first, &debian).unwrap();
        crate::mutate::assert_no_panic("base layers", [debian, hostile], 1500, |bytes| {
            // The mutated layer on top of a good one, plain and gzip-compressed.
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).unwrap();
            for layer in [bytes.to_vec(), encoder.finish().unwrap()] {
                fs_err::write(&second, &layer).unwrap();
                let layers = [first.clone(), second.clone()];
                for interpreter in [None, Some("/usr/bin/python3")] {
                    if let Err(error) = detect_base(&[], &layers, interpreter) {
                        let message = error.to_string();
                        assert!(!message.is_empty());
                    }
                }
            }
        });
    }

    #[test]
    fn ok_debian_layout_with_whiteouts() {
        let mut layers = Layers::new();
        layers
            .gzip(&[
                Directory("usr/"),
                Directory("usr/lib/"),
                Directory("usr/lib/x86_64-linux-gnu/"),
                File("usr/lib/x86_64-linux-gnu/libc.so.6", LIBC_236),
                Symlink("lib", "usr/lib"),
                File("usr/bin/python3.11", PYTHON_3112),
                Symlink("usr/bin/python3", "python3.11"),
                File("usr/local/bin/python3.9", b"\x003.9.18\x00"),
                Symlink("usr/local/bin/python3", "python3.9"),
            ])
            .gzip(&[
                File("usr/local/bin/.wh.python3", b""),
                File("usr/local/bin/.wh.python3.9", b""),
            ]);
        let detected = layers.detect(&["PATH=/usr/bin"]);
        assert_eq!(detected.interpreter.as_deref(), Some("/usr/bin/python3.11"));
        assert_eq!(detected.python, python(11, Some(2)));
        assert_eq!(
            detected.libc,
            Some(Libc::Glibc {
                major: 2,
                minor: 36
            })
        );
    }

    #[test]
    fn ok_official_image_layout_env_and_libpython() {
        let mut layers = Layers::new();
        layers
            .gzip(&[File("lib/x86_64-linux-gnu/libc.so.6", LIBC_236)])
            .gzip(&[
                File("usr/local/lib/libpython3.12.so.1.0", b"\x00\x003.12.4\x00"),
                Symlink("usr/local/lib/libpython3.12.so", "libpython3.12.so.1.0"),
                File("usr/local/bin/python3.12", b"tiny launcher"),
                Symlink("usr/local/bin/python3", "python3.12"),
                Symlink("usr/local/bin/python", "python3"),
                File("usr/bin/python3.11", PYTHON_3112),
                Symlink("usr/bin/python3", "python3.11"),
            ]);
        let detected = layers.detect(&[]);
        assert_eq!(
            detected.interpreter.as_deref(),
            Some("/usr/local/bin/python3.12")
        );
        assert_eq!(detected.python, python(12, Some(4)));
        let detected = layers.detect(&["PYTHON_VERSION=3.12.7", "LANG=C.UTF-8"]);
        assert_eq!(detected.python, python(12, Some(7)));
        // A PYTHON_VERSION for another minor is not trusted.
        let detected = layers.detect(&["PYTHON_VERSION=3.13.1"]);
        assert_eq!(detected.python, python(12, Some(4)));
    }

    #[test]
    fn ok_pre_release_keeps_numeric_patch() {
        let mut layers = Layers::new();
        layers.gzip(&[File("usr/bin/python3.14", b"\x003.14.0rc2\x00")]);
        assert_eq!(layers.detect(&[]).python, python(14, Some(0)));
        assert_eq!(
            layers.detect(&["PYTHON_VERSION=3.14.0b3"]).python,
            python(14, Some(0))
        );
    }

    #[test]
    fn ok_highest_minor_without_python3_link() {
        let mut layers = Layers::new();
        layers.plain(&[
            File("usr/bin/python3.9", b"\x003.9.2\x00"),
            File("usr/bin/python3.11", b"nothing"),
            File("usr/bin/python3.11-config", b"#!/bin/sh"),
            Symlink("usr/bin/python3.13", "missing"),
        ]);
        let detected = layers.detect(&[]);
        assert_eq!(detected.interpreter.as_deref(), Some("/usr/bin/python3.11"));
        assert_eq!(detected.python, python(11, None));
        assert_eq!(detected.libc, None);
    }

    #[test]
    fn ok_opaque_whiteout_spares_own_layer() {
        let mut layers = Layers::new();
        layers
            .gzip(&[
                File("usr/local/bin/python3.10", b"\x003.10.1\x00"),
                Symlink("usr/local/bin/python3", "python3.10"),
            ])
            .gzip(&[
                File("usr/local/bin/python3.13", b"\x003.13.5\x00"),
                File("usr/local/bin/.wh..wh..opq", b""),
                File("usr/local/bin/.wh.python3.13", b""),
            ]);
        let detected = layers.detect(&[]);
        assert_eq!(
            detected.interpreter.as_deref(),
            Some("/usr/local/bin/python3.13")
        );
        assert_eq!(detected.python, python(13, Some(5)));
    }

    #[test]
    fn ok_upper_layer_overrides_libc_and_absolute_symlinks() {
        let mut layers = Layers::new();
        layers
            .gzip(&[
                File("usr/lib/aarch64-linux-gnu/libc.so.6", LIBC_236),
                Symlink("lib", "usr/lib"),
            ])
            .gzip(&[File("usr/lib/aarch64-linux-gnu/libc.so.6", LIBC_241)])
            .gzip(&[
                // python3 -> /opt/py/bin/python3 -> python3.12 (absolute, then relative).
                Symlink("usr/local/bin/python3", "/opt/py/bin/python3"),
                Symlink("opt/py/bin/python3", "python3.12"),
                File("opt/py/bin/python3.12", b"\x003.12.9\x00"),
            ]);
        let detected = layers.detect(&[]);
        assert_eq!(
            detected.libc,
            Some(Libc::Glibc {
                major: 2,
                minor: 41
            })
        );
        assert_eq!(
            detected.interpreter.as_deref(),
            Some("/opt/py/bin/python3.12")
        );
        assert_eq!(detected.python, python(12, Some(9)));
    }

    #[test]
    fn ok_old_glibc_named_file() {
        let mut layers = Layers::new();
        layers.gzip(&[
            File("lib/x86_64-linux-gnu/libc-2.28.so", b"no banner here"),
            Symlink("lib/x86_64-linux-gnu/libc.so.6", "libc-2.28.so"),
        ]);
        assert_eq!(
            layers.detect(&[]).libc,
            Some(Libc::Glibc {
                major: 2,
                minor: 28
            })
        );
    }

    #[test]
    fn ok_musl_with_and_without_version() {
        let mut layers = Layers::new();
        layers.gzip(&[
            File(
                "lib/ld-musl-x86_64.so.1",
                b"\x7fELF\x00musl libc (x86_64)\x001.2.4\x00",
            ),
            Symlink("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
            File("usr/local/bin/python3.12", b"\x003.12.3\x00"),
            Hardlink("usr/local/bin/python3", "usr/local/bin/python3.12"),
        ]);
        let detected = layers.detect(&[]);
        assert_eq!(detected.libc, Some(Libc::Musl { major: 1, minor: 2 }));
        // `python3` is a hardlink, not a symlink: the highest python3.N is used.
        assert_eq!(
            detected.interpreter.as_deref(),
            Some("/usr/local/bin/python3.12")
        );
        assert_eq!(detected.python, python(12, Some(3)));

        let mut layers = Layers::new();
        layers.gzip(&[File("lib/ld-musl-aarch64.so.1", b"no version")]);
        assert_eq!(
            layers.detect(&[]).libc,
            Some(Libc::Musl { major: 1, minor: 1 })
        );
    }

    #[test]
    fn ok_replacing_kinds() {
        let mut layers = Layers::new();
        layers
            // A directory of interpreters that a later file replaces, and a symlink a
            // later directory replaces.
            .gzip(&[
                File("usr/local/bin/python3.12", b"\x003.12.1\x00"),
                File("usr/bin/python3.11", b"\x003.11.4\x00"),
                Symlink("lib", "usr/lib"),
                File("usr/lib/libc.so.6", LIBC_236),
            ])
            .gzip(&[
                File("usr/local/bin", b"not a directory any more"),
                Directory("lib/"),
            ]);
        let detected = layers.detect(&[]);
        assert_eq!(detected.interpreter.as_deref(), Some("/usr/bin/python3.11"));
        // `lib` is now a real (empty) directory, but usr/lib/libc.so.6 is still found.
        assert_eq!(
            detected.libc,
            Some(Libc::Glibc {
                major: 2,
                minor: 36
            })
        );
    }

    #[test]
    fn ok_symlink_loop_is_not_followed_forever() {
        let mut layers = Layers::new();
        layers.gzip(&[
            Symlink("usr/bin/python3", "python3.11"),
            Symlink("usr/bin/python3.11", "python3"),
        ]);
        assert_eq!(layers.detect(&[]), DetectedBase::default());
    }

    /// Defect 7 of issue 7: a `python3.15` link to a 3.11 binary made envbuild install
    /// into `lib/python3.15`.
    #[test]
    fn err_link_named_for_another_version() {
        let mut layers = Layers::new();
        layers.gzip(&[
            File("usr/lib/x86_64-linux-gnu/libc.so.6", LIBC_236),
            File("usr/bin/python3.11", PYTHON_3112),
            File("usr/lib/python3.11/os.py", b"# os"),
            Symlink("usr/local/bin/python3.15", "/usr/bin/python3.11"),
        ]);
        let error = detect_base(&[], &layers.paths, None).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, DetectError::InconsistentInterpreter { .. }),
            "{message}"
        );
        assert!(
            message.contains("`/usr/local/bin/python3.15` is named for Python 3.15")
                && message.contains("`/usr/bin/python3.11` is Python 3.11"),
            "{message}"
        );
        // Naming the real interpreter builds.
        let detected = detect_base(&[], &layers.paths, Some("/usr/bin/python3.11")).unwrap();
        assert_eq!(detected.python, python(11, Some(2)));
    }

    #[test]
    fn err_binary_or_stdlib_of_another_version() {
        // A file named python3.12 whose bytes say 3.11.
        let mut layers = Layers::new();
        layers.gzip(&[File("usr/bin/python3.12", PYTHON_3112)]);
        let message = detect_base(&[], &layers.paths, None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the binary `/usr/bin/python3.12` names Python")
                && message.contains("3.11"),
            "{message}"
        );

        // No version in the binary, but the only stdlib next to it is 3.11.
        let mut layers = Layers::new();
        layers.gzip(&[
            File("usr/local/bin/python3.13", b"\x7fELF no version"),
            File("usr/local/lib/python3.11/os.py", b"# os"),
            File("usr/lib/python3.13/os.py", b"# another prefix's stdlib"),
        ]);
        let message = detect_base(&[], &layers.paths, None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("only standard library next to it is `/usr/local/lib/python3.11`"),
            "{message}"
        );

        // No version in the binary, no stdlib, only a libpython of another version.
        let mut layers = Layers::new();
        layers.gzip(&[
            File("usr/bin/python3.13", b"\x7fELF no version"),
            File("usr/lib/libpython3.11.so.1.0", b"\x003.11.9\x00"),
        ]);
        let message = detect_base(&[], &layers.paths, None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("only `libpython` is for Python 3.11"),
            "{message}"
        );
    }

    #[test]
    fn ok_consistent_interpreters_pass_the_cross_check() {
        // Two Pythons side by side, each with its stdlib: either may be chosen.
        let mut layers = Layers::new();
        layers.gzip(&[
            File("usr/bin/python3.11", PYTHON_3112),
            File("usr/lib/python3.11/os.py", b"# os"),
            File("usr/bin/python3.12", b"\x003.12.7\x00"),
            File("usr/lib/python3.12/os.py", b"# os"),
            File("usr/lib/libpython3.11.so.1.0", b"\x003.11.2\x00"),
            Symlink("usr/bin/python3", "python3.11"),
        ]);
        let detected = layers.detect(&[]);
        assert_eq!(detected.interpreter.as_deref(), Some("/usr/bin/python3.11"));
        let chosen = detect_base(&[], &layers.paths, Some("/usr/bin/python3.12")).unwrap();
        assert_eq!(chosen.interpreter.as_deref(), Some("/usr/bin/python3.12"));
        assert_eq!(chosen.python, python(12, Some(7)));
        // An unversioned name is followed to the versioned file it leads to.
        let chosen = detect_base(&[], &layers.paths, Some("/usr/bin/python3")).unwrap();
        assert_eq!(chosen.interpreter.as_deref(), Some("/usr/bin/python3.11"));
    }

    #[test]
    fn err_given_interpreter_not_in_the_base() {
        let mut layers = Layers::new();
        layers.gzip(&[File("usr/bin/python3.11", PYTHON_3112)]);
        let error = detect_base(&[], &layers.paths, Some("/usr/bin/python3.12")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`--interpreter /usr/bin/python3.12` is not a file in the base image (it has `/usr/bin/python3.11`); name an interpreter the base has, or leave `--interpreter` out to use the one detected"
        );
    }

    #[test]
    fn ok_empty_image() {
        assert_eq!(
            detect_base(&[], &[], None).unwrap(),
            DetectedBase::default()
        );
    }

    #[test]
    fn err_zstd_layer() {
        let mut layers = Layers::new();
        layers.add_bytes(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
        let error = detect_base(&[], &layers.paths, None).unwrap_err();
        assert!(
            matches!(
                error,
                DetectError::UnsupportedCompression {
                    compression: "zstd",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn err_missing_layer() {
        let error =
            detect_base(&[], &[PathBuf::from("/nonexistent/layer.tar.gz")], None).unwrap_err();
        assert!(matches!(error, DetectError::OpenLayer { .. }), "{error}");
        assert!(error.to_string().contains("`/nonexistent/layer.tar.gz`"));
    }

    #[test]
    fn err_corrupt_layer() {
        let mut layers = Layers::new();
        layers.add_bytes(&[b'A'; 1024]);
        let error = detect_base(&[], &layers.paths, None).unwrap_err();
        assert!(matches!(error, DetectError::ReadLayer { .. }), "{error}");
        let mut layers = Layers::new();
        layers.add_bytes(&[0x1f, 0x8b, 8, 0, 0, 0]);
        let error = detect_base(&[], &layers.paths, None).unwrap_err();
        assert!(matches!(error, DetectError::ReadLayer { .. }), "{error}");
    }

    #[test]
    fn ok_scanners() {
        assert_eq!(scan_glibc(LIBC_236), Some((2, 36)));
        assert_eq!(
            scan_glibc(b"GNU C Library (GNU libc) stable release version 2.17, by Roland McGrath et al.\x00"),
            Some((2, 17))
        );
        assert_eq!(scan_glibc(b"GNU C Library\x00 version 2.36"), None);
        assert_eq!(scan_musl(b"\x0011.2.3\x00\x001.2.5\x00"), Some((1, 2)));
        assert_eq!(
            scan_python(b"\x003.11.2\x00\x003.11.2\x00\x003.2.0\x00x3.12.1\x00"),
            [(11, 2), (2, 0)]
        );
        assert_eq!(parse_python_version("3.13.0rc1"), Some((13, 0)));
        assert_eq!(parse_python_version("3.13.0+"), Some((13, 0)));
        assert_eq!(parse_python_version("3.13.0x"), None);
        assert_eq!(parse_python_version("3.13"), None);
        assert_eq!(libpython_minor("libpython3.11.so.1.0"), Some(11));
        assert_eq!(libpython_minor("libpython3.7m.so"), Some(7));
        assert_eq!(libpython_minor("libpython3.11.a"), None);
    }

    /// Bonus: the host's own glibc, when there is one where Debian puts it.
    #[test]
    fn ok_host_glibc_if_present() {
        let Ok(bytes) = fs_err::read("/usr/lib/x86_64-linux-gnu/libc.so.6") else {
            return;
        };
        let (major, minor) = scan_glibc(&bytes).expect("a real glibc names its version");
        assert_eq!(major, 2);
        assert!(minor >= 17);
    }
}
