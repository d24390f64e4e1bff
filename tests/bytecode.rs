//! `--compile-bytecode` on the real fixture wheels, with the host CPython 3.11: layers
//! are identical whether wheels compile one after another or all at once; every pyc is
//! PEP 552 unchecked-hash, listed in its wheel's RECORD with the right hash and size;
//! and the host interpreter imports the installed tree from the pycs without reading
//! the sources or rewriting a single pyc.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use envbuild::cache::{Cache, EntryKind};
use envbuild::digest::Sha256Digest;
use envbuild::layer::{LayerBlob, write_wheels_layer};
use envbuild::platform::PythonVersion;
use envbuild::repro::SourceDateEpoch;
use envbuild::wheel::{
    InstallScheme, PycCompiler, UNCHECKED_HASH_FLAGS, WheelInstall, plan_install, pyc_header,
};

const SITE: &str = "opt/venv/lib/python3.11/site-packages";

fn target() -> PythonVersion {
    PythonVersion {
        major: 3,
        minor: 11,
        patch: None,
    }
}

fn scheme() -> InstallScheme {
    InstallScheme {
        prefix: "/opt/venv".into(),
        python: PythonVersion {
            major: 3,
            minor: 11,
            patch: Some(2),
        },
        interpreter: "/usr/bin/python3.11".into(),
    }
}

fn compiler() -> PycCompiler {
    PycCompiler::find(target(), None).unwrap_or_else(|error| {
        panic!("{error} (the bytecode tests need a host CPython 3.11: run scripts/setup-tools)")
    })
}

fn plan_all() -> Vec<WheelInstall> {
    common::fixture_wheels()
        .iter()
        .map(|path| {
            let filename = path.file_name().unwrap().to_str().unwrap();
            plan_install(path, filename, &scheme()).unwrap_or_else(|error| panic!("{error}"))
        })
        .collect()
}

/// Plan every fixture wheel and compile its bytecode with `threads` workers.
fn plan_with_bytecode(compiler: &PycCompiler, threads: usize) -> Vec<WheelInstall> {
    let mut installs = plan_all();
    let chunk = installs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for group in installs.chunks_mut(chunk) {
            scope.spawn(move || {
                for install in group {
                    install
                        .add_bytecode(compiler)
                        .unwrap_or_else(|error| panic!("{error}"));
                }
            });
        }
    });
    installs
}

/// One layer per wheel, then one layer holding every wheel.
fn write_layers(installs: &[WheelInstall], cache: &Cache) -> (Vec<LayerBlob>, LayerBlob) {
    let epoch = SourceDateEpoch::from_seconds(1_700_000_000);
    let each = installs
        .iter()
        .map(|install| write_wheels_layer(&[install], epoch, cache).unwrap())
        .collect();
    let all: Vec<&WheelInstall> = installs.iter().collect();
    (each, write_wheels_layer(&all, epoch, cache).unwrap())
}

/// The files of a layer blob: path → (bytes, mode).
fn layer_files(cache: &Cache, blob: &LayerBlob) -> BTreeMap<String, (Vec<u8>, u32)> {
    let path = cache
        .lookup(EntryKind::Blob, &blob.digest, Some(blob.size))
        .expect("the layer is in the cache");
    let compressed = fs_err::read(path).unwrap();
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let mode = entry.header().mode().unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path, (bytes, mode));
    }
    files
}

#[test]
fn layers_identical_across_thread_counts() {
    let compiler = compiler();
    let sequential = plan_with_bytecode(&compiler, 1);
    let parallel = plan_with_bytecode(&compiler, 8);
    let first_folder = common::scratch_dir("bytecode-");
    let second_folder = common::scratch_dir("bytecode-");
    let first_cache = Cache::open(first_folder.path()).unwrap();
    let second_cache = Cache::open(second_folder.path()).unwrap();
    let (first_each, first_all) = write_layers(&sequential, &first_cache);
    let (second_each, second_all) = write_layers(&parallel, &second_cache);
    for ((install, first), second) in sequential.iter().zip(&first_each).zip(&second_each) {
        assert_eq!(first, second, "layer of {}", install.filename());
    }
    assert_eq!(first_all, second_all);

    // Bytecode changes the layers: the same wheels without it give other digests.
    let plain = plan_all();
    let (plain_each, _) = write_layers(&plain, &first_cache);
    let yaml = sequential
        .iter()
        .position(|install| install.name().as_str() == "pyyaml")
        .unwrap();
    assert_ne!(plain_each[yaml], first_each[yaml]);
    assert!(!compiler.identity().is_empty());
}

