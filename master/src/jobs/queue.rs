//! The job queue: a job is written down when it is submitted, then run by one worker, in
//! the order submitted, each to its end. Callers watch a job's record change step by step;
//! a caller that goes away changes nothing for the job.
//!
//! The worker first takes to an end the jobs a previous master left unfinished
//! ([`super::recovery`]), so no job starts before the cluster is whole again.
//!
//! Every job ends, as watchers see it, whatever happens: a job whose end cannot be written
//! is shown ended all the same (saying so), and a job that panics (a defect) fails with
//! that message while the worker goes on to the next.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use gnt_core::clock::unix_now;
use gnt_core::error::{Chain, ErrorKind};
use gnt_core::join::JoinToken;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::record::{
    JobFailure, JobOp, JobOutcome, JobRecord, JobState, JobStore, JobStoreError, StepRecord,
};
pub use super::submission::Submission;
use super::{Progress, Step, recovery, wire};
use crate::error::MasterError;
use crate::master::Master;
use crate::operations::node_add::AddNode;

/// How many ended jobs the master keeps (Ganeti archives; we drop the oldest).
const KEEP_ENDED: usize = 500;
/// Pruning waits until this many more have ended, so it is not done at every job.
const PRUNE_SLACK: usize = 50;

/// A job handed to the worker: its id and, for an add, the token.
#[derive(Debug)]
struct Work {
    id: u64,
    token: Option<JoinToken>,
}

/// A submitted job: its id, and its record as it changes.
#[derive(Debug)]
pub struct Submitted {
    /// The job's id.
    pub id: u64,
    /// Its record, updated at every step.
    pub record: watch::Receiver<JobRecord>,
}

/// The queue.
#[derive(Debug, Clone)]
pub struct JobQueue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: JobStore,
    jobs: Mutex<Jobs>,
    work: mpsc::UnboundedSender<Work>,
}

#[derive(Debug)]
struct Jobs {
    by_id: BTreeMap<u64, watch::Sender<JobRecord>>,
    next_id: u64,
}

/// The worker's end of the queue: run it with [`Worker::run`].
#[derive(Debug)]
pub struct Worker {
    queue: JobQueue,
    work: mpsc::UnboundedReceiver<Work>,
    unfinished: Vec<JobRecord>,
    recovered: Option<oneshot::Sender<()>>,
}

