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
    use super::*;

    // What a scrape shows of the guard (down again on drop and on panic) is tested in the
    // workspace's tests/ crate (`gauge_guards.rs`): botscope-testkit builds on this crate.
    static_assertions::assert_impl_all!(GaugeGuard: Send, Sync);
}
