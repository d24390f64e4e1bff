//! Helpers for the OCI unit tests: small layouts written by hand, independent of the
//! writer under test.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::descriptor::{Descriptor, media_type};
use crate::digest::Sha256Digest;
use crate::platform::Platform;
use crate::repro::{self, SourceDateEpoch};

/// A platform from its parts.
pub(crate) fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
    Platform {
        os: os.into(),
        architecture: architecture.into(),
        variant: variant.map(str::to_string),
    }
}

/// A gzip tar holding `files`; returns the blob and its diff_id.
pub(crate) fn gzip_layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Sha256Digest) {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = repro::tar_header(
            tar::EntryType::Regular,
            0o644,
            data.len() as u64,
            SourceDateEpoch::default(),
        );
        builder.append_data(&mut header, path, *data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut encoder = repro::gzip_encoder(Vec::new());
    encoder.write_all(&tar).unwrap();
    (encoder.finish().unwrap(), Sha256Digest::of(&tar))
}

/// Store a blob in a layout folder and describe it.
pub(crate) fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Descriptor {
    let folder = layout.join("blobs/sha256");
    fs_err::create_dir_all(&folder).unwrap();
    let descriptor = Descriptor::of_bytes(media_type, bytes);
    fs_err::write(folder.join(descriptor.digest.hex()), bytes).unwrap();
    descriptor
}

/// Store a one-layer image for `platform` (Docker media types when `docker`), and
/// return its manifest descriptor (with the platform set).
pub(crate) fn put_image(
    layout: &Path,
    platform: &Platform,
    file: &str,
    docker: bool,
) -> Descriptor {
    let (layer, diff_id) = gzip_layer(&[(file, b"hello\n")]);
    let (manifest_type, config_type, layer_type) = if docker {
        (
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG,
            media_type::DOCKER_LAYER_TAR_GZIP,
        )
    } else {
        (
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            media_type::OCI_LAYER_TAR_GZIP,
        )
    };
    let layer = put_blob(layout, layer_type, &layer);
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.oci()]},
        "history": [{"created_by": "test"}],
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = json!(variant);
    }
    let config = put_blob(layout, config_type, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config,
        "layers": [layer],
    });
    Descriptor {
        platform: Some(platform.clone()),
        ..put_blob(
            layout,
            manifest_type,
            &serde_json::to_vec_pretty(&manifest).unwrap(),
        )
    }
}

/// Store an index of `manifests` and return its descriptor.
pub(crate) fn put_index(layout: &Path, manifests: &[Descriptor]) -> Descriptor {
    let index =
        json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests});
    put_blob(
        layout,
        media_type::OCI_INDEX,
        &serde_json::to_vec(&index).unwrap(),
    )
}

/// A descriptor with the `ref.name` annotation set.
pub(crate) fn tagged(descriptor: &Descriptor, tag: &str) -> Descriptor {
    let mut descriptor = descriptor.clone();
    descriptor.annotations.insert(
        "org.opencontainers.image.ref.name".to_string(),
        tag.to_string(),
    );
    descriptor
}

/// Write `oci-layout` and an `index.json` listing `entries`.
pub(crate) fn finish_layout(layout: &Path, entries: &[Descriptor]) {
    fs_err::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs_err::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index: Value = json!({"schemaVersion": 2, "manifests": entries});
    fs_err::write(
        layout.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
}
