//! The agent's configuration: the command line of `gnt-noded`, and which source the join
//! token comes from (a file or the environment, never the command line, where `ps` would
//! show it; reading it is `gnt_transports::join::TokenSource`'s job).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use gnt_core::netutils::{AddressError, Host, HostPort, parse_ip};
use gnt_core::{DEFAULT_NODE_PORT, DEFAULT_STATE_DIR};
use gnt_transports::join::{TokenSource, TokenSourceError};

/// The environment variable that may hold the join token.
pub const TOKEN_ENV: &str = "GNT_JOIN_TOKEN";

/// The node agent of a gnt-rpc cluster.
///
/// Without cluster state (ssconf) in its state directory, gnt-noded waits for the master's
/// Join on its bootstrap address, authenticated by a join token from `gnt node token
/// create`. With cluster state, it serves the node procedures over mutual TLS.
#[derive(Debug, clap::Parser)]
#[command(name = "gnt-noded", version)]
pub struct Cli {
    /// Directory of the node's cluster state (ssconf, keys, certificates).
    #[arg(long, env = "GNT_STATE_DIR", default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,

    /// TCP port of the member API. Default: the port Join gave, else 1811.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Address the member API binds, overriding Join and the cluster policy (`::` is
    /// dual-stack, `0.0.0.0` IPv4 only, or one of this host's addresses). Default: the
    /// address Join gave, else the policy's wildcard.
    #[arg(long, value_name = "ADDR", value_parser = parse_ip)]
    pub bind: Option<IpAddr>,

    /// File holding the join token (`<id>.<secret>`); keep it readable by root only. The
    /// token may instead come from GNT_JOIN_TOKEN; it is never taken from the command line.
    #[arg(long, value_name = "FILE")]
    pub join_token_file: Option<PathBuf>,

    /// Where to wait for Join while not in a cluster: an address (port 1811) or
    /// `[v6]:port` / `v4:port`. Default: `[::]:1811` (dual-stack), or `0.0.0.0:1811` on a
    /// host without IPv6.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub bootstrap_listen: Option<SocketAddr>,

    /// A file the master may replace with UploadFile (repeatable). Files directly in
    /// `<state-dir>/uploads` are always allowed.
    #[arg(long = "allow-upload", value_name = "PATH")]
    pub allow_upload: Vec<PathBuf>,

    /// Largest file UploadFile accepts, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    pub max_upload_bytes: u64,

    /// Seconds calls in flight may run after SIGTERM or SIGINT before they are cut.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub shutdown_grace: u64,
}

/// A `--bootstrap-listen` value that is not an address.
#[derive(Debug, thiserror::Error)]
enum ListenArgError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("'{0}' is a name; give an IP address")]
    Name(gnt_core::netutils::Hostname),
}

fn parse_listen(text: &str) -> Result<SocketAddr, ListenArgError> {
    let parsed = HostPort::parse(text)?;
    match parsed.host {
        Host::Ip(ip) => Ok(SocketAddr::new(
            ip,
            parsed.port.unwrap_or(DEFAULT_NODE_PORT),
        )),
        Host::Name(name) => Err(ListenArgError::Name(name)),
    }
}

/// What files UploadFile may write, and how large.
#[derive(Debug, Clone)]
pub struct UploadPolicy {
    /// Files that may be replaced, besides those directly in `<state-dir>/uploads`.
    pub allowed: Vec<PathBuf>,
    /// Largest accepted size, in bytes.
    pub max_bytes: u64,
}

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The state directory.
    pub state_dir: PathBuf,
    /// `--port`.
    pub port: Option<u16>,
    /// `--bind`.
    pub bind: Option<IpAddr>,
    /// The join token's source.
    pub join_token: TokenSource,
    /// `--bootstrap-listen`.
    pub bootstrap_listen: Option<SocketAddr>,
    /// UploadFile's limits.
    pub upload: UploadPolicy,
    /// Grace period of a shutdown or a mode change.
    pub shutdown_grace: Duration,
}

