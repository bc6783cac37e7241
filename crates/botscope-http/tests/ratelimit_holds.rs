//! What one 429 may hold, through the real proxy and twilight-http against the fake Discord:
//! a global 429 claiming a billion seconds holds for a minute at most, a header-less 429 does
//! not make an interaction callback late, and a long hold is visible (one WARN line, the
//! queued gauge, the seconds left).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use botscope_http::ratelimit::{MAX_HOLD, WARN_HOLD};
use botscope_testkit::TestMetrics;
use botscope_testkit::logs::Logs;
use botscope_testkit::rest::{FakeDiscord, RateLimitKind, Reply};
use serde_json::json;
use twilight_http::Client;
use twilight_model::id::Id;

const QUEUED: &str = "disruptor_discord_api_requests_queued";
const HOLD_LEFT: &str = "disruptor_discord_api_global_hold_seconds";

async fn proxy(
    fake: &FakeDiscord,
    metrics: &TestMetrics,
) -> (botscope_http::DiscordProxy, Arc<Client>) {
    let (proxy, _) = common::proxy_to(fake, metrics, |builder| builder).await;
    let client = proxy
        .configure(Client::builder().token(common::BOT_TOKEN.to_owned()))
        .timeout(Duration::from_secs(120))
        .build();
    (proxy, Arc::new(client))
}

/// Polls `check` every 10 ms until it holds, for at most `within`.
async fn until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    tokio::time::timeout(within, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within {within:?}"));
}

#[tokio::test]
async fn a_global_429_asking_for_a_billion_seconds_holds_for_a_minute_and_says_so() {
    let logs = Logs::default();
    let _capture = logs.capture();
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy(&fake, &metrics).await;
    // The finding: a global 429 with `retry-after: 1e9` held every request for the hour of
    // MAX_RETRY_AFTER, long after the upstream was healthy again.
    fake.push(
        Reply::json(
            429,
            json!({"message": "You are being rate limited.", "retry_after": 1e9, "global": true}),
        )
        .header("retry-after", "1e9")
        .header("x-ratelimit-global", "true")
        .header("x-ratelimit-scope", "global"),
    );
    let start = Instant::now();
    let call = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.current_user().await.map(drop) })
    };

    // While held: the request counts as queued, the hold's seconds are shown, and one WARN
    // line names the scope, the hold's length and the route template.
    until(
        Duration::from_secs(10),
        "the held request is counted",
        || metrics.scrape().value(QUEUED, &[]) == Some(1.0),
    )
    .await;
    let left = metrics
        .scrape()
        .value(HOLD_LEFT, &[("scope", "global")])
        .expect("the global hold's seconds");
    assert!(
        left > MAX_HOLD.as_secs_f64() - 10.0 && left <= MAX_HOLD.as_secs_f64(),
        "{left} s left of a hold cut to {MAX_HOLD:?}"
    );
    assert_eq!(
        metrics
            .scrape()
            .value(HOLD_LEFT, &[("scope", "cloudflare")]),
        Some(0.0)
    );
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" WARN "))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARN line: {text}");
    for part in [
        "scope=\"global\"",
        "hold_seconds=60",
        "route=\"/users/@me\"",
    ] {
        assert!(warnings[0].contains(part), "{part} in {}", warnings[0]);
    }

    // The upstream is healthy from the retry on: it is served once the bound has passed.
    tokio::time::timeout(MAX_HOLD + Duration::from_secs(15), call)
        .await
        .expect("served within the bound, not after an hour")
        .unwrap()
        .expect("the retry succeeds");
    let held = start.elapsed();
    assert!(held >= MAX_HOLD - Duration::from_secs(1), "{held:?}");
    assert_eq!(fake.request_count(), 2, "the 429 and its one retry");
    let scrape = metrics.scrape();
    assert_eq!(scrape.value(QUEUED, &[]), Some(0.0));
    assert_eq!(scrape.value(HOLD_LEFT, &[("scope", "global")]), Some(0.0));
    assert_eq!(
        logs.text()
            .lines()
            .filter(|line| line.contains(" WARN "))
            .count(),
        1,
        "the hold was logged once"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_header_less_429_does_not_make_an_interaction_callback_late() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy(&fake, &metrics).await;
    // The finding: a header-less 429 with `retry-after: 8` held every interaction callback
    // 7.83 s, past Discord's 3 s.
    let ban = Duration::from_secs(8);
    fake.push(Reply::rate_limited_for(RateLimitKind::Cloudflare, ban));
    let held = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            let start = Instant::now();
            client.current_user().await.expect("served after the ban");
            start.elapsed()
        })
    };
    until(Duration::from_secs(10), "the ban is in place", || {
        metrics
            .scrape()
            .value(HOLD_LEFT, &[("scope", "cloudflare")])
            .is_some_and(|left| left > 0.0)
    })
    .await;

    let start = Instant::now();
    common::send_callback(&client)
        .await
        .expect("the callback is answered");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the callback waited {took:?}"
    );
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "disruptor_interaction_responses_total",
            &[("outcome", "ok")]
        ),
        Some(1.0),
        "answered in time"
    );

    // Everything else waits the ban out.
    let waited = held.await.unwrap();
    assert!(waited >= ban - Duration::from_millis(500), "{waited:?}");
    assert_eq!(fake.request_count(), 3, "429, callback, retry");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_global_429_on_a_webhook_holds_that_webhook_only() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, client) = proxy(&fake, &metrics).await;
    // A 429 without a bucket on an exempt route shows only that this webhook is limited.
    let wait = WARN_HOLD / 2;
    fake.push(Reply::rate_limited_for(RateLimitKind::Global, wait));
    let start = Instant::now();
    client
        .execute_webhook(Id::new(1_000_000_000_000_000_123), "webhook-token")
        .content("hi")
        .await
        .expect("executed after its hold");
    let limited = start.elapsed();
    assert!(limited >= wait, "the retry waited its hold: {limited:?}");

    fake.push(Reply::rate_limited_for(RateLimitKind::Global, wait));
    let first = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            client
                .execute_webhook(Id::new(1_000_000_000_000_000_124), "webhook-token")
                .content("hi")
                .await
                .map(drop)
        })
    };
    until(Duration::from_secs(10), "the webhook's 429", || {
        fake.request_count() == 3
    })
    .await;
    let start = Instant::now();
    client.current_user().await.expect("not held");
    client
        .execute_webhook(Id::new(1_000_000_000_000_000_125), "webhook-token")
        .content("hi")
        .await
        .expect("another webhook is not held");
    let others = start.elapsed();
    assert!(others < wait, "other routes waited {others:?}");
    first.await.unwrap().expect("executed after its hold");
    proxy.shutdown().await;
}