#[test]
fn pycs_are_unchecked_hash_and_recorded() {
    let compiler = compiler();
    let installs = plan_with_bytecode(&compiler, 2);
    let folder = common::scratch_dir("bytecode-");
    let cache = Cache::open(folder.path()).unwrap();
    for install in &installs {
        let blob = write_wheels_layer(&[install], SourceDateEpoch::default(), &cache).unwrap();
        let files = layer_files(&cache, &blob);
        let record_path = files
            .keys()
            .find(|path| path.starts_with(SITE) && path.ends_with(".dist-info/RECORD"))
            .unwrap_or_else(|| panic!("{} has a RECORD", install.filename()))
            .clone();
        let record = String::from_utf8(files[&record_path].0.clone()).unwrap();
        let rows: BTreeMap<&str, (&str, &str)> = record
            .lines()
            .map(|line| {
                let mut fields = line.rsplitn(3, ',');
                let size = fields.next().unwrap();
                let hash = fields.next().unwrap();
                (fields.next().unwrap(), (hash, size))
            })
            .collect();
        let sources: Vec<&String> = files
            .keys()
            .filter(|path| path.starts_with(SITE) && path.ends_with(".py"))
            .collect();
        let mut pycs = 0;
        for source in &sources {
            let pyc = compiler.pyc_path(source).unwrap();
            let Some((bytes, mode)) = files.get(&pyc) else {
                panic!("{}: no pyc for {source}", install.filename());
            };
            pycs += 1;
            assert_eq!(*mode, 0o644, "{pyc}");
            let (magic, flags, hash) = pyc_header(bytes).unwrap();
            assert_eq!(flags, UNCHECKED_HASH_FLAGS, "{pyc}");
            assert_eq!(&magic[2..], b"\r\n", "{pyc}");
            assert_ne!(hash, [0; 8], "{pyc}");
            let relative = pyc.strip_prefix(&format!("{SITE}/")).unwrap();
            let digest = Sha256Digest::of(bytes);
            assert_eq!(
                rows.get(relative),
                Some(&(digest.record().as_str(), bytes.len().to_string().as_str())),
                "{}: RECORD row of {relative}",
                install.filename()
            );
        }
        // Scripts in bin are never compiled; every file in the layer is in RECORD.
        assert!(
            files
                .keys()
                .filter(|path| path.ends_with(".pyc"))
                .all(|path| path.starts_with(SITE) && path.contains("/__pycache__/"))
        );
        assert_eq!(
            files.keys().filter(|path| path.ends_with(".pyc")).count(),
            pycs,
            "{}",
            install.filename()
        );
        for path in files.keys() {
            let relative = if let Some(inside) = path.strip_prefix(&format!("{SITE}/")) {
                inside.to_string()
            } else {
                format!("../../../{}", path.strip_prefix("opt/venv/").unwrap())
            };
            assert!(rows.contains_key(relative.as_str()), "{relative} in RECORD");
        }
    }
    let flask = installs
        .iter()
        .find(|install| install.name().as_str() == "flask")
        .unwrap();
    assert!(
        flask
            .files()
            .any(|(path, _)| path == format!("{SITE}/flask/__pycache__/app.cpython-311.pyc"))
    );
}

/// Every pyc under `root` with its bytes and mtime.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs_err::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let metadata = fs_err::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "pyc") {
                found.insert(
                    path.clone(),
                    (fs_err::read(&path).unwrap(), metadata.modified().unwrap()),
                );
            }
        }
    }
    found
}

#[test]
fn host_python_imports_from_pycs_without_rewriting() {
    let compiler = compiler();
    let installs = plan_with_bytecode(&compiler, 4);
    let folder = common::scratch_dir("bytecode-");
    let cache = Cache::open(&folder.path().join("cache")).unwrap();
    let all: Vec<&WheelInstall> = installs.iter().collect();
    let blob = write_wheels_layer(&all, SourceDateEpoch::from_seconds(1), &cache).unwrap();
    let root = folder.path().join("root");
    for (path, (bytes, _)) in layer_files(&cache, &blob) {
        let destination = root.join(&path);
        fs_err::create_dir_all(destination.parent().unwrap()).unwrap();
        fs_err::write(&destination, bytes).unwrap();
    }
    let site = root.join(SITE);
    // Unchecked-hash pycs are used without looking at the source: break two sources
    // to prove the imports below come from the pycs.
    for source in ["yaml/__init__.py", "flask/__init__.py"] {
        fs_err::write(
            site.join(source),
            "raise ImportError('the source was read')\n",
        )
        .unwrap();
    }
    let before = snapshot(&root);
    assert!(before.len() > 100, "{} pycs", before.len());
    // Old enough that a rewrite would show in the mtime.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let output = Command::new(compiler.executable())
        .args([
            "-s",
            "-c",
            "import sys, yaml, flask, requests, jinja2, markupsafe, werkzeug, click; \
             assert yaml.safe_load('a: [1, 2]') == {'a': [1, 2]}; \
             print(flask.__file__)",
        ])
        .env("PYTHONPATH", &site)
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPYCACHEPREFIX")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = snapshot(&root);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no pyc added or removed"
    );
    for (path, (bytes, modified)) in &before {
        let (bytes_after, modified_after) = &after[path];
        assert!(
            bytes == bytes_after && modified == modified_after,
            "{} was rewritten",
            path.display()
        );
    }
}
