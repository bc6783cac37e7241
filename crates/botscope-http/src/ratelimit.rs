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
//! every request. Never less than [`MIN_BACKOFF`].
//!
//! The limiter logs the paths it queues; every segment that is neither a numeric id nor a
//! Discord path word (webhook and interaction tokens, emoji, anything unknown) is replaced by
//! a keyed hash first, so buckets stay apart and no token reaches a log line. That endpoint,
//! the `endpoint` label and the [`RouteKind`] all come from the request's one
//! [`Route`](crate::route::Route): the one a layer before this one left in the request's
//! extensions, else parsed here by the layer's [`Routes`] (and left there for the layers
//! after it).
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use botscope_core::buckets::default_buckets;
use http::{HeaderMap, StatusCode};
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::{StringValue, Value};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};
use twilight_http_ratelimiting::{Endpoint, Permit, PermitFuture, RateLimitHeaders, RateLimiter};

use crate::forward::ForwardErrorType;
use crate::instruments::{ENDPOINT, RATELIMIT_WAIT, SECONDS, kv};
use crate::route::{RouteKind, Routes};

/// The shortest wait after a 429, whatever its headers say, so a misbehaving upstream can
/// never make the client retry in a tight loop.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The wait after a `global` or Cloudflare 429 without a readable `retry-after`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

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
}

impl RateLimitLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Uses `limiter` (for example one shared with other clients).
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

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header::<f64>(headers, "retry-after")
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| Duration::from_secs_f64(secs.min(3_600.0)))
}

/// Completes `permit` from a response as twilight-http would, and holds later requests after
/// a global or Cloudflare 429.
fn complete(
    shared: &Shared,
    kind: RouteKind,
    permit: Permit,
    status: StatusCode,
    headers: &HeaderMap,
) {
    let limited = status == StatusCode::TOO_MANY_REQUESTS;
    let bucket = || {
        headers
            .get(RateLimitHeaders::BUCKET)
            .map(|v| v.as_bytes().to_vec())
    };
    let parsed =
        match RateLimitScope::declared(headers) {
            Some(RateLimitScope::Shared) => bucket()
                .zip(header::<f64>(headers, "retry-after"))
                .map(|(bucket, secs)| {
                    let mut parsed = RateLimitHeaders::shared(
                        bucket,
                        secs.ceil().min(f64::from(u16::MAX)) as u16,
                    );
                    parsed.reset_at = parsed.reset_at.max(std::time::Instant::now() + MIN_BACKOFF);
                    parsed
                }),
            Some(RateLimitScope::User) => (|| {
                let reset_after = header::<f64>(headers, RateLimitHeaders::RESET_AFTER)
                    .filter(|secs| secs.is_finite() && *secs >= 0.0)?;
                let mut reset_after = Duration::from_secs_f64(reset_after.min(3_600.0));
                if limited {
                    reset_after = reset_after.max(MIN_BACKOFF);
                }
                Some(RateLimitHeaders {
                    bucket: bucket()?,
                    limit: header(headers, RateLimitHeaders::LIMIT)?,
                    remaining: if limited {
                        0
                    } else {
                        header(headers, RateLimitHeaders::REMAINING)?
                    },
                    reset_at: std::time::Instant::now() + reset_after,
                })
            })(),
            _ => None,
        };
    if limited && parsed.is_none() {
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
        shared.block_for(hold, retry_after(headers).unwrap_or(DEFAULT_BACKOFF));
    }
    // The limiter's actor lives as long as `shared.limiter` and its runtime: completing
    // panics only with a limiter whose runtime shut down (see `RateLimitLayerBuilder::limiter`).
    permit.complete(parsed);
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
        let Some(endpoint) = route.limiter_endpoint().cloned() else {
            return ResponseFuture {
                stage: Stage::Call {
                    future: inner.call(request),
                },
                waiting: None,
            };
        };
        let kind = route.kind();
        let stage = match self.shared.blocked_until(kind) {
            Some(until) => Stage::Blocked {
                sleep: Box::pin(tokio::time::sleep_until(until)),
            },
            None => Stage::Acquire {
                permit: self.shared.limiter().acquire(endpoint.clone()),
            },
        };
        ResponseFuture {
            stage,
            waiting: Some(Waiting {
                shared: Arc::clone(&self.shared),
                service: inner,
                request: Some(request),
                endpoint,
                kind,
                label: route.endpoint().clone(),
                start: Instant::now(),
                permit: None,
            }),
        }
    }
}

struct Waiting<S, B> {
    shared: Arc<Shared>,
    service: S,
    request: Option<http::Request<B>>,
    endpoint: Endpoint,
    kind: RouteKind,
    label: StringValue,
    start: Instant,
    permit: Option<Permit>,
}

pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Blocked { sleep: Pin<Box<Sleep>> },
        Acquire { permit: PermitFuture },
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
            let next = match this.stage.project() {
                StageProj::Blocked { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    // Invariant: `waiting` is taken only when the `Call` stage completes.
                    let waiting = this.waiting.as_ref().expect("waiting until called");
                    match waiting.shared.blocked_until(waiting.kind) {
                        // Blocked again meanwhile: wait on.
                        Some(until) => Stage::Blocked {
                            sleep: Box::pin(tokio::time::sleep_until(until)),
                        },
                        None => Stage::Acquire {
                            permit: waiting.shared.limiter().acquire(waiting.endpoint.clone()),
                        },
                    }
                }
                StageProj::Acquire { permit } => {
                    let permit = ready!(Pin::new(permit).poll(cx));
                    // Invariant: `waiting` is taken only when the `Call` stage completes.
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    waiting.shared.wait.record(
                        waiting.start.elapsed().as_secs_f64(),
                        &[kv(ENDPOINT, Value::String(waiting.label.clone()))],
                    );
                    waiting.permit = Some(permit);
                    // Invariant: the request leaves only here, once, as the stage becomes `Call`.
                    let request = waiting.request.take().expect("request sent once");
                    Stage::Call {
                        future: waiting.service.call(request),
                    }
                }
                StageProj::Call { future } => {
                    let result = ready!(future.poll(cx));
                    if let Some(waiting) = this.waiting.take()
                        && let Some(permit) = waiting.permit
                    {
                        match &result {
                            // The proxy's own answer to a failed forward, or a failed
                            // request: it tells the limiter nothing, so cancel the permit.
                            Ok(response)
                                if response.extensions().get::<ForwardErrorType>().is_some() =>
                            {
                                drop(permit);
                            }
                            Ok(response) => complete(
                                &waiting.shared,
                                waiting.kind,
                                permit,
                                response.status(),
                                response.headers(),
                            ),
                            Err(_) => drop(permit),
                        }
                    }
                    return Poll::Ready(result);
                }
            };
            self.as_mut().project().stage.set(next);
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
