//! pip requirements files with hashes, as `pip-compile --generate-hashes`,
//! `uv pip compile --generate-hashes` and `uv export --format requirements.txt` write
//! them (pip's "Requirements File Format"; standards §2.4), read in pip's hash-checking
//! mode (`--require-hashes`): every requirement is pinned with `==` (or `===`), or is a
//! direct URL or path, and carries at least one `--hash`.
//!
//! The file format follows pip's parser (`pip/_internal/req/req_file.py`): physical
//! lines ending in `\` join the next one (except comment lines); `#` starts a comment at
//! the start of a line or after whitespace; `${NAME}` (upper-case letters, digits and
//! `_`) is replaced by the environment variable, left as written when unset; a line is
//! a requirement followed by its options (`--hash`), or options alone (`-r`, `-c`,
//! `-i`, `--extra-index-url`, `-f`, ...). Environment variables are read from the
//! process environment once, while the file (and its includes) are parsed.
//!
//! Decisions where pip leaves room:
//! - `-r` and `-c` files, relative `--find-links` folders and relative paths of
//!   requirements are taken relative to the file that names them (pip takes the last
//!   two relative to the working directory; the lockfile's folder keeps a build
//!   independent of where envbuild runs). An include cycle is an error.
//! - `-c` constraints are checked, not used for resolution (everything is pinned
//!   already): a selected pin outside a constraint whose marker holds is an error. URL
//!   constraints are ignored.
//! - The same name pinned twice is fine when the two lines agree (only hashes both
//!   allow are kept) or when their markers never select both on the target; otherwise
//!   selection fails naming both lines.
//! - `--only-binary`, `--no-binary`, `--prefer-binary`, `--trusted-host`, `--pre`,
//!   `--require-hashes` and `--use-feature`, and `--config-settings`/`--global-option`
//!   on requirements, are accepted and ignored (envbuild installs pinned wheels only).
//!   `--no-index` drops the file's `--index-url` and `--extra-index-url`. Any other
//!   option is an error naming its line.
//! - Source trees need no `--hash` (pip and uv take none for them): a folder (`-e .`,
//!   `./packages/lib`, `name @ file:///...`; its name from the requirement or its
//!   `pyproject.toml`) or a git checkout pinned to a commit (`git+URL@<commit>#egg=name`,
//!   `name @ git+URL@<commit>`). They are built into wheels by the `source` stage.
//!
//! Files are known only by hash: each pin becomes a [`PackageSource::IndexLookup`]
//! listing its sha256 hashes (other algorithms are dropped), for the `index` module to
//! find through a package index. Direct references (`name @ URL`, or a bare URL or path
//! of a wheel) become that one artifact.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use uv_pep440::{Operator, Version, VersionSpecifiers};
use uv_pep508::{MarkerEnvironment, MarkerTree, VersionOrUrl};

use super::fields::{self, Excerpt};
use super::{
    Artifact, ArtifactLocation, DirectorySource, GroupSelection, IndexFile, LockedPackage,
    PackageName, PackageSource, VcsSource, is_commit_id,
};
use crate::digest::Sha256Digest;
use crate::http::redact_text;
use crate::untrusted::Untrusted;
use crate::wheel::filename::WheelFilename;

/// The hint every "regenerate the file" message ends with.
pub(crate) const REGENERATE: &str = "generate the file with `pip-compile --generate-hashes`, `uv pip compile --generate-hashes` or `uv export --format requirements.txt`";

/// Errors from a requirements file: it cannot be read in hash-checking mode, or it
/// cannot be installed on the chosen target.
///
/// `place` fields read `<file>:<line>` (the first physical line of a continued line).
/// Requirement and option text is quoted as written, with any URL credentials removed.
#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    /// An included (`-r`) or constraints (`-c`) file cannot be read.
    #[error(
        "cannot read `{}`, named at `{place}`",
        Untrusted(&path.display().to_string())
    )]
    ReadInclude {
        /// The line that names it.
        place: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Files include each other in a cycle.
    #[error(
        "`{place}` includes `{}`, which is already being read ({chain}); remove one of the `-r`/`-c` lines",
        Untrusted(&path.display().to_string()),
        chain = Untrusted(chain)
    )]
    IncludeCycle {
        /// The line that closes the cycle.
        place: String,
        /// The file included again.
        path: PathBuf,
        /// The files being read, outermost first, joined by ` -> `.
        chain: String,
    },
    /// An include names a URL.
    #[error(
        "`{place}` includes `{url}`, but envbuild reads only local requirements files; download it next to this file and include it by path",
        url = Excerpt(url)
    )]
    RemoteInclude {
        /// The line.
        place: String,
        /// The URL (credentials removed).
        url: String,
    },
    /// An option pip-tools, uv and pip do not write, or envbuild does not know.
    #[error(
        "unknown option `{option}` at `{place}`; envbuild reads `-r`, `-c`, `-i`/`--index-url`, `--extra-index-url`, `-f`/`--find-links`, `--no-index` and `--hash`, and ignores `--only-binary`, `--no-binary`, `--prefer-binary`, `--trusted-host`, `--pre` and `--require-hashes`",
        option = Excerpt(option)
    )]
    UnknownOption {
        /// The line.
        place: String,
        /// The option, as written.
        option: String,
    },
    /// An option on the wrong kind of line.
    #[error(
        "option `{option}` at `{place}` {reason}",
        option = Excerpt(option),
        reason = Untrusted(reason)
    )]
    MisplacedOption {
        /// The line.
        place: String,
        /// The option, as written.
        option: String,
        /// Where it belongs, e.g. "belongs on the line of a requirement".
        reason: &'static str,
    },
    /// An option that takes a value has none.
    #[error(
        "option `{option}` at `{place}` needs a value",
        option = Excerpt(option)
    )]
    MissingOptionValue {
        /// The line.
        place: String,
        /// The option.
        option: String,
    },
    /// An index or find-links value is not a URL (or path).
    #[error(
        "`{option}` at `{place}` is `{value}`, which is not a URL: {reason}",
        option = Excerpt(option),
        reason = Untrusted(reason),
        value = Excerpt(value)
    )]
    InvalidIndexUrl {
        /// The line.
        place: String,
        /// The option.
        option: String,
        /// The value (credentials removed).
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A requirement does not parse.
    #[error(
        "invalid requirement `{requirement}` at `{place}`: {reason}",
        reason = Untrusted(reason),
        requirement = Excerpt(requirement)
    )]
    InvalidRequirement {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A requirement is not pinned to one version.
    #[error(
        "requirement `{requirement}` at `{place}` is not pinned: hash-checking mode (pip's `--require-hashes`) needs every requirement pinned with `==` or `===`, or given by URL; {REGENERATE}",
        requirement = Excerpt(requirement)
    )]
    Unpinned {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A requirement has no `--hash`.
    #[error(
        "requirement `{requirement}` at `{place}` has no `--hash`: envbuild reads requirements files in hash-checking mode, as pip's `--require-hashes`, so every requirement needs at least one; {REGENERATE}",
        requirement = Excerpt(requirement)
    )]
    MissingHash {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A requirement's hashes are all of algorithms other than sha256.
    #[error(
        "requirement `{requirement}` at `{place}` has no `--hash=sha256:...`: envbuild verifies files by SHA-256 only; {REGENERATE}",
        requirement = Excerpt(requirement)
    )]
    NoSha256 {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A `--hash` value is malformed.
    #[error(
        "`--hash={value}` at `{place}` is not a valid hash: pip writes `--hash=sha256:<64 hexadecimal characters>` (or `sha384:`/`sha512:`)",
        value = Excerpt(value)
    )]
    InvalidHash {
        /// The line.
        place: String,
        /// The value, as written.
        value: String,
    },
    /// A direct reference lists several sha256 hashes for its one file.
    #[error(
        "requirement `{requirement}` at `{place}` names one file but lists {count} different sha256 hashes; keep the one of that file",
        requirement = Excerpt(requirement)
    )]
    SeveralHashesForOneFile {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
        /// How many.
        count: usize,
    },
    /// An editable requirement (`-e`).
    #[error(
        "editable requirement `{requirement}` at `{place}` needs a build, and envbuild installs wheels only; build a wheel and require it by version or path",
        requirement = Excerpt(requirement)
    )]
    EditableRequirement {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A VCS requirement whose revision is not a commit.
    #[error(
        "requirement `{requirement}` at `{place}` is a git checkout without a commit id after `@`, so the file does not say which code to build; pin it as `git+URL@<40-hex commit>` (`uv export` and `pip freeze` write it so)",
        requirement = Excerpt(requirement)
    )]
    UnpinnedVcs {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A VCS requirement of another system than git.
    #[error(
        "requirement `{requirement}` at `{place}` is a checkout of a version-control system envbuild does not build from (git only); build a wheel from it and require that, with its `--hash`",
        requirement = Excerpt(requirement)
    )]
    UnsupportedVcs {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A requirement points to a source folder.
    #[error(
        "requirement `{requirement}` at `{place}` points to a folder, which needs a build, and envbuild installs wheels only; build a wheel from it and require that (with its `--hash`), or leave the project out (`uv export --no-emit-project`)",
        requirement = Excerpt(requirement)
    )]
    DirectoryRequirement {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// A URL or path requirement whose package name cannot be told.
    #[error(
        "cannot tell the package of requirement `{requirement}` at `{place}`: its file name is neither a wheel nor `<name>-<version>.<archive>`; write it as `<name> @ <url>`",
        requirement = Excerpt(requirement)
    )]
    UnnamedRequirement {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
    },
    /// `name @ URL` points to a wheel of another package.
    #[error(
        "requirement `{requirement}` at `{place}` is for `{name}`, but its wheel `{filename}` is for `{wheel_name}`; fix the name or the URL",
        filename = Excerpt(filename),
        name = Untrusted(name),
        requirement = Excerpt(requirement),
        wheel_name = Untrusted(wheel_name)
    )]
    WheelNameMismatch {
        /// The line.
        place: String,
        /// The requirement, as written.
        requirement: String,
        /// The requirement's name.
        name: String,
        /// The wheel file name.
        filename: String,
        /// The name in the file name.
        wheel_name: String,
    },
    /// Extras or groups were requested, which requirements files do not have.
    #[error(
        "cannot select {what} from requirements file `{path}`: requirements files have no extras or groups; choose them when generating the file (e.g. `uv export --extra ... --group ...`)",
        what = Untrusted(what)
    )]
    SelectionNotSupported {
        /// The file.
        path: String,
        /// What was requested, e.g. "extra `socks`".
        what: String,
    },
    /// One package pinned differently by two lines that both apply.
    #[error(
        "cannot install requirements file `{path}` on the target: `{package}` is required as {first} and as {second}; keep one of them, or add markers so only one applies",
        first = Excerpt(first),
        package = Untrusted(package),
        second = Excerpt(second)
    )]
    ConflictingPins {
        /// The top-level file.
        path: String,
        /// The package.
        package: String,
        /// The first requirement, as written, and its line.
        first: String,
        /// The second requirement, as written, and its line.
        second: String,
    },
    /// Two lines pin the same version with hash lists that share no hash.
    #[error(
        "cannot install requirements file `{path}`: `{package}` is required at `{first_place}` and at `{second_place}` with no `--hash` in common, so no file satisfies both; keep one of the lines",
        package = Untrusted(package)
    )]
    DisjointHashes {
        /// The top-level file.
        path: String,
        /// The package.
        package: String,
        /// The first line.
        first_place: String,
        /// The second line.
        second_place: String,
    },
    /// A pin falls outside a constraint.
    #[error(
        "cannot install requirements file `{path}`: `{requirement}` at `{place}` is outside the constraint `{constraint}` at `{constraint_place}`; fix the pin or the constraint",
        constraint = Excerpt(constraint),
        requirement = Excerpt(requirement)
    )]
    ConstraintConflict {
        /// The top-level file.
        path: String,
        /// The requirement, as written.
        requirement: String,
        /// Its line.
        place: String,
        /// The constraint, as written.
        constraint: String,
        /// Its line.
        constraint_place: String,
    },
}

