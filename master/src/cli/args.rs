//! The command line of `gnt`: clap's declarations, Ganeti's idiom
//! (`gnt cluster init|info|verify|redist-conf|activate-master-ip|deactivate-master-ip|modify`,
//! `gnt node token create|add|list|info|remove|modify`, `gnt job list|info|watch`,
//! `gnt rpc call`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gnt_core::error::ErrorKind;
use gnt_core::policy::IpPolicy;
use gnt_core::runner::TimeoutClass;
use gnt_core::{DEFAULT_NODE_PORT, DEFAULT_STATE_DIR};

use super::Failure;
use super::fields::{Selection, parse_selection};
use super::output::Output;
use crate::operations::init::{InitOptions, NameOrigin};
use crate::pki::Lifetimes;

/// Operate a gnt-rpc cluster.
#[derive(Debug, clap::Parser)]
#[command(name = "gnt", version)]
pub struct Cli {
    /// The state directory of this host's gnt-rpc daemons.
    #[arg(
        long,
        global = true,
        env = "GNT_STATE_DIR",
        default_value = DEFAULT_STATE_DIR,
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `gnt` commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The cluster as a whole.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Calling node procedures directly, for debugging.
    #[command(subcommand)]
    Rpc(RpcCommand),
    /// The master's jobs: every change to the cluster runs as one.
    #[command(subcommand)]
    Job(JobCommand),
}

/// `gnt job ...`.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// List the jobs, oldest first.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show one job: its steps, its result, and what recovery did.
    Info {
        /// The job's id.
        id: u64,
    },
    /// Follow a job's steps until it ends; exits as the job ended.
    Watch {
        /// The job's id.
        id: u64,
    },
}

/// How a command that changes the cluster waits for its job.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct JobArgs {
    /// Print the job's id and return at once; the job runs in the master all the same
    /// (`gnt job watch ID` follows it).
    #[arg(long)]
    pub submit: bool,
}

/// `gnt cluster ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster with this host as its master.
    Init(InitArgs),
    /// Show the cluster's configuration.
    Info {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Test the network from every online node to every online node, on both networks;
    /// check that every online node holds the configuration's ssconf, the cluster IP, and
    /// the certificates in use (a warning within 30 days of expiry, an error within 7).
    Verify,
    /// Make this node, a master candidate, the master (run it on the new master, with the
    /// old master's gnt-masterd stopped or its host gone).
    #[command(name = "master-failover")]
    MasterFailover {
        /// Skip the vote of the nodes: for when the old master and most nodes are gone for
        /// good. Dangerous: two masters could result if the old one comes back unfenced.
        #[arg(long)]
        no_voting: bool,
        /// With --no-voting: do not ask for confirmation.
        #[arg(long)]
        yes_do_it: bool,
    },
    /// Print the master this node's ssconf names.
    Getmaster,
    /// Send the configuration's ssconf to every online node now, and report per node.
    #[command(name = "redist-conf")]
    RedistConf {
        /// How to wait for the job.
        #[command(flatten)]
        job: JobArgs,
    },
    /// Configure the cluster IP on the master node (gnt-masterd does when it starts).
    ActivateMasterIp,
    /// Remove the cluster IP from the master node: the cluster is then reachable only at
    /// the master's own address.
    DeactivateMasterIp {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Change cluster parameters.
    Modify(ModifyArgs),
    /// Destroy the cluster, for good: the cluster IP comes off the master, this host's
    /// gnt-noded deletes its cluster state (keys included) and waits for a Join again, and
    /// gnt-masterd removes its configuration, CA, keys and jobs and stops. Refused while any
    /// other node is in the cluster (`gnt node remove` them first).
    Destroy {
        /// Really destroy it; without this option nothing is done.
        #[arg(long)]
        yes_do_it: bool,
    },
    /// Copy a file of this host to the same path on every other node (or those named),
    /// checked and replaced atomically by each; a node stores it only at a path it allows
    /// (its uploads directory, or one its gnt-noded has --allow-upload for).
    #[command(name = "copyfile")]
    CopyFile {
        /// Nodes to copy it to, comma-separated. Default: every node but the master.
        #[arg(long, value_delimiter = ',', value_name = "N1,N2")]
        nodes: Vec<String>,
        /// The file: an absolute path, the same on the nodes.
        file: PathBuf,
    },
    /// Renew certificates and keys while the cluster runs (no call is refused). With no
    /// option: go on with a renewal that waits for nodes.
    #[command(name = "renew-crypto")]
    RenewCrypto(RenewCryptoArgs),
}

/// `gnt cluster renew-crypto` arguments.
#[derive(Debug, clap::Args)]
pub struct RenewCryptoArgs {
    /// Every node makes a new key and gets a certificate for it; the old keys are
    /// destroyed (after a suspected key leak).
    #[arg(long)]
    pub new_node_certificates: bool,
    /// Issue the master's certificate again.
    #[arg(long)]
    pub new_master_certificate: bool,
    /// A new cluster CA: nodes trust both CAs, get certificates of the new one, then trust
    /// the new one only.
    #[arg(long)]
    pub new_cluster_certificate: bool,
    /// How to wait for the job.
    #[command(flatten)]
    pub job: JobArgs,
}

/// `gnt cluster modify` arguments.
#[derive(Debug, clap::Args)]
pub struct ModifyArgs {
    /// New netmask length of the cluster IP: 1 to 32 (IPv4) or 1 to 128 (IPv6). Changed in
    /// the configuration, then live on the master.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub master_netmask: Option<u32>,
    /// How many master candidates the cluster wants, the master included (Ganeti's
    /// `candidate_pool_size`, default 10); a larger pool is filled from the online nodes.
    #[arg(short = 'C', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub candidate_pool_size: Option<u32>,
    /// How to wait for the job.
    #[command(flatten)]
    pub job: JobArgs,
}

/// `gnt cluster init` arguments.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// 4 for a pure IPv4 cluster, 6 for hybrid IPv6/IPv4 (IPv6 primaries, IPv4 secondaries).
    #[arg(long, default_value = "4", value_name = "4|6")]
    pub primary_ip_version: IpPolicy,
    /// This host's IPv4 secondary address (required with --primary-ip-version 6).
    #[arg(short = 's', long, value_name = "IPV4")]
    pub secondary_ip: Option<String>,
    /// Netmask length of the cluster IP. Default: 32 (IPv4) or 128 (IPv6).
    #[arg(long, value_name = "N")]
    pub master_netmask: Option<u32>,
    /// The network device of this host the cluster IP goes on. Default: the device that
    /// holds this host's primary address.
    #[arg(long, value_name = "DEV")]
    pub master_netdev: Option<String>,
    /// This host's name. Default: $GNT_HOSTNAME, else the system host name.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// How long node and master certificates are valid: 20d, 36h, or seconds; at least 1m,
    /// and shorter than the CA's; gnt-masterd renews them at two thirds of it. Default: 365d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub certificate_validity: Option<Duration>,
    /// How long the cluster CA is valid, at most 36500d. Default: 3650d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ca_validity: Option<Duration>,
    /// The cluster's name; it must resolve, in the chosen family, to an unused address.
    pub cluster_name: String,
}

