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
//! The lifetimes of the CA and of the certificates it issues (`--ca-validity`,
//! `--certificate-validity`) are checked by the CLI ([`Lifetimes`]) and written to the
//! configuration, where the master finds the certificates' lifetime for every later issue.
//!
//! The cluster IP's device (`--master-netdev`, Ganeti's option) is checked with the
//! arguments: it must exist on this host. Without it, the device that holds this host's
//! primary address is chosen, and written down: the configuration names the device, never
//! "the default". Init does not activate the cluster IP (Ganeti does, from
//! `InitCluster`): `gnt-masterd` does when it starts, as after a failover.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use gnt_core::clock::unix_now;
use gnt_core::fs_atomic;
use gnt_core::netutils::{
    Hostname, PingOptions, Resolver, all_interface_addresses, interface_addresses, is_loopback,
    owns_address, parse_name, tcp_ping,
};
use gnt_core::node::Node;
use gnt_core::policy::IpPolicy;
use gnt_transports::join::{CertificateIssuer, Mode, NodeState, StateError};

use crate::config::{ClusterConfig, ConfigStore, DEFAULT_CANDIDATE_POOL_SIZE, NodeConfig};
use crate::paths::MasterPaths;
use crate::pki::{ClusterCa, Lifetimes, fingerprint_of_pem};

mod error;

pub use error::{InitError, NameOrigin};

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
    /// `--master-netdev`; `None`: the device that holds this host's primary address.
    pub master_netdev: Option<String>,
    /// This host's name (default: the system's).
    pub node_name: String,
    /// Where that name came from: a refusal about a name the operator did not type says so.
    pub node_name_origin: NameOrigin,
    /// The node agents' port.
    pub node_port: u16,
    /// How long the "cluster IP already active" ping waits (Ganeti: 5 s).
    pub ping_timeout: Duration,
    /// The lifetimes of the CA and of the certificates it issues (`--ca-validity`,
    /// `--certificate-validity`); kept in the configuration.
    pub lifetimes: Lifetimes,
}

/// What init did.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The configuration written.
    pub config: ClusterConfig,
}

/// The checked facts init writes.
struct Checked {
    cluster: Hostname,
    node: Node,
    master_ip: IpAddr,
    netmask: u8,
    netdev: String,
}

/// Checks, then initialises.
pub async fn init(options: &InitOptions, resolver: &Resolver) -> Result<InitReport, InitError> {
    let paths = MasterPaths::new(&options.state_dir);
    // A destroy killed while deleting the old master directory left the rest aside.
    crate::operations::destroy::remove_remains(&options.state_dir)?;
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
    tracing::info!(cluster = %checked.cluster, node = %checked.node.name, policy = %options.policy, "all checks passed; initialising");
    let result = write(options, &paths, &store, &node_state, &checked);
    if result.is_err() {
        // Leave nothing half-made behind: the checks above proved none of it existed.
        let _ = std::fs::remove_dir_all(&paths.master_dir);
        let _ = node_state.wipe();
    }
    result
}

async fn check(options: &InitOptions, resolver: &Resolver) -> Result<Checked, InitError> {
    let policy = options.policy;
    let family = policy.primary_family();
    let about_this_host = |error: InitError| match options.node_name_origin {
        NameOrigin::Flag => error,
        origin => InitError::ImplicitName {
            name: options.node_name.clone(),
            origin,
            source: Box::new(error),
        },
    };
    let node =
        parse_name("host name", &options.node_name).map_err(|e| about_this_host(e.into()))?;
    let cluster = parse_name("cluster name", &options.cluster_name)?;

    // The arguments alone first: a typo should not wait for the network.
    let secondary = policy.parse_secondary(options.secondary_ip.as_deref())?;
    let netmask = match options.master_netmask {
        None => policy.default_master_netmask(),
        Some(n) => policy
            .validate_master_netmask(n)
            .map_err(|_| InitError::Netmask {
                netmask: n,
                version: family.version(),
            })?,
    };
    if let Some(netdev) = &options.master_netdev {
        interface_addresses(netdev).map_err(InitError::MasterNetdev)?;
    }

    // This host: its name, its addresses.
    let primary = resolver
        .first_address(&node, family)
        .await
        .map_err(|e| about_this_host(e.into()))?;
    if is_loopback(primary) {
        return Err(about_this_host(InitError::Loopback(primary)));
    }
    if !owns_address(primary) {
        return Err(about_this_host(InitError::NotOwned {
            name: node.to_string(),
            ip: primary,
        }));
    }
    let addrs = policy.node_addrs(primary, secondary)?;
    if !owns_address(addrs.secondary) {
        return Err(InitError::SecondaryNotOwned(addrs.secondary));
    }
    let netdev = match &options.master_netdev {
        Some(netdev) => netdev.clone(),
        None => device_holding(primary)?,
    };

    // The cluster IP, last: probing an unused address is the slowest check.
    let master_ip = resolver.first_address(&cluster, family).await?;
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
    Ok(Checked {
        cluster,
        node: Node { name: node, addrs },
        master_ip,
        netmask,
        netdev,
    })
}

