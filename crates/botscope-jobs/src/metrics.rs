//! Metric names, units, the default handler-type cap, and the per-handler instruments.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use botscope_core::outcome::{Classify, Ending, Finish};
use botscope_core::span::Span;
use botscope_core::{GaugeGuard, LabelCap, Outcome};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter, Counter, Gauge, Histogram, Meter,
};

use crate::error::{JobError, JobErrorType};

/// `N_scheduler_job_duration_seconds{handler_type,status}`: histogram of run durations.
pub const JOB_DURATION: &str = "scheduler_job_duration";
/// `N_scheduler_jobs_total{handler_type,status}`: runs by status.
pub const JOBS: &str = "scheduler_jobs";
/// `N_scheduler_active_jobs{handler_type}`: runs in progress.
pub const ACTIVE_JOBS: &str = "scheduler_active_jobs";
/// `N_scheduler_last_success_timestamp_seconds{handler_type}`: unix time of the last success.
pub const LAST_SUCCESS_TIMESTAMP: &str = "scheduler_last_success_timestamp";
/// `N_scheduler_queue_depth`: schedulers registered in a [`SchedulerRegistry`](crate::SchedulerRegistry).
pub const QUEUE_DEPTH: &str = "scheduler_queue_depth";
/// `N_scheduler_job_lag_seconds{handler_type}`: actual start − scheduled tick (cron adapter).
pub const JOB_LAG: &str = "scheduler_job_lag";

/// The unit of the duration, timestamp and lag instruments (rendered as `_seconds`).
pub const SECONDS: &str = "s";

/// Bucket bounds of the job duration histogram, in seconds: the default request buckets, then
/// longer ones, because jobs run for minutes where requests take milliseconds. Without bounds
/// past 10 s, `histogram_quantile` tops out at 10 and a "p95 over 30 s" alert could never fire.
pub const JOB_DURATION_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Label of the job name.
pub const HANDLER_TYPE: &str = "handler_type";
/// Label of the run status: `success`, `error`, `panic` or `cancelled`.
pub const STATUS: &str = "status";

/// The default of [`SchedulerRegistryBuilder::handler_type_cap`]: distinct `handler_type`
/// values the jobs of one registry admit; later ones become `other`.
///
/// [`SchedulerRegistryBuilder::handler_type_cap`]: crate::SchedulerRegistryBuilder::handler_type_cap
pub const HANDLER_TYPE_CAP: usize = 256;

/// The instruments of one handler type.
///
/// The series a run touches on its usual paths (`success`, `error`, `active_jobs`,
/// `last_success_timestamp`) are bound once here: recording through a bound instrument skips
/// the per-call attribute lookup, which is most of the cost of a measurement. The rare
/// `panic` and `cancelled` statuses go through the plain instruments.
pub(crate) struct Handler {
    name: Arc<str>,
    duration: Histogram<f64>,
    runs: Counter<u64>,
    success: Bound,
    error: Bound,
    active: BoundUpDownCounter<i64>,
    last_success: Gauge<f64>,
    /// Bound on the first success: a bound gauge is exported (as 0) from the moment it is
    /// bound, and the timestamp should appear only once there is a success to report.
    last_success_bound: OnceLock<BoundGauge<f64>>,
    handler: [KeyValue; 1],
    /// Unbound, and bound on the first cron run, so jobs run by hand get no lag series.
    #[cfg(feature = "cron")]
    lag: (Histogram<f64>, OnceLock<BoundHistogram<f64>>),
    panic: [KeyValue; 2],
    cancelled: [KeyValue; 2],
}

/// The bound duration and count of one status.
struct Bound {
    duration: BoundHistogram<f64>,
    runs: BoundCounter<u64>,
}

