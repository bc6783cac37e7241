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

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use botscope_core::naming::Naming;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use opentelemetry::StringValue;
use opentelemetry::metrics::Meter;
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};
use twilight_http::client::ClientBuilder;
use twilight_http_ratelimiting::RateLimiter;

pub use crate::body::DEFAULT_BODY_TIMEOUT;
use crate::body::UpstreamBody;
use crate::connections::{Connections, Tracked};
use crate::forward::{DEFAULT_TIMEOUT, DEFAULT_UPSTREAM, Forward, Upstream, own_response};
use crate::metrics::{BoxError, DiscordMetricsLayer};
use crate::ratelimit::RateLimitLayer;
use crate::route::Routes;

/// The body of the proxy's responses: the upstream's, streamed (with an idle timeout, see
/// [`UpstreamBody`]), or the proxy's own.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// The service a [`DiscordProxyBuilder::layer`] wraps: the rest of the stack, boxed.
///
/// Its responses are the upstream's, or [`Forward`]'s own 502/504 (marked with a
/// [`ForwardErrorType`](crate::ForwardErrorType)); it returns no error of its own.
pub type ProxyService = BoxCloneSyncService<Request<Incoming>, Response<ProxyBody>, BoxError>;

type LayerFn = Arc<dyn Fn(ProxyService) -> ProxyService + Send + Sync>;

/// How long [`DiscordProxy::shutdown`] lets requests in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The timeout [`DiscordProxy::configure`] gives twilight-http by default: one hour.
///
/// twilight-http's own timeout (10 s) covers only the HTTP round trip when it ratelimits
/// itself: the wait for a bucket comes before its timer starts. Through the proxy the bucket
/// wait happens inside the round trip, so the client needs a timeout long enough for any
/// ratelimit wait. Discord's own round trip stays bounded by the proxy's upstream
/// [`timeout`](DiscordProxyBuilder::timeout) (504).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How many connections the proxy keeps open at once by default
/// ([`DiscordProxyBuilder::max_connections`]).
///
/// A bot has one per request in flight (twilight-http keeps them alive and reuses them); the
/// cap only ever closes connections waiting for a request, so a burst of requests held by a
/// ratelimit bucket may open more.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How long a connection may wait for a complete request head by default
/// ([`DiscordProxyBuilder::header_read_timeout`]): 100 s.
///
/// Longer than the 90 s for which twilight-http's connection pool (hyper's) keeps an idle
/// connection, so the proxy never closes a connection at the instant the bot reuses it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(100);

/// An error spawning a [`DiscordProxy`].
#[derive(Debug)]
pub struct ProxyError {
    kind: ProxyErrorType,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ProxyError {
    /// The type of error.
    pub const fn kind(&self) -> &ProxyErrorType {
        &self.kind
    }

    /// The type of error and its source.
    pub fn into_parts(self) -> (ProxyErrorType, Option<Box<dyn StdError + Send + Sync>>) {
        (self.kind, self.source)
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ProxyErrorType::InvalidUpstream => f.write_str(
                "upstream must be an http or https url without a query or credentials, e.g. https://discord.com",
            ),
            ProxyErrorType::Bind { addr } => write!(f, "cannot listen on {addr}"),
            ProxyErrorType::Tls => f.write_str("cannot build the tls configuration"),
        }
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

/// Checks an upstream base URL as [`DiscordProxyBuilder::spawn`] does: an `http` or `https`
/// URL without a query or credentials, e.g. `https://discord.com`. For a command line or a configuration file
/// that should fail before anything starts.
///
/// # Errors
///
/// [`ProxyErrorType::InvalidUpstream`] if it is not one.
///
/// ```
/// use botscope_http::proxy::validate_upstream;
///
/// assert!(validate_upstream("https://discord.com").is_ok());
/// assert!(validate_upstream("http://127.0.0.1:8080/prefix").is_ok());
/// assert!(validate_upstream("discord.com").is_err());
/// assert!(validate_upstream("ftp://discord.com").is_err());
/// assert!(validate_upstream("https://discord.com/?secret=1").is_err());
/// assert!(validate_upstream("https://user:pass@discord.com").is_err());
/// ```
pub fn validate_upstream(base: &str) -> Result<(), ProxyError> {
    match Upstream::parse(base) {
        Some(_) => Ok(()),
        None => Err(ProxyError {
            kind: ProxyErrorType::InvalidUpstream,
            source: None,
        }),
    }
}

/// The type of a [`ProxyError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyErrorType {
    /// The upstream is not an `http`/`https` URL.
    InvalidUpstream,
    /// The listen address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
    },
    /// The TLS configuration could not be built.
    Tls,
}

