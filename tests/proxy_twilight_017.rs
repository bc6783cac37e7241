//! The proxy serves any twilight-http: a bot still on twilight-http 0.17 points its client at
//! it with the two builder calls the README shows, and its requests are measured.

use std::time::Duration;

use botscope::http::DiscordProxy;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::{BOT_USER_ID, FakeDiscord};

#[tokio::test]
async fn twilight_http_017_goes_through_the_proxy() {
    // the bot's own TLS: the proxy's upstream client needs a process-wide crypto provider
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rest = FakeDiscord::spawn().await.expect("fake REST");
    let metrics = TestMetrics::new("old");
    let proxy = DiscordProxy::builder()
        .upstream(rest.url())
        .meter(metrics.meter())
        .spawn()
        .await
        .expect("proxy");

    // what `DiscordProxy::configure` does for twilight-http 0.18, by hand
    let http = twilight_http_017::Client::builder()
        .proxy(proxy.local_addr().to_string(), true)
        .ratelimiter(None)
        .timeout(Duration::from_secs(3600))
        .token("fake-token".to_owned())
        .build();
    let me = http
        .current_user()
        .await
        .expect("GET users/@me")
        .model()
        .await
        .expect("a user");
    assert_eq!(me.id.get(), BOT_USER_ID);
    let channel = twilight_model_017::id::Id::new(42);
    http.create_message(channel)
        .content("hi")
        .await
        .expect("POST a message");

    let scrape = metrics.scrape();
    let requests = |endpoint, method| {
        scrape.value(
            "old_discord_api_requests_total",
            &[
                ("endpoint", endpoint),
                ("method", method),
                ("status_code", "200"),
            ],
        )
    };
    assert_eq!(
        requests("/users/@me", "GET"),
        Some(1.0),
        "{}",
        scrape.text()
    );
    assert_eq!(
        requests("/channels/{channel_id}/messages", "POST"),
        Some(1.0)
    );
    assert!(!scrape.text().contains("fake-token"));
    proxy.shutdown().await;
}
