//! `gnt-install`: installs gnt-rpc on this host, or under `--root` (a package build, a
//! test): the binaries in `<prefix>/sbin`, both systemd units, an environment file for each
//! daemon, shell completions and manual pages. Run it as `cargo gnt-install` (release
//! build), as root.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gnt_integration::install::Layout;

/// Installs gnt-rpc.
#[derive(Debug, Parser)]
#[command(name = "gnt-install")]
struct Cli {
    /// The root directory to install under.
    #[arg(long, default_value = "/", value_name = "DIR")]
    root: PathBuf,
    /// The prefix of the binaries (`<prefix>/sbin`), completions and manual pages.
    #[arg(long, default_value = "/usr/local", value_name = "DIR")]
    prefix: PathBuf,
}

fn main() -> ExitCode {
    match run(&Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gnt-install: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // Under `cargo gnt-install`, the binaries are built first: never a stale install.
    gnt_integration::binaries::build_if_under_cargo()?;
    let layout = Layout {
        root: cli.root.clone(),
        prefix: cli.prefix.clone(),
        binaries: gnt_integration::binaries::directory(),
    };
    let installed = layout
        .install()
        .with_context(|| format!("cannot install under {}", cli.root.display()))?;
    for file in &installed {
        let what = if file.kept {
            "kept (yours)"
        } else {
            "installed"
        };
        println!("{what:12} {:o}  {}", file.mode, file.path.display());
    }
    println!(
        "\nNext, on every node: `systemctl daemon-reload`, put the join token where /etc/default/gnt-noded says, then `systemctl enable --now gnt-noded`; on the master, after `gnt cluster init`: `systemctl enable --now gnt-masterd`."
    );
    Ok(())
}
