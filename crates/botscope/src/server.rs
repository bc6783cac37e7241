//! The `/metrics` HTTP server.
//!
//! GET and HEAD on `/metrics` (Prometheus text format) and `/healthz`; 404 elsewhere; 405 with
//! `Allow: GET, HEAD` for other methods; HEAD gets the headers of GET and no body. A tower stack
//! on hyper:
//!
//! - tower-http's `CompressionLayer` answers gzip when the scraper asks for it;
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
//! The accept loop never stops. A client has [`HEADER_READ_TIMEOUT`] to send its request
//! headers (from connect, and again between keep-alive requests); past [`MAX_CONNECTIONS`] open
//! connections a new one closes the oldest that is not being answered, those that never sent
//! a request first (an answered scrape's body may still be on its way to a slow reader). So
//! held or churning half-open connections cannot keep a scraper out.
//!
//! A callback that panics does so while the OpenTelemetry SDK holds its locks, which stay
//! poisoned: later collections would quietly lose series. So after the first panic every
//! scrape answers 500 — the scrape fails loudly (`up` and Prometheus's scrape error show it)
//! instead of serving a partial exposition — until the process restarts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use botscope_exporter::{CollectionFailed, Exporter};
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderName, VARY, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, oneshot, watch};
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
/// Open connections; past it a new connection closes the oldest one not being answered
/// (never-used ones first). Well
/// under the usual soft limit of 1024 file descriptors, which the bot needs for its own sockets.
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
    Response = Response<CompressionBody<Full<Bytes>>>,
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
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .service_fn(move |request| route(request, metrics.clone()))
}

/// `/healthz` answers whatever the scrapes do: a stuck collection must not fail a liveness probe.
async fn route<M>(
    request: Request<Incoming>,
    metrics: M,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    M: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = BoxError>,
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
) -> Result<Response<Full<Bytes>>, Infallible> {
    let collection = collector.collect();
    let collected = match scrape_timeout(request.headers()) {
        Some(limit) => tokio::time::timeout(limit, collection)
            .await
            .unwrap_or(None),
        None => collection.await,
    };
    Ok(match collected {
        Some(Ok(text)) => {
            let mut response = Response::new(Full::new(text));
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

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
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
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's `TcpListener::bind` does on Unix: a restart binds despite connections in
    // TIME_WAIT (never while another socket listens there).
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts connections until `shutdown` fires, then gives open ones [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    listener: TcpListener,
    state: State,
    mut shutdown: oneshot::Receiver<()>,
) {
    let service = service(state);
    let graceful = GracefulShutdown::new();
    let mut open = Connections::default();
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.is_full() {
            // Let the connections accepted so far read their requests before one of them is
            // closed to make room: under a flood of new connections, a scraper's request could
            // otherwise wait unread in its socket until its connection is the oldest idle one.
            tokio::task::yield_now().await;
        }
        let Some(connection) = open.admit() else {
            // Every connection is being answered: close this one at once rather than queue it.
            drop(stream);
            continue;
        };
        let service = service.clone();
        let tracked = Arc::clone(&connection);
        let http = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                service_fn(move |request| {
                    let answering = Answering::new(&tracked);
                    let response = service.clone().oneshot(request);
                    async move {
                        // Answering until the body is sent (hyper writes it, compressing it,
                        // after this future ends) or dropped: the guard goes into the body.
                        response.await.map(|response| {
                            response.map(|inner| AnsweringBody {
                                inner,
                                _answering: answering,
                            })
                        })
                    }
                }),
            );
        let http = graceful.watch(http);
        tokio::spawn(async move {
            tokio::select! {
                _ = http => {}
                () = connection.evict.notified() => {}
            }
            connection.closed.store(true, Ordering::Release);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// A response body that keeps its connection marked as answering until it is sent or dropped.
struct AnsweringBody<B> {
    inner: B,
    _answering: Answering,
}

impl<B: Body + Unpin> Body for AnsweringBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Connections(VecDeque<Arc<Connection>>);

#[derive(Default)]
struct Connection {
    /// A request of it is being answered.
    answering: AtomicBool,
    /// A request of it has been answered, or is being answered.
    used: AtomicBool,
    closed: AtomicBool,
    evict: Notify,
}

impl Connections {
    fn is_full(&self) -> bool {
        self.0.len() >= MAX_CONNECTIONS
    }

    /// A place for a new connection. At [`MAX_CONNECTIONS`] the oldest connection not being
    /// answered is closed to make room, one that never sent a request if there is one; `None`
    /// if every one is being answered.
    fn admit(&mut self) -> Option<Arc<Connection>> {
        if self.is_full() {
            self.0
                .retain(|connection| !connection.closed.load(Ordering::Acquire));
        }
        if self.is_full() {
            // Never-used connections first (a half-sent request, a silent socket), then used
            // ones: hyper may still be flushing an answered scrape's body to a slow reader.
            let idle = |used: bool| {
                move |connection: &Arc<Connection>| {
                    !connection.answering.load(Ordering::Acquire)
                        && connection.used.load(Ordering::Acquire) == used
                }
            };
            let idle = self
                .0
                .iter()
                .position(idle(false))
                .or_else(|| self.0.iter().position(idle(true)))?;
            if let Some(oldest) = self.0.remove(idle) {
                oldest.evict.notify_one();
            }
        }
        let connection = Arc::new(Connection::default());
        self.0.push_back(Arc::clone(&connection));
        Some(connection)
    }
}

/// Marks its connection as being answered until dropped, also when the request is cancelled.
struct Answering(Arc<Connection>);

impl Answering {
    fn new(connection: &Arc<Connection>) -> Self {
        connection.used.store(true, Ordering::Release);
        connection.answering.store(true, Ordering::Release);
        Self(Arc::clone(connection))
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.store(false, Ordering::Release);
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
    fn a_full_table_makes_room_by_closing_the_oldest_idle_connection() {
        let mut open = Connections::default();
        let first: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| open.admit().expect("room"))
            .collect();
        let _answering = Answering::new(&first[0]);
        assert!(open.admit().is_some());
        // The oldest is being answered and stays; the next oldest made room.
        assert_eq!(Arc::strong_count(&first[0]), 3);
        assert_eq!(Arc::strong_count(&first[1]), 1);

        let busy: Vec<_> = open.0.iter().map(Answering::new).collect();
        assert!(open.admit().is_none(), "nothing idle to close");
        drop(busy);
        first[2].closed.store(true, Ordering::Release);
        assert!(
            open.admit().is_some(),
            "a closed connection frees its place"
        );
        assert_eq!(open.0.len(), MAX_CONNECTIONS);
    }
}
