//! Durations counted in atomics on the query path and handed to the OpenTelemetry histogram
//! when a reader collects.
//!
//! A histogram record in the SDK takes a mutex and touches half a dozen heap objects; on a
//! query that costs microseconds this was most of the wrapper's overhead. Here a record is two
//! relaxed atomic adds to one bucket cell (and a load each for the minimum and maximum), and
//! a collect callback replays what came in since the last collect into the SDK histogram:
//!
//! - every value replayed for a bucket lies inside that bucket, so bucket counts and the
//!   count are exact;
//! - the values replayed for a bucket add up to the nanoseconds recorded in it, so the sum is
//!   exact (to a nanosecond per value, carried over to the next collect);
//! - the smallest and largest durations are replayed as they were, so `min` and `max` are
//!   exact too.
//!
//! The replay is exact for the bounds it was built with ([`DEFAULT_BUCKETS`]); a view that
//! re-buckets the instrument sees each bucket's values at their mean.
//!
//! [`DEFAULT_BUCKETS`]: botscope_core::buckets::DEFAULT_BUCKETS

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
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

/// One bucket's count and nanoseconds, side by side so a record touches one cache line.
#[derive(Debug, Default)]
struct Cell {
    count: AtomicU64,
    /// Wrapping: the replay may carry a shortfall over as a negative amount.
    nanos: AtomicU64,
}

