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

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
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
use tokio::time::{Instant, Sleep};

pub use crate::failure::BodyErrorKind;
use crate::failure::BoxError;
use crate::instruments::BodyErrors;

/// The body of the proxy's responses: the upstream's, streamed (with an idle timeout, see
/// [`UpstreamBody`]), or the proxy's own.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// How long the proxy waits for the next byte of an upstream body before cutting it.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The error an [`UpstreamBody`] ends with when the upstream stalls.
#[derive(Debug)]
struct Stalled;

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("botscope proxy: upstream body stalled past the body timeout")
    }
}

impl StdError for Stalled {}

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
/// arrives for the body timeout. See the [module docs](self).
pub struct UpstreamBody {
    inner: Incoming,
    timeout: Duration,
    // `None` once the body ended, or with no timeout to keep.
    idle: Option<Pin<Box<Sleep>>>,
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
    pub(crate) fn new(inner: Incoming, timeout: Duration, context: BodyContext) -> Self {
        // An empty body never waits; a timeout too large for the clock means none.
        let idle = (!inner.is_end_stream())
            .then(|| Instant::now().checked_add(timeout))
            .flatten()
            .map(|deadline| Box::pin(tokio::time::sleep_until(deadline)));
        Self {
            inner,
            timeout,
            idle,
            failed: false,
            context,
        }
    }

    /// Waits for the next byte from now.
    fn rearm(&mut self) {
        if let Some(idle) = &mut self.idle {
            match Instant::now().checked_add(self.timeout) {
                Some(deadline) => idle.as_mut().reset(deadline),
                None => self.idle = None,
            }
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.idle = None;
                } else {
                    this.rearm();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.idle = None;
                if !std::mem::replace(&mut this.failed, true) {
                    this.context
                        .failed(BodyErrorKind::Error, this.timeout, Some(&error));
                }
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.idle = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(idle) = &mut this.idle else {
                    return Poll::Pending;
                };
                ready!(idle.as_mut().poll(cx));
                this.idle = None;
                this.failed = true;
                this.context
                    .failed(BodyErrorKind::Timeout, this.timeout, None);
                Poll::Ready(Some(Err(Box::new(Stalled))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
