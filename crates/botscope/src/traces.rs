//! Trace export over OTLP (feature `traces`): [`Traces`] says where and how, given to
//! [`TelemetryBuilder::traces`](crate::TelemetryBuilder::traces);
//! [`Telemetry::tracing_layer`](crate::Telemetry::tracing_layer) is the `tracing` layer that
//! feeds it; [`TraceIds`] puts a log line's trace and span id in front of it.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), botscope::BuildError> {
//! use botscope::traces::Traces;
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! // on when OTEL_TRACES_EXPORTER=otlp; endpoint, headers and sampler from OTEL_*
//! let telemetry = botscope::Telemetry::builder().traces(Traces::from_env()).install()?;
//! tracing_subscriber::registry().with(telemetry.tracing_layer()).init();
//! # Ok(()) }
//! ```
//!
//! What is sent: every span of the process (botscope's unit spans, the gateway dispatch span,
//! twilight's `request` spans, the bot's own) through tracing-opentelemetry and the SDK's
//! batch processor to an OTLP/HTTP endpoint in protobuf, with the metrics' `service.name`.
//! Before the exporter sees them, twilight's raw `path` fields become route templates
//! ([`TemplatePaths`]), so no webhook or interaction token leaves the process; sqlx's
//! statement log events (`sqlx::query`, with the SQL and its literals) are not sent at all.
//!
//! An endpoint that is down costs the bot nothing but the spans: exports run on the batch
//! processor's own thread with a client and runtime of their own, a failed export drops its
//! batch, counts it in `N_trace_spans_exported_total{status="error"}` and logs one warning
//! (and one line when exports recover), and a full queue drops new spans (the SDK's queue,
//! `OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default).

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use botscope_http::trace::{TemplatePaths, TwilightRequests};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::error::{BuildError, BuildErrorType};

/// How long an export may take when neither the builder nor `OTEL_EXPORTER_OTLP_TIMEOUT`
/// says (the specification's default).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The target of the events sqlx logs each statement with, SQL text and literals included:
/// never exported.
const SQLX_STATEMENT_TARGET: &str = "sqlx::query";

/// Where and how spans are exported: OTLP over HTTP in protobuf, configured by the standard
/// `OTEL_*` variables unless set here. Give it to
/// [`TelemetryBuilder::traces`](crate::TelemetryBuilder::traces).
///
/// Read from the environment at install, each overridable here:
/// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
///   (`/v1/traces` appended); default `http://localhost:4318/v1/traces`;
/// - `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`);
/// - `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds);
/// - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: only
///   `http/protobuf`, anything else is a [`BuildError`];
/// - `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`);
/// - `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE` and the other batch settings.
///
/// TLS is the bot's business, as for `/metrics`: the client speaks plain HTTP (an
/// `https://` endpoint fails each export); run a collector on loopback or beside the bot.
#[derive(Clone)]
#[must_use = "nothing is exported until given to TelemetryBuilder::traces"]
pub struct Traces {
    from_env: bool,
    endpoint: Option<String>,
    headers: Vec<(String, String)>,
    sampler: Option<Choice>,
    timeout: Option<Duration>,
    batch_delay: Option<Duration>,
    max_queue_size: Option<usize>,
}

#[derive(Clone, Debug)]
enum Choice {
    Ratio(f64),
    Sampler(Sampler),
}

impl fmt::Debug for Traces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traces")
            .field("from_env", &self.from_env)
            .field("endpoint", &self.endpoint)
            // header values are credentials (`authorization=…`): names only
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("sampler", &self.sampler)
            .field("timeout", &self.timeout)
            .field("batch_delay", &self.batch_delay)
            .field("max_queue_size", &self.max_queue_size)
            .finish()
    }
}

impl Traces {
    /// Export over OTLP, whatever `OTEL_TRACES_EXPORTER` says.
    pub fn otlp() -> Self {
        Self {
            from_env: false,
            endpoint: None,
            headers: Vec::new(),
            sampler: None,
            timeout: None,
            batch_delay: None,
            max_queue_size: None,
        }
    }

    /// Export over OTLP when `OTEL_TRACES_EXPORTER=otlp`; nothing when it is unset, empty or
    /// `none` (botscope's default is off, unlike the specification's). Any other value
    /// (`zipkin`, `console`, a list) makes install fail with
    /// [`BuildErrorType::UnsupportedTracesExporter`].
    pub fn from_env() -> Self {
        Self {
            from_env: true,
            ..Self::otlp()
        }
    }

