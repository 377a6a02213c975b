//! `gnt cluster init`: Ganeti's InitCluster network checks, then the configuration, the PKI
//! and the master host's own node state.
//!
//! Every check runs before anything is written, with Ganeti's wording (made precise where
//! Ganeti's is vague): this host's name must resolve in the chosen family, not to loopback,
//! and to an address this host owns; the cluster name must resolve in the family to an
//! address nothing answers on; a hybrid cluster needs an IPv4 secondary this host owns; the
//! netmask must fit the family. The order differs from Ganeti's in one way: the arguments
//! alone (secondary, netmask) are checked first and the cluster-IP probe, the slowest check,
//! last, so a typo is reported at once. Then the CA, the master's client
//! certificate, this host's node key and certificate, its ssconf, and last the
//! configuration file (whose existence means "initialised"). If a write fails, what was
//! written is removed again.
//!
//! Departure: Ganeti also activates the cluster IP on the master's network device
//! (`master-ip-setup`); the cluster IP is recorded here (ssconf `master_ip`) but managing a
//! floating address is outside this layer.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::netutils::{
    Hostname, PingOptions, Resolver, is_loopback, owns_address, parse_ip, tcp_ping,
};
use gnt_core::netutils::{PingError, ResolveError};
use gnt_core::policy::{IpFamily, IpPolicy};
use gnt_node_agent::state::{JoinCommit, MemberConf, Mode, NodeState, StateError};

use crate::config::{ClusterConfig, ConfigError, ConfigStore, NodeConfig, unix_now};
use crate::paths::MasterPaths;
use crate::pki::{ClusterCa, PkiError};

/// What `gnt cluster init` was asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The state directory shared with the local gnt-noded.
    pub state_dir: PathBuf,
    /// The cluster's name; it must resolve to the (unused) cluster IP.
    pub cluster_name: String,
    /// The policy (`--primary-ip-version`).
    pub policy: IpPolicy,
    /// `-s`: this host's IPv4 secondary address.
    pub secondary_ip: Option<String>,
    /// `--master-netmask`.
    pub master_netmask: Option<u32>,
    /// This host's name (default: the system's).
    pub node_name: String,
    /// The node agents' port.
    pub node_port: u16,
    /// How long the "cluster IP already active" ping waits (Ganeti: 5 s).
    pub ping_timeout: Duration,
}

/// What init did.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The configuration written.
    pub config: ClusterConfig,
}

/// Why init refused or failed. Each message says what to fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A cluster configuration exists.
    #[error("Cluster is already initialised (configuration in {}); `gnt cluster info` shows it", dir.display())]
    AlreadyInitialised {
        /// The master directory.
        dir: PathBuf,
    },
    /// The local node agent is already a member.
    #[error(
        "this host's node agent already belongs to cluster '{0}'; remove it from that cluster first"
    )]
    AlreadyMember(String),
    /// The master directory holds leftovers.
    #[error("{} is not empty; remove its contents (left by an earlier cluster) and retry", dir.display())]
    DirtyDirectory {
        /// The master directory.
        dir: PathBuf,
    },
    /// A name is invalid.
    #[error("invalid {what} '{name}': {reason}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A name does not resolve in the family.
    #[error("The given name ({name}) does not resolve: {source}")]
    Resolve {
        /// The name.
        name: String,
        /// What the resolver said.
        source: ResolveError,
    },
    /// This host's name resolves to loopback.
    #[error("This host's IP ({0}) resolves to a loopback address. Please fix DNS or /etc/hosts.")]
    Loopback(IpAddr),
    /// This host does not own the address its name resolves to.
    #[error(
        "Inconsistency: this host's name ({name}) resolves to {ip}, but this IP address does not belong to this host; fix DNS or /etc/hosts, or configure the address"
    )]
    NotOwned {
        /// The name.
        name: String,
        /// The address.
        ip: IpAddr,
    },
    /// Something answers on the cluster IP.
    #[error(
        "Cluster IP already active: {ip} ({name}) answers on port {port}; the cluster name must resolve to an address nothing uses"
    )]
    ClusterIpActive {
        /// The cluster name.
        name: String,
        /// Its address.
        ip: IpAddr,
        /// The port probed.
        port: u16,
    },
    /// A hybrid cluster needs `-s`.
    #[error(
        "When using a IPv6 primary address, a valid IPv4 address must be given as secondary (-s/--secondary-ip)"
    )]
    SecondaryRequired,
    /// The secondary is not IPv4.
    #[error("Secondary IP address ({0}) has to be a valid IPv4 address.")]
    SecondaryNotIpv4(String),
    /// This host does not own the secondary.
    #[error("You gave {0} as secondary IP, but it does not belong to this host.")]
    SecondaryNotOwned(IpAddr),
    /// The netmask does not fit the family.
    #[error("CIDR netmask ({netmask}) not valid for IPv{version}: use 1 to {}", if *version == 4 { 32 } else { 128 })]
    Netmask {
        /// The netmask.
        netmask: u32,
        /// The IP version.
        version: u8,
    },
    /// The cluster IP probe could not run.
    #[error("cannot probe the cluster IP")]
    Ping(#[source] PingError),
    /// The PKI could not be created.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The configuration could not be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A file operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl Classify for InitError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyInitialised { .. }
            | Self::AlreadyMember(_)
            | Self::DirtyDirectory { .. } => ErrorKind::WrongState,
            Self::InvalidName { .. }
            | Self::SecondaryRequired
            | Self::SecondaryNotIpv4(_)
            | Self::Netmask { .. } => ErrorKind::WrongInput,
            Self::Resolve { .. } => ErrorKind::Resolver,
            Self::Loopback(_) | Self::NotOwned { .. } | Self::SecondaryNotOwned(_) => {
                ErrorKind::Environment
            }
            Self::ClusterIpActive { .. } => ErrorKind::NotUnique,
            Self::Ping(e) => e.kind(),
            Self::Pki(e) => e.kind(),
            Self::Config(e) => e.kind(),
            Self::State(e) => e.kind(),
            Self::Fs(e) => e.kind(),
        }
    }
}

