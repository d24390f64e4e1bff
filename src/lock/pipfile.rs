//! Pipenv's `Pipfile.lock` (JSON, pipfile-spec 6): parsing, validation and selection of
//! the packages to install for one target environment and one choice of groups.
//!
//! Each category of the lock is a group: `default` (the `[packages]` of the Pipfile) is
//! the default group, `develop` (`[dev-packages]`) is selected by `--group dev` or
//! `--group develop`, and custom categories by their own names. An entry pins a version
//! (`"==x"`) and lists the sha256 of every file of that version, without file names, so
//! index entries become [`PackageSource::IndexLookup`] for the `index` module; `index`
//! names one of `_meta.sources`, whose URL becomes the package's index. `git`, `path` and
//! `file` entries become the matching non-index sources (which later stages refuse when
//! they need a build).
//!
//! Limits: `_meta.hash` is not checked against a Pipfile (envbuild reads only the lock).
//! Pipenv resolves for one Python, the one `_meta.requires` names; a target with another
//! Python gets a warning, as `pipenv install` gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use uv_pep440::Version;
use uv_pep508::{MarkerEnvironment, MarkerTree};

use super::fields::{self, Excerpt, FieldError, Hash};
use super::source::Source;
use super::{
    Artifact, ArtifactLocation, DirectorySource, GroupSelection, IndexFile, LockFormat,
    LockedPackage, PackageName, PackageSource, VcsSource, is_commit_id,
};
use crate::http::redact_text;
use crate::untrusted::Untrusted;

/// The newest `pipfile-spec` envbuild reads.
const PIPFILE_SPEC: u64 = 6;

/// Errors from a `Pipfile.lock`: the file is malformed, or it cannot be installed on the
/// chosen target.
///
/// Positions read `<lockfile>:<line>:<column>` for JSON errors; other problems name the
/// lockfile and the JSON key (`default.flask.version`).
#[derive(Debug, thiserror::Error)]
pub enum PipfileError {
    /// A field every format shares is missing or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// `_meta.pipfile-spec` is newer than envbuild knows.
    #[error(
        "unsupported lockfile `{path}`: `_meta.pipfile-spec` is {spec}, but envbuild reads pipfile-spec up to 6; run `pipenv lock` with a Pipenv that writes version 6, or use an envbuild that supports this version"
    )]
    UnsupportedSpec {
        /// The lockfile.
        path: String,
        /// The version found.
        spec: u64,
    },
    /// An entry names an `index` that `_meta.sources` does not define.
    #[error(
        "invalid lockfile `{path}`: `{key}` is `{index}`, but `_meta.sources` defines {offered}; add the source to the Pipfile and run `pipenv lock` again",
        index = Untrusted(index),
        key = Untrusted(key),
        offered = Untrusted(offered)
    )]
    UnknownIndex {
        /// The lockfile.
        path: String,
        /// The key, e.g. `default.flask.index`.
        key: String,
        /// The index name.
        index: String,
        /// The source names defined.
        offered: String,
    },
    /// An index entry has no `version`.
    #[error(
        "invalid lockfile `{path}`: `{key}` has no `version`, nor `git`, `path` or `file`, so nothing says what to install; run `pipenv lock` again",
        key = Untrusted(key)
    )]
    MissingVersion {
        /// The lockfile.
        path: String,
        /// The entry's key, e.g. `default.flask`.
        key: String,
    },
    /// A `git` entry without a `ref` that is a commit.
    #[error(
        "invalid lockfile `{path}`: `{key}` is a `git` entry whose `ref` is not a commit id, so the lock does not say which code to build; run `pipenv lock` again (it records the commit it resolved)",
        key = Untrusted(key)
    )]
    UnpinnedGit {
        /// The lockfile.
        path: String,
        /// The entry's key, e.g. `default.tool`.
        key: String,
    },
    /// A `version` is not `==<PEP 440 version>`.
    #[error(
        "invalid lockfile `{path}`: `{key}` is `{version}`, but a lock pins `==<version>` with a PEP 440 version; run `pipenv lock` again",
        key = Untrusted(key),
        version = Excerpt(version)
    )]
    InvalidVersion {
        /// The lockfile.
        path: String,
        /// The key, e.g. `default.flask.version`.
        key: String,
        /// The value, as written.
        version: String,
    },
    /// The user asked for extras, which a `Pipfile.lock` does not record.
    #[error(
        "cannot select extra `{extra}` from lockfile `{path}`: a Pipfile.lock records no project extras; list the packages in a category of the Pipfile and select it with `--group`",
        extra = Untrusted(extra)
    )]
    ExtrasUnsupported {
        /// The lockfile.
        path: String,
        /// The requested extra.
        extra: String,
    },
    /// The user asked for a category the lock does not have.
    #[error(
        "cannot select group `{group}` from lockfile `{path}`: the lock has the categories {offered} (`dev` selects `develop`); choose one of those",
        group = Untrusted(group),
        offered = Untrusted(offered)
    )]
    UnknownGroup {
        /// The lockfile.
        path: String,
        /// The requested group.
        group: String,
        /// The categories the lock has.
        offered: String,
    },
    /// One package is selected from two categories at different versions.
    #[error(
        "cannot install lockfile `{path}` on the target: package `{package}` is locked as `{first}` and as `{second}` in the selected categories; lock them together with `pipenv lock` so they agree",
        first = Excerpt(first),
        package = Untrusted(package),
        second = Excerpt(second)
    )]
    AmbiguousPackage {
        /// The lockfile.
        path: String,
        /// The package.
        package: String,
        /// The first entry's key and version.
        first: String,
        /// The second entry's key and version.
        second: String,
    },
    /// A selected index entry has no sha256 hash.
    #[error(
        "cannot install `{key}` from lockfile `{path}`: it lists no sha256 hash, and envbuild verifies every file it installs; run `pipenv lock` again against an index that publishes hashes",
        key = Untrusted(key)
    )]
    NoHashes {
        /// The lockfile.
        path: String,
        /// The entry's key.
        key: String,
    },
}

