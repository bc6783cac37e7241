//! [`Forward`]: the innermost service of the proxy, sending each request on to Discord.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pin_project_lite::pin_project;
use tower::Service;

/// Where the proxy forwards to unless told otherwise.
pub const DEFAULT_UPSTREAM: &str = "https://discord.com";

/// How long the proxy waits for an upstream response head before answering 504.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs rustls' `ring` provider as the process default, once; a provider installed
/// earlier (by the application or another crate) is kept.
///
/// twilight-http's `ClientBuilder::build` and twilight-gateway's shards panic without a
/// process-level provider, so [`DiscordProxy`](crate::DiscordProxy) calls this for you.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is already installed, which is all we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An error forwarding a request upstream.
#[derive(Debug)]
pub struct ForwardError {
    kind: ForwardErrorType,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ForwardError {
    /// The type of error.
    pub const fn kind(&self) -> &ForwardErrorType {
        &self.kind
    }

    /// The type of error and its source.
    pub fn into_parts(self) -> (ForwardErrorType, Option<Box<dyn StdError + Send + Sync>>) {
        (self.kind, self.source)
    }

    /// Whether the upstream did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ForwardErrorType::Timeout)
    }
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URI: its path may carry a webhook or interaction token.
        match self.kind {
            ForwardErrorType::Unreachable => f.write_str("upstream unreachable"),
            ForwardErrorType::Timeout => f.write_str("upstream did not answer in time"),
            ForwardErrorType::InvalidUri => f.write_str("request path is not a valid upstream uri"),
        }
    }
}

impl StdError for ForwardError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

/// The type of a [`ForwardError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardErrorType {
    /// The upstream could not be reached or the connection failed mid-request.
    Unreachable,
    /// The upstream sent no response head within the timeout.
    Timeout,
    /// The request's path and the upstream base make no valid URI.
    InvalidUri,
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
        if uri.query().is_some() {
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
/// with webpki roots), streaming bodies both ways. Answers `Err(ForwardError)` when the
/// upstream is unreachable or slower than the timeout; never a response of its own.
pub struct Forward<B = Incoming> {
    client: Client<HttpsConnector<HttpConnector>, B>,
    upstream: Upstream,
    timeout: Duration,
}

impl<B> Clone for Forward<B> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            upstream: self.upstream.clone(),
            timeout: self.timeout,
        }
    }
}

impl<B> fmt::Debug for Forward<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("upstream", &self.upstream.authority)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<B> Forward<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    pub(crate) fn new(upstream: Upstream, timeout: Duration) -> Result<Self, rustls::Error> {
        install_crypto_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http_connector());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            client,
            upstream,
            timeout,
        })
    }
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
    type Response = Response<Incoming>;
    type Error = ForwardError;
    type Future = ForwardFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let Some(uri) = self.upstream.uri(parts.uri.path_and_query()) else {
            return ForwardFuture {
                inner: None,
                sleep: None,
            };
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        // The client sets `host` from the upstream URI.
        parts.headers.remove(header::HOST);
        let response = self.client.request(Request::from_parts(parts, body));
        ForwardFuture {
            inner: Some(response),
            sleep: Some(tokio::time::sleep(self.timeout)),
        }
    }
}

pin_project! {
    /// The future of [`Forward`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it abandons the upstream request.
    pub struct ForwardFuture {
        inner: Option<hyper_util::client::legacy::ResponseFuture>,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

impl fmt::Debug for ForwardFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardFuture").finish_non_exhaustive()
    }
}

impl Future for ForwardFuture {
    type Output = Result<Response<Incoming>, ForwardError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(ForwardError {
                kind: ForwardErrorType::InvalidUri,
                source: None,
            }));
        };
        if let Poll::Ready(result) = Pin::new(inner).poll(cx) {
            return Poll::Ready(match result {
                Ok(mut response) => {
                    strip_hop_by_hop(response.headers_mut());
                    Ok(response)
                }
                Err(source) => Err(ForwardError {
                    kind: ForwardErrorType::Unreachable,
                    source: Some(Box::new(source)),
                }),
            });
        }
        if let Some(sleep) = this.sleep.as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            return Poll::Ready(Err(ForwardError {
                kind: ForwardErrorType::Timeout,
                source: None,
            }));
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
