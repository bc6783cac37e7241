//! Metric names, units and the shared instruments of the Discord REST metrics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use botscope_core::buckets::default_buckets;
use botscope_core::clock::{self, Instant};
use botscope_core::naming::{ERROR_TYPE, ERROR_TYPE_OTHER, Naming};
use http::StatusCode;
use opentelemetry::metrics::{
    BoundCounter, BoundHistogram, BoundUpDownCounter, Counter, Gauge, Histogram, Meter,
    ObservableGauge,
};
use opentelemetry::{KeyValue, StringValue, Value};

use crate::failure::{BodyErrorKind, ForwardFailure};
use crate::labels::{
    COMMON_STATUSES, ENDPOINT, HTTP_METHODS, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, KIND,
    METHOD, REASON, SCOPE, SERVER_ADDRESS, SERVER_PORT, STATUS_CANCELLED, STATUS_CLIENT_ERROR,
    STATUS_CODE, STATUS_ERROR, STATUS_PANIC, STATUS_TIMEOUT, URL_TEMPLATE, common_status, kv,
    semconv_method, status_value,
};
use crate::scope::RateLimitScope;
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
/// Up/down counter `N_discord_api_requests_queued`: requests the ratelimit layer holds back.
pub const REQUESTS_QUEUED: &str = "discord_api_requests_queued";
/// Gauge `N_discord_api_global_hold_seconds{scope}`: what is left of the hold of a global
/// (`global`) or header-less (`cloudflare`) 429.
pub const GLOBAL_HOLD: &str = "discord_api_global_hold";
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

// The OpenTelemetry semantic conventions v1.44, for `Naming::Semconv`. Checked against
// open-telemetry/semantic-conventions `model/http/metrics.yaml` (commit c2089b1b),
// `model/http/common.yaml` (commit 1ebf1557) and the buckets of `docs/http/http-metrics.md`,
// by the test `tests/semconv_names.rs` of botscope-tests.

/// Histogram `http.client.request.duration` (`s`, stable), which replaces [`REQUESTS`] and
/// [`REQUEST_DURATION`] under `Naming::Semconv`: `_count` by status is the request count.
/// Prometheus shows `http_client_request_duration_seconds`.
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// The buckets the conventions advise for [`HTTP_CLIENT_REQUEST_DURATION`], in seconds.
pub const HTTP_CLIENT_REQUEST_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The window of [`INVALID_REQUESTS`]: Discord bans an IP after 10,000 in 10 minutes.
pub const INVALID_WINDOW: Duration = Duration::from_secs(600);

/// How a request ended, as its count and duration record it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum End {
    /// A response head with this status.
    Head(StatusCode),
    /// The proxy answered itself (502/504), marked with why.
    NotForwarded(ForwardFailure),
    /// The inner service returned an error.
    Error,
    /// The inner future panicked.
    Panicked,
    /// Dropped before its response head.
    Cancelled,
}

/// The count and duration of requests, by the names of one [`Naming`].
enum RequestFamilies {
    /// `N_discord_api_requests_total{endpoint,method,status_code}` and
    /// `N_discord_api_request_duration_seconds{endpoint,method}`.
    Botscope {
        requests: Counter<u64>,
        duration: Histogram<f64>,
    },
    /// `http.client.request.duration`; `server` is `server.address` and `server.port`.
    Semconv {
        duration: Histogram<f64>,
        server: [KeyValue; 2],
    },
}

/// The instruments of [`DiscordMetricsLayer`](crate::DiscordMetricsLayer), built once.
pub(crate) struct Instruments {
    families: RequestFamilies,
    /// The bound series of the request count and duration, by endpoint.
    series: SeriesMap,
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
    body_errors: BodyErrors,
    session_starts_remaining: Gauge<u64>,
    session_starts_total_limit: Gauge<u64>,
    session_starts_reset: Gauge<f64>,
    max_concurrency: Gauge<u64>,
}

