//! Malformed paths never forward, and no token of a path reaches a log line: what the gate
//! refuses, and what the ratelimiter (which logs the paths it queues) is given.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use botscope_http::DiscordProxy;
use botscope_testkit::rest::FakeDiscord;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const TOKEN: &str = "c2VjcmV0LXdlYmhvb2stdG9rZW4tdGhhdC1tdXN0LW5ldmVyLWxlYWs";

/// Every event and span field at every level, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

impl Capture {
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut text));
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = self.0.lock().unwrap();
        let _ = write!(
            text,
            "\n{} {}",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut text));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

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
