//! Recovery: at start, the master takes every job a previous master left unfinished to an
//! end, by the last step its record shows. The rule: what had reached a node is rolled
//! forward (the record says so, or the node does), what had not is rolled back (nothing to
//! undo: the job fails, saying so). Each rule, and why, is in `docs/design.md` ("Jobs").
//!
//! | job | last step recorded | recovery |
//! |---|---|---|
//! | add | none, `checked` | failed: nothing reached the node |
//! | add | `joining`, `joined`, `version-checked` | in the configuration already (killed between its write and the record): as `committed`; else ask the node: a member is committed; a node that is not one (said twice, a pause apart) failed; an unreachable one is committed if `joined` was recorded, else failed (a later add takes it in) |
//! | add | `committed` and on | ssconf redistributed: succeeded |
//! | re-add | none, `checked` | failed: nothing reached the node |
//! | re-add | `joining` to `version-checked` | ask the node: a member is committed again (the commit is idempotent), as an ordinary node; else failed |
//! | remove | none | failed: nothing done |
//! | remove | `leaving`, `left` | out of the configuration already (killed between its write and the record): as `committed`; else told to leave again if still a member, removed from the configuration |
//! | remove | `committed` and on | ssconf redistributed: succeeded |
//! | modify | none | failed: nothing done (a change of secondary address may have staged the node's new certificate: verify names it, and running the change again finishes it) |
//! | modify | `committed` and on | ssconf redistributed: succeeded |
//! | redistribute | any | sent again: succeeded (it changes nothing, so nothing is undone) |
//! | modify cluster | none | failed: nothing done |
//! | modify cluster | `committed` and on | ssconf redistributed, the netmask made live on the master again (the node changes only what differs): succeeded |
//! | renew crypto | none (no renewal in the configuration) | failed: nothing done (keys it staged are deleted) |
//! | renew crypto | `committed` and on, no renewal in the configuration | succeeded: it finished (the converger may have finished it) |
//! | destroy | any, the master's node still a member | failed: nothing removed (the cluster IP comes back at start) |
//! | destroy | any, the master's node left (this host's ssconf is empty) | succeeded: gnt-masterd stops and removes the master directory |
//! | renew crypto | a renewal in the configuration | the master directory settled, the renewal goes on: every pending node that answers is renewed (finished meanwhile by the converger: succeeded) |
//!
//! A commit whose step could not be recorded (the disk filled just then) shows in the
//! configuration, and counts as recorded. A queued remove or modify needs nothing the record
//! lacks and is simply run; a queued add cannot be (its token's secret was never written
//! down) and fails.

use std::time::Duration;

use gnt_core::error::{Chain, ErrorKind};
use gnt_core::netutils::parse_name;
use gnt_core::node::{Node, NodeAddrs};

use super::record::{JobFailure, JobOp, JobOutcome, JobRecord};
use super::{Progress, Step, wire};
use crate::error::MasterError;
use crate::master::Master;
use crate::operations::node_readd::Previous;
use crate::operations::probe::Membership;

/// How often, and after which pauses, an unreachable node is asked again.
const PROBE_PAUSES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(6),
];

/// How a job was taken to its end.
#[derive(Debug)]
pub struct Recovered {
    /// The job's result.
    pub result: Result<(JobOutcome, Vec<String>), JobFailure>,
    /// What recovery found and did, in one line.
    pub note: String,
}

impl Recovered {
    fn failed(note: impl Into<String>) -> Self {
        let note = note.into();
        Self {
            result: Err(JobFailure {
                kind: ErrorKind::Unavailable.code().to_owned(),
                message: format!("the master daemon stopped during the job: {note}"),
            }),
            note,
        }
    }

    fn error(error: &MasterError, note: impl Into<String>) -> Self {
        Self {
            result: Err(JobFailure::of(error)),
            note: format!("{}: {}", note.into(), Chain(error)),
        }
    }

    fn done(outcome: (JobOutcome, Vec<String>), note: impl Into<String>) -> Self {
        Self {
            result: Ok(outcome),
            note: note.into(),
        }
    }
}

