//! The `/metrics` HTTP server.
//!
//! GET and HEAD on `/metrics` (Prometheus text format, gzip when the scraper asks for it) and
//! `/healthz`; 404 elsewhere; 405 for other methods. With a bearer token, `/metrics` answers
//! 401 unless `Authorization: Bearer <token>` matches (`/healthz` stays open for probes).
//! Connections are bounded, headers must arrive within a timeout, and collection runs on the
//! blocking pool under a timeout, so a slow or panicking metric callback never stalls the bot.
//!
//! A callback that panics does so while the OpenTelemetry SDK holds its locks, which stay
//! poisoned: later collections would quietly lose series. So after the first panic every
//! scrape answers 500 — the scrape fails loudly (`up` and Prometheus's scrape error show it)
//! instead of serving a partial exposition — until the process restarts.

use std::convert::Infallible;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, VARY, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

/// The content type of the Prometheus text exposition format.
pub(crate) const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Connections served at once; more wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a collection may take before the scrape is answered 503.
pub(crate) const COLLECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish on shutdown.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Renders a registry to the text format, remembering a collection that panicked.
#[derive(Clone, Debug)]
pub(crate) struct Exposition {
    registry: Registry,
    broken: Arc<AtomicBool>,
}

/// Collection panicked, now or earlier: the exposition can no longer be trusted.
#[derive(Debug)]
pub(crate) struct CollectionFailed;

impl Exposition {
    pub(crate) fn new(registry: Registry) -> Self {
        Self {
            registry,
            broken: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The text exposition, or [`CollectionFailed`] if a metric callback panicked (now or in
    /// an earlier collection). The panic never reaches the caller.
    pub(crate) fn render(&self) -> Result<String, CollectionFailed> {
        if self.broken.load(Ordering::Acquire) {
            return Err(CollectionFailed);
        }
        let gathered = std::panic::catch_unwind(AssertUnwindSafe(|| self.registry.gather()));
        match gathered {
            // Encoding into a String only fails on a malformed family, which gather() never
            // returns.
            Ok(families) => Ok(TextEncoder::new()
                .encode_to_string(&families)
                .unwrap_or_default()),
            Err(_) => {
                if !self.broken.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "a metric callback panicked during collection; /metrics answers 500 until the process restarts"
                    );
                }
                Err(CollectionFailed)
            }
        }
    }
}

pub(crate) struct State {
    pub(crate) exposition: Exposition,
    pub(crate) bearer: Option<Box<str>>,
}

/// Accepts connections until `shutdown` fires, then gives open ones [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
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
        let state = Arc::clone(&state);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                service_fn(move |request| handle(request, Arc::clone(&state))),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(respond(
        request.method(),
        request.uri().path(),
        request.headers(),
        &state,
    )
    .await)
}

pub(crate) async fn respond(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    state: &State,
) -> Response<Full<Bytes>> {
    let is_metrics = match path {
        "/metrics" => true,
        "/healthz" => false,
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let head = method == Method::HEAD;
    if !is_metrics {
        return strip_body(plain(StatusCode::OK, "ok\n"), head);
    }
    if let Some(token) = &state.bearer
        && !authorized(headers, token)
    {
        let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return strip_body(response, head);
    }
    let exposition = state.exposition.clone();
    let collected = tokio::time::timeout(
        COLLECT_TIMEOUT,
        tokio::task::spawn_blocking(move || exposition.render()),
    )
    .await;
    let text = match collected {
        Ok(Ok(Ok(text))) => text,
        Ok(Ok(Err(CollectionFailed)) | Err(_)) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics collection failed: a metric callback panicked (see the log)\n",
            );
        }
        Err(_elapsed) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics collection timed out\n",
            );
        }
    };
    let mut response = if accepts_gzip(headers) {
        match gzip(text.as_bytes()) {
            Ok(body) => {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response
                    .headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                response
            }
            Err(_) => Response::new(Full::new(Bytes::from(text))),
        }
    } else {
        Response::new(Full::new(Bytes::from(text)))
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    strip_body(response, head)
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

/// HEAD answers carry the GET headers (hyper keeps `content-length`) and no body.
fn strip_body(response: Response<Full<Bytes>>, head: bool) -> Response<Full<Bytes>> {
    if !head {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let len = hyper::body::Body::size_hint(&body).exact().unwrap_or(0);
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use botscope_testkit::headers;

    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip")])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn bearer_check() {
        assert!(authorized(
            &headers(&[("authorization", "Bearer s3cret")]),
            "s3cret"
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Bearer s3cre")]),
            "s3cret"
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Basic s3cret")]),
            "s3cret"
        ));
        assert!(!authorized(&HeaderMap::new(), "s3cret"));
    }
}
