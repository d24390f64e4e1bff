//! Temporary files and lock files that do not outlive their process: every file
//! envbuild writes (cache entries, records, layout blobs, `index.json`, archives) is
//! written to a [`TempFile`] and renamed into place, and every read-modify-write of a
//! shared file happens under a [`FileLock`].
//!
//! Three mechanisms, one for each way a process ends:
//!
//! - **Errors and normal exit:** a [`TempFile`] deletes itself when dropped without
//!   [`TempFile::persist`], and a [`FileLock`] deletes its lock file when dropped.
//! - **SIGINT and SIGTERM:** every live temporary and lock file of the process is in one
//!   registry; [`remove_temporaries`] (which the CLI calls from its signal handler right
//!   before exiting) deletes them all and refuses to create new ones. A file is created
//!   and registered under the registry's mutex, so none can appear after the cleanup.
//! - **SIGKILL, power loss:** a temporary holds an exclusive advisory lock (`flock`) on
//!   itself for as long as its process has it open; the kernel drops the lock when the
//!   process dies. [`sweep`] (run when a cache is opened and before a layout or archive is
//!   written) deletes the temporaries nobody holds a lock on. A PID in the name would not
//!   do: PIDs are reused, and a cache shared between containers sees other PID
//!   namespaces. The lock works across both, on every local file system.
//!
//! The sweep and the creator cannot race: a sweep only deletes a file it holds the lock
//! on, and a creator, after taking the lock on its new file, checks that the path still
//! names that file (a sweep could have deleted it between the creation and the lock) and
//! otherwise makes another. [`FileLock`] uses the same check: its file is deleted on
//! release, and a waiter that then gets the lock on the deleted file opens the path anew;
//! so a lock file a killed process left may be swept like a temporary.
//!
//! Every temporary's name starts with `.` and ends with [`TEMP_SUFFIX`], so it is never
//! taken for content (a layout's `blobs/sha256/` holds only digest names).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The end of every temporary file's name.
pub const TEMP_SUFFIX: &str = ".envbuild-tmp";

/// How many times a creator tries again when its new file vanished before it could lock
/// it, or a lock file was replaced while it waited; each retry follows a real change on
/// disk, so only a file system with unstable inode numbers gets this far.
const MAX_ATTEMPTS: usize = 100;

/// The temporaries and lock files this process holds, for [`remove_temporaries`].
struct Live {
    /// Set by [`remove_temporaries`]: no new temporary may be created.
    closed: bool,
    paths: BTreeSet<PathBuf>,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    closed: false,
    paths: BTreeSet::new(),
});

fn live() -> MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stopping() -> io::Error {
    io::Error::new(
        io::ErrorKind::Interrupted,
        "envbuild is stopping on a signal",
    )
}

/// Delete every temporary and lock file this process holds, and make every later
/// attempt to create one fail. For a process that is about to exit on a signal: the
/// threads still writing to the deleted files write into the void, and their final
/// renames fail. Returns how many files were deleted.
pub fn remove_temporaries() -> usize {
    let mut live = live();
    live.closed = true;
    std::mem::take(&mut live.paths)
        .iter()
        .filter(|path| fs_err::remove_file(path).is_ok())
        .count()
}

fn register(path: &Path) -> io::Result<()> {
    let mut live = live();
    if live.closed {
        return Err(stopping());
    }
    live.paths.insert(path.to_path_buf());
    Ok(())
}

fn unregister(path: &Path) {
    live().paths.remove(path);
}

/// Whether `path` (not following a symlink) is the file `file` has open.
fn is_same_file(file: &File, path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let open = file.metadata()?;
        match fs_err::symlink_metadata(path) {
            Ok(named) => Ok(open.dev() == named.dev() && open.ino() == named.ino()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(path.exists())
    }
}

/// A temporary file, locked and registered (see the module doc); deleted on drop
/// unless [`TempFile::persist`] moved it into place.
#[derive(Debug)]
pub struct TempFile {
    inner: Option<tempfile::NamedTempFile>,
}

impl TempFile {
    /// Create `<folder>/.<label><random>.envbuild-tmp`.
    pub fn new_in(folder: &Path, label: &str) -> io::Result<Self> {
        for _ in 0..MAX_ATTEMPTS {
            // Held while the file is created, so `remove_temporaries` cannot run between
            // the creation and the registration.
            let mut live = live();
            if live.closed {
                return Err(stopping());
            }
            let file = tempfile::Builder::new()
                .prefix(&format!(".{label}"))
                .suffix(TEMP_SUFFIX)
                .tempfile_in(folder)?;
            file.as_file().lock()?;
            if is_same_file(file.as_file(), file.path())? {
                live.paths.insert(file.path().to_path_buf());
                return Ok(Self { inner: Some(file) });
            }
            // A sweep deleted it before it was locked: the path is no longer ours.
            let _ = file.into_temp_path().keep();
        }
        Err(io::Error::other(format!(
            "temporary files in `{}` vanish as soon as they are made; is another program deleting them?",
            folder.display()
        )))
    }

    fn inner(&self) -> &tempfile::NamedTempFile {
        self.inner.as_ref().expect("present until persisted")
    }

    /// The temporary's path.
    pub fn path(&self) -> &Path {
        self.inner().path()
    }

    /// The open file.
    pub fn as_file(&self) -> &File {
        self.inner().as_file()
    }

    /// Rename the temporary to `destination` (on the same file system), replacing what
    /// is there. On failure the temporary is deleted.
    pub fn persist(mut self, destination: &Path) -> io::Result<()> {
        let file = self.inner.take().expect("present until persisted");
        let path = file.path().to_path_buf();
        let result = match file.persist(destination) {
            Ok(_) => Ok(()),
            Err(error) => {
                drop(error.file);
                Err(error.error)
            }
        };
        unregister(&path);
        result
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(file) = self.inner.take() {
            let path = file.path().to_path_buf();
            drop(file);
            unregister(&path);
        }
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.as_file().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.as_file().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.as_file().flush()
    }
}

/// An exclusive advisory lock on a lock file, for a read-modify-write of a shared file
/// (a layout's `index.json`, a cache record). The lock file is created if needed and
/// deleted on release, so none is left behind.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    _file: File,
}