/// Takes `record`, which a previous master left unfinished, to an end.
pub async fn recover(master: &Master, record: &JobRecord, progress: &dyn Progress) -> Recovered {
    match &record.op {
        JobOp::AddNode {
            name,
            token_id,
            readd: true,
            ..
        } => recover_readd(master, record, name, token_id, progress).await,
        JobOp::AddNode { name, token_id, .. } => {
            recover_add(master, record, name, token_id, progress).await
        }
        JobOp::RemoveNode { name } => recover_remove(master, record, name, progress).await,
        JobOp::ModifyNode { name, flags } => {
            let view = match master.node(name).await {
                Ok(view) => view,
                Err(error) => return Recovered::error(&error, "the node is gone"),
            };
            // A commit whose step could not be recorded shows in the configuration.
            if !record.took("committed") && !flags.applied_to(&view) {
                let staged = view
                    .node
                    .readdress
                    .as_ref()
                    .is_some_and(|r| !r.certificate_sha256.is_empty());
                return Recovered::failed(if staged {
                    "its secondary ip is unchanged, the node's new certificate staged; run it again to finish it"
                } else {
                    "it had changed nothing; run it again"
                });
            }
            let (serial, missed) = redistribute(master, progress).await;
            let outcome = JobOutcome::Modified { node: view, serial };
            Recovered::done(
                (outcome, missed),
                "committed before the stop: ssconf redistributed",
            )
        }
        JobOp::ModifyCluster { change } => {
            let config = master.config.snapshot().await;
            // A commit whose step could not be recorded shows in the configuration.
            if !record.took("committed") && !change.applied_to(&config) {
                return Recovered::failed("it had changed nothing; run it again");
            }
            let (serial, mut warnings) = redistribute(master, progress).await;
            if change.master_netmask.is_some() {
                let config = master.config.snapshot().await;
                warnings.extend(master.apply_master_netmask(&config, progress).await);
            }
            Recovered::done(
                (JobOutcome::ClusterModified { serial }, warnings),
                "committed before the stop: ssconf redistributed, the netmask made live again",
            )
        }
        JobOp::DestroyCluster => match master.recover_destroy().await {
            Ok(done) => Recovered::done(
                (JobOutcome::Destroyed(done), Vec::new()),
                "the master's node had left: the master directory is removed",
            ),
            Err(note) => Recovered::failed(note),
        },
        JobOp::RenewCrypto { .. } => {
            let config = master.config.snapshot().await;
            if config.rollover.is_none() {
                // Committed and no renewal left: it finished, here before the stop or by
                // the converger since the start (which runs beside this recovery).
                if record.took("renewed") || record.took("committed") {
                    return renewal_finished(config.serial, "it had finished");
                }
                return match master.discard_staged_renewal() {
                    Ok(()) => Recovered::failed("it had changed nothing; run it again"),
                    Err(error) => Recovered::error(&error, "it had changed nothing"),
                };
            }
            let parts = crate::operations::renew_crypto::CryptoParts::default();
            match master.renew_crypto(parts, progress).await {
                Ok(renewal) => Recovered::done(
                    wire::crypto_renewed(renewal),
                    "interrupted: the renewal went on",
                ),
                // The converger, which starts with the daemon too, went on with the renewal
                // and finished it between the look above and this call: the renewal this
                // job committed is done. Failing the job said otherwise, and invited a
                // second renewal.
                Err(MasterError::NothingToRenew) => renewal_finished(
                    master.config.snapshot().await.serial,
                    "interrupted: gnt-masterd's converger finished the renewal",
                ),
                Err(error) => Recovered::error(&error, "interrupted, and cannot go on"),
            }
        }
        JobOp::Redistribute => match master.redistribute_config(progress).await {
            Ok(done) => Recovered::done(
                (wire::redistributed(&done), Vec::new()),
                "interrupted: the configuration's ssconf sent again",
            ),
            Err(error) => Recovered::error(&error, "interrupted, and cannot be sent again"),
        },
    }
}

/// A renewal job whose renewal is over, at configuration serial `serial`.
fn renewal_finished(serial: u64, note: &str) -> Recovered {
    let outcome = JobOutcome::CryptoRenewed {
        serial,
        renewed: Vec::new(),
        pending: Vec::new(),
        finished: true,
    };
    Recovered::done((outcome, Vec::new()), note)
}

