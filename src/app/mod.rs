//! The service's own half of an image, in layers above the dependencies: files copied
//! with `--add` ([`add`], excluded by Docker-style ignore files, [`ignore`]) and the
//! service's user (`--create-user`, [`user`]). Project wheels (`--wheel`) are installed
//! by [`crate::wheel`] like locked ones; [`crate::build`] puts them in these layers.

pub mod add;
pub mod ignore;
pub mod user;

use std::path::PathBuf;

pub use add::{AddOptions, AddSpec, plan_add};
pub use ignore::{IgnoreError, IgnoreRules};
pub use user::{NewUser, plan_user};

/// Errors of the app layers, each naming the input and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `--add` is not `SRC:DEST`.
    #[error("invalid `--add {text}`: {reason}")]
    InvalidAdd {
        /// As written.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A file to copy cannot be read.
    #[error("cannot read `{}` for `--add`; check that it exists and is readable", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file name is not UTF-8.
    #[error("cannot copy `{}`: its name is not UTF-8, which image layers here require; rename it or exclude it in the ignore file", path.display())]
    NonUtf8Path {
        /// The file.
        path: PathBuf,
    },
    /// A symlink points outside SRC.
    #[error("cannot copy the symlink `{}` -> `{target}`: it points outside `{}`, so the image would depend on files that are not copied; make it relative and inside the folder, or exclude it in the ignore file", link.display(), root.display())]
    SymlinkEscapes {
        /// The link.
        link: PathBuf,
        /// Where it points.
        target: String,
        /// SRC.
        root: PathBuf,
    },
    /// A socket, device or fifo.
    #[error("cannot copy `{}`: it is {kind}, which has no place in an image; remove it or exclude it in the ignore file", path.display())]
    SpecialFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// An ignore file has a bad line.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// `.py` files could not be compiled.
    #[error(transparent)]
    Bytecode(#[from] crate::wheel::BytecodeError),
    /// `--create-user` is malformed.
    #[error("invalid `--create-user {text}`: {reason}")]
    InvalidUser {
        /// As written.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The base already has the name or an id, with other values.
    #[error(
        "cannot create user `{user}` ({uid}:{gid}): the base image's `{file}` already has `{line}`; choose another name or id with `--create-user NAME:UID:GID`"
    )]
    UserConflict {
        /// The user.
        user: String,
        /// Its uid.
        uid: u32,
        /// Its gid.
        gid: u32,
        /// `/etc/passwd` or `/etc/group`.
        file: String,
        /// The line in the way.
        line: String,
    },
    /// A base layer cannot be read.
    #[error("cannot read layer `{layer}` of base image `{base}` to find its users")]
    BaseLayer {
        /// The base.
        base: String,
        /// The layer's digest.
        layer: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `/etc/passwd` or `/etc/group` is a link or special file in the base.
    #[error(
        "cannot add a user to base image `{base}`: its `{path}` is not a regular file (a link?); use a base whose account files are plain files, or create the user in the base"
    )]
    UnsupportedAccountFile {
        /// The base.
        base: String,
        /// The file.
        path: String,
    },
}
