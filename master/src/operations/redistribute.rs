//! Redistribution: after every change, each online node gets the ssconf of the new
//! configuration, as one set (Ganeti's `RedistributeAncillaryFiles`, ssconf part). A node
//! that does not take it is a warning of the change, not a failure: the change is
//! committed already, and the node catches up with the next one.

use gnt_core::runner::{CallFailure, TimeoutClass};
use gnt_proto::cluster::v1::SsconfSet as WireSsconfSet;
use gnt_proto::node::v1::WriteSsconfRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;

use super::rpc_call::{failed, fan_out_on, timed};
use crate::config::ClusterConfig;
use crate::master::Master;

impl Master {
    /// Sends `config`'s ssconf to every online node; returns one warning per node that did
    /// not take it.
    pub async fn redistribute(&self, config: &ClusterConfig) -> Vec<String> {
        let ssconf = match config.ssconf() {
            Ok(set) => WireSsconfSet::from(&set),
            Err(error) => return vec![format!("cannot build ssconf: {error}")],
        };
        let results = fan_out_on(
            &self.channels,
            config,
            None,
            TimeoutClass::Fast,
            |channel, timeout| {
                let request = timed(
                    WriteSsconfRequest {
                        ssconf: Some(ssconf.clone()),
                    },
                    timeout,
                );
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
        .await;
        results
            .into_iter()
            .filter_map(|r| match r.outcome {
                Ok(()) | Err(CallFailure::Offline) => None,
                Err(failure) => Some(format!("ssconf not updated on {}: {failure}", r.key)),
            })
            .collect()
    }
}
