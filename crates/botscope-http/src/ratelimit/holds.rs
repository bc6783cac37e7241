//! The holds a 429 without a bucket puts on requests: a global 429 holds all but the routes
//! exempt from the global limit, a Cloudflare 429 holds everything. Lock-free: two deadlines
//! in atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use botscope_core::clock::{self, Instant};

use crate::ratelimit::headers::{MAX_HOLD, MIN_BACKOFF};
use crate::route::RouteKind;

/// Which requests a 429 without a bucket to learn holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Every request but those exempt from the global limit.
    Global,
    /// Every request (a Cloudflare ban is on the IP).
    All,
}

/// Until when requests are held, as nanoseconds after a reference point.
pub(crate) struct Holds {
    /// Reference point of the deadlines.
    base: Instant,
    /// Nanoseconds after `base` until which a global 429 holds every request but exempt ones
    /// ([`RouteKind::is_exempt_from_global`]); 0 when nothing is held.
    global_until: AtomicU64,
    /// Nanoseconds after `base` until which a Cloudflare 429 holds every request; 0 when
    /// nothing is held.
    all_until: AtomicU64,
}

impl Holds {
    pub(crate) fn new() -> Self {
        Self {
            base: clock::now(),
            global_until: AtomicU64::new(0),
            all_until: AtomicU64::new(0),
        }
    }

    fn deadline(&self, hold: Hold) -> &AtomicU64 {
        match hold {
            Hold::Global => &self.global_until,
            Hold::All => &self.all_until,
        }
    }

    fn until(&self, nanos: u64) -> Option<Instant> {
        match nanos {
            0 => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }

    /// Until when a request of `kind` must wait before asking the limiter, if at all.
    pub(crate) fn blocked_until(&self, kind: RouteKind) -> Option<Instant> {
        let all = self.all_until.load(Ordering::Acquire);
        let nanos = if kind.is_exempt_from_global() {
            all
        } else {
            all.max(self.global_until.load(Ordering::Acquire))
        };
        self.until(nanos).filter(|&until| until > clock::now())
    }

    /// How long `hold` still holds requests; zero when it does not.
    pub(crate) fn remaining(&self, hold: Hold) -> Duration {
        self.until(self.deadline(hold).load(Ordering::Acquire))
            .map_or(Duration::ZERO, |until| {
                until.saturating_duration_since(clock::now())
            })
    }

    /// Holds the requests `hold` names for `wait` from now, from [`MIN_BACKOFF`] to
    /// [`MAX_HOLD`]; a longer hold already in place stays. Returns the hold's length and how
    /// long it was held before, so that the caller logs a long one once.
    pub(crate) fn block_for(&self, hold: Hold, wait: Duration) -> (Duration, Duration) {
        let wait = wait.clamp(MIN_BACKOFF, MAX_HOLD);
        let now = clock::now();
        let nanos = u64::try_from((now + wait).duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let before = self.deadline(hold).fetch_max(nanos, Ordering::AcqRel);
        let before = self
            .until(before)
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        (wait.max(before), before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_cut_to_its_bound_and_runs_out() {
        let holds = Holds::new();
        let (length, before) = holds.block_for(Hold::Global, Duration::from_secs(1_000_000_000));
        assert_eq!((length, before), (MAX_HOLD, Duration::ZERO));
        assert_eq!(holds.remaining(Hold::Global), MAX_HOLD);
        assert_eq!(holds.remaining(Hold::All), Duration::ZERO);
        assert!(holds.blocked_until(RouteKind::Standard).is_some());
        assert_eq!(holds.blocked_until(RouteKind::InteractionCallback), None);
        // A shorter hold leaves the longer one in place.
        let (length, before) = holds.block_for(Hold::Global, Duration::from_secs(2));
        assert_eq!((length, before), (MAX_HOLD, MAX_HOLD));
        tokio::time::advance(MAX_HOLD).await;
        assert_eq!(holds.blocked_until(RouteKind::Standard), None);
        assert_eq!(holds.remaining(Hold::Global), Duration::ZERO);
        let (length, _) = holds.block_for(Hold::All, Duration::ZERO);
        assert_eq!(length, MIN_BACKOFF);
        assert!(
            holds
                .blocked_until(RouteKind::InteractionCallback)
                .is_some()
        );
    }
}
