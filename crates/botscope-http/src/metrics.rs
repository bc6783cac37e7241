//! [`DiscordMetricsLayer`]: request count, latency, in-flight, 429 scopes and invalid requests
//! of any tower service speaking `http`.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use botscope_http::DiscordMetricsLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let meter = opentelemetry::global::meter("example");
//! let mut service = ServiceBuilder::new()
//!     .layer(DiscordMetricsLayer::builder().meter(meter).build())
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(http::Response::new(()))
//!     }));
//!
//! let request = http::Request::get("/api/v10/users/@me").body(()).unwrap();
//! let response = service.ready().await.unwrap().call(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! // counted as discord_api_requests{endpoint="/users/@me",method="GET",status_code="200"}
//! # }
//! ```
//!
//! # Metrics
//!
//! | name | labels |
//! |---|---|
//! | `N_discord_api_requests_total` | `endpoint`, `method`, `status_code` (numeric, `error`, `timeout`) |
//! | `N_discord_api_request_duration_seconds` | `endpoint`, `method` — time to the response head |
//! | `N_discord_api_requests_in_flight` | — |
//! | `N_discord_api_ratelimited_total` | `endpoint`, `scope` (`user`, `global`, `shared`, `cloudflare`) |
//! | `N_discord_api_invalid_requests` | — 401, 403 and non-shared 429 in the last 10 minutes |
//!
//! # One layer per meter provider
//!
//! Build one `DiscordMetricsLayer` per meter provider and clone it wherever it is needed
//! (clones share their instruments; [`DiscordProxyBuilder::metrics_layer`] takes one).
//! Counters, histograms and the in-flight gauge add up across layers, but
//! `N_discord_api_invalid_requests` is a 10-minute window each layer keeps and reports under
//! the same name: with two layers on one provider, the scrape shows one layer's count, not
//! their sum. A dropped layer (a proxy shut down) stops reporting its window.
//!
//! [`DiscordProxyBuilder::metrics_layer`]: crate::DiscordProxyBuilder::metrics_layer
//!
//! # Cardinality
//!
//! `endpoint` is a [route template](crate::route) from a closed vocabulary, capped at
//! [`DEFAULT_ENDPOINT_CAP`] values (then `other`);
//! `method` has six values; `status_code` is bounded by HTTP.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderMap, StatusCode};
use opentelemetry::metrics::Meter;
use opentelemetry::{StringValue, Value};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::forward::ForwardError;
use crate::instruments::{
    ENDPOINT, InFlightGuard, Instruments, METHOD, SCOPE, STATUS_CODE, STATUS_ERROR, STATUS_TIMEOUT,
    kv, status_value,
};
use crate::route::{self, DEFAULT_ENDPOINT_CAP};

/// A boxed error, as tower middleware commonly returns.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The ratelimit scope of a 429: `user`, `global`, `shared`, or `cloudflare` when the response
/// carries no ratelimit header at all (a Cloudflare ban, which counts against the IP).
pub fn ratelimit_scope(headers: &HeaderMap) -> &'static str {
    match headers
        .get("x-ratelimit-scope")
        .map(http::HeaderValue::as_bytes)
    {
        Some(b"global") => "global",
        Some(b"shared") => "shared",
        Some(_) => "user",
        None if headers.contains_key("x-ratelimit-global") => "global",
        None if headers.contains_key("x-ratelimit-bucket")
            || headers.contains_key("x-ratelimit-limit") =>
        {
            "user"
        }
        None => "cloudflare",
    }
}

/// Whether `error` (or an error in its source chain) is a timeout.
fn chain_is_timeout(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tokio::time::error::Elapsed>()
            || error
                .downcast_ref::<ForwardError>()
                .is_some_and(ForwardError::is_timeout)
            || error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
            || error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// The `status_code` value of a service error: `timeout` or `error`.
pub(crate) fn error_status(error: &dyn Any) -> &'static str {
    let timeout = if let Some(error) = error.downcast_ref::<BoxError>() {
        chain_is_timeout(&**error)
    } else if let Some(error) = error.downcast_ref::<ForwardError>() {
        chain_is_timeout(error)
    } else if let Some(error) = error.downcast_ref::<std::io::Error>() {
        chain_is_timeout(error)
    } else if let Some(error) = error.downcast_ref::<hyper::Error>() {
        chain_is_timeout(error)
    } else {
        error.is::<tokio::time::error::Elapsed>()
    };
    if timeout {
        STATUS_TIMEOUT
    } else {
        STATUS_ERROR
    }
}

/// Builds a [`DiscordMetricsLayer`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct DiscordMetricsLayerBuilder {
    meter: Option<Meter>,
    endpoint_cap: Option<usize>,
}