/// Builds a [`DiscordProxy`]: see the [module docs](self).
#[must_use = "a builder does nothing until spawned"]
pub struct DiscordProxyBuilder {
    upstream: String,
    listen: SocketAddr,
    timeout: Duration,
    body_timeout: Duration,
    client_timeout: Duration,
    max_connections: usize,
    header_read_timeout: Duration,
    meter: Option<Meter>,
    naming: Option<Naming>,
    metrics: Option<DiscordMetricsLayer>,
    limiter: Option<RateLimiter>,
    sweep_interval: Option<Duration>,
    crypto_provider: Option<Arc<rustls::crypto::CryptoProvider>>,
    layers: Vec<LayerFn>,
}

impl fmt::Debug for DiscordProxyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordProxyBuilder")
            .field("upstream", &self.upstream)
            .field("listen", &self.listen)
            .field("timeout", &self.timeout)
            .field("body_timeout", &self.body_timeout)
            .field("client_timeout", &self.client_timeout)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Default for DiscordProxyBuilder {
    fn default() -> Self {
        Self {
            upstream: DEFAULT_UPSTREAM.to_owned(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            timeout: DEFAULT_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            meter: None,
            naming: None,
            metrics: None,
            limiter: None,
            sweep_interval: None,
            crypto_provider: None,
            layers: Vec::new(),
        }
    }
}

impl DiscordProxyBuilder {
    /// Where requests go (default `https://discord.com`); a path prefix is kept.
    pub fn upstream(mut self, base: impl Into<String>) -> Self {
        self.upstream = base.into();
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free loopback port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// How long to wait for the upstream's response head before answering 504 (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to wait for each next byte of the upstream's response body (default
    /// [`DEFAULT_BODY_TIMEOUT`], 30 s). An upstream silent for longer has its body cut: the
    /// client sees the body end with an error, the failure is counted in
    /// `N_discord_api_body_errors_total{kind="timeout"}` and logged once (see
    /// [`body`](crate::body)). A value too large to add to the clock means no timeout.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The connection cap of the proxy's port (default [`DEFAULT_MAX_CONNECTIONS`]; at least
    /// 1). Past it, each new connection closes one that has waited a second or more for a
    /// request head: first those that never sent a request (accepted and silent, or holding a
    /// half-sent head), oldest first, then the one idle longest between requests. If none
    /// has, the new one is let in over the cap (a burst whose heads are not read yet), up to
    /// twice `max`, past which the first waiting connection in that order goes whatever its
    /// age. A connection with a request in flight (the bot's, waiting for its ratelimit
    /// bucket inside the proxy) is never closed, and when every open connection has one, the
    /// new one is let in. So connections held open without a request can neither keep the
    /// bot's out nor fill the file table (at most twice `max` plus the requests in flight);
    /// a bot that opens more than twice `max` new connections at once should raise it.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a connection may wait for a complete request head (default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`], 100 s), counted from the moment it starts waiting:
    /// when it is accepted, or when its previous response is sent. It is hyper's HTTP/1
    /// header read timeout, so it is also the keep-alive idle timeout of HTTP/1 connections:
    /// keep it above the 90 s for which the bot's client keeps an idle connection. HTTP/2
    /// connections (twilight-http opens none to the proxy) are bounded by
    /// [`max_connections`](Self::max_connections) only. A value too large to add to the clock
    /// (`Duration::MAX`) means no timeout.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The timeout [`DiscordProxy::configure`] sets on twilight-http clients (default
    /// [`DEFAULT_CLIENT_TIMEOUT`], one hour): it bounds a whole call, the wait for a
    /// ratelimit bucket included, so keep it longer than any ratelimit wait you accept.
    /// Discord's round trip alone is bounded by [`timeout`](Self::timeout). Any value is
    /// safe: one too large to add to the clock (`Duration::MAX`) means no timeout.
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = timeout;
        self
    }

    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The names of the request count and duration of the metrics layer the proxy builds
    /// (see [`DiscordMetricsLayerBuilder::naming`](crate::DiscordMetricsLayerBuilder::naming)),
    /// whose `server.address` and `server.port` are the upstream's. Default: the process-wide
    /// naming. Ignored with [`metrics_layer`](Self::metrics_layer), which has its own.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// Measures with `layer` instead of a new [`DiscordMetricsLayer`] built from
    /// [`meter`](Self::meter).
    ///
    /// Give every proxy recording into one meter provider a clone of the same layer:
    /// `N_discord_api_invalid_requests` is observed per layer, so two layers on one provider
    /// each report their own 10-minute count under the same name and the scrape shows only
    /// one of them. A clone shares the count (and costs one `Arc`).
    pub fn metrics_layer(mut self, layer: DiscordMetricsLayer) -> Self {
        self.metrics = Some(layer);
        self
    }

    /// The rustls crypto provider of the proxy's own TLS to Discord. By default the process's
    /// (the one the bot installs, or twilight-http's `build()` installs from the rustls
    /// features of the bot's tree); botscope turns on no provider and installs none.
    pub fn crypto_provider(mut self, provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        self.crypto_provider = Some(provider);
        self
    }

    /// Uses `limiter` instead of a new one with twilight's defaults.
    pub fn ratelimiter(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// How often the ratelimiter's per-token queues (webhooks, interactions) are swept:
    /// [`RateLimitLayerBuilder::sweep_interval`](crate::RateLimitLayerBuilder::sweep_interval).
    pub fn ratelimit_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Adds one of your own tower layers, outside the ratelimit and metrics layers (the first
    /// added is the outermost). The layer sees every forwarded request, and the upstream's
    /// response or the proxy's own 502/504 (see [`ProxyService`]). An error it returns is
    /// answered 502 (and logged with the route template); the metrics layer, below it, has
    /// counted the request already.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<ProxyService> + Send + Sync + 'static,
        L::Service: Service<Request<Incoming>, Response = Response<ProxyBody>>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<Incoming>>>::Error: Into<BoxError>,
        <L::Service as Service<Request<Incoming>>>::Future: Send + 'static,
    {
        self.layers.push(Arc::new(move |inner| {
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .map_err(Into::into)
                    .service(layer.layer(inner)),
            )
        }));
        self
    }

    /// Binds the listener and serves the proxy on a Tokio task.
    ///
    /// # Errors
    ///
    /// [`ProxyErrorType::InvalidUpstream`] for an upstream that is not an `http`/`https` URL,
    /// [`ProxyErrorType::Bind`] if the address cannot be bound, [`ProxyErrorType::Tls`] if
    /// rustls rejects its own configuration.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it before it completes closes the listener.
    pub async fn spawn(self) -> Result<DiscordProxy, ProxyError> {
        let upstream = Upstream::parse(&self.upstream).ok_or(ProxyError {
            kind: ProxyErrorType::InvalidUpstream,
            source: None,
        })?;
        let forward = Forward::<Incoming>::new(upstream, self.timeout, self.crypto_provider)
            .map_err(|source| ProxyError {
                kind: ProxyErrorType::Tls,
                source: Some(Box::new(source)),
            })?;
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| ProxyError {
                kind: ProxyErrorType::Bind { addr: self.listen },
                source: Some(Box::new(source)),
            })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError {
            kind: ProxyErrorType::Bind { addr: self.listen },
            source: Some(Box::new(source)),
        })?;

        let metrics = match self.metrics {
            Some(layer) => layer,
            None => {
                let mut metrics = DiscordMetricsLayer::builder();
                if let Some(meter) = &self.meter {
                    metrics = metrics.meter(meter.clone());
                }
                if let Some(naming) = self.naming {
                    metrics = metrics.naming(naming);
                }
                if let Some((address, port)) = crate::instruments::server_of(&self.upstream) {
                    metrics = metrics.server(address, port);
                }
                metrics.build()
            }
        };
        // One parser for the gate and both layers: the metrics layer's, so proxies sharing
        // one metrics layer share its endpoint cap too.
        let routes = metrics.routes().clone();
        let forward =
            forward.with_body_timeout(self.body_timeout, Some(Arc::clone(metrics.instruments())));
        let limits = Limits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
        };
        let mut ratelimit = RateLimitLayer::builder().routes(routes.clone());
        if let Some(meter) = &self.meter {
            ratelimit = ratelimit.meter(meter.clone());
        }
        if let Some(limiter) = self.limiter {
            ratelimit = ratelimit.limiter(limiter);
        }
        if let Some(interval) = self.sweep_interval {
            ratelimit = ratelimit.sweep_interval(interval);
        }
        let stack = ServiceBuilder::new()
            .layer(ratelimit.build())
            .layer(metrics)
            .service(forward);
        let (shutdown, signal) = watch::channel(false);
        let task = if self.layers.is_empty() {
            tokio::spawn(serve(
                listener,
                Gate::new(stack, local_addr, routes),
                limits,
                signal,
            ))
        } else {
            let mut service: ProxyService = BoxCloneSyncService::new(
                ServiceBuilder::new().map_err(BoxError::from).service(stack),
            );
            for layer in self.layers.iter().rev() {
                service = layer(service);
            }
            tokio::spawn(serve(
                listener,
                Gate::new(service, local_addr, routes),
                limits,
                signal,
            ))
        };
        Ok(DiscordProxy {
            local_addr,
            client_timeout: self.client_timeout,
            shutdown,
            task,
        })
    }
}

