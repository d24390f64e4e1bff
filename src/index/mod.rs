//! Package indexes: where the files of packages known only by hash come from.
//!
//! `poetry.lock`, `Pipfile.lock` and requirements files record file hashes (and sometimes
//! file names) but no URLs. This module resolves the index configuration ([`IndexConfig`]:
//! flags, environment, pip.conf and uv.toml, `.netrc` credentials; no implicit public
//! index), reads the Simple Repository API (PEP 691 JSON, PEP 503 HTML) and find-links
//! locations, and turns each such package into downloadable files with URL, size and
//! sha256 ([`resolve_lookups`]). It never chooses among a package's wheels: that stays
//! offline, in `platform::select`.
//!
//! Credentials in index URLs and `.netrc` are sent with requests and never printed: every
//! message, log line and cache file shows URLs through [`redact`].

mod config;
mod html;
mod http;
mod netrc;
mod resolve;
mod simple;

pub use config::{
    ConfigOrigin, FindLinks, IndexConfig, IndexConfigError, IndexEnvironment, IndexFlags, IndexUrl,
};
pub use resolve::{IndexError, resolve_lookups, resolve_lookups_cached};

/// `url` as it may be printed: the one rule of [`crate::http::redact_url`].
pub use crate::http::redact_url as redact;
