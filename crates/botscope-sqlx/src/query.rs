//! The timed row stream every executor shares.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::Stream;

use botscope_core::clock::{self, Instant};
use botscope_core::outcome::Timer;

use super::metrics::Query;
use super::sqlx;

/// The timer of a row stream: its output is `Ok(())` once the stream ended.
type StreamTimer = Timer<Result<(), sqlx::Error>, Query>;

/// A row stream timed until it ends, fails or is dropped (see the [outcome
/// rules](super::metrics#outcomes)): each poll of the inner stream runs through
/// [`Timer::record_panic`], and a drop after the first item counts as a success.
pub(crate) struct TimedStream<S> {
    inner: S,
    /// `None` once the stream ended.
    timer: Option<StreamTimer>,
    /// Whether the caller got at least one item.
    yielded: bool,
}

impl<S> TimedStream<S> {
    /// Times `inner` from now.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn new(inner: S, finish: Query) -> Self {
        Self::new_at(inner, finish, clock::now())
    }

    /// Times `inner` from `start`.
    pub(crate) fn new_at(inner: S, finish: Query, start: Instant) -> Self {
        Self {
            inner,
            timer: Some(Timer::start_at(finish, start)),
            yielded: false,
        }
    }
}

impl<S, T> Stream for TimedStream<S>
where
    S: Stream<Item = Result<T, sqlx::Error>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let inner = Pin::new(&mut this.inner);
        let Some(timer) = this.timer.as_mut() else {
            return inner.poll_next(cx);
        };
        let item = std::task::ready!(timer.record_panic(|| inner.poll_next(cx)));
        match item {
            Some(Ok(item)) => {
                this.yielded = true;
                Poll::Ready(Some(Ok(item)))
            }
            Some(Err(error)) => {
                let failed = Err(error);
                if let Some(timer) = this.timer.take() {
                    timer.complete(&failed);
                }
                Poll::Ready(failed.err().map(Err))
            }
            None => {
                if let Some(timer) = this.timer.take() {
                    timer.complete(&Ok(()));
                }
                Poll::Ready(None)
            }
        }
    }
}

impl<S> Drop for TimedStream<S> {
    fn drop(&mut self) {
        let Some(timer) = self.timer.take() else {
            return;
        };
        if self.yielded {
            // The caller got rows and stopped reading, as `fetch_one` does: a success.
            timer.complete(&Ok(()));
        }
        // Else the timer's own drop records the stream as cancelled.
    }
}
