//! Turning packages known only by file hashes ([`PackageSource::IndexLookup`], from
//! `poetry.lock`, `Pipfile.lock` and requirements files) into downloadable files
//! ([`PackageSource::Distributions`]) through the configured package indexes.
//!
//! For each such package the indexes are asked in order: the package's own index (the
//! lockfile's record of where it came from), the lockfile's indexes, the extra indexes,
//! then the default index. The **first index that has the project wins**, as in uv's
//! default `first-index` strategy: later indexes are not consulted for that project even
//! when the first lacks the locked files, so a public index can never supply a private
//! project's name (dependency confusion). Only "not found" (HTTP 404 or 410) moves on to
//! the next index; any other failure stops the build. Find-links locations add their files
//! for the project to whatever the winning index offers.
//!
//! Of those files, the ones whose sha256 the lock allows (and, when the lock records file
//! names, whose name matches) become the package's wheels and sdist, with URL, size and
//! sha256. Which wheel to install is still chosen offline, by `platform::select`, and every
//! download is verified against the locked sha256 by `fetch`.
//!
//! With a cache ([`resolve_lookups_cached`]) every resolution is stored as a cache record
//! (`<cache>/index/v1/<key>`, key: name, version and allowed files) and read back when
//! working offline.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use futures_util::StreamExt;
use futures_util::stream;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::config::{ConfigOrigin, FindLinks, IndexConfig, IndexUrl};
use super::http::{Fetched, HttpFailure};
use super::simple::{self, ProjectFile};
use crate::cache::Cache;
use crate::digest::Sha256Digest;
use crate::fetch::{FetchError, FetchOptions};
use crate::lock::{
    Artifact, ArtifactLocation, Excerpt, IndexFile, LockedPackage, PackageName, PackageSource,
};
use crate::untrusted::Untrusted;

/// Version of the cached resolution format (part of the file path).
const CACHE_FORMAT: &str = "v1";

