//! Wall-clock time as the leader stamps it into commands (apply never reads a clock).

use std::time::SystemTime;
use std::time::UNIX_EPOCH;

/// Now, ms since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
