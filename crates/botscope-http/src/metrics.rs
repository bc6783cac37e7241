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
//! | `N_discord_api_requests_total` | `endpoint`, `method`, `status_code` |
//! | `N_discord_api_request_duration_seconds` | `endpoint`, `method` — time to the response head, of requests that got one (or an error) |
//! | `N_discord_api_requests_in_flight` | — |
//! | `N_discord_api_ratelimited_total` | `endpoint`, `scope` (`user`, `global`, `shared`, `cloudflare`) |
//! | `N_discord_api_invalid_requests` | — 401, 403 and non-shared 429 in the last 10 minutes |
//! | `N_discord_api_edge_errors_total` | `kind`: answers of Discord's [edge](crate::edge) |
//! | `N_discord_api_body_errors_total` | `endpoint`, `method`, `kind`: proxy only, upstream bodies that failed after their head ([`body`](crate::body)) |
//! | `N_gateway_session_starts_*`, `N_gateway_max_concurrency` | — : [session starts](crate::session), from `GET /gateway/bot` |
//!
//! # `status_code`
//!
//! - the numeric status of the response head (`200`, `404`, `429`…);
//! - `error`: the inner service returned an error, or the proxy could not reach the upstream
//!   (a 502 [`Forward`](crate::Forward) answered itself, marked with a
//!   [`ForwardErrorType`]);
//! - `timeout`: the upstream sent no response head in time (the proxy's 504, marked the same
//!   way);
//! - `client_error`: the client's request body was malformed or cut short (the proxy's 400,
//!   marked [`ForwardErrorType::ClientBody`]): not the upstream's fault;
//! - `cancelled`: the request was dropped before its response head, for example because the
//!   caller gave up;
//! - `panic`: the inner future panicked; the panic resumes unchanged.
//!
//! Errors are told apart by the marker, never by the error's type, so they are counted right
//! whatever layers wrap the stack. Requests `cancelled` or `panic` are counted but not timed:
//! the histogram has no status to set their partial time apart.
//!
//! The ending goes through botscope-core's [`Timer`], the one timing model of botscope; the
//! in-flight gauge through its [`GaugeGuard`], released after the request is recorded.
//!
//! # Naming
//!
//! Under [`Naming::Semconv`] (from [`DiscordMetricsLayerBuilder::naming`], else the
//! process-wide default `botscope::Telemetry` sets), the request count and duration above
//! give way to the OpenTelemetry semantic conventions' `http.client.request.duration`
//! (seconds, buckets `.005 .01 .025 .05 .075 .1 .25 .5 .75 1 2.5 5 7.5 10`), recording
//! every request, failures included:
//!
//! | attribute | value |
//! |---|---|
//! | `http.request.method` | `CONNECT`, `DELETE`, `GET`, `HEAD`, `OPTIONS`, `PATCH`, `POST`, `PUT`, `TRACE`, else `_OTHER` |
//! | `server.address`, `server.port` | [`server`](DiscordMetricsLayerBuilder::server): `discord.com`, `443` by default; the proxy's upstream |
//! | `url.template` | the `endpoint` route template; absent for `other` |
//! | `http.response.status_code` | the status of the response head, when there is one |
//! | `error.type` | the status code for 400 and above; `timeout`, `unreachable`, `invalid_uri`, `no_crypto_provider` for the proxy's own 502/504; `client_error` for its 400 on a spoiled upload; `cancelled`; `panic`; `_OTHER` for an error of the inner service; absent on success |
//!
//! `N_discord_api_requests_total` is not recorded then: the histogram's `_count` by status
//! and `error.type` counts the same requests. Every other family keeps its name.
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
//! [`DEFAULT_ENDPOINT_CAP`](crate::route::DEFAULT_ENDPOINT_CAP) values (then `other`) by the
//! layer's [`Routes`], or by the parser of whichever layer parsed the request first;
//! `method` has six values; `status_code` is bounded by HTTP plus five words.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use botscope_core::GaugeGuard;
use botscope_core::naming::Naming;
use botscope_core::outcome::{Ending, Finish, Timer};
use http::StatusCode;
use opentelemetry::StringValue;
use opentelemetry::metrics::Meter;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::edge::{EdgeErrorKind, ErrorBody};
use crate::forward::ForwardErrorType;
use crate::instruments::{DISCORD_SERVER, ENDPOINT, End, Instruments, KIND, OUTCOME, SCOPE, kv};
use crate::interaction;
use crate::ratelimit::RateLimitScope;
use crate::route::{RouteKind, Routes};
use crate::session::SessionStartLimit;

