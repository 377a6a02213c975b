//! The hosts-file step of resolution: exact names, entries of the asked family in file
//! order, and the file re-read whenever it changes (glibc does; hickory reads it once).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use std::{fmt, fs};

use hickory_resolver::Hosts;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::Name;

use super::{Resolver, record_type};
use crate::netutils::hostname::Hostname;
use crate::policy::IpFamily;

impl Resolver {
    /// The addresses the hosts file alone gives `name` in `families`.
    pub(super) fn hosts_file_addresses(
        &self,
        name: &Hostname,
        families: &[IpFamily],
    ) -> Vec<IpAddr> {
        let Ok(dns_name) = Name::from_ascii(name.as_str()) else {
            return Vec::new();
        };
        let hosts = self.hosts.current();
        families
            .iter()
            .flat_map(|family| hosts_lookup(&hosts, &dns_name, *family))
            .collect()
    }
}

fn hosts_lookup(hosts: &Hosts, name: &Name, family: IpFamily) -> Vec<IpAddr> {
    hosts
        .lookup_static_host(&Query::query(name.clone(), record_type(family)))
        .map(|lookup| {
            lookup
                .answers()
                .iter()
                .filter_map(|record| record.data.ip_addr())
                .collect()
        })
        .unwrap_or_default()
}

/// Where hosts entries come from: a file re-read on change, or a fixed table.
pub(super) enum HostsSource {
    File {
        path: PathBuf,
        cache: Mutex<Option<(FileStamp, Arc<Hosts>)>>,
    },
    Fixed(Arc<Hosts>),
}

impl fmt::Debug for HostsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, .. } => write!(f, "File({})", path.display()),
            Self::Fixed(_) => f.write_str("Fixed"),
        }
    }
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl HostsSource {
    pub(super) fn file(path: &Path) -> Self {
        Self::File {
            path: path.to_owned(),
            cache: Mutex::new(None),
        }
    }

    pub(super) fn fixed(text: &str) -> Self {
        Self::Fixed(Arc::new(parse_hosts(text.as_bytes())))
    }

    fn current(&self) -> Arc<Hosts> {
        match self {
            Self::Fixed(hosts) => Arc::clone(hosts),
            Self::File { path, cache } => {
                use std::os::unix::fs::MetadataExt;
                let stamp = fs::metadata(path).ok().map(|meta| FileStamp {
                    modified: meta.modified().ok(),
                    len: meta.len(),
                    inode: meta.ino(),
                });
                let mut cache = cache
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let (Some(stamp), Some((cached, hosts))) = (&stamp, cache.as_ref())
                    && stamp == cached
                {
                    return Arc::clone(hosts);
                }
                // A missing or unreadable hosts file has no entries, as for glibc.
                let hosts = Arc::new(fs::read(path).map(|t| parse_hosts(&t)).unwrap_or_default());
                *cache = stamp.map(|stamp| (stamp, Arc::clone(&hosts)));
                hosts
            }
        }
    }
}

fn parse_hosts(text: &[u8]) -> Hosts {
    let mut hosts = Hosts::default();
    // Reading from a byte slice cannot fail; a malformed line is skipped by the parser.
    if hosts.read_hosts_conf(text).is_err() {
        return Hosts::default();
    }
    hosts
}
