//! Index lookups against real servers on 127.0.0.1: `scripts/simple-index` (PEP 691 JSON
//! and PEP 503 HTML by content negotiation) serving the pinned fixture wheels, and an
//! HTML-only index from `index_support`. Packages known only by sha256 (as `Pipfile.lock`
//! and `poetry.lock` record them) become downloadable wheels, which `fetch` then brings
//! in and verifies; wrong hashes, unknown projects and a missing index configuration give
//! the errors users see, never with credentials in them.

mod common;
mod index_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use envbuild::cache::Cache;
use envbuild::digest::Sha256Digest;
use envbuild::fetch::{FetchOptions, FetchRequest, NoProgress, fetch_all};
use envbuild::index::{
    ConfigOrigin, FindLinks, IndexConfig, IndexError, IndexUrl, resolve_lookups,
    resolve_lookups_cached,
};
use envbuild::lock::{ArtifactLocation, GroupSelection, Lock, LockedPackage, PackageSource};
use envbuild::platform::select::choose_wheels;

use common::{IndexServer, fixtures, scratch_dir};
use index_support::{HtmlIndex, HtmlIndexSetup, Pinned, lookup_package, pinned_wheels, target_311};

fn index(url: &str) -> IndexUrl {
    IndexUrl::new(
        url::Url::parse(url).unwrap(),
        ConfigOrigin::Flag("--index-url"),
    )
}

fn options() -> FetchOptions {
    FetchOptions {
        retries: 1,
        ..FetchOptions::default()
    }
}

fn lookups(with_filename: bool) -> Vec<LockedPackage> {
    pinned_wheels()
        .iter()
        .map(|pinned| lookup_package(pinned, with_filename))
        .collect()
}

/// Every package resolved to exactly its pinned wheel, at a URL under `prefix` (or a
/// local path when `prefix` is `None`), with size and sha256.
fn assert_resolved(resolved: &[LockedPackage], prefix: Option<&str>) {
    let pinned: BTreeMap<String, Pinned> = pinned_wheels()
        .into_iter()
        .map(|pinned| (pinned.name.clone(), pinned))
        .collect();
    assert_eq!(resolved.len(), pinned.len());
    for package in resolved {
        let expected = &pinned[package.name.as_str()];
        let PackageSource::Distributions { wheels, sdist } = &package.source else {
            panic!("`{}` was not resolved: {:?}", package.name, package.source);
        };
        assert_eq!(wheels.len(), 1, "{package:?}");
        assert!(sdist.is_none());
        let wheel = &wheels[0];
        assert_eq!(wheel.filename, expected.filename);
        assert_eq!(wheel.sha256.unwrap().hex(), expected.sha256);
        let size = fs_err::metadata(fixtures().wheels.join(&expected.filename))
            .unwrap()
            .len();
        match (prefix, &wheel.location) {
            (Some(prefix), ArtifactLocation::Url(url)) => {
                assert!(url.as_str().starts_with(prefix), "{url} under {prefix}");
                if wheel.size.is_some() {
                    assert_eq!(wheel.size, Some(size));
                }
            }
            (None, ArtifactLocation::Path(path)) => {
                assert_eq!(path, &fixtures().wheels.join(&expected.filename));
                assert_eq!(wheel.size, Some(size));
            }
            (prefix, location) => panic!("expected {prefix:?}, got {location:?}"),
        }
    }
}

/// Download every resolved wheel into a fresh cache: the URLs work and the bytes verify.
async fn fetch_resolved(resolved: &[LockedPackage]) {
    let scratch = scratch_dir("index-fetch-");
    let cache = Cache::open(scratch.path()).unwrap();
    let requests: Vec<FetchRequest> = resolved
        .iter()
        .map(|package| {
            let PackageSource::Distributions { wheels, .. } = &package.source else {
                panic!("not resolved");
            };
            FetchRequest {
                package: package.name.clone(),
                version: package.version.clone().unwrap(),
                artifact: wheels[0].clone(),
            }
        })
        .collect();
    let paths = fetch_all(&requests, &cache, &options(), Arc::new(NoProgress))
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(paths.len(), requests.len());
}

