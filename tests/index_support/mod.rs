//! Helpers for the index lookup tests: the pinned fixture wheels as lock entries known
//! only by hash, the fixture target, and a small PEP 503 **HTML-only** index on 127.0.0.1
//! (a thread of the test process) for what `scripts/simple-index` does not do: refuse
//! JSON, require HTTP Basic credentials, serve other files under a project's name, and
//! record each request's `Accept` and `Authorization` headers.
//!
//! Use it from a test file with `mod index_support;` (next to `mod common;`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use envbuild::digest::Sha256Digest;
use envbuild::lock::{IndexFile, LockedPackage, PackageName, PackageSource};
use envbuild::platform::{Libc, Platform, PythonVersion, Target};

/// The fixture's target: CPython 3.11 on linux/amd64 with glibc 2.36.
pub fn target_311() -> Target {
    Target {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        python: PythonVersion {
            major: 3,
            minor: 11,
            patch: None,
        },
        libc: Libc::Glibc {
            major: 2,
            minor: 36,
        },
        allow_linux_tag: false,
    }
}

/// One pinned wheel of `tests/data/wheels.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Normalized name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256, hex.
    pub sha256: String,
    /// The wheel's file name (the comment after the hash).
    pub filename: String,
}

/// Every wheel pinned in `tests/data/wheels.txt`, in file order.
pub fn pinned_wheels() -> Vec<Pinned> {
    let text =
        fs_err::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wheels.txt"))
            .unwrap();
    let mut pinned = Vec::new();
    let mut pending: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(requirement) = line.strip_suffix('\\') {
            let (name, version) = requirement.trim().split_once("==").unwrap();
            pending = Some((name.to_string(), version.to_string()));
        } else if let Some(rest) = line.strip_prefix("--hash=sha256:") {
            let (hash, comment) = rest.split_once('#').unwrap();
            let (name, version) = pending.take().unwrap();
            pinned.push(Pinned {
                name,
                version,
                sha256: hash.trim().to_string(),
                filename: comment.trim().to_string(),
            });
        }
    }
    assert!(pinned.len() >= 14, "parsed {pinned:?}");
    pinned
}

/// A lock entry for `pinned`, known only by hash (and by file name when `with_filename`),
/// as a Pipfile.lock (without) or poetry.lock (with) records it.
pub fn lookup_package(pinned: &Pinned, with_filename: bool) -> LockedPackage {
    LockedPackage {
        name: pinned.name.parse::<PackageName>().unwrap(),
        version: Some(pinned.version.clone()),
        index: None,
        source: PackageSource::IndexLookup {
            files: vec![IndexFile {
                filename: with_filename.then(|| pinned.filename.clone()),
                sha256: Sha256Digest::from_hex(&pinned.sha256).unwrap(),
            }],
        },
    }
}

/// A request the HTML index received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

/// What the HTML index serves.
#[derive(Debug, Clone, Default)]
pub struct HtmlIndexSetup {
    /// Folder whose distributions are listed under `/simple/<project>/` and served
    /// under `/files/<name>`.
    pub folder: Option<PathBuf>,
    /// Extra pages: path → HTML body (served with status 200).
    pub pages: BTreeMap<String, String>,
    /// When set, every request must carry `Authorization: Basic <this>` (base64 of
    /// `user:password`), else it gets 401.
    pub basic_auth: Option<String>,
}

/// The HTML-only index; stops on drop.
pub struct HtmlIndex {
    /// `http://127.0.0.1:PORT/simple/`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HtmlIndex {
    /// Start serving `setup` on a free port of 127.0.0.1.
    pub fn start(setup: HtmlIndexSetup) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let seen = Arc::clone(&seen);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            let _ = serve(stream, &setup, &seen);
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            url: format!("http://127.0.0.1:{port}/simple/"),
            origin: format!("http://127.0.0.1:{port}"),
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HtmlIndex {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    setup: &HtmlIndexSetup,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let authorization = headers.get("authorization").cloned();
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        accept: headers.get("accept").cloned(),
        authorization: authorization.clone(),
    });
    let mut stream = stream;
    if let Some(expected) = &setup.basic_auth
        && authorization.as_deref() != Some(&format!("Basic {expected}"))
    {
        return respond(
            &mut stream,
            "401 Unauthorized",
            "text/plain",
            b"credentials needed\n",
        );
    }
    if let Some(page) = setup.pages.get(&path) {
        return respond(&mut stream, "200 OK", "text/html", page.as_bytes());
    }
    if let Some(folder) = &setup.folder {
        if let Some(project) = path
            .strip_prefix("/simple/")
            .and_then(|rest| rest.strip_suffix('/'))
        {
            let mut links = String::new();
            for entry in fs_err::read_dir(folder)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".whl") else {
                    continue;
                };
                let project_of = stem
                    .split('-')
                    .next()
                    .unwrap()
                    .parse::<PackageName>()
                    .unwrap();
                if project_of.as_str() != project {
                    continue;
                }
                let mut bytes = Vec::new();
                fs_err::File::open(entry.path())?.read_to_end(&mut bytes)?;
                links.push_str(&format!(
                    "    <a href=\"../../files/{name}#sha256={}\" data-requires-python=\"&gt;=3.7\">{name}</a><br>\n",
                    Sha256Digest::of(&bytes).hex()
                ));
            }
            if links.is_empty() {
                return respond(
                    &mut stream,
                    "404 Not Found",
                    "text/plain",
                    b"no such project\n",
                );
            }
            let page = format!(
                "<!DOCTYPE html>\n<html>\n  <head><title>Links for {project}</title></head>\n  <body>\n    <h1>Links for {project}</h1>\n{links}  </body>\n</html>\n"
            );
            return respond(
                &mut stream,
                "200 OK",
                "text/html; charset=utf-8",
                page.as_bytes(),
            );
        }
        if let Some(name) = path.strip_prefix("/files/") {
            let file = folder.join(name);
            if !name.contains('/') && file.is_file() {
                let bytes = fs_err::read(&file)?;
                return respond(&mut stream, "200 OK", "application/octet-stream", &bytes);
            }
        }
    }
    respond(&mut stream, "404 Not Found", "text/plain", b"not found\n")
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}
