//! IPv6-aware network helpers, one module per concern, with Ganeti's `netutils` semantics
//! and without its bugs.
//!
//! | module | Ganeti | what |
//! |---|---|---|
//! | [`address`] | `IPAddress`, `IP4Address`, `IP6Address` | strict parsing (exactly `inet_pton`), family, loopback, CIDR membership |
//! | [`host_port`] | `FormatAddress`, `ValidatePortNumber` | `host:port` with brackets for IPv6, and back |
//! | [`hostname`] | `Hostname.GetNormalizedName` | host name normalisation |
//! | [`listener`] | | which process listens on a port (for a daemon that cannot bind its own) |
//! | [`local`] | `IPAddress.Own`, `GetInterfaceIpAddresses` | addresses this host owns |
//! | [`ping`] | `TcpPing` | async TCP reachability test |
//! | [`resolve`] | `Hostname.GetIP` (getaddrinfo) | name resolution in a family, `/etc/hosts` first |
//! | [`lookup`] | `netutils.GetHostname` in LUs | an operator's name: normalised, then its first address in the family |
//!
//! Where this module departs from Ganeti, on purpose:
//!
//! - Wrong-family or invalid input gives an error or `false`, never a panic or an assertion
//!   (Ganeti's `IsLoopback` and `InNetwork` raise on such input).
//! - A TCP ping whose source address cannot be bound is an error naming the source; Ganeti
//!   ignores the bind failure and pings from whatever address the kernel picks.
//! - The unspecified and multicast addresses are never "owned" (Ganeti's bind test says
//!   `0.0.0.0` is).
//! - Host-name labels may not begin with `-` (such a name reads as an option to any command
//!   it is passed to) and are at most 63 characters; the whole name at most 253.
//! - `/etc/hosts` is re-read when it changes, as glibc does, not once at start-up.

pub mod address;
pub mod host_port;
pub mod hostname;
pub mod listener;
pub mod local;
pub mod lookup;
pub mod ping;
pub mod resolve;

pub use address::{AddressError, Cidr, family_of, is_loopback, parse_ip, parse_ip_in};
pub use host_port::{Host, HostPort, format_host_port, parse_port};
pub use hostname::{Hostname, HostnameError};
pub use listener::{PortHolder, port_holder};
pub use local::{
    InterfaceAddresses, InterfaceError, all_interface_addresses, interface_addresses, owns_address,
};
pub use lookup::{NameError, parse_name};
pub use ping::{PingError, PingOptions, PingOutcome, tcp_ping};
pub use resolve::{ResolveError, Resolved, Resolver};
