//! What every service of one ratelimit layer shares: the limiter, the per-token queues, the
//! holds, the wait histogram, and how a response completes a request's right to go.

use std::sync::Arc;
use std::time::Duration;

use botscope_core::clock;
use http::{HeaderMap, StatusCode};
use opentelemetry::StringValue;
use twilight_http_ratelimiting::{Endpoint, Permit};

use crate::instruments::RatelimitInstruments;
use crate::ratelimit::generations::{Generation, Generations};
use crate::ratelimit::headers::{
    DEFAULT_BACKOFF, Learned, MAX_HOLD, MIN_BACKOFF, WARN_HOLD, wait_header,
};
use crate::ratelimit::holds::{Hold, Holds};
use crate::ratelimit::queues::{TokenQueues, Turn};
use crate::route::{RouteKind, Routes};
use crate::scope::RateLimitScope;

/// The state of one layer, shared by its clones and services.
pub(crate) struct Shared {
    /// twilight's limiter, in generations.
    pub(crate) ratelimiters: Generations,
    pub(crate) instruments: RatelimitInstruments,
    pub(crate) routes: Routes,
    /// The queues of the routes exempt from the global limit, instead of twilight's.
    pub(crate) tokens: Arc<TokenQueues>,
    /// What global and Cloudflare 429s hold.
    pub(crate) holds: Arc<Holds>,
}

/// A request's right to go: twilight's permit (and the limiter generation it came from, kept
/// running until the permit is completed), or its turn in its token's queue.
pub(crate) enum Grant {
    Twilight(Permit, Arc<Generation>),
    Token(Turn),
}

/// Which limiter a request waits for.
pub(crate) enum Queue {
    /// twilight's, under this endpoint.
    Twilight(Endpoint),
    /// The per-token queue of this key.
    Token(u64),
}

/// Completes a request's grant from its response, and holds later requests after a 429
/// without a bucket: see [Holds](crate::ratelimit#holds).
pub(crate) fn complete(
    shared: &Shared,
    kind: RouteKind,
    endpoint: &StringValue,
    grant: Grant,
    status: StatusCode,
    headers: &HeaderMap,
) {
    let limited = status == StatusCode::TOO_MANY_REQUESTS;
    let learned = Learned::from_headers(headers, limited);
    // Until when the request's own token queue is held, if it has one.
    let mut queue_held = None;
    if let Some(learned) = &learned
        && let Some(until) = learned.held_until()
    {
        if learned.reset_after > WARN_HOLD {
            let scope = RateLimitScope::declared(headers).unwrap_or(RateLimitScope::User);
            warn_hold(scope, learned.reset_after, endpoint);
        }
        queue_held = Some(until);
    }
    if limited && learned.is_none() {
        // Global, Cloudflare, or headers too broken to learn a bucket from.
        let scope = RateLimitScope::from_headers(headers);
        let wait = wait_header(headers, "retry-after").unwrap_or(DEFAULT_BACKOFF);
        let hold = if scope == RateLimitScope::Cloudflare {
            // A ban of the IP: everything waits (an interaction callback only as long as
            // its deadline allows).
            Some(Hold::All)
        } else if kind.is_exempt_from_global() {
            // A route exempt from the global limit shows only that its own resource is
            // limited: its queue is held below, nothing else.
            None
        } else {
            Some(Hold::Global)
        };
        let length = match hold {
            Some(hold) => {
                let (length, before) = shared.holds.block_for(hold, wait);
                // Once per hold: when it starts long, or grows by more than the threshold.
                if length > WARN_HOLD && (before <= WARN_HOLD || length - before > WARN_HOLD) {
                    warn_hold(scope, length, endpoint);
                }
                length
            }
            None => {
                let length = wait.clamp(MIN_BACKOFF, MAX_HOLD);
                if length > WARN_HOLD {
                    warn_hold(scope, length, endpoint);
                }
                length
            }
        };
        // The retry of an exempt request waits in its own queue, or it would go out at once.
        if kind.is_exempt_from_global() {
            queue_held = Some(clock::now() + length);
        }
    }
    match grant {
        // The generation's limiter runs while the grant holds it: completing panics only with
        // a limiter the user gave whose runtime shut down (see
        // `DiscordRateLimitLayerBuilder::ratelimiter`).
        Grant::Twilight(permit, _generation) => {
            permit.complete(learned.map(Learned::into_twilight));
        }
        Grant::Token(turn) => turn.complete(queue_held),
    }
}

/// The one WARN line of a hold longer than [`WARN_HOLD`]; the route is its template, never a
/// path (no id, no token).
fn warn_hold(scope: RateLimitScope, length: Duration, endpoint: &StringValue) {
    tracing::warn!(
        scope = scope.as_str(),
        hold_seconds = (length.as_secs_f64() * 10.0).round() / 10.0,
        route = endpoint.as_str(),
        "a Discord 429 holds requests for more than {} s",
        WARN_HOLD.as_secs()
    );
}