/// A running proxy: see the [module docs](self).
///
/// Dropping the handle leaves the proxy serving until the runtime stops; call
/// [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct DiscordProxy {
    local_addr: SocketAddr,
    client_timeout: Duration,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DiscordProxy {
    /// A builder with the defaults: upstream `https://discord.com`, listen `127.0.0.1:0`.
    pub fn builder() -> DiscordProxyBuilder {
        DiscordProxyBuilder::default()
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Points a twilight-http client at the proxy: `proxy(addr, true)`, `ratelimiter(None)`
    /// (the proxy ratelimits; a second limiter would only add latency) and
    /// `timeout(`[`client_timeout`](DiscordProxyBuilder::client_timeout)`)`.
    ///
    /// The timeout replaces any set on `builder` before: through the proxy, the wait for a
    /// ratelimit bucket is part of the HTTP round trip that twilight-http times, and its
    /// default 10 s would fail calls that twilight's own limiter lets wait. Set a shorter
    /// one with [`DiscordProxyBuilder::client_timeout`] (or `timeout` after this call).
    ///
    /// twilight-http's `build()` needs a process-wide rustls crypto provider; choosing it is
    /// the bot's business, and botscope installs none: call
    /// `rustls::crypto::ring::default_provider().install_default()` (or aws-lc-rs's) once at
    /// start-up, as a bot without botscope does.
    pub fn configure(&self, builder: ClientBuilder) -> ClientBuilder {
        builder
            .proxy(self.local_addr.to_string(), true)
            .ratelimiter(None)
            .timeout(self.client_timeout)
    }

    /// Stops accepting, lets requests in flight finish (up to [`SHUTDOWN_GRACE`]), and returns.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it leaves the shutdown running in the background.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// How the accept loop treats connections.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_connections: usize,
    header_read_timeout: Duration,
}

async fn serve<S>(
    listener: TcpListener,
    gate: Gate<S>,
    limits: Limits,
    mut signal: watch::Receiver<bool>,
) where
    Gate<S>: Service<Request<Incoming>, Response = Response<ProxyBody>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <Gate<S> as Service<Request<Incoming>>>::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper adds the timeout to the clock: one too large for it means none.
    let header_read_timeout = tokio::time::Instant::now()
        .checked_add(limits.header_read_timeout)
        .map(|_| limits.header_read_timeout);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(limits.max_connections);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "botscope proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_requested(&mut signal) => break,
        };
        let _ = stream.set_nodelay(true);
        connections.admit(|activity, registration| {
            let connection = builder
                .serve_connection(TokioIo::new(stream), Tracked::new(gate.clone(), activity))
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _registration = registration;
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "botscope proxy: connection ended with an error");
                }
            })
            .abort_handle()
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// Resolves once [`DiscordProxy::shutdown`] asks; never if the handle was dropped without it,
/// so a dropped handle leaves the proxy serving until the runtime stops.
async fn stop_requested(signal: &mut watch::Receiver<bool>) {
    loop {
        if *signal.borrow_and_update() {
            return;
        }
        if signal.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The outermost service: parses the route, refuses what must not be forwarded and answers
/// errors itself.
#[derive(Clone)]
struct Gate<S> {
    inner: S,
    local_port: u16,
    routes: Routes,
}

impl<S> Gate<S> {
    fn new(inner: S, local_addr: SocketAddr, routes: Routes) -> Self {
        Self {
            inner,
            local_port: local_addr.port(),
            routes,
        }
    }

    /// Whether an absolute-form request names this proxy (or is origin-form).
    fn names_us(&self, uri: &http::Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return true;
        };
        let local = matches!(
            authority.host(),
            "127.0.0.1" | "localhost" | "[::1]" | "::1"
        );
        local && authority.port_u16() == Some(self.local_port)
    }
}

/// The methods the proxy forwards, as its `Allow` header lists them: Discord's REST API uses
/// only these, and so does twilight-http (its `Method` has no other).
pub const FORWARDED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";

/// Whether the proxy forwards `method` (see [`FORWARDED_METHODS`]): anything else, `HEAD`
/// and `OPTIONS` included, is answered 405 by the proxy and never reaches the ratelimiter,
/// the metrics or Discord.
fn is_forwarded_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether every segment of `path` is a real one: not empty (`//`, a trailing `/`), not `.`
/// or `..` (percent-encoded or not). Discord's API has no such paths, and they are how a
/// token slips past the shapes the ratelimiter's redaction and the route templates know.
fn has_clean_segments(path: &str) -> bool {
    let is_dot = |segment: &str| {
        let mut rest = segment;
        let mut dots = 0;
        while !rest.is_empty() {
            rest = if let Some(after) = rest.strip_prefix('.') {
                after
            } else if rest
                .as_bytes()
                .get(..3)
                .is_some_and(|head| head.eq_ignore_ascii_case(b"%2e"))
            {
                // Three ASCII bytes: index 3 is a char boundary.
                &rest[3..]
            } else {
                return false;
            };
            dots += 1;
        }
        dots <= 2
    };
    path.strip_prefix('/')
        .is_some_and(|rest| rest.split('/').all(|s| !s.is_empty() && !is_dot(s)))
}

impl<S> Service<Request<Incoming>> for Gate<S>
where
    S: Service<Request<Incoming>, Response = Response<ProxyBody>> + Clone,
    S::Error: fmt::Display,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = GateFuture<tower::util::Oneshot<S, Request<Incoming>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the stack is awaited per request, in the `Oneshot`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let refusal = |status, message| GateFuture::Refused {
            response: Some(own_response(status, message)),
        };
        if !is_forwarded_method(request.method()) {
            let mut response = own_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "botscope proxy forwards only GET, POST, PUT, PATCH and DELETE",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
            return GateFuture::Refused {
                response: Some(response),
            };
        }
        if !self.names_us(request.uri()) {
            return refusal(
                StatusCode::BAD_REQUEST,
                "botscope proxy forwards only to its configured upstream",
            );
        }
        let route = self.routes.route(&mut request);
        if route.version().is_none() {
            return refusal(
                StatusCode::NOT_FOUND,
                "botscope proxy forwards only /api/v{N}/ paths",
            );
        }
        if !has_clean_segments(request.uri().path()) {
            return refusal(
                StatusCode::BAD_REQUEST,
                "botscope proxy refuses paths with empty, . or .. segments",
            );
        }
        GateFuture::Forwarded {
            inner: tower::util::Oneshot::new(self.inner.clone(), request),
            endpoint: route.endpoint().clone(),
            method: route.method(),
        }
    }
}

