//! `GatewayTap::observe` per event against the bare event loop body, in the same run.
//!
//! The shard is connected to the testkit's fake gateway until READY, so it holds twilight's
//! command ratelimiter as in production, then no longer polled: `observe` reads its id,
//! state, latency and ratelimiter. MESSAGE_CREATE records its dispatch lag (one wall-clock
//! read and a histogram sample). The meter is a real SDK provider with the Prometheus
//! exporter, as in production. After criterion's report, the bench prints the median cost per
//! event of each path, sampled alternately (batches of 10,000 events), and their difference and
//! ratio. Budget: 50 ns added per event.

use botscope_gateway::GatewayTap;
use botscope_testkit::TestMetrics;
use botscope_testkit::bench::interleaved;
use botscope_testkit::gateway::FakeGateway;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use twilight_gateway::error::ReceiveMessageError;
use twilight_gateway::queue::Queue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

type Item = Result<Event, ReceiveMessageError>;

fn event(json: &str) -> Item {
    let parsed = twilight_gateway::parse(json.to_owned(), EventTypeFlags::all())
        .expect("valid payload")
        .expect("wanted event");
    Ok(Event::from(parsed))
}

fn message_create() -> Item {
    event(
        r#"{"op":0,"s":2,"t":"MESSAGE_CREATE","d":{"id":"3","channel_id":"4","author":{"id":"5","username":"u","discriminator":"0001","avatar":null},"content":"hi","timestamp":"2024-01-01T00:00:00.000000+00:00","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],"embeds":[],"pinned":false,"type":0}}"#,
    )
}

fn typing_start() -> Item {
    event(
        r#"{"op":0,"s":3,"t":"TYPING_START","d":{"channel_id":"4","user_id":"5","timestamp":1700000000}}"#,
    )
}

/// Lets the shard identify at once.
struct NoWait;

impl Queue for NoWait {
    fn enqueue(&self, _id: u32) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(());
        rx
    }
}

/// A shard after READY from the fake gateway; the runtime and the fake outlive it.
fn shard(runtime: &tokio::runtime::Runtime) -> (FakeGateway, Shard<NoWait>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let gateway = FakeGateway::spawn().await.expect("bind the fake gateway");
        let config = ConfigBuilder::new("bench-token".to_owned(), Intents::empty())
            .proxy_url(gateway.url())
            .queue(NoWait)
            .build();
        let mut shard = Shard::with_config(ShardId::new(3, 8), config);
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            if matches!(item, Ok(Event::Ready(_))) {
                break;
            }
        }
        (gateway, shard)
    })
}

fn observe(c: &mut Criterion) {
    let metrics = TestMetrics::new("bench");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (_gateway, shard) = shard(&runtime);
    assert!(
        shard.ratelimiter().is_some(),
        "the shard holds a ratelimiter"
    );
    let items = [
        ("message_create", message_create()),
        ("typing_start", typing_start()),
    ];
    // The first event of a kind builds its label set; the bench measures the steady state.
    for (_, item) in &items {
        tap.observe(&shard, item);
    }

    let mut group = c.benchmark_group("gateway_tap");
    for (name, item) in &items {
        group.bench_function(format!("bare/{name}"), |b| {
            b.iter(|| black_box(black_box(item).is_ok()))
        });
        group.bench_function(format!("observe/{name}"), |b| {
            b.iter(|| tap.observe(&shard, black_box(item)))
        });
    }
    group.finish();

    for (name, item) in &items {
        interleaved(
            10_000,
            || {
                black_box(black_box(item).is_ok());
            },
            || tap.observe(&shard, black_box(item)),
        )
        .print(&format!("gateway_tap/{name} per event"), 50.0);
    }
    // Keep the exporter honest: the events were really recorded.
    let rendered = metrics.render();
    assert!(rendered.contains("bench_gateway_events_total"));
    assert!(rendered.contains("bench_gateway_dispatch_lag_seconds_count"));
    assert!(rendered.contains("bench_gateway_commands_available"));
}

criterion_group!(benches, observe);
criterion_main!(benches);
