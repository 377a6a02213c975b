//! `upload`: `UploadFile` of one large file to the real `gnt-noded` over mutual TLS, and the
//! same bytes through the bare TLS sink (the same storing work: SHA-256, write, fsync,
//! rename; no gRPC), in turns: throughput of each and their ratio; and the same bytes
//! over mutual TLS dropped on arrival, the transport's ceiling on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{UploadFileHeader, UploadFileRequest, upload_file_request};
use gnt_transports::Connector;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchError;
use super::bare::{SINK_DISCARD, SINK_STORE};
use super::measure::{median, worst};
use super::report::{Row, Target};

/// The throughput UploadFile must reach, GB/s.
const THROUGHPUT_TARGET: f64 = 1.0;

/// The file: one pseudo-random block repeated, and the SHA-256 of the whole.
#[derive(Debug, Clone)]
pub struct Payload {
    block: bytes::Bytes,
    blocks: usize,
    sha256: [u8; 32],
}

impl Payload {
    /// `blocks` blocks of `block_size` bytes each.
    pub fn new(blocks: usize, block_size: usize) -> Self {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let block: Vec<u8> = (0..block_size)
            .map(|_| {
                // xorshift64: incompressible enough, and the same every run.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for _ in 0..blocks {
            digest.update(&block);
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.finish().as_ref());
        Self {
            block: block.into(),
            blocks,
            sha256,
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        (self.block.len() * self.blocks) as u64
    }
}

/// The scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct UploadResult {
    /// Bytes per upload.
    pub bytes: u64,
    /// Bytes per gRPC message.
    pub chunk_bytes: usize,
    /// Seconds of each UploadFile.
    pub grpc_seconds: Vec<f64>,
    /// Seconds of each bare TLS upload.
    pub bare_seconds: Vec<f64>,
    /// Seconds of each bare TLS transfer whose content is dropped (no hashing or storing).
    pub tls_only_seconds: Vec<f64>,
    /// UploadFile's median throughput, GB/s (10^9 bytes).
    pub grpc_gb_per_second: f64,
    /// The bare sink's median throughput, GB/s.
    pub bare_gb_per_second: f64,
    /// Mutual TLS alone, median, GB/s: the transport's ceiling here.
    pub tls_only_gb_per_second: f64,
    /// UploadFile over bare.
    pub ratio: f64,
}

/// Uploads `payload` to `destination` on the agent behind `connector`.
pub async fn grpc_upload(
    connector: &Connector,
    payload: &Payload,
    destination: &Path,
) -> Result<Duration, BenchError> {
    let channel = connector
        .channel()
        .await
        .map_err(|e| BenchError::failed(format!("connect to {}", connector.target()), e))?;
    let header = UploadFileRequest {
        part: Some(upload_file_request::Part::Header(UploadFileHeader {
            path: destination.display().to_string(),
            mode: 0o600,
            size: payload.size(),
            sha256: gnt_core::digest::hex(&payload.sha256),
        })),
    };
    let block = payload.block.clone();
    let chunks = (0..payload.blocks).map(move |_| UploadFileRequest {
        part: Some(upload_file_request::Part::Chunk(block.clone())),
    });
    let messages = tokio_stream::iter(std::iter::once(header).chain(chunks));
    let started = Instant::now();
    // The bench's clusters are new and never fail over: epoch 1.
    let written = NodeAgentClient::new(gnt_master::channels::stamped(channel, 1))
        .upload_file(messages)
        .await
        .map_err(|status| BenchError::failed("UploadFile", status.message()))?
        .into_inner()
        .bytes_written;
    let elapsed = started.elapsed();
    if written != payload.size() {
        return Err(BenchError::failed(
            "UploadFile",
            format!("{written} bytes written of {}", payload.size()),
        ));
    }
    Ok(elapsed)
}

/// Sends `payload` to the bare sink behind `connector`, to store (`mode`
/// [`SINK_STORE`]) or to drop ([`SINK_DISCARD`]).
pub async fn bare_upload(
    connector: &Connector,
    payload: &Payload,
    mode: u8,
) -> Result<Duration, BenchError> {
    let mut io = connector
        .connect()
        .await
        .map_err(|e| BenchError::failed(format!("connect to {}", connector.target()), e))?;
    let started = Instant::now();
    let sink = BenchError::io("send to the bare sink");
    let sent = async {
        io.write_all(&[mode]).await?;
        io.write_all(&payload.size().to_be_bytes()).await?;
        io.write_all(&payload.sha256).await?;
        for _ in 0..payload.blocks {
            io.write_all(&payload.block).await?;
        }
        io.flush().await?;
        let mut stored = [0u8; 8];
        io.read_exact(&mut stored).await?;
        Ok(u64::from_be_bytes(stored))
    }
    .await
    .map_err(sink)?;
    let elapsed = started.elapsed();
    if sent != payload.size() {
        return Err(BenchError::failed(
            "the bare sink",
            format!("{sent} bytes stored of {}", payload.size()),
        ));
    }
    Ok(elapsed)
}

/// Where the uploads go, and what is cleaned after each round.
#[derive(Debug, Clone)]
pub struct Destinations {
    /// The file UploadFile writes.
    pub grpc_file: PathBuf,
    /// The directory the bare sink writes into.
    pub bare_dir: PathBuf,
}

/// `rounds` uploads each way, in turns.
pub async fn compare(
    grpc: &Connector,
    bare: &Connector,
    payload: &Payload,
    destinations: &Destinations,
    rounds: usize,
) -> Result<UploadResult, BenchError> {
    let mut grpc_seconds = Vec::new();
    let mut bare_seconds = Vec::new();
    let mut tls_only_seconds = Vec::new();
    for _ in 0..rounds {
        grpc_seconds.push(
            grpc_upload(grpc, payload, &destinations.grpc_file)
                .await?
                .as_secs_f64(),
        );
        let _ = std::fs::remove_file(&destinations.grpc_file);
        bare_seconds.push(bare_upload(bare, payload, SINK_STORE).await?.as_secs_f64());
        clear_dir(&destinations.bare_dir)?;
        tls_only_seconds.push(
            bare_upload(bare, payload, SINK_DISCARD)
                .await?
                .as_secs_f64(),
        );
    }
    let gbps = |seconds: &[f64]| payload.size() as f64 / median(seconds) / 1e9;
    let grpc_gb_per_second = gbps(&grpc_seconds);
    let bare_gb_per_second = gbps(&bare_seconds);
    Ok(UploadResult {
        bytes: payload.size(),
        chunk_bytes: payload.block.len(),
        grpc_seconds,
        bare_seconds,
        grpc_gb_per_second,
        bare_gb_per_second,
        tls_only_gb_per_second: gbps(&tls_only_seconds),
        tls_only_seconds,
        ratio: grpc_gb_per_second / bare_gb_per_second,
    })
}

fn clear_dir(dir: &Path) -> Result<(), BenchError> {
    let entries =
        std::fs::read_dir(dir).map_err(BenchError::io(format!("list {}", dir.display())))?;
    for entry in entries.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(())
}

/// The table's figures.
pub fn rows(result: &UploadResult) -> Vec<Row> {
    let slowest = result.bytes as f64 / worst(&result.grpc_seconds) / 1e9;
    vec![
        Row::new(
            "upload",
            format!(
                "UploadFile {} MiB, {} KiB chunks",
                result.bytes >> 20,
                result.chunk_bytes >> 10
            ),
            format!("{:.2} GB/s", result.grpc_gb_per_second),
        )
        .baseline(
            format!("{:.2} GB/s", result.bare_gb_per_second),
            result.ratio,
        )
        .target(Target::at_least(
            result.grpc_gb_per_second,
            THROUGHPUT_TARGET,
            "GB/s",
        )),
        Row::new(
            "upload",
            "UploadFile slowest round",
            format!("{slowest:.2} GB/s"),
        ),
        Row::new(
            "upload",
            "mutual TLS alone (content dropped)",
            format!("{:.2} GB/s", result.tls_only_gb_per_second),
        ),
    ]
}
