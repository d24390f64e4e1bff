//! The Simple Repository API client: one project page, as PEP 691 JSON or PEP 503 HTML,
//! read into the list of files it offers. Also the find-links sources (a local folder, or
//! an HTML page of links), which give files of every project at once.
//!
//! The request asks for `application/vnd.pypi.simple.v1+json, application/vnd.pypi.
//! simple.v1+html;q=0.2, text/html;q=0.01` (PEP 691's recommendation), and the answer's
//! `Content-Type` says which parser reads it. Relative links are resolved against the
//! page's final URL (after redirects), or its `<base href>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::http::{self, Fetched};
use crate::digest::{HashingReader, Sha256Digest};
use crate::lock::PackageName;
use crate::wheel::filename::WheelFilename;

/// The `Accept` header of project page requests.
pub(crate) const ACCEPT_SIMPLE: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
/// The `Accept` header of find-links page requests.
pub(crate) const ACCEPT_HTML: &str = "text/html, application/vnd.pypi.simple.v1+html;q=0.9";

const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";

/// One file a page offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectFile {
    /// The file name (the last segment of its URL, percent-decoded, for HTML pages).
    pub(crate) filename: String,
    /// Where to get it: an absolute URL (`http`, `https` or `file`).
    pub(crate) url: url::Url,
    /// Its SHA-256, when the page gives one.
    pub(crate) sha256: Option<Sha256Digest>,
    /// Its size, when the page gives it.
    pub(crate) size: Option<u64>,
    /// Whether the index marks it yanked (PEP 592).
    pub(crate) yanked: bool,
}

/// Why a page could not be read.
#[derive(Debug)]
pub(crate) struct PageError {
    pub(crate) reason: String,
}

