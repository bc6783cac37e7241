//! [`JobLayer`]: the job decorator around a tower [`Service`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::error::JobError;
use crate::future::JobFuture;
use crate::job::Job;
use crate::metrics::Handler;

/// Records every call of the wrapped service as a run of a job named `handler_type`: an
/// `Ok` response is a `success`, the service's `Err` an `error`.
///
/// ```
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = botscope_jobs::JobLayer::new("daily_digest")?;
/// let service = layer.layer(service_fn(|guilds: u32| async move {
///     Ok::<_, std::io::Error>(guilds * 2)
/// }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JobLayer {
    handler: Arc<Handler>,
}

impl JobLayer {
    /// A layer named `handler_type` recording to the global meter provider; use
    /// [`Job::builder`]`(..).layer()` for an explicit meter.
    ///
    /// # Errors
    ///
    /// [`JobErrorType::EmptyHandlerType`](crate::JobErrorType::EmptyHandlerType) if
    /// `handler_type` is empty.
    pub fn new(handler_type: &str) -> Result<Self, JobError> {
        Job::builder(handler_type).layer()
    }

    pub(crate) fn from_handler(handler: Arc<Handler>) -> Self {
        Self { handler }
    }
}

impl<S> Layer<S> for JobLayer {
    type Service = JobService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JobService {
            inner,
            handler: Arc::clone(&self.handler),
        }
    }
}

impl fmt::Debug for JobLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobLayer")
            .field("handler_type", &self.handler.name())
            .finish()
    }
}

/// A service whose calls are recorded as job runs. Built by [`JobLayer`].
#[derive(Clone)]
pub struct JobService<S> {
    inner: S,
    handler: Arc<Handler>,
}

impl<S> JobService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Request> Service<Request> for JobService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = JobFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        JobFuture::new(&self.handler, self.inner.call(request))
    }
}

impl<S: fmt::Debug> fmt::Debug for JobService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobService")
            .field("inner", &self.inner)
            .field("handler_type", &self.handler.name())
            .finish()
    }
}
