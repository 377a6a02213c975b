//! Who is on the other end of a connection: its address, normalised (an IPv4 client of a
//! dual-stack listener is `192.0.2.1`, not `::ffff:192.0.2.1`), its Unix credentials, and
//! the TLS identity it proved. Every accepted connection carries a [`PeerInfo`], which
//! tonic puts into the extensions of every request on that connection.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use gnt_core::digest::{fingerprint, sha256};
use gnt_core::netutils::format_host_port;
use gnt_core::policy::IpFamily;
use rustls::pki_types::CertificateDer;

use crate::listen::Tracking;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// An in-process pipe.
    Memory,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(&format_host_port(addr.ip(), addr.port())),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Memory => f.write_str("memory"),
        }
    }
}

impl ListenAddr {
    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }
}

/// The remote end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP peer; IPv4-mapped IPv6 addresses are shown as IPv4.
    Tcp(SocketAddr),
    /// A process on this host, by its credentials (`SO_PEERCRED`).
    Unix {
        /// Its process id, when the kernel reports one.
        pid: Option<i32>,
        /// Its user id.
        uid: u32,
        /// Its group id.
        gid: u32,
    },
    /// An in-process client.
    Memory,
}

impl PeerAddr {
    /// A TCP peer, canonicalised.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::Tcp(canonical(addr))
    }

    /// The transport name: `tcp`, `unix` or `memory`.
    pub fn transport(&self) -> &'static str {
        match self {
            Self::Tcp(_) => "tcp",
            Self::Unix { .. } => "unix",
            Self::Memory => "memory",
        }
    }

    /// The family of a TCP peer.
    pub fn family(&self) -> Option<IpFamily> {
        match self {
            Self::Tcp(addr) => Some(IpFamily::of(&addr.ip())),
            _ => None,
        }
    }

    /// The IP address of a TCP peer.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Tcp(addr) => Some(addr.ip()),
            _ => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(&format_host_port(addr.ip(), addr.port())),
            Self::Unix { pid, uid, gid } => match pid {
                Some(pid) => write!(f, "unix:pid={pid},uid={uid},gid={gid}"),
                None => write!(f, "unix:uid={uid},gid={gid}"),
            },
            Self::Memory => f.write_str("memory"),
        }
    }
}

/// An IPv4-mapped IPv6 socket address as the IPv4 one it stands for; others unchanged.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the server knows about the other end of a connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    inner: Arc<PeerInner>,
    /// The connection's place in its listener, once established there: where the calls on
    /// it are counted.
    tracking: Option<Arc<Tracking>>,
}

#[derive(Debug)]
struct PeerInner {
    remote: PeerAddr,
    local: ListenAddr,
    tls: Option<TlsPeer>,
}

impl PeerInfo {
    /// A peer without TLS.
    pub fn new(remote: PeerAddr, local: ListenAddr) -> Self {
        Self::with_tls(remote, local, None)
    }

    pub(crate) fn with_tls(remote: PeerAddr, local: ListenAddr, tls: Option<TlsPeer>) -> Self {
        Self {
            inner: Arc::new(PeerInner { remote, local, tls }),
            tracking: None,
        }
    }

    /// A TLS peer that presented a certificate with `identity` (for tests of checks that
    /// read it; a real one comes from a handshake).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_identity(remote: PeerAddr, local: ListenAddr, identity: PeerIdentity) -> Self {
        Self::with_tls(
            remote,
            local,
            Some(TlsPeer {
                certificates: Vec::new(),
                identity: Some(identity),
                channel_binding: [0; 32],
            }),
        )
    }

    pub(crate) fn with_tracking(mut self, tracking: Arc<Tracking>) -> Self {
        self.tracking = Some(tracking);
        self
    }

    /// Where calls on this connection are counted, when its listener tracks it.
    pub(crate) fn tracking(&self) -> Option<&Arc<Tracking>> {
        self.tracking.as_ref()
    }

    /// The peer of the connection a request came in on.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Self> {
        request.extensions().get::<Self>()
    }

    /// The remote address.
    pub fn remote(&self) -> &PeerAddr {
        &self.inner.remote
    }

    /// The listening address the connection came in on.
    pub fn local(&self) -> &ListenAddr {
        &self.inner.local
    }

    /// The TLS session, when the connection is TLS.
    pub fn tls(&self) -> Option<&TlsPeer> {
        self.inner.tls.as_ref()
    }

    /// The verified client certificate's identity, when one was presented.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        self.tls().and_then(|tls| tls.identity.as_ref())
    }
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.remote())?;
        if let Some(identity) = self.identity() {
            write!(f, " ({identity})")?;
        }
        Ok(())
    }
}

