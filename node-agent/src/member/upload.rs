//! UploadFile: a client stream, header first, written to a temporary file beside the
//! destination while hashing, then checked (size, SHA-256), given its mode, synced and
//! renamed into place. An allowed destination is a file directly in `<state>/uploads`, or
//! one named by `--allow-upload`; nothing else, whatever the path says.
//!
//! The header is parsed as its documentation says, strictly: the path is taken literally
//! (absolute, no `.`, `..` or empty component, no NUL: `uploads/./x` and `uploads//x` name
//! the same file as `uploads/x` but are not how it is written), the checksum is exactly 64
//! lower-case hexadecimal digits (no `+` sign, no upper case, which `from_str_radix` would
//! let through).
//!
//! A temporary file is locked while its upload runs. An agent killed mid-upload leaves it
//! behind, and nothing else ever removed it (issue 10: five `kill -9` during 30 MB uploads
//! left 126 MB), so the agent removes such orphans when it starts ([`remove_leftovers`]);
//! the lock tells an orphan from the file of an upload still running in another agent.
//!
//! Receiving and storing run side by side: the call's task takes messages off the stream
//! while a blocking thread hashes and writes the chunks already received (a few chunks
//! may wait between them). Hashing and the page-cache copy cost more than TLS and HTTP/2
//! together (`docs/benchmarks.md`), and file writes do not belong on the runtime's threads.

use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gnt_core::error::to_status;
use gnt_core::fs_atomic::{self, FsError};
use gnt_proto::node::v1::{UploadFileHeader, UploadFileRequest, upload_file_request};
use tonic::{Status, Streaming};

use super::{MemberContext, bad};
use crate::config::UploadPolicy;

/// Permission bits an uploaded file may not have: set-user-id, set-group-id, sticky.
const FORBIDDEN_MODE_BITS: u32 = 0o7000;
/// Chunks received but not yet written, at most.
const CHUNKS_IN_FLIGHT: usize = 4;

pub(super) async fn receive(
    ctx: &MemberContext,
    peer: &str,
    mut stream: Streaming<UploadFileRequest>,
) -> Result<u64, Status> {
    let Some(UploadFileRequest {
        part: Some(upload_file_request::Part::Header(header)),
    }) = stream.message().await?
    else {
        return Err(bad("upload", "the first message must be the header"));
    };
    let destination = allowed_destination(ctx, &header)?;
    if header.size > ctx.upload.max_bytes {
        return Err(bad(
            "size",
            format!(
                "{} bytes is more than this node accepts ({})",
                header.size, ctx.upload.max_bytes
            ),
        ));
    }
    if header.mode > 0o7777 || header.mode & FORBIDDEN_MODE_BITS != 0 {
        return Err(bad(
            "mode",
            format!(
                "{:o} is not allowed (no set-id or sticky bits)",
                header.mode
            ),
        ));
    }
    let expected = decode_hex(&header.sha256)
        .ok_or_else(|| bad("sha256", "expected 64 lower-case hexadecimal digits"))?;

    let temp = temp_path(&destination);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| to_status(&FsError::new("create", &temp, e)))?;
    // Held until the writer drops the file: a starting agent leaves a locked file alone.
    // Without lock support the upload still works; only that protection is lost.
    if let Err(error) = file.try_lock() {
        tracing::debug!(path = %temp.display(), %error, "cannot lock the upload's temporary file");
    }
    let stored = Stored {
        temp,
        destination,
        mode: header.mode,
        expected,
    };
    let (chunks, inbox) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let writer = {
        let stored = stored.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = stored.write(file, inbox);
            if outcome.is_err() {
                let _ = std::fs::remove_file(&stored.temp);
            }
            outcome
        })
    };
    let received = forward(&mut stream, header.size, &chunks).await;
    drop(chunks);
    let written = writer
        .await
        .map_err(|e| Status::internal(format!("the upload writer failed: {e}")));
    // A short, long or refused stream is the answer, whatever the writer made of it.
    if let Err(status) = received {
        let _ = std::fs::remove_file(&stored.temp);
        return Err(status);
    }
    written??;
    tracing::info!(%peer, path = %stored.destination.display(), bytes = header.size, "file uploaded");
    Ok(header.size)
}

