//! `gnt`, the operator CLI, in Ganeti's idiom: `gnt cluster init|info|verify|redist-conf`,
//! `gnt cluster activate-master-ip|deactivate-master-ip|modify|destroy`,
//! `gnt node token create|add|list|info|remove|modify`, `gnt job list|info|watch`,
//! `gnt rpc call`.
//!
//! `cluster init` works on this host directly (there is no master daemon yet); everything
//! else asks `gnt-masterd` over its Unix socket. Every failure is one line on standard error,
//! and the exit code says what kind of failure it was (see `gnt_core::ErrorKind`).

mod args;
mod crypto;
mod destroy;
mod failover;
mod fields;
mod jobs;
mod master_ip;
mod output;
mod rpc;

use std::process::ExitCode;

use gnt_core::error::{Chain, Classify, ErrorKind, find_cause, kind_of_status};
use gnt_core::join::JoinToken;
use gnt_core::netutils::Resolver;
use gnt_proto::master::v1::master_client::MasterClient;
use gnt_proto::master::v1::submit_job_request::Operation;
use gnt_proto::master::v1::{
    AddNodeRequest, ClusterInfoRequest, CreateJoinTokenRequest, GetNodeRequest, ListNodesRequest,
    ModifyNodeRequest, RedistributeConfigRequest, RemoveNodeRequest, VerifyClusterRequest, job,
};
use gnt_proto::master::v1::{DeleteJoinTokenRequest, ListJoinTokensRequest};
use gnt_transports::{ConnectError, Connector};
use tonic::transport::Channel;

use crate::operations::init::init;
use crate::paths::MasterPaths;
use jobs::Waited;

pub use args::{
    Cli, ClusterCommand, Command, InitArgs, JobArgs, JobCommand, ModifyArgs, NodeCommand,
    RpcCommand, TokenCommand,
};
pub use output::Output;

/// A failed command: the message for standard error and the kind for the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// One line, with its causes.
    pub message: String,
}

impl Classify for Failure {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl Failure {
    fn of<E: Classify>(err: &E) -> Self {
        Self {
            kind: err.kind(),
            message: Chain(err).to_string(),
        }
    }

