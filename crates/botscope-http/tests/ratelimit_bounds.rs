//! Hostile ratelimit headers through the real proxy: no wait beyond its documented bounds, and
//! a webhook's 429 still holds that webhook (and only it), with its queue kept per token.

mod common;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use botscope_http::DiscordProxy;
use botscope_http::ratelimit::{DEFAULT_BACKOFF, MAX_RETRY_AFTER, MIN_BACKOFF};
use botscope_testkit::client::request;
use botscope_testkit::rest::{FakeDiscord, RateLimitKind, Reply};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use twilight_http_ratelimiting::{Endpoint, Method, RateLimiter};

/// An upstream whose first answer is a 429 with `headers`, and every later one `200 {}`.
async fn upstream_429_once(headers: &'static [(&'static str, &'static str)]) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        if first {
                            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                            for (name, value) in headers {
                                response
                                    .headers_mut()
                                    .insert(*name, HeaderValue::from_static(value));
                            }
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A shared 429 whose every wait is `value`.
macro_rules! shared_429 {
    ($value:literal) => {
        &[
            ("x-ratelimit-scope", "shared"),
            ("x-ratelimit-bucket", "b0b"),
            ("x-ratelimit-limit", "1"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", $value),
            ("retry-after", $value),
        ]
    };
}

async fn proxy_to(upstream: SocketAddr, limiter: Option<RateLimiter>) -> DiscordProxy {
    common::install_tls();
    let builder = DiscordProxy::builder().upstream(format!("http://{upstream}"));
    let builder = match limiter {
        Some(limiter) => builder.ratelimiter(limiter),
        None => builder,
    };
    builder.spawn().await.expect("proxy")
}

#[tokio::test]
async fn a_shared_429_with_a_nan_retry_after_holds_its_route_for_the_default_backoff() {
    let upstream = upstream_429_once(shared_429!("NaN")).await;
    let proxy = proxy_to(upstream, None).await;
    let addr = proxy.local_addr();

    let start = Instant::now();
    let limited = request(addr, "GET", "/api/v10/users/@me", &[])
        .await
        .unwrap();
    assert_eq!(limited.status, 429, "the 429 reaches the client");
    let next = request(addr, "GET", "/api/v10/users/@me", &[])
        .await
        .unwrap();
    let held = start.elapsed();
    assert_eq!(next.status, 200);
    assert!(
        held >= DEFAULT_BACKOFF.max(MIN_BACKOFF) && held < DEFAULT_BACKOFF * 3,
        "an unreadable wait holds the route for the default backoff, not 65,535 s: {held:?}"
    );
    proxy.shutdown().await;
}

/// What twilight's limiter, shared with the proxy, reports for the bucket of `GET users/@me`
/// after a shared 429 whose waits are `headers`.
async fn hold_after(headers: &'static [(&'static str, &'static str)]) -> Duration {
    let upstream = upstream_429_once(headers).await;
    let limiter = RateLimiter::default();
    let proxy = proxy_to(upstream, Some(limiter.clone())).await;
    let limited = request(proxy.local_addr(), "GET", "/api/v10/users/@me", &[])
        .await
        .unwrap();
    assert_eq!(limited.status, 429);
    let endpoint = Endpoint {
        method: Method::Get,
        path: "users/@me".to_owned(),
    };
    // The permit was completed as the response head passed; the limiter's actor learns the
    // bucket from it in its own time, so ask until it has (or fail after 5 s).
    let asked = Instant::now();
    let bucket = loop {
        if let Some(bucket) = limiter.bucket(endpoint.clone()).await {
            break bucket;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "the bucket is learned"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(bucket.remaining, 0, "exhausted");
    proxy.shutdown().await;
    bucket
        .reset_at
        .saturating_duration_since(std::time::Instant::now())
}

#[tokio::test]
async fn huge_and_infinite_waits_on_a_shared_429_are_cut_to_the_documented_cap() {
    for hold in [
        hold_after(shared_429!("inf")).await,
        hold_after(shared_429!("1e300")).await,
        hold_after(shared_429!("65536")).await,
    ] {
        // twilight's limiter keeps deadlines on a timer wheel of millisecond slots.
        let slot = Duration::from_millis(10);
        assert!(
            hold <= MAX_RETRY_AFTER + slot && hold > MAX_RETRY_AFTER - Duration::from_secs(60),
            "held for {hold:?}, cap {MAX_RETRY_AFTER:?}"
        );
    }
}

#[tokio::test]
async fn a_webhooks_429_holds_that_webhook_and_no_other() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let reset = Duration::from_millis(1_500);
    fake.push(Reply::rate_limited_for(RateLimitKind::User, reset));
    let proxy = proxy_to(fake.addr(), None).await;
    let addr = proxy.local_addr();
    let limited = "/api/v10/webhooks/1000000000000000001/first-webhook-token";
    let other = "/api/v10/webhooks/1000000000000000002/second-webhook-token";

    let start = Instant::now();
    assert_eq!(
        request(addr, "POST", limited, &[]).await.unwrap().status,
        429
    );
    let before_other = Instant::now();
    assert_eq!(request(addr, "POST", other, &[]).await.unwrap().status, 204);
    let other_took = before_other.elapsed();
    assert!(
        other_took < Duration::from_millis(500),
        "another webhook went at once: {other_took:?}"
    );
    // Another path of the same webhook waits in the same queue.
    let same = format!("{limited}/messages/@original");
    assert_eq!(request(addr, "GET", &same, &[]).await.unwrap().status, 200);
    let held = start.elapsed();
    assert!(held >= reset, "the webhook waited for its reset: {held:?}");
    assert!(held < reset * 3, "and no longer: {held:?}");
    assert_eq!(fake.request_count(), 3);
    proxy.shutdown().await;
}