#[tokio::test]
async fn resolves_by_hash_through_pep691_json() {
    let server = IndexServer::start(&fixtures().wheels);
    let config = IndexConfig::from_parts(vec![index(&server.url)], Vec::new());
    // Pipfile.lock style: hashes only.
    let resolved = resolve_lookups(lookups(false), &[], &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let files = format!("http://127.0.0.1:{}/files/", server.port);
    assert_resolved(&resolved, Some(&files));
    // The JSON page gives sizes; HTML pages do not.
    assert!(resolved.iter().all(|package| matches!(
        &package.source,
        PackageSource::Distributions { wheels, .. } if wheels[0].size.is_some()
    )));
    assert_eq!(
        resolved[0].index.as_ref().map(url::Url::as_str),
        Some(server.url.as_str())
    );
    fetch_resolved(&resolved).await;

    // poetry.lock style: file names and hashes.
    let resolved = resolve_lookups(lookups(true), &[], &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_resolved(&resolved, Some(&files));
}

#[tokio::test]
async fn resolves_by_hash_through_pep503_html() {
    let html = HtmlIndex::start(HtmlIndexSetup {
        folder: Some(fixtures().wheels.clone()),
        ..HtmlIndexSetup::default()
    });
    let config = IndexConfig::from_parts(vec![index(&html.url)], Vec::new());
    let resolved = resolve_lookups(lookups(true), &[], &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_resolved(&resolved, Some(&format!("{}/files/", html.origin)));
    fetch_resolved(&resolved).await;
    // envbuild asked for JSON first, and read the HTML it got.
    let seen = html.seen();
    let page = seen
        .iter()
        .find(|request| request.path == "/simple/flask/")
        .unwrap();
    assert_eq!(
        page.accept.as_deref(),
        Some(
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
        )
    );
}

#[tokio::test]
async fn resolves_from_a_find_links_folder_without_an_index() {
    let config = IndexConfig::from_parts(
        Vec::new(),
        vec![FindLinks::Local {
            path: fixtures().wheels.clone(),
            origin: ConfigOrigin::Flag("--find-links"),
        }],
    );
    let resolved = resolve_lookups(lookups(false), &[], &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_resolved(&resolved, None);
    fetch_resolved(&resolved).await;
}

#[tokio::test]
async fn resolves_from_a_find_links_page() {
    let server = IndexServer::start(&fixtures().wheels);
    // A page of links to the index's files, with their hashes, as a wheelhouse serves it.
    let links: String = pinned_wheels()
        .iter()
        .map(|pinned| {
            format!(
                "<a href=\"http://127.0.0.1:{}/files/{}#sha256={}\">{}</a><br/>\n",
                server.port, pinned.filename, pinned.sha256, pinned.filename
            )
        })
        .collect();
    let page = HtmlIndex::start(HtmlIndexSetup {
        pages: [(
            "/wheels.html".to_string(),
            format!("<html><body>\n{links}</body></html>"),
        )]
        .into(),
        ..HtmlIndexSetup::default()
    });
    let config = IndexConfig::from_parts(
        Vec::new(),
        vec![FindLinks::Page(IndexUrl::page(
            url::Url::parse(&format!("{}/wheels.html", page.origin)).unwrap(),
            ConfigOrigin::Flag("--find-links"),
        ))],
    );
    let resolved = resolve_lookups(lookups(false), &[], &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_resolved(
        &resolved,
        Some(&format!("http://127.0.0.1:{}/files/", server.port)),
    );
    // The page is read once for every package.
    assert_eq!(page.seen().len(), 1);
}

#[tokio::test]
async fn lock_indexes_come_first_and_config_is_not_needed() {
    let server = IndexServer::start(&fixtures().wheels);
    let lock_index = url::Url::parse(&server.url).unwrap();
    let resolved = resolve_lookups(
        lookups(false),
        &[lock_index],
        &IndexConfig::default(),
        &options(),
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    assert_resolved(
        &resolved,
        Some(&format!("http://127.0.0.1:{}/files/", server.port)),
    );
}

#[tokio::test]
async fn err_hash_not_on_the_index() {
    let server = IndexServer::start(&fixtures().wheels);
    let config = IndexConfig::from_parts(vec![index(&server.url)], Vec::new());
    let flask = pinned_wheels()
        .into_iter()
        .find(|pinned| pinned.name == "flask")
        .unwrap();
    let mut package = lookup_package(&flask, false);
    let wrong = Sha256Digest::of(b"not flask");
    package.source = PackageSource::IndexLookup {
        files: vec![envbuild::lock::IndexFile {
            filename: None,
            sha256: wrong,
        }],
    };
    let error = resolve_lookups(vec![package], &[], &config, &options())
        .await
        .unwrap_err();
    assert!(
        matches!(error, IndexError::HashNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "package `flask` 3.1.3: `{}` offers no file with a sha256 the lockfile allows ({}); its files of this version are: flask-3.1.3-py3-none-any.whl\nthe index serves different files than were locked: check that it mirrors the index the lock was made against, or lock again against this index",
            server.url,
            wrong.oci()
        )
    );
}

#[tokio::test]
async fn err_project_on_no_index_lists_them_without_credentials() {
    let server = IndexServer::start(&fixtures().wheels);
    let html = HtmlIndex::start(HtmlIndexSetup {
        folder: Some(fixtures().wheels.clone()),
        ..HtmlIndexSetup::default()
    });
    let with_credentials = server.url.replace("http://", "http://ci:hunter2@");
    let config =
        IndexConfig::from_parts(vec![index(&with_credentials), index(&html.url)], Vec::new());
    let missing = Pinned {
        name: "no-such-project".to_string(),
        version: "1.0".to_string(),
        sha256: "00".repeat(32),
        filename: "no_such_project-1.0-py3-none-any.whl".to_string(),
    };
    let error = resolve_lookups(
        vec![lookup_package(&missing, true)],
        &[],
        &config,
        &options(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        !message.contains("hunter2") && !message.contains("ci:"),
        "{message}"
    );
    assert_eq!(
        message,
        format!(
            "package `no-such-project` 1.0 is on none of the package indexes searched:\n  - {}\n  - {}\ncheck the package name and the index configuration (`--index-url`, `--extra-index-url`, `--find-links`, `PIP_INDEX_URL`, `UV_DEFAULT_INDEX`, pip.conf)",
            html.url,
            server.url.replace("http://", "http://***@")
        )
    );
}

#[tokio::test]
async fn err_no_index_configured_says_how_to_set_one() {
    let error = resolve_lookups(
        lookups(false)[..2].to_vec(),
        &[],
        &IndexConfig::default(),
        &options(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the lockfile lists 2 packages by file hash only, without URLs:\n  - `backports-tarfile` 1.2.0\n  - `blinker` 1.9.0\nno package index is configured to find those files, and envbuild never falls back to a public index: name one with `--index-url URL` (or `--extra-index-url`), the `PIP_INDEX_URL` or `UV_DEFAULT_INDEX` environment variable, `index-url` in pip.conf or uv.toml, or point `--find-links` at a folder of wheels"
    );
}

/// A lockfile may name any URL as an index (`--index-url mailto:...` in a requirements
/// file); one that cannot have a project page under it was joined with `expect` and
/// panicked.
#[tokio::test]
async fn err_index_that_cannot_hold_project_pages_is_an_error_not_a_panic() {
    let package = LockedPackage {
        name: "flask".parse().unwrap(),
        version: Some("3.1.3".to_string()),
        index: None,
        source: PackageSource::IndexLookup {
            files: vec![envbuild::lock::IndexFile {
                filename: None,
                sha256: Sha256Digest::of(b"flask"),
            }],
        },
    };
    let error = resolve_lookups(
        vec![package],
        &[url::Url::parse("mailto:pkgs@127.0.0.1").unwrap()],
        &IndexConfig::default(),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, IndexError::UnusableIndex { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "`mailto:pkgs@127.0.0.1/` cannot be a package index: a Simple API index is an `http` or `https` URL such as `https://host/simple/`, under which each project has a page; fix the index URL"
    );
}

#[tokio::test]
async fn first_index_with_the_project_wins() {
    // The first index has a `flask` of its own (other bytes): envbuild does not look
    // further, so a later index cannot be used to slip files in, nor an earlier one to
    // replace a private project.
    let decoy = scratch_dir("decoy-");
    fs_err::write(
        decoy.path().join("flask-3.1.3-py3-none-any.whl"),
        b"not the real flask",
    )
    .unwrap();
    let first = HtmlIndex::start(HtmlIndexSetup {
        folder: Some(decoy.path().to_path_buf()),
        ..HtmlIndexSetup::default()
    });
    let server = IndexServer::start(&fixtures().wheels);
    let config = IndexConfig::from_parts(vec![index(&server.url), index(&first.url)], Vec::new());
    // `from_parts`: the first is the default index, so the extra one (`first`) is asked first.
    let error = resolve_lookups(lookups(true), &[], &config, &options())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, IndexError::HashNotFound { .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!("`{}` offers no file", first.url)),
        "{message}"
    );
    // Projects the first index lacks come from the next one.
    assert!(!message.contains("blinker"), "{message}");
}

#[tokio::test]
async fn credentials_from_netrc_are_sent_and_never_shown() {
    let token = data_encoding::BASE64.encode(b"ci:s3cret-token");
    let html = HtmlIndex::start(HtmlIndexSetup {
        folder: Some(fixtures().wheels.clone()),
        basic_auth: Some(token.clone()),
        ..HtmlIndexSetup::default()
    });
    let packages = lookups(true)[..3].to_vec();

    // Without credentials: refused, and the error says what to do.
    let config = IndexConfig::from_parts(vec![index(&html.url)], Vec::new());
    let error = resolve_lookups(packages.clone(), &[], &config, &options())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("answered 401 Unauthorized when looking up"),
        "{error}"
    );

    // With `.netrc` credentials for 127.0.0.1: pages and files are fetched with them.
    let config = IndexConfig::from_parts(vec![index(&html.url)], Vec::new())
        .with_netrc_text("machine 127.0.0.1 login ci password s3cret-token\n");
    let resolved = resolve_lookups(packages, &[], &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    fetch_resolved(&resolved).await;
    // Only the three page requests of the first attempt went without credentials; every
    // page and file request after them carried the netrc's.
    let seen = html.seen();
    let without: Vec<&str> = seen
        .iter()
        .filter(|request| request.authorization.is_none())
        .map(|request| request.path.as_str())
        .collect();
    assert_eq!(without.len(), 3, "{seen:?}");
    assert!(
        without.iter().all(|path| path.starts_with("/simple/")),
        "{seen:?}"
    );
    let files = seen
        .iter()
        .filter(|request| request.path.starts_with("/files/"))
        .count();
    assert_eq!(files, 3, "{seen:?}");
    assert!(
        seen.iter()
            .skip_while(|request| request.authorization.is_none())
            .all(|request| request.authorization.as_deref() == Some(&format!("Basic {token}"))),
        "{seen:?}"
    );
    for package in &resolved {
        let shown = format!("{:?}", package.index);
        assert!(!shown.contains("s3cret"), "{shown}");
        let PackageSource::Distributions { wheels, .. } = &package.source else {
            panic!("not resolved");
        };
        assert!(!ArtifactLocation::to_string(&wheels[0].location).contains("s3cret"));
    }
}

#[tokio::test]
async fn offline_answers_from_earlier_resolutions() {
    let scratch = scratch_dir("index-cache-");
    let cache = Cache::open(scratch.path()).unwrap();
    let server = IndexServer::start(&fixtures().wheels);
    let config = IndexConfig::from_parts(vec![index(&server.url)], Vec::new());
    let online = resolve_lookups_cached(lookups(false), &[], &config, &options(), &cache)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    drop(server);

    let offline_options = FetchOptions {
        offline: true,
        ..options()
    };
    let offline = resolve_lookups_cached(lookups(false), &[], &config, &offline_options, &cache)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(online, offline);
    let cached = fs_err::read_dir(scratch.path().join("index/v1"))
        .unwrap()
        .count();
    assert_eq!(cached, online.len());

    // Without a cache, or for a lookup never made, offline is an error.
    let error = resolve_lookups(lookups(false)[..1].to_vec(), &[], &config, &offline_options)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "working offline, but these packages are listed by file hash only and were not looked up in a package index before:\n  - `backports-tarfile` 1.2.0\nrun `envbuild fetch` with the same lockfile on a connected machine with the same `--cache-dir`, then bring that cache folder here"
    );
    let mut other = lookups(true)[..1].to_vec();
    other[0].version = Some("9.9".to_string());
    let error = resolve_lookups_cached(other, &[], &config, &offline_options, &cache)
        .await
        .unwrap_err();
    assert!(matches!(error, IndexError::Offline { .. }), "{error}");
}

/// A hand-written `poetry.lock` (lock-version 2.0, no sources: packages from "PyPI")
/// for the fixture set, read, selected, looked up and chosen end to end.
#[tokio::test]
async fn poetry_lock_fixture_end_to_end() {
    let server = IndexServer::start(&fixtures().wheels);
    let lock = Lock::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/locks/poetry-2.0/poetry.lock"),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let target = target_311();
    let packages = lock
        .select(&target.marker_environment(), &GroupSelection::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(lock.indexes().is_empty());
    let config = IndexConfig::from_parts(vec![index(&server.url)], Vec::new());
    let resolved = resolve_lookups(packages, &lock.indexes(), &config, &options())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let chosen = choose_wheels(&resolved, &target).unwrap_or_else(|error| panic!("{error}"));
    let mut chosen: Vec<String> = chosen
        .iter()
        .map(|wheel| wheel.artifact.filename.clone())
        .collect();
    chosen.sort();
    let mut expected: Vec<String> = pinned_wheels()
        .into_iter()
        .map(|pinned| pinned.filename)
        .collect();
    expected.sort();
    assert_eq!(chosen, expected);
}

/// Malformed lock fixtures give errors with the line and column.
#[test]
fn malformed_fixtures_point_at_the_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/locks");
    let error = Lock::load(&root.join("bad-poetry/poetry.lock"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bad-poetry/poetry.lock:12:1`: package `flask` has no `python-versions`"),
        "{error}"
    );
    let error = Lock::load(&root.join("bad-pipfile/Pipfile.lock"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bad-pipfile/Pipfile.lock:17:13`: expected `,` or `}`"),
        "{error}"
    );
}

/// Defect 11: a PEP 691 entry with the wrong `size` is reported as a size mismatch,
/// with both sizes, before anything enters the cache.
#[tokio::test]
async fn err_index_entry_with_the_wrong_size_is_a_size_mismatch() {
    let pinned = pinned_wheels().remove(0);
    let size = fs_err::metadata(fixtures().wheels.join(&pinned.filename))
        .unwrap()
        .len();
    let page = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": pinned.name,
        "files": [{
            "filename": pinned.filename,
            "url": format!("../../files/{}", pinned.filename),
            "hashes": {"sha256": pinned.sha256},
            "size": size + 7,
        }],
    });
    let html = HtmlIndex::start(HtmlIndexSetup {
        folder: Some(fixtures().wheels.clone()),
        pages: BTreeMap::from([(format!("/simple/{}/", pinned.name), page.to_string())]),
        ..HtmlIndexSetup::default()
    });
    let config = IndexConfig::from_parts(vec![index(&html.url)], Vec::new());
    let resolved = resolve_lookups(
        vec![lookup_package(&pinned, true)],
        &[],
        &config,
        &options(),
    )
    .await
    .unwrap();
    let PackageSource::Distributions { wheels, .. } = &resolved[0].source else {
        panic!("not resolved: {resolved:?}");
    };
    assert_eq!(wheels[0].size, Some(size + 7));
    let scratch = scratch_dir("index-size-");
    let cache = Cache::open(scratch.path()).unwrap();
    let request = FetchRequest {
        package: resolved[0].name.clone(),
        version: pinned.version.clone(),
        artifact: wheels[0].clone(),
    };

    let error = fetch_all(&[request], &cache, &options(), Arc::new(NoProgress))
        .await
        .unwrap_err();

    let message = error.to_string();
    for part in [
        "size mismatch".to_string(),
        format!("expected {} bytes", size + 7),
        format!("{size} bytes"),
    ] {
        assert!(message.contains(&part), "{part} missing from: {message}");
    }
    assert!(!message.contains("was expected"), "{message}");
    assert_eq!(
        fs_err::read_dir(scratch.path().join("wheels/sha256"))
            .unwrap()
            .count(),
        0
    );
}

/// Defect 6: an index page dripping one byte at a time fails in bounded time.
#[tokio::test]
async fn err_dripping_index_page_fails_in_bounded_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n",
                );
                while stream.write_all(b" ").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
        }
    });
    let config = IndexConfig::from_parts(vec![index(&url)], Vec::new());
    let options = FetchOptions {
        retries: 1,
        min_rate: envbuild::http::MinimumRate {
            bytes_per_second: 1024,
            window: std::time::Duration::from_secs(1),
        },
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();

    let error = resolve_lookups(
        vec![lookup_package(&pinned_wheels()[0], true)],
        &[],
        &config,
        &options,
    )
    .await
    .unwrap_err();

    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(
        message.contains("minimum transfer rate of 1 KiB/s"),
        "{message}"
    );
    assert!(message.contains(&url), "{message}");
}

/// Issue 8, item 2: an index that refuses connections costs one attempt for the whole
/// run, not retries for every package.
#[tokio::test]
async fn err_unreachable_index_is_tried_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/simple/");
    let config = IndexConfig::from_parts(vec![index(&url)], Vec::new());
    let options = FetchOptions {
        retries: 4,
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();

    let error = resolve_lookups(lookups(true), &[], &config, &options)
        .await
        .unwrap_err();

    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("`127.0.0.1:{port}` cannot be reached")),
        "{message}"
    );
}
