//! End to end through the OCI stage: a tiny base layout made here by hand is read,
//! extended with one new layer, written as `oci:` and `oci-archive:`, and checked by
//! independent tools (skopeo, umoci). The tools are required: a missing one fails the
//! test (scripts/setup-tools installs them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use envbuild::cache::Cache;
use envbuild::digest::Sha256Digest;
use envbuild::oci::{ImageReference, ImageSettings, NewLayer, assemble, read_base, write_images};
use envbuild::platform::Platform;
use envbuild::repro::{self, SourceDateEpoch};
use serde_json::{Value, json};

fn amd64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

/// A gzip tar layer of `files` (parents listed explicitly); returns blob and diff_id.
fn layer(entries: &[(&str, Option<&[u8]>)]) -> (Vec<u8>, Sha256Digest) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let epoch = SourceDateEpoch::default();
        match data {
            None => {
                let mut header = repro::tar_header(tar::EntryType::Directory, 0o755, 0, epoch);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Some(data) => {
                let mut header =
                    repro::tar_header(tar::EntryType::Regular, 0o644, data.len() as u64, epoch);
                builder.append_data(&mut header, path, *data).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    let mut gzip = repro::gzip_encoder(Vec::new());
    gzip.write_all(&tar).unwrap();
    (gzip.finish().unwrap(), Sha256Digest::of(&tar))
}

/// Write a blob into a layout folder and return its descriptor as JSON.
fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let digest = Sha256Digest::of(bytes);
    let folder = layout.join("blobs/sha256");
    fs_err::create_dir_all(&folder).unwrap();
    fs_err::write(folder.join(digest.hex()), bytes).unwrap();
    json!({"mediaType": media_type, "digest": digest.oci(), "size": bytes.len()})
}

/// A one-layer base image layout tagged `base`, written without envbuild's writer.
fn make_base(layout: &Path) {
    let (blob, diff_id) = layer(&[
        ("etc/", None),
        ("etc/hello.txt", Some(b"hello from the base\n")),
    ]);
    let layer = put_blob(layout, "application/vnd.oci.image.layer.v1.tar+gzip", &blob);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.oci()]},
        "history": [{"created_by": "hand-made base layer"}]
    });
    let config = put_blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec_pretty(&config).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer]
    });
    let mut entry = put_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec_pretty(&manifest).unwrap(),
    );
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": "base"});
    fs_err::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]});
    fs_err::write(
        layout.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
}

