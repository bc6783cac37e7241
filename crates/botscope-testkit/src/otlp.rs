//! A loopback OTLP/HTTP receiver: what a trace backend sees of a bot. It accepts
//! `POST /v1/traces` with `application/x-protobuf` bodies, decodes them with the official
//! protobuf definitions (the opentelemetry-proto crate) and keeps every span, so a test reads
//! trace ids, parent ids, names, kinds, attributes, events and statuses as they went over the
//! wire.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use botscope_testkit::otlp::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start().await?;
//! // OTEL_EXPORTER_OTLP_ENDPOINT for an exporter; it posts to `{endpoint}/v1/traces`
//! let endpoint = receiver.endpoint();
//! # assert!(endpoint.starts_with("http://127.0.0.1:"));
//! assert!(receiver.spans().is_empty());
//! # Ok(()) }
//! ```

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The largest export request the receiver reads (the collector's own default limit is
/// larger; a test's batches are far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The path OTLP/HTTP exporters post spans to.
pub const TRACES_PATH: &str = "/v1/traces";

/// A span kind as OTLP carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SPAN_KIND_UNSPECIFIED` or `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
    /// `SPAN_KIND_CLIENT`.
    Client,
    /// `SPAN_KIND_PRODUCER`.
    Producer,
    /// `SPAN_KIND_CONSUMER`.
    Consumer,
}

/// A span status code as OTLP carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `STATUS_CODE_UNSET`.
    Unset,
    /// `STATUS_CODE_OK`.
    Ok,
    /// `STATUS_CODE_ERROR`.
    Error,
}

/// One event of a [`ReceivedSpan`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The event's name (tracing-opentelemetry: the log message).
    pub name: String,
    /// Its attributes, as text.
    pub attributes: Vec<(String, String)>,
}

/// One span as the receiver decoded it. Ids are lower-case hex, as backends show them; a
/// root's `parent_span_id` is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// `service.name` of the resource the span came with.
    pub service_name: Option<String>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// The span's kind.
    pub kind: Kind,
    /// Its attributes, as text (arrays and maps in their debug form).
    pub attributes: Vec<(String, String)>,
    /// Its events.
    pub events: Vec<ReceivedEvent>,
    /// The status code.
    pub status: Status,
    /// The status message (empty unless an error says why).
    pub status_message: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
}

impl ReceivedSpan {
    /// The value of attribute `key`, as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// How long the span lasted.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }

    /// Every piece of text the span carries: name, attribute keys and values, event names
    /// and their attributes, the status message. What a test searches for secrets.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        fn pairs(attributes: &[(String, String)]) -> impl Iterator<Item = &str> {
            attributes
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        }
        [self.name.as_str(), self.status_message.as_str()]
            .into_iter()
            .chain(pairs(&self.attributes))
            .chain(self.events.iter().flat_map(|event| {
                std::iter::once(event.name.as_str()).chain(pairs(&event.attributes))
            }))
    }
}

struct Received {
    spans: VecDeque<ReceivedSpan>,
    requests: usize,
    /// The most spans kept; the oldest go first.
    capacity: usize,
}

