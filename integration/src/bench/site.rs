//! The bench site: two lab hosts. `master` runs the master (its agent, `gnt-masterd`, and
//! the harness itself, which plays the master's runner). `node1`, the fleet host, holds
//! every benchmarked node, each with its own primary and secondary addresses on the fleet
//! host's loopback and its own name in `/etc/hosts`. The master host routes the nodes'
//! prefixes to the fleet host over the primary and the secondary network, so every call
//! crosses a veth pair as between two machines, and the master keeps the few addresses a
//! real master has: the kernel's source address selection scans every address of the
//! outgoing device, which with 20,000 addresses on one device would dominate every
//! connect and measure the simulation instead of the master.
//!
//! Fleet node `i` is `f<i>.lab.test`, node-add node `k` is `add<k>.lab.test`. Address
//! index `n` (fleet: `i`, node adds: 60000 + `k`) gives `fd00:99::<n in hex>`,
//! `10.99.<n / 250>.<n % 250 + 1>` and, as secondary, `10.98.<n / 250>.<n % 250 + 1>`;
//! in an IPv4 cluster nodes are single-homed on their `10.99` address, like the master.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use gnt_core::policy::IpPolicy;
use gnt_master::paths::MasterPaths;

use super::BenchError;
use crate::cluster_lab::ClusterLab;
use crate::lab::LabHost;

/// The lab host of the fleet and of the node-add agents.
pub const FLEET_HOST: &str = "node1";
/// The largest fleet the address plan has room for.
pub const FLEET_LIMIT: usize = 60_000;
/// The most node adds the address plan has room for.
pub const ADDS_LIMIT: usize = 999;

/// A benchmarked node: its name and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchNode {
    /// Its name, as the hosts file has it.
    pub name: String,
    /// Its primary address.
    pub primary: IpAddr,
    /// Its secondary address (the primary when single-homed).
    pub secondary: IpAddr,
}

impl BenchNode {
    fn at(name: String, index: usize, policy: IpPolicy) -> Self {
        let v4 = |second: u8| {
            IpAddr::V4(Ipv4Addr::new(
                10,
                second,
                (index / 250) as u8,
                (index % 250 + 1) as u8,
            ))
        };
        match policy {
            IpPolicy::HybridIpv6 => Self {
                name,
                primary: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, index as u16)),
                secondary: v4(98),
            },
            IpPolicy::Ipv4 => Self {
                name,
                primary: v4(99),
                secondary: v4(99),
            },
        }
    }

    /// Fleet node `i` (from 1).
    pub fn fleet(i: usize, policy: IpPolicy) -> Self {
        Self::at(format!("f{i}.{}", crate::lab::DOMAIN), i, policy)
    }

    /// Node-add node `k` (from 1).
    pub fn added(k: usize, policy: IpPolicy) -> Self {
        Self::at(
            format!("add{k}.{}", crate::lab::DOMAIN),
            FLEET_LIMIT + k,
            policy,
        )
    }

    /// Its distinct addresses.
    pub fn addresses(&self) -> Vec<IpAddr> {
        if self.primary == self.secondary {
            vec![self.primary]
        } else {
            vec![self.primary, self.secondary]
        }
    }
}

/// The site, with the cluster initialised and the master's own agent running.
#[derive(Debug)]
pub struct Site {
    /// The lab cluster (the real binaries).
    pub cluster: ClusterLab,
    /// The fleet's nodes.
    pub fleet: Vec<BenchNode>,
    /// The nodes for node adds.
    pub adds: Vec<BenchNode>,
    dir: PathBuf,
}

