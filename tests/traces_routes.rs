//! No value of any official route reaches an exported span: all 242 operations of Discord's
//! list, filled with hostile values (tokens, emoji, codes, ids), sent by the real twilight-http
//! client through the in-process proxy, with botscope's whole trace stack on
//! (`Telemetry::tracing_layer()`, the batch processor, OTLP to the testkit's receiver). What
//! the receiver decoded is searched: span names, attributes and events.

#[path = "../crates/botscope-http/tests/common/official.rs"]
#[allow(dead_code)]
mod official;

#[path = "traces/mod.rs"]
mod traces;

use std::time::Duration;

use botscope::http::DiscordProxy;
use botscope::traces::Traces;
use botscope_testkit::otlp::OtlpReceiver;
use botscope_testkit::rest::FakeDiscord;
use official::{Param, VARIANTS};
use tracing_subscriber::layer::SubscriberExt as _;
use twilight_http::request::{Method, RequestBuilder};
use twilight_http::response::marker::EmptyBody;

#[tokio::test]
async fn no_value_of_any_official_route_reaches_an_exported_span() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let ops = official::operations(official::VENDORED);
    let sent = ops.len() * VARIANTS;
    let telemetry = traces::telemetry(
        Traces::otlp()
            .endpoint(receiver.traces_url())
            .batch_delay(Duration::from_millis(50))
            .max_queue_size(16 * sent),
    );
    // the process's subscriber, as a bot installs it
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(telemetry.tracing_layer()),
    )
    .expect("the only test of this binary");
    let rest = FakeDiscord::spawn().await.expect("fake REST");
    let proxy = DiscordProxy::builder()
        .upstream(rest.url())
        .meter(telemetry.meter("test"))
        .spawn()
        .await
        .expect("proxy");
    let bot_token = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
    let http = proxy
        .configure(twilight_http::Client::builder().token(bot_token.to_owned()))
        .build();

    let mut secrets = std::collections::BTreeSet::from([bot_token.to_owned()]);
    for op in &ops {
        for variant in 0..VARIANTS {
            let (path, values) = official::fill(op, variant);
            let method = match op.method.as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                "PUT" => Method::Put,
                "PATCH" => Method::Patch,
                "DELETE" => Method::Delete,
                other => panic!("an official operation with method {other}"),
            };
            let request = RequestBuilder::raw(method, path.trim_start_matches('/').to_owned())
                .build()
                .expect("a request");
            // whatever the fake answers (404 for most): the spans are what is tested
            let _ = http.request::<EmptyBody>(request).await;
            secrets.extend(
                values
                    .into_iter()
                    .filter(|(_, kind)| !matches!(kind, Param::Integer))
                    .map(|(value, _)| value),
            );
        }
    }
    assert_eq!(
        rest.requests().len(),
        sent,
        "every request reached the fake"
    );
    telemetry.flush_traces().await.expect("flushed");

    let spans = receiver.spans();
    let twilight = spans.iter().filter(|span| span.name == "request").count();
    let proxied = spans
        .iter()
        .filter(|span| span.attribute("url.template").is_some() && span.name != "ratelimit wait")
        .count();
    assert_eq!(
        (twilight, proxied),
        (sent, sent),
        "a twilight and a proxy span per request"
    );
    // twilight's raw path is exported, as a template (without TemplatePaths it is the raw
    // path: crates/botscope-http/tests/span_paths.rs shows the token then)
    let posted = spans
        .iter()
        .find(|span| span.name == "request" && span.attribute("method") == Some("POST"))
        .and_then(|span| span.attribute("path"))
        .expect("twilight's path attribute");
    assert!(posted.starts_with('/') && posted.contains('{'), "{posted}");
    for span in &spans {
        for text in span.texts() {
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{secret:?} in span {}: {text}",
                    span.name
                );
            }
        }
    }
    // the pairing put every proxy span under its twilight span
    let unpaired = spans
        .iter()
        .filter(|span| span.attribute("url.template").is_some() && span.name != "ratelimit wait")
        .filter(|span| {
            !spans
                .iter()
                .any(|parent| parent.name == "request" && parent.span_id == span.parent_span_id)
        })
        .count();
    assert_eq!(unpaired, 0);
}
