//! Discord's snowflakes: ids whose top bits are the moment Discord created them.
//!
//! An interaction's id tells when the user acted; a message's id when it was sent. Compared
//! with this host's clock, they give the delays a bot's users feel, without any other input.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! // Discord's documented example
//! let created = botscope_core::snowflake::created_at(175_928_847_299_117_063);
//! assert_eq!(created, UNIX_EPOCH + Duration::from_millis(1_462_015_105_796));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Discord's epoch, the first second of 2015, in milliseconds since the Unix epoch.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// When the snowflake `id` was created: `(id >> 22) + DISCORD_EPOCH_MS` milliseconds after the
/// Unix epoch.
pub fn created_at(id: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis((id >> 22) + DISCORD_EPOCH_MS)
}

/// How long before `now` the snowflake `id` was created; `None` when it seems created after
/// `now`, which means this host's clock runs behind Discord's.
pub fn age(id: u64, now: SystemTime) -> Option<Duration> {
    now.duration_since(created_at(id)).ok()
}

/// How long ago, by this host's wall clock ([`clock::wall_now`](crate::clock::wall_now)), the
/// snowflake `id` was created; `None` when this host's clock runs behind Discord's.
pub fn age_now(id: u64) -> Option<Duration> {
    age(id, crate::clock::wall_now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_measured_from_the_creation() {
        let id = 175_928_847_299_117_063;
        let created = created_at(id);
        assert_eq!(
            age(id, created + Duration::from_millis(3_500)),
            Some(Duration::from_millis(3_500))
        );
        assert_eq!(age(id, created - Duration::from_secs(1)), None);
    }
}
