//! Removing labs: a lab's own namespaces when it is dropped, those of dead test runs, and
//! (from a signal handler's thread) every lab of a process.

use std::fs;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Lab, PREFIX};

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &self.hosts {
            remove_netns(&host.netns);
        }
        remove_netns(&self.switch);
    }
}

/// Removes namespaces (and their files) left by test processes that no longer exist.
pub fn sweep_leftovers() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&format!("{PREFIX}-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            tracing::info!(netns = %name, "removing a namespace left by a dead test run");
            remove_netns(&name);
        }
    }
}

/// Removes every lab of process `pid` (namespaces `gntlab-<pid>-…` and their files), first
/// killing whatever still runs in them. For a program cleaning up on a signal, from a thread
/// that cannot reach the [`Lab`] values: those belong to a thread that may be busy.
pub fn remove_labs_of(pid: u32) {
    let prefix = format!("{PREFIX}-{pid}-");
    // /etc/netns too: a signal between `ip netns add` and the files leaves files only.
    let mut names: Vec<String> = ["/run/netns", "/etc/netns"]
        .iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        kill_processes_in(&name);
        remove_netns(&name);
    }
}

/// SIGKILL to every process in namespace `netns`: `ip netns del` only unmounts the name, the
/// processes would keep running.
fn kill_processes_in(netns: &str) {
    let Ok(output) = Command::new("ip").args(["netns", "pids", netns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn remove_netns(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(name));
}