/// The checked facts init writes.
struct Checked {
    cluster: Hostname,
    node: Hostname,
    primary: IpAddr,
    secondary: IpAddr,
    master_ip: IpAddr,
    netmask: u8,
}

/// Checks, then initialises.
pub async fn init(options: &InitOptions, resolver: &Resolver) -> Result<InitReport, InitError> {
    let paths = MasterPaths::new(&options.state_dir);
    let store = ConfigStore::new(&paths.master_dir);
    if store.exists() {
        return Err(InitError::AlreadyInitialised {
            dir: paths.master_dir.clone(),
        });
    }
    let node_state = NodeState::open(&options.state_dir)?;
    if let Mode::Member(membership) = node_state.mode()? {
        return Err(InitError::AlreadyMember(
            membership.cluster_name.to_string(),
        ));
    }
    if std::fs::read_dir(&paths.master_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(InitError::DirtyDirectory {
            dir: paths.master_dir.clone(),
        });
    }
    let checked = check(options, resolver).await?;
    tracing::info!(cluster = %checked.cluster, node = %checked.node, policy = %options.policy, "all checks passed; initialising");
    let result = write(options, &paths, &store, &node_state, &checked);
    if result.is_err() {
        // Leave nothing half-made behind: the checks above proved none of it existed.
        let _ = std::fs::remove_dir_all(&paths.master_dir);
        let _ = node_state.wipe();
    }
    result
}

