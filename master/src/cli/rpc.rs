//! `gnt rpc call`: a node procedure on several nodes at once, with a confirmation first
//! when the procedure changes or destroys node state.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gnt_core::error::ErrorKind;
use gnt_core::runner::TimeoutClass;
use gnt_proto::master::v1::{CallNodesRequest, CallStatus, ListNodesRequest};

use super::{Failure, Output, connect, output};
use crate::paths::MasterPaths;
use crate::procedure;

/// What `gnt rpc call` was asked.
pub(super) struct Call {
    pub(super) procedure: String,
    /// Empty: every node.
    pub(super) nodes: Vec<String>,
    pub(super) data: String,
    pub(super) class: TimeoutClass,
    pub(super) format: Output,
    pub(super) force: bool,
}

/// `gnt rpc call PROCEDURE [--nodes N1,N2] [-d JSON] [--force]`.
pub(super) async fn call(paths: &MasterPaths, call: Call) -> Result<ExitCode, Failure> {
    // A mistyped name or request is refused as such, before anyone is asked to confirm it
    // (the master checks both again: this is only for the message).
    procedure::PreparedCall::new(&call.procedure, &call.data).map_err(|e| Failure::of(&e))?;
    let mut client = connect(paths).await?;
    let status = |s: tonic::Status| Failure::status(&s);
    // Offline nodes get no traffic: they are waited for (their "offline" result comes
    // back all the same) but not counted among the nodes a change would reach.
    let (expected, reached): (Vec<String>, usize) = if call.nodes.is_empty() {
        let all = client
            .list_nodes(ListNodesRequest {})
            .await
            .map_err(status)?
            .into_inner();
        let online = all.nodes.iter().filter(|n| !n.offline).count();
        let names = all
            .nodes
            .into_iter()
            .filter_map(|n| n.addresses.map(|a| a.name))
            .collect();
        (names, online)
    } else {
        (call.nodes.clone(), call.nodes.len())
    };
    if let Some(effect) = procedure::effect(&call.procedure)
        && !call.force
        && !confirmed(&call, effect, reached)?
    {
        return Ok(ExitCode::from(1));
    }
    let request = CallNodesRequest {
        procedure: call.procedure,
        nodes: call.nodes,
        request_json: call.data,
        timeout_class: gnt_proto::master::v1::TimeoutClass::from(call.class).into(),
    };
    let mut stream = client
        .call_nodes(request)
        .await
        .map_err(status)?
        .into_inner();
    let started = Instant::now();
    let mut progress = output::Progress::new(expected);
    let mut results = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(Ok(result)) => {
                    progress.answered(&result.node);
                    results.push(result);
                }
                Some(Err(s)) => return Err(status(s)),
                None => break,
            },
            _ = tick.tick() => {
                if started.elapsed() >= Duration::from_secs(1) {
                    progress.show(started.elapsed());
                }
            }
        }
    }
    progress.finish();
    output::call_results(&mut results, call.format);
    let failed = results
        .iter()
        .any(|r| !matches!(r.status(), CallStatus::Ok | CallStatus::Offline));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks on the terminal whether to run a procedure that changes node state on `reached`
/// nodes; refuses, in one line naming `--force`, when there is no terminal to ask on (a
/// script must say so: a mistyped procedure name must not wipe a cluster).
fn confirmed(call: &Call, effect: &str, reached: usize) -> Result<bool, Failure> {
    let nodes = match (reached, call.nodes.is_empty()) {
        (1, true) => "the 1 online node".to_owned(),
        (n, true) => format!("all {n} online nodes"),
        (1, false) => format!("1 node ({})", call.nodes.join(",")),
        (n, false) => format!("{n} nodes ({})", call.nodes.join(",")),
    };
    let what = format!("{} would {effect} on {nodes}", call.procedure);
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            kind: ErrorKind::WrongInput,
            message: format!("{what}: add --force to call it"),
        });
    }
    print!("{what}.\nAre you sure you want to proceed? y/[n]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "yes"))
}
