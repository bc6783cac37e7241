//! The holds a 429 without a bucket puts on every request: a global 429 holds all but the
//! routes exempt from the global limit, a Cloudflare 429 (or one on an exempt route) holds
//! everything. Lock-free: two deadlines in atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use botscope_core::clock::{self, Instant};

use crate::ratelimit::headers::MIN_BACKOFF;
use crate::route::RouteKind;

/// Which requests a 429 without a bucket to learn holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Every request but those exempt from the global limit.
    Global,
    /// Every request.
    All,
}

/// Until when requests are held, as nanoseconds after a reference point.
pub(crate) struct Holds {
    /// Reference point of the deadlines.
    base: Instant,
    /// Nanoseconds after `base` until which a global 429 holds every request but exempt ones
    /// ([`RouteKind::is_exempt_from_global`]); 0 when nothing is held.
    global_until: AtomicU64,
    /// Nanoseconds after `base` until which a Cloudflare 429, or a bucketless 429 answered to
    /// an exempt request, holds every request; 0 when nothing is held.
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

    /// Until when a request of `kind` must wait before asking the limiter, if at all.
    pub(crate) fn blocked_until(&self, kind: RouteKind) -> Option<Instant> {
        let all = self.all_until.load(Ordering::Acquire);
        let nanos = if kind.is_exempt_from_global() {
            all
        } else {
            all.max(self.global_until.load(Ordering::Acquire))
        };
        match nanos {
            0 => None,
            nanos => {
                let until = self.base + Duration::from_nanos(nanos);
                (until > clock::now()).then_some(until)
            }
        }
    }

    /// Holds the requests `hold` names for `wait` from now, at least [`MIN_BACKOFF`]; a
    /// longer hold already in place stays.
    pub(crate) fn block_for(&self, hold: Hold, wait: Duration) {
        let until = clock::now() + wait.max(MIN_BACKOFF);
        let nanos = u64::try_from(until.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let deadline = match hold {
            Hold::Global => &self.global_until,
            Hold::All => &self.all_until,
        };
        deadline.fetch_max(nanos.max(1), Ordering::AcqRel);
    }
}
