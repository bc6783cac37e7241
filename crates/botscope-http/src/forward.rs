//! [`Forward`]: the innermost service of the proxy, sending each request on to Discord.
//!
//! It never fails: when the upstream cannot be reached (502), sends no response head in time
//! (504), or the client's own request body fails on the way (400), it answers itself, in
//! Discord's JSON error shape, and marks the response with its [`ForwardErrorType`] in the
//! response extensions. The layers above read the marker, whatever layers of your own sit
//! between them: the metrics layer counts `status_code="error"`, `"timeout"` or
//! `"client_error"`, the ratelimit layer cancels the permit. Each upstream failure logs one
//! `warn` line naming the route template, the method and the status, never the path (a
//! client's fault, `debug`). The upstream's body streams on as an
//! [`UpstreamBody`](crate::UpstreamBody), cut when it stalls (see [`body`](crate::body)).
//!
//! It also reads a few bodies for the layers above, bounded and passed on unchanged: those of
//! 4xx and 5xx answers (an [`ErrorBody`] in the extensions: Discord's JSON error code, or a page
//! of its [edge](crate::edge)), and that of `GET /gateway/bot` (a [`SessionStartLimit`]).
//!
//! ```
//! use botscope_http::ForwardErrorType;
//!
//! fn not_forwarded<B>(response: &http::Response<B>) -> Option<ForwardErrorType> {
//!     response.extensions().get::<ForwardErrorType>().copied()
//! }
//! # assert_eq!(not_forwarded(&http::Response::new(())), None);
//! ```

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::StringValue;
use pin_project_lite::pin_project;
use rustls::crypto::CryptoProvider;
use tower::Service;

use crate::body::{BodyContext, ClientBody, DEFAULT_BODY_TIMEOUT, UpstreamBody};
use crate::edge::{ErrorBody, MAX_ERROR_BODY};
use crate::instruments::Instruments;
use crate::proxy::ProxyBody;
use crate::route::{OTHER, Route, RouteKind};
use crate::session::{MAX_GATEWAY_BOT_BODY, SessionStartLimit};

/// Where the proxy forwards to unless told otherwise.
pub const DEFAULT_UPSTREAM: &str = "https://discord.com";

/// How long the proxy waits for an upstream response head before answering 504.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`Forward`] answered a request itself: the marker it leaves in the extensions of
/// that response. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardErrorType {
    /// The upstream could not be reached or the connection failed mid-request: 502.
    Unreachable,
    /// The upstream sent no response head within the timeout: 504.
    Timeout,
    /// The request's path and the upstream base make no valid URI: 502.
    InvalidUri,
    /// No rustls crypto provider to open TLS with: none was given to the proxy and none is
    /// installed for the process (the bot installs one, or twilight-http's `build()` does
    /// from the rustls features of the bot's tree): 502.
    NoCryptoProvider,
    /// The client's request body failed while it was forwarded: malformed (an overflowing
    /// chunk size, bad chunked framing) or cut short (the client hung up mid-upload): 400.
    /// The client's fault, not Discord's: counted `status_code="client_error"`.
    ClientBody,
}

impl ForwardErrorType {
    /// The status the proxy answers with: 504 for a timeout, 400 for the client's own fault,
    /// else 502.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ClientBody => StatusCode::BAD_REQUEST,
            Self::Unreachable | Self::InvalidUri | Self::NoCryptoProvider => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// Whether the upstream did not answer in time.
    pub const fn is_timeout(self) -> bool {
        matches!(self, Self::Timeout)
    }

    /// Whether the client, not the upstream, failed the request.
    pub const fn is_client_fault(self) -> bool {
        matches!(self, Self::ClientBody)
    }

    /// The message of the response body; never the URI, whose path may carry a token.
    const fn message(self) -> &'static str {
        match self {
            Self::Unreachable => "botscope proxy: upstream unreachable",
            Self::Timeout => "botscope proxy: upstream timed out",
            Self::InvalidUri => "botscope proxy: request path is not a valid upstream uri",
            Self::NoCryptoProvider => "botscope proxy: no rustls crypto provider is installed",
            Self::ClientBody => "botscope proxy: the request body is malformed or incomplete",
        }
    }
}

impl fmt::Display for ForwardErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "upstream unreachable",
            Self::Timeout => "upstream did not answer in time",
            Self::InvalidUri => "request path is not a valid upstream uri",
            Self::NoCryptoProvider => "no rustls crypto provider is installed",
            Self::ClientBody => "request body from the client is malformed or incomplete",
        })
    }
}

/// A response of the proxy's own, in Discord's error shape, so twilight-http reports it as
/// an API error with this status.
pub(crate) fn own_response(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let body = format!("{{\"message\":\"{message}\",\"code\":0}}");
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The base URI requests are forwarded to: a scheme, an authority and an optional path prefix.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    scheme: Scheme,
    authority: Authority,
    prefix: String,
}

