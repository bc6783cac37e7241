//! [`RateLimitLayer`]: twilight-http-ratelimiting's [`RateLimiter`] as a tower layer.
//!
//! Each request waits for a permit of its endpoint's bucket, and the permit is completed from
//! the response headers exactly as twilight-http completes it (`x-ratelimit-scope` `user`,
//! `shared` and `global`). The time spent waiting is recorded in
//! `N_discord_api_ratelimit_wait_seconds{endpoint}`, apart from Discord's round trip.
//!
//! twilight-http with its own limiter off (as [`DiscordProxy::configure`] sets it) retries a
//! 429 at once. This layer is what makes that retry wait: a `user` or `shared` 429 exhausts
//! its bucket until the reset; a `global` 429 holds every request but interaction and webhook
//! ones (which Discord, and twilight's limiter, exempt from the global limit) until
//! `retry-after` has passed; a Cloudflare 429 (no ratelimit headers: a ban of the IP) holds
//! every request. Never less than [`MIN_BACKOFF`], never more than [`MAX_RETRY_AFTER`].
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
//! (its sweep never visits those). Routes of the bot's own resources (channels, guilds) are
//! few and come back, but every interaction and every webhook token is a new path: a million
//! interactions a day would grow it by hundreds of megabytes, and an idle copy of it cannot be
//! dropped (its task never ends). So only routes under the global limit go through twilight's
//! limiter; the routes Discord exempts from it — webhooks, interaction callbacks and
//! follow-ups, any `/interactions/…` route ([`RouteKind::is_exempt_from_global`]), exactly the
//! routes keyed by a token — wait in queues of this layer's own, one per token's resource
//! (`webhooks/{id}/{token}`, `interactions/{id}/{token}`):
//!
//! - one request of a queue in flight at a time, in arrival order, as in twilight's queues;
//! - a response that leaves the bucket exhausted (`remaining` 0, or a `user`/`shared` 429)
//!   holds the queue until its reset, so a webhook's 429 makes that webhook's later requests
//!   wait;
//! - a queue is kept only while a request holds or awaits its turn, or while it is held: the
//!   last request out drops an unheld queue at once, and a sweep drops held ones whose reset
//!   has passed — every [`DEFAULT_SWEEP_INTERVAL`] (see
//!   [`sweep_interval`](RateLimitLayerBuilder::sweep_interval)) and whenever their number
//!   doubles, on the next such request. No hold outlives [`MAX_RETRY_AFTER`].
//!
//! The trade-off: a webhook's routes share one queue here, where twilight splits them by the
//! bucket Discord names (executing and editing messages of one webhook are two buckets), so
//! they go one at a time, never faster than twilight would let them. In exchange a new
//! interaction waits for nothing: in twilight's limiter, every interaction not seen before
//! queues behind the previous one (all share the queue of paths without a channel, guild or
//! webhook).
//!
//! # Bounds
//!
//! Every wait read from a header goes through one function: a number of seconds from 0 to
//! [`MAX_RETRY_AFTER`] (one hour) is taken as is, a larger one (`inf` included) is cut to one
//! hour, and anything else (`NaN`, a negative number, text) is unreadable. A 429 whose wait
//! is unreadable waits [`DEFAULT_BACKOFF`] (a `shared` one first tries
//! `x-ratelimit-reset-after`), and no 429 waits less than [`MIN_BACKOFF`].
//!
//! A response [`Forward`](crate::Forward) answered itself (marked with a
//! [`ForwardErrorType`]) and an error tell the limiter nothing about the bucket: the permit is
//! cancelled, as for a request dropped before its answer.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use botscope_http::RateLimitLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // the limiter runs as a task on the runtime it is built in (or of the first request)
//! let mut service = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new())
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
//! [`ForwardErrorType`]: crate::ForwardErrorType

pub(crate) mod future;
pub(crate) mod headers;
pub(crate) mod holds;
pub(crate) mod layer;
pub(crate) mod queues;
pub(crate) mod service;
pub(crate) mod state;
#[cfg(test)]
mod tests;

pub use crate::ratelimit::future::ResponseFuture;
pub use crate::ratelimit::headers::{DEFAULT_BACKOFF, MAX_RETRY_AFTER, MIN_BACKOFF};
pub use crate::ratelimit::layer::{DEFAULT_GLOBAL_LIMIT, RateLimitLayer, RateLimitLayerBuilder};
pub use crate::ratelimit::queues::DEFAULT_SWEEP_INTERVAL;
pub use crate::ratelimit::service::RateLimit;
pub use crate::scope::RateLimitScope;
