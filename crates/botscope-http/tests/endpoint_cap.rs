//! Requests the proxy refuses itself never take a slot of the endpoint cap: the routes the
//! bot really calls keep their own `endpoint` label.

mod common;

use botscope_http::DiscordMetricsLayer;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::FakeDiscord;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::test]
async fn refused_requests_use_no_endpoint_cap_slot() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    // Room for the two routes the bot calls, and nothing else.
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .endpoint_cap(2)
        .build();
    let (proxy, bot) =
        common::proxy_to(&fake, &metrics, |builder| builder.metrics_layer(layer)).await;

    // Each answered by the proxy itself: 404 (no API version), 400 (a dot segment, an empty
    // one), 405 (a method Discord has not).
    let raw = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let base = format!("http://{}", proxy.local_addr());
    for (method, path, status) in [
        ("GET", "/api/users/@me", 404),
        ("GET", "/api/guilds/1/members", 404),
        ("GET", "/favicon.ico", 404),
        ("GET", "/api/v10/channels/1/../messages", 400),
        ("GET", "/api/v10/channels//messages", 400),
        ("OPTIONS", "/api/v10/applications/1/commands", 405),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .body(Empty::new())
            .unwrap();
        let response = raw.request(request).await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
    }
    assert_eq!(fake.request_count(), 0, "nothing refused was forwarded");

    bot.current_user().await.unwrap();
    bot.gateway().authed().await.unwrap();

    let scrape = metrics.scrape();
    let endpoints = scrape.label_values("disruptor_discord_api_requests_total", "endpoint");
    assert_eq!(
        endpoints,
        ["/gateway/bot", "/users/@me"],
        "{}",
        scrape.text()
    );
    proxy.shutdown().await;
}
