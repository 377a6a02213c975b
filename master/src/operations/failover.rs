//! `gnt cluster master-failover`, run on the master candidate that is to become master
//! (Ganeti's `MasterFailover`), with no gnt-masterd running anywhere it matters:
//!
//! 1. **This node**: a member, not the master already, and a candidate (it holds a master
//!    copy: the configuration, the CA, its own master certificate).
//! 2. **The vote** (unless `--no-voting`): every online node is asked (`Version`) which
//!    master its ssconf names, at which epoch, and whether a gnt-masterd runs on it. A
//!    majority of the online nodes must answer, most of them must name the master this
//!    node believes in, and that master's gnt-masterd must not be running: a failover
//!    never takes the role from a master that still acts (stop it first, or, if it is gone
//!    for good, use `--no-voting`).
//! 3. **The newest configuration** among this node's copy and the copies of the candidates
//!    that answered (`ReadMasterCopy`): a change the old master acknowledged reached every
//!    online candidate before the job ended, so any up-to-date candidate has it.
//! 4. **The new term**: the epoch becomes one more than any epoch seen, this node the
//!    master, the serial one more; the master directory is written here (CA, this node's
//!    master certificate with its own key, the configuration last). The jobs of an older
//!    term here are set aside, never recovered.
//! 5. **Distribution** with the new epoch: every online node's ssconf (from then on they
//!    refuse the old master's calls) and every candidate's copy. Nodes that miss it are the
//!    new gnt-masterd's converger's. Then the cluster IP is removed from the old master
//!    (its daemon may have died holding it), so that the new daemon can claim it.
//!
//! Starting gnt-masterd here is the operator's (or the service manager's) step; the daemon
//! brings up the cluster IP. See `docs/design.md`, "Master failover".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gnt_core::fs_atomic::{self, FsError};
use gnt_core::netutils::Hostname;
use gnt_core::ssconf::SsconfKey;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{ReadMasterCopyRequest, VersionRequest};
use gnt_transports::join::{MasterCopy, MasterCopyStore, Membership, Mode, NodeState};
use gnt_transports::{ClientTls, Pem};

use super::converge::{NodeReport, ask_reports};
use super::rpc_call::timed;
use crate::channels::NodeChannels;
use crate::config::{ClusterConfig, ConfigStore};
use crate::error::MasterError;
use crate::master::Master;
use crate::paths::MasterPaths;

/// How long each node may take to vote.
const VOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How the failover runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailoverOptions {
    /// Skip the vote (the old master is gone for good, and most nodes may be too).
    pub no_voting: bool,
}

/// What a failover did.
#[derive(Debug, Clone)]
pub struct FailoverReport {
    /// The master before.
    pub old_master: Hostname,
    /// This node.
    pub new_master: Hostname,
    /// The new epoch.
    pub epoch: u64,
    /// The configuration serial of the new term.
    pub serial: u64,
    /// How the vote went, in one line (`None` with `--no-voting`).
    pub vote: Option<String>,
    /// Which copy the configuration came from, in one line.
    pub source: String,
    /// Problems that did not stop the failover.
    pub warnings: Vec<String>,
}

/// This node, as a failover sees it.
struct Local {
    membership: Membership,
    copy: MasterCopy,
    config: ClusterConfig,
    channels: NodeChannels,
    /// This node's key: its master identity's, and the new master's once it takes over.
    node_key: PathBuf,
}

