//! DiscordMetricsLayer over in-memory services, asserted from a real scrape.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use botscope_http::metrics::BoxError;
use botscope_http::{DiscordMetricsLayer, ForwardFailure};
use botscope_testkit::TestMetrics;
use common::TheirError;
use tower::{Layer, Service, ServiceExt, service_fn};

fn request(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
}

fn response(status: u16, headers: &[(&'static str, &'static str)]) -> http::Response<()> {
    let mut builder = http::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn counts_requests_with_templated_labels_and_times_them() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut service = layer.layer(service_fn(|req: http::Request<()>| async move {
        let status = if req.method() == http::Method::POST {
            200
        } else {
            404
        };
        Ok::<_, Infallible>(response(status, &[]))
    }));
    for id in ["1", "22", "333"] {
        let path = format!("/api/v10/channels/{id}/messages?limit=5");
        service
            .ready()
            .await
            .unwrap()
            .call(request("POST", &path))
            .await
            .unwrap();
    }
    service
        .ready()
        .await
        .unwrap()
        .call(request("OPTIONS", "/api/v10/channels/9/messages/8"))
        .await
        .unwrap();

    let scrape = metrics.scrape();
    let endpoint = "/channels/{channel_id}/messages";
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", endpoint),
                ("method", "POST"),
                ("status_code", "200")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", "/channels/{channel_id}/messages/{message_id}"),
                ("method", "_OTHER"),
                ("status_code", "404")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_request_duration_seconds_count",
            &[("endpoint", endpoint), ("method", "POST")]
        ),
        Some(3.0)
    );
    // In-memory answers: well inside a second, even on a loaded debug build (the first
    // request also builds the SDK's series, which took over 5 ms once on the CI machine).
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_request_duration_seconds_bucket",
            &[("endpoint", endpoint), ("le", "1")]
        ),
        Some(3.0)
    );
    assert_eq!(
        scrape.value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    assert!(!scrape.text().contains("333"), "an id reached the scrape");
}

#[tokio::test]
async fn service_errors_pass_through_and_count_as_error_whatever_their_type() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut boxed = layer.layer(service_fn(|_req: http::Request<()>| async move {
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        Err::<http::Response<()>, BoxError>(Box::new(timed_out))
    }));
    let err = boxed
        .ready()
        .await
        .unwrap()
        .call(request("GET", "/api/v10/users/@me"))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind),
        Some(std::io::ErrorKind::TimedOut),
        "the error passes through unchanged"
    );
    let mut theirs = layer.layer(service_fn(|_req: http::Request<()>| async move {
        Err::<http::Response<()>, _>(TheirError("gave up".to_owned()))
    }));
    let err = theirs
        .ready()
        .await
        .unwrap()
        .call(request("GET", "/api/v10/slow"))
        .await
        .unwrap_err();
    assert_eq!(err.0, "gave up");

    let scrape = metrics.scrape();
    for endpoint in ["/users/@me", "/{param}"] {
        assert_eq!(
            scrape.value(
                "disruptor_discord_api_requests_total",
                &[("endpoint", endpoint), ("status_code", "error")]
            ),
            Some(1.0),
            "{endpoint}"
        );
    }
    assert!(
        !scrape.text().contains("status_code=\"timeout\""),
        "a service error is never guessed to be a timeout from its type"
    );
}

#[tokio::test]
async fn a_forward_failure_marker_counts_as_timeout_or_error() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut service = layer.layer(service_fn(|req: http::Request<()>| async move {
        let (status, kind) = if req.uri().path().ends_with("slow") {
            (504, ForwardFailure::Timeout)
        } else {
            (502, ForwardFailure::Unreachable)
        };
        let mut response = response(status, &[]);
        response.extensions_mut().insert(kind);
        Ok::<_, Infallible>(response)
    }));
    for path in ["/api/v10/users/@me", "/api/v10/gateway/slow"] {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("GET", path))
            .await
            .unwrap();
        assert!(response.status().is_server_error());
    }
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[("endpoint", "/users/@me"), ("status_code", "error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[("endpoint", "/gateway/{param}"), ("status_code", "timeout")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_request_duration_seconds_count",
            &[("endpoint", "/gateway/{param}")]
        ),
        Some(1.0),
        "a request answered by the proxy is timed like any other"
    );
}

#[tokio::test]
async fn a_panicking_inner_future_counts_as_panic_and_the_panic_resumes_unchanged() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut service = layer.layer(service_fn(|_req: http::Request<()>| async move {
        if true {
            std::panic::panic_any(TheirError("inner service blew up".to_owned()));
        }
        Ok::<_, Infallible>(response(200, &[]))
    }));
    let future = service
        .ready()
        .await
        .unwrap()
        .call(request("POST", "/api/v10/channels/1/messages"));
    let in_flight = metrics
        .scrape()
        .value("disruptor_discord_api_requests_in_flight", &[]);
    assert_eq!(in_flight, Some(1.0));
    let payload = futures_catch_unwind(future).await.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<TheirError>().map(|e| e.0.as_str()),
        Some("inner service blew up"),
        "the caller sees the original payload"
    );

    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", "/channels/{channel_id}/messages"),
                ("method", "POST"),
                ("status_code", "panic")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    assert!(
        !scrape.has("disruptor_discord_api_request_duration_seconds_count"),
        "a panicked request is not timed"
    );
}

/// Polls `future` to its end, catching a panic of any poll.
async fn futures_catch_unwind<F: Future>(
    future: F,
) -> Result<F::Output, Box<dyn std::any::Any + Send>> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await
}

