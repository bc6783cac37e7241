//! What every service of one ratelimit layer shares: the limiter, the per-token queues, the
//! holds, the wait histogram, and how a response completes a request's right to go.

use std::sync::{Arc, OnceLock};

use http::{HeaderMap, StatusCode};
use twilight_http_ratelimiting::{Endpoint, Permit, RateLimiter};

use crate::instruments::RatelimitWait;
use crate::ratelimit::headers::{DEFAULT_BACKOFF, Learned, wait_header};
use crate::ratelimit::holds::{Hold, Holds};
use crate::ratelimit::queues::{TokenQueues, Turn};
use crate::route::{RouteKind, Routes};
use crate::scope::RateLimitScope;

/// The state of one layer, shared by its clones and services.
pub(crate) struct Shared {
    /// Empty until the first request when built outside a runtime.
    pub(crate) limiter: OnceLock<RateLimiter>,
    /// The global limit of a limiter started late.
    pub(crate) global_limit: u16,
    pub(crate) wait: RatelimitWait,
    pub(crate) routes: Routes,
    /// The queues of the routes exempt from the global limit, instead of twilight's.
    pub(crate) tokens: Arc<TokenQueues>,
    /// What global and Cloudflare 429s hold.
    pub(crate) holds: Holds,
}

impl Shared {
    /// The limiter, started on the current runtime if it was not yet.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, if no limiter was given and no request started it yet.
    pub(crate) fn limiter(&self) -> &RateLimiter {
        self.limiter
            .get_or_init(|| RateLimiter::new(self.global_limit))
    }
}

/// A request's right to go: twilight's permit, or its turn in its token's queue.
pub(crate) enum Grant {
    Twilight(Permit),
    Token(Turn),
}

/// Which limiter a request waits for.
pub(crate) enum Queue {
    /// twilight's, under this endpoint.
    Twilight(Endpoint),
    /// The per-token queue of this key.
    Token(u64),
}

/// Completes a request's grant from its response, and holds later requests after a global or
/// Cloudflare 429.
pub(crate) fn complete(
    shared: &Shared,
    kind: RouteKind,
    grant: Grant,
    status: StatusCode,
    headers: &HeaderMap,
) {
    let limited = status == StatusCode::TOO_MANY_REQUESTS;
    let learned = Learned::from_headers(headers, limited);
    if limited && learned.is_none() {
        // Global, Cloudflare, or headers too broken to learn a bucket from. A Cloudflare ban
        // is on the IP; a 429 on an exempt endpoint means the exemption did not help: both
        // hold everything, or the retry of an exempt request would go out at once.
        let hold = if RateLimitScope::from_headers(headers) == RateLimitScope::Cloudflare
            || kind.is_exempt_from_global()
        {
            Hold::All
        } else {
            Hold::Global
        };
        shared.holds.block_for(
            hold,
            wait_header(headers, "retry-after").unwrap_or(DEFAULT_BACKOFF),
        );
    }
    match grant {
        // The limiter's actor lives as long as `shared.limiter` and its runtime: completing
        // panics only with a limiter whose runtime shut down (see
        // `RateLimitLayerBuilder::limiter`).
        Grant::Twilight(permit) => permit.complete(learned.map(Learned::into_twilight)),
        Grant::Token(turn) => turn.complete(learned.as_ref().and_then(Learned::held_until)),
    }
}
