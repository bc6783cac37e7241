//! Metric names, units and the shared instruments of the Discord REST metrics.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use botscope_core::buckets::default_buckets;
use opentelemetry::metrics::{
    BoundHistogram, BoundUpDownCounter, Counter, Gauge, Histogram, Meter, ObservableGauge,
};
use opentelemetry::{KeyValue, Value};
use tokio::time::Instant;

use crate::session::SessionStartLimit;

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
/// Histogram `N_interaction_response_seconds`: an interaction's creation to its callback.
pub const INTERACTION_RESPONSE: &str = "interaction_response";
/// Counter `N_interaction_responses_total{outcome}`.
pub const INTERACTION_RESPONSES: &str = "interaction_responses";
/// Counter `N_interaction_followups_total{outcome}`.
pub const INTERACTION_FOLLOWUPS: &str = "interaction_followups";
/// Counter `N_clock_skew_total`: callbacks whose interaction seems created in this host's future.
pub const CLOCK_SKEW: &str = "clock_skew";
/// Counter `N_discord_api_edge_errors_total{kind}`: answers of Discord's edge, not its API
/// (see [`edge`](crate::edge)).
pub const EDGE_ERRORS: &str = "discord_api_edge_errors";
/// Counter `N_discord_api_body_errors_total{endpoint,method,kind}`: upstream bodies that
/// failed after their head (see [`body`](crate::body)).
pub const BODY_ERRORS: &str = "discord_api_body_errors";
/// Gauge `N_gateway_session_starts_remaining`, from `GET /gateway/bot` (see
/// [`session`](crate::session)).
pub const SESSION_STARTS_REMAINING: &str = "gateway_session_starts_remaining";
/// Gauge `N_gateway_session_starts_total_limit`.
pub const SESSION_STARTS_TOTAL_LIMIT: &str = "gateway_session_starts_total_limit";
/// Gauge `N_gateway_session_starts_reset_seconds`.
pub const SESSION_STARTS_RESET: &str = "gateway_session_starts_reset";
/// Gauge `N_gateway_max_concurrency`.
pub const MAX_CONCURRENCY: &str = "gateway_max_concurrency";
/// The unit of the histograms.
pub const SECONDS: &str = "s";

/// The `status_code` value of a transport failure or a service error.
pub const STATUS_ERROR: &str = "error";
/// The `status_code` value of an upstream timeout.
pub const STATUS_TIMEOUT: &str = "timeout";
/// The `status_code` value of a request the client spoiled: its body was malformed, or it hung
/// up mid-upload (the proxy's 400, marked [`ForwardErrorType::ClientBody`]).
///
/// [`ForwardErrorType::ClientBody`]: crate::ForwardErrorType::ClientBody
pub const STATUS_CLIENT_ERROR: &str = "client_error";
/// The `status_code` value of a request dropped before its response head (the caller gave up).
pub const STATUS_CANCELLED: &str = botscope_core::status::CANCELLED;
/// The `status_code` value of a request whose inner future panicked.
pub const STATUS_PANIC: &str = botscope_core::status::PANIC;

/// The window of [`INVALID_REQUESTS`]: Discord bans an IP after 10,000 in 10 minutes.
pub const INVALID_WINDOW: Duration = Duration::from_secs(600);

pub(crate) const ENDPOINT: &str = "endpoint";
pub(crate) const METHOD: &str = "method";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const SCOPE: &str = "scope";
pub(crate) const OUTCOME: &str = "outcome";
pub(crate) const KIND: &str = "kind";

