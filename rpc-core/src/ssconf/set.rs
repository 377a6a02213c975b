//! A complete ssconf set in memory: values by key, typed reads, and the typed constructor
//! that the master uses to derive a node's set from the cluster configuration.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{Location, MAX_VALUE_BYTES, SsconfError, SsconfKey};
use crate::netutils::address::parse_ip;
use crate::netutils::hostname::Hostname;
use crate::policy::{IpFamily, IpPolicy};

/// A set of ssconf values. Values are kept as Ganeti's reader returns them: trailing
/// newlines removed. Equality compares values only, not where they were read from.
#[derive(Debug, Clone, Default)]
pub struct SsconfSet {
    values: BTreeMap<SsconfKey, String>,
    /// The store directory the set was read from, for error messages naming files.
    origin: Option<PathBuf>,
}

impl PartialEq for SsconfSet {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Eq for SsconfSet {}

/// A node's primary and secondary addresses as ssconf records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Primary address (the cluster's primary family).
    pub primary: IpAddr,
    /// Secondary address (IPv4; equal to the primary on a single-homed IPv4 node).
    pub secondary: IpAddr,
}

/// One node, as the master describes it to build a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's name.
    pub name: Hostname,
    /// Its addresses.
    pub addresses: NodeAddrs,
    /// Whether it is marked offline.
    pub offline: bool,
}

/// The cluster facts a set is built from.
#[derive(Debug, Clone)]
pub struct ClusterFacts<'a> {
    /// The cluster's name.
    pub cluster_name: &'a Hostname,
    /// The IP-version policy.
    pub policy: IpPolicy,
    /// The master node's name; it must be one of `nodes`.
    pub master: &'a Hostname,
    /// The cluster (master) IP address, of the primary family.
    pub master_ip: IpAddr,
    /// The master netmask, within the primary family's bounds.
    pub master_netmask: u8,
    /// Every node of the cluster, the master included.
    pub nodes: &'a [NodeFacts],
    /// The software release, e.g. `0.1.0`.
    pub release_version: &'a str,
    /// SHA-256 fingerprint of the master's client certificate (colon-separated hex), which
    /// nodes accept as the only caller of their procedures; written to
    /// `master_candidates_certs` as `<master>=<fingerprint>`. Ganeti keys this by node
    /// UUID and uses SHA-1; the name and SHA-256 are ours.
    pub master_certificate_sha256: Option<&'a str>,
}

