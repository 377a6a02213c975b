//! Jobs in the CLI: how a command that changes the cluster waits for its job (submit, then
//! follow its steps until it ends, or print its id with `--submit`), and `gnt job
//! list|info|watch`.
//!
//! Steps go to standard error, and only when it is a terminal, so that scripts reading
//! standard output see exactly what they saw before jobs existed. Ctrl-C, or a master that
//! goes away, stops only the waiting: the job runs on, and the message says how to follow it.

use std::io::IsTerminal;
use std::process::ExitCode;

use futures_util::StreamExt;
use gnt_core::error::ErrorKind;
use gnt_proto::master::v1::master_client::MasterClient;
use gnt_proto::master::v1::{
    CallStatus, GetJobRequest, Job, JobStatus, ListJobsRequest, SubmitJobRequest, WatchJobRequest,
    job, submit_job_request,
};
use serde_json::json;
use tonic::transport::Channel;

use super::Failure;
use super::args::JobArgs;
use super::output::{Output, table};
use crate::operations::utc;

/// What waiting for a job came to.
pub(super) enum Waited {
    /// The job succeeded: its result.
    Done(job::Result),
    /// The caller did not wait (`--submit`), or stopped waiting (Ctrl-C).
    NotWaited(ExitCode),
}

/// Submits `operation` and, unless `--submit`, follows it to its end: the job's result, or
/// its failure as the command's.
pub(super) async fn run_job(
    client: &mut MasterClient<Channel>,
    operation: submit_job_request::Operation,
    args: JobArgs,
) -> Result<Waited, Failure> {
    let submitted = client
        .submit_job(SubmitJobRequest {
            operation: Some(operation),
        })
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    let id = submitted.job_id;
    if args.submit {
        println!("JobID: {id}");
        return Ok(Waited::NotWaited(ExitCode::SUCCESS));
    }
    let show = std::io::stderr().is_terminal();
    let followed = tokio::select! {
        job = follow(client, id, |step| if show { eprintln!("{step}") }) => job?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("gnt: stopped waiting; job {id} runs on in gnt-masterd: `gnt job watch {id}` follows it");
            return Ok(Waited::NotWaited(ExitCode::from(130)));
        }
    };
    let result = ended(&followed)?;
    // A modified node's record has no room for warnings: the job's are the modify's.
    if matches!(result, job::Result::Modified(_)) {
        super::output::warnings(&followed.warnings);
    }
    Ok(Waited::Done(result))
}

/// The result of a job that ended, or its failure.
fn ended(job: &Job) -> Result<job::Result, Failure> {
    if job.status() == JobStatus::Succeeded
        && let Some(result) = &job.result
    {
        return Ok(result.clone());
    }
    Err(Failure {
        kind: ErrorKind::from_code(&job.error_kind).unwrap_or(ErrorKind::Internal),
        message: if job.error.is_empty() {
            format!("job {} failed", job.id)
        } else {
            job.error.clone()
        },
    })
}

/// Follows job `id`, passing each new step's line to `show`, until it ends.
async fn follow(
    client: &mut MasterClient<Channel>,
    id: u64,
    mut show: impl FnMut(String),
) -> Result<Job, Failure> {
    let lost = |why: String| Failure {
        kind: ErrorKind::Unavailable,
        message: format!(
            "lost gnt-masterd while following job {id} ({why}); the job is not affected: `gnt job watch {id}` follows it"
        ),
    };
    let mut stream = client
        .watch_job(WatchJobRequest { job_id: id })
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    let mut shown = 0;
    while let Some(next) = stream.next().await {
        let job = next.map_err(|s| lost(s.message().to_owned()))?;
        for step in job.steps.iter().skip(shown) {
            show(step_line(job.id, step));
        }
        shown = job.steps.len();
        if job.ended_at_unix != 0 {
            return Ok(job);
        }
    }
    Err(lost("the stream ended early".to_owned()))
}

fn step_line(id: u64, step: &gnt_proto::master::v1::JobStep) -> String {
    let mut line = format!("{} job {id}: {}", utc(step.at_unix), step.name);
    if !step.note.is_empty() {
        line.push_str(": ");
        line.push_str(&step.note);
    }
    line
}

fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "success",
        JobStatus::Failed => "error",
        JobStatus::Unspecified => "unknown",
    }
}

/// `gnt job list`.
pub(super) async fn list(
    client: &mut MasterClient<Channel>,
    output: Output,
) -> Result<ExitCode, Failure> {
    let jobs = client
        .list_jobs(ListJobsRequest {})
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner()
        .jobs;
    if output == Output::Json {
        let list: Vec<_> = jobs
            .iter()
            .map(|j| {
                json!({
                    "id": j.id,
                    "status": status_name(j.status()),
                    "summary": j.summary,
                    "submitted_at": utc(j.submitted_at_unix),
                    "error": j.error,
                    "recovery": j.recovery,
                })
            })
            .collect();
        println!("{:#}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.to_string(),
                status_name(j.status()).to_owned(),
                utc(j.submitted_at_unix),
                j.summary.clone(),
            ]
        })
        .collect();
    table(&["ID", "Status", "Submitted", "Summary"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// `gnt job info ID`.
pub(super) async fn info(client: &mut MasterClient<Channel>, id: u64) -> Result<ExitCode, Failure> {
    let job = client
        .get_job(GetJobRequest { job_id: id })
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    println!("Job ID:    {}", job.id);
    println!("Operation: {}", job.summary);
    println!("Status:    {}", status_name(job.status()));
    println!("Submitted: {}", utc(job.submitted_at_unix));
    if job.ended_at_unix != 0 {
        println!("Ended:     {}", utc(job.ended_at_unix));
    }
    println!("Steps:");
    for step in &job.steps {
        println!("  {}", step_line(job.id, step));
    }
    describe_end(&job);
    Ok(ExitCode::SUCCESS)
}

/// `gnt job watch ID`: exits 0 if the job succeeded, else with its failure's code.
pub(super) async fn watch(
    client: &mut MasterClient<Channel>,
    id: u64,
) -> Result<ExitCode, Failure> {
    let job = follow(client, id, |line| println!("{line}")).await?;
    describe_end(&job);
    // The failure is on standard output already, with the job's other lines.
    Ok(match ended(&job) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure.kind.exit_code()),
    })
}

fn describe_end(job: &Job) {
    if !job.recovery.is_empty() {
        println!("Recovery:  {}", job.recovery);
    }
    match &job.result {
        Some(job::Result::Added(added)) => {
            println!(
                "Result:    node added; configuration serial {}",
                added.config_serial
            );
            for warning in &added.warnings {
                println!("Warning:   {warning}");
            }
        }
        Some(job::Result::Removed(removed)) => {
            println!(
                "Result:    node removed{}; configuration serial {}",
                if removed.left { " and left" } else { "" },
                removed.config_serial
            );
            for warning in &removed.warnings {
                println!("Warning:   {warning}");
            }
        }
        Some(job::Result::Modified(node)) => {
            println!("Result:    {}", super::output::modified(node));
            for warning in &job.warnings {
                println!("Warning:   {warning}");
            }
        }
        Some(job::Result::ClusterModified(done)) => {
            println!(
                "Result:    cluster modified; configuration serial {}",
                done.config_serial
            );
            for warning in &done.warnings {
                println!("Warning:   {warning}");
            }
        }
        Some(job::Result::Destroyed(done)) => println!(
            "Result:    cluster {} destroyed: {} left it",
            done.cluster_name, done.master_node
        ),
        Some(job::Result::Redistributed(done)) => {
            println!(
                "Result:    ssconf of configuration serial {} sent",
                done.config_serial
            );
            for node in &done.nodes {
                if !matches!(node.status(), CallStatus::Ok | CallStatus::Offline) {
                    println!("Warning:   {} did not take it: {}", node.node, node.failure);
                }
            }
        }
        Some(job::Result::CryptoRenewed(done)) => super::crypto::print_renewal(done),
        None if !job.error.is_empty() => println!("Error:     {} ({})", job.error, job.error_kind),
        None => {}
    }
}
