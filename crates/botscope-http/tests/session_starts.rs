//! The session start budget of `GET /gateway/bot`, read by the proxy as the real twilight-http
//! client's answer passes: four gauges, no code of the bot's.

mod common;

use std::time::Duration;

use botscope_testkit::TestMetrics;
use botscope_testkit::rest::{FakeDiscord, SessionStartLimit};
use common::proxy_to;

fn gauges(metrics: &TestMetrics) -> [Option<f64>; 4] {
    let scrape = metrics.scrape();
    [
        "disruptor_gateway_session_starts_remaining",
        "disruptor_gateway_session_starts_total_limit",
        "disruptor_gateway_session_starts_reset_seconds",
        "disruptor_gateway_max_concurrency",
    ]
    .map(|name| scrape.value(name, &[]))
}

#[tokio::test]
async fn gateway_bot_publishes_the_session_start_budget() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;
    fake.set_gateway("wss://gateway.example", 4);
    fake.set_session_start_limit(SessionStartLimit {
        total: 1_000,
        remaining: 986,
        reset_after: Duration::from_millis(12_345_678),
        max_concurrency: 16,
    });

    assert_eq!(gauges(&metrics), [None; 4], "nothing before the answer");
    let info = client
        .gateway()
        .authed()
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    // The body the proxy read reaches the client unchanged.
    assert_eq!(info.shards, 4);
    assert_eq!(info.url, "wss://gateway.example");
    assert_eq!(info.session_start_limit.remaining, 986);
    assert_eq!(info.session_start_limit.max_concurrency, 16);
    assert_eq!(
        gauges(&metrics),
        [Some(986.0), Some(1_000.0), Some(12_345.678), Some(16.0)]
    );
    // The proxy asked for an uncompressed answer, whatever the client accepts.
    let request = fake.requests().pop().unwrap();
    assert_eq!(request.path, "/api/v10/gateway/bot");
    assert!(!request.headers.contains_key("accept-encoding"));

    // A later answer replaces the figures.
    fake.set_session_start_limit(SessionStartLimit {
        remaining: 985,
        ..SessionStartLimit::default()
    });
    client.gateway().authed().await.unwrap();
    assert_eq!(gauges(&metrics)[0], Some(985.0));
    // Other routes leave them alone.
    client.current_user().await.unwrap();
    client.gateway().await.unwrap();
    assert_eq!(gauges(&metrics)[0], Some(985.0));
    proxy.shutdown().await;
}