/// Errors from [`resolve_lookups`]. URLs in messages never show credentials.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Packages need an index lookup, and no index or find-links location is configured.
    #[error(
        "the lockfile lists {} by file hash only, without URLs:{}\nno package index is configured to find those files, and envbuild never falls back to a public index: name one with `--index-url URL` (or `--extra-index-url`), the `PIP_INDEX_URL` or `UV_DEFAULT_INDEX` environment variable, `index-url` in pip.conf or uv.toml, or point `--find-links` at a folder of wheels",
        count(packages.len(), "package"),
        list(packages)
    )]
    NoIndex {
        /// `name version` of each package that needs a lookup.
        packages: Vec<String>,
    },
    /// No index (nor find-links location) has the project.
    #[error(
        "package `{package}` {version} is on none of the package indexes searched:{}\ncheck the package name and the index configuration (`--index-url`, `--extra-index-url`, `--find-links`, `PIP_INDEX_URL`, `UV_DEFAULT_INDEX`, pip.conf)",
        list(searched),
        version = Excerpt(version)
    )]
    ProjectNotFound {
        /// The package.
        package: PackageName,
        /// Its locked version.
        version: String,
        /// The indexes and find-links locations asked, in order, without credentials.
        searched: Vec<String>,
    },
    /// The index that has the project offers no file with a locked hash.
    #[error(
        "package `{package}` {version}: `{source_name}` offers no file with a sha256 the lockfile allows ({}){}\nthe index serves different files than were locked: check that it mirrors the index the lock was made against, or lock again against this index",
        hashes.join(", "),
        describe_offered(offered),
        source_name = Untrusted(source_name),
        version = Excerpt(version)
    )]
    HashNotFound {
        /// The package.
        package: PackageName,
        /// Its locked version.
        version: String,
        /// The index (or find-links location) that has the project, without credentials.
        source_name: String,
        /// The allowed hashes, `sha256:<hex>` (with the file name when locked).
        hashes: Vec<String>,
        /// The files the index offers for that version (names).
        offered: Vec<String>,
    },
    /// The index refused access.
    #[error(
        "`{url}` answered {status} when looking up `{package}`: the index refused access; give credentials in the index URL (as `user:token@` before its host) or in `~/.netrc`",
        url = Untrusted(url)
    )]
    AccessDenied {
        /// The package.
        package: PackageName,
        /// The page, without credentials.
        url: String,
        /// The status received.
        status: StatusCode,
    },
    /// The index answered with an unexpected status.
    #[error(
        "`{url}` answered {status} when looking up `{package}`; check the index URL and the server",
        url = Untrusted(url)
    )]
    UnexpectedStatus {
        /// The package.
        package: PackageName,
        /// The page, without credentials.
        url: String,
        /// The status received.
        status: StatusCode,
    },
    /// Every attempt at a page failed for a transient reason.
    #[error(
        "could not read `{url}` after {}: the last one failed with: {last_cause}; check the network connection and the proxy settings (`HTTPS_PROXY`, `NO_PROXY`), then run again",
        count(*attempts as usize, "attempt"),
        last_cause = Untrusted(last_cause),
        url = Untrusted(url)
    )]
    RetriesExhausted {
        /// The page, without credentials.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        last_cause: String,
    },
    /// A request failed in a way retrying will not fix.
    #[error(
        "could not read `{url}`: {cause}",
        cause = Untrusted(cause),
        url = Untrusted(url)
    )]
    Transfer {
        /// The page, without credentials.
        url: String,
        /// What failed.
        cause: String,
    },
    /// A page could not be read as a Simple API page.
    #[error(
        "cannot read the index page `{url}`: {reason}",
        reason = Untrusted(reason),
        url = Untrusted(url)
    )]
    InvalidPage {
        /// The page, without credentials.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An index URL that cannot have a project path (it is not hierarchical).
    #[error(
        "`{url}` cannot be a package index: a Simple API index is an `http` or `https` URL such as `https://host/simple/`, under which each project has a page; fix the index URL",
        url = Untrusted(url)
    )]
    UnusableIndex {
        /// The index, without credentials.
        url: String,
    },
    /// A find-links page answered with an error status.
    #[error(
        "the find-links page `{url}` answered {status}; check the `--find-links` setting",
        url = Untrusted(url)
    )]
    FindLinksStatus {
        /// The page, without credentials.
        url: String,
        /// The status received.
        status: StatusCode,
    },
    /// A local find-links location could not be read.
    #[error("cannot read the find-links location `{}` (from {origin})", path.display())]
    FindLinksRead {
        /// The folder or file.
        path: PathBuf,
        /// Where it was configured.
        origin: ConfigOrigin,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Offline, and a lookup has no cached resolution.
    #[error(
        "working offline, but these packages are listed by file hash only and were not looked up in a package index before{}:{}\nrun `envbuild fetch` with the same lockfile on a connected machine with the same `--cache-dir`, then bring that cache folder here",
        cache_dir.as_ref().map(|dir| format!(" (cache `{}`)", dir.display())).unwrap_or_default(),
        list(packages)
    )]
    Offline {
        /// `name version` of each package missing.
        packages: Vec<String>,
        /// The cache searched, if any.
        cache_dir: Option<PathBuf>,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client for package index lookups")]
    Client {
        /// Why.
        #[source]
        source: Box<FetchError>,
    },
    /// More than one lookup failed.
    #[error("{} failed:{}", count(errors.len(), "index lookup"), list_errors(errors))]
    Several {
        /// The failures, in package order.
        errors: Vec<IndexError>,
    },
}

