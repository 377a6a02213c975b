//! The master-copy procedures of a master candidate (`WriteMasterCopy`, `DropMasterCopy`,
//! `ReadMasterCopy`; the copy itself is `gnt_transports::join::MasterCopy`), and what
//! `Version` reports about the master role on this node: the copy's version, and whether a
//! gnt-masterd runs here.

use std::fs::{File, TryLockError};

use gnt_core::error::to_status;
use gnt_core::ssconf::SsconfVersion;
use gnt_proto::node::v1::{ReadMasterCopyResponse, WriteMasterCopyRequest};
use gnt_transports::join::{MasterCopy, MasterCopyStore};
use tonic::Status;

use super::MemberContext;

/// Where gnt-masterd holds its lock, relative to the state directory it shares with this
/// agent (`master/src/paths.rs`).
const MASTERD_LOCK: &str = "master/masterd.lock";

/// The version of the copy in `store`, read when the member starts; 0 when none (or when
/// it cannot be read, which the next write repairs).
pub(crate) fn stored_version(store: &MasterCopyStore) -> SsconfVersion {
    match store.read() {
        Ok(Some(copy)) => copy.version(),
        Ok(None) => SsconfVersion::default(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the master copy; the master sends a new one");
            SsconfVersion::default()
        }
    }
}

/// Whether a gnt-masterd holds its lock in this node's state directory.
pub(super) fn master_daemon_running(ctx: &MemberContext) -> bool {
    let Ok(file) = File::open(ctx.state.dir().join(MASTERD_LOCK)) else {
        return false;
    };
    // A shared lock is refused while the daemon holds its exclusive one; taking it, we
    // release it at once by dropping the file.
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// Stores `request` as this node's master copy.
pub(super) async fn write(
    ctx: &MemberContext,
    peer: &str,
    request: WriteMasterCopyRequest,
) -> Result<(), Status> {
    let copy = MasterCopy::try_from(request).map_err(|e| to_status(&e))?;
    copy.master_identity(&ctx.state.node_key_path())
        .map_err(|e| to_status(&e))?;
    let _writing = ctx.copy_writes.lock().await;
    ctx.master_copy.replace(&copy).map_err(|error| {
        tracing::warn!(%peer, %error, "master copy refused");
        to_status(&error)
    })?;
    *ctx.copy_version.write().unwrap_or_else(|p| p.into_inner()) = copy.version();
    tracing::info!(%peer, version = %copy.version(), "master copy replaced");
    Ok(())
}

/// Deletes this node's master copy; whether there was one.
pub(super) async fn drop_copy(ctx: &MemberContext, peer: &str) -> Result<bool, Status> {
    let _writing = ctx.copy_writes.lock().await;
    let dropped = ctx.master_copy.drop_copy().map_err(|e| to_status(&e))?;
    *ctx.copy_version.write().unwrap_or_else(|p| p.into_inner()) = SsconfVersion::default();
    if dropped {
        tracing::info!(%peer, "master copy deleted: this node is no longer a master candidate");
    }
    Ok(dropped)
}

/// The configuration of this node's copy.
pub(super) fn read(ctx: &MemberContext) -> Result<ReadMasterCopyResponse, Status> {
    match ctx.master_copy.read().map_err(|e| to_status(&e))? {
        Some(copy) => Ok(ReadMasterCopyResponse::from(&copy)),
        None => Err(Status::not_found(
            "this node holds no master copy: it is not a master candidate",
        )),
    }
}
