//! The demo binary on a terminating signal: whether it comes while the cluster is kept
//! (`--keep`) or during the run, SIGTERM, SIGHUP and SIGINT all stop the daemons and remove
//! the lab's namespaces, their `/etc/netns` files and the working directory; and the
//! commands a kept demo suggests work as printed (root needed).
//!
//! Run with `cargo test -p gnt-integration --test demo`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What `gnt-demo` printed so far, and a channel for the rest.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    transcript: Vec<String>,
}

impl Demo {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gnt-demo"))
            .args(args)
            // Not under cargo: the demo must not rebuild the binaries the tests already built.
            .env_remove("CARGO")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            transcript: Vec::new(),
        }
    }

    /// The first line (from now on) that contains `marker`; fails after `within`.
    fn wait_for(&mut self, marker: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    if line.contains(marker) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "gnt-demo did not print `{marker}` within {within:?}:\n{}",
                        self.transcript.join("\n")
                    );
                }
            }
        }
    }

    /// Its exit code, waiting at most `within`.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "gnt-demo did not exit within {within:?} of the signal:\n{}",
                    self.transcript.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `gnt-demo ARGS`, runs `before_signal` on what it printed once it printed `marker`,
/// sends `signal`, and checks that it exits with 128 + the signal's number, leaving nothing
/// behind.
fn signal_cleans_up(
    args: &[&str],
    marker: &str,
    before_signal: impl FnOnce(&[String]),
    signal: Signal,
) {
    let mut demo = Demo::start(args);
    let pid = demo.child.id();
    let line = demo.wait_for("working directory: ", Duration::from_secs(60));
    let workdir = PathBuf::from(line.split("working directory: ").nth(1).unwrap().trim());
    assert!(workdir.starts_with(std::env::temp_dir()), "{line}");
    demo.wait_for(marker, Duration::from_secs(240));
    assert!(workdir.is_dir(), "{}", workdir.display());
    before_signal(&demo.transcript);
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
    let code = demo.exit_code(Duration::from_secs(60));
    // What it printed after the signal, for the messages below.
    demo.transcript.extend(demo.lines.try_iter());
    let transcript = demo.transcript.join("\n");
    assert_eq!(code, Some(128 + signal as i32), "{transcript}");

    let prefix = format!("gntlab-{pid}-");
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces.lines().any(|l| l.starts_with(&prefix)),
        "namespaces left:\n{namespaces}\n{transcript}"
    );
    let files: Vec<_> = std::fs::read_dir("/etc/netns")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(files.is_empty(), "/etc/netns left: {files:?}\n{transcript}");
    assert!(
        !workdir.exists(),
        "{} left\n{transcript}",
        workdir.display()
    );
    // The daemons ran with their state directories in the working directory. Killed, they
    // are reaped by PID 1 shortly after the demo exits: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(&workdir);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes left: {left:?}\n{transcript}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The command lines of the processes that name `path` in theirs.
fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[test]
fn sigterm_cleans_up_a_kept_demo_whose_hints_work() {
    signal_cleans_up(
        &["--keep", "--nodes", "1"],
        "to stop everything and clean up",
        hints_work,
        Signal::SIGTERM,
    );
}

/// Every command the kept demo suggests works when pasted into a root shell, whose `PATH`
/// has none of the workspace's binaries (nor grpcurl).
fn hints_work(transcript: &[String]) {
    let hints: Vec<&str> = transcript
        .iter()
        .map(|line| line.trim())
        .filter(|line| line.starts_with("ip netns exec "))
        .collect();
    assert!(hints.len() >= 2, "no hints in:\n{}", transcript.join("\n"));
    for hint in hints {
        let output = Command::new("sh")
            .args(["-c", hint])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`{hint}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn sighup_during_the_run_cleans_up() {
    // While node1 joins: daemons run on both hosts, and `gnt` commands are under way.
    signal_cleans_up(&["--nodes", "1"], "Adding node1", |_| (), Signal::SIGHUP);
}

#[test]
fn sigint_during_a_verify_cleans_up() {
    // While `gnt cluster verify` waits on the cut link: a command is in flight.
    signal_cleans_up(&["--nodes", "1"], "Cutting node1", |_| (), Signal::SIGINT);
}

#[test]
fn the_hints_of_a_kept_ipv4_demo_work() {
    // The agents of an IPv4 cluster listen on IPv4 only: the grpcurl hint must say so.
    signal_cleans_up(
        &["--keep", "--ipv4", "--nodes", "1"],
        "to stop everything and clean up",
        hints_work,
        Signal::SIGTERM,
    );
}
