//! Decorated vs bare async job, measured in the same run. Budget: ≤ 1 µs added per run.
//!
//! Criterion measures both paths; then the two are sampled alternately (so machine noise
//! hits both alike) and the medians and their ratio are printed.

use std::hint::black_box;
use std::time::Duration;

use botscope_jobs::Job;
use botscope_testkit::TestMetrics;
use botscope_testkit::bench::interleaved_async;
use criterion::{Criterion, criterion_group, criterion_main};

async fn work(x: u64) -> Result<u64, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(black_box(x) + 1)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let metrics = TestMetrics::new("bench");
    let job = Job::builder("bench_job")
        .meter(metrics.meter())
        .build(|| work(1))
        .expect("a named job");

    let mut group = c.benchmark_group("job");
    group.bench_function("bare", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(work(1).await) });
    });
    group.bench_function("decorated", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(job.run().await) });
    });
    group.finish();

    runtime
        .block_on(interleaved_async(10_000, || work(1), || job.run()))
        .print("job decorator per run", 1_000.0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
