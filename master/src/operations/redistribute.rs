//! Redistribution: after every change, each online node gets the ssconf of the new
//! configuration, as one set with the configuration's version (Ganeti's
//! `RedistributeAncillaryFiles`, ssconf part), and each online master candidate its master
//! copy (Ganeti's config upload to candidates); and `gnt cluster redist-conf`, which does
//! the same for the current configuration on demand.
//!
//! A node that does not take the set is a warning of the change, not a failure: the change
//! is committed already. Every such failure wakes the converger (`converge`), which brings
//! the node up to date once it answers again, with no operator action.

use gnt_core::netutils::Hostname;
use gnt_core::runner::{CallFailure, NodeResult, TimeoutClass};
use gnt_core::ssconf::{Published, SsconfError};
use gnt_proto::node::v1::WriteSsconfRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;

use super::Changed;
use super::rpc_call::{failed, fan_out_on, timed};
use crate::config::ClusterConfig;
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::Master;

/// What a push of a configuration did.
struct Pushed {
    /// Each online node's ssconf.
    ssconf: Vec<NodeResult<Hostname, ()>>,
    /// Each online candidate's master copy.
    copies: Vec<NodeResult<Hostname, ()>>,
}

/// What `gnt cluster redist-conf` did.
#[derive(Debug, Clone)]
pub struct Redistribution {
    /// The configuration serial of the set sent.
    pub serial: u64,
    /// One result per node (offline nodes as [`CallFailure::Offline`], nothing sent).
    pub results: Vec<NodeResult<Hostname, ()>>,
}

impl Master {
    /// Sends `config`'s ssconf to every online node, and their master copies to the
    /// candidates; returns one warning per node that did not take its part.
    pub async fn redistribute(&self, config: &ClusterConfig) -> Vec<String> {
        match self.push(config).await {
            Ok(pushed) => {
                let ssconf = pushed.ssconf.into_iter().filter_map(|r| match r.outcome {
                    Ok(()) | Err(CallFailure::Offline) => None,
                    Err(failure) => Some(format!("ssconf not updated on {}: {failure}", r.key)),
                });
                let copies = pushed.copies.into_iter().filter_map(|r| match r.outcome {
                    Ok(()) | Err(CallFailure::Offline) => None,
                    Err(failure) => {
                        Some(format!("master copy not updated on {}: {failure}", r.key))
                    }
                });
                ssconf.chain(copies).collect()
            }
            Err(error) => vec![format!("cannot build ssconf: {error}")],
        }
    }

    /// The end of every change, once `committed`: its redistribution, reported to
    /// `progress`, and the change with `warnings` and one more per node that missed it.
    pub(crate) async fn distribute_change(
        &self,
        committed: &ClusterConfig,
        mut warnings: Vec<String>,
        progress: &dyn Progress,
    ) -> Changed {
        let missed = self.redistribute(committed).await;
        progress.step_after_commit(Step::Distributed {
            missed: missed.len(),
        });
        warnings.extend(missed);
        Changed {
            serial: committed.serial,
            warnings,
        }
    }

    /// `gnt cluster redist-conf`: the current configuration's ssconf to every online node,
    /// and master copies to the candidates, now, with a result per node (a candidate's is
    /// the first of its two that failed). It changes nothing in the configuration, so there
    /// is nothing to record before it and nothing to undo: an interrupted one is run again.
    pub async fn redistribute_config(
        &self,
        progress: &dyn Progress,
    ) -> Result<Redistribution, MasterError> {
        let config = self.config.snapshot().await;
        let Pushed {
            ssconf: mut results,
            copies,
        } = self.push(&config).await?;
        for copy in copies {
            if let Err(failure) = copy.outcome
                && let Some(result) = results.iter_mut().find(|r| r.key == copy.key)
                && result.outcome.is_ok()
            {
                result.outcome = Err(failure);
            }
        }
        let missed = results.iter().filter(|r| missed(r)).count();
        progress.step_after_commit(Step::Distributed { missed });
        tracing::info!(
            serial = config.serial,
            missed,
            "ssconf redistributed on request"
        );
        Ok(Redistribution {
            serial: config.serial,
            results,
        })
    }

    /// Sends `config`'s ssconf to every online node and the master copies to the online
    /// candidates, at once; a node that does not take its part wakes the converger.
    async fn push(&self, config: &ClusterConfig) -> Result<Pushed, MasterError> {
        let (ssconf, copies) = tokio::join!(
            self.write_ssconf(config, None),
            self.write_copies(config, None)
        );
        let pushed = Pushed {
            ssconf: ssconf?,
            copies: copies?,
        };
        if pushed.ssconf.iter().chain(&pushed.copies).any(missed) {
            self.converger.wake();
        }
        Ok(pushed)
    }

    /// Sends `config`'s ssconf, with its serial, to the online nodes among `names` (all
    /// when `None`); one result per node. Wakes no one: the converger calls it too.
    pub(crate) async fn write_ssconf(
        &self,
        config: &ClusterConfig,
        names: Option<&[Hostname]>,
    ) -> Result<Vec<NodeResult<Hostname, ()>>, SsconfError> {
        let request = WriteSsconfRequest::from(&Published::new(config.ssconf()?, config.version()));
        Ok(fan_out_on(
            &self.channels,
            config,
            names,
            TimeoutClass::Fast,
            |channel, timeout| {
                let request = timed(request.clone(), timeout);
                async move {
                    NodeAgentClient::new(channel)
                        .write_ssconf(request)
                        .await
                        .map(drop)
                        .map_err(failed(timeout))
                }
            },
            |_| {},
        )
        .await)
    }
}

/// Whether an online node did not take the set (an offline one was not sent it).
fn missed(result: &NodeResult<Hostname, ()>) -> bool {
    matches!(&result.outcome, Err(failure) if *failure != CallFailure::Offline)
}
