//! The one clock of botscope: every duration a metric or span records is read here, and every
//! wall-clock reading that is compared with a wall time (a snowflake's age, a timestamp).
//!
//! - [`now`] is the monotonic clock, [`tokio::time::Instant`]: the OS monotonic clock in a
//!   bot, the paused runtime's clock under `#[tokio::test(start_paused = true)]`, so timing
//!   logic is tested with `time::advance` instead of real sleeps. [`Timer`](crate::Timer)
//!   and [`Timed`](crate::Timed) read it; nothing else should need to.
//! - [`wall_now`] is the host's wall clock, for what is compared with a time Discord or a
//!   scheduler wrote down: [`since_unix_epoch`] and [`snowflake::age_now`](crate::snowflake::age_now)
//!   go through it.
//!
//! ```
//! let start = botscope_core::clock::now();
//! let unix = botscope_core::clock::since_unix_epoch();
//! assert!(unix.as_secs() > 1_700_000_000);
//! assert!(start <= botscope_core::clock::now());
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

/// A reading of the monotonic clock every botscope duration is measured on.
#[inline]
pub fn now() -> Instant {
    Instant::now()
}

/// A reading of the host's wall clock.
#[inline]
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// The wall clock as a time since the Unix epoch; zero on a host whose clock reads before 1970
/// (a broken host: a timestamp of 0 reads as "never").
pub fn since_unix_epoch() -> Duration {
    wall_now().duration_since(UNIX_EPOCH).unwrap_or_default()
}
