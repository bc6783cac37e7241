//! The gate: the outermost service of the proxy, which parses the route once, refuses what
//! it must not forward, and answers an error of a layer of yours itself.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use opentelemetry::StringValue;
use pin_project_lite::pin_project;
use tower::Service;

use crate::forward::body::ProxyBody;
use crate::forward::upstream::own_response;
use crate::route::Routes;

/// The outermost service: parses the route, refuses what must not be forwarded and answers
/// errors itself.
#[derive(Clone)]
pub(crate) struct Gate<S> {
    inner: S,
    local_port: u16,
    routes: Routes,
}

impl<S> Gate<S> {
    pub(crate) fn new(inner: S, local_addr: SocketAddr, routes: Routes) -> Self {
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
    pub(crate) enum GateFuture<F> {
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
