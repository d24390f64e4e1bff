//! Inputs the tests make themselves, with no network and no fixture cache: small wheels
//! (written with the `zip` crate, stored, fixed timestamps, a RECORD that hashes them), a
//! pylock.toml naming them by path, and base image layouts holding a fake CPython 3.11.4
//! on glibc 2.36 (or no Python at all) in an uncompressed tar layer. Builds from them take
//! a fraction of a second, so tests of the CLI's rules need no real base image.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes))
}

fn sha256_record(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(bytes))
}

/// A file inside a wheel: its path and bytes.
pub type Member<'a> = (&'a str, &'a [u8]);

/// Writes a wheel with stored members, fixed timestamps and a RECORD that hashes them.
pub fn write_wheel(dir: &Path, filename: &str, dist_info: &str, members: &[Member<'_>]) -> PathBuf {
    use zip::write::SimpleFileOptions;
    let path = dir.join(filename);
    let mut writer = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut record = String::new();
    for (name, bytes) in members {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
        record.push_str(&format!(
            "{name},sha256={},{}\n",
            sha256_record(bytes),
            bytes.len()
        ));
    }
    let record_name = format!("{dist_info}/RECORD");
    record.push_str(&format!("{record_name},,\n"));
    writer.start_file(record_name, options).unwrap();
    writer.write_all(record.as_bytes()).unwrap();
    writer.finish().unwrap();
    path
}

/// The two wheels: `greet` (a module and a console script) and `shout` (a package).
pub fn write_wheels(dir: &Path) -> Vec<(String, String, PathBuf)> {
    fs_err::create_dir_all(dir).unwrap();
    let greet = write_wheel(
        dir,
        "greet-1.0-py3-none-any.whl",
        "greet-1.0.dist-info",
        &[
            ("greet.py", b"def main():\n    print('hello')\n"),
            (
                "greet-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: greet\nVersion: 1.0\nRequires-Dist: shout>=2\n",
            ),
            (
                "greet-1.0.dist-info/WHEEL",
                b"Wheel-Version: 1.0\nGenerator: envbuild-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            ),
            (
                "greet-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\ngreet = greet:main\n",
            ),
        ],
    );
    let shout = write_wheel(
        dir,
        "shout-2.1-py3-none-any.whl",
        "shout-2.1.dist-info",
        &[
            ("shout/__init__.py", b"def shout(text):\n    return text.upper()\n"),
            ("shout/data.txt", b"LOUD\n"),
            (
                "shout-2.1.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: shout\nVersion: 2.1\n",
            ),
            (
                "shout-2.1.dist-info/WHEEL",
                b"Wheel-Version: 1.0\nGenerator: envbuild-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            ),
        ],
    );
    vec![
        ("greet".into(), "1.0".into(), greet),
        ("shout".into(), "2.1".into(), shout),
    ]
}

/// A pylock.toml at `path` naming `wheels` by path relative to the lockfile's folder.
pub fn write_lock(path: &Path, wheels: &[(String, String, PathBuf)]) {
    let folder = path.parent().unwrap();
    let mut text = String::from(
        "lock-version = \"1.0\"\ncreated-by = \"envbuild-test\"\nrequires-python = \">=3.11\"\n",
    );
    for (name, version, wheel) in wheels {
        let bytes = fs_err::read(wheel).unwrap();
        let relative = pathdiff(wheel, folder);
        text.push_str(&format!(
            "\n[[packages]]\nname = \"{name}\"\nversion = \"{version}\"\nwheels = [{{ path = \"{relative}\", size = {}, hashes = {{ sha256 = \"{}\" }} }}]\n",
            bytes.len(),
            sha256_hex(&bytes)
        ));
    }
    fs_err::write(path, text).unwrap();
}

/// `target` relative to `base` (both absolute), with `..` where needed.
pub fn pathdiff(target: &Path, base: &Path) -> String {
    let target: Vec<_> = target.components().collect();
    let base: Vec<_> = base.components().collect();
    let common = target.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(
        target[common..]
            .iter()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// An uncompressed tar of `(path, bytes)` files and `(path, target)` symlinks.
pub fn tar_layer(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, path, *bytes).unwrap();
    }
    for (path, target) in links {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_mtime(0);
        builder.append_link(&mut header, path, target).unwrap();
    }
    builder.into_inner().unwrap()
}

pub fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    fs_err::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// What a synthetic base image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKind {
    /// A fake CPython 3.11.4 (`/usr/bin/python3.11`, its stdlib) on glibc 2.36.
    Python311,
    /// A fake CPython 3.11.4 where detection does not look (`/opt/python/bin`), on
    /// glibc 2.36: only `--interpreter` finds it.
    PythonElsewhere,
}

/// An OCI layout at `layout` whose tag `tag` is a one-layer linux/amd64 image holding
/// `kind`; returns the manifest digest.
pub fn write_base(layout: &Path, tag: &str, kind: BaseKind) -> String {
    fs_err::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs_err::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let libc: (&str, &[u8]) = (
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        b"\x7fELF\x00GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n\x00",
    );
    let layer = match kind {
        BaseKind::Python311 => tar_layer(
            &[
                libc,
                ("usr/bin/python3.11", b"\x7fELF\x00Python %s\x003.11.4\x00"),
                ("usr/lib/python3.11/os.py", b"# the standard library\n"),
            ],
            &[("usr/bin/python3", "python3.11")],
        ),
        BaseKind::PythonElsewhere => tar_layer(
            &[
                libc,
                (
                    "opt/python/bin/python3.11",
                    b"\x7fELF\x00Python %s\x003.11.4\x00",
                ),
                (
                    "opt/python/lib/python3.11/os.py",
                    b"# the standard library\n",
                ),
            ],
            &[],
        ),
    };
    let layer_digest = put_blob(layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(layout, &config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(layout, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs_err::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    manifest_digest
}

/// The layout at `layout` as an OCI archive at `archive`.
pub fn archive_layout(layout: &Path, archive: &Path) {
    let mut builder = tar::Builder::new(fs_err::File::create(archive).unwrap());
    builder.append_dir_all(".", layout).unwrap();
    builder.finish().unwrap();
}
