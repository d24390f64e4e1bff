//! `--create-user NAME[:UID[:GID]]`: the service's own user and group, added to the
//! base image's `/etc/passwd` and `/etc/group` (read from the base's layers, later
//! layers and whiteouts honoured) and written whole, with the user's home folder, into
//! a small layer of their own. A name or id the base already has with other values is
//! an error: silently sharing another account's id would give the service its files.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use super::AppError;
use crate::cache::{Cache, EntryKind};
use crate::layer::{LayerContent, LayerEntry};
use crate::oci::BaseImage;
use crate::repro::{DIR_MODE, FILE_MODE};

/// uid and gid of a user created without ids (distroless's `nonroot`).
pub const DEFAULT_ID: u32 = 65532;

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// The user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Its name (also its group's).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
}

impl NewUser {
    /// Parse `NAME[:UID[:GID]]` (without ids 65532; without a GID, the UID).
    pub fn parse(text: &str) -> Result<Self, AppError> {
        let invalid = |reason: &str| AppError::InvalidUser {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .next()
                .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_name {
            return Err(invalid(
                "the name must be 1 to 32 lowercase letters, digits, `_` or `-`, starting with a letter or `_`",
            ));
        }
        let id = |text: Option<&str>, what: &str| -> Result<Option<u32>, AppError> {
            text.map(|text| {
                text.parse::<u32>()
                    .ok()
                    .filter(|id| *id != 0 && *id < u32::MAX)
                    .ok_or_else(|| {
                        invalid(&format!("{what} must be a number from 1 to 4294967294"))
                    })
            })
            .transpose()
        };
        let uid = id(parts.next(), "UID")?;
        let gid = id(parts.next(), "GID")?;
        if parts.next().is_some() {
            return Err(invalid("expected NAME[:UID[:GID]]"));
        }
        let uid = uid.unwrap_or(DEFAULT_ID);
        Ok(Self {
            name: name.to_string(),
            uid,
            gid: gid.unwrap_or(uid),
        })
    }

    /// The home folder, `/home/NAME`.
    pub fn home(&self) -> String {
        format!("/home/{}", self.name)
    }

    /// What the image's `User` becomes: `UID:GID` (numeric, so that runtimes can tell
    /// it is not root without reading the image's files).
    pub fn image_user(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// The entries of the user's layer: `/etc/passwd` and `/etc/group` of `base` with the
/// user and group added (created when the base has none), and the home folder, owned by
/// the user.
pub fn plan_user(
    user: &NewUser,
    base: &BaseImage,
    cache: &Cache,
) -> Result<Vec<LayerEntry>, AppError> {
    let files = read_base_files(base, cache)?;
    let passwd = files.get(PASSWD).cloned().flatten();
    let group = files.get(GROUP).cloned().flatten();
    let passwd = add_line(
        passwd.as_deref(),
        "root:x:0:0:root:/root:/bin/sh\n",
        &format!(
            "{}:x:{}:{}::{}:/sbin/nologin",
            user.name,
            user.uid,
            user.gid,
            user.home()
        ),
        |fields| {
            let conflict = match (fields.first(), fields.get(2), fields.get(3)) {
                (Some(name), Some(uid), gid) if *name == user.name => {
                    if *uid == user.uid.to_string()
                        && gid.is_some_and(|g| *g == user.gid.to_string())
                    {
                        Some(false)
                    } else {
                        Some(true)
                    }
                }
                (Some(_), Some(uid), _) if *uid == user.uid.to_string() => Some(true),
                _ => None,
            };
            conflict.map(|conflict| (conflict, fields.join(":")))
        },
    )
    .map_err(|line| AppError::UserConflict {
        user: user.name.clone(),
        uid: user.uid,
        gid: user.gid,
        file: "/etc/passwd".to_string(),
        line,
    })?;
    let group = add_line(
        group.as_deref(),
        "root:x:0:\n",
        &format!("{}:x:{}:", user.name, user.gid),
        |fields| {
            let conflict = match (fields.first(), fields.get(2)) {
                (Some(name), Some(gid)) if *name == user.name => Some(*gid != user.gid.to_string()),
                (Some(_), Some(gid)) if *gid == user.gid.to_string() => Some(true),
                _ => None,
            };
            conflict.map(|conflict| (conflict, fields.join(":")))
        },
    )
    .map_err(|line| AppError::UserConflict {
        user: user.name.clone(),
        uid: user.uid,
        gid: user.gid,
        file: "/etc/group".to_string(),
        line,
    })?;
    let root = (0, 0);
    Ok(vec![
        LayerEntry {
            path: "etc/".to_string(),
            owner: root,
            content: LayerContent::Directory(DIR_MODE),
        },
        LayerEntry {
            path: GROUP.to_string(),
            owner: root,
            content: LayerContent::Bytes {
                mode: FILE_MODE,
                bytes: group.into_bytes(),
            },
        },
        LayerEntry {
            path: PASSWD.to_string(),
            owner: root,
            content: LayerContent::Bytes {
                mode: FILE_MODE,
                bytes: passwd.into_bytes(),
            },
        },
        LayerEntry {
            path: "home/".to_string(),
            owner: root,
            content: LayerContent::Directory(DIR_MODE),
        },
        LayerEntry {
            path: format!("home/{}/", user.name),
            owner: (user.uid, user.gid),
            content: LayerContent::Directory(DIR_MODE),
        },
    ])
}

/// `existing` (or `initial` when the base has no such file) with `line` added, unless
/// `judge` finds it there already. `judge` gets each line's `:`-separated fields and
/// says `Some(true)` for a conflicting line, `Some(false)` for the same entry; a
/// conflict returns that line.
fn add_line(
    existing: Option<&[u8]>,
    initial: &str,
    line: &str,
    judge: impl Fn(&[&str]) -> Option<(bool, String)>,
) -> Result<String, String> {
    let mut text = match existing {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => initial.to_string(),
    };
    let mut present = false;
    for existing in text.lines() {
        let fields: Vec<&str> = existing.split(':').collect();
        match judge(&fields) {
            Some((true, line)) => return Err(line),
            Some((false, _)) => present = true,
            None => {}
        }
    }
    if !present {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

/// `/etc/passwd` and `/etc/group` as the base's layers leave them (`None`: absent).
fn read_base_files(
    base: &BaseImage,
    cache: &Cache,
) -> Result<BTreeMap<&'static str, Option<Vec<u8>>>, AppError> {
    let mut files: BTreeMap<&'static str, Option<Vec<u8>>> =
        BTreeMap::from([(PASSWD, None), (GROUP, None)]);
    for layer in &base.layers {
        let path = cache.entry_path(EntryKind::Blob, &layer.digest);
        let read_error = |source: std::io::Error| AppError::BaseLayer {
            base: base.reference.clone(),
            layer: layer.digest.oci(),
            source,
        };
        let file = fs_err::File::open(&path)
            .map_err(|source| read_error(std::io::Error::new(source.kind(), source)))?;
        let mut buffered = BufReader::new(file);
        let magic = buffered.fill_buf().map_err(read_error)?;
        let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(read_error(std::io::Error::other(
                "the layer is zstd-compressed, which envbuild cannot read",
            )));
        } else {
            Box::new(buffered)
        };
        // This layer's own entries: its whiteouts hide only the layers below.
        let mut upper: BTreeMap<&'static str, Option<Vec<u8>>> = BTreeMap::new();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let raw = entry
                .path()
                .map_err(read_error)?
                .to_string_lossy()
                .into_owned();
            let path: Vec<&str> = raw
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect();
            let path = path.join("/");
            match crate::layer::whiteout(&path) {
                Some(crate::layer::Whiteout::Opaque(parent)) => {
                    for name in [PASSWD, GROUP] {
                        if parent.is_empty() || name.starts_with(&format!("{parent}/")) {
                            files.insert(name, None);
                        }
                    }
                    continue;
                }
                Some(crate::layer::Whiteout::Deletes(hidden)) => {
                    for name in [PASSWD, GROUP] {
                        if name == hidden || name.starts_with(&format!("{hidden}/")) {
                            files.insert(name, None);
                        }
                    }
                    continue;
                }
                None => {}
            }
            let Some(name) = [PASSWD, GROUP].into_iter().find(|name| *name == path) else {
                continue;
            };
            let entry_type = entry.header().entry_type();
            if entry_type.is_file() {
                let mut bytes = Vec::new();
                entry
                    .by_ref()
                    .take(16 * 1024 * 1024)
                    .read_to_end(&mut bytes)
                    .map_err(read_error)?;
                upper.insert(name, Some(bytes));
            } else if entry_type.is_dir() {
                upper.insert(name, None);
            } else {
                return Err(AppError::UnsupportedAccountFile {
                    base: base.reference.clone(),
                    path: format!("/{name}"),
                });
            }
        }
        files.extend(upper);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_parse_defaults() {
        assert_eq!(
            NewUser::parse("app").unwrap(),
            NewUser {
                name: "app".to_string(),
                uid: 65532,
                gid: 65532
            }
        );
        let user = NewUser::parse("svc:1000").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 1000));
        let user = NewUser::parse("svc:1000:2000").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 2000));
        assert_eq!(user.image_user(), "1000:2000");
    }

    #[test]
    fn err_parse_bad() {
        for text in ["", "Root", "a:b", "a:0", "a:1:2:3", "9lives"] {
            assert!(NewUser::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn ok_add_line_appends_once() {
        let judge = |fields: &[&str]| (fields[0] == "app").then(|| (false, fields.join(":")));
        let text = add_line(
            Some(b"root:x:0:0::/root:/bin/sh"),
            "",
            "app:x:1:1::/h:/s",
            judge,
        )
        .unwrap();
        assert_eq!(text, "root:x:0:0::/root:/bin/sh\napp:x:1:1::/h:/s\n");
        let again = add_line(Some(text.as_bytes()), "", "app:x:1:1::/h:/s", judge).unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn err_add_line_conflict_returns_line() {
        let judge = |fields: &[&str]| (fields[2] == "1000").then(|| (true, fields.join(":")));
        let error = add_line(
            Some(b"bob:x:1000:1000::/home/bob:/bin/sh\n"),
            "",
            "x",
            judge,
        )
        .unwrap_err();
        assert_eq!(error, "bob:x:1000:1000::/home/bob:/bin/sh");
    }
}