pin_project! {
    /// The future of the gate.
    #[project = GateProj]
    enum GateFuture<F> {
        Refused { response: Option<Response<ProxyBody>> },
        Forwarded {
            #[pin]
            inner: F,
            // For the log line of an error.
            endpoint: StringValue,
            method: &'static str,
        },
    }
}

impl<F, E> Future for GateFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (inner, endpoint, method) = match self.project() {
            GateProj::Refused { response } => {
                return Poll::Ready(Ok(response
                    .take()
                    .unwrap_or_else(|| own_response(StatusCode::BAD_REQUEST, "bad request"))));
            }
            GateProj::Forwarded {
                inner,
                endpoint,
                method,
            } => (inner, endpoint, method),
        };
        Poll::Ready(Ok(match ready!(inner.poll(cx)) {
            Ok(response) => response,
            Err(error) => {
                // Only a layer of the user's returns errors: the stack below answers its own
                // failures as marked responses.
                tracing::warn!(
                    %endpoint,
                    method = *method,
                    status = 502,
                    %error,
                    "botscope proxy: a layer failed the request"
                );
                own_response(StatusCode::BAD_GATEWAY, "botscope proxy: request failed")
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        let routes = Routes::default();
        let forwarded = |path: &str| routes.parse(&http::Method::GET, path).version().is_some();
        assert!(forwarded("/api/v10/users/@me"));
        assert!(!forwarded("/api/v10"));
        assert!(!forwarded("/api/users/@me"));
        assert!(!forwarded("/metrics"));
    }

    #[test]
    fn clean_segments() {
        assert!(has_clean_segments("/api/v10/users/@me"));
        assert!(has_clean_segments("/api/v10/guilds/1/widget.json"));
        assert!(has_clean_segments("/api/v10/x/...")); // three dots: a name, not a step
        for bad in [
            "/api/v10//users",
            "/api/v10/users/",
            "/api/v10/./users",
            "/api/v10/a/../users",
            "/api/v10/a/%2E%2e/users",
            "/api/v10/a/.%2e",
            "/api/v10/a/%2e",
            "",
        ] {
            assert!(!has_clean_segments(bad), "{bad}");
        }
        for odd in ["/api/v10/é", "/api/v10/%2é", "/api/v10/.é"] {
            assert!(has_clean_segments(odd), "{odd}");
        }
        assert!(!has_clean_segments("/api/v10/a/%2E"));
    }
}