impl Instruments {
    /// `server`: the `server.address` and `server.port` of [`Naming::Semconv`]; at most
    /// `endpoints` endpoints get bound series (the layer's endpoint cap, plus `other`).
    pub(crate) fn new(
        meter: &Meter,
        naming: Naming,
        server: (StringValue, u16),
        endpoints: usize,
    ) -> Self {
        let invalid = Arc::new(SlidingWindow::new());
        // OpenTelemetry keeps a callback for the life of the provider: a weak reference lets
        // the window go with the last service, and a dropped layer report nothing.
        let observed = Arc::downgrade(&invalid);
        let families = match naming {
            Naming::Semconv => RequestFamilies::Semconv {
                duration: meter
                    .f64_histogram(HTTP_CLIENT_REQUEST_DURATION)
                    .with_description("Duration of HTTP client requests.")
                    .with_unit(SECONDS)
                    .with_boundaries(HTTP_CLIENT_REQUEST_DURATION_BUCKETS.to_vec())
                    .build(),
                server: [
                    KeyValue::new(SERVER_ADDRESS, Value::String(server.0)),
                    KeyValue::new(SERVER_PORT, i64::from(server.1)),
                ],
            },
            // `Naming::Botscope`, and any naming added later until it is wired here.
            _ => RequestFamilies::Botscope {
                requests: meter
                    .u64_counter(REQUESTS)
                    .with_description(
                        "Discord REST requests by endpoint template, method and status",
                    )
                    .build(),
                duration: meter
                    .f64_histogram(REQUEST_DURATION)
                    .with_description(
                        "Time from sending a Discord REST request to its response head",
                    )
                    .with_unit(SECONDS)
                    .with_boundaries(default_buckets())
                    .build(),
            },
        };
        Self {
            families,
            series: SeriesMap::new(endpoints),
            // A synchronous up/down counter, not an observed atomic: the SDK sums the adds of
            // every layer recording into one provider, where observations of one name would
            // overwrite each other.
            in_flight: {
                let in_flight = meter
                    .i64_up_down_counter(REQUESTS_IN_FLIGHT)
                    .with_description("Discord REST requests waiting for their response head")
                    .build()
                    .bind(&[]);
                // Exported at 0 from now, not from the first request.
                in_flight.add(0);
                in_flight
            },
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
                    "Interaction callbacks whose interaction's age cannot be a latency, by reason: created after this host's now, or older than an interaction lives",
                )
                .build(),
            edge_errors: meter
                .u64_counter(EDGE_ERRORS)
                .with_description(
                    "Discord REST answers from its edge (Cloudflare), not its API, by kind",
                )
                .build(),
            body_errors: BodyErrors(
                meter
                    .u64_counter(BODY_ERRORS)
                    .with_description(
                        "Discord REST answers whose body failed after the head, by endpoint, method and kind",
                    )
                    .build(),
            ),
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

    /// The method value of a request: the route's `method` label, or under
    /// [`Naming::Semconv`] the conventions' `http.request.method`.
    pub(crate) fn method(&self, label: &'static str, method: &http::Method) -> &'static str {
        match self.families {
            RequestFamilies::Botscope { .. } => label,
            RequestFamilies::Semconv { .. } => semconv_method(method),
        }
    }

    /// The bound series of `endpoint`, to record its requests through; `None` past the cap
    /// of bound endpoints (a route parsed by a parser with a larger cap), whose requests are
    /// recorded unbound.
    pub(crate) fn series(&self, endpoint: &StringValue) -> Option<Arc<EndpointSeries>> {
        self.series.get(endpoint)
    }

    /// Records the count and duration of one request to `endpoint` that took `elapsed` and
    /// ended as `end`; `method` comes from [`method`](Self::method), `series` from
    /// [`series`](Self::series).
    pub(crate) fn record_request(
        &self,
        series: Option<&EndpointSeries>,
        endpoint: &StringValue,
        method: &'static str,
        end: End,
        elapsed: Duration,
    ) {
        let bound = series.and_then(|series| series.method(method));
        // The common statuses of an answer are bound; the rest is recorded unbound.
        let common = match end {
            End::Head(status) => common_status(status),
            _ => None,
        };
        match &self.families {
            RequestFamilies::Botscope { requests, duration } => {
                let endpoint = || kv(ENDPOINT, Value::String(endpoint.clone()));
                // The histogram has no status label: a partial time would skew its quantiles.
                if !matches!(end, End::Panicked | End::Cancelled) {
                    let bound_duration = bound.map(|bound| {
                        bound
                            .duration
                            .get_or_init(|| duration.bind(&[endpoint(), kv(METHOD, method)]))
                    });
                    match bound_duration {
                        Some(bound) => bound.record(elapsed.as_secs_f64()),
                        None => duration
                            .record(elapsed.as_secs_f64(), &[endpoint(), kv(METHOD, method)]),
                    }
                }
                let status = || match end {
                    End::Head(status) => status_value(status),
                    End::NotForwarded(ForwardFailure::Timeout) => Value::from(STATUS_TIMEOUT),
                    End::NotForwarded(ForwardFailure::ClientBody) => {
                        Value::from(STATUS_CLIENT_ERROR)
                    }
                    End::NotForwarded(_) | End::Error => Value::from(STATUS_ERROR),
                    End::Panicked => Value::from(STATUS_PANIC),
                    End::Cancelled => Value::from(STATUS_CANCELLED),
                };
                let attributes = || [endpoint(), kv(METHOD, method), kv(STATUS_CODE, status())];
                match bound.zip(common) {
                    Some((bound, index)) => bound.statuses[index]
                        .get_or_init(|| Bound::Counter(requests.bind(&attributes())))
                        .add(),
                    None => requests.add(1, &attributes()),
                }
            }
            RequestFamilies::Semconv { duration, server } => {
                // Every request is timed, failures included: `error.type` sets them apart,
                // and the histogram's count is the only request count of this naming.
                let attributes = || {
                    let [address, port] = server.clone();
                    let mut attributes = Vec::with_capacity(6);
                    attributes.extend([kv(HTTP_REQUEST_METHOD, method), address, port]);
                    // `other` is no template: an overflow of the cap, or not an API path.
                    if endpoint.as_str() != crate::route::OTHER {
                        attributes.push(kv(URL_TEMPLATE, Value::String(endpoint.clone())));
                    }
                    if let End::Head(status) = end {
                        attributes.push(kv(HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16())));
                    }
                    if let Some(error) = semconv_error_type(end) {
                        attributes.push(kv(ERROR_TYPE, error));
                    }
                    attributes
                };
                match bound.zip(common) {
                    Some((bound, index)) => bound.statuses[index]
                        .get_or_init(|| Bound::Histogram(duration.bind(&attributes())))
                        .record(elapsed),
                    None => duration.record(elapsed.as_secs_f64(), &attributes()),
                }
            }
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
        use crate::interaction::{
            INTERACTION_LIFETIME, RESPONSE_DEADLINE, SKEW_AHEAD, SKEW_EXPIRED,
        };
        match botscope_core::snowflake::age_now(id) {
            // Older than any interaction lives: late for sure, but not a latency a user felt,
            // so it stays out of the histogram (an id of 0 would add 11 years to its sum).
            Some(age) if age > INTERACTION_LIFETIME => {
                self.clock_skew.add(1, &[kv(REASON, SKEW_EXPIRED)]);
                true
            }
            Some(latency) => {
                self.interaction_response.record(latency.as_secs_f64());
                latency > RESPONSE_DEADLINE
            }
            None => {
                self.clock_skew.add(1, &[kv(REASON, SKEW_AHEAD)]);
                self.interaction_response.record(0.0);
                false
            }
        }
    }
}

impl Instruments {
    /// The handle the forwarder reports bodies failed after their head through.
    pub(crate) fn body_errors(&self) -> BodyErrors {
        self.body_errors.clone()
    }
}

/// What the forwarder reports: `N_discord_api_body_errors_total`, the one measurement taken
/// below the metrics layer (a body fails after the layer has seen its head). A counter
/// handle, cheap to clone.
#[derive(Clone)]
pub(crate) struct BodyErrors(Counter<u64>);

impl BodyErrors {
    /// Counts one body of a request to `endpoint` with `method` that failed as `kind`.
    pub(crate) fn record(&self, endpoint: &StringValue, method: &'static str, kind: BodyErrorKind) {
        self.0.add(
            1,
            &[
                kv(ENDPOINT, Value::String(endpoint.clone())),
                kv(METHOD, method),
                kv(KIND, kind.as_str()),
            ],
        );
    }
}

impl fmt::Debug for BodyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyErrors").finish_non_exhaustive()
    }
}

