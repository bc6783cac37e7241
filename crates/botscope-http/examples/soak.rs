//! Soak benchmark: memory of the proxy under millions of distinct routes.
//!
//! Drives `--routes` distinct interaction callbacks (`POST
//! /api/v10/interactions/{id}/{token}/callback`), webhook executions (`POST
//! /api/v10/webhooks/{id}/{token}`) or messages to distinct channels (`POST
//! /api/v10/channels/{id}/messages`, routes twilight's limiter queues) through a real
//! [`DiscordProxy`], `--concurrency` requests
//! in flight over as many keep-alive connections, to a loopback upstream that answers every
//! request like Discord: 204 with `x-ratelimit-bucket`, `-limit`, `-remaining`, `-reset`,
//! `-reset-after` and `-scope: user`. It prints the process's resident set (`VmRSS`) before,
//! after each round, and after the ratelimiter's sweep (`--sweep` seconds, waited for, then
//! one request to run it).
//!
//! ```text
//! cargo run --release -p botscope-http --example soak -- --routes 1000000 --kind interactions
//! cargo run --release -p botscope-http --example soak -- --routes 1000000 --kind webhooks
//! cargo run --release -p botscope-http --example soak -- --routes 1000000 --kind channels
//! ```
//!
//! Options: `--routes N` (default 1,000,000), `--kind interactions|webhooks|channels`,
//! `--global-limit N` (the proxy's global requests per second, default 65,535: the soak
//! measures memory, and at Discord's 50 a million routes take 5.5 hours), `--concurrency N`
//! (64), `--rounds N` (1: each round sends `--routes` new routes, then sweeps), `--remaining N`
//! (the upstream's `x-ratelimit-remaining`, default 0: every route's bucket is left exhausted
//! until its reset, the worst case for what a limiter must remember), `--reset-after SECS`
//! (1.0), `--sweep SECS` (5).
//!
//! The process uses the system allocator, as a bot does unless it opts into jemalloc; freed
//! memory that the allocator keeps for reuse stays in the resident set, so "flat" is read
//! across rounds: a second round of new routes must not raise it.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use botscope_http::DiscordProxy;
use botscope_testkit::TestMetrics;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Interactions,
    Webhooks,
    Channels,
}

