//! [`DiscordProxy`]: a loopback HTTP server that twilight-http is pointed at, measuring and
//! ratelimiting every request before forwarding it to Discord.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = botscope_http::DiscordProxy::builder().spawn().await?;
//! let http = proxy
//!     .configure(twilight_http::Client::builder().token("Bot token".to_owned()))
//!     .build();
//! let me = http.current_user().await?.model().await?;
//! # let _ = me;
//! proxy.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The tower stack, outermost first: the gate (parses the route once, refuses what it must
//! not forward, answers 502 for an error a layer of yours returns), your own
//! [`layer`](DiscordProxyBuilder::layer)s, [`RateLimitLayer`], [`DiscordMetricsLayer`],
//! [`Forward`]. The gate leaves the parsed [`Route`](crate::route::Route) in the request's
//! extensions and the layers below reuse it: one parse and one `endpoint` cap decision per
//! request, from the path as the gate received it.
//!
//! # Rules
//!
//! - Only Discord's methods are forwarded: GET, POST, PUT, PATCH and DELETE, all twilight-http
//!   sends. Any other (HEAD, OPTIONS, TRACE, CONNECT, custom ones) gets 405 with an `Allow`
//!   header ([`FORWARDED_METHODS`]), before the ratelimiter and the metrics.
//! - Only `/api/v{N}/…` paths are forwarded (others get 404), to the configured upstream
//!   only: an absolute-form request naming another host gets 400.
//! - The proxy never answers 401 or 429 for its own reasons (twilight-http would disable its
//!   token or retry forever): upstream unreachable → 502, upstream timeout → 504, counted as
//!   `status_code="error"` and `"timeout"`. [`Forward`] answers those itself, marked with a
//!   [`ForwardErrorType`](crate::ForwardErrorType) in the response extensions, so they pass
//!   through your layers as responses and are counted right whatever your layers do to
//!   errors. An error one of your layers returns is answered 502.
//! - A request body the client spoils (bad chunked framing, a hang-up mid-upload) is the
//!   client's fault: 400, counted `status_code="client_error"`, logged at `debug` only.
//! - An upstream body with no byte for the [body timeout](DiscordProxyBuilder::body_timeout)
//!   is cut and counted apart (see [`body`](crate::body)).
//! - Past [`max_connections`](DiscordProxyBuilder::max_connections) open connections a new
//!   one closes a connection that has waited a second or more for a request head (never-used
//!   ones first, then the one idle longest), or any waiting one past twice the cap.
//!   Connections with a request in flight (the bot's, waiting for their ratelimit bucket) are
//!   never closed or refused. Each request
//!   head must be complete within the [header read
//!   timeout](DiscordProxyBuilder::header_read_timeout).
//! - Hop-by-hop headers are stripped both ways; bodies stream through.
//! - Paths with empty, `.` or `..` segments (percent-encoded or not) get 400: Discord has
//!   none, and they are how a token would slip past the shapes that are redacted.
//! - The proxy's own logs never carry an `authorization` header or a raw path: they name
//!   the route template only. twilight's ratelimiter logs the paths it queues (`debug`,
//!   `info` when a bucket runs out), with every segment that is neither a numeric id nor a
//!   Discord path word replaced by a keyed hash, so no token reaches those either
//!   (see [`RateLimitLayer`]).
//!
//! [`RateLimitLayer`]: crate::RateLimitLayer
//! [`DiscordMetricsLayer`]: crate::DiscordMetricsLayer
//! [`Forward`]: crate::Forward

pub(crate) mod builder;
pub(crate) mod connections;
pub(crate) mod error;
pub(crate) mod gate;
pub(crate) mod serve;

pub use crate::forward::body::{DEFAULT_BODY_TIMEOUT, ProxyBody};
pub use crate::proxy::builder::{
    DEFAULT_CLIENT_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DiscordProxy,
    DiscordProxyBuilder, ProxyService,
};
pub use crate::proxy::error::{ProxyError, ProxyErrorType, validate_upstream};
pub use crate::proxy::gate::FORWARDED_METHODS;
pub use crate::proxy::serve::SHUTDOWN_GRACE;