/// A parsed requirements file, with its includes.
#[derive(Debug, Clone)]
pub(crate) struct Requirements {
    /// The top-level file, as given.
    path: PathBuf,
    /// Requirement lines, in reading order.
    entries: Vec<Entry>,
    /// Lines of `-c` files.
    constraints: Vec<Constraint>,
    /// The last `--index-url`.
    index_url: Option<url::Url>,
    /// `--extra-index-url`s, in order.
    extra_index_urls: Vec<url::Url>,
    /// `--find-links`, in order.
    find_links: Vec<url::Url>,
    /// Whether `--no-index` was given.
    no_index: bool,
}

/// One requirement line.
#[derive(Debug, Clone)]
struct Entry {
    /// `file:line`.
    place: String,
    /// The requirement, as written (credentials removed).
    written: String,
    name: PackageName,
    marker: MarkerTree,
    pin: Pin,
    /// sha256 hashes, in order, without repeats.
    hashes: Vec<Sha256Digest>,
}

/// What a requirement line pins.
#[derive(Debug, Clone)]
enum Pin {
    /// `name==version`: files to look up by hash.
    Version { written: String, parsed: Version },
    /// A direct URL or path to one file.
    Direct {
        artifact: Artifact,
        version: Option<String>,
        is_wheel: bool,
    },
    /// A source tree: a folder or a VCS checkout at a commit (built into a wheel; no
    /// `--hash`, as pip and uv take none for them).
    Tree(PackageSource),
}

impl Pin {
    /// Whether two lines ask for the same thing (hashes aside): the same version (by
    /// PEP 440 equality), or the same file location.
    fn same_file_set(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Version { parsed: left, .. }, Self::Version { parsed: right, .. }) => {
                left == right
            }
            (
                Self::Direct { artifact: left, .. },
                Self::Direct {
                    artifact: right, ..
                },
            ) => left.location == right.location,
            (Self::Tree(left), Self::Tree(right)) => left == right,
            _ => false,
        }
    }

    fn version(&self) -> Option<&str> {
        match self {
            Self::Version { written, .. } => Some(written),
            Self::Direct { version, .. } => version.as_deref(),
            Self::Tree(_) => None,
        }
    }
}

/// One line of a `-c` file.
#[derive(Debug, Clone)]
struct Constraint {
    place: String,
    written: String,
    name: PackageName,
    marker: MarkerTree,
    specifiers: VersionSpecifiers,
}

/// Whether a file is read for requirements or as constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Requirements,
    Constraints,
}

impl Requirements {
    /// Parse `text`, the contents of the requirements file at `path`, reading `-r` and
    /// `-c` files from disk and `${NAME}` variables from the process environment.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, RequirementsError> {
        Self::parse_with_env(path, text, &|name| std::env::var(name).ok())
    }

    /// [`Requirements::parse`] with the environment given as a lookup function.
    fn parse_with_env(
        path: &Path,
        text: &str,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, RequirementsError> {
        let mut parser = Parser {
            environment,
            stack: Vec::new(),
            requirements: Self {
                path: path.to_path_buf(),
                entries: Vec::new(),
                constraints: Vec::new(),
                index_url: None,
                extra_index_urls: Vec::new(),
                find_links: Vec::new(),
                no_index: false,
            },
        };
        parser.read(path, text, Mode::Requirements)?;
        Ok(parser.requirements)
    }

    /// The packages to install on `environment`, sorted by name: the lines whose
    /// markers hold, checked against each other and against the constraints.
    pub(crate) fn select(
        &self,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, RequirementsError> {
        let path = self.path.display().to_string();
        let requested = selection
            .extras
            .iter()
            .map(|extra| format!("extra `{extra}`"))
            .chain(
                selection
                    .groups
                    .iter()
                    .map(|group| format!("group `{group}`")),
            )
            .next();
        if let Some(what) = requested {
            return Err(RequirementsError::SelectionNotSupported { path, what });
        }

        let mut chosen: BTreeMap<&PackageName, (&Entry, Vec<Sha256Digest>)> = BTreeMap::new();
        for entry in &self.entries {
            if !entry.marker.evaluate(environment, &[]) {
                continue;
            }
            match chosen.get_mut(&entry.name) {
                None => {
                    chosen.insert(&entry.name, (entry, entry.hashes.clone()));
                }
                Some((first, hashes)) => {
                    if !first.pin.same_file_set(&entry.pin) {
                        return Err(RequirementsError::ConflictingPins {
                            path,
                            package: entry.name.to_string(),
                            first: format!("`{}` at `{}`", first.written, first.place),
                            second: format!("`{}` at `{}`", entry.written, entry.place),
                        });
                    }
                    // Both lines must be satisfied: only hashes both allow remain.
                    hashes.retain(|hash| entry.hashes.contains(hash));
                    if hashes.is_empty() {
                        return Err(RequirementsError::DisjointHashes {
                            path,
                            package: entry.name.to_string(),
                            first_place: first.place.clone(),
                            second_place: entry.place.clone(),
                        });
                    }
                }
            }
        }

        for (entry, _) in chosen.values() {
            let Some(version) = entry.pin.version() else {
                continue;
            };
            let Ok(version) = Version::from_str(version) else {
                continue;
            };
            for constraint in &self.constraints {
                if constraint.name == entry.name
                    && constraint.marker.evaluate(environment, &[])
                    && !constraint.specifiers.contains(&version)
                {
                    return Err(RequirementsError::ConstraintConflict {
                        path,
                        requirement: entry.written.clone(),
                        place: entry.place.clone(),
                        constraint: constraint.written.clone(),
                        constraint_place: constraint.place.clone(),
                    });
                }
            }
        }

        Ok(chosen
            .into_values()
            .map(|(entry, hashes)| locked_package(entry, hashes))
            .collect())
    }

    /// Package indexes the file names: the last `--index-url`, then each
    /// `--extra-index-url`, without repeats; none after `--no-index`.
    pub(crate) fn indexes(&self) -> Vec<url::Url> {
        if self.no_index {
            return Vec::new();
        }
        let mut indexes: Vec<url::Url> = Vec::new();
        for url in self.index_url.iter().chain(&self.extra_index_urls) {
            if !indexes.contains(url) {
                indexes.push(url.clone());
            }
        }
        indexes
    }

    /// `--find-links` locations, in order, without repeats; local folders and files as
    /// `file:` URLs (made absolute against the file that names them).
    pub(crate) fn find_links(&self) -> Vec<url::Url> {
        let mut links: Vec<url::Url> = Vec::new();
        for url in &self.find_links {
            if !links.contains(url) {
                links.push(url.clone());
            }
        }
        links
    }
}

fn locked_package(entry: &Entry, hashes: Vec<Sha256Digest>) -> LockedPackage {
    let (version, source) = match &entry.pin {
        Pin::Version { written, .. } => (
            Some(written.clone()),
            PackageSource::IndexLookup {
                files: hashes
                    .into_iter()
                    .map(|sha256| IndexFile {
                        filename: None,
                        sha256,
                    })
                    .collect(),
            },
        ),
        Pin::Direct {
            artifact,
            version,
            is_wheel,
        } => {
            let source = if *is_wheel {
                PackageSource::Distributions {
                    wheels: vec![artifact.clone()],
                    sdist: None,
                }
            } else {
                PackageSource::Archive(artifact.clone())
            };
            (version.clone(), source)
        }
        Pin::Tree(source) => (None, source.clone()),
    };
    LockedPackage {
        name: entry.name.clone(),
        version,
        index: None,
        source,
    }
}

/// Reads a file and its includes into one [`Requirements`].
struct Parser<'a> {
    environment: &'a dyn Fn(&str) -> Option<String>,
    /// The files being read, outermost first, as absolute paths.
    stack: Vec<PathBuf>,
    requirements: Requirements,
}

