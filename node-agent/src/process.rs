//! What every gnt-rpc daemon and tool sets up in `main`: logging and stop signals.

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