/// Makes this node (state directory `state_dir`) the master (see the module docs).
pub async fn master_failover(
    state_dir: &Path,
    options: FailoverOptions,
) -> Result<FailoverReport, FailoverError> {
    let local = load_local(state_dir)?;
    let me = local.membership.node_name.clone();
    let believed = local
        .membership
        .ssconf
        .master_node()
        .map_err(MasterError::from)?;
    let reports = ask_nodes(&local).await;
    // This node's ssconf names it, but another answering node names someone else: an
    // earlier failover here was interrupted mid-distribution, or two failovers chose the
    // same epoch. Running it again (taking a newer epoch) is the way out of both.
    if believed == me
        && !reports
            .values()
            .filter_map(|r| r.as_ref().ok())
            .any(|r| r.master != me.as_str())
    {
        return Err(FailoverError::AlreadyMaster(believed));
    }
    let vote = if options.no_voting {
        None
    } else {
        Some(vote(&local.config, &me, &believed, &reports)?)
    };
    let newest_epoch_seen = reports
        .values()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.ssconf.epoch.max(r.copy.epoch))
        .chain([local.config.master_epoch])
        .max()
        .unwrap_or(local.config.master_epoch);
    let (mut config, source) = newest_config(&local, &reports).await?;
    let old_master = config.master_node.clone();
    config.master_node = me.clone();
    config.master_epoch = newest_epoch_seen + 1;
    config.serial += 1;
    config.modified_at = gnt_core::clock::unix_now();
    take_the_role(state_dir, &local, &config)?;
    tracing::warn!(old = %old_master, new = %me, epoch = config.master_epoch, serial = config.serial, "master role taken over");
    let master = Master::load_unlocked(state_dir)?;
    let mut warnings = master.redistribute(&config).await;
    // The old master's daemon may have died holding the cluster IP: take it away there,
    // so the new daemon can claim it (its claim refuses an address that answers).
    if let Err(error) = master.deactivate_master_ip(&old_master).await {
        warnings.push(format!(
            "the cluster IP could not be removed from {old_master} ({}); if it is still configured there, the new master cannot claim it: remove it there by hand",
            gnt_core::error::Chain(&error)
        ));
    }
    Ok(FailoverReport {
        old_master,
        new_master: me,
        epoch: config.master_epoch,
        serial: config.serial,
        vote,
        source,
        warnings,
    })
}

/// This node's membership, copy and configuration, and channels to call nodes as the
/// candidate it is.
fn load_local(state_dir: &Path) -> Result<Local, FailoverError> {
    let state = NodeState::open(state_dir)?;
    let Mode::Member(membership) = state.mode()? else {
        return Err(FailoverError::NotMember);
    };
    let Some(copy) = MasterCopyStore::new(state_dir).read()? else {
        // The master keeps no copy of its own: its master directory is the original.
        let believed = membership.ssconf.master_node().map_err(MasterError::from)?;
        if believed == membership.node_name {
            return Err(FailoverError::AlreadyMaster(believed));
        }
        let candidates = membership
            .ssconf
            .get(SsconfKey::MasterCandidates)
            .unwrap_or("none listed")
            .replace('\n', ", ");
        return Err(FailoverError::NotCandidate { candidates });
    };
    let config = parse_config(&membership.node_name, &copy.config_json)?;
    let node_key = state.node_key_path();
    let identity = copy.master_identity(&node_key)?;
    let ca = Pem::from_bytes("cluster CA", copy.ca_certificate_pem.as_bytes());
    let tls = ClientTls::new(&ca, Some(&identity))?;
    let channels = NodeChannels::new(tls, config.policy, config.node_port, config.master_epoch);
    Ok(Local {
        membership: *membership,
        copy,
        config,
        channels,
        node_key,
    })
}

fn parse_config(node: &Hostname, json: &str) -> Result<ClusterConfig, FailoverError> {
    serde_json::from_str(json).map_err(|source| FailoverError::BadCopy {
        node: node.clone(),
        source,
    })
}

/// Every online node's report, by name (failures included).
async fn ask_nodes(
    local: &Local,
) -> BTreeMap<Hostname, Result<NodeReport, gnt_core::runner::CallFailure>> {
    let results = ask_reports(
        &local.channels,
        &local.config,
        None,
        VersionRequest {
            master_role: true,
            ..VersionRequest::default()
        },
        VOTE_TIMEOUT,
        |_, _| {},
    )
    .await;
    results
        .into_iter()
        .filter(|r| local.config.nodes.get(&r.key).is_some_and(|n| !n.offline))
        .map(|r| (r.key, r.outcome))
        .collect()
}

/// The vote of step 2: a one-line summary, or why the failover may not go on.
fn vote(
    config: &ClusterConfig,
    me: &Hostname,
    believed: &Hostname,
    reports: &BTreeMap<Hostname, Result<NodeReport, gnt_core::runner::CallFailure>>,
) -> Result<String, FailoverError> {
    let total = reports.len();
    let answers: Vec<(&Hostname, &NodeReport)> = reports
        .iter()
        .filter_map(|(name, r)| r.as_ref().ok().map(|r| (name, r)))
        .collect();
    if 2 * answers.len() <= total {
        let silent: Vec<String> = reports
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(name, _)| name.to_string())
            .collect();
        return Err(FailoverError::NoMajority {
            answered: answers.len(),
            total,
            silent: silent.join(", "),
        });
    }
    if let Some((node, report)) = answers
        .iter()
        .find(|(_, r)| r.ssconf.epoch > config.master_epoch)
    {
        if report.master == me.as_str() {
            return Err(FailoverError::InterruptedHere {
                node: (*node).clone(),
                epoch: report.ssconf.epoch,
            });
        }
        return Err(FailoverError::NewerEpoch {
            node: (*node).clone(),
            epoch: report.ssconf.epoch,
            mine: config.master_epoch,
        });
    }
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, report) in &answers {
        *tally.entry(report.master.as_str()).or_default() += 1;
    }
    let (top, votes) = tally
        .iter()
        .max_by_key(|(_, votes)| **votes)
        .map(|(name, votes)| ((*name).to_owned(), *votes))
        .unwrap_or_default();
    if top != believed.as_str() {
        return Err(FailoverError::WrongConfiguration {
            mine: believed.clone(),
            voted: top,
        });
    }
    if answers
        .iter()
        .any(|(name, report)| *name == believed && report.master_daemon_running)
    {
        return Err(FailoverError::MasterAlive(believed.clone()));
    }
    Ok(format!(
        "{} of {total} online nodes answered; {votes} name {believed} as master, whose gnt-masterd is not running",
        answers.len()
    ))
}