/// The options of one line, parsed.
#[derive(Default)]
struct LineOptions {
    hashes: Vec<String>,
}

impl Parser<'_> {
    fn read(&mut self, path: &Path, text: &str, mode: Mode) -> Result<(), RequirementsError> {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let identity = fs_err::canonicalize(&absolute).unwrap_or(absolute);
        self.stack.push(identity);
        let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
        for (number, line) in logical_lines(text) {
            let place = format!("{}:{number}", path.display());
            let expanded = expand_variables(&line, self.environment);
            self.line(&place, &line, &expanded, &folder, mode)?;
        }
        self.stack.pop();
        Ok(())
    }

    /// One logical line: `written` as in the file (for messages), `expanded` after
    /// `${NAME}` expansion (to act on).
    fn line(
        &mut self,
        place: &str,
        written: &str,
        expanded: &str,
        folder: &Path,
        mode: Mode,
    ) -> Result<(), RequirementsError> {
        let (requirement, options) = split_requirement_and_options(expanded);
        let tokens = split_options(options);
        if requirement.is_empty() {
            return self.global_options(place, &tokens, folder, mode);
        }
        let (written_requirement, _) = split_requirement_and_options(written);
        let written_requirement = redact_text(written_requirement.trim());
        let line_options = requirement_options(place, &tokens)?;
        match mode {
            Mode::Requirements => {
                let entry = parse_entry(
                    place,
                    requirement.trim(),
                    written_requirement,
                    line_options,
                    folder,
                )?;
                self.requirements.entries.push(entry);
            }
            Mode::Constraints => {
                if let Some(constraint) =
                    parse_constraint(place, requirement.trim(), written_requirement)?
                {
                    self.requirements.constraints.push(constraint);
                }
            }
        }
        Ok(())
    }

    fn global_options(
        &mut self,
        place: &str,
        tokens: &[String],
        folder: &Path,
        mode: Mode,
    ) -> Result<(), RequirementsError> {
        let mut tokens = tokens.iter();
        while let Some(token) = tokens.next() {
            let (option, value) = split_option(token);
            let mut take_value = || -> Result<String, RequirementsError> {
                match &value {
                    Some(value) => Ok(value.clone()),
                    None => tokens.next().cloned().ok_or_else(|| {
                        RequirementsError::MissingOptionValue {
                            place: place.to_string(),
                            option: option.to_string(),
                        }
                    }),
                }
            };
            match option {
                "-r" | "--requirement" => {
                    let value = take_value()?;
                    // pip: a `-r` inside a constraints file adds constraints.
                    self.include(place, &value, folder, mode)?;
                }
                "-c" | "--constraint" => {
                    let value = take_value()?;
                    self.include(place, &value, folder, Mode::Constraints)?;
                }
                "-i" | "--index-url" => {
                    let value = take_value()?;
                    self.requirements.index_url = Some(parse_index_url(place, option, &value)?);
                }
                "--extra-index-url" => {
                    let value = take_value()?;
                    let url = parse_index_url(place, option, &value)?;
                    self.requirements.extra_index_urls.push(url);
                }
                "-f" | "--find-links" => {
                    let value = take_value()?;
                    let url = find_links_url(place, option, &value, folder)?;
                    self.requirements.find_links.push(url);
                }
                "--no-index" => self.requirements.no_index = true,
                "-e" | "--editable" => {
                    let value = take_value()?;
                    if mode == Mode::Constraints {
                        return Err(RequirementsError::EditableRequirement {
                            place: place.to_string(),
                            requirement: redact_text(&value),
                        });
                    }
                    let written = redact_text(&value);
                    let (name, marker, pin) = parse_tree(place, &value, &written, folder, true)?
                        .ok_or_else(|| RequirementsError::EditableRequirement {
                            place: place.to_string(),
                            requirement: written.clone(),
                        })?;
                    self.requirements.entries.push(Entry {
                        place: place.to_string(),
                        written,
                        name,
                        marker,
                        pin,
                        hashes: Vec::new(),
                    });
                }
                "--only-binary" | "--no-binary" | "--trusted-host" | "--use-feature" => {
                    let value = take_value()?;
                    tracing::debug!(
                        "`{place}`: ignoring `{option} {}`: envbuild installs pinned wheels only",
                        Untrusted(&redact_text(&value))
                    );
                }
                "--prefer-binary" | "--pre" | "--require-hashes" => {
                    tracing::debug!(
                        "`{place}`: ignoring `{option}`: envbuild installs pinned wheels only, always checking hashes"
                    );
                }
                "--hash" | "--config-settings" | "--global-option" => {
                    return Err(RequirementsError::MisplacedOption {
                        place: place.to_string(),
                        option: option.to_string(),
                        reason: "belongs on the line of a requirement, after it",
                    });
                }
                _ => {
                    return Err(RequirementsError::UnknownOption {
                        place: place.to_string(),
                        option: redact_text(option),
                    });
                }
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        place: &str,
        value: &str,
        folder: &Path,
        mode: Mode,
    ) -> Result<(), RequirementsError> {
        if value.contains("://") {
            return Err(RequirementsError::RemoteInclude {
                place: place.to_string(),
                url: redact_text(value),
            });
        }
        let path = folder.join(value);
        let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let identity = fs_err::canonicalize(&absolute).unwrap_or(absolute);
        if self.stack.contains(&identity) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain([&identity])
                .map(|file| format!("`{}`", file.display()))
                .collect();
            return Err(RequirementsError::IncludeCycle {
                place: place.to_string(),
                path,
                chain: chain.join(" -> "),
            });
        }
        let text = read_include(&path).map_err(|source| RequirementsError::ReadInclude {
            place: place.to_string(),
            path: path.clone(),
            source,
        })?;
        self.read(&path, &text, mode)
    }
}

/// The largest included file read (real requirements files are a few hundred kilobytes).
const INCLUDE_LIMIT: u64 = 64 * 1024 * 1024;

/// The text of an included file: a regular file (not `/dev/zero` or a pipe, which never
/// end) of at most [`INCLUDE_LIMIT`] bytes, in UTF-8.
fn read_include(path: &Path) -> std::io::Result<String> {
    let file = fs_err::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    let mut text = String::new();
    std::io::Read::take(file, INCLUDE_LIMIT + 1).read_to_string(&mut text)?;
    if text.len() as u64 > INCLUDE_LIMIT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {INCLUDE_LIMIT} bytes"),
        ));
    }
    Ok(text)
}