impl Handler {
    /// Builds the instruments and makes the handler's series appear at 0: `success` and
    /// `error` counts and durations, and the active gauge. `cap`: the `handler_type` cap of
    /// the registry the job was built from, if any.
    pub(crate) fn new(
        meter: &Meter,
        handler_type: &str,
        cap: Option<&LabelCap>,
    ) -> Result<Self, JobError> {
        if handler_type.is_empty() {
            return Err(JobError::new(JobErrorType::EmptyHandlerType));
        }
        let label = match cap {
            Some(cap) => cap.key_value(HANDLER_TYPE, handler_type),
            None => KeyValue::new(HANDLER_TYPE, handler_type.to_owned()),
        };
        let with_status = |status: Outcome| [label.clone(), KeyValue::new(STATUS, status.as_str())];
        let duration = meter
            .f64_histogram(JOB_DURATION)
            .with_unit(SECONDS)
            .with_description("Duration of scheduler job runs")
            .with_boundaries(JOB_DURATION_BUCKETS.to_vec())
            .build();
        let runs = meter
            .u64_counter(JOBS)
            .with_description("Scheduler job runs by status")
            .build();
        let bind = |status: Outcome| {
            let attributes = with_status(status);
            let bound = Bound {
                duration: duration.bind(&attributes),
                runs: runs.bind(&attributes),
            };
            bound.runs.add(0);
            bound
        };
        let handler = [label.clone()];
        Ok(Self {
            name: Arc::from(handler_type),
            success: bind(Outcome::Success),
            error: bind(Outcome::Error),
            active: {
                let active = meter
                    .i64_up_down_counter(ACTIVE_JOBS)
                    .with_description("Scheduler job runs in progress")
                    .build()
                    .bind(&handler);
                active.add(0);
                active
            },
            last_success: meter
                .f64_gauge(LAST_SUCCESS_TIMESTAMP)
                .with_unit(SECONDS)
                .with_description("Unix time of the last successful run of a scheduler job")
                .build(),
            last_success_bound: OnceLock::new(),
            #[cfg(feature = "cron")]
            lag: (
                meter
                    .f64_histogram(JOB_LAG)
                    .with_unit(SECONDS)
                    .with_description(
                        "Actual start of a scheduled job run minus its scheduled tick",
                    )
                    .with_boundaries(botscope_core::buckets::default_buckets())
                    .build(),
                OnceLock::new(),
            ),
            panic: with_status(Outcome::Panic),
            cancelled: with_status(Outcome::Cancelled),
            duration,
            runs,
            handler,
        })
    }

    /// The handler type as given (before the cap).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The handler type as its series label it (after the cap).
    pub(crate) fn label(&self) -> &opentelemetry::Value {
        &self.handler[0].value
    }

    #[cfg(feature = "cron")]
    pub(crate) fn record_lag(&self, lag: Duration) {
        let (lag_histogram, bound) = &self.lag;
        bound
            .get_or_init(|| lag_histogram.bind(&self.handler))
            .record(lag.as_secs_f64());
    }

    fn record(&self, elapsed: Duration, outcome: Outcome) {
        let seconds = elapsed.as_secs_f64();
        match outcome {
            Outcome::Success => {
                self.success.record(seconds);
                // A clock before 1970 is a broken host; 0 then reads as "never".
                let now = botscope_core::clock::since_unix_epoch();
                self.last_success_bound
                    .get_or_init(|| self.last_success.bind(&self.handler))
                    .record(now.as_secs_f64());
            }
            Outcome::Panic => self.record_rare(seconds, &self.panic),
            Outcome::Cancelled => self.record_rare(seconds, &self.cancelled),
            // `Outcome` is non-exhaustive: anything new that is not a success is a failure.
            _ => self.error.record(seconds),
        }
    }

    fn record_rare(&self, seconds: f64, attributes: &[KeyValue]) {
        self.duration.record(seconds, attributes);
        self.runs.add(1, attributes);
    }
}

impl Bound {
    fn record(&self, seconds: f64) {
        self.duration.record(seconds);
        self.runs.add(1);
    }
}

/// The [`Finish`] of one run of a [`Handler`]: records the run under its outcome.
pub(crate) struct Run(Arc<Handler>);

impl Run {
    /// Starts a run: the returned guard holds it in `active_jobs` until it is recorded.
    pub(crate) fn start(handler: &Arc<Handler>) -> (Self, GaugeGuard) {
        (Self(Arc::clone(handler)), GaugeGuard::new(&handler.active))
    }
}

impl<T: Classify> Finish<T> for Run {
    fn finish(self, elapsed: Duration, ending: Ending<'_, T>) {
        self.0.record(elapsed, ending.outcome());
    }

    /// `job {name}`, with the capped `job.name`.
    fn span(&self) -> Span {
        botscope_core::unit_span!(
            target: "botscope_jobs",
            "job",
            otel.name = %format_args!("job {}", self.0.label()),
            "job.name" = %self.0.label(),
        )
    }

    fn error_type(&self, ending: &Ending<'_, T>) -> Option<Cow<'static, str>> {
        ending.outcome().error_type().map(Cow::Borrowed)
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("handler_type", &self.name)
            .finish_non_exhaustive()
    }
}
