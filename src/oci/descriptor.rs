//! Descriptors and media types (image-spec `descriptor.md`, `media-types.md`): the
//! typed pointer to a blob that manifests, indexes and `index.json` are made of.
//!
//! Maps are `BTreeMap`s so that serializing a descriptor is deterministic (oci-spec's
//! `HashMap`s are not; standards §0 rule 7).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Sha256Digest;
use crate::platform::Platform;

/// OCI and Docker media types envbuild reads or writes.
pub mod media_type {
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed OCI layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// gzip-compressed OCI layer: what envbuild writes.
    pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// zstd-compressed OCI layer.
    pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Deprecated non-distributable OCI layer (read only).
    pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// Docker schema 2 manifest list (the Docker index).
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker schema 1 manifest (not supported).
    pub const DOCKER_MANIFEST_SCHEMA1: &str =
        "application/vnd.docker.distribution.manifest.v1+json";
    /// Signed Docker schema 1 manifest (not supported).
    pub const DOCKER_MANIFEST_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker uncompressed layer (rare).
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker foreign (non-distributable) gzip layer.
    pub const DOCKER_FOREIGN_LAYER_TAR_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// Whether `media_type` is an image index (OCI) or manifest list (Docker).
    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }

    /// Whether `media_type` is an image manifest (OCI or Docker schema 2).
    pub fn is_manifest(media_type: &str) -> bool {
        media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
    }

    /// Whether `media_type` is an image config (OCI or Docker).
    pub fn is_config(media_type: &str) -> bool {
        media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
    }

    /// Whether `media_type` is a filesystem layer envbuild can stack on.
    pub fn is_layer(media_type: &str) -> bool {
        [
            OCI_LAYER_TAR,
            OCI_LAYER_TAR_GZIP,
            OCI_LAYER_TAR_ZSTD,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
            DOCKER_LAYER_TAR_GZIP,
            DOCKER_LAYER_TAR,
            DOCKER_FOREIGN_LAYER_TAR_GZIP,
        ]
        .contains(&media_type)
    }

    /// The OCI equivalent of a Docker layer media type (image-spec `media-types.md`,
    /// compatibility matrix); other types are returned unchanged.
    pub fn oci_layer_equivalent(media_type: &str) -> &str {
        match media_type {
            DOCKER_LAYER_TAR_GZIP => OCI_LAYER_TAR_GZIP,
            DOCKER_LAYER_TAR => OCI_LAYER_TAR,
            DOCKER_FOREIGN_LAYER_TAR_GZIP => OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
            other => other,
        }
    }
}

/// Annotation keys (image-spec `annotations.md`).
pub mod annotation {
    /// Tag of an `index.json` entry in an image layout.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// Creation time, RFC 3339.
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// Digest of the base image's manifest.
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    /// Reference of the base image.
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
}

/// An OCI content descriptor: media type, digest and size of a blob, and optionally
/// the platform it is for and annotations. `urls`, `data` and `artifactType` are not
/// kept (envbuild neither reads nor writes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced blob.
    pub media_type: String,
    /// SHA-256 of the blob's bytes.
    pub digest: Sha256Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The platform of the referenced manifest (in indexes).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_platform",
        deserialize_with = "deserialize_platform"
    )]
    pub platform: Option<Platform>,
    /// Annotations; omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `bytes` with no platform and no annotations.
    pub fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: Sha256Digest::of(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation (a layout's tag), if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(annotation::REF_NAME)
            .map(String::as_str)
    }
}

