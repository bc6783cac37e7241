//! Rendering `/metrics` with 10,000 series (budget: 50 ms).
//!
//! The series are 10 counters × 1,000 label values, under the OpenTelemetry SDK's default
//! cardinality limit of 2,000 per instrument.

use std::hint::black_box;

use botscope::Telemetry;
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;

fn render(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let telemetry = Telemetry::builder()
        .namespace("disruptor")
        .serve(false)
        .set_global(false)
        .install()
        .expect("install");
    let meter = telemetry.meter("bench");
    let names = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    for name in names {
        let counter = meter.u64_counter(name).build();
        for guild in 0..1_000u64 {
            counter.add(
                1,
                &[KeyValue::new(
                    "guild_id",
                    (81_384_788_765_712_384 + guild).to_string(),
                )],
            );
        }
    }
    let series = telemetry
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert!(series >= 10_000, "only {series} series");

    c.bench_function("render_10000_series", |b| {
        b.iter(|| black_box(telemetry.render()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = render
}
criterion_main!(benches);
