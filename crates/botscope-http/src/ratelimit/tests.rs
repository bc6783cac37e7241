//! The per-token queues, end to end through the layer, on paused time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::ratelimit::layer::RateLimitLayer;
use crate::ratelimit::queues::MIN_SWEEP_LEN;

/// A layer over a service answering every request 204 with `remaining` and a 1 s reset,
/// counting the requests it got.
fn layer_over(
    remaining: &'static str,
    sent: Arc<AtomicUsize>,
) -> (
    RateLimitLayer,
    impl Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = Infallible,
        Future = impl Send,
    > + Clone,
) {
    let layer = RateLimitLayer::builder()
        .sweep_interval(Duration::from_secs(5))
        .build();
    let service = service_fn(move |_request: http::Request<()>| {
        sent.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut response = http::Response::new(());
            *response.status_mut() = StatusCode::NO_CONTENT;
            *response.headers_mut() = botscope_testkit::headers(&[
                ("x-ratelimit-scope", "user"),
                ("x-ratelimit-bucket", "b"),
                ("x-ratelimit-limit", "5"),
                ("x-ratelimit-remaining", remaining),
                ("x-ratelimit-reset-after", "1.000"),
            ]);
            Ok::<_, Infallible>(response)
        }
    });
    (layer, service)
}

fn webhook(id: usize) -> http::Request<()> {
    http::Request::post(format!("/api/v10/webhooks/{id}/token-{id}"))
        .body(())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn distinct_webhooks_leave_nothing_behind_once_their_resets_pass() {
    let (layer, service) = layer_over("0", Arc::default());
    let service = layer.layer(service);
    // 1,000 requests a second, each holding its queue for 1 s.
    for id in 0..3_000 {
        service.clone().oneshot(webhook(id)).await.unwrap();
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    let kept = layer.shared.tokens.len();
    assert!(
        (1_000..2 * MIN_SWEEP_LEN).contains(&kept),
        "held queues are kept until their reset, within twice the held ones: {kept}"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    service.clone().oneshot(webhook(3_000)).await.unwrap();
    assert_eq!(
        layer.shared.tokens.len(),
        1,
        "the sweep kept the last one's hold only"
    );

    let (layer, service) = layer_over("4", Arc::default());
    let service = layer.layer(service);
    for id in 0..100 {
        service.clone().oneshot(webhook(id)).await.unwrap();
    }
    assert_eq!(layer.shared.tokens.len(), 0, "unheld queues go at once");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_webhook_holds_its_own_requests_only() {
    let sent = Arc::new(AtomicUsize::new(0));
    let (layer, service) = layer_over("0", Arc::clone(&sent));
    let service = layer.layer(service);
    service.clone().oneshot(webhook(1)).await.unwrap();

    let start = Instant::now();
    service.clone().oneshot(webhook(2)).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "another webhook goes at once"
    );
    let same = tokio::spawn(service.clone().oneshot(webhook(1)));
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert_eq!(sent.load(Ordering::SeqCst), 2, "held until the reset");
    same.await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(sent.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_while_awaiting_its_turn_leaves_no_queue() {
    let (layer, _) = layer_over("4", Arc::default());
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = Arc::new(Mutex::new(Some(released)));
    let service = layer.layer(service_fn(move |_request: http::Request<()>| {
        let released = released.lock().unwrap().take();
        async move {
            if let Some(released) = released {
                let _ = released.await;
            }
            Ok::<_, Infallible>(http::Response::new(()))
        }
    }));
    let first = tokio::spawn(service.clone().oneshot(webhook(1)));
    let second = tokio::spawn(service.clone().oneshot(webhook(1)));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(layer.shared.tokens.len(), 1);
    second.abort();
    let _ = second.await;
    release.send(()).unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(layer.shared.tokens.len(), 0);
}
