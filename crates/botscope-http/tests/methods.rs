//! Only Discord's methods are forwarded: anything else gets 405 from the proxy itself, with an
//! `Allow` header, and never reaches Discord, the ratelimiter or the metrics.

mod common;

use botscope_http::proxy::FORWARDED_METHODS;
use botscope_testkit::TestMetrics;
use botscope_testkit::client::request;
use botscope_testkit::rest::FakeDiscord;
use common::proxy_to;

#[tokio::test]
async fn methods_discord_does_not_use_get_405_and_are_not_forwarded() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;
    let addr = proxy.local_addr();

    // twilight-http sends none of these (its `Method` has GET, POST, PUT, PATCH, DELETE).
    for method in ["TRACE", "OPTIONS", "HEAD", "PROPFIND", "BREW"] {
        let reply = request(addr, method, "/api/v10/users/@me", &[])
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"));
        assert_eq!(reply.status, 405, "{method}: {}", reply.text());
        assert_eq!(reply.header("allow"), Some(FORWARDED_METHODS), "{method}");
    }
    let connect = request(addr, "CONNECT", "discord.com:443", &[])
        .await
        .unwrap();
    assert_eq!(connect.status, 405, "{}", connect.text());
    assert_eq!(fake.request_count(), 0, "nothing reached the upstream");

    // Discord's own methods still pass.
    client.current_user().await.unwrap();
    assert_eq!(fake.request_count(), 1);
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.label_values("disruptor_discord_api_requests_total", "method"),
        ["GET"],
        "refused requests are not counted: {}",
        scrape.text()
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_ratelimit_wait_seconds_count",
            &[("endpoint", "/users/@me")]
        ),
        Some(1.0),
        "only the forwarded request went through the limiter"
    );
    proxy.shutdown().await;
}