/// A parsed `Pipfile.lock`.
#[derive(Debug, Clone)]
pub(crate) struct PipfileLock {
    /// The lockfile, as given.
    path: PathBuf,
    /// `_meta.sources`, name → URL, in file order.
    sources: Vec<(String, url::Url)>,
    /// `_meta.requires.python_version` / `python_full_version`, when set.
    requires_python: Option<String>,
    /// Categories (`default`, `develop`, custom ones), each with its entries by name.
    categories: BTreeMap<String, Vec<Entry>>,
}

/// One entry of a category, validated.
#[derive(Debug, Clone)]
struct Entry {
    locked: LockedPackage,
    /// `default.flask`.
    key: String,
    marker: Option<MarkerTree>,
    has_hashes: bool,
}

// Wire types: the JSON as written. Unknown keys are ignored.

/// The top-level object: `_meta` and the categories. Read by hand rather than with
/// `#[serde(flatten)]`, which buffers the categories and so loses the line and column of
/// errors inside them.
struct LockWire {
    meta: MetaWire,
    categories: BTreeMap<String, BTreeMap<String, EntryWire>>,
}

impl<'de> Deserialize<'de> for LockWire {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LockWire;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a Pipfile.lock object with `_meta` and categories")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LockWire, A::Error> {
                let mut meta = None;
                let mut categories = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "_meta" {
                        meta = Some(map.next_value::<MetaWire>()?);
                    } else {
                        categories.insert(key, map.next_value()?);
                    }
                }
                let meta = meta.ok_or_else(|| serde::de::Error::missing_field("_meta"))?;
                Ok(LockWire { meta, categories })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MetaWire {
    pipfile_spec: Option<u64>,
    #[serde(default)]
    requires: RequiresWire,
    #[serde(default)]
    sources: Vec<SourceWire>,
}

#[derive(Deserialize, Default)]
struct RequiresWire {
    python_version: Option<String>,
    python_full_version: Option<String>,
}

#[derive(Deserialize)]
struct SourceWire {
    name: String,
    url: String,
}