/// A TLS session, seen from one end.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The peer's certificate chain, end entity first, as it presented it (verified against
    /// the configured CA unless verification was explicitly turned off); empty when it
    /// presented none.
    pub certificates: Vec<CertificateDer<'static>>,
    /// The identity in the end-entity certificate.
    pub identity: Option<PeerIdentity>,
    /// The session's exporter value (RFC 5705/8446) for [`CHANNEL_BINDING_LABEL`]: equal on
    /// both ends of one TLS session and on no other, so a secret can be bound to it.
    pub channel_binding: [u8; 32],
}

/// Exporter label of [`TlsPeer::channel_binding`].
pub const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-gnt-rpc-channel-binding";

/// The identity in a certificate: its subject's common name (the node or tool name) and
/// organisational unit (the role), and the names it is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject common name.
    pub common_name: Option<String>,
    /// Subject organisational unit: the role (`master`, `node`, ...).
    pub role: Option<String>,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// IP addresses of the subject alternative name extension.
    pub ip_addresses: Vec<IpAddr>,
    /// SHA-256 of the DER certificate.
    pub sha256: [u8; 32],
}

impl PeerIdentity {
    /// Reads the identity out of a DER certificate; `None` when it does not parse (rustls
    /// verified it, so that would be a certificate no CA of ours issued).
    pub fn from_certificate(der: &CertificateDer<'_>) -> Option<Self> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let first =
            |attrs: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
                attrs
                    .next()
                    .and_then(|a| a.as_str().ok())
                    .map(str::to_owned)
            };
        let subject = cert.subject();
        let common_name = first(&mut subject.iter_common_name());
        let role = first(&mut subject.iter_organizational_unit());
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(Self {
            common_name,
            role,
            dns_names,
            ip_addresses,
            sha256: sha256(der.as_ref()),
        })
    }

    /// The subject public key info (DER) of a DER certificate: what the master certifies
    /// again when it makes a node a master candidate (its master certificate is for the
    /// node's own key). `None` when the certificate does not parse.
    pub fn public_key_of(der: &CertificateDer<'_>) -> Option<Vec<u8>> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        Some(cert.tbs_certificate.subject_pki.raw.to_vec())
    }

    /// The fingerprint as colon-separated upper-case hex pairs (`AB:CD:...`).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.sha256)
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.common_name, &self.role) {
            (Some(name), Some(role)) => write!(f, "{name}, {role}"),
            (Some(name), None) => f.write_str(name),
            _ => write!(f, "certificate {}", &self.fingerprint()[..23]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_peers_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4000".parse().unwrap();
        let peer = PeerAddr::tcp(mapped);
        assert_eq!(peer.to_string(), "192.0.2.7:4000");
        assert_eq!(peer.family(), Some(IpFamily::V4));
        // IPv4-compatible and loopback IPv6 stay IPv6.
        assert_eq!(
            PeerAddr::tcp("[::1]:1".parse().unwrap()).to_string(),
            "[::1]:1"
        );
        assert_eq!(
            PeerAddr::tcp("[2001:db8::1]:1811".parse().unwrap()).family(),
            Some(IpFamily::V6)
        );
    }

    #[test]
    fn addresses_display_in_host_port_notation() {
        assert_eq!(
            ListenAddr::Tcp("[::]:1811".parse().unwrap()).to_string(),
            "[::]:1811"
        );
        assert_eq!(
            ListenAddr::Unix("/run/gnt/master.sock".into()).to_string(),
            "unix:/run/gnt/master.sock"
        );
        let unix = PeerAddr::Unix {
            pid: Some(42),
            uid: 0,
            gid: 0,
        };
        assert_eq!(unix.to_string(), "unix:pid=42,uid=0,gid=0");
        assert_eq!(unix.transport(), "unix");
    }

    #[test]
    fn identities_are_read_from_certificates() {
        let mut params =
            rcgen::CertificateParams::new(vec!["node1.example.com".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node1.example.com");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "node");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("2001:db8::1".parse().unwrap()));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let identity = PeerIdentity::from_certificate(&der).unwrap();
        assert_eq!(identity.common_name.as_deref(), Some("node1.example.com"));
        assert_eq!(identity.role.as_deref(), Some("node"));
        assert_eq!(identity.dns_names, ["node1.example.com"]);
        assert_eq!(
            identity.ip_addresses,
            ["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(identity.to_string(), "node1.example.com, node");
        assert_eq!(identity.fingerprint().len(), 32 * 3 - 1);
        assert!(PeerIdentity::from_certificate(&CertificateDer::from(vec![1, 2, 3])).is_none());
    }
}