async fn check(options: &InitOptions, resolver: &Resolver) -> Result<Checked, InitError> {
    let family = options.policy.primary_family();
    let name = |what, text: &str| {
        Hostname::parse(text).map_err(|e| InitError::InvalidName {
            what,
            name: text.to_owned(),
            reason: e.reason.to_owned(),
        })
    };
    let node = name("host name", &options.node_name)?;
    let cluster = name("cluster name", &options.cluster_name)?;
    let resolve = |hostname: &Hostname| {
        let hostname = hostname.clone();
        async move {
            resolver
                .resolve(hostname.as_str(), Some(family))
                .await
                .map(|r| r.first())
                .map_err(|source| InitError::Resolve {
                    name: hostname.to_string(),
                    source,
                })
        }
    };

    // The arguments alone first: a typo should not wait for the network.
    let secondary = match (&options.secondary_ip, options.policy) {
        (None, IpPolicy::HybridIpv6) => return Err(InitError::SecondaryRequired),
        (None, IpPolicy::Ipv4) => None,
        (Some(text), _) => match parse_ip(text) {
            Ok(ip @ IpAddr::V4(_)) => Some(ip),
            _ => return Err(InitError::SecondaryNotIpv4(text.clone())),
        },
    };
    let netmask = match options.master_netmask {
        None => options.policy.default_master_netmask(),
        Some(n) => options
            .policy
            .validate_master_netmask(n)
            .map_err(|_| InitError::Netmask {
                netmask: n,
                version: family.version(),
            })?,
    };

    // This host: its name, its addresses.
    let primary = resolve(&node).await?;
    if is_loopback(primary) {
        return Err(InitError::Loopback(primary));
    }
    if !owns_address(primary) {
        return Err(InitError::NotOwned {
            name: node.to_string(),
            ip: primary,
        });
    }
    let secondary = secondary.unwrap_or(primary);
    if !owns_address(secondary) {
        return Err(InitError::SecondaryNotOwned(secondary));
    }

    // The cluster IP, last: probing an unused address is the slowest check.
    let master_ip = resolve(&cluster).await?;
    let probe = PingOptions {
        timeout: options.ping_timeout,
        ..PingOptions::default()
    };
    let answered = tcp_ping(SocketAddr::new(master_ip, options.node_port), &probe)
        .await
        .map_err(InitError::Ping)?;
    if answered.is_alive(false) {
        return Err(InitError::ClusterIpActive {
            name: cluster.to_string(),
            ip: master_ip,
            port: options.node_port,
        });
    }
    debug_assert_eq!(IpFamily::of(&primary), family);
    Ok(Checked {
        cluster,
        node,
        primary,
        secondary,
        master_ip,
        netmask,
    })
}

fn write(
    options: &InitOptions,
    paths: &MasterPaths,
    store: &ConfigStore,
    node_state: &NodeState,
    checked: &Checked,
) -> Result<InitReport, InitError> {
    fs_atomic::ensure_dir(&paths.master_dir, 0o700)?;
    let ca = ClusterCa::create(checked.cluster.as_str())?;
    ca.save(&paths.pki)?;
    let node_name = checked.node.as_str();
    let master = ca.issue_with_new_key(node_name, "master", &[node_name], &[])?;
    fs_atomic::write_atomic(&paths.pki.master_cert, master.cert_pem.as_bytes(), 0o644)?;
    fs_atomic::write_atomic(&paths.pki.master_key, master.key_pem.as_bytes(), 0o600)?;

    // This host is a node too: its key is made here, on this host, like any node's.
    let node_key = node_state.node_key()?;
    let node_cert = ca.issue(
        &node_key,
        node_name,
        "node",
        &[node_name],
        &[checked.primary, checked.secondary],
    )?;
    let now = unix_now();
    let mut config = ClusterConfig {
        serial: 1,
        cluster_name: checked.cluster.to_string(),
        primary_ip_version: options.policy.version(),
        master_node: node_name.to_owned(),
        master_ip: checked.master_ip,
        master_netmask: checked.netmask,
        node_port: options.node_port,
        master_certificate_sha256: fingerprint_of_pem(&master.cert_pem)?,
        nodes: Default::default(),
        join_tokens: Vec::new(),
        created_at: now,
        modified_at: now,
    };
    config.nodes.insert(
        node_name.to_owned(),
        NodeConfig {
            primary_ip: checked.primary,
            secondary_ip: checked.secondary,
            offline: false,
            certificate_sha256: fingerprint_of_pem(&node_cert)?,
            added_at: now,
        },
    );
    let ssconf = config.ssconf().map_err(StateError::Ssconf)?;
    node_state.commit_join(&JoinCommit {
        ca_pem: ca.cert_pem(),
        node_cert_pem: &node_cert,
        member: MemberConf {
            cluster_name: checked.cluster.to_string(),
            listen: SocketAddr::new(options.policy.bind_wildcard(), options.node_port),
        },
        ssconf: &ssconf,
    })?;
    store.save(&config)?;
    Ok(InitReport { config })
}

/// SHA-256 fingerprint (colon hex) of a PEM certificate.
pub fn fingerprint_of_pem(pem: &str) -> Result<String, PkiError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| gnt_transports::fingerprint(&gnt_transports::sha256(der.as_ref())))
        .map_err(|e| PkiError::Generate {
            action: "read back an issued certificate",
            reason: e.to_string(),
        })
}
