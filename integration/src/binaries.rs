//! Finding the real binaries (`gnt`, `gnt-masterd`, `gnt-noded`) of this workspace for tests
//! and the demo, which belong to other packages than the binaries themselves.
//!
//! They are looked for in `$GNT_BIN_DIR`, else next to the running executable (for a test
//! binary: the profile directory above `deps/`). `cargo test --workspace` builds every
//! binary there before any test runs, because each binary's package has an integration
//! test of its own (cargo builds a package's binaries only for those); `cargo test -p
//! gnt-integration` alone does not. When they are missing and the caller runs under cargo
//! (`$CARGO` is set, as with `cargo run`), they are built with the same profile.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries and the packages that build them.
pub const BINARIES: [(&str, &str); 3] = [
    ("gnt", "gnt-master"),
    ("gnt-masterd", "gnt-master"),
    ("gnt-noded", "gnt-node-agent"),
];

/// A binary that cannot be found or built.
#[derive(Debug, thiserror::Error)]
#[error("cannot find {name} in {}: {reason}", dir.display())]
pub struct MissingBinary {
    /// The binary.
    pub name: String,
    /// Where it was looked for.
    pub dir: PathBuf,
    /// What to do.
    pub reason: String,
}

/// The directory the binaries are in.
pub fn directory() -> PathBuf {
    if let Some(dir) = std::env::var_os("GNT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new(".")).to_owned();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(Path::new(".")).to_owned()
    } else {
        dir
    }
}

/// The path of binary `name`, building the binaries first if they are missing and cargo
/// is at hand.
pub fn locate(name: &str) -> Result<PathBuf, MissingBinary> {
    let dir = directory();
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    let missing = |reason: String| MissingBinary {
        name: name.to_owned(),
        dir: dir.clone(),
        reason,
    };
    let cargo = std::env::var_os("CARGO").ok_or_else(|| {
        missing("build them first with `cargo build --workspace --bins`".to_owned())
    })?;
    eprintln!("building the gnt-rpc binaries ({name} is missing)...");
    build(&cargo, &dir).map_err(|e| missing(e.to_string()))?;
    if path.exists() {
        Ok(path)
    } else {
        Err(missing(
            "`cargo build --bins` did not produce it".to_owned(),
        ))
    }
}

/// Under `cargo run` (`$CARGO` set, `$GNT_BIN_DIR` not), brings the binaries up to date
/// with the sources, so that a program measuring them never measures stale ones; a no-op
/// otherwise.
pub fn build_if_under_cargo() -> Result<(), MissingBinary> {
    let (Some(cargo), None) = (std::env::var_os("CARGO"), std::env::var_os("GNT_BIN_DIR")) else {
        return Ok(());
    };
    let dir = directory();
    build(&cargo, &dir).map_err(|e| MissingBinary {
        name: "gnt-rpc binaries".to_owned(),
        dir,
        reason: e.to_string(),
    })
}

/// Why `cargo build --bins` did not build the binaries.
#[derive(Debug, thiserror::Error)]
enum BuildFailure {
    #[error("cannot run cargo: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`cargo build --bins` failed ({0})")]
    Failed(std::process::ExitStatus),
}

/// `cargo build --bins` of every binary's package, in the profile of `dir`.
fn build(cargo: &std::ffi::OsStr, dir: &Path) -> Result<(), BuildFailure> {
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--bins"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    for (_, package) in BINARIES {
        command.args(["-p", package]);
    }
    let status = command.status().map_err(BuildFailure::Spawn)?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildFailure::Failed(status))
    }
}
