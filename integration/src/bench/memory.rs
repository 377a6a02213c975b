//! `memory`: resident memory of the real daemons, read from `/proc`: an idle `gnt-noded` in
//! member mode (the master's own, before any load) and in bootstrap mode (a node waiting
//! to be added), `gnt-masterd` with the fleet in its configuration before and after it has
//! called every node through its API (after which it holds a live channel to each), and
//! the fleet process, per agent.

use std::path::Path;

use gnt_proto::master::v1::master_client::MasterClient;
use gnt_proto::master::v1::{CallNodesRequest, CallStatus};
use gnt_transports::Connector;
use serde::Serialize;

use super::BenchError;
use super::measure::Memory;
use super::report::{Row, Target};

/// Idle `gnt-noded` resident memory allowed, MiB.
const NODED_TARGET_MIB: f64 = 8.0;
/// `gnt-masterd` resident memory allowed with 1,000 live channels, MiB.
const MASTERD_TARGET_MIB: f64 = 100.0;
/// `gnt-masterd` resident memory allowed per live channel, KiB.
const CHANNEL_TARGET_KIB: f64 = 25.0;

/// `gnt-masterd` holding channels.
#[derive(Debug, Clone, Serialize)]
pub struct MasterdMemory {
    /// Nodes in its configuration.
    pub nodes: usize,
    /// Before any call.
    pub idle: Memory,
    /// After calling every node (one live channel each).
    pub live_channels: Memory,
}

/// The fleet process.
#[derive(Debug, Clone, Serialize)]
pub struct FleetMemory {
    /// Agents in it.
    pub agents: usize,
    /// Processes they run in.
    pub processes: usize,
    /// Its memory (all processes), every agent a member with its connection from the master closed.
    pub memory: Memory,
    /// Resident KiB per agent.
    pub per_agent_kib: f64,
}

/// The scenario's results (what was measured of it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryResult {
    /// An idle member `gnt-noded`.
    pub noded_member: Option<Memory>,
    /// An idle bootstrap `gnt-noded`.
    pub noded_bootstrap: Option<Memory>,
    /// `gnt-masterd`.
    pub masterd: Option<MasterdMemory>,
    /// The fleet.
    pub fleet: Option<FleetMemory>,
}

/// Has the `gnt-masterd` behind `socket` call `Version` on every node (`gnt rpc call`);
/// every call must succeed. Returns how many nodes answered.
pub async fn call_everyone(socket: &Path) -> Result<usize, BenchError> {
    let channel = Connector::unix(socket)
        .channel()
        .await
        .map_err(|e| BenchError::failed(format!("connect to {}", socket.display()), e))?;
    let mut results = MasterClient::new(channel)
        .call_nodes(CallNodesRequest {
            procedure: "Version".to_owned(),
            ..CallNodesRequest::default()
        })
        .await
        .map_err(|status| BenchError::failed("CallNodes", status.message()))?
        .into_inner();
    let mut answered = 0;
    while let Some(result) = results
        .message()
        .await
        .map_err(|status| BenchError::failed("CallNodes", status.message()))?
    {
        if result.status() != CallStatus::Ok {
            return Err(BenchError::failed(
                "CallNodes",
                format!("{}: {}", result.node, result.failure),
            ));
        }
        answered += 1;
    }
    Ok(answered)
}

/// The table's figures.
pub fn rows(result: &MemoryResult) -> Vec<Row> {
    let mib = |m: &Memory| format!("{:.1} MiB", m.rss_mib());
    let mut rows = Vec::new();
    if let Some(m) = &result.noded_member {
        rows.push(
            Row::new("memory", "gnt-noded idle, member", mib(m)).target(Target::at_most(
                m.rss_mib(),
                NODED_TARGET_MIB,
                "MiB",
            )),
        );
    }
    if let Some(m) = &result.noded_bootstrap {
        rows.push(
            Row::new("memory", "gnt-noded idle, bootstrap", mib(m)).target(Target::at_most(
                m.rss_mib(),
                NODED_TARGET_MIB,
                "MiB",
            )),
        );
    }
    if let Some(m) = &result.masterd {
        rows.push(Row::new(
            "memory",
            format!("gnt-masterd, {} nodes, no channel", m.nodes),
            mib(&m.idle),
        ));
        let mut live = Row::new(
            "memory",
            format!("gnt-masterd, {} live channels", m.nodes),
            mib(&m.live_channels),
        );
        if (1000..1100).contains(&m.nodes) {
            live = live.target(Target::at_most(
                m.live_channels.rss_mib(),
                MASTERD_TARGET_MIB,
                "MiB",
            ));
        }
        rows.push(live);
        if m.nodes > 0 {
            let per_channel = |figure: fn(&Memory) -> u64| {
                (figure(&m.live_channels) as f64 - figure(&m.idle) as f64) / m.nodes as f64
            };
            let resident = per_channel(|m| m.rss_kib);
            rows.push(
                Row::new(
                    "memory",
                    "gnt-masterd, per live channel",
                    format!("{resident:.0} KiB"),
                )
                .target(Target::at_most(resident, CHANNEL_TARGET_KIB, "KiB")),
            );
            rows.push(Row::new(
                "memory",
                "gnt-masterd, per live channel, anonymous (heap)",
                format!("{:.0} KiB", per_channel(|m| m.anon_kib)),
            ));
        }
    }
    if let Some(f) = &result.fleet {
        rows.push(Row::new(
            "memory",
            format!(
                "fleet of {} member agents in {} process(es), per agent",
                f.agents, f.processes
            ),
            format!("{:.0} KiB", f.per_agent_kib),
        ));
    }
    rows
}