/// Run an external validator; a missing tool fails the test with a clear message.
fn run(tool: &str, args: &[&str]) -> String {
    let output = match Command::new(tool).args(args).output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{tool}` is not installed, but this test validates envbuild's output with it; \
             install it (scripts/setup-tools, or `apt-get install {tool}`)"
        ),
        Err(error) => panic!("cannot run `{tool}`: {error}"),
    };
    assert!(
        output.status.success(),
        "`{tool} {}` failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

struct Built {
    folder: tempfile::TempDir,
    cache: Cache,
    image: envbuild::oci::Image,
}

impl Built {
    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }
}

/// Read the base, add one layer, assemble.
fn build(marker: &[u8]) -> Built {
    let folder = tempfile::tempdir().unwrap();
    let base_layout = folder.path().join("base");
    make_base(&base_layout);
    let cache = Cache::open(&folder.path().join("cache")).unwrap();
    let reference: ImageReference = format!("oci:{}:base", base_layout.display())
        .parse()
        .unwrap();
    let base = read_base(&reference, Some(&amd64()), &cache).unwrap();
    assert_eq!(base.layers.len(), 1);

    let (blob, diff_id) = layer(&[
        ("opt/", None),
        ("opt/venv/", None),
        ("opt/venv/marker.txt", Some(marker)),
    ]);
    let digest = cache.insert_blob_bytes(&blob).unwrap();
    let new_layer = NewLayer {
        diff_id,
        digest,
        size: blob.len() as u64,
        created_by: "envbuild: install marker".into(),
    };
    let settings = ImageSettings {
        env: vec![("PYTHONUNBUFFERED".into(), "1".into())],
        cmd: Some(vec!["/opt/venv/bin/python".into()]),
        // A fixed name: the base's path is a temporary folder that differs per run.
        base_name: "example.test/base:1".into(),
        ..ImageSettings::default()
    };
    let image = assemble(
        &base,
        &[new_layer],
        &settings,
        SourceDateEpoch::from_seconds(1_700_000_000),
    )
    .unwrap();
    Built {
        folder,
        cache,
        image,
    }
}

fn skopeo_inspect(reference: &str) -> Value {
    serde_json::from_str(&run("skopeo", &["inspect", reference])).unwrap()
}

#[test]
fn layout_is_valid_for_skopeo_and_umoci() {
    let built = build(b"installed by envbuild\n");
    let out = built.path("out");
    let reference: ImageReference = format!("oci:{}:v1", out.display()).parse().unwrap();
    let digest =
        write_images(std::slice::from_ref(&built.image), &reference, &built.cache).unwrap();
    assert_eq!(digest, built.image.manifest_digest);

    let inspected = skopeo_inspect(&reference.to_string());
    assert_eq!(inspected["Digest"], digest.oci());
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspected["Created"], "2023-11-14T22:13:20Z");
    let env: Vec<&str> = inspected["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
            "VIRTUAL_ENV=/opt/venv",
            "PYTHONUNBUFFERED=1"
        ]
    );

    let bundle = built.path("bundle");
    let image_arg = format!("{}:v1", out.display());
    let bundle_arg = bundle.display().to_string();
    let mut args = vec!["unpack", "--image", &image_arg, &bundle_arg];
    if !is_root() {
        args.insert(1, "--rootless");
    }
    run("umoci", &args);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read(rootfs.join("etc/hello.txt")).unwrap(),
        b"hello from the base\n"
    );
    assert_eq!(
        fs_err::read(rootfs.join("opt/venv/marker.txt")).unwrap(),
        b"installed by envbuild\n"
    );
}

#[test]
fn archive_is_valid_for_skopeo() {
    let built = build(b"installed by envbuild\n");
    let out = built.path("image.tar");
    let reference: ImageReference = format!("oci-archive:{}:v1", out.display()).parse().unwrap();
    let digest =
        write_images(std::slice::from_ref(&built.image), &reference, &built.cache).unwrap();
    let inspected = skopeo_inspect(&reference.to_string());
    assert_eq!(inspected["Digest"], digest.oci());
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn writing_twice_gives_identical_bytes() {
    let built = build(b"same\n");
    let image = std::slice::from_ref(&built.image);
    let [first, second] = ["first", "second"].map(|name| built.path(name));
    for folder in [&first, &second] {
        let reference: ImageReference = format!("oci:{}:v1", folder.display()).parse().unwrap();
        write_images(image, &reference, &built.cache).unwrap();
        write_images(image, &reference, &built.cache).unwrap();
    }
    let digest_of = |path: &Path| Sha256Digest::of(&fs_err::read(path).unwrap());
    for file in ["index.json", "oci-layout"] {
        assert_eq!(
            digest_of(&first.join(file)),
            digest_of(&second.join(file)),
            "{file}"
        );
    }
    let blobs = |folder: &Path| {
        let mut names: Vec<String> = fs_err::read_dir(folder.join("blobs/sha256"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(blobs(&first), blobs(&second));

    let archive = built.path("image.tar");
    let reference: ImageReference = format!("oci-archive:{}:v1", archive.display())
        .parse()
        .unwrap();
    write_images(image, &reference, &built.cache).unwrap();
    let archive_digest = digest_of(&archive);
    write_images(image, &reference, &built.cache).unwrap();
    assert_eq!(digest_of(&archive), archive_digest);

    // A build elsewhere, from scratch, gives the same bytes too.
    let again = build(b"same\n");
    let other = again.path("image.tar");
    let reference: ImageReference = format!("oci-archive:{}:v1", other.display())
        .parse()
        .unwrap();
    write_images(std::slice::from_ref(&again.image), &reference, &again.cache).unwrap();
    assert_eq!(digest_of(&other), archive_digest);
}

#[test]
fn second_tag_keeps_the_first() {
    let first = build(b"first\n");
    let second = build(b"second\n");
    // Make the second image's layer available to the first build's cache.
    for layer in &second.image.layers {
        let path = second
            .cache
            .lookup(
                envbuild::cache::EntryKind::Blob,
                &layer.digest,
                Some(layer.size),
            )
            .unwrap();
        first
            .cache
            .insert_blob_bytes(&fs_err::read(path).unwrap())
            .unwrap();
    }
    let layout = first.path("out");
    let archive = first.path("image.tar");
    for (image, tag) in [(&first.image, "v1"), (&second.image, "v2")] {
        for text in [
            format!("oci:{}:{tag}", layout.display()),
            format!("oci-archive:{}:{tag}", archive.display()),
        ] {
            let reference: ImageReference = text.parse().unwrap();
            write_images(std::slice::from_ref(image), &reference, &first.cache).unwrap();
        }
    }
    for (image, tag) in [(&first.image, "v1"), (&second.image, "v2")] {
        for text in [
            format!("oci:{}:{tag}", layout.display()),
            format!("oci-archive:{}:{tag}", archive.display()),
        ] {
            assert_eq!(
                skopeo_inspect(&text)["Digest"],
                image.manifest_digest.oci(),
                "{text}"
            );
        }
    }
}