async fn recover_add(
    master: &Master,
    record: &JobRecord,
    name: &str,
    token_id: &str,
    progress: &dyn Progress,
) -> Recovered {
    // A master killed between writing the configuration and recording the commit leaves
    // the node in it: this job put it there (its checks refused a node listed already, and
    // jobs run one at a time), so the commit is done. Committing again failed ("already
    // in the configuration") and left the other nodes' ssconf without the node.
    let listed = record.took("joining") && master.node(name).await.is_ok();
    if record.took("committed") || listed {
        let note = if record.took("committed") {
            "committed before the stop: ssconf redistributed"
        } else {
            "committed before the stop, not yet recorded: ssconf redistributed"
        };
        return match master.node(name).await {
            Ok(node) => {
                let (serial, missed) = redistribute(master, progress).await;
                let outcome = JobOutcome::Added { node, serial };
                Recovered::done((outcome, missed), note)
            }
            Err(error) => Recovered::error(&error, "committed, but the node is gone"),
        };
    }
    let Some(Step::Checked { primary, secondary }) = record.step("checked").cloned() else {
        return Recovered::failed("nothing had reached the node; run `gnt node add` again");
    };
    if !record.took("joining") {
        return Recovered::failed("nothing had reached the node; run `gnt node add` again");
    }
    let node = match parse_name("node name", name) {
        Ok(name) => Node {
            name,
            addrs: NodeAddrs { primary, secondary },
        },
        Err(error) => return Recovered::error(&error.into(), "the recorded name is invalid"),
    };
    let recorded = match record.step("joined") {
        Some(Step::Joined { certificate_sha256 }) => Some(certificate_sha256.clone()),
        _ => None,
    };
    let certificate_sha256 = match ask_patiently(master, &node).await {
        Ok(Membership::Member {
            certificate_sha256, ..
        }) => certificate_sha256,
        Ok(Membership::NotMember(why)) => {
            return Recovered::failed(format!(
                "the Join had not reached {} ({why}): nothing to undo; run `gnt node add` again (with a new token if the node says this one is used)",
                node.name
            ));
        }
        Ok(Membership::Unreachable(why)) => match &recorded {
            Some(certificate_sha256) => {
                tracing::warn!(node = %node.name, %why, "unreachable, but its Join was recorded: committing it");
                certificate_sha256.clone()
            }
            None => {
                return Recovered::failed(format!(
                    "{} did not answer ({why}), so whether the Join reached it is unknown; once it answers, run `gnt node add` again: a node that joined is taken in",
                    node.name
                ));
            }
        },
        Err(error) => return Recovered::error(&error, "cannot ask the node"),
    };
    if recorded.is_none()
        && let Err(error) = progress.step(Step::Joined {
            certificate_sha256: certificate_sha256.clone(),
        })
    {
        return Recovered::error(&error, "cannot record the job");
    }
    let committed = match master
        .commit_added(&node, token_id, certificate_sha256, None)
        .await
    {
        Ok((view, committed)) => {
            if let Err(error) = progress.step(Step::Committed {
                serial: committed.serial,
            }) {
                return Recovered::error(&error, "committed, but cannot record the job");
            }
            view
        }
        Err(error) => {
            return Recovered::error(&error, "the node had joined but cannot be committed");
        }
    };
    let (serial, missed) = redistribute(master, progress).await;
    let outcome = JobOutcome::Added {
        node: committed,
        serial,
    };
    Recovered::done(
        (outcome, missed),
        "the master stopped after the Join; the node had joined: committed it",
    )
}

/// A re-add: the record is updated in place, so whether the commit is done cannot be told
/// from the configuration; it is made again (it is idempotent) if the node answers as a
/// member with a certificate a re-add takes ([`Previous::takes`]). Candidacy is not decided again: the node
/// comes back an ordinary node, which `gnt node modify -C yes` changes.
async fn recover_readd(
    master: &Master,
    record: &JobRecord,
    name: &str,
    token_id: &str,
    progress: &dyn Progress,
) -> Recovered {
    let again = "run `gnt node add --readd` again";
    let committed = record.took("committed");
    let checked = match record.step("checked") {
        Some(Step::Checked { primary, secondary }) if record.took("joining") || committed => {
            NodeAddrs {
                primary: *primary,
                secondary: *secondary,
            }
        }
        _ => return Recovered::failed(format!("nothing had reached the node; {again}")),
    };
    let before = match master.node(name).await {
        Ok(view) => view,
        Err(error) => return Recovered::error(&error, "the node is gone"),
    };
    let node = Node {
        name: before.name.clone(),
        addrs: checked,
    };
    let mut warnings = Vec::new();
    let view = if committed {
        before
    } else {
        let token_id = Some(token_id).filter(|id| !id.is_empty());
        let (certificate_sha256, joined) = match ask_patiently(master, &node).await {
            Ok(Membership::Member {
                certificate_sha256,
                certificate,
                ..
            }) => {
                let previous = Previous::of(&before.node);
                match previous.takes(&node, certificate_sha256, &certificate, token_id.is_some()) {
                    Ok(taken) => taken,
                    Err(refused) => return Recovered::error(&refused, "not committed"),
                }
            }
            Ok(Membership::NotMember(why) | Membership::Unreachable(why)) => {
                return Recovered::failed(format!(
                    "{} does not answer as a member ({why}); {again} (with a new token if it says this one is used)",
                    node.name
                ));
            }
            Err(error) => return Recovered::error(&error, "cannot ask the node"),
        };
        let _renewal = master.renewal.lock().await;
        match master
            .commit_readded(&node, token_id, certificate_sha256, joined, None)
            .await
        {
            Ok((view, config)) => {
                if let Err(error) = progress.step(Step::Committed {
                    serial: config.serial,
                }) {
                    return Recovered::error(&error, "committed, but cannot record the job");
                }
                warnings.extend(master.drop_copy(&config, &node.name).await);
                view
            }
            Err(error) => return Recovered::error(&error, "the node cannot be committed"),
        }
    };
    let (serial, missed) = redistribute(master, progress).await;
    warnings.extend(missed);
    let note = if committed {
        "committed before the stop: ssconf redistributed"
    } else {
        "the master stopped during the re-add; the node answers as a member: committed it"
    };
    Recovered::done((JobOutcome::Added { node: view, serial }, warnings), note)
}