fn count(number: usize, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

fn list(items: &[String]) -> String {
    items.iter().map(|item| format!("\n  - {item}")).collect()
}

fn list_errors(errors: &[IndexError]) -> String {
    errors
        .iter()
        .map(|error| format!("\n  - {}", error.to_string().replace('\n', "\n    ")))
        .collect()
}

fn describe_offered(offered: &[String]) -> String {
    if offered.is_empty() {
        "; it has no file of this version".to_string()
    } else {
        format!("; its files of this version are: {}", offered.join(", "))
    }
}

/// Turn every [`PackageSource::IndexLookup`] of `packages` into
/// [`PackageSource::Distributions`] by asking the package indexes (see the module
/// documentation for the order and the matching rules). Other packages pass unchanged,
/// and when none needs a lookup nothing is configured or requested. `lock_indexes` are
/// the indexes the lockfile names ([`crate::lock::Lock::indexes`]).
///
/// Offline ([`FetchOptions::offline`]) this fails when any lookup is needed; use
/// [`resolve_lookups_cached`] to answer from earlier resolutions.
pub async fn resolve_lookups(
    packages: Vec<LockedPackage>,
    lock_indexes: &[url::Url],
    config: &IndexConfig,
    options: &FetchOptions,
) -> Result<Vec<LockedPackage>, IndexError> {
    resolve(packages, lock_indexes, config, options, None).await
}

/// [`resolve_lookups`], remembering each resolution in `cache` and, offline, answering
/// from it.
pub async fn resolve_lookups_cached(
    packages: Vec<LockedPackage>,
    lock_indexes: &[url::Url],
    config: &IndexConfig,
    options: &FetchOptions,
    cache: &Cache,
) -> Result<Vec<LockedPackage>, IndexError> {
    resolve(packages, lock_indexes, config, options, Some(cache)).await
}

async fn resolve(
    mut packages: Vec<LockedPackage>,
    lock_indexes: &[url::Url],
    config: &IndexConfig,
    options: &FetchOptions,
    cache: Option<&Cache>,
) -> Result<Vec<LockedPackage>, IndexError> {
    let lookups: Vec<usize> = packages
        .iter()
        .enumerate()
        .filter(|(_, package)| matches!(package.source, PackageSource::IndexLookup { .. }))
        .map(|(index, _)| index)
        .collect();
    if lookups.is_empty() {
        return Ok(packages);
    }

    if options.offline {
        let mut missing = Vec::new();
        for &index in &lookups {
            match cache.and_then(|cache| read_cached(cache, &packages[index])) {
                Some(resolved) => packages[index] = resolved,
                None => missing.push(describe(&packages[index])),
            }
        }
        if !missing.is_empty() {
            return Err(IndexError::Offline {
                packages: missing,
                cache_dir: cache.map(|cache| cache.root().to_path_buf()),
            });
        }
        return Ok(packages);
    }

    let mut shared: Vec<IndexUrl> = Vec::new();
    for url in lock_indexes {
        push_unique(
            &mut shared,
            IndexUrl::new(config.expand_lock_url(url), ConfigOrigin::Lockfile),
        );
    }
    for index in config.indexes() {
        push_unique(&mut shared, index.clone());
    }
    if shared.is_empty() && config.find_links().is_empty() {
        let without_index: Vec<String> = lookups
            .iter()
            .map(|&index| &packages[index])
            .filter(|package| package.index.is_none())
            .map(describe)
            .collect();
        if !without_index.is_empty() {
            return Err(IndexError::NoIndex {
                packages: without_index,
            });
        }
    }

    let client = crate::fetch::http_client(options).map_err(|source| IndexError::Client {
        source: Box::new(source),
    })?;
    let context = Context {
        client: &client,
        config,
        options,
        shared: &shared,
    };
    let find_links = context.load_find_links().await?;

    let mut outcomes: Vec<(usize, Result<Resolution, IndexError>)> = stream::iter(lookups)
        .map(|index| {
            let context = &context;
            let package = &packages[index];
            let find_links = &find_links;
            async move { (index, context.resolve_one(package, find_links).await) }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
    outcomes.sort_by_key(|(index, _)| *index);

    let mut errors = Vec::new();
    for (index, outcome) in outcomes {
        match outcome {
            Ok(resolution) => {
                let resolved = resolution.apply(&packages[index]);
                if let Some(cache) = cache
                    && let Err(error) = write_cached(cache, &packages[index], &resolved)
                {
                    tracing::warn!(
                        "cannot remember the index lookup of `{}`: {error}",
                        packages[index].name
                    );
                }
                packages[index] = resolved;
            }
            Err(error) => errors.push(error),
        }
    }
    match errors.len() {
        0 => Ok(packages),
        1 => Err(errors.pop().expect("one error")),
        _ => Err(IndexError::Several { errors }),
    }
}

fn describe(package: &LockedPackage) -> String {
    format!(
        "`{}` {}",
        package.name,
        package.version.as_deref().unwrap_or("(no version)")
    )
}

fn push_unique(indexes: &mut Vec<IndexUrl>, index: IndexUrl) {
    if !indexes
        .iter()
        .any(|known| known.identity() == index.identity())
    {
        indexes.push(index);
    }
}

/// A find-links file, before hashing.
struct LinkedFile {
    filename: String,
    location: LinkedLocation,
    /// Where it was found, for messages.
    source_name: String,
    /// Where that location was configured.
    origin: ConfigOrigin,
}

enum LinkedLocation {
    /// A local file; hashed when a package needs it.
    Local(PathBuf),
    /// A file a page links to.
    Remote(Box<(ProjectFile, IndexUrl)>),
}

/// One matching file, ready to become an [`Artifact`].
struct Matched {
    filename: String,
    location: ArtifactLocation,
    size: Option<u64>,
    sha256: Sha256Digest,
}

struct Resolution {
    files: Vec<Matched>,
    /// The index that had the project, without credentials.
    index: Option<url::Url>,
}

impl Resolution {
    fn apply(self, package: &LockedPackage) -> LockedPackage {
        let mut wheels = Vec::new();
        let mut sdist = None;
        for file in self.files {
            let artifact = Artifact {
                filename: file.filename,
                location: file.location,
                size: file.size,
                sha256: Some(file.sha256),
            };
            if artifact.filename.ends_with(".whl") {
                wheels.push(artifact);
            } else if sdist.is_none() {
                sdist = Some(artifact);
            }
        }
        wheels.sort_by(|left, right| left.filename.cmp(&right.filename));
        LockedPackage {
            name: package.name.clone(),
            version: package.version.clone(),
            index: package.index.clone().or(self.index),
            source: PackageSource::Distributions { wheels, sdist },
        }
    }
}

struct Context<'a> {
    client: &'a reqwest::Client,
    config: &'a IndexConfig,
    options: &'a FetchOptions,
    shared: &'a [IndexUrl],
}

impl Context<'_> {
    /// List every find-links location once: folder entries (hashed later, per package)
    /// and the links of pages.
    async fn load_find_links(&self) -> Result<Vec<LinkedFile>, IndexError> {
        let mut files = Vec::new();
        for location in self.config.find_links() {
            match location {
                FindLinks::Local { path, origin } => {
                    let read_error = |source: std::io::Error| IndexError::FindLinksRead {
                        path: path.clone(),
                        origin: origin.clone(),
                        source,
                    };
                    if path.is_dir() {
                        let listed = simple::list_folder(path).map_err(read_error)?;
                        for (filename, file) in listed {
                            files.push(LinkedFile {
                                filename,
                                location: LinkedLocation::Local(file),
                                source_name: path.display().to_string(),
                                origin: origin.clone(),
                            });
                        }
                    } else {
                        // A local HTML page of links.
                        let html = fs_err::read_to_string(path).map_err(|error| {
                            read_error(std::io::Error::new(error.kind(), error))
                        })?;
                        let base = url::Url::from_file_path(path).map_err(|()| {
                            read_error(std::io::Error::other("the path is not absolute"))
                        })?;
                        for file in simple::parse_html(&html, &base) {
                            let location = match file.url.to_file_path() {
                                Ok(local) if file.url.scheme() == "file" => {
                                    LinkedLocation::Local(local)
                                }
                                _ => LinkedLocation::Remote(Box::new((
                                    file.clone(),
                                    IndexUrl::new(base.clone(), origin.clone()),
                                ))),
                            };
                            files.push(LinkedFile {
                                filename: file.filename,
                                location,
                                source_name: path.display().to_string(),
                                origin: origin.clone(),
                            });
                        }
                    }
                }
                FindLinks::Page(page) => {
                    let url = self.config.authenticate(page.url());
                    let fetched = self.get(&url, simple::ACCEPT_HTML).await?;
                    if !fetched.status.is_success() {
                        return Err(IndexError::FindLinksStatus {
                            url: page.to_string(),
                            status: fetched.status,
                        });
                    }
                    for file in
                        simple::parse_html(&String::from_utf8_lossy(&fetched.body), &fetched.url)
                    {
                        files.push(LinkedFile {
                            filename: file.filename.clone(),
                            location: LinkedLocation::Remote(Box::new((file, page.clone()))),
                            source_name: page.to_string(),
                            origin: page.origin().clone(),
                        });
                    }
                }
            }
        }
        Ok(files)
    }

    async fn get(&self, url: &url::Url, accept: &str) -> Result<Fetched, IndexError> {
        simple::get_page(self.client, url, accept, self.options)
            .await
            .map_err(|failure| match failure {
                HttpFailure::Exhausted {
                    attempts,
                    last_cause,
                } => IndexError::RetriesExhausted {
                    url: super::redact(url),
                    attempts,
                    last_cause,
                },
                HttpFailure::Fatal { cause } => IndexError::Transfer {
                    url: super::redact(url),
                    cause,
                },
            })
    }

    async fn resolve_one(
        &self,
        package: &LockedPackage,
        find_links: &[LinkedFile],
    ) -> Result<Resolution, IndexError> {
        let PackageSource::IndexLookup { files: allowed } = &package.source else {
            unreachable!("only index lookups are resolved");
        };
        let version = package.version.clone().unwrap_or_default();

        let mut indexes: Vec<IndexUrl> = Vec::new();
        if let Some(own) = &package.index {
            push_unique(
                &mut indexes,
                IndexUrl::new(self.config.expand_lock_url(own), ConfigOrigin::Lockfile),
            );
        }
        for index in self.shared {
            push_unique(&mut indexes, index.clone());
        }

        // First index that has the project wins.
        let mut found: Option<(IndexUrl, Vec<ProjectFile>)> = None;
        for index in &indexes {
            let base = self.config.authenticate(index.url());
            let Some(page) = simple::project_page(&base, &package.name) else {
                return Err(IndexError::UnusableIndex {
                    url: index.to_string(),
                });
            };
            let fetched = self.get(&page, simple::ACCEPT_SIMPLE).await?;
            let status = fetched.status;
            if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                tracing::debug!("`{}` is not on `{index}`", package.name);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(IndexError::AccessDenied {
                    package: package.name.clone(),
                    url: super::redact(&page),
                    status,
                });
            }
            if !status.is_success() {
                return Err(IndexError::UnexpectedStatus {
                    package: package.name.clone(),
                    url: super::redact(&page),
                    status,
                });
            }
            let files = simple::parse_page(&fetched).map_err(|error| IndexError::InvalidPage {
                url: super::redact(&page),
                reason: error.reason,
            })?;
            found = Some((index.clone(), files));
            break;
        }

        // Candidates: the winning index's files, then the find-links files of the project.
        let mut candidates: Vec<(Matched, bool)> = Vec::new();
        let mut offered: Vec<String> = Vec::new();
        if let Some((index, files)) = &found {
            for file in files {
                if filename_version_is(&file.filename, &version) {
                    offered.push(file.filename.clone());
                }
                let Some(sha256) = file.sha256 else { continue };
                if file.yanked && allows(allowed, &file.filename, &sha256) {
                    tracing::warn!(
                        "`{}` {}: `{}` is yanked on `{index}`; installing it because the lockfile pins it",
                        package.name,
                        Untrusted(&version),
                        Untrusted(&file.filename)
                    );
                }
                candidates.push((
                    Matched {
                        filename: file.filename.clone(),
                        location: ArtifactLocation::Url(self.with_credentials(&file.url, index)),
                        size: file.size,
                        sha256,
                    },
                    true,
                ));
            }
        }
        let mut linked_any = false;
        for linked in find_links {
            if simple::project_of(&linked.filename).as_ref() != Some(&package.name) {
                continue;
            }
            linked_any = true;
            if filename_version_is(&linked.filename, &version) {
                offered.push(linked.filename.clone());
            }
            match &linked.location {
                LinkedLocation::Local(path) => {
                    // Hash only files that may match: the lock's names, or this version.
                    let named = allowed
                        .iter()
                        .any(|file| file.filename.as_deref() == Some(&linked.filename));
                    let unnamed = allowed.iter().any(|file| file.filename.is_none());
                    if !(named || unnamed && filename_version_is(&linked.filename, &version)) {
                        continue;
                    }
                    let path_owned = path.clone();
                    let hashed =
                        tokio::task::spawn_blocking(move || simple::hash_file(&path_owned))
                            .await
                            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
                            .map_err(|source| IndexError::FindLinksRead {
                                path: path.clone(),
                                origin: linked.origin.clone(),
                                source,
                            })?;
                    candidates.push((
                        Matched {
                            filename: linked.filename.clone(),
                            location: ArtifactLocation::Path(path.clone()),
                            size: Some(hashed.1),
                            sha256: hashed.0,
                        },
                        false,
                    ));
                }
                LinkedLocation::Remote(remote) => {
                    let (file, page) = &**remote;
                    let Some(sha256) = file.sha256 else { continue };
                    candidates.push((
                        Matched {
                            filename: file.filename.clone(),
                            location: ArtifactLocation::Url(self.with_credentials(&file.url, page)),
                            size: file.size,
                            sha256,
                        },
                        false,
                    ));
                }
            }
        }

        if found.is_none() && !linked_any {
            let mut searched: Vec<String> = indexes.iter().map(ToString::to_string).collect();
            searched.extend(
                self.config
                    .find_links()
                    .iter()
                    .map(|location| format!("find-links {location}")),
            );
            return Err(IndexError::ProjectNotFound {
                package: package.name.clone(),
                version,
                searched,
            });
        }

        let mut seen: BTreeSet<Sha256Digest> = BTreeSet::new();
        let mut matched = Vec::new();
        for (candidate, _) in candidates {
            if allows(allowed, &candidate.filename, &candidate.sha256)
                && seen.insert(candidate.sha256)
            {
                matched.push(candidate);
            }
        }
        if matched.is_empty() {
            let source_name = match &found {
                Some((index, _)) => index.to_string(),
                None => find_links
                    .iter()
                    .find(|linked| {
                        simple::project_of(&linked.filename).as_ref() == Some(&package.name)
                    })
                    .map(|linked| format!("find-links {}", linked.source_name))
                    .unwrap_or_default(),
            };
            offered.sort();
            offered.dedup();
            return Err(IndexError::HashNotFound {
                package: package.name.clone(),
                version,
                source_name,
                hashes: allowed
                    .iter()
                    .map(|file| match &file.filename {
                        Some(name) => format!("{} `{name}`", file.sha256),
                        None => file.sha256.to_string(),
                    })
                    .collect(),
                offered,
            });
        }
        let index = found.map(|(index, _)| {
            url::Url::parse(&index.identity()).unwrap_or_else(|_| index.url().clone())
        });
        Ok(Resolution {
            files: matched,
            index,
        })
    }

    /// A file URL with credentials: the index's own when the file lives on the same
    /// origin, else `.netrc`'s for the file's host. `fetch` sends them; messages drop them.
    fn with_credentials(&self, file: &url::Url, index: &IndexUrl) -> url::Url {
        let mut url = file.clone();
        let source = index.url();
        if url.origin() == source.origin()
            && url.username().is_empty()
            && (!source.username().is_empty() || source.password().is_some())
        {
            let _ = url.set_username(source.username());
            let _ = url.set_password(source.password());
            return url;
        }
        self.config.authenticate(&url)
    }
}