impl InitArgs {
    /// What init is asked for in state directory `state_dir`: this host's name defaults to
    /// `$GNT_HOSTNAME`, else the system's.
    pub(super) fn options(self, state_dir: &Path) -> Result<InitOptions, Failure> {
        let defaults = Lifetimes::default();
        let lifetimes = Lifetimes::new(
            self.certificate_validity
                .unwrap_or_else(|| defaults.certificate()),
            self.ca_validity.unwrap_or_else(|| defaults.ca()),
        )
        .map_err(|e| Failure::of(&e))?;
        let from_environment = std::env::var("GNT_HOSTNAME").ok();
        let (node_name, node_name_origin) = match (self.node_name, from_environment) {
            (Some(name), _) => (name, NameOrigin::Flag),
            (None, Some(name)) => (name, NameOrigin::Environment),
            (None, None) => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| (h.trim().to_owned(), NameOrigin::System))
                .map_err(|e| Failure {
                    kind: ErrorKind::Environment,
                    message: format!("cannot read this host's name: {e}; give it with --node-name"),
                })?,
        };
        Ok(InitOptions {
            state_dir: state_dir.to_owned(),
            cluster_name: self.cluster_name,
            policy: self.primary_ip_version,
            secondary_ip: self.secondary_ip,
            master_netmask: self.master_netmask,
            master_netdev: self.master_netdev,
            node_name,
            node_name_origin,
            node_port: DEFAULT_NODE_PORT,
            ping_timeout: Duration::from_secs(5),
            lifetimes,
        })
    }
}

