//! Assembling the new image: its config (see [`super::config`]) and its manifest
//! (image-spec `manifest.md`), as canonical JSON whose digests are those of the exact
//! bytes.

use std::collections::BTreeMap;

use super::config::assemble_config;
use super::descriptor::{Descriptor, annotation, media_type};
use super::error::OciError;
use super::layout::BaseImage;
use super::manifest::ImageManifest;
use crate::digest::Sha256Digest;
use crate::platform::Platform;
use crate::repro::{SourceDateEpoch, canonical_json};

/// Default install prefix of the virtual environment.
pub const DEFAULT_VENV: &str = "/opt/venv";

/// What the user sets on the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSettings {
    /// Variables to set, in order; a later value for a key wins. Applied after `PATH`
    /// and `VIRTUAL_ENV`, so they may override those too.
    pub env: Vec<(String, String)>,
    /// `Entrypoint`; setting it without `cmd` clears the base's `Cmd`, as Docker does.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `WorkingDir`.
    pub workdir: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// Labels, merged over the base's.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations, merged over envbuild's own.
    pub annotations: BTreeMap<String, String>,
    /// The virtual environment's path in the image (default [`DEFAULT_VENV`]).
    pub venv: String,
    /// The base image's name for `org.opencontainers.image.base.name` (omitted when
    /// empty).
    pub base_name: String,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            workdir: None,
            user: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            venv: DEFAULT_VENV.to_string(),
            base_name: String::new(),
        }
    }
}

/// A layer envbuild built, whose compressed blob is in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    /// SHA-256 of the uncompressed tar.
    pub diff_id: Sha256Digest,
    /// SHA-256 of the gzip blob.
    pub digest: Sha256Digest,
    /// Size of the gzip blob.
    pub size: u64,
    /// The history entry's `created_by`, e.g. `envbuild: install numpy==2.2.3`.
    pub created_by: String,
}

/// An assembled single-platform image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The platform it runs on.
    pub platform: Platform,
    /// The config's exact bytes.
    pub config: Vec<u8>,
    /// Digest of [`Image::config`].
    pub config_digest: Sha256Digest,
    /// The manifest's exact bytes.
    pub manifest: Vec<u8>,
    /// Digest of [`Image::manifest`].
    pub manifest_digest: Sha256Digest,
    /// The manifest's layer descriptors: the base's, then the new ones.
    pub layers: Vec<Descriptor>,
}

