//! The node's state directory: what a Join writes, and whether the node is a member.
//!
//! ```text
//! node.key        0600  the node's private key; generated here, never sent anywhere
//! node.key.new    0600  a renewal's new key, until its certificate is installed
//! bootstrap.pem         a self-signed certificate for node.key, presented before joining
//! ca.pem                the CAs the node trusts: the cluster CA, and during a CA
//!                       rollover the one that replaces it or is retiring
//! node.pem              the node's certificate, issued by the CA for node.key (after joining)
//! member.conf           what Join said that ssconf does not: listen address and port
//! ssconf_*              Ganeti-compatible ssconf, replaced as a whole set
//! join-ledger     0600  the join tokens this node has seen and used (kept when it leaves)
//! ```
//!
//! The agent is a member when ssconf names a cluster, and bootstrapping otherwise. A join
//! writes the CA, the certificate and member.conf first (each atomically) and ssconf last,
//! so a crash half-way leaves a bootstrapping node that can simply be joined again. The
//! node's answer to Join commits an accepted offer here, and so does `gnt cluster init`
//! for the master's own node: one writer for both.

use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gnt_core::DEFAULT_NODE_PORT;
use gnt_core::error::{Classify, ErrorKind};
use gnt_core::fs_atomic::{self, FsError};
use gnt_core::join::JoinOffer;
use gnt_core::netutils::{HostPort, Hostname, format_host_port};
use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::{SsconfError, SsconfSet, SsconfStore, SsconfVersion};
use rcgen::KeyPair;

use super::ledger::TokenLedger;
use super::source::TokenSource;
use crate::error::TlsConfigError;
use crate::peer::PeerIdentity;
use crate::tls::{Identity, PairError, PairFiles, Pem};

const NODE_KEY: &str = "node.key";
const BOOTSTRAP_CERT: &str = "bootstrap.pem";
const CA_CERT: &str = "ca.pem";
const NODE_CERT: &str = "node.pem";
const MEMBER_CONF: &str = "member.conf";
const JOIN_LEDGER: &str = "join-ledger";

/// The state directory.
#[derive(Debug)]
pub struct NodeState {
    dir: PathBuf,
    ssconf: SsconfStore,
    ledger: TokenLedger,
}

/// What the state says the agent is.
#[derive(Debug)]
pub enum Mode {
    /// Not in a cluster: serve Join.
    Bootstrap,
    /// In a cluster: serve the member API.
    Member(Box<Membership>),
}

/// A member's configuration, as read from its state.
#[derive(Debug)]
pub struct Membership {
    /// The cluster.
    pub cluster_name: Hostname,
    /// This node's name (its certificate's subject).
    pub node_name: Hostname,
    /// The cluster's policy.
    pub policy: IpPolicy,
    /// Where Join said to listen, if it said (`member.conf`); otherwise the policy decides.
    pub listen: Option<SocketAddr>,
    /// The node's TLS identity.
    pub identity: Identity,
    /// The cluster CA.
    pub ca: Pem,
    /// The ssconf set.
    pub ssconf: SsconfSet,
    /// The configuration version the set came with (0: none, an older node's set).
    pub ssconf_version: SsconfVersion,
}

/// `member.conf`: what Join said that ssconf does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConf {
    /// The cluster joined.
    pub cluster_name: String,
    /// The address and port to listen on.
    pub listen: SocketAddr,
}

impl Membership {
    /// Where the member API listens: `--bind` and `--port` first, then what Join said,
    /// then the policy's default.
    pub fn listen_address(&self, bind: Option<IpAddr>, port: Option<u16>) -> SocketAddr {
        let joined = self
            .listen
            .unwrap_or_else(|| self.policy.default_listen(DEFAULT_NODE_PORT));
        SocketAddr::new(bind.unwrap_or(joined.ip()), port.unwrap_or(joined.port()))
    }
}