/// The instruments of one [`DiscordRateLimitLayer`](crate::DiscordRateLimitLayer).
pub(crate) struct RatelimitInstruments {
    wait: Histogram<f64>,
    /// Bound once: the series has no attributes.
    pub(crate) queued: BoundUpDownCounter<i64>,
    _hold: ObservableGauge<f64>,
}

impl RatelimitInstruments {
    /// The instruments; `hold_left` tells what is left of the global and the Cloudflare hold
    /// (`None` once the layer is gone: it then reports nothing).
    pub(crate) fn new(
        meter: &Meter,
        hold_left: impl Fn() -> Option<(Duration, Duration)> + Send + Sync + 'static,
    ) -> Self {
        let queued = meter
            .i64_up_down_counter(REQUESTS_QUEUED)
            .with_description(
                "Discord REST requests waiting for their ratelimit bucket or a 429's hold",
            )
            .build()
            .bind(&[]);
        // Exported at 0 from now, not from the first request.
        queued.add(0);
        let global = [kv(SCOPE, Value::from(RateLimitScope::Global.as_str()))];
        let cloudflare = [kv(SCOPE, Value::from(RateLimitScope::Cloudflare.as_str()))];
        Self {
            wait: meter
                .f64_histogram(RATELIMIT_WAIT)
                .with_description("Time a Discord REST request waited for its ratelimit bucket")
                .with_unit(SECONDS)
                .with_boundaries(default_buckets())
                .build(),
            queued,
            _hold: meter
                .f64_observable_gauge(GLOBAL_HOLD)
                .with_description(
                    "Seconds left of the hold a global or header-less 429 put on requests",
                )
                .with_unit(SECONDS)
                .with_callback(move |observer| {
                    let Some((global_left, cloudflare_left)) = hold_left() else {
                        return;
                    };
                    observer.observe(global_left.as_secs_f64(), &global);
                    observer.observe(cloudflare_left.as_secs_f64(), &cloudflare);
                })
                .build(),
        }
    }

