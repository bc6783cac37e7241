//! Reading ratelimit headers, with every wait clamped to its bounds: see
//! [Bounds](crate::ratelimit#bounds).

use std::time::Duration;

use botscope_core::clock::{self, Instant};
use http::HeaderMap;
use twilight_http_ratelimiting::RateLimitHeaders;

use crate::scope::RateLimitScope;

/// The shortest wait after a 429, whatever its headers say, so a misbehaving upstream can
/// never make the client retry in a tight loop.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The wait after a 429 without a readable `retry-after` (or, for a `shared` one, without a
/// readable `x-ratelimit-reset-after` either).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait any header can ask for: `retry-after` and `x-ratelimit-reset-after` of
/// every scope are cut to it, `inf` included. See [Bounds](crate::ratelimit#bounds).
///
/// It bounds what one route's bucket holds: Discord's own per-route limits reset within
/// minutes (renaming a channel: twice in ten minutes) and a shared resource's may take
/// longer, and such a hold stops that one bucket, nothing else.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// The longest one 429 without a bucket (a global one, or a header-less one from Cloudflare)
/// holds requests, whatever its `retry-after` says.
///
/// Such a hold stops every request of the bot, so one answer claiming more is not believed:
/// Discord's global limit is per second (a real global 429 asks for less than a second), and
/// during a longer Cloudflare ban a retry once a minute costs one more invalid request a
/// minute, where trusting a forged `retry-after: 1e9` would freeze the bot's REST for the
/// hour of [`MAX_RETRY_AFTER`]. A hold still in place when its 429's retry is answered with
/// another 429 is held again, so a real ban goes on being respected.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// Holds longer than this are logged at WARN, once each (see [Holds](crate::ratelimit#holds)).
pub const WARN_HOLD: Duration = Duration::from_secs(5);

fn header<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A wait as Discord writes it (`retry-after`, `x-ratelimit-reset-after`: seconds, maybe with
/// a fraction), read defensively: the one place such a value becomes a [`Duration`].
///
/// A number of seconds of at least 0 is kept up to [`MAX_RETRY_AFTER`]; larger ones, `inf`
/// included, are cut to it. Anything else — `NaN`, a negative number, `-inf`, text — is
/// unreadable (`None`), and each caller falls back to its documented default
/// ([`DEFAULT_BACKOFF`] for a 429).
pub(crate) fn wait_secs(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(if secs >= MAX_RETRY_AFTER.as_secs_f64() {
        MAX_RETRY_AFTER
    } else {
        Duration::from_secs_f64(secs)
    })
}

/// The wait in header `name`, through [`wait_secs`].
pub(crate) fn wait_header(headers: &HeaderMap, name: &str) -> Option<Duration> {
    wait_secs(headers.get(name)?.to_str().ok()?)
}

/// What a response teaches about its bucket, read as twilight-http reads it (only with
/// `x-ratelimit-scope` `user` or `shared`), every wait through [`wait_secs`].
pub(crate) struct Learned {
    bucket: Vec<u8>,
    limit: u16,
    remaining: u16,
    /// Until the bucket resets, from now.
    pub(crate) reset_after: Duration,
}

impl Learned {
    pub(crate) fn from_headers(headers: &HeaderMap, limited: bool) -> Option<Self> {
        let bucket = || {
            headers
                .get(RateLimitHeaders::BUCKET)
                .map(|v| v.as_bytes().to_vec())
        };
        match RateLimitScope::declared(headers)? {
            // A shared resource's limit: the bucket is exhausted until `retry-after`
            // (twilight's `RateLimitHeaders::shared`), else the reset, else the default.
            RateLimitScope::Shared => Some(Self {
                bucket: bucket()?,
                limit: 0,
                remaining: 0,
                reset_after: wait_header(headers, "retry-after")
                    .or_else(|| wait_header(headers, RateLimitHeaders::RESET_AFTER))
                    .unwrap_or(DEFAULT_BACKOFF)
                    .max(MIN_BACKOFF),
            }),
            RateLimitScope::User => {
                let mut reset_after = wait_header(headers, RateLimitHeaders::RESET_AFTER)?;
                if limited {
                    reset_after = reset_after.max(MIN_BACKOFF);
                }
                Some(Self {
                    bucket: bucket()?,
                    limit: header(headers, RateLimitHeaders::LIMIT)?,
                    remaining: if limited {
                        0
                    } else {
                        header(headers, RateLimitHeaders::REMAINING)?
                    },
                    reset_after,
                })
            }
            RateLimitScope::Global | RateLimitScope::Cloudflare => None,
        }
    }

    /// Until when the bucket holds later requests: its reset, once it is exhausted.
    pub(crate) fn held_until(&self) -> Option<Instant> {
        (self.remaining == 0).then(|| clock::now() + self.reset_after)
    }

    pub(crate) fn into_twilight(self) -> RateLimitHeaders {
        RateLimitHeaders {
            bucket: self.bucket,
            limit: self.limit,
            remaining: self.remaining,
            // twilight's limiter compares it with std's clock, not botscope's.
            reset_at: std::time::Instant::now() + self.reset_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_clamp_to_their_bounds() {
        let hour = Some(MAX_RETRY_AFTER);
        for huge in [
            "inf",
            "+inf",
            "infinity",
            "1e300",
            "3600.5",
            "65535",
            "99999999999999999999",
        ] {
            assert_eq!(wait_secs(huge), hour, "{huge}");
        }
        for unreadable in [
            "NaN", "nan", "-inf", "-1", "-0.001", "abc", "", "1s", "0x10",
        ] {
            assert_eq!(wait_secs(unreadable), None, "{unreadable}");
        }
        assert_eq!(wait_secs("5.5"), Some(Duration::from_millis(5_500)));
        assert_eq!(wait_secs(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(wait_secs("0"), Some(Duration::ZERO));
        assert_eq!(wait_secs("-0"), Some(Duration::ZERO));
        assert_eq!(wait_secs("3600"), hour);
    }

    fn learned(pairs: &[(&'static str, &'static str)], limited: bool) -> Option<Duration> {
        Learned::from_headers(&botscope_testkit::headers(pairs), limited)
            .map(|learned| learned.reset_after)
    }

    #[test]
    fn every_scope_reads_its_wait_through_the_clamp() {
        let shared = |retry_after| {
            learned(
                &[
                    ("x-ratelimit-scope", "shared"),
                    ("x-ratelimit-bucket", "b"),
                    ("retry-after", retry_after),
                ],
                true,
            )
        };
        assert_eq!(shared("inf"), Some(MAX_RETRY_AFTER));
        assert_eq!(shared("1e300"), Some(MAX_RETRY_AFTER));
        assert_eq!(shared("NaN"), Some(DEFAULT_BACKOFF));
        assert_eq!(shared("-1"), Some(DEFAULT_BACKOFF));
        assert_eq!(shared("0"), Some(MIN_BACKOFF));
        assert_eq!(shared("5.5"), Some(Duration::from_millis(5_500)));
        let user = |reset_after| {
            learned(
                &[
                    ("x-ratelimit-scope", "user"),
                    ("x-ratelimit-bucket", "b"),
                    ("x-ratelimit-limit", "5"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset-after", reset_after),
                ],
                true,
            )
        };
        assert_eq!(user("inf"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            user("NaN"),
            None,
            "unreadable: the 429 holds by retry-after"
        );
        assert_eq!(user("0.01"), Some(MIN_BACKOFF));
    }
}