#[derive(Deserialize)]
struct EntryWire {
    version: Option<String>,
    #[serde(default)]
    hashes: Vec<String>,
    markers: Option<String>,
    index: Option<String>,
    git: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    path: Option<String>,
    file: Option<String>,
    #[serde(default)]
    editable: bool,
    subdirectory: Option<String>,
}

impl PipfileLock {
    /// Parse and validate `text`, the contents of the lockfile at `path`. Relative `path`
    /// entries are resolved against `path`'s folder.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, PipfileError> {
        let source = Source {
            path,
            text,
            format: LockFormat::PipfileLock,
        };
        let label = source.whole_file();
        let wire: LockWire = serde_json::from_str(text).map_err(|error| {
            let message = error.to_string();
            // serde_json appends " at line L column C"; the place says it already.
            let message = match message.rfind(" at line ") {
                Some(index) => message[..index].to_string(),
                None => message,
            };
            FieldError::InvalidSyntax {
                place: format!("{label}:{}:{}", error.line(), error.column()),
                message,
                format: LockFormat::PipfileLock,
            }
        })?;

        if let Some(spec) = wire.meta.pipfile_spec
            && spec > PIPFILE_SPEC
        {
            return Err(PipfileError::UnsupportedSpec { path: label, spec });
        }

        let mut sources = Vec::with_capacity(wire.meta.sources.len());
        for source in wire.meta.sources {
            let url = url::Url::parse(&source.url).map_err(|reason| FieldError::InvalidUrl {
                place: label.clone(),
                key: format!(
                    "the `url` of `_meta.sources` entry `{}`",
                    fields::Excerpt(&source.name)
                ),
                value: redact_text(&source.url),
                reason,
            })?;
            sources.push((source.name, url));
        }

        let mut categories = BTreeMap::new();
        for (category, entries) in wire.categories {
            let mut parsed = Vec::with_capacity(entries.len());
            for (name, entry) in entries {
                parsed.push(parse_entry(&source, &sources, &category, &name, entry)?);
            }
            categories.insert(category, parsed);
        }

        Ok(Self {
            path: path.to_path_buf(),
            sources,
            requires_python: wire
                .meta
                .requires
                .python_full_version
                .or(wire.meta.requires.python_version),
            categories,
        })
    }

    /// The packages to install on `environment` with `selection`, sorted by name:
    /// `default` (unless `--no-default-groups`) and the selected categories, each entry
    /// kept when its `markers` hold for the target.
    pub(crate) fn select(
        &self,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PipfileError> {
        let path = self.path.display().to_string();
        if let Some(extra) = selection.extras.iter().next() {
            return Err(PipfileError::ExtrasUnsupported {
                path,
                extra: extra.clone(),
            });
        }
        let mut chosen: Vec<&str> = Vec::new();
        if !selection.no_default_groups {
            chosen.push("default");
        }
        for requested in &selection.groups {
            let category = match requested.as_str() {
                "dev" | "develop" | "dev-packages" => "develop",
                "packages" => "default",
                other => other,
            };
            let Some((name, _)) = self.categories.get_key_value(category) else {
                let offered: Vec<String> = self
                    .categories
                    .keys()
                    .map(|name| format!("`{name}`"))
                    .collect();
                return Err(PipfileError::UnknownGroup {
                    path,
                    group: requested.clone(),
                    offered: offered.join(", "),
                });
            };
            if !chosen.contains(&name.as_str()) {
                chosen.push(name);
            }
        }

        if let Some(required) = &self.requires_python {
            let target = if required.matches('.').count() >= 2 {
                environment.python_full_version().to_string()
            } else {
                environment.python_version().to_string()
            };
            if &target != required {
                tracing::warn!(
                    "lockfile `{path}` was locked for Python {}, but the target has Python {target}; markers Pipenv left out may not hold",
                    Untrusted(required)
                );
            }
        }

        let mut selected: BTreeMap<&PackageName, &Entry> = BTreeMap::new();
        for category in chosen {
            for entry in self.categories.get(category).into_iter().flatten() {
                if let Some(marker) = &entry.marker
                    && !marker.evaluate(environment, &[])
                {
                    continue;
                }
                if matches!(entry.locked.source, PackageSource::IndexLookup { .. })
                    && !entry.has_hashes
                {
                    return Err(PipfileError::NoHashes {
                        path,
                        key: entry.key.clone(),
                    });
                }
                // The same pin in two categories is one package (Pipenv locks the
                // categories together, so their hashes agree).
                match selected.get(&entry.locked.name) {
                    Some(first) if first.locked.version == entry.locked.version => {}
                    Some(first) => {
                        return Err(PipfileError::AmbiguousPackage {
                            path,
                            package: entry.locked.name.to_string(),
                            first: describe(first),
                            second: describe(entry),
                        });
                    }
                    None => {
                        selected.insert(&entry.locked.name, entry);
                    }
                }
            }
        }
        Ok(selected
            .into_values()
            .map(|entry| entry.locked.clone())
            .collect())
    }

    /// The URLs of `_meta.sources`, in file order (Pipenv's order of preference).
    pub(crate) fn indexes(&self) -> Vec<url::Url> {
        self.sources.iter().map(|(_, url)| url.clone()).collect()
    }
}