impl JobQueue {
    /// The queue of `store`, with every job it holds; the worker that will run new jobs
    /// and recover the unfinished ones. Only the master daemon opens it, holding the
    /// master's lock: the leftovers of writes a kill interrupted are removed first.
    pub fn open(store: JobStore) -> Result<(Self, Worker), JobStoreError> {
        let removed = store.remove_leftovers();
        if removed > 0 {
            tracing::info!(removed, "removed the leftovers of interrupted job writes");
        }
        let records = store.load_all()?;
        let next_id = records.last().map_or(1, |job| job.id + 1);
        let unfinished: Vec<JobRecord> = records
            .iter()
            .filter(|job| !job.state.ended())
            .cloned()
            .collect();
        let by_id = records
            .into_iter()
            .map(|job| (job.id, watch::Sender::new(job)))
            .collect();
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let queue = Self {
            shared: Arc::new(Shared {
                store,
                jobs: Mutex::new(Jobs { by_id, next_id }),
                work: work_tx,
            }),
        };
        queue.prune();
        let worker = Worker {
            queue: queue.clone(),
            work: work_rx,
            unfinished,
            recovered: None,
        };
        Ok((queue, worker))
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.shared.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `submission` as a queued job and hands it to the worker.
    pub fn submit(&self, submission: Submission) -> Result<Submitted, MasterError> {
        let token = match &submission {
            Submission::AddNode(add) => add.token.clone(),
            _ => None,
        };
        let op = submission.op();
        let (id, record) = {
            let mut jobs = self.jobs();
            let id = jobs.next_id;
            let record = JobRecord {
                id,
                op,
                state: JobState::Queued,
                steps: Vec::new(),
                submitted_at: unix_now(),
                ended_at: None,
                outcome: None,
                warnings: Vec::new(),
                failure: None,
                recovery: None,
            };
            self.shared
                .store
                .save(&record)
                .map_err(MasterError::JobRecord)?;
            jobs.next_id += 1;
            let sender = watch::Sender::new(record);
            let receiver = sender.subscribe();
            jobs.by_id.insert(id, sender);
            (id, receiver)
        };
        self.shared
            .work
            .send(Work { id, token })
            .map_err(|_| MasterError::Stopping)?;
        tracing::info!(job = id, summary = %record.borrow().op.summary(), "job submitted");
        Ok(Submitted { id, record })
    }

    /// Job `id`'s record as it changes.
    pub fn watch(&self, id: u64) -> Result<watch::Receiver<JobRecord>, MasterError> {
        self.jobs()
            .by_id
            .get(&id)
            .map(watch::Sender::subscribe)
            .ok_or(MasterError::UnknownJob(id))
    }

    /// Job `id`'s record now.
    pub fn get(&self, id: u64) -> Result<JobRecord, MasterError> {
        Ok(self.watch(id)?.borrow().clone())
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobRecord> {
        self.jobs()
            .by_id
            .values()
            .map(|sender| sender.borrow().clone())
            .collect()
    }

    /// Changes job `id`'s record with `change`, writes it, then shows it to watchers. A
    /// record that cannot be written is not shown either: what watchers see is on disk.
    fn update(
        &self,
        id: u64,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<JobRecord, MasterError> {
        let jobs = self.jobs();
        let sender = jobs.by_id.get(&id).ok_or(MasterError::UnknownJob(id))?;
        let mut record = sender.borrow().clone();
        change(&mut record);
        self.shared
            .store
            .save(&record)
            .map_err(MasterError::JobRecord)?;
        sender.send_replace(record.clone());
        Ok(record)
    }

    /// Ends job `id` as `result` says, with what recovery did, if it did anything.
    ///
    /// The end is shown to watchers even when it cannot be written (unlike a step: nothing
    /// follows it that the record must not claim), saying so: the job has ended, and
    /// callers waiting for its end must not wait for good. Its file still says it was
    /// running, so the next start's recovery takes it up again by its last recorded step.
    pub(super) fn finish(
        &self,
        id: u64,
        result: Result<(JobOutcome, Vec<String>), JobFailure>,
        recovery: Option<String>,
    ) {
        let ended = {
            let jobs = self.jobs();
            let Some(sender) = jobs.by_id.get(&id) else {
                tracing::error!(job = id, "cannot end an unknown job");
                return;
            };
            let mut record = sender.borrow().clone();
            end(&mut record, result, recovery);
            if let Err(error) = self.shared.store.save(&record) {
                tracing::error!(job = id, error = %Chain(&error), "cannot record the end of a job; the next start of gnt-masterd will take it up again");
                unrecorded_end(&mut record, &error);
            }
            sender.send_replace(record.clone());
            record
        };
        tracing::info!(job = id, state = ?ended.state, failure = ?ended.failure.as_ref().map(|f| &f.message), "job ended");
        self.prune();
    }

    /// Drops the oldest ended jobs beyond [`KEEP_ENDED`].
    fn prune(&self) {
        let mut jobs = self.jobs();
        let ended = jobs
            .by_id
            .values()
            .filter(|s| s.borrow().state.ended())
            .count();
        if ended <= KEEP_ENDED + PRUNE_SLACK {
            return;
        }
        let records: Vec<JobRecord> = jobs.by_id.values().map(|s| s.borrow().clone()).collect();
        for id in self.shared.store.prune(&records, KEEP_ENDED) {
            jobs.by_id.remove(&id);
        }
    }
}

/// Ends `record` as `result` says.
fn end(
    record: &mut JobRecord,
    result: Result<(JobOutcome, Vec<String>), JobFailure>,
    recovery: Option<String>,
) {
    record.ended_at = Some(unix_now());
    record.recovery = recovery;
    match result {
        Ok((outcome, warnings)) => {
            record.state = JobState::Succeeded;
            record.outcome = Some(outcome);
            record.warnings = warnings;
        }
        Err(failure) => {
            record.state = JobState::Failed;
            record.failure = Some(failure);
        }
    }
}

/// Says in `record`, an ended job's, that its end is not on disk because of `error`.
fn unrecorded_end(record: &mut JobRecord, error: &JobStoreError) {
    let note = format!(
        "the end of this job could not be recorded ({}); the next start of gnt-masterd will take it up again from its last recorded step",
        Chain(error)
    );
    match &mut record.failure {
        Some(failure) => failure.message = format!("{}; {note}", failure.message),
        None => record.warnings.push(note),
    }
}

/// Runs `run`; a panic in it (a defect) becomes its message instead of the worker's end,
/// so that the job ends and the queue goes on.
pub(super) async fn unwinding<T>(run: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(run).catch_unwind().await.map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        format!("gnt-masterd stopped the job on a defect (a panic: {message}); its effects are as its steps show")
    })
}

/// The failure of a job whose run panicked with `message`.
pub(super) fn panicked(message: String) -> JobFailure {
    JobFailure {
        kind: ErrorKind::Internal.code().to_owned(),
        message,
    }
}

/// The steps of a running job, recorded as they are taken.
struct JobProgress<'a> {
    queue: &'a JobQueue,
    id: u64,
}

impl Progress for JobProgress<'_> {
    fn step(&self, step: Step) -> Result<(), MasterError> {
        tracing::debug!(job = self.id, step = step.name(), note = %step.note(), "job step");
        self.queue
            .update(self.id, |record| {
                record.steps.push(StepRecord {
                    step,
                    at: unix_now(),
                })
            })
            .map(drop)
    }
}

impl Worker {
    /// What tells when recovery is over (the cluster whole again, before any new job
    /// runs): `gnt-masterd` activates the cluster IP then.
    pub fn recovered(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.recovered = Some(tx);
        rx
    }

