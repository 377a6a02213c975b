//! Compiles `proto/**/*.proto` with protox (pure Rust, no system `protoc`), generates the
//! tonic services, and writes the encoded descriptor set that server reflection serves.

use std::error::Error;
use std::path::{Path, PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const DESCRIPTOR_FILE: &str = "gnt_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let mut files = Vec::new();
    collect_protos(Path::new(PROTO_ROOT), &mut files)?;
    files.sort();
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(PROTO_ROOT).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    // Source info is kept so that grpcurl's `describe` shows the comments.
    let descriptors = protox::compile(&relative, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // `file_descriptor_set_path` is ignored on the `compile_fds` path, so write it ourselves.
    std::fs::write(out_dir.join(DESCRIPTOR_FILE), descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Upload chunks are handed from the decoder to the file writer (and from the file
        // to the encoder) without a copy.
        .bytes(".gnt.node.v1.UploadFileRequest.chunk")
        // Small per-call buffers (`proto/codec.rs` says why).
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_fds(descriptors)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
