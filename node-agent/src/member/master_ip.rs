//! The cluster IP procedures: `ActivateMasterIp`, `DeactivateMasterIp` and
//! `ChangeMasterNetmask` (Ganeti's `node_activate_master_ip`, `node_deactivate_master_ip`
//! and `node_change_master_netmask`, and the `master-ip-setup` script behind the first two).
//! The device work is `crate::netdev`'s.
//!
//! - **Activate**: an address the host has already, on any device, is left alone
//!   ("already configured here, doing nothing"). Otherwise, if anything answers at it (a
//!   TCP connect to the address on the node port within a second; a refusal is an answer),
//!   it is configured on another machine: refused. Otherwise it is added to the device
//!   (IPv6 without duplicate address detection: nothing answered, and DAD would keep it
//!   unusable for a second or more) and announced on the link; an announcement that fails
//!   is a warning.
//! - **Deactivate**: deleted from the device, whatever its prefix length there; nothing to
//!   do if the host does not have it; refused if it is on another device.
//! - **Change netmask**: the address must be on the device; the prefix length it has is
//!   replaced by the one asked for: IPv4 adds the new one before deleting the old (the
//!   address never goes away); IPv6 cannot hold one address twice (the kernel refuses the
//!   second prefix, and a replace keeps the old one), so there the old goes first.
//!
//! Departures from Ganeti: whether the host has the address is asked of the kernel, not
//! by pinging it from 127.0.0.1; the probe of another machine is one TCP connect on the
//! node port, as `gnt cluster init` probes, instead of five ICMP echoes (`fping`), so no
//! extra tool and no ICMP filtering decides; deactivation finds the address whatever its
//! prefix length (Ganeti's `stop` looks for exactly ` IP/MASK` and otherwise guesses by
//! pinging); the netmask change reads the prefix length the device has instead of trusting
//! the caller's "old" value, so a change interrupted half-way is simply asked for again.
//!
//! The three run one at a time in the process: a host's addresses are shared by all of
//! them, and two activations racing would both find the address free. The turn is held
//! until the device work on the blocking pool ends, even if the caller went away and its
//! handler was dropped (that work runs on regardless): a deactivation that followed could
//! otherwise run before an abandoned activation's address was added.

mod error;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use gnt_core::error::to_status;
use gnt_core::netutils::{PingError, PingOptions, PingOutcome, tcp_ping};
use gnt_core::policy::IpFamily;
use gnt_core::wire;
use gnt_proto::node::v1::{
    ActivateMasterIpResponse, ChangeMasterNetmaskResponse, DeactivateMasterIpResponse,
    MasterIpChange, MasterIpRequest,
};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tonic::Status;

use super::{MemberContext, invalid};
use crate::netdev::{self, Assigned, Link, Netlink};
use error::MasterIpError;

/// How long the probe waits for an answer at the cluster IP.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The least time a try of the probe is given, even at the end of [`PROBE_TIMEOUT`].
const LEAST_TRY: Duration = Duration::from_millis(500);
/// The pause before trying again after "no route to host".
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One cluster IP procedure at a time (see the module docs).
static ONE_AT_A_TIME: LazyLock<Arc<Mutex<()>>> = LazyLock::new(Arc::default);

/// Waits for this procedure's turn.
async fn turn() -> OwnedMutexGuard<()> {
    ONE_AT_A_TIME.clone().lock_owned().await
}

/// A request, checked against this node's cluster.
#[derive(Debug, Clone)]
struct Asked {
    ip: IpAddr,
    prefix: u8,
    /// The device named, or `None` for the one holding this node's primary address.
    netdev: Option<String>,
    /// This node's primary address, from ssconf.
    primary: IpAddr,
}

/// The host's devices and addresses, and the device the request means.
struct Host {
    links: Vec<Link>,
    addresses: Vec<Assigned>,
    device: Link,
}

impl Host {
    /// Reads the host's devices and addresses and finds the device `asked` means.
    fn read(asked: &Asked) -> Result<Self, MasterIpError> {
        let mut netlink = Netlink::open()?;
        let links = netlink.links()?;
        let addresses = netlink.addresses()?;
        let device = match &asked.netdev {
            Some(name) => links
                .iter()
                .find(|link| link.name == *name)
                .cloned()
                .ok_or_else(|| MasterIpError::UnknownDevice(name.clone()))?,
            None => addresses
                .iter()
                .find(|a| a.ip == asked.primary)
                .and_then(|a| links.iter().find(|link| link.index == a.index))
                .cloned()
                .ok_or(MasterIpError::NoPrimaryDevice(asked.primary))?,
        };
        Ok(Self {
            links,
            addresses,
            device,
        })
    }

