//! The job store and queue without a cluster: records survive a reopen exactly, a corrupt
//! file is named, the oldest ended jobs are pruned, a submitted job is on disk before
//! `submit` returns, reading the store never fails the master's writes, and a job ends for
//! its watchers even when its end cannot be written or its run panics.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::queue::{Submission, panicked, unwinding};
use super::record::{JobFailure, JobOp, JobRecord, JobState, StepRecord};
use super::{JobQueue, JobStore, Step};
use crate::operations::node_modify::NodeFlags;

fn record(id: u64, state: JobState) -> JobRecord {
    JobRecord {
        id,
        op: JobOp::RemoveNode {
            name: format!("node{id}.lab.test"),
        },
        state,
        steps: vec![StepRecord {
            step: Step::Committed { serial: id },
            at: 1_700_000_000,
        }],
        submitted_at: 1_700_000_000,
        ended_at: state.ended().then_some(1_700_000_001),
        outcome: None,
        warnings: Vec::new(),
        failure: None,
        recovery: None,
    }
}

#[test]
fn a_record_reads_back_as_written_and_its_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::new(dir.path());
    let written = record(7, JobState::Running);
    store.save(&written).unwrap();
    // What a kill in the middle of the next write leaves behind: a reader skips it and
    // leaves it (it could be a write in progress); the master's start removes it.
    let leftover = dir.path().join("jobs/.0000000007.json.tmp-4242-1");
    std::fs::write(&leftover, b"{\"id\": 7, \"op\"").unwrap();
    assert_eq!(store.load_all().unwrap(), vec![written.clone()]);
    assert!(leftover.exists(), "a reader removed a temporary file");
    let (queue, _worker) = JobQueue::open(store).unwrap();
    assert_eq!(queue.list(), vec![written]);
    assert!(
        !leftover.exists(),
        "the interrupted write was not cleaned up"
    );
    let mode = std::fs::metadata(dir.path().join("jobs/0000000007.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_corrupt_job_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::new(dir.path());
    store.save(&record(1, JobState::Succeeded)).unwrap();
    std::fs::write(dir.path().join("jobs/0000000002.json"), b"{\"id\": 2,").unwrap();
    let error = store.load_all().unwrap_err().to_string();
    assert!(error.contains("0000000002.json is corrupt"), "{error}");
}

#[test]
fn reopening_finds_the_unfinished_jobs_and_the_next_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::new(dir.path());
    for (id, state) in [
        (1, JobState::Succeeded),
        (2, JobState::Running),
        (3, JobState::Queued),
        (4, JobState::Failed),
    ] {
        store.save(&record(id, state)).unwrap();
    }
    let (queue, _worker) = JobQueue::open(store.clone()).unwrap();
    let ids: Vec<u64> = queue.list().iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(queue.get(2).unwrap().state, JobState::Running);
    assert!(queue.get(9).is_err());

    let submitted = queue
        .submit(Submission::ModifyNode {
            name: "node1.lab.test".to_owned(),
            flags: NodeFlags {
                offline: Some(true),
                ..NodeFlags::default()
            },
        })
        .unwrap();
    assert_eq!(submitted.id, 5);
    // On disk before `submit` returned, as queued.
    let on_disk = store.load_all().unwrap();
    let job = on_disk.iter().find(|job| job.id == 5).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.op.summary(), "mark node node1.lab.test offline");
}

#[test]
fn only_the_oldest_ended_jobs_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::new(dir.path());
    let jobs: Vec<JobRecord> = (1..=6)
        .map(|id| {
            let state = if id == 2 {
                JobState::Running
            } else {
                JobState::Failed
            };
            record(id, state)
        })
        .collect();
    for job in &jobs {
        store.save(job).unwrap();
    }
    let mut pruned = store.prune(&jobs, 3);
    pruned.sort_unstable();
    assert_eq!(pruned, vec![1, 3]);
    let left: Vec<u64> = store.load_all().unwrap().iter().map(|j| j.id).collect();
    assert_eq!(left, vec![2, 4, 5, 6]);
}

/// The crash tests read the store (`load_all`) while gnt-masterd ran; the reader removed the
/// temporary file of a write in progress, whose rename then failed: a step was lost (a
/// node joined but never added), or the job's end (a job "running" for good).
#[test]
fn reading_the_store_never_fails_a_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::new(dir.path());
    let mut job = record(1, JobState::Running);
    store.save(&job).unwrap();
    let writing = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while writing.load(Ordering::Relaxed) {
                store.load_all().unwrap();
            }
        });
        let failed = (0..300).find_map(|n| {
            job.steps[0].at = n;
            store.save(&job).err()
        });
        writing.store(false, Ordering::Relaxed);
        assert!(failed.is_none(), "a write failed: {failed:?}");
    });
    assert_eq!(store.load_all().unwrap(), vec![job]);
}

#[test]
fn a_job_whose_end_cannot_be_written_is_shown_ended_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = JobStore::new(dir.path());
    let (queue, _worker) = JobQueue::open(store).unwrap();
    let mut submitted = queue.submit(Submission::Redistribute).unwrap();
    // Nothing can be written any more: the job directory is a file now.
    std::fs::remove_dir_all(dir.path().join("jobs")).unwrap();
    std::fs::write(dir.path().join("jobs"), b"").unwrap();
    let failure = JobFailure {
        kind: "unavailable".to_owned(),
        message: "the node went away".to_owned(),
    };
    queue.finish(submitted.id, Err(failure), None);
    let ended = submitted.record.borrow_and_update().clone();
    assert_eq!(ended.state, JobState::Failed);
    assert!(ended.ended_at.is_some());
    let message = ended.failure.unwrap().message;
    assert!(
        message.starts_with("the node went away; the end of this job could not be recorded"),
        "{message}"
    );
    assert!(message.contains("next start of gnt-masterd"), "{message}");
    assert_eq!(queue.get(submitted.id).unwrap().state, JobState::Failed);
}

#[tokio::test]
async fn a_run_that_panics_becomes_the_jobs_failure() {
    let fine = unwinding(async { 7 }).await;
    assert_eq!(fine, Ok(7));
    let run = async {
        let steps: Vec<u64> = Vec::new();
        steps[3]
    };
    let message = unwinding(run).await.unwrap_err();
    assert!(
        message.contains("a panic: index out of bounds"),
        "{message}"
    );
    let failure = panicked(message);
    assert_eq!(failure.kind, "internal_error");
    let message = unwinding(async { panic!("a defect") }).await.unwrap_err();
    assert!(message.contains("(a panic: a defect)"), "{message}");
}
