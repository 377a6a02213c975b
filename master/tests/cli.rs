//! The operator-facing behaviour of the real `gnt` and `gnt-masterd` binaries that needs no
//! cluster: refusals of bad input before anything is touched, and the one-line messages and
//! exit codes when the master is not there. (The cluster itself is tested end to end in
//! `integration/tests/cluster`.)
//!
//! Being an integration test of this package also makes `cargo test --workspace` build
//! `gnt` and `gnt-masterd` next to the other test binaries, where the end-to-end tests of
//! `gnt-integration` find them.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a failed assertion"
)]

use std::path::Path;
use std::process::{Command, Output};

use gnt_core::ErrorKind;

/// `program` with its state in `state_dir` and its logs off.
fn command(program: &str, state_dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("GNT_STATE_DIR", state_dir)
        .env("RUST_LOG", "off");
    command
}

fn run(program: &str, state_dir: &Path, args: &[&str]) -> Output {
    command(program, state_dir).args(args).output().unwrap()
}

fn gnt(state_dir: &Path, args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_gnt"), state_dir, args)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The state directory holds nothing after a refused command.
fn assert_untouched(state_dir: &Path) {
    let entries: Vec<_> = std::fs::read_dir(state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(entries.is_empty(), "a refused command left {entries:?}");
}

#[test]
fn an_unknown_primary_ip_version_is_a_usage_error_naming_the_choices() {
    let state = tempfile::tempdir().unwrap();
    let output = gnt(
        state.path(),
        &["cluster", "init", "--primary-ip-version", "5", "c1.example"],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("invalid primary IP version '5'")
            && message.contains("use 4 (IPv4) or 6 (hybrid IPv6/IPv4)"),
        "{message}"
    );
    assert_untouched(state.path());
}

#[test]
fn a_netmask_out_of_the_family_bounds_is_refused_before_anything_is_written() {
    let state = tempfile::tempdir().unwrap();
    for (version, netmask, bounds) in [("6", "129", "use 1 to 128"), ("4", "33", "use 1 to 32")] {
        let output = gnt(
            state.path(),
            &[
                "cluster",
                "init",
                "--primary-ip-version",
                version,
                "--secondary-ip",
                "192.0.2.1",
                "--master-netmask",
                netmask,
                "c1.example",
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(ErrorKind::WrongInput.exit_code().into())
        );
        let message = stderr(&output);
        assert!(
            message.contains(&format!("({netmask})")) && message.contains(bounds),
            "{message}"
        );
        assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
        assert_untouched(state.path());
    }
}

#[test]
fn certificate_lifetimes_out_of_bounds_are_refused_in_one_line_before_anything_is_written() {
    let state = tempfile::tempdir().unwrap();
    for (flags, expected) in [
        (
            &["--certificate-validity", "0"][..],
            "--certificate-validity 0s: too short; give at least 1m",
        ),
        (
            &["--ca-validity", "40000d"][..],
            "--ca-validity 40000d: too long; give at most 36500d (100 years)",
        ),
        (
            // The CA's default lifetime is 10 years.
            &["--certificate-validity", "3650d"][..],
            "--certificate-validity 3650d must be shorter than --ca-validity 3650d: a certificate cannot outlive the CA that signs it",
        ),
        (
            &["--certificate-validity", "30d", "--ca-validity", "20d"][..],
            "--certificate-validity 30d must be shorter than --ca-validity 20d",
        ),
    ] {
        let mut args = vec!["cluster", "init"];
        args.extend_from_slice(flags);
        args.push("c1.example");
        let output = gnt(state.path(), &args);
        let message = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(ErrorKind::WrongInput.exit_code().into()),
            "{flags:?}: {message}"
        );
        assert!(message.contains(expected), "{flags:?}: {message}");
        assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
        assert_untouched(state.path());
    }
    // Not a duration at all: a usage error, as for `--ttl`.
    let output = gnt(
        state.path(),
        &[
            "cluster",
            "init",
            "--certificate-validity",
            "1w",
            "c1.example",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("'1w': the unit must be s, m, h or d"),
        "{}",
        stderr(&output)
    );
    assert_untouched(state.path());
}

#[test]
fn a_malformed_join_token_is_refused_before_the_master_is_contacted() {
    let state = tempfile::tempdir().unwrap();
    let output = gnt(
        state.path(),
        &[
            "node",
            "add",
            "--join-token",
            "abcdef-0123",
            "node1.example",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::WrongInput.exit_code().into())
    );
    let message = stderr(&output);
    assert!(message.contains("invalid join token"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
    assert!(!message.contains("gnt-masterd"), "{message}");
}

#[test]
fn the_join_token_may_come_from_the_environment_and_is_never_echoed() {
    let state = tempfile::tempdir().unwrap();
    let output = command(env!("CARGO_BIN_EXE_gnt"), state.path())
        .env("GNT_JOIN_TOKEN", "abcdef.not-a-secret-we-show")
        .args(["node", "add", "node1.example"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::WrongInput.exit_code().into())
    );
    let message = stderr(&output);
    assert!(message.contains("invalid join token"), "{message}");
    assert!(!message.contains("not-a-secret"), "{message}");

    let help = command(env!("CARGO_BIN_EXE_gnt"), state.path())
        .env("GNT_JOIN_TOKEN", "abcdef.0123456789abcdef")
        .args(["node", "add", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("GNT_JOIN_TOKEN"), "{help}");
    assert!(!help.contains("0123456789abcdef"), "{help}");
}

#[test]
fn only_a_readd_may_go_without_a_join_token() {
    let state = tempfile::tempdir().unwrap();
    let output = command(env!("CARGO_BIN_EXE_gnt"), state.path())
        .env_remove("GNT_JOIN_TOKEN")
        .args(["node", "add", "node1.example"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let message = stderr(&output);
    assert!(message.contains("--join-token <TOKEN>"), "{message}");
    // A re-add without one gets past the arguments, to the (absent) master.
    let readd = command(env!("CARGO_BIN_EXE_gnt"), state.path())
        .env_remove("GNT_JOIN_TOKEN")
        .args(["node", "add", "--readd", "node1.example"])
        .output()
        .unwrap();
    let message = stderr(&readd);
    assert!(message.contains("gnt-masterd"), "{message}");
    assert_untouched(state.path());
}

#[test]
fn without_a_running_master_gnt_says_where_it_looked_and_how_to_start_it() {
    let state = tempfile::tempdir().unwrap();
    let output = gnt(state.path(), &["node", "list"]);
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::Unavailable.exit_code().into())
    );
    let message = stderr(&output);
    let socket = state.path().join("master/master.sock");
    assert!(
        message.contains(&socket.display().to_string())
            && message.contains(&format!(
                "`gnt-masterd --state-dir {}`",
                state.path().display()
            )),
        "{message}"
    );
    assert_untouched(state.path());
}

#[test]
fn gnt_masterd_refuses_to_start_without_a_cluster() {
    let state = tempfile::tempdir().unwrap();
    let output = run(env!("CARGO_BIN_EXE_gnt-masterd"), state.path(), &[]);
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::WrongState.exit_code().into())
    );
    let message = stderr(&output);
    assert!(
        message.contains("no cluster is initialised") && message.contains("gnt cluster init"),
        "{message}"
    );
}

#[test]
fn a_socket_gnt_may_not_open_is_reported_as_permission_denied_not_missing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    /// Runs `gnt node list` as `nobody`, as an operator without root would.
    fn as_nobody(state_dir: &Path) -> Output {
        command(env!("CARGO_BIN_EXE_gnt"), state_dir)
            .args(["node", "list"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    }
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let denied = |output: &Output| {
        let message = stderr(output);
        assert_eq!(
            output.status.code(),
            Some(ErrorKind::PermissionDenied.exit_code().into()),
            "{message}"
        );
        assert!(
            message.contains("master.sock: permission denied") && message.contains("as root"),
            "{message}"
        );
        assert!(!message.contains("no such socket"), "{message}");
        assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
    };

    // The socket is there, in a directory nobody may search.
    let hidden = tempfile::tempdir().unwrap();
    let state = hidden.path().join("state");
    std::fs::create_dir_all(state.join("master")).unwrap();
    mode(hidden.path(), 0o700);
    let _listening =
        std::os::unix::net::UnixListener::bind(state.join("master/master.sock")).unwrap();
    denied(&as_nobody(&state));

    // The directory may be searched, but the socket is root's (0600, as gnt-masterd makes it).
    mode(hidden.path(), 0o755);
    for dir in [&state, &state.join("master")] {
        mode(dir, 0o755);
    }
    mode(&state.join("master/master.sock"), 0o600);
    denied(&as_nobody(&state));
}

#[test]
fn a_refused_host_name_the_operator_did_not_type_says_where_it_came_from() {
    let state = tempfile::tempdir().unwrap();
    // `localhost` resolves to a loopback address, which init refuses.
    let implicit = command(env!("CARGO_BIN_EXE_gnt"), state.path())
        .env("GNT_HOSTNAME", "localhost")
        .args(["cluster", "init", "--primary-ip-version", "4", "c1.example"])
        .output()
        .unwrap();
    let message = stderr(&implicit);
    assert!(!implicit.status.success(), "{message}");
    assert!(
        message.contains("resolves to a loopback address")
            && message.contains(
                "this host's name 'localhost' comes from $GNT_HOSTNAME: give the name it has in DNS or /etc/hosts with --node-name"
            ),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
    assert_untouched(state.path());
    // A name given with --node-name is the operator's own: no hint.
    let explicit = command(env!("CARGO_BIN_EXE_gnt"), state.path())
        .env_remove("GNT_HOSTNAME")
        .args([
            "cluster",
            "init",
            "--node-name",
            "localhost",
            "--primary-ip-version",
            "4",
            "c1.example",
        ])
        .output()
        .unwrap();
    let message = stderr(&explicit);
    assert!(
        message.contains("resolves to a loopback address"),
        "{message}"
    );
    assert!(!message.contains("comes from"), "{message}");
}

#[test]
fn node_info_takes_an_output_format_like_node_list() {
    let state = tempfile::tempdir().unwrap();
    for command in [
        ["node", "list"].as_slice(),
        &["node", "info", "node1.lab.test"],
    ] {
        // Parsed: the command gets as far as looking for the master.
        let json = gnt(state.path(), &[command, &["-o", "json"]].concat());
        let message = stderr(&json);
        assert_eq!(
            json.status.code(),
            Some(ErrorKind::Unavailable.exit_code().into()),
            "{command:?}: {message}"
        );
        assert!(message.contains("cannot reach gnt-masterd"), "{message}");
        let yaml = gnt(state.path(), &[command, &["-o", "yaml"]].concat());
        assert_eq!(yaml.status.code(), Some(2), "{command:?}");
        // node info names its formats; node list its formats and Ganeti's fields.
        let refusal = stderr(&yaml);
        assert!(
            refusal.contains("possible values: text, json")
                || refusal.contains("give text, json, or fields among name,pip,"),
            "{refusal}"
        );
    }
}

#[test]
fn a_mistyped_procedure_is_refused_as_such_before_the_master_is_contacted() {
    let state = tempfile::tempdir().unwrap();
    let output = gnt(state.path(), &["rpc", "call", "LeaveClustre"]);
    let message = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::UnknownEntity.exit_code().into()),
        "{message}"
    );
    assert!(
        message.contains("no procedure 'LeaveClustre'") && !message.contains("--force"),
        "{message}"
    );
    assert_untouched(state.path());
}

#[test]
fn on_a_node_that_is_not_the_master_gnt_names_the_master_from_ssconf() {
    let state = tempfile::tempdir().unwrap();
    // What a member holds that anyone may read: its ssconf and its certificate (no key,
    // which the hint must not need).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["node2.lab.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "node2.lab.test");
    let cert = params.self_signed(&key).unwrap().pem();
    std::fs::write(state.path().join("node.pem"), cert).unwrap();
    let master_is = |name: &str| {
        std::fs::write(state.path().join("ssconf_master_node"), format!("{name}\n")).unwrap();
        let output = gnt(state.path(), &["node", "list"]);
        assert_eq!(
            output.status.code(),
            Some(ErrorKind::Unavailable.exit_code().into())
        );
        stderr(&output)
    };
    let elsewhere = master_is("node1.lab.test");
    assert!(
        elsewhere.contains(
            "this node (node2.lab.test) is not the master: the master is node1.lab.test (ssconf), run gnt there"
        ) && !elsewhere.contains("gnt-masterd --state-dir"),
        "{elsewhere}"
    );
    let here = master_is("node2.lab.test");
    assert!(
        here.contains("gnt-masterd --state-dir") && !here.contains("run gnt there"),
        "{here}"
    );
}

#[test]
fn node_modify_takes_ganetis_short_flags_and_refuses_a_flag_that_is_not_yes_or_no() {
    let state = tempfile::tempdir().unwrap();
    for args in [
        ["-D", "yes"].as_slice(),
        &["--drained", "no"],
        &["-O", "yes"],
        &["-C", "no"],
        &["-s", "10.78.0.50"],
        &["--secondary-ip", "10.78.0.50"],
    ] {
        // Parsed: the command gets as far as looking for the master.
        let output = gnt(
            state.path(),
            &[&["node", "modify"], args, &["node1"]].concat(),
        );
        let message = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(ErrorKind::Unavailable.exit_code().into()),
            "{args:?}: {message}"
        );
        assert!(message.contains("cannot reach gnt-masterd"), "{message}");
    }
    let maybe = gnt(state.path(), &["node", "modify", "-D", "maybe", "node1"]);
    assert_eq!(maybe.status.code(), Some(2), "{}", stderr(&maybe));
    assert!(stderr(&maybe).contains("--drained"), "{}", stderr(&maybe));
    assert_untouched(state.path());
}

#[test]
fn destroy_without_yes_do_it_is_refused_in_ganetis_words_and_touches_nothing() {
    let state = tempfile::tempdir().unwrap();
    let output = gnt(state.path(), &["cluster", "destroy"]);
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::WrongInput.exit_code().into())
    );
    assert_eq!(
        stderr(&output),
        "gnt: Destroying a cluster is irreversible. If you really want destroy this cluster, supply the --yes-do-it option.\n"
    );
    assert!(output.stdout.is_empty());
    assert_untouched(state.path());
}

#[test]
fn destroy_where_there_is_no_cluster_says_so_and_touches_nothing() {
    let state = tempfile::tempdir().unwrap();
    let output = gnt(state.path(), &["cluster", "destroy", "--yes-do-it"]);
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::WrongState.exit_code().into())
    );
    assert_eq!(
        stderr(&output),
        format!(
            "gnt: there is no cluster on this host to destroy: no configuration in {0}/master and no ssconf in {0}\n",
            state.path().display()
        )
    );
    assert_untouched(state.path());
}

#[test]
fn destroy_of_a_cluster_whose_master_daemon_is_not_running_says_to_start_it() {
    let state = tempfile::tempdir().unwrap();
    let master = state.path().join("master");
    std::fs::create_dir(&master).unwrap();
    std::fs::write(master.join("config.json"), "{}").unwrap();
    let output = gnt(state.path(), &["cluster", "destroy", "--yes-do-it"]);
    assert_eq!(
        output.status.code(),
        Some(ErrorKind::Unavailable.exit_code().into())
    );
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!(
            "gnt: cannot reach gnt-masterd at {}/master.sock: no such socket; is gnt-masterd running on this host",
            master.display()
        )),
        "{message}"
    );
    // Nothing was removed.
    assert!(master.join("config.json").exists());
}