/// pip's logical lines: join lines ending in `\` with the next (a comment line ends a
/// continuation and is never continued itself), then drop comments (`#` at the start
/// or after whitespace) and surrounding whitespace, and skip empty lines. Returns the
/// number of each logical line's first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let is_comment = line.trim_start().starts_with('#');
        if !line.ends_with('\\') || is_comment {
            match pending.take() {
                Some((first, mut joined)) => {
                    // pip prefixes a comment line with a space so that it is stripped.
                    if is_comment {
                        joined.push(' ');
                    }
                    joined.push_str(line);
                    lines.push((first, joined));
                }
                None => lines.push((number, line.to_string())),
            }
        } else {
            let part = line.trim_matches('\\');
            match &mut pending {
                Some((_, joined)) => joined.push_str(part),
                None => pending = Some((number, part.to_string())),
            }
        }
    }
    lines.extend(pending);
    lines
        .into_iter()
        .filter_map(|(number, line)| {
            let kept = strip_comment(&line).trim();
            (!kept.is_empty()).then(|| (number, kept.to_string()))
        })
        .collect()
}

/// Everything before the first `#` that starts the line or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    for (index, character) in line.char_indices() {
        if character == '#' && previous_is_space {
            return &line[..index];
        }
        previous_is_space = character.is_whitespace();
    }
    line
}

/// Replace `${NAME}` (NAME of `A-Z`, `0-9`, `_`) by the variable's value; unset ones
/// stay as written, as in pip.
fn expand_variables(line: &str, environment: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_length = after
            .bytes()
            .take_while(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || *byte == b'_')
            .count();
        let name = &after[..name_length];
        if name_length > 0
            && after[name_length..].starts_with('}')
            && let Some(value) = environment(name)
        {
            out.push_str(&value);
            rest = &after[name_length + 1..];
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// pip's `break_args_options`: words up to the first one starting with `-` are the
/// requirement, the rest are options.
fn split_requirement_and_options(line: &str) -> (&str, &str) {
    let mut offset = 0;
    for word in line.split(' ') {
        if word.starts_with('-') {
            return (line[..offset].trim_end(), &line[offset..]);
        }
        offset += word.len() + 1;
    }
    (line, "")
}

/// Split options into words, as a shell would (quotes group, backslash escapes).
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut characters = options.chars();
    while let Some(character) = characters.next() {
        match (quote, character) {
            (Some(open), _) if character == open => quote = None,
            (Some(_), _) => current.push(character),
            (None, '\'' | '"') => {
                quote = Some(character);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = characters.next() {
                    current.push(next);
                }
                in_word = true;
            }
            (None, _) if character.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, _) => {
                current.push(character);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// `--name=value` → (`--name`, value); `-rfile` → (`-r`, `file`); else (word, None).
fn split_option(word: &str) -> (&str, Option<String>) {
    if word.starts_with("--") {
        match word.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (word, None),
        }
    } else if word.len() > 2 && word.is_char_boundary(2) {
        (&word[..2], Some(word[2..].to_string()))
    } else {
        (word, None)
    }
}

/// The options allowed after a requirement: `--hash`, and build settings that do not
/// matter for wheels.
fn requirement_options(place: &str, tokens: &[String]) -> Result<LineOptions, RequirementsError> {
    let mut options = LineOptions::default();
    let mut tokens = tokens.iter();
    while let Some(token) = tokens.next() {
        let (option, value) = split_option(token);
        let mut take_value =
            || -> Result<String, RequirementsError> {
                match &value {
                    Some(value) => Ok(value.clone()),
                    None => tokens.next().cloned().ok_or_else(|| {
                        RequirementsError::MissingOptionValue {
                            place: place.to_string(),
                            option: option.to_string(),
                        }
                    }),
                }
            };
        match option {
            "--hash" => options.hashes.push(take_value()?),
            "--config-settings" | "--global-option" => {
                let value = take_value()?;
                tracing::debug!(
                    "`{place}`: ignoring `{option} {}`: it only affects builds, and envbuild installs wheels",
                    Excerpt(&value)
                );
            }
            "-r" | "--requirement" | "-c" | "--constraint" | "-i" | "--index-url"
            | "--extra-index-url" | "-f" | "--find-links" | "--no-index" | "-e" | "--editable"
            | "--only-binary" | "--no-binary" | "--prefer-binary" | "--trusted-host" | "--pre"
            | "--require-hashes" | "--use-feature" => {
                return Err(RequirementsError::MisplacedOption {
                    place: place.to_string(),
                    option: option.to_string(),
                    reason: "must be on a line of its own, not after a requirement",
                });
            }
            _ => {
                return Err(RequirementsError::UnknownOption {
                    place: place.to_string(),
                    option: redact_text(option),
                });
            }
        }
    }
    Ok(options)
}

fn parse_index_url(place: &str, option: &str, value: &str) -> Result<url::Url, RequirementsError> {
    url::Url::parse(value).map_err(|error| RequirementsError::InvalidIndexUrl {
        place: place.to_string(),
        option: option.to_string(),
        value: redact_text(value),
        reason: error.to_string(),
    })
}

/// A `--find-links` value: a URL, or a local folder or HTML file relative to `folder`.
fn find_links_url(
    place: &str,
    option: &str,
    value: &str,
    folder: &Path,
) -> Result<url::Url, RequirementsError> {
    if value.contains("://") || value.starts_with("file:") {
        return parse_index_url(place, option, value);
    }
    let path = folder.join(value);
    let path = std::path::absolute(&path).unwrap_or(path);
    let url = if path.is_file() {
        url::Url::from_file_path(&path)
    } else {
        url::Url::from_directory_path(&path)
    };
    url.map_err(|()| RequirementsError::InvalidIndexUrl {
        place: place.to_string(),
        option: option.to_string(),
        value: value.to_string(),
        reason: "not a usable local path".to_string(),
    })
}

/// The sha256 hashes of a requirement's `--hash` values, without repeats. Other
/// algorithms pip accepts are checked for form and dropped.
fn parse_hashes(place: &str, values: &[String]) -> Result<Vec<Sha256Digest>, RequirementsError> {
    let mut hashes = Vec::new();
    for value in values {
        let invalid = || RequirementsError::InvalidHash {
            place: place.to_string(),
            value: value.clone(),
        };
        let (algorithm, hex) = value.split_once(':').ok_or_else(invalid)?;
        match algorithm {
            "sha256" => {
                let digest = Sha256Digest::from_hex(hex)
                    .ok()
                    .filter(|_| !hex.contains(':'))
                    .ok_or_else(invalid)?;
                if !hashes.contains(&digest) {
                    hashes.push(digest);
                }
            }
            "sha384" | "sha512" => {
                let length = if algorithm == "sha384" { 96 } else { 128 };
                if hex.len() != length || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return Err(invalid());
                }
                tracing::debug!(
                    "`{place}`: ignoring `--hash={algorithm}:...`: envbuild checks sha256"
                );
            }
            _ => return Err(invalid()),
        }
    }
    Ok(hashes)
}

/// Whether a requirement is a bare URL or path rather than a PEP 508 requirement
/// (pip: a URL, or text that starts like a path).
fn is_bare_location(requirement: &str) -> bool {
    if requirement.starts_with(['.', '/', '~']) || requirement.starts_with("file:") {
        return true;
    }
    match requirement.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "+.-".contains(character))
        }
        None => false,
    }
}

const ARCHIVE_SUFFIXES: [&str; 7] = [
    ".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz", ".tar",
];

