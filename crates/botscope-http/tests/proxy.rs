//! The real twilight-http client through the proxy against the fake Discord.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botscope_http::DiscordProxy;
use botscope_http::route;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::{FakeDiscord, RateLimitKind, Reply};
use common::{BOT_TOKEN, status_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twilight_http::Client;
use twilight_model::http::interaction::{InteractionResponse, InteractionResponseType};
use twilight_model::id::Id;

const WEBHOOK_TOKEN: &str =
    "c2VjcmV0LXdlYmhvb2stdG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWstMTIzNDU2Nzg5MA";
const INTERACTION_TOKEN: &str =
    "aW50ZXJhY3Rpb24tdG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWstYWJjZGVmZ2hpams";

struct Setup {
    metrics: TestMetrics,
    fake: FakeDiscord,
    proxy: DiscordProxy,
    client: Client,
}

async fn setup() -> Setup {
    let fake = FakeDiscord::spawn().await.expect("fake discord");
    let metrics = TestMetrics::new("disruptor");
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter())
        .spawn()
        .await
        .expect("proxy");
    // After `configure`, which sets its own (long) timeout: no test should hang for long.
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .timeout(Duration::from_secs(5))
        .build();
    Setup {
        metrics,
        fake,
        proxy,
        client,
    }
}

fn requests(metrics: &TestMetrics, endpoint: &str, method: &str, status: &str) -> Option<f64> {
    metrics.scrape().value(
        "disruptor_discord_api_requests_total",
        &[
            ("endpoint", endpoint),
            ("method", method),
            ("status_code", status),
        ],
    )
}

#[tokio::test]
async fn typed_calls_land_with_templated_endpoints_and_no_token() {
    let Setup {
        metrics,
        fake,
        proxy,
        client,
    } = setup().await;

    let me = client.current_user().await.unwrap().model().await.unwrap();
    assert_eq!(me.id.get(), botscope_testkit::rest::BOT_USER_ID);
    let message = client
        .create_message(Id::new(745_809_834_183_753_828))
        .content("hello")
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(message.channel_id.get(), 745_809_834_183_753_828);
    client
        .execute_webhook(Id::new(1_000_000_000_000_000_123), WEBHOOK_TOKEN)
        .content("from a webhook")
        .await
        .unwrap();
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
            INTERACTION_TOKEN,
            &response,
        )
        .await
        .unwrap();

    assert_eq!(requests(&metrics, "/users/@me", "GET", "200"), Some(1.0));
    assert_eq!(
        requests(&metrics, "/channels/{channel_id}/messages", "POST", "200"),
        Some(1.0)
    );
    assert_eq!(
        requests(
            &metrics,
            "/webhooks/{webhook_id}/{webhook_token}",
            "POST",
            "204"
        ),
        Some(1.0)
    );
    assert_eq!(
        requests(
            &metrics,
            "/interactions/{interaction_id}/{interaction_token}/callback",
            "POST",
            "204"
        ),
        Some(1.0)
    );
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_request_duration_seconds_count",
            &[("endpoint", "/users/@me"), ("method", "GET")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_ratelimit_wait_seconds_count",
            &[("endpoint", "/users/@me")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("disruptor_discord_api_requests_in_flight", &[]),
        Some(0.0)
    );
    for secret in [
        WEBHOOK_TOKEN,
        INTERACTION_TOKEN,
        BOT_TOKEN,
        "1000000000000000123",
        "745809834183753828",
    ] {
        assert!(
            !scrape.text().contains(secret),
            "{secret} reached the scrape"
        );
    }

    // What the upstream saw: the real paths and the bot token, no hop-by-hop header.
    let log = fake.requests();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].path, "/api/v10/users/@me");
    assert_eq!(
        log[0].headers["authorization"],
        format!("Bot {BOT_TOKEN}").as_str()
    );
    assert!(log[2].path.ends_with(WEBHOOK_TOKEN));
    assert!(log.iter().all(|r| !r.headers.contains_key("connection")));
    proxy.shutdown().await;
}

