//! The `/metrics` server as a scraper sees it: real TCP requests, parsed exposition text.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use botscope::{BuildErrorType, Telemetry};
use botscope_testkit::client::{self, Reply};
use botscope_testkit::{Scrape, TestMetrics};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

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
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} s3cret-token");
        let reply = request(addr, "GET", "/metrics", &[("authorization", &value)]).await;
        assert_eq!(reply.status, 200, "{value}");
    }
    for value in [
        "bearer S3CRET-TOKEN",
        "Bearer s3cret-token2",
        "Basic s3cret-token",
    ] {
        let reply = request(addr, "GET", "/metrics", &[("authorization", value)]).await;
        assert_eq!(reply.status, 401, "{value}");
    }
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
    for reply in [&plain, &zipped] {
        assert_eq!(reply.header("vary"), Some("accept-encoding"));
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
    }
    assert!(zipped.body.len() < plain.body.len());
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut decoded)
        .expect("valid gzip");
    assert_eq!(decoded, plain.text());

    // q=0 refuses a coding, the parameter name in any case (RFC 9110 §12.4.2).
    for refused in ["gzip;q=0", "gzip;Q=0", "GZIP; q=0.000, identity"] {
        let reply = request(addr, "GET", "/metrics", &[("accept-encoding", refused)]).await;
        assert_eq!(reply.status, 200, "{refused}");
        assert_eq!(reply.header("content-encoding"), None, "{refused}");
        assert_eq!(reply.text(), plain.text(), "{refused}");
    }

    // Neither gzip nor identity: 406, without the exposition the client said it cannot take.
    for refused in ["identity;q=0, *;q=0", "*;q=0"] {
        let reply = request(addr, "GET", "/metrics", &[("accept-encoding", refused)]).await;
        assert_eq!(reply.status, 406, "{refused}");
        assert!(
            reply.body.is_empty(),
            "{refused}: {} bytes",
            reply.body.len()
        );
        assert_eq!(reply.header("content-type"), None, "{refused}");
        assert_eq!(reply.header("vary"), Some("accept-encoding"), "{refused}");
    }
    telemetry.shutdown().await;
}