    /// The URL spans are posted to, used as is (include `/v1/traces`); overrides the
    /// environment.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// A header sent with every export (an API key, say), beside those of
    /// `OTEL_EXPORTER_OTLP_HEADERS`. Never logged.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Parent-based sampling with a ratio: a span with a parent follows its parent's
    /// decision, a root is sampled with probability `ratio` (by its trace id, so every
    /// process decides a trace alike). `1.0` keeps every trace. Must be within `0.0..=1.0`
    /// (checked at install). Overrides `OTEL_TRACES_SAMPLER`.
    pub fn sample_ratio(mut self, ratio: f64) -> Self {
        self.sampler = Some(Choice::Ratio(ratio));
        self
    }

    /// Any of the SDK's samplers; overrides `OTEL_TRACES_SAMPLER`.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(Choice::Sampler(sampler));
        self
    }

    /// How long one export may take, retries included (default `OTEL_EXPORTER_OTLP_TIMEOUT`
    /// or 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long the batch processor waits before sending what it has (default
    /// `OTEL_BSP_SCHEDULE_DELAY` or 5 s).
    pub fn batch_delay(mut self, delay: Duration) -> Self {
        self.batch_delay = Some(delay);
        self
    }

    /// How many ended spans may wait to be sent (default `OTEL_BSP_MAX_QUEUE_SIZE` or 2048);
    /// past that, new ones are dropped. Zero is refused at install.
    pub fn max_queue_size(mut self, spans: usize) -> Self {
        self.max_queue_size = Some(spans);
        self
    }

    /// Builds the exporter and the tracer provider, or `None` when the environment says
    /// traces are off.
    pub(crate) fn build(
        self,
        resource: Resource,
        meter: &Meter,
    ) -> Result<Option<SdkTracerProvider>, BuildError> {
        if self.from_env && !exporter_from_env()? {
            return Ok(None);
        }
        check_protocol()?;
        if self.max_queue_size == Some(0) {
            return Err(BuildError::new(BuildErrorType::InvalidTraceQueueSize));
        }
        let sampler = match self.sampler {
            Some(Choice::Ratio(ratio)) if !(0.0..=1.0).contains(&ratio) => {
                return Err(BuildError::new(BuildErrorType::InvalidSampleRatio {
                    ratio: ratio.to_string(),
                }));
            }
            Some(Choice::Ratio(ratio)) => Some(Sampler::ParentBased(Box::new(
                Sampler::TraceIdRatioBased(ratio),
            ))),
            Some(Choice::Sampler(sampler)) => Some(sampler),
            None => None,
        };
        let timeout = self.timeout.unwrap_or_else(timeout_from_env);
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(timeout)
            .with_http_client(OwnRuntime::new(timeout));
        if let Some(endpoint) = self.endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        if !self.headers.is_empty() {
            exporter = exporter.with_headers(self.headers.into_iter().collect());
        }
        let exporter = exporter
            .build()
            .map_err(|e| BuildError::with_source(BuildErrorType::TraceExporter, e))?;
        let mut batch = BatchConfigBuilder::default();
        if let Some(delay) = self.batch_delay {
            batch = batch.with_scheduled_delay(delay);
        }
        if let Some(spans) = self.max_queue_size {
            batch = batch.with_max_queue_size(spans);
        }
        let processor = BatchSpanProcessor::builder(Counted::new(exporter, meter))
            .with_batch_config(batch.build())
            .build();
        let mut provider = SdkTracerProvider::builder()
            .with_span_processor(TemplatePaths::new(processor))
            .with_resource(resource);
        if let Some(sampler) = sampler {
            provider = provider.with_sampler(sampler);
        }
        Ok(Some(provider.build()))
    }
}

