//! An upstream that sends a head and then stalls mid-body: the proxy cuts the body after its
//! body timeout, counts the failure apart and logs it once, without the raw path.

mod common;

use std::time::{Duration, Instant};

use botscope_http::DiscordProxy;
use botscope_testkit::TestMetrics;
use common::{BOT_TOKEN, Capture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHANNEL_ID: &str = "745809834183753828";

/// Answers one request with a head announcing 100 bytes, sends 10, and holds the connection
/// until `release` resolves.
async fn stalling_upstream(release: tokio::sync::oneshot::Receiver<()>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            if stream.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let _ = release.await;
    });
    url
}

// Single-threaded, so the proxy's tasks log into the capture.
#[tokio::test(flavor = "current_thread")]
async fn a_body_stalled_past_the_body_timeout_is_cut_and_counted_apart() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let (release, held) = tokio::sync::oneshot::channel();
    let upstream = stalling_upstream(held).await;
    let metrics = TestMetrics::new("disruptor");
    common::install_tls();
    let body_timeout = Duration::from_millis(300);
    let proxy = DiscordProxy::builder()
        .upstream(upstream)
        .meter(metrics.meter())
        .body_timeout(body_timeout)
        .spawn()
        .await
        .unwrap();

    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let path = format!("/api/v10/channels/{CHANNEL_ID}/messages");
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bot {BOT_TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    // The proxy cuts the connection: an end of file, or a reset.
    let read = tokio::time::timeout(
        body_timeout + Duration::from_secs(5),
        stream.read_to_end(&mut received),
    )
    .await
    .expect("the body ends before the upstream lets go");
    let elapsed = started.elapsed();
    let _ = release.send(());

    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n0123456789"),
        "{text}: only the 10 bytes sent"
    );
    // An end of file or a reset: either way the connection ended.
    drop(read);
    assert!(
        elapsed >= body_timeout && elapsed < body_timeout + Duration::from_secs(2),
        "cut after {elapsed:?}, timeout {body_timeout:?}"
    );

    let scrape = metrics.scrape();
    let endpoint = "/channels/{channel_id}/messages";
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_body_errors_total",
            &[
                ("endpoint", endpoint),
                ("method", "GET"),
                ("kind", "timeout")
            ],
        ),
        Some(1.0),
        "{}",
        scrape.text()
    );
    // The head was Discord's 200, counted when it came; the body's failure is counted apart.
    assert_eq!(
        scrape.value(
            "disruptor_discord_api_requests_total",
            &[("endpoint", endpoint), ("status_code", "200")],
        ),
        Some(1.0)
    );

    let logged = capture.text();
    let failures: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("upstream body failed after its head"))
        .collect();
    assert_eq!(failures.len(), 1, "{logged}");
    assert!(failures[0].starts_with("WARN"), "{logged}");
    assert!(failures[0].contains(endpoint), "{logged}");
    assert!(failures[0].contains("status=200"), "{logged}");
    assert!(!failures[0].contains(CHANNEL_ID), "the raw path: {logged}");
    assert!(!logged.contains(BOT_TOKEN), "{logged}");
    proxy.shutdown().await;
}
