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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use botscope_core::buckets::default_buckets;
use http::{HeaderMap, StatusCode};
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::{StringValue, Value};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};
use twilight_http_ratelimiting::{Endpoint, Permit, PermitFuture, RateLimitHeaders, RateLimiter};

use crate::forward::ForwardErrorType;
use crate::instruments::{ENDPOINT, RATELIMIT_WAIT, SECONDS, kv};
use crate::route::{RouteKind, Routes};

/// The shortest wait after a 429, whatever its headers say, so a misbehaving upstream can
/// never make the client retry in a tight loop.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The wait after a 429 without a readable `retry-after` (or, for a `shared` one, without a
/// readable `x-ratelimit-reset-after` either).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait any header can ask for: `retry-after` and `x-ratelimit-reset-after` of
/// every scope are cut to it, `inf` included. See [Bounds](self#bounds).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// How often the per-token queues of webhooks and interactions are swept by default: see
/// [Memory](self#memory).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// twilight-http's default global limit: 50 requests per second.
pub const DEFAULT_GLOBAL_LIMIT: u16 = 50;

/// Discord's flag of a 429 of the global limit (twilight names no constant for it).
const GLOBAL_HEADER: &str = "x-ratelimit-global";

/// The scope of a 429: whose limit ran out. Its [`as_str`](Self::as_str) is the `scope`
/// label of `N_discord_api_ratelimited_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateLimitScope {
    /// A per-route bucket of the bot (`x-ratelimit-scope: user`, or bucket headers).
    User,
    /// The bot's global limit (`x-ratelimit-scope: global` or `x-ratelimit-global`).
    Global,
    /// A limit of the resource, shared with everyone (`x-ratelimit-scope: shared`); it does
    /// not count as an invalid request.
    Shared,
    /// A 429 without any ratelimit header: Cloudflare banned the IP.
    Cloudflare,
}

impl RateLimitScope {
    /// The scope of a 429 from its headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        if let Some(scope) = Self::declared(headers) {
            return scope;
        }
        if headers.contains_key(RateLimitHeaders::SCOPE) {
            // A scope Discord has not documented yet: treat it as a route's own limit.
            Self::User
        } else if headers.contains_key(GLOBAL_HEADER) {
            Self::Global
        } else if headers.contains_key(RateLimitHeaders::BUCKET)
            || headers.contains_key(RateLimitHeaders::LIMIT)
        {
            Self::User
        } else {
            Self::Cloudflare
        }
    }

    /// The scope `x-ratelimit-scope` names, read exactly as twilight-http reads it.
    fn declared(headers: &HeaderMap) -> Option<Self> {
        match headers.get(RateLimitHeaders::SCOPE)?.as_bytes() {
            b"user" => Some(Self::User),
            b"global" => Some(Self::Global),
            b"shared" => Some(Self::Shared),
            _ => None,
        }
    }

    /// The `scope` label: `user`, `global`, `shared` or `cloudflare`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Global => "global",
            Self::Shared => "shared",
            Self::Cloudflare => "cloudflare",
        }
    }

    /// Whether Discord counts a 429 of this scope as an invalid request (10,000 in 10
    /// minutes ban the IP): every scope but `shared`.
    pub const fn counts_as_invalid(self) -> bool {
        !matches!(self, Self::Shared)
    }
}

