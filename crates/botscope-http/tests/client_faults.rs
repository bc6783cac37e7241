//! A request body the client spoils (malformed chunked framing, a hang-up mid-upload) is the
//! client's fault: answered 400 when the client is still there, counted
//! `status_code="client_error"`, never a 502 "upstream unreachable" or `status_code="error"`.

mod common;

use std::time::Duration;

use botscope_testkit::rest::FakeDiscord;
use botscope_testkit::{Scrape, TestMetrics};
use common::{BOT_TOKEN, proxy_to};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESSAGES: &str = "/api/v10/channels/745809834183753828/messages";

fn head(framing: &str) -> String {
    format!(
        "POST {MESSAGES} HTTP/1.1\r\nhost: x\r\nauthorization: Bot {BOT_TOKEN}\r\n\
         content-type: application/json\r\n{framing}\r\n\r\n"
    )
}

fn statuses(scrape: &Scrape) -> Vec<String> {
    scrape.label_values("disruptor_discord_api_requests_total", "status_code")
}

/// Scrapes until a request is counted, for at most 5 s; the last scrape.
async fn counted(metrics: &TestMetrics) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let scrape = metrics.scrape();
        if !statuses(&scrape).is_empty() || tokio::time::Instant::now() >= deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_overflowing_chunk_size_gets_400_counted_client_error() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, _client) = proxy_to(&fake, &metrics, |builder| builder).await;

    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let upload = head("transfer-encoding: chunked") + "fffffffffffffffffff\r\n";
    stream.write_all(upload.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy answers and closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("malformed or incomplete"), "{answer}");

    let scrape = counted(&metrics).await;
    assert_eq!(statuses(&scrape), ["client_error"], "{}", scrape.text());
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[
                ("endpoint", "/channels/{channel_id}/messages"),
                ("method", "POST"),
                ("status_code", "client_error"),
            ],
        ),
        Some(1.0)
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_hanging_up_mid_upload_is_not_an_upstream_error() {
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, _client) = proxy_to(&fake, &metrics, |builder| builder).await;

    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let upload = head("content-length: 100") + "{\"content\":";
    stream.write_all(upload.as_bytes()).await.unwrap();
    // Gone with 89 bytes of the body unsent.
    drop(stream);

    let scrape = counted(&metrics).await;
    // With the client gone nobody reads an answer; the request ends as the client's fault,
    // or as cancelled if the connection's end reached the proxy first.
    let statuses = statuses(&scrape);
    assert!(
        statuses == ["client_error"] || statuses == ["cancelled"],
        "{}",
        scrape.text()
    );
    proxy.shutdown().await;
}
