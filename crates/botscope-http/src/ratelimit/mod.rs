//! [`DiscordRateLimitLayer`]: twilight-http-ratelimiting's [`RateLimiter`] as a tower layer.
//!
//! Each request waits for a permit of its endpoint's bucket, and the permit is completed from
//! the response headers exactly as twilight-http completes it (`x-ratelimit-scope` `user`,
//! `shared` and `global`). The time spent waiting is recorded in
//! `N_discord_api_ratelimit_wait_seconds{endpoint}`, apart from Discord's round trip.
//!
//! twilight-http with its own limiter off (as [`DiscordProxy::configure`] sets it) retries a
//! 429 at once. This layer is what makes that retry wait; see [Holds](#holds).
//!
//! The limiter logs the paths it queues; every segment that is neither a numeric id nor a
//! Discord path word (webhook and interaction tokens, emoji, anything unknown) is replaced by
//! a keyed hash first, so buckets stay apart and no token reaches a log line. That endpoint,
//! the `endpoint` label and the [`RouteKind`] all come from the request's one
//! [`Route`](crate::route::Route): the one a layer before this one left in the request's
//! extensions, else parsed here by the layer's [`Routes`] (and left there for the layers
//! after it).
//!
//! # Memory
//!
//! twilight's limiter remembers every distinct path it is asked about: the bucket of each path
//! for six hours (its sweep interval, fixed), and the queue each path first waits in for good
//! (its sweep never visits those), some 240 bytes a path; its task never ends, so nothing of
//! it can be dropped. Two things keep that bounded here.
//!
//! The routes Discord exempts from the global limit — webhooks, interaction callbacks and
//! follow-ups, any `/interactions/…` route ([`RouteKind::is_exempt_from_global`]), exactly
//! the routes keyed by a token, where every interaction is a new path — never reach twilight's
//! limiter: they wait in queues of this layer's own, one per token's resource
//! (`webhooks/{id}/{token}`, `interactions/{id}/{token}`), described below.
//!
//! The other routes (a bot's channels, guilds, messages) go through twilight's limiter in
//! generations. Each generation runs on a current-thread runtime of its own, on a thread of
//! its own (`botscope-ratelimiter`); once it has been asked about [`LIMITER_ROUTES`] (16,384)
//! distinct routes, new requests go to a new generation, and the old one ends as soon as the
//! last request that asked it is done: its thread drops its runtime, and twilight's task and
//! all it remembered with it. So twilight holds at most about two generations' routes, some
//! 8 MB, however many channels the bot writes to, and a bot with fewer distinct routes never
//! changes generations. A new generation knows no bucket yet, as after a restart: a request to
//! a bucket the old one knew to be exhausted goes out, and its 429 teaches the new one (one
//! invalid request per such bucket per change), and in the second of the change the two
//! generations together may let up to twice the global limit through. A limiter given to the
//! builder ([`ratelimiter`](DiscordRateLimitLayerBuilder::ratelimiter)) is kept for good.
//!
//! The per-token queues:
//!
//! - one request of a queue in flight at a time, in arrival order, as in twilight's queues;
//! - a response that leaves the bucket exhausted (`remaining` 0, or a `user`/`shared` 429)
//!   holds the queue until its reset, so a webhook's 429 makes that webhook's later requests
//!   wait;
//! - a queue is kept only while a request holds or awaits its turn, or while it is held: the
//!   last request out drops an unheld queue at once, and a sweep drops held ones whose reset
//!   has passed — every [`DEFAULT_SWEEP_INTERVAL`] (see
//!   [`sweep_interval`](DiscordRateLimitLayerBuilder::sweep_interval)) and whenever their number
//!   doubles, on the next such request. No hold outlives [`MAX_RETRY_AFTER`].
//!
//! The trade-off: a webhook's routes share one queue here, where twilight splits them by the
//! bucket Discord names (executing and editing messages of one webhook are two buckets), so
//! they go one at a time, never faster than twilight would let them. In exchange a new
//! interaction waits for nothing: in twilight's limiter, every interaction not seen before
//! queues behind the previous one (all share the queue of paths without a channel, guild or
//! webhook).
//!
//! # Holds
//!
//! What one 429 holds, and for how long at most:
//!
//! - a `user` or `shared` 429 exhausts its route's bucket until the reset (`retry-after` for
//!   `shared`), at most [`MAX_RETRY_AFTER`]: it stops that bucket only;
//! - a `global` 429 holds every request but interaction and webhook ones (which Discord, and
//!   twilight's limiter, exempt from the global limit), at most [`MAX_HOLD`] (one minute);
//! - a Cloudflare 429 (no ratelimit headers: a ban of the IP) holds every request, at most
//!   [`MAX_HOLD`];
//! - a 429 without a bucket answered to an exempt route (a webhook, an interaction) holds
//!   that route's own queue only, at most [`MAX_HOLD`]: it shows nothing about the others.
//!
//! No hold is shorter than [`MIN_BACKOFF`]. An interaction callback is never held past its
//! 3-second deadline while it can still make it: a hold that would outlast the deadline would
//! make it late for certain, so it goes at once and its answer is counted as it comes (a
//! callback already past its deadline, or held by its own queue, waits like any request).
//!
//! Every hold longer than [`WARN_HOLD`] (5 s) is logged once at WARN, with its `scope`, its
//! length (`hold_seconds`) and the route template (`route`) of the request whose answer set
//! it; a hold that grows by more than 5 s is logged again. While requests wait,
//! `N_discord_api_requests_queued` counts them, and `N_discord_api_global_hold_seconds`
//! shows what is left of the global (`scope="global"`) and the Cloudflare
//! (`scope="cloudflare"`) hold; with several layers recording into one provider, the last
//! one observed wins.
//!
//! # Bounds
//!
//! Every wait read from a header goes through one function: a number of seconds from 0 to
//! [`MAX_RETRY_AFTER`] (one hour) is taken as is, a larger one (`inf` included) is cut to one
//! hour, and anything else (`NaN`, a negative number, text) is unreadable. A 429 whose wait
//! is unreadable waits [`DEFAULT_BACKOFF`] (a `shared` one first tries
//! `x-ratelimit-reset-after`), and no 429 waits less than [`MIN_BACKOFF`]. A hold without a
//! bucket is then cut to [`MAX_HOLD`].
//!
//! A response [`Forward`](crate::Forward) answered itself (marked with a
//! [`ForwardFailure`]) and an error tell the limiter nothing about the bucket: the permit is
//! cancelled, as for a request dropped before its answer.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use botscope_http::DiscordRateLimitLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // the limiter runs as a task on the runtime it is built in (or of the first request)
//! let mut service = ServiceBuilder::new()
//!     .layer(DiscordRateLimitLayer::new())
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(http::Response::new(()))
//!     }));
//! let request = http::Request::get("/api/v10/users/@me").body(()).unwrap();
//! service.ready().await.unwrap().call(request).await.unwrap();
//! # }
//! ```
//!
//! [`DiscordProxy::configure`]: crate::DiscordProxy::configure
//! [`RateLimiter`]: twilight_http_ratelimiting::RateLimiter
//! [`RouteKind`]: crate::route::RouteKind
//! [`RouteKind::is_exempt_from_global`]: crate::route::RouteKind::is_exempt_from_global
//! [`Routes`]: crate::route::Routes
//! [`ForwardFailure`]: crate::ForwardFailure

pub(crate) mod future;
pub(crate) mod generations;
pub(crate) mod headers;
pub(crate) mod holds;
pub(crate) mod layer;
pub(crate) mod queues;
pub(crate) mod service;
pub(crate) mod state;
#[cfg(test)]
mod tests;

pub use crate::ratelimit::future::ResponseFuture;
pub use crate::ratelimit::generations::LIMITER_ROUTES;
pub use crate::ratelimit::headers::{
    DEFAULT_BACKOFF, MAX_HOLD, MAX_RETRY_AFTER, MIN_BACKOFF, WARN_HOLD,
};
pub use crate::ratelimit::layer::{
    DEFAULT_GLOBAL_LIMIT, DiscordRateLimitLayer, DiscordRateLimitLayerBuilder,
};
pub use crate::ratelimit::queues::DEFAULT_SWEEP_INTERVAL;
pub use crate::ratelimit::service::DiscordRateLimit;
pub use crate::scope::RateLimitScope;
