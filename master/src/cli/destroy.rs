//! `gnt cluster destroy --yes-do-it`: refused without the option, on a node that is not the
//! master, and where there is no cluster; otherwise the destroy job in gnt-masterd
//! (`operations::destroy`), then the wait until the daemon has stopped and removed the
//! master directory, which it does once the job has ended.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gnt_core::error::ErrorKind;
use gnt_proto::master::v1::submit_job_request::Operation;
use gnt_proto::master::v1::{DestroyClusterRequest, DestroyClusterResponse, job};

use super::args::JobArgs;
use super::jobs::{Waited, run_job};
use super::{Failure, connect, failover, unexpected};
use crate::config::ConfigStore;
use crate::operations::destroy::node_left;
use crate::paths::MasterPaths;

/// Ganeti's refusal without `--yes-do-it`, word for word.
pub(super) const IRREVERSIBLE: &str = "Destroying a cluster is irreversible. If you really want destroy this cluster, supply the --yes-do-it option.";

/// How long gnt-masterd may take to stop once the job has ended: its calls in flight get
/// 30 seconds.
const STOP_PATIENCE: Duration = Duration::from_secs(45);

/// `gnt cluster destroy [--yes-do-it]`.
pub(super) async fn run(paths: &MasterPaths, yes_do_it: bool) -> Result<ExitCode, Failure> {
    let refused = |message: String| Failure {
        kind: ErrorKind::WrongState,
        message,
    };
    if !yes_do_it {
        return Err(Failure {
            kind: ErrorKind::WrongInput,
            message: IRREVERSIBLE.to_owned(),
        });
    }
    if let Some((this, master)) = failover::not_the_master(&paths.state_dir) {
        return Err(refused(format!(
            "this node ({this}) is not the master: the master is {master} (ssconf); run `gnt cluster destroy --yes-do-it` there"
        )));
    }
    if !ConfigStore::new(&paths.master_dir).exists() && node_left(&paths.state_dir) {
        return Err(refused(format!(
            "there is no cluster on this host to destroy: no configuration in {} and no ssconf in {}",
            paths.master_dir.display(),
            paths.state_dir.display()
        )));
    }
    let done = {
        let mut client = connect(paths).await?;
        let operation = Operation::DestroyCluster(DestroyClusterRequest {});
        match run_job(&mut client, operation, JobArgs { submit: false }).await? {
            Waited::Done(job::Result::Destroyed(done)) => done,
            Waited::Done(_) => return Err(unexpected()),
            Waited::NotWaited(code) => return Ok(code),
        }
    };
    print_left(&done);
    super::output::warnings(&done.warnings);
    // The daemon removes its directory once it has stopped; the socket goes with it.
    let deadline = Instant::now() + STOP_PATIENCE;
    while paths.master_dir.exists() {
        if Instant::now() > deadline {
            return Err(Failure {
                kind: ErrorKind::Timeout,
                message: format!(
                    "the master's node left the cluster, but gnt-masterd has not removed {} within {}s: see its log; once it stops, start it again and it removes the directory instead of starting",
                    paths.master_dir.display(),
                    STOP_PATIENCE.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "gnt-masterd removed {} (configuration, CA, master key, jobs) and stopped.",
        paths.master_dir.display()
    );
    println!(
        "Cluster {} destroyed. `gnt cluster init` makes a new cluster on this host; restart gnt-noded after it.",
        done.cluster_name
    );
    Ok(ExitCode::SUCCESS)
}

/// What the job did: the cluster IP, and the master's node.
fn print_left(done: &DestroyClusterResponse) {
    if !done.netdev.is_empty() {
        println!(
            "Cluster IP {} deactivated on {} ({}).",
            done.master_ip, done.master_node, done.netdev
        );
    } else if done.warnings.is_empty() {
        println!("Cluster IP {} was not active.", done.master_ip);
    }
    println!(
        "{} left the cluster: its gnt-noded deleted its ssconf, key and certificates and waits for a Join in bootstrap mode.",
        done.master_node
    );
}