/// `OTEL_TRACES_EXPORTER`: whether it asks for OTLP.
fn exporter_from_env() -> Result<bool, BuildError> {
    let value = std::env::var("OTEL_TRACES_EXPORTER").unwrap_or_default();
    match value.trim() {
        "" | "none" => Ok(false),
        "otlp" => Ok(true),
        _ => Err(BuildError::new(BuildErrorType::UnsupportedTracesExporter {
            value,
        })),
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: only `http/protobuf`
/// is built in (gRPC would bring tonic; JSON a second encoder).
fn check_protocol() -> Result<(), BuildError> {
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(variable) {
            return match protocol.trim() {
                "" | "http/protobuf" => Ok(()),
                _ => Err(BuildError::new(BuildErrorType::UnsupportedTraceProtocol {
                    protocol,
                })),
            };
        }
    }
    Ok(())
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT` in milliseconds; an
/// unparsable value is ignored, as the exporter ignores it.
fn timeout_from_env() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|variable| std::env::var(variable).ok()?.trim().parse::<u64>().ok())
    .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis)
}

/// The `tracing` layer botscope's traces need: tracing-opentelemetry into `provider` (minus
/// sqlx's statement events), [`TwilightRequests`], which parents the in-process proxy's
/// spans under twilight's, and [`EventIds`] for [`TraceIds`]. With no provider (traces
/// off), a layer that does nothing.
pub(crate) fn layer<S>(provider: Option<&SdkTracerProvider>) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporting = provider.map(|provider| {
        let tracer = provider.tracer_with_scope(botscope_core::meter::scope(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ));
        let statements = tracing_subscriber::filter::filter_fn(|metadata| {
            !(metadata.is_event() && metadata.target() == SQLX_STATEMENT_TARGET)
        });
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(statements)
            .and_then(TwilightRequests::new())
    });
    let on = exporting.is_some();
    let ids = EventIds {
        on,
        dispatch: OnceLock::new(),
    }
    // a filter of its own: off, it wants nothing and costs nothing (a `debug` unit span
    // stays disabled unless another layer wants it), without filtering the other layers
    .with_filter(if on {
        tracing_subscriber::filter::LevelFilter::TRACE
    } else {
        tracing_subscriber::filter::LevelFilter::OFF
    });
    // outside the `Option`, which does not pass the dispatch on to what it holds
    Layer::and_then(exporting, ids)
}

/// The trace and span id of a span that a log line was written in, kept in the span's
/// extensions.
#[derive(Clone, Copy)]
struct Ids {
    trace: opentelemetry::trace::TraceId,
    span: opentelemetry::trace::SpanId,
}

/// Which event is being written (its address and call site, for the length of one
/// dispatch).
type EventKey = (usize, usize);

fn event_key(event: &tracing::Event<'_>) -> EventKey {
    (
        std::ptr::from_ref(event).addr(),
        std::ptr::from_ref(event.metadata()).addr(),
    )
}

thread_local! {
    /// The ids [`EventIds`] found for the event this thread is dispatching, for
    /// [`TraceIds`] further down the same dispatch. A log layer's own view of the spans is
    /// filtered (a `debug` unit span is invisible to an `info` log layer), so the ids pass
    /// here instead of through the span.
    static EVENT_IDS: std::cell::Cell<Option<(EventKey, Ids)>> = const { std::cell::Cell::new(None) };
}

/// Notes the OpenTelemetry ids of the span an event is written in, the first time one is,
/// so that [`TraceIds`] can print them: a log format runs inside the subscriber, where the
/// OpenTelemetry context of a span cannot be asked for, so this layer (which runs before a
/// log layer stacked after it) asks first. Spans nobody logs in cost nothing.
struct EventIds {
    on: bool,
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl EventIds {
    /// The ids of the span `event` is written in, asked of tracing-opentelemetry the first
    /// time and kept in the span's extensions after.
    fn ids<S>(
        &self,
        event: &tracing::Event<'_>,
        ctx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> Option<Ids>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.event_span(event)?;
        if let Some(ids) = span.extensions().get::<Ids>() {
            return Some(*ids);
        }
        let dispatch = self.dispatch.get()?.upgrade()?;
        // no extension of the span is held here: the lookup takes them
        let context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let otel = context.span();
        let found = otel.span_context();
        if !(found.is_valid() && found.is_sampled()) {
            return None;
        }
        let ids = Ids {
            trace: found.trace_id(),
            span: found.span_id(),
        };
        span.extensions_mut().insert(ids);
        Some(ids)
    }
}

impl<S> Layer<S> for EventIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let ids = self.on.then(|| self.ids(event, &ctx)).flatten();
        EVENT_IDS.set(ids.map(|ids| (event_key(event), ids)));
    }
}

/// The exporter in front of OTLP: counts what each export carried by its outcome, and says
/// once that exports fail (and once that they work again), not once per batch.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    exported: Counter<u64>,
    failing: AtomicBool,
}

impl<E> Counted<E> {
    fn new(inner: E, meter: &Meter) -> Self {
        let exported = meter
            .u64_counter("trace_spans_exported")
            .with_description(
                "Spans handed to the OTLP exporter, by outcome: status=\"error\" ones were dropped",
            )
            .build();
        Self {
            inner,
            exported,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let status = if result.is_ok() {
            botscope_core::status::SUCCESS
        } else {
            botscope_core::status::ERROR
        };
        self.exported.add(spans, &[KeyValue::new("status", status)]);
        match &result {
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("trace export works again");
            }
            Err(error) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(
                    %error,
                    "trace export failed: spans are dropped, and counted in trace_spans_exported_total{{status=\"error\"}}, until it works again"
                );
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter's HTTP client: hyper, on a current-thread runtime of its own that the batch
/// processor's thread drives while it exports. Exports never need, block or load the bot's
/// runtime, and a provider dropped or shut down inside the bot's runtime cannot wait on
/// itself. Built on first use, on that thread, where it is also dropped.
#[derive(Debug)]
struct OwnRuntime {
    timeout: Duration,
    client: OnceLock<Result<(tokio::runtime::Runtime, HyperClient), String>>,
}

impl OwnRuntime {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            client: OnceLock::new(),
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for OwnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // only a processor that exports on the caller's thread (not botscope's) gets here
            return Err("the OTLP client cannot export from inside a tokio runtime".into());
        }
        let (runtime, client) = self
            .client
            .get_or_init(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot build the OTLP client's runtime: {e}"))?;
                Ok((
                    runtime,
                    HyperClient::with_default_connector(self.timeout, None),
                ))
            })
            .as_ref()
            .map_err(|e| HttpError::from(e.clone()))?;
        runtime.block_on(client.send_bytes(request))
    }
}

/// A log line format with the trace and span id of the span the line was written in, in
/// front (`trace_id=… span_id=… `), so a line leads to its trace; lines outside any span, or
/// in a span that is not sampled, are unchanged. It reads what
/// [`Telemetry::tracing_layer`](crate::Telemetry::tracing_layer) noted, so stack the log
/// layer after that one. Wraps any `tracing-subscriber` event format:
///
/// ```
/// use botscope::traces::TraceIds;
///
/// let format = TraceIds(tracing_subscriber::fmt::format());
/// let layer = tracing_subscriber::fmt::layer::<tracing_subscriber::Registry>()
///     .event_format(format);
/// # drop(layer);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for TraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let ids = EVENT_IDS
            .take()
            .filter(|(key, _)| *key == event_key(event))
            .map(|(_, ids)| ids);
        if let Some(Ids { trace, span }) = ids {
            write!(writer, "trace_id={trace} span_id={span} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Telemetry;

    fn install(traces: Traces) -> Result<Telemetry, BuildError> {
        Telemetry::builder()
            .serve(false)
            .system_metrics(false)
            .set_global(false)
            .traces(traces)
            .install()
    }

    #[test]
    fn bad_settings_are_typed_errors_that_say_what_to_pass() {
        for ratio in [1.5, -0.1, f64::NAN] {
            let error = install(Traces::otlp().sample_ratio(ratio)).unwrap_err();
            assert_eq!(
                error.kind(),
                &BuildErrorType::InvalidSampleRatio {
                    ratio: ratio.to_string()
                }
            );
            assert!(
                error.to_string().contains("0.0 (no trace) to 1.0"),
                "{error}"
            );
        }
        let error = install(Traces::otlp().max_queue_size(0)).unwrap_err();
        assert_eq!(error.kind(), &BuildErrorType::InvalidTraceQueueSize);
        let error = install(Traces::otlp().endpoint("not a url")).unwrap_err();
        assert_eq!(error.kind(), &BuildErrorType::TraceExporter);
        let source = std::error::Error::source(&error).expect("the exporter's reason");
        assert!(source.to_string().contains("not a url"), "{source}");
    }

    #[test]
    fn good_settings_install_and_debug_never_shows_a_header_value() {
        let traces = Traces::otlp()
            .endpoint("http://127.0.0.1:4318/v1/traces")
            .header("authorization", "Bearer otlp-s3cret")
            .sample_ratio(0.25)
            .timeout(Duration::from_secs(1))
            .batch_delay(Duration::from_millis(100))
            .max_queue_size(10);
        let shown = format!("{traces:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(!shown.contains("otlp-s3cret"), "{shown}");
        let telemetry = install(traces).expect("installed");
        assert!(telemetry.tracer_provider().is_some());
    }
}
