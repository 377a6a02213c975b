//! A stand-in for the master, for tests of the node agent: a CA, the master's certificate,
//! Join plans as the master would make them, and mutually authenticated connectors.

use std::net::SocketAddr;
use std::path::Path;

use gnt_core::DEFAULT_NODE_PORT;
use gnt_core::clock::unix_now;
use gnt_core::join::JoinToken;
use gnt_core::netutils::Hostname;
use gnt_core::node::Node;
use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::SsconfSet;
/// Node channels whose calls carry a master epoch, as the master's do.
pub use gnt_master::channels::{NodeChannel, stamped};
use gnt_master::config::{ClusterConfig, NodeConfig};
use gnt_transports::join::JoinPlan;
use gnt_transports::{ClientTls, Connector, DialOptions, Identity, Pem, fingerprint};

use crate::pki::{TestCa, TestCert, TestPkiError};

/// A node of a test cluster: its name and addresses under `policy`'s rule.
pub fn node(
    name: &str,
    policy: IpPolicy,
    primary: std::net::IpAddr,
    secondary: std::net::IpAddr,
) -> Node {
    let addrs = policy
        .node_addrs(primary, Some(secondary))
        .unwrap_or_else(|e| panic!("test node {name}: {e}"));
    Node {
        name: Hostname::parse(name).unwrap_or_else(|e| panic!("test node name: {e}")),
        addrs,
    }
}

/// The test master.
pub struct TestMaster {
    /// The cluster CA.
    pub ca: TestCa,
    /// The master's client certificate (role `master`).
    pub cert: TestCert,
    /// Its SHA-256 fingerprint, as ssconf lists it.
    pub fingerprint: String,
}

impl TestMaster {
    /// A CA and a master certificate for `master_name`, in `dir`.
    pub fn new(dir: &Path, master_name: &str) -> Result<Self, TestPkiError> {
        let ca = TestCa::new(dir, "gnt test cluster CA")?;
        let cert = ca.issue(master_name, "master", &[master_name], &[])?;
        let digest = Pem::read("master certificate", &cert.cert)
            .and_then(|pem| pem.leaf_sha256())
            .unwrap_or_else(|e| panic!("the test CA wrote an unreadable certificate: {e}"));
        Ok(Self {
            fingerprint: fingerprint(&digest),
            ca,
            cert,
        })
    }

    /// The configuration of a cluster of `nodes` (the master first), its node agents on
    /// `port`, as the real master would hold it.
    pub fn config(
        &self,
        cluster: &str,
        policy: IpPolicy,
        nodes: &[Node],
        port: u16,
    ) -> ClusterConfig {
        let master = &nodes[0];
        let record = |node: &Node| {
            let mut record = NodeConfig::new(node.addrs);
            if node.name == master.name {
                record.master_candidate = true;
                record.master_certificate_sha256 = self.fingerprint.clone();
            }
            record
        };
        ClusterConfig {
            serial: 1,
            cluster_name: Hostname::parse(cluster)
                .unwrap_or_else(|e| panic!("test cluster name: {e}")),
            policy,
            master_node: master.name.clone(),
            master_ip: master.addrs.primary,
            master_netmask: policy.default_master_netmask(),
            master_netdev: String::new(),
            node_port: port,
            master_epoch: 1,
            candidate_pool_size: 10,
            certificate_validity_secs: gnt_master::pki::DEFAULT_CERTIFICATE_VALIDITY.as_secs(),
            ca_validity_secs: gnt_master::pki::DEFAULT_CA_VALIDITY.as_secs(),
            nodes: nodes
                .iter()
                .map(|node| (node.name.clone(), record(node)))
                .collect(),
            join_tokens: Vec::new(),
            rollover: None,
            created_at: 0,
            modified_at: 0,
        }
    }

    /// The ssconf a cluster of `nodes` (the master first) would have.
    pub fn ssconf(&self, cluster: &str, policy: IpPolicy, nodes: &[Node]) -> SsconfSet {
        self.config(cluster, policy, nodes, DEFAULT_NODE_PORT)
            .ssconf()
            .unwrap_or_else(|e| panic!("test ssconf: {e}"))
    }

    /// The Join plan for `node` into a cluster of `master` and `node`, listening on `listen`,
    /// with a token that expires in an hour: the real master's offer
    /// ([`ClusterConfig::join_offer`]), with the listen address the test chose.
    pub fn join_plan(
        &self,
        token: &JoinToken,
        cluster: &str,
        policy: IpPolicy,
        master: &Node,
        node: &Node,
        listen: SocketAddr,
    ) -> JoinPlan {
        let config = self.config(
            cluster,
            policy,
            &[master.clone(), node.clone()],
            listen.port(),
        );
        let mut offer = config
            .join_offer(node.clone(), self.ca.ca_pem())
            .unwrap_or_else(|e| panic!("test offer: {e}"));
        offer.listen = listen;
        JoinPlan::new(token.clone(), unix_now() + 3600, offer)
    }

    /// A connector to a member node's API, as the master (mutual TLS).
    pub fn connector(&self, addr: SocketAddr, policy: IpPolicy) -> Connector {
        self.connector_as(&self.cert, addr, policy)
    }

    /// A connector to a member node's API presenting `cert` instead of the master's.
    pub fn connector_as(&self, cert: &TestCert, addr: SocketAddr, policy: IpPolicy) -> Connector {
        let identity = Identity::from_files(&cert.cert, &cert.key)
            .unwrap_or_else(|e| panic!("test identity: {e}"));
        let ca = Pem::from_bytes(self.ca.ca_path(), self.ca.ca_pem());
        let tls = ClientTls::new(&ca, Some(&identity)).unwrap_or_else(|e| panic!("test TLS: {e}"));
        Connector::tcp_addr(addr, DialOptions::new(policy)).with_tls(tls)
    }
}
