//! [`RateLimitLayer`]: twilight-http-ratelimiting's [`RateLimiter`] as a tower layer.
//!
//! Each request waits for a permit of its endpoint's bucket, and the permit is completed from
//! the response headers exactly as twilight-http completes it (`x-ratelimit-scope` `user`,
//! `shared` and `global`). The time spent waiting is recorded in
//! `N_discord_api_ratelimit_wait_seconds{endpoint}`, apart from Discord's round trip.
//!
//! twilight-http with its own limiter off (as [`DiscordProxy::configure`] sets it) retries a
//! 429 at once. This layer is what makes that retry wait: a `user` or `shared` 429 exhausts
//! its bucket until the reset, and a `global` or Cloudflare 429 (no ratelimit headers) holds
//! every request until `retry-after` has passed — never less than [`MIN_BACKOFF`].
//!
//! The limiter logs the paths it queues; webhook and interaction tokens in them are replaced
//! by a keyed hash first, so buckets stay apart and no token reaches a log line.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use botscope_http::RateLimitLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // inside a Tokio runtime: the limiter runs as a task
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

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use botscope_core::LabelCap;
use botscope_core::buckets::default_buckets;
use http::{HeaderMap, StatusCode};
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::{StringValue, Value};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};
use twilight_http_ratelimiting::{
    Endpoint, Method, Permit, PermitFuture, RateLimitHeaders, RateLimiter,
};

use crate::instruments::{ENDPOINT, RATELIMIT_WAIT, SECONDS, kv};
use crate::route::DEFAULT_ENDPOINT_CAP;

/// The shortest wait after a 429, whatever its headers say, so a misbehaving upstream can
/// never make the client retry in a tight loop.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The wait after a `global` or Cloudflare 429 without a readable `retry-after`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// twilight-http's default global limit: 50 requests per second.
pub const DEFAULT_GLOBAL_LIMIT: u16 = 50;

/// Builds a [`RateLimitLayer`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct RateLimitLayerBuilder {
    meter: Option<Meter>,
    limiter: Option<RateLimiter>,
    global_limit: Option<u16>,
    endpoint_cap: Option<usize>,
}

impl RateLimitLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Uses `limiter` (for example one shared with other clients).
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

    /// At most `cap` distinct `endpoint` values, then `other`.
    pub fn endpoint_cap(mut self, cap: usize) -> Self {
        self.endpoint_cap = Some(cap);
        self
    }

    /// Builds the layer.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime when no limiter was given: the limiter runs as a task.
    pub fn build(self) -> RateLimitLayer {
        let meter =
            botscope_core::meter::meter_or_global(self.meter, crate::SCOPE_NAME, crate::VERSION);
        let limiter = self.limiter.unwrap_or_else(|| {
            RateLimiter::new(self.global_limit.unwrap_or(DEFAULT_GLOBAL_LIMIT).max(1))
        });
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                wait: meter
                    .f64_histogram(RATELIMIT_WAIT)
                    .with_description("Time a Discord REST request waited for its ratelimit bucket")
                    .with_unit(SECONDS)
                    .with_boundaries(default_buckets())
                    .build(),
                endpoints: LabelCap::new(self.endpoint_cap.unwrap_or(DEFAULT_ENDPOINT_CAP)),
                base: Instant::now(),
                blocked_until: AtomicU64::new(0),
                tokens: RandomState::new(),
            }),
        }
    }
}

struct Shared {
    limiter: RateLimiter,
    wait: Histogram<f64>,
    endpoints: LabelCap,
    /// Reference point of `blocked_until`.
    base: Instant,
    /// Nanoseconds after `base` until which a global or Cloudflare 429 holds every request;
    /// 0 when nothing is held.
    blocked_until: AtomicU64,
    /// Key of the hash that stands in for tokens in the limiter's paths.
    tokens: RandomState,
}

impl Shared {
    fn blocked_until(&self) -> Option<Instant> {
        match self.blocked_until.load(Ordering::Acquire) {
            0 => None,
            nanos => {
                let until = self.base + Duration::from_nanos(nanos);
                (until > Instant::now()).then_some(until)
            }
        }
    }

    fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait.max(MIN_BACKOFF);
        let nanos = u64::try_from(until.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.blocked_until.fetch_max(nanos, Ordering::AcqRel);
    }
}

