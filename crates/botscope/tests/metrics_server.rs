//! The `/metrics` server as a scraper sees it: real TCP requests, parsed exposition text.

use std::io::Read;
use std::net::SocketAddr;

use botscope::{BuildErrorType, Telemetry};
use botscope_testkit::Scrape;
use botscope_testkit::client::{self, Reply};
use tokio::net::TcpStream;

/// One request over a fresh TCP connection, as a scraper makes it.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    client::request(addr, method, path, headers)
        .await
        .expect("HTTP exchange")
}

fn install(builder: botscope::TelemetryBuilder) -> Telemetry {
    builder
        .listen("127.0.0.1:0")
        .set_global(false)
        .install()
        .expect("install")
}

#[tokio::test]
async fn system_and_process_metrics_are_scraped_with_the_namespace() {
    let telemetry = install(Telemetry::builder().namespace("disruptor"));
    let addr = telemetry.local_addr().expect("serving");
    let reply = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let scrape = Scrape::parse(&reply.text());

    assert!(
        scrape
            .value("disruptor_system_tasks", &[])
            .is_some_and(|v| v >= 1.0),
        "{}",
        scrape.text()
    );
    for kind in ["resident", "virtual"] {
        let bytes = scrape.value("disruptor_system_memory_bytes", &[("type", kind)]);
        assert!(bytes.is_some_and(|b| b > 0.0), "{kind}: {}", scrape.text());
    }
    assert!(
        scrape
            .value("disruptor_runtime_workers", &[])
            .is_some_and(|v| v >= 1.0)
    );
    assert!(
        scrape
            .value("disruptor_runtime_global_queue_depth", &[])
            .is_some()
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(scrape.has(name), "{name} missing from\n{}", scrape.text());
    }
    // Without a service name, the namespace names the service.
    assert_eq!(
        scrape.label_values("target_info", "service_name"),
        ["disruptor"],
        "{}",
        scrape.text()
    );
    // Scope labels are off: the Go bot's series carry none.
    assert!(!scrape.text().contains("otel_scope_name"));
    // Nothing but process_* and target_info escapes the namespace.
    for sample in scrape.samples() {
        assert!(
            sample.name.starts_with("disruptor_")
                || sample.name.starts_with("process_")
                || sample.name == "target_info",
            "{}",
            sample.name
        );
    }
    telemetry.shutdown().await;
}

#[tokio::test]
async fn user_instruments_share_the_exposition() {
    let telemetry = install(
        Telemetry::builder()
            .namespace("disruptor")
            .system_metrics(false),
    );
    let counter = telemetry.meter("bot").u64_counter("commands").build();
    counter.add(3, &[opentelemetry::KeyValue::new("name", "ping")]);
    let reply = request(
        telemetry.local_addr().expect("serving"),
        "GET",
        "/metrics",
        &[],
    )
    .await;
    let scrape = Scrape::parse(&reply.text());
    assert_eq!(
        scrape.value("disruptor_commands_total", &[("name", "ping")]),
        Some(3.0)
    );
    assert_eq!(
        Scrape::parse(&telemetry.render()).value("disruptor_commands_total", &[]),
        Some(3.0)
    );
    telemetry.shutdown().await;
}