/// The JSON form of a platform (image-spec `image-index.md`). `os.version` and
/// `os.features` are read and ignored: they only matter for Windows images.
#[derive(Serialize, Deserialize)]
struct PlatformJson {
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

fn serialize_platform<S: Serializer>(
    platform: &Option<Platform>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    platform
        .as_ref()
        .map(|platform| PlatformJson {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
        })
        .serialize(serializer)
}

fn deserialize_platform<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Platform>, D::Error> {
    let json = Option::<PlatformJson>::deserialize(deserializer)?;
    Ok(json.map(|json| Platform {
        os: json.os,
        architecture: json.architecture,
        variant: json.variant.filter(|variant| !variant.is_empty()),
    }))
}

/// Whether a platform found in an image satisfies the wanted one: same OS and
/// architecture, and the same variant after normalizing the defaults containerd
/// applies (`arm64` means `arm64/v8`, `arm` means `arm/v7`, `amd64` means `amd64/v1`).
pub fn platform_matches(found: &Platform, wanted: &Platform) -> bool {
    normalize(found) == normalize(wanted)
}

fn normalize(platform: &Platform) -> (String, String, Option<String>) {
    let architecture = match platform.architecture.as_str() {
        "aarch64" => "arm64",
        "x86_64" | "x86-64" => "amd64",
        other => other,
    };
    let variant = platform
        .variant
        .as_deref()
        .filter(|variant| !variant.is_empty());
    let variant = match (architecture, variant) {
        ("arm64", Some("v8")) | ("amd64", Some("v1")) => None,
        ("arm", None) => Some("v7"),
        (_, variant) => variant,
    };
    (
        platform.os.clone(),
        architecture.to_string(),
        variant.map(str::to_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    #[test]
    fn ok_descriptor_json_omits_empty() {
        let descriptor = Descriptor::of_bytes(media_type::OCI_CONFIG, b"{}");
        let json = String::from_utf8(crate::repro::canonical_json(&descriptor)).unwrap();
        assert_eq!(
            json,
            r#"{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.config.v1+json","size":2}"#
        );
    }

    #[test]
    fn ok_descriptor_round_trips_platform_and_annotations() {
        let text = r#"{"annotations":{"org.opencontainers.image.ref.name":"v1"},"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"architecture":"arm64","os":"linux","variant":"v8"},"size":2}"#;
        let descriptor: Descriptor = serde_json::from_str(text).unwrap();
        assert_eq!(
            descriptor.platform,
            Some(platform("linux", "arm64", Some("v8")))
        );
        assert_eq!(descriptor.ref_name(), Some("v1"));
        assert_eq!(crate::repro::canonical_json(&descriptor), text.as_bytes());
    }

    #[test]
    fn ok_unknown_descriptor_fields_are_ignored() {
        let text = r#"{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"urls":["u"],"platform":{"os":"windows","architecture":"amd64","os.version":"10"}}"#;
        let descriptor: Descriptor = serde_json::from_str(text).unwrap();
        assert_eq!(
            descriptor.platform,
            Some(platform("windows", "amd64", None))
        );
    }

    #[test]
    fn platform_variant_defaults() {
        assert!(platform_matches(
            &platform("linux", "arm64", Some("v8")),
            &platform("linux", "arm64", None)
        ));
        assert!(platform_matches(
            &platform("linux", "arm64", None),
            &platform("linux", "arm64", Some("v8"))
        ));
        assert!(platform_matches(
            &platform("linux", "arm", Some("v7")),
            &platform("linux", "arm", None)
        ));
        assert!(!platform_matches(
            &platform("linux", "arm", Some("v6")),
            &platform("linux", "arm", None)
        ));
        assert!(!platform_matches(
            &platform("linux", "amd64", None),
            &platform("linux", "arm64", None)
        ));
        assert!(!platform_matches(
            &platform("windows", "amd64", None),
            &platform("linux", "amd64", None)
        ));
    }

    #[test]
    fn docker_layer_types_convert() {
        assert_eq!(
            media_type::oci_layer_equivalent(media_type::DOCKER_LAYER_TAR_GZIP),
            media_type::OCI_LAYER_TAR_GZIP
        );
        assert_eq!(
            media_type::oci_layer_equivalent(media_type::OCI_LAYER_TAR_ZSTD),
            media_type::OCI_LAYER_TAR_ZSTD
        );
    }
}
