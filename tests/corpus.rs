//! Install fidelity on a corpus of popular real wheels (`tests/data/corpus.txt`, made by
//! `scripts/fixtures`), chosen so that every case of the wheel format occurs: `.data/scripts`
//! with `#!python`, `.data/headers`, `.data/data`, gui_scripts, dotted entry-point objects,
//! pkgutil and implicit namespace packages split across wheels, `.pth` files, odd paths, abi3
//! and platlib wheels (the header of corpus.txt says which wheel covers which case, and the
//! test asserts each one really occurs).
//!
//! One image holds the whole corpus: uv locks `examples/corpus` against a local index over the
//! corpus folder and envbuild builds the exported pylock.toml with `--prefix P`, where P is a
//! fresh folder on this machine. The reference is uv's own install of the same wheels into a
//! real venv made by `uv venv` at that same P, so shebangs, `.data/data` (the prefix root) and
//! `.data/headers` (`include/site/python3.11/<name>`) land on the same paths in both.
//!
//! Differential (`envbuild_installs_the_corpus_as_uv_does`): the trees below P are equal file
//! for file and byte for byte, executable bits and symlinks included, except the documented
//! differences:
//! - the venv skeleton each tool makes for itself: uv's `activate*` scripts, `.gitignore`,
//!   `CACHEDIR.TAG` and `.lock`; files both have (`pyvenv.cfg`, `lib64`, `bin/python*`) are
//!   compared by other tests, not here;
//! - installer files in each `.dist-info`: INSTALLER (`envbuild\n` against `uv`), REQUESTED,
//!   direct_url.json (uv writes one for a local file), `uv_cache.json`, and RECORD, whose rows
//!   must be the same set (any order) apart from those files' rows and launchers' hashes;
//! - launchers made from entry points: the same names exist, executable, starting with
//!   `#!P/bin/python`, importing the same object and passing its result to `sys.exit`; the
//!   template around that may differ.
//!
//! In podman (`every_module_and_script_of_the_corpus_runs_in_podman`): every top-level module
//! of every wheel imports and every launcher in `bin/` runs (`--version`, else `--help`) inside
//! the image exactly as it does in uv's venv on this machine, with a tiny documented list of
//! modules and launchers that fail in both because something outside the corpus is missing.

mod common;
mod fidelity_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::*;
use fidelity_support::*;

/// site-packages, relative to the venv prefix.
const SITE: &str = "lib/python3.11/site-packages";

/// Folders of the prefix that hold a wheel's `.data/data` (none of the corpus wheels puts data
/// anywhere else).
const DATA_ROOTS: &[&str] = &["share/", "etc/"];

/// Modules that cannot be imported from the corpus alone, with the error text that says why
/// (asserted, so the list cannot go stale).
const KNOWN_UNIMPORTABLE: &[(&str, &str)] = &[
    // qtpy wraps a Qt binding (PyQt5/6, PySide2/6), which nothing in the corpus requires.
    ("qtpy", "QtBindingsNotFoundError"),
    // matplotlib-inline is IPython's matplotlib backend; it does not require matplotlib.
    ("matplotlib_inline", "No module named 'matplotlib'"),
];

/// Launchers that fail in both installs for the same reason: their module imports qtpy.
const KNOWN_FAILING_SCRIPTS: &[(&str, &str)] = &[
    ("jupyter-qtconsole", "QtBindingsNotFoundError"),
    ("qtpy", "QtBindingsNotFoundError"),
];

// ---------------------------------------------------------------------------------------------
// The corpus

/// A corpus wheel and what the test needs to know about it.
struct CorpusWheel {
    path: PathBuf,
    file_name: String,
    dist_info: String,
    purelib: bool,
    entry_points: Vec<ScriptEntryPoint>,
    /// File names under `.data/scripts/`, with whether the file starts with `#!python`.
    data_scripts: Vec<(String, bool)>,
}

struct Corpus {
    dir: PathBuf,
    wheels: Vec<CorpusWheel>,
}

/// The corpus folder: `ENVBUILD_FIXTURE_CORPUS` when `scripts/test` exported it, else what
/// `scripts/fixtures` prints (it makes the folder once, then only checks it).
fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Result<Corpus, String>> = OnceLock::new();
    once(&CORPUS, load_corpus)
}

