//! botscope picks no crypto provider and installs none. A bot that leaves rustls to choose
//! from its crate features (twilight-http's `build()` installs that choice) works through the
//! proxy all the same: the proxy builds its own TLS client on the first request, with the
//! provider the process has by then.
//!
//! Its own test binary: no other test may install a provider first.

use botscope_http::DiscordProxy;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::FakeDiscord;
use rustls::crypto::CryptoProvider;

#[tokio::test]
async fn a_bot_relying_on_rustls_crate_features_works_through_the_proxy() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter())
        .spawn()
        .await
        .expect("the proxy starts without a provider");
    assert!(
        CryptoProvider::get_default().is_none(),
        "botscope installed a process-wide provider"
    );

    // twilight-http installs the provider rustls' features name (here ring, the only one).
    let client = proxy
        .configure(twilight_http::Client::builder().token("fake".to_owned()))
        .build();
    assert!(CryptoProvider::get_default().is_some());
    let me = client.current_user().await.unwrap().model().await.unwrap();
    assert_eq!(me.id.get(), botscope_testkit::rest::BOT_USER_ID);
    assert_eq!(
        metrics.scrape().value(
            "disruptor_discord_api_requests_total",
            &[("endpoint", "/users/@me"), ("status_code", "200")]
        ),
        Some(1.0)
    );
    proxy.shutdown().await;
}
