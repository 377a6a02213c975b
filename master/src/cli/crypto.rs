//! `gnt cluster renew-crypto`: submits the renewal as a job and tells what it renewed and
//! what it still waits for.

use std::process::ExitCode;

use gnt_proto::master::v1::submit_job_request::Operation;
use gnt_proto::master::v1::{RenewCryptoRequest, RenewCryptoResponse, job};

use super::args::RenewCryptoArgs;
use super::jobs::{Waited, run_job};
use super::{Failure, connect, output, unexpected};
use crate::paths::MasterPaths;

/// `gnt cluster renew-crypto`.
pub(super) async fn renew(paths: &MasterPaths, args: RenewCryptoArgs) -> Result<ExitCode, Failure> {
    let mut client = connect(paths).await?;
    let request = RenewCryptoRequest {
        new_node_certificates: args.new_node_certificates,
        new_master_certificate: args.new_master_certificate,
        new_cluster_certificate: args.new_cluster_certificate,
    };
    match run_job(&mut client, Operation::RenewCrypto(request), args.job).await? {
        Waited::Done(job::Result::CryptoRenewed(done)) => {
            print_renewal(&done);
            Ok(if done.finished {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Waited::Done(_) => Err(unexpected()),
        Waited::NotWaited(code) => Ok(code),
    }
}

/// What a renewal did, as `renew-crypto` and `gnt job watch` print it.
pub(super) fn print_renewal(done: &RenewCryptoResponse) {
    for node in &done.renewed {
        if node.new_certificate {
            println!(
                "Renewed:   {} presents its new certificate {}",
                node.name, node.certificate_sha256
            );
        } else {
            println!(
                "Updated:   {} accepts the master's new certificate",
                node.name
            );
        }
    }
    output::warnings(&done.warnings);
    if done.finished && done.warnings.is_empty() {
        println!(
            "Renewal complete (configuration serial {}): the previous certificates, keys and CA are trusted nowhere.",
            done.config_serial
        );
    } else if done.finished {
        // A node named above may still trust the previous CA: not "nowhere".
        println!(
            "Renewal complete (configuration serial {}), except as the warnings above say.",
            done.config_serial
        );
    } else {
        let (it, answers) = if done.pending.len() == 1 {
            ("it", "it answers")
        } else {
            ("them", "they answer")
        };
        println!(
            "Renewal waits for {}: gnt-masterd goes on as soon as {answers}; until then the previous CA and master certificate stay trusted, and `gnt cluster verify` lists {it}.",
            done.pending.join(", ")
        );
    }
}
