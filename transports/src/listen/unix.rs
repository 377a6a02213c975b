//! Unix domain sockets: checked paths, restrictive permissions, stale files replaced only
//! when dead, and the file removed when the listener stops.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ListenError;
use crate::peer::ListenAddr;

/// `sizeof(sun_path)` minus the terminating NUL.
pub(crate) const MAX_PATH_LEN: usize = 107;

/// The socket file of a listener; removed on drop if it is still the one we created.
#[derive(Debug)]
pub(crate) struct UnixSocketFile {
    path: PathBuf,
    inode: u64,
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        // Another listener may have replaced it meanwhile; only remove our own.
        if fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(super) fn bind(path: &Path, mode: u32) -> Result<(UnixListener, UnixSocketFile), ListenError> {
    let len = path.as_os_str().len();
    if len > MAX_PATH_LEN {
        return Err(ListenError::UnixPathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_PATH_LEN,
        });
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    check_directory(path, dir)?;
    remove_if_stale(path)?;

    let io = |action, source| ListenError::Io {
        action,
        addr: ListenAddr::Unix(path.to_owned()),
        source,
    };
    // Bind under a temporary name, set the mode, then rename: the socket never appears
    // under its real name with the umask's permissions.
    let temp = temp_name(dir);
    let listener = if temp.as_os_str().len() <= MAX_PATH_LEN {
        let listener = UnixListener::bind(&temp).map_err(|e| bind_error(path, dir, e))?;
        let placed = fs::set_permissions(&temp, fs::Permissions::from_mode(mode))
            .and_then(|()| fs::rename(&temp, path));
        if let Err(source) = placed {
            let _ = fs::remove_file(&temp);
            return Err(io("place the socket", source));
        }
        listener
    } else {
        let listener = UnixListener::bind(path).map_err(|e| bind_error(path, dir, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|source| io("set the permissions of", source))?;
        listener
    };
    listener
        .set_nonblocking(true)
        .map_err(|source| io("configure", source))?;
    let inode = fs::symlink_metadata(path)
        .map_err(|source| io("inspect", source))?
        .ino();
    Ok((
        listener,
        UnixSocketFile {
            path: path.to_owned(),
            inode,
        },
    ))
}

fn check_directory(path: &Path, dir: &Path) -> Result<(), ListenError> {
    let fail = |reason| ListenError::UnixDirectory {
        path: path.to_owned(),
        dir: dir.to_owned(),
        reason,
    };
    let meta = fs::metadata(dir).map_err(|e| {
        fail(if e.kind() == io::ErrorKind::NotFound {
            "does not exist"
        } else {
            "cannot be read"
        })
    })?;
    if !meta.is_dir() {
        return Err(fail("is not a directory"));
    }
    let world_writable = meta.mode() & 0o002 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if world_writable && !sticky {
        return Err(fail(
            "is writable by every user and not sticky; anyone could replace the socket",
        ));
    }
    Ok(())
}

/// Removes a socket file that nothing listens on; refuses a live one or a non-socket.
fn remove_if_stale(path: &Path) -> Result<(), ListenError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ListenError::Io {
                action: "inspect",
                addr: ListenAddr::Unix(path.to_owned()),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::UnixNotASocket {
            path: path.to_owned(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::UnixInUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale socket");
            fs::remove_file(path).map_err(|source| ListenError::Io {
                action: "remove the stale socket",
                addr: ListenAddr::Unix(path.to_owned()),
                source,
            })
        }
        Err(source) => Err(ListenError::Io {
            action: "probe the existing socket",
            addr: ListenAddr::Unix(path.to_owned()),
            source,
        }),
    }
}

/// Explains a failed bind by its directory, which was checked to exist just before.
fn bind_error(path: &Path, dir: &Path, source: io::Error) -> ListenError {
    let reason = match source.kind() {
        io::ErrorKind::PermissionDenied => "is not writable by this user",
        io::ErrorKind::ReadOnlyFilesystem => "is on a read-only file system",
        io::ErrorKind::NotFound => {
            "does not accept new files (a special file system such as /proc)"
        }
        _ => {
            return ListenError::Io {
                action: "bind",
                addr: ListenAddr::Unix(path.to_owned()),
                source,
            };
        }
    };
    ListenError::UnixDirectory {
        path: path.to_owned(),
        dir: dir.to_owned(),
        reason,
    }
}

fn temp_name(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".gnt-{}-{n}.sock", std::process::id()))
}