    /// Records that a request to `endpoint` waited `waited` for its turn.
    pub(crate) fn record_wait(&self, endpoint: &StringValue, waited: Duration) {
        self.wait.record(
            waited.as_secs_f64(),
            &[kv(ENDPOINT, Value::String(endpoint.clone()))],
        );
    }
}

impl fmt::Debug for RatelimitInstruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RatelimitInstruments")
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instruments").finish_non_exhaustive()
    }
}

/// `server.address` and `server.port` of an upstream base URL (the port of its scheme when
/// it names none); `None` if it is no `http`/`https` URL.
pub(crate) fn server_of(url: &str) -> Option<(StringValue, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let default = match uri.scheme_str()? {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = uri.authority()?;
    // A bracketed IPv6 literal is named without its brackets.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some((
        host.to_owned().into(),
        authority.port_u16().unwrap_or(default),
    ))
}

/// `error.type` of a request under the conventions, `None` for a success: the status code
/// of an answer of 400 or more (as the HTTP conventions ask), else a word of a closed set —
/// `timeout` (the proxy's 504), `unreachable`, `invalid_uri`, `no_crypto_provider` (its
/// 502s), `client_error` (its 400 for a malformed upload), `cancelled`, `panic`, and `_OTHER` for an error of the inner service.
pub(crate) fn semconv_error_type(end: End) -> Option<Value> {
    let word = match end {
        End::Head(status) if status.as_u16() >= 400 => return Some(status_value(status)),
        End::Head(_) => return None,
        End::NotForwarded(kind) => match kind {
            ForwardFailure::Timeout => STATUS_TIMEOUT,
            ForwardFailure::Unreachable => "unreachable",
            ForwardFailure::InvalidUri => "invalid_uri",
            ForwardFailure::NoCryptoProvider => "no_crypto_provider",
            ForwardFailure::ClientBody => STATUS_CLIENT_ERROR,
        },
        End::Error => ERROR_TYPE_OTHER,
        End::Panicked => STATUS_PANIC,
        End::Cancelled => STATUS_CANCELLED,
    };
    Some(Value::from(word))
}

/// The bound series of one endpoint, by method: the request duration bound on the first
/// answer, the count (or, under the conventions, the duration) of each of the
/// [`COMMON_STATUSES`] on its first answer. Rare endings (errors, panics, cancellations,
/// other statuses) are recorded unbound.
pub(crate) struct EndpointSeries {
    /// By the place of the method in [`HTTP_METHODS`], then `_OTHER`.
    methods: [MethodSeries; HTTP_METHODS.len() + 1],
}

#[derive(Default)]
struct MethodSeries {
    /// `N_discord_api_request_duration_seconds{endpoint,method}`; unused under the conventions.
    duration: OnceLock<BoundHistogram<f64>>,
    statuses: [OnceLock<Bound>; COMMON_STATUSES.len()],
}