/// The instruments of [`DiscordMetricsLayer`](crate::DiscordMetricsLayer), built once.
pub(crate) struct Instruments {
    pub(crate) requests: Counter<u64>,
    pub(crate) duration: Histogram<f64>,
    /// Bound once: the series has no attributes.
    pub(crate) in_flight: BoundUpDownCounter<i64>,
    pub(crate) ratelimited: Counter<u64>,
    pub(crate) invalid: Arc<SlidingWindow>,
    _invalid_gauge: ObservableGauge<u64>,
    /// Bound once: the series has no attributes.
    pub(crate) interaction_response: BoundHistogram<f64>,
    pub(crate) interaction_responses: Counter<u64>,
    pub(crate) interaction_followups: Counter<u64>,
    pub(crate) clock_skew: Counter<u64>,
    pub(crate) edge_errors: Counter<u64>,
    pub(crate) body_errors: Counter<u64>,
    session_starts_remaining: Gauge<u64>,
    session_starts_total_limit: Gauge<u64>,
    session_starts_reset: Gauge<f64>,
    max_concurrency: Gauge<u64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let invalid = Arc::new(SlidingWindow::new());
        // OpenTelemetry keeps a callback for the life of the provider: a weak reference lets
        // the window go with the last service, and a dropped layer report nothing.
        let observed = Arc::downgrade(&invalid);
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
            // A synchronous up/down counter, not an observed atomic: the SDK sums the adds of
            // every layer recording into one provider, where observations of one name would
            // overwrite each other.
            in_flight: meter
                .i64_up_down_counter(REQUESTS_IN_FLIGHT)
                .with_description("Discord REST requests waiting for their response head")
                .build()
                .bind(&[]),
            ratelimited: meter
                .u64_counter(RATELIMITED)
                .with_description("Discord REST 429 responses by endpoint and ratelimit scope")
                .build(),
            _invalid_gauge: meter
                .u64_observable_gauge(INVALID_REQUESTS)
                .with_description(
                    "401, 403 and non-shared 429 responses in the last 10 minutes (ban at 10,000)",
                )
                .with_callback(move |observer| {
                    if let Some(window) = observed.upgrade() {
                        observer.observe(window.count(), &[]);
                    }
                })
                .build(),
            invalid,
            interaction_response: meter
                .f64_histogram(INTERACTION_RESPONSE)
                .with_description(
                    "Time from an interaction's creation to the proxy forwarding its initial response",
                )
                .with_unit(SECONDS)
                .with_boundaries(botscope_core::buckets::INTERACTION_BUCKETS.to_vec())
                .build()
                .bind(&[]),
            interaction_responses: meter
                .u64_counter(INTERACTION_RESPONSES)
                .with_description("Interaction initial responses by outcome (3 s deadline)")
                .build(),
            interaction_followups: meter
                .u64_counter(INTERACTION_FOLLOWUPS)
                .with_description("Interaction follow-ups by outcome (15 minute token)")
                .build(),
            clock_skew: meter
                .u64_counter(CLOCK_SKEW)
                .with_description(
                    "Interaction callbacks whose interaction seems created after this host's now",
                )
                .build(),
            edge_errors: meter
                .u64_counter(EDGE_ERRORS)
                .with_description(
                    "Discord REST answers from its edge (Cloudflare), not its API, by kind",
                )
                .build(),
            body_errors: meter
                .u64_counter(BODY_ERRORS)
                .with_description(
                    "Discord REST answers whose body failed after the head, by endpoint, method and kind",
                )
                .build(),
            session_starts_remaining: meter
                .u64_gauge(SESSION_STARTS_REMAINING)
                .with_description("Gateway session starts left until the reset (GET /gateway/bot)")
                .build(),
            session_starts_total_limit: meter
                .u64_gauge(SESSION_STARTS_TOTAL_LIMIT)
                .with_description("Gateway session starts allowed per period (GET /gateway/bot)")
                .build(),
            session_starts_reset: meter
                .f64_gauge(SESSION_STARTS_RESET)
                .with_description(
                    "Time until the gateway session start budget resets, as of the last GET /gateway/bot",
                )
                .with_unit(SECONDS)
                .build(),
            max_concurrency: meter
                .u64_gauge(MAX_CONCURRENCY)
                .with_description("Shards that may identify per 5 s (GET /gateway/bot)")
                .build(),
        }
    }

    /// Publishes the session start budget of a `GET /gateway/bot` answer.
    pub(crate) fn record_session_starts(&self, limit: &SessionStartLimit) {
        self.session_starts_remaining.record(limit.remaining, &[]);
        self.session_starts_total_limit.record(limit.total, &[]);
        self.session_starts_reset
            .record(limit.reset_after.as_secs_f64(), &[]);
        self.max_concurrency.record(limit.max_concurrency, &[]);
    }

    /// Records the latency of a callback for interaction `id` forwarded now; whether it is
    /// late (past Discord's deadline).
    pub(crate) fn callback_latency(&self, id: u64) -> bool {
        match botscope_core::snowflake::age(id, std::time::SystemTime::now()) {
            Some(latency) => {
                self.interaction_response.record(latency.as_secs_f64());
                latency > crate::interaction::RESPONSE_DEADLINE
            }
            None => {
                self.clock_skew.add(1, &[]);
                self.interaction_response.record(0.0);
                false
            }
        }
    }
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instruments").finish_non_exhaustive()
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