fn load_corpus() -> Corpus {
    let dir = match std::env::var_os("ENVBUILD_FIXTURE_CORPUS") {
        Some(dir) if Path::new(&dir).is_dir() => PathBuf::from(dir),
        _ => {
            for tool in ["python3", "apt-get", "dpkg-deb", "umoci", "flock"] {
                require_tool(tool);
            }
            let output = run_ok(
                Command::new("bash")
                    .arg(repo_root().join("scripts/fixtures"))
                    .stderr(Stdio::inherit()),
            );
            let text = stdout(&output);
            let dir = text
                .lines()
                .find_map(|line| line.strip_prefix("ENVBUILD_FIXTURE_CORPUS="))
                .unwrap_or_else(|| panic!("scripts/fixtures printed no ENVBUILD_FIXTURE_CORPUS"));
            PathBuf::from(dir)
        }
    };
    let pinned = fs_err::read_to_string(repo_root().join("tests/data/corpus.txt"))
        .unwrap()
        .matches("--hash=sha256:")
        .count();
    let mut paths: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "whl"))
        .collect();
    paths.sort();
    assert_eq!(
        paths.len(),
        pinned,
        "{} holds {} wheels, tests/data/corpus.txt pins {pinned}",
        dir.display(),
        paths.len()
    );
    let wheels = paths
        .into_iter()
        .map(|path| {
            let dist_info = wheel_dist_info(&path);
            let prefix = format!("{}.data/scripts/", dist_info.trim_end_matches(".dist-info"));
            let data_scripts = wheel_entries(&path)
                .into_iter()
                .filter_map(|entry| {
                    let name = entry.strip_prefix(&prefix)?.to_owned();
                    (!name.is_empty() && !name.ends_with('/')).then_some((entry, name))
                })
                .map(|(entry, name)| {
                    let head = wheel_bytes(&path, &entry);
                    (name, head.starts_with(b"#!python"))
                })
                .collect();
            CorpusWheel {
                file_name: path.file_name().unwrap().to_string_lossy().into_owned(),
                purelib: root_is_purelib(&path),
                entry_points: script_entry_points(&path),
                data_scripts,
                dist_info,
                path,
            }
        })
        .collect();
    Corpus { dir, wheels }
}

/// One entry of a wheel, as bytes.
fn wheel_bytes(wheel: &Path, name: &str) -> Vec<u8> {
    use std::io::Read as _;
    let mut archive = zip::ZipArchive::new(fs_err::File::open(wheel).unwrap()).unwrap();
    let mut file = archive.by_name(name).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

// ---------------------------------------------------------------------------------------------
// The two installs

/// The corpus installed twice at the same prefix: by uv into a venv on this machine, and by
/// envbuild into an image (unpacked with umoci).
struct CorpusInstalls {
    /// The venv prefix, the same absolute path in both.
    prefix: String,
    /// uv's venv (the prefix itself, on this machine).
    reference: PathBuf,
    /// What `uv venv` made before any wheel was installed.
    skeleton: BTreeMap<String, TreeFile>,
    /// The prefix inside the unpacked image.
    ours: PathBuf,
    /// `oci:<layout>:corpus`.
    image: String,
    /// The image's config digest (podman's image ID).
    image_id: String,
    /// Scratch space for the tests (a HOME for launchers run on this machine).
    scratch: PathBuf,
    _dir: tempfile::TempDir,
}

fn installs() -> &'static CorpusInstalls {
    static INSTALLS: OnceLock<Result<CorpusInstalls, String>> = OnceLock::new();
    once(&INSTALLS, make_installs)
}

/// `uv` with no configuration, index or cache of the user's.
fn uv(cache: &Path) -> Command {
    let mut command = Command::new("uv");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("UV_") || key.starts_with("PIP_") || key == "VIRTUAL_ENV" {
            command.env_remove(&*key);
        }
    }
    command
        .env("UV_NO_CONFIG", "1")
        .env("UV_CACHE_DIR", cache)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1");
    command
}

