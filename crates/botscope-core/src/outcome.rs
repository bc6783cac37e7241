//! Timing and outcome of a future: how long it took and how it ended.
//!
//! Every botscope crate times its work through this module: job runs, sqlx queries and
//! transactions, REST requests through the layers, voice attempts and audio operations.
//!
//! [`Timed`] wraps a future, starts a clock when it is created and, exactly once, hands the
//! elapsed time and the way the future ended to a [`Finish`]:
//!
//! - [`Ending::Completed`] with a reference to the output, when the future returns;
//! - [`Ending::Panicked`] when polling it panics (the panic then carries on unchanged, with
//!   its original payload);
//! - [`Ending::Cancelled`] when it is dropped before it returned.
//!
//! [`Timer`] is the same bookkeeping without a future, for work that is not one (a row
//! stream, a guard held across calls): it ends when told, or on drop.
//!
//! Either can hold a [`GaugeGuard`] (an "active" or "in flight" gauge), which is released
//! right after the finish ran, on every one of those paths.
//!
//! Either also carries the unit's `tracing` [`Span`], which its [`Finish::span`] opens
//! (built with [`unit_span!`](crate::unit_span); [`Timer::in_span`] replaces it): the span is entered
//! while the future is polled, so what the unit does (a query in a command handler, a REST
//! call in a job) opens its spans beneath it, and it closes when the unit ended, with the
//! same verdict as the metric: a unit that did not succeed gets `otel.status_code = "error"`
//! and its `error.type` from [`Finish::error_type`] (`panic`, `cancelled`, or the class the
//! metric records), one that succeeded keeps its status unset, as the OpenTelemetry
//! conventions ask. A span no subscriber records costs a branch: nothing is written to it.
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
//! /// Records how long an audio operation took, if it ran to its end.
//! struct AudioTiming {
//!     histogram: Histogram<f64>,
//!     attributes: [KeyValue; 2],
//! }
//!
//! impl<T> Finish<T> for AudioTiming {
//!     fn finish(self, elapsed: Duration, ending: Ending<'_, T>) {
//!         if ending.is_completed() {
//!             self.histogram.record(elapsed.as_secs_f64(), &self.attributes);
//!         }
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
//! # The clock
//!
//! Every duration in botscope is read from [`clock::now`], a [`tokio::time::Instant`]. In a bot it is the OS
//! monotonic clock, `std::time::Instant` (tokio's `now()` is a plain wrapper around it unless
//! tokio's `test-util` feature is on, and then one atomic load more until some runtime
//! pauses time); under `#[tokio::test(start_paused = true)]` it is the paused runtime's
//! clock, so timing logic is tested with `time::advance` instead of real sleeps, as twilight
//! tests it. Measured on the 2-core machine this project is built on, a read costs 24–65 ns
//! in a tight loop, against 10–50 ns for the TSC through `quanta`, which also needs a
//! calibration of up to 200 ms per process: two reads per timed operation stay under 0.13 µs
//! against the smallest budget (1 µs per request, job or command) and under 1 % of a 16 µs
//! SQLite query, so a cheaper clock buys nothing a user can see.
//!
//! # Cost
//!
//! Two clock reads and what the [`Finish`] does: a panic is seen by a guard on the stack,
//! never caught, so a poll costs nothing more until one happens. No allocation, no boxing.
//! Without a span (or with one no subscriber records), a poll adds one branch.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::{self, Instant};

use tracing::Span;

use crate::gauge::GaugeGuard;
use crate::status::Outcome;

/// The `success`/`error` classification of an output.
///
/// Implemented for `()` (always a success) and `Result<T, E>` (`Ok` is a success, `Err` an
/// error). Implement it for your own output types to time them with a status label.
pub trait Classify {
    /// [`Outcome::Success`] or [`Outcome::Error`] for this output.
    fn classify(&self) -> Outcome;
}

/// An outcome already decided: what a guard records for an output it classified itself.
impl Classify for Outcome {
    fn classify(&self) -> Outcome {
        *self
    }
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

/// How a timed operation ended, as its [`Finish`] sees it.
pub enum Ending<'a, T> {
    /// The operation returned this output (which the caller then receives unchanged).
    Completed(&'a T),
    /// The operation panicked; the panic resumes after the finish.
    Panicked,
    /// The operation was dropped before it returned.
    Cancelled,
}

impl<T> Ending<'_, T> {
    /// Whether the operation ran to its end (with any output): durations of a histogram
    /// without a `status` label are recorded only then, since a partial time under no status
    /// would skew its quantiles.
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed(_))
    }
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