/// Takes the chunks off `stream` and hands them to the writer; checks their total size.
async fn forward(
    stream: &mut Streaming<UploadFileRequest>,
    size: u64,
    chunks: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<(), Status> {
    let mut received: u64 = 0;
    while let Some(message) = stream.message().await? {
        let Some(upload_file_request::Part::Chunk(chunk)) = message.part else {
            return Err(bad("upload", "only data may follow the header"));
        };
        received += chunk.len() as u64;
        if received > size {
            return Err(bad(
                "upload",
                format!("more data than the {size} bytes announced"),
            ));
        }
        if chunks.send(chunk).await.is_err() {
            // The writer stopped on an error, which it reports.
            return Ok(());
        }
    }
    if received != size {
        return Err(bad(
            "upload",
            format!("the stream ended after {received} of {size} bytes"),
        ));
    }
    Ok(())
}

/// Where and how an upload is stored.
#[derive(Debug, Clone)]
struct Stored {
    temp: PathBuf,
    destination: PathBuf,
    mode: u32,
    expected: [u8; 32],
}

impl Stored {
    /// On a blocking thread: hashes and writes each chunk of `inbox` into `file` (the
    /// temporary file), then checks the digest, sets the mode, syncs, and renames it into
    /// place.
    fn write(
        &self,
        mut file: std::fs::File,
        mut inbox: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> Result<(), Status> {
        let fs_error = |action, path: &Path, e| to_status(&FsError::new(action, path, e));
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        while let Some(chunk) = inbox.blocking_recv() {
            digest.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| fs_error("write", &self.temp, e))?;
        }
        if digest.finish().as_ref() != self.expected {
            return Err(bad(
                "sha256",
                "the content does not match the checksum; nothing was written",
            ));
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .and_then(|()| file.sync_all())
            .map_err(|e| fs_error("sync", &self.temp, e))?;
        std::fs::rename(&self.temp, &self.destination)
            .map_err(|e| fs_error("rename", &self.temp, e))?;
        let dir = self.destination.parent().unwrap_or(Path::new("/"));
        fs_atomic::sync_dir(dir).map_err(|e| to_status(&e))
    }
}

fn allowed_destination(ctx: &MemberContext, header: &UploadFileHeader) -> Result<PathBuf, Status> {
    let path = literal_path(&header.path).ok_or_else(|| {
        bad(
            "path",
            format!(
                "'{}' must be absolute, without '.' or '..', empty components ('//', a trailing '/') or NUL; it is taken literally",
                header.path.escape_debug()
            ),
        )
    })?;
    // A file named like an upload's temporary file would be taken for a leftover and
    // removed at the next start.
    if path
        .file_name()
        .is_some_and(|name| is_temp_name(name, None))
    {
        return Err(bad(
            "path",
            format!(
                "'{}' is named like an upload's temporary file; choose another name",
                header.path.escape_debug()
            ),
        ));
    }
    let uploads = uploads_dir(ctx.state.dir());
    let in_uploads = path.parent() == Some(uploads.as_path());
    if in_uploads || ctx.upload.allowed.iter().any(|a| a == path) {
        if in_uploads {
            fs_atomic::ensure_dir(&uploads, 0o700).map_err(|e| to_status(&e))?;
        }
        return Ok(path.to_owned());
    }
    Err(to_status(&NotAllowed(header.path.clone())))
}

#[derive(Debug, thiserror::Error)]
#[error(
    "'{0}' is not an allowed upload destination (files in <state-dir>/uploads, or those given with --allow-upload)"
)]
struct NotAllowed(String);

