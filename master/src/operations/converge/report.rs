//! What a node's `Version` answer tells about the master role (and, when asked, about the
//! node's certificate), asking nodes for it, and when it means that this master was
//! replaced.

use std::time::Duration;

use gnt_core::netutils::Hostname;
use gnt_core::runner::{NodeResult, TimeoutClass};
use gnt_core::ssconf::SsconfVersion;
use gnt_proto::node::v1::node_agent_client::NodeAgentClient;
use gnt_proto::node::v1::{VersionRequest, VersionResponse};

use crate::channels::NodeChannels;
use crate::config::ClusterConfig;
use crate::operations::rpc_call::{failed, fan_out_named, timed};

/// What a node's `Version` answer tells about the master role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The version of its ssconf.
    pub ssconf: SsconfVersion,
    /// The master its ssconf names.
    pub master: String,
    /// The version of its master copy (0 when it holds none).
    pub copy: SsconfVersion,
    /// Whether a gnt-masterd runs on it.
    pub master_daemon_running: bool,
    /// Its certificate, when the request asked (`certificates`) and the node described it;
    /// `None` otherwise (an agent older than the field, or one that cannot read its own).
    pub certificate: Option<ReportedCertificate>,
}

/// A node's certificate, as the node described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedCertificate {
    /// SHA-256 fingerprint, colon hex.
    pub sha256: String,
    /// When it expires, seconds since the Unix epoch.
    pub not_after: i64,
}

impl From<VersionResponse> for NodeReport {
    fn from(answer: VersionResponse) -> Self {
        let certificate = (!answer.certificate_sha256.is_empty()).then_some(ReportedCertificate {
            sha256: answer.certificate_sha256,
            not_after: answer.certificate_not_after,
        });
        Self {
            ssconf: SsconfVersion::new(answer.master_epoch, answer.ssconf_serial),
            master: answer.master_node,
            copy: SsconfVersion::new(answer.master_copy_epoch, answer.master_copy_serial),
            master_daemon_running: answer.master_daemon_running,
            certificate,
        }
    }
}

impl NodeReport {
    /// Why this master (`master`, of epoch `ours`) must stand down, when `node`'s report
    /// shows that it was replaced: the node's ssconf is of a newer epoch, or of this master's epoch but
    /// naming another master (two failovers chose the same epoch: neither may act until
    /// one runs again and takes a newer one).
    pub fn replaced(&self, node: &Hostname, master: &Hostname, ours: u64) -> Option<String> {
        if self.ssconf.epoch > ours {
            return Some(format!(
                "{node} holds the ssconf of master epoch {}, which names {} as master; this master's epoch is {ours}",
                self.ssconf.epoch, self.master
            ));
        }
        if self.ssconf.epoch == ours && self.master != master.as_str() {
            return Some(format!(
                "{node} holds the ssconf of this master's epoch {ours} naming {} as master: two master-failovers chose the same epoch; run 'gnt cluster master-failover --no-voting' on the node to keep as master (it takes a newer epoch)",
                self.master
            ));
        }
        None
    }
}

/// Asks the online nodes of `config` among `names` (all when `None`), through `channels`,
/// for their `Version` answers as reports; each may take `timeout`. `on_refusal` sees every
/// status a node answered with instead (the converger looks there for a newer epoch).
pub async fn ask_reports(
    channels: &NodeChannels,
    config: &ClusterConfig,
    names: Option<&[Hostname]>,
    request: VersionRequest,
    timeout: Duration,
    on_refusal: impl Fn(&Hostname, &tonic::Status),
) -> Vec<NodeResult<Hostname, NodeReport>> {
    let on_refusal = &on_refusal;
    fan_out_named(
        channels,
        config,
        names,
        TimeoutClass::Urgent,
        |name, channel, _| {
            let request = timed(request, timeout);
            let name = name.clone();
            async move {
                NodeAgentClient::new(channel)
                    .version(request)
                    .await
                    .map(|answer| NodeReport::from(answer.into_inner()))
                    .map_err(|status| {
                        on_refusal(&name, &status);
                        failed(timeout)(status)
                    })
            }
        },
        |_| {},
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_reported_only_when_the_node_described_one() {
        let plain = NodeReport::from(VersionResponse::default());
        assert_eq!(plain.certificate, None);
        let described = NodeReport::from(VersionResponse {
            certificate_sha256: "AB:CD".to_owned(),
            certificate_not_after: 1_900_000_000,
            ..VersionResponse::default()
        });
        assert_eq!(
            described.certificate,
            Some(ReportedCertificate {
                sha256: "AB:CD".to_owned(),
                not_after: 1_900_000_000
            })
        );
    }

    fn report(epoch: u64, master: &str) -> NodeReport {
        NodeReport {
            ssconf: SsconfVersion::new(epoch, 7),
            master: master.to_owned(),
            copy: SsconfVersion::default(),
            master_daemon_running: false,
            certificate: None,
        }
    }

    #[test]
    fn a_node_naming_another_master_at_this_masters_epoch_means_standing_down() {
        let node = Hostname::parse("node1.example.com").unwrap();
        let me = Hostname::parse("node2.example.com").unwrap();
        assert_eq!(report(3, "node2.example.com").replaced(&node, &me, 3), None);
        assert_eq!(report(2, "node9.example.com").replaced(&node, &me, 3), None);
        let newer = report(4, "node3.example.com")
            .replaced(&node, &me, 3)
            .unwrap();
        assert!(
            newer.contains("master epoch 4, which names node3.example.com"),
            "{newer}"
        );
        // node3 ran master-failover at the same moment and chose epoch 3 as well.
        let split = report(3, "node3.example.com")
            .replaced(&node, &me, 3)
            .unwrap();
        assert!(
            split.starts_with(
                "node1.example.com holds the ssconf of this master's epoch 3 naming node3.example.com as master: two master-failovers chose the same epoch"
            ),
            "{split}"
        );
    }
}
