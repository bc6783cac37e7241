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
//!
//! [`Timer`]: botscope_core::outcome::Timer
//! [`GaugeGuard`]: botscope_core::GaugeGuard
//! [`Naming::Semconv`]: botscope_core::naming::Naming::Semconv
//! [`Routes`]: crate::route::Routes
//! [`ForwardErrorType`]: crate::ForwardErrorType
//! [`ForwardErrorType::ClientBody`]: crate::ForwardErrorType::ClientBody

pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod record;
pub(crate) mod service;

pub use crate::failure::BoxError;
pub use crate::metrics::future::ResponseFuture;
pub use crate::metrics::layer::{DiscordMetricsLayer, DiscordMetricsLayerBuilder};
pub use crate::metrics::service::DiscordMetrics;
