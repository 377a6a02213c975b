//! A stand-in for the master, for tests of the node agent: a CA, the master's certificate,
//! Join plans as the master would make them, and mutually authenticated connectors.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use gnt_core::join::JoinToken;
use gnt_core::netutils::Hostname;
use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::{ClusterFacts, NodeAddrs, NodeFacts, SsconfSet};
use gnt_node_agent::join_client::JoinPlan;
use gnt_proto::bootstrap::v1::JoinRequest;
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion, SsconfSet as WireSsconf};
use gnt_transports::{ClientTls, Connector, DialOptions, Identity, Pem, fingerprint, sha256};

use crate::pki::{PkiError, TestCa, TestCert};

/// A node as the test master knows it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its name.
    pub name: String,
    /// Primary address.
    pub primary: IpAddr,
    /// Secondary address (the primary on a single-homed IPv4 node).
    pub secondary: IpAddr,
}

impl NodeSpec {
    /// The wire form.
    pub fn wire(&self) -> NodeAddresses {
        NodeAddresses {
            name: self.name.clone(),
            primary_ip: self.primary.to_string(),
            secondary_ip: self.secondary.to_string(),
        }
    }

    fn facts(&self) -> NodeFacts {
        NodeFacts {
            name: Hostname::parse(&self.name).unwrap_or_else(|e| panic!("test node name: {e}")),
            addresses: NodeAddrs {
                primary: self.primary,
                secondary: self.secondary,
            },
            offline: false,
        }
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
    pub fn new(dir: &Path, master_name: &str) -> Result<Self, PkiError> {
        let ca = TestCa::new(dir, "gnt test cluster CA")?;
        let cert = ca.issue(master_name, "master", &[master_name], &[])?;
        let pem = std::fs::read(&cert.cert).map_err(|source| PkiError::Write {
            path: cert.cert.clone(),
            source,
        })?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|der: rustls::pki_types::CertificateDer<'_>| sha256(der.as_ref()))
            .unwrap_or_else(|e| panic!("the test CA wrote an unreadable certificate: {e}"));
        Ok(Self {
            fingerprint: fingerprint(&der),
            ca,
            cert,
        })
    }

    /// The ssconf a cluster of `nodes` (the master first) would have.
    pub fn ssconf(&self, cluster: &str, policy: IpPolicy, nodes: &[NodeSpec]) -> SsconfSet {
        let facts: Vec<NodeFacts> = nodes.iter().map(NodeSpec::facts).collect();
        let cluster_name =
            Hostname::parse(cluster).unwrap_or_else(|e| panic!("test cluster name: {e}"));
        SsconfSet::from_cluster(&ClusterFacts {
            cluster_name: &cluster_name,
            policy,
            master: &facts[0].name,
            master_ip: nodes[0].primary,
            master_netmask: policy.default_master_netmask(),
            nodes: &facts,
            release_version: env!("CARGO_PKG_VERSION"),
            master_certificate_sha256: Some(&self.fingerprint),
        })
        .unwrap_or_else(|e| panic!("test ssconf: {e}"))
    }

    /// The Join plan for `node` into a cluster of `master` and `node`, listening on `bind`.
    pub fn join_plan(
        &self,
        token: &JoinToken,
        cluster: &str,
        policy: IpPolicy,
        master: &NodeSpec,
        node: &NodeSpec,
        bind: SocketAddr,
    ) -> JoinPlan {
        let ssconf = self.ssconf(cluster, policy, &[master.clone(), node.clone()]);
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64 + 3600)
            .unwrap_or(i64::MAX);
        JoinPlan {
            token: token.clone(),
            expires_at_unix: expires,
            request: JoinRequest {
                cluster_name: cluster.to_owned(),
                primary_ip_version: match policy {
                    IpPolicy::Ipv4 => PrimaryIpVersion::PrimaryIpVersion4,
                    IpPolicy::HybridIpv6 => PrimaryIpVersion::PrimaryIpVersion6,
                }
                .into(),
                bind_address: bind.ip().to_string(),
                port: u32::from(bind.port()),
                node: Some(node.wire()),
                master: Some(master.wire()),
                ca_certificate_pem: self.ca.ca_pem().to_owned(),
                node_certificate_pem: String::new(),
                ssconf: Some(WireSsconf {
                    values: ssconf.to_wire(),
                }),
            },
        }
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
