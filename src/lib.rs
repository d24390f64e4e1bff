//! envbuild turns a Python lockfile into a reproducible OCI image, without a container
//! daemon. The pipeline, one module a stage: [`lock`] parses lockfiles into one model,
//! [`platform`] describes the platform and picks wheels, [`fetch`] and [`cache`] bring
//! verified wheels, [`source`] builds sdists, git and folder sources into wheels, [`wheel`] maps a wheel into the install prefix, [`layer`] writes
//! deterministic layers, and [`oci`] reads bases and writes images. [`build`] runs the
//! whole flow; [`repro`] holds every rule that keeps its output reproducible, and
//! [`http`] every rule of talking to servers (client, retries, bounds, redaction).

#![warn(missing_docs)]

pub mod app;
pub mod build;
pub mod cache;
pub mod check;
pub mod config;
pub mod digest;
pub mod drift;
pub mod fetch;
pub mod fleet;
pub mod http;
pub mod index;
pub mod layer;
pub mod lock;
pub mod oci;
pub mod platform;
pub mod registry;
pub mod repro;
pub mod source;
pub mod untrusted;
pub mod wheel;

/// The project's one mutator for no-panic property tests, shared with the integration
/// tests (one file, so both mutate alike).
#[cfg(test)]
#[path = "../tests/mutate_support/mod.rs"]
pub(crate) mod mutate;