/// When each request reached the proxy's ratelimit layer and when each answer left it, as a
/// layer of the user's right above it sees them.
#[derive(Clone, Default)]
struct Marks(Arc<Mutex<Vec<(bool, Instant)>>>);

impl Marks {
    fn arrived(&self) {
        self.0.lock().unwrap().push((true, Instant::now()));
    }

    fn answered(&self) {
        self.0.lock().unwrap().push((false, Instant::now()));
    }

    /// The time from the first answer leaving the proxy to the next request reaching it: how
    /// long the client took to retry.
    fn turnaround(&self) -> Duration {
        let marks = self.0.lock().unwrap();
        let answered = marks
            .iter()
            .find(|(arrived, _)| !arrived)
            .expect("an answer")
            .1;
        let retried = marks
            .iter()
            .filter(|(arrived, _)| *arrived)
            .nth(1)
            .expect("a retry")
            .1;
        retried.saturating_duration_since(answered)
    }
}

async fn rate_limited_once(kind: RateLimitKind, scope: &str) {
    let fake = FakeDiscord::spawn().await.expect("fake discord");
    let metrics = TestMetrics::new("disruptor");
    let marks = Marks::default();
    let (arrived, answered) = (marks.clone(), marks.clone());
    let (proxy, client) = common::proxy_to(&fake, &metrics, |builder| {
        builder.layer(
            tower::ServiceBuilder::new()
                .map_request(move |request| {
                    arrived.arrived();
                    request
                })
                .map_response(move |response| {
                    answered.answered();
                    response
                })
                .into_inner(),
        )
    })
    .await;
    let scripted = Duration::from_millis(300);
    fake.push(Reply::rate_limited_for(kind, scripted));
    // What the proxy holds the retry for: a `user` 429's exact `x-ratelimit-reset-after`,
    // else `retry-after` in whole seconds (rounded up).
    let hold = match kind {
        RateLimitKind::User => scripted,
        _ => Duration::from_secs(1),
    };
    let start = Instant::now();
    let me = client.current_user().await.unwrap().model().await.unwrap();
    assert_eq!(me.id.get(), botscope_testkit::rest::BOT_USER_ID);
    let elapsed = start.elapsed();

    assert_eq!(fake.request_count(), 2, "one 429, one retry");
    assert!(elapsed >= hold, "the retry waited ({elapsed:?})");
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_ratelimited_total",
            &[("endpoint", "/users/@me"), ("scope", scope)]
        ),
        Some(1.0),
        "{scope}"
    );
    assert_eq!(requests(&metrics, "/users/@me", "GET", "429"), Some(1.0));
    assert_eq!(requests(&metrics, "/users/@me", "GET", "200"), Some(1.0));
    // The retry waited in the proxy's limiter, and that wait is what the histogram shows.
    // The hold starts as the 429 passes the limiter and the retry comes back after the
    // client's turnaround: the retry waited the hold but that, to the millisecond the header
    // rounding and the hop to the layer above explain.
    let waited = scrape
        .value(
            "disruptor_discord_api_ratelimit_wait_seconds_sum",
            &[("endpoint", "/users/@me")],
        )
        .unwrap_or(0.0);
    let expected = hold
        .saturating_sub(marks.turnaround())
        .saturating_sub(Duration::from_millis(1));
    assert!(
        waited >= expected.as_secs_f64(),
        "{scope}: waited {waited} s, held {hold:?} less the client's {:?}",
        marks.turnaround()
    );
    let invalid = if scope == "shared" { 0.0 } else { 1.0 };
    assert_eq!(
        scrape.value("disruptor_discord_api_invalid_requests", &[]),
        Some(invalid)
    );
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_ratelimit_wait_seconds_count",
            &[("endpoint", "/users/@me")]
        ),
        Some(2.0)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn user_429_is_counted_and_the_client_completes() {
    rate_limited_once(RateLimitKind::User, "user").await;
}

#[tokio::test]
async fn global_429_is_counted_and_the_client_completes() {
    rate_limited_once(RateLimitKind::Global, "global").await;
}

