//! Inside one process the proxy's spans for a request are children of twilight's `request`
//! span that sent it, paired by method and path (`trace::TwilightRequests`); identical
//! requests racing each get a twilight parent; a client not pointed at the proxy leaves
//! nothing waiting to be paired.

mod common;

use botscope_http::trace::{TemplatePaths, TwilightRequests};
use botscope_testkit::rest::FakeDiscord;
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use tracing_subscriber::layer::SubscriberExt as _;
use twilight_model::id::Id;

/// The pairing is process-wide: one test at a time, or one's open spans count in the other's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This thread's spans through tracing-opentelemetry and `TemplatePaths` into memory, with
/// the pairing layer, until the guard drops.
fn exporting() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
    common::install_tls();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(TemplatePaths::new(SimpleSpanProcessor::new(
            exporter.clone(),
        )))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bot")))
        .with(TwilightRequests::new());
    (exporter, tracing::subscriber::set_default(subscriber))
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn id_of(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

// Single-threaded, so the proxy's tasks and twilight's spans share the test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn the_proxys_spans_are_children_of_twilights_request() {
    let _serial = SERIAL.lock().await;
    let (exporter, _default) = exporting();

    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = botscope_testkit::TestMetrics::new("disruptor");
    let (proxy, http) = common::proxy_to(&fake, &metrics, |builder| builder).await;

    // one request, then two identical ones at once
    http.create_message(Id::new(42))
        .content("one")
        .await
        .expect("POST");
    let (a, b) = tokio::join!(
        http.create_message(Id::new(7))
            .content("same")
            .into_future(),
        http.create_message(Id::new(7))
            .content("same")
            .into_future(),
    );
    a.expect("first of the pair");
    b.expect("second of the pair");

    // a client straight at the fake: its spans open and close unpaired
    let direct = twilight_http::Client::builder()
        .proxy(fake.host(), true)
        .token(common::BOT_TOKEN.to_owned())
        .build();
    direct.current_user().await.expect("GET users/@me");
    assert_eq!(TwilightRequests::pending(), 0, "nothing waits to be paired");
    proxy.shutdown().await;

    let spans = exporter.get_finished_spans().unwrap();
    let requests = named(&spans, "request");
    assert_eq!(requests.len(), 4, "twilight's request spans");
    let posts = named(&spans, "POST /channels/{channel_id}/messages");
    let waits = named(&spans, "ratelimit wait");
    assert_eq!((posts.len(), waits.len()), (3, 3));
    let mut parents: Vec<[u8; 8]> = posts
        .iter()
        .map(|post| post.parent_span_id.to_bytes())
        .collect();
    for span in posts.iter().chain(&waits) {
        let parent = requests
            .iter()
            .find(|request| id_of(request) == span.parent_span_id)
            .unwrap_or_else(|| panic!("{} has no twilight parent", span.name));
        assert_eq!(span.span_context.trace_id(), parent.span_context.trace_id());
        let path = parent
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "path")
            .map(|kv| kv.value.to_string());
        assert_eq!(path.as_deref(), Some("/channels/{channel_id}/messages"));
    }
    parents.sort();
    parents.dedup();
    assert_eq!(parents.len(), 3, "each POST has a parent of its own");
    // the direct client's request has no child
    let me = requests
        .iter()
        .find(|request| {
            request
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == "path" && kv.value.as_str() == "/users/@me")
        })
        .expect("the direct client's span");
    assert!(spans.iter().all(|span| span.parent_span_id != id_of(me)));
}

// Single-threaded, as above.
#[tokio::test(flavor = "current_thread")]
async fn a_request_twilight_retries_is_a_child_of_the_same_span() {
    use botscope_testkit::rest::{RateLimitKind, Reply};

    let _serial = SERIAL.lock().await;
    let (exporter, _default) = exporting();

    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = botscope_testkit::TestMetrics::new("disruptor");
    let (proxy, http) = common::proxy_to(&fake, &metrics, |builder| builder).await;
    // the first answer is a 429: twilight sends the request again at once
    fake.push(Reply::rate_limited_for(
        RateLimitKind::User,
        std::time::Duration::from_millis(50),
    ));
    http.create_message(Id::new(42))
        .content("again")
        .await
        .expect("POST, answered the second time");
    assert_eq!(fake.requests().len(), 2, "twilight retried");
    assert_eq!(
        TwilightRequests::pending(),
        0,
        "the span closed, nothing is kept"
    );
    proxy.shutdown().await;

    let spans = exporter.get_finished_spans().unwrap();
    let requests = named(&spans, "request");
    assert_eq!(requests.len(), 1, "one twilight request span");
    let posts = named(&spans, "POST /channels/{channel_id}/messages");
    assert_eq!(posts.len(), 2, "a proxy span per attempt");
    for post in posts {
        assert_eq!(
            post.parent_span_id,
            id_of(requests[0]),
            "both under twilight's span"
        );
    }
}
