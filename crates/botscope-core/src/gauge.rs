//! Drop-safe guards for gauges that go up and down.
//!
//! An in-flight or active gauge that is decremented by hand goes wrong the first time a
//! future is cancelled or a task panics between the increment and the decrement. A
//! [`GaugeGuard`] adds one when it is created and subtracts it when it is dropped, which
//! happens on every path out of the scope that holds it. It is the one guard of every
//! botscope gauge: jobs in progress, REST requests in flight, voice connections.
//!
//! The guard moves a *bound* up/down counter: the series is looked up once, when it is bound,
//! and each guard then costs two atomic adds.
//!
//! ```
//! use botscope_core::GaugeGuard;
//! use opentelemetry::KeyValue;
//!
//! let meter = botscope_core::meter::global_meter("example", "0.0.0");
//! let active = meter
//!     .i64_up_down_counter("scheduler_active_jobs")
//!     .build()
//!     .bind(&[KeyValue::new("handler_type", "cleanup")]);
//!
//! let guard = GaugeGuard::new(&active);
//! // ... the job runs; if its future is dropped here, the gauge still comes back down.
//! drop(guard);
//! ```

use std::fmt;

use opentelemetry::metrics::BoundUpDownCounter;

/// Adds one to a bound up/down counter now and subtracts it on drop. See the [module
/// docs](self).
#[must_use = "the gauge goes back down as soon as the guard is dropped"]
pub struct GaugeGuard {
    gauge: BoundUpDownCounter<i64>,
}

impl GaugeGuard {
    /// Increments `gauge`; the returned guard decrements it on drop.
    pub fn new(gauge: &BoundUpDownCounter<i64>) -> Self {
        gauge.add(1);
        Self {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.add(-1);
    }
}

impl fmt::Debug for GaugeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GaugeGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::TestMetrics;
    use opentelemetry::KeyValue;

    use super::*;

    static_assertions::assert_impl_all!(GaugeGuard: Send, Sync);

    #[test]
    fn guard_brings_the_gauge_back_on_drop_and_on_panic() {
        let metrics = TestMetrics::new("t");
        let counter = metrics
            .meter()
            .i64_up_down_counter("active")
            .build()
            .bind(&[KeyValue::new("k", "v")]);
        let current = || metrics.scrape().value("t_active", &[("k", "v")]);

        let a = GaugeGuard::new(&counter);
        let b = GaugeGuard::new(&counter);
        assert_eq!(current(), Some(2.0));
        drop(a);
        assert_eq!(current(), Some(1.0));

        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = GaugeGuard::new(&counter);
            panic!("job failed");
        }));
        assert!(result.is_err());
        assert_eq!(current(), Some(1.0));
        drop(b);
        assert_eq!(current(), Some(0.0));
    }
}
