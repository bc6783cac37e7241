//! The `/metrics` HTTP server.
//!
//! GET and HEAD on `/metrics` (Prometheus text format) and `/healthz`; 404 elsewhere; 405 with
//! `Allow: GET, HEAD` for other methods; HEAD gets the headers of GET and no body. A tower stack
//! on hyper:
//!
//! - tower-http's `CompressionLayer` answers gzip when the scraper asks for it, and 406 (with
//!   an empty body) when it accepts neither gzip nor identity;
//! - with a bearer token, `ValidateRequestHeaderLayer` answers 401 with `WWW-Authenticate:
//!   Bearer` on `/metrics` unless `Authorization: Bearer <token>` matches (the scheme in any
//!   case, the token compared in constant time); `/healthz` stays open for probes;
//! - on `/metrics`, tower's load shedding answers 503 past [`MAX_IN_FLIGHT`] scrapes at once,
//!   and tower-http's `TimeoutLayer` answers 503 after [`REQUEST_TIMEOUT`] (sooner when
//!   Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` header says it gives up sooner);
//!   `/healthz` answers whatever the scrapes do.
//!
//! Collection is single-flight and runs on the blocking pool: one task runs the metric
//! callbacks, and every scrape that arrives meanwhile waits for that one, also after an earlier
//! scrape timed out. A stuck callback holds one blocking thread, never one per scrape, and never
//! runs on the bot's runtime.
//!
//! Connections are botscope-server's: its one accept loop, which never stops, with the policy
//! of [`server`]. A client has [`HEADER_READ_TIMEOUT`] to send its request headers (from
//! connect, and again between keep-alive requests); past [`MAX_CONNECTIONS`] open connections a
//! new one closes the oldest that is not busy, those that never sent a request first, or is
//! itself closed if every one is busy. A connection is busy from a request's head until the
//! last bytes of its answer are written to the socket: the exposition goes to hyper in
//! [`CHUNK`]-sized frames, so a scrape to a slow reader stays busy, and is never cut, until
//! its end. A scraper that stops reading is closed after the write timeout
//! ([`TelemetryBuilder::write_timeout`](crate::TelemetryBuilder::write_timeout), 60 s). So held
//! or churning half-open connections cannot keep a scraper out, nor a stalled one hold its
//! connection for good.
//!
//! A callback that panics does so while the OpenTelemetry SDK holds its locks, which stay
//! poisoned: later collections would quietly lose series. So after the first panic every
//! scrape answers 500 — the scrape fails loudly (`up` and Prometheus's scrape error show it)
//! instead of serving a partial exposition — until the process restarts.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use botscope_exporter::{CollectionFailed, Exporter};
use botscope_server::{CancellationToken, Server};
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderName, VARY, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_http::compression::{CompressionBody, CompressionLayer, CompressionLevel};
use tower_http::timeout::TimeoutLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

/// The content type of the Prometheus text exposition format.
pub(crate) const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The exposition.
pub(crate) const METRICS_PATH: &str = "/metrics";
/// The liveness probe, never behind the bearer token.
pub(crate) const HEALTH_PATH: &str = "/healthz";
/// Connections the kernel queues for `accept`: room for a crowd of reconnecting clients, so a
/// scraper's SYN is not dropped (which costs it a retransmission a second later).
pub(crate) const LISTEN_BACKLOG: u32 = 1024;
/// Open connections; past it a new connection closes the oldest one not busy (never-used ones
/// first), or is closed itself. Well under the usual soft limit of 1024 file descriptors, which
/// the bot needs for its own sockets.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Scrapes handled at once; more are answered 503 at once. Scrapes share one collection, so
/// this bounds waiting, not work.
pub(crate) const MAX_IN_FLIGHT: usize = 32;
/// Time a client has to send its request headers, from connect and between keep-alive
/// requests. A scraper sends them at once; a connection that does not is dead weight.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Time a request may take before it is answered 503: Prometheus's default scrape timeout.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish on shutdown.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Time a write to a scraper may make no progress before its connection is closed, unless
/// [`TelemetryBuilder::write_timeout`](crate::TelemetryBuilder::write_timeout) says otherwise.
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = botscope_server::DEFAULT_WRITE_TIMEOUT;
/// The largest frame of a body handed to hyper: hyper buffers a few frames ahead of the
/// socket, so the connection stays busy until the last of a large exposition is written.
pub(crate) const CHUNK: usize = 64 * 1024;
/// The scrape timeout Prometheus sends with every scrape, in seconds.
const SCRAPE_TIMEOUT_HEADER: HeaderName =
    HeaderName::from_static("x-prometheus-scrape-timeout-seconds");