impl fmt::Display for RateLimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds a [`RateLimitLayer`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct RateLimitLayerBuilder {
    meter: Option<Meter>,
    limiter: Option<RateLimiter>,
    global_limit: Option<u16>,
    routes: Option<Routes>,
    sweep_interval: Option<Duration>,
}

impl RateLimitLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Uses `limiter` (for example one shared with other clients).
    ///
    /// Webhook and interaction routes do not wait in it but in the layer's own per-token
    /// queues ([Memory](self#memory)): clone the layer to share those too.
    ///
    /// The limiter is a task of the runtime it was created in: once that runtime shuts down,
    /// twilight's limiter panics on every request, so it must outlive the layer's use.
    pub fn limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The global limit per second of the limiter built when none is given (default
    /// [`DEFAULT_GLOBAL_LIMIT`]; 0 counts as 1).
    pub fn global_limit(mut self, limit: u16) -> Self {
        self.global_limit = Some(limit);
        self
    }

    /// At most `cap` distinct `endpoint` values, then `other`: shorthand for
    /// [`routes`](Self::routes)`(Routes::new(cap))`.
    pub fn endpoint_cap(self, cap: usize) -> Self {
        self.routes(Routes::new(cap))
    }

    /// Parses requests with `routes` (a clone of the parser of the other layers of the same
    /// stack) when no layer before this one left a [`Route`](crate::route::Route) in the
    /// request's extensions. Default: a parser of its own.
    pub fn routes(mut self, routes: Routes) -> Self {
        self.routes = Some(routes);
        self
    }

    /// How often the per-token queues of webhook and interaction routes are swept of those
    /// whose hold has passed (default [`DEFAULT_SWEEP_INTERVAL`]); see
    /// [Memory](self#memory). A sweep also runs whenever their number doubles.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Builds the layer.
    ///
    /// The limiter runs as a Tokio task: without a limiter given, and outside a runtime, it
    /// starts on the runtime of the first request instead of now.
    pub fn build(self) -> RateLimitLayer {
        let meter =
            botscope_core::meter::meter_or_global(self.meter, crate::SCOPE_NAME, crate::VERSION);
        let global_limit = self.global_limit.unwrap_or(DEFAULT_GLOBAL_LIMIT).max(1);
        let limiter = match self.limiter {
            Some(limiter) => OnceLock::from(limiter),
            None if tokio::runtime::Handle::try_current().is_ok() => {
                OnceLock::from(RateLimiter::new(global_limit))
            }
            None => OnceLock::new(),
        };
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                global_limit,
                wait: meter
                    .f64_histogram(RATELIMIT_WAIT)
                    .with_description("Time a Discord REST request waited for its ratelimit bucket")
                    .with_unit(SECONDS)
                    .with_boundaries(default_buckets())
                    .build(),
                routes: self.routes.unwrap_or_default(),
                tokens: Arc::new(TokenQueues::new(
                    self.sweep_interval.unwrap_or(DEFAULT_SWEEP_INTERVAL),
                )),
                base: Instant::now(),
                global_until: AtomicU64::new(0),
                all_until: AtomicU64::new(0),
            }),
        }
    }
}

struct Shared {
    /// Empty until the first request when built outside a runtime.
    limiter: OnceLock<RateLimiter>,
    /// The global limit of a limiter started late.
    global_limit: u16,
    wait: Histogram<f64>,
    routes: Routes,
    /// The queues of the routes exempt from the global limit, instead of twilight's.
    tokens: Arc<TokenQueues>,
    /// Reference point of the deadlines.
    base: Instant,
    /// Nanoseconds after `base` until which a global 429 holds every request but exempt ones
    /// ([`RouteKind::is_exempt_from_global`]); 0 when nothing is held.
    global_until: AtomicU64,
    /// Nanoseconds after `base` until which a Cloudflare 429, or a bucketless 429 answered to
    /// an exempt request, holds every request; 0 when nothing is held.
    all_until: AtomicU64,
}

/// Which requests a 429 without a bucket to learn holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// Every request but those exempt from the global limit.
    Global,
    /// Every request.
    All,
}

impl Shared {
    /// The limiter, started on the current runtime if it was not yet.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, if no limiter was given and no request started it yet.
    fn limiter(&self) -> &RateLimiter {
        self.limiter
            .get_or_init(|| RateLimiter::new(self.global_limit))
    }

    /// Until when a request of `kind` must wait before asking the limiter, if at all.
    fn blocked_until(&self, kind: RouteKind) -> Option<Instant> {
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
                (until > Instant::now()).then_some(until)
            }
        }
    }

    fn block_for(&self, hold: Hold, wait: Duration) {
        let until = Instant::now() + wait.max(MIN_BACKOFF);
        let nanos = u64::try_from(until.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let deadline = match hold {
            Hold::Global => &self.global_until,
            Hold::All => &self.all_until,
        };
        deadline.fetch_max(nanos.max(1), Ordering::AcqRel);
    }
}

/// The per-token queues of the routes exempt from the global limit (webhooks, interaction
/// callbacks and follow-ups): see [Memory](self#memory).
///
/// One FIFO queue per token's resource, one request of it in flight at a time (as in
/// twilight's queues), held until the reset once a response leaves its bucket exhausted. A
/// queue lives while a request holds or awaits its turn and, after that, only while it is
/// held: the last request out removes an unheld queue at once, and the sweep removes held
/// ones once their reset has passed.
struct TokenQueues {
    inner: Mutex<TokenMap>,
    /// Keys the queues: a hash of the route's resource, its token already hashed.
    hasher: RandomState,
    sweep_interval: Duration,
}

