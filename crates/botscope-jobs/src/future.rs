//! The future of one instrumented run.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use botscope_core::outcome::{Classify, Timed};

use crate::metrics::{Handler, Run};

pin_project_lite::pin_project! {
    /// One run of a job: resolves to the job's own output, unchanged, and records the run
    /// when it ends (completed, panicked or dropped).
    ///
    /// Returned by [`Job::run`](crate::Job::run), [`instrument`](crate::instrument) and
    /// [`JobService`](crate::JobService) (where tower-http would call it `ResponseFuture`).
    ///
    /// # Cancel safety
    ///
    /// Dropping it before it ends drops the job's future, counts the run as `cancelled` and
    /// brings `active_jobs` back down.
    #[must_use = "futures do nothing unless polled"]
    pub struct JobFuture<F>
    where
        F: Future,
        F::Output: Classify,
    {
        #[pin]
        inner: Timed<F, Run>,
    }
}

impl<F> JobFuture<F>
where
    F: Future,
    F::Output: Classify,
{
    /// Starts a run: the clock starts and `active_jobs` goes up now.
    pub(crate) fn new(handler: &Arc<Handler>, future: F) -> Self {
        let (run, active) = Run::start(handler);
        Self {
            inner: Timed::new(future, run).with_gauge(active),
        }
    }
}

impl<F> Future for JobFuture<F>
where
    F: Future,
    F::Output: Classify,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F> fmt::Debug for JobFuture<F>
where
    F: Future,
    F::Output: Classify,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobFuture").finish_non_exhaustive()
    }
}
