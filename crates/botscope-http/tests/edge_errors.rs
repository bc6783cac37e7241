//! Answers of Discord's edge (Cloudflare) rather than its API, sent by the fake Discord to the
//! real twilight-http client through the proxy: counted by kind in
//! `N_discord_api_edge_errors_total`, kept in the invalid-request window as Discord counts
//! them, and passed on to the client unchanged.

mod common;

use botscope_testkit::TestMetrics;
use botscope_testkit::rest::{EdgeKind, FakeDiscord, Reply};
use common::{Capture, proxy_to, status_of};
use twilight_http::api_error::ApiError;
use twilight_http::error::ErrorType;

const EDGE: &str = "disruptor_discord_api_edge_errors_total";
const INVALID: &str = "disruptor_discord_api_invalid_requests";
const RATELIMITED: &str = "disruptor_discord_api_ratelimited_total";
const KINDS: [&str; 4] = [
    "cloudflare_1015",
    "ratelimit_no_headers",
    "internal_network_error",
    "edge_5xx",
];

/// The edge counts by kind, in the order of [`KINDS`].
fn edge_counts(metrics: &TestMetrics) -> [f64; 4] {
    let scrape = metrics.scrape();
    KINDS.map(|kind| scrape.value(EDGE, &[("kind", kind)]).unwrap_or(0.0))
}

#[tokio::test]
async fn a_cloudflare_1015_ban_is_an_edge_error_a_ratelimit_and_an_invalid_request() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    fake.push(Reply::Edge(EdgeKind::Cloudflare1015));
    // twilight-http retries a 429 until it gets an answer: the second one is the route's.
    let me = client.current_user().await.unwrap().model().await.unwrap();
    assert_eq!(me.id.get(), botscope_testkit::rest::BOT_USER_ID);
    assert_eq!(fake.request_count(), 2);

    assert_eq!(edge_counts(&metrics), [1.0, 0.0, 0.0, 0.0]);
    let scrape = metrics.scrape();
    assert_eq!(scrape.value(INVALID, &[]), Some(1.0));
    assert_eq!(
        scrape.value(
            RATELIMITED,
            &[("endpoint", "/users/@me"), ("scope", "cloudflare")]
        ),
        Some(1.0)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_header_less_429_with_discords_json_is_a_ratelimit_without_headers() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    fake.push(Reply::Edge(EdgeKind::RatelimitNoHeaders));
    client.current_user().await.unwrap();

    assert_eq!(edge_counts(&metrics), [0.0, 1.0, 0.0, 0.0]);
    assert_eq!(metrics.scrape().value(INVALID, &[]), Some(1.0));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_40333_internal_network_error_is_an_edge_error_and_an_invalid_request() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    fake.push(Reply::Edge(EdgeKind::InternalNetworkError));
    let error = client.current_user().await.unwrap_err();
    assert_eq!(status_of(&error), 403);
    // The body the proxy read reaches the client unchanged.
    let ErrorType::Response {
        error: ApiError::General(general),
        ..
    } = error.kind()
    else {
        panic!("expected Discord's JSON error, got {:?}", error.kind());
    };
    assert_eq!(general.code, 40_333);
    // Another 403, of the API: an invalid request, not the edge.
    fake.push(Reply::Status(403));
    assert_eq!(status_of(&client.current_user().await.unwrap_err()), 403);

    assert_eq!(edge_counts(&metrics), [0.0, 0.0, 1.0, 0.0]);
    let scrape = metrics.scrape();
    assert_eq!(scrape.value(INVALID, &[]), Some(2.0));
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", "/users/@me"),
                ("method", "GET"),
                ("status_code", "403")
            ]
        ),
        Some(2.0)
    );
    proxy.shutdown().await;
    assert!(
        !capture.text().contains("internal network error"),
        "a body was logged"
    );
}

#[tokio::test]
async fn an_html_5xx_is_an_edge_error_and_discords_json_5xx_is_not() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    for reply in [
        Reply::Edge(EdgeKind::Html5xx(502)),
        Reply::Edge(EdgeKind::Html5xx(521)),
        Reply::Status(500),
        Reply::Status(503),
    ] {
        fake.push(reply);
        // twilight-http reports the HTML pages as bodies it could not parse.
        assert!(client.current_user().await.is_err());
    }

    assert_eq!(edge_counts(&metrics), [0.0, 0.0, 0.0, 2.0]);
    for status in ["502", "521", "500", "503"] {
        let labels = [
            ("endpoint", "/users/@me"),
            ("method", "GET"),
            ("status_code", status),
        ];
        let requests = metrics
            .scrape()
            .value("disruptor_discord_api_requests_total", &labels);
        assert_eq!(requests, Some(1.0), "{status}");
    }
    // A 5xx is no invalid request.
    assert_eq!(metrics.scrape().value(INVALID, &[]), Some(0.0));
    proxy.shutdown().await;
}

#[tokio::test]
async fn api_errors_are_not_edge_errors() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy_to(&fake, &metrics, |builder| builder).await;

    for status in [400, 401, 404] {
        fake.push(Reply::Status(status));
        let _ = client.current_user().await;
    }
    assert!(!metrics.scrape().has(EDGE), "{}", metrics.render());
    proxy.shutdown().await;
}
