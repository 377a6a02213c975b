//! Cleanup on every terminating signal: SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`) and
//! SIGHUP (a closed terminal), the same way during the run as while the cluster is kept.
//!
//! The default action of those signals ends the process without running a destructor, which
//! would leave the lab's namespaces, their `/etc/netns` files, the working directory and the
//! daemons (adopted by PID 1) behind. The values that own them belong to the main thread,
//! which may be blocked in a `gnt` command when the signal comes; so a thread of its own
//! waits for the signals and removes everything by name instead: what runs in this
//! process's lab namespaces (named after its pid), the namespaces, the working directory.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, mpsc};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// Held by the main thread while it builds the lab: a signal's cleanup waits for the build
/// to finish rather than racing the creation of namespaces it would then miss.
pub(crate) static BUILDING: Mutex<()> = Mutex::new(());

static WORKDIR: OnceLock<PathBuf> = OnceLock::new();
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Starts the thread that waits for the signals, once they are registered: from then on
/// none of them ends the process before the cleanup.
pub(crate) fn install() -> anyhow::Result<()> {
    let (ready, registered) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("gnt-demo-signals".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let streams = (|| {
                    Ok::<_, std::io::Error>((
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::hangup())?,
                    ))
                })();
                let (mut interrupt, mut terminate, mut hangup) = match streams {
                    Ok(streams) => {
                        let _ = ready.send(Ok(()));
                        streams
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let received = tokio::select! {
                    _ = interrupt.recv() => Signal::SIGINT,
                    _ = terminate.recv() => Signal::SIGTERM,
                    _ = hangup.recv() => Signal::SIGHUP,
                };
                clean_up_and_exit(received)
            });
        })
        .context("cannot start the thread that waits for signals")?;
    registered
        .recv()
        .context("the thread that waits for signals stopped")?
        .context("cannot register handlers for SIGINT, SIGTERM and SIGHUP")
}

/// Names the working directory, removed with everything else on a signal.
pub(crate) fn remember_workdir(dir: PathBuf) {
    let _ = WORKDIR.set(dir);
}

/// Blocks for good once a signal's cleanup has begun: the main thread must not end the
/// process (by returning from `main`) before the cleanup thread has finished and exits.
pub(crate) fn wait_if_stopping() {
    if STOPPING.load(Ordering::SeqCst) {
        wait_forever()
    }
}

/// Blocks until a signal's cleanup ends the process.
pub(crate) fn wait_forever() -> ! {
    loop {
        std::thread::park();
    }
}

fn clean_up_and_exit(received: Signal) -> ! {
    STOPPING.store(true, Ordering::SeqCst);
    // Writes may fail (after SIGHUP the terminal is gone): they must not stop the cleanup.
    let _ = writeln!(
        std::io::stdout(),
        "\n== {received}: cleaning up: daemons stopped, namespaces and files removed"
    );
    // Never released: once the lab exists, no other is built before the exit.
    let _building = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
    let own = std::process::id();
    // Twice: a child the main thread started during the first pass (a `gnt` command, a
    // daemon) is caught by the second.
    for _ in 0..2 {
        kill_children(own);
        gnt_integration::lab::remove_labs_of(own);
    }
    if let Some(dir) = WORKDIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::io::stdout().flush();
    std::process::exit(128 + received as i32)
}

/// SIGKILL to every child of process `parent`, found in `/proc` (`ip netns exec` replaces
/// itself with the program it runs, so the daemons are children).
fn kill_children(parent: u32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