#[tokio::test]
async fn bearer_token_guards_metrics_but_not_health() {
    let telemetry = install(Telemetry::builder().bearer_token("s3cret-token"));
    let addr = telemetry.local_addr().expect("serving");

    let missing = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = request(addr, "GET", "/metrics", &[("authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains("s3cret"));
    let right = request(
        addr,
        "GET",
        "/metrics",
        &[("authorization", "Bearer s3cret-token")],
    )
    .await;
    assert_eq!(right.status, 200);
    assert!(right.text().contains("botscope_system_tasks"));
    assert_eq!(request(addr, "GET", "/healthz", &[]).await.status, 200);
    telemetry.shutdown().await;
}

#[tokio::test]
async fn not_found_method_not_allowed_and_head() {
    let telemetry = install(Telemetry::builder());
    let addr = telemetry.local_addr().expect("serving");

    assert_eq!(request(addr, "GET", "/", &[]).await.status, 404);
    assert_eq!(
        request(addr, "GET", "/metrics/extra", &[]).await.status,
        404
    );
    let post = request(addr, "POST", "/metrics", &[("content-length", "0")]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let get = request(addr, "GET", "/metrics", &[]).await;
    let head = request(addr, "HEAD", "/metrics", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), get.header("content-type"));
    let len: usize = head
        .header("content-length")
        .expect("length")
        .parse()
        .expect("number");
    assert!(len > 0);

    let health = request(addr, "GET", "/healthz", &[]).await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    telemetry.shutdown().await;
}

#[tokio::test]
async fn gzip_body_decodes_to_the_same_text() {
    let telemetry = install(
        Telemetry::builder()
            .namespace("disruptor")
            .system_metrics(false),
    );
    let counter = telemetry.meter("bot").u64_counter("events").build();
    for i in 0..200 {
        counter.add(1, &[opentelemetry::KeyValue::new("n", i.to_string())]);
    }
    let addr = telemetry.local_addr().expect("serving");
    let plain = request(addr, "GET", "/metrics", &[]).await;
    let zipped = request(addr, "GET", "/metrics", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(zipped.body.len() < plain.body.len());
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut decoded)
        .expect("valid gzip");
    assert_eq!(decoded, plain.text());
    telemetry.shutdown().await;
}

#[tokio::test]
async fn a_panicking_callback_fails_every_later_scrape_loudly_not_the_bot() {
    let telemetry = install(Telemetry::builder().system_metrics(false));
    let counter = telemetry.meter("bot").u64_counter("commands").build();
    counter.add(1, &[]);
    let addr = telemetry.local_addr().expect("serving");
    assert_eq!(request(addr, "GET", "/metrics", &[]).await.status, 200);

    telemetry
        .meter("bot")
        .u64_observable_gauge("broken")
        .with_callback(|_| panic!("callback bug"))
        .build();
    let first = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(first.status, 500);
    assert!(first.text().contains("panicked"), "{}", first.text());
    // The SDK's locks stay poisoned: a later scrape must not pass a partial exposition off as
    // whole (it would read 200 with the bot's series missing).
    let second = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(second.status, 500);
    // render() never panics into the bot, and the server still answers.
    assert_eq!(telemetry.render(), "");
    assert_eq!(request(addr, "GET", "/healthz", &[]).await.status, 200);
    counter.add(1, &[]);
}

#[tokio::test]
async fn busy_port_is_a_bind_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr");
    let err = Telemetry::builder()
        .listen(addr)
        .set_global(false)
        .install()
        .expect_err("port is busy");
    assert_eq!(err.kind(), &BuildErrorType::Bind { address: addr });
    assert!(err.to_string().contains(&addr.to_string()));
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let err = Telemetry::builder()
        .namespace("dis-ruptor")
        .install()
        .expect_err("bad namespace");
    assert!(
        matches!(err.kind(), BuildErrorType::InvalidNamespace { namespace } if namespace == "dis-ruptor")
    );
    let err = Telemetry::builder()
        .listen("localhost:nine")
        .install()
        .expect_err("bad address");
    assert!(matches!(
        err.kind(),
        BuildErrorType::InvalidListenAddress { .. }
    ));
    let err = Telemetry::builder()
        .bearer_token("")
        .install()
        .expect_err("empty token");
    assert_eq!(err.kind(), &BuildErrorType::EmptyBearerToken);
}

#[test]
fn install_outside_a_runtime_is_a_typed_error() {
    let err = Telemetry::builder()
        .listen("127.0.0.1:0")
        .install()
        .expect_err("no runtime");
    assert_eq!(err.kind(), &BuildErrorType::NoRuntime);
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let telemetry = install(Telemetry::builder());
    let addr = telemetry.local_addr().expect("serving");
    telemetry.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}