#[tokio::test]
async fn rate_limits_by_scope_and_invalid_requests() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut service = layer.layer(service_fn(|req: http::Request<()>| async move {
        let response = match req.uri().path() {
            "/api/v10/user" => response(
                429,
                &[("x-ratelimit-scope", "user"), ("x-ratelimit-bucket", "b")],
            ),
            "/api/v10/global" => response(
                429,
                &[
                    ("x-ratelimit-scope", "global"),
                    ("x-ratelimit-global", "true"),
                ],
            ),
            "/api/v10/shared" => response(
                429,
                &[("x-ratelimit-scope", "shared"), ("retry-after", "3")],
            ),
            "/api/v10/cloudflare" => response(429, &[("retry-after", "30")]),
            "/api/v10/unauthorized" => response(401, &[]),
            "/api/v10/forbidden" => response(403, &[]),
            _ => response(200, &[]),
        };
        Ok::<_, Infallible>(response)
    }));
    for path in [
        "user",
        "global",
        "shared",
        "cloudflare",
        "unauthorized",
        "forbidden",
        "fine",
    ] {
        let req = request("GET", &format!("/api/v10/{path}"));
        service.ready().await.unwrap().call(req).await.unwrap();
    }
    let scrape = metrics.scrape();
    for scope in ["user", "global", "shared", "cloudflare"] {
        assert_eq!(
            scrape.value(
                "disruptor_discord_api_ratelimited_total",
                &[("scope", scope)]
            ),
            Some(1.0),
            "scope {scope}"
        );
    }
    // 401 + 403 + user, global and cloudflare 429s; the shared 429 does not count.
    assert_eq!(
        scrape.value("disruptor_discord_api_invalid_requests", &[]),
        Some(5.0)
    );
}

/// A service whose responses never come.
#[derive(Clone)]
struct Never;

impl Service<http::Request<()>> for Never {
    type Response = http::Response<()>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<()>) -> Self::Future {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_request_dropped_before_its_response_counts_as_cancelled() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut service = layer.layer(Never);
    let first = service.call(request("GET", "/api/v10/users/@me"));
    let second = service.call(request("GET", "/api/v10/users/@me"));
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_requests_in_flight", &[]),
        Some(2.0)
    );
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(10), first).await;
    assert!(timed_out.is_err());
    drop(second);
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", "/users/@me"),
                ("method", "GET"),
                ("status_code", "cancelled")
            ]
        ),
        Some(2.0)
    );
    assert!(
        !scrape.has("disruptor_discord_api_request_duration_seconds_count"),
        "a cancelled request is not timed"
    );
}

#[tokio::test]
async fn endpoint_series_are_capped() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .endpoint_cap(3)
        .build();
    let mut service = layer.layer(service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(response(200, &[]))
    }));
    for path in [
        "users", "guilds", "channels", "invites", "gateway", "stickers",
    ] {
        let req = request("GET", &format!("/api/v10/{path}"));
        service.ready().await.unwrap().call(req).await.unwrap();
    }
    let endpoints = metrics
        .scrape()
        .label_values("disruptor_discord_api_requests_total", "endpoint");
    assert_eq!(endpoints, ["/channels", "/guilds", "/users", "other"]);
}

fn unauthorized() -> impl Service<
    http::Request<()>,
    Response = http::Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<()>, Infallible>>,
> + Clone {
    service_fn(|_req: http::Request<()>| async { Ok::<_, Infallible>(response(401, &[])) })
}

#[tokio::test]
async fn in_flight_adds_up_across_layers_on_one_provider() {
    let metrics = TestMetrics::new("disruptor");
    let a = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let b = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    // Bound at build: the series is there before any request, at 0.
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    let mut first = a.layer(Never);
    let mut second = b.layer(Never);
    let pending = [
        first.call(request("GET", "/api/v10/users/@me")),
        first.call(request("GET", "/api/v10/users/@me")),
        second.call(request("GET", "/api/v10/users/@me")),
    ];
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_requests_in_flight", &[]),
        Some(3.0)
    );
    drop(pending);
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_dropped_layer_stops_reporting_invalid_requests() {
    let metrics = TestMetrics::new("disruptor");
    let kept = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut kept_service = kept.layer(unauthorized());
    kept_service
        .ready()
        .await
        .unwrap()
        .call(request("GET", "/api/v10/users/@me"))
        .await
        .unwrap();
    {
        // A proxy that was shut down: its layer and services are gone.
        let gone = DiscordMetricsLayer::builder()
            .meter(metrics.meter())
            .build();
        let mut service = gone.layer(unauthorized());
        for _ in 0..3 {
            service
                .ready()
                .await
                .unwrap()
                .call(request("GET", "/api/v10/users/@me"))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_invalid_requests", &[]),
        Some(1.0),
        "the dropped layer's count is not reported any more"
    );
}

#[tokio::test]
async fn clones_of_one_layer_share_the_invalid_request_window() {
    let metrics = TestMetrics::new("disruptor");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut a = layer.clone().layer(unauthorized());
    let mut b = layer.layer(unauthorized());
    for use_b in [false, false, false, true] {
        let service = if use_b { &mut b } else { &mut a };
        service
            .ready()
            .await
            .unwrap()
            .call(request("GET", "/api/v10/users/@me"))
            .await
            .unwrap();
    }
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[("status_code", "401")]
        ),
        Some(4.0)
    );
    assert_eq!(
        scrape.value("disruptor_discord_api_invalid_requests", &[]),
        Some(4.0)
    );
}
