//! A client for the OCI distribution spec: pulling base images from registries and
//! pushing built images to them.
//! (Being built: see `auth` and `tls` for the pieces already agreed.)

pub mod auth;
pub mod tls;
