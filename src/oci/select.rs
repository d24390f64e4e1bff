//! Reading what every base-image reader needs from an index and a config, whatever the
//! transport (layout, archive or registry): the manifest for a platform, the config's
//! `rootfs.diff_ids` and the platform a config declares.

use crate::digest::Sha256Digest;
use crate::platform::Platform;

use super::descriptor::{Descriptor, platform_matches};

/// Why no manifest could be chosen from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The index has no entry at all (attestations aside).
    Empty,
    /// No entry matches the wanted platform; these are the platforms it has.
    NotFound(Vec<String>),
    /// No platform was asked for and the index has several; these are they.
    Required(Vec<String>),
}

/// Pick the index entry for `platform` (image-spec: "the first matching entry SHOULD be
/// used"); with no platform asked for, the only real entry. Attestation manifests
/// (buildx lists them with platform `unknown/unknown`) are never chosen. A lone entry
/// without a platform (e.g. a nested index) is followed; the caller checks the
/// config's platform at the end.
pub fn choose_platform(
    entries: &[Descriptor],
    platform: Option<&Platform>,
) -> Result<Descriptor, PlatformChoice> {
    let usable: Vec<&Descriptor> = entries
        .iter()
        .filter(|entry| {
            entry
                .platform
                .as_ref()
                .is_none_or(|platform| platform.os != "unknown")
        })
        .collect();
    let available = || {
        let mut platforms: Vec<String> = usable
            .iter()
            .filter_map(|entry| entry.platform.as_ref().map(ToString::to_string))
            .collect();
        platforms.sort();
        platforms.dedup();
        platforms
    };
    match platform {
        Some(wanted) => usable
            .iter()
            .find(|entry| {
                entry
                    .platform
                    .as_ref()
                    .is_some_and(|found| platform_matches(found, wanted))
            })
            .or_else(|| match usable.as_slice() {
                [only] if only.platform.is_none() => Some(only),
                _ => None,
            })
            .map(|entry| (*entry).clone())
            .ok_or_else(|| PlatformChoice::NotFound(available())),
        None => match usable.as_slice() {
            [] => Err(PlatformChoice::Empty),
            [only] => Ok((*only).clone()),
            _ => Err(PlatformChoice::Required(available())),
        },
    }
}

/// `rootfs.diff_ids` of a config; the error says what is wrong with them.
pub fn diff_ids(config: &serde_json::Value) -> Result<Vec<Sha256Digest>, String> {
    let rootfs = config.get("rootfs").ok_or("it has no `rootfs`")?;
    let Some(ids) = rootfs.get("diff_ids").and_then(serde_json::Value::as_array) else {
        return Err("its `rootfs.diff_ids` is not a list".to_string());
    };
    ids.iter()
        .map(|id| {
            let text = id
                .as_str()
                .ok_or("`rootfs.diff_ids` holds a value that is not a string")?;
            if !text.starts_with("sha256:") {
                return Err(format!(
                    "`rootfs.diff_ids` holds `{text}`, which is not a sha256 digest"
                ));
            }
            Sha256Digest::from_hex(text).map_err(|error| error.to_string())
        })
        .collect()
}

/// The platform a config declares (`os`, `architecture`, `variant`).
pub fn config_platform(config: &serde_json::Value) -> Option<Platform> {
    let text = |key: &str| {
        config
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
    };
    Some(Platform {
        os: text("os")?.to_string(),
        architecture: text("architecture")?.to_string(),
        variant: text("variant").map(str::to_string),
    })
}