    /// Where the host has `ip`, on any device.
    fn holding(&self, ip: IpAddr) -> Vec<(Assigned, &Link)> {
        self.addresses
            .iter()
            .filter(|a| a.ip == ip)
            .filter_map(|a| Some((*a, self.links.iter().find(|l| l.index == a.index)?)))
            .collect()
    }
}

/// `ActivateMasterIp`.
pub(crate) async fn activate(
    ctx: &MemberContext,
    request: MasterIpRequest,
) -> Result<ActivateMasterIpResponse, Status> {
    let asked = checked(ctx, &request)?;
    let turn = turn().await;
    let host = blocking({
        let asked = asked.clone();
        move || Host::read(&asked)
    })
    .await?;
    if let Some((found, link)) = host.holding(asked.ip).first() {
        let mut warnings = Vec::new();
        if link.index != host.device.index {
            warnings.push(format!(
                "the cluster IP {} is on {link}, not on {} where the configuration puts it",
                asked.ip, host.device
            ));
        }
        if found.prefix != asked.prefix {
            warnings.push(format!(
                "the cluster IP {} has prefix length {} here, the configuration says {}; `gnt cluster modify --master-netmask {}` sets it",
                asked.ip, found.prefix, asked.prefix, asked.prefix
            ));
        }
        tracing::info!(ip = %asked.ip, device = %link, "cluster IP already configured here, doing nothing");
        return Ok(ActivateMasterIpResponse {
            change: MasterIpChange::NothingToDo.into(),
            netdev: link.name.clone(),
            prefix_length: u32::from(found.prefix),
            warnings,
        });
    }
    let target = SocketAddr::new(asked.ip, ctx.port);
    let answered = answers(target).await.map_err(|source| {
        fail(MasterIpError::Ping {
            ip: asked.ip,
            source,
        })
    })?;
    if answered {
        return Err(fail(MasterIpError::AnswersAlready {
            ip: asked.ip,
            port: ctx.port,
        }));
    }
    let device = host.device;
    let warnings = blocking({
        let device = device.clone();
        let (ip, prefix) = (asked.ip, asked.prefix);
        move || {
            let _turn = turn;
            Netlink::open()?.add(&device, ip, prefix)?;
            tracing::info!(%ip, prefix, %device, "cluster IP activated");
            Ok(match netdev::announce(&device, ip) {
                Ok(()) => Vec::new(),
                Err(error) => {
                    let warning = format!(
                        "the cluster IP is up, but neighbours were not told (they learn it when their cache entry expires): {}",
                        gnt_core::error::Chain(&error)
                    );
                    tracing::warn!(%ip, %device, %warning, "announcement failed");
                    vec![warning]
                }
            })
        }
    })
    .await?;
    Ok(ActivateMasterIpResponse {
        change: MasterIpChange::Done.into(),
        netdev: device.name,
        prefix_length: u32::from(asked.prefix),
        warnings,
    })
}

/// Whether anything answers at `target` (a refusal is an answer) within [`PROBE_TIMEOUT`].
///
/// An early "no route to host" is no answer either way, so the connection is tried again
/// (each try given at least [`LEAST_TRY`]): it is how a neighbour resolution that began
/// before ends (an earlier probe's, whose last solicitation went out before the address
/// was configured elsewhere), and the kernel drops what waited on it. In the lab, a probe
/// started up to 0.25 s before such an end failed at once, while the address answered on
/// node1; asked again, the kernel resolves afresh and the answer comes in milliseconds.
async fn answers(target: SocketAddr) -> Result<bool, PingError> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let options = PingOptions {
            timeout: deadline
                .saturating_duration_since(Instant::now())
                .max(LEAST_TRY),
            ..PingOptions::default()
        };
        match tcp_ping(target, &options).await? {
            outcome if outcome.is_alive(false) => return Ok(true),
            PingOutcome::Unreachable(_) if Instant::now() < deadline => {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            _ => return Ok(false),
        }
    }
}