impl Upstream {
    pub(crate) fn parse(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        let scheme = uri.scheme()?.clone();
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return None;
        }
        let authority = uri.authority()?.clone();
        // No query, and no credentials: the upstream is logged at start-up.
        if uri.query().is_some() || authority.as_str().contains('@') {
            return None;
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Some(Self {
            scheme,
            authority,
            prefix,
        })
    }

    fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Option<Uri> {
        let path = path_and_query.map_or("/", PathAndQuery::as_str);
        let path_and_query: PathAndQuery = if self.prefix.is_empty() {
            path.parse().ok()?
        } else {
            format!("{}{path}", self.prefix).parse().ok()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }
}

/// Headers that describe one hop and never cross a proxy (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the `connection` header names.
/// `transfer-encoding` goes too: hyper frames the body again on the next hop.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

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
    /// Where a body that fails after its head is counted: the metrics layer's.
    instruments: Option<Arc<Instruments>>,
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
            instruments: self.instruments.clone(),
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
            instruments: None,
        };
        if let Some(provider) = forward.provider() {
            let _ = forward.client.set(client(provider)?);
        }
        Ok(forward)
    }

    /// Cuts an upstream body after `timeout` without a byte, and counts such failures in
    /// `instruments` (see [`body`](crate::body)).
    pub(crate) fn with_body_timeout(
        mut self,
        timeout: Duration,
        instruments: Option<Arc<Instruments>>,
    ) -> Self {
        self.body_timeout = timeout;
        self.instruments = instruments;
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
        let refused = |kind| ForwardFuture {
            inner: None,
            refused: kind,
            reading: None,
            sleep: None,
            failure: failure.clone(),
            gateway_bot,
            client_failed: None,
            body_timeout: self.body_timeout,
            instruments: None,
        };
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
        ForwardFuture {
            inner: Some(response),
            refused: ForwardErrorType::InvalidUri,
            reading: None,
            sleep: Some(tokio::time::sleep(self.timeout)),
            failure,
            gateway_bot,
            client_failed: Some(client_failed),
            body_timeout: self.body_timeout,
            instruments: self.instruments.clone(),
        }
    }
}

/// What the log line of a failed forward names.
#[derive(Clone)]
struct Failure {
    endpoint: StringValue,
    method: &'static str,
}

impl Failure {
    /// Logs the failure once and answers it.
    fn answer(
        &self,
        kind: ForwardErrorType,
        source: Option<&dyn fmt::Display>,
    ) -> Response<ProxyBody> {
        let status = kind.status();
        // The source is hyper-util's error, whose text names its kind only, never the URI.
        if kind.is_client_fault() {
            // Any client on the host can cause these: not worth a warning.
            tracing::debug!(
                endpoint = %self.endpoint,
                method = self.method,
                status = status.as_u16(),
                error = %kind,
                source = source.map(tracing::field::display),
                "botscope proxy: request not forwarded"
            );
        } else {
            tracing::warn!(
                endpoint = %self.endpoint,
                method = self.method,
                status = status.as_u16(),
                error = %kind,
                source = source.map(tracing::field::display),
                "botscope proxy: request not forwarded"
            );
        }
        let mut response = own_response(status, kind.message());
        response.extensions_mut().insert(kind);
        response
    }
}

/// An answer whose body is being read (see [`Read`]).
type Reading = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, hyper::Error>> + Send>>;

pin_project! {
    /// The future of [`Forward`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it abandons the upstream request.
    pub struct ForwardFuture {
        inner: Option<hyper_util::client::legacy::ResponseFuture>,
        // Why the proxy answers itself when `inner` is `None`.
        refused: ForwardErrorType,
        reading: Option<Reading>,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        failure: Failure,
        // Whether the request is a `GET /gateway/bot`.
        gateway_bot: bool,
        // Set when the client's body failed: a failed request is then the client's fault.
        client_failed: Option<Arc<AtomicBool>>,
        body_timeout: Duration,
        instruments: Option<Arc<Instruments>>,
    }
}

impl fmt::Debug for ForwardFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardFuture").finish_non_exhaustive()
    }
}

/// What [`Forward`] reads of an answer's body for the layers above: only from answers that
/// state a short length and are not compressed, so nothing unbounded is ever buffered. The
/// body is passed on unchanged and never logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A 4xx or 5xx: Discord's error code, or a page of its edge ([`ErrorBody`]).
    Error,
    /// A 2xx to `GET /gateway/bot`: its [`SessionStartLimit`].
    GatewayBot,
}

impl Read {
    /// What to read of `response`, if anything; `gateway_bot` for a `GET /gateway/bot`.
    fn of<B>(gateway_bot: bool, response: &Response<B>) -> Option<Self> {
        let status = response.status();
        let (read, max) = if status.is_client_error() || status.is_server_error() {
            (Self::Error, MAX_ERROR_BODY)
        } else if gateway_bot && status.is_success() {
            (Self::GatewayBot, MAX_GATEWAY_BOT_BODY)
        } else {
            return None;
        };
        let headers = response.headers();
        let short = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length <= max);
        let plain = headers
            .get(header::CONTENT_ENCODING)
            .is_none_or(|encoding| encoding.as_bytes().eq_ignore_ascii_case(b"identity"));
        (short && plain).then_some(read)
    }

    /// Leaves what `body` says in `extensions`.
    fn mark(self, body: &[u8], extensions: &mut http::Extensions) {
        match self {
            Self::Error => {
                extensions.insert(ErrorBody::parse(body));
            }
            Self::GatewayBot => {
                if let Some(limit) = SessionStartLimit::parse(body) {
                    extensions.insert(limit);
                }
            }
        }
    }
}