#[derive(Clone, Copy)]
struct Options {
    routes: u64,
    kind: Kind,
    concurrency: usize,
    rounds: u32,
    remaining: u16,
    reset_after: f64,
    sweep: Duration,
    global_limit: u16,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        routes: 1_000_000,
        kind: Kind::Interactions,
        concurrency: 64,
        rounds: 1,
        remaining: 0,
        reset_after: 1.0,
        sweep: Duration::from_secs(5),
        global_limit: u16::MAX,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let bad = || format!("bad value {value:?} for {flag}");
        match flag.as_str() {
            "--routes" => options.routes = value.parse().map_err(|_| bad())?,
            "--kind" => {
                options.kind = match value.as_str() {
                    "interactions" => Kind::Interactions,
                    "webhooks" => Kind::Webhooks,
                    "channels" => Kind::Channels,
                    _ => return Err(bad()),
                }
            }
            "--global-limit" => options.global_limit = value.parse().map_err(|_| bad())?,
            "--concurrency" => options.concurrency = value.parse().map_err(|_| bad())?,
            "--rounds" => options.rounds = value.parse().map_err(|_| bad())?,
            "--remaining" => options.remaining = value.parse().map_err(|_| bad())?,
            "--reset-after" => options.reset_after = value.parse().map_err(|_| bad())?,
            "--sweep" => {
                options.sweep = value
                    .parse()
                    .ok()
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                    .ok_or_else(bad)?;
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// The process's resident set, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Answers every request 204 with Discord's bucket headers.
async fn upstream(remaining: u16, reset_after: f64) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let remaining = HeaderValue::from(remaining);
    let reset_after_value =
        HeaderValue::from_str(&format!("{reset_after:.3}")).expect("a header value");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let remaining = remaining.clone();
            let reset_after_value = reset_after_value.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let remaining = remaining.clone();
                    let reset_after_value = reset_after_value.clone();
                    async move {
                        let _ = request.into_body().collect().await;
                        let reset = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs_f64()
                            + reset_after;
                        let mut response = Response::new(Empty::<Bytes>::new());
                        *response.status_mut() = StatusCode::NO_CONTENT;
                        let headers = response.headers_mut();
                        headers.insert(
                            "x-ratelimit-bucket",
                            HeaderValue::from_static("0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
                        );
                        headers.insert("x-ratelimit-limit", HeaderValue::from_static("5"));
                        headers.insert("x-ratelimit-remaining", remaining);
                        headers.insert(
                            "x-ratelimit-reset",
                            HeaderValue::from_str(&format!("{reset:.3}")).expect("a header value"),
                        );
                        headers.insert("x-ratelimit-reset-after", reset_after_value);
                        headers.insert("x-ratelimit-scope", HeaderValue::from_static("user"));
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The path of route number `n`: a distinct snowflake and a distinct token of Discord's length.
fn path(kind: Kind, n: u64) -> String {
    let id = 1_300_000_000_000_000_000 + n;
    match kind {
        // Interaction tokens are the base64 of `interaction:<id>:<secret>`, about 200 chars.
        Kind::Interactions => {
            format!("/api/v10/interactions/{id}/aW50ZXJhY3Rpb246{id}{n:0>160x}/callback")
        }
        // Webhook tokens are 68 characters.
        Kind::Webhooks => format!("/api/v10/webhooks/{id}/{n:0>68x}"),
        Kind::Channels => format!("/api/v10/channels/{id}/messages"),
    }
}

/// Sends routes `next..end` over one keep-alive connection, one at a time; returns the
/// number of answers that were not 2xx.
async fn worker(proxy: SocketAddr, kind: Kind, next: Arc<AtomicU64>, end: u64) -> u64 {
    let stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let body: &'static [u8] = match kind {
        Kind::Interactions => br#"{"type":6}"#,
        Kind::Webhooks | Kind::Channels => br#"{"content":"soak"}"#,
    };
    let mut failures = 0;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= end {
            return failures;
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(path(kind, n))
            .header("host", proxy.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .expect("a request");
        sender.ready().await.expect("connection open");
        let response = sender.send_request(request).await.expect("an answer");
        if !response.status().is_success() {
            if failures == 0 {
                eprintln!("soak: route {n} answered {}", response.status());
            }
            failures += 1;
        }
        let _ = response.into_body().collect().await;
    }
}

/// Sends `count` new routes starting at `first` with `concurrency` connections.
async fn round(proxy: SocketAddr, options: &Options, first: u64, count: u64) -> u64 {
    let next = Arc::new(AtomicU64::new(first));
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                proxy,
                options.kind,
                Arc::clone(&next),
                first + count,
            ))
        })
        .collect();
    let mut failures = 0;
    for worker in workers {
        failures += worker.await.expect("worker finished");
    }
    failures
}

/// Waits past every reset and the sweep interval, then sends route `n` alone: the request
/// that runs the sweep.
async fn sweep(proxy: SocketAddr, options: &Options, n: u64) {
    tokio::time::sleep(options.sweep).await;
    let alone = Options {
        concurrency: 1,
        ..*options
    };
    round(proxy, &alone, n, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // The bot's own TLS provider, which the proxy's client uses as twilight-http's does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async move {
        let metrics = TestMetrics::new("soak");
        let upstream = upstream(options.remaining, options.reset_after).await;
        let proxy = DiscordProxy::builder()
            .upstream(format!("http://{upstream}"))
            .meter(metrics.meter())
            .ratelimit_sweep_interval(options.sweep)
            .global_limit(options.global_limit)
            .spawn()
            .await
            .expect("proxy");
        let addr = proxy.local_addr();
        let kind = match options.kind {
            Kind::Interactions => "interactions",
            Kind::Webhooks => "webhooks",
            Kind::Channels => "channels",
        };
        println!(
            "soak: {} distinct {kind} per round, {} round(s), {} in flight, upstream remaining \
             {} reset-after {} s, sweep after {:?}, global limit {}/s, system allocator",
            options.routes,
            options.rounds,
            options.concurrency,
            options.remaining,
            options.reset_after,
            options.sweep,
            options.global_limit,
        );
        // Warm up: connections, buffers, the metric series.
        let warm = round(addr, &options, 0, 1_000.min(options.routes)).await;
        let mut first = 1_000;
        sweep(addr, &options, first).await;
        first += 1;
        let before = rss_mib();
        println!("rss before: {before:.1} MiB (warm-up failures: {warm})");
        for number in 1..=options.rounds {
            let start = Instant::now();
            let failures = round(addr, &options, first, options.routes).await;
            first += options.routes;
            let elapsed = start.elapsed();
            let after = rss_mib();
            println!(
                "round {number}: {} requests in {:.1} s ({:.0}/s), {failures} not 2xx; rss after: \
                 {after:.1} MiB (+{:.1})",
                options.routes,
                elapsed.as_secs_f64(),
                options.routes as f64 / elapsed.as_secs_f64(),
                after - before,
            );
            sweep(addr, &options, first).await;
            first += 1;
            let swept = rss_mib();
            println!(
                "round {number}: rss after the sweep: {swept:.1} MiB (+{:.1})",
                swept - before
            );
        }
        proxy.shutdown().await;
    });
    ExitCode::SUCCESS
}
