//! What the master does to the cluster: join tokens, node add (with every check of Ganeti's
//! LUNodeAdd), remove, modify, ssconf redistribution, fan-out calls and verify.
//!
//! Every change holds the configuration for its whole duration, network checks and Join
//! included, so two operator commands never interleave; a change is committed only after
//! everything it depends on succeeded, so a failure leaves the configuration as it was.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use gnt_core::join::JoinToken;
use gnt_core::netutils::{Hostname, PingOptions, Resolver, parse_ip, tcp_ping};
use gnt_core::policy::IpPolicy;
use gnt_core::runner::{CallFailure, FanOut, NodeResult, Target, TimeoutClass, fan_out};
use gnt_core::ssconf::SsconfSet;
use gnt_node_agent::join_client::{JoinPlan, join};
use gnt_proto::bootstrap::v1::JoinRequest;
use gnt_proto::cluster::v1::{NodeAddresses, PrimaryIpVersion, SsconfSet as WireSsconf};
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{
    LeaveClusterRequest, Network, NetworkTestRequest, VersionRequest, WriteSsconfRequest,
};
use gnt_transports::{Connector, DialOptions, call_failure};
use tonic::transport::Channel;

use crate::channels::NodeChannels;
use crate::config::{ClusterConfig, ConfigHandle, NodeConfig, TokenRecord, unix_now};
use crate::error::{MasterError, TokenProblem};
use crate::pki::ClusterCa;

/// How long a node may take to answer over mutual TLS after its Join (Ganeti's
/// `_WaitForNodeDaemon`: 10 s, polled every second).
const VERSION_PATIENCE: Duration = Duration::from_secs(10);
/// Ganeti's TCP ping timeout for node add.
const ADD_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of each ping of `cluster verify`.
const VERIFY_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The master: configuration, CA, channels, resolver.
#[derive(Debug)]
pub struct Master {
    /// The configuration.
    pub config: ConfigHandle,
    /// The cluster CA.
    pub ca: ClusterCa,
    /// The per-node channels.
    pub channels: NodeChannels,
    /// Name resolution (the master host's `/etc/hosts` and DNS).
    pub resolver: Arc<Resolver>,
}

/// A node as the API shows it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// Its record.
    pub node: NodeConfig,
    /// Whether it is the master.
    pub master: bool,
}

/// The result of a change: the new serial, and problems that did not undo it.
#[derive(Debug, Clone)]
pub struct Changed {
    /// Configuration serial after the change.
    pub serial: u64,
    /// Problems after the commit.
    pub warnings: Vec<String>,
}

/// One failed check of `cluster verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The node that ran the test, or that did not answer.
    pub node: String,
    /// The node it could not reach, if the problem is a ping.
    pub target: Option<String>,
    /// The network of that ping.
    pub network: Option<Network>,
    /// What failed.
    pub message: String,
}

/// What `cluster verify` found.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Nodes that ran the network test.
    pub nodes_checked: usize,
    /// Every failed check.
    pub problems: Vec<Problem>,
}

