//! twilight-http → proxy (metrics + ratelimit layers) → fake Discord, against twilight-http →
//! fake Discord with twilight's own ratelimiter; sequential requests, same run.
//! Budget: at most +100 µs on the median (goal: ratio ≤ 1.10).
//!
//! Both limiters get a global limit of `u16::MAX` per second: with Discord's 50 per second,
//! back-to-back iterations would measure the limit, not the path. Both still run the
//! limiter's actor for every request.

use std::time::{Duration, Instant};

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
    let (fake, proxy, via_proxy, direct) = runtime.block_on(async {
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
        // warm both connection pools
        one(&via_proxy).await;
        one(&direct).await;
        (fake, proxy, via_proxy, direct)
    });

    let mut group = c.benchmark_group("twilight_current_user");
    group.bench_function("direct_own_ratelimiter", |b| {
        b.to_async(&runtime).iter(|| one(&direct));
    });
    group.bench_function("through_proxy", |b| {
        b.to_async(&runtime).iter(|| one(&via_proxy));
    });
    group.finish();

    // Medians of single sequential requests, interleaved so both see the same machine load.
    let (mut direct_us, mut proxy_us) = runtime.block_on(async {
        let mut direct_us = Vec::new();
        let mut proxy_us = Vec::new();
        for _ in 0..2_000 {
            let start = Instant::now();
            one(&direct).await;
            direct_us.push(start.elapsed().as_secs_f64() * 1e6);
            let start = Instant::now();
            one(&via_proxy).await;
            proxy_us.push(start.elapsed().as_secs_f64() * 1e6);
        }
        (direct_us, proxy_us)
    });
    let direct_median = median_us(&mut direct_us);
    let proxy_median = median_us(&mut proxy_us);
    println!(
        "twilight_current_user: direct (own ratelimiter) median {direct_median:.1} µs, through \
         proxy median {proxy_median:.1} µs, added {:.1} µs (budget 100 µs), ratio {:.3}x (goal 1.10x)",
        proxy_median - direct_median,
        proxy_median / direct_median,
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