#[tokio::test]
async fn shared_429_is_counted_and_the_client_completes() {
    rate_limited_once(RateLimitKind::Shared, "shared").await;
}

#[tokio::test]
async fn cloudflare_429_is_counted_and_the_client_completes() {
    rate_limited_once(RateLimitKind::Cloudflare, "cloudflare").await;
}

#[tokio::test]
async fn an_always_429_upstream_is_not_retried_in_a_tight_loop() {
    for kind in [
        RateLimitKind::Global,
        RateLimitKind::User,
        RateLimitKind::Cloudflare,
    ] {
        let Setup {
            fake,
            proxy,
            client,
            ..
        } = setup().await;
        fake.always(Some(Reply::rate_limited_for(
            kind,
            Duration::from_millis(500),
        )));
        let start = Instant::now();
        let call = tokio::spawn(async move { client.current_user().await.map(|_| ()) });
        tokio::time::timeout(Duration::from_secs(60), async {
            while fake.request_count() < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("three tries");
        let elapsed = start.elapsed();
        call.abort();
        // Each 429 holds the next try: 500 ms (`x-ratelimit-reset-after`), or 1 s for a
        // whole-second `retry-after`; never a tight loop.
        let hold = match kind {
            RateLimitKind::User => Duration::from_millis(500),
            _ => Duration::from_secs(1),
        };
        assert!(elapsed >= 2 * hold, "{kind:?}: three tries in {elapsed:?}");
        proxy.shutdown().await;
    }
}

#[tokio::test]
async fn upstream_down_errors_promptly_and_counts_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let metrics = TestMetrics::new("disruptor");
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(format!("http://{dead}"))
        .meter(metrics.meter())
        .spawn()
        .await
        .unwrap();
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), client.current_user())
        .await
        .expect("no hang");
    let error = result.expect_err("the upstream is down");
    // Refused at once, not answered by the upstream timeout.
    assert!(start.elapsed() < botscope_http::forward::DEFAULT_TIMEOUT);
    // The proxy answered 502, never 401 or 429.
    assert_eq!(status_of(&error), 502);
    assert!(!error.to_string().contains(BOT_TOKEN));
    assert_eq!(requests(&metrics, "/users/@me", "GET", "error"), Some(1.0));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_slow_upstream_gets_504_and_counts_timeout() {
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.push(Reply::Route.delayed(Duration::from_secs(2)));
    let metrics = TestMetrics::new("disruptor");
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .timeout(Duration::from_millis(200))
        .meter(metrics.meter())
        .spawn()
        .await
        .unwrap();
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    let error = client.current_user().await.expect_err("timed out");
    assert_eq!(status_of(&error), 504);
    assert_eq!(
        requests(&metrics, "/users/@me", "GET", "timeout"),
        Some(1.0)
    );
    proxy.shutdown().await;
}

/// One HTTP/1.1 request over a fresh connection; the raw response text.
async fn raw(addr: std::net::SocketAddr, head: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await;
    response
}

