//! The OCI image model, reading bases from layouts and archives, assembling the new
//! image's config and manifest, and writing layouts and archives.
//! (Stub: to be implemented.)
