//! twilight-http → proxy (metrics + ratelimit layers) → fake Discord, against twilight-http →
//! fake Discord with twilight's own ratelimiter, and against twilight-http → a bare hyper
//! forwarder (no layer, no limiter, the proxy's client settings) → fake Discord: the cheapest
//! hop possible. Sequential requests, same run; the figures go in BENCHMARKS.md.
//! Budget: at most +100 µs on the median (goal: ratio ≤ 1.10).
//!
//! Both limiters get a global limit of `u16::MAX` per second: with Discord's 50 per second,
//! back-to-back iterations would measure the limit, not the path. Both still run the
//! limiter's actor for every request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use botscope_http::DiscordProxy;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::FakeDiscord;
use criterion::{Criterion, criterion_group};
use twilight_http::Client;
use twilight_http_ratelimiting::RateLimiter;

const TOKEN: &str = "Bot bench-token";

async fn one(client: &Client) {
    let user = client
        .current_user()
        .await
        .expect("the fake answers")
        .model()
        .await
        .expect("a user");
    std::hint::black_box(user);
}

/// A forwarder with nothing but hyper: each request goes to `upstream` over a pooled client
/// built as the proxy's (rustls with webpki roots, HTTP/1.1 and HTTP/2, Nagle off, 90 s idle
/// pool), and its answer streams back. The floor of any proxy's hop.
async fn bare_forwarder(upstream: SocketAddr) -> SocketAddr {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .expect("a provider with TLS versions")
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let client: HyperClient<_, Incoming> = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let path = request
                            .uri()
                            .path_and_query()
                            .map_or("/", |path| path.as_str());
                        *request.uri_mut() = Uri::builder()
                            .scheme("http")
                            .authority(upstream.to_string())
                            .path_and_query(path)
                            .build()
                            .expect("a valid uri");
                        request.headers_mut().remove(header::HOST);
                        let response: Response<Incoming> =
                            client.request(request).await.expect("the fake answers");
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn median_us(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let metrics = TestMetrics::new("bench");
    let (fake, proxy, via_proxy, via_bare, direct) = runtime.block_on(async {
        let fake = FakeDiscord::spawn().await.expect("fake discord");
        let proxy = DiscordProxy::builder()
            .upstream(fake.url())
            .meter(metrics.meter())
            .ratelimiter(RateLimiter::new(u16::MAX))
            .spawn()
            .await
            .expect("proxy");
        // The bot's own TLS, as twilight-http needs it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let via_proxy = proxy
            .configure(Client::builder().token(TOKEN.to_owned()))
            .build();
        let direct = Client::builder()
            .token(TOKEN.to_owned())
            .proxy(fake.host(), true)
            .ratelimiter(Some(RateLimiter::new(u16::MAX)))
            .build();
        let bare = bare_forwarder(fake.addr()).await;
        let via_bare = Client::builder()
            .token(TOKEN.to_owned())
            .proxy(bare.to_string(), true)
            .ratelimiter(None)
            .build();
        // warm every connection pool
        one(&via_proxy).await;
        one(&via_bare).await;
        one(&direct).await;
        (fake, proxy, via_proxy, via_bare, direct)
    });

    let mut group = c.benchmark_group("twilight_current_user");
    group.bench_function("direct_own_ratelimiter", |b| {
        b.to_async(&runtime).iter(|| one(&direct));
    });
    group.bench_function("through_bare_forwarder", |b| {
        b.to_async(&runtime).iter(|| one(&via_bare));
    });
    group.bench_function("through_proxy", |b| {
        b.to_async(&runtime).iter(|| one(&via_proxy));
    });
    group.finish();

    // Medians of single sequential requests, interleaved so all see the same machine load.
    let (mut direct_us, mut bare_us, mut proxy_us) = runtime.block_on(async {
        let mut samples = (Vec::new(), Vec::new(), Vec::new());
        let time = |samples: &mut Vec<f64>, start: Instant| {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        };
        for _ in 0..2_000 {
            let start = Instant::now();
            one(&direct).await;
            time(&mut samples.0, start);
            let start = Instant::now();
            one(&via_bare).await;
            time(&mut samples.1, start);
            let start = Instant::now();
            one(&via_proxy).await;
            time(&mut samples.2, start);
        }
        samples
    });
    let direct_median = median_us(&mut direct_us);
    let bare_median = median_us(&mut bare_us);
    let proxy_median = median_us(&mut proxy_us);
    let bare_hop = bare_median - direct_median;
    let proxy_hop = proxy_median - direct_median;
    println!(
        "twilight_current_user medians: direct (own ratelimiter) {direct_median:.1} µs, through \
         a bare hyper forwarder {bare_median:.1} µs (hop +{bare_hop:.1} µs, {:.3}x), through \
         the proxy {proxy_median:.1} µs (hop +{proxy_hop:.1} µs, {:.3}x; budget +100 µs, goal \
         1.10x); proxy hop / bare hop {:.2}x, proxy / bare {:.3}x",
        bare_median / direct_median,
        proxy_median / direct_median,
        proxy_hop / bare_hop,
        proxy_median / bare_median,
    );
    runtime.block_on(async move {
        proxy.shutdown().await;
        fake.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
