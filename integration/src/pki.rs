//! A throw-away certificate authority for tests: the cluster's own CA
//! ([`gnt_master::pki::ClusterCa`], so tests meet the certificates a real cluster uses),
//! writing what it issues as PEM files (keys 0600) into a directory the test owns.

use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::{fs, io, io::Write};

use gnt_core::node::Node;
use gnt_master::pki::{ClusterCa, PkiError};
use gnt_transports::join::{CertificateIssuer, IssueError};

/// A test CA.
pub struct TestCa {
    dir: PathBuf,
    ca: ClusterCa,
    ca_path: PathBuf,
}

/// A certificate issued by a [`TestCa`], as files.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM, mode 0600.
    pub key: PathBuf,
}

/// Errors of the test PKI.
#[derive(Debug, thiserror::Error)]
pub enum TestPkiError {
    /// The CA refused.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl TestCa {
    /// A new CA named after `name`, writing its files into `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<Self, TestPkiError> {
        let ca = ClusterCa::create(name, gnt_master::pki::DEFAULT_CA_VALIDITY)?;
        let ca_path = dir.join(format!("{}-ca.pem", file_stem(name)));
        write(&ca_path, ca.cert_pem().as_bytes(), 0o644)?;
        Ok(Self {
            dir: dir.to_owned(),
            ca,
            ca_path,
        })
    }

    /// The CA certificate file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Issues a certificate for `common_name` with role `role` (the subject's OU), valid for
    /// the DNS names and IP addresses given.
    pub fn issue(
        &self,
        common_name: &str,
        role: &str,
        dns: &[&str],
        ips: &[IpAddr],
    ) -> Result<TestCert, TestPkiError> {
        let issued = self.ca.issue_with_new_key(common_name, role, dns, ips)?;
        let stem = file_stem(common_name);
        let out = TestCert {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        write(&out.cert, issued.cert_pem.as_bytes(), 0o644)?;
        write(&out.key, issued.key_pem.as_bytes(), 0o600)?;
        Ok(out)
    }
}

impl CertificateIssuer for TestCa {
    fn issue_node_certificate(&self, spki: &[u8], node: &Node) -> Result<String, IssueError> {
        self.ca.issue_node_certificate(spki, node)
    }
}

fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TestPkiError> {
    let fail = |source| TestPkiError::Write {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)
}