/// A boxed error, as tower middleware commonly returns.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Builds a [`DiscordMetricsLayer`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct DiscordMetricsLayerBuilder {
    meter: Option<Meter>,
    routes: Option<Routes>,
    naming: Option<Naming>,
    server: Option<(StringValue, u16)>,
}

impl DiscordMetricsLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct `endpoint` values (default
    /// [`DEFAULT_ENDPOINT_CAP`](crate::route::DEFAULT_ENDPOINT_CAP)), then
    /// `other`: shorthand for [`routes`](Self::routes)`(Routes::new(cap))`.
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

    /// The names of the request count and duration (see the [module docs](self#naming));
    /// default: the process-wide [`botscope_core::naming::global`], which
    /// `botscope::Telemetry` sets.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// The `server.address` and `server.port` of [`Naming::Semconv`]: where the requests
    /// go. Default `discord.com` and `443`; [`DiscordProxy`](crate::DiscordProxy) gives its
    /// upstream's.
    pub fn server(mut self, address: impl Into<StringValue>, port: u16) -> Self {
        self.server = Some((address.into(), port));
        self
    }

    /// Builds the instruments once; every service the layer makes shares them.
    pub fn build(self) -> DiscordMetricsLayer {
        let meter =
            botscope_core::meter::meter_or_global(self.meter, crate::SCOPE_NAME, crate::VERSION);
        let naming = botscope_core::naming::naming_or_global(self.naming);
        let server = self
            .server
            .unwrap_or_else(|| (DISCORD_SERVER.0.into(), DISCORD_SERVER.1));
        DiscordMetricsLayer {
            instruments: Arc::new(Instruments::new(&meter, naming, server)),
            routes: self.routes.unwrap_or_default(),
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
    routes: Routes,
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

    /// The parser of the requests this layer sees without a route, to share with the other
    /// layers of a stack.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The shared instruments, for the proxy's count of bodies failed after their head.
    pub(crate) fn instruments(&self) -> &Arc<Instruments> {
        &self.instruments
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
            routes: self.routes.clone(),
        }
    }
}

/// The service of [`DiscordMetricsLayer`]: see the [module docs](self).
#[derive(Clone)]
pub struct DiscordMetrics<S> {
    inner: S,
    instruments: Arc<Instruments>,
    routes: Routes,
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
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let route = self.routes.route(&mut request);
        // An interaction's response latency ends now, as the proxy forwards it.
        let interaction = match (route.kind(), route.interaction_id()) {
            (RouteKind::InteractionCallback, Some(id)) => Some(InteractionCall::Callback {
                late: self.instruments.callback_latency(id),
            }),
            (RouteKind::InteractionFollowup, _) => Some(InteractionCall::Followup),
            _ => None,
        };
        let record = Record {
            instruments: Arc::clone(&self.instruments),
            endpoint: route.endpoint().clone(),
            method: self.instruments.method(route.method(), request.method()),
            interaction,
        };
        let gateway_bot =
            route.kind() == RouteKind::GatewayBot && request.method() == http::Method::GET;
        let timer = Timer::start(record).with_gauge(GaugeGuard::new(&self.instruments.in_flight));
        ResponseFuture {
            inner: self.inner.call(request),
            timer: Some(timer),
            gateway_bot,
        }
    }
}

/// What the metrics take from a call that returned.
enum Answer {
    /// A response head; the scope is read for a 429 only, Discord's error code (when the
    /// proxy read one) and the edge kind for a 4xx or 5xx only, the session start limit for a
    /// `GET /gateway/bot` only.
    Head {
        status: StatusCode,
        scope: Option<RateLimitScope>,
        code: Option<u32>,
        edge: Option<EdgeErrorKind>,
        session: Option<SessionStartLimit>,
    },
    /// The proxy's own answer to a request it could not forward.
    NotForwarded(ForwardErrorType),
    /// The inner service's error.
    Error,
}