/// What a timed operation does once it ended: record the elapsed time and the ending.
///
/// Called exactly once per [`Timed`] or [`Timer`]. It runs inside `poll` or `drop`, so keep
/// it short and never panic in it.
pub trait Finish<T> {
    /// Records one run that took `elapsed` and ended as `ending`.
    fn finish(self, elapsed: Duration, ending: Ending<'_, T>);

    /// The unit's span, opened when its [`Timer`] or [`Timed`] is created (build it with
    /// [`unit_span!`](crate::unit_span)); the default is none. [`Timer::in_span`] replaces
    /// it.
    fn span(&self) -> Span {
        Span::none()
    }

    /// The `error.type` of the unit's span for `ending`: `None` when it succeeded, else the
    /// class its metric records. Called just before [`finish`](Self::finish), and only when
    /// the unit has a span a subscriber records.
    ///
    /// The default knows the endings only: `panic`, `cancelled`, and a success for any
    /// output. A `Finish` whose output is [`Classify`] returns
    /// `ending.outcome().error_type().map(Cow::Borrowed)` at least (`error` for an `Err`),
    /// and a finer class where its metric has one (sqlx's `error_type`, an HTTP status).
    fn error_type(&self, ending: &Ending<'_, T>) -> Option<Cow<'static, str>> {
        match ending {
            Ending::Completed(_) => None,
            Ending::Panicked => Some(Cow::Borrowed(Outcome::Panic.as_str())),
            Ending::Cancelled => Some(Cow::Borrowed(Outcome::Cancelled.as_str())),
        }
    }

    /// Writes what else the ending tells on the unit's span (an HTTP status, a ratelimit
    /// scope), into fields its [`span`](Self::span) declared. Called after
    /// [`error_type`](Self::error_type), only when a subscriber records the span; the
    /// default writes nothing.
    fn record_span(&self, span: &Span, ending: &Ending<'_, T>) {
        let _ = (span, ending);
    }
}

/// The bookkeeping of a [`Timer`] that has not ended yet.
struct Running<R> {
    start: Instant,
    finish: R,
    guard: Option<GaugeGuard>,
    /// The unit's span ([`Finish::span`] unless replaced), closed when the unit ended; boxed
    /// and only when it has one, so a unit no subscriber records carries one word, not a
    /// `Span`'s five (a query's boxed future is two units: measured in BENCHMARKS.md).
    span: Option<Box<Span>>,
}

/// `span` boxed, unless it is none.
fn boxed(span: Span) -> Option<Box<Span>> {
    (!span.is_none()).then(|| Box::new(span))
}

/// Times one operation whose output is a `T` and reports how it ended to `R`, exactly once:
/// when [`end`](Self::end) or [`complete`](Self::complete) is called, as
/// [`Ending::Panicked`] when a step run through [`record_panic`](Self::record_panic) panics,
/// else as [`Ending::Cancelled`] on drop.
///
/// The clock starts when the timer is created. [`Timed`] is a timer around a future.
#[must_use = "a timer dropped at once records a cancelled operation"]
pub struct Timer<T, R: Finish<T>> {
    running: Option<Running<R>>,
    // `fn(&T)`: the timer holds no `T`, so it is `Send` and `Sync` whatever `T` is.
    _output: PhantomData<fn(&T)>,
}

impl<T, R: Finish<T>> Timer<T, R> {
    /// Starts the clock now; `finish` runs once the operation ended.
    pub fn start(finish: R) -> Self {
        Self::start_at(finish, clock::now())
    }

    /// Times the operation from `start`, a reading of the core clock taken before: for an
    /// operation whose parts are timed from the same moment (a query and its wait for a
    /// connection), one clock read instead of two.
    pub fn start_at(finish: R, start: Instant) -> Self {
        Self {
            running: Some(Running {
                start,
                span: boxed(finish.span()),
                finish,
                guard: None,
            }),
            _output: PhantomData,
        }
    }

    /// Holds `guard` until the operation ended (released right after the finish ran).
    pub fn with_gauge(mut self, guard: GaugeGuard) -> Self {
        if let Some(running) = &mut self.running {
            running.guard = Some(guard);
        }
        self
    }

    /// Gives the operation this span instead of its [`Finish::span`]: entered during each [`record_panic`](Self::record_panic)
    /// step (each poll of a [`Timed`]), closed with the operation's verdict when it ended
    /// (see the [module docs](self)).
    pub fn in_span(mut self, span: Span) -> Self {
        if let Some(running) = &mut self.running {
            running.span = boxed(span);
        }
        self
    }

    /// The operation's span while it runs; a disabled span once it ended or if it has none.
    /// For work the caller polls itself (a handler awaited beside a guard), `.instrument` it
    /// with a clone of this span.
    pub fn span(&self) -> &Span {
        static NONE: Span = Span::none();
        self.running
            .as_ref()
            .and_then(|running| running.span.as_deref())
            .unwrap_or(&NONE)
    }

    /// Ends the operation with `output`.
    pub fn complete(mut self, output: &T) {
        self.end_with(Ending::Completed(output));
    }

    /// Ends the operation as `ending`.
    pub fn end(mut self, ending: Ending<'_, T>) {
        self.end_with(ending);
    }

    /// Runs `step` (one poll of the timed operation, say): if it panics, the operation ends
    /// as [`Ending::Panicked`] while the panic unwinds on, unchanged, with its payload.
    ///
    /// The panic is never caught: a guard on the stack sees it as the stack unwinds through
    /// `step`'s caller (the guard lives only while `step` runs, so the panic is `step`'s own),
    /// which costs nothing on the path without a panic.
    ///
    /// The operation's span, if it has one, is entered while `step` runs.
    #[inline]
    pub fn record_panic<O>(&mut self, step: impl FnOnce() -> O) -> O {
        /// Ends the timer as panicked if dropped while the thread unwinds.
        struct Unwinding<'a, T, R: Finish<T>>(&'a mut Timer<T, R>);

        impl<T, R: Finish<T>> Drop for Unwinding<'_, T, R> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.end_with(Ending::Panicked);
                }
            }
        }

        let guard = Unwinding(self);
        let output = {
            // Dropped before `guard`, so a panic leaves the span before it is closed.
            let _entered = guard
                .0
                .running
                .as_ref()
                .and_then(|running| running.span.as_deref())
                .map(Span::enter);
            step()
        };
        // Returned: no panic to record.
        std::mem::forget(guard);
        output
    }

    /// The time since the timer started, or zero once it ended.
    pub fn elapsed(&self) -> Duration {
        self.running
            .as_ref()
            .map_or(Duration::ZERO, |running| running.start.elapsed())
    }

    /// Ends the operation as `ending`, unless it ended already.
    fn end_with(&mut self, ending: Ending<'_, T>) {
        if let Some(running) = self.running.take() {
            let elapsed = running.start.elapsed();
            if let Some(span) = running.span.as_deref().filter(|span| !span.is_disabled()) {
                if let Some(error_type) = running.finish.error_type(&ending) {
                    span.record(crate::span::STATUS_CODE, "error");
                    span.record(crate::naming::ERROR_TYPE, error_type.as_ref());
                }
                running.finish.record_span(span, &ending);
            }
            running.finish.finish(elapsed, ending);
            // The gauge comes down only after the run is recorded, so a scrape never sees a
            // run that is neither active nor counted.
            drop(running.guard);
        }
    }
}