/// Whether the lock allows a file: its sha256 is listed, with no file name or this one.
fn allows(allowed: &[IndexFile], filename: &str, sha256: &Sha256Digest) -> bool {
    allowed.iter().any(|file| {
        &file.sha256 == sha256 && file.filename.as_deref().is_none_or(|name| name == filename)
    })
}

/// Whether a distribution file name carries `version` (PEP 440 equality).
fn filename_version_is(filename: &str, version: &str) -> bool {
    let written = if filename.ends_with(".whl") {
        filename.split('-').nth(1).map(str::to_string)
    } else {
        [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"]
            .iter()
            .find_map(|suffix| filename.strip_suffix(suffix))
            .and_then(|stem| stem.rsplit_once('-'))
            .map(|(_, version)| version.to_string())
    };
    match (written, uv_pep440::Version::from_str(version)) {
        (Some(written), Ok(locked)) => {
            uv_pep440::Version::from_str(&written).is_ok_and(|parsed| parsed == locked)
        }
        _ => false,
    }
}

// The cached resolutions.

#[derive(Serialize, Deserialize)]
struct CachedResolution {
    name: String,
    version: String,
    index: Option<String>,
    files: Vec<CachedFile>,
}

#[derive(Serialize, Deserialize)]
struct CachedFile {
    filename: String,
    url: Option<String>,
    path: Option<PathBuf>,
    size: Option<u64>,
    sha256: Sha256Digest,
}

/// The cache record key of a lookup: the name, version and the allowed files, so a
/// lock that allows other files never reads another lock's answer.
fn cache_key(package: &LockedPackage) -> Option<Sha256Digest> {
    let PackageSource::IndexLookup { files } = &package.source else {
        return None;
    };
    let mut lines: Vec<String> = files
        .iter()
        .map(|file| {
            format!(
                "{} {}",
                file.sha256.hex(),
                file.filename.as_deref().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    lines.dedup();
    let key = format!(
        "{CACHE_FORMAT}\n{}\n{}\n{}",
        package.name,
        package.version.as_deref().unwrap_or(""),
        lines.join("\n")
    );
    Some(Sha256Digest::of(key.as_bytes()))
}

/// The kind of cache record that holds index lookups (its folder carries the format).
const CACHE_RECORD_KIND: &str = "index/v1";

fn read_cached(cache: &Cache, package: &LockedPackage) -> Option<LockedPackage> {
    let cached: CachedResolution = cache.record(CACHE_RECORD_KIND, &cache_key(package)?)?;
    let mut files = Vec::with_capacity(cached.files.len());
    for file in cached.files {
        let location = match (file.url, file.path) {
            (_, Some(path)) => ArtifactLocation::Path(path),
            (Some(url), None) => ArtifactLocation::Url(url::Url::parse(&url).ok()?),
            (None, None) => return None,
        };
        files.push(Matched {
            filename: file.filename,
            location,
            size: file.size,
            sha256: file.sha256,
        });
    }
    let index = cached.index.and_then(|index| url::Url::parse(&index).ok());
    Some(Resolution { files, index }.apply(package))
}

fn write_cached(
    cache: &Cache,
    package: &LockedPackage,
    resolved: &LockedPackage,
) -> Result<(), crate::cache::CacheError> {
    let Some(key) = cache_key(package) else {
        return Ok(());
    };
    let PackageSource::Distributions { wheels, sdist } = &resolved.source else {
        return Ok(());
    };
    let files = wheels
        .iter()
        .chain(sdist)
        .filter_map(|artifact| {
            let (url, path) = match &artifact.location {
                // Without credentials: the cache never holds secrets.
                ArtifactLocation::Url(url) => (Some(super::redact(url)), None),
                ArtifactLocation::Path(path) => (None, Some(path.clone())),
            };
            Some(CachedFile {
                filename: artifact.filename.clone(),
                url,
                path,
                size: artifact.size,
                sha256: artifact.sha256?,
            })
        })
        .collect();
    let record = CachedResolution {
        name: package.name.to_string(),
        version: package.version.clone().unwrap_or_default(),
        index: resolved.index.as_ref().map(super::redact),
        files,
    };
    cache.put_record(CACHE_RECORD_KIND, &key, &record)
}