fn make_installs() -> CorpusInstalls {
    require_tool("uv");
    let corpus = corpus();
    let dir = scratch_dir("corpus-");
    let prefix_path = dir.path().join("venv");
    let prefix = prefix_path.to_str().unwrap().to_owned();
    // Shebangs name `P/bin/python` directly only up to 127 bytes and without spaces; past that
    // both installers switch to a /bin/sh trampoline, which this test does not cover.
    assert!(
        prefix.len() <= 96 && !prefix.contains(char::is_whitespace),
        "the scratch prefix {prefix:?} is too long or has spaces; set CARGO_TARGET_TMPDIR shorter"
    );
    let uv_cache = dir.path().join("uv-cache");

    // The reference: uv's venv at P, with the whole corpus installed in one go.
    run_ok(
        uv(&uv_cache)
            .args(["venv", "--quiet", "--python", "python3.11"])
            .arg(&prefix_path),
    );
    let skeleton = tree(&prefix_path);
    run_ok(
        uv(&uv_cache)
            .args(["pip", "install", "--quiet", "--no-deps", "--no-index"])
            .args(["--link-mode", "copy", "--python"])
            .arg(prefix_path.join("bin/python"))
            .args(corpus.wheels.iter().map(|w| &w.path)),
    );

    // envbuild: lock the corpus project against a local index over the corpus folder, build
    // one image with `--prefix P`, unpack it.
    let index = IndexServer::start(&corpus.dir);
    let locked = lock_example(&index.url, &repo_root().join("examples/corpus"));
    let locked_hashes: BTreeSet<String> = read_pylock(&locked.pylock)
        .into_iter()
        .map(|wheel| wheel.sha256)
        .collect();
    let corpus_hashes: BTreeSet<String> = corpus
        .wheels
        .iter()
        .map(|w| sha256_hex(&fs_err::read(&w.path).unwrap()))
        .collect();
    assert_eq!(
        locked_hashes, corpus_hashes,
        "uv's lock of examples/corpus is not exactly the corpus wheels"
    );
    let layout = dir.path().join("layout");
    let image = format!("oci:{}:corpus", layout.display());
    envbuild()
        .args(["image", "--lock"])
        .arg(&locked.pylock)
        .args(["--base", &fixtures().base_ref, "--output", &image])
        .args(["--prefix", &prefix, "--cache-dir"])
        .arg(dir.path().join("cache"))
        .success();
    drop(index);
    // The build's cache (wheels and layer blobs) is not needed again: free the space now.
    fs_err::remove_dir_all(dir.path().join("cache")).unwrap();
    let rootfs = umoci_unpack(&layout, "corpus", &dir.path().join("bundle"));
    let ours = rootfs.join(prefix.trim_start_matches('/'));
    let image_id = skopeo_config_digest(&image);
    let scratch = dir.path().join("scratch");
    fs_err::create_dir(&scratch).unwrap();
    CorpusInstalls {
        prefix,
        reference: prefix_path,
        skeleton,
        ours,
        image,
        image_id,
        scratch,
        _dir: dir,
    }
}

/// The config digest of a local image, hex (podman names images by it).
fn skopeo_config_digest(image: &str) -> String {
    let manifest: serde_json::Value = serde_json::from_slice(&skopeo_raw_manifest(image)).unwrap();
    let digest = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("the manifest of {image} has no config digest: {manifest}"));
    digest.trim_start_matches("sha256:").to_owned()
}

// ---------------------------------------------------------------------------------------------
// The differential test

/// What the comparison saw, to assert that each case of corpus.txt occurred.
#[derive(Default)]
struct Seen {
    compared: usize,
    bytes: u64,
    launchers: usize,
    per_dist: BTreeMap<String, usize>,
    headers: Vec<String>,
    data: Vec<String>,
    rewritten_scripts: Vec<String>,
    gui_launchers: Vec<String>,
    dotted_launchers: Vec<String>,
    pth: Vec<String>,
    abi3: Vec<String>,
    platlib_wheels: Vec<String>,
    pkgutil_shared: Vec<String>,
    implicit_namespaces: Vec<String>,
    spaces: Vec<String>,
    plus_signs: Vec<String>,
    long_paths: Vec<String>,
    vendored_libs: Vec<String>,
    versioned_pip: Vec<String>,
}

