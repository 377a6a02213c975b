//! The cluster IP in the CLI: `gnt cluster activate-master-ip`,
//! `gnt cluster deactivate-master-ip` (which asks first, as Ganeti's does, unless `--yes`),
//! and `gnt cluster modify --master-netmask N`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use gnt_core::error::ErrorKind;
use gnt_proto::master::v1::submit_job_request::Operation;
use gnt_proto::master::v1::{
    ActivateMasterIpRequest, ClusterInfoRequest, DeactivateMasterIpRequest, MasterIpResult,
    ModifyClusterRequest, job,
};

use super::args::ModifyArgs;
use super::jobs::{Waited, run_job};
use super::{Failure, connect, output, unexpected};
use crate::operations::master_ip::MasterIpError;
use crate::paths::MasterPaths;

/// `gnt cluster activate-master-ip`.
pub(super) async fn activate(paths: &MasterPaths) -> Result<ExitCode, Failure> {
    let done = connect(paths)
        .await?
        .activate_master_ip(ActivateMasterIpRequest {})
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    if done.changed {
        changed(&done, "activated");
    } else {
        println!(
            "Cluster IP {} is already active on {} ({}); nothing to do.",
            cidr(&done),
            done.node,
            done.netdev
        );
    }
    output::warnings(&done.warnings);
    Ok(ExitCode::SUCCESS)
}

/// `gnt cluster deactivate-master-ip [--yes]`.
pub(super) async fn deactivate(paths: &MasterPaths, yes: bool) -> Result<ExitCode, Failure> {
    let mut client = connect(paths).await?;
    if !yes {
        let info = client
            .cluster_info(ClusterInfoRequest {})
            .await
            .map_err(|s| Failure::status(&s))?
            .into_inner();
        let master = info.master.map(|m| m.name).unwrap_or_default();
        let question = format!(
            "This will remove the cluster IP {} from the master {master}: the cluster is then reachable only at the master's own address. Continue?",
            info.master_ip
        );
        if !confirmed(&question)? {
            println!("Cluster IP left as it is.");
            return Ok(ExitCode::from(1));
        }
    }
    let done = client
        .deactivate_master_ip(DeactivateMasterIpRequest {})
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    if done.changed {
        changed(&done, "deactivated");
    } else {
        println!(
            "Cluster IP {} is not active on {}; nothing to do.",
            done.address, done.node
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `gnt cluster modify`.
pub(super) async fn modify(paths: &MasterPaths, args: ModifyArgs) -> Result<ExitCode, Failure> {
    if args.master_netmask.is_none() && args.candidate_pool_size.is_none() {
        return Err(Failure::of(&MasterIpError::NothingToModify));
    }
    let mut client = connect(paths).await?;
    let request = ModifyClusterRequest {
        master_netmask: args.master_netmask.unwrap_or(0),
        candidate_pool_size: args.candidate_pool_size.unwrap_or(0),
    };
    let mut changed = Vec::new();
    if let Some(netmask) = args.master_netmask {
        changed.push(format!("master netmask {netmask}"));
    }
    if let Some(size) = args.candidate_pool_size {
        changed.push(format!("candidate pool size {size}"));
    }
    match run_job(&mut client, Operation::ModifyCluster(request), args.job).await? {
        Waited::Done(job::Result::ClusterModified(done)) => {
            println!(
                "Cluster modified: {}; configuration serial {}.",
                changed.join(", "),
                done.config_serial
            );
            output::warnings(&done.warnings);
            Ok(ExitCode::SUCCESS)
        }
        Waited::Done(_) => Err(unexpected()),
        Waited::NotWaited(code) => Ok(code),
    }
}

fn cidr(done: &MasterIpResult) -> String {
    format!("{}/{}", done.address, done.prefix_length)
}

/// The line of a cluster IP that was `what` (activated, deactivated).
fn changed(done: &MasterIpResult, what: &str) {
    println!(
        "Cluster IP {} {what} on {} ({}).",
        cidr(done),
        done.node,
        done.netdev
    );
}

/// Asks `question` on the terminal; only `y` or `yes` is a yes. Without a terminal there is
/// no one to ask: refused, saying how to go on.
fn confirmed(question: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            kind: ErrorKind::WrongInput,
            message: "deactivate-master-ip asks for confirmation, and standard input is not a terminal; give --yes to deactivate the cluster IP without asking".to_owned(),
        });
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure {
            kind: ErrorKind::Environment,
            message: format!(
                "cannot read the answer: {e}; give --yes to deactivate without asking"
            ),
        })?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}
