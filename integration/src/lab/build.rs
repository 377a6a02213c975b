//! Building a lab: host specs, then the namespaces, bridges, veth pairs, addresses and
//! name files they describe.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cleanup::sweep_leftovers;
use super::command::{ip, ip_in, run};
use super::{Lab, LabError, LabHost, Network, PREFIX};

/// Lab IPv4 subnet (inside the lab only).
const IPV4_PREFIX_LEN: u8 = 24;
/// Lab IPv6 subnet (inside the lab only).
const IPV6_PREFIX_LEN: u8 = 64;

/// What one host should have.
#[derive(Debug, Clone)]
pub struct HostSpec {
    name: String,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    secondary: Option<Ipv4Addr>,
    sysctls: Vec<(String, String)>,
}

impl HostSpec {
    /// A host called `name`, with no address yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ipv4: None,
            ipv6: None,
            secondary: None,
            sysctls: Vec::new(),
        }
    }

    /// Gives the host an IPv4 address on the secondary network (a second interface).
    pub fn secondary(mut self, addr: Ipv4Addr) -> Self {
        self.secondary = Some(addr);
        self
    }

    /// Gives the host an IPv4 address (in the lab's /24).
    pub fn ipv4(mut self, addr: Ipv4Addr) -> Self {
        self.ipv4 = Some(addr);
        self
    }

    /// Gives the host an IPv6 address (in the lab's /64).
    pub fn ipv6(mut self, addr: Ipv6Addr) -> Self {
        self.ipv6 = Some(addr);
        self
    }

    /// Sets a sysctl inside the host, e.g. `("net.ipv6.bindv6only", "1")`.
    pub fn sysctl(mut self, key: &str, value: &str) -> Self {
        self.sysctls.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Builds a [`Lab`].
#[derive(Debug, Default)]
pub struct LabBuilder {
    hosts: Vec<HostSpec>,
    aliases: Vec<(String, Vec<IpAddr>)>,
}

impl LabBuilder {
    /// Adds a name to every host's hosts file without a host behind it (a cluster name
    /// that must resolve to an unused address, say).
    pub fn alias(mut self, name: &str, addresses: &[IpAddr]) -> Self {
        self.aliases.push((name.to_owned(), addresses.to_vec()));
        self
    }

    /// Adds a host.
    pub fn host(mut self, spec: HostSpec) -> Self {
        self.hosts.push(spec);
        self
    }

    /// Creates the namespaces, links, addresses and files.
    pub fn build(self) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        sweep_leftovers();
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{PREFIX}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            switch: format!("{id}-sw"),
            id,
            hosts: Vec::new(),
            aliases: self.aliases.clone(),
        };
        // From here on, dropping `lab` removes whatever was created.
        ip(&["netns", "add", &lab.switch])?;
        ip_in(&lab.switch, &["link", "set", "lo", "up"])?;
        for network in [Network::Primary, Network::Secondary] {
            ip_in(
                &lab.switch,
                &["link", "add", network.bridge(), "type", "bridge"],
            )?;
            ip_in(&lab.switch, &["link", "set", network.bridge(), "up"])?;
        }
        for (index, spec) in self.hosts.iter().enumerate() {
            let host = LabHost {
                name: spec.name.clone(),
                netns: format!("{}-{}", lab.id, spec.name),
                index,
                ipv4: spec.ipv4,
                ipv6: spec.ipv6,
                secondary: spec.secondary,
            };
            ip(&["netns", "add", &host.netns])?;
            lab.hosts.push(host.clone());
            for (key, value) in &spec.sysctls {
                host.write_sysctl(key, value)?;
            }
            ip_in(&host.netns, &["link", "set", "lo", "up"])?;
            lab.plug(&host, Network::Primary)?;
            if let Some(v4) = host.ipv4 {
                let cidr = format!("{v4}/{IPV4_PREFIX_LEN}");
                ip_in(&host.netns, &["addr", "add", &cidr, "dev", "eth0"])?;
            }
            if let Some(v6) = host.ipv6 {
                let cidr = format!("{v6}/{IPV6_PREFIX_LEN}");
                ip_in(&host.netns, &["addr", "add", &cidr, "dev", "eth0", "nodad"])?;
            }
            if let Some(secondary) = host.secondary {
                lab.plug(&host, Network::Secondary)?;
                let cidr = format!("{secondary}/{IPV4_PREFIX_LEN}");
                ip_in(&host.netns, &["addr", "add", &cidr, "dev", "eth1"])?;
            }
        }
        lab.write_name_files()?;
        Ok(lab)
    }
}

impl Lab {
    /// Connects `host` to `network`: a veth pair from its interface to a bridge port.
    fn plug(&self, host: &LabHost, network: Network) -> Result<(), LabError> {
        let port = host.port(network);
        ip(&[
            "link",
            "add",
            network.interface(),
            "netns",
            &host.netns,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.switch,
        ])?;
        ip_in(
            &self.switch,
            &["link", "set", &port, "master", network.bridge()],
        )?;
        ip_in(&self.switch, &["link", "set", &port, "up"])?;
        ip_in(&host.netns, &["link", "set", network.interface(), "up"])
    }

    /// Every host's name file lists every host, both families; resolv.conf points at the
    /// host's own loopback, so a lookup that misses the hosts file never leaves the host.
    fn write_name_files(&self) -> Result<(), LabError> {
        let mut table = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
        for host in &self.hosts {
            for ip in host.addresses() {
                table.push_str(&format!("{ip} {} {}\n", host.fqdn(), host.name));
            }
        }
        for (name, addresses) in &self.aliases {
            for ip in addresses {
                table.push_str(&format!("{ip} {name}\n"));
            }
        }
        for host in &self.hosts {
            let dir = host.etc_dir();
            fs::create_dir_all(&dir).map_err(|source| LabError::Io {
                action: format!("create {}", dir.display()),
                source,
            })?;
            write_file(&dir.join("hosts"), &table)?;
            write_file(
                &dir.join("resolv.conf"),
                "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
            )?;
        }
        Ok(())
    }
}

impl LabHost {
    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.netns,
            "sh",
            "-c",
            &format!("echo {value} > {path}"),
        ]))
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    fs::write(path, text).map_err(|source| LabError::Io {
        action: format!("write {}", path.display()),
        source,
    })
}
