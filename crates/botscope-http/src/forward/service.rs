//! [`Forward`]: the pooled hyper client the proxy sends requests on with, as a tower service.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::StringValue;
use rustls::crypto::CryptoProvider;
use tower::Service;

use crate::failure::ForwardErrorType;
use crate::forward::body::{ClientBody, DEFAULT_BODY_TIMEOUT, ProxyBody};
use crate::forward::future::{Failure, ForwardFuture};
use crate::forward::upstream::{Upstream, strip_hop_by_hop};
use crate::instruments::BodyErrors;
use crate::route::{OTHER, Route, RouteKind};

/// Where the proxy forwards to unless told otherwise.
pub const DEFAULT_UPSTREAM: &str = "https://discord.com";

/// How long the proxy waits for an upstream response head before answering 504.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends requests on to the upstream over a pooled hyper client (HTTP/1.1 and HTTP/2, rustls
/// with webpki roots), streaming bodies both ways. When the upstream is unreachable or slower
/// than the timeout, answers a response of its own marked with a [`ForwardErrorType`]; never
/// an error. See the [module docs](self).
pub struct Forward<B = Incoming> {
    /// Built at once when a crypto provider is at hand, else on the first request (see
    /// [`Forward::client`]).
    client: Arc<OnceLock<UpstreamClient<B>>>,
    provider: Option<Arc<CryptoProvider>>,
    upstream: Upstream,
    timeout: Duration,
    body_timeout: Duration,
    /// Where a body that fails after its head is reported: the metrics layer's.
    body_errors: Option<BodyErrors>,
}

type UpstreamClient<B> = Client<HttpsConnector<HttpConnector>, ClientBody<B>>;

impl<B> Clone for Forward<B> {
    fn clone(&self) -> Self {
        Self {
            client: Arc::clone(&self.client),
            provider: self.provider.clone(),
            upstream: self.upstream.clone(),
            timeout: self.timeout,
            body_timeout: self.body_timeout,
            body_errors: self.body_errors.clone(),
        }
    }
}

impl<B> fmt::Debug for Forward<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("upstream", &self.upstream.authority)
            .field("timeout", &self.timeout)
            .field("body_timeout", &self.body_timeout)
            .finish_non_exhaustive()
    }
}

impl<B> Forward<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// A forwarder whose TLS uses `provider`, else the process's default provider.
    ///
    /// botscope picks no crypto provider and installs none: enabling one in rustls would make
    /// rustls' own choice from crate features ambiguous for a bot that relies on it. When the
    /// process has no default yet (a bot whose twilight-http client installs it from its
    /// features on `build()`), the client is built on the first request, by which time the
    /// bot's client has built and installed it.
    ///
    /// # Errors
    ///
    /// If rustls refuses the provider (it offers no TLS version the client can use).
    pub(crate) fn new(
        upstream: Upstream,
        timeout: Duration,
        provider: Option<Arc<CryptoProvider>>,
    ) -> Result<Self, rustls::Error> {
        let forward = Self {
            client: Arc::new(OnceLock::new()),
            provider,
            upstream,
            timeout,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_errors: None,
        };
        if let Some(provider) = forward.provider() {
            let _ = forward.client.set(client(provider)?);
        }
        Ok(forward)
    }

    /// Cuts an upstream body after `timeout` without a byte, and reports such failures to
    /// `body_errors` (see [`body`](crate::body)).
    pub(crate) fn with_body_timeout(
        mut self,
        timeout: Duration,
        body_errors: Option<BodyErrors>,
    ) -> Self {
        self.body_timeout = timeout;
        self.body_errors = body_errors;
        self
    }

    /// The provider given, else the process default.
    fn provider(&self) -> Option<Arc<CryptoProvider>> {
        self.provider
            .clone()
            .or_else(|| CryptoProvider::get_default().cloned())
    }

    /// The pooled client, built now if it was not yet and a provider is at hand.
    fn client(&self) -> Option<&UpstreamClient<B>> {
        if let Some(client) = self.client.get() {
            return Some(client);
        }
        let built = client(self.provider()?).ok()?;
        Some(self.client.get_or_init(|| built))
    }
}

/// A pooled hyper client over TLS with `provider` and webpki's roots, HTTP/1.1 and HTTP/2.
fn client<B>(provider: Arc<CryptoProvider>) -> Result<UpstreamClient<B>, rustls::Error>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http_connector());
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}

/// The TCP connector under TLS: `https://` allowed, Nagle off (a request head and a small
/// body written apart must not wait for a delayed ACK).
fn http_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_nodelay(true);
    connector
}

impl<B> Service<Request<B>> for Forward<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ForwardFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // For the log line of a failure. The proxy's gate always leaves the route; `other`
        // stands in if a layer of the user's removed it.
        let route = parts.extensions.get::<Route>();
        let failure = Failure {
            endpoint: route.map_or_else(
                || StringValue::from(OTHER),
                |route| route.endpoint().clone(),
            ),
            method: crate::route::method_label(&parts.method),
        };
        // The session start budget is read from this route's answer: ask for it uncompressed
        // (it is a few hundred bytes), whatever the client accepts.
        let gateway_bot = parts.method == http::Method::GET
            && route.is_some_and(|route| route.kind() == RouteKind::GatewayBot);
        if gateway_bot {
            parts.headers.remove(header::ACCEPT_ENCODING);
        }
        let refused = |kind| ForwardFuture::refused(kind, failure.clone(), gateway_bot);
        let Some(uri) = self.upstream.uri(parts.uri.path_and_query()) else {
            return refused(ForwardErrorType::InvalidUri);
        };
        let Some(client) = self.client() else {
            return refused(ForwardErrorType::NoCryptoProvider);
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        // The client sets `host` from the upstream URI.
        parts.headers.remove(header::HOST);
        let client_failed = Arc::new(AtomicBool::new(false));
        let body = ClientBody::new(body, Arc::clone(&client_failed));
        let response = client.request(Request::from_parts(parts, body));
        ForwardFuture::sent(
            response,
            tokio::time::sleep(self.timeout),
            failure,
            gateway_bot,
            client_failed,
            (self.body_timeout, self.body_errors.clone()),
        )
    }
}
