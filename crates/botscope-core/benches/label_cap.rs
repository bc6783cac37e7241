//! `LabelCap::admit` on an admitted value against a bare `HashSet` lookup, same run.

use std::collections::HashSet;
use std::hint::black_box;

use botscope_core::LabelCap;
use criterion::{Criterion, criterion_group, criterion_main};

fn label_cap(c: &mut Criterion) {
    let ids: Vec<String> = (0..1_000u64)
        .map(|i| (81_384_788_765_712_384 + i).to_string())
        .collect();
    let cap = LabelCap::new(1_000);
    let bare: HashSet<String> = ids.iter().cloned().collect();
    for id in &ids {
        cap.admit(id);
    }
    let probe = &ids[517];

    let mut group = c.benchmark_group("label_cap");
    group.bench_function("bare_hashset_get", |b| {
        b.iter(|| black_box(bare.get(black_box(probe.as_str()))))
    });
    group.bench_function("admit_admitted", |b| {
        b.iter(|| black_box(cap.admit(black_box(probe))))
    });
    group.bench_function("admit_overflow", |b| {
        b.iter(|| black_box(cap.admit(black_box("not-admitted"))))
    });
    group.finish();
}

criterion_group!(benches, label_cap);
criterion_main!(benches);
