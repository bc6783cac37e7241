//! What a unit's span costs when no subscriber records it, in the same run: a `Timed` whose
//! `Finish` opens no span against one whose `Finish` opens a `unit_span!` with four fields,
//! each awaited to its end (the clock reads, the poll, the finish). Budget: ≤ 20 ns added.
//!
//! Criterion measures both; then the two are sampled alternately (so machine noise hits both
//! alike) and the medians, their difference and their ratio are printed. Two more show what a
//! recorded span costs: under a `fmt` subscriber writing to nowhere (a bot's log lines; at its
//! default `info` it skips the `debug` unit spans, at `debug` it records them), and through
//! tracing-opentelemetry into the SDK (every span sampled, exported to memory).

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use botscope_core::outcome::{Ending, Finish, Timed};
use botscope_core::span::Span;
use criterion::{Criterion, criterion_group, criterion_main};

/// A finish that records nothing and opens no span: the model as it was.
struct Bare;

impl Finish<u64> for Bare {
    fn finish(self, elapsed: Duration, _: Ending<'_, u64>) {
        black_box(elapsed);
    }
}

/// The same, with a span as botscope's units open theirs.
struct Spanned;

impl Finish<u64> for Spanned {
    fn span(&self) -> Span {
        botscope_core::unit_span!(
            target: "bench",
            "db.query",
            otel.name = "SELECT guilds",
            otel.kind = "client",
            "db.system.name" = "sqlite",
            "db.operation.name" = "SELECT",
        )
    }

    fn finish(self, elapsed: Duration, _: Ending<'_, u64>) {
        black_box(elapsed);
    }
}

fn run<R: Finish<u64>>(finish: R) -> u64 {
    let timed = pin!(Timed::new(async { black_box(7_u64) }, finish));
    match timed.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("ready at once"),
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn bench(c: &mut Criterion) {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let fmt = |level| {
        tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(std::io::sink)
                .finish(),
        )
    };
    let (fmt_info, fmt_debug) = (fmt(tracing::Level::INFO), fmt(tracing::Level::DEBUG));
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let otel = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );

    let mut group = c.benchmark_group("unit_span");
    group.bench_function("no_span", |b| b.iter(|| run(Bare)));
    group.bench_function("span_no_subscriber", |b| b.iter(|| run(Spanned)));
    tracing::dispatcher::with_default(&fmt_info, || {
        group.bench_function("span_fmt_info", |b| b.iter(|| run(Spanned)));
    });
    tracing::dispatcher::with_default(&fmt_debug, || {
        group.bench_function("span_fmt_debug", |b| b.iter(|| run(Spanned)));
    });
    tracing::dispatcher::with_default(&otel, || {
        group.bench_function("span_opentelemetry", |b| {
            b.iter(|| run(Spanned));
            exporter.reset();
        });
    });
    group.finish();

    const BATCH: u32 = 10_000;
    let (mut bare, mut spanned) = (Vec::new(), Vec::new());
    for _ in 0..301 {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(run(Bare));
        }
        bare.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(run(Spanned));
        }
        spanned.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    let (bare, spanned) = (median(&mut bare), median(&mut spanned));
    println!(
        "unit span, no subscriber: {bare:.1} ns without, {spanned:.1} ns with: +{:.1} ns, ratio {:.3}",
        spanned - bare,
        spanned / bare
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