impl DiscordMetricsLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct `endpoint` values (default
    /// [`DEFAULT_ENDPOINT_CAP`]), then `other`.
    pub fn endpoint_cap(mut self, cap: usize) -> Self {
        self.endpoint_cap = Some(cap);
        self
    }

    /// Builds the instruments once; every service the layer makes shares them.
    pub fn build(self) -> DiscordMetricsLayer {
        let meter =
            botscope_core::meter::meter_or_global(self.meter, crate::SCOPE_NAME, crate::VERSION);
        DiscordMetricsLayer {
            instruments: Arc::new(Instruments::new(
                &meter,
                self.endpoint_cap.unwrap_or(DEFAULT_ENDPOINT_CAP),
            )),
        }
    }
}

/// Measures Discord REST requests: see the [module docs](self).
///
/// Clones share their instruments: use one layer (and clones of it) per meter provider, see
/// [one layer per meter provider](self#one-layer-per-meter-provider).
#[derive(Clone, Debug)]
pub struct DiscordMetricsLayer {
    instruments: Arc<Instruments>,
}

impl DiscordMetricsLayer {
    /// A layer recording into the global provider's `botscope-http` meter.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to pass a meter or an endpoint cap.
    pub fn builder() -> DiscordMetricsLayerBuilder {
        DiscordMetricsLayerBuilder::default()
    }
}

impl Default for DiscordMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for DiscordMetricsLayer {
    type Service = DiscordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DiscordMetrics {
            inner,
            instruments: Arc::clone(&self.instruments),
        }
    }
}

/// The service of [`DiscordMetricsLayer`]: see the [module docs](self).
#[derive(Clone)]
pub struct DiscordMetrics<S> {
    inner: S,
    instruments: Arc<Instruments>,
}

impl<S> DiscordMetrics<S> {
    /// Wraps `inner`, recording into the global provider's `botscope-http` meter.
    pub fn new(inner: S) -> Self {
        DiscordMetricsLayer::new().layer(inner)
    }

    /// The layer, to share one set of instruments between services.
    pub fn layer() -> DiscordMetricsLayer {
        DiscordMetricsLayer::new()
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

impl<S: fmt::Debug> fmt::Debug for DiscordMetrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordMetrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for DiscordMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let endpoint = self
            .instruments
            .endpoint(request.method(), request.uri().path());
        let method = route::method_label(request.method());
        let guard = InFlightGuard::new(&self.instruments.in_flight);
        let start = Instant::now();
        ResponseFuture {
            inner: self.inner.call(request),
            state: Some(State {
                instruments: Arc::clone(&self.instruments),
                endpoint,
                method,
                start,
                _in_flight: guard,
            }),
        }
    }
}

/// What a [`ResponseFuture`] records once its response head arrives.
struct State {
    instruments: Arc<Instruments>,
    endpoint: StringValue,
    method: &'static str,
    start: Instant,
    _in_flight: InFlightGuard,
}

impl State {
    fn finish(self, status: Value, headers: Option<(StatusCode, &HeaderMap)>) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let endpoint = Value::String(self.endpoint);
        let instruments = &self.instruments;
        instruments.duration.record(
            elapsed,
            &[kv(ENDPOINT, endpoint.clone()), kv(METHOD, self.method)],
        );
        if let Some((status, headers)) = headers {
            match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => instruments.invalid.record(),
                StatusCode::TOO_MANY_REQUESTS => {
                    let scope = ratelimit_scope(headers);
                    if scope != "shared" {
                        instruments.invalid.record();
                    }
                    instruments
                        .ratelimited
                        .add(1, &[kv(ENDPOINT, endpoint.clone()), kv(SCOPE, scope)]);
                }
                _ => {}
            }
        }
        instruments.requests.add(
            1,
            &[
                kv(ENDPOINT, endpoint),
                kv(METHOD, self.method),
                kv(STATUS_CODE, status),
            ],
        );
    }
}

pin_project! {
    /// The future of [`DiscordMetrics`]: records when the inner future yields a response head
    /// or an error.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it completes records nothing but the in-flight gauge going back down.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<State>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: 'static,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(state) = this.state.take() {
            match &result {
                Ok(response) => state.finish(
                    status_value(response.status()),
                    Some((response.status(), response.headers())),
                ),
                Err(error) => state.finish(Value::from(error_status(error)), None),
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn scopes_of_429s() {
        assert_eq!(
            ratelimit_scope(&headers(&[("x-ratelimit-scope", "user")])),
            "user"
        );
        assert_eq!(
            ratelimit_scope(&headers(&[("x-ratelimit-scope", "shared")])),
            "shared"
        );
        assert_eq!(
            ratelimit_scope(&headers(&[("x-ratelimit-global", "true")])),
            "global"
        );
        assert_eq!(
            ratelimit_scope(&headers(&[("x-ratelimit-bucket", "abc")])),
            "user"
        );
        assert_eq!(
            ratelimit_scope(&headers(&[("retry-after", "5")])),
            "cloudflare"
        );
    }

    #[test]
    fn timeouts_are_told_from_other_errors() {
        let io: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(error_status(&io), STATUS_TIMEOUT);
        let io: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(error_status(&io), STATUS_ERROR);
        assert_eq!(error_status(&"anything"), STATUS_ERROR);
    }
}
