//! `docker-archive:` files: the tar that `docker load` and `podman load` read, in the
//! shape Docker 25 and later give `docker save` (standards §5.7): an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) plus the two files older loaders need:
//!
//! - `manifest.json`: `[{"Config":"blobs/sha256/<config>","Layers":["blobs/sha256/<layer>",
//!   …],"RepoTags":["myapp:1.0"]}]`, which Docker's graph-driver loader requires (moby
//!   `image/tarexport/load.go`) and containers/image's `docker-archive:` reads;
//! - `repositories`: `{"myapp":{"1.0":"<top layer>"}}`, the legacy tag map, written only
//!   when the image has a name (as `docker save` does).
//!
//! `index.json` has one entry, the manifest with its platform; when the image has a name
//! the entry carries `io.containerd.image.name` (the full name) and
//! `org.opencontainers.image.ref.name` (the tag), which Docker's containerd image store
//! and podman read. Layers stay gzip-compressed: both loaders decompress them and check
//! each one's diff_id against the config's `rootfs.diff_ids`.
//!
//! One platform per archive: the graph-driver loader filters by platform and the same
//! `RepoTags` on two images would clash. An archive is always written anew (it is one
//! image, not a collection of tags), and only over a file that is itself a
//! docker-archive, so a mistyped path never clobbers something else. This module makes
//! the files; `write` writes them with the blobs through the one archive writer.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Serialize;

use super::assemble::Image;
use super::descriptor::{Descriptor, annotation};
use super::error::{OciError, io_error};
use super::reference::familiar_name;
use crate::registry::RegistryReference;
use crate::repro::canonical_json;

/// The file Docker's loader starts from.
pub(crate) const MANIFEST_JSON: &str = "manifest.json";
/// The legacy tag map.
pub(crate) const REPOSITORIES: &str = "repositories";
/// containerd's annotation for an image's full name in `index.json`.
pub(crate) const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// One image of `manifest.json` (moby `manifestItem`); `Parent` and `LayerSources` are
/// omitted: envbuild writes neither legacy parents nor foreign layers.
#[derive(Serialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// What a docker-archive holds besides the layout's blobs and `oci-layout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerArchiveFiles {
    /// The one `index.json` entry: the manifest, with platform and name annotations.
    pub entry: Descriptor,
    /// `manifest.json`.
    pub manifest_json: Vec<u8>,
    /// `repositories`, when the image has a name.
    pub repositories: Option<Vec<u8>>,
}

/// The files of a docker-archive holding `image`, whose manifest descriptor (with its
/// platform) is `descriptor`, loaded as `name` (untagged when `None`).
pub(crate) fn docker_archive_files(
    image: &Image,
    descriptor: &Descriptor,
    name: Option<&RegistryReference>,
) -> DockerArchiveFiles {
    let blob_path = |digest: &crate::digest::Sha256Digest| format!("blobs/sha256/{}", digest.hex());
    let mut entry = descriptor.clone();
    let mut repo_tags = Vec::new();
    let mut repositories = None;
    if let Some(name) = name {
        let tag = name.tag_or_latest();
        entry
            .annotations
            .insert(CONTAINERD_IMAGE_NAME.to_string(), full_name(name));
        entry
            .annotations
            .insert(annotation::REF_NAME.to_string(), tag.to_string());
        let familiar = familiar_name(name);
        // `repositories` is keyed by the name without its tag, and points at the top
        // layer (moby `save.go`: the last layer's encoded digest).
        let repository = familiar
            .strip_suffix(&format!(":{tag}"))
            .unwrap_or(&familiar)
            .to_string();
        if let Some(top) = image.layers.last() {
            let map = BTreeMap::from([(
                repository,
                BTreeMap::from([(tag.to_string(), top.digest.hex())]),
            )]);
            repositories = Some(canonical_json(&map));
        }
        repo_tags.push(familiar);
    }
    let item = ManifestItem {
        config: blob_path(&image.config_digest),
        repo_tags,
        layers: image
            .layers
            .iter()
            .map(|layer| blob_path(&layer.digest))
            .collect(),
    };
    DockerArchiveFiles {
        entry,
        manifest_json: canonical_json(&[item]),
        repositories,
    }
}

/// `registry/repository:tag`, the full name containerd records.
fn full_name(name: &RegistryReference) -> String {
    format!("{}:{}", name.name(), name.tag_or_latest())
}