#[test]
fn envbuild_installs_the_corpus_as_uv_does() {
    let corpus = corpus();
    let installs = installs();
    let shebang = format!("#!{}/bin/python", installs.prefix);
    let mut problems: Vec<String> = Vec::new();
    let mut seen = Seen::default();

    let mut reference = tree(&installs.reference);
    reference.retain(|path, _| !installs.skeleton.contains_key(path) && path != ".lock");
    let ours = tree(&installs.ours);

    // Which wheel put each file there, from uv's RECORDs (prefix-relative path -> dist-infos).
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dist_infos: BTreeSet<String> = reference
        .keys()
        .filter_map(|p| p.strip_prefix(&format!("{SITE}/")))
        .filter_map(|p| p.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .map(str::to_owned)
        .collect();
    for dist_info in &dist_infos {
        let rows = read_record(&installs.reference.join(SITE).join(dist_info).join("RECORD"))
            .unwrap_or_else(|e| panic!("uv's RECORD of {dist_info}: {e}"));
        for row in rows {
            let path = join_normalized(SITE, &row.path)
                .unwrap_or_else(|| panic!("uv's {dist_info}/RECORD lists {}", row.path));
            owners.entry(path).or_default().push(dist_info.clone());
        }
    }
    let by_dist_info: BTreeMap<&str, &CorpusWheel> = corpus
        .wheels
        .iter()
        .map(|w| (w.dist_info.as_str(), w))
        .collect();
    assert_eq!(
        dist_infos
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        by_dist_info.keys().copied().collect::<BTreeSet<_>>(),
        "uv installed other distributions than the corpus wheels"
    );

    // Launchers: every file uv put in bin/ that is not a wheel's own .data/scripts file
    // (the declared entry points, and pip's own `pip3.X`).
    let data_scripts: BTreeSet<String> = corpus
        .wheels
        .iter()
        .flat_map(|w| w.data_scripts.iter().map(|(name, _)| format!("bin/{name}")))
        .collect();
    let is_launcher = |path: &str| path.starts_with("bin/") && !data_scripts.contains(path);
    let mut declared: BTreeMap<String, (&CorpusWheel, &ScriptEntryPoint)> = BTreeMap::new();
    for wheel in &corpus.wheels {
        for point in &wheel.entry_points {
            declared.insert(format!("bin/{}", point.name), (wheel, point));
        }
    }
    for path in declared.keys() {
        if !reference.contains_key(path) {
            problems.push(format!("uv made no {path}, which an entry point declares"));
        }
    }

    for (path, theirs) in &reference {
        let site_relative = path.strip_prefix(&format!("{SITE}/"));
        if site_relative.is_some_and(is_installer_file) {
            continue;
        }
        let Some(owner) = owners.get(path) else {
            problems.push(format!("uv installed {path}, which no RECORD of uv lists"));
            continue;
        };
        let Some(mine) = ours.get(path) else {
            problems.push(format!("{path} (from {}) is missing", owner.join(", ")));
            continue;
        };
        if is_launcher(path) {
            if let Some(problem) = compare_launchers(
                &installs.reference.join(path),
                &installs.ours.join(path),
                *mine,
                &shebang,
            ) {
                problems.push(format!("{path}: {problem}"));
                continue;
            }
            seen.launchers += 1;
            match declared.get(path) {
                Some((_, point)) => {
                    if point.group == "gui_scripts" {
                        seen.gui_launchers.push(path.clone());
                    }
                    if point
                        .value
                        .split_once(':')
                        .is_some_and(|(_, o)| o.contains('.'))
                    {
                        seen.dotted_launchers
                            .push(format!("{path} = {}", point.value));
                    }
                }
                None if owner.iter().any(|d| d.starts_with("pip-")) => {
                    seen.versioned_pip.push(path.clone());
                }
                None => {}
            }
            continue;
        }
        if theirs.symlink != mine.symlink {
            problems.push(format!(
                "{path}: symlink {} here, {} in uv's install",
                mine.symlink, theirs.symlink
            ));
            continue;
        }
        let (their_bytes, my_bytes) = if theirs.symlink {
            let target = |root: &Path| {
                fs_err::read_link(root.join(path))
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            };
            (target(&installs.reference), target(&installs.ours))
        } else {
            (
                fs_err::read(installs.reference.join(path)).unwrap(),
                fs_err::read(installs.ours.join(path)).unwrap(),
            )
        };
        if their_bytes != my_bytes {
            problems.push(format!(
                "{path}: {} bytes differ from uv's {} bytes",
                my_bytes.len(),
                their_bytes.len()
            ));
            continue;
        }
        if theirs.executable() != mine.executable() {
            problems.push(format!(
                "{path}: mode {:o}, uv gives {:o} (the executable bit differs)",
                mine.mode, theirs.mode
            ));
            continue;
        }
        seen.compared += 1;
        seen.bytes += my_bytes.len() as u64;
        for dist_info in owner {
            *seen.per_dist.entry(dist_info.clone()).or_default() += 1;
        }
        note_cases(&mut seen, path, owner, &my_bytes, &shebang, corpus);
    }

    // Nothing in the prefix that uv did not install, but the venv files both tools make.
    for path in ours.keys() {
        let site_relative = path.strip_prefix(&format!("{SITE}/"));
        if !reference.contains_key(path)
            && !installs.skeleton.contains_key(path)
            && !site_relative.is_some_and(is_installer_file)
        {
            problems.push(format!("{path} is in the image but not in uv's install"));
        }
    }

    // RECORD: ours lists every file with its hash, and the same rows as uv's apart from the
    // installer files and the launchers' hashes.
    for dist_info in &dist_infos {
        problems.extend(compare_records(installs, dist_info, &is_launcher));
    }

    // Which cases occurred.
    for wheel in &corpus.wheels {
        if !wheel.purelib && seen.per_dist.get(&wheel.dist_info).is_some_and(|n| *n > 0) {
            seen.platlib_wheels.push(wheel.file_name.clone());
        }
    }
    note_namespaces(&mut seen, &owners, &reference);

    let wheels_covered = corpus
        .wheels
        .iter()
        .filter(|w| seen.per_dist.get(&w.dist_info).is_some_and(|n| *n > 0))
        .count();
    println!(
        "corpus fidelity: compared {} files ({} bytes) and {} launchers with uv's install, \
         from {wheels_covered} of {} wheels",
        seen.compared,
        seen.bytes,
        seen.launchers,
        corpus.wheels.len()
    );
    let cases: [(&str, &Vec<String>); 16] = [
        (".data/headers", &seen.headers),
        (".data/data", &seen.data),
        (
            ".data/scripts with #!python, rewritten",
            &seen.rewritten_scripts,
        ),
        ("gui_scripts launchers", &seen.gui_launchers),
        ("dotted entry-point objects", &seen.dotted_launchers),
        (".pth files", &seen.pth),
        ("abi3 extension modules", &seen.abi3),
        ("Root-Is-Purelib: false wheels", &seen.platlib_wheels),
        ("pkgutil __init__.py shared by wheels", &seen.pkgutil_shared),
        (
            "implicit namespaces across wheels",
            &seen.implicit_namespaces,
        ),
        ("paths with spaces", &seen.spaces),
        ("paths with +", &seen.plus_signs),
        ("site-packages paths over 100 bytes", &seen.long_paths),
        ("auditwheel .libs", &seen.vendored_libs),
        ("pip's pip3.X launcher", &seen.versioned_pip),
        (
            "wheels with a compared file",
            &seen.per_dist.keys().cloned().collect(),
        ),
    ];
    for (case, examples) in &cases {
        println!(
            "  {case}: {} (e.g. {:?})",
            examples.len(),
            examples.iter().take(3).collect::<Vec<_>>()
        );
    }

    assert!(
        problems.is_empty(),
        "{} differences from uv's install:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        corpus.wheels.len() >= 40,
        "the corpus has {} wheels",
        corpus.wheels.len()
    );
    assert_eq!(
        wheels_covered,
        corpus.wheels.len(),
        "some wheels had no file compared"
    );
    for (case, examples) in &cases {
        assert!(
            !examples.is_empty(),
            "no file of the corpus covered the case `{case}` (see tests/data/corpus.txt)"
        );
    }
    assert!(
        seen.implicit_namespaces.len() >= 2,
        "expected the zope and jaraco namespaces"
    );
    assert!(
        seen.compared >= 5000,
        "only {} files compared",
        seen.compared
    );
}

/// Compares two launchers of the same name: ours must be a regular executable file starting
/// with `shebang`, and import and call the same object as uv's.
fn compare_launchers(theirs: &Path, ours: &Path, mine: TreeFile, shebang: &str) -> Option<String> {
    if mine.symlink || !mine.executable() {
        return Some(format!(
            "the launcher is not an executable file (mode {:o})",
            mine.mode
        ));
    }
    let ours = match fs_err::read_to_string(ours) {
        Ok(text) => text,
        Err(e) => return Some(format!("the launcher cannot be read as text: {e}")),
    };
    let theirs = fs_err::read_to_string(theirs).unwrap();
    if ours.lines().next() != Some(shebang) {
        return Some(format!(
            "the launcher starts with {:?}, not {shebang:?}",
            ours.lines().next()
        ));
    }
    let essence = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|line| line.starts_with("from ") || line.starts_with("sys.exit("))
            .map(str::to_owned)
            .collect()
    };
    let (mine, uvs) = (essence(&ours), essence(&theirs));
    (mine != uvs || mine.len() != 2)
        .then(|| format!("the launcher imports and calls {mine:?}, uv's {uvs:?}"))
}