/// Waits for a ratelimit permit per request: see the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// A layer with its own [`RateLimiter`] (50 requests per second globally), recording into
    /// the global provider's `botscope-http` meter.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime: the limiter runs as a task.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to pass a meter or a limiter.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder::default()
    }

    /// The limiter, to share it.
    pub fn limiter(&self) -> &RateLimiter {
        &self.shared.limiter
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

/// The limiter's endpoint of a request: the path after `/api/v{N}/`, without the query, and
/// with webhook and interaction tokens replaced by a keyed hash of them.
///
/// The limiter logs endpoint paths (at info level when a bucket runs out), and a token in a
/// log line is a credential in a log file. The hash keeps tokens apart, so buckets stay
/// exactly as twilight-http's.
fn limiter_endpoint(method: &http::Method, path: &str, tokens: &RandomState) -> Option<Endpoint> {
    let method = match *method {
        http::Method::GET => Method::Get,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::PATCH => Method::Patch,
        http::Method::DELETE => Method::Delete,
        _ => return None,
    };
    let rest = path.strip_prefix("/api/")?;
    let rest = match rest.strip_prefix('v') {
        Some(version) => {
            let digits = version.bytes().take_while(u8::is_ascii_digit).count();
            version[digits..].strip_prefix('/').unwrap_or(rest)
        }
        None => rest,
    };
    let mut segments = rest.splitn(4, '/');
    let path = match (segments.next(), segments.next(), segments.next()) {
        (Some(kind @ ("webhooks" | "interactions")), Some(id), Some(token)) => {
            let mut path = format!("{kind}/{id}/t{:016x}", tokens.hash_one(token));
            if let Some(tail) = segments.next() {
                path.push('/');
                path.push_str(tail);
            }
            path
        }
        _ => rest.to_owned(),
    };
    Some(Endpoint { method, path })
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
fn complete(shared: &Shared, permit: Permit, status: StatusCode, headers: &HeaderMap) {
    let limited = status == StatusCode::TOO_MANY_REQUESTS;
    let scope = headers.get(RateLimitHeaders::SCOPE).map(|v| v.as_bytes());
    let bucket = || {
        headers
            .get(RateLimitHeaders::BUCKET)
            .map(|v| v.as_bytes().to_vec())
    };
    let parsed = match scope {
        Some(b"shared") => {
            bucket()
                .zip(header::<f64>(headers, "retry-after"))
                .map(|(bucket, secs)| {
                    let mut parsed = RateLimitHeaders::shared(
                        bucket,
                        secs.ceil().min(f64::from(u16::MAX)) as u16,
                    );
                    parsed.reset_at = parsed.reset_at.max(std::time::Instant::now() + MIN_BACKOFF);
                    parsed
                })
        }
        Some(b"user") => (|| {
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
        // Global, Cloudflare, or headers too broken to learn a bucket from.
        shared.block_for(retry_after(headers).unwrap_or(DEFAULT_BACKOFF));
    }
    // The limiter's actor lives as long as `shared.limiter`, so completing cannot panic.
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(endpoint) =
            limiter_endpoint(request.method(), request.uri().path(), &self.shared.tokens)
        else {
            return ResponseFuture {
                stage: Stage::Call {
                    future: inner.call(request),
                },
                waiting: None,
            };
        };
        let label = self.shared.endpoints.admit(&crate::route::template(
            request.method(),
            request.uri().path(),
        ));
        let stage = match self.shared.blocked_until() {
            Some(until) => Stage::Blocked {
                sleep: Box::pin(tokio::time::sleep_until(until)),
            },
            None => Stage::Acquire {
                permit: self.shared.limiter.acquire(endpoint.clone()),
            },
        };
        ResponseFuture {
            stage,
            waiting: Some(Waiting {
                shared: Arc::clone(&self.shared),
                service: inner,
                request: Some(request),
                endpoint,
                label,
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
                    match waiting.shared.blocked_until() {
                        // Blocked again meanwhile: wait on.
                        Some(until) => Stage::Blocked {
                            sleep: Box::pin(tokio::time::sleep_until(until)),
                        },
                        None => Stage::Acquire {
                            permit: waiting.shared.limiter.acquire(waiting.endpoint.clone()),
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
                            Ok(response) => complete(
                                &waiting.shared,
                                permit,
                                response.status(),
                                response.headers(),
                            ),
                            // A failed request tells the limiter nothing: cancel the permit.
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
    use super::*;

    #[test]
    fn limiter_endpoints_drop_prefix_and_query() {
        let keys = RandomState::new();
        let endpoint =
            limiter_endpoint(&http::Method::GET, "/api/v10/channels/1/messages", &keys).unwrap();
        assert_eq!(endpoint.path, "channels/1/messages");
        assert_eq!(endpoint.method, Method::Get);
        assert!(limiter_endpoint(&http::Method::HEAD, "/api/v10/x", &keys).is_none());
        assert!(limiter_endpoint(&http::Method::GET, "/other", &keys).is_none());
    }

    #[test]
    fn tokens_never_reach_the_limiter_but_stay_apart() {
        let keys = RandomState::new();
        let path = |p: &str| {
            limiter_endpoint(&http::Method::POST, p, &keys)
                .unwrap()
                .path
        };
        let a = path("/api/v10/webhooks/1/secret-a/messages/@original");
        let b = path("/api/v10/webhooks/1/secret-b/messages/@original");
        assert!(!a.contains("secret") && !b.contains("secret"));
        assert_ne!(a, b);
        assert!(a.starts_with("webhooks/1/t") && a.ends_with("/messages/@original"));
        assert_eq!(a, path("/api/v10/webhooks/1/secret-a/messages/@original"));
        let callback = path("/api/v10/interactions/2/secret-c/callback");
        assert!(callback.starts_with("interactions/2/t") && callback.ends_with("/callback"));
        assert_eq!(path("/api/v10/webhooks/1"), "webhooks/1");
    }
}
