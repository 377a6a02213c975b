//! A throw-away certificate authority for tests: a CA and certificates it issues, written
//! as PEM files (keys 0600) into a directory the test owns. The real cluster PKI lives in
//! the master; this one only has to produce valid, distinguishable certificates.

use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::{fs, io, io::Write};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A test CA.
pub struct TestCa {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_path: PathBuf,
    ca_pem: String,
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
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("cannot generate a test certificate: {0}")]
    Generate(#[from] rcgen::Error),
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
    /// A new CA named `name`, writing its files into `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca_path = dir.join(format!("{}-ca.pem", file_stem(name)));
        let ca_pem = cert.pem();
        write(&ca_path, ca_pem.as_bytes(), 0o644)?;
        Ok(Self {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
            ca_path,
            ca_pem,
        })
    }

    /// The CA certificate file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// Issues a certificate for `common_name` with role `role` (the subject's OU), valid for
    /// the DNS names and IP addresses given.
    pub fn issue(
        &self,
        common_name: &str,
        role: &str,
        dns: &[&str],
        ips: &[IpAddr],
    ) -> Result<TestCert, PkiError> {
        let mut params =
            CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role);
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let stem = file_stem(common_name);
        let out = TestCert {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        write(&out.cert, cert.pem().as_bytes(), 0o644)?;
        write(&out.key, key.serialize_pem().as_bytes(), 0o600)?;
        Ok(out)
    }
}

impl gnt_node_agent::join_client::CertificateIssuer for TestCa {
    fn issue_node_certificate(
        &self,
        spki: &[u8],
        node: &gnt_proto::cluster::v1::NodeAddresses,
    ) -> Result<String, String> {
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki).map_err(|e| e.to_string())?;
        let mut params =
            CertificateParams::new(vec![node.name.clone()]).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(DnType::CommonName, node.name.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "node");
        for ip in [&node.primary_ip, &node.secondary_ip] {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                params.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| e.to_string())?;
        Ok(cert.pem())
    }
}

impl TestCa {
    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
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

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let fail = |source| PkiError::Write {
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
