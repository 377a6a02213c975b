//! Jobs: every operation that changes the cluster runs as a job in `gnt-masterd`, recorded
//! before its first step and after each step with an effect outside the master, and run to
//! its end whatever becomes of the client that submitted it (Ganeti's job queue).
//!
//! - [`record`]: the job as written down, one file per job;
//! - [`queue`]: submitting, running one at a time in order, watching, listing;
//! - [`recovery`]: at start, taking each job a killed master left unfinished to an end;
//! - [`wire`]: jobs in the master API's terms.
//!
//! An operation reports its steps through [`Progress`]; a step is on disk before the
//! operation goes on, so the record never claims less than what happened outside.

pub mod queue;
pub mod record;
pub mod recovery;
mod submission;
pub mod wire;

pub use queue::{JobQueue, Submitted};
pub use record::{JobFailure, JobOp, JobOutcome, JobRecord, JobState, JobStore, Step};

use crate::error::MasterError;

/// Where an operation reports the steps it takes.
pub trait Progress: Send + Sync {
    /// Records `step` before the operation goes on; an error stops the operation (a step
    /// that cannot be recorded must not be taken).
    fn step(&self, step: Step) -> Result<(), MasterError>;

    /// Records `step`, taken after the change was committed: a failure to record it is
    /// logged, not returned, because the change is done (recovery finds it in the
    /// configuration and only redistributes).
    fn step_after_commit(&self, step: Step) {
        if let Err(error) = self.step(step) {
            tracing::warn!(error = %gnt_core::error::Chain(&error), "cannot record a step after the commit");
        }
    }
}

/// Progress nobody records: for operations run outside a job (tests, benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Untracked;

impl Progress for Untracked {
    fn step(&self, _step: Step) -> Result<(), MasterError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