/// The headers of a reply but `date`, which changes from second to second, and
/// `transfer-encoding`, which frames a body (a gzip body streams in chunks; HEAD has none).
fn headers_but_date_and_framing(reply: &Reply) -> Vec<(String, String)> {
    let mut headers: Vec<_> = reply
        .headers
        .iter()
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case("date") && !name.eq_ignore_ascii_case("transfer-encoding")
        })
        .cloned()
        .collect();
    headers.sort();
    headers
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let telemetry = install(
        Telemetry::builder()
            .namespace("disruptor")
            .system_metrics(false)
            .bearer_token("s3cret-token"),
    );
    let counter = telemetry.meter("bot").u64_counter("events").build();
    for i in 0..50 {
        counter.add(1, &[opentelemetry::KeyValue::new("n", i.to_string())]);
    }
    let addr = telemetry.local_addr().expect("serving");
    let auth = ("authorization", "Bearer s3cret-token");
    for (path, headers) in [
        ("/metrics", vec![auth]),
        ("/metrics", vec![auth, ("accept-encoding", "gzip")]),
        ("/metrics", vec![]),
        ("/healthz", vec![]),
    ] {
        let get = request(addr, "GET", path, &headers).await;
        let head = request(addr, "HEAD", path, &headers).await;
        assert_eq!(head.status, get.status, "{path} {headers:?}");
        assert!(!get.body.is_empty(), "{path} {headers:?}");
        assert!(head.body.is_empty(), "{path} {headers:?}");
        assert_eq!(
            headers_but_date_and_framing(&head),
            headers_but_date_and_framing(&get),
            "{path} {headers:?}"
        );
        // An identity answer tells its length, also to HEAD.
        if get.header("content-encoding").is_none() {
            assert_eq!(
                head.header("content-length"),
                Some(get.body.len().to_string().as_str()),
                "{path} {headers:?}"
            );
        }
    }
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
    for (needs, builder) in [
        ("serving", Telemetry::builder().listen("127.0.0.1:0")),
        ("system metrics", Telemetry::builder().serve(false)),
    ] {
        let err = builder.set_global(false).install().expect_err(needs);
        assert_eq!(err.kind(), &BuildErrorType::NoRuntime, "{needs}");
    }
    // The exporter alone needs none.
    let telemetry = Telemetry::builder()
        .serve(false)
        .system_metrics(false)
        .set_global(false)
        .install()
        .expect("no runtime needed");
    telemetry
        .meter("bot")
        .u64_counter("commands")
        .build()
        .add(1, &[]);
    assert_eq!(
        Scrape::parse(&telemetry.render()).value("botscope_commands_total", &[]),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_testkit_scrapes_what_the_server_serves() {
    let telemetry = install(
        Telemetry::builder()
            .namespace("disruptor")
            .system_metrics(false),
    );
    let metrics = TestMetrics::new("disruptor");
    for meter in [telemetry.meter("bot"), metrics.meter()] {
        let labels = [opentelemetry::KeyValue::new("name", "ping")];
        meter.u64_counter("commands").build().add(3, &labels);
        meter
            .f64_histogram("command_duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build()
            .record(0.5, &labels);
        meter
            .i64_up_down_counter("active_jobs")
            .build()
            .add(-2, &labels);
    }
    let addr = telemetry.local_addr().expect("serving");
    let served = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(served.status, 200);
    // target_info included, scope labels left out, alike.
    assert!(served.text().contains("target_info{"), "{}", served.text());
    assert_eq!(metrics.render(), served.text());
    telemetry.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let telemetry = install(Telemetry::builder());
    let addr = telemetry.local_addr().expect("serving");
    telemetry.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A metric callback that blocks until released (at most 30 s), counting its runs.
#[derive(Default)]
struct StuckCallback {
    runs: AtomicUsize,
    inside: AtomicUsize,
    most_inside: AtomicUsize,
    released: Mutex<bool>,
    release: Condvar,
}

impl StuckCallback {
    fn run(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let inside = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_inside.fetch_max(inside, Ordering::SeqCst);
        let released = self.released.lock().expect("lock");
        let _released = self
            .release
            .wait_timeout_while(released, Duration::from_secs(30), |released| !*released)
            .expect("lock");
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }

    fn release(&self) {
        *self.released.lock().expect("lock") = true;
        self.release.notify_all();
    }
}

/// `count` scrapes at once, each telling the server it gives up after `timeout`, as Prometheus
/// does; their statuses.
async fn scrapes_at_once(addr: SocketAddr, count: usize, timeout: &'static str) -> Vec<u16> {
    let scrapes: Vec<_> = (0..count)
        .map(|_| {
            tokio::spawn(async move {
                let headers = [("x-prometheus-scrape-timeout-seconds", timeout)];
                request(addr, "GET", "/metrics", &headers).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for scrape in scrapes {
        statuses.push(scrape.await.expect("scrape task"));
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_callback_holds_one_collection_not_one_per_scrape_nor_the_runtime() {
    let telemetry = install(Telemetry::builder().system_metrics(false));
    let addr = telemetry.local_addr().expect("serving");
    let stuck = Arc::new(StuckCallback::default());
    let callback = Arc::clone(&stuck);
    let _gauge = telemetry
        .meter("bot")
        .u64_observable_gauge("stuck")
        .with_callback(move |observer| {
            callback.run();
            observer.observe(1, &[]);
        })
        .build();

    let scrape_timeout = Duration::from_millis(500);
    let first_wave = tokio::spawn(scrapes_at_once(addr, 50, "0.5"));
    // While the scrapes wait, the bot's runtime answers: a timer fires on time, /healthz answers.
    let tick = Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(tick.elapsed() < scrape_timeout, "{:?}", tick.elapsed());
    let health = Instant::now();
    assert_eq!(request(addr, "GET", "/healthz", &[]).await.status, 200);
    assert!(health.elapsed() < scrape_timeout, "{:?}", health.elapsed());

    let started = Instant::now();
    let statuses = first_wave.await.expect("first wave");
    // Each scrape gives up when Prometheus would (503), well before the callback returns.
    assert!(statuses.iter().all(|&status| status == 503), "{statuses:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Scrapes after timed-out ones join the running collection rather than start another.
    let statuses = scrapes_at_once(addr, 50, "0.5").await;
    assert!(statuses.iter().all(|&status| status == 503), "{statuses:?}");
    assert_eq!(stuck.runs.load(Ordering::SeqCst), 1);

    stuck.release();
    let reply = request(addr, "GET", "/metrics", &[]).await;
    eprintln!(
        "final at {:?} {} {}",
        started.elapsed(),
        reply.status,
        reply.text()
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        Scrape::parse(&reply.text()).value("botscope_stuck", &[]),
        Some(1.0)
    );
    // The scrape joined the released collection or started the one after it: 100 scrapes ran
    // the callback at most twice, never two at once.
    assert!(stuck.runs.load(Ordering::SeqCst) <= 2);
    assert_eq!(stuck.most_inside.load(Ordering::SeqCst), 1);
    telemetry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_and_reconnecting_half_requests_do_not_keep_a_scraper_out() {
    const HALF_A_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nhost: botscope\r\n";
    let telemetry = install(Telemetry::builder().system_metrics(false));
    let addr = telemetry.local_addr().expect("serving");

    let mut held = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(HALF_A_REQUEST).await.expect("write");
        held.push(stream);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churning = Arc::new(Semaphore::new(0));
    let churn: Vec<_> = (0..300)
        .map(|_| {
            let (stop, churning) = (Arc::clone(&stop), Arc::clone(&churning));
            tokio::spawn(async move {
                // Until the scrape is over, however long a loaded machine makes it; bounded in
                // time, so the test ends by itself whatever the server does.
                let started = Instant::now();
                let mut first = true;
                while started.elapsed() < Duration::from_secs(20) {
                    if let Ok(mut stream) = TcpStream::connect(addr).await {
                        let _ = stream.write_all(HALF_A_REQUEST).await;
                    }
                    if std::mem::take(&mut first) {
                        churning.add_permits(1);
                    }
                    if stop.load(Ordering::Relaxed) {
                        return true;
                    }
                    tokio::task::yield_now().await;
                }
                false
            })
        })
        .collect();
    // Every reconnecting client is at it before the scraper comes.
    let _all = churning.acquire_many(300).await.expect("open");

    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        client::request(addr, "GET", "/metrics", &[]),
    )
    .await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut still_at_it = 0;
    for client in churn {
        still_at_it += usize::from(client.await.expect("churn task"));
    }
    assert_eq!(still_at_it, 300, "the churn ended before the scrape did");
    let reply = reply.expect("a scrape within 5 s").expect("HTTP exchange");
    assert_eq!(reply.status, 200, "after {elapsed:?}");
    assert!(reply.text().contains("target_info"), "{}", reply.text());
    drop(held);
    telemetry.shutdown().await;
}

/// Past the cap (256) this many more connections make the server close as many to make room.
const PAST_THE_CAP: usize = 300 + 1 - 256;
/// The server's own header read timeout (3 s), which also closes idle connections: a
/// connection closed sooner after its last exchange was closed to make room.
const BEFORE_THE_HEADER_TIMEOUT: Duration = Duration::from_millis(2_500);

/// About 9 MB of exposition in `telemetry`: more than socket buffers hold, so a scrape's body
/// is still on its way while its scraper does not read.
fn record_a_big_exposition(telemetry: &Telemetry) {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;

    let counter = telemetry
        .meter_provider()
        .meter("big")
        .u64_counter("big")
        .build();
    // Under the SDK's cardinality limit (2,000 series an instrument), long values.
    let padding = "x".repeat(6_000);
    for i in 0..1_500 {
        counter.add(
            1,
            &[KeyValue::new("series", format!("series-{i:05}-{padding}"))],
        );
    }
}

/// A scraper whose small receive window stalls the server's writes as soon as it stops
/// reading: it sent `GET /metrics` and read the first bytes of the answer.
async fn slow_scraper(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    use tokio::io::AsyncReadExt;

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut scraper = socket.connect(addr).await.expect("connect");
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: botscope\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut first = vec![0; 4096];
    let read = scraper.read(&mut first).await.expect("the head arrives");
    first.truncate(read);
    (scraper, first)
}

/// The status line and the body of a whole answer, checked against its `content-length`.
fn whole_body(answer: Vec<u8>) -> (String, String) {
    let text = String::from_utf8(answer).expect("text");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("content-length");
    assert!(
        length > 8_000_000,
        "{length} bytes is too small to test this"
    );
    assert_eq!(body.len(), length, "the body was cut");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Waits until `streams` (each after its request, if any) are closed by the server, and
/// counts those closed within `within` of the moment each was handed over; gives up counting
/// once `at_least` are.
async fn closed_within(streams: Vec<TcpStream>, within: Duration, at_least: usize) -> usize {
    use tokio::io::AsyncReadExt;

    let (closed, mut closures) = tokio::sync::mpsc::unbounded_channel();
    for mut stream in streams {
        let closed = closed.clone();
        let since = Instant::now();
        tokio::spawn(async move {
            let mut sink = [0; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            let _ = closed.send(since.elapsed());
        });
    }
    drop(closed);
    let mut soon = 0;
    while let Some(after) = closures.recv().await {
        soon += usize::from(after < within);
        if soon >= at_least {
            break;
        }
    }
    soon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_still_sending_its_body_is_not_closed_to_make_room() {
    use tokio::io::AsyncReadExt;

    let telemetry = install(Telemetry::builder().system_metrics(false));
    let addr = telemetry.local_addr().expect("serving");
    record_a_big_exposition(&telemetry);
    let (mut scraper, mut answer) = slow_scraper(addr).await;

    // A flood of new connections, past the cap, while the scraper does not read.
    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n").await;
        flood.push(stream);
    }
    // The server made room: as many were closed, sooner than its header timeout would have.
    let evicted = closed_within(flood, BEFORE_THE_HEADER_TIMEOUT, PAST_THE_CAP).await;
    assert!(
        evicted >= PAST_THE_CAP,
        "only {evicted} closed to make room"
    );

    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), scraper.read_to_end(&mut rest))
        .await
        .expect("the body ends")
        .expect("read");
    answer.extend_from_slice(&rest);
    let (status, body) = whole_body(answer);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("series-01499-"));
    telemetry.shutdown().await;
}

/// Issue 21, finding 2: a slow reader of a large scrape got 2.8 of its 8.85 MB, then EOF, when
/// 300 keep-alive `/healthz` connections arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_scrape_to_a_slow_reader_arrives_whole_while_300_connections_churn() {
    use tokio::io::AsyncReadExt;

    let telemetry = install(Telemetry::builder().system_metrics(false));
    let addr = telemetry.local_addr().expect("serving");
    record_a_big_exposition(&telemetry);
    let (mut scraper, mut answer) = slow_scraper(addr).await;

    // 300 clients, each answered once and kept alive: used, then idle, like the scraper's.
    let churn: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nhost: botscope\r\n\r\n")
                    .await
                    .expect("write");
                let mut seen = Vec::new();
                let mut buf = [0; 512];
                while !seen.ends_with(b"\r\n\r\nok\n") {
                    match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                        // Closed to make room before its answer: a churn of its own.
                        _ => break,
                    }
                }
                stream
            })
        })
        .collect();
    let mut churned = Vec::new();
    for client in churn {
        churned.push(client.await.expect("churn task"));
    }
    // The server made room among them (if it closed the scraper instead, one fewer).
    let evicted = closed_within(churned, BEFORE_THE_HEADER_TIMEOUT, PAST_THE_CAP).await;
    assert!(
        evicted >= PAST_THE_CAP,
        "only {evicted} closed to make room"
    );

    // The scraper reads the rest, slowly.
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), scraper.read(&mut buf))
            .await
            .expect("the body keeps coming")
            .expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        tokio::task::yield_now().await;
    }
    let (status, body) = whole_body(answer);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("series-01499-"));
    telemetry.shutdown().await;
}

/// Issue 21, finding 5: a client that never read its scrape held its connection for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_that_stops_reading_is_closed_after_the_write_timeout() {
    use tokio::io::AsyncReadExt;

    let write_timeout = Duration::from_millis(300);
    let telemetry = install(
        Telemetry::builder()
            .system_metrics(false)
            .write_timeout(write_timeout),
    );
    let addr = telemetry.local_addr().expect("serving");
    record_a_big_exposition(&telemetry);
    let (mut scraper, mut answer) = slow_scraper(addr).await;

    // The scraper stops reading for ten times the timeout: the server gives up on it.
    tokio::time::sleep(write_timeout * 10).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), scraper.read_to_end(&mut rest))
        .await
        .expect("the connection was closed");
    answer.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(
        answer.len() < 8_000_000,
        "{} bytes arrived: the connection stayed open",
        answer.len()
    );
    telemetry.shutdown().await;
}
