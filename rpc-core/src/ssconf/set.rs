//! A complete ssconf set in memory: values by key, and typed reads (the typed constructor
//! is in `build`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{Location, MAX_VALUE_BYTES, SsconfError, SsconfKey};
use crate::digest::parse_fingerprint;
use crate::netutils::address::{AddressError, parse_ip};
use crate::netutils::hostname::Hostname;
use crate::node::NodeAddrs;
use crate::policy::{IpFamily, IpPolicy, PolicyError};

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

impl SsconfSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (trailing newlines are not part of a value). Refuses a value
    /// whose file would exceed [`MAX_VALUE_BYTES`], a NUL byte anywhere (no reader of a
    /// text file expects one), and a second line in a key that holds one.
    pub fn insert(&mut self, key: SsconfKey, value: impl Into<String>) -> Result<(), SsconfError> {
        let mut value: String = value.into();
        value.truncate(value.trim_end_matches('\n').len());
        let malformed = |line: usize, reason: &str| SsconfError::Malformed {
            location: Location::Key(key),
            line,
            reason: reason.to_owned(),
        };
        if let Some((i, _)) = value
            .split('\n')
            .enumerate()
            .find(|(_, l)| l.contains('\0'))
        {
            return Err(malformed(i + 1, "the value contains a NUL byte"));
        }
        if key.is_single_line() && value.contains('\n') {
            return Err(malformed(2, "expected a single line"));
        }
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

    /// A set from wire entries (key name, value); unknown keys are refused. Messages go
    /// through [`wire`](crate::wire), which calls this.
    pub(crate) fn from_wire<I, K, V>(entries: I) -> Result<Self, SsconfError>
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

    /// The set as wire entries (key name, value), for [`wire`](crate::wire).
    pub(crate) fn to_wire<C: FromIterator<(String, String)>>(&self) -> C {
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
            Hostname::parse(text).map_err(|e| BadValue::Name(e.reason))
        })
    }

    /// The IP-version policy (`primary_ip_family`). A missing key means IPv4, as in Ganeti
    /// (clusters older than 2.3 have no such file); anything but `2` or `10` is an error.
    pub fn ip_policy(&self) -> Result<IpPolicy, SsconfError> {
        if self.get(SsconfKey::PrimaryIpFamily).is_none() {
            return Ok(IpPolicy::Ipv4);
        }
        self.single_line(SsconfKey::PrimaryIpFamily, |text| {
            Ok(IpPolicy::from_af_number(number(text)?)?)
        })
    }

    /// The master node's name (`master_node`); required.
    pub fn master_node(&self) -> Result<Hostname, SsconfError> {
        self.single_line(SsconfKey::MasterNode, |text| {
            Hostname::parse(text).map_err(|e| BadValue::Name(e.reason))
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
            Ok(policy.validate_master_netmask(number(text)?)?)
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
    /// call node procedures; empty when absent. Every fingerprint must be a SHA-256 one.
    pub fn master_certificates(&self) -> Result<Vec<(String, String)>, SsconfError> {
        let key = SsconfKey::MasterCandidatesCerts;
        self.items(key)
            .map(|(line, text)| {
                let malformed = |reason: String| SsconfError::Malformed {
                    location: self.location(key),
                    line,
                    reason,
                };
                match text.split_once('=') {
                    Some((name, fingerprint))
                        if !name.is_empty()
                            && !fingerprint.is_empty()
                            && !fingerprint.contains('=') =>
                    {
                        if parse_fingerprint(fingerprint).is_none() {
                            return Err(malformed(format!(
                                "the fingerprint of {name} is not a SHA-256 fingerprint"
                            )));
                        }
                        Ok((name.to_owned(), fingerprint.to_ascii_uppercase()))
                    }
                    _ => Err(malformed(format!(
                        "expected 'name=fingerprint', found '{text}'"
                    ))),
                }
            })
            .collect()
    }

    /// The SHA-256 digests of the certificates allowed to call node procedures: at least
    /// one (an empty list would allow no one, and is refused as missing).
    pub fn master_certificate_digests(&self) -> Result<Vec<[u8; 32]>, SsconfError> {
        let digests: Vec<[u8; 32]> = self
            .master_certificates()?
            .iter()
            .filter_map(|(_, fingerprint)| parse_fingerprint(fingerprint))
            .collect();
        if digests.is_empty() {
            return Err(SsconfError::Missing {
                location: self.location(SsconfKey::MasterCandidatesCerts),
            });
        }
        Ok(digests)
    }

    /// The software release that wrote the set (`release_version`).
    pub fn release_version(&self) -> Option<&str> {
        self.get(SsconfKey::ReleaseVersion)
    }

    /// Checks that the set holds what a member node needs to run, so that a node never runs
    /// on a partial set (it would fall back to defaults: IPv4 without `primary_ip_family`,
    /// no allowed master without `master_candidates_certs`): the cluster name, the master
    /// (one of the listed nodes), the node list, the primary IP family, and at least one
    /// master certificate.
    pub fn check_member(&self) -> Result<(), SsconfError> {
        let cluster = self.cluster_name()?;
        self.required(SsconfKey::PrimaryIpFamily)?;
        self.ip_policy()?;
        let master = self.master_node()?;
        self.required(SsconfKey::NodeList)?;
        if !self.node_list()?.contains(&master) {
            return Err(SsconfError::Malformed {
                location: self.location(SsconfKey::MasterNode),
                line: 1,
                reason: format!("master '{master}' of cluster '{cluster}' is not in node_list"),
            });
        }
        self.required(SsconfKey::MasterCandidatesCerts)?;
        self.master_certificate_digests()?;
        Ok(())
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
        parse: impl FnOnce(&str) -> Result<T, BadValue>,
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
        parse(first).map_err(|bad| malformed(1, bad.to_string()))
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
                let address =
                    address_of(address, family).map_err(|bad| malformed(bad.to_string()))?;
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

/// What is wrong with one value (the reason of [`SsconfError::Malformed`]).
#[derive(Debug, thiserror::Error)]
enum BadValue {
    #[error("{0}")]
    Name(&'static str),
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("{addr} is not an {family} address")]
    Family { addr: IpAddr, family: IpFamily },
}

fn number(text: &str) -> Result<u32, BadValue> {
    text.parse()
        .map_err(|_| BadValue::NotANumber(text.to_owned()))
}

fn address_of(text: &str, family: IpFamily) -> Result<IpAddr, BadValue> {
    let addr = parse_ip(text)?;
    if IpFamily::of(&addr) == family {
        Ok(addr)
    } else {
        Err(BadValue::Family { addr, family })
    }
}

fn find(pairs: Vec<(Hostname, IpAddr)>, name: &Hostname) -> Option<IpAddr> {
    pairs.into_iter().find(|(n, _)| n == name).map(|(_, ip)| ip)
}

fn encoded_len(value: &str) -> usize {
    if value.is_empty() { 0 } else { value.len() + 1 }
}

#[cfg(test)]
mod tests;
