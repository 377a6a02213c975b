//! `gnt node add`: every check of Ganeti's LUNodeAdd, in Ganeti's order and with Ganeti's
//! messages, plus the join token (checked first: it costs nothing); then the Join, the
//! version check over mutual TLS, the commit, and the new ssconf for every node.
//!
//! [`Master::add_node`] reads top to bottom as those steps; each is a function below it.
//! It runs as a job (one change at a time: the queue sees to that), reporting each step
//! before it goes on. Nothing is committed before the node answers as a member; a node that
//! says it joined this cluster already (a Join whose answer was lost, an add that failed
//! after the Join) is taken in once it proves it over mutual TLS, so retrying an add never
//! needs the node wiped.

use std::net::SocketAddr;
use std::time::Duration;

use crate::channels::NodeChannel;
use gnt_core::error::{Classify, ErrorKind};
use gnt_core::join::JoinToken;
use gnt_core::netutils::{Hostname, PingOptions, parse_name, tcp_ping};
use gnt_core::node::{Node, NodeAddrs};
use gnt_proto::node::v1::VersionRequest;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_transports::join::{JoinError, JoinPlan, join};
use gnt_transports::{Connector, DialOptions, Identity, fingerprint};

use super::Changed;
use super::candidates::{CandidateCertificate, pool_has_room};
use super::node_readd::{Previous, token_id, without_candidate};
use super::probe::Membership;
use super::rpc_call::{failed, timed};
use super::token::{TokenError, check_token};
use crate::config::{ClusterConfig, NodeConfig};
use crate::error::MasterError;
use crate::jobs::{Progress, Step};
use crate::master::{Master, NodeView};

/// How long a node may take to answer over mutual TLS after its Join (Ganeti's
/// `_WaitForNodeDaemon`: 10 s, polled every second).
const VERSION_PATIENCE: Duration = Duration::from_secs(10);
/// Timeout of each Version call while waiting.
const VERSION_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the whole Join exchange may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Ganeti's TCP ping timeout for node add.
const ADD_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What `gnt node add` asks for.
#[derive(Debug, Clone)]
pub struct AddNode {
    /// The node's name, as the operator typed it.
    pub name: String,
    /// `-s`: its secondary address, as typed.
    pub secondary: Option<String>,
    /// The token its gnt-noded was started with; only a re-add may have none.
    pub token: Option<JoinToken>,
    /// `--readd`: the node is in the configuration already ([`super::node_readd`]).
    pub readd: bool,
}

/// A node that passed the checks, and the token (with its expiry) that will let it in.
#[derive(Debug)]
pub(super) struct Candidate {
    pub node: Node,
    pub token: Option<(JoinToken, i64)>,
    /// For a re-add, what the configuration said of the node.
    pub previous: Option<Previous>,
}