async fn recover_remove(
    master: &Master,
    record: &JobRecord,
    name: &str,
    progress: &dyn Progress,
) -> Recovered {
    if !record.took("leaving") {
        return Recovered::failed("nothing had been done; run `gnt node remove` again");
    }
    let mut left = matches!(record.step("left"), Some(Step::Left { left: true }));
    // A master killed between writing the configuration and recording the commit leaves
    // the node out of it: this job took it out (it began with the node listed, and jobs
    // run one at a time), so only the redistribution is missing. Failing here left the
    // other nodes' ssconf listing the removed node.
    let listed = match master.node(name).await {
        Ok(view) => Some(view),
        Err(MasterError::UnknownNode(_) | MasterError::UnknownNodeSuggest { .. }) => None,
        Err(error) => return Recovered::error(&error, "cannot read the configuration"),
    };
    if !record.took("committed")
        && let Some(view) = listed
    {
        if !left && !view.node.offline {
            match ask_patiently(master, &view.node()).await {
                Ok(Membership::Member { .. }) => {
                    left = matches!(master.tell_to_leave(&view).await, Ok(Ok(())));
                }
                Ok(Membership::NotMember(_)) => left = true,
                Ok(Membership::Unreachable(_)) | Err(_) => {}
            }
        }
        if let Err(error) = progress.step(Step::Left { left }) {
            return Recovered::error(&error, "cannot record the job");
        }
        match master.commit_removed(&view.name).await {
            Ok(committed) => {
                if let Err(error) = progress.step(Step::Committed {
                    serial: committed.serial,
                }) {
                    return Recovered::error(&error, "removed, but cannot record the job");
                }
            }
            Err(error) => return Recovered::error(&error, "cannot remove the node"),
        }
    }
    let (serial, mut warnings) = redistribute(master, progress).await;
    if !left {
        warnings.push(format!(
            "{name} was not told to leave; on it, stop gnt-noded and empty its state directory (all but join-ledger)"
        ));
    }
    Recovered::done(
        (JobOutcome::Removed { serial, left }, warnings),
        "the master stopped while removing the node: finished the removal",
    )
}

/// Asks `node` whether it is a member: again after pauses while it does not answer, and
/// once more after a pause when it says it is not one. A node still committing the Join it
/// got just before the stop answers from its bootstrap listener for that moment; taken at
/// its word, its add failed and it became a member outside the configuration.
async fn ask_patiently(master: &Master, node: &Node) -> Result<Membership, MasterError> {
    let mut answer = master.probe_membership(node).await?;
    let mut denied_before = false;
    for pause in PROBE_PAUSES {
        match answer {
            Membership::Member { .. } => break,
            Membership::NotMember(_) if denied_before => break,
            Membership::NotMember(_) => denied_before = true,
            Membership::Unreachable(_) => {}
        }
        tokio::time::sleep(pause).await;
        answer = master.probe_membership(node).await?;
    }
    Ok(answer)
}

/// Sends the current ssconf to every online node; records the step; returns the serial
/// and one warning per node that missed it.
async fn redistribute(master: &Master, progress: &dyn Progress) -> (u64, Vec<String>) {
    let config = master.config.snapshot().await;
    let missed = master.redistribute(&config).await;
    if let Err(error) = progress.step(Step::Distributed {
        missed: missed.len(),
    }) {
        tracing::warn!(error = %Chain(&error), "cannot record the redistribution");
    }
    (config.serial, missed)
}