    fn status(status: &tonic::Status) -> Self {
        Self {
            kind: kind_of_status(status),
            message: status.message().to_owned(),
        }
    }
}

/// A job that ended with another operation's result: a defect of the master.
fn unexpected() -> Failure {
    Failure {
        kind: ErrorKind::Internal,
        message: "the master answered with the result of another operation".to_owned(),
    }
}

/// Runs a command; `Ok` carries the exit code of a command that ran (non-zero when, e.g.,
/// verify found problems).
pub async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let paths = MasterPaths::new(&cli.state_dir);
    match cli.command {
        Command::Cluster(ClusterCommand::Init(args)) => cluster_init(&cli.state_dir, args).await,
        Command::Cluster(ClusterCommand::Info { output }) => {
            let info = connect(&paths)
                .await?
                .cluster_info(ClusterInfoRequest {})
                .await;
            output::cluster_info(&info.map_err(|s| Failure::status(&s))?.into_inner(), output);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(ClusterCommand::Verify) => cluster_verify(&paths).await,
        Command::Cluster(ClusterCommand::RedistConf { job }) => {
            let mut client = connect(&paths).await?;
            let operation = Operation::RedistributeConfig(RedistributeConfigRequest {});
            match jobs::run_job(&mut client, operation, job).await? {
                Waited::Done(job::Result::Redistributed(done)) => Ok(output::redistribution(done)),
                Waited::Done(_) => Err(unexpected()),
                Waited::NotWaited(code) => Ok(code),
            }
        }
        Command::Cluster(ClusterCommand::MasterFailover {
            no_voting,
            yes_do_it,
        }) => failover::run(&paths, no_voting, yes_do_it).await,
        Command::Cluster(ClusterCommand::Getmaster) => failover::getmaster(&cli.state_dir),
        Command::Cluster(ClusterCommand::ActivateMasterIp) => master_ip::activate(&paths).await,
        Command::Cluster(ClusterCommand::DeactivateMasterIp { yes }) => {
            master_ip::deactivate(&paths, yes).await
        }
        Command::Cluster(ClusterCommand::Modify(args)) => master_ip::modify(&paths, args).await,
        Command::Cluster(ClusterCommand::Destroy { yes_do_it }) => {
            destroy::run(&paths, yes_do_it).await
        }
        Command::Cluster(ClusterCommand::RenewCrypto(args)) => crypto::renew(&paths, args).await,
        Command::Cluster(ClusterCommand::CopyFile { nodes, file }) => {
            copy_file(&paths, file, nodes).await
        }
        Command::Node(command) => node(&paths, command).await,
        Command::Rpc(RpcCommand::Call {
            procedure,
            nodes,
            all: _,
            data,
            timeout_class,
            output,
            force,
        }) => {
            let call = rpc::Call {
                procedure,
                nodes,
                data,
                class: timeout_class,
                format: output,
                force,
            };
            rpc::call(&paths, call).await
        }
        Command::Job(command) => {
            let mut client = connect(&paths).await?;
            match command {
                JobCommand::List { output } => jobs::list(&mut client, output).await,
                JobCommand::Info { id } => jobs::info(&mut client, id).await,
                JobCommand::Watch { id } => jobs::watch(&mut client, id).await,
            }
        }
    }
}

/// A client of the local master daemon.
async fn connect(paths: &MasterPaths) -> Result<MasterClient<Channel>, Failure> {
    let unreachable = |kind: ErrorKind, why: &str| {
        let advice = if kind == ErrorKind::PermissionDenied {
            "; the master socket is root's alone: run gnt as root".to_owned()
        } else if let Some(elsewhere) = failover::elsewhere(&paths.state_dir) {
            elsewhere
        } else {
            format!(
                "; is gnt-masterd running on this host (`gnt-masterd --state-dir {}`)?",
                paths.state_dir.display()
            )
        };
        Failure {
            kind,
            message: format!(
                "cannot reach gnt-masterd at {}: {why}{advice}",
                paths.socket.display()
            ),
        }
    };
    // Not `Path::exists`, which says "no" for a socket this user may not even look at.
    match std::fs::metadata(&paths.socket) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unreachable(ErrorKind::Unavailable, "no such socket"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(unreachable(
                ErrorKind::PermissionDenied,
                "permission denied",
            ));
        }
        Err(e) => return Err(unreachable(ErrorKind::Unavailable, &e.to_string())),
    }
    let channel =
        Connector::unix(&paths.socket)
            .channel()
            .await
            .map_err(
                |e| match find_cause::<ConnectError>(&e).map(Classify::kind) {
                    Some(ErrorKind::PermissionDenied) => {
                        unreachable(ErrorKind::PermissionDenied, "permission denied")
                    }
                    _ => unreachable(ErrorKind::Unavailable, &Chain(&e).to_string()),
                },
            )?;
    Ok(MasterClient::new(channel))
}

async fn cluster_init(state_dir: &std::path::Path, args: InitArgs) -> Result<ExitCode, Failure> {
    let options = args.options(state_dir)?;
    let resolver = Resolver::system().map_err(|e| Failure::of(&e))?;
    let report = init(&options, &resolver)
        .await
        .map_err(|e| Failure::of(&e))?;
    output::initialised(&report.config, state_dir);
    Ok(ExitCode::SUCCESS)
}

async fn cluster_verify(paths: &MasterPaths) -> Result<ExitCode, Failure> {
    let mut client = connect(paths).await?;
    let info = client
        .cluster_info(ClusterInfoRequest {})
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    println!(
        "Verifying cluster {}: network test from every online node to every online node, ssconf of every online node, the cluster IP, certificates",
        info.cluster_name
    );
    let verdict = client
        .verify_cluster(VerifyClusterRequest {})
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner();
    Ok(output::verification(&verdict))
}

