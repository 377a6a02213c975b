//! Waiting for a started gnt-masterd: until it answers, then until it has tried to activate
//! the cluster IP, which it does a moment later (after job recovery and a probe of the
//! address, about a second), so that a test's next command sees the master as it will stay
//! (a `gnt cluster verify` run in that second found the cluster IP missing).

use std::time::{Duration, Instant};

use super::{ClusterLab, ClusterLabError};

/// What gnt-masterd logs when its start-up activation ended, either way ("cluster IP
/// activated at start", "cluster IP not activated at start").
const ACTIVATION_ENDED: &str = "activated at start";
/// How long a start may take to try: recovery of the jobs a killed master left comes first,
/// and may wait for slow nodes. A start that takes longer is not failed for it: the test
/// goes on, as an operator would.
const ACTIVATION_PATIENCE: Duration = Duration::from_secs(20);

impl ClusterLab {
    /// How many start-up activations `host`'s gnt-masterd log shows.
    pub(super) fn activations_at_start(&self, host: &str) -> usize {
        std::fs::read_to_string(self.log(host, "gnt-masterd"))
            .map(|log| log.matches(ACTIVATION_ENDED).count())
            .unwrap_or(0)
    }

    /// Waits until `host`'s gnt-masterd answers, then (within [`ACTIVATION_PATIENCE`])
    /// until its log shows more start-up activations than `before`.
    pub(super) fn wait_for_masterd(
        &self,
        host: &str,
        before: usize,
    ) -> Result<(), ClusterLabError> {
        self.wait_for_daemon(host, "gnt-masterd", "answers", || {
            self.gnt_on(host, &["cluster", "info"])
                .ok()?
                .success()
                .then_some(())
        })?;
        let deadline = Instant::now() + ACTIVATION_PATIENCE;
        while self.activations_at_start(host) <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}
