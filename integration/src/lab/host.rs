//! One host: its names, addresses and files, and commands run inside it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use gnt_core::netutils::Resolver;

use super::command::{ip_in, succeeded};
use super::{DOMAIN, LabError, Network};

/// One host of a lab.
#[derive(Debug, Clone)]
pub struct LabHost {
    pub(super) name: String,
    pub(super) netns: String,
    pub(super) index: usize,
    pub(super) ipv4: Option<Ipv4Addr>,
    pub(super) ipv6: Option<Ipv6Addr>,
    pub(super) secondary: Option<Ipv4Addr>,
}

impl LabHost {
    /// The short name, e.g. `node1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full name in the lab's hosts files, e.g. `node1.lab.test`.
    pub fn fqdn(&self) -> String {
        format!("{}.{DOMAIN}", self.name)
    }

    /// The network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The IPv4 address, if it has one.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4
    }

    /// The IPv6 address, if it has one.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// The IPv4 address on the secondary network, if it is on it.
    pub fn secondary(&self) -> Option<Ipv4Addr> {
        self.secondary
    }

    /// The bridge port of its interface on `network`.
    pub(super) fn port(&self, network: Network) -> String {
        format!("{}{}", network.port_prefix(), self.index)
    }

    /// Its primary-network addresses, IPv6 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.ipv6
            .map(IpAddr::V6)
            .into_iter()
            .chain(self.ipv4.map(IpAddr::V4))
            .collect()
    }

    /// The host's private `/etc` files (`hosts`, `resolv.conf`).
    pub fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.netns)
    }

    /// A resolver reading this host's `hosts` and `resolv.conf`, for code of the test
    /// process running inside the host.
    pub fn resolver(&self) -> Result<Arc<Resolver>, LabError> {
        let dir = self.etc_dir();
        Resolver::from_files(&dir.join("hosts"), &dir.join("resolv.conf"))
            .map(Arc::new)
            .map_err(|e| LabError::Io {
                action: format!("read the resolver configuration of {}", self.name),
                source: io::Error::other(e.to_string()),
            })
    }

    /// A command that runs `program` inside the host (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }

    /// Runs `program args...` inside the host and collects its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        self.command(program)
            .args(args)
            .output()
            .map_err(|source| LabError::Io {
                action: format!("run {program} in {}", self.name),
                source,
            })
    }

    /// Runs `ip ARGS` in the host (routes, addresses, links).
    pub fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        ip_in(&self.netns, args)
    }

    /// Adds `addresses` to the host's loopback, each alone in its prefix (IPv6 without
    /// duplicate address detection), in one `ip -batch` call: thousands take seconds.
    pub fn add_loopback_addresses(&self, addresses: &[IpAddr]) -> Result<(), LabError> {
        let mut batch = String::new();
        for ip in addresses {
            match ip {
                IpAddr::V4(v4) => batch.push_str(&format!("addr add {v4}/32 dev lo\n")),
                IpAddr::V6(v6) => batch.push_str(&format!("addr add {v6}/128 dev lo nodad\n")),
            }
        }
        let mut child = Command::new("ip")
            .args(["-n", &self.netns, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Io {
                action: "run ip -batch".to_owned(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(batch.as_bytes())
                .map_err(|source| LabError::Io {
                    action: "feed ip -batch".to_owned(),
                    source,
                })?;
        }
        let output = child.wait_with_output().map_err(|source| LabError::Io {
            action: "wait for ip -batch".to_owned(),
            source,
        })?;
        succeeded(
            format!(
                "ip -n {} -batch - ({} addresses)",
                self.netns,
                addresses.len()
            ),
            &output,
        )
    }
}
