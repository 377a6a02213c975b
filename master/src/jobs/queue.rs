//! The job queue: a job is written down when it is submitted, then run by one worker, in
//! the order submitted, each to its end. Callers watch a job's record change step by step;
//! a caller that goes away changes nothing for the job.
//!
//! The worker first takes to an end the jobs a previous master left unfinished
//! ([`super::recovery`]), so no job starts before the cluster is whole again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gnt_core::clock::unix_now;
use gnt_core::error::Chain;
use gnt_core::join::JoinToken;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::record::{
    JobFailure, JobOp, JobOutcome, JobRecord, JobState, JobStore, JobStoreError, StepRecord,
};
use super::{Progress, Step, recovery, wire};
use crate::error::MasterError;
use crate::master::Master;
use crate::operations::node_add::AddNode;

/// How many ended jobs the master keeps (Ganeti archives; we drop the oldest).
const KEEP_ENDED: usize = 500;
/// Pruning waits until this many more have ended, so it is not done at every job.
const PRUNE_SLACK: usize = 50;

/// An operation to run, with what it needs that is never written down (a token's secret).
#[derive(Debug)]
pub enum Submission {
    /// `gnt node add`.
    AddNode(AddNode),
    /// `gnt node remove`.
    RemoveNode {
        /// The node's name, as given.
        name: String,
    },
    /// `gnt node modify --offline`.
    ModifyNode {
        /// The node's name, as given.
        name: String,
        /// The new offline flag.
        offline: bool,
    },
    /// `gnt cluster redist-conf`.
    Redistribute,
    /// `gnt cluster modify`.
    ModifyCluster {
        /// The new master netmask, if it changes.
        master_netmask: Option<u8>,
    },
}

impl Submission {
    fn op(&self) -> JobOp {
        match self {
            Self::AddNode(add) => JobOp::AddNode {
                name: add.name.clone(),
                secondary: add.secondary.clone(),
                token_id: add.token.id().to_owned(),
            },
            Self::RemoveNode { name } => JobOp::RemoveNode { name: name.clone() },
            Self::ModifyNode { name, offline } => JobOp::ModifyNode {
                name: name.clone(),
                offline: *offline,
            },
            Self::Redistribute => JobOp::Redistribute,
            Self::ModifyCluster { master_netmask } => JobOp::ModifyCluster {
                master_netmask: *master_netmask,
            },
        }
    }
}

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
    /// and recover the unfinished ones.
    pub fn open(store: JobStore) -> Result<(Self, Worker), JobStoreError> {
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
            Submission::AddNode(add) => Some(add.token.clone()),
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
    fn finish(
        &self,
        id: u64,
        result: Result<(JobOutcome, Vec<String>), JobFailure>,
        recovery: Option<String>,
    ) {
        let ended = self.update(id, |record| {
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
        });
        match ended {
            Ok(record) => {
                tracing::info!(job = id, state = ?record.state, failure = ?record.failure.as_ref().map(|f| &f.message), "job ended");
            }
            // The job's effects stand; its file still says it was running, so the next
            // start's recovery will look at it again and find it done.
            Err(error) => {
                tracing::error!(job = id, error = %Chain(&error), "cannot record the end of a job")
            }
        }
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
        if record.state == JobState::Queued && !matches!(record.op, JobOp::AddNode { .. }) {
            // Nothing of it ran; it needs no secret: run it now, as if just submitted.
            tracing::info!(job = id, "running a job queued before the master stopped");
            self.execute(master, Work { id, token: None }).await;
            return;
        }
        let progress = JobProgress { queue, id };
        if let Err(error) = queue.update(id, |r| r.state = JobState::Running) {
            tracing::error!(job = id, error = %Chain(&error), "cannot record recovery");
            return;
        }
        let recovered = recovery::recover(master, &record, &progress).await;
        tracing::info!(job = id, note = %recovered.note, "job recovered");
        queue.finish(id, recovered.result, Some(recovered.note));
    }

    async fn execute(&self, master: &Master, work: Work) {
        let queue = &self.queue;
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
        let result = run_op(master, &record.op, work.token, &progress).await;
        queue.finish(work.id, result.map_err(|e| JobFailure::of(&e)), None);
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
            name, secondary, ..
        } => {
            let Some(token) = token else {
                return Err(MasterError::Stopping);
            };
            let add = AddNode {
                name: name.clone(),
                secondary: secondary.clone(),
                token,
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
        JobOp::ModifyNode { name, offline } => {
            let (node, changed) = master.set_offline(name, *offline, progress).await?;
            let serial = changed.serial;
            Ok((JobOutcome::Modified { node, serial }, changed.warnings))
        }
        JobOp::Redistribute => {
            let done = master.redistribute_config(progress).await?;
            Ok((wire::redistributed(&done), Vec::new()))
        }
        JobOp::ModifyCluster { master_netmask } => {
            let changed = master.modify_cluster(*master_netmask, progress).await?;
            let serial = changed.serial;
            Ok((JobOutcome::ClusterModified { serial }, changed.warnings))
        }
    }
}
