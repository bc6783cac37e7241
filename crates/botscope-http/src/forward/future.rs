//! [`ForwardFuture`]: one forwarded request, from the upstream's head (or its failure, or the
//! timeout) to the response the layers above see.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use http::header;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use opentelemetry::StringValue;
use pin_project_lite::pin_project;

use crate::edge::{ErrorBody, MAX_ERROR_BODY};
use crate::failure::ForwardErrorType;
use crate::forward::body::{BodyContext, ProxyBody, UpstreamBody};
use crate::forward::upstream::{own_response, strip_hop_by_hop};
use crate::instruments::BodyErrors;
use crate::session::{MAX_GATEWAY_BOT_BODY, SessionStartLimit};

/// What the log line of a failed forward names.
#[derive(Clone)]
pub(crate) struct Failure {
    pub(crate) endpoint: StringValue,
    pub(crate) method: &'static str,
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
    /// The future of [`Forward`](crate::Forward).
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
        body_errors: Option<BodyErrors>,
    }
}

impl ForwardFuture {
    /// The proxy's own answer to a request it could not send: `kind` says why.
    pub(crate) fn refused(kind: ForwardErrorType, failure: Failure, gateway_bot: bool) -> Self {
        Self {
            inner: None,
            refused: kind,
            reading: None,
            sleep: None,
            failure,
            gateway_bot,
            client_failed: None,
            body_timeout: Duration::ZERO,
            body_errors: None,
        }
    }

    /// A request sent upstream: its `response`, cut short by `sleep`; `client_failed` turns
    /// true if the client's body fails; the body of the answer is cut after `body` (its
    /// idle timeout and where its failures are reported).
    pub(crate) fn sent(
        response: hyper_util::client::legacy::ResponseFuture,
        sleep: tokio::time::Sleep,
        failure: Failure,
        gateway_bot: bool,
        client_failed: Arc<AtomicBool>,
        body: (Duration, Option<BodyErrors>),
    ) -> Self {
        Self {
            inner: Some(response),
            refused: ForwardErrorType::InvalidUri,
            reading: None,
            sleep: Some(sleep),
            failure,
            gateway_bot,
            client_failed: Some(client_failed),
            body_timeout: body.0,
            body_errors: body.1,
        }
    }
}

impl fmt::Debug for ForwardFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardFuture").finish_non_exhaustive()
    }
}

/// What [`Forward`](crate::Forward) reads of an answer's body for the layers above: only from answers that
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
                                body_errors: this.body_errors.take(),
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
    use http::StatusCode;

    use super::*;

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
}