/// The durations of one series since the last [`drain`](Self::drain).
#[derive(Debug)]
pub(crate) struct DurationCells {
    cells: [Cell; BOUNDS + 1],
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for DurationCells {
    fn default() -> Self {
        Self {
            cells: Default::default(),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl DurationCells {
    /// Counts `duration`. Lock-free; never blocks on a collect.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn record(&self, duration: Duration) {
        self.record_nanos(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Counts a duration of `ns` nanoseconds.
    #[inline]
    pub(crate) fn record_nanos(&self, ns: u64) {
        // Queries are mostly fast: a scan from the bottom usually stops at the first bound.
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS);
        let cell = &self.cells[i];
        // Nanoseconds first: a drain that sees the count sees them too.
        cell.nanos.fetch_add(ns, Relaxed);
        cell.count.fetch_add(1, Release);
        if ns < self.min.load(Relaxed) {
            self.min.fetch_min(ns, Relaxed);
        }
        if ns > self.max.load(Relaxed) {
            self.max.fetch_max(ns, Relaxed);
        }
    }

    /// Replays into `histogram` what was recorded since the last drain.
    ///
    /// Safe to run beside records and other drains. A drain that sees a record's count sees
    /// its nanoseconds; one that sees only the nanoseconds spreads them over the values it
    /// replays, which at worst moves a value's worth of sum from one collect to the next.
    pub(crate) fn drain(&self, histogram: &BoundHistogram<f64>) {
        let mut min = Some(self.min.swap(u64::MAX, Relaxed)).filter(|&m| m != u64::MAX);
        let mut max = Some(self.max.swap(0, Relaxed)).filter(|&m| m != 0);
        let record = |ns: u64| histogram.record(ns as f64 / NANOS_PER_SECOND);
        for (i, cell) in self.cells.iter().enumerate() {
            let mut count = cell.count.swap(0, Acquire);
            if count == 0 {
                continue;
            }
            // Signed arithmetic in wrapping u64: a shortfall carried over is "negative".
            let mut nanos = cell.nanos.swap(0, Relaxed);
            let low = if i == 0 { 0 } else { BOUNDS_NS[i - 1] + 1 };
            let high = BOUNDS_NS.get(i).copied().unwrap_or(u64::MAX);
            for extreme in [&mut min, &mut max] {
                if count > 0
                    && let Some(ns) = extreme.take_if(|ns| (low..=high).contains(ns))
                {
                    record(ns);
                    count -= 1;
                    nanos = nanos.wrapping_sub(ns);
                }
            }
            // The rest at their mean, `above` of them a nanosecond up so the sum is exact. The
            // mean of values inside the bucket lies inside it; clamping only matters when a
            // record's nanoseconds and count met different drains.
            let total = u64::try_from(nanos as i64).unwrap_or(0);
            if let Some(mean) = total.checked_div(count) {
                let (mean, above) = match mean {
                    mean if mean < low => (low, 0),
                    mean if mean >= high => (high, 0),
                    mean => (mean, total % count),
                };
                for k in 0..count {
                    record(if k < above { mean + 1 } else { mean });
                }
                nanos = nanos.wrapping_sub(mean.wrapping_mul(count).wrapping_add(above));
            }
            if nanos != 0 {
                cell.nanos.fetch_add(nanos, Relaxed);
            }
        }
        // Extremes whose bucket had nothing this time belong to the next drain.
        if let Some(ns) = min {
            self.min.fetch_min(ns, Relaxed);
        }
        if let Some(ns) = max {
            self.max.fetch_max(ns, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::TestMetrics;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn bounds_in_nanoseconds_match_the_default_buckets() {
        for (ns, s) in BOUNDS_NS.iter().zip(DEFAULT_BUCKETS) {
            assert_eq!(*ns as f64 / NANOS_PER_SECOND, s);
        }
    }

    fn histogram(metrics: &TestMetrics) -> opentelemetry::metrics::Histogram<f64> {
        metrics
            .meter()
            .f64_histogram("d")
            .with_unit("s")
            .with_boundaries(botscope_core::buckets::default_buckets())
            .build()
    }

    /// What the SDK shows for `values` recorded straight into it.
    fn direct(values: &[u64]) -> String {
        let metrics = TestMetrics::new("t");
        let h = histogram(&metrics);
        for &ns in values {
            h.record(Duration::from_nanos(ns).as_secs_f64(), &[]);
        }
        metrics.scrape().text().to_owned()
    }

    /// The same values through the cells, drained after every `every` records.
    fn buffered(values: &[u64], every: usize) -> String {
        let metrics = TestMetrics::new("t");
        let h = histogram(&metrics).bind(&[]);
        let cells = DurationCells::default();
        for chunk in values.chunks(every.max(1)) {
            for &ns in chunk {
                cells.record(Duration::from_nanos(ns));
            }
            cells.drain(&h);
        }
        metrics.scrape().text().to_owned()
    }

    /// Bucket lines and the count are compared as text; the sum as a number, since the SDK
    /// adds floating-point seconds in a different order.
    fn assert_same(direct: &str, buffered: &str) {
        let (mut d_sum, mut b_sum) = (None, None);
        let lines = |text: &str, sum: &mut Option<f64>| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("t_d"))
                .filter_map(|l| {
                    if l.starts_with("t_d_seconds_sum") {
                        *sum = l.rsplit(' ').next().and_then(|v| v.parse().ok());
                        None
                    } else {
                        Some(l.to_owned())
                    }
                })
                .collect()
        };
        assert_eq!(lines(direct, &mut d_sum), lines(buffered, &mut b_sum));
        let (d, b) = (d_sum.unwrap_or(f64::NAN), b_sum.unwrap_or(f64::NAN));
        assert!((d - b).abs() <= 1e-9 * d.max(1.0), "sum {d} against {b}");
    }

    #[test]
    fn a_drain_with_nothing_recorded_records_nothing() {
        let metrics = TestMetrics::new("t");
        DurationCells::default().drain(&histogram(&metrics).bind(&[]));
        assert!(!metrics.scrape().text().contains("t_d_seconds"));
    }

    #[test]
    fn values_on_the_bounds_land_in_the_same_buckets() {
        let mut values: Vec<u64> = BOUNDS_NS.to_vec();
        values.extend(BOUNDS_NS.iter().map(|b| b + 1));
        values.extend([0, 1, u64::MAX / 4]);
        assert_same(&direct(&values), &buffered(&values, 5));
    }

    proptest! {
        #[test]
        fn replay_matches_recording_directly(
            values in prop::collection::vec(
                prop_oneof![0u64..20_000_000, 0u64..20_000_000_000, Just(5_000_000u64)],
                1..200,
            ),
            every in 1usize..50,
        ) {
            assert_same(&direct(&values), &buffered(&values, every));
        }
    }

    #[test]
    fn records_racing_drains_lose_nothing() {
        let metrics = TestMetrics::new("t");
        let h = histogram(&metrics).bind(&[]);
        let cells = DurationCells::default();
        let per_thread = 20_000u64;
        std::thread::scope(|s| {
            for t in 0..2 {
                let cells = &cells;
                s.spawn(move || {
                    for i in 0..per_thread {
                        cells.record(Duration::from_nanos(1_000 + (i + t) % 7_000));
                    }
                });
            }
            let (cells, h) = (&cells, &h);
            s.spawn(move || {
                for _ in 0..200 {
                    cells.drain(h);
                }
            });
        });
        cells.drain(&h);
        let scrape = metrics.scrape();
        assert_eq!(
            scrape.value("t_d_seconds_count", &[]),
            Some(2.0 * per_thread as f64)
        );
        let expected: u64 = (0..2)
            .flat_map(|t| (0..per_thread).map(move |i| 1_000 + (i + t) % 7_000))
            .sum();
        let sum = scrape.value("t_d_seconds_sum", &[]).unwrap_or(f64::NAN);
        assert!((sum - expected as f64 / 1e9).abs() < 1e-9, "{sum}");
        assert_eq!(
            scrape.value("t_d_seconds_bucket", &[("le", "0.005")]),
            Some(2.0 * per_thread as f64)
        );
    }
}
