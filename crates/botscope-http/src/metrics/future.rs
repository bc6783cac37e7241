//! [`ResponseFuture`]: the future of [`DiscordMetrics`](crate::DiscordMetrics), which ends the
//! request's record.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use botscope_core::outcome::Timer;
use pin_project_lite::pin_project;

use crate::metrics::record::{Answer, Record};

pin_project! {
    /// The future of [`DiscordMetrics`](crate::DiscordMetrics): records the request once the inner future yields a
    /// response head or an error, panics, or is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before the inner future returned drops that future and counts the request
    /// as `status_code="cancelled"` (not timed); the in-flight gauge goes back down.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` once the request is recorded.
        timer: Option<Timer<Answer, Record>>,
        // Whether the request is a `GET /gateway/bot`, whose answer carries the session
        // start budget.
        gateway_bot: bool,
    }
}

impl<F> ResponseFuture<F> {
    /// `inner`, recorded by `timer`; `gateway_bot` for a `GET /gateway/bot`.
    pub(crate) fn new(inner: F, timer: Timer<Answer, Record>, gateway_bot: bool) -> Self {
        Self {
            inner,
            timer: Some(timer),
            gateway_bot,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Some(timer) = this.timer else {
            // Recorded already: polled again after it returned.
            return inner.poll(cx);
        };
        // A panic is recorded as `panic`, then resumes unchanged.
        let result = ready!(timer.record_panic(|| inner.poll(cx)));
        if let Some(timer) = this.timer.take() {
            timer.complete(&Answer::of(&result, *this.gateway_bot));
        }
        Poll::Ready(result)
    }
}
