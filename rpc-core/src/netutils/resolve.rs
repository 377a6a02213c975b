//! Name resolution the way getaddrinfo does it (`hosts: files dns`), restricted to one
//! address family when the caller gives one.
//!
//! 1. An address literal resolves to itself, if it is of the asked family.
//! 2. The name is normalised ([`Hostname`]), then looked up in the hosts file
//!    (`/etc/hosts`). Entries of the asked family win, in file order, and DNS is not asked.
//!    The file is re-read whenever it changes, as glibc does, so a long-running daemon sees
//!    an operator's edit.
//! 3. Otherwise DNS is asked through hickory-resolver, configured from `/etc/resolv.conf`
//!    (name servers, `search`, `ndots`, `timeout`, `attempts`). With no name server in it,
//!    the local one is used, as glibc does.
//!
//! Without a family, IPv6 addresses come first, then IPv4 (RFC 6724's default preference).
//! The cluster always resolves node names in its primary family
//! ([`IpPolicy::primary_family`](crate::policy::IpPolicy::primary_family)).
//!
//! When a name has no address of the asked family but has some of the other, the error
//! says so, because that is the mistake operators make (a node added to a hybrid cluster
//! with only an A record).
//!
//! hickory-resolver answers `localhost` itself (RFC 6761) with `127.0.0.1` and `::1`; the
//! hosts file is consulted first, so a host's own `localhost` line still decides.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use std::time::Duration;
use std::{fmt, fs, io};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RecordType};

use self::hosts::HostsSource;
use super::address::parse_ip;
use super::hostname::{Hostname, HostnameError};
use crate::error::{Classify, ErrorKind};
use crate::policy::IpFamily;

/// The system's hosts file.
pub const SYSTEM_HOSTS: &str = "/etc/hosts";
/// The system's resolver configuration.
pub const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The addresses a name resolved to; only [`Resolver::resolve`] makes one, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    name: String,
    first: IpAddr,
    addresses: Vec<IpAddr>,
}

impl Resolved {
    fn new(name: String, addresses: Vec<IpAddr>) -> Option<Self> {
        let first = *addresses.first()?;
        Some(Self {
            name,
            first,
            addresses,
        })
    }

    /// The name as looked up: normalised, or the literal as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The preferred address: what Ganeti's `GetIP` returns.
    pub fn first(&self) -> IpAddr {
        self.first
    }

    /// Every address, in preference order.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }
}

/// A name that did not resolve as asked.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Not a valid host name.
    #[error(transparent)]
    InvalidName(#[from] HostnameError),
    /// An address literal of the other family.
    #[error("'{text}' is an {} address, not an {family} one", family.other())]
    LiteralOfOtherFamily {
        /// The literal.
        text: String,
        /// The family that was asked for.
        family: IpFamily,
    },
    /// Neither the hosts file nor DNS knows the name (in any family).
    #[error("the name '{name}' does not resolve{}", in_family(*family))]
    NotFound {
        /// The name.
        name: String,
        /// The family that was asked for, if any.
        family: Option<IpFamily>,
    },
    /// The name has addresses, but only of the other family.
    #[error("the name '{name}' has no {family} address; it resolves to {} only: {}",
        family.other(), list(others))]
    OnlyOtherFamily {
        /// The name.
        name: String,
        /// The family that was asked for.
        family: IpFamily,
        /// The addresses of the other family it does have.
        others: Vec<IpAddr>,
    },
    /// DNS failed (timeout, no name server reachable, server failure).
    #[error("cannot resolve '{name}': DNS lookup failed")]
    Dns {
        /// The name.
        name: String,
        /// What DNS said (boxed: hickory's error is large, and errors travel by value).
        #[source]
        error: Box<NetError>,
    },
    /// hickory-resolver refused the configuration.
    #[error("cannot set up the DNS resolver")]
    Setup(#[source] Box<NetError>),
    /// The resolver configuration cannot be read.
    #[error("cannot read the resolver configuration {}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: io::Error,
    },
}

impl Classify for ResolveError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName(_) | Self::LiteralOfOtherFamily { .. } => ErrorKind::WrongInput,
            Self::NotFound { .. } | Self::OnlyOtherFamily { .. } | Self::Dns { .. } => {
                ErrorKind::Resolver
            }
            Self::Config { .. } | Self::Setup(_) => ErrorKind::Environment,
        }
    }
}

fn in_family(family: Option<IpFamily>) -> String {
    family
        .map(|f| format!(" to an {f} address"))
        .unwrap_or_default()
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn record_type(family: IpFamily) -> RecordType {
    match family {
        IpFamily::V4 => RecordType::A,
        IpFamily::V6 => RecordType::AAAA,
    }
}

/// A resolver: a hosts file, then DNS.
pub struct Resolver {
    hosts: HostsSource,
    dns: Option<TokioResolver>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("hosts", &self.hosts)
            .field("dns", &self.dns.is_some())
            .finish()
    }
}

impl Resolver {
    /// The host's own configuration: `/etc/hosts` and `/etc/resolv.conf`. Inside
    /// `ip netns exec NS` these are the namespace's files from `/etc/netns/NS/`.
    pub fn system() -> Result<Self, ResolveError> {
        Self::from_files(Path::new(SYSTEM_HOSTS), Path::new(SYSTEM_RESOLV_CONF))
    }

