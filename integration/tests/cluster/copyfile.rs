//! `gnt cluster copyfile` (issue 14): a file of the master host to the same path on the
//! nodes, over `UploadFile`; a node that does not allow the path refuses, and says so.
//! (The lab's hosts share one filesystem, so "the same path" is the same file here: what is
//! checked is what each node answers, and that the file arrives whole with its mode.)

use std::os::unix::fs::PermissionsExt;

use gnt_core::policy::IpPolicy;

use crate::support::{gnt_ok, running};

#[test]
fn a_file_goes_to_the_nodes_that_allow_its_path_and_the_others_say_why_not() {
    let cluster = running(IpPolicy::Ipv4, 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("motd");
    std::fs::write(&file, "welcome to the lab\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let path = file.to_str().unwrap();
    // node1's agent allows the path; node2's does not.
    cluster.stop_noded("node1", true).unwrap();
    cluster
        .start_noded_with("node1", None, &["--allow-upload", path])
        .unwrap();

    let copied = gnt_ok(&cluster, &["cluster", "copyfile", "--nodes", "node1", path]);
    assert!(
        copied
            .stdout
            .lines()
            .any(|l| l.starts_with("node1.lab.test") && l.contains(r#"{"bytesWritten":"19"}"#)),
        "{copied}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "welcome to the lab\n"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Every node but the master by default: node2 refuses the path.
    let all = cluster.gnt(&["cluster", "copyfile", path]).unwrap();
    eprintln!("{copied}{all}");
    assert_eq!(all.code, 1, "{all}");
    assert!(!all.stdout.contains("master.lab.test"), "{all}");
    let node2 = all
        .stdout
        .lines()
        .find(|l| l.starts_with("node2.lab.test"))
        .unwrap_or_default();
    assert!(node2.contains("--allow-upload"), "{all}");

    // A file that is not there: one line, nothing sent.
    let missing = cluster
        .gnt(&["cluster", "copyfile", "/nonexistent/file"])
        .unwrap();
    assert_ne!(missing.code, 0, "{missing}");
    assert_eq!(missing.stderr.trim().lines().count(), 1, "{missing}");
    assert!(missing.stderr.contains("/nonexistent/file"), "{missing}");
}