/// The device that holds `primary`, the cluster IP's default device.
fn device_holding(primary: IpAddr) -> Result<String, InitError> {
    all_interface_addresses()
        .map_err(InitError::Interfaces)?
        .into_iter()
        .find(|(_, addresses)| addresses.contains(primary))
        .map(|(name, _)| name)
        .ok_or(InitError::NoPrimaryDevice(primary))
}

fn write(
    options: &InitOptions,
    paths: &MasterPaths,
    store: &ConfigStore,
    node_state: &NodeState,
    checked: &Checked,
) -> Result<InitReport, InitError> {
    fs_atomic::ensure_dir(&paths.master_dir, 0o700)?;
    let lifetimes = options.lifetimes;
    let ca = ClusterCa::create(checked.cluster.as_str(), lifetimes.ca())?
        .with_certificate_validity(lifetimes.certificate());
    ca.save(&paths.pki)?;
    let node = &checked.node;
    let name = node.name.as_str();
    // This host is a node too, and joins its own cluster as any node does: its key is made
    // here, on this host. Its master certificate is for the same key, as every master
    // candidate's is, so that the role can move to any candidate the same way.
    let node_key = node_state.node_key()?;
    let master_cert = ca.issue(&node_key, name, "master", &[name], &[])?;
    fs_atomic::write_atomic(&paths.pki.master_cert, master_cert.as_bytes(), 0o644)?;
    fs_atomic::write_atomic(
        &paths.pki.master_key,
        node_key.serialize_pem().as_bytes(),
        0o600,
    )?;

    let now = unix_now();
    let mut record = NodeConfig::new(node.addrs);
    record.added_at = now;
    record.master_candidate = true;
    record.master_certificate_sha256 = fingerprint_of_pem(&master_cert)?;
    record.master_certificate_pem = master_cert;
    let mut config = ClusterConfig {
        serial: 1,
        cluster_name: checked.cluster.clone(),
        policy: options.policy,
        master_node: node.name.clone(),
        master_ip: checked.master_ip,
        master_netmask: checked.netmask,
        master_netdev: checked.netdev.clone(),
        node_port: options.node_port,
        master_epoch: 1,
        candidate_pool_size: DEFAULT_CANDIDATE_POOL_SIZE,
        certificate_validity_secs: lifetimes.certificate().as_secs(),
        ca_validity_secs: lifetimes.ca().as_secs(),
        nodes: [(node.name.clone(), record)].into(),
        join_tokens: Vec::new(),
        rollover: None,
        created_at: now,
        modified_at: now,
    };

    // The offer is committed by the same writer as a Join's.
    let spki = rcgen::PublicKeyData::subject_public_key_info(&node_key);
    let mut offer = config
        .join_offer(node.clone(), ca.cert_pem())
        .map_err(StateError::Ssconf)?;
    offer.node_certificate_pem = ca.issue_node_certificate(&spki, node)?;
    if let Some(record) = config.nodes.get_mut(&node.name) {
        record.certificate_sha256 = fingerprint_of_pem(&offer.node_certificate_pem)?;
    }
    node_state.commit_join(&offer)?;
    store.save(&config)?;
    Ok(InitReport { config })
}