impl Master {
    /// Adds a node (see the module docs), reporting each step to `progress`.
    pub async fn add_node(
        &self,
        request: AddNode,
        progress: &dyn Progress,
    ) -> Result<(NodeView, Changed), MasterError> {
        // A re-add proves the node's key and commits its certificate: no renewal by the
        // converger may slip in between.
        let _renewal = if request.readd {
            Some(self.renewal.lock().await)
        } else {
            None
        };
        let config = self.config.snapshot().await;
        let candidate = if request.readd {
            self.check_readd(&config, request).await?
        } else {
            self.check(&config, request).await?
        };
        check_reachable(&config, &candidate.node).await?;
        let node = &candidate.node;
        progress.step(Step::Checked {
            primary: node.addrs.primary,
            secondary: node.addrs.secondary,
        })?;
        progress.step(Step::Joining)?;
        let previous = candidate.previous.as_ref();
        let (certificate_sha256, joined) = match (&candidate.token, previous) {
            (Some((token, expires_at)), _) => {
                match self
                    .join_node(&config, node, token.clone(), *expires_at)
                    .await
                {
                    Ok(joined) => {
                        tracing::info!(node = %node.name, version = %joined.software_version, "node joined");
                        (fingerprint(&joined.certificate_sha256), true)
                    }
                    Err(error) if says_already_member(&error) => match previous {
                        Some(previous) => self.prove_readd_member(node, previous, true).await?,
                        None => (self.adopt(node).await?, true),
                    },
                    Err(error) => return Err(error),
                }
            }
            (None, Some(previous)) => self.prove_readd_member(node, previous, false).await?,
            (None, None) => return Err(MasterError::Token(TokenError::Missing)),
        };
        progress.step(Step::Joined {
            certificate_sha256: certificate_sha256.clone(),
        })?;
        self.check_version(node).await?;
        progress.step(Step::VersionChecked)?;
        let mut warnings = Vec::new();
        let promoted = self
            .promotion(node, &certificate_sha256)
            .await
            .unwrap_or_else(|error| {
                warnings.push(format!("{} is not a master candidate: {error}", node.name));
                None
            });
        let token_id = token_id(candidate.token.as_ref());
        let (view, committed) = match &candidate.previous {
            None => {
                self.commit_added(
                    node,
                    token_id.unwrap_or_default(),
                    certificate_sha256,
                    promoted,
                )
                .await?
            }
            Some(_) => {
                let (view, committed) = self
                    .commit_readded(node, token_id, certificate_sha256, joined, promoted)
                    .await?;
                if !view.node.master_candidate {
                    // Whatever it held as a candidate before (an offline node keeps its
                    // copy, with the CA key, until told) goes now.
                    warnings.extend(self.drop_copy(&committed, &node.name).await);
                }
                (view, committed)
            }
        };
        progress.step_after_commit(Step::Committed {
            serial: committed.serial,
        });
        tracing::info!(node = %node.name, primary = %node.addrs.primary, secondary = %node.addrs.secondary, serial = committed.serial, readd = candidate.previous.is_some(), "node added");
        let missed = self.redistribute(&committed).await;
        progress.step_after_commit(Step::Distributed {
            missed: missed.len(),
        });
        warnings.extend(missed);
        Ok((
            view,
            Changed {
                serial: committed.serial,
                warnings,
            },
        ))
    }

    /// Takes in `node`, which says it is a member already: only if it proves it over mutual
    /// TLS with this cluster's CA. Returns its certificate's fingerprint.
    async fn adopt(&self, node: &Node) -> Result<String, MasterError> {
        match self.probe_membership(node).await? {
            Membership::Member {
                certificate_sha256, ..
            } => {
                tracing::info!(node = %node.name, "the node had joined already: taking it in");
                Ok(certificate_sha256)
            }
            Membership::NotMember(why) | Membership::Unreachable(why) => {
                Err(MasterError::NotAdoptable {
                    node: node.name.clone(),
                    why,
                })
            }
        }
    }

    /// The master certificate that makes `node` (holding `certificate_sha256`) a master
    /// candidate, if the pool has room (Ganeti promotes a node at add the same way).
    async fn promotion(
        &self,
        node: &Node,
        certificate_sha256: &str,
    ) -> Result<Option<CandidateCertificate>, MasterError> {
        if !pool_has_room(&without_candidate(&self.config.snapshot().await, node)) {
            return Ok(None);
        }
        self.certify_candidate(node, certificate_sha256)
            .await
            .map(Some)
    }

    /// Enters `node`, which joined with the token `token_id` and holds the certificate
    /// `certificate_sha256`, into the configuration (a master candidate with `promoted`,
    /// if the pool still has room), and marks the token used. The
    /// uniqueness checks are made again against the configuration being changed: a check
    /// passed before the Join must still hold at the commit.
    pub async fn commit_added(
        &self,
        node: &Node,
        token_id: &str,
        certificate_sha256: String,
        promoted: Option<CandidateCertificate>,
    ) -> Result<(NodeView, ClusterConfig), MasterError> {
        let mut record = NodeConfig::new(node.addrs);
        record.certificate_sha256 = certificate_sha256;
        let (record, committed) = self
            .config
            .update(|c| {
                if c.nodes.contains_key(&node.name) {
                    return Err(MasterError::NodeExists(node.name.clone()));
                }
                check_unique(c, &node.addrs, None)?;
                let mut record = record.clone();
                if let Some(certificate) = promoted.clone().filter(|_| pool_has_room(c)) {
                    certificate.promote(&mut record);
                }
                c.nodes.insert(node.name.clone(), record.clone());
                c.mark_token_used(token_id, &node.name);
                Ok::<_, MasterError>(record)
            })
            .await?;
        let view = NodeView {
            node: record,
            name: node.name.clone(),
            master: false,
        };
        Ok((view, committed))
    }