impl gnt_core::error::Classify for NotAllowed {
    fn kind(&self) -> gnt_core::error::ErrorKind {
        gnt_core::error::ErrorKind::PermissionDenied
    }
}

/// `text` as a path, if it is one taken literally: absolute, and every component a name
/// (`Path::components` would quietly drop the `.` of `/a/./b` and the empty component of
/// `/a//b`, so the text itself is split).
fn literal_path(text: &str) -> Option<&Path> {
    let relative = text.strip_prefix('/')?;
    let literal = !text.contains('\0')
        && relative
            .split('/')
            .all(|component| !matches!(component, "" | "." | ".."));
    literal.then_some(Path::new(text))
}

/// Exactly 64 lower-case hexadecimal digits, as the field's documentation says.
fn decode_hex(text: &str) -> Option<[u8; 32]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

// === temporary files ===

/// The directory whose files anyone may upload.
fn uploads_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("uploads")
}

/// Marks a temporary file's name: `.<destination name>.upload-<pid>-<sequence>`.
const TEMP_MARK: &str = ".upload-";

/// A temporary file beside `destination`, unique per process and upload: two uploads to
/// one destination must not share one.
fn temp_path(destination: &Path) -> PathBuf {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = destination.parent().unwrap_or(Path::new("/"));
    dir.join(format!(
        ".{}{TEMP_MARK}{}-{}",
        destination
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Whether `name` is the temporary file of an upload to a file named `target` (to any
/// file when `None`), as [`temp_path`] names them.
fn is_temp_name(name: &OsStr, target: Option<&OsStr>) -> bool {
    let Some((destination, suffix)) = name
        .to_str()
        .and_then(|n| n.strip_prefix('.'))
        .and_then(|n| n.rsplit_once(TEMP_MARK))
    else {
        return false;
    };
    let numbers = suffix.split_once('-').is_some_and(|(pid, sequence)| {
        [pid, sequence]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    numbers && !destination.is_empty() && target.is_none_or(|t| t.to_string_lossy() == destination)
}

/// Removes the temporary files that uploads cut short by a crash or `kill -9` left beside
/// the destinations of `policy`, and returns how many. A file whose lock is held belongs to
/// an upload still running (another agent on this host) and stays. Errors are logged, not
/// returned: leftovers must not keep the agent from starting.
pub(crate) fn remove_leftovers(state_dir: &Path, policy: &UploadPolicy) -> usize {
    let mut places = vec![(uploads_dir(state_dir), None)];
    for allowed in &policy.allowed {
        if let (Some(dir), Some(name)) = (allowed.parent(), allowed.file_name()) {
            places.push((dir.to_owned(), Some(name)));
        }
    }
    let mut removed = 0;
    for (dir, target) in places {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(error = %FsError::new("list", &dir, e), "cannot look for leftover uploads");
                continue;
            }
        };
        for entry in entries.flatten() {
            if is_temp_name(&entry.file_name(), target) && remove_orphan(&entry.path()) {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes `path` if it is a regular file no running upload holds; says whether it did.
fn remove_orphan(path: &Path) -> bool {
    // Not through a link, and never open a FIFO or device (opening may block).
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(error = %FsError::new("open", path, e), "cannot check a leftover upload");
            return false;
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return false,
        // No lock support: the writer could not lock either, and at start an orphan is
        // what such a file almost always is.
        Err(TryLockError::Error(error)) => {
            tracing::debug!(path = %path.display(), %error, "cannot lock a leftover upload");
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), bytes = meta.len(), "removed the temporary file of an interrupted upload");
            true
        }
        Err(e) => {
            tracing::warn!(error = %FsError::new("remove", path, e), "cannot remove a leftover upload");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_64_lower_case_hex_digits_and_nothing_else() {
        assert_eq!(decode_hex(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(decode_hex(&"09".repeat(32)), Some([0x09; 32]));
        for refused in [
            "AB".repeat(32),
            format!("{}Ab", "ab".repeat(31)),
            // `u8::from_str_radix("+a", 16)` is 10: a sign must not pass as a digit.
            format!("+a{}", "ab".repeat(31)),
            format!("-a{}", "ab".repeat(31)),
            format!(" a{}", "ab".repeat(31)),
            "abc".to_owned(),
            "ab".repeat(33),
            "zz".repeat(32),
            format!("{}é", "a".repeat(62)),
        ] {
            assert_eq!(decode_hex(&refused), None, "{refused}");
        }
    }

    #[test]
    fn paths_are_taken_literally() {
        for accepted in [
            "/var/lib/gnt-rpc/uploads/x",
            "/x",
            "/a/.hidden",
            "/a/..b/c..d",
        ] {
            assert_eq!(literal_path(accepted), Some(Path::new(accepted)));
        }
        for refused in [
            "",
            "x",
            "uploads/x",
            "/",
            "/a/./x",
            "/a//x",
            "//a/x",
            "/a/x/",
            "/a/x/.",
            "/a/../x",
            "/a/x\0",
            "/a\0/x",
        ] {
            assert_eq!(literal_path(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn temporary_names_are_recognised_exactly() {
        let temp = temp_path(Path::new("/srv/uploads/known_hosts"));
        assert_eq!(temp.parent(), Some(Path::new("/srv/uploads")));
        let name = temp.file_name().unwrap();
        assert!(is_temp_name(name, None));
        assert!(is_temp_name(name, Some(OsStr::new("known_hosts"))));
        assert!(!is_temp_name(name, Some(OsStr::new("hosts"))));
        for other in [
            "known_hosts",
            ".known_hosts",
            ".known_hosts.upload-",
            ".known_hosts.upload-12",
            ".known_hosts.upload-12-",
            ".known_hosts.upload-1x-2",
            "known_hosts.upload-1-2",
            "..upload-1-2",
        ] {
            assert!(!is_temp_name(OsStr::new(other), None), "{other}");
        }
    }

    #[test]
    fn only_orphaned_temporary_files_are_removed_at_start() {
        let state = tempfile::tempdir().unwrap();
        let uploads = uploads_dir(state.path());
        let etc = state.path().join("etc");
        std::fs::create_dir_all(&uploads).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        let policy = UploadPolicy {
            allowed: vec![etc.join("hosts")],
            max_bytes: 1 << 20,
        };
        let write = |path: &Path| std::fs::write(path, b"partial").unwrap();
        let orphans = [
            uploads.join(".a.upload-41-0"),
            uploads.join(".b.upload-41-1"),
            etc.join(".hosts.upload-7-3"),
        ];
        orphans.iter().for_each(|p| write(p));
        let running = uploads.join(".c.upload-42-0");
        write(&running);
        let live = File::open(&running).unwrap();
        live.try_lock().unwrap();
        let kept = [
            uploads.join("a"),
            uploads.join(".a"),
            etc.join(".passwd.upload-7-4"), // not an allowed destination's
            etc.join("hosts"),
        ];
        kept.iter().for_each(|p| write(p));
        std::os::unix::fs::symlink(&kept[3], uploads.join(".d.upload-1-1")).unwrap();

        assert_eq!(remove_leftovers(state.path(), &policy), 3);
        for orphan in &orphans {
            assert!(!orphan.exists(), "{} survived", orphan.display());
        }
        assert!(running.exists(), "the file of a running upload was removed");
        for other in &kept {
            assert!(other.exists(), "{} was removed", other.display());
        }
        assert!(
            uploads.join(".d.upload-1-1").symlink_metadata().is_ok(),
            "a link is not an upload's file"
        );
        drop(live);
        assert_eq!(remove_leftovers(state.path(), &policy), 1);
        // No uploads directory yet (a node that never received a file): nothing to do.
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(remove_leftovers(fresh.path(), &policy), 0);
    }
}
