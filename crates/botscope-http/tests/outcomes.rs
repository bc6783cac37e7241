//! How each ending of a REST request lands in the scrape, through the proxy and the real
//! twilight-http client: abandoned by the caller, timed out behind a user's layer, and one
//! `endpoint` decision shared by every metric family.
//!
//! A panic is tested on `DiscordMetricsLayer` alone (tests/metrics_layer.rs): inside the
//! proxy nothing below the metrics layer runs code of the user's, so no panic can be injected
//! there.

mod common;

use std::time::Duration;

use botscope_http::DiscordMetricsLayer;
use botscope_http::metrics::BoxError;
use botscope_http::proxy::ProxyBody;
use botscope_testkit::rest::FakeDiscord;
use botscope_testkit::{Scrape, TestMetrics};
use common::{TheirError, proxy_to, status_of};
use twilight_model::id::Id;

/// Scrapes until `settled` holds, for at most 5 s; the last scrape.
async fn scrape_until(metrics: &TestMetrics, settled: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let scrape = metrics.scrape();
        if settled(&scrape) || tokio::time::Instant::now() >= deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn requests(scrape: &Scrape, endpoint: &str, status: &str) -> Option<f64> {
    scrape.value(
        "disruptor_discord_api_requests_total",
        &[("endpoint", endpoint), ("status_code", status)],
    )
}

#[tokio::test]
async fn a_call_twilight_abandons_counts_cancelled_and_leaves_nothing_in_flight() {
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.set_latency(Duration::from_secs(2));
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        client.current_user().into_future(),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up first");
    let in_flight = metrics
        .scrape()
        .value("disruptor_discord_api_requests_in_flight", &[]);
    assert_eq!(
        in_flight,
        Some(1.0),
        "the proxy still waits on the upstream"
    );

    // The proxy learns of it when twilight's connection closes.
    let scrape = scrape_until(&metrics, |scrape| {
        requests(scrape, "/users/@me", "cancelled") == Some(1.0)
            && scrape.value("disruptor_discord_api_requests_in_flight", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", "/users/@me"),
                ("method", "GET"),
                ("status_code", "cancelled")
            ]
        ),
        Some(1.0),
        "{}",
        scrape.text()
    );
    assert_eq!(
        scrape.value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    assert!(
        !scrape.has("disruptor_discord_api_request_duration_seconds_count"),
        "an abandoned request is not timed"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_timeout_behind_a_layer_that_maps_errors_is_still_a_504_counted_timeout() {
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.set_latency(Duration::from_secs(2));
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| {
        builder
            .timeout(Duration::from_millis(200))
            .layer(tower::util::MapErrLayer::new(
                TheirError::from as fn(BoxError) -> TheirError,
            ))
    })
    .await;

    let error = client.current_user().await.expect_err("timed out");
    assert_eq!(status_of(&error), 504);
    let scrape = metrics.scrape();
    assert_eq!(requests(&scrape, "/users/@me", "timeout"), Some(1.0));
    assert_eq!(
        scrape.value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_error_a_user_layer_returns_is_a_502_and_the_request_keeps_its_status() {
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.set_latency(Duration::from_secs(2));
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| {
        builder
            .timeout(Duration::from_millis(200))
            // A layer that fails every server error with an error of its own.
            .layer(tower::util::AndThenLayer::new(
                |response: http::Response<ProxyBody>| async move {
                    if response.status().is_server_error() {
                        Err(TheirError(format!("upstream said {}", response.status())))
                    } else {
                        Ok(response)
                    }
                },
            ))
    })
    .await;

    let error = client.current_user().await.expect_err("failed");
    assert_eq!(status_of(&error), 502, "the gate answers any error 502");
    assert_eq!(
        requests(&metrics.scrape(), "/users/@me", "timeout"),
        Some(1.0),
        "counted below the user's layer, as what happened upstream"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn one_endpoint_is_admitted_or_overflowed_alike_in_every_family() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    // Room for two endpoints.
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .endpoint_cap(2)
        .build();
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder.metrics_layer(layer)).await;

    // A request of another client takes the first slot. A limiter with a cap of its own
    // (500 by default) would then label the message below by its route, not `other`.
    let gateway = botscope_testkit::client::get(proxy.local_addr(), "/api/v10/gateway")
        .await
        .unwrap();
    assert_eq!(gateway.status, 200);
    client.current_user().await.unwrap();
    client.current_user().await.unwrap();
    client
        .create_message(Id::new(745_809_834_183_753_828))
        .content("past the cap")
        .await
        .unwrap();

    let scrape = metrics.scrape();
    let families = [
        (
            "disruptor_discord_api_requests_total",
            vec!["/gateway", "/users/@me", "other"],
        ),
        (
            "disruptor_discord_api_request_duration_seconds_count",
            vec!["/gateway", "/users/@me", "other"],
        ),
        (
            "disruptor_discord_api_ratelimit_wait_seconds_count",
            vec!["/gateway", "/users/@me", "other"],
        ),
    ];
    for (family, endpoints) in families {
        assert_eq!(
            scrape.label_values(family, "endpoint"),
            endpoints,
            "{family}"
        );
    }
    for (endpoint, count) in [("/users/@me", 2.0), ("other", 1.0)] {
        let counted = scrape.value(
            "disruptor_discord_api_requests_total",
            &[("endpoint", endpoint), ("status_code", "200")],
        );
        let waited = scrape.value(
            "disruptor_discord_api_ratelimit_wait_seconds_count",
            &[("endpoint", endpoint)],
        );
        assert_eq!((counted, waited), (Some(count), Some(count)), "{endpoint}");
    }
    proxy.shutdown().await;
}