async fn node(paths: &MasterPaths, command: NodeCommand) -> Result<ExitCode, Failure> {
    let status = |s: tonic::Status| Failure::status(&s);
    match command {
        NodeCommand::Token(TokenCommand::Create { ttl }) => {
            let request = CreateJoinTokenRequest {
                ttl: prost_types::Duration::try_from(ttl).ok(),
            };
            let token = connect(paths)
                .await?
                .create_join_token(request)
                .await
                .map_err(status)?
                .into_inner();
            output::token(&token);
        }
        NodeCommand::Token(TokenCommand::List { output }) => {
            let tokens = connect(paths)
                .await?
                .list_join_tokens(ListJoinTokensRequest {})
                .await
                .map_err(status)?
                .into_inner();
            output::tokens(&tokens.tokens, output);
        }
        NodeCommand::Token(TokenCommand::Delete { id }) => {
            let done = connect(paths)
                .await?
                .delete_join_token(DeleteJoinTokenRequest { id: id.clone() })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "Join token {id} revoked; configuration serial {}.",
                done.config_serial
            );
        }
        NodeCommand::Add {
            secondary_ip,
            join_token,
            readd,
            name,
            job,
        } => {
            // A token the master would refuse is refused here, before the master is
            // contacted, with the same one-line message (and without echoing it, as clap
            // would if it parsed the argument).
            let token = join_token
                .map(|t| t.parse::<JoinToken>())
                .transpose()
                .map_err(|e| Failure::of(&e))?;
            let request = AddNodeRequest {
                name,
                secondary_ip: secondary_ip.unwrap_or_default(),
                join_token: token.map(|t| t.expose()).unwrap_or_default(),
                readd,
            };
            let mut client = connect(paths).await?;
            match jobs::run_job(&mut client, Operation::AddNode(request), job).await? {
                Waited::Done(job::Result::Added(added)) => output::added(&added, readd),
                Waited::Done(_) => return Err(unexpected()),
                Waited::NotWaited(code) => return Ok(code),
            }
        }
        NodeCommand::List {
            output,
            no_headers,
            separator,
        } => {
            let nodes = connect(paths)
                .await?
                .list_nodes(ListNodesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            match output {
                fields::Selection::Text => fields::node_list(&nodes.nodes, Output::Text),
                fields::Selection::Json => fields::node_list(&nodes.nodes, Output::Json),
                fields::Selection::Fields(chosen) => {
                    let lines =
                        fields::lines(&nodes.nodes, &chosen, !no_headers, separator.as_deref());
                    for line in lines {
                        println!("{line}");
                    }
                }
            }
        }
        NodeCommand::Info { names, output } => {
            // Every name is looked up before anything is printed: one unknown name is the
            // command's failure, not a half-printed list.
            let mut client = connect(paths).await?;
            let mut nodes = Vec::with_capacity(names.len());
            for name in names {
                let node = client
                    .get_node(GetNodeRequest { name })
                    .await
                    .map_err(status)?
                    .into_inner();
                nodes.push(node);
            }
            fields::node_info(&nodes, output);
        }
        NodeCommand::Remove { name, job } => {
            let mut client = connect(paths).await?;
            let request = RemoveNodeRequest { name: name.clone() };
            let removed =
                match jobs::run_job(&mut client, Operation::RemoveNode(request), job).await? {
                    Waited::Done(job::Result::Removed(removed)) => removed,
                    Waited::Done(_) => return Err(unexpected()),
                    Waited::NotWaited(code) => return Ok(code),
                };
            println!(
                "Node {name} removed; configuration serial {}.",
                removed.config_serial
            );
            if removed.left {
                println!(
                    "Its gnt-noded now waits for a new join token: the one it joined with will not work again."
                );
            }
            output::warnings(&removed.warnings);
        }
        NodeCommand::Modify {
            offline,
            drained,
            master_candidate,
            secondary_ip,
            name,
            job,
        } => {
            let mut client = connect(paths).await?;
            let request = ModifyNodeRequest {
                name,
                offline,
                drained,
                master_candidate,
                secondary_ip: secondary_ip.clone().unwrap_or_default(),
            };
            let request_secondary = secondary_ip;
            let node = match jobs::run_job(&mut client, Operation::ModifyNode(request), job).await?
            {
                Waited::Done(job::Result::Modified(node)) => node,
                Waited::Done(_) => return Err(unexpected()),
                Waited::NotWaited(code) => return Ok(code),
            };
            match (&request_secondary, node.addresses.as_ref()) {
                (Some(_), Some(addresses)) => println!(
                    "Node {} now has secondary ip {}.",
                    addresses.name, addresses.secondary_ip
                ),
                _ => println!("{}", output::modified(&node)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `gnt cluster copyfile`.
async fn copy_file(
    paths: &MasterPaths,
    file: std::path::PathBuf,
    nodes: Vec<String>,
) -> Result<ExitCode, Failure> {
    // Relative to where gnt runs, as an operator means it; gnt-masterd runs elsewhere.
    let file = std::path::absolute(&file).unwrap_or(file);
    let request = gnt_proto::master::v1::CopyFileRequest {
        path: file.display().to_string(),
        nodes,
    };
    let mut results = connect(paths)
        .await?
        .copy_file(request)
        .await
        .map_err(|s| Failure::status(&s))?
        .into_inner()
        .results;
    output::call_results(&mut results, Output::Text);
    let failed = results
        .iter()
        .filter(|r| {
            !matches!(
                r.status(),
                gnt_proto::master::v1::CallStatus::Ok | gnt_proto::master::v1::CallStatus::Offline
            )
        })
        .count();
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
