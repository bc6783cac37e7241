//! Malformed paths never forward, and no token of a path reaches a log line: what the gate
//! refuses, and what the ratelimiter (which logs the paths it queues) is given.

mod common;

use std::net::SocketAddr;

use botscope_http::DiscordProxy;
use botscope_testkit::rest::FakeDiscord;
use common::Capture;
use common::official::{self, Param, VARIANTS};

const TOKEN: &str = "c2VjcmV0LXdlYmhvb2stdG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWs";

async fn post(addr: SocketAddr, path: &str) -> botscope_testkit::client::Reply {
    botscope_testkit::client::request(addr, "POST", path, &[("content-length", "0")])
        .await
        .unwrap()
}

// Single-threaded, so the proxy's tasks and the limiter's actor log into the capture.
#[tokio::test(flavor = "current_thread")]
async fn malformed_paths_get_400_and_no_token_reaches_a_log_line() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let fake = FakeDiscord::spawn().await.unwrap();
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .spawn()
        .await
        .unwrap();
    let addr = proxy.local_addr();

    for path in [
        format!("/api/v10//webhooks/1/{TOKEN}"),
        format!("/api/v10/webhooks//1/{TOKEN}"),
        format!("/api/v10/webhooks/1/{TOKEN}/"),
        format!("/api/v10/./webhooks/1/{TOKEN}"),
        format!("/api/v10/channels/../webhooks/1/{TOKEN}"),
        format!("/api/v10/channels/%2e%2E/webhooks/1/{TOKEN}"),
    ] {
        let reply = post(addr, &path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert!(!reply.text().contains(TOKEN), "{path}");
    }
    assert_eq!(fake.request_count(), 0, "nothing malformed was forwarded");

    // Well formed, but not a shape the proxy knows a token position in: still forwarded (the
    // fake answers 404), and whatever the limiter logs carries no raw segment.
    for path in [
        format!("/api/v10/Webhooks/1/{TOKEN}"),
        format!("/api/v10/webhooks/1/{TOKEN}"),
        format!("/api/v10/interactions/2/{TOKEN}/callback"),
    ] {
        post(addr, &path).await;
    }
    assert_eq!(fake.request_count(), 3);
    proxy.shutdown().await;

    let logs = capture.text();
    assert!(
        logs.contains("path="),
        "the limiter logged its paths:\n{logs}"
    );
    assert!(!logs.contains(TOKEN), "a token reached a log line:\n{logs}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_not_forwarded_logs_one_warn_line_with_its_template_and_no_token() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.set_latency(std::time::Duration::from_secs(2));
    common::install_tls();
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .timeout(std::time::Duration::from_millis(200))
        .spawn()
        .await
        .unwrap();

    let reply = post(proxy.local_addr(), &format!("/api/v10/webhooks/1/{TOKEN}")).await;
    assert_eq!(reply.status, 504);
    assert!(!reply.text().contains(TOKEN));
    proxy.shutdown().await;

    let logs = capture.text();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.starts_with("WARN botscope_http"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    let line = warnings[0];
    for field in [
        "endpoint=/webhooks/{webhook_id}/{webhook_token}",
        "method=\"POST\"",
        "status=504",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(!logs.contains(TOKEN), "a token reached a log line:\n{logs}");
}

/// `value` with every byte outside printable ASCII percent-encoded, as a client sends it.
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// Single-threaded, so the proxy's tasks and the limiter's actor log into the capture.
#[tokio::test(flavor = "current_thread")]
async fn no_value_of_any_official_route_reaches_a_log_line_a_label_or_an_answer() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = botscope_testkit::TestMetrics::new("disruptor");
    // 726 requests: not worth 15 s of the global limit.
    let (proxy, _) = common::proxy_to(&fake, &metrics, |builder| {
        builder.ratelimiter(twilight_http_ratelimiting::RateLimiter::new(u16::MAX))
    })
    .await;
    let addr = proxy.local_addr();

    let ops = official::operations(official::VENDORED);
    let mut secrets = std::collections::BTreeSet::new();
    for op in &ops {
        for variant in 0..VARIANTS {
            let (path, values) = official::fill(op, variant);
            let path = format!("/api/v10{}", percent_encoded(&path));
            let reply = botscope_testkit::client::request(
                addr,
                &op.method,
                &path,
                &[("content-length", "0")],
            )
            .await
            .unwrap();
            // The fake knows a few routes and answers 404 for the others: forwarded, all.
            assert!(
                matches!(reply.status, 200 | 204 | 404),
                "{} {}: {}",
                op.method,
                op.path,
                reply.status
            );
            for (value, kind) in values {
                if !matches!(kind, Param::Snowflake | Param::Integer) {
                    assert!(!reply.text().contains(&value), "{} {}", op.method, op.path);
                    secrets.insert(percent_encoded(&value));
                    secrets.insert(value);
                }
            }
        }
    }
    assert_eq!(fake.request_count(), ops.len() * VARIANTS);
    proxy.shutdown().await;

    let logs = capture.text();
    let scrape = metrics.render();
    assert!(scrape.contains("/lobbies/{lobby_id}/members/{user_id}"));
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} reached a log line"
        );
        assert!(
            !scrape.contains(secret.as_str()),
            "{secret:?} reached the scrape"
        );
    }
}