pub(crate) struct State {
    pub(crate) exporter: Exporter,
    pub(crate) bearer: Option<Box<str>>,
}

type Collected = Result<Bytes, CollectionFailed>;

/// Single-flight collection: at most one render on the blocking pool, shared by every scrape
/// that asks while it runs.
struct Collector {
    exporter: Exporter,
    /// The latest collection; it holds `None` while it runs.
    latest: Mutex<Option<watch::Receiver<Option<Collected>>>>,
}

impl Collector {
    fn new(exporter: Exporter) -> Self {
        Self {
            exporter,
            latest: Mutex::new(None),
        }
    }

    /// The outcome of the collection running now, or of a new one if none is; `None` if the
    /// collection was dropped unrun (the runtime is shutting down).
    ///
    /// Cancel safe: dropping the future leaves the collection running for later scrapes.
    async fn collect(&self) -> Option<Collected> {
        let mut running = self.join_or_start();
        running.wait_for(Option::is_some).await.ok()?.clone()
    }

    fn join_or_start(&self) -> watch::Receiver<Option<Collected>> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        // `has_changed` fails once the sender is gone, i.e. the task ended without an outcome.
        if let Some(running) = latest
            .as_ref()
            .filter(|rx| rx.borrow().is_none() && rx.has_changed().is_ok())
        {
            return running.clone();
        }
        let (outcome, running) = watch::channel(None);
        let exporter = self.exporter.clone();
        tokio::task::spawn_blocking(move || {
            outcome.send_replace(Some(exporter.render().map(Bytes::from)));
        });
        *latest = Some(running.clone());
        running
    }
}

/// The service every connection shares (the scrape limit included).
// tower-http's validator returns its rejection, a whole response, as the `Err`.
#[allow(clippy::result_large_err)]
fn service(
    state: State,
) -> impl Service<
    Request<Incoming>,
    Response = Response<CompressionBody<Chunks>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let collector = Arc::new(Collector::new(state.exporter));
    let token: Option<Arc<[u8]>> = state.bearer.map(|token| token.as_bytes().into());
    let metrics = ServiceBuilder::new()
        // Before the limit, so a request without the token takes no place.
        .layer(ValidateRequestHeaderLayer::custom(
            move |request: &mut Request<Incoming>| match &token {
                Some(token) if !authorized(request.headers(), token) => {
                    let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
                    response
                        .headers_mut()
                        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    Err(response)
                }
                _ => Ok(()),
            },
        ))
        .load_shed()
        .concurrency_limit(MAX_IN_FLIGHT)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .service_fn(move |request| scrape(request, Arc::clone(&collector)));
    ServiceBuilder::new()
        .map_response(without_refused_body)
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .service_fn(move |request| route(request, metrics.clone()))
}

/// tower-http's 406 (the client accepts no encoding the server has, as with
/// `Accept-Encoding: identity;q=0, *;q=0`) keeps the inner answer's body: the whole exposition,
/// to a client that said it takes none of it. It goes out empty instead.
fn without_refused_body(
    mut response: Response<CompressionBody<Chunks>>,
) -> Response<CompressionBody<Chunks>> {
    if response.status() == StatusCode::NOT_ACCEPTABLE {
        *response.body_mut() = CompressionBody::default();
        response.headers_mut().remove(CONTENT_TYPE);
    }
    response
}

/// `/healthz` answers whatever the scrapes do: a stuck collection must not fail a liveness probe.
async fn route<M>(request: Request<Incoming>, metrics: M) -> Result<Response<Chunks>, Infallible>
where
    M: Service<Request<Incoming>, Response = Response<Chunks>, Error = BoxError>,
{
    let is_metrics = match request.uri().path() {
        METRICS_PATH => true,
        HEALTH_PATH => false,
        _ => return Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    // HEAD gets the GET answer: hyper sends its headers and drops the body.
    if !is_metrics {
        return Ok(plain(StatusCode::OK, "ok\n"));
    }
    // The one error is load shedding's `Overloaded` (every other layer is infallible).
    Ok(metrics
        .oneshot(request)
        .await
        .unwrap_or_else(|_overloaded| {
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many scrapes at once\n",
            )
        }))
}