    /// A hosts file and a resolv.conf at the given paths. A missing hosts file has no
    /// entries; a missing resolv.conf means the local name server, as for glibc.
    pub fn from_files(hosts: &Path, resolv_conf: &Path) -> Result<Self, ResolveError> {
        let text = match fs::read(resolv_conf) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(ResolveError::Config {
                    path: resolv_conf.to_owned(),
                    error,
                });
            }
        };
        let (config, options) = resolv_conf_or_local(&text);
        Ok(Self {
            hosts: HostsSource::file(hosts),
            dns: Some(build_dns(config, options)?),
        })
    }

    /// A fixed hosts table and no DNS at all: fully hermetic, for tests and for tools that
    /// must not send queries.
    pub fn hosts_only(hosts_text: &str) -> Self {
        Self {
            hosts: HostsSource::fixed(hosts_text),
            dns: None,
        }
    }

    /// A fixed hosts table and explicit DNS servers (any port), with search domains.
    pub fn with_name_servers(
        hosts_text: &str,
        servers: &[SocketAddr],
        search: &[Name],
        timeout: Duration,
    ) -> Result<Self, ResolveError> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut config.connections {
                    connection.port = server.port();
                }
                config
            })
            .collect();
        let config = ResolverConfig::from_parts(None, search.to_vec(), name_servers);
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.attempts = 1;
        Ok(Self {
            hosts: HostsSource::fixed(hosts_text),
            dns: Some(build_dns(config, options)?),
        })
    }

    /// Resolves `name`, in `family` only when one is given.
    pub async fn resolve(
        &self,
        name: &str,
        family: Option<IpFamily>,
    ) -> Result<Resolved, ResolveError> {
        if let Ok(ip) = parse_ip(name) {
            return match family {
                Some(family) if IpFamily::of(&ip) != family => {
                    Err(ResolveError::LiteralOfOtherFamily {
                        text: name.to_owned(),
                        family,
                    })
                }
                _ => Ok(Resolved {
                    name: name.to_owned(),
                    first: ip,
                    addresses: vec![ip],
                }),
            };
        }
        let hostname = Hostname::parse(name)?;
        let families: &[IpFamily] = match family {
            Some(IpFamily::V4) => &[IpFamily::V4],
            Some(IpFamily::V6) => &[IpFamily::V6],
            None => &[IpFamily::V6, IpFamily::V4],
        };
        let addresses = match self.lookup(&hostname, families).await {
            Ok(addresses) => addresses,
            // DNS failed, but the hosts file may know the name in the other family: that is
            // what the operator needs to hear (glibc would only say "temporary failure").
            Err(error @ ResolveError::Dns { .. }) => {
                let others = family
                    .map(|f| self.hosts_file_addresses(&hostname, &[f.other()]))
                    .unwrap_or_default();
                return match (family, others.is_empty()) {
                    (Some(family), false) => Err(ResolveError::OnlyOtherFamily {
                        name: hostname.as_str().to_owned(),
                        family,
                        others,
                    }),
                    _ => Err(error),
                };
            }
            Err(error) => return Err(error),
        };
        if let Some(resolved) = Resolved::new(hostname.as_str().to_owned(), addresses) {
            return Ok(resolved);
        }
        // Nothing in the asked family: say whether the other family has something.
        if let Some(family) = family {
            let others = self
                .lookup(&hostname, &[family.other()])
                .await
                .unwrap_or_default();
            if !others.is_empty() {
                return Err(ResolveError::OnlyOtherFamily {
                    name: hostname.as_str().to_owned(),
                    family,
                    others,
                });
            }
        }
        Err(ResolveError::NotFound {
            name: hostname.as_str().to_owned(),
            family,
        })
    }

    /// The addresses of `name` in `families`, hosts file first; empty when none is known.
    async fn lookup(
        &self,
        name: &Hostname,
        families: &[IpFamily],
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let dns_name = Name::from_ascii(name.as_str()).map_err(|_| {
            ResolveError::InvalidName(HostnameError {
                name: name.as_str().to_owned(),
                reason: "not a valid DNS name",
            })
        })?;
        let from_hosts = self.hosts_file_addresses(name, families);
        if !from_hosts.is_empty() {
            return Ok(from_hosts);
        }
        let Some(dns) = &self.dns else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for family in families {
            match dns.lookup(dns_name.clone(), record_type(*family)).await {
                Ok(lookup) => found.extend(
                    lookup
                        .answers()
                        .iter()
                        .filter_map(|record| record.data.ip_addr())
                        .filter(|ip| IpFamily::of(ip) == *family),
                ),
                Err(error) if error.is_no_records_found() || error.is_nx_domain() => {}
                Err(error) => {
                    return Err(ResolveError::Dns {
                        name: name.as_str().to_owned(),
                        error: Box::new(error),
                    });
                }
            }
        }
        Ok(found)
    }
}

/// resolv.conf as glibc reads it: with no usable `nameserver` line, the local server.
fn resolv_conf_or_local(text: &[u8]) -> (ResolverConfig, ResolverOpts) {
    match hickory_resolver::system_conf::parse_resolv_conf(text) {
        Ok(parsed) => parsed,
        Err(_) => {
            let with_local = [text, b"\nnameserver 127.0.0.1\n"].concat();
            hickory_resolver::system_conf::parse_resolv_conf(with_local).unwrap_or_else(|_| {
                let local = NameServerConfig::udp_and_tcp(IpAddr::from([127, 0, 0, 1]));
                (
                    ResolverConfig::from_parts(None, Vec::new(), vec![local]),
                    ResolverOpts::default(),
                )
            })
        }
    }
}

fn build_dns(
    config: ResolverConfig,
    mut options: ResolverOpts,
) -> Result<TokioResolver, ResolveError> {
    // The hosts file is ours to consult (exact name, re-read on change), not hickory's.
    options.use_hosts_file = ResolveHosts::Never;
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    *builder.options_mut() = options;
    builder
        .build()
        .map_err(|e| ResolveError::Setup(Box::new(e)))
}

mod hosts;
#[cfg(test)]
mod tests;