impl SsconfSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (trailing newlines are not part of a value). Refuses a value
    /// whose file would exceed [`MAX_VALUE_BYTES`].
    pub fn insert(&mut self, key: SsconfKey, value: impl Into<String>) -> Result<(), SsconfError> {
        let mut value: String = value.into();
        value.truncate(value.trim_end_matches('\n').len());
        let size = encoded_len(&value);
        if size > MAX_VALUE_BYTES {
            return Err(SsconfError::TooLarge {
                location: Location::Key(key),
                size: size as u64,
            });
        }
        self.values.insert(key, value);
        Ok(())
    }

    /// Sets `key` to a value read from a file of at most [`MAX_VALUE_BYTES`]. Such a value
    /// may be one byte too long to write back (Ganeti reads a 131072-byte file without a
    /// trailing newline, but refuses to write it); [`SsconfSet::check_writable`] says so.
    pub(crate) fn insert_read(&mut self, key: SsconfKey, mut value: String) {
        value.truncate(value.trim_end_matches('\n').len());
        self.values.insert(key, value);
    }

    /// Checks that every value fits in a file of [`MAX_VALUE_BYTES`] once encoded.
    pub fn check_writable(&self) -> Result<(), SsconfError> {
        match self
            .values
            .iter()
            .find(|(_, v)| encoded_len(v) > MAX_VALUE_BYTES)
        {
            Some((key, value)) => Err(SsconfError::TooLarge {
                location: self.location(*key),
                size: encoded_len(value) as u64,
            }),
            None => Ok(()),
        }
    }

    /// Sets `key` to one item per line.
    pub fn insert_lines<I, S>(&mut self, key: SsconfKey, lines: I) -> Result<(), SsconfError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = lines
            .into_iter()
            .map(|line| line.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join("\n");
        self.insert(key, joined)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: SsconfKey) -> Option<String> {
        self.values.remove(&key)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: SsconfKey) -> Option<&str> {
        self.values.get(&key).map(String::as_str)
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (SsconfKey, &str)> {
        self.values.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// Number of keys present.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The bytes of `key`'s file: the value plus one newline, or nothing for an empty value
    /// (Ganeti's encoding).
    pub fn file_contents(&self, key: SsconfKey) -> Option<Vec<u8>> {
        self.get(key).map(|value| {
            let mut bytes = value.as_bytes().to_vec();
            if !bytes.is_empty() {
                bytes.push(b'\n');
            }
            bytes
        })
    }

    /// A set from wire entries (key name, value); unknown keys are refused.
    pub fn from_wire<I, K, V>(entries: I) -> Result<Self, SsconfError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut set = Self::new();
        for (name, value) in entries {
            set.insert(name.as_ref().parse()?, value)?;
        }
        Ok(set)
    }

    /// The set as wire entries (key name, value).
    pub fn to_wire<C: FromIterator<(String, String)>>(&self) -> C {
        self.iter()
            .map(|(key, value)| (key.as_str().to_owned(), value.to_owned()))
            .collect()
    }

    /// Records that the set was read from the store in `dir`.
    pub(crate) fn read_from(mut self, dir: &Path) -> Self {
        self.origin = Some(dir.to_owned());
        self
    }

    /// Where `key` lives, for error messages.
    pub fn location(&self, key: SsconfKey) -> Location {
        match &self.origin {
            Some(dir) => Location::File(dir.join(key.file_name())),
            None => Location::Key(key),
        }
    }

    // === typed reads ===

    /// The cluster's name (`cluster_name`); required.
    pub fn cluster_name(&self) -> Result<Hostname, SsconfError> {
        self.single_line(SsconfKey::ClusterName, |text| {
            Hostname::parse(text).map_err(|e| e.reason.to_owned())
        })
    }

    /// The IP-version policy (`primary_ip_family`). A missing key means IPv4, as in Ganeti
    /// (clusters older than 2.3 have no such file); anything but `2` or `10` is an error.
    pub fn ip_policy(&self) -> Result<IpPolicy, SsconfError> {
        if self.get(SsconfKey::PrimaryIpFamily).is_none() {
            return Ok(IpPolicy::Ipv4);
        }
        self.single_line(SsconfKey::PrimaryIpFamily, |text| {
            text.parse::<u32>()
                .map_err(|_| format!("'{text}' is not a number"))
                .and_then(|n| IpPolicy::from_af_number(n).map_err(|e| e.to_string()))
        })
    }

    /// The master node's name (`master_node`); required.
    pub fn master_node(&self) -> Result<Hostname, SsconfError> {
        self.single_line(SsconfKey::MasterNode, |text| {
            Hostname::parse(text).map_err(|e| e.reason.to_owned())
        })
    }

    /// The cluster (master) IP (`master_ip`), of the policy's primary family; required.
    pub fn master_ip(&self) -> Result<IpAddr, SsconfError> {
        let family = self.ip_policy()?.primary_family();
        self.single_line(SsconfKey::MasterIp, |text| address_of(text, family))
    }

    /// The master netmask (`master_netmask`); the primary family's full length when absent.
    pub fn master_netmask(&self) -> Result<u8, SsconfError> {
        let policy = self.ip_policy()?;
        if self.get(SsconfKey::MasterNetmask).is_none() {
            return Ok(policy.default_master_netmask());
        }
        self.single_line(SsconfKey::MasterNetmask, |text| {
            text.parse::<u32>()
                .map_err(|_| format!("'{text}' is not a number"))
                .and_then(|n| policy.validate_master_netmask(n).map_err(|e| e.to_string()))
        })
    }

    /// Every node's name (`node_list`); empty when absent.
    pub fn node_list(&self) -> Result<Vec<Hostname>, SsconfError> {
        self.names(SsconfKey::NodeList)
    }

    /// The online nodes (`online_nodes`); empty when absent.
    pub fn online_nodes(&self) -> Result<Vec<Hostname>, SsconfError> {
        self.names(SsconfKey::OnlineNodes)
    }

    /// The offline nodes (`offline_nodes`); empty when absent.
    pub fn offline_nodes(&self) -> Result<Vec<Hostname>, SsconfError> {
        self.names(SsconfKey::OfflineNodes)
    }

    /// `name address` pairs of `node_primary_ips`, addresses of the primary family.
    pub fn node_primary_ips(&self) -> Result<Vec<(Hostname, IpAddr)>, SsconfError> {
        let family = self.ip_policy()?.primary_family();
        self.name_address_pairs(SsconfKey::NodePrimaryIps, family)
    }

    /// `name address` pairs of `node_secondary_ips`, addresses always IPv4.
    pub fn node_secondary_ips(&self) -> Result<Vec<(Hostname, IpAddr)>, SsconfError> {
        let family = self.ip_policy()?.secondary_family();
        self.name_address_pairs(SsconfKey::NodeSecondaryIps, family)
    }

    /// The addresses of node `name`, if ssconf lists its primary. A node without a
    /// secondary entry is single-homed: its secondary is its primary.
    pub fn node_addresses(&self, name: &Hostname) -> Result<Option<NodeAddrs>, SsconfError> {
        let Some(primary) = find(self.node_primary_ips()?, name) else {
            return Ok(None);
        };
        let secondary = find(self.node_secondary_ips()?, name).unwrap_or(primary);
        Ok(Some(NodeAddrs { primary, secondary }))
    }

    /// `name=fingerprint` pairs of `master_candidates_certs`: the certificates allowed to
    /// call node procedures; empty when absent.
    pub fn master_certificates(&self) -> Result<Vec<(String, String)>, SsconfError> {
        let key = SsconfKey::MasterCandidatesCerts;
        self.items(key)
            .map(|(line, text)| match text.split_once('=') {
                Some((name, fingerprint))
                    if !name.is_empty()
                        && !fingerprint.is_empty()
                        && !fingerprint.contains('=') =>
                {
                    Ok((name.to_owned(), fingerprint.to_ascii_uppercase()))
                }
                _ => Err(SsconfError::Malformed {
                    location: self.location(key),
                    line,
                    reason: format!("expected 'name=fingerprint', found '{text}'"),
                }),
            })
            .collect()
    }

    /// The software release that wrote the set (`release_version`).
    pub fn release_version(&self) -> Option<&str> {
        self.get(SsconfKey::ReleaseVersion)
    }

    /// Checks that the set names cluster `expected` (Ganeti's `VerifyClusterName`); a set
    /// without a cluster name is accepted.
    pub fn verify_cluster_name(&self, expected: &Hostname) -> Result<(), SsconfError> {
        if self.get(SsconfKey::ClusterName).is_none() {
            return Ok(());
        }
        let current = self.cluster_name()?;
        if &current == expected {
            Ok(())
        } else {
            Err(SsconfError::ClusterMismatch {
                current: current.to_string(),
                offered: expected.to_string(),
            })
        }
    }

    // === typed construction ===

    /// The set every node of a cluster gets, derived from the cluster's facts. Node lists
    /// are sorted the way Ganeti sorts names (`node2` before `node10`). Refuses facts that
    /// contradict the policy: a primary of the wrong family, a non-IPv4 secondary, a
    /// missing secondary in hybrid mode, a master that is not a node.
    pub fn from_cluster(facts: &ClusterFacts<'_>) -> Result<Self, SsconfError> {
        let policy = facts.policy;
        let primary_family = policy.primary_family();
        let invalid = |key, reason: String| SsconfError::Malformed {
            location: Location::Key(key),
            line: 1,
            reason,
        };
        let mut nodes: Vec<&NodeFacts> = facts.nodes.iter().collect();
        nodes.sort_by(|a, b| nice_cmp(a.name.as_str(), b.name.as_str()));
        let mut seen = BTreeSet::new();
        for node in &nodes {
            if !seen.insert(&node.name) {
                return Err(invalid(
                    SsconfKey::NodeList,
                    format!("node '{}' is listed twice", node.name),
                ));
            }
            let NodeAddrs { primary, secondary } = node.addresses;
            if IpFamily::of(&primary) != primary_family {
                return Err(invalid(
                    SsconfKey::NodePrimaryIps,
                    format!(
                        "node '{}' has primary {primary}, not an {primary_family} address",
                        node.name
                    ),
                ));
            }
            if !secondary.is_ipv4() {
                return Err(invalid(
                    SsconfKey::NodeSecondaryIps,
                    format!(
                        "node '{}' has secondary {secondary}, not an IPv4 address",
                        node.name
                    ),
                ));
            }
        }
        let master = nodes
            .iter()
            .find(|n| &n.name == facts.master)
            .ok_or_else(|| {
                invalid(
                    SsconfKey::MasterNode,
                    format!("master '{}' is not a node", facts.master),
                )
            })?;
        if IpFamily::of(&facts.master_ip) != primary_family {
            return Err(invalid(
                SsconfKey::MasterIp,
                format!("{} is not an {primary_family} address", facts.master_ip),
            ));
        }
        let netmask = policy
            .validate_master_netmask(u32::from(facts.master_netmask))
            .map_err(|e| invalid(SsconfKey::MasterNetmask, e.to_string()))?;

        let mut set = Self::new();
        set.insert(SsconfKey::ClusterName, facts.cluster_name.as_str())?;
        set.insert(SsconfKey::PrimaryIpFamily, policy.af_number().to_string())?;
        set.insert(SsconfKey::MasterNode, facts.master.as_str())?;
        set.insert(SsconfKey::MasterIp, facts.master_ip.to_string())?;
        set.insert(SsconfKey::MasterNetmask, netmask.to_string())?;
        set.insert(SsconfKey::MasterCandidates, facts.master.as_str())?;
        set.insert(
            SsconfKey::MasterCandidatesIps,
            master.addresses.primary.to_string(),
        )?;
        set.insert(SsconfKey::ReleaseVersion, facts.release_version)?;
        if let Some(fingerprint) = facts.master_certificate_sha256 {
            set.insert(
                SsconfKey::MasterCandidatesCerts,
                format!("{}={fingerprint}", facts.master),
            )?;
        }
        set.insert_lines(SsconfKey::NodeList, nodes.iter().map(|n| n.name.as_str()))?;
        set.insert_lines(
            SsconfKey::OnlineNodes,
            nodes.iter().filter(|n| !n.offline).map(|n| n.name.as_str()),
        )?;
        set.insert_lines(
            SsconfKey::OfflineNodes,
            nodes.iter().filter(|n| n.offline).map(|n| n.name.as_str()),
        )?;
        set.insert_lines(
            SsconfKey::NodePrimaryIps,
            nodes
                .iter()
                .map(|n| format!("{} {}", n.name, n.addresses.primary)),
        )?;
        set.insert_lines(
            SsconfKey::NodeSecondaryIps,
            nodes
                .iter()
                .map(|n| format!("{} {}", n.name, n.addresses.secondary)),
        )?;
        Ok(set)
    }

    // === parsing helpers ===

    fn required(&self, key: SsconfKey) -> Result<&str, SsconfError> {
        self.get(key).ok_or_else(|| SsconfError::Missing {
            location: self.location(key),
        })
    }

    /// A one-line value, surrounding white space ignored (Ganeti's `int()` and Haskell's
    /// `rStripSpace` accept it too), parsed by `parse`.
    fn single_line<T>(
        &self,
        key: SsconfKey,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, SsconfError> {
        let text = self.required(key)?;
        let malformed = |line, reason| SsconfError::Malformed {
            location: self.location(key),
            line,
            reason,
        };
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("").trim();
        if lines.next().is_some() {
            return Err(malformed(2, "expected a single line".to_owned()));
        }
        if first.is_empty() {
            return Err(malformed(1, "the value is empty".to_owned()));
        }
        parse(first).map_err(|reason| malformed(1, reason))
    }

    fn names(&self, key: SsconfKey) -> Result<Vec<Hostname>, SsconfError> {
        self.items(key)
            .map(|(line, text)| {
                Hostname::parse(text).map_err(|e| SsconfError::Malformed {
                    location: self.location(key),
                    line,
                    reason: e.reason.to_owned(),
                })
            })
            .collect()
    }

    fn name_address_pairs(
        &self,
        key: SsconfKey,
        family: IpFamily,
    ) -> Result<Vec<(Hostname, IpAddr)>, SsconfError> {
        let mut seen = BTreeSet::new();
        self.items(key)
            .map(|(line, text)| {
                let malformed = |reason: String| SsconfError::Malformed {
                    location: self.location(key),
                    line,
                    reason,
                };
                let mut fields = text.split_whitespace();
                let (Some(name), Some(address), None) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    return Err(malformed(format!(
                        "expected 'name address', found '{text}'"
                    )));
                };
                let name = Hostname::parse(name).map_err(|e| malformed(e.to_string()))?;
                let address = address_of(address, family).map_err(malformed)?;
                if !seen.insert(name.clone()) {
                    return Err(malformed(format!("node '{name}' is listed twice")));
                }
                Ok((name, address))
            })
            .collect()
    }

    /// Non-empty lines of a multi-line value with their 1-based numbers.
    fn items(&self, key: SsconfKey) -> impl Iterator<Item = (usize, &str)> {
        self.get(key)
            .unwrap_or("")
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty())
    }
}

