//! What this host has: whether it owns an address, and the addresses of its interfaces.
//!
//! "Owns" is Ganeti's test: a UDP socket can bind the address (port 0). This is exactly the
//! question a daemon about to listen on the address needs answered, and it follows the
//! kernel's rules (an address still in duplicate address detection is not yet owned). It
//! runs in the calling process's network namespace. Unlike Ganeti, the unspecified address,
//! multicast addresses and IPv4 broadcast addresses (`255.255.255.255`, and the broadcast
//! address of any of this host's IPv4 networks, such as `10.77.0.255` for `10.77.0.11/24`)
//! are never owned: binding them succeeds, but no peer can reach this host at them.
//!
//! Interface addresses come from `getifaddrs(3)` rather than from parsing `ip -o addr`
//! output as Ganeti does, so no external command or text format is involved.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Classify, ErrorKind};

/// Whether this host owns `addr`: a UDP socket can bind it, and it is not a wildcard,
/// multicast or broadcast address.
pub fn owns_address(addr: IpAddr) -> bool {
    if addr.is_unspecified() || addr.is_multicast() {
        return false;
    }
    if let IpAddr::V4(v4) = addr
        && (v4.is_broadcast() || is_local_broadcast(v4))
    {
        return false;
    }
    UdpSocket::bind(SocketAddr::new(addr, 0)).is_ok()
}

/// Whether `addr` is the broadcast (or, as older kernels route it too, the network)
/// address of one of this host's IPv4 networks, which a socket may bind, and not also an
/// address of an interface. An interface list that cannot be read counts as one: an
/// ownership that cannot be checked is refused.
fn is_local_broadcast(addr: Ipv4Addr) -> bool {
    let Some(networks) = ipv4_networks() else {
        return true;
    };
    let mut broadcast = false;
    for v4 in networks.iter() {
        if v4.ip == addr {
            return false;
        }
        // What the kernel adds for an address of a network with room for one (up to /30),
        // whether or not the interface has the broadcast flag (`lo` has not).
        let (ip, mask) = (u32::from(v4.ip), u32::from(v4.netmask));
        let room = v4.prefixlen <= 30;
        let network_broadcast = room.then(|| Ipv4Addr::from(ip | !mask));
        let network = room.then(|| Ipv4Addr::from(ip & mask));
        broadcast |=
            v4.broadcast == Some(addr) || network_broadcast == Some(addr) || network == Some(addr);
    }
    broadcast
}

/// How long one read of this host's IPv4 networks is used. A read costs three system
/// calls per address (if-addrs asks each one's interface index): 60,000 on the
/// benchmark's fleet host, with 20,000 addresses, where every joining agent checks its
/// secondary address. An address added or removed is seen within this time.
const NETWORKS_FRESH_FOR: Duration = Duration::from_secs(1);

/// The IPv4 addresses of the calling thread's network namespace, with their networks,
/// read at most once per [`NETWORKS_FRESH_FOR`] per namespace; `None` if they cannot be
/// read.
fn ipv4_networks() -> Option<Arc<Vec<if_addrs::Ifv4Addr>>> {
    type Reads = BTreeMap<u64, (Instant, Arc<Vec<if_addrs::Ifv4Addr>>)>;
    static READS: Mutex<Reads> = Mutex::new(BTreeMap::new());
    // Threads of one process may be in different namespaces (the lab's hosts are).
    let namespace = std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino());
    let mut reads = READS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(namespace) = namespace
        && let Some((read_at, networks)) = reads.get(&namespace)
        && read_at.elapsed() < NETWORKS_FRESH_FOR
    {
        return Some(networks.clone());
    }
    let networks: Arc<Vec<_>> = Arc::new(
        if_addrs::get_if_addrs()
            .ok()?
            .into_iter()
            .filter_map(|interface| match interface.addr {
                if_addrs::IfAddr::V4(v4) => Some(v4),
                if_addrs::IfAddr::V6(_) => None,
            })
            .collect(),
    );
    if let Some(namespace) = namespace {
        reads.insert(namespace, (Instant::now(), networks.clone()));
    }
    Some(networks)
}

/// The addresses configured on one interface, in the kernel's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceAddresses {
    /// IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses, link-local ones included.
    pub ipv6: Vec<Ipv6Addr>,
}

impl InterfaceAddresses {
    /// Whether `addr` is one of them.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => self.ipv4.contains(&v4),
            IpAddr::V6(v6) => self.ipv6.contains(&v6),
        }
    }
}

/// An interface that cannot be named or read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// Not a possible interface name.
    #[error("invalid interface name '{name}': {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No interface of that name on this host.
    #[error("no network interface '{0}' on this host")]
    NotFound(String),
    /// `getifaddrs` failed.
    #[error("cannot list the network interfaces of this host")]
    List(#[source] io::Error),
}