impl AgentConfig {
    /// The defaults, with state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            port: None,
            bind: None,
            join_token: TokenSource::None,
            bootstrap_listen: None,
            upload: UploadPolicy {
                allowed: Vec::new(),
                max_bytes: 1 << 30,
            },
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// From the command line and the token environment variable's value (the file wins).
    pub fn from_cli(cli: Cli, token_env: Option<String>) -> Result<Self, TokenSourceError> {
        let join_token = match (cli.join_token_file, token_env) {
            (Some(path), _) => TokenSource::File(path),
            (None, Some(text)) => {
                TokenSource::Value(text.parse().map_err(|source| TokenSourceError::Malformed {
                    origin: TOKEN_ENV.to_owned(),
                    source,
                })?)
            }
            (None, None) => TokenSource::None,
        };
        Ok(Self {
            state_dir: cli.state_dir,
            port: cli.port,
            bind: cli.bind,
            join_token,
            bootstrap_listen: cli.bootstrap_listen,
            upload: UploadPolicy {
                allowed: cli.allow_upload,
                max_bytes: cli.max_upload_bytes,
            },
            shutdown_grace: Duration::from_secs(cli.shutdown_grace),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use clap::Parser;

    use super::*;

    #[test]
    fn defaults_follow_ganeti_and_the_issue() {
        let cli = Cli::try_parse_from(["gnt-noded"]).unwrap();
        assert_eq!(cli.state_dir, PathBuf::from("/var/lib/gnt-rpc"));
        let config = AgentConfig::from_cli(cli, None).unwrap();
        assert!(matches!(config.join_token, TokenSource::None));
        assert_eq!(config.port, None);
    }

    #[test]
    fn listen_addresses_take_brackets_and_default_to_port_1811() {
        let cli =
            Cli::try_parse_from(["gnt-noded", "--bootstrap-listen", "[fd00::1]:7000"]).unwrap();
        assert_eq!(
            cli.bootstrap_listen,
            Some("[fd00::1]:7000".parse().unwrap())
        );
        let cli = Cli::try_parse_from(["gnt-noded", "--bootstrap-listen", "10.0.0.1"]).unwrap();
        assert_eq!(cli.bootstrap_listen, Some("10.0.0.1:1811".parse().unwrap()));
        let err = Cli::try_parse_from(["gnt-noded", "--bootstrap-listen", "node1.example.com"])
            .unwrap_err();
        assert!(
            err.to_string().contains("is a name; give an IP address"),
            "{err}"
        );
        let err = Cli::try_parse_from(["gnt-noded", "--bind", "[::]"]).unwrap_err();
        assert!(
            err.to_string().contains("invalid IP address '[::]'"),
            "{err}"
        );
    }

    #[test]
    fn the_token_comes_from_a_file_or_the_environment_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        fs::write(&file, "abcdef.0123456789abcdef\n").unwrap();
        let cli = Cli::try_parse_from(["gnt-noded", "--join-token-file", file.to_str().unwrap()])
            .unwrap();
        let config =
            AgentConfig::from_cli(cli, Some("zzzzzz.zzzzzzzzzzzzzzzz".to_owned())).unwrap();
        assert_eq!(config.join_token.load().unwrap().unwrap().id(), "abcdef");

        let cli = Cli::try_parse_from(["gnt-noded"]).unwrap();
        let err = AgentConfig::from_cli(cli, Some("not-a-token".to_owned())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the join token from GNT_JOIN_TOKEN is invalid"
        );
        assert!(
            !format!("{err:?}").contains("not-a-token"),
            "the rejected value is not echoed"
        );

        fs::write(&file, "garbage").unwrap();
        assert!(TokenSource::File(file).load().is_err());
        // There is no command-line option for the token itself.
        assert!(
            Cli::try_parse_from(["gnt-noded", "--join-token", "abcdef.0123456789abcdef"]).is_err()
        );
    }
}
