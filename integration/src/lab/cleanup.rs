//! Removing labs: a lab's own namespaces when it is dropped, and those of dead test runs.

use std::fs;
use std::path::Path;
use std::process::Command;

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

fn remove_netns(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(name));
}
