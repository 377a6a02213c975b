//! Wall-clock time as the cluster records it: whole seconds since the Unix epoch, the unit
//! of every expiry and timestamp in the configuration and on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 for a clock set before 1970 (nothing the cluster records
/// is that old, so such a clock reads as "long expired" rather than failing).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