impl Classify for InterfaceError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName { .. } => ErrorKind::WrongInput,
            Self::NotFound(_) => ErrorKind::UnknownEntity,
            Self::List(_) => ErrorKind::Environment,
        }
    }
}

/// Longest interface name Linux allows (`IFNAMSIZ` - 1).
const MAX_INTERFACE_NAME: usize = 15;

/// The addresses of interface `name`. An interface that exists without addresses gives an
/// empty set; one that does not exist is an error.
pub fn interface_addresses(name: &str) -> Result<InterfaceAddresses, InterfaceError> {
    validate_interface_name(name)?;
    let mut all = all_interface_addresses()?;
    if let Some(found) = all.remove(name) {
        return Ok(found);
    }
    // Interfaces without addresses do not appear in getifaddrs' address list.
    if Path::new("/sys/class/net").join(name).exists() {
        Ok(InterfaceAddresses::default())
    } else {
        Err(InterfaceError::NotFound(name.to_owned()))
    }
}

/// The addresses of every interface that has any, by interface name.
pub fn all_interface_addresses() -> Result<BTreeMap<String, InterfaceAddresses>, InterfaceError> {
    let mut by_name: BTreeMap<String, InterfaceAddresses> = BTreeMap::new();
    for interface in if_addrs::get_if_addrs().map_err(InterfaceError::List)? {
        let entry = by_name.entry(interface.name.clone()).or_default();
        match interface.ip() {
            IpAddr::V4(v4) => entry.ipv4.push(v4),
            IpAddr::V6(v6) => entry.ipv6.push(v6),
        }
    }
    Ok(by_name)
}

fn validate_interface_name(name: &str) -> Result<(), InterfaceError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_INTERFACE_NAME {
        Some("longer than 15 characters")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not interfaces")
    } else if name.contains(['/', ':']) || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Some("it contains '/', ':', white space or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InterfaceError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_has_ipv6() -> bool {
        UdpSocket::bind("[::1]:0").is_ok()
    }

    #[test]
    fn loopback_addresses_are_owned() {
        assert!(owns_address("127.0.0.1".parse().unwrap()));
        // Linux routes all of 127/8 to lo, so any of it binds (as in Ganeti).
        assert!(owns_address("127.0.0.53".parse().unwrap()));
        if loopback_has_ipv6() {
            assert!(owns_address("::1".parse().unwrap()));
        }
    }

    #[test]
    fn documentation_addresses_are_not_owned() {
        // RFC 5737 / RFC 3849 ranges are never configured on a test host.
        assert!(!owns_address("192.0.2.123".parse().unwrap()));
        assert!(!owns_address("2001:db8::123".parse().unwrap()));
    }

    #[test]
    fn wildcards_and_multicast_are_never_owned() {
        for addr in ["0.0.0.0", "::", "224.0.0.1", "ff02::1"] {
            assert!(!owns_address(addr.parse().unwrap()), "{addr}");
        }
    }

    #[test]
    fn broadcast_addresses_are_never_owned_although_they_bind() {
        // 127.255.255.255 is the broadcast address of lo's 127.0.0.1/8.
        for addr in ["255.255.255.255", "127.255.255.255"] {
            let ip: IpAddr = addr.parse().unwrap();
            assert!(
                UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok(),
                "{addr} no longer binds: this test proves nothing"
            );
            assert!(!owns_address(ip), "{addr}");
        }
        // Nor the network address, which older kernels route (and let bind) as well.
        assert!(!owns_address("127.0.0.0".parse().unwrap()));
        // The rest of 127/8 is still this host's.
        assert!(owns_address("127.255.255.254".parse().unwrap()));
    }

    #[test]
    fn loopback_interface_lists_its_addresses() {
        let lo = interface_addresses("lo").unwrap();
        assert!(lo.contains("127.0.0.1".parse().unwrap()), "{lo:?}");
        if loopback_has_ipv6() {
            assert!(lo.contains("::1".parse().unwrap()), "{lo:?}");
        }
        let all = all_interface_addresses().unwrap();
        assert_eq!(all.get("lo"), Some(&lo));
    }

    #[test]
    fn unknown_interfaces_are_an_unknown_entity() {
        let err = interface_addresses("gntnosuch0").unwrap_err();
        assert!(matches!(err, InterfaceError::NotFound(_)));
        assert_eq!(err.kind(), ErrorKind::UnknownEntity);
        assert_eq!(
            err.to_string(),
            "no network interface 'gntnosuch0' on this host"
        );
    }

    #[test]
    fn names_that_escape_sysfs_or_cannot_exist_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../net/lo",
            "lo/",
            "/etc",
            "eth0:1",
            "a b",
            "sixteen_chars_xx",
        ] {
            let err = interface_addresses(bad).unwrap_err();
            assert!(
                matches!(err, InterfaceError::InvalidName { .. }),
                "{bad:?}: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::WrongInput);
        }
    }
}
