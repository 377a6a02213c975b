//! `gnt cluster copyfile FILE` (Ganeti's `gnt-cluster copyfile`): a file of the master host,
//! read by gnt-masterd, sent over `UploadFile` to the same path on every other node (or the
//! nodes named). Each node checks the size and SHA-256 and replaces the file atomically,
//! with the master's file's permission bits; a node stores it only at a path it allows
//! (its `<state>/uploads` directory, or one its gnt-noded was started with
//! `--allow-upload` for), and its refusal is its result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gnt_core::fs_atomic::FsError;
use gnt_core::netutils::Hostname;
use gnt_core::runner::{NodeResult, TimeoutClass};
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{UploadFileHeader, UploadFileRequest, upload_file_request};

use super::rpc_call::{failed, fan_out_on, timed};
use crate::error::MasterError;
use crate::master::Master;

/// The size of the messages the file is sent in.
const CHUNK: usize = 1 << 20;

/// The largest file copied: what a node accepts by default (its `--max-upload-bytes`).
const MAX_BYTES: u64 = 1 << 30;

/// A file that cannot be copied.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CopyFileError {
    /// The path is not absolute.
    #[error("{}: give an absolute path (the file goes to the same path on the nodes)", .0.display())]
    NotAbsolute(PathBuf),
    /// The file is too large.
    #[error("{} is {size} bytes; files of at most {MAX_BYTES} bytes are copied", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file cannot be read.
    #[error(transparent)]
    Read(#[from] FsError),
}

impl gnt_core::error::Classify for CopyFileError {
    fn kind(&self) -> gnt_core::error::ErrorKind {
        use gnt_core::error::ErrorKind;
        match self {
            Self::NotAbsolute(_) | Self::TooLarge { .. } => ErrorKind::WrongInput,
            Self::Read(e) => e.kind(),
        }
    }
}

/// The file as it is sent: its content, once, for every node.
struct Payload {
    content: Vec<u8>,
    header: UploadFileHeader,
}

fn payload(path: &Path) -> Result<Payload, CopyFileError> {
    use std::os::unix::fs::PermissionsExt;
    if !path.is_absolute() {
        return Err(CopyFileError::NotAbsolute(path.to_owned()));
    }
    let metadata = std::fs::metadata(path).map_err(|e| FsError::new("read", path, e))?;
    if metadata.len() > MAX_BYTES {
        return Err(CopyFileError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
        });
    }
    let content = std::fs::read(path).map_err(|e| FsError::new("read", path, e))?;
    let sha256 = gnt_core::digest::hex(&gnt_core::digest::sha256(&content));
    let header = UploadFileHeader {
        path: path.display().to_string(),
        mode: metadata.permissions().mode() & 0o777,
        size: content.len() as u64,
        sha256,
    };
    Ok(Payload { content, header })
}

impl Master {
    /// `gnt cluster copyfile`: `path` to the nodes named (every node but the master when
    /// none is), at once; one result per node, the bytes it wrote.
    pub async fn copy_file(
        &self,
        path: &Path,
        names: &[String],
    ) -> Result<Vec<NodeResult<Hostname, u64>>, MasterError> {
        let payload = Arc::new(payload(path)?);
        let config = self.config.snapshot().await;
        let targets: Vec<Hostname> = if names.is_empty() {
            config
                .nodes
                .keys()
                .filter(|name| **name != config.master_node)
                .cloned()
                .collect()
        } else {
            let mut known = Vec::with_capacity(names.len());
            for name in names {
                known.push(self.node(name).await?.name);
            }
            known
        };
        let results = fan_out_on(
            &self.channels,
            &config,
            Some(&targets),
            TimeoutClass::Normal,
            |channel, timeout| {
                let payload = payload.clone();
                async move {
                    let header = UploadFileRequest {
                        part: Some(upload_file_request::Part::Header(payload.header.clone())),
                    };
                    let chunks = (0..payload.content.len().div_ceil(CHUNK)).map(move |i| {
                        let end = payload.content.len().min((i + 1) * CHUNK);
                        UploadFileRequest {
                            part: Some(upload_file_request::Part::Chunk(
                                payload.content[i * CHUNK..end].to_vec().into(),
                            )),
                        }
                    });
                    let stream = tokio_stream::iter(std::iter::once(header).chain(chunks));
                    NodeAgentClient::new(channel)
                        .upload_file(timed(stream, timeout))
                        .await
                        .map(|reply| reply.into_inner().bytes_written)
                        .map_err(failed(timeout))
                }
            },
            |_| {},
        )
        .await;
        let copied = results.iter().filter(|r| r.outcome.is_ok()).count();
        tracing::info!(path = %path.display(), nodes = results.len(), copied, "file copied to the nodes");
        Ok(results)
    }
}