#[derive(Deserialize)]
struct JsonPage {
    meta: Option<JsonMeta>,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct JsonMeta {
    api_version: Option<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    size: Option<u64>,
    yanked: Option<serde_json::Value>,
}

/// Read a project page into its files, by `Content-Type` (JSON for PEP 691, HTML
/// otherwise; a body starting with `{` is JSON whatever the header says).
pub(crate) fn parse_page(fetched: &Fetched) -> Result<Vec<ProjectFile>, PageError> {
    let content_type = fetched
        .content_type
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let looks_json = fetched.body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    if content_type == JSON_V1 || content_type == "application/json" || looks_json {
        parse_json(&fetched.body, &fetched.url)
    } else {
        Ok(parse_html(
            &String::from_utf8_lossy(&fetched.body),
            &fetched.url,
        ))
    }
}

/// A PEP 691 JSON project page. Its major `api-version` must be 1 (PEP 691: clients
/// must refuse a major version they do not know).
pub(crate) fn parse_json(body: &[u8], page_url: &url::Url) -> Result<Vec<ProjectFile>, PageError> {
    let page: JsonPage = serde_json::from_slice(body).map_err(|error| PageError {
        reason: format!("the PEP 691 JSON does not parse: {error}"),
    })?;
    if let Some(version) = page.meta.and_then(|meta| meta.api_version)
        && version.split('.').next() != Some("1")
    {
        return Err(PageError {
            reason: format!("it uses Simple API version {version}, but envbuild reads version 1.x"),
        });
    }
    let mut files = Vec::with_capacity(page.files.len());
    for file in page.files {
        let Ok(url) = page_url.join(&file.url) else {
            tracing::debug!(
                "skipping `{}`: its URL does not parse",
                crate::untrusted::Untrusted(&file.filename)
            );
            continue;
        };
        let sha256 = file
            .hashes
            .iter()
            .find(|(algorithm, _)| algorithm.eq_ignore_ascii_case("sha256"))
            .and_then(|(_, value)| Sha256Digest::from_hex(value).ok());
        // `yanked` is `false`, `true`, or a reason string (which means yanked).
        let yanked = match &file.yanked {
            None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => false,
            Some(_) => true,
        };
        files.push(ProjectFile {
            filename: file.filename,
            url,
            sha256,
            size: file.size,
            yanked,
        });
    }
    Ok(files)
}

/// A PEP 503 HTML page (a project page or a find-links page): each anchor is a file, its
/// name the last segment of the link, its hash the `#sha256=` fragment.
pub(crate) fn parse_html(html: &str, page_url: &url::Url) -> Vec<ProjectFile> {
    let page = super::html::parse(html);
    let base = page
        .base
        .as_deref()
        .and_then(|base| page_url.join(base).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut files = Vec::new();
    for anchor in &page.anchors {
        let Some(href) = anchor.get("href") else {
            continue;
        };
        let Ok(mut url) = base.join(href) else {
            continue;
        };
        let sha256 = url.fragment().and_then(|fragment| {
            let (algorithm, value) = fragment.split_once('=')?;
            if algorithm.eq_ignore_ascii_case("sha256") {
                Sha256Digest::from_hex(value).ok()
            } else {
                None
            }
        });
        url.set_fragment(None);
        let Some(filename) = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .filter(|segment| !segment.is_empty())
            .map(|segment| crate::lock::percent_decode(segment).into_owned())
        else {
            continue;
        };
        files.push(ProjectFile {
            filename,
            url,
            sha256,
            size: None,
            yanked: anchor.get("data-yanked").is_some(),
        });
    }
    files
}

/// The normalized project name a distribution file name belongs to: a wheel's name part,
/// or an sdist's text before its last `-`.
pub(crate) fn project_of(filename: &str) -> Option<PackageName> {
    if filename.ends_with(".whl") {
        return WheelFilename::from_str(filename)
            .ok()
            .map(|wheel| wheel.name);
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"]
        .iter()
        .find_map(|suffix| filename.strip_suffix(suffix))?;
    let (name, _version) = stem.rsplit_once('-')?;
    name.parse().ok()
}

/// The Simple API page of project `name` on the index at `base`: `base`'s path with the
/// name pushed as one more segment and a trailing `/` (PEP 503: `<base>/<name>/`). The
/// name is never joined as text, so nothing in it can climb out of the index's path or
/// reach another host (a [`PackageName`] holds no `/`, `?` or `#` anyway). `None` when
/// `base` cannot have a path (`mailto:x`, `data:...`).
pub(crate) fn project_page(base: &url::Url, name: &PackageName) -> Option<url::Url> {
    let mut page = base.clone();
    page.set_query(None);
    page.set_fragment(None);
    page.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push(name.as_str())
        .push("");
    Some(page)
}

/// The distribution files directly in `folder` (not in subfolders), as `(name, path)`
/// sorted by name.
pub(crate) fn list_folder(folder: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs_err::read_dir(folder)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if project_of(&name).is_some() && entry.file_type()?.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The SHA-256 and size of a local file.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(Sha256Digest, u64)> {
    let file = fs_err::File::open(path)?;
    let mut reader = HashingReader::new(std::io::BufReader::new(file));
    std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(reader.finish())
}

/// GET a page, with the retries and transfer bounds of [`http::get`].
pub(crate) async fn get_page(
    client: &reqwest::Client,
    url: &url::Url,
    accept: &str,
    options: &crate::fetch::FetchOptions,
) -> Result<Fetched, http::HttpFailure> {
    http::get(client, url, accept, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "f4bcbefc124291925f1a26446da31a5178f9483862233b23c0c96a20701f670c";

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn ok_json_page_with_relative_urls() {
        let body = format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "name": "flask", "versions": ["3.1.3"],
            "files": [
              {{"filename": "flask-3.1.3-py3-none-any.whl", "url": "../../files/flask-3.1.3-py3-none-any.whl",
                "hashes": {{"sha256": "{HEX}"}}, "size": 103424, "yanked": false, "requires-python": ">=3.9"}},
              {{"filename": "flask-3.1.3.tar.gz", "url": "https://files.example/f/flask-3.1.3.tar.gz",
                "hashes": {{}}, "yanked": "broken"}}
            ]}}"#
        );
        let files = parse_json(body.as_bytes(), &url("http://127.0.0.1:9/simple/flask/")).unwrap();
        assert_eq!(
            files[0],
            ProjectFile {
                filename: "flask-3.1.3-py3-none-any.whl".to_string(),
                url: url("http://127.0.0.1:9/files/flask-3.1.3-py3-none-any.whl"),
                sha256: Some(Sha256Digest::from_hex(HEX).unwrap()),
                size: Some(103424),
                yanked: false,
            }
        );
        assert_eq!(files[1].sha256, None);
        assert!(files[1].yanked);
    }

    #[test]
    fn err_json_major_version() {
        let error = parse_json(
            br#"{"meta": {"api-version": "2.0"}, "files": []}"#,
            &url("http://127.0.0.1:9/simple/x/"),
        )
        .unwrap_err();
        assert_eq!(
            error.reason,
            "it uses Simple API version 2.0, but envbuild reads version 1.x"
        );
    }

    #[test]
    fn ok_html_page() {
        let html = format!(
            "<html><body><a href=\"../../files/flask-3.1.3-py3-none-any.whl#sha256={HEX}\" data-requires-python=\"&gt;=3.9\">flask-3.1.3-py3-none-any.whl</a>\n<a href=\"https://files.example/f/Flask%2B-0.1.tar.gz#md5=abc\" data-yanked=\"\">x</a></body></html>"
        );
        let files = parse_html(&html, &url("http://127.0.0.1:9/simple/flask/"));
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url.as_str(),
            "http://127.0.0.1:9/files/flask-3.1.3-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256, Some(Sha256Digest::from_hex(HEX).unwrap()));
        assert!(!files[0].yanked);
        assert_eq!(files[1].filename, "Flask+-0.1.tar.gz");
        assert_eq!(files[1].sha256, None);
        assert!(files[1].yanked);
    }

    #[test]
    fn ok_project_page_is_one_segment() {
        let name: PackageName = "Jaraco.Functools".parse().unwrap();
        for (base, page) in [
            (
                "http://127.0.0.1:9/simple/",
                "http://127.0.0.1:9/simple/jaraco-functools/",
            ),
            (
                "http://127.0.0.1:9/simple",
                "http://127.0.0.1:9/simple/jaraco-functools/",
            ),
            (
                "http://u:p@127.0.0.1:9/a/simple/?x=1#f",
                "http://u:p@127.0.0.1:9/a/simple/jaraco-functools/",
            ),
            ("http://127.0.0.1:9", "http://127.0.0.1:9/jaraco-functools/"),
        ] {
            assert_eq!(project_page(&url(base), &name).unwrap().as_str(), page);
        }
        assert_eq!(project_page(&url("mailto:x@127.0.0.1"), &name), None);
    }

    #[test]
    fn ok_project_of() {
        assert_eq!(
            project_of("backports.tarfile-1.2.0-py3-none-any.whl")
                .unwrap()
                .as_str(),
            "backports-tarfile"
        );
        assert_eq!(
            project_of("Jinja2-3.1.6.tar.gz").unwrap().as_str(),
            "jinja2"
        );
        assert_eq!(project_of("index.html"), None);
    }

    #[test]
    fn ok_no_panic_on_hostile_pages() {
        let page = url("http://127.0.0.1:9/simple/alpha/");
        let seeds = [
            include_str!("../../tests/data/robust/simple-alpha.json"),
            include_str!("../../tests/data/robust/simple-alpha.html"),
        ];
        crate::lock::testing::assert_no_panic("index page", seeds, 3000, |text| {
            let files =
                parse_json(text.as_bytes(), &page).unwrap_or_else(|_| parse_html(text, &page));
            for file in files {
                let _ = project_of(&file.filename);
            }
        });
    }
}