fn wire(name: &str, node: &NodeConfig) -> NodeAddresses {
    NodeAddresses {
        name: name.to_owned(),
        primary_ip: node.primary_ip.to_string(),
        secondary_ip: node.secondary_ip.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// UTC text of a Unix time.
pub fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

impl Master {
    /// A node's view, or `UnknownNode`.
    pub async fn node(&self, name: &str) -> Result<NodeView, MasterError> {
        let config = self.config.snapshot().await;
        let name = Hostname::parse(name)
            .map(|h| h.to_string())
            .unwrap_or_else(|_| name.to_owned());
        let node = config
            .nodes
            .get(&name)
            .cloned()
            .ok_or(MasterError::UnknownNode(name.clone()))?;
        Ok(NodeView {
            master: name == config.master_node,
            name,
            node,
        })
    }

    /// Issues a single-use join token valid for `ttl`.
    pub async fn create_token(&self, ttl: Duration) -> Result<(JoinToken, i64), MasterError> {
        if !(Duration::from_secs(60)..=Duration::from_secs(30 * 86400)).contains(&ttl) {
            return Err(MasterError::InvalidArgument {
                what: "token lifetime",
                reason: format!("{}s: use 1 minute to 30 days", ttl.as_secs()),
            });
        }
        let token = JoinToken::generate().map_err(TokenProblem::from)?;
        let expires_at = unix_now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let record = TokenRecord {
            id: token.id().to_owned(),
            sha256: hex(&token.hash()),
            expires_at,
            used_by: None,
        };
        self.config
            .update(|c| {
                c.join_tokens.push(record);
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(token = %token, expires = %utc(expires_at), "join token created");
        Ok((token, expires_at))
    }

    /// Adds node `name` (see the module docs).
    pub async fn add_node(
        &self,
        name: &str,
        secondary: Option<&str>,
        token: &str,
    ) -> Result<(NodeView, Changed), MasterError> {
        let token: JoinToken = token.parse().map_err(TokenProblem::from)?;
        let mut guard = self.config.lock().await;
        let config = guard.config().clone();
        let policy = config.policy();
        let name = Hostname::parse(name).map_err(|e| MasterError::InvalidName {
            what: "node name",
            name: name.to_owned(),
            reason: e.reason.to_owned(),
        })?;
        if config.nodes.contains_key(name.as_str()) {
            return Err(MasterError::NodeExists(name.to_string()));
        }
        check_token(&config, &token)?;

        // Addresses: the primary from resolution in the cluster family, the secondary given.
        let primary = self
            .resolver
            .resolve(name.as_str(), Some(policy.primary_family()))
            .await
            .map_err(|source| MasterError::Resolve {
                name: name.to_string(),
                source,
            })?
            .first();
        let secondary = match (secondary, policy) {
            (None, IpPolicy::HybridIpv6) => return Err(MasterError::SecondaryRequired),
            (None, IpPolicy::Ipv4) => primary,
            (Some(text), _) => match parse_ip(text) {
                Ok(ip @ IpAddr::V4(_)) => ip,
                _ => return Err(MasterError::SecondaryNotIpv4(text.to_owned())),
            },
        };
        for (other, node) in &config.nodes {
            for address in [primary, secondary] {
                if address == node.primary_ip || address == node.secondary_ip {
                    return Err(MasterError::AddressConflict {
                        node: other.clone(),
                        address,
                    });
                }
            }
        }
        let master = config
            .master()
            .ok_or(MasterError::UnknownNode(config.master_node.clone()))?;
        let master_single = master.secondary_ip == master.primary_ip;
        let new_single = secondary == primary;
        if master_single && !new_single {
            return Err(MasterError::Homing(
                "The master has no secondary ip but the new node has one",
            ));
        }
        if !master_single && new_single {
            return Err(MasterError::Homing(
                "The master has a secondary ip but the new node doesn't have one (give it with -s)",
            ));
        }

        // Reachability, from this host, as Ganeti: the primary from any address, the
        // secondary from the master's secondary.
        let port = config.node_port;
        let ping = |target, source| async move {
            let options = PingOptions {
                timeout: ADD_PING_TIMEOUT,
                source,
                live_port_needed: false,
            };
            tcp_ping(SocketAddr::new(target, port), &options).await
        };
        let primary_alive = ping(primary, None)
            .await
            .map(|o| o.is_alive(false))
            .unwrap_or(false);
        if !primary_alive {
            return Err(MasterError::PrimaryUnreachable {
                address: primary,
                port,
            });
        }
        if !new_single {
            let source = master.secondary_ip;
            let outcome = ping(secondary, Some(source)).await;
            let detail = match &outcome {
                Ok(o) if o.is_alive(false) => None,
                Ok(o) => Some(format!("{o:?}")),
                Err(e) => Some(e.to_string()),
            };
            if let Some(detail) = detail {
                return Err(MasterError::SecondaryUnreachable {
                    address: secondary,
                    port,
                    source_addr: source,
                    detail,
                });
            }
        }

        // The Join: everything the node needs, with the ssconf it will have once added.
        let record = NodeConfig {
            primary_ip: primary,
            secondary_ip: secondary,
            offline: false,
            certificate_sha256: String::new(),
            added_at: unix_now(),
        };
        let mut planned = config.clone();
        planned.nodes.insert(name.to_string(), record.clone());
        let expires_at = config
            .join_tokens
            .iter()
            .find(|t| t.id == token.id())
            .map_or(0, |t| t.expires_at);
        let plan = JoinPlan {
            token: token.clone(),
            expires_at_unix: expires_at,
            request: join_request(
                &config,
                &planned.ssconf()?,
                name.as_str(),
                &record,
                &self.ca,
            )?,
        };
        let connector =
            Connector::tcp_addr(SocketAddr::new(primary, port), DialOptions::new(policy));
        let joined = join(connector, plan, &self.ca)
            .await
            .map_err(|source| MasterError::Join {
                node: name.to_string(),
                source,
            })?;

        // The node must now answer the member API over mutual TLS, with our protocol.
        self.channels.forget(name.as_str());
        let channel = self.channels.get(name.as_str(), primary)?;
        let version = wait_for_version(channel, name.as_str()).await?;
        if version != gnt_proto::NODE_PROTOCOL_VERSION {
            return Err(MasterError::VersionMismatch {
                node: name.to_string(),
                master: gnt_proto::NODE_PROTOCOL_VERSION,
                node_version: version,
            });
        }

        // Commit, then tell every online node.
        let fingerprint = gnt_transports::fingerprint(&joined.certificate_sha256);
        let ((), committed) = guard.commit(|c| {
            let mut record = record.clone();
            record.certificate_sha256 = fingerprint.clone();
            c.nodes.insert(name.to_string(), record);
            if let Some(used) = c.join_tokens.iter_mut().find(|t| t.id == token.id()) {
                used.used_by = Some(name.to_string());
            }
            Ok::<_, MasterError>(())
        })?;
        drop(guard);
        tracing::info!(node = %name, primary = %primary, secondary = %secondary, serial = committed.serial, "node added");
        let warnings = self.redistribute(&committed).await;
        let view = NodeView {
            name: name.to_string(),
            node: committed.nodes[name.as_str()].clone(),
            master: false,
        };
        Ok((
            view,
            Changed {
                serial: committed.serial,
                warnings,
            },
        ))
    }

    /// Removes node `name`: it leaves (its state is wiped), the others get the new ssconf.
    pub async fn remove_node(&self, name: &str) -> Result<Changed, MasterError> {
        let view = self.node(name).await?;
        if view.master {
            return Err(MasterError::MasterNode("Cannot remove the master node"));
        }
        let mut guard = self.config.lock().await;
        let mut warnings = Vec::new();
        if view.node.offline {
            warnings.push(format!(
                "{} is offline and was not told to leave; on it, stop gnt-noded and empty its state directory",
                view.name
            ));
        } else {
            let channel = self.channels.get(&view.name, view.node.primary_ip)?;
            let mut request = tonic::Request::new(LeaveClusterRequest {});
            request.set_timeout(Duration::from_secs(30));
            if let Err(status) = NodeAgentClient::new(channel).leave_cluster(request).await {
                warnings.push(format!(
                    "{} did not leave ({}); on it, stop gnt-noded and empty its state directory",
                    view.name,
                    call_failure(&status, Duration::from_secs(30))
                ));
            }
        }
        let ((), committed) = guard.commit(|c| {
            c.nodes.remove(&view.name);
            Ok::<_, MasterError>(())
        })?;
        drop(guard);
        self.channels.forget(&view.name);
        tracing::info!(node = %view.name, serial = committed.serial, "node removed");
        warnings.extend(self.redistribute(&committed).await);
        Ok(Changed {
            serial: committed.serial,
            warnings,
        })
    }

    /// Marks node `name` offline (no traffic at all) or back online.
    pub async fn set_offline(
        &self,
        name: &str,
        offline: bool,
    ) -> Result<(NodeView, Changed), MasterError> {
        let view = self.node(name).await?;
        if view.master && offline {
            return Err(MasterError::MasterNode(
                "Cannot mark the master node offline",
            ));
        }
        let ((), committed) = self
            .config
            .update(|c| {
                if let Some(node) = c.nodes.get_mut(&view.name) {
                    node.offline = offline;
                }
                Ok::<_, MasterError>(())
            })
            .await?;
        tracing::info!(node = %view.name, offline, serial = committed.serial, "node modified");
        let warnings = self.redistribute(&committed).await;
        let node = committed.nodes[&view.name].clone();
        Ok((
            NodeView { node, ..view },
            Changed {
                serial: committed.serial,
                warnings,
            },
        ))
    }

    /// Sends `config`'s ssconf to every online node; returns one warning per node that did
    /// not take it.
    pub async fn redistribute(&self, config: &ClusterConfig) -> Vec<String> {
        let values = match config.ssconf() {
            Ok(set) => set.to_wire::<HashMap<String, String>>(),
            Err(error) => return vec![format!("cannot build ssconf: {error}")],
        };
        let results = fan_out_on(
            &self.channels,
            config,
            None,
            TimeoutClass::Fast,
            |channel, timeout| {
                let values = values.clone();
                async move {
                    let mut request = tonic::Request::new(WriteSsconfRequest {
                        ssconf: Some(WireSsconf { values }),
                    });
                    request.set_timeout(timeout);
                    NodeAgentClient::new(channel)
                        .write_ssconf(request)
                        .await
                        .map(|_| ())
                        .map_err(|s| call_failure(&s, timeout))
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

    /// `cluster verify`: every online node tests both networks against every online node.
    pub async fn verify(&self) -> Verification {
        let config = self.config.snapshot().await;
        let online: Vec<NodeAddresses> = config
            .nodes
            .iter()
            .filter(|(_, n)| !n.offline)
            .map(|(name, n)| wire(name, n))
            .collect();
        let port = u32::from(config.node_port);
        let results = fan_out_on(
            &self.channels,
            &config,
            None,
            TimeoutClass::Fast,
            |channel, timeout| {
                let nodes = online.clone();
                async move {
                    let mut request = tonic::Request::new(NetworkTestRequest {
                        nodes,
                        port,
                        timeout: prost_types::Duration::try_from(VERIFY_PING_TIMEOUT).ok(),
                    });
                    request.set_timeout(timeout);
                    NodeAgentClient::new(channel)
                        .network_test(request)
                        .await
                        .map(|r| r.into_inner().verdicts)
                        .map_err(|s| call_failure(&s, timeout))
                }
            },
            |_| {},
        )
        .await;
        let mut problems = Vec::new();
        let mut checked = 0;
        for result in results {
            match result.outcome {
                Err(CallFailure::Offline) => {}
                Err(failure) => problems.push(Problem {
                    node: result.key,
                    target: None,
                    network: None,
                    message: format!("node hasn't returned node tcp connectivity data: {failure}"),
                }),
                Ok(verdicts) => {
                    checked += 1;
                    for verdict in verdicts.into_iter().filter(|v| !v.reachable) {
                        let network = verdict.network();
                        let which = match network {
                            Network::Secondary => "secondary",
                            _ => "primary",
                        };
                        problems.push(Problem {
                            node: result.key.clone(),
                            message: format!(
                                "tcp communication with node '{}' on the {which} network failed: {}",
                                verdict.node, verdict.failure
                            ),
                            target: Some(verdict.node),
                            network: Some(network),
                        });
                    }
                }
            }
        }
        problems.sort_by(|a, b| {
            gnt_core::ssconf::nice_cmp(&a.node, &b.node).then_with(|| a.message.cmp(&b.message))
        });
        Verification {
            nodes_checked: checked,
            problems,
        }
    }
}

/// Calls `call` on `names` of `config` (all nodes when `None`) through `channels`: the
/// runner's semantics (offline nodes skipped, timeout class, bounded concurrency).
pub async fn fan_out_on<T, F, Fut>(
    channels: &NodeChannels,
    config: &ClusterConfig,
    names: Option<&[String]>,
    class: TimeoutClass,
    call: F,
    on_result: impl FnMut(&NodeResult<String, T>),
) -> Vec<NodeResult<String, T>>
where
    F: Fn(Channel, Duration) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallFailure>>,
{
    let targets: Vec<Target<String>> = config
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
        |name: String, timeout| {
            let channel = config
                .nodes
                .get(&name)
                .ok_or_else(|| {
                    CallFailure::Unreachable(format!("{name} is not in the configuration"))
                })
                .and_then(|node| {
                    channels
                        .get(&name, node.primary_ip)
                        .map_err(|e| CallFailure::TlsRejected(e.to_string()))
                });
            let call = channel.map(|channel| call(channel, timeout));
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

/// The Join request for node `name` (to be recorded as `record`) of the cluster `config`,
/// carrying `ssconf`: everything the node needs to run from then on.
pub fn join_request(
    config: &ClusterConfig,
    ssconf: &SsconfSet,
    name: &str,
    record: &NodeConfig,
    ca: &ClusterCa,
) -> Result<JoinRequest, MasterError> {
    let master = config
        .master()
        .ok_or_else(|| MasterError::UnknownNode(config.master_node.clone()))?;
    let policy = config.policy();
    Ok(JoinRequest {
        cluster_name: config.cluster_name.clone(),
        primary_ip_version: match policy {
            IpPolicy::Ipv4 => PrimaryIpVersion::PrimaryIpVersion4,
            IpPolicy::HybridIpv6 => PrimaryIpVersion::PrimaryIpVersion6,
        }
        .into(),
        bind_address: policy.bind_wildcard().to_string(),
        port: u32::from(config.node_port),
        node: Some(wire(name, record)),
        master: Some(wire(&config.master_node, master)),
        ca_certificate_pem: ca.cert_pem().to_owned(),
        node_certificate_pem: String::new(),
        ssconf: Some(WireSsconf {
            values: ssconf.to_wire(),
        }),
    })
}

fn check_token(config: &ClusterConfig, token: &JoinToken) -> Result<(), TokenProblem> {
    let record = config
        .join_tokens
        .iter()
        .find(|t| t.id == token.id())
        .ok_or_else(|| TokenProblem::Unknown(token.id().to_owned()))?;
    // Digests, not secrets, are compared: timing could only tell how many leading digest
    // bytes match, which brings no one closer to a token with that digest.
    if hex(&token.hash()) != record.sha256 {
        return Err(TokenProblem::Mismatch(token.id().to_owned()));
    }
    if let Some(node) = &record.used_by {
        return Err(TokenProblem::Used {
            id: record.id.clone(),
            node: node.clone(),
        });
    }
    if record.expires_at <= unix_now() {
        return Err(TokenProblem::Expired {
            id: record.id.clone(),
            at: utc(record.expires_at),
        });
    }
    Ok(())
}

/// Calls Version on `channel` until the node answers (its member listener may take a moment
/// to open after Join), for at most 10 s; returns its protocol version.
pub async fn wait_for_version(channel: Channel, node: &str) -> Result<u32, MasterError> {
    let deadline = tokio::time::Instant::now() + VERSION_PATIENCE;
    // The node opens its member listener just after answering Join: usually within
    // milliseconds, so poll fast at first and back off to Ganeti's once a second.
    let mut pause = Duration::from_millis(5);
    loop {
        let mut request = tonic::Request::new(VersionRequest {});
        request.set_timeout(Duration::from_secs(2));
        match NodeAgentClient::new(channel.clone()).version(request).await {
            Ok(reply) => return Ok(reply.into_inner().protocol_version),
            Err(status) if tokio::time::Instant::now() >= deadline => {
                return Err(MasterError::NoVersion {
                    node: node.to_owned(),
                    detail: call_failure(&status, Duration::from_secs(2)).to_string(),
                });
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config_with(tokens: Vec<TokenRecord>) -> ClusterConfig {
        ClusterConfig {
            serial: 1,
            cluster_name: "c.example".to_owned(),
            primary_ip_version: 4,
            master_node: "m.example".to_owned(),
            master_ip: "192.0.2.100".parse().unwrap(),
            master_netmask: 32,
            node_port: 1811,
            master_certificate_sha256: String::new(),
            nodes: BTreeMap::new(),
            join_tokens: tokens,
            created_at: 0,
            modified_at: 0,
        }
    }

    fn record(token: &JoinToken, expires_at: i64, used_by: Option<&str>) -> TokenRecord {
        TokenRecord {
            id: token.id().to_owned(),
            sha256: hex(&token.hash()),
            expires_at,
            used_by: used_by.map(str::to_owned),
        }
    }

    #[test]
    fn tokens_are_checked_for_id_secret_use_and_expiry() {
        let token: JoinToken = "abcdef.0123456789abcdef".parse().unwrap();
        let future = unix_now() + 3600;
        assert_eq!(
            check_token(&config_with(vec![record(&token, future, None)]), &token),
            Ok(())
        );

        let other: JoinToken = "zzzzzz.0123456789abcdef".parse().unwrap();
        let unknown =
            check_token(&config_with(vec![record(&token, future, None)]), &other).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown join token 'zzzzzz'; create one with `gnt node token create`"
        );

        let forged: JoinToken = "abcdef.ffffffffffffffff".parse().unwrap();
        let mismatch =
            check_token(&config_with(vec![record(&token, future, None)]), &forged).unwrap_err();
        assert_eq!(mismatch, TokenProblem::Mismatch("abcdef".to_owned()));

        let used = check_token(
            &config_with(vec![record(&token, future, Some("node1"))]),
            &token,
        )
        .unwrap_err();
        assert_eq!(
            used.to_string(),
            "join token 'abcdef' was already used to add node1; tokens are single-use"
        );

        let expired =
            check_token(&config_with(vec![record(&token, 1000, None)]), &token).unwrap_err();
        assert_eq!(
            expired.to_string(),
            "join token 'abcdef' expired at 1970-01-01T00:16:40Z; create a new one with `gnt node token create`"
        );
    }
}
