//! Names that no other test (in this process or a concurrent one) will pick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix` followed by a suffix unique to this call, e.g. `events-3f2a-1b9c4e-7`.
///
/// The suffix is lowercase hex digits and hyphens, at most 29 characters, so with a
/// lowercase prefix of up to 34 characters the result is a valid S3 bucket name
/// (63 max), Kinesis stream name and SQS queue name.
pub fn unique_name(prefix: &str) -> String {
    let (pid, nanos, n) = unique_parts();
    format!("{prefix}-{pid:x}-{nanos:x}-{n}")
}

/// Process id, sub-second clock and a per-process counter: the pid and clock keep
/// concurrent test binaries (sharing one `DATABASE_URL` server) apart, the counter
/// keeps calls within one process apart.
pub(crate) fn unique_parts() -> (u32, u32, u64) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
}
