//! A running cluster for each test, and small readers of `gnt`'s output.

use gnt_core::policy::IpPolicy;
use gnt_core::ssconf::{Published, SsconfStore};
use gnt_integration::cluster_lab::{ClusterLab, CommandOutput};

pub(crate) struct Running {
    pub(crate) cluster: ClusterLab,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Running {
    type Target = ClusterLab;

    fn deref(&self) -> &ClusterLab {
        &self.cluster
    }
}

/// A cluster of the master and `nodes` nodes, all added.
pub(crate) fn running(policy: IpPolicy, nodes: u8) -> Running {
    let running = empty(policy, nodes, &[]);
    running.cluster.bring_up().unwrap();
    running
}

/// A lab with nothing started yet.
pub(crate) fn empty(
    policy: IpPolicy,
    nodes: u8,
    aliases: &[(&str, &[std::net::IpAddr])],
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterLab::with_aliases(dir.path(), policy, nodes, aliases).unwrap();
    Running { cluster, _dir: dir }
}

/// Like [`empty`] (no aliases), gnt-masterd started with `args` besides its state directory.
pub(crate) fn empty_with_masterd_args(policy: IpPolicy, nodes: u8, args: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterLab::new(dir.path(), policy, nodes)
        .unwrap()
        .with_masterd_args(args);
    Running { cluster, _dir: dir }
}

/// Like [`empty`] (no aliases), every daemon started with `fd_limit` as its open-file limit.
pub(crate) fn empty_under_fd_limit(policy: IpPolicy, nodes: u8, fd_limit: u64) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterLab::new(dir.path(), policy, nodes)
        .unwrap()
        .with_fd_limit(fd_limit);
    Running { cluster, _dir: dir }
}

/// Runs `gnt ARGS`, which must succeed.
pub(crate) fn gnt_ok(cluster: &ClusterLab, args: &[&str]) -> CommandOutput {
    let out = cluster.gnt(args).unwrap();
    assert!(out.success(), "{out}");
    out
}

/// The configuration serial, from `gnt cluster info -o json`.
pub(crate) fn serial(cluster: &ClusterLab) -> u64 {
    let out = gnt_ok(cluster, &["cluster", "info", "-o", "json"]);
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    info["config_serial"].as_u64().unwrap()
}

/// The node names, from `gnt node list -o json`.
pub(crate) fn node_names(cluster: &ClusterLab) -> Vec<String> {
    let out = gnt_ok(cluster, &["node", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `gnt rpc call PROCEDURE ARGS -o json`, as (node, status) pairs, and the exit code.
pub(crate) fn rpc_statuses(
    cluster: &ClusterLab,
    procedure: &str,
    args: &[&str],
) -> (Vec<(String, String)>, i32) {
    let mut all = vec!["rpc", "call", procedure, "-o", "json"];
    all.extend(args);
    let out = cluster.gnt(&all).unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    let statuses = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (statuses, out.code)
}

/// The lines of `host`'s ssconf file `key`.
pub(crate) fn ssconf(cluster: &ClusterLab, host: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(cluster.state_dir(host).join(format!("ssconf_{key}"))).ok()
}

/// `host`'s ssconf as its store holds it: the set's serial, and the set.
pub(crate) fn ssconf_published(cluster: &ClusterLab, host: &str) -> Published {
    SsconfStore::new(cluster.state_dir(host))
        .read_published()
        .unwrap()
}

/// Every file under `dir` (at any depth) that `wanted` accepts.
pub(crate) fn files_under(
    dir: &std::path::Path,
    wanted: impl Fn(&std::path::Path) -> bool + Copy,
) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path, wanted));
        } else if wanted(&path) {
            found.push(path);
        }
    }
    found
}

/// Empties a node's state directory `state` as the refusals tell an operator to: all but
/// its join ledger.
pub(crate) fn empty_but_join_ledger(state: &std::path::Path) {
    for entry in std::fs::read_dir(state).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "join-ledger") {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// The fingerprint of the certificate `host`'s agent holds (its `node.pem`).
pub(crate) fn held_certificate(cluster: &ClusterLab, host: &str) -> String {
    let pem = std::fs::read(cluster.state_dir(host).join("node.pem")).unwrap();
    gnt_transports::fingerprint(
        &gnt_transports::Pem::from_bytes("node.pem", pem)
            .leaf_sha256()
            .unwrap(),
    )
}