struct TokenMap {
    queues: HashMap<u64, TokenQueue>,
    /// When the next sweep is due.
    next_sweep: Instant,
    /// A sweep is also due once the map grows to this many queues: twice what the last sweep
    /// left, so sweeps cost O(1) per request and the map stays within twice its live size.
    sweep_len: usize,
}

struct TokenQueue {
    /// One permit: the turn of the request in flight. tokio's semaphore is fair (FIFO).
    turn: Arc<Semaphore>,
    /// Requests in flight or awaiting their turn (their [`Ticket`]s).
    users: usize,
    /// Until when the bucket is exhausted.
    held_until: Option<Instant>,
}

/// The fewest queues the map grows to before its size alone triggers a sweep.
const MIN_SWEEP_LEN: usize = 1_024;

impl TokenQueues {
    fn new(sweep_interval: Duration) -> Self {
        Self {
            inner: Mutex::new(TokenMap {
                queues: HashMap::new(),
                next_sweep: Instant::now() + sweep_interval,
                sweep_len: MIN_SWEEP_LEN,
            }),
            hasher: RandomState::new(),
            sweep_interval,
        }
    }

    /// The map; a panic while it was held cannot leave it inconsistent (every change is one
    /// statement), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, TokenMap> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue key of a limiter path: its resource, the first three segments
    /// (`webhooks/{id}/{token}`, `interactions/{id}/{token}`), whose token is already a hash.
    fn key(&self, endpoint: &Endpoint) -> u64 {
        let resource = endpoint
            .path
            .match_indices('/')
            .nth(2)
            .map_or(endpoint.path.as_str(), |(end, _)| &endpoint.path[..end]);
        self.hasher.hash_one(resource)
    }

    /// Joins the queue of `key`, created if need be: the ticket, and the turn to wait for.
    fn join(self: &Arc<Self>, key: u64) -> (Ticket, Arc<Semaphore>) {
        let turn = {
            let mut map = self.lock();
            let queue = map.queues.entry(key).or_insert_with(|| TokenQueue {
                turn: Arc::new(Semaphore::new(1)),
                users: 0,
                held_until: None,
            });
            queue.users += 1;
            Arc::clone(&queue.turn)
        };
        let ticket = Ticket {
            queues: Arc::clone(self),
            key,
            held_until: None,
        };
        (ticket, turn)
    }

    /// Until when the queue of `key` is held, if it is.
    fn held_until(&self, key: u64) -> Option<Instant> {
        let until = self.lock().queues.get(&key)?.held_until?;
        (until > Instant::now()).then_some(until)
    }

    /// A ticket of `key` is gone, its response having held the queue until `held_until`.
    fn leave(&self, key: u64, held_until: Option<Instant>) {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(queue) = map.queues.get_mut(&key) {
            queue.users = queue.users.saturating_sub(1);
            if held_until.is_some() {
                queue.held_until = held_until.max(queue.held_until);
            }
            if queue.users == 0 && queue.held_until.is_none_or(|until| until <= now) {
                map.queues.remove(&key);
            }
        }
        if now >= map.next_sweep || map.queues.len() >= map.sweep_len {
            Self::sweep(&mut map, now);
            map.next_sweep = now + self.sweep_interval;
        }
    }

    /// Drops every queue nobody uses whose hold has passed, and the map's spare capacity.
    fn sweep(map: &mut TokenMap, now: Instant) {
        map.queues.retain(|_, queue| {
            queue.users > 0 || queue.held_until.is_some_and(|until| until > now)
        });
        let len = map.queues.len();
        map.sweep_len = (2 * len).max(MIN_SWEEP_LEN);
        if map.queues.capacity() > 4 * len.max(MIN_SWEEP_LEN) {
            map.queues.shrink_to(2 * len);
        }
    }

    /// How many queues are kept (in use, or held).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().queues.len()
    }
}

/// A request's place in a [`TokenQueue`]: leaving it (dropped) releases the queue.
struct Ticket {
    queues: Arc<TokenQueues>,
    key: u64,
    held_until: Option<Instant>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queues.leave(self.key, self.held_until);
    }
}

/// The turn of a request in its token's queue.
struct Turn {
    // Invariant: fields drop in order, so the ticket records the response's hold before the
    // permit lets the next request of the queue go.
    ticket: Ticket,
    _permit: OwnedSemaphorePermit,
}

