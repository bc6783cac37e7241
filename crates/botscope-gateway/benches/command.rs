//! `CommandMetrics::instrument` around a handler against the bare handler, in the same run.
//! Budget: ≤ 1 µs added per handled interaction.
//!
//! The handler yields once, as one that awaits anything does. The meter is a real SDK provider
//! with the Prometheus exporter, as in production.

use std::hint::black_box;

use botscope_gateway::CommandMetrics;
use botscope_testkit::TestMetrics;
use botscope_testkit::bench::interleaved_async;
use botscope_testkit::interaction::FakeInteraction;
use criterion::{Criterion, criterion_group, criterion_main};
use twilight_model::application::interaction::Interaction;

async fn handle(interaction: &Interaction) -> Result<u64, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(black_box(interaction.id.get()))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let metrics = TestMetrics::new("bench");
    let commands = CommandMetrics::builder().meter(metrics.meter()).build();
    let interaction: Interaction =
        serde_json::from_value(FakeInteraction::command("ping").minted().json())
            .expect("an interaction twilight reads");

    let mut group = c.benchmark_group("command");
    group.bench_function("bare", |b| {
        b.to_async(&runtime).iter(|| handle(&interaction));
    });
    group.bench_function("instrumented", |b| {
        b.to_async(&runtime)
            .iter(|| commands.instrument(&interaction, handle(&interaction)));
    });
    group.finish();

    runtime
        .block_on(interleaved_async(
            10_000,
            || handle(&interaction),
            || commands.instrument(&interaction, handle(&interaction)),
        ))
        .print("command decorator per interaction", 1_000.0);
    assert!(metrics.render().contains("bench_commands_total"));
}

criterion_group!(benches, bench);
criterion_main!(benches);
