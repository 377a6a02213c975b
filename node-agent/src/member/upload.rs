//! UploadFile: a client stream, header first, written to a temporary file beside the
//! destination while hashing, then checked (size, SHA-256), given its mode, synced and
//! renamed into place. An allowed destination is a file directly in `<state>/uploads`, or
//! one named by `--allow-upload`; nothing else, whatever the path says.
//!
//! Receiving and storing run side by side: the call's task takes messages off the stream
//! while a blocking thread hashes and writes the chunks already received (a few chunks
//! may wait between them). Hashing and the page-cache copy cost more than TLS and HTTP/2
//! together (`docs/benchmarks.md`), and file writes do not belong on the runtime's threads.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use gnt_core::error::to_status;
use gnt_core::fs_atomic::{self, FsError};
use gnt_proto::node::v1::{UploadFileHeader, UploadFileRequest, upload_file_request};
use tonic::{Status, Streaming};

use super::{MemberContext, bad};

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
        .ok_or_else(|| bad("sha256", "expected 64 hexadecimal digits"))?;

    // Unique per upload: two uploads to one destination must not share a temporary file.
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = destination.parent().unwrap_or(Path::new("/")).to_owned();
    let temp = dir.join(format!(
        ".{}.upload-{}-{}",
        destination
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| to_status(&FsError::new("create", &temp, e)))?;
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
    let path = Path::new(&header.path);
    let clean = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean {
        return Err(bad(
            "path",
            format!("'{}' must be absolute, without '.' or '..'", header.path),
        ));
    }
    let uploads = ctx.state.dir().join("uploads");
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

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_64_hex_digits() {
        assert_eq!(decode_hex(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(decode_hex(&"AB".repeat(32)), Some([0xab; 32]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex(&"zz".repeat(32)), None);
        assert_eq!(decode_hex(&format!("{}é", "a".repeat(62))), None);
    }
}
