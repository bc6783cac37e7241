//! Timing and outcome of a future: how long it took and how it ended.
//!
//! [`Timed`] wraps a future, starts a clock when it is created and, exactly once, hands the
//! elapsed time and the way the future ended to a [`Finish`]:
//!
//! - [`Ending::Completed`] with a reference to the output, when the future returns;
//! - [`Ending::Panicked`] when polling it panics (the panic then carries on unchanged, with
//!   its original payload);
//! - [`Ending::Cancelled`] when it is dropped before it returned.
//!
//! A [`Timed`] can also hold a [`GaugeGuard`] (an "active" or "in flight" gauge), which is
//! released right after the finish ran, on every one of those paths.
//!
//! The output is never touched: the future returns what the inner future returned.
//! [`Classify`] turns an output into an [`Outcome`] (`success` or `error`): `()` is a success,
//! `Result` is a success when `Ok`. [`Ending::outcome`] adds `panic` and `cancelled`.
//!
//! ```
//! use std::time::Duration;
//!
//! use botscope_core::outcome::{Ending, Finish, Timed};
//! use opentelemetry::KeyValue;
//! use opentelemetry::metrics::Histogram;
//!
//! /// Records how long an audio operation took, whatever its result.
//! struct AudioTiming {
//!     histogram: Histogram<f64>,
//!     attributes: [KeyValue; 2],
//! }
//!
//! impl<T> Finish<T> for AudioTiming {
//!     fn finish(self, elapsed: Duration, _ending: Ending<'_, T>) {
//!         self.histogram.record(elapsed.as_secs_f64(), &self.attributes);
//!     }
//! }
//!
//! # use std::future::Future;
//! # use std::task::{Context, Poll, Waker};
//! let meter = botscope_core::meter::global_meter("example", "0.0.0");
//! let histogram = meter
//!     .f64_histogram("audio_processing_duration")
//!     .with_unit("s")
//!     .with_boundaries(botscope_core::buckets::default_buckets())
//!     .build();
//! let timing = AudioTiming {
//!     histogram,
//!     attributes: [
//!         KeyValue::new("operation", "cleanup"),
//!         KeyValue::new("guild_id", "81384788765712384"),
//!     ],
//! };
//! let freed = std::pin::pin!(Timed::new(async { 3_u32 }, timing)); // then `.await` it
//! # let mut freed = freed;
//! # let polled = freed.as_mut().poll(&mut Context::from_waker(Waker::noop()));
//! # assert_eq!(polled, Poll::Ready(3));
//! ```
//!
//! # Cost
//!
//! Two clock reads, a `catch_unwind` around each poll (free unless a panic happens) and what
//! the [`Finish`] does. No allocation, no boxing.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::gauge::GaugeGuard;
use crate::status::Outcome;

/// A source of monotonic time; [`Instant::now`] unless [`Timed::with_clock`] sets another
/// (for example a runtime's virtual clock in tests).
pub type Clock = fn() -> Instant;

/// The `success`/`error` classification of an output.
///
/// Implemented for `()` (always a success) and `Result<T, E>` (`Ok` is a success, `Err` an
/// error). Implement it for your own output types to time them with a status label.
pub trait Classify {
    /// [`Outcome::Success`] or [`Outcome::Error`] for this output.
    fn classify(&self) -> Outcome;
}

impl Classify for () {
    fn classify(&self) -> Outcome {
        Outcome::Success
    }
}

impl<T, E> Classify for Result<T, E> {
    fn classify(&self) -> Outcome {
        match self {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Error,
        }
    }
}

/// How a [`Timed`] future ended, as its [`Finish`] sees it.
pub enum Ending<'a, T> {
    /// The future returned this output (which the caller then receives unchanged).
    Completed(&'a T),
    /// Polling the future panicked; the panic resumes after the finish.
    Panicked,
    /// The future was dropped before it returned.
    Cancelled,
}

impl<T: Classify> Ending<'_, T> {
    /// The status: the output's [`Classify`] result, else `panic` or `cancelled`.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Completed(output) => output.classify(),
            Self::Panicked => Outcome::Panic,
            Self::Cancelled => Outcome::Cancelled,
        }
    }
}