/// Build the config and manifest of `base` plus `layers`, with `settings`, at time
/// `epoch`. Nothing is written: [`super::write_images`] stores the config and
/// manifest and writes the output.
pub fn assemble(
    base: &BaseImage,
    layers: &[NewLayer],
    settings: &ImageSettings,
    epoch: SourceDateEpoch,
) -> Result<Image, OciError> {
    if base.layers.len() != base.diff_ids.len() {
        return Err(OciError::InvalidBaseConfig {
            reference: base.reference.clone(),
            reason: format!(
                "it has {} layers but {} `rootfs.diff_ids`",
                base.layers.len(),
                base.diff_ids.len()
            ),
        });
    }
    let config = assemble_config(base, layers, settings, epoch).map_err(|reason| {
        OciError::InvalidBaseConfig {
            reference: base.reference.clone(),
            reason,
        }
    })?;
    let config = canonical_json(&config);
    let config_descriptor = Descriptor::of_bytes(media_type::OCI_CONFIG, &config);

    // The manifest is OCI, so Docker layer types become their OCI equivalents; the
    // bytes, and so the digests, stay the same.
    let layer_descriptors: Vec<Descriptor> = base
        .layers
        .iter()
        .map(|layer| Descriptor {
            media_type: media_type::oci_layer_equivalent(&layer.media_type).to_string(),
            ..layer.clone()
        })
        .chain(layers.iter().map(|layer| Descriptor {
            media_type: media_type::OCI_LAYER_TAR_GZIP.to_string(),
            digest: layer.digest,
            size: layer.size,
            platform: None,
            annotations: BTreeMap::new(),
        }))
        .collect();

    let mut annotations = BTreeMap::from([
        (annotation::CREATED.to_string(), epoch.rfc3339()),
        (
            annotation::BASE_DIGEST.to_string(),
            base.manifest_digest.oci(),
        ),
    ]);
    if !settings.base_name.is_empty() {
        annotations.insert(
            annotation::BASE_NAME.to_string(),
            settings.base_name.clone(),
        );
    }
    annotations.extend(
        settings
            .annotations
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );

    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: layer_descriptors.clone(),
        subject: None,
        annotations,
    };
    let manifest = canonical_json(&manifest);
    Ok(Image {
        platform: base.platform.clone(),
        config_digest: config_descriptor.digest,
        config,
        manifest_digest: Sha256Digest::of(&manifest),
        manifest,
        layers: layer_descriptors,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn digest(text: &str) -> Sha256Digest {
        Sha256Digest::of(text.as_bytes())
    }

    fn base(config: Value, layers: usize) -> BaseImage {
        BaseImage {
            reference: "oci:/images/python:3.12".to_string(),
            manifest_digest: digest("base manifest"),
            config,
            layers: (0..layers)
                .map(|index| Descriptor {
                    media_type: media_type::DOCKER_LAYER_TAR_GZIP.to_string(),
                    digest: digest(&format!("layer {index}")),
                    size: 100 + index as u64,
                    platform: None,
                    annotations: BTreeMap::from([("x".to_string(), "kept".to_string())]),
                })
                .collect(),
            diff_ids: (0..layers)
                .map(|index| digest(&format!("diff {index}")))
                .collect(),
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
        }
    }

    fn python_config() -> Value {
        json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "docker_version": "24.0.0",
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"],
                "Cmd": ["python3"],
                "Labels": {"maintainer": "base", "keep": "yes"},
                "ExposedPorts": {"8080/tcp": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": [digest("diff 0").oci()]},
            "history": [
                {"created_by": "ADD rootfs", "created": "2024-01-01T00:00:00Z"},
                {"created_by": "ENV LANG=C.UTF-8", "empty_layer": true}
            ]
        })
    }

    fn new_layer(name: &str) -> NewLayer {
        NewLayer {
            diff_id: digest(&format!("new diff {name}")),
            digest: digest(&format!("new blob {name}")),
            size: 42,
            created_by: format!("envbuild: install {name}"),
        }
    }

    fn settings() -> ImageSettings {
        ImageSettings {
            base_name: "example.test/python:3.12".to_string(),
            ..ImageSettings::default()
        }
    }

    fn config_of(image: &Image) -> Value {
        serde_json::from_slice(&image.config).unwrap()
    }

    #[test]
    fn ok_config_keeps_base_and_adds_venv() {
        let epoch = SourceDateEpoch::from_seconds(1_700_000_000);
        let image = assemble(
            &base(python_config(), 1),
            &[new_layer("a"), new_layer("b")],
            &settings(),
            epoch,
        )
        .unwrap();
        let config = config_of(&image);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["docker_version"], "24.0.0", "unknown fields survive");
        assert_eq!(config["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(
            config["config"]["Env"],
            json!([
                "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin",
                "LANG=C.UTF-8",
                "VIRTUAL_ENV=/opt/venv"
            ])
        );
        assert_eq!(config["config"]["Cmd"], json!(["python3"]));
        assert_eq!(
            config["rootfs"],
            json!({"type": "layers", "diff_ids": [
                digest("diff 0").oci(), digest("new diff a").oci(), digest("new diff b").oci()
            ]})
        );
        let history = config["history"].as_array().unwrap();
        assert_eq!(history.len(), 4);
        assert_eq!(
            history[2],
            json!({
                "created": "2023-11-14T22:13:20Z",
                "created_by": "envbuild: install a",
                "comment": format!("envbuild {}", env!("CARGO_PKG_VERSION"))
            })
        );
        assert_eq!(image.config_digest, Sha256Digest::of(&image.config));
        assert_eq!(image.manifest_digest, Sha256Digest::of(&image.manifest));
    }

    #[test]
    fn ok_json_is_canonical() {
        let image = assemble(
            &base(python_config(), 1),
            &[new_layer("a")],
            &settings(),
            SourceDateEpoch::default(),
        )
        .unwrap();
        for bytes in [&image.config, &image.manifest] {
            let value: Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(
                &serde_json::to_vec(&value).unwrap(),
                bytes,
                "compact, keys sorted"
            );
            assert!(!bytes.ends_with(b"\n"));
        }
        let again = assemble(
            &base(python_config(), 1),
            &[new_layer("a")],
            &settings(),
            SourceDateEpoch::default(),
        )
        .unwrap();
        assert_eq!(again, image);
    }

    #[test]
    fn ok_entrypoint_without_cmd_clears_cmd() {
        let settings = ImageSettings {
            entrypoint: Some(vec!["/opt/venv/bin/app".to_string()]),
            workdir: Some("/srv".to_string()),
            user: Some("1000:1000".to_string()),
            labels: BTreeMap::from([("maintainer".to_string(), "me".to_string())]),
            env: vec![("PYTHONUNBUFFERED".to_string(), "1".to_string())],
            ..settings()
        };
        let image = assemble(
            &base(python_config(), 1),
            &[],
            &settings,
            SourceDateEpoch::default(),
        )
        .unwrap();
        let process = &config_of(&image)["config"];
        assert_eq!(process["Entrypoint"], json!(["/opt/venv/bin/app"]));
        assert!(process.get("Cmd").is_none());
        assert_eq!(process["WorkingDir"], "/srv");
        assert_eq!(process["User"], "1000:1000");
        assert_eq!(
            process["Labels"],
            json!({"maintainer": "me", "keep": "yes"})
        );
        assert_eq!(
            process["Env"].as_array().unwrap().last().unwrap(),
            "PYTHONUNBUFFERED=1"
        );
    }

    #[test]
    fn ok_entrypoint_and_cmd_together() {
        let settings = ImageSettings {
            entrypoint: Some(vec!["python".to_string()]),
            cmd: Some(vec!["-m".to_string(), "app".to_string()]),
            ..settings()
        };
        let image = assemble(
            &base(python_config(), 1),
            &[],
            &settings,
            SourceDateEpoch::default(),
        )
        .unwrap();
        let process = &config_of(&image)["config"];
        assert_eq!(process["Entrypoint"], json!(["python"]));
        assert_eq!(process["Cmd"], json!(["-m", "app"]));
        let settings = ImageSettings {
            cmd: Some(vec!["bash".to_string()]),
            ..self::settings()
        };
        let image = assemble(
            &base(python_config(), 1),
            &[],
            &settings,
            SourceDateEpoch::default(),
        )
        .unwrap();
        assert_eq!(config_of(&image)["config"]["Cmd"], json!(["bash"]));
        assert!(config_of(&image)["config"].get("Entrypoint").is_none());
    }

    #[test]
    fn ok_history_padded_to_base_layers() {
        let mut config = python_config();
        config["rootfs"]["diff_ids"] = json!([
            digest("diff 0").oci(),
            digest("diff 1").oci(),
            digest("diff 2").oci()
        ]);
        let image = assemble(
            &base(config, 3),
            &[new_layer("a")],
            &settings(),
            SourceDateEpoch::default(),
        )
        .unwrap();
        let history = config_of(&image)["history"].as_array().unwrap().clone();
        let non_empty: Vec<&Value> = history
            .iter()
            .filter(|entry| entry.get("empty_layer") != Some(&json!(true)))
            .collect();
        assert_eq!(
            non_empty.len(),
            4,
            "one non-empty entry per layer: {history:?}"
        );
        assert_eq!(non_empty[3]["created_by"], "envbuild: install a");
        assert!(
            non_empty[1]["comment"]
                .as_str()
                .unwrap()
                .contains("placeholder")
        );
    }

    #[test]
    fn ok_config_without_process_or_history() {
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
        let image = assemble(
            &base(config, 0),
            &[new_layer("a")],
            &settings(),
            SourceDateEpoch::default(),
        )
        .unwrap();
        let config = config_of(&image);
        assert_eq!(
            config["config"]["Env"][0],
            format!("PATH=/opt/venv/bin:{}", crate::oci::DEFAULT_PATH)
        );
        assert_eq!(config["history"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn ok_manifest_structure() {
        let settings = ImageSettings {
            annotations: BTreeMap::from([(
                "org.opencontainers.image.source".to_string(),
                "repo".to_string(),
            )]),
            ..settings()
        };
        let epoch = SourceDateEpoch::from_seconds(1_700_000_000);
        let image = assemble(
            &base(python_config(), 1),
            &[new_layer("a")],
            &settings,
            epoch,
        )
        .unwrap();
        let manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(
            manifest,
            json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": {
                    "mediaType": media_type::OCI_CONFIG,
                    "digest": image.config_digest.oci(),
                    "size": image.config.len()
                },
                "layers": [
                    {
                        "mediaType": media_type::OCI_LAYER_TAR_GZIP,
                        "digest": digest("layer 0").oci(),
                        "size": 100,
                        "annotations": {"x": "kept"}
                    },
                    {"mediaType": media_type::OCI_LAYER_TAR_GZIP, "digest": digest("new blob a").oci(), "size": 42}
                ],
                "annotations": {
                    "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
                    "org.opencontainers.image.base.digest": digest("base manifest").oci(),
                    "org.opencontainers.image.base.name": "example.test/python:3.12",
                    "org.opencontainers.image.source": "repo"
                }
            })
        );
        assert_eq!(image.layers.len(), 2);
    }

    #[test]
    fn err_base_config_not_extendable() {
        let mut config = python_config();
        config["config"] = json!("nope");
        let error = assemble(
            &base(config, 1),
            &[],
            &settings(),
            SourceDateEpoch::default(),
        )
        .unwrap_err();
        assert!(
            matches!(error, OciError::InvalidBaseConfig { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("`config` is not an object"),
            "{error}"
        );
    }
}
