//! Connections the proxy drops or keeps: a head not complete in time, no header read timeout,
//! a burst past the cap. The held-connections test that reads the process's open files and
//! memory lives alone in `held_connections_files.rs`.

mod common;

use std::time::{Duration, Instant};

use botscope_testkit::TestMetrics;
use botscope_testkit::rest::FakeDiscord;
use common::proxy_to;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_head_not_complete_within_the_header_read_timeout_is_dropped() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let timeout = Duration::from_millis(300);
    let (proxy, _bot) = proxy_to(&fake, &metrics, |builder| {
        builder.header_read_timeout(timeout)
    })
    .await;

    // Before the connection exists, so before the proxy's timer starts.
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /api/v10/users/@me HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // hyper answers 408 or just closes; either way the connection ends.
    let _ = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the connection");
    let elapsed = started.elapsed();
    // Never before the timeout; well before the 60 s a connection without one would wait.
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(20),
        "closed after {elapsed:?}"
    );
    assert_eq!(fake.request_count(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn no_header_read_timeout_is_allowed() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, bot) = proxy_to(&fake, &metrics, |builder| {
        builder.header_read_timeout(Duration::MAX)
    })
    .await;
    bot.current_user().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_cap_is_queued_not_refused() {
    // The bot's requests wait for their bucket inside the proxy, each holding a busy
    // connection: a burst past the cap must be let in, not reset.
    let fake = FakeDiscord::spawn().await.unwrap();
    fake.set_latency(Duration::from_millis(100));
    let metrics = TestMetrics::new("disruptor");
    // Twice the cap of brand-new connections at once: none may be closed before its head is
    // read (past twice the cap, the youngest waiting connections may go).
    let (proxy, bot) = proxy_to(&fake, &metrics, |builder| builder.max_connections(4)).await;
    let bot = std::sync::Arc::new(bot);
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let bot = std::sync::Arc::clone(&bot);
            tokio::spawn(async move { bot.current_user().await.map(drop) })
        })
        .collect();
    for call in burst {
        call.await
            .unwrap()
            .expect("every request of the burst is answered");
    }
    let ok = metrics.scrape().value(
        "disruptor_discord_api_requests_total",
        &[("endpoint", "/users/@me"), ("status_code", "200")],
    );
    assert_eq!(ok, Some(8.0), "{}", metrics.scrape().text());
    proxy.shutdown().await;
}
