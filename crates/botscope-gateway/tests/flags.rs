//! A bot that filters its events: `GatewayTap::EVENT_FLAGS` gives the tap what it needs, and
//! a shard whose heartbeat acknowledgements never reach the tap is reported once, in a log
//! line naming the missing flags.

use std::time::Duration;

use botscope_gateway::GatewayTap;
use botscope_testkit::TestMetrics;
use botscope_testkit::gateway::FakeGateway;
use botscope_testkit::logs::Logs;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

const WARNING: &str = "no acknowledgement reached the gateway tap";

/// Runs one shard with `flags`, tapped, while the fake streams messages, until `done` says
/// so about the logs and the scrape (or 20 s pass); returns both.
async fn run(
    flags: EventTypeFlags,
    done: impl Fn(&str, &botscope_testkit::Scrape) -> bool,
) -> (String, botscope_testkit::Scrape) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let logs = Logs::default();
    let _logging = logs.capture();

    let gateway = FakeGateway::builder()
        .heartbeat_interval(Duration::from_millis(100))
        .spawn()
        .await
        .expect("fake gateway");
    let metrics = TestMetrics::new("bot");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let config = ConfigBuilder::new("fake-token".to_owned(), Intents::GUILD_MESSAGES)
        .proxy_url(gateway.url())
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut streaming = None;
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    loop {
        let item = tokio::select! {
            item = shard.next_event(flags) => item,
            () = &mut deadline => break,
        };
        let Some(item) = item else { break };
        tap.observe(&shard, &item);
        if streaming.is_none() && matches!(item, Ok(Event::Ready(_))) {
            streaming = Some(gateway.stream_messages(0, 100_000, 500));
        }
        if done(&logs.text(), &metrics.scrape()) {
            break;
        }
    }
    if let Some(streaming) = streaming {
        streaming.abort();
    }
    (logs.text(), metrics.scrape())
}

#[tokio::test]
async fn a_shard_whose_acknowledgements_are_filtered_out_is_reported_once() {
    let flags = EventTypeFlags::READY | EventTypeFlags::MESSAGE_CREATE;
    // well past the warning: a thousand messages, a few dozen more acknowledgements
    let (logs, scrape) = run(flags, |logs, scrape| {
        logs.contains(WARNING)
            && scrape
                .value(
                    "bot_gateway_events_total",
                    &[("event_type", "MESSAGE_CREATE")],
                )
                .is_some_and(|n| n >= 1000.0)
    })
    .await;
    assert_eq!(logs.matches(WARNING).count(), 1, "{logs}");
    assert!(
        logs.contains("missing=GATEWAY_HEARTBEAT_ACK | GATEWAY_HELLO"),
        "{logs}"
    );
    assert!(!scrape.has("bot_gateway_latency_seconds_count"));
}

#[tokio::test]
async fn the_tap_flags_give_it_the_latency_and_no_warning() {
    let flags = EventTypeFlags::MESSAGE_CREATE | GatewayTap::EVENT_FLAGS;
    // three acknowledged heartbeats: past the point where filtered ones are reported
    let (logs, scrape) = run(flags, |_, scrape| {
        scrape
            .value("bot_gateway_latency_seconds_count", &[])
            .is_some_and(|n| n >= 3.0)
    })
    .await;
    assert!(
        scrape.value("bot_gateway_latency_seconds_count", &[]) >= Some(3.0),
        "{}",
        scrape.text()
    );
    assert!(scrape.has("bot_discord_guild_count"));
    assert!(!logs.contains(WARNING), "{logs}");
}
