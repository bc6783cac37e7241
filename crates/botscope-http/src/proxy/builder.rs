//! [`DiscordProxyBuilder`], and [`DiscordProxy`], the handle of a running proxy.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use botscope_core::naming::Naming;
use botscope_server::CancellationToken;
use http::{Request, Response};
use hyper::body::Incoming;
use opentelemetry::metrics::Meter;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};
use twilight_http::client::ClientBuilder;
use twilight_http_ratelimiting::RateLimiter;

use crate::failure::BoxError;
use crate::forward::body::{DEFAULT_BODY_TIMEOUT, ProxyBody};
use crate::forward::service::{DEFAULT_TIMEOUT, DEFAULT_UPSTREAM, Forward};
use crate::forward::upstream::Upstream;
use crate::instruments::server_of;
use crate::metrics::layer::DiscordMetricsLayer;
use crate::proxy::error::{ProxyError, ProxyErrorType};
use crate::proxy::gate::Gate;
use crate::proxy::serve::{Limits, serve};
use crate::ratelimit::layer::DiscordRateLimitLayer;

/// The service a [`DiscordProxyBuilder::layer`] wraps: the rest of the stack, boxed.
///
/// Its responses are the upstream's, or [`Forward`]'s own 502/504 (marked with a
/// [`ForwardFailure`](crate::ForwardFailure)); it returns no error of its own.
pub type ProxyService = BoxCloneSyncService<Request<Incoming>, Response<ProxyBody>, BoxError>;

type LayerFn = Arc<dyn Fn(ProxyService) -> ProxyService + Send + Sync>;

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

/// Builds a [`DiscordProxy`]: see the [module docs](crate::proxy).
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
    ratelimiter: Option<RateLimiter>,
    global_limit: Option<u16>,
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
            ratelimiter: None,
            global_limit: None,
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
    /// bucket inside the proxy), or whose answer is not yet written to its socket, is never
    /// closed, and when every open connection is such, the new one is let in. So connections held open without a request can neither keep the
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

    /// Uses `ratelimiter` instead of a new one with twilight's defaults.
    pub fn ratelimiter(mut self, ratelimiter: RateLimiter) -> Self {
        self.ratelimiter = Some(ratelimiter);
        self
    }

    /// The bot's global limit, in requests per second, of the ratelimiter built when none is
    /// given (default 50, Discord's for most bots; large bots can be granted more): see
    /// [`DiscordRateLimitLayerBuilder::global_limit`](crate::DiscordRateLimitLayerBuilder::global_limit).
    pub fn global_limit(mut self, limit: u16) -> Self {
        self.global_limit = Some(limit);
        self
    }

    /// How often the ratelimiter's per-token queues (webhooks, interactions) are swept:
    /// [`DiscordRateLimitLayerBuilder::sweep_interval`](crate::DiscordRateLimitLayerBuilder::sweep_interval).
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
        let upstream = Upstream::parse(&self.upstream)
            .ok_or(ProxyError::new(ProxyErrorType::InvalidUpstream, None))?;
        let forward = Forward::<Incoming>::new(upstream, self.timeout, self.crypto_provider)
            .map_err(|source| ProxyError::new(ProxyErrorType::Tls, Some(Box::new(source))))?;
        let bind = |source: std::io::Error| {
            ProxyError::new(
                ProxyErrorType::Bind { addr: self.listen },
                Some(Box::new(source)),
            )
        };
        let listener = TcpListener::bind(self.listen).await.map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;

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
                if let Some((address, port)) = server_of(&self.upstream) {
                    metrics = metrics.server(address, port);
                }
                metrics.build()
            }
        };
        // One parser for the gate and both layers: the metrics layer's, so proxies sharing
        // one metrics layer share its endpoint cap too.
        let routes = metrics.routes().clone();
        let forward = forward.with_body_timeout(self.body_timeout, Some(metrics.body_errors()));
        let limits = Limits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
        };
        let mut ratelimit = DiscordRateLimitLayer::builder().routes(routes.clone());
        if let Some(meter) = &self.meter {
            ratelimit = ratelimit.meter(meter.clone());
        }
        if let Some(ratelimiter) = self.ratelimiter {
            ratelimit = ratelimit.ratelimiter(ratelimiter);
        }
        if let Some(limit) = self.global_limit {
            ratelimit = ratelimit.global_limit(limit);
        }
        if let Some(interval) = self.sweep_interval {
            ratelimit = ratelimit.sweep_interval(interval);
        }
        let stack = ServiceBuilder::new()
            .layer(ratelimit.build())
            .layer(metrics)
            .service(forward);
        // Never cancelled if the handle is dropped: the proxy serves until the runtime stops.
        let shutdown = CancellationToken::new();
        let task = if self.layers.is_empty() {
            tokio::spawn(serve(
                listener,
                Gate::new(stack, local_addr, routes),
                limits,
                shutdown.clone(),
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
                shutdown.clone(),
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

/// A running proxy: see the [module docs](crate::proxy).
///
/// Dropping the handle leaves the proxy serving until the runtime stops; call
/// [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct DiscordProxy {
    local_addr: SocketAddr,
    client_timeout: Duration,
    shutdown: CancellationToken,
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

    /// Stops accepting, lets requests in flight finish (up to [`SHUTDOWN_GRACE`](crate::proxy::SHUTDOWN_GRACE)), and returns.
    ///
    /// # Cancel safety
    ///
    /// Cancelling it leaves the shutdown running in the background.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