fn address_of(text: &str, family: IpFamily) -> Result<IpAddr, String> {
    let addr = parse_ip(text).map_err(|e| e.to_string())?;
    if IpFamily::of(&addr) == family {
        Ok(addr)
    } else {
        Err(format!("{addr} is not an {family} address"))
    }
}

fn find(pairs: Vec<(Hostname, IpAddr)>, name: &Hostname) -> Option<IpAddr> {
    pairs.into_iter().find(|(n, _)| n == name).map(|(_, ip)| ip)
}

fn encoded_len(value: &str) -> usize {
    if value.is_empty() { 0 } else { value.len() + 1 }
}

/// Ganeti's "nice" name order: runs of digits compare as numbers, so `node2` sorts before
/// `node10`.
pub fn nice_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (trim_zeros(da), trim_zeros(db));
                let by_value = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                // Equal numbers: fewer leading zeros first, so the order stays total.
                if da.len() != db.len() {
                    return da.len().cmp(&db.len());
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[n..]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn host(name: &str) -> Hostname {
        Hostname::parse(name).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn hybrid_nodes() -> Vec<NodeFacts> {
        ["node10", "node2", "master"]
            .iter()
            .enumerate()
            .map(|(i, name)| NodeFacts {
                name: host(&format!("{name}.example.com")),
                addresses: NodeAddrs {
                    primary: ip(&format!("2001:db8::{}", i + 1)),
                    secondary: ip(&format!("192.0.2.{}", i + 1)),
                },
                offline: *name == "node10",
            })
            .collect()
    }

    fn hybrid_set() -> SsconfSet {
        let nodes = hybrid_nodes();
        SsconfSet::from_cluster(&ClusterFacts {
            cluster_name: &host("cluster.example.com"),
            policy: IpPolicy::HybridIpv6,
            master: &host("master.example.com"),
            master_ip: ip("2001:db8::100"),
            master_netmask: 64,
            nodes: &nodes,
            release_version: "0.1.0",
            master_certificate_sha256: Some("ab:cd:ef"),
        })
        .unwrap()
    }

    #[test]
    fn a_cluster_set_uses_ganetis_keys_and_encodings() {
        let set = hybrid_set();
        assert_eq!(set.get(SsconfKey::PrimaryIpFamily), Some("10"));
        assert_eq!(set.get(SsconfKey::ClusterName), Some("cluster.example.com"));
        assert_eq!(
            set.get(SsconfKey::NodePrimaryIps),
            Some(
                "master.example.com 2001:db8::3\nnode2.example.com 2001:db8::2\nnode10.example.com 2001:db8::1"
            )
        );
        assert_eq!(
            set.get(SsconfKey::NodeSecondaryIps),
            Some(
                "master.example.com 192.0.2.3\nnode2.example.com 192.0.2.2\nnode10.example.com 192.0.2.1"
            )
        );
        assert_eq!(set.get(SsconfKey::OfflineNodes), Some("node10.example.com"));
        assert_eq!(
            set.get(SsconfKey::OnlineNodes),
            Some("master.example.com\nnode2.example.com")
        );
        assert_eq!(set.get(SsconfKey::MasterCandidatesIps), Some("2001:db8::3"));
        assert_eq!(
            set.file_contents(SsconfKey::MasterNetmask).unwrap(),
            b"64\n"
        );
    }

    #[test]
    fn typed_reads_return_what_was_built() {
        let set = hybrid_set();
        assert_eq!(set.cluster_name().unwrap(), host("cluster.example.com"));
        assert_eq!(set.ip_policy().unwrap(), IpPolicy::HybridIpv6);
        assert_eq!(set.master_node().unwrap(), host("master.example.com"));
        assert_eq!(set.master_ip().unwrap(), ip("2001:db8::100"));
        assert_eq!(set.master_netmask().unwrap(), 64);
        assert_eq!(set.node_list().unwrap().len(), 3);
        assert_eq!(set.offline_nodes().unwrap(), [host("node10.example.com")]);
        assert_eq!(
            set.node_addresses(&host("node2.example.com")).unwrap(),
            Some(NodeAddrs {
                primary: ip("2001:db8::2"),
                secondary: ip("192.0.2.2")
            })
        );
        assert_eq!(set.node_addresses(&host("nosuch")).unwrap(), None);
        assert_eq!(set.release_version(), Some("0.1.0"));
        assert_eq!(
            set.master_certificates().unwrap(),
            [("master.example.com".to_owned(), "AB:CD:EF".to_owned())]
        );
    }

    #[test]
    fn master_certificate_lines_are_name_equals_fingerprint() {
        let mut set = SsconfSet::new();
        assert!(set.master_certificates().unwrap().is_empty());
        set.insert(SsconfKey::MasterCandidatesCerts, "m1=AA:BB\nm2=cc:dd")
            .unwrap();
        assert_eq!(set.master_certificates().unwrap().len(), 2);
        for bad in ["m1", "=AA", "m1=", "m1=AA=BB"] {
            set.insert(SsconfKey::MasterCandidatesCerts, bad).unwrap();
            assert!(set.master_certificates().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_family_means_ipv4_and_only_2_or_10_are_accepted() {
        let mut set = SsconfSet::new();
        assert_eq!(set.ip_policy().unwrap(), IpPolicy::Ipv4);
        assert_eq!(set.master_netmask().unwrap(), 32);
        for (text, policy) in [
            ("2", IpPolicy::Ipv4),
            ("10", IpPolicy::HybridIpv6),
            (" 2 \n\n", IpPolicy::Ipv4),
        ] {
            set.insert(SsconfKey::PrimaryIpFamily, text).unwrap();
            assert_eq!(set.ip_policy().unwrap(), policy, "{text:?}");
        }
        for bad in ["7", "4", "6", "", "ten", "2\n10"] {
            set.insert(SsconfKey::PrimaryIpFamily, bad).unwrap();
            let err = set.ip_policy().unwrap_err();
            assert!(
                matches!(err, SsconfError::Malformed { .. }),
                "{bad:?}: {err}"
            );
        }
        set.insert(SsconfKey::PrimaryIpFamily, "7").unwrap();
        assert_eq!(
            set.ip_policy().unwrap_err().to_string(),
            "ssconf key 'primary_ip_family', line 1: invalid IP address family 7: expected 2 (IPv4) or 10 (IPv6)"
        );
    }

    #[test]
    fn values_lose_trailing_newlines_and_empty_values_have_empty_files() {
        let mut set = SsconfSet::new();
        set.insert(SsconfKey::ClusterTags, "value\nwith\nnewlines\n")
            .unwrap();
        set.insert(SsconfKey::InstanceList, "").unwrap();
        set.insert(SsconfKey::ClusterName, "cluster.example.com")
            .unwrap();
        assert_eq!(
            set.get(SsconfKey::ClusterTags),
            Some("value\nwith\nnewlines")
        );
        assert_eq!(
            set.file_contents(SsconfKey::ClusterTags).unwrap(),
            b"value\nwith\nnewlines\n"
        );
        assert_eq!(set.file_contents(SsconfKey::InstanceList).unwrap(), b"");
        assert_eq!(
            set.file_contents(SsconfKey::ClusterName).unwrap(),
            b"cluster.example.com\n"
        );
    }

    #[test]
    fn the_size_limit_counts_the_trailing_newline_like_ganeti() {
        let mut set = SsconfSet::new();
        set.insert(SsconfKey::InstanceList, "A".repeat(MAX_VALUE_BYTES - 1))
            .unwrap();
        let err = set
            .insert(SsconfKey::InstanceList, "A".repeat(MAX_VALUE_BYTES))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ssconf key 'instance_list' holds 131073 bytes; ssconf allows at most 131072"
        );
        assert_eq!(
            set.get(SsconfKey::InstanceList).unwrap().len(),
            MAX_VALUE_BYTES - 1
        );
    }

    #[test]
    fn node_address_lines_are_checked_line_by_line() {
        let mut set = SsconfSet::new();
        set.insert(SsconfKey::PrimaryIpFamily, "10").unwrap();
        let cases = [
            (
                "node1 2001:db8::1\nnode2",
                2,
                "expected 'name address', found 'node2'",
            ),
            (
                "node1 2001:db8::1 extra",
                1,
                "expected 'name address', found 'node1 2001:db8::1 extra'",
            ),
            ("node1 192.0.2.1", 1, "192.0.2.1 is not an IPv6 address"),
            (
                "node1 [2001:db8::1]",
                1,
                "invalid IP address '[2001:db8::1]'",
            ),
            (
                "node1 2001:db8::1\nnode1 2001:db8::2",
                2,
                "node 'node1' is listed twice",
            ),
            (
                "bad_name! 2001:db8::1",
                1,
                "invalid host name 'bad_name!': only letters, digits, '.', '_' and '-' are allowed",
            ),
        ];
        for (text, line, reason) in cases {
            set.insert(SsconfKey::NodePrimaryIps, text).unwrap();
            match set.node_primary_ips() {
                Err(SsconfError::Malformed {
                    line: l, reason: r, ..
                }) => {
                    assert_eq!((l, r.as_str()), (line, reason), "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        set.insert(SsconfKey::NodeSecondaryIps, "node1 2001:db8::9")
            .unwrap();
        assert!(
            set.node_secondary_ips().is_err(),
            "secondaries must be IPv4"
        );
    }

    #[test]
    fn single_homed_nodes_use_their_primary_as_secondary() {
        let mut set = SsconfSet::new();
        set.insert(SsconfKey::NodePrimaryIps, "node1 192.0.2.1")
            .unwrap();
        let addrs = set.node_addresses(&host("node1")).unwrap().unwrap();
        assert_eq!(addrs.secondary, addrs.primary);
    }

    #[test]
    fn required_keys_that_are_missing_are_named() {
        let set = SsconfSet::new();
        assert_eq!(
            set.cluster_name().unwrap_err().to_string(),
            "ssconf key 'cluster_name' is missing"
        );
        let read = SsconfSet::new().read_from(Path::new("/var/lib/gnt-rpc"));
        assert_eq!(
            read.master_node().unwrap_err().to_string(),
            "ssconf file /var/lib/gnt-rpc/ssconf_master_node is missing"
        );
    }

    #[test]
    fn cluster_facts_that_contradict_the_policy_are_refused() {
        let mut nodes = hybrid_nodes();
        nodes[1].addresses.primary = ip("192.0.2.50");
        let facts = ClusterFacts {
            cluster_name: &host("cluster.example.com"),
            policy: IpPolicy::HybridIpv6,
            master: &host("master.example.com"),
            master_ip: ip("2001:db8::100"),
            master_netmask: 64,
            nodes: &nodes,
            release_version: "0.1.0",
            master_certificate_sha256: None,
        };
        let err = SsconfSet::from_cluster(&facts).unwrap_err();
        assert!(err.to_string().contains("not an IPv6 address"), "{err}");

        let mut nodes = hybrid_nodes();
        nodes[0].addresses.secondary = ip("2001:db8::77");
        let err = SsconfSet::from_cluster(&ClusterFacts {
            nodes: &nodes,
            ..facts.clone()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not an IPv4 address"), "{err}");

        let nodes = hybrid_nodes();
        let err = SsconfSet::from_cluster(&ClusterFacts {
            nodes: &nodes,
            master: &host("other.example.com"),
            ..facts.clone()
        })
        .unwrap_err();
        assert!(err.to_string().contains("is not a node"), "{err}");

        let err = SsconfSet::from_cluster(&ClusterFacts {
            nodes: &nodes,
            master_netmask: 0,
            ..facts.clone()
        })
        .unwrap_err();
        assert!(err.to_string().contains("netmask"), "{err}");
    }

    #[test]
    fn wire_sets_refuse_unknown_keys_and_round_trip() {
        let set = hybrid_set();
        let wire: BTreeMap<String, String> = set.to_wire();
        assert_eq!(SsconfSet::from_wire(wire).unwrap(), set);
        let err = SsconfSet::from_wire([("cluster_name", "c"), ("bogus", "x")]).unwrap_err();
        assert_eq!(err.to_string(), "unknown ssconf key 'bogus'");
    }

    #[test]
    fn cluster_name_verification_refuses_another_cluster() {
        let set = hybrid_set();
        set.verify_cluster_name(&host("cluster.example.com"))
            .unwrap();
        let err = set
            .verify_cluster_name(&host("other.example.com"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this node belongs to cluster 'cluster.example.com', not to 'other.example.com'"
        );
        SsconfSet::new().verify_cluster_name(&host("any")).unwrap();
    }

    #[test]
    fn nice_order_compares_digit_runs_as_numbers() {
        let mut names = vec![
            "node10", "node2", "node1", "node01", "a", "node", "node2b", "node2a",
        ];
        names.sort_by(|a, b| nice_cmp(a, b));
        assert_eq!(
            names,
            [
                "a", "node", "node1", "node01", "node2", "node2a", "node2b", "node10"
            ]
        );
    }

    proptest! {
        #[test]
        fn nice_order_is_a_total_order(a in "[a-c0-2]{0,6}", b in "[a-c0-2]{0,6}", c in "[a-c0-2]{0,6}") {
            prop_assert_eq!(nice_cmp(&a, &b), nice_cmp(&b, &a).reverse());
            prop_assert_eq!(nice_cmp(&a, &b) == Ordering::Equal, a == b);
            if nice_cmp(&a, &b) != Ordering::Greater && nice_cmp(&b, &c) != Ordering::Greater {
                prop_assert_ne!(nice_cmp(&a, &c), Ordering::Greater);
            }
        }

        #[test]
        fn typed_reads_never_panic_on_arbitrary_values(value in "\\PC{0,200}") {
            let mut set = SsconfSet::new();
            for key in SsconfKey::ALL {
                set.insert(*key, value.clone()).unwrap();
            }
            let _ = set.cluster_name();
            let _ = set.ip_policy();
            let _ = set.master_ip();
            let _ = set.master_netmask();
            let _ = set.node_primary_ips();
            let _ = set.node_secondary_ips();
            let _ = set.node_list();
        }
    }
}
