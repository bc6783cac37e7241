//! Decorated vs bare async job, measured in the same run. Budget: ≤ 1 µs added per run.
//!
//! Criterion measures both paths; then the two are sampled alternately (so machine noise
//! hits both alike) and the medians and their ratio are printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use botscope_jobs::Job;
use botscope_testkit::TestMetrics;
use criterion::{Criterion, criterion_group, criterion_main};

async fn work(x: u64) -> Result<u64, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(black_box(x) + 1)
}

/// Median nanoseconds per iteration of `run`, over `samples` batches of `batch`.
fn median_ns(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
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

    const SAMPLES: usize = 101;
    const BATCH: u32 = 10_000;
    let (mut bare, mut decorated) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for _ in 0..SAMPLES {
            let start = Instant::now();
            for _ in 0..BATCH {
                let _ = black_box(work(1).await);
            }
            bare.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
            let start = Instant::now();
            for _ in 0..BATCH {
                let _ = black_box(job.run().await);
            }
            decorated.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
    });
    let (bare, decorated) = (median_ns(&mut bare), median_ns(&mut decorated));
    println!(
        "job decorator, same run: bare median {bare:.1} ns/run, decorated median {decorated:.1} ns/run, \
         added {:.1} ns/run (budget 1000), ratio {:.2}x",
        decorated - bare,
        decorated / bare
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