/// A requirement that names a source tree, as `uv export` and `pip freeze` write them:
/// a folder (`.`, `./packages/lib`, `file:///abs/lib`, `name @ file:///abs/lib`) or a VCS
/// checkout (`git+https://host/repo@<commit>#egg=name`, `name @ git+https://...@<commit>`),
/// with an optional `; marker`. `None` when `requirement` is not one of those.
fn parse_tree(
    place: &str,
    requirement: &str,
    written: &str,
    folder: &Path,
    editable: bool,
) -> Result<Option<(PackageName, MarkerTree, Pin)>, RequirementsError> {
    let invalid = |reason: String| RequirementsError::InvalidRequirement {
        place: place.to_string(),
        requirement: written.to_string(),
        reason,
    };
    // `name @ location` or a bare location, then an optional marker.
    let (named, rest) = match requirement.split_once(" @ ").or_else(|| {
        requirement
            .split_once('@')
            .filter(|(name, _)| !is_bare_location(requirement) && !name.contains(['/', ':']))
    }) {
        Some((name, rest)) => (Some(name.trim()), rest.trim()),
        None => (None, requirement.trim()),
    };
    let (location, marker) = match rest.split_once("; ").or_else(|| {
        (!rest.contains("://"))
            .then(|| rest.split_once(';'))
            .flatten()
    }) {
        Some((location, marker)) => (location.trim(), Some(marker.trim())),
        None => (rest, None),
    };
    let is_vcs = location.starts_with("git+");
    // pip reads a bare word as a name: a folder is written as a path (`.`, `./lib`).
    let looks_like_path = location == "."
        || location == ".."
        || location.contains('/')
        || location.starts_with("file:");
    let directory =
        if is_vcs || !looks_like_path || location.contains("://") && !location.starts_with("file:")
        {
            None
        } else {
            let path = match location.strip_prefix("file:") {
                Some(url) => url::Url::parse(&format!("file:{url}"))
                    .ok()
                    .and_then(|url| url.to_file_path().ok()),
                None => Some(folder.join(location.strip_prefix("~/").map_or_else(
                    || PathBuf::from(location),
                    |rest| dirs::home_dir().unwrap_or_default().join(rest),
                ))),
            };
            path.filter(|path| path.is_dir())
        };
    if !is_vcs && directory.is_none() {
        let scheme = location.split_once("://").map_or("", |(scheme, _)| scheme);
        if scheme.contains('+') {
            return Err(RequirementsError::UnsupportedVcs {
                place: place.to_string(),
                requirement: written.to_string(),
            });
        }
        return Ok(None);
    }
    let marker = match marker {
        Some(marker) => {
            fields::parse_marker(marker).map_err(|reason| invalid(reason.to_string()))?
        }
        None => MarkerTree::TRUE,
    };
    let fragment_name = location
        .split_once('#')
        .into_iter()
        .flat_map(|(_, fragment)| fragment.split('&'))
        .find_map(|part| part.strip_prefix("egg="));
    let (source, found_name) = if let Some(directory) = directory {
        let source = DirectorySource::at(&directory.join("requirements"), ".", editable);
        let found = project_name(&source.path);
        (PackageSource::Directory(source), found)
    } else {
        let without_fragment = location.split_once('#').map_or(location, |(url, _)| url);
        let path_start = without_fragment.find("://").map_or(0, |index| index + 3);
        let commit = without_fragment[path_start..]
            .rsplit_once('@')
            .map(|(_, commit)| commit)
            .filter(|commit| !commit.contains('/'));
        let Some(commit) = commit.filter(|commit| is_commit_id(commit)) else {
            return Err(RequirementsError::UnpinnedVcs {
                place: place.to_string(),
                requirement: written.to_string(),
            });
        };
        (
            PackageSource::Vcs(VcsSource::git(location, commit, None)),
            None,
        )
    };
    let name = named
        .or(fragment_name)
        .map(str::to_string)
        .or(found_name)
        .ok_or_else(|| RequirementsError::UnnamedRequirement {
            place: place.to_string(),
            requirement: written.to_string(),
        })?;
    let name = PackageName::from_str(&name).map_err(|error| invalid(error.to_string()))?;
    Ok(Some((name, marker, Pin::Tree(source))))
}

/// The name a project folder declares: `[project] name`, else `[tool.poetry] name`, in
/// its `pyproject.toml`.
fn project_name(folder: &Path) -> Option<String> {
    let text = fs_err::read_to_string(folder.join("pyproject.toml")).ok()?;
    let document: toml::Table = toml::from_str(&text).ok()?;
    let name = document
        .get("project")
        .and_then(|project| project.get("name"))
        .or_else(|| document.get("tool")?.get("poetry")?.get("name"))?;
    name.as_str().map(str::to_string)
}

fn parse_entry(
    place: &str,
    requirement: &str,
    written: String,
    options: LineOptions,
    folder: &Path,
) -> Result<Entry, RequirementsError> {
    if let Some((name, marker, pin)) = parse_tree(place, requirement, &written, folder, false)? {
        return Ok(Entry {
            place: place.to_string(),
            written,
            name,
            marker,
            pin,
            hashes: Vec::new(),
        });
    }
    let (name, marker, pin) = if is_bare_location(requirement) {
        parse_bare_location(place, requirement, &written, folder)?
    } else {
        parse_pep508(place, requirement, &written, folder)?
    };
    if options.hashes.is_empty() {
        return Err(RequirementsError::MissingHash {
            place: place.to_string(),
            requirement: written,
        });
    }
    let hashes = parse_hashes(place, &options.hashes)?;
    if hashes.is_empty() {
        return Err(RequirementsError::NoSha256 {
            place: place.to_string(),
            requirement: written,
        });
    }
    let pin = match pin {
        Pin::Direct {
            mut artifact,
            version,
            is_wheel,
        } => {
            if hashes.len() > 1 {
                return Err(RequirementsError::SeveralHashesForOneFile {
                    place: place.to_string(),
                    requirement: written,
                    count: hashes.len(),
                });
            }
            artifact.sha256 = hashes.first().copied();
            Pin::Direct {
                artifact,
                version,
                is_wheel,
            }
        }
        pin @ (Pin::Version { .. } | Pin::Tree(_)) => pin,
    };
    Ok(Entry {
        place: place.to_string(),
        written,
        name,
        marker,
        pin,
        hashes,
    })
}

fn parse_pep508(
    place: &str,
    requirement: &str,
    written: &str,
    folder: &Path,
) -> Result<(PackageName, MarkerTree, Pin), RequirementsError> {
    let parsed = fields::parse_requirement::<url::Url>(requirement).map_err(|reason| {
        RequirementsError::InvalidRequirement {
            place: place.to_string(),
            requirement: written.to_string(),
            reason: reason.to_string(),
        }
    })?;
    let name = PackageName::from(parsed.name);
    let unpinned = || RequirementsError::Unpinned {
        place: place.to_string(),
        requirement: written.to_string(),
    };
    let pin = match parsed.version_or_url {
        None => return Err(unpinned()),
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => match &specifiers[..] {
            [only] if matches!(only.operator(), Operator::Equal | Operator::ExactEqual) => {
                Pin::Version {
                    written: only.version().to_string(),
                    parsed: only.version().clone(),
                }
            }
            _ => return Err(unpinned()),
        },
        Some(VersionOrUrl::Url(url)) => direct_pin(place, written, &url, folder, Some(&name))?.1,
    };
    Ok((name, parsed.marker, pin))
}

fn parse_bare_location(
    place: &str,
    requirement: &str,
    written: &str,
    folder: &Path,
) -> Result<(PackageName, MarkerTree, Pin), RequirementsError> {
    // pip: after a URL, a marker needs `; ` (a `;` may be part of the URL); after a
    // path, `;` is enough.
    let separator = if requirement.contains("://") {
        "; "
    } else {
        ";"
    };
    let (location, marker) = match requirement.split_once(separator) {
        Some((location, marker)) => (location.trim(), Some(marker.trim())),
        None => (requirement, None),
    };
    let marker = match marker {
        Some(marker) => fields::parse_marker(marker).map_err(|reason| {
            RequirementsError::InvalidRequirement {
                place: place.to_string(),
                requirement: written.to_string(),
                reason: reason.to_string(),
            }
        })?,
        None => MarkerTree::TRUE,
    };
    let url = if location.contains("://") || location.starts_with("file:") {
        url::Url::parse(location).map_err(|error| RequirementsError::InvalidRequirement {
            place: place.to_string(),
            requirement: written.to_string(),
            reason: error.to_string(),
        })?
    } else {
        let path = folder.join(location.strip_prefix("~/").map_or_else(
            || PathBuf::from(location),
            |rest| dirs::home_dir().unwrap_or_default().join(rest),
        ));
        let path = std::path::absolute(&path).unwrap_or(path);
        if path.is_dir()
            || !ARCHIVE_SUFFIXES
                .iter()
                .any(|suffix| location.ends_with(suffix))
        {
            return Err(RequirementsError::DirectoryRequirement {
                place: place.to_string(),
                requirement: written.to_string(),
            });
        }
        url::Url::from_file_path(&path).map_err(|()| RequirementsError::InvalidRequirement {
            place: place.to_string(),
            requirement: written.to_string(),
            reason: "not a usable local path".to_string(),
        })?
    };
    let (name, pin) = direct_pin(place, written, &url, folder, None)?;
    Ok((name, marker, pin))
}