/// `gnt node ...`.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Join tokens for new nodes.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add a node whose gnt-noded waits with a join token.
    Add {
        /// The node's IPv4 secondary address (required in a hybrid cluster).
        #[arg(short = 's', long, value_name = "IPV4")]
        secondary_ip: Option<String>,
        /// The token the node's gnt-noded was started with (or set GNT_JOIN_TOKEN, which,
        /// unlike an argument, other users of this host cannot read in the process list).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "GNT_JOIN_TOKEN",
            hide_env_values = true,
            required_unless_present = "readd"
        )]
        join_token: Option<String>,
        /// Take back a node the configuration lists already, e.g. after a reinstall: its
        /// secondary stays, its offline flag is cleared, it gets a new certificate if it
        /// joins with a token. Without a token, the node must still prove its membership.
        #[arg(long)]
        readd: bool,
        /// The node's name; it must resolve in the cluster's primary IP version.
        name: String,
        /// How to wait for the job.
        #[command(flatten)]
        job: JobArgs,
    },
    /// List the nodes.
    List {
        /// `text` (a table), `json`, or fields by Ganeti's names, comma-separated: name,
        /// pip, sip, master, offline, drained, master_candidate, role.
        #[arg(short = 'o', long, value_name = "FORMAT|FIELDS", value_parser = parse_selection, default_value = "text")]
        output: Selection,
        /// With fields: no header line.
        #[arg(long)]
        no_headers: bool,
        /// With fields: join the columns with this instead of aligning them.
        #[arg(long, value_name = "S")]
        separator: Option<String>,
    },
    /// Show nodes, one after the other (a short name does when it is one node's).
    Info {
        /// Output format: with one node a JSON object, with several an array of them.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// The nodes.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove a node: it leaves the cluster, the others get the new ssconf.
    Remove {
        /// The node.
        name: String,
        /// How to wait for the job.
        #[command(flatten)]
        job: JobArgs,
    },
    /// Change a node's flags (at most one set to yes at once), or its secondary address.
    Modify {
        /// Mark the node offline (no traffic at all; a master candidate is demoted) or back
        /// online.
        #[arg(short = 'O', long, value_name = "yes|no", value_parser = parse_yes_no)]
        offline: Option<bool>,
        /// Mark the node drained (still online, but never a master candidate: a candidate
        /// is demoted) or not (it becomes a candidate if the pool has room).
        #[arg(short = 'D', long, value_name = "yes|no", value_parser = parse_yes_no)]
        drained: Option<bool>,
        /// Make the node a master candidate (it gets a copy of what a master needs and may
        /// become master by `gnt cluster master-failover`) or not.
        #[arg(short = 'C', long, value_name = "yes|no", value_parser = parse_yes_no)]
        master_candidate: Option<bool>,
        /// Give the node a new secondary (IPv4) address, reachable from the master's; its
        /// certificate is reissued for it. Alone, without the flags.
        #[arg(short = 's', long, value_name = "IPV4")]
        secondary_ip: Option<String>,
        /// The node.
        name: String,
        /// How to wait for the job.
        #[command(flatten)]
        job: JobArgs,
    },
}

/// `gnt node token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a single-use join token and print how to use it.
    Create {
        /// How long it stays valid: 30m, 24h, 7d, or seconds.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// List the join tokens: id, expiry, and the node each added (never the secrets).
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Revoke an unused join token, at once.
    Delete {
        /// The token's id (the part before the first dot).
        id: String,
    },
}

/// `gnt rpc ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RpcCommand {
    /// Call a node procedure (gnt.node.v1.NodeAgent) on several nodes at once.
    Call {
        /// The procedure, e.g. Version, NodeInfo, TcpPing.
        procedure: String,
        /// Nodes to call, comma-separated. Default: all.
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "all",
            value_name = "N1,N2"
        )]
        nodes: Vec<String>,
        /// Call every node (the default).
        #[arg(long)]
        all: bool,
        /// The request as JSON (proto3 JSON mapping). Default: empty.
        #[arg(short = 'd', long = "data", value_name = "JSON", default_value = "")]
        data: String,
        /// Timeout class: urgent (60 s), fast (5 min), normal (15 min), slow (1 h), 4hrs, 1day.
        #[arg(long, default_value = "urgent")]
        timeout_class: TimeoutClass,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Call a procedure that changes or destroys node state (LeaveCluster, WriteSsconf,
        /// WriteTrust, ...) without asking for confirmation.
        #[arg(long)]
        force: bool,
    },
}

fn parse_yes_no(text: &str) -> Result<bool, NotYesOrNo> {
    match text {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(NotYesOrNo(other.to_owned())),
    }
}

/// A flag value other than `yes` or `no`.
#[derive(Debug, thiserror::Error)]
#[error("'{0}': use yes or no")]
struct NotYesOrNo(String);

/// A `--ttl` or `--*-validity` value that is not a duration.
#[derive(Debug, thiserror::Error)]
enum DurationArgError {
    #[error("'{0}': expected a number and s, m, h or d")]
    NotANumber(String),
    #[error("'{0}': the unit must be s, m, h or d")]
    Unit(String),
}

/// Parses `30m`, `24h`, `7d`, `90s` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, DurationArgError> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| DurationArgError::NotANumber(text.to_owned()))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(DurationArgError::Unit(text.to_owned())),
    };
    Ok(Duration::from_secs(value.saturating_mul(scale)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(
            parse_duration("1w")
                .unwrap_err()
                .to_string()
                .contains("the unit must be")
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
    }
}