impl Turn {
    /// Ends the turn, holding the queue until `held_until` if the response exhausted it.
    fn complete(mut self, held_until: Option<Instant>) {
        self.ticket.held_until = held_until;
    }
}

/// A request's right to go: twilight's permit, or its turn in its token's queue.
enum Grant {
    Twilight(Permit),
    Token(Turn),
}

/// Which limiter a request waits for.
enum Queue {
    /// twilight's, under this endpoint.
    Twilight(Endpoint),
    /// The per-token queue of this key.
    Token(u64),
}

/// Waits for a ratelimit permit per request: see the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// A layer with its own [`RateLimiter`] (50 requests per second globally), recording into
    /// the global provider's `botscope-http` meter. Outside a Tokio runtime, the limiter
    /// starts with the first request.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to pass a meter or a limiter.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder::default()
    }

    /// The limiter, to share it.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, if the layer was built outside one without a limiter and no
    /// request has started it yet: the limiter runs as a task.
    pub fn limiter(&self) -> &RateLimiter {
        self.shared.limiter()
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`RateLimitLayer`]: see the [module docs](self).
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> RateLimit<S> {
    /// The layer.
    pub fn layer() -> RateLimitLayer {
        RateLimitLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

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
fn wait_secs(value: &str) -> Option<Duration> {
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
fn wait_header(headers: &HeaderMap, name: &str) -> Option<Duration> {
    wait_secs(headers.get(name)?.to_str().ok()?)
}

/// What a response teaches about its bucket, read as twilight-http reads it (only with
/// `x-ratelimit-scope` `user` or `shared`), every wait through [`wait_secs`].
struct Learned {
    bucket: Vec<u8>,
    limit: u16,
    remaining: u16,
    /// Until the bucket resets, from now.
    reset_after: Duration,
}

impl Learned {
    fn from_headers(headers: &HeaderMap, limited: bool) -> Option<Self> {
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
    fn held_until(&self) -> Option<Instant> {
        (self.remaining == 0).then(|| Instant::now() + self.reset_after)
    }

    fn into_twilight(self) -> RateLimitHeaders {
        RateLimitHeaders {
            bucket: self.bucket,
            limit: self.limit,
            remaining: self.remaining,
            reset_at: std::time::Instant::now() + self.reset_after,
        }
    }
}

/// Completes a request's grant from its response, and holds later requests after a global or
/// Cloudflare 429.
fn complete(
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
        shared.block_for(
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

impl<S, B, ResBody> Service<http::Request<B>> for RateLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let route = self.shared.routes.route(&mut request);
        let Some(endpoint) = route.limiter_endpoint() else {
            return ResponseFuture {
                stage: Stage::Call {
                    future: inner.call(request),
                },
                waiting: None,
            };
        };
        let kind = route.kind();
        // The routes Discord exempts from the global limit are those keyed by a token.
        let queue = if kind.is_exempt_from_global() {
            Queue::Token(self.shared.tokens.key(endpoint))
        } else {
            Queue::Twilight(endpoint.clone())
        };
        let mut waiting = Waiting {
            shared: Arc::clone(&self.shared),
            service: inner,
            request: Some(request),
            queue,
            kind,
            label: route.endpoint().clone(),
            start: Instant::now(),
            ticket: None,
            grant: None,
        };
        let stage = match self.shared.blocked_until(kind) {
            Some(until) => Stage::Blocked {
                sleep: Box::pin(tokio::time::sleep_until(until)),
            },
            None => waiting.acquire(),
        };
        ResponseFuture {
            stage,
            waiting: Some(waiting),
        }
    }
}

struct Waiting<S, B> {
    shared: Arc<Shared>,
    service: S,
    request: Option<http::Request<B>>,
    queue: Queue,
    kind: RouteKind,
    label: StringValue,
    start: Instant,
    /// The place in the token's queue, while awaiting the turn.
    ticket: Option<Ticket>,
    grant: Option<Grant>,
}

impl<S, B> Waiting<S, B> {
    /// The stage that asks the request's limiter for its right to go.
    fn acquire<F>(&mut self) -> Stage<F> {
        match &self.queue {
            Queue::Twilight(endpoint) => Stage::Acquire {
                permit: self.shared.limiter().acquire(endpoint.clone()),
            },
            Queue::Token(key) => {
                let (ticket, turn) = self.shared.tokens.join(*key);
                self.ticket = Some(ticket);
                Stage::Turn {
                    // One permit, never closed: the acquire cannot fail.
                    turn: Box::pin(turn.acquire_owned()),
                }
            }
        }
    }
}

type TurnFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>> + Send>>;

pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Blocked { sleep: Pin<Box<Sleep>> },
        Acquire { permit: PermitFuture },
        Turn { turn: TurnFuture },
        Held { sleep: Pin<Box<Sleep>> },
        Call { #[pin] future: F },
    }
}

pin_project! {
    /// The future of [`RateLimit`]: waits for a permit, calls the inner service, completes the
    /// permit from the response head.
    ///
    /// # Cancel safety
    ///
    /// Dropping it cancels the permit, which the limiter hands to the next request.
    pub struct ResponseFuture<S, B>
    where
        S: Service<http::Request<B>>,
    {
        #[pin]
        stage: Stage<S::Future>,
        waiting: Option<Waiting<S, B>>,
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<http::Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            // Invariant: `waiting` is taken only when the `Call` stage completes, and every
            // stage but `Call` has it.
            let next = match this.stage.project() {
                StageProj::Blocked { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    match waiting.shared.blocked_until(waiting.kind) {
                        // Blocked again meanwhile: wait on.
                        Some(until) => Stage::Blocked {
                            sleep: Box::pin(tokio::time::sleep_until(until)),
                        },
                        None => waiting.acquire(),
                    }
                }
                StageProj::Acquire { permit } => {
                    let permit = ready!(Pin::new(permit).poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    waiting.grant = Some(Grant::Twilight(permit));
                    waiting.call()
                }
                StageProj::Turn { turn } => {
                    let result = ready!(turn.as_mut().poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    // The semaphore is never closed and the ticket is taken only here: an
                    // error cannot happen, and would send the request without a turn.
                    if let (Ok(permit), Some(ticket)) = (result, waiting.ticket.take()) {
                        waiting.grant = Some(Grant::Token(Turn {
                            ticket,
                            _permit: permit,
                        }));
                    }
                    waiting.held_or_call()
                }
                StageProj::Held { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    waiting.held_or_call()
                }
                StageProj::Call { future } => {
                    let result = ready!(future.poll(cx));
                    if let Some(waiting) = this.waiting.take()
                        && let Some(grant) = waiting.grant
                    {
                        match &result {
                            // The proxy's own answer to a failed forward, or a failed
                            // request: it tells the limiter nothing, so cancel the permit.
                            Ok(response)
                                if response.extensions().get::<ForwardErrorType>().is_some() =>
                            {
                                drop(grant);
                            }
                            Ok(response) => complete(
                                &waiting.shared,
                                waiting.kind,
                                grant,
                                response.status(),
                                response.headers(),
                            ),
                            Err(_) => drop(grant),
                        }
                    }
                    return Poll::Ready(result);
                }
            };
            self.as_mut().project().stage.set(next);
        }
    }
}

impl<S, B> Waiting<S, B>
where
    S: Service<http::Request<B>>,
{
    /// With its turn in a token's queue, the request waits out the queue's hold, if any,
    /// before it goes.
    fn held_or_call(&mut self) -> Stage<S::Future> {
        if let Queue::Token(key) = self.queue
            && let Some(until) = self.shared.tokens.held_until(key)
        {
            return Stage::Held {
                sleep: Box::pin(tokio::time::sleep_until(until)),
            };
        }
        self.call()
    }

    /// Records the wait and sends the request.
    fn call(&mut self) -> Stage<S::Future> {
        self.shared.wait.record(
            self.start.elapsed().as_secs_f64(),
            &[kv(ENDPOINT, Value::String(self.label.clone()))],
        );
        // Invariant: the request leaves only here, once, as the stage becomes `Call`.
        let request = self.request.take().expect("request sent once");
        Stage::Call {
            future: self.service.call(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::headers;

    use super::*;

    #[test]
    fn scopes_of_429s() {
        let scope = |pairs| RateLimitScope::from_headers(&headers(pairs));
        assert_eq!(
            scope(&[("x-ratelimit-scope", "user")]),
            RateLimitScope::User
        );
        assert_eq!(
            scope(&[("x-ratelimit-scope", "shared")]),
            RateLimitScope::Shared
        );
        assert_eq!(
            scope(&[("x-ratelimit-scope", "global")]),
            RateLimitScope::Global
        );
        assert_eq!(scope(&[("x-ratelimit-scope", "new")]), RateLimitScope::User);
        assert_eq!(
            scope(&[("x-ratelimit-global", "true")]),
            RateLimitScope::Global
        );
        assert_eq!(
            scope(&[("x-ratelimit-bucket", "abc")]),
            RateLimitScope::User
        );
        assert_eq!(scope(&[("retry-after", "5")]), RateLimitScope::Cloudflare);
        let labels: Vec<_> = [
            RateLimitScope::User,
            RateLimitScope::Global,
            RateLimitScope::Shared,
            RateLimitScope::Cloudflare,
        ]
        .iter()
        .map(|scope| (scope.to_string(), scope.counts_as_invalid()))
        .collect();
        assert_eq!(
            labels,
            [
                ("user".to_owned(), true),
                ("global".to_owned(), true),
                ("shared".to_owned(), false),
                ("cloudflare".to_owned(), true)
            ]
        );
    }
}

#[cfg(test)]
mod bounds_and_queues {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use tower::{ServiceExt, service_fn};

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

    /// A layer over a service answering every request 204 with `remaining` and a 1 s reset,
    /// counting the requests it got.
    fn layer_over(
        remaining: &'static str,
        sent: Arc<AtomicUsize>,
    ) -> (
        RateLimitLayer,
        impl Service<
            http::Request<()>,
            Response = http::Response<()>,
            Error = Infallible,
            Future = impl Send,
        > + Clone,
    ) {
        let layer = RateLimitLayer::builder()
            .sweep_interval(Duration::from_secs(5))
            .build();
        let service = service_fn(move |_request: http::Request<()>| {
            sent.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut response = http::Response::new(());
                *response.status_mut() = StatusCode::NO_CONTENT;
                *response.headers_mut() = botscope_testkit::headers(&[
                    ("x-ratelimit-scope", "user"),
                    ("x-ratelimit-bucket", "b"),
                    ("x-ratelimit-limit", "5"),
                    ("x-ratelimit-remaining", remaining),
                    ("x-ratelimit-reset-after", "1.000"),
                ]);
                Ok::<_, Infallible>(response)
            }
        });
        (layer, service)
    }

    fn webhook(id: usize) -> http::Request<()> {
        http::Request::post(format!("/api/v10/webhooks/{id}/token-{id}"))
            .body(())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn distinct_webhooks_leave_nothing_behind_once_their_resets_pass() {
        let (layer, service) = layer_over("0", Arc::default());
        let service = layer.layer(service);
        // 1,000 requests a second, each holding its queue for 1 s.
        for id in 0..3_000 {
            service.clone().oneshot(webhook(id)).await.unwrap();
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let kept = layer.shared.tokens.len();
        assert!(
            (1_000..2 * MIN_SWEEP_LEN).contains(&kept),
            "held queues are kept until their reset, within twice the held ones: {kept}"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        service.clone().oneshot(webhook(3_000)).await.unwrap();
        assert_eq!(
            layer.shared.tokens.len(),
            1,
            "the sweep kept the last one's hold only"
        );

        let (layer, service) = layer_over("4", Arc::default());
        let service = layer.layer(service);
        for id in 0..100 {
            service.clone().oneshot(webhook(id)).await.unwrap();
        }
        assert_eq!(layer.shared.tokens.len(), 0, "unheld queues go at once");
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_webhook_holds_its_own_requests_only() {
        let sent = Arc::new(AtomicUsize::new(0));
        let (layer, service) = layer_over("0", Arc::clone(&sent));
        let service = layer.layer(service);
        service.clone().oneshot(webhook(1)).await.unwrap();

        let start = Instant::now();
        service.clone().oneshot(webhook(2)).await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "another webhook goes at once"
        );
        let same = tokio::spawn(service.clone().oneshot(webhook(1)));
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(sent.load(Ordering::SeqCst), 2, "held until the reset");
        same.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(sent.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_while_awaiting_its_turn_leaves_no_queue() {
        let (layer, _) = layer_over("4", Arc::default());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let service = layer.layer(service_fn(move |_request: http::Request<()>| {
            let released = released.lock().unwrap().take();
            async move {
                if let Some(released) = released {
                    let _ = released.await;
                }
                Ok::<_, Infallible>(http::Response::new(()))
            }
        }));
        let first = tokio::spawn(service.clone().oneshot(webhook(1)));
        let second = tokio::spawn(service.clone().oneshot(webhook(1)));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(layer.shared.tokens.len(), 1);
        second.abort();
        let _ = second.await;
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(layer.shared.tokens.len(), 0);
    }
}