impl Site {
    /// Builds the lab under `dir` with room for `fleet` fleet nodes and `adds` node adds,
    /// initialises the cluster with the real `gnt cluster init`, and starts the master's
    /// `gnt-noded`, accepting uploads of `max_upload` bytes.
    pub fn build(
        dir: &Path,
        policy: IpPolicy,
        fleet: usize,
        adds: usize,
        max_upload: u64,
    ) -> Result<Self, BenchError> {
        if fleet > FLEET_LIMIT || adds > ADDS_LIMIT {
            return Err(BenchError::failed(
                "plan the site",
                format!("at most {FLEET_LIMIT} fleet nodes and {ADDS_LIMIT} node adds fit"),
            ));
        }
        let fleet: Vec<BenchNode> = (1..=fleet).map(|i| BenchNode::fleet(i, policy)).collect();
        let adds: Vec<BenchNode> = (1..=adds).map(|k| BenchNode::added(k, policy)).collect();
        let names: Vec<(String, Vec<IpAddr>)> = fleet
            .iter()
            .chain(&adds)
            .map(|n| (n.name.clone(), vec![n.primary]))
            .collect();
        let aliases: Vec<(&str, &[IpAddr])> = names
            .iter()
            .map(|(name, addresses)| (name.as_str(), addresses.as_slice()))
            .collect();
        // gnt-masterd's background checks (ssconf convergence, certificate renewal) call
        // every node at its start: off, so that its "no channel" memory holds none, and
        // the memory per channel is what calling every node adds.
        let cluster = ClusterLab::with_aliases(dir, policy, 1, &aliases)?.with_masterd_args(&[
            "--converge-interval",
            "0",
            "--renewal-check-interval",
            "0",
        ]);
        let addresses: Vec<IpAddr> = fleet
            .iter()
            .chain(&adds)
            .flat_map(BenchNode::addresses)
            .collect();
        cluster
            .host(FLEET_HOST)?
            .add_loopback_addresses(&addresses)?;
        let master = cluster.host("master")?;
        let primary_gateway = cluster.primary(FLEET_HOST).to_string();
        let secondary_gateway = ClusterLab::secondary(FLEET_HOST).to_string();
        match policy {
            IpPolicy::HybridIpv6 => {
                master.ip(&[
                    "-6",
                    "route",
                    "add",
                    "fd00:99::/64",
                    "via",
                    &primary_gateway,
                ])?;
                master.ip(&["route", "add", "10.98.0.0/16", "via", &secondary_gateway])?;
            }
            IpPolicy::Ipv4 => {
                master.ip(&["route", "add", "10.99.0.0/16", "via", &primary_gateway])?;
            }
        }

        let init = cluster.init()?;
        if !init.success() {
            return Err(BenchError::failed("gnt cluster init", init));
        }
        let max_upload = max_upload.to_string();
        cluster.start_noded_with("master", None, &["--max-upload-bytes", &max_upload])?;
        Ok(Self {
            cluster,
            fleet,
            adds,
            dir: dir.to_owned(),
        })
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The master's lab host.
    pub fn host(&self) -> Result<&LabHost, BenchError> {
        Ok(self.cluster.host("master")?)
    }

    /// The fleet's lab host.
    pub fn fleet_host(&self) -> Result<&LabHost, BenchError> {
        Ok(self.cluster.host(FLEET_HOST)?)
    }

    /// The cluster's policy.
    pub fn policy(&self) -> IpPolicy {
        self.cluster.policy()
    }

    /// The master's name.
    pub fn master_name(&self) -> String {
        ClusterLab::fqdn("master")
    }

    /// The master's primary address.
    pub fn master_primary(&self) -> IpAddr {
        self.cluster.primary("master")
    }

    /// The master's state directory (its agent's, with `master/` inside).
    pub fn master_state(&self) -> PathBuf {
        self.cluster.state_dir("master")
    }

    /// The master's files.
    pub fn master_paths(&self) -> MasterPaths {
        MasterPaths::new(&self.master_state())
    }

    /// The process id of the master's `gnt-noded`.
    pub fn master_agent_pid(&self) -> Result<u32, BenchError> {
        self.cluster
            .pid("master/gnt-noded")
            .ok_or_else(|| BenchError::failed("find the master's gnt-noded", "not running"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_has_its_own_addresses() {
        let a = BenchNode::fleet(1, IpPolicy::HybridIpv6);
        assert_eq!(a.name, "f1.lab.test");
        assert_eq!(a.primary.to_string(), "fd00:99::1");
        assert_eq!(a.secondary.to_string(), "10.98.0.2");
        let b = BenchNode::fleet(FLEET_LIMIT, IpPolicy::HybridIpv6);
        assert_eq!(b.primary.to_string(), "fd00:99::ea60");
        assert_eq!(b.secondary.to_string(), "10.98.240.1");
        let c = BenchNode::added(ADDS_LIMIT, IpPolicy::Ipv4);
        assert_eq!(c.name, "add999.lab.test");
        assert_eq!(c.primary, c.secondary);
        assert_eq!(c.addresses().len(), 1);

        let mut seen = std::collections::HashSet::new();
        for i in 1..=FLEET_LIMIT {
            let node = BenchNode::fleet(i, IpPolicy::HybridIpv6);
            assert!(
                seen.insert(node.primary) && seen.insert(node.secondary),
                "{node:?}"
            );
        }
        for k in 1..=ADDS_LIMIT {
            let node = BenchNode::added(k, IpPolicy::HybridIpv6);
            assert!(
                seen.insert(node.primary) && seen.insert(node.secondary),
                "{node:?}"
            );
        }
    }
}
