//! The OCI image stage: the image model (one module per image-spec document), reading
//! a base image from a layout or archive, assembling the new image's config and
//! manifest, and writing layouts and archives.
//!
//! - [`reference`](mod@reference): `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//!   `docker-archive:FILE[:NAME[:TAG]]` and `docker://…` references;
//! - [`descriptor`], [`manifest`], [`index`]: the JSON documents, with `BTreeMap`s so
//!   they serialize deterministically;
//! - `layout` / `archive`: reading a base ([`read_base`]) and the archive format;
//! - `config` / `assemble`: building the new image ([`assemble`]);
//! - `write`: writing a layout or archive ([`write_images`]), and `docker_archive`: the
//!   files `docker load` needs besides the layout.

mod archive;
mod assemble;
mod config;
pub mod descriptor;
mod docker_archive;
mod error;
pub mod index;
mod layout;
pub mod manifest;
pub mod reference;
pub mod select;
#[cfg(test)]
mod testing;
mod write;

pub use assemble::{DEFAULT_VENV, Image, ImageSettings, NewLayer, assemble};
pub use config::DEFAULT_PATH;
pub use descriptor::Descriptor;
pub use error::OciError;
pub use layout::{BaseImage, read_base, verify_diff_ids};
pub use reference::{ImageReference, ReferenceError, familiar_name};
pub use write::{TopLevel, check_output, top_level, write_images};
