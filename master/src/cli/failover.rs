//! `gnt cluster master-failover` and `gnt cluster getmaster`, which work without a master
//! daemon on this host, and the hint that names the master when `gnt` runs on another node.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use gnt_core::error::ErrorKind;
use gnt_core::netutils::Hostname;
use gnt_transports::join::NodeState;
use gnt_transports::{PeerIdentity, Pem};

use super::Failure;
use crate::operations::failover::{FailoverOptions, master_failover};
use crate::paths::MasterPaths;

/// Ganeti's warning before a failover without voting.
const NO_VOTING_WARNING: &str = "This will perform the failover even if most other nodes are down, or if this node is outdated. This is dangerous as it can lead to a non-consistent cluster. Check the gnt-cluster(8) man page before proceeding.";

/// `gnt cluster master-failover [--no-voting [--yes-do-it]]`.
pub(super) async fn run(
    paths: &MasterPaths,
    no_voting: bool,
    yes_do_it: bool,
) -> Result<ExitCode, Failure> {
    if no_voting && !yes_do_it && !confirmed()? {
        return Ok(ExitCode::from(1));
    }
    let report = master_failover(&paths.state_dir, FailoverOptions { no_voting })
        .await
        .map_err(|e| Failure::of(&e))?;
    match &report.vote {
        Some(vote) => println!("Voting:        {vote}"),
        None => println!("Voting:        skipped (--no-voting)"),
    }
    println!("Configuration: {}", report.source);
    println!(
        "Master role moved from {} to {}: master epoch {}, configuration serial {}.",
        report.old_master, report.new_master, report.epoch, report.serial
    );
    for warning in &report.warnings {
        println!("Warning:       {warning}");
    }
    println!(
        "Nodes that took the new ssconf refuse the old master's calls from now on. Start the master daemon on this node: `systemctl start gnt-masterd` (or `gnt-masterd --state-dir {}`); it brings up the cluster IP and brings the nodes that missed the change up to date.",
        paths.state_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; refuses (with the flag to give) when there is none.
fn confirmed() -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            kind: ErrorKind::WrongInput,
            message: format!("{NO_VOTING_WARNING} Not on a terminal: add --yes-do-it to go on."),
        });
    }
    print!("{NO_VOTING_WARNING}\nAre you sure you want to proceed? y/[n]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "yes"))
}

/// `gnt cluster getmaster`: the master this node's ssconf names (no call at all, as in
/// Ganeti).
pub(super) fn getmaster(state_dir: &Path) -> Result<ExitCode, Failure> {
    let master = master_named(state_dir).ok_or_else(|| Failure {
        kind: ErrorKind::WrongState,
        message: format!(
            "this host's ssconf names no master ({}): it is not a member of a cluster",
            state_dir.display()
        ),
    })?;
    println!("{master}");
    Ok(ExitCode::SUCCESS)
}

/// The master this node's ssconf names.
fn master_named(state_dir: &Path) -> Option<Hostname> {
    gnt_core::ssconf::SsconfStore::new(state_dir)
        .read()
        .ok()?
        .master_node()
        .ok()
}

/// When this host is a member but not the master: which node is (for the message of a
/// command that needs the master daemon). Read-only, from the ssconf and the node
/// certificate (both public), not from the node's whole state: that needs the key, which
/// only root may read, would create the state directory and could finish an interrupted
/// certificate installation; a hint must do none of that.
pub(super) fn elsewhere(state_dir: &Path) -> Option<String> {
    let (this, master) = not_the_master(state_dir)?;
    Some(format!(
        "; this node ({this}) is not the master: the master is {master} (ssconf), run gnt there"
    ))
}

/// This node and the master, when this host is a member but not the master (read as
/// [`elsewhere`] reads them).
pub(super) fn not_the_master(state_dir: &Path) -> Option<(Hostname, Hostname)> {
    let master = master_named(state_dir)?;
    let this = certified_name(state_dir)?;
    (master != this).then_some((this, master))
}

/// This node's name, from its certificate.
fn certified_name(state_dir: &Path) -> Option<Hostname> {
    let pem = Pem::read(
        "node certificate",
        &NodeState::node_certificate_path(state_dir),
    )
    .ok()?;
    let leaf = pem
        .certificates("node certificate")
        .ok()?
        .into_iter()
        .next()?;
    let name = PeerIdentity::from_certificate(&leaf)?.common_name?;
    Hostname::parse(&name).ok()
}
