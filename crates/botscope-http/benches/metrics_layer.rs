//! DiscordMetricsLayer on an in-memory service against the bare service, same run.
//! Budget: at most 300 ns added per request (issue 20); the figures go in BENCHMARKS.md.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use botscope_http::DiscordMetricsLayer;
use botscope_testkit::TestMetrics;
use botscope_testkit::bench::interleaved;
use criterion::{Criterion, criterion_group};
use tower::{Layer, Service, service_fn};

fn request() -> http::Request<()> {
    http::Request::post("/api/v10/channels/381870553235193857/messages")
        .body(())
        .expect("a valid request")
}

/// Calls the service once and polls its (always ready) future to completion.
fn call<S>(service: &mut S) -> http::StatusCode
where
    S: Service<http::Request<()>, Response = http::Response<()>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(request()));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => response.status(),
        _ => unreachable!("the in-memory service answers at once"),
    }
}

fn bare() -> impl Service<http::Request<()>, Response = http::Response<()>, Error = Infallible> {
    service_fn(|_req: http::Request<()>| std::future::ready(Ok(http::Response::new(()))))
}

fn bench(c: &mut Criterion) {
    let metrics = TestMetrics::new("bench");
    let layer = DiscordMetricsLayer::builder()
        .meter(metrics.meter())
        .build();
    let mut group = c.benchmark_group("discord_metrics_layer");
    let mut plain = bare();
    group.bench_function("bare", |b| b.iter(|| call(&mut plain)));
    let mut measured = layer.layer(bare());
    group.bench_function("instrumented", |b| b.iter(|| call(&mut measured)));
    group.finish();

    interleaved(
        20_000,
        || {
            black_box(call(&mut plain));
        },
        || {
            black_box(call(&mut measured));
        },
    )
    .print("discord_metrics_layer", 300.0);
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