async fn scrape(
    request: Request<Incoming>,
    collector: Arc<Collector>,
) -> Result<Response<Chunks>, Infallible> {
    let collection = collector.collect();
    let collected = match scrape_timeout(request.headers()) {
        Some(limit) => tokio::time::timeout(limit, collection)
            .await
            .unwrap_or(None),
        None => collection.await,
    };
    Ok(match collected {
        Some(Ok(text)) => {
            let mut response = Response::new(Chunks(text));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            // Also on identity answers, which the compression layer leaves alone.
            headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
            response
        }
        Some(Err(CollectionFailed)) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics collection failed: a metric callback panicked (see the log)\n",
        ),
        None => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics collection timed out\n",
        ),
    })
}

/// The timeout Prometheus announces, when shorter than [`REQUEST_TIMEOUT`]: answering 503
/// before it gives up frees the connection.
fn scrape_timeout(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(SCRAPE_TIMEOUT_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|limit| *limit < REQUEST_TIMEOUT)
}

fn plain(status: StatusCode, body: &'static str) -> Response<Chunks> {
    let mut response = Response::new(Chunks(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `Authorization: Bearer <token>`, the scheme in any case (RFC 9110 §11.1).
fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some((scheme, credentials)) = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(credentials.trim_start_matches(' ').as_bytes().ct_eq(token))
}

/// A listener on `addr` with a [`LISTEN_BACKLOG`]; inside a Tokio runtime.
pub(crate) fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    botscope_server::bind(addr, LISTEN_BACKLOG)
}

/// The connection policy of `/metrics` (see the [module docs](self)).
fn server(write_timeout: Duration) -> Server {
    Server::new()
        .name("botscope /metrics")
        .max_connections(MAX_CONNECTIONS)
        // Never over the cap: a scrape answers within seconds, so there is no burst to let in,
        // and when every connection is busy the new one is closed.
        .burst(0)
        .admit_when_busy(false)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .write_timeout(write_timeout)
        .shutdown_grace(SHUTDOWN_GRACE)
}

/// Accepts connections until `shutdown` is cancelled, then gives open ones [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    listener: TcpListener,
    state: State,
    write_timeout: Duration,
    shutdown: CancellationToken,
) {
    server(write_timeout)
        .serve(listener, service(state), shutdown)
        .await;
}

/// A body handed to hyper in frames of at most [`CHUNK`] bytes (cheap slices of one buffer),
/// its exact length known up front.
#[derive(Default)]
pub(crate) struct Chunks(Bytes);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.0.len().min(CHUNK);
        Poll::Ready((len > 0).then(|| Ok(Frame::data(self.0.split_to(len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::headers;

    use super::*;

    #[test]
    fn bearer_check() {
        for given in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert!(
                authorized(&headers(&[("authorization", given)]), b"s3cret"),
                "{given}"
            );
        }
        for given in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "Bearer",
            "s3cret",
        ] {
            assert!(
                !authorized(&headers(&[("authorization", given)]), b"s3cret"),
                "{given}"
            );
        }
        assert!(!authorized(&HeaderMap::new(), b"s3cret"));
    }

    #[test]
    fn prometheus_scrape_timeout_shortens_the_wait() {
        let timeout =
            |value| scrape_timeout(&headers(&[("x-prometheus-scrape-timeout-seconds", value)]));
        assert_eq!(timeout("2.5"), Some(Duration::from_millis(2500)));
        for ignored in ["60", "-1", "NaN", "soon"] {
            assert_eq!(timeout(ignored), None, "{ignored}");
        }
        assert_eq!(scrape_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn a_body_goes_in_chunks_of_its_exact_length() {
        let text = Bytes::from(vec![b'x'; 2 * CHUNK + 5]);
        let mut body = Chunks(text);
        assert_eq!(body.size_hint().exact(), Some(2 * CHUNK as u64 + 5));
        let mut frames = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            let frame = frame.unwrap_or_else(|never| match never {});
            frames.push(frame.into_data().map(|data| data.len()).unwrap_or_default());
        }
        assert_eq!(frames, [CHUNK, CHUNK, 5]);
        assert!(body.is_end_stream());
    }
}