#[tokio::test]
async fn refuses_other_hosts_and_paths_and_strips_hop_by_hop_headers() {
    let Setup { fake, proxy, .. } = setup().await;
    let addr = proxy.local_addr();
    let other_host = raw(
        addr,
        "GET http://evil.example/api/v10/users/@me HTTP/1.1\r\nhost: evil.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(other_host.starts_with("HTTP/1.1 400"), "{other_host}");
    let not_api = raw(
        addr,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(not_api.starts_with("HTTP/1.1 404"), "{not_api}");
    assert_eq!(
        fake.request_count(),
        0,
        "nothing refused reached the upstream"
    );

    let forwarded = raw(
        addr,
        "GET /api/v10/users/@me HTTP/1.1\r\nhost: x\r\nconnection: close, x-hop\r\nx-hop: 1\r\n\
         proxy-authorization: Basic abc\r\nkeep-alive: timeout=5\r\nx-kept: 1\r\n\r\n",
    )
    .await;
    assert!(forwarded.starts_with("HTTP/1.1 200"), "{forwarded}");
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    let headers = &log[0].headers;
    for gone in ["x-hop", "proxy-authorization", "keep-alive"] {
        assert!(!headers.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(headers["x-kept"], "1");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_thousand_random_paths_leave_the_endpoint_series_bounded() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    // Discord's 50 requests per second would make this test take 20 s.
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter())
        .ratelimiter(twilight_http_ratelimiting::RateLimiter::new(u16::MAX))
        .spawn()
        .await
        .unwrap();
    let addr = proxy.local_addr();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
    for _ in 0..1_000 {
        let segments = 1 + next() % 5;
        let mut path = String::from("/api/v10");
        for _ in 0..segments {
            path.push('/');
            if next() % 3 == 0 {
                path.push_str(&(next() % 10_000_000_000_000_000_000).to_string());
            } else {
                for _ in 0..(3 + next() % 20) {
                    path.push(alphabet[(next() % alphabet.len() as u64) as usize] as char);
                }
            }
        }
        let response = raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    }
    assert_eq!(fake.request_count(), 1_000);
    let endpoints = metrics
        .scrape()
        .label_values("disruptor_discord_api_requests_total", "endpoint");
    // Five segments, each `{param}` or `{id}`-like: at most 2 + 4 + … + 32 shapes.
    assert!(endpoints.len() <= 62, "{} endpoint series", endpoints.len());
    for endpoint in &endpoints {
        for piece in endpoint.trim_start_matches('/').split('/') {
            assert!(
                route::vocabulary().any(|word| word == piece),
                "{piece} leaked"
            );
        }
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn user_layers_see_every_forwarded_request_and_a_dropped_handle_keeps_serving() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter())
        .layer(tower::util::MapRequestLayer::new(
            |mut request: http::Request<hyper::body::Incoming>| {
                request
                    .headers_mut()
                    .insert("x-added-by-layer", http::HeaderValue::from_static("yes"));
                request
            },
        ))
        .spawn()
        .await
        .unwrap();
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    drop(proxy);
    client.current_user().await.unwrap();
    assert_eq!(fake.requests()[0].headers["x-added-by-layer"], "yes");
    assert_eq!(requests(&metrics, "/users/@me", "GET", "200"), Some(1.0));
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged_and_401_counts_as_invalid() {
    let Setup {
        metrics,
        fake,
        proxy,
        client,
    } = setup().await;
    fake.push_all([Reply::Status(500), Reply::Status(401)]);
    for expected in [500, 401] {
        let error = client.current_user().await.expect_err("an error status");
        assert_eq!(status_of(&error), expected);
    }
    assert_eq!(requests(&metrics, "/users/@me", "GET", "500"), Some(1.0));
    assert_eq!(requests(&metrics, "/users/@me", "GET", "401"), Some(1.0));
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_invalid_requests", &[]),
        Some(1.0)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn proxies_sharing_one_metrics_layer_report_every_invalid_request() {
    common::install_tls();
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let layer = botscope_http::DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut proxies = Vec::new();
    for _ in 0..2 {
        proxies.push(
            DiscordProxy::builder()
                .upstream(fake.url())
                .meter(metrics.meter())
                .metrics_layer(layer.clone())
                .spawn()
                .await
                .unwrap(),
        );
    }
    // 403s: a 401 would make twilight-http refuse every later call of its client.
    fake.always(Some(Reply::Status(403)));
    for (proxy, calls) in proxies.iter().zip([3, 1]) {
        let client = proxy
            .configure(Client::builder().token(BOT_TOKEN.to_owned()))
            .build();
        for _ in 0..calls {
            client.current_user().await.expect_err("403");
        }
    }
    assert_eq!(fake.request_count(), 4);
    assert_eq!(requests(&metrics, "/users/@me", "GET", "403"), Some(4.0));
    assert_eq!(
        metrics
            .scrape()
            .value("disruptor_discord_api_invalid_requests", &[]),
        Some(4.0)
    );
    for proxy in proxies {
        proxy.shutdown().await;
    }
}
