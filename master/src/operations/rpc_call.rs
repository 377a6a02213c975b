//! Calling node procedures on many nodes at once: the runner's semantics (offline nodes
//! skipped, one timeout class, bounded concurrency) over the master's channels, for the
//! other operations and for `gnt rpc call`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gnt_core::netutils::Hostname;
use gnt_core::runner::{CallFailure, FanOut, NodeResult, Target, TimeoutClass, fan_out};
use gnt_transports::call_failure;
use tokio::sync::mpsc;

use crate::channels::{NodeChannel, NodeChannels};
use crate::config::ClusterConfig;
use crate::error::MasterError;
use crate::master::Master;
use crate::procedure::PreparedCall;

/// `message` as a request that must be answered within `timeout`.
pub fn timed<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// The failure of a call that ended with `status`, as the runner reports failures.
pub fn failed(timeout: Duration) -> impl Fn(tonic::Status) -> CallFailure {
    move |status| call_failure(&status, timeout)
}

/// Calls `call` on `names` of `config` (all nodes when `None`) through `channels`; each
/// result goes to `on_result` as it arrives, and all of them are returned.
pub async fn fan_out_on<T, F, Fut>(
    channels: &NodeChannels,
    config: &ClusterConfig,
    names: Option<&[Hostname]>,
    class: TimeoutClass,
    call: F,
    on_result: impl FnMut(&NodeResult<Hostname, T>),
) -> Vec<NodeResult<Hostname, T>>
where
    F: Fn(NodeChannel, Duration) -> Fut,
    Fut: Future<Output = Result<T, CallFailure>>,
{
    fan_out_named(
        channels,
        config,
        names,
        class,
        |_, channel, timeout| call(channel, timeout),
        on_result,
    )
    .await
}

/// [`fan_out_on`] for calls that differ per node: `call` gets the node's name too.
pub async fn fan_out_named<T, F, Fut>(
    channels: &NodeChannels,
    config: &ClusterConfig,
    names: Option<&[Hostname]>,
    class: TimeoutClass,
    call: F,
    on_result: impl FnMut(&NodeResult<Hostname, T>),
) -> Vec<NodeResult<Hostname, T>>
where
    F: Fn(&Hostname, NodeChannel, Duration) -> Fut,
    Fut: Future<Output = Result<T, CallFailure>>,
{
    let targets: Vec<Target<Hostname>> = config
        .nodes
        .iter()
        .filter(|(name, _)| names.is_none_or(|names| names.contains(name)))
        .map(|(name, node)| Target {
            key: name.clone(),
            offline: node.offline,
        })
        .collect();
    let options = FanOut {
        class,
        ..FanOut::default()
    };
    fan_out(
        targets,
        options,
        |name: Hostname, timeout| {
            let channel = config
                .nodes
                .get(&name)
                .ok_or_else(|| {
                    CallFailure::Unreachable(format!("{name} is not in the configuration"))
                })
                .and_then(|node| {
                    channels
                        .get(name.as_str(), node.primary_ip)
                        .map_err(|e| CallFailure::TlsRejected(e.to_string()))
                });
            let call = channel.map(|channel| call(&name, channel, timeout));
            async move {
                match call {
                    Ok(call) => call.await,
                    Err(failure) => Err(failure),
                }
            }
        },
        on_result,
    )
    .await
}

impl Master {
    /// `gnt rpc call`: `call` on the nodes named (every node when empty), each result (the
    /// answer as JSON) sent on the returned channel as it arrives. The calls go on if the
    /// receiver goes away.
    pub async fn call_nodes(
        self: &Arc<Self>,
        call: PreparedCall,
        names: &[String],
        class: TimeoutClass,
    ) -> Result<mpsc::UnboundedReceiver<NodeResult<Hostname, String>>, MasterError> {
        let names = if names.is_empty() {
            None
        } else {
            let mut known = Vec::with_capacity(names.len());
            for name in names {
                known.push(self.node(name).await?.name);
            }
            Some(known)
        };
        let config = self.config.snapshot().await;
        // Unbounded, but never larger than one small result per node: the runner's callback
        // cannot wait for a slow client, and no result may be dropped.
        let (tx, rx) = mpsc::unbounded_channel();
        let master = self.clone();
        tokio::spawn(async move {
            fan_out_on(
                &master.channels,
                &config,
                names.as_deref(),
                class,
                |channel, timeout| {
                    let call = call.clone();
                    async move { call.call(channel, timeout).await.map_err(failed(timeout)) }
                },
                |result| {
                    // The client may have gone; the remaining results then go nowhere.
                    let _ = tx.send(result.clone());
                },
            )
            .await;
        });
        Ok(rx)
    }
}
