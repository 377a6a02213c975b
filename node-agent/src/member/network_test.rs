//! NetworkTest: from this node, ping every listed node on both networks, concurrently.
//!
//! The primary network is tested from this node's primary address to each node's primary,
//! the secondary from this node's secondary to each node's secondary, always both. Ganeti
//! 3.x pings the secondary only when the primary fails, so a healthy primary network hides
//! a broken replication network; here each network gets its own verdict. A single-homed
//! node (secondary equal to primary, on both ends) gets one verdict, as there is one
//! network. A ping counts a refused connection as reachable (the host answered), as Ganeti.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::join_all;
use gnt_core::error::to_status;
use gnt_core::netutils::{PingOptions, PingOutcome, tcp_ping};
use gnt_core::node::{Network, Peer};
use gnt_core::policy::IpFamily;
use gnt_core::wire;
use gnt_proto::node::v1::{NetworkTestRequest, NetworkVerdict};
use tonic::Status;

use super::{MAX_PING_TIMEOUT, MemberContext, bad, invalid};

/// Ganeti's TCP ping timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(
    ctx: &MemberContext,
    request: NetworkTestRequest,
) -> Result<Vec<NetworkVerdict>, Status> {
    let ssconf = ctx.state.ssconf().read().map_err(|e| to_status(&e))?;
    let own = ssconf
        .node_addresses(&ctx.node_name)
        .map_err(|e| to_status(&e))?
        .ok_or_else(|| {
            bad(
                "node list",
                format!(
                    "this node ({}) is missing from its own ssconf node_primary_ips",
                    ctx.node_name
                ),
            )
        })?;
    let port = match request.port {
        0 => ctx.port,
        p => wire::port("port", p).map_err(invalid)?,
    };
    let timeout = wire::duration("timeout", request.timeout, MAX_PING_TIMEOUT)
        .map_err(invalid)?
        .unwrap_or(DEFAULT_TIMEOUT);

    let nodes = request
        .nodes
        .iter()
        .map(Peer::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let mut pings = Vec::new();
    for node in &nodes {
        let name = node.name.as_str();
        let addrs = node.addrs;
        pings.push(ping(
            name,
            Network::Primary,
            own.primary,
            addrs.primary,
            port,
            timeout,
        ));
        if !(addrs.single_homed() && own.single_homed()) {
            pings.push(ping(
                name,
                Network::Secondary,
                own.secondary,
                addrs.secondary,
                port,
                timeout,
            ));
        }
    }
    let verdicts = join_all(pings).await;
    let failures = verdicts.iter().filter(|v| !v.reachable).count();
    tracing::info!(nodes = request.nodes.len(), failures, "network test done");
    Ok(verdicts)
}

async fn ping(
    node: &str,
    network: Network,
    source: IpAddr,
    target: IpAddr,
    port: u16,
    timeout: Duration,
) -> NetworkVerdict {
    let verdict = |reachable: bool, failure: String| NetworkVerdict {
        node: node.to_owned(),
        network: gnt_proto::node::v1::Network::from(network).into(),
        reachable,
        failure,
    };
    if IpFamily::of(&source) != IpFamily::of(&target) {
        return verdict(
            false,
            format!("{target} is not of the same family as this node's {source}"),
        );
    }
    let options = PingOptions {
        timeout,
        source: Some(source),
        live_port_needed: false,
    };
    match tcp_ping((target, port).into(), &options).await {
        Ok(outcome) if outcome.is_alive(false) => verdict(true, String::new()),
        Ok(PingOutcome::TimedOut) => verdict(
            false,
            format!("no answer from {target} port {port} within {timeout:?}"),
        ),
        Ok(PingOutcome::Unreachable(detail)) => {
            verdict(false, format!("{target} port {port}: {detail}"))
        }
        Ok(other) => verdict(false, format!("{target} port {port}: {other}")),
        Err(error) => verdict(false, error.to_string()),
    }
}