    /// The checks that need no more than the configuration and name resolution: the name,
    /// the token, the addresses (resolved in the cluster family, the secondary given), their
    /// uniqueness, and homing that matches the master's.
    async fn check(
        &self,
        config: &ClusterConfig,
        request: AddNode,
    ) -> Result<Candidate, MasterError> {
        let name = parse_name("node name", &request.name)?;
        if config.nodes.contains_key(&name) {
            return Err(MasterError::NodeExists(name));
        }
        let Some(token) = request.token else {
            return Err(MasterError::Token(TokenError::Missing));
        };
        let token_expires_at = check_token(config, &token)?.expires_at;
        let policy = config.policy;
        let primary = self
            .resolver
            .first_address(&name, policy.primary_family())
            .await?;
        let secondary = policy.parse_secondary(request.secondary.as_deref())?;
        let addrs = policy.node_addrs(primary, secondary)?;
        check_unique(config, &addrs, None)?;
        check_homing(config, &addrs)?;
        Ok(Candidate {
            node: Node { name, addrs },
            token: Some((token, token_expires_at)),
            previous: None,
        })
    }

    /// The Join of `node` into `config`: everything the node needs, with the ssconf it will
    /// have once added, proven with `token` (which expires at `token_expires_at`).
    pub async fn join_node(
        &self,
        config: &ClusterConfig,
        node: &Node,
        token: JoinToken,
        token_expires_at: i64,
    ) -> Result<gnt_transports::join::Joined, MasterError> {
        let mut planned = config.clone();
        planned
            .nodes
            .insert(node.name.clone(), NodeConfig::new(node.addrs));
        // The serial `ConfigGuard::commit` gives the configuration that lists the node, so
        // the node's first set carries the serial it has once the add is committed. Should
        // another commit (a join token's) land between the Join and the add's commit, the
        // node's set is merely older than the configuration: the add's redistribution, or
        // else the converger, brings it up. It is never newer: serials only grow.
        planned.serial += 1;
        let offer = planned.join_offer(node.clone(), self.ca.get().cert_pem())?;
        let identity =
            Identity::from_files(&self.paths.pki.master_cert, &self.paths.pki.master_key)?;
        let mut plan = JoinPlan::new(token, token_expires_at, offer);
        plan.presenting = Some(identity);
        let connector = Connector::tcp_addr(
            SocketAddr::new(node.addrs.primary, config.node_port),
            DialOptions::new(config.policy),
        );
        // The node answers each step within seconds; one that stops answering must not
        // hold the job queue.
        tokio::time::timeout(JOIN_TIMEOUT, join(connector, plan, &*self.ca.get()))
            .await
            .map_err(|_| MasterError::JoinTimeout {
                node: node.name.clone(),
                seconds: JOIN_TIMEOUT.as_secs(),
            })?
            .map_err(|source| MasterError::Join {
                node: node.name.clone(),
                source: Box::new(source),
            })
    }

    /// The node must now answer the member API over mutual TLS, with our protocol.
    pub async fn check_version(&self, node: &Node) -> Result<(), MasterError> {
        self.channels.forget(node.name.as_str());
        let channel = self.channels.get(node.name.as_str(), node.addrs.primary)?;
        let version = wait_for_version(channel, node).await?;
        if version != gnt_proto::NODE_PROTOCOL_VERSION {
            return Err(MasterError::VersionMismatch {
                node: node.name.clone(),
                master: gnt_proto::NODE_PROTOCOL_VERSION,
                node_version: version,
            });
        }
        Ok(())
    }
}

