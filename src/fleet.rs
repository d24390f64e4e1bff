//! A fleet in one run (`envbuild image --all`): every service's image built in one
//! process over one cache, so a layer two services share (same wheel, prefix,
//! interpreter and bucket content, hence the same cache key) is built and compressed
//! once, and written once into a shared output. The report gives each service's digest
//! and what sharing saved: the bytes of distinct layer blobs against the bytes separate
//! builds would each have stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::build::{BuildError, BuildProgress, BuildReport, ImageBuild, build_image};
use crate::digest::Sha256Digest;

/// A service's build failed.
#[derive(Debug, thiserror::Error)]
#[error("service `{service}`: {source}")]
pub struct FleetError {
    /// The service.
    pub service: String,
    /// Why.
    #[source]
    pub source: BuildError,
}

/// One service of a fleet report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceReport {
    /// The service's name.
    pub name: String,
    /// Where its image went.
    pub output: String,
    /// The image's digest.
    pub digest: Sha256Digest,
    /// Its layer blobs' bytes, base included.
    pub layer_bytes: u64,
    /// The full build report.
    pub build: BuildReport,
}

/// What `envbuild image --all --json` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FleetReport {
    /// Each service, in name order.
    pub services: Vec<ServiceReport>,
    /// Distinct layer blobs across the fleet.
    pub blobs_stored: usize,
    /// Their bytes: what a shared store (one layout, one registry) holds.
    pub bytes_stored: u64,
    /// The bytes separate stores, one per service, would hold.
    pub bytes_separate: u64,
    /// `bytes_separate - bytes_stored`.
    pub bytes_saved: u64,
}

/// Build `services` (name, settings) one after the other over their shared cache.
pub async fn build_fleet(
    services: &[(String, ImageBuild)],
    progress: Arc<dyn BuildProgress>,
) -> Result<FleetReport, FleetError> {
    let mut reports = Vec::with_capacity(services.len());
    for (name, build) in services {
        progress.stage(&format!("service {name}"));
        let report = build_image(build, progress.clone())
            .await
            .map_err(|source| FleetError {
                service: name.clone(),
                source,
            })?;
        reports.push((name.clone(), build.output.to_string(), report));
    }
    Ok(summarize(reports))
}

/// The fleet report of finished builds.
pub fn summarize(reports: Vec<(String, String, BuildReport)>) -> FleetReport {
    let mut stored: BTreeMap<Sha256Digest, u64> = BTreeMap::new();
    let mut separate = 0;
    let mut services = Vec::with_capacity(reports.len());
    for (name, output, build) in reports {
        let own: BTreeMap<Sha256Digest, u64> = build
            .images
            .iter()
            .flat_map(|image| image.layers.iter())
            .map(|layer| (layer.digest, layer.size))
            .collect();
        let layer_bytes: u64 = own.values().sum();
        separate += layer_bytes;
        stored.extend(own);
        services.push(ServiceReport {
            name,
            output,
            digest: build.digest,
            layer_bytes,
            build,
        });
    }
    services.sort_by(|left, right| left.name.cmp(&right.name));
    let bytes_stored = stored.values().sum();
    FleetReport {
        services,
        blobs_stored: stored.len(),
        bytes_stored,
        bytes_separate: separate,
        bytes_saved: separate - bytes_stored,
    }
}