/// One bound series of a status.
enum Bound {
    /// `N_discord_api_requests_total{endpoint,method,status_code}`.
    Counter(BoundCounter<u64>),
    /// `http.client.request.duration{…,http.response.status_code}`.
    Histogram(BoundHistogram<f64>),
}

impl Bound {
    fn add(&self) {
        if let Self::Counter(counter) = self {
            counter.add(1);
        }
    }

    fn record(&self, elapsed: Duration) {
        if let Self::Histogram(histogram) = self {
            histogram.record(elapsed.as_secs_f64());
        }
    }
}

impl EndpointSeries {
    fn new() -> Self {
        Self {
            methods: std::array::from_fn(|_| MethodSeries::default()),
        }
    }

    fn method(&self, method: &str) -> Option<&MethodSeries> {
        // The route's `method` labels are among the conventions' values.
        let index = match HTTP_METHODS.iter().position(|known| *known == method) {
            Some(index) => index,
            None if method == ERROR_TYPE_OTHER => HTTP_METHODS.len(),
            None => return None,
        };
        self.methods.get(index)
    }
}

/// The bound series by endpoint, at most `cap` endpoints: the layer's endpoint cap plus
/// `other`, so every endpoint of its own parser has one.
///
/// Keyed by where the endpoint's text lives, not by the text: every `endpoint` comes from a
/// [`Routes`](crate::route::Routes) cap, whose values are shared strings that live as long as
/// the cap (or the static `other`), and the map keeps a clone of each, so an address never
/// stands for two texts. A lookup hashes two words instead of the template.
struct SeriesMap {
    cap: usize,
    map: RwLock<SeriesByAddress>,
}

type SeriesByAddress =
    HashMap<(usize, usize), (StringValue, Arc<EndpointSeries>), foldhash::fast::FixedState>;

impl SeriesMap {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            map: RwLock::default(),
        }
    }

    fn get(&self, endpoint: &StringValue) -> Option<Arc<EndpointSeries>> {
        let text = endpoint.as_str();
        let key = (text.as_ptr() as usize, text.len());
        // The map holds no invariant a panic could break halfway: a poisoned lock is used as
        // is.
        if let Some((_, series)) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Some(Arc::clone(series));
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, series)) = map.get(&key) {
            return Some(Arc::clone(series));
        }
        if map.len() >= self.cap {
            return None;
        }
        let series = Arc::new(EndpointSeries::new());
        map.insert(key, (endpoint.clone(), Arc::clone(&series)));
        Some(series)
    }
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
            start: clock::now(),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The tag of the current second: seconds since `start`, plus one (136 years fit).
    fn now_tag(&self) -> u32 {
        let second = clock::now().saturating_duration_since(self.start).as_secs();
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
    fn server_of_an_upstream() {
        let server = |url| server_of(url).map(|(a, p)| (a.as_str().to_owned(), p));
        assert_eq!(
            server("https://discord.com"),
            Some(("discord.com".into(), 443))
        );
        assert_eq!(
            server("http://127.0.0.1:8080/prefix"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(server("http://[::1]/"), Some(("::1".into(), 80)));
        assert_eq!(server("ftp://example.com"), None);
    }

    #[test]
    fn semconv_error_types() {
        let error = |end| semconv_error_type(end).map(|v| v.as_str().into_owned());
        assert_eq!(error(End::Head(StatusCode::OK)), None);
        assert_eq!(error(End::Head(StatusCode::FOUND)), None);
        assert_eq!(
            error(End::Head(StatusCode::NOT_FOUND)).as_deref(),
            Some("404")
        );
        assert_eq!(
            error(End::Head(StatusCode::IM_A_TEAPOT)).as_deref(),
            Some("418")
        );
        assert_eq!(
            error(End::NotForwarded(ForwardFailure::Timeout)).as_deref(),
            Some("timeout")
        );
        assert_eq!(
            error(End::NotForwarded(ForwardFailure::Unreachable)).as_deref(),
            Some("unreachable")
        );
        assert_eq!(
            error(End::NotForwarded(ForwardFailure::ClientBody)).as_deref(),
            Some("client_error")
        );
        assert_eq!(error(End::Error).as_deref(), Some("_OTHER"));
        assert_eq!(error(End::Cancelled).as_deref(), Some("cancelled"));
        assert_eq!(error(End::Panicked).as_deref(), Some("panic"));
    }
}
