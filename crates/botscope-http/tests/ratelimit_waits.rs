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
use twilight_model::http::interaction::{InteractionResponse, InteractionResponseType};
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
    assert!(
        (Duration::from_millis(450)..Duration::from_millis(1_900)).contains(&elapsed),
        "{elapsed:?}"
    );
    proxy.shutdown().await;
}

/// Answers an interaction with a deferred update, as a bot does within Discord's 3 s.
async fn send_callback(client: &Client) -> Result<(), twilight_http::Error> {
    let response = InteractionResponse {
        kind: InteractionResponseType::DeferredUpdateMessage,
        data: None,
    };
    client
        .interaction(Id::new(302_050_872_383_242_240))
        .create_response(
            // Fresh: the fake answers a callback only within Discord's 3 s of the snowflake.
            Id::new(botscope_testkit::interaction::snowflake_at(
                std::time::SystemTime::now(),
            )),
            "interaction-token",
            &response,
        )
        .await
        .map(drop)
}

async fn spawn_proxy(fake: &FakeDiscord) -> (DiscordProxy, Arc<Client>) {
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .spawn()
        .await
        .unwrap();
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .timeout(Duration::from_secs(15))
        .build();
    (proxy, Arc::new(client))
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
    let (proxy, client) = spawn_proxy(&fake).await;
    let global = Duration::from_secs(3);
    fake.push(Reply::rate_limited_for(RateLimitKind::Global, global));
    let held = current_user_in_background(&client);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Discord exempts interaction endpoints from the global limit, and so does twilight's
    // limiter: a callback must beat Discord's 3 s deadline.
    let start = Instant::now();
    send_callback(&client).await.expect("callback sent");
    let callback = start.elapsed();
    assert!(
        callback < Duration::from_millis(500),
        "callback took {callback:?}"
    );
    let start = Instant::now();
    client
        .execute_webhook(Id::new(1_000_000_000_000_000_123), "webhook-token")
        .content("hi")
        .await
        .expect("webhook executed");
    let webhook = start.elapsed();
    assert!(
        webhook < Duration::from_millis(500),
        "webhook took {webhook:?}"
    );

    // Everything else still waits out the global 429.
    let waited = held.await.unwrap();
    assert!(waited >= global - Duration::from_millis(50), "{waited:?}");
    assert_eq!(fake.request_count(), 4, "429, callback, webhook, retry");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_cloudflare_429_still_holds_interaction_callbacks() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let (proxy, client) = spawn_proxy(&fake).await;
    let ban = Duration::from_secs(2);
    fake.push(Reply::rate_limited_for(RateLimitKind::Cloudflare, ban));
    let held = current_user_in_background(&client);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A Cloudflare ban is on the IP: nothing may go out until it ends.
    let start = Instant::now();
    send_callback(&client).await.expect("callback sent");
    let callback = start.elapsed();
    assert!(
        callback >= ban - Duration::from_millis(300),
        "callback went out during the ban after {callback:?}"
    );
    held.await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn global_429s_on_an_interaction_callback_are_not_retried_in_a_tight_loop() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let (proxy, client) = spawn_proxy(&fake).await;
    fake.always(Some(Reply::rate_limited_for(
        RateLimitKind::Global,
        Duration::from_millis(500),
    )));
    let call = tokio::spawn(async move { send_callback(&client).await });
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    call.abort();
    let seen = fake.request_count();
    // `retry-after: 1` (whole seconds): about two, never thousands.
    assert!((2..=6).contains(&seen), "{seen} requests in 1.6 s");
    proxy.shutdown().await;
}

#[test]
fn a_layer_built_outside_a_runtime_starts_its_limiter_with_the_first_request() {
    use tower::{Layer, Service, ServiceExt, service_fn};

    // Built before any runtime exists: no panic.
    let layer = botscope_http::RateLimitLayer::new();
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
