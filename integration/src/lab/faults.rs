//! Link faults: unplugging a host's interface from its bridge, and making one address
//! silently unreachable from one host.

use std::net::IpAddr;

use super::command::ip_in;
use super::{Lab, LabError, Network};

/// A MAC address no lab host has: traffic sent to it disappears on the bridge.
const NOWHERE_MAC: &str = "02:00:00:00:de:ad";

impl Lab {
    /// Unplugs `host`'s interface on `network` from its bridge: its packets there go
    /// nowhere, and nothing reaches it there; its other network is unaffected.
    pub fn cut_link(&self, host: &str, network: Network) -> Result<(), LabError> {
        let port = self.host(host)?.port(network);
        ip_in(&self.switch, &["link", "set", &port, "down"])
    }

    /// Plugs it back in.
    pub fn restore_link(&self, host: &str, network: Network) -> Result<(), LabError> {
        let port = self.host(host)?.port(network);
        ip_in(&self.switch, &["link", "set", &port, "up"])
    }

    /// Makes `to` unreachable from `from`, silently: packets leave `from` but no host
    /// receives them, so connections hang until their timeout.
    pub fn blackhole(&self, from: &str, to: IpAddr) -> Result<(), LabError> {
        let netns = &self.host(from)?.netns;
        ip_in(
            netns,
            &[
                "neigh",
                "replace",
                &to.to_string(),
                "lladdr",
                NOWHERE_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
    }

    /// Undoes [`blackhole`](Self::blackhole).
    pub fn heal(&self, from: &str, to: IpAddr) -> Result<(), LabError> {
        let netns = &self.host(from)?.netns;
        ip_in(netns, &["neigh", "del", &to.to_string(), "dev", "eth0"])
    }
}