/// Compares our RECORD of `dist_info` with the disk and with uv's.
fn compare_records(
    installs: &CorpusInstalls,
    dist_info: &str,
    is_launcher: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let (mut problems, listed) = check_record_against_disk(&installs.ours, SITE, dist_info);
    for file in ["INSTALLER", "RECORD"] {
        if !listed.contains(&format!("{SITE}/{dist_info}/{file}")) {
            problems.push(format!("{dist_info}/RECORD does not list {file}"));
        }
    }
    let split = |root: &Path| -> Result<(BTreeSet<RecordRow>, BTreeSet<String>), String> {
        let mut rows = BTreeSet::new();
        let mut launchers = BTreeSet::new();
        for row in read_record(&root.join(SITE).join(dist_info).join("RECORD"))? {
            let path = join_normalized(SITE, &row.path).unwrap_or_default();
            if is_installer_file(&row.path) {
                continue;
            }
            if is_launcher(&path) {
                launchers.insert(path);
            } else {
                rows.insert(row);
            }
        }
        Ok((rows, launchers))
    };
    match (split(&installs.ours), split(&installs.reference)) {
        (Ok((rows, launchers)), Ok((uv_rows, uv_launchers))) => {
            for row in rows.difference(&uv_rows) {
                problems.push(format!("{dist_info}/RECORD has {row:?}, uv's has not"));
            }
            for row in uv_rows.difference(&rows) {
                problems.push(format!("{dist_info}/RECORD lacks uv's {row:?}"));
            }
            if launchers != uv_launchers {
                problems.push(format!(
                    "{dist_info}/RECORD lists the launchers {launchers:?}, uv's {uv_launchers:?}"
                ));
            }
        }
        (Err(e), _) | (_, Err(e)) => problems.push(format!("{dist_info}/RECORD: {e}")),
    }
    problems
}