/// A state directory that cannot be read or written.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// ssconf failed.
    #[error(transparent)]
    Ssconf(#[from] SsconfError),
    /// A key or certificate is unusable.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The node key cannot be generated or parsed.
    #[error("the node key {} is unusable", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What rcgen said.
        source: rcgen::Error,
    },
    /// The node's certificate and key cannot be replaced.
    #[error(transparent)]
    Pair(#[from] PairError),
    /// The files contradict each other.
    #[error("the state in {} is inconsistent: {reason}; remove the directory's contents, all but join-ledger, to start over as a new node", dir.display())]
    Inconsistent {
        /// The state directory.
        dir: PathBuf,
        /// What contradicts what.
        reason: String,
    },
}

impl Classify for StateError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Fs(e) => e.kind(),
            Self::Ssconf(e) => e.kind(),
            Self::Pair(e) => e.kind(),
            Self::Tls(_) | Self::Key { .. } | Self::Inconsistent { .. } => ErrorKind::Environment,
        }
    }
}

impl NodeState {
    /// The state in `dir`, created (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| FsError::new("create directory", dir, e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| FsError::new("set permissions of", dir, e))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            ssconf: SsconfStore::new(dir),
            ledger: TokenLedger::new(dir.join(JOIN_LEDGER)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ssconf store.
    pub fn ssconf(&self) -> &SsconfStore {
        &self.ssconf
    }

    /// The join tokens this node has seen and used; [`wipe`](Self::wipe) keeps it.
    pub fn ledger(&self) -> &TokenLedger {
        &self.ledger
    }

    /// For a member of `cluster`: when the ledger does not know which token joined it (the
    /// node joined before the ledger existed, or the file was lost), the token the agent
    /// holds is the one it joined with, and is spent now, so that it cannot join the node
    /// to anything once it leaves. Problems are logged: a member keeps running.
    pub fn spend_unrecorded_token(&self, tokens: &TokenSource, cluster: &str) {
        let failed = |error: &dyn std::error::Error| {
            tracing::warn!(%error, "cannot record the join token this member holds as spent");
        };
        match self.ledger.knows_join_of(cluster) {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => return failed(&error),
        }
        let token = match tokens.load() {
            Ok(Some(token)) => token,
            Ok(None) => return,
            Err(error) => return failed(&error),
        };
        match self
            .ledger
            .mark_used(&token, cluster, gnt_core::clock::unix_now())
        {
            Ok(()) => {
                tracing::info!(token = %token, cluster, "the join token this member holds is now recorded as spent");
            }
            Err(error) => failed(&error),
        }
    }

    /// The mode the state puts the agent in.
    pub fn mode(&self) -> Result<Mode, StateError> {
        let published = self.ssconf.read_published()?;
        let ssconf_version = published.version();
        let ssconf = published.set;
        if ssconf.is_empty() {
            return Ok(Mode::Bootstrap);
        }
        let inconsistent = |reason: String| StateError::Inconsistent {
            dir: self.dir.clone(),
            reason,
        };
        let cluster_name = ssconf.cluster_name()?;
        if self.identity_files().recover()? {
            tracing::info!(
                "finished installing a renewed node certificate that a crash interrupted"
            );
        }
        let (cert, key) = (self.path(NODE_CERT), self.path(NODE_KEY));
        if !cert.exists() || !key.exists() || !self.path(CA_CERT).exists() {
            return Err(inconsistent(format!(
                "ssconf names cluster '{cluster_name}' but {NODE_CERT}, {NODE_KEY} or {CA_CERT} is missing"
            )));
        }
        // Never run on a partial set: its gaps would read as defaults (IPv4, any master).
        ssconf.check_member()?;
        let policy = ssconf.ip_policy()?;
        let identity = Identity::from_files(&cert, &key)?;
        let node_name = PeerIdentity::from_certificate(identity.certificate())
            .and_then(|id| id.common_name)
            .and_then(|cn| Hostname::parse(&cn).ok())
            .ok_or_else(|| inconsistent(format!("{NODE_CERT} names no node")))?;
        let listen = match self.member_conf()? {
            Some(conf) if conf.cluster_name != cluster_name.as_str() => {
                return Err(inconsistent(format!(
                    "{MEMBER_CONF} is for cluster '{}', ssconf for '{cluster_name}'",
                    conf.cluster_name
                )));
            }
            conf => conf.map(|c| c.listen),
        };
        Ok(Mode::Member(Box::new(Membership {
            cluster_name,
            node_name,
            policy,
            listen,
            identity,
            ca: Pem::read("CA certificate", &self.path(CA_CERT))?,
            ssconf,
            ssconf_version,
        })))
    }

    /// The node's key, generated (and stored, 0600) on first use.
    pub fn node_key(&self) -> Result<KeyPair, StateError> {
        let path = self.path(NODE_KEY);
        let bad = |source| StateError::Key {
            path: path.clone(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(pem) => KeyPair::from_pem(&pem).map_err(bad),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = KeyPair::generate().map_err(bad)?;
                fs_atomic::write_atomic(&path, key.serialize_pem().as_bytes(), 0o600)?;
                tracing::info!(path = %path.display(), "generated the node key");
                Ok(key)
            }
            Err(e) => Err(FsError::new("read", &path, e).into()),
        }
    }

    /// The certificate presented while bootstrapping: self-signed for the node key, so the
    /// master learns the key it will certify. Rewritten at every bootstrap start.
    pub fn bootstrap_identity(&self, key: &KeyPair) -> Result<Identity, StateError> {
        let bad = |source| StateError::Key {
            path: self.path(NODE_KEY),
            source,
        };
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gnt-noded bootstrap");
        let cert = params.self_signed(key).map_err(bad)?;
        let path = self.path(BOOTSTRAP_CERT);
        fs_atomic::write_atomic(&path, cert.pem().as_bytes(), 0o644)?;
        Ok(Identity::from_pem(
            &Pem::from_bytes(&path, cert.pem()),
            &Pem::from_bytes(self.path(NODE_KEY), key.serialize_pem()),
        )?)
    }

    /// member.conf, if present.
    pub fn member_conf(&self) -> Result<Option<MemberConf>, StateError> {
        let path = self.path(MEMBER_CONF);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FsError::new("read", &path, e).into()),
        };
        let value = |key: &str| {
            text.lines()
                .find_map(|line| {
                    line.strip_prefix(key)
                        .and_then(|rest| rest.strip_prefix('='))
                })
                .map(str::trim)
        };
        let inconsistent = || StateError::Inconsistent {
            dir: self.dir.clone(),
            reason: format!("{MEMBER_CONF} is malformed"),
        };
        let cluster_name = value("cluster").ok_or_else(inconsistent)?.to_owned();
        let listen = value("listen")
            .and_then(|l| HostPort::parse(l).ok())
            .and_then(|hp| hp.socket_addr())
            .ok_or_else(inconsistent)?;
        Ok(Some(MemberConf {
            cluster_name,
            listen,
        }))
    }

    /// Writes what an accepted offer brings, ssconf last (with the offer's serial: the node
    /// has no set yet, so there is nothing to compare it with).
    pub fn commit_join(&self, offer: &JoinOffer) -> Result<(), StateError> {
        fs_atomic::write_atomic(
            &self.path(CA_CERT),
            offer.ca_certificate_pem.as_bytes(),
            0o644,
        )?;
        fs_atomic::write_atomic(
            &self.path(NODE_CERT),
            offer.node_certificate_pem.as_bytes(),
            0o644,
        )?;
        let conf = format!(
            "# written by gnt-noded when this node joined its cluster\ncluster={}\nlisten={}\n",
            offer.cluster,
            format_host_port(offer.listen.ip(), offer.listen.port()),
        );
        fs_atomic::write_atomic(&self.path(MEMBER_CONF), conf.as_bytes(), 0o644)?;
        self.ssconf.replace(&offer.ssconf, offer.ssconf_version)?;
        Ok(())
    }

    /// Removes every trace of the cluster, the node key included: ssconf first (so a crash
    /// half-way leaves a bootstrapping node), then the rest. The join ledger stays: a token
    /// that joined this node must not join it again.
    pub fn wipe(&self) -> Result<(), StateError> {
        self.ssconf.clear()?;
        self.identity_files().remove_staged()?;
        for name in [
            MEMBER_CONF,
            NODE_CERT,
            CA_CERT,
            BOOTSTRAP_CERT,
            NODE_KEY,
            super::MASTER_COPY_FILE,
        ] {
            let path = self.path(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::new("remove", &path, e).into()),
            }
        }
        fs_atomic::sync_dir(&self.dir)?;
        Ok(())
    }

    /// The node's certificate and key, replaced as a pair by a renewal.
    pub fn identity_files(&self) -> PairFiles {
        PairFiles::new(self.path(NODE_CERT), self.path(NODE_KEY))
    }

    /// The CAs the node trusts.
    pub fn trust(&self) -> Result<Pem, StateError> {
        Ok(Pem::read("CA certificate", &self.path(CA_CERT))?)
    }

    /// Replaces the CAs the node trusts, atomically.
    pub fn write_trust(&self, bundle_pem: &str) -> Result<(), StateError> {
        fs_atomic::write_atomic(&self.path(CA_CERT), bundle_pem.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Where the node certificate of the state in `dir` is (public, 0644): what names
    /// the node without its key, for whoever may not read the key or change the state.
    pub fn node_certificate_path(dir: &Path) -> PathBuf {
        dir.join(NODE_CERT)
    }

    /// The node's key file: the key of its node certificate, and of its master certificate
    /// when it is a master candidate.
    pub fn node_key_path(&self) -> PathBuf {
        self.path(NODE_KEY)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_fresh_directory_is_bootstrap_mode_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let state = NodeState::open(&dir.path().join("state")).unwrap();
        assert!(matches!(state.mode().unwrap(), Mode::Bootstrap));
        assert_eq!(fs::metadata(state.dir()).unwrap().mode() & 0o777, 0o700);
        let key = state.node_key().unwrap();
        assert_eq!(
            fs::metadata(state.path(NODE_KEY)).unwrap().mode() & 0o777,
            0o600
        );
        // The same key on the next start.
        assert_eq!(
            state.node_key().unwrap().public_key_pem(),
            key.public_key_pem()
        );
        let identity = state.bootstrap_identity(&key).unwrap();
        assert!(!identity.certificate().is_empty());
    }

    /// An offer for `node1.example.com` of an IPv4 cluster, certified for `state`'s key by a
    /// self-signed certificate (the state does not check the chain; Join did).
    fn committed_offer(state: &NodeState, listen: SocketAddr) -> JoinOffer {
        use gnt_core::node::{Node, NodeAddrs};
        use gnt_core::ssconf::{ClusterFacts, NodeFacts};
        let key = state.node_key().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["node1.example.com".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node1.example.com");
        let cert = params.self_signed(&key).unwrap().pem();
        let node = Node {
            name: Hostname::parse("node1.example.com").unwrap(),
            addrs: NodeAddrs {
                primary: "192.0.2.1".parse().unwrap(),
                secondary: "192.0.2.1".parse().unwrap(),
            },
        };
        let cluster = Hostname::parse("cluster.example.com").unwrap();
        let ssconf = SsconfSet::from_cluster(&ClusterFacts {
            cluster_name: &cluster,
            policy: IpPolicy::Ipv4,
            master: &node.name,
            master_ip: "192.0.2.100".parse().unwrap(),
            master_netmask: 32,
            nodes: &[NodeFacts {
                name: node.name.clone(),
                addresses: node.addrs,
                offline: false,
            }],
            release_version: "0.1.0",
            master_certificate_sha256: Some("AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB"),
            candidates: &[],
        })
        .unwrap();
        let offer = JoinOffer {
            cluster,
            policy: IpPolicy::Ipv4,
            listen,
            master: node.clone(),
            node,
            ca_certificate_pem: cert.clone(),
            node_certificate_pem: cert,
            ssconf,
            ssconf_version: SsconfVersion::new(1, 3),
        };
        state.commit_join(&offer).unwrap();
        offer
    }

    #[test]
    fn a_member_listens_where_join_said_unless_the_command_line_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = NodeState::open(dir.path()).unwrap();
        let offer = committed_offer(&state, "192.0.2.1:7000".parse().unwrap());
        let Mode::Member(membership) = state.mode().unwrap() else {
            panic!("a committed offer makes a member");
        };
        assert_eq!(membership.node_name.as_str(), "node1.example.com");
        assert_eq!(
            membership.ssconf_version, offer.ssconf_version,
            "Join's serial"
        );
        assert_eq!(membership.listen_address(None, None), offer.listen);
        assert_eq!(
            membership.listen_address(Some("0.0.0.0".parse().unwrap()), Some(1811)),
            "0.0.0.0:1811".parse::<SocketAddr>().unwrap()
        );

        // Without member.conf (a node that predates it), the policy decides.
        fs::remove_file(state.path(MEMBER_CONF)).unwrap();
        let Mode::Member(membership) = state.mode().unwrap() else {
            panic!("still a member");
        };
        assert_eq!(
            membership.listen_address(None, None),
            "0.0.0.0:1811".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn a_member_never_runs_on_a_partial_ssconf_set() {
        let dir = tempfile::tempdir().unwrap();
        let state = NodeState::open(dir.path()).unwrap();
        let offer = committed_offer(&state, "192.0.2.1:7000".parse().unwrap());
        // What a WriteSsconf of old accepted: the cluster's name and nothing else. Read as a
        // whole, it would have made a hybrid node IPv4 and let any master in.
        let mut partial = SsconfSet::new();
        partial
            .insert(
                gnt_core::ssconf::SsconfKey::ClusterName,
                offer.cluster.as_str(),
            )
            .unwrap();
        state
            .ssconf()
            .replace(&partial, SsconfVersion::new(1, 1))
            .unwrap();
        let err = state.mode().unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[test]
    fn member_conf_round_trips_and_malformed_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = NodeState::open(dir.path()).unwrap();
        assert_eq!(state.member_conf().unwrap(), None);
        let conf = MemberConf {
            cluster_name: "cluster.example.com".to_owned(),
            listen: "[::]:1811".parse().unwrap(),
        };
        fs::write(
            state.path(MEMBER_CONF),
            "cluster=cluster.example.com\nlisten=[::]:1811\n",
        )
        .unwrap();
        assert_eq!(state.member_conf().unwrap(), Some(conf));
        fs::write(state.path(MEMBER_CONF), "cluster=x\nlisten=::1811\n").unwrap();
        let err = state.member_conf().unwrap_err();
        assert!(
            err.to_string().contains("member.conf is malformed"),
            "{err}"
        );
    }

    #[test]
    fn ssconf_without_certificates_is_an_inconsistent_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = NodeState::open(dir.path()).unwrap();
        let mut set = SsconfSet::new();
        set.insert(
            gnt_core::ssconf::SsconfKey::ClusterName,
            "cluster.example.com",
        )
        .unwrap();
        state
            .ssconf()
            .replace(&set, SsconfVersion::new(1, 1))
            .unwrap();
        let err = state.mode().unwrap_err();
        assert!(err.to_string().contains("is inconsistent"), "{err}");
        state.wipe().unwrap();
        assert!(matches!(state.mode().unwrap(), Mode::Bootstrap));
    }
}