/// `DeactivateMasterIp`.
pub(crate) async fn deactivate(
    ctx: &MemberContext,
    request: MasterIpRequest,
) -> Result<DeactivateMasterIpResponse, Status> {
    on_host(ctx, &request, |asked, host| {
        let held = host.holding(asked.ip);
        let change = match held.iter().find(|(_, l)| l.index == host.device.index) {
            Some((here, _)) => {
                Netlink::open()?.delete(&host.device, asked.ip, here.prefix)?;
                tracing::info!(ip = %asked.ip, device = %host.device, "cluster IP deactivated");
                MasterIpChange::Done
            }
            None => match held.first() {
                Some((elsewhere, link)) => {
                    return Err(MasterIpError::WrongDevice {
                        ip: asked.ip,
                        prefix: elsewhere.prefix,
                        found: link.name.clone(),
                        netdev: host.device.name,
                    });
                }
                None => {
                    tracing::info!(ip = %asked.ip, "cluster IP not configured here, nothing to do");
                    MasterIpChange::NothingToDo
                }
            },
        };
        Ok(DeactivateMasterIpResponse {
            change: change.into(),
            netdev: host.device.name,
        })
    })
    .await
}

/// `ChangeMasterNetmask`.
pub(crate) async fn change_netmask(
    ctx: &MemberContext,
    request: MasterIpRequest,
) -> Result<ChangeMasterNetmaskResponse, Status> {
    on_host(ctx, &request, |asked, host| {
        let (ip, new) = (asked.ip, asked.prefix);
        let device = &host.device;
        let Some((here, _)) = host
            .holding(ip)
            .into_iter()
            .find(|(_, l)| l.index == device.index)
        else {
            return Err(MasterIpError::NotUp {
                ip,
                netdev: device.name.clone(),
            });
        };
        let old = here.prefix;
        if old == new {
            return Ok(ChangeMasterNetmaskResponse {
                change: MasterIpChange::NothingToDo.into(),
                previous_prefix_length: u32::from(old),
            });
        }
        let mut netlink = Netlink::open()?;
        match ip {
            IpAddr::V4(_) => {
                netlink.add(device, ip, new)?;
                netlink.delete(device, ip, old)?;
            }
            IpAddr::V6(_) => {
                netlink.delete(device, ip, old)?;
                if let Err(error) = netlink.add(device, ip, new) {
                    // Put the old one back rather than leave the cluster without its IP.
                    let _ = netlink.add(device, ip, old);
                    return Err(error.into());
                }
            }
        }
        tracing::info!(%ip, old, new, %device, "cluster IP netmask changed");
        Ok(ChangeMasterNetmaskResponse {
            change: MasterIpChange::Done.into(),
            previous_prefix_length: u32::from(old),
        })
    })
    .await
}

/// Checks `request`, waits for the turn, and runs `work` on the blocking pool with the host's
/// devices and addresses as they are now; the turn ends when `work` does.
async fn on_host<T: Send + 'static>(
    ctx: &MemberContext,
    request: &MasterIpRequest,
    work: impl FnOnce(&Asked, Host) -> Result<T, MasterIpError> + Send + 'static,
) -> Result<T, Status> {
    let asked = checked(ctx, request)?;
    let turn = turn().await;
    blocking(move || {
        let _turn = turn;
        let host = Host::read(&asked)?;
        work(&asked, host)
    })
    .await
}

/// The request, checked against this node's ssconf: the address of the cluster's primary
/// family, the prefix length within its bounds.
fn checked(ctx: &MemberContext, request: &MasterIpRequest) -> Result<Asked, Status> {
    let ip = wire::address("address", &request.address).map_err(invalid)?;
    let ssconf = ctx.state.ssconf().read().map_err(|e| to_status(&e))?;
    let policy = ssconf.ip_policy().map_err(|e| to_status(&e))?;
    let family = policy.primary_family();
    if IpFamily::of(&ip) != family {
        return Err(fail(MasterIpError::WrongFamily { ip, family }));
    }
    let prefix = policy
        .validate_master_netmask(request.prefix_length)
        .map_err(|e| fail(MasterIpError::Prefix(e)))?;
    let primary = ssconf
        .node_addresses(&ctx.node_name)
        .map_err(|e| to_status(&e))?
        .ok_or_else(|| fail(MasterIpError::NotListed(ctx.node_name.to_string())))?
        .primary;
    Ok(Asked {
        ip,
        prefix,
        netdev: Some(request.netdev.clone()).filter(|n| !n.is_empty()),
        primary,
    })
}

fn fail(error: MasterIpError) -> Status {
    tracing::warn!(error = %gnt_core::error::Chain(&error), "cluster IP procedure refused");
    to_status(&error)
}

/// Runs `work` on the blocking pool: netlink and raw sockets are blocking system calls.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MasterIpError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail(MasterIpError::Stopped)),
    }
}