/// A direct reference to one file: a wheel (name and version from its file name) or
/// another archive (which needs a build; named `<name>-<version>.<suffix>`).
fn direct_pin(
    place: &str,
    written: &str,
    url: &url::Url,
    folder: &Path,
    name: Option<&PackageName>,
) -> Result<(PackageName, Pin), RequirementsError> {
    let location = if url.scheme() == "file" {
        match url.to_file_path() {
            Ok(path) => ArtifactLocation::Path(folder.join(path)),
            Err(()) => ArtifactLocation::Url(url.clone()),
        }
    } else {
        ArtifactLocation::Url(url.clone())
    };
    let filename = fields::url_filename(url).unwrap_or_default();
    if filename.is_empty()
        || !ARCHIVE_SUFFIXES
            .iter()
            .any(|suffix| filename.ends_with(suffix))
    {
        return Err(RequirementsError::DirectoryRequirement {
            place: place.to_string(),
            requirement: written.to_string(),
        });
    }
    let artifact = Artifact {
        filename: filename.clone(),
        location,
        size: None,
        sha256: None,
    };
    if filename.ends_with(".whl") {
        let wheel = WheelFilename::from_str(&filename).map_err(|error| {
            RequirementsError::InvalidRequirement {
                place: place.to_string(),
                requirement: written.to_string(),
                reason: error.to_string(),
            }
        })?;
        if let Some(name) = name
            && &wheel.name != name
        {
            return Err(RequirementsError::WheelNameMismatch {
                place: place.to_string(),
                requirement: written.to_string(),
                name: name.to_string(),
                filename,
                wheel_name: wheel.name.to_string(),
            });
        }
        return Ok((
            wheel.name,
            Pin::Direct {
                artifact,
                version: Some(wheel.version),
                is_wheel: true,
            },
        ));
    }
    // An sdist or other archive: installing it needs a build, which wheel selection
    // reports; only its name is needed here.
    let stem = ARCHIVE_SUFFIXES
        .iter()
        .find_map(|suffix| filename.strip_suffix(suffix))
        .unwrap_or(&filename);
    let guessed = stem.rsplit_once('-').and_then(|(name, version)| {
        let name = PackageName::from_str(name).ok()?;
        Some((name, version.to_string()))
    });
    let (name, version) = match (name, guessed) {
        (Some(name), guessed) => (
            name.clone(),
            guessed.and_then(|(guessed_name, version)| (&guessed_name == name).then_some(version)),
        ),
        (None, Some((name, version))) => (name, Some(version)),
        (None, None) => {
            return Err(RequirementsError::UnnamedRequirement {
                place: place.to_string(),
                requirement: written.to_string(),
            });
        }
    };
    Ok((
        name,
        Pin::Direct {
            artifact,
            version,
            is_wheel: false,
        },
    ))
}

