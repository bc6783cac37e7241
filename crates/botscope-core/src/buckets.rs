//! Histogram bucket boundaries shared by every botscope crate.

/// Default histogram buckets in seconds, the same as the Go bot's Prometheus defaults:
/// `[.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10]`.
///
/// Always pass bounds to an OpenTelemetry histogram: without them the SDK uses its own
/// defaults (0 to 10,000), which are meant for milliseconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of interaction response and command handler times, in seconds: fine from 50 ms to
/// Discord's 3-second deadline for an interaction's first response, and on past it, so
/// quantiles around the deadline can be read and late answers still land in a bucket.
pub const INTERACTION_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 10.0,
];

/// [`DEFAULT_BUCKETS`] as the `Vec` that `HistogramBuilder::with_boundaries` takes.
pub fn default_buckets() -> Vec<f64> {
    DEFAULT_BUCKETS.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_strictly_increasing() {
        assert!(DEFAULT_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(INTERACTION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(
            INTERACTION_BUCKETS.contains(&3.0),
            "the response deadline is a bound"
        );
        assert_eq!(default_buckets().len(), 11);
    }
}
