//! Runtime health: how late a botscope task wakes up, and how busy each Tokio worker is.
//!
//! | metric | labels |
//! |---|---|
//! | `N_runtime_lag_seconds` | — (histogram, buckets 1 ms to 10 s) |
//! | `N_runtime_worker_busy_ratio` | `worker` (`0` … `num_workers − 1`) |
//!
//! **Lag.** A probe task sleeps for a fixed period (100 ms by default) and records how much
//! later than asked it woke up. A handler that blocks a worker (a synchronous file or DNS
//! call, a long loop, a lock held across work) delays every task queued behind it, the probe
//! included: on a current-thread runtime always, on a multi-thread runtime when every worker
//! is blocked (or the probe happens to be queued on the blocked one).
//!
//! **Busy ratio.** One blocked worker out of several need not delay the probe: another
//! worker runs it. What shows that worker is Tokio's stable per-worker metrics: each scrape
//! reads `worker_total_busy_duration` and `worker_park_unpark_count` and reports the share
//! of the time since the previous scrape that the worker spent busy. Tokio publishes a
//! worker's figures when it parks and when it unparks, so a worker blocked inside a task
//! publishes nothing until it returns; its park/unpark count is then even (running) and
//! unchanged since the previous scrape, which means it has not parked for the whole interval:
//! its ratio reads 1.
//!
//! The size of the blocking pool is not among Tokio's stable metrics
//! (`num_blocking_threads` needs `--cfg tokio_unstable`), so it is not reported.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use botscope_core::clock::{self, Instant};
use botscope_core::outcome::{Ending, Finish, Timer};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tokio::runtime::{Handle, RuntimeMetrics};
use tokio::task::AbortHandle;

/// Instrument names (the exporter adds the namespace and unit suffixes).
pub(crate) mod names {
    pub(crate) const LAG: &str = "runtime_lag";
    pub(crate) const WORKER_BUSY_RATIO: &str = "runtime_worker_busy_ratio";
}

/// How often the lag probe wakes up unless told otherwise.
pub const DEFAULT_LAG_PERIOD: Duration = Duration::from_millis(100);

/// Buckets of `N_runtime_lag_seconds`: from 1 ms (a healthy runtime) to 10 s.
pub const LAG_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The running lag probe; dropping it stops the probe.
#[derive(Debug)]
pub(crate) struct LagProbe(AbortHandle);

impl Drop for LagProbe {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records how much longer than its period one sleep of the probe took.
struct Lateness {
    histogram: Histogram<f64>,
    period: Duration,
}

impl Finish<()> for Lateness {
    fn finish(self, elapsed: Duration, ending: Ending<'_, ()>) {
        // A probe aborted mid-sleep (the telemetry stopped) measured nothing.
        if ending.is_completed() {
            let late = elapsed.saturating_sub(self.period);
            self.histogram.record(late.as_secs_f64(), &[]);
        }
    }
}

/// Starts the lag probe on `runtime`: it wakes every `period` (not zero) and records how
/// late it woke. The probe costs one timer wake-up and one histogram record per period.
pub(crate) fn spawn_lag_probe(meter: &Meter, runtime: &Handle, period: Duration) -> LagProbe {
    let histogram = meter
        .f64_histogram(names::LAG)
        .with_description("How much later than asked a botscope task woke up: time the runtime could not run ready tasks")
        .with_unit("s")
        .with_boundaries(LAG_BUCKETS.to_vec())
        .build();
    let task = runtime.spawn(async move {
        loop {
            let timer = Timer::start(Lateness {
                histogram: histogram.clone(),
                period,
            });
            tokio::time::sleep(period).await;
            timer.complete(&());
        }
    });
    LagProbe(task.abort_handle())
}

/// What a worker had published at the previous reading.
#[derive(Clone, Copy)]
struct Reading {
    busy: Duration,
    park_unpark: u64,
    at: Instant,
}

impl Reading {
    fn take(metrics: &RuntimeMetrics, worker: usize, at: Instant) -> Self {
        Self {
            busy: metrics.worker_total_busy_duration(worker),
            park_unpark: metrics.worker_park_unpark_count(worker),
            at,
        }
    }

    /// The share of the time since `self` that the worker was busy, by `now`'s figures.
    fn busy_ratio(&self, now: &Self) -> f64 {
        // Even: running. Unchanged: it has not parked (nor published its busy time) since.
        if now.park_unpark == self.park_unpark && now.park_unpark.is_multiple_of(2) {
            return 1.0;
        }
        let wall = now.at.saturating_duration_since(self.at);
        if wall.is_zero() {
            return 0.0;
        }
        let busy = now.busy.saturating_sub(self.busy);
        (busy.as_secs_f64() / wall.as_secs_f64()).clamp(0.0, 1.0)
    }
}

/// Registers `N_runtime_worker_busy_ratio`, read from `runtime`'s stable metrics at every
/// collection, relative to the previous one (the first, to now).
pub(crate) fn register_busy_ratio(meter: &Meter, runtime: Handle) {
    let now = clock::now();
    let metrics = runtime.metrics();
    let workers = metrics.num_workers();
    let previous: Vec<Reading> = (0..workers)
        .map(|worker| Reading::take(&metrics, worker, now))
        .collect();
    let labels: Vec<[KeyValue; 1]> = (0..workers)
        .map(|worker| [KeyValue::new("worker", worker.to_string())])
        .collect();
    let previous = Arc::new(Mutex::new(previous));
    meter
        .f64_observable_gauge(names::WORKER_BUSY_RATIO)
        .with_description("Share of the time since the previous scrape each Tokio worker spent busy; 1 for a worker that has not parked since")
        .with_callback(move |observer| {
            let metrics = runtime.metrics();
            let now = clock::now();
            // Readings hold no invariant a panic elsewhere could break halfway.
            let mut previous = previous.lock().unwrap_or_else(PoisonError::into_inner);
            for (worker, (last, labels)) in previous.iter_mut().zip(&labels).enumerate() {
                let reading = Reading::take(&metrics, worker, now);
                observer.observe(last.busy_ratio(&reading), labels);
                *last = reading;
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(busy_ms: u64, park_unpark: u64, at: Instant) -> Reading {
        Reading {
            busy: Duration::from_millis(busy_ms),
            park_unpark,
            at,
        }
    }

    #[test]
    fn busy_ratio_reads_what_the_worker_published() {
        let start = clock::now();
        let later = start + Duration::from_secs(10);
        // parked the whole interval
        assert_eq!(reading(0, 3, start).busy_ratio(&reading(0, 3, later)), 0.0);
        // running, never parked since the previous reading: blocked or busy throughout
        assert_eq!(reading(0, 4, start).busy_ratio(&reading(0, 4, later)), 1.0);
        // parked and unparked: the busy time it published, over the interval
        assert_eq!(
            reading(1_000, 4, start).busy_ratio(&reading(3_500, 9, later)),
            0.25
        );
        // busy time published late can exceed the interval: never above 1
        assert_eq!(
            reading(0, 4, start).busy_ratio(&reading(30_000, 6, later)),
            1.0
        );
    }
}