/// The newest configuration among this node's copy and the copies of the candidates that
/// answered, and where it came from.
async fn newest_config(
    local: &Local,
    reports: &BTreeMap<Hostname, Result<NodeReport, gnt_core::runner::CallFailure>>,
) -> Result<(ClusterConfig, String), FailoverError> {
    let mine = local.copy.version();
    let newer = reports
        .iter()
        .filter(|(name, _)| **name != local.membership.node_name)
        .filter_map(|(name, r)| r.as_ref().ok().map(|r| (name, r.copy)))
        .filter(|(_, copy)| *copy > mine)
        .max_by_key(|(_, copy)| *copy);
    let Some((holder, version)) = newer else {
        return Ok((
            local.config.clone(),
            format!("this node's copy ({mine}), the newest among the candidates that answered"),
        ));
    };
    let node = local
        .config
        .node(holder)
        .ok_or_else(|| MasterError::UnknownNode(holder.to_string()))?;
    let channel = local
        .channels
        .get(node.name.as_str(), node.addrs.primary)
        .map_err(MasterError::from)?;
    let answer = NodeAgentClient::new(channel)
        .read_master_copy(timed(ReadMasterCopyRequest {}, VOTE_TIMEOUT))
        .await;
    match answer {
        Ok(answer) => {
            let json = String::from_utf8_lossy(&answer.get_ref().config_json).into_owned();
            let config = parse_config(holder, &json)?;
            Ok((
                config,
                format!("the copy of {holder} ({version}), newer than this node's ({mine})"),
            ))
        }
        Err(status) => {
            tracing::warn!(node = %holder, error = %status.message(), "cannot read a newer master copy; using this node's");
            Ok((
                local.config.clone(),
                format!(
                    "this node's copy ({mine}); {holder} holds a newer one ({version}) but could not be read: {}",
                    status.message()
                ),
            ))
        }
    }
}

/// Writes the master directory of the new term here: the CA, this node's master
/// certificate with its own key, the configuration last (its presence is what makes a
/// master directory); jobs of an older term are set aside.
fn take_the_role(
    state_dir: &Path,
    local: &Local,
    config: &ClusterConfig,
) -> Result<(), FailoverError> {
    let paths = MasterPaths::new(state_dir);
    fs_atomic::ensure_dir(&paths.master_dir, 0o700)?;
    let store = ConfigStore::new(&paths.master_dir);
    // A gnt-masterd running here (of an older term) would act on the old configuration.
    let _lock = store.lock()?;
    let jobs = paths.master_dir.join("jobs");
    if jobs.exists() {
        let aside = paths
            .master_dir
            .join(format!("jobs.before-epoch-{}", config.master_epoch));
        std::fs::rename(&jobs, &aside).map_err(|e| FsError::new("rename", &jobs, e))?;
    }
    let copy = &local.copy;
    let node_key =
        std::fs::read(&local.node_key).map_err(|e| FsError::new("read", &local.node_key, e))?;
    fs_atomic::write_atomic(
        &paths.pki.ca_cert,
        copy.ca_certificate_pem.as_bytes(),
        0o644,
    )?;
    fs_atomic::write_atomic(&paths.pki.ca_key, copy.ca_key_pem.as_bytes(), 0o600)?;
    fs_atomic::write_atomic(
        &paths.pki.master_cert,
        copy.master_certificate_pem.as_bytes(),
        0o644,
    )?;
    fs_atomic::write_atomic(&paths.pki.master_key, &node_key, 0o600)?;
    store.save(config)?;
    Ok(())
}

mod error;

pub use error::FailoverError;

#[cfg(test)]
mod tests;