pub(crate) fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// Events per second over the last [`INVALID_WINDOW`], in a ring of per-second atomics.
///
/// Each slot is one `AtomicU64`: the second it counts (plus one, so 0 means empty) in the
/// upper 32 bits, its count in the lower 32. A new second and its first event replace the
/// slot in one compare-and-swap, so no event can land in the old count between the two, and
/// a read never sees a new second with an old count. A slot whose second is older than the
/// window is stale and reads as zero. Recording and reading take no lock.
pub(crate) struct SlidingWindow {
    start: Instant,
    slots: Box<[AtomicU64]>,
}

/// A slot: `tag` (the second plus one, 0 for empty) and `count`.
const fn pack(tag: u32, count: u32) -> u64 {
    ((tag as u64) << 32) | count as u64
}

const fn unpack(slot: u64) -> (u32, u32) {
    ((slot >> 32) as u32, slot as u32)
}

impl SlidingWindow {
    pub(crate) fn new() -> Self {
        let slots = INVALID_WINDOW.as_secs() as usize;
        Self {
            start: Instant::now(),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The tag of the current second: seconds since `start`, plus one (136 years fit).
    fn now_tag(&self) -> u32 {
        let second = Instant::now()
            .saturating_duration_since(self.start)
            .as_secs();
        u32::try_from(second.saturating_add(1)).unwrap_or(u32::MAX)
    }

    /// Counts one event now.
    pub(crate) fn record(&self) {
        let tag = self.now_tag();
        let slot = &self.slots[tag as usize % self.slots.len()];
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (held, count) = unpack(current);
            let next = match held.cmp(&tag) {
                std::cmp::Ordering::Equal => pack(tag, count.saturating_add(1)),
                // The first event of a new second starts the slot afresh.
                std::cmp::Ordering::Less => pack(tag, 1),
                // A whole window passed since this event's clock read: it is out of the
                // window already.
                std::cmp::Ordering::Greater => return,
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Events in the last [`INVALID_WINDOW`].
    pub(crate) fn count(&self) -> u64 {
        let now = self.now_tag();
        let window = self.slots.len() as u64;
        self.slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Acquire)))
            .filter(|&(tag, _)| tag != 0 && tag <= now && u64::from(now - tag) < window)
            .map(|(_, count)| u64::from(count))
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

    /// Threads record while the clock crosses second after second; every event must be
    /// counted (all within one window), however the recordings interleave with a new second
    /// claiming its slot.
    #[test]
    fn no_event_is_lost_when_a_new_second_starts() {
        use std::sync::atomic::AtomicBool;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let window = {
            let _entered = runtime.enter();
            Arc::new(SlidingWindow::new())
        };
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let window = Arc::clone(&window);
                let stop = Arc::clone(&stop);
                let handle = runtime.handle().clone();
                std::thread::spawn(move || {
                    // The paused clock of the runtime, shared by every thread.
                    let _entered = handle.enter();
                    let mut recorded = 0_u64;
                    while !stop.load(Ordering::Relaxed) {
                        window.record();
                        recorded += 1;
                    }
                    recorded
                })
            })
            .collect();
        for _ in 0..500 {
            runtime.block_on(tokio::time::advance(Duration::from_secs(1)));
            std::thread::sleep(Duration::from_micros(50));
            // Scrapes in between read no stale slot either.
            let _ = window.count();
        }
        stop.store(true, Ordering::Relaxed);
        let recorded: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let counted = {
            let _entered = runtime.enter();
            window.count()
        };
        assert_eq!(counted, recorded, "{} events lost", recorded - counted);
    }

    #[test]
    fn common_status_codes_are_static() {
        assert_eq!(status_value(http::StatusCode::OK).as_str(), "200");
        assert_eq!(status_value(http::StatusCode::IM_A_TEAPOT).as_str(), "418");
    }
}
