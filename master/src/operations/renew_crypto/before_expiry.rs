//! Renewal before expiry, without an operator: gnt-masterd looks at the certificates in use
//! every `interval` (an hour by default) and submits a `renew-crypto` job when one is past
//! two thirds of its life, as the kubelet renews its own certificate (client-go rotates at
//! 70-90 % of the lifetime; two thirds leaves a third of the life, four months of a year,
//! for a renewal that fails to be noticed and retried, while verify warns only 30 days
//! before the end).
//!
//! What is looked at: the master's certificate (`master.pem`); each online node's, as the
//! node describes the one it presents (`Version` with `certificates`); each other
//! candidate's master certificate (in the configuration). A certificate's life is the
//! configuration's certificate lifetime, counted back from its end: the life it was issued
//! with (its `notBefore` is an hour early, for clocks that lag, which would count as life). A node certificate or
//! a candidate's master certificate due renews every node's key and certificate (one job,
//! the same for all, so that their ages stay together); the master's alone renews only the
//! master's. The CA is not renewed automatically: replacing it touches every node's trust,
//! and is the operator's call, which verify prompts 30 days before the end.

use std::sync::Arc;
use std::time::Duration;

use gnt_core::clock::unix_now;
use gnt_proto::node::v1::VersionRequest;
use tokio_util::sync::CancellationToken;

use super::CryptoParts;
use crate::jobs::JobOp;
use crate::jobs::queue::{JobQueue, Submission};
use crate::master::Master;
use crate::pki::certificate_validity;

/// How often gnt-masterd looks at the certificates by default.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Whether a certificate that ends at `not_after`, issued for `lifetime` seconds, is past
/// two thirds of its life at `now`.
pub fn past_two_thirds(not_after: i64, lifetime: i64, now: i64) -> bool {
    now >= not_after.saturating_sub(lifetime / 3)
}

/// What is due, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// What to renew.
    pub parts: CryptoParts,
    /// One line per certificate due.
    pub why: Vec<String>,
}

impl Master {
    /// The certificates in use that are past two thirds of their life at `now`, and what
    /// renews them; `None` when none is.
    pub async fn renewal_due(&self, now: i64) -> Option<Due> {
        let config = self.config.snapshot().await;
        let lifetime = i64::try_from(config.certificate_validity().as_secs()).unwrap_or(i64::MAX);
        let mut why = Vec::new();
        let mut nodes_due = false;
        let mut master_due = false;
        let master_pem = std::fs::read_to_string(&self.paths.pki.master_cert).ok();
        if let Some(validity) = master_pem
            .as_deref()
            .and_then(|pem| certificate_validity("master certificate", pem).ok())
            && past_two_thirds(validity.not_after, lifetime, now)
        {
            master_due = true;
            why.push("the master's certificate".to_owned());
        }
        for (name, node) in config.candidates() {
            if let Ok(validity) =
                certificate_validity("master certificate", &node.master_certificate_pem)
                && past_two_thirds(validity.not_after, lifetime, now)
            {
                nodes_due = true;
                why.push(format!("{name}'s master certificate"));
            }
        }
        let request = VersionRequest {
            certificates: true,
            ..VersionRequest::default()
        };
        for result in self.node_reports_asking(&config, None, request).await {
            let Some(certificate) = result.outcome.ok().and_then(|report| report.certificate)
            else {
                continue;
            };
            if past_two_thirds(certificate.not_after, lifetime, now) {
                nodes_due = true;
                why.push(format!("{}'s certificate", result.key));
            }
        }
        let parts = CryptoParts {
            node_certificates: nodes_due,
            master_certificate: master_due && !nodes_due,
            cluster_certificate: false,
        };
        parts.any().then_some(Due { parts, why })
    }
}

/// Looks every `interval` (first soon after start) and submits the renewal that is due,
/// unless one is under way; until `shutdown`.
pub async fn renew_before_expiry(
    master: Arc<Master>,
    jobs: JobQueue,
    interval: Duration,
    shutdown: CancellationToken,
) {
    // Recovery and the converger go first at start.
    let mut wait = interval.min(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = interval;
        if master.config.snapshot().await.rollover.is_some() {
            continue; // a renewal waits for nodes; the converger goes on with it
        }
        let under_way = jobs
            .list()
            .iter()
            .any(|job| !job.state.ended() && matches!(job.op, JobOp::RenewCrypto { .. }));
        if under_way {
            continue;
        }
        let Some(due) = master.renewal_due(unix_now()).await else {
            continue;
        };
        match jobs.submit(Submission::RenewCrypto(due.parts)) {
            Ok(submitted) => {
                tracing::info!(job = submitted.id, due = %due.why.join(", "), parts = %due.parts.summary(), "certificates past two thirds of their life: renewal submitted");
            }
            Err(error) => {
                tracing::warn!(error = %gnt_core::error::Chain(&error), "cannot submit the renewal of certificates past two thirds of their life");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_due_from_two_thirds_of_its_life() {
        // Issued at 1000 for 300 s: due from 1200.
        assert!(!past_two_thirds(1300, 300, 1000));
        assert!(!past_two_thirds(1300, 300, 1199));
        assert!(past_two_thirds(1300, 300, 1200));
        assert!(past_two_thirds(1300, 300, 1400), "and once expired");
    }
}
