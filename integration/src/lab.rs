//! The lab: real multi-host topologies for tests, built from Linux network namespaces.
//!
//! Each host is a network namespace with its own loopback and an interface `eth0` on the
//! primary network; hosts given a secondary address also get `eth1` on a separate secondary
//! network (Ganeti's replication network). Each interface is the end of a veth pair whose
//! other end is a port of that network's bridge. The bridges live in a namespace of their
//! own, so the machine's own network is never touched and nothing in the lab has a route
//! out of it: the only addresses a test can reach are the lab's.
//!
//! Each host gets the IPv4 and/or IPv6 address asked for (IPv6 without duplicate address
//! detection, so it is usable at once), its own `/etc/hosts` naming every lab host
//! (`name.lab.test`), a `resolv.conf` pointing at its own loopback, and any sysctls asked
//! for. `ip netns exec` shows these files as `/etc/hosts` and `/etc/resolv.conf` to the
//! processes it starts ([`LabHost::command`]); code in the test process itself runs inside
//! a host through [`LabHost::block_on`] and [`LabHost::spawn`], on a thread that has joined
//! the host's namespace, and resolves through [`LabHost::resolver`].
//!
//! Faults: [`Lab::cut_link`] unplugs one of a host's interfaces from its bridge; [`Lab::blackhole`] makes one
//! address unreachable from one host without any answer (a neighbour entry pointing at a
//! MAC address no host has), which is what a broken IPv6 path looks like.
//!
//! Names are unique per run (`gntlab-<pid>-<n>-<host>`); everything is removed when the
//! [`Lab`] is dropped, also on panic, and a new lab first sweeps namespaces left by test
//! processes that no longer exist. Building a lab needs root.

use std::fs;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use gnt_core::netutils::Resolver;

/// Prefix of every lab namespace.
const PREFIX: &str = "gntlab";
/// Lab IPv4 subnet (inside the lab only).
const IPV4_PREFIX_LEN: u8 = 24;
/// Lab IPv6 subnet (inside the lab only).
const IPV6_PREFIX_LEN: u8 = 64;
/// The domain of lab host names.
pub const DOMAIN: &str = "lab.test";
/// A MAC address no lab host has: traffic sent to it disappears on the bridge.
const NOWHERE_MAC: &str = "02:00:00:00:de:ad";

/// A lab that cannot be built or changed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces need privileges.
    #[error("the lab needs root (network namespaces, veth pairs, bridges); run the tests as root")]
    NotRoot,
    /// A command failed.
    #[error("lab command `{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// A file or system call failed.
    #[error("lab: cannot {action}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No such host.
    #[error("the lab has no host '{0}'")]
    UnknownHost(String),
}

/// One of the two lab networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// `eth0` on bridge `br0`: the primary network.
    Primary,
    /// `eth1` on bridge `br1`: the secondary (IPv4) network.
    Secondary,
}

impl Network {
    fn bridge(self) -> &'static str {
        match self {
            Self::Primary => "br0",
            Self::Secondary => "br1",
        }
    }

    fn interface(self) -> &'static str {
        match self {
            Self::Primary => "eth0",
            Self::Secondary => "eth1",
        }
    }

    fn port_prefix(self) -> &'static str {
        match self {
            Self::Primary => "p",
            Self::Secondary => "s",
        }
    }
}

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

/// A running lab; dropping it removes it.
#[derive(Debug)]
pub struct Lab {
    id: String,
    switch: String,
    hosts: Vec<LabHost>,
    aliases: Vec<(String, Vec<IpAddr>)>,
}

