//! Durations counted on the query path and handed to the OpenTelemetry histogram when a
//! reader collects.
//!
//! A histogram record in the SDK goes through two dynamic calls, a vector of measures, a
//! bounds search over `f64` and a mutex in a shared tracker; on a query of a few microseconds
//! that was most of the wrapper's cost. Here a record takes a lock that only records of the same
//! series share and adds to one bucket, and the collect callback takes what came in since the last collect and
//! replays it into the SDK histogram:
//!
//! - every value replayed for a bucket lies inside that bucket, so bucket counts and the count
//!   are exact;
//! - the smallest and the largest duration are replayed as they were, so `min` and `max` are
//!   exact;
//! - the others are replayed at their mean, some a nanosecond above it, so the sum is exact to
//!   the nanosecond.
//!
//! The replay is exact for the bounds it was built with ([`DEFAULT_BUCKETS`]); a view that
//! re-buckets the instrument sees each default bucket's other values at their mean.
//!
//! [`DEFAULT_BUCKETS`]: botscope_core::buckets::DEFAULT_BUCKETS

use std::sync::{Mutex, PoisonError};
#[cfg(test)]
use std::time::Duration;

use botscope_core::buckets::DEFAULT_BUCKETS;
use opentelemetry::metrics::BoundHistogram;

const BOUNDS: usize = DEFAULT_BUCKETS.len();
const NANOS_PER_SECOND: f64 = 1e9;

/// [`DEFAULT_BUCKETS`] in nanoseconds. A bucket holds the durations up to and including its
/// bound, as in OpenTelemetry.
const BOUNDS_NS: [u64; BOUNDS] = {
    let mut ns = [0; BOUNDS];
    let mut i = 0;
    while i < BOUNDS {
        // Exact: every default bound is a whole number of microseconds.
        ns[i] = (DEFAULT_BUCKETS[i] * 1e6) as u64 * 1_000;
        i += 1;
    }
    ns
};

/// What one series recorded since the last drain.
#[derive(Debug, Clone, Copy)]
struct Window {
    counts: [u64; BOUNDS + 1],
    nanos: [u64; BOUNDS + 1],
    min: u64,
    max: u64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            counts: [0; BOUNDS + 1],
            nanos: [0; BOUNDS + 1],
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The durations of one series since the last [`drain`](Self::drain).
#[derive(Debug, Default)]
pub(crate) struct DurationCells(Mutex<Window>);

impl DurationCells {
    /// Counts `duration`.
    #[cfg(test)]
    pub(crate) fn record(&self, duration: Duration) {
        self.record_nanos(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Counts a duration of `ns` nanoseconds. The lock is held for a few additions, and only
    /// records of the same series and a drain's copy take it.
    #[inline]
    pub(crate) fn record_nanos(&self, ns: u64) {
        // Queries are mostly fast: a scan from the bottom usually stops at the first bound.
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS);
        let mut window = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        window.counts[i] = window.counts[i].saturating_add(1);
        window.nanos[i] = window.nanos[i].saturating_add(ns);
        window.min = window.min.min(ns);
        window.max = window.max.max(ns);
    }

    /// Replays into `histogram` what was recorded since the last drain, and starts over.
    pub(crate) fn drain(&self, histogram: &BoundHistogram<f64>) {
        let window = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        let record = |ns: u64| histogram.record(ns as f64 / NANOS_PER_SECOND);
        let (mut min, mut max) = (Some(window.min), Some(window.max));
        for (i, (&count, &nanos)) in window.counts.iter().zip(&window.nanos).enumerate() {
            if count == 0 {
                continue;
            }
            let low = if i == 0 { 0 } else { BOUNDS_NS[i - 1] + 1 };
            let high = BOUNDS_NS.get(i).copied().unwrap_or(u64::MAX);
            let (mut count, mut nanos) = (count, nanos);
            // The extremes lie in the lowest and the highest bucket with a count; a bucket
            // of one value holds both, and replays it once.
            for extreme in [&mut min, &mut max] {
                if count > 0
                    && let Some(ns) = extreme.take_if(|ns| (low..=high).contains(ns))
                {
                    record(ns);
                    count -= 1;
                    nanos = nanos.saturating_sub(ns);
                }
            }
            let Some(mean) = nanos.checked_div(count) else {
                continue;
            };
            // The other values all lie in the bucket, so their mean does too, and so does the
            // mean plus one when it is below the top. The clamp only guards a sum that
            // saturated.
            let mean = mean.clamp(low, high);
            let above = if mean < high { nanos % count } else { 0 };
            for k in 0..count {
                record(if k < above { mean + 1 } else { mean });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
    use opentelemetry_sdk::metrics::reader::MetricReader;
    use opentelemetry_sdk::metrics::{
        InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
    };
    use proptest::prelude::*;

    use super::*;

    /// A manual reader the test keeps a handle on.
    #[derive(Debug, Clone)]
    struct Reader(Arc<ManualReader>);

    impl MetricReader for Reader {
        fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
            self.0.register_pipeline(pipeline);
        }
        fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
            self.0.collect(rm)
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.force_flush()
        }
        fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
            self.0.shutdown_with_timeout(timeout)
        }
        fn temporality(&self, kind: InstrumentKind) -> Temporality {
            self.0.temporality(kind)
        }
    }

    /// What the SDK holds for the one histogram `d`: bucket counts, count, sum, min, max.
    #[derive(Debug, PartialEq)]
    struct Point {
        buckets: Vec<u64>,
        count: u64,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
    }

    struct Sdk {
        reader: Reader,
        histogram: opentelemetry::metrics::Histogram<f64>,
        _provider: SdkMeterProvider,
    }

    impl Sdk {
        fn new() -> Self {
            let reader = Reader(Arc::new(ManualReader::builder().build()));
            let provider = SdkMeterProvider::builder()
                .with_reader(reader.clone())
                .build();
            let histogram = provider
                .meter("t")
                .f64_histogram("d")
                .with_boundaries(botscope_core::buckets::default_buckets())
                .build();
            Self {
                reader,
                histogram,
                _provider: provider,
            }
        }

        fn point(&self) -> Option<Point> {
            let mut rm = ResourceMetrics::default();
            self.reader.collect(&mut rm).ok()?;
            let metric = rm.scope_metrics().flat_map(|s| s.metrics()).next()?;
            let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                return None;
            };
            let p = h.data_points().next()?;
            Some(Point {
                buckets: p.bucket_counts().collect(),
                count: p.count(),
                sum: p.sum(),
                min: p.min(),
                max: p.max(),
            })
        }
    }

