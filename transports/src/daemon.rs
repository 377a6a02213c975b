//! What every gnt-rpc daemon and tool sets up in `main`, written once: logging, the async
//! runtime, stop signals, and the exit that turns a failure into one line on standard error
//! and the exit code of its kind.
//!
//! A daemon's `main` is then: parse the command line, [`init_logging`], and hand its body
//! to [`run_daemon`], which raises the open-file limit ([`raise_fd_limit`]) and stops the
//! body on the first SIGTERM or SIGINT.

use std::future::Future;
use std::process::ExitCode;

use gnt_core::error::{Chain, Classify};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Installs logging: `tracing` to standard error, level from `RUST_LOG` (default `info`),
/// colours only when standard error is a terminal (never into journald). Call once, first.
pub fn init_logging() {
    init_logging_at("info");
}

/// Like [`init_logging`], with `default` as the level when `RUST_LOG` is unset (tools whose
/// output is their result, not a log, use `warn`).
pub fn init_logging_at(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT. Spawn it on the daemon's runtime.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop this process with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    shutdown.cancel();
}

/// The open-file limit assumed when it cannot be read: the usual default soft limit.
const USUAL_FD_LIMIT: u64 = 1024;

/// The process's open-file limit (`RLIMIT_NOFILE`, soft), which bounds its connections.
pub fn fd_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(USUAL_FD_LIMIT, |(soft, _)| soft)
}

/// Raises the soft open-file limit to the hard one, as daemons commonly do, and returns the
/// limit in force. Wherever nothing sets it the soft limit is 1,024 (systemd's default for
/// services too), while the hard limit usually allows far more (systemd: 524,288); the
/// bounds on connections ([`ConnectionLimits`](crate::ConnectionLimits)) follow it. A hard
/// limit of 1,024 stays 1,024, and the bounds still keep the listeners working.
pub fn raise_fd_limit() -> u64 {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit");
            return USUAL_FD_LIMIT;
        }
    };
    // An unlimited hard limit is not a value the soft one may take: the kernel's ceiling is.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let wanted = hard.min(ceiling);
    if soft >= wanted {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
        Ok(()) => {
            tracing::info!(from = soft, to = wanted, "open-file limit raised");
            wanted
        }
        Err(error) => {
            tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
            soft
        }
    }
}

/// Runs daemon `name`'s `body` on a multi-threaded runtime until it returns, with the
/// open-file limit raised first ([`raise_fd_limit`]); `body` gets a token that the first
/// SIGTERM or SIGINT cancels, and should then stop within its grace period. A failure is
/// reported by [`exit_on`].
pub fn run_daemon<F, Fut, E>(name: &str, body: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Classify,
{
    raise_fd_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        body(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit_on(name, &err),
    }
}

/// Reports `err` as `<name>: <message and its causes>` on standard error and returns the
/// exit code of its kind.
pub fn exit_on<E: Classify>(name: &str, err: &E) -> ExitCode {
    eprintln!("{name}: {}", Chain(err));
    ExitCode::from(err.kind().exit_code())
}