impl Lab {
    /// Starts describing a lab.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&LabHost, LabError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::UnknownHost(name.to_owned()))
    }

    /// Every host.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The lab's unique id (the prefix of its namespace names).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Unplugs `host`'s interface on `network` from its bridge: its packets there go
    /// nowhere, and nothing reaches it there; its other network is unaffected.
    pub fn cut_link(&self, host: &str, network: Network) -> Result<(), LabError> {
        let port = self.host(host)?.port(network);
        ip_in(&self.switch, &["link", "set", &port, "down"])
    }

    /// Plugs it back in.
    pub fn restore_link(&self, host: &str, network: Network) -> Result<(), LabError> {
        let port = self.host(host)?.port(network);
        ip_in(&self.switch, &["link", "set", &port, "up"])
    }

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

    /// Makes `to` unreachable from `from`, silently: packets leave `from` but no host
    /// receives them, so connections hang until their timeout.
    pub fn blackhole(&self, from: &str, to: IpAddr) -> Result<(), LabError> {
        let netns = &self.host(from)?.netns;
        ip_in(
            netns,
            &[
                "neigh",
                "replace",
                &to.to_string(),
                "lladdr",
                NOWHERE_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
    }

    /// Undoes [`blackhole`](Self::blackhole).
    pub fn heal(&self, from: &str, to: IpAddr) -> Result<(), LabError> {
        let netns = &self.host(from)?.netns;
        ip_in(netns, &["neigh", "del", &to.to_string(), "dev", "eth0"])
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

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &self.hosts {
            remove_netns(&host.netns);
        }
        remove_netns(&self.switch);
    }
}

/// One host of a lab.
#[derive(Debug, Clone)]
pub struct LabHost {
    name: String,
    netns: String,
    index: usize,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    secondary: Option<Ipv4Addr>,
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
    fn port(&self, network: Network) -> String {
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

    /// Starts `program args...` inside the host; it is killed when the handle is dropped.
    pub fn spawn_process(&self, program: &Path, args: &[&str]) -> Result<LabProcess, LabError> {
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LabError::Io {
                action: format!("start {} in {}", program.display(), self.name),
                source,
            })?;
        Ok(LabProcess { child: Some(child) })
    }

    /// Runs `future` to completion inside the host, on a thread that has joined the host's
    /// network namespace: every socket it opens is the host's.
    pub fn block_on<F>(&self, future: F) -> Result<F::Output, LabError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)?.join()
    }

    /// Like [`block_on`](Self::block_on), in the background.
    pub fn spawn<F>(&self, future: F) -> Result<HostTask<F::Output>, LabError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let host = self.clone();
        let name = self.name.clone();
        let thread = thread::Builder::new()
            .name(format!("lab-{name}"))
            .spawn(move || -> Result<F::Output, LabError> {
                host.enter()?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| LabError::Io {
                        action: format!("start a runtime in {name}"),
                        source,
                    })?;
                Ok(runtime.block_on(future))
            })
            .map_err(|source| LabError::Io {
                action: "start a host thread".to_owned(),
                source,
            })?;
        Ok(HostTask { thread })
    }

    /// Moves the calling thread into the host's network namespace: every socket it opens
    /// from then on, and every thread it starts, is the host's.
    pub fn enter(&self) -> Result<(), LabError> {
        let namespace =
            fs::File::open(Path::new("/run/netns").join(&self.netns)).map_err(|source| {
                LabError::Io {
                    action: format!("open the namespace of {}", self.name),
                    source,
                }
            })?;
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            LabError::Io {
                action: format!("enter the namespace of {}", self.name),
                source: io::Error::from(e),
            }
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

/// Code running inside a host; see [`LabHost::spawn`].
#[derive(Debug)]
pub struct HostTask<T> {
    thread: thread::JoinHandle<Result<T, LabError>>,
}

impl<T> HostTask<T> {
    /// Waits for it to finish. A panic inside is resumed here, so assertions inside a host
    /// fail the test.
    pub fn join(self) -> Result<T, LabError> {
        match self.thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// A process running inside a host; killed on drop.
#[derive(Debug)]
pub struct LabProcess {
    child: Option<Child>,
}

impl LabProcess {
    /// Adopts a process started with [`LabHost::command`].
    pub fn from_child(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// The process, to read its pipes or wait for it.
    pub fn child(&mut self) -> &mut Child {
        // Only `into_output` takes the child, and it consumes `self`.
        self.child
            .as_mut()
            .unwrap_or_else(|| unreachable!("child taken"))
    }

    /// Stops it (SIGKILL) and collects what it printed.
    pub fn kill_and_collect(mut self) -> Result<Output, LabError> {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| unreachable!("child taken"));
        let _ = child.kill();
        child.wait_with_output().map_err(|source| LabError::Io {
            action: "collect the output of a lab process".to_owned(),
            source,
        })
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes namespaces (and their files) left by test processes that no longer exist.
pub fn sweep_leftovers() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&format!("{PREFIX}-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            tracing::info!(netns = %name, "removing a namespace left by a dead test run");
            remove_netns(&name);
        }
    }
}

fn remove_netns(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(name));
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").args(args))
}

fn ip_in(netns: &str, args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").arg("-n").arg(netns).args(args))
}

fn run(command: &mut Command) -> Result<(), LabError> {
    let line = format!("{command:?}");
    let output = command.output().map_err(|source| LabError::Io {
        action: format!("run {line}"),
        source,
    })?;
    succeeded(line, &output)
}

/// `Ok` if command `line` exited successfully, else what it printed on standard error.
fn succeeded(line: String, output: &Output) -> Result<(), LabError> {
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: line,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    fs::write(path, text).map_err(|source| LabError::Io {
        action: format!("write {}", path.display()),
        source,
    })
}
