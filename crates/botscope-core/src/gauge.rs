//! Drop-safe guards for gauges that go up and down.
//!
//! An in-flight or active gauge that is decremented by hand goes wrong the first time a
//! future is cancelled or a task panics between the increment and the decrement. A
//! [`GaugeGuard`] adds one when it is created and subtracts it when it is dropped, which
//! happens on every path out of the scope that holds it.
//!
//! ```
//! use botscope_core::GaugeGuard;
//! use opentelemetry::KeyValue;
//!
//! let meter = botscope_core::meter::global_meter("example", "0.0.0");
//! let active = meter.i64_up_down_counter("scheduler_active_jobs").build();
//!
//! let guard = GaugeGuard::new(&active, [KeyValue::new("handler_type", "cleanup")]);
//! // ... the job runs; if its future is dropped here, the gauge still comes back down.
//! drop(guard);
//! ```

use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::UpDownCounter;

/// Adds one to an up/down counter now and subtracts it on drop. See the [module
/// docs](self).
#[must_use = "the gauge goes back down as soon as the guard is dropped"]
pub struct GaugeGuard {
    counter: UpDownCounter<i64>,
    attributes: Arc<[KeyValue]>,
}

impl GaugeGuard {
    /// Increments `counter` under `attributes`; the returned guard decrements it on drop.
    pub fn new(counter: &UpDownCounter<i64>, attributes: impl Into<Arc<[KeyValue]>>) -> Self {
        let attributes = attributes.into();
        counter.add(1, &attributes);
        Self {
            counter: counter.clone(),
            attributes,
        }
    }

    /// The attributes the guard was counted under.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.counter.add(-1, &self.attributes);
    }
}

impl fmt::Debug for GaugeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GaugeGuard")
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    static_assertions::assert_impl_all!(GaugeGuard: Send, Sync);

    fn current(exporter: &InMemoryMetricExporter, provider: &SdkMeterProvider) -> i64 {
        provider.force_flush().expect("flush");
        let batches = exporter.get_finished_metrics().expect("metrics");
        let last = batches.last().expect("one export");
        let metric = last
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == "active")
            .expect("metric exported");
        match metric.data() {
            AggregatedMetrics::I64(MetricData::Sum(sum)) => {
                sum.data_points().map(|p| p.value()).sum()
            }
            other => panic!("unexpected data {other:?}"),
        }
    }

    #[test]
    fn guard_brings_the_gauge_back_on_drop_and_on_panic() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let counter = provider.meter("test").i64_up_down_counter("active").build();

        let a = GaugeGuard::new(&counter, [KeyValue::new("k", "v")]);
        let b = GaugeGuard::new(&counter, [KeyValue::new("k", "v")]);
        assert_eq!(current(&exporter, &provider), 2);
        drop(a);
        assert_eq!(current(&exporter, &provider), 1);

        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = GaugeGuard::new(&counter, [KeyValue::new("k", "v")]);
            panic!("job failed");
        }));
        assert!(result.is_err());
        assert_eq!(current(&exporter, &provider), 1);
        drop(b);
        assert_eq!(current(&exporter, &provider), 0);
    }
}