impl Answer {
    /// `gateway_bot`: the request was a `GET /gateway/bot`.
    fn of<ResBody, E>(result: &Result<http::Response<ResBody>, E>, gateway_bot: bool) -> Self {
        let Ok(response) = result else {
            return Self::Error;
        };
        let extensions = response.extensions();
        if let Some(kind) = extensions.get::<ForwardErrorType>() {
            return Self::NotForwarded(*kind);
        }
        let status = response.status();
        let scope = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| RateLimitScope::from_headers(response.headers()));
        let (code, edge) = if status.is_client_error() || status.is_server_error() {
            let body = extensions.get::<ErrorBody>();
            (
                body.and_then(ErrorBody::code),
                EdgeErrorKind::classify(status, scope, response.headers(), body),
            )
        } else {
            (None, None)
        };
        Self::Head {
            status,
            scope,
            code,
            edge,
            session: (gateway_bot && status.is_success())
                .then(|| extensions.get::<SessionStartLimit>().copied())
                .flatten(),
        }
    }
}

/// The [`Finish`] of one request: its series and how it ended.
struct Record {
    instruments: Arc<Instruments>,
    endpoint: StringValue,
    method: &'static str,
    interaction: Option<InteractionCall>,
}

/// A request that answers an interaction (see [`interaction`](crate::interaction)).
#[derive(Clone, Copy)]
enum InteractionCall {
    /// The initial response; `late` when forwarded past Discord's deadline.
    Callback { late: bool },
    /// A follow-up on the interaction's token.
    Followup,
}

impl InteractionCall {
    fn record(self, instruments: &Instruments, ending: &Ending<'_, Answer>) {
        let answer = match ending {
            Ending::Completed(Answer::Head { status, code, .. }) => Some((*status, *code)),
            _ => None,
        };
        let (counter, outcome) = match self {
            Self::Callback { late } => (
                &instruments.interaction_responses,
                interaction::callback_outcome(late, answer),
            ),
            Self::Followup => (
                &instruments.interaction_followups,
                interaction::followup_outcome(answer),
            ),
        };
        counter.add(1, &[kv(OUTCOME, outcome)]);
    }
}

impl Finish<Answer> for Record {
    fn finish(self, elapsed: Duration, ending: Ending<'_, Answer>) {
        let instruments = &self.instruments;
        let end = match &ending {
            Ending::Completed(Answer::Head {
                status,
                scope,
                edge,
                session,
                ..
            }) => {
                if let Some(edge) = edge {
                    instruments.edge_errors.add(1, &[kv(KIND, edge.as_str())]);
                }
                if let Some(session) = session {
                    instruments.record_session_starts(session);
                }
                if let Some(scope) = scope {
                    if scope.counts_as_invalid() {
                        instruments.invalid.record();
                    }
                    instruments.ratelimited.add(
                        1,
                        &[
                            kv(ENDPOINT, self.endpoint.clone()),
                            kv(SCOPE, scope.as_str()),
                        ],
                    );
                } else if matches!(*status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    instruments.invalid.record();
                }
                End::Head(*status)
            }
            Ending::Completed(Answer::NotForwarded(kind)) => End::NotForwarded(*kind),
            Ending::Completed(Answer::Error) => End::Error,
            Ending::Panicked => End::Panicked,
            Ending::Cancelled => End::Cancelled,
        };
        instruments.record_request(self.endpoint, self.method, end, elapsed);
        if let Some(call) = self.interaction {
            call.record(instruments, &ending);
        }
    }
}

pin_project! {
    /// The future of [`DiscordMetrics`]: records the request once the inner future yields a
    /// response head or an error, panics, or is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before the inner future returned drops that future and counts the request
    /// as `status_code="cancelled"` (not timed); the in-flight gauge goes back down.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` once the request is recorded.
        timer: Option<Timer<Answer, Record>>,
        // Whether the request is a `GET /gateway/bot`, whose answer carries the session
        // start budget.
        gateway_bot: bool,
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
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Some(timer) = this.timer else {
            // Recorded already: polled again after it returned.
            return inner.poll(cx);
        };
        // A panic is recorded as `panic`, then resumes unchanged.
        let result = ready!(timer.record_panic(|| inner.poll(cx)));
        if let Some(timer) = this.timer.take() {
            timer.complete(&Answer::of(&result, *this.gateway_bot));
        }
        Poll::Ready(result)
    }
}