/// Records which cases of corpus.txt the compared file `path` (prefix-relative) covers.
fn note_cases(
    seen: &mut Seen,
    path: &str,
    owners: &[String],
    bytes: &[u8],
    shebang: &str,
    corpus: &Corpus,
) {
    let owned = || path.to_owned();
    if path.starts_with("include/site/python3.11/") {
        seen.headers.push(owned());
    }
    if DATA_ROOTS.iter().any(|root| path.starts_with(root)) {
        seen.data.push(owned());
    }
    if let Some(name) = path.strip_prefix("bin/") {
        let from_python_script = corpus.wheels.iter().any(|w| {
            owners.contains(&w.dist_info)
                && w.data_scripts
                    .iter()
                    .any(|(n, python)| n == name && *python)
        });
        if from_python_script && bytes.starts_with(format!("{shebang}\n").as_bytes()) {
            seen.rewritten_scripts.push(owned());
        }
    }
    let Some(site_relative) = path.strip_prefix(&format!("{SITE}/")) else {
        return;
    };
    if site_relative.ends_with(".pth") && !site_relative.contains('/') {
        seen.pth.push(owned());
    }
    if site_relative.ends_with(".abi3.so") {
        seen.abi3.push(owned());
    }
    if site_relative.contains(' ') {
        seen.spaces.push(owned());
    }
    if site_relative.contains('+') {
        seen.plus_signs.push(owned());
    }
    if site_relative.len() > 100 {
        seen.long_paths.push(owned());
    }
    if site_relative
        .split_once('/')
        .is_some_and(|(top, rest)| top.ends_with(".libs") && !rest.is_empty())
    {
        seen.vendored_libs.push(owned());
    }
    if owners.len() >= 2
        && site_relative.ends_with("/__init__.py")
        && String::from_utf8_lossy(bytes).contains("extend_path")
    {
        seen.pkgutil_shared
            .push(format!("{path} from {}", owners.join(" and ")));
    }
}

