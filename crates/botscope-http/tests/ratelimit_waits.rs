//! How long the real twilight-http client waits through the proxy's ratelimiter, and what it
//! gets back, against the fake Discord.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use botscope_http::DiscordProxy;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::{FakeDiscord, RateLimitKind, Reply};
use common::BOT_TOKEN;
use twilight_http::Client;
use twilight_model::id::Id;

/// twilight-http's default timeout, which covers only the HTTP round trip when twilight
/// ratelimits itself.
const TWILIGHT_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_bucket_wait_longer_than_twilights_default_timeout_still_succeeds() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter())
        .spawn()
        .await
        .unwrap();
    // Exactly as the README wires it: no timeout of the user's own.
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    let reset = TWILIGHT_DEFAULT_TIMEOUT + Duration::from_millis(800);
    fake.push(Reply::rate_limited_for(RateLimitKind::User, reset));

    let start = Instant::now();
    let result = client.current_user().await;
    let elapsed = start.elapsed();

    let me = result
        .unwrap_or_else(|error| panic!("failed after {elapsed:?}: {:?}", error.kind()))
        .model()
        .await
        .unwrap();
    assert_eq!(me.id.get(), botscope_testkit::rest::BOT_USER_ID);
    assert!(
        elapsed >= reset,
        "the retry waited for the reset ({elapsed:?})"
    );
    assert_eq!(fake.request_count(), 2, "one 429, one retry");
    let waited = metrics
        .scrape()
        .value(
            "disruptor_discord_api_ratelimit_wait_seconds_sum",
            &[("endpoint", "/users/@me")],
        )
        .unwrap_or(0.0);
    assert!(
        waited >= TWILIGHT_DEFAULT_TIMEOUT.as_secs_f64(),
        "waited {waited} s"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn client_timeout_bounds_the_whole_call_including_the_bucket_wait() {
    let fake = FakeDiscord::spawn().await.unwrap();
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .client_timeout(Duration::from_millis(500))
        .spawn()
        .await
        .unwrap();
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    fake.push(Reply::rate_limited_for(
        RateLimitKind::User,
        Duration::from_secs(2),
    ));

    let start = Instant::now();
    let error = client.current_user().await.expect_err("timed out");
    let elapsed = start.elapsed();
    assert!(
        matches!(
            error.kind(),
            twilight_http::error::ErrorType::RequestTimedOut
        ),
        "{:?}",
        error.kind()
    );
    // Ended by the client's timeout, during the wait: the retry never went out.
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert_eq!(fake.request_count(), 1, "the 429 only, no retry");
    proxy.shutdown().await;
}

async fn spawn_proxy(fake: &FakeDiscord, metrics: &TestMetrics) -> (DiscordProxy, Arc<Client>) {
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter())
        .spawn()
        .await
        .unwrap();
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .timeout(Duration::from_secs(15))
        .build();
    (proxy, Arc::new(client))
}

/// Waits until the proxy has counted a 429 of `scope`: its hold is in place from then on.
async fn until_ratelimited(metrics: &TestMetrics, scope: &str) {
    let counted = || {
        metrics
            .scrape()
            .value(
                "disruptor_discord_api_ratelimited_total",
                &[("endpoint", "/users/@me"), ("scope", scope)],
            )
            .is_some()
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while !counted() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the 429 reached the proxy");
}

/// Sends `current_user` in the background; the caller then scripts nothing more, so its 429
/// is the one pushed before.
fn current_user_in_background(client: &Arc<Client>) -> tokio::task::JoinHandle<Duration> {
    let client = Arc::clone(client);
    tokio::spawn(async move {
        let start = Instant::now();
        client
            .current_user()
            .await
            .expect("completes after the wait");
        start.elapsed()
    })
}

#[tokio::test]
async fn a_global_429_does_not_hold_interaction_callbacks_or_webhooks() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = spawn_proxy(&fake, &metrics).await;
    // Long enough that nothing held could finish within it on a loaded machine.
    let global = Duration::from_secs(5);
    fake.push(Reply::rate_limited_for(RateLimitKind::Global, global));
    // Before the 429: whatever is held ends `global` after this, at the earliest.
    let start = Instant::now();
    let held = current_user_in_background(&client);
    until_ratelimited(&metrics, "global").await;

    // Discord exempts interaction endpoints from the global limit, and so does twilight's
    // limiter: a callback must beat Discord's 3 s deadline.
    common::send_callback(&client).await.expect("callback sent");
    let callback = start.elapsed();
    assert!(callback < global, "the callback was held: {callback:?}");
    client
        .execute_webhook(Id::new(1_000_000_000_000_000_123), "webhook-token")
        .content("hi")
        .await
        .expect("webhook executed");
    let webhook = start.elapsed();
    assert!(webhook < global, "the webhook was held: {webhook:?}");
    assert_eq!(
        fake.request_count(),
        3,
        "429, callback, webhook; no retry yet"
    );

    // Everything else still waits out the global 429 (`retry-after` in whole seconds, rounded
    // up: never shorter than scripted).
    let waited = held.await.unwrap();
    assert!(waited >= global, "{waited:?}");
    assert_eq!(fake.request_count(), 4, "429, callback, webhook, retry");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_cloudflare_ban_that_ends_within_its_deadline_holds_an_interaction_callback() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = spawn_proxy(&fake, &metrics).await;
    let ban = Duration::from_secs(2);
    fake.push(Reply::rate_limited_for(RateLimitKind::Cloudflare, ban));
    // Before the 429, so the ban (held from the 429's answer on) ends after `start + ban`.
    let start = Instant::now();
    let held = current_user_in_background(&client);
    until_ratelimited(&metrics, "cloudflare").await;

    // A Cloudflare ban is on the IP: nothing goes out until it ends, a callback too when
    // the ban ends before its 3 s do (tests/ratelimit_holds.rs: one that ends later).
    common::send_callback(&client).await.expect("callback sent");
    let callback = start.elapsed();
    assert!(
        callback >= ban,
        "callback went out during the ban after {callback:?}"
    );
    held.await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn global_429s_on_an_interaction_callback_are_not_retried_in_a_tight_loop() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = spawn_proxy(&fake, &metrics).await;
    fake.always(Some(Reply::rate_limited_for(
        RateLimitKind::Global,
        Duration::from_millis(500),
    )));
    let start = Instant::now();
    let call = tokio::spawn(async move { common::send_callback(&client).await });
    until_requests(&fake, 3).await;
    let elapsed = start.elapsed();
    call.abort();
    // `retry-after: 1` (whole seconds): each 429 holds the next try at least 1 s.
    assert!(
        elapsed >= Duration::from_secs(2),
        "three tries within {elapsed:?}"
    );
    proxy.shutdown().await;
}

/// Waits until the fake has received `count` requests.
async fn until_requests(fake: &FakeDiscord, count: usize) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while fake.request_count() < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the requests arrived");
}

#[test]
fn a_layer_built_outside_a_runtime_starts_its_limiter_with_the_first_request() {
    use tower::{Layer, Service, ServiceExt, service_fn};

    // Built before any runtime exists: no panic.
    let layer = botscope_http::DiscordRateLimitLayer::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async move {
        let mut service = layer.layer(service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
        let request = http::Request::get("/api/v10/users/@me").body(()).unwrap();
        service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
}