/// A constraints line: a name with specifiers (any), and a marker. URL constraints
/// and bare locations are skipped.
fn parse_constraint(
    place: &str,
    requirement: &str,
    written: String,
) -> Result<Option<Constraint>, RequirementsError> {
    if is_bare_location(requirement) {
        tracing::debug!(
            "`{place}`: ignoring the URL constraint `{}`",
            Excerpt(&written)
        );
        return Ok(None);
    }
    let parsed = fields::parse_requirement::<url::Url>(requirement).map_err(|reason| {
        RequirementsError::InvalidRequirement {
            place: place.to_string(),
            requirement: written.clone(),
            reason: reason.to_string(),
        }
    })?;
    let specifiers = match parsed.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers,
        None => VersionSpecifiers::empty(),
        Some(VersionOrUrl::Url(_)) => {
            tracing::debug!(
                "`{place}`: ignoring the URL constraint `{}`",
                Excerpt(&written)
            );
            return Ok(None);
        }
    };
    Ok(Some(Constraint {
        place: place.to_string(),
        written,
        name: PackageName::from(parsed.name),
        marker: parsed.marker,
        specifiers,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::lock::testing::{environment, linux_311};

    const FILE: &str = "/work/project/requirements.txt";
    const HASH_A: &str = "3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe";
    const HASH_B: &str = "c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a";
    const HASH_C: &str = "47d4133101384f348c824c7d8f3b82270dc42f54e9e28fa76b89d1b600937b7b";

    fn with_hashes(text: &str) -> String {
        text.replace("HASH_A", HASH_A)
            .replace("HASH_B", HASH_B)
            .replace("HASH_C", HASH_C)
    }

    fn no_variables(_: &str) -> Option<String> {
        None
    }

    fn parse_at(path: &Path, text: &str) -> Result<Requirements, RequirementsError> {
        Requirements::parse_with_env(path, &with_hashes(text), &no_variables)
    }

    fn parse(text: &str) -> Result<Requirements, RequirementsError> {
        parse_at(Path::new(FILE), text)
    }

    fn parse_error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn select_on(text: &str, environment: &MarkerEnvironment) -> Vec<LockedPackage> {
        parse(text)
            .unwrap()
            .select(environment, &GroupSelection::default())
            .unwrap()
    }

    fn select_error(text: &str) -> String {
        parse(text)
            .unwrap()
            .select(&linux_311(), &GroupSelection::default())
            .unwrap_err()
            .to_string()
    }

    fn pins(packages: &[LockedPackage]) -> Vec<String> {
        packages
            .iter()
            .map(|package| {
                format!(
                    "{}=={}",
                    package.name,
                    package.version.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    fn lookup_hashes(package: &LockedPackage) -> Vec<String> {
        match &package.source {
            PackageSource::IndexLookup { files } => files
                .iter()
                .map(|file| {
                    assert_eq!(file.filename, None);
                    file.sha256.hex()
                })
                .collect(),
            other => panic!("expected an index lookup, got {other:?}"),
        }
    }

    /// The shape `uv export --format requirements.txt` writes.
    const UV_EXPORT: &str = r#"# This file was autogenerated by uv via the following command:
#    uv export --frozen --format requirements.txt --no-emit-project
alpha==1.0 ; python_full_version < '3.12' \
    --hash=sha256:HASH_A
    # via
    #   beta
    #   toy-a
alpha==2.0 ; python_full_version >= '3.12' \
    --hash=sha256:HASH_B
    # via
    #   beta
    #   toy-a
Beta_Pkg==1.0 \
    --hash=sha256:HASH_A \
    --hash=sha256:HASH_B
    # via toy-a
epsilon==1.0 ; sys_platform == 'win32' \
    --hash=sha256:HASH_C
    # via plat
"#;

    #[test]
    fn ok_uv_export_on_linux() {
        let packages = select_on(UV_EXPORT, &linux_311());
        assert_eq!(pins(&packages), ["alpha==1.0", "beta-pkg==1.0"]);
        assert_eq!(lookup_hashes(&packages[0]), [HASH_A]);
        assert_eq!(lookup_hashes(&packages[1]), [HASH_A, HASH_B]);
        assert!(packages.iter().all(|package| package.index.is_none()));
    }

    #[test]
    fn ok_markers_pick_per_target() {
        let packages = select_on(UV_EXPORT, &environment("win32", "3.12.1"));
        assert_eq!(
            pins(&packages),
            ["alpha==2.0", "beta-pkg==1.0", "epsilon==1.0"]
        );
    }

    /// The shape `pip-compile --generate-hashes` writes, with index options.
    const PIP_COMPILE: &str = r#"#
# This file is autogenerated by pip-compile with Python 3.11
# by the following command:
#
#    pip-compile --generate-hashes requirements.in
#
--index-url http://127.0.0.1:8000/simple/
--extra-index-url=http://127.0.0.1:8001/simple/
--trusted-host 127.0.0.1
--find-links ./wheels
-f http://127.0.0.1:8002/links/
--only-binary :all:
--prefer-binary

requests[socks]==2.32.3 \
    --hash=sha256:HASH_A
    # via -r requirements.in
pysocks==1.7.1 \
    --hash=sha256:HASH_B \
    --hash=sha512:abababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababababab
    # via requests

# The following packages are considered to be unsafe in a requirements file:
# pip==25.0 --hash=sha256:nothing
"#;

    #[test]
    fn ok_pip_compile_with_index_options() {
        let requirements = parse(PIP_COMPILE).unwrap();
        let packages = requirements
            .select(&linux_311(), &GroupSelection::default())
            .unwrap();
        assert_eq!(pins(&packages), ["pysocks==1.7.1", "requests==2.32.3"]);
        // The sha512 hash is checked for form and left out.
        assert_eq!(lookup_hashes(&packages[0]), [HASH_B]);
        let indexes: Vec<String> = requirements
            .indexes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            indexes,
            [
                "http://127.0.0.1:8000/simple/",
                "http://127.0.0.1:8001/simple/"
            ]
        );
        let links: Vec<String> = requirements
            .find_links()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            links,
            [
                "file:///work/project/wheels/",
                "http://127.0.0.1:8002/links/"
            ]
        );
    }

    #[test]
    fn ok_no_index_drops_the_indexes() {
        let requirements = parse(
            "-i http://127.0.0.1:8000/simple/\n--no-index\nattrs==25.1.0 --hash=sha256:HASH_A\n",
        )
        .unwrap();
        assert!(requirements.indexes().is_empty());
    }

    #[test]
    fn ok_last_index_url_wins_and_repeats_drop() {
        let requirements = parse(
            "-i http://127.0.0.1:8000/simple/\n--index-url http://127.0.0.1:8003/simple/\n--extra-index-url http://127.0.0.1:8003/simple/\n",
        )
        .unwrap();
        let indexes: Vec<String> = requirements
            .indexes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(indexes, ["http://127.0.0.1:8003/simple/"]);
    }

    #[test]
    fn ok_logical_lines_follow_pip() {
        let text = "a==1 \\\n  --hash=sha256:x \\\n  # a comment ends the continuation \\\nb==2\n#c==3 \\\nd==4 # trailing comment\ne @ https://h/e-1-py3-none-any.whl#sha256=abc\n\n   \n";
        let lines = logical_lines(text);
        assert_eq!(
            lines,
            [
                (1, "a==1   --hash=sha256:x".to_string()),
                (4, "b==2".to_string()),
                (6, "d==4".to_string()),
                (
                    7,
                    "e @ https://h/e-1-py3-none-any.whl#sha256=abc".to_string()
                ),
            ]
        );
    }

    #[test]
    fn ok_hash_sign_without_whitespace_is_not_a_comment() {
        let packages = select_on(
            "tool @ http://127.0.0.1:8000/files/tool-1.0-py3-none-any.whl#egg=tool --hash=sha256:HASH_A\n",
            &linux_311(),
        );
        let PackageSource::Distributions { wheels, sdist } = &packages[0].source else {
            panic!("expected a wheel");
        };
        assert!(sdist.is_none());
        assert_eq!(wheels[0].filename, "tool-1.0-py3-none-any.whl");
        assert_eq!(
            wheels[0].location,
            ArtifactLocation::Url(
                url::Url::parse("http://127.0.0.1:8000/files/tool-1.0-py3-none-any.whl#egg=tool")
                    .unwrap()
            )
        );
        assert_eq!(
            wheels[0].sha256.map(|hash| hash.hex()).as_deref(),
            Some(HASH_A)
        );
        assert_eq!(packages[0].version.as_deref(), Some("1.0"));
    }

    #[test]
    fn ok_variables_expand_once_from_the_given_environment() {
        let environment = |name: &str| match name {
            "INDEX_HOST" => Some("127.0.0.1:8000".to_string()),
            "VERSION" => Some("25.1.0".to_string()),
            _ => None,
        };
        let requirements = Requirements::parse_with_env(
            Path::new(FILE),
            &with_hashes(
                "--index-url http://${INDEX_HOST}/simple/\nattrs==${VERSION} --hash=sha256:HASH_A\n",
            ),
            &environment,
        )
        .unwrap();
        assert_eq!(
            requirements.indexes()[0].as_str(),
            "http://127.0.0.1:8000/simple/"
        );
        let packages = requirements
            .select(&linux_311(), &GroupSelection::default())
            .unwrap();
        assert_eq!(pins(&packages), ["attrs==25.1.0"]);
        // Unset, lower-case or unclosed names stay as written.
        assert_eq!(
            expand_variables("${UNSET} ${lower} ${OPEN", &environment),
            "${UNSET} ${lower} ${OPEN"
        );
    }

    #[test]
    fn err_missing_hash_names_line_and_requirement() {
        assert_eq!(
            parse_error(
                "attrs==25.1.0 \\\n    --hash=sha256:HASH_A\n\n# comment\nidna==3.10 ; python_version >= '3.9'\n    # via requests\n"
            ),
            "requirement `idna==3.10 ; python_version >= '3.9'` at `/work/project/requirements.txt:5` has no `--hash`: envbuild reads requirements files in hash-checking mode, as pip's `--require-hashes`, so every requirement needs at least one; generate the file with `pip-compile --generate-hashes`, `uv pip compile --generate-hashes` or `uv export --format requirements.txt`"
        );
    }

    #[test]
    fn err_unpinned_requirements() {
        for requirement in ["attrs>=25", "attrs", "attrs==25.*", "attrs==25.1,<26"] {
            let error = parse_error(&format!("{requirement} --hash=sha256:HASH_A\n"));
            assert_eq!(
                error,
                format!(
                    "requirement `{requirement}` at `/work/project/requirements.txt:1` is not pinned: hash-checking mode (pip's `--require-hashes`) needs every requirement pinned with `==` or `===`, or given by URL; generate the file with `pip-compile --generate-hashes`, `uv pip compile --generate-hashes` or `uv export --format requirements.txt`"
                )
            );
        }
        let packages = select_on("attrs===25.1.0 --hash=sha256:HASH_A\n", &linux_311());
        assert_eq!(pins(&packages), ["attrs==25.1.0"]);
    }

    #[test]
    fn err_unknown_option() {
        assert_eq!(
            parse_error("attrs==25.1.0 --hash=sha256:HASH_A\n\n--frobnicate yes\n"),
            "unknown option `--frobnicate` at `/work/project/requirements.txt:3`; envbuild reads `-r`, `-c`, `-i`/`--index-url`, `--extra-index-url`, `-f`/`--find-links`, `--no-index` and `--hash`, and ignores `--only-binary`, `--no-binary`, `--prefer-binary`, `--trusted-host`, `--pre` and `--require-hashes`"
        );
        assert_eq!(
            parse_error("attrs==25.1.0 --hash=sha256:HASH_A --frobnicate\n"),
            "unknown option `--frobnicate` at `/work/project/requirements.txt:1`; envbuild reads `-r`, `-c`, `-i`/`--index-url`, `--extra-index-url`, `-f`/`--find-links`, `--no-index` and `--hash`, and ignores `--only-binary`, `--no-binary`, `--prefer-binary`, `--trusted-host`, `--pre` and `--require-hashes`"
        );
    }

    #[test]
    fn err_misplaced_and_incomplete_options() {
        assert_eq!(
            parse_error("--hash=sha256:HASH_A\n"),
            "option `--hash` at `/work/project/requirements.txt:1` belongs on the line of a requirement, after it"
        );
        assert_eq!(
            parse_error("attrs==25.1.0 --hash=sha256:HASH_A -i http://127.0.0.1:8000/simple/\n"),
            "option `-i` at `/work/project/requirements.txt:1` must be on a line of its own, not after a requirement"
        );
        assert_eq!(
            parse_error("attrs==25.1.0 --hash\n"),
            "option `--hash` at `/work/project/requirements.txt:1` needs a value"
        );
        assert_eq!(
            parse_error("attrs==25.1.0 --hash=md5:abc\n"),
            "`--hash=md5:abc` at `/work/project/requirements.txt:1` is not a valid hash: pip writes `--hash=sha256:<64 hexadecimal characters>` (or `sha384:`/`sha512:`)"
        );
    }

    #[test]
    fn err_only_non_sha256_hashes() {
        let sha384 = "a".repeat(96);
        assert_eq!(
            parse_error(&format!("attrs==25.1.0 --hash=sha384:{sha384}\n")),
            "requirement `attrs==25.1.0` at `/work/project/requirements.txt:1` has no `--hash=sha256:...`: envbuild verifies files by SHA-256 only; generate the file with `pip-compile --generate-hashes`, `uv pip compile --generate-hashes` or `uv export --format requirements.txt`"
        );
    }

    #[test]
    fn ok_identical_duplicates_and_common_hashes() {
        let packages = select_on(
            "attrs==25.1.0 --hash=sha256:HASH_A --hash=sha256:HASH_B\nATTRS==25.1 --hash=sha256:HASH_B --hash=sha256:HASH_C\n",
            &linux_311(),
        );
        assert_eq!(pins(&packages), ["attrs==25.1.0"]);
        assert_eq!(lookup_hashes(&packages[0]), [HASH_B]);
    }

    #[test]
    fn err_conflicting_duplicate_pins() {
        assert_eq!(
            select_error(
                "attrs==25.1.0 --hash=sha256:HASH_A\nattrs==24.0 ; sys_platform == 'linux' --hash=sha256:HASH_B\n"
            ),
            "cannot install requirements file `/work/project/requirements.txt` on the target: `attrs` is required as `attrs==25.1.0` at `/work/project/requirements.txt:1` and as `attrs==24.0 ; sys_platform == 'linux'` at `/work/project/requirements.txt:2`; keep one of them, or add markers so only one applies"
        );
        assert_eq!(
            select_error(
                "attrs==25.1.0 --hash=sha256:HASH_A\nattrs==25.1.0 --hash=sha256:HASH_B\n"
            ),
            "cannot install requirements file `/work/project/requirements.txt`: `attrs` is required at `/work/project/requirements.txt:1` and at `/work/project/requirements.txt:2` with no `--hash` in common, so no file satisfies both; keep one of the lines"
        );
    }

    #[test]
    fn ok_direct_references() {
        let packages = select_on(
            "./vendor/gamma-1.0-py3-none-any.whl \\\n    --hash=sha256:HASH_A\nepsilon @ http://127.0.0.1:8000/files/epsilon-1.0-py3-none-any.whl \\\n    --hash=sha256:HASH_B\nsrc @ http://127.0.0.1:8000/files/src-2.0.tar.gz --hash=sha256:HASH_C\n",
            &linux_311(),
        );
        assert_eq!(pins(&packages), ["epsilon==1.0", "gamma==1.0", "src==2.0"]);
        let PackageSource::Distributions { wheels, .. } = &packages[1].source else {
            panic!("expected a wheel");
        };
        assert_eq!(
            wheels[0].location,
            ArtifactLocation::Path(PathBuf::from(
                "/work/project/vendor/gamma-1.0-py3-none-any.whl"
            ))
        );
        let PackageSource::Archive(archive) = &packages[2].source else {
            panic!("expected an archive, got {:?}", packages[2].source);
        };
        assert_eq!(archive.filename, "src-2.0.tar.gz");
        assert_eq!(
            archive.sha256.map(|hash| hash.hex()).as_deref(),
            Some(HASH_C)
        );
    }

    #[test]
    fn err_direct_reference_problems() {
        assert_eq!(
            parse_error(
                "other @ http://127.0.0.1:8000/files/epsilon-1.0-py3-none-any.whl --hash=sha256:HASH_A\n"
            ),
            "requirement `other @ http://127.0.0.1:8000/files/epsilon-1.0-py3-none-any.whl` at `/work/project/requirements.txt:1` is for `other`, but its wheel `epsilon-1.0-py3-none-any.whl` is for `epsilon`; fix the name or the URL"
        );
        assert_eq!(
            parse_error("./lib\n    # via toy-e\n"),
            "requirement `./lib` at `/work/project/requirements.txt:1` points to a folder, which needs a build, and envbuild installs wheels only; build a wheel from it and require that (with its `--hash`), or leave the project out (`uv export --no-emit-project`)"
        );
        assert_eq!(
            parse_error("-e ./lib\n"),
            "editable requirement `./lib` at `/work/project/requirements.txt:1` needs a build, and envbuild installs wheels only; build a wheel and require it by version or path"
        );
        assert_eq!(
            parse_error(
                "e @ http://h/e-1.0-py3-none-any.whl --hash=sha256:HASH_A --hash=sha256:HASH_B\n"
            ),
            "requirement `e @ http://h/e-1.0-py3-none-any.whl` at `/work/project/requirements.txt:1` names one file but lists 2 different sha256 hashes; keep the one of that file"
        );
    }

    #[test]
    fn err_invalid_requirement() {
        let error = parse_error("attrs=25.1.0 --hash=sha256:HASH_A\n");
        assert!(
            error.starts_with(
                "invalid requirement `attrs=25.1.0` at `/work/project/requirements.txt:1`: "
            ),
            "{error}"
        );
    }

    #[test]
    fn err_extras_or_groups_requested() {
        let requirements = parse("attrs==25.1.0 --hash=sha256:HASH_A\n").unwrap();
        let selection = GroupSelection {
            extras: BTreeSet::from(["socks".to_string()]),
            ..GroupSelection::default()
        };
        assert_eq!(
            requirements
                .select(&linux_311(), &selection)
                .unwrap_err()
                .to_string(),
            "cannot select extra `socks` from requirements file `/work/project/requirements.txt`: requirements files have no extras or groups; choose them when generating the file (e.g. `uv export --extra ... --group ...`)"
        );
        let selection = GroupSelection {
            no_default_groups: true,
            ..GroupSelection::default()
        };
        assert!(requirements.select(&linux_311(), &selection).is_ok());
    }

    #[test]
    fn ok_credentials_never_shown() {
        let error = parse_error("--index-url https://user:secret@127.0.0.1:8000/simple/ --bogus\n");
        assert!(!error.contains("secret"), "{error}");
        let error =
            parse_error("private @ https://token:secret@127.0.0.1/private-1.0-py3-none-any.whl\n");
        assert!(!error.contains("secret"), "{error}");
        assert!(error.contains("https://***@127.0.0.1/private"), "{error}");
    }

    #[test]
    fn ok_includes_and_constraints_relative_to_the_including_file() {
        let folder = tempfile::tempdir().unwrap();
        let root = folder.path();
        fs_err::create_dir_all(root.join("sub")).unwrap();
        fs_err::write(
            root.join("sub/base.txt"),
            with_hashes("idna==3.10 --hash=sha256:HASH_B\n-c ../constraints.txt\n"),
        )
        .unwrap();
        fs_err::write(
            root.join("constraints.txt"),
            "idna>=3 ; python_version >= '3.8'\nattrs<30\n# only checked\nurllib3 @ https://127.0.0.1/urllib3-2.0-py3-none-any.whl\n",
        )
        .unwrap();
        let top = root.join("requirements.txt");
        let requirements = parse_at(
            &top,
            "-r sub/base.txt\nattrs==25.1.0 --hash=sha256:HASH_A\n",
        )
        .unwrap();
        let packages = requirements
            .select(&linux_311(), &GroupSelection::default())
            .unwrap();
        assert_eq!(pins(&packages), ["attrs==25.1.0", "idna==3.10"]);
    }

    #[test]
    fn err_constraint_conflict() {
        let folder = tempfile::tempdir().unwrap();
        let root = folder.path();
        fs_err::write(
            root.join("constraints.txt"),
            "attrs<25 ; sys_platform == 'linux'\n",
        )
        .unwrap();
        let top = root.join("requirements.txt");
        let requirements = parse_at(
            &top,
            "--constraint=constraints.txt\nattrs==25.1.0 --hash=sha256:HASH_A\n",
        )
        .unwrap();
        let error = requirements
            .select(&linux_311(), &GroupSelection::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "cannot install requirements file `{top}`: `attrs==25.1.0` at `{top}:2` is outside the constraint `attrs<25 ; sys_platform == 'linux'` at `{constraints}:1`; fix the pin or the constraint",
                top = top.display(),
                constraints = root.join("constraints.txt").display()
            )
        );
        // The constraint's marker is false on Windows: no conflict there.
        assert!(
            requirements
                .select(&environment("win32", "3.11.7"), &GroupSelection::default())
                .is_ok()
        );
    }

    #[test]
    fn err_include_cycle_and_missing_include() {
        let folder = tempfile::tempdir().unwrap();
        let root = folder.path();
        fs_err::write(root.join("a.txt"), "-r b.txt\n").unwrap();
        fs_err::write(root.join("b.txt"), "\n-r a.txt\n").unwrap();
        let error = parse_at(&root.join("a.txt"), "-r b.txt\n")
            .unwrap_err()
            .to_string();
        let canonical = fs_err::canonicalize(root).unwrap();
        assert_eq!(
            error,
            format!(
                "`{b}:2` includes `{a}`, which is already being read (`{ca}` -> `{cb}` -> `{ca}`); remove one of the `-r`/`-c` lines",
                a = root.join("a.txt").display(),
                b = root.join("b.txt").display(),
                ca = canonical.join("a.txt").display(),
                cb = canonical.join("b.txt").display(),
            )
        );
        let error = parse_at(&root.join("a.txt"), "# x\n-r missing.txt\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read `{}`, named at `{}:2`",
                root.join("missing.txt").display(),
                root.join("a.txt").display()
            )
        );
        assert_eq!(
            parse_error("-r https://127.0.0.1/requirements.txt\n"),
            "`/work/project/requirements.txt:1` includes `https://127.0.0.1/requirements.txt`, but envbuild reads only local requirements files; download it next to this file and include it by path"
        );
    }

    #[test]
    fn ok_option_spellings() {
        assert_eq!(
            split_option("-rfile.txt"),
            ("-r", Some("file.txt".to_string()))
        );
        assert_eq!(
            split_option("--hash=sha256:x"),
            ("--hash", Some("sha256:x".to_string()))
        );
        assert_eq!(split_option("-r"), ("-r", None));
        assert_eq!(
            split_options("--hash 'sha256:a b' \"c\"  d\\ e"),
            ["--hash", "sha256:a b", "c", "d e"]
        );
        assert_eq!(
            split_requirement_and_options("a==1 ; python_version < '3.12' --hash=x -r y"),
            ("a==1 ; python_version < '3.12'", "--hash=x -r y")
        );
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        // Includes (`-r`, `-c`) are read from an empty folder: only absolute paths reach
        // real files, and an include that is not a regular file is refused.
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("requirements.txt");
        let seeds = [
            with_hashes(UV_EXPORT),
            with_hashes(PIP_COMPILE),
            include_str!("../../tests/data/robust/requirements.forks.txt").to_string(),
            include_str!("../../tests/data/robust/requirements.conflicts.txt").to_string(),
        ];
        let selections = crate::lock::testing::hostile_selections();
        crate::lock::testing::assert_no_panic("requirements.txt", seeds, 2000, |text| {
            if let Ok(lock) = Requirements::parse_with_env(&file, text, &no_variables) {
                let _ = (lock.indexes(), lock.find_links());
                for (environment, selection) in &selections {
                    let _ = lock.select(environment, selection);
                }
            }
        });
    }

    #[test]
    fn err_include_that_never_ends() {
        let error = parse("-r /dev/zero\n").unwrap_err().to_string();
        assert!(
            error.starts_with(
                "cannot read `/dev/zero`, named at `/work/project/requirements.txt:1`"
            ),
            "{error}"
        );
        let source = std::error::Error::source(&parse("-r /dev/zero\n").unwrap_err())
            .unwrap()
            .to_string();
        assert_eq!(source, "it is not a regular file");
    }
}
