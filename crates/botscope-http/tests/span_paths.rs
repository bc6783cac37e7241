//! No token in an exported span: twilight's `request` and `response` spans carry the raw
//! path, and `TemplatePaths` in front of the exporter turns it into the route template.
//! Every operation of Discord's official list, filled with hostile values as twilight sends
//! them, and a real twilight-http client through the proxy.

mod common;

use botscope_http::trace::TemplatePaths;
use botscope_testkit::rest::FakeDiscord;
use common::official::{self, Param, VARIANTS};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use tracing_subscriber::layer::SubscriberExt as _;

/// A subscriber exporting every span to memory, through `TemplatePaths` when `templated`.
fn exporting(templated: bool) -> (InMemorySpanExporter, tracing::Dispatch) {
    let exporter = InMemorySpanExporter::default();
    let processor = SimpleSpanProcessor::new(exporter.clone());
    let builder = SdkTracerProvider::builder();
    let provider = if templated {
        builder.with_span_processor(TemplatePaths::new(processor))
    } else {
        builder.with_span_processor(processor)
    }
    .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("twilight"));
    (
        exporter,
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
    )
}

/// Everything an exporter would send of `spans`, as text.
fn exported(spans: &[SpanData]) -> String {
    spans
        .iter()
        .map(|span| format!("{} {:?} {:?}\n", span.name, span.attributes, span.events))
        .collect()
}

#[test]
fn no_value_of_any_official_route_reaches_an_exported_span() {
    let (exporter, dispatch) = exporting(true);
    let ops = official::operations(official::VENDORED);
    let mut secrets = std::collections::BTreeSet::new();
    tracing::dispatcher::with_default(&dispatch, || {
        for op in &ops {
            for variant in 0..VARIANTS {
                let (path, values) = official::fill(op, variant);
                // twilight's fields: the method's name and the path without its first slash
                let path = path.trim_start_matches('/');
                let request = tracing::info_span!(
                    target: "twilight_http::client",
                    "request",
                    method = op.method.as_str(),
                    path
                );
                let _entered = request.enter();
                tracing::info_span!(
                    target: "twilight_http_ratelimiting::actor",
                    "response",
                    method = op.method.as_str(),
                    path
                )
                .in_scope(|| tracing::info!(path, "rate limited; retrying"));
                secrets.extend(
                    values
                        .into_iter()
                        .filter(|(_, kind)| !matches!(kind, Param::Integer))
                        .map(|(value, _)| value),
                );
            }
        }
    });
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), ops.len() * VARIANTS * 2);
    let text = exported(&spans);
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} reached an exported span"
        );
    }
    assert!(
        text.contains("/webhooks/{webhook_id}/{webhook_token}"),
        "{text}"
    );
    assert!(text.contains("/lobbies/{lobby_id}/members/{user_id}"));
}

// Single-threaded, so the proxy's tasks and twilight's span share the test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_webhook_call_through_twilight_and_the_proxy_exports_no_token() {
    common::install_tls();
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = botscope_testkit::TestMetrics::new("disruptor");
    let token = official::WEBHOOK_TOKEN;
    let mut seen = Vec::new();
    for templated in [false, true] {
        let (exporter, dispatch) = exporting(templated);
        let _default = tracing::dispatcher::set_default(&dispatch);
        let (proxy, http) = common::proxy_to(&fake, &metrics, |builder| builder).await;
        let _ = http
            .execute_webhook(
                twilight_model::id::Id::new(1_234_567_890_123_456_789),
                token,
            )
            .content("hi")
            .await;
        proxy.shutdown().await;
        let text = exported(&exporter.get_finished_spans().unwrap());
        assert!(
            text.contains("request"),
            "twilight's span was exported: {text}"
        );
        seen.push(text.contains(token));
    }
    // without the processor twilight's span exports the token; with it, nothing does
    assert_eq!(seen, [true, false]);
}