/// No address of the new node may be an address of another node (`except` is the node
/// itself, when it is listed already).
pub(super) fn check_unique(
    config: &ClusterConfig,
    addrs: &NodeAddrs,
    except: Option<&Hostname>,
) -> Result<(), MasterError> {
    for (other, node) in config.nodes.iter().filter(|(n, _)| Some(*n) != except) {
        for address in [addrs.primary, addrs.secondary] {
            if address == node.primary_ip || address == node.secondary_ip {
                return Err(MasterError::AddressConflict {
                    node: other.clone(),
                    address,
                });
            }
        }
    }
    Ok(())
}

/// The master's record (a configuration without one is refused when loaded).
pub(super) fn master_of(config: &ClusterConfig) -> Result<&NodeConfig, MasterError> {
    config
        .master()
        .ok_or_else(|| MasterError::UnknownNode(config.master_node.to_string()))
}

/// A node is single-homed exactly when the master is.
pub(super) fn check_homing(config: &ClusterConfig, addrs: &NodeAddrs) -> Result<(), MasterError> {
    match (
        master_of(config)?.addrs().single_homed(),
        addrs.single_homed(),
    ) {
        (true, false) => Err(MasterError::MasterSingleHomed),
        (false, true) => Err(MasterError::MasterDualHomed),
        _ => Ok(()),
    }
}

/// Reachability from this host, as Ganeti: the primary from any address, the secondary
/// from the master's secondary.
pub(super) async fn check_reachable(
    config: &ClusterConfig,
    node: &Node,
) -> Result<(), MasterError> {
    let port = config.node_port;
    let ping = |target, source| async move {
        let options = PingOptions {
            timeout: ADD_PING_TIMEOUT,
            source,
            live_port_needed: false,
        };
        tcp_ping(SocketAddr::new(target, port), &options).await
    };
    let primary = node.addrs.primary;
    if !ping(primary, None).await.is_ok_and(|o| o.is_alive(false)) {
        return Err(MasterError::PrimaryUnreachable {
            address: primary,
            port,
        });
    }
    if node.addrs.single_homed() {
        return Ok(());
    }
    let source = master_of(config)?.secondary_ip;
    let detail = match ping(node.addrs.secondary, Some(source)).await {
        Ok(outcome) if outcome.is_alive(false) => return Ok(()),
        Ok(outcome) => outcome.to_string(),
        Err(e) => e.to_string(),
    };
    Err(MasterError::SecondaryUnreachable {
        address: node.addrs.secondary,
        port,
        source_addr: source,
        detail,
    })
}

/// Whether a Join failed because the node says it is a member of a cluster already.
fn says_already_member(error: &MasterError) -> bool {
    matches!(error, MasterError::Join { source, .. }
        if matches!(source.as_ref(), JoinError::Refused { .. })
            && source.kind() == ErrorKind::AlreadyExists)
}

/// Calls Version on `channel` until `node` answers (its member listener may take a moment
/// to open after Join), for at most 10 s; returns its protocol version.
async fn wait_for_version(channel: NodeChannel, node: &Node) -> Result<u32, MasterError> {
    let deadline = tokio::time::Instant::now() + VERSION_PATIENCE;
    // The node opens its member listener just after answering Join: usually within
    // milliseconds, so poll fast at first and back off to Ganeti's once a second.
    let mut pause = Duration::from_millis(5);
    loop {
        let request = timed(VersionRequest::default(), VERSION_CALL_TIMEOUT);
        match NodeAgentClient::new(channel.clone()).version(request).await {
            Ok(reply) => return Ok(reply.into_inner().protocol_version),
            Err(status) if tokio::time::Instant::now() >= deadline => {
                return Err(MasterError::NoVersion {
                    node: node.name.clone(),
                    failure: failed(VERSION_CALL_TIMEOUT)(status),
                });
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}
