//! [`Job`]: a named async job whose runs are timed and counted.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use botscope_core::LabelCap;
use botscope_core::outcome::Classify;
use opentelemetry::metrics::Meter;

use crate::JobLayer;
use crate::error::JobError;
use crate::future::JobFuture;
use crate::metrics::Handler;

/// A named async job: every [`run`](Self::run) is timed and counted under its
/// `handler_type`. See the [crate docs](crate) for an example.
///
/// `f` returns a future whose output is `()` or a `Result` (anything [`Classify`]): `Ok`
/// and `()` count as `success`, `Err` as `error`, a panic as `panic` and a run dropped
/// before the end as `cancelled`.
///
/// Creating a job makes its series appear before the first run: `jobs_total` at 0 for
/// `success` and `error`, `active_jobs` at 0.
pub struct Job<F> {
    f: F,
    handler: Arc<Handler>,
}

impl<F, Fut> Job<F>
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: Classify,
{
    /// A job named `handler_type` running `f`, recording to the global meter provider.
    ///
    /// # Errors
    ///
    /// [`JobErrorType::EmptyHandlerType`](crate::JobErrorType::EmptyHandlerType) if
    /// `handler_type` is empty.
    pub fn new(handler_type: &str, f: F) -> Result<Self, JobError> {
        Job::builder(handler_type).build(f)
    }

    /// Starts one run: the future resolves to the job's output, unchanged.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops the run, which is counted as `cancelled`.
    pub fn run(&self) -> JobFuture<Fut> {
        JobFuture::new(&self.handler, (self.f)())
    }
}

impl Job<()> {
    /// A builder for a job (or a [`JobLayer`]) named `handler_type`.
    pub fn builder(handler_type: &str) -> JobBuilder {
        JobBuilder {
            handler_type: handler_type.to_owned(),
            meter: None,
            cap: None,
        }
    }
}

impl<F> Job<F> {
    /// The handler type, as given (the label may read `other` past the cap).
    pub fn handler_type(&self) -> &str {
        self.handler.name()
    }

    /// The job's function.
    pub fn get_ref(&self) -> &F {
        &self.f
    }

    #[cfg(feature = "cron")]
    pub(crate) fn handler(&self) -> &Arc<Handler> {
        &self.handler
    }
}

impl<F: Clone> Clone for Job<F> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            handler: Arc::clone(&self.handler),
        }
    }
}

impl<F> fmt::Debug for Job<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("handler_type", &self.handler.name())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Job`] or a [`JobLayer`]: the meter.
///
/// # Cardinality
///
/// A job built from [`Job::builder`] is labelled with its handler type as given: a name
/// chosen in code. Jobs whose handler types come from data (a guild id, say) are built from
/// one [`SchedulerRegistry::job`](crate::SchedulerRegistry::job): they share that registry's
/// cap ([`SchedulerRegistryBuilder::handler_type_cap`](
/// crate::SchedulerRegistryBuilder::handler_type_cap)), past which they read `other`.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct JobBuilder {
    handler_type: String,
    meter: Option<Meter>,
    /// The `handler_type` cap of the registry this builder came from.
    cap: Option<Arc<LabelCap>>,
}

impl JobBuilder {
    /// Records to `meter` instead of the global provider's `botscope-jobs` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// A builder for a job of a registry: its meter, its `handler_type` cap.
    pub(crate) fn with_cap(handler_type: &str, meter: Meter, cap: Arc<LabelCap>) -> Self {
        Self {
            handler_type: handler_type.to_owned(),
            meter: Some(meter),
            cap: Some(cap),
        }
    }

    /// The job running `f`.
    ///
    /// # Errors
    ///
    /// [`JobErrorType::EmptyHandlerType`](crate::JobErrorType::EmptyHandlerType) if the
    /// handler type is empty.
    pub fn build<F, Fut>(self, f: F) -> Result<Job<F>, JobError>
    where
        F: Fn() -> Fut,
        Fut: Future,
        Fut::Output: Classify,
    {
        Ok(Job {
            f,
            handler: self.handler()?,
        })
    }

    /// A [`JobLayer`] recording every call of the service it wraps as a run.
    ///
    /// # Errors
    ///
    /// [`JobErrorType::EmptyHandlerType`](crate::JobErrorType::EmptyHandlerType) if the
    /// handler type is empty.
    pub fn layer(self) -> Result<JobLayer, JobError> {
        Ok(JobLayer::from_handler(self.handler()?))
    }

    pub(crate) fn handler(self) -> Result<Arc<Handler>, JobError> {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        Handler::new(&meter, &self.handler_type, self.cap.as_deref()).map(Arc::new)
    }
}

/// Times one run of `future` as a job named `handler_type`, on the global meter provider.
///
/// For one-off runs; a job that runs repeatedly is cheaper as a [`Job`] built once, since
/// this builds its instruments on every call. `handler_type` is used as given (see
/// [`JobBuilder`]'s `# Cardinality`).
///
/// ```
/// # async fn cleanup() -> Result<(), std::io::Error> { Ok(()) }
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// botscope_jobs::instrument("cleanup", cleanup())?.await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`JobErrorType::EmptyHandlerType`](crate::JobErrorType::EmptyHandlerType) if
/// `handler_type` is empty.
///
/// # Cancel safety
///
/// Dropping the returned future counts the run as `cancelled`.
pub fn instrument<F>(handler_type: &str, future: F) -> Result<JobFuture<F>, JobError>
where
    F: Future,
    F::Output: Classify,
{
    let handler = Job::builder(handler_type).handler()?;
    Ok(JobFuture::new(&handler, future))
}