impl<T> fmt::Debug for Ending<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Completed(_) => "Completed(..)",
            Self::Panicked => "Panicked",
            Self::Cancelled => "Cancelled",
        })
    }
}

/// What a [`Timed`] future does once it ended: record the elapsed time and the ending.
///
/// Called exactly once per [`Timed`]. It runs inside `poll` or `drop`, so keep it short and
/// never panic in it.
pub trait Finish<T> {
    /// Records one run that took `elapsed` and ended as `ending`.
    fn finish(self, elapsed: Duration, ending: Ending<'_, T>);
}

/// The bookkeeping of a [`Timed`] that has not finished yet.
struct Running<R> {
    start: Instant,
    clock: Clock,
    finish: R,
    guard: Option<GaugeGuard>,
}

impl<R> Running<R> {
    fn end<T>(self, ending: Ending<'_, T>)
    where
        R: Finish<T>,
    {
        let elapsed = (self.clock)().saturating_duration_since(self.start);
        self.finish.finish(elapsed, ending);
        // The gauge comes down only after the run is recorded, so a scrape never sees a run
        // that is neither active nor counted.
        drop(self.guard);
    }
}

pin_project_lite::pin_project! {
    /// A future that times another and reports how it ended. See the [module docs](self).
    ///
    /// The clock starts when the `Timed` is created.
    #[must_use = "futures do nothing unless polled"]
    pub struct Timed<F, R>
    where
        F: Future,
        R: Finish<F::Output>,
    {
        #[pin]
        inner: F,
        running: Option<Running<R>>,
    }

    impl<F, R> PinnedDrop for Timed<F, R>
    where
        F: Future,
        R: Finish<F::Output>,
    {
        fn drop(this: Pin<&mut Self>) {
            if let Some(running) = this.project().running.take() {
                running.end::<F::Output>(Ending::Cancelled);
            }
        }
    }
}

impl<F, R> Timed<F, R>
where
    F: Future,
    R: Finish<F::Output>,
{
    /// Wraps `inner`, starting the clock now; `finish` runs once `inner` ended.
    pub fn new(inner: F, finish: R) -> Self {
        Self {
            inner,
            running: Some(Running {
                start: Instant::now(),
                clock: Instant::now,
                finish,
                guard: None,
            }),
        }
    }

    /// Holds `guard` until the future ended (released right after the finish ran).
    pub fn with_gauge(mut self, guard: GaugeGuard) -> Self {
        if let Some(running) = &mut self.running {
            running.guard = Some(guard);
        }
        self
    }

    /// Reads time from `clock` instead of [`Instant::now`], restarting the clock from it.
    ///
    /// Tokio's paused test clock, for instance: `|| tokio::time::Instant::now().into_std()`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        if let Some(running) = &mut self.running {
            running.clock = clock;
            running.start = clock();
        }
        self
    }

    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.inner
    }
}

impl<F, R> Future for Timed<F, R>
where
    F: Future,
    R: Finish<F::Output>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        // Unwind safety: after a panic the inner future is never polled again by us; the
        // panic is resumed as is, so the caller sees exactly what it would have seen.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                if let Some(running) = this.running.take() {
                    running.end(Ending::Completed(&output));
                }
                Poll::Ready(output)
            }
            Err(payload) => {
                if let Some(running) = this.running.take() {
                    running.end::<F::Output>(Ending::Panicked);
                }
                resume_unwind(payload)
            }
        }
    }
}