    /// What the SDK shows for `values` recorded straight into it.
    fn direct(values: &[u64]) -> Option<Point> {
        let sdk = Sdk::new();
        for &ns in values {
            sdk.histogram.record(ns as f64 / NANOS_PER_SECOND, &[]);
        }
        sdk.point()
    }

    /// The same values through the cells, drained after each chunk of the given sizes.
    fn buffered(values: &[u64], chunks: &[usize]) -> Option<Point> {
        let sdk = Sdk::new();
        let bound = sdk.histogram.bind(&[]);
        let cells = DurationCells::default();
        let mut rest = values;
        for &size in chunks.iter().cycle() {
            let (chunk, more) = rest.split_at(size.min(rest.len()));
            for &ns in chunk {
                cells.record_nanos(ns);
            }
            cells.drain(&bound);
            rest = more;
            if rest.is_empty() {
                break;
            }
        }
        sdk.point()
    }

    /// Everything exact; the sum to the rounding of adding seconds in another order.
    fn assert_same(direct: Option<Point>, buffered: Option<Point>) {
        let (Some(d), Some(b)) = (direct, buffered) else {
            panic!("no histogram point");
        };
        assert_eq!(
            (&d.buckets, d.count, d.min, d.max),
            (&b.buckets, b.count, b.min, b.max)
        );
        assert!(
            (d.sum - b.sum).abs() <= 1e-12 * d.sum.max(1.0) * d.count as f64,
            "sum {} against {}",
            d.sum,
            b.sum
        );
    }

    #[test]
    fn bounds_in_nanoseconds_match_the_default_buckets() {
        for (ns, s) in BOUNDS_NS.iter().zip(DEFAULT_BUCKETS) {
            assert_eq!(*ns as f64 / NANOS_PER_SECOND, s);
        }
    }

    #[test]
    fn a_drain_with_nothing_recorded_records_nothing() {
        let sdk = Sdk::new();
        DurationCells::default().drain(&sdk.histogram.bind(&[]));
        assert_eq!(sdk.point(), None);
    }

    #[test]
    fn values_on_the_bounds_land_in_the_same_buckets() {
        let mut values: Vec<u64> = BOUNDS_NS.to_vec();
        values.extend(BOUNDS_NS.iter().map(|b| b + 1));
        values.extend([0, 1, 20_000_000_000]);
        assert_same(direct(&values), buffered(&values, &[5]));
    }

    #[test]
    fn one_value_per_collect_is_replayed_once() {
        // a single value is both the minimum and the maximum of its collect
        let values = [
            4_000_000, 1_000_000, 2_000_000, 3_000_000, 1_000_000, 1_000_000, 1_000_000,
        ];
        assert_same(direct(&values), buffered(&values, &[1, 2, 1, 3]));
    }

    #[test]
    fn durations_are_counted_in_the_bucket_of_their_length() {
        let sdk = Sdk::new();
        let cells = DurationCells::default();
        cells.record(Duration::from_millis(7));
        cells.record(Duration::from_secs(11));
        cells.drain(&sdk.histogram.bind(&[]));
        let point = sdk.point().unwrap_or_else(|| panic!("no point"));
        assert_eq!(point.buckets, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!((point.min, point.max), (Some(0.007), Some(11.0)));
    }

    proptest! {
        #[test]
        fn replay_matches_recording_directly(
            values in prop::collection::vec(
                prop_oneof![0u64..20_000_000, 0u64..20_000_000_000, Just(5_000_000u64)],
                1..200,
            ),
            chunks in prop::collection::vec(1usize..40, 1..10),
        ) {
            assert_same(direct(&values), buffered(&values, &chunks));
        }
    }

    #[test]
    fn records_racing_drains_lose_nothing() {
        let (sdk, all) = (Sdk::new(), Sdk::new());
        let bound = sdk.histogram.bind(&[]);
        let cells = DurationCells::default();
        let per_thread = 20_000u64;
        let value = |t: u64, i: u64| 1_000 + (i * 7_919 + t) % 30_000_000;
        std::thread::scope(|s| {
            for t in 0..2 {
                let cells = &cells;
                s.spawn(move || {
                    for i in 0..per_thread {
                        cells.record_nanos(value(t, i));
                    }
                });
            }
            let (cells, bound) = (&cells, &bound);
            s.spawn(move || {
                for _ in 0..200 {
                    cells.drain(bound);
                }
            });
        });
        cells.drain(&bound);
        for t in 0..2 {
            for i in 0..per_thread {
                all.histogram
                    .record(value(t, i) as f64 / NANOS_PER_SECOND, &[]);
            }
        }
        assert_same(all.point(), sdk.point());
    }
}