/// Records the top-level folders of site-packages without `__init__.py` whose files come from
/// two wheels or more (implicit namespace packages, PEP 420).
fn note_namespaces(
    seen: &mut Seen,
    owners: &BTreeMap<String, Vec<String>>,
    reference: &BTreeMap<String, TreeFile>,
) {
    let mut by_top: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (path, dists) in owners {
        if let Some((top, _)) = path
            .strip_prefix(&format!("{SITE}/"))
            .and_then(|p| p.split_once('/'))
            && !top.contains('.')
        {
            by_top
                .entry(top)
                .or_default()
                .extend(dists.iter().map(String::as_str));
        }
    }
    for (top, dists) in by_top {
        if dists.len() >= 2 && !reference.contains_key(&format!("{SITE}/{top}/__init__.py")) {
            let dists: Vec<&str> = dists.into_iter().collect();
            seen.implicit_namespaces
                .push(format!("{top}/ from {}", dists.join(", ")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running the corpus

/// What the driver script reports: import errors by module, and per launcher the flag that
/// was tried last, its exit code (`None` on a timeout) and the end of its stderr.
#[derive(Debug, serde::Deserialize)]
struct RunReport {
    imports: BTreeMap<String, Option<String>>,
    scripts: BTreeMap<String, (String, Option<i32>, String)>,
}

/// Python source that imports each module (in one process; a module that fails there is
/// tried again alone, so import order cannot matter) and runs each launcher of `bin` with
/// `--version`, then `--help` if that fails, and prints a [`RunReport`] as JSON on the line
/// starting with `CORPUS-REPORT `.
fn driver(modules: &[String], scripts: &[String]) -> String {
    let json = |items: &[String]| serde_json::to_string(items).unwrap();
    format!(
        r#"import importlib, json, os, subprocess, sys
modules = {modules}
scripts = {scripts}
bindir = os.path.join(sys.prefix, "bin")
imports = {{}}
for name in modules:
    try:
        importlib.import_module(name)
        imports[name] = None
    except BaseException as error:
        imports[name] = "%s: %s" % (type(error).__name__, error)
for name, error in list(imports.items()):
    if error is not None:
        alone = subprocess.run([sys.executable, "-c", "import " + name], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=120)
        lines = alone.stderr.decode(errors="replace").strip().splitlines()
        imports[name] = None if alone.returncode == 0 else (lines[-1] if lines else "exit %d" % alone.returncode)
results = {{}}
for name in scripts:
    for flag in ("--version", "--help"):
        try:
            run = subprocess.run([os.path.join(bindir, name), flag], stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=120)
            code, err = run.returncode, run.stderr.decode(errors="replace")[-3000:]
        except subprocess.TimeoutExpired:
            code, err = None, "timed out"
        if code == 0:
            break
    results[name] = [flag, code, err]
print("CORPUS-REPORT " + json.dumps({{"imports": imports, "scripts": results}}))
"#,
        modules = json(modules),
        scripts = json(scripts),
    )
}

fn parse_report(output: &std::process::Output, where_: &str) -> RunReport {
    let text = stdout(output);
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("CORPUS-REPORT "))
        .unwrap_or_else(|| {
            panic!(
                "the driver printed no report {where_} ({})\n--- stdout\n{text}\n--- stderr\n{}",
                output.status,
                stderr(output)
            )
        });
    serde_json::from_str(line).unwrap()
}

#[test]
fn every_module_and_script_of_the_corpus_runs_in_podman() {
    let corpus = corpus();
    let installs = installs();

    let mut modules: Vec<String> = corpus
        .wheels
        .iter()
        .flat_map(|w| top_level_modules(&w.path))
        .collect();
    modules.sort();
    modules.dedup();
    // Every launcher and script in the image's bin/, but the venv's python links.
    let scripts: Vec<String> = tree(&installs.ours.join("bin"))
        .into_iter()
        .filter(|(name, file)| !file.symlink && !name.starts_with("python"))
        .map(|(name, _)| name)
        .collect();
    assert!(modules.len() >= 60, "too few modules: {modules:?}");
    assert!(scripts.len() >= 20, "too few scripts: {scripts:?}");
    let script = driver(&modules, &scripts);
    let python = format!("{}/bin/python", installs.prefix);

    // The base image has no shell: run the venv's python directly.
    let output = podman_run_with(&installs.image, &[], &[&python, "-c", &script]);
    remove_podman_image(&installs.image_id);
    let in_image = parse_report(&output, "in the image");

    let mut host = Command::new(&python);
    for key in ["PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"] {
        host.env_remove(key);
    }
    let output = host
        .arg("-c")
        .arg(&script)
        .env("HOME", &installs.scratch)
        .current_dir(&installs.scratch)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let on_host = parse_report(&output, "in uv's venv");

    let mut problems = Vec::new();
    let mut imported = 0usize;
    for module in &modules {
        let error = in_image.imports.get(module).cloned().flatten();
        let uv_error = on_host.imports.get(module).cloned().flatten();
        match KNOWN_UNIMPORTABLE.iter().find(|(m, _)| m == module) {
            Some((_, reason)) => {
                for (who, error) in [("the image", &error), ("uv's venv", &uv_error)] {
                    if !error.as_deref().is_some_and(|e| e.contains(reason)) {
                        problems.push(format!(
                            "import {module} in {who}: expected a failure with {reason:?} \
                             (tests/corpus.rs KNOWN_UNIMPORTABLE), got {error:?}"
                        ));
                    }
                }
            }
            None => match (&error, &uv_error) {
                (None, None) => imported += 1,
                _ => problems.push(format!(
                    "import {module}: {} in the image, {} in uv's venv",
                    error.as_deref().unwrap_or("ok"),
                    uv_error.as_deref().unwrap_or("ok")
                )),
            },
        }
    }
    let mut ran = 0usize;
    for name in &scripts {
        let Some((flag, code, err)) = in_image.scripts.get(name) else {
            problems.push(format!("{name} was not run in the image"));
            continue;
        };
        let uv_code = on_host.scripts.get(name).map(|(_, code, _)| *code);
        match KNOWN_FAILING_SCRIPTS.iter().find(|(s, _)| s == name) {
            Some((_, reason)) => {
                if *code == Some(0) || !err.contains(reason) {
                    problems.push(format!(
                        "{name} {flag}: expected a failure with {reason:?} (tests/corpus.rs \
                         KNOWN_FAILING_SCRIPTS), got exit {code:?}:\n{err}"
                    ));
                }
            }
            None => {
                if *code != Some(0) {
                    problems.push(format!(
                        "{name} {flag} exited {code:?} in the image:\n{err}"
                    ));
                } else {
                    ran += 1;
                }
            }
        }
        if err.contains("ModuleNotFoundError") || err.contains("ImportError") {
            problems.push(format!(
                "{name} {flag} failed to import in the image:\n{err}"
            ));
        }
        if uv_code.map(|c| c == Some(0)) != Some(*code == Some(0)) {
            problems.push(format!(
                "{name}: exit {code:?} in the image, {uv_code:?} in uv's venv"
            ));
        }
    }
    println!(
        "corpus in podman: imported {imported} of {} modules, ran {ran} of {} launchers and scripts",
        modules.len(),
        scripts.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems running the corpus:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Removes the corpus image from podman's store by its ID: its venv path is new on every run,
/// so no other run shares it, and left there it would pile up.
fn remove_podman_image(id: &str) {
    let _ = Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(["image", "rm", "--force", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
