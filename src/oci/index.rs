//! The image index (image-spec `image-index.md`): a list of manifests, usually one per
//! platform. `index.json` at the root of a layout is one too. Also reads Docker
//! manifest lists, which have the same shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::Descriptor;

/// An image index. Unknown fields are dropped on reading; envbuild only writes
/// indexes it built itself (entries of an existing `index.json` are kept as raw JSON
/// by the writer, so nothing of theirs is lost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` (or the Docker equivalent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests (or nested indexes).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations; omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::descriptor::media_type;

    #[test]
    fn ok_serializes_canonically() {
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests: vec![],
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            crate::repro::canonical_json(&index),
            br#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
    }
}
