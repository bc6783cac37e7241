//! Metric names, units and the shared instruments of the Discord REST metrics.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use botscope_core::LabelCap;
use botscope_core::buckets::default_buckets;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge, ObservableUpDownCounter};
use opentelemetry::{KeyValue, StringValue, Value};
use tokio::time::Instant;

use crate::route;

/// Counter `N_discord_api_requests_total{endpoint,method,status_code}`.
pub const REQUESTS: &str = "discord_api_requests";
/// Histogram `N_discord_api_request_duration_seconds{endpoint,method}`: time to response head.
pub const REQUEST_DURATION: &str = "discord_api_request_duration";
/// Up/down counter `N_discord_api_requests_in_flight`.
pub const REQUESTS_IN_FLIGHT: &str = "discord_api_requests_in_flight";
/// Counter `N_discord_api_ratelimited_total{endpoint,scope}`.
pub const RATELIMITED: &str = "discord_api_ratelimited";
/// Gauge `N_discord_api_invalid_requests`: 401, 403 and non-shared 429 in the last 10 minutes.
pub const INVALID_REQUESTS: &str = "discord_api_invalid_requests";
/// Histogram `N_discord_api_ratelimit_wait_seconds{endpoint}`: time queued for a bucket.
pub const RATELIMIT_WAIT: &str = "discord_api_ratelimit_wait";
/// The unit of both histograms.
pub const SECONDS: &str = "s";

/// The `status_code` value of a transport failure.
pub const STATUS_ERROR: &str = "error";
/// The `status_code` value of a timeout.
pub const STATUS_TIMEOUT: &str = "timeout";

/// The window of [`INVALID_REQUESTS`]: Discord bans an IP after 10,000 in 10 minutes.
pub const INVALID_WINDOW: Duration = Duration::from_secs(600);

pub(crate) const ENDPOINT: &str = "endpoint";
pub(crate) const METHOD: &str = "method";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const SCOPE: &str = "scope";

/// The instruments of [`DiscordMetricsLayer`](crate::DiscordMetricsLayer), built once.
pub(crate) struct Instruments {
    pub(crate) requests: Counter<u64>,
    pub(crate) duration: Histogram<f64>,
    pub(crate) in_flight: Arc<AtomicI64>,
    pub(crate) ratelimited: Counter<u64>,
    pub(crate) invalid: Arc<SlidingWindow>,
    pub(crate) endpoints: LabelCap,
    _invalid_gauge: ObservableGauge<u64>,
    _in_flight_gauge: ObservableUpDownCounter<i64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter, endpoint_cap: usize) -> Self {
        let invalid = Arc::new(SlidingWindow::new());
        let observed = Arc::clone(&invalid);
        let in_flight = Arc::new(AtomicI64::new(0));
        let observed_in_flight = Arc::clone(&in_flight);
        Self {
            requests: meter
                .u64_counter(REQUESTS)
                .with_description("Discord REST requests by endpoint template, method and status")
                .build(),
            duration: meter
                .f64_histogram(REQUEST_DURATION)
                .with_description("Time from sending a Discord REST request to its response head")
                .with_unit(SECONDS)
                .with_boundaries(default_buckets())
                .build(),
            // An atomic read at collection time: two OpenTelemetry adds per request would
            // cost more than the rest of the layer.
            _in_flight_gauge: meter
                .i64_observable_up_down_counter(REQUESTS_IN_FLIGHT)
                .with_description("Discord REST requests waiting for their response head")
                .with_callback(move |observer| {
                    observer.observe(observed_in_flight.load(Ordering::Relaxed), &[]);
                })
                .build(),
            in_flight,
            ratelimited: meter
                .u64_counter(RATELIMITED)
                .with_description("Discord REST 429 responses by endpoint and ratelimit scope")
                .build(),
            _invalid_gauge: meter
                .u64_observable_gauge(INVALID_REQUESTS)
                .with_description(
                    "401, 403 and non-shared 429 responses in the last 10 minutes (ban at 10,000)",
                )
                .with_callback(move |observer| observer.observe(observed.count(), &[]))
                .build(),
            invalid,
            endpoints: LabelCap::new(endpoint_cap),
        }
    }

    /// The capped `endpoint` attribute of a request.
    pub(crate) fn endpoint(&self, method: &http::Method, path: &str) -> StringValue {
        thread_local! {
            static BUFFER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => {
                route::template_into(method, path, &mut buffer);
                self.endpoints.admit(&buffer)
            }
            Err(_) => self.endpoints.admit(&route::template(method, path)),
        })
    }
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instruments")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The `status_code` value of a status, without allocating for the common ones.
pub(crate) fn status_value(status: http::StatusCode) -> Value {
    let known = match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return Value::from(other.to_string()),
    };
    Value::from(known)
}

/// One request in flight: counted up on creation, down on drop (completion, cancellation or
/// panic alike).
pub(crate) struct InFlightGuard(Arc<AtomicI64>);

impl InFlightGuard {
    pub(crate) fn new(count: &Arc<AtomicI64>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// Events per second over the last [`INVALID_WINDOW`], in a ring of per-second atomics.
///
/// Each slot holds the second it counts and its count; a slot whose second is older than the
/// window is stale and reads as zero. Recording and reading take no lock.
pub(crate) struct SlidingWindow {
    start: Instant,
    seconds: Box<[AtomicU64]>,
    counts: Box<[AtomicU32]>,
}

impl SlidingWindow {
    pub(crate) fn new() -> Self {
        let slots = INVALID_WINDOW.as_secs() as usize;
        Self {
            start: Instant::now(),
            // Second 0 is a real second: mark empty slots with u64::MAX instead.
            seconds: (0..slots).map(|_| AtomicU64::new(u64::MAX)).collect(),
            counts: (0..slots).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn now_second(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_secs()
    }

    /// Counts one event now.
    pub(crate) fn record(&self) {
        let second = self.now_second();
        let index = (second % self.seconds.len() as u64) as usize;
        let held = self.seconds[index].load(Ordering::Acquire);
        if held != second {
            // The first event of a new second claims the slot; a racing event of the same
            // second that lost the exchange only adds to the fresh count.
            if self.seconds[index]
                .compare_exchange(held, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.counts[index].store(0, Ordering::Release);
            }
        }
        self.counts[index].fetch_add(1, Ordering::AcqRel);
    }

    /// Events in the last [`INVALID_WINDOW`].
    pub(crate) fn count(&self) -> u64 {
        let now = self.now_second();
        let window = self.seconds.len() as u64;
        self.seconds
            .iter()
            .zip(self.counts.iter())
            .filter(|(second, _)| {
                let second = second.load(Ordering::Acquire);
                second != u64::MAX && second <= now && now - second < window
            })
            .map(|(_, count)| u64::from(count.load(Ordering::Acquire)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn window_forgets_after_ten_minutes() {
        let window = SlidingWindow::new();
        window.record();
        window.record();
        tokio::time::advance(Duration::from_secs(300)).await;
        window.record();
        assert_eq!(window.count(), 3);
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(window.count(), 1);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(window.count(), 0);
        // A slot reused a full window later starts from zero.
        window.record();
        assert_eq!(window.count(), 1);
    }

    #[test]
    fn common_status_codes_are_static() {
        assert_eq!(status_value(http::StatusCode::OK).as_str(), "200");
        assert_eq!(status_value(http::StatusCode::IM_A_TEAPOT).as_str(), "418");
    }
}