/// Refuse to replace what is at `path` unless it is nothing or a docker-archive (a tar
/// with `manifest.json` at its top). `reference` names the output in errors.
pub(crate) fn check_replaceable(path: &Path, reference: &str) -> Result<(), OciError> {
    let refuse = |reason: String| OciError::OutputNotALayout {
        reference: reference.to_string(),
        reason,
    };
    let file = match fs_err::File::open(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error(path)(error)),
        Ok(file) => file,
    };
    if file.metadata().map_err(io_error(path))?.is_dir() {
        return Err(refuse(format!(
            "`{}` is a folder, not an archive",
            path.display()
        )));
    }
    let not_an_archive = || {
        refuse(format!(
            "`{}` exists and is not a docker-archive",
            path.display()
        ))
    };
    let mut archive = tar::Archive::new(file);
    // Seeking skips the blobs' bytes: only the headers are read.
    let entries = archive.entries_with_seek().map_err(|_| not_an_archive())?;
    for entry in entries {
        let entry = entry.map_err(|_| not_an_archive())?;
        let entry_path = entry.path().map_err(|_| not_an_archive())?;
        let text = entry_path.to_string_lossy();
        if text.trim_start_matches("./") == MANIFEST_JSON {
            return Ok(());
        }
    }
    Err(not_an_archive())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::digest::Sha256Digest;
    use crate::oci::descriptor::media_type;
    use crate::platform::Platform;

    fn image() -> Image {
        let layer =
            |text: &str| Descriptor::of_bytes(media_type::OCI_LAYER_TAR_GZIP, text.as_bytes());
        Image {
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            config: b"{}".to_vec(),
            config_digest: Sha256Digest::of(b"{}"),
            manifest: b"manifest".to_vec(),
            manifest_digest: Sha256Digest::of(b"manifest"),
            layers: vec![layer("base"), layer("top")],
        }
    }

    fn descriptor(image: &Image) -> Descriptor {
        Descriptor {
            platform: Some(image.platform.clone()),
            ..Descriptor::of_bytes(media_type::OCI_MANIFEST, &image.manifest)
        }
    }

    #[test]
    fn ok_named_archive_files_as_docker_writes_them() {
        let image = image();
        let name: RegistryReference = "myapp:1.0".parse().unwrap();
        let files = docker_archive_files(&image, &descriptor(&image), Some(&name));
        let manifest: Value = serde_json::from_slice(&files.manifest_json).unwrap();
        let hex = |text: &str| Sha256Digest::of(text.as_bytes()).hex();
        assert_eq!(
            manifest,
            json!([{
                "Config": format!("blobs/sha256/{}", Sha256Digest::of(b"{}").hex()),
                "RepoTags": ["myapp:1.0"],
                "Layers": [format!("blobs/sha256/{}", hex("base")), format!("blobs/sha256/{}", hex("top"))],
            }])
        );
        let repositories: Value =
            serde_json::from_slice(files.repositories.as_deref().unwrap()).unwrap();
        assert_eq!(repositories, json!({"myapp": {"1.0": hex("top")}}));
        assert_eq!(
            files.entry.annotations,
            BTreeMap::from([
                (
                    CONTAINERD_IMAGE_NAME.to_string(),
                    "docker.io/library/myapp:1.0".to_string()
                ),
                (annotation::REF_NAME.to_string(), "1.0".to_string()),
            ])
        );
        assert_eq!(files.entry.platform, Some(image.platform.clone()));
        assert_eq!(files.entry.digest, image.manifest_digest);
    }

    #[test]
    fn ok_other_registry_names_keep_their_host() {
        let image = image();
        let name: RegistryReference = "localhost:5000/team/app:v2".parse().unwrap();
        let files = docker_archive_files(&image, &descriptor(&image), Some(&name));
        let manifest: Value = serde_json::from_slice(&files.manifest_json).unwrap();
        assert_eq!(
            manifest[0]["RepoTags"],
            json!(["localhost:5000/team/app:v2"])
        );
        let repositories: Value =
            serde_json::from_slice(files.repositories.as_deref().unwrap()).unwrap();
        assert!(
            repositories.get("localhost:5000/team/app").is_some(),
            "{repositories}"
        );
    }

    #[test]
    fn ok_unnamed_archive_has_no_tags() {
        let image = image();
        let files = docker_archive_files(&image, &descriptor(&image), None);
        let manifest: Value = serde_json::from_slice(&files.manifest_json).unwrap();
        assert_eq!(manifest[0]["RepoTags"], json!([]));
        assert_eq!(files.repositories, None);
        assert!(files.entry.annotations.is_empty());
    }

    #[test]
    fn err_refuses_to_replace_other_files() {
        let folder = tempfile::tempdir().unwrap();
        let missing = folder.path().join("new.tar");
        check_replaceable(&missing, "docker-archive:new.tar").unwrap();
        let error = check_replaceable(folder.path(), "docker-archive:x").unwrap_err();
        assert!(error.to_string().contains("is a folder"), "{error}");
        let notes = folder.path().join("notes.txt");
        fs_err::write(&notes, b"my notes, which are not a tar archive at all").unwrap();
        let error = check_replaceable(&notes, "docker-archive:notes.txt").unwrap_err();
        assert!(
            error.to_string().contains("is not a docker-archive"),
            "{error}"
        );
        // An OCI archive (no manifest.json) is not replaced either.
        let oci = folder.path().join("oci.tar");
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        builder
            .append_data(&mut header, "index.json", &b"{}"[..])
            .unwrap();
        fs_err::write(&oci, builder.into_inner().unwrap()).unwrap();
        assert!(check_replaceable(&oci, "docker-archive:oci.tar").is_err());
        let docker = folder.path().join("docker.tar");
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        builder
            .append_data(&mut header, "manifest.json", &b"[]"[..])
            .unwrap();
        fs_err::write(&docker, builder.into_inner().unwrap()).unwrap();
        check_replaceable(&docker, "docker-archive:docker.tar").unwrap();
    }
}
