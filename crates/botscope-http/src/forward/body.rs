//! The bodies the proxy streams: the upstream's answer ([`UpstreamBody`], with an idle
//! timeout) and the client's upload (which notes whether it failed, so the failure is blamed
//! on the client and not on Discord).
//!
//! # A body that fails after its head
//!
//! A response is counted in `N_discord_api_requests_total` when its head arrives, under the
//! head's status: the body comes later, and the client may have the head before the proxy
//! has the body's last byte. When the body then fails, the failure is counted once more, apart,
//! in `N_discord_api_body_errors_total{endpoint,method,kind}` ([`BodyErrorKind`]): `timeout`
//! when the upstream sent no byte of it for the proxy's
//! [`body_timeout`](crate::DiscordProxyBuilder::body_timeout), `error` when the upstream
//! connection failed mid-body. The client sees its body end with an error (the connection is
//! cut), and the proxy logs one `warn` line naming the route template, the method and the
//! head's status, never the path.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use opentelemetry::StringValue;
use pin_project_lite::pin_project;
use tower_http::timeout::{TimeoutBody, TimeoutError};

pub use crate::failure::BodyErrorKind;
use crate::failure::BoxError;
use crate::instruments::BodyErrors;

/// The body of the proxy's responses: the upstream's, streamed (with an idle timeout, see
/// [`UpstreamBody`]), or the proxy's own.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// How long the proxy waits for the next byte of an upstream body before cutting it.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// What an [`UpstreamBody`] names when it fails: the request's series and its head's status.
pub(crate) struct BodyContext {
    pub(crate) endpoint: StringValue,
    pub(crate) method: &'static str,
    pub(crate) status: u16,
    pub(crate) body_errors: Option<BodyErrors>,
}

impl BodyContext {
    /// Counts and logs one failure.
    fn failed(&self, kind: BodyErrorKind, timeout: Duration, source: Option<&dyn fmt::Display>) {
        if let Some(body_errors) = &self.body_errors {
            body_errors.record(&self.endpoint, self.method, kind);
        }
        // hyper's error text names its kind only, never the URI.
        tracing::warn!(
            endpoint = %self.endpoint,
            method = self.method,
            status = self.status,
            error = %kind,
            body_timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            source = source.map(tracing::field::display),
            "botscope proxy: upstream body failed after its head"
        );
    }
}

/// The upstream's response body, streamed as it comes, ended with an error when no byte of it
/// arrives for the body timeout (tower-http's [`TimeoutBody`]). See the [module docs](self).
pub struct UpstreamBody {
    // Boxed: `TimeoutBody` holds its timer inline and is not `Unpin`; one allocation per
    // body, as the timer alone took before.
    inner: Pin<Box<TimeoutBody<Incoming>>>,
    // What hyper's body said of its length, less the bytes passed on: `TimeoutBody` forwards
    // neither hint, and hyper's server needs them to send a `content-length` rather than
    // chunks.
    size_hint: SizeHint,
    ended: bool,
    timeout: Duration,
    // Whether a failure was counted: at most one per body.
    failed: bool,
    context: BodyContext,
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// `inner`, cut once no byte of it came for `timeout` (one too large for the clock means
    /// none: the timer is set at the end of time).
    pub(crate) fn new(inner: Incoming, timeout: Duration, context: BodyContext) -> Self {
        Self {
            size_hint: inner.size_hint(),
            ended: inner.is_end_stream(),
            inner: Box::pin(TimeoutBody::new(timeout, inner)),
            timeout,
            failed: false,
            context,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                let lower = this.size_hint.lower().saturating_sub(len);
                let upper = this
                    .size_hint
                    .upper()
                    .map(|upper| upper.saturating_sub(len));
                this.size_hint = SizeHint::new();
                this.size_hint.set_lower(lower);
                if let Some(upper) = upper {
                    this.size_hint.set_upper(upper);
                }
            }
            None => this.ended = true,
            Some(Err(_)) => {}
        }
        if let Some(Err(error)) = &frame
            && !std::mem::replace(&mut this.failed, true)
        {
            // The body is ours, wrapped once: its error is either the timer's or hyper's.
            if error.is::<TimeoutError>() {
                this.context
                    .failed(BodyErrorKind::Timeout, this.timeout, None);
            } else {
                this.context
                    .failed(BodyErrorKind::Error, this.timeout, Some(&**error));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}

pin_project! {
    /// The client's request body on its way upstream. hyper's client reports a failure of
    /// the body it sends only as its own failed request, like an unreachable upstream; this
    /// notes the failure where it happens, so the forwarder can tell the two apart without
    /// digging in hyper's error chain.
    pub(crate) struct ClientBody<B> {
        #[pin]
        inner: B,
        failed: Arc<AtomicBool>,
    }
}

impl<B> ClientBody<B> {
    /// Wraps `inner`; `failed` turns true when it yields an error.
    pub(crate) fn new(inner: B, failed: Arc<AtomicBool>) -> Self {
        Self { inner, failed }
    }
}

impl<B: Body> Body for ClientBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if matches!(frame, Some(Err(_))) {
            // Release: the forwarder reads it after hyper hands it the failed request.
            this.failed.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
