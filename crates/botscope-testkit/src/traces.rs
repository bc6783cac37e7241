//! The spans of a test, as an OpenTelemetry backend receives them: `tracing` spans through
//! tracing-opentelemetry into the SDK, exported to memory. A test reads names, kinds,
//! attributes, statuses and parent ids, not `tracing`'s own view of them.
//!
//! ```
//! use botscope_testkit::traces::Traces;
//!
//! let traces = Traces::new();
//! {
//!     let _capture = traces.capture();
//!     let outer = tracing::info_span!("outer", otel.kind = "client", "db.system.name" = "sqlite");
//!     let _entered = outer.enter();
//!     tracing::info_span!("inner").in_scope(|| {});
//! }
//! let outer = traces.span("outer");
//! assert_eq!(traces.attribute(&outer, "db.system.name").as_deref(), Some("sqlite"));
//! assert_eq!(traces.span("inner").parent_span_id, outer.span_context.span_id());
//! assert_eq!(traces.tree(), "outer [client]\n  inner\n");
//! ```

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

/// Every span that ended while a [`capture`](Self::capture) guard lived.
#[derive(Debug)]
pub struct Traces {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl Default for Traces {
    fn default() -> Self {
        Self::new()
    }
}

impl Traces {
    /// An empty record, sampling every span.
    pub fn new() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        Self { exporter, provider }
    }

    /// Sends this thread's spans here until the guard drops. Under `#[tokio::test]` (a
    /// current-thread runtime) that is every task of the test.
    ///
    /// Captures run one at a time in a process, so the spans of tests running side by side
    /// (and `tracing`'s process-wide cache of which call sites a subscriber wants) never mix.
    /// The guard holds the turn until it drops.
    ///
    /// A span closes when its last clone drops, which can be on another thread and later
    /// than the unit that opened it (sqlx's SQLite worker keeps clones of the current span):
    /// close such a pool, or use [`span_eventually`](Self::span_eventually), before reading.
    /// And when that last clone drops on another thread, tracing-subscriber's registry
    /// closes the span's *parent* through that thread's default subscriber, which is not
    /// this capture's: the parent then never closes. A test that needs the parents of
    /// SQLite queries installs a global subscriber instead, as a bot does (the workspace's
    /// `tests/traces_one_trace.rs`).
    pub fn capture(&self) -> Capture {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let layer =
            tracing_opentelemetry::layer().with_tracer(self.provider.tracer("botscope-testkit"));
        Capture {
            _default: tracing::subscriber::set_default(tracing_subscriber::registry().with(layer)),
            _turn: turn,
        }
    }

    /// The spans that ended so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        // A simple exporter has nothing to flush; this only returns what it holds.
        let _ = self.provider.force_flush();
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// The one span named `name`; panics, listing the names seen, if there is not exactly one.
    pub fn span(&self, name: &str) -> SpanData {
        let spans = self.spans();
        let mut named = spans.iter().filter(|span| span.name == name);
        match (named.next(), named.next()) {
            (Some(span), None) => span.clone(),
            _ => panic!(
                "expected one span named {name:?}, saw: {:?}",
                spans
                    .iter()
                    .map(|span| span.name.as_ref())
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// The one span named `name`, once it ended: for a span something else still holds
    /// after its unit ended (a driver's worker thread finishing a cancelled statement).
    /// Panics as [`span`](Self::span) does if it has not ended within 30 s.
    pub async fn span_eventually(&self, name: &str) -> SpanData {
        for _ in 0..3_000 {
            if self.spans().iter().any(|span| span.name == name) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.span(name)
    }

    /// The value of `span`'s attribute `key`, as text.
    pub fn attribute(&self, span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    /// Every span as an indented tree, children under their parent in the order they
    /// started: `name [kind] {status}`, the kind when not internal, the status when set.
    pub fn tree(&self) -> String {
        let mut spans = self.spans();
        spans.sort_by_key(|span| span.start_time);
        let mut out = String::new();
        let ids: Vec<_> = spans
            .iter()
            .map(|span| span.span_context.span_id())
            .collect();
        for root in spans
            .iter()
            .filter(|span| !ids.contains(&span.parent_span_id))
        {
            write_tree(&spans, root, 0, &mut out);
        }
        out
    }
}

/// A [`Traces::capture`] in progress: the thread's subscriber, and the capture's turn.
#[must_use = "the capture ends when the guard drops"]
pub struct Capture {
    // Dropped first: the subscriber goes before the next capture may start.
    _default: DefaultGuard,
    _turn: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

fn write_tree(spans: &[SpanData], span: &SpanData, depth: usize, out: &mut String) {
    let _ = write!(out, "{:indent$}{}", "", span.name, indent = depth * 2);
    match span.span_kind {
        SpanKind::Internal => {}
        SpanKind::Client => out.push_str(" [client]"),
        SpanKind::Server => out.push_str(" [server]"),
        SpanKind::Producer => out.push_str(" [producer]"),
        SpanKind::Consumer => out.push_str(" [consumer]"),
    }
    match &span.status {
        Status::Unset => {}
        Status::Ok => out.push_str(" {ok}"),
        Status::Error { .. } => out.push_str(" {error}"),
    }
    out.push('\n');
    let id = span.span_context.span_id();
    for child in spans.iter().filter(|child| child.parent_span_id == id) {
        write_tree(spans, child, depth + 1, out);
    }
}