fn describe(entry: &Entry) -> String {
    match &entry.locked.version {
        Some(version) => format!("{} == {version}", entry.key),
        None => entry.key.clone(),
    }
}

/// Where the key `name` of the object `category` is written, as `path:line:column`
/// (found by searching the text, since the JSON parser keeps no positions); the path
/// alone when the search fails.
fn key_place(source: &Source<'_>, category: &str, name: &str) -> String {
    let quoted = |key: &str| serde_json::to_string(key).unwrap_or_default();
    let text = source.text;
    let found = text
        .find(&format!("{}:", quoted(category)))
        .or_else(|| text.find(&quoted(category)));
    let found = found.and_then(|start| {
        let quoted_name = quoted(name);
        text[start..]
            .match_indices(&quoted_name)
            .map(|(offset, _)| start + offset)
            .find(|&offset| {
                text[offset + quoted_name.len()..]
                    .trim_start()
                    .starts_with(':')
            })
    });
    match found {
        Some(offset) => source.place(offset..offset + 1),
        None => source.whole_file(),
    }
}

fn parse_entry(
    source: &Source<'_>,
    sources: &[(String, url::Url)],
    category: &str,
    name: &str,
    entry: EntryWire,
) -> Result<Entry, PipfileError> {
    let lockfile = source.path;
    let label = &source.whole_file();
    // Checked once here: the name goes into index URLs and messages.
    let key = format!("{category}.{name}");
    let name = fields::package_name_at(name, &key_place(source, category, name))?;
    let marker = entry
        .markers
        .as_deref()
        .map(|written| fields::marker_at(written, format!("`{key}.markers`"), label))
        .transpose()?;

    let mut files = Vec::with_capacity(entry.hashes.len());
    for hash in &entry.hashes {
        let sha256 = match fields::parse_hash(hash) {
            Some(Hash::Sha256(digest)) => digest,
            Some(Hash::Other) => continue,
            None => {
                return Err(source
                    .invalid_hash(label, format!("an entry of `{key}.hashes`"), hash)
                    .into());
            }
        };
        files.push(IndexFile {
            filename: None,
            sha256,
        });
    }
    let has_hashes = !files.is_empty();

    let version = entry
        .version
        .as_deref()
        .map(|written| {
            let pinned = written
                .strip_prefix("===")
                .or_else(|| written.strip_prefix("=="))
                .map(str::trim)
                .filter(|version| Version::from_str(version).is_ok());
            pinned
                .map(str::to_string)
                .ok_or_else(|| PipfileError::InvalidVersion {
                    path: label.to_string(),
                    key: format!("{key}.version"),
                    version: written.to_string(),
                })
        })
        .transpose()?;

    let first_hash = files.first().map(|file| file.sha256);
    let (index, source) = if let Some(git) = entry.git {
        let Some(commit) = entry.reference.filter(|commit| is_commit_id(commit)) else {
            return Err(PipfileError::UnpinnedGit {
                path: label.to_string(),
                key,
            });
        };
        (
            None,
            PackageSource::Vcs(VcsSource::git(&git, &commit, entry.subdirectory)),
        )
    } else if let Some(written) = entry.path {
        let folder = lockfile.parent().unwrap_or(Path::new(""));
        let joined = folder.join(&written);
        let location = std::path::absolute(&joined).unwrap_or(joined);
        let filename = written
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&written)
            .to_string();
        // A file name with an archive suffix is an archive; anything else a source tree.
        let is_archive = [".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"]
            .iter()
            .any(|suffix| filename.ends_with(suffix));
        if !is_archive {
            (
                None,
                PackageSource::Directory(DirectorySource::at(lockfile, &written, entry.editable)),
            )
        } else {
            (
                None,
                PackageSource::Archive(Artifact {
                    filename,
                    location: ArtifactLocation::Path(location),
                    size: None,
                    sha256: first_hash,
                }),
            )
        }
    } else if let Some(written) = entry.file {
        let url = url::Url::parse(&written).map_err(|reason| FieldError::InvalidUrl {
            place: label.to_string(),
            key: format!("`{key}.file`"),
            value: redact_text(&written),
            reason,
        })?;
        let filename = fields::url_filename(&url).unwrap_or_default();
        (
            None,
            PackageSource::Archive(Artifact {
                filename,
                location: ArtifactLocation::Url(url),
                size: None,
                sha256: first_hash,
            }),
        )
    } else {
        if version.is_none() {
            return Err(PipfileError::MissingVersion {
                path: label.to_string(),
                key,
            });
        }
        let index = entry
            .index
            .as_deref()
            .map(|index| {
                sources
                    .iter()
                    .find(|(source, _)| source == index)
                    .map(|(_, url)| url.clone())
                    .ok_or_else(|| {
                        let offered: Vec<String> = sources
                            .iter()
                            .map(|(name, _)| format!("`{name}`"))
                            .collect();
                        PipfileError::UnknownIndex {
                            path: label.to_string(),
                            key: format!("{key}.index"),
                            index: index.to_string(),
                            offered: if offered.is_empty() {
                                "no sources".to_string()
                            } else {
                                format!("the sources {}", offered.join(", "))
                            },
                        }
                    })
            })
            .transpose()?;
        (index, PackageSource::IndexLookup { files })
    };

    Ok(Entry {
        locked: LockedPackage {
            name,
            version,
            index,
            source,
        },
        key,
        marker,
        has_hashes,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::digest::Sha256Digest;
    use crate::lock::testing::{environment, linux_311};

    const LOCKFILE: &str = "/work/project/Pipfile.lock";
    const HASH_A: &str = "77e284d754527b01fb1e6fa8a1afe577858ebe4e9dad8919e34c862cb399bc34";
    const HASH_B: &str = "ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc";

    fn groups(groups: &[&str], no_default_groups: bool) -> GroupSelection {
        GroupSelection {
            extras: BTreeSet::new(),
            groups: groups.iter().map(|group| group.to_string()).collect(),
            no_default_groups,
        }
    }

    fn parse(text: &str) -> Result<PipfileLock, PipfileError> {
        PipfileLock::parse(
            Path::new(LOCKFILE),
            &text.replace("HASH_A", HASH_A).replace("HASH_B", HASH_B),
        )
    }

    fn parse_error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn select(
        text: &str,
        environment: &MarkerEnvironment,
        selection: &GroupSelection,
    ) -> Vec<String> {
        parse(text)
            .unwrap()
            .select(environment, selection)
            .unwrap()
            .iter()
            .map(|package| {
                format!(
                    "{} {}",
                    package.name,
                    package.version.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    fn select_error(text: &str, selection: &GroupSelection) -> String {
        parse(text)
            .unwrap()
            .select(&linux_311(), selection)
            .unwrap_err()
            .to_string()
    }

    /// The shape `pipenv lock` writes: two sources, a direct dependency from the second
    /// one, markers, a dev category and a custom one.
    const LOCK: &str = r#"{
    "_meta": {
        "hash": {
            "sha256": "b6312f9dd9ceadbeba5c2ceb57693229a24072c960a03e2135d460632f034d2b"
        },
        "pipfile-spec": 6,
        "requires": {
            "python_version": "3.11"
        },
        "sources": [
            {
                "name": "mirror",
                "url": "https://mirror.example.internal/simple/",
                "verify_ssl": true
            },
            {
                "name": "private",
                "url": "https://ci:token@pkgs.example.internal/simple/",
                "verify_ssl": true
            }
        ]
    },
    "default": {
        "backports.tarfile": {
            "hashes": [
                "sha256:HASH_A",
                "sha256:HASH_B"
            ],
            "markers": "python_version < '3.12'",
            "version": "==1.2.0"
        },
        "colorama": {
            "hashes": [
                "sha256:HASH_B"
            ],
            "markers": "platform_system == 'Windows'",
            "version": "==0.4.6"
        },
        "internal-tools": {
            "hashes": [
                "sha256:HASH_A"
            ],
            "index": "private",
            "version": "==2.1.0"
        },
        "requests": {
            "extras": [
                "socks"
            ],
            "hashes": [
                "sha256:HASH_B"
            ],
            "index": "mirror",
            "markers": "python_version >= '3.8'",
            "version": "==2.32.3"
        }
    },
    "develop": {
        "pytest": {
            "hashes": [
                "sha256:HASH_A"
            ],
            "markers": "python_version >= '3.8'",
            "version": "==8.3.4"
        },
        "requests": {
            "hashes": [
                "sha256:HASH_B"
            ],
            "version": "==2.32.3"
        }
    },
    "docs": {
        "local-theme": {
            "path": "./vendor/local_theme-1.0-py3-none-any.whl"
        },
        "sphinx-ext": {
            "git": "https://git.example.internal/sphinx-ext.git",
            "ref": "0123456789abcdef0123456789abcdef01234567"
        },
        "theme-src": {
            "editable": true,
            "path": "./themes/src"
        }
    }
}
"#;

    #[test]
    fn ok_default_on_linux() {
        assert_eq!(
            select(LOCK, &linux_311(), &GroupSelection::default()),
            [
                "backports-tarfile 1.2.0",
                "internal-tools 2.1.0",
                "requests 2.32.3"
            ]
        );
    }

    #[test]
    fn ok_markers_on_windows_newer_python() {
        assert_eq!(
            select(
                LOCK,
                &environment("win32", "3.12.1"),
                &GroupSelection::default()
            ),
            ["colorama 0.4.6", "internal-tools 2.1.0", "requests 2.32.3"]
        );
    }

    #[test]
    fn ok_develop_by_dev_or_develop() {
        let expected = [
            "backports-tarfile 1.2.0",
            "internal-tools 2.1.0",
            "pytest 8.3.4",
            "requests 2.32.3",
        ];
        assert_eq!(
            select(LOCK, &linux_311(), &groups(&["dev"], false)),
            expected
        );
        assert_eq!(
            select(LOCK, &linux_311(), &groups(&["develop"], false)),
            expected
        );
        assert_eq!(
            select(LOCK, &linux_311(), &groups(&["dev"], true)),
            ["pytest 8.3.4", "requests 2.32.3"]
        );
    }

    #[test]
    fn ok_indexes_and_sources() {
        let lock = parse(LOCK).unwrap();
        assert_eq!(
            lock.indexes()
                .iter()
                .map(url::Url::as_str)
                .collect::<Vec<_>>(),
            [
                "https://mirror.example.internal/simple/",
                "https://ci:token@pkgs.example.internal/simple/"
            ]
        );
        let packages = lock
            .select(&linux_311(), &GroupSelection::default())
            .unwrap();
        assert_eq!(packages[0].index, None);
        assert_eq!(
            packages[0].source,
            PackageSource::IndexLookup {
                files: vec![
                    IndexFile {
                        filename: None,
                        sha256: Sha256Digest::from_hex(HASH_A).unwrap()
                    },
                    IndexFile {
                        filename: None,
                        sha256: Sha256Digest::from_hex(HASH_B).unwrap()
                    },
                ]
            }
        );
        assert_eq!(
            packages[1].index.as_ref().map(url::Url::host_str),
            Some(Some("pkgs.example.internal"))
        );
        assert_eq!(
            packages[2].index.as_ref().map(url::Url::as_str),
            Some("https://mirror.example.internal/simple/")
        );
    }

    #[test]
    fn ok_custom_category_with_non_index_sources() {
        let packages = parse(LOCK)
            .unwrap()
            .select(&linux_311(), &groups(&["docs"], true))
            .unwrap();
        assert_eq!(
            packages[0].source,
            PackageSource::Archive(Artifact {
                filename: "local_theme-1.0-py3-none-any.whl".to_string(),
                location: ArtifactLocation::Path(PathBuf::from(
                    "/work/project/vendor/local_theme-1.0-py3-none-any.whl"
                )),
                size: None,
                sha256: None,
            })
        );
        assert_eq!(
            packages[1].source,
            PackageSource::Vcs(VcsSource {
                kind: "git".to_string(),
                url: "https://git.example.internal/sphinx-ext.git".to_string(),
                commit_id: "0123456789abcdef0123456789abcdef01234567".to_string(),
                subdirectory: None,
            })
        );
        assert_eq!(
            packages[2].source,
            PackageSource::Directory(DirectorySource {
                path: PathBuf::from("/work/project/themes/src"),
                editable: true,
            })
        );
    }

    #[test]
    fn err_json_syntax_line_column() {
        let text = LOCK.replace("\"version\": \"==8.3.4\"", "\"version\": \"==8.3.4\",");
        assert_eq!(
            parse_error(&text),
            "cannot parse lockfile `/work/project/Pipfile.lock:65:9`: trailing comma; fix the file at that position or run `pipenv lock` again"
        );
    }

    #[test]
    fn err_json_type_line_column() {
        let text = LOCK.replace(
            "\"sha256:HASH_A\"\n            ],\n            \"index\"",
            "42\n            ],\n            \"index\"",
        );
        assert_eq!(
            parse_error(&text),
            "cannot parse lockfile `/work/project/Pipfile.lock:41:18`: invalid type: integer `42`, expected a string; fix the file at that position or run `pipenv lock` again"
        );
    }

    #[test]
    fn err_missing_meta() {
        assert_eq!(
            parse_error("{\"default\": {}}"),
            "cannot parse lockfile `/work/project/Pipfile.lock:1:15`: missing field `_meta`; fix the file at that position or run `pipenv lock` again"
        );
    }

    #[test]
    fn err_newer_spec() {
        assert_eq!(
            parse_error("{\"_meta\": {\"pipfile-spec\": 7}, \"default\": {}}"),
            "unsupported lockfile `/work/project/Pipfile.lock`: `_meta.pipfile-spec` is 7, but envbuild reads pipfile-spec up to 6; run `pipenv lock` with a Pipenv that writes version 6, or use an envbuild that supports this version"
        );
    }

    #[test]
    fn err_unknown_index() {
        let text = LOCK.replace("\"index\": \"private\"", "\"index\": \"corp\"");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/Pipfile.lock`: `default.internal-tools.index` is `corp`, but `_meta.sources` defines the sources `mirror`, `private`; add the source to the Pipfile and run `pipenv lock` again"
        );
    }

    #[test]
    fn err_unpinned_version() {
        let text = LOCK.replace("\"==2.1.0\"", "\">=2\"");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/Pipfile.lock`: `default.internal-tools.version` is `>=2`, but a lock pins `==<version>` with a PEP 440 version; run `pipenv lock` again"
        );
    }

    #[test]
    fn err_missing_version() {
        let text = LOCK.replace("\"version\": \"==2.1.0\"", "\"editable\": false");
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/Pipfile.lock`: `default.internal-tools` has no `version`, nor `git`, `path` or `file`, so nothing says what to install; run `pipenv lock` again"
        );
    }

    #[test]
    fn err_invalid_hash() {
        let text = LOCK.replace(
            "\"sha256:HASH_B\"\n            ],\n            \"markers\": \"platform",
            "\"sha256-beef\"\n            ],\n            \"markers\": \"platform",
        );
        assert_eq!(
            parse_error(&text),
            "invalid lockfile `/work/project/Pipfile.lock`: an entry of `default.colorama.hashes` is `sha256-beef`, but hashes are written `sha256:<64 hexadecimal characters>`; fix it, or run `pipenv lock` again"
        );
    }

    #[test]
    fn err_invalid_marker() {
        let text = LOCK.replace(
            "platform_system == 'Windows'",
            "platform_system = 'Windows'",
        );
        let error = parse_error(&text);
        assert!(
            error.starts_with("invalid lockfile `/work/project/Pipfile.lock`: `default.colorama.markers` `platform_system = 'Windows'` is not a valid marker: "),
            "{error}"
        );
    }

    #[test]
    fn err_source_url_hides_credentials() {
        let text = LOCK.replace(
            "https://ci:token@pkgs.example.internal/simple/",
            "https://ci:token@pkgs example/simple/",
        );
        let error = parse_error(&text);
        assert!(!error.contains("token"), "{error}");
    }

    #[test]
    fn err_unknown_group() {
        assert_eq!(
            select_error(LOCK, &groups(&["test"], false)),
            "cannot select group `test` from lockfile `/work/project/Pipfile.lock`: the lock has the categories `default`, `develop`, `docs` (`dev` selects `develop`); choose one of those"
        );
    }

    #[test]
    fn err_extras() {
        let selection = GroupSelection {
            extras: ["socks".to_string()].into(),
            ..GroupSelection::default()
        };
        assert_eq!(
            select_error(LOCK, &selection),
            "cannot select extra `socks` from lockfile `/work/project/Pipfile.lock`: a Pipfile.lock records no project extras; list the packages in a category of the Pipfile and select it with `--group`"
        );
    }

    #[test]
    fn err_conflicting_versions_across_categories() {
        let text = LOCK.replace(
            "\"version\": \"==2.32.3\"\n        }\n    },\n    \"docs\"",
            "\"version\": \"==2.31.0\"\n        }\n    },\n    \"docs\"",
        );
        assert_eq!(
            select_error(&text, &groups(&["dev"], false)),
            "cannot install lockfile `/work/project/Pipfile.lock` on the target: package `requests` is locked as `default.requests == 2.32.3` and as `develop.requests == 2.31.0` in the selected categories; lock them together with `pipenv lock` so they agree"
        );
    }

    #[test]
    fn err_selected_entry_without_hashes() {
        let text = LOCK.replace(
            "\"hashes\": [\n                \"sha256:HASH_A\"\n            ],\n            \"index\": \"private\"",
            "\"hashes\": [],\n            \"index\": \"private\"",
        );
        assert_eq!(
            select_error(&text, &GroupSelection::default()),
            "cannot install `default.internal-tools` from lockfile `/work/project/Pipfile.lock`: it lists no sha256 hash, and envbuild verifies every file it installs; run `pipenv lock` again against an index that publishes hashes"
        );
    }

    #[test]
    fn ok_error_is_small() {
        assert!(std::mem::size_of::<PipfileError>() <= 128);
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        let seeds = [
            LOCK.replace("HASH_A", HASH_A).replace("HASH_B", HASH_B),
            include_str!("../../tests/data/locks/bad-pipfile/Pipfile.lock").to_string(),
        ];
        let selections = crate::lock::testing::hostile_selections();
        crate::lock::testing::assert_no_panic("Pipfile.lock", seeds, 2000, |text| {
            if let Ok(lock) = PipfileLock::parse(Path::new(LOCKFILE), text) {
                let _ = lock.indexes();
                for (environment, selection) in &selections {
                    let _ = lock.select(environment, selection);
                }
            }
        });
    }

    #[test]
    fn err_invalid_package_name_names_file_line_and_name() {
        for (name, shown) in [
            ("//host", "//host"),
            ("x\\u001b]0;owned\\u0007", "x\\u{1b}]0;owned\\u{7}"),
        ] {
            let text = LOCK.replace("\"colorama\": {", &format!("\"{name}\": {{"));
            assert_eq!(
                parse_error(&text),
                format!(
                    "invalid lockfile `/work/project/Pipfile.lock:32:9`: `{shown}` is not a valid package name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit"
                )
            );
        }
    }
}