impl<F, R> fmt::Debug for Timed<F, R>
where
    F: Future + fmt::Debug,
    R: Finish<F::Output>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timed")
            .field("inner", &self.inner)
            .field("finished", &self.running.is_none())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    /// Remembers every finish it sees.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(Duration, Outcome)>>>);

    impl<T: Classify> Finish<T> for Log {
        fn finish(self, elapsed: Duration, ending: Ending<'_, T>) {
            self.0.lock().unwrap().push((elapsed, ending.outcome()));
        }
    }

    impl Log {
        fn outcomes(&self) -> Vec<Outcome> {
            self.0.lock().unwrap().iter().map(|(_, o)| *o).collect()
        }
    }

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(Waker::noop()))
    }

    static_assertions::assert_impl_all!(
        Timed<std::future::Ready<()>, Log>: Send, Sync, Unpin
    );

    #[test]
    fn completion_is_classified_and_the_output_passes_through() {
        let log = Log::default();
        let mut ok = std::pin::pin!(Timed::new(std::future::ready(Ok::<u8, ()>(7)), log.clone()));
        assert_eq!(poll_once(ok.as_mut()), Poll::Ready(Ok(7)));
        let mut err = std::pin::pin!(Timed::new(
            std::future::ready(Err::<u8, _>("no")),
            log.clone()
        ));
        assert_eq!(poll_once(err.as_mut()), Poll::Ready(Err("no")));
        let mut unit = std::pin::pin!(Timed::new(std::future::ready(()), log.clone()));
        assert_eq!(poll_once(unit.as_mut()), Poll::Ready(()));
        assert_eq!(
            log.outcomes(),
            [Outcome::Success, Outcome::Error, Outcome::Success]
        );
    }

    #[test]
    fn dropping_before_the_end_is_cancelled_and_finishes_once() {
        let log = Log::default();
        let mut pending = Box::pin(Timed::new(std::future::pending::<()>(), log.clone()));
        assert_eq!(poll_once(pending.as_mut()), Poll::Pending);
        assert!(log.outcomes().is_empty());
        drop(pending);
        assert_eq!(log.outcomes(), [Outcome::Cancelled]);

        // a finished future records nothing more when dropped
        let done = Timed::new(std::future::ready(()), log.clone());
        let mut done = std::pin::pin!(done);
        let _ = poll_once(done.as_mut());
        assert_eq!(log.outcomes().len(), 2);
    }

    #[test]
    fn a_panic_is_recorded_then_resumed_with_its_payload() {
        let log = Log::default();
        let fut = Timed::new(
            async {
                if true {
                    std::panic::panic_any(42_u32);
                }
            },
            log.clone(),
        );
        let mut fut = Box::pin(fut);
        let payload = catch_unwind(AssertUnwindSafe(|| poll_once(fut.as_mut()))).unwrap_err();
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
        drop(fut);
        assert_eq!(log.outcomes(), [Outcome::Panic]);
    }

    #[test]
    fn a_custom_clock_measures_the_elapsed_time() {
        fn fixed() -> Instant {
            // A clock that never moves measures zero.
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            *START.get_or_init(Instant::now)
        }
        let log = Log::default();
        let mut fut =
            std::pin::pin!(Timed::new(std::future::ready(()), log.clone()).with_clock(fixed));
        let _ = poll_once(fut.as_mut());
        assert_eq!(log.0.lock().unwrap()[0].0, Duration::ZERO);
    }

    #[test]
    fn the_gauge_is_held_until_the_end_on_every_path() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let active = provider.meter("test").i64_up_down_counter("active").build();
        let current = || -> i64 {
            provider.force_flush().unwrap();
            let batches = exporter.get_finished_metrics().unwrap();
            let metric = batches
                .last()
                .unwrap()
                .scope_metrics()
                .flat_map(|s| s.metrics())
                .find(|m| m.name() == "active")
                .map(|m| match m.data() {
                    AggregatedMetrics::I64(MetricData::Sum(sum)) => {
                        sum.data_points().map(|p| p.value()).sum()
                    }
                    other => panic!("unexpected data {other:?}"),
                });
            metric.unwrap_or(0)
        };
        let guard = || GaugeGuard::new(&active, [KeyValue::new("k", "v")]);

        let mut cancelled =
            Box::pin(Timed::new(std::future::pending::<()>(), Log::default()).with_gauge(guard()));
        let _ = poll_once(cancelled.as_mut());
        assert_eq!(current(), 1);
        drop(cancelled);
        assert_eq!(current(), 0);

        let mut panicking = Box::pin(
            Timed::new(
                async {
                    if true {
                        panic!("boom")
                    }
                },
                Log::default(),
            )
            .with_gauge(guard()),
        );
        assert_eq!(current(), 1);
        let _ = catch_unwind(AssertUnwindSafe(|| poll_once(panicking.as_mut())));
        assert_eq!(current(), 0);

        let mut done =
            Box::pin(Timed::new(std::future::ready(()), Log::default()).with_gauge(guard()));
        let _ = poll_once(done.as_mut());
        assert_eq!(current(), 0);
    }
}
