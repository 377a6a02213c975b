//! NetworkTest: from this node, ping every listed node on both networks, concurrently.
//!
//! The primary network is tested from this node's primary address to each node's primary,
//! the secondary from this node's secondary to each node's secondary, always both. Ganeti
//! 3.x pings the secondary only when the primary fails, so a healthy primary network hides
//! a broken replication network; here each network gets its own verdict. A single-homed
//! node (secondary equal to primary, on both ends) gets one verdict, as there is one
//! network. A ping counts a refused connection as reachable (the host answered), as Ganeti.
//!
//! Pings run concurrently, but at most [`MAX_PINGS_IN_FLIGHT`] at once over all the tests
//! running on this node: each is a socket, and a request may list thousands of nodes. An
//! earlier version opened every ping of a request at once, so one request of a few
//! thousand unanswering addresses held as many sockets until its timeout (and the agent's
//! file descriptors with them). Ganeti pings one node after the other.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::join_all;
use gnt_core::error::to_status;
use gnt_core::netutils::{PingOptions, PingOutcome, tcp_ping};
use gnt_core::node::{Network, Peer};
use gnt_core::policy::IpFamily;
use gnt_core::wire;
use gnt_proto::node::v1::{NetworkTestRequest, NetworkVerdict};
use tokio::sync::Semaphore;
use tonic::Status;

use super::{MAX_PING_TIMEOUT, MemberContext, bad, invalid};

/// Ganeti's TCP ping timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pings in flight at once, all NetworkTest calls together: far below the usual limit of
/// 1,024 file descriptors. A healthy 1,000-node cluster (2,000 pings) is tested in 16
/// rounds of one round trip each; each round of unanswering pings costs one timeout.
pub(crate) const MAX_PINGS_IN_FLIGHT: usize = 128;

/// The slots of [`MAX_PINGS_IN_FLIGHT`], shared by the calls of one agent.
pub(crate) fn ping_slots() -> Semaphore {
    Semaphore::new(MAX_PINGS_IN_FLIGHT)
}

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
    // A ping opens its socket when first polled, so it waits for its slot before that.
    let verdicts = join_all(pings.into_iter().map(|ping| async {
        // Never closed, so acquiring only waits.
        let _slot = ctx.pings.acquire().await;
        ping.await
    }))
    .await;
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