impl FileLock {
    /// Wait for the lock on `path` (its folder must exist).
    pub fn acquire(path: &Path) -> io::Result<Self> {
        for _ in 0..MAX_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            file.lock()?;
            // The holder before us deleted the file it locked; ours may be that one.
            if is_same_file(&file, path)? {
                if let Err(error) = register(path) {
                    let _ = fs_err::remove_file(path);
                    return Err(error);
                }
                return Ok(Self {
                    path: path.to_path_buf(),
                    _file: file,
                });
            }
        }
        Err(io::Error::other(format!(
            "the lock file `{}` keeps being replaced; is another program deleting it?",
            path.display()
        )))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Delete while still holding the lock (the file closes after this), so a
        // waiter that gets the lock next sees the file is gone and opens the path anew.
        let _ = fs_err::remove_file(&self.path);
        unregister(&self.path);
    }
}

/// Delete the files in `folder` whose names `is_temporary` accepts and that no process
/// holds (see the module doc); returns how many were deleted. Files that cannot be
/// opened or deleted are left alone: a sweep is housekeeping, never a reason to fail.
pub fn sweep(folder: &Path, is_temporary: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = fs_err::read_dir(folder) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !is_temporary(name) || !entry.file_type().is_ok_and(|kind| kind.is_file()) {
            continue;
        }
        let path = entry.path();
        // Opened for writing: an exclusive lock over NFS needs it.
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_err() || !is_same_file(&file, &path).unwrap_or(false) {
            continue;
        }
        if fs_err::remove_file(&path).is_ok() {
            tracing::debug!("removed stale temporary file `{}`", path.display());
            removed += 1;
        }
    }
    removed
}

/// Whether `name` is a temporary's name (see [`TempFile::new_in`]).
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn ok_dropped_temporary_is_deleted_and_persisted_one_stays() {
        let folder = tempfile::tempdir().unwrap();
        let mut dropped = TempFile::new_in(folder.path(), "blob-").unwrap();
        dropped.write_all(b"partial").unwrap();
        let name = dropped
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(is_temporary_name(&name), "{name}");
        assert!(name.starts_with(".blob-"), "{name}");
        drop(dropped);
        assert!(names(folder.path()).is_empty());
        let mut kept = TempFile::new_in(folder.path(), "blob-").unwrap();
        kept.write_all(b"whole").unwrap();
        kept.persist(&folder.path().join("done")).unwrap();
        assert_eq!(names(folder.path()), ["done"]);
        assert_eq!(fs_err::read(folder.path().join("done")).unwrap(), b"whole");
    }

    #[test]
    fn ok_sweep_spares_held_temporaries_and_removes_abandoned_ones() {
        let folder = tempfile::tempdir().unwrap();
        let held = TempFile::new_in(folder.path(), "x-").unwrap();
        // What a killed process leaves: a temporary nobody holds a lock on (also the
        // names of older envbuild versions, which took no lock).
        let abandoned = folder.path().join(".abc.123.envbuild-tmp");
        fs_err::write(&abandoned, b"left over").unwrap();
        fs_err::write(folder.path().join("content"), b"keep").unwrap();
        assert_eq!(sweep(folder.path(), is_temporary_name), 1);
        assert!(held.path().exists());
        assert!(!abandoned.exists());
        assert!(folder.path().join("content").exists());
        drop(held);
        assert_eq!(names(folder.path()), ["content"]);
    }

    #[test]
    fn ok_lock_serializes_and_leaves_no_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(".lock");
        let counter = folder.path().join("counter");
        fs_err::write(&counter, b"0").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, counter) = (path.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let _lock = FileLock::acquire(&path).unwrap();
                        let value: u32 = fs_err::read_to_string(&counter).unwrap().parse().unwrap();
                        std::thread::yield_now();
                        fs_err::write(&counter, (value + 1).to_string()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(fs_err::read_to_string(&counter).unwrap(), "160");
        assert!(!path.exists());
    }
}
