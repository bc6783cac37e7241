//! What an instrument built before `install_provider` costs once bound, against the same
//! instrument built on the provider directly, in the same run: a bound counter add, a bound
//! histogram record and an unbound counter add with two attributes.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};

fn late_meter(c: &mut Criterion) {
    let attributes = [
        KeyValue::new("db", "bench"),
        KeyValue::new("status", "success"),
    ];
    // built before install: late
    let late = botscope_core::meter::global_meter("bench-late", "0");
    let late_counter = late.u64_counter("late_counter").build();
    let late_bound = late_counter.bind(&attributes);
    let late_histogram = late
        .f64_histogram("late_histogram")
        .build()
        .bind(&attributes);

    // a provider as an exporter builds one (a reader the bench never collects)
    let provider = SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build();
    botscope_core::meter::install_provider(Arc::new(provider.clone()));
    // built on the provider itself
    let direct = provider.meter("bench");
    let direct_counter = direct.u64_counter("direct_counter").build();
    let direct_bound = direct_counter.bind(&attributes);
    let direct_histogram = direct
        .f64_histogram("direct_histogram")
        .build()
        .bind(&attributes);

    let mut group = c.benchmark_group("late_meter");
    group.bench_function("bound_add/direct", |b| {
        b.iter(|| direct_bound.add(black_box(1)))
    });
    group.bench_function("bound_add/late", |b| {
        b.iter(|| late_bound.add(black_box(1)))
    });
    group.bench_function("bound_record/direct", |b| {
        b.iter(|| direct_histogram.record(black_box(0.01)))
    });
    group.bench_function("bound_record/late", |b| {
        b.iter(|| late_histogram.record(black_box(0.01)))
    });
    group.bench_function("add_2_attributes/direct", |b| {
        b.iter(|| direct_counter.add(black_box(1), &attributes))
    });
    group.bench_function("add_2_attributes/late", |b| {
        b.iter(|| late_counter.add(black_box(1), &attributes))
    });
    group.finish();
}

criterion_group!(benches, late_meter);
criterion_main!(benches);