/// The receiver. Serves until dropped or [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("spans", &self.spans.len())
            .field("requests", &self.requests)
            .finish()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Listens on a free loopback port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn start() -> io::Result<Self> {
        Self::start_bounded(usize::MAX).await
    }

    /// Listens on a free loopback port and keeps the latest `capacity` spans only: for a
    /// long-running process (the demo), whose memory must not grow with every trace.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn start_bounded(capacity: usize) -> io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Received {
            spans: VecDeque::new(),
            requests: 0,
            capacity,
        }));
        let task = tokio::spawn(serve(listener, Arc::clone(&received)));
        Ok(Self {
            addr,
            received,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`: the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:{port}/v1/traces`: the value for a traces endpoint given in code or
    /// in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, which exporters use as is.
    pub fn traces_url(&self) -> String {
        format!("http://{}{TRACES_PATH}", self.addr)
    }

    /// How many export requests arrived (decoded or not).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Every span received so far (or the latest, if bounded), in the order they arrived.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.iter().cloned().collect()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.lock()
            .spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for a span that `matches`, and returns the first. `matches` may
    /// read the receiver (the spans of a candidate's trace, say).
    ///
    /// # Errors
    ///
    /// The names of the spans received, if none matched in time.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&ReceivedSpan) -> bool,
    ) -> Result<ReceivedSpan, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // not under the lock: `matches` may read the receiver too
            if let Some(span) = self.spans().into_iter().find(|span| matches(span)) {
                return Ok(span);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<_> = self.spans().into_iter().map(|span| span.name).collect();
                return Err(format!(
                    "no matching span within {timeout:?}; received: {names:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// One trace as an indented tree, children under their parent in the order they started:
    /// `name [kind] {status} 12.3ms`, the kind when not internal, the status when set.
    /// Spans whose parent was not received are roots.
    pub fn tree(&self, trace_id: &str) -> String {
        tree(&self.trace(trace_id), true)
    }

    /// As [`tree`](Self::tree), without durations: for comparing with an expected shape.
    pub fn shape(&self, trace_id: &str) -> String {
        tree(&self.trace(trace_id), false)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.task.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `spans` as an indented tree; see [`OtlpReceiver::tree`].
pub fn tree(spans: &[ReceivedSpan], durations: bool) -> String {
    let mut spans = spans.to_vec();
    spans.sort_by_key(|span| span.start_unix_nanos);
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let mut out = String::new();
    for root in spans
        .iter()
        .filter(|span| !ids.contains(span.parent_span_id.as_str()))
    {
        write_tree(&spans, root, 0, durations, &mut out);
    }
    out
}

fn write_tree(
    spans: &[ReceivedSpan],
    span: &ReceivedSpan,
    depth: usize,
    durations: bool,
    out: &mut String,
) {
    let _ = write!(out, "{:indent$}{}", "", span.name, indent = depth * 2);
    match span.kind {
        Kind::Internal => {}
        Kind::Client => out.push_str(" [client]"),
        Kind::Server => out.push_str(" [server]"),
        Kind::Producer => out.push_str(" [producer]"),
        Kind::Consumer => out.push_str(" [consumer]"),
    }
    match span.status {
        Status::Unset => {}
        Status::Ok => out.push_str(" {ok}"),
        Status::Error => out.push_str(" {error}"),
    }
    if durations {
        let _ = write!(out, " {:.1}ms", span.duration().as_secs_f64() * 1e3);
    }
    out.push('\n');
    for child in spans
        .iter()
        .filter(|child| child.parent_span_id == span.span_id)
    {
        write_tree(spans, child, depth + 1, durations, out);
    }
}

async fn serve(listener: TcpListener, received: Arc<Mutex<Received>>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let received = Arc::clone(&received);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let received = Arc::clone(&received);
                async move { Ok::<_, Infallible>(answer(&received, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // reap finished connections so a long test does not accumulate them
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(received: &Mutex<Received>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .requests += 1;
    if parts.method != Method::POST || parts.uri.path() != TRACES_PATH {
        return plain(StatusCode::NOT_FOUND, "only POST /v1/traces is served");
    }
    let protobuf = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    if !protobuf {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only application/x-protobuf is decoded",
        );
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"),
    };
    let export = match ExportTraceServiceRequest::decode(body) {
        Ok(export) => export,
        Err(error) => return plain(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let spans = decode(export);
    {
        let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
        received.spans.extend(spans);
        let excess = received.spans.len().saturating_sub(received.capacity);
        received.spans.drain(..excess);
    }
    let mut response = Response::new(Full::new(Bytes::from(
        ExportTraceServiceResponse::default().encode_to_vec(),
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response
}

fn decode(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in export.resource_spans {
        let service_name = resource_spans.resource.and_then(|resource| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .map(|kv| value_text(kv.value.as_ref()))
        });
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans
                .scope
                .map(|scope| scope.name)
                .unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                out.push(ReceivedSpan {
                    service_name: service_name.clone(),
                    scope: scope.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: match span::SpanKind::try_from(span.kind) {
                        Ok(span::SpanKind::Server) => Kind::Server,
                        Ok(span::SpanKind::Client) => Kind::Client,
                        Ok(span::SpanKind::Producer) => Kind::Producer,
                        Ok(span::SpanKind::Consumer) => Kind::Consumer,
                        _ => Kind::Internal,
                    },
                    attributes: attributes(&span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .map(|event| ReceivedEvent {
                            attributes: attributes(&event.attributes),
                            name: event.name,
                        })
                        .collect(),
                    status: match status::StatusCode::try_from(status.code) {
                        Ok(status::StatusCode::Ok) => Status::Ok,
                        Ok(status::StatusCode::Error) => Status::Error,
                        _ => Status::Unset,
                    },
                    status_message: status.message,
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                });
            }
        }
    }
    out
}

fn attributes(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
        .collect()
}

fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
