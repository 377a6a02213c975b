//! Installing gnt-rpc on a host (`cargo gnt-install`): the three binaries in
//! `<prefix>/sbin`, the systemd units of both daemons, an environment file for each (root's
//! alone: the node's may hold a join token), shell completions and manual pages made from
//! the command-line definitions themselves, so they never disagree with `--help`.
//!
//! Everything goes under a root directory (`/` for the host, a temporary one for a test or
//! a package build). Binaries, units, completions and manual pages are replaced atomically;
//! an environment file that exists is the operator's and is left as it is.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use gnt_core::fs_atomic::{self, FsError};

/// The noded unit, as kept in the repository (binaries in `/usr/local/sbin`).
const NODED_UNIT: &str = include_str!("../../node-agent/gnt-noded.service");
/// The masterd unit.
const MASTERD_UNIT: &str = include_str!("../../master/gnt-masterd.service");
/// The prefix the units name.
const UNIT_PREFIX: &str = "/usr/local/sbin/";

/// The node agent's environment file, as first installed.
const NODED_ENV: &str = "\
# Environment of gnt-noded (read by gnt-noded.service); keep it readable by root only.
#
# Before this node joins a cluster it needs the join token that `gnt node token create`
# printed on the master: in /etc/gnt-rpc/join-token (mode 0600), as the options below say,
# or here, with --join-token-file removed from the options:
#GNT_JOIN_TOKEN=
#
# Options of gnt-noded (`man gnt-noded`), e.g. --allow-upload /etc/motd for
# `gnt cluster copyfile /etc/motd`.
GNT_NODED_OPTIONS=--join-token-file /etc/gnt-rpc/join-token
";

/// The master daemon's environment file, as first installed.
const MASTERD_ENV: &str = "\
# Environment of gnt-masterd (read by gnt-masterd.service).
#
# Options of gnt-masterd (`man gnt-masterd`), e.g. --renewal-check-interval 600.
GNT_MASTERD_OPTIONS=
";

/// Where to install.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The root directory (`/` for this host).
    pub root: PathBuf,
    /// The prefix of binaries, completions and manual pages, e.g. `/usr/local`.
    pub prefix: PathBuf,
    /// Where the built binaries are.
    pub binaries: PathBuf,
}

/// An installation that failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file could not be read or written.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The prefix is not absolute.
    #[error("--prefix {}: give an absolute path", .0.display())]
    RelativePrefix(PathBuf),
}

/// One file installed, or left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Its path on the host (without the root).
    pub path: PathBuf,
    /// Its mode.
    pub mode: u32,
    /// Whether an existing file was kept.
    pub kept: bool,
}

impl Layout {
    fn under_root(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn put(
        &self,
        done: &mut Vec<Installed>,
        path: PathBuf,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), InstallError> {
        let target = self.under_root(&path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| FsError::new("create directory", dir, e))?;
        }
        fs_atomic::write_atomic(&target, contents, mode)?;
        done.push(Installed {
            path,
            mode,
            kept: false,
        });
        Ok(())
    }

    /// Writes `contents` to `path` unless a file is there already.
    fn put_once(
        &self,
        done: &mut Vec<Installed>,
        path: PathBuf,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), InstallError> {
        if self.under_root(&path).exists() {
            done.push(Installed {
                path,
                mode,
                kept: true,
            });
            return Ok(());
        }
        self.put(done, path, contents, mode)
    }

    /// Installs everything; returns what was written or kept, in order.
    pub fn install(&self) -> Result<Vec<Installed>, InstallError> {
        if !self.prefix.is_absolute() {
            return Err(InstallError::RelativePrefix(self.prefix.clone()));
        }
        let mut done = Vec::new();
        let sbin = self.prefix.join("sbin");
        for (name, _) in crate::binaries::BINARIES {
            let source = self.binaries.join(name);
            let bytes = std::fs::read(&source).map_err(|e| FsError::new("read", &source, e))?;
            self.put(&mut done, sbin.join(name), &bytes, 0o755)?;
        }
        let prefix = format!("{}/", sbin.display());
        for (unit, text) in [
            ("gnt-noded.service", NODED_UNIT),
            ("gnt-masterd.service", MASTERD_UNIT),
        ] {
            let text = text.replace(UNIT_PREFIX, &prefix);
            let path = Path::new("/etc/systemd/system").join(unit);
            self.put(&mut done, path, text.as_bytes(), 0o644)?;
        }
        self.put_once(
            &mut done,
            PathBuf::from("/etc/default/gnt-noded"),
            NODED_ENV.as_bytes(),
            0o600,
        )?;
        self.put_once(
            &mut done,
            PathBuf::from("/etc/default/gnt-masterd"),
            MASTERD_ENV.as_bytes(),
            0o600,
        )?;
        for mut command in commands() {
            let name = command.get_name().to_owned();
            let share = self.prefix.join("share");
            for (shell, path) in [
                (
                    clap_complete::Shell::Bash,
                    share.join("bash-completion/completions").join(&name),
                ),
                (
                    clap_complete::Shell::Zsh,
                    share.join("zsh/site-functions").join(format!("_{name}")),
                ),
                (
                    clap_complete::Shell::Fish,
                    share
                        .join("fish/vendor_completions.d")
                        .join(format!("{name}.fish")),
                ),
            ] {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut command, &name, &mut script);
                self.put(&mut done, path, &script, 0o644)?;
            }
            let mut page = Vec::new();
            clap_mangen::Man::new(command.clone())
                .section("8")
                .render(&mut page)
                .map_err(|e| FsError::new("render the manual page of", &name, e))?;
            let path = share.join("man/man8").join(format!("{name}.8"));
            self.put(&mut done, path, &page, 0o644)?;
        }
        Ok(done)
    }
}

/// The command-line definitions of the three binaries.
fn commands() -> [clap::Command; 3] {
    [
        gnt_master::cli::Cli::command(),
        gnt_master::daemon::MasterdCli::command(),
        gnt_node_agent::config::Cli::command(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_name_the_prefix_they_are_rewritten_for() {
        for unit in [NODED_UNIT, MASTERD_UNIT] {
            assert!(unit.contains(&format!("ExecStart={UNIT_PREFIX}")), "{unit}");
            assert!(unit.contains("LimitNOFILE="), "{unit}");
            assert!(unit.contains("EnvironmentFile=-/etc/default/"), "{unit}");
        }
    }
}