/// Reads a short body whole, leaves what it says in the extensions and passes it on as is.
async fn read_body(
    response: Response<Incoming>,
    read: Read,
) -> Result<Response<ProxyBody>, hyper::Error> {
    let (mut parts, body) = response.into_parts();
    // The stated length bounds what hyper hands out: it fails a body longer than stated.
    let bytes = http_body_util::BodyExt::collect(body).await?.to_bytes();
    read.mark(&bytes, &mut parts.extensions);
    Ok(Response::from_parts(parts, Either::Right(Full::new(bytes))))
}

impl Future for ForwardFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.reading.is_none() {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(Ok(this.failure.answer(*this.refused, None)));
            };
            if let Poll::Ready(result) = Pin::new(inner).poll(cx) {
                match result {
                    Ok(mut response) => {
                        strip_hop_by_hop(response.headers_mut());
                        let Some(read) = Read::of(*this.gateway_bot, &response) else {
                            let context = BodyContext {
                                endpoint: this.failure.endpoint.clone(),
                                method: this.failure.method,
                                status: response.status().as_u16(),
                                instruments: this.instruments.take(),
                            };
                            let timeout = *this.body_timeout;
                            return Poll::Ready(Ok(response.map(|body| {
                                Either::Left(UpstreamBody::new(body, timeout, context))
                            })));
                        };
                        *this.reading = Some(Box::pin(read_body(response, read)));
                    }
                    Err(source) => {
                        // hyper reports a failed request body as a failed request: the body
                        // itself says whether it failed.
                        let kind = if this
                            .client_failed
                            .as_ref()
                            .is_some_and(|failed| failed.load(Ordering::Acquire))
                        {
                            ForwardErrorType::ClientBody
                        } else {
                            ForwardErrorType::Unreachable
                        };
                        return Poll::Ready(Ok(this.failure.answer(kind, Some(&source))));
                    }
                }
            }
        }
        if let Some(reading) = this.reading.as_mut()
            && let Poll::Ready(result) = reading.as_mut().poll(cx)
        {
            return Poll::Ready(Ok(result.unwrap_or_else(|source| {
                this.failure
                    .answer(ForwardErrorType::Unreachable, Some(&source))
            })));
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            return Poll::Ready(Ok(this.failure.answer(ForwardErrorType::Timeout, None)));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_keeps_prefix_and_query() {
        let up = Upstream::parse("http://127.0.0.1:9/base/").unwrap();
        let pq: PathAndQuery = "/api/v10/users/@me?x=1".parse().unwrap();
        assert_eq!(
            up.uri(Some(&pq)).unwrap().to_string(),
            "http://127.0.0.1:9/base/api/v10/users/@me?x=1"
        );
        assert!(Upstream::parse("discord.com").is_none());
        assert!(Upstream::parse("ftp://discord.com").is_none());
    }

    #[test]
    fn only_short_plain_error_and_gateway_bot_bodies_are_read() {
        let answer = |status: u16, headers: &[(&'static str, &'static str)]| {
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            *response.headers_mut() = botscope_testkit::headers(headers);
            response
        };
        let short = [("content-length", "52")];
        assert_eq!(Read::of(false, &answer(403, &short)), Some(Read::Error));
        assert_eq!(Read::of(true, &answer(502, &short)), Some(Read::Error));
        assert_eq!(Read::of(false, &answer(200, &short)), None);
        assert_eq!(Read::of(true, &answer(200, &short)), Some(Read::GatewayBot));
        assert_eq!(Read::of(true, &answer(304, &short)), None);
        // Unbounded, too long, or compressed: passed on without a look.
        assert_eq!(Read::of(false, &answer(429, &[])), None);
        assert_eq!(
            Read::of(false, &answer(429, &[("content-length", "4097")])),
            None
        );
        assert_eq!(
            Read::of(true, &answer(200, &[("content-length", "16384")])),
            Some(Read::GatewayBot)
        );
        assert_eq!(
            Read::of(true, &answer(200, &[("content-length", "16385")])),
            None
        );
        assert_eq!(
            Read::of(false, &answer(404, &[("content-length", "x")])),
            None
        );
        let compressed = [("content-length", "52"), ("content-encoding", "br")];
        assert_eq!(Read::of(false, &answer(404, &compressed)), None);
        let identity = [("content-length", "52"), ("content-encoding", "IDENTITY")];
        assert_eq!(Read::of(false, &answer(404, &identity)), Some(Read::Error));
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Bot x".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::AUTHORIZATION));
    }
}