    /// Recovers the unfinished jobs, then runs submitted jobs one at a time until
    /// `shutdown`; a job running then is let finish.
    pub async fn run(mut self, master: Arc<Master>, shutdown: CancellationToken) {
        for record in std::mem::take(&mut self.unfinished) {
            self.recover(&master, record).await;
        }
        if let Some(recovered) = self.recovered.take() {
            // Nobody listening is fine: the daemon may not have asked.
            let _ = recovered.send(());
        }
        loop {
            let work = tokio::select! {
                () = shutdown.cancelled() => return,
                work = self.work.recv() => match work {
                    Some(work) => work,
                    None => return,
                },
            };
            self.execute(&master, work).await;
        }
    }

    async fn recover(&self, master: &Master, record: JobRecord) {
        let queue = &self.queue;
        let id = record.id;
        let needs_secret =
            matches!(&record.op, JobOp::AddNode { token_id, .. } if !token_id.is_empty());
        if record.state == JobState::Queued && !needs_secret {
            // Nothing of it ran; it needs no secret: run it now, as if just submitted.
            tracing::info!(job = id, "running a job queued before the master stopped");
            self.execute(master, Work { id, token: None }).await;
            return;
        }
        let progress = JobProgress { queue, id };
        if let Err(error) = queue.update(id, |r| r.state = JobState::Running) {
            // Nothing is done that is not recorded: the next start tries again.
            tracing::error!(job = id, error = %Chain(&error), "cannot record recovery");
            let note = "not recovered: its recovery could not be recorded".to_owned();
            queue.finish(id, Err(JobFailure::of(&error)), Some(note));
            return;
        }
        let recovered = match unwinding(recovery::recover(master, &record, &progress)).await {
            Ok(recovered) => recovered,
            Err(message) => recovery::Recovered {
                note: "recovery stopped on a defect".to_owned(),
                result: Err(panicked(message)),
            },
        };
        tracing::info!(job = id, note = %recovered.note, "job recovered");
        queue.finish(id, recovered.result, Some(recovered.note));
    }

    async fn execute(&self, master: &Master, work: Work) {
        let queue = &self.queue;
        // Queued behind a destroy that succeeded: there is no cluster left to change.
        if master.destroyed.is_signalled() {
            queue.finish(work.id, Err(JobFailure::of(&MasterError::Destroyed)), None);
            return;
        }
        let record = match queue.update(work.id, |r| r.state = JobState::Running) {
            Ok(record) => record,
            Err(error) => {
                let failure = JobFailure::of(&error);
                queue.finish(work.id, Err(failure), None);
                return;
            }
        };
        tracing::info!(job = work.id, summary = %record.op.summary(), "job started");
        let progress = JobProgress { queue, id: work.id };
        let result = match unwinding(run_op(master, &record.op, work.token, &progress)).await {
            Ok(result) => result.map_err(|e| JobFailure::of(&e)),
            Err(message) => Err(panicked(message)),
        };
        queue.finish(work.id, result, None);
    }
}

/// Runs `op` from its start.
async fn run_op(
    master: &Master,
    op: &JobOp,
    token: Option<JoinToken>,
    progress: &dyn Progress,
) -> Result<(JobOutcome, Vec<String>), MasterError> {
    match op {
        JobOp::AddNode {
            name,
            secondary,
            token_id,
            readd,
        } => {
            // The secret is kept only in memory: a job whose token is lost with a stop
            // cannot run.
            if token.is_none() && !(*readd && token_id.is_empty()) {
                return Err(MasterError::Stopping);
            }
            let add = AddNode {
                name: name.clone(),
                secondary: secondary.clone(),
                token,
                readd: *readd,
            };
            let (node, changed) = master.add_node(add, progress).await?;
            let serial = changed.serial;
            Ok((JobOutcome::Added { node, serial }, changed.warnings))
        }
        JobOp::RemoveNode { name } => {
            let (changed, left) = master.remove_node(name, progress).await?;
            let serial = changed.serial;
            Ok((JobOutcome::Removed { serial, left }, changed.warnings))
        }
        JobOp::ModifyNode { name, flags } => {
            let (node, changed) = master.modify_node(name, *flags, progress).await?;
            let serial = changed.serial;
            Ok((JobOutcome::Modified { node, serial }, changed.warnings))
        }
        JobOp::Redistribute => {
            let done = master.redistribute_config(progress).await?;
            Ok((wire::redistributed(&done), Vec::new()))
        }
        JobOp::ModifyCluster { change } => {
            let changed = master.modify_cluster(*change, progress).await?;
            let serial = changed.serial;
            Ok((JobOutcome::ClusterModified { serial }, changed.warnings))
        }
        JobOp::RenewCrypto { parts } => {
            let renewal = master.renew_crypto(*parts, progress).await?;
            Ok(wire::crypto_renewed(renewal))
        }
        JobOp::DestroyCluster => {
            let (done, warnings) = master.destroy_cluster(progress).await?;
            Ok((JobOutcome::Destroyed(done), warnings))
        }
    }
}