impl<T, R: Finish<T>> Drop for Timer<T, R> {
    fn drop(&mut self) {
        self.end_with(Ending::Cancelled);
    }
}

impl<T, R: Finish<T>> fmt::Debug for Timer<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("ended", &self.running.is_none())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// A future that times another and reports how it ended. See the [module docs](self).
    ///
    /// The clock starts when the `Timed` is created.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before the inner future returned drops that future first, then records
    /// the run as [`Ending::Cancelled`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Timed<F, R>
    where
        F: Future,
        R: Finish<F::Output>,
    {
        #[pin]
        inner: F,
        timer: Timer<F::Output, R>,
    }
}

impl<F, R> Timed<F, R>
where
    F: Future,
    R: Finish<F::Output>,
{
    /// Wraps `inner`, starting the clock now; `finish` runs once `inner` ended.
    pub fn new(inner: F, finish: R) -> Self {
        Self::new_at(inner, finish, clock::now())
    }

    /// Wraps `inner`, timed from `start` (see [`Timer::start_at`]).
    pub fn new_at(inner: F, finish: R, start: Instant) -> Self {
        Self {
            inner,
            timer: Timer::start_at(finish, start),
        }
    }

    /// Holds `guard` until the future ended (released right after the finish ran).
    pub fn with_gauge(self, guard: GaugeGuard) -> Self {
        Self {
            inner: self.inner,
            timer: self.timer.with_gauge(guard),
        }
    }

    /// Gives the future its span (see [`Timer::in_span`]): entered on every poll, closed with
    /// the verdict when the future ended.
    pub fn in_span(self, span: Span) -> Self {
        Self {
            inner: self.inner,
            timer: self.timer.in_span(span),
        }
    }

    /// The future's span while it runs (see [`Timer::span`]).
    pub fn span(&self) -> &Span {
        self.timer.span()
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

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let output = std::task::ready!(this.timer.record_panic(|| inner.poll(cx)));
        this.timer.end_with(Ending::Completed(&output));
        Poll::Ready(output)
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
            .field("finished", &self.timer.running.is_none())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

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
    fn a_timer_ends_once_when_told_or_on_drop() {
        let log = Log::default();
        let timer: Timer<Result<(), ()>, _> = Timer::start(log.clone());
        timer.complete(&Err(()));
        drop(Timer::<Result<(), ()>, _>::start(log.clone()));
        let mut stepped: Timer<(), _> = Timer::start(log.clone());
        let payload = catch_unwind(AssertUnwindSafe(|| {
            stepped.record_panic(|| std::panic::panic_any(7_u8));
        }))
        .unwrap_err();
        assert_eq!(payload.downcast_ref::<u8>(), Some(&7));
        drop(stepped);
        assert_eq!(
            log.outcomes(),
            [Outcome::Error, Outcome::Cancelled, Outcome::Panic]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn durations_follow_the_runtime_clock() {
        let log = Log::default();
        Timed::new(tokio::time::sleep(Duration::from_secs(45)), log.clone()).await;
        let elapsed = log.0.lock().unwrap()[0].0;
        assert!(
            elapsed >= Duration::from_secs(45) && elapsed < Duration::from_millis(45_010),
            "{elapsed:?}"
        );
    }

    // A gauge held through `with_gauge` on every path, as a scrape shows it, is tested in the
    // workspace's tests/ crate (`gauge_guards.rs`): botscope-testkit builds on this crate.
}
