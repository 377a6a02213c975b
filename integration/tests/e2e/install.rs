//! `gnt-install` into a temporary root (issue 14): every file where it belongs with its
//! mode, units that name the installed binaries and that `systemd-analyze verify` accepts
//! (where it is installed), completions and manual pages made from the real command lines,
//! and an operator's environment file kept on a second install.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gnt_integration::install::Layout;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn an_install_puts_everything_in_place_and_keeps_the_operators_environment() {
    // The binaries this workspace built (cargo test --workspace builds them first).
    let binaries = gnt_integration::binaries::locate("gnt")
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let root = tempfile::tempdir().unwrap();
    let layout = Layout {
        root: root.path().to_owned(),
        prefix: PathBuf::from("/usr/local"),
        binaries,
    };
    let installed = layout.install().unwrap();
    let at = |path: &str| root.path().join(path);
    for (path, expected) in [
        ("usr/local/sbin/gnt", 0o755),
        ("usr/local/sbin/gnt-masterd", 0o755),
        ("usr/local/sbin/gnt-noded", 0o755),
        ("etc/systemd/system/gnt-noded.service", 0o644),
        ("etc/systemd/system/gnt-masterd.service", 0o644),
        ("etc/default/gnt-noded", 0o600),
        ("etc/default/gnt-masterd", 0o600),
        ("usr/local/share/man/man8/gnt.8", 0o644),
        ("usr/local/share/man/man8/gnt-noded.8", 0o644),
        ("usr/local/share/man/man8/gnt-masterd.8", 0o644),
        ("usr/local/share/bash-completion/completions/gnt", 0o644),
        ("usr/local/share/zsh/site-functions/_gnt-noded", 0o644),
        (
            "usr/local/share/fish/vendor_completions.d/gnt-masterd.fish",
            0o644,
        ),
    ] {
        assert_eq!(mode(&at(path)), expected, "{path}");
    }
    assert!(installed.iter().all(|f| !f.kept), "{installed:?}");
    // The installed gnt runs.
    let version = std::process::Command::new(at("usr/local/sbin/gnt"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    // Completions and pages come from the real command lines.
    let bash =
        std::fs::read_to_string(at("usr/local/share/bash-completion/completions/gnt")).unwrap();
    assert!(
        bash.contains("renew-crypto") && bash.contains("copyfile"),
        "{bash}"
    );
    let page = std::fs::read_to_string(at("usr/local/share/man/man8/gnt-noded.8")).unwrap();
    assert!(page.contains("allow\\-upload"), "{page}");

    // The units name the installed binaries and their environment files.
    for (unit, binary) in [("gnt-noded", "gnt-noded"), ("gnt-masterd", "gnt-masterd")] {
        let text =
            std::fs::read_to_string(at(&format!("etc/systemd/system/{unit}.service"))).unwrap();
        assert!(
            text.contains(&format!("ExecStart=/usr/local/sbin/{binary} ")),
            "{text}"
        );
        assert!(
            text.contains(&format!("EnvironmentFile=-/etc/default/{unit}")),
            "{text}"
        );
        assert!(text.contains("LimitNOFILE=65536") && text.contains("NoNewPrivileges=yes"));
        verify_unit(&text, root.path(), unit);
    }

    // A second install keeps what the operator wrote in the environment file.
    let env = at("etc/default/gnt-noded");
    std::fs::write(&env, "GNT_NODED_OPTIONS=--allow-upload /etc/motd\n").unwrap();
    let again = layout.install().unwrap();
    assert!(
        again
            .iter()
            .any(|f| f.kept && f.path == Path::new("/etc/default/gnt-noded")),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "GNT_NODED_OPTIONS=--allow-upload /etc/motd\n"
    );

    // A relative prefix is refused.
    let relative = Layout {
        prefix: PathBuf::from("usr/local"),
        ..layout
    };
    let error = relative.install().unwrap_err().to_string();
    assert!(error.contains("give an absolute path"), "{error}");
}

/// `systemd-analyze verify` of `unit` as installed under `root`, where systemd-analyze is
/// installed: its binary path rewritten into the root, since verify checks that it exists.
fn verify_unit(text: &str, root: &Path, unit: &str) {
    let Ok(found) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: {unit} not verified");
        return;
    };
    assert!(found.status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(format!("{unit}.service"));
    let sbin = root.join("usr/local/sbin");
    std::fs::write(
        &copy,
        text.replace(
            "ExecStart=/usr/local/sbin/",
            &format!("ExecStart={}/", sbin.display()),
        ),
    )
    .unwrap();
    let verified = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{unit}: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}
