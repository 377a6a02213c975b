//! Crash-safe file replacement: after a crash or a full disk, a file holds either its old
//! content or its new content, never a mix or a truncation.
//!
//! The recipe: write a temporary file in the same directory, `fsync` it, set its mode,
//! `rename` it over the target, then `fsync` the directory so the rename itself is durable.
//! A failure at any step removes the temporary file and leaves the target untouched.
//! Symbolic links are replaced the same way (create aside, rename over).
//!
//! Errors carry the path and, for the causes an operator can fix (disk full, permissions,
//! read-only file system), what to do.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Classify, ErrorKind};

/// A file-system operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}{}", path.display(), hint(source))]
pub struct FsError {
    /// What was being done: "write", "rename", "create directory", ...
    pub action: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The system's error.
    pub source: io::Error,
}

impl FsError {
    /// An error of `action` on `path`.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the cause is a missing file or directory.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

impl Classify for FsError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Environment
    }
}

fn hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::StorageFull => " (the file system is full: free some space and retry)",
        io::ErrorKind::PermissionDenied => " (permission denied: run as root or fix the ownership)",
        io::ErrorKind::ReadOnlyFilesystem => " (the file system is read-only)",
        io::ErrorKind::QuotaExceeded => " (disk quota exceeded)",
        _ => "",
    }
}

/// Replaces `path` with `contents`, atomically and durably, with permission bits `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let dir = parent_of(path);
    let tmp = temp_path_beside(path);
    let result = write_new_file(&tmp, contents, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| FsError::new("rename", &tmp, e)))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path`, which must not exist, with `contents` and `mode`, and `fsync`s it. The
/// directory is not synced: callers batch that.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| FsError::new("create", path, e))?;
    let result = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| FsError::new("write", path, e))
        // Set the mode explicitly: the one given to `open` is filtered by the umask.
        .and_then(|()| {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| FsError::new("set permissions of", path, e))
        });
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Makes `link` a symbolic link to `target`, atomically replacing whatever `link` was.
pub fn replace_symlink(target: &Path, link: &Path) -> Result<(), FsError> {
    let tmp = temp_path_beside(link);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| FsError::new("create link", &tmp, e))?;
    fs::rename(&tmp, link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        FsError::new("rename", link, e)
    })
}

/// Flushes a directory's entries (creations, renames, removals) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::new("sync directory", dir, e))
}

/// Creates `dir` with `mode` if it does not exist; an existing directory is left as it is.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), FsError> {
    match fs::create_dir(dir) {
        Ok(()) => {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(|e| FsError::new("set permissions of", dir, e))?;
            sync_dir(parent_of(dir))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(FsError::new("create directory", dir, e)),
    }
}

/// Opens (creating, 0600) the lock file `path`, for `File::lock`/`try_lock`.
pub fn open_lock_file(path: &Path) -> Result<File, FsError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| FsError::new("open lock file", path, e))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A name beside `path` that no other writer in this or another process uses.
fn temp_path_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_of(path).join(format!(".{name}.tmp-{}-{unique}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn write_atomic_creates_and_replaces_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"first", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        write_atomic(&path, b"second", 0o444).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o444);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target");
        write_atomic(&path, b"old", 0o644).unwrap();
        // Renaming a file over a non-empty directory fails: the target stays as it was.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        let err = write_atomic(&blocked, b"new", 0o644).unwrap_err();
        assert_eq!(err.action, "rename");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn errors_name_the_path_and_say_what_to_do_for_a_full_disk() {
        let err = FsError::new(
            "write",
            "/var/lib/gnt-rpc/ssconf_x",
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(
            err.to_string().starts_with(
                "cannot write /var/lib/gnt-rpc/ssconf_x (the file system is full: free some space and retry)"
            ),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Environment);
    }

    #[test]
    fn symlinks_are_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        replace_symlink(Path::new("gen-1"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("gen-1"));
        replace_symlink(Path::new("gen-2"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("gen-2"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn ensure_dir_creates_once_and_accepts_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state");
        ensure_dir(&sub, 0o700).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        ensure_dir(&sub, 0o755).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(ensure_dir(&file, 0o700).is_err());
    }
}
