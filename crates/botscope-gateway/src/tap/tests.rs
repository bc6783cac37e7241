//! The tap as a bot sees it: events in, a scrape out.

use botscope_testkit::TestMetrics;
use serde_json::json;
use twilight_gateway::{ConfigBuilder, EventTypeFlags, Intents, ShardId};

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use twilight_model::gateway::event::EventType;

use super::*;

const BOT: u64 = 42;

fn shard(id: u32) -> Shard {
    // Never polled, so never connects: `observe` only reads its id, state and latency.
    let config = ConfigBuilder::new("token".to_owned(), Intents::empty())
        .proxy_url("ws://127.0.0.1:9".to_owned())
        .build();
    Shard::with_config(ShardId::new(id, 4), config)
}

fn dispatch(event_type: &str, data: serde_json::Value) -> Result<Event, ReceiveMessageError> {
    let json = json!({ "op": 0, "s": 1, "t": event_type, "d": data }).to_string();
    let parsed = twilight_gateway::parse(json, EventTypeFlags::all())
        .expect("a valid payload")
        .expect("a wanted event");
    Ok(Event::from(parsed))
}

fn ready(guilds: &[u64]) -> Result<Event, ReceiveMessageError> {
    let guilds: Vec<_> = guilds
        .iter()
        .map(|id| json!({ "id": id.to_string(), "unavailable": true }))
        .collect();
    dispatch(
        "READY",
        json!({
            "v": 10,
            "user": {
                "id": BOT.to_string(), "username": "bot", "discriminator": "0000",
                "mfa_enabled": false,
            },
            "guilds": guilds,
            "session_id": "s",
            "resume_gateway_url": "ws://127.0.0.1:9",
            "application": { "id": "1", "flags": 0 },
        }),
    )
}

fn voice(guild: u64, user: u64, channel: Option<u64>) -> Result<Event, ReceiveMessageError> {
    dispatch(
        "VOICE_STATE_UPDATE",
        json!({
            "channel_id": channel.map(|c| c.to_string()),
            "deaf": false, "guild_id": guild.to_string(), "mute": false,
            "self_deaf": false, "self_mute": false, "self_video": false,
            "session_id": "v", "suppress": false, "user_id": user.to_string(),
            "request_to_speak_timestamp": null,
        }),
    )
}

#[tokio::test]
async fn voice_guilds_past_the_cap_add_up_under_other() {
    let metrics = TestMetrics::new("disruptor");
    let tap = GatewayTap::builder()
        .meter(metrics.meter())
        .guild_label_cap(1)
        .build();
    let shard = shard(2);
    tap.observe(&shard, &ready(&[1, 2, 3]));
    for guild in [1, 2, 3] {
        tap.observe(&shard, &voice(guild, BOT, Some(9)));
    }
    tap.observe(&shard, &voice(2, BOT, Some(10))); // moved: no change
    tap.observe(&shard, &voice(3, 7, None)); // someone else left
    let active = "disruptor_voice_connections_active";
    let scrape = metrics.scrape();
    assert_eq!(scrape.value(active, &[("guild_id", "1")]), Some(1.0));
    assert_eq!(scrape.value(active, &[("guild_id", "other")]), Some(2.0));

    tap.observe(&shard, &voice(2, BOT, None));
    tap.observe(&shard, &voice(2, BOT, None)); // a repeated leave changes nothing
    let scrape = metrics.scrape();
    assert_eq!(scrape.value(active, &[("guild_id", "other")]), Some(1.0));
    // Leaving the guild also ends its voice connection.
    tap.observe(&shard, &dispatch("GUILD_DELETE", json!({ "id": "3" })));
    let scrape = metrics.scrape();
    assert_eq!(scrape.value(active, &[("guild_id", "other")]), Some(0.0));
    assert_eq!(
        scrape.value("disruptor_discord_guild_count", &[("shard", "2")]),
        Some(2.0)
    );
    // A shard that never connected reports its status all the same.
    assert_eq!(
        scrape.value(
            "disruptor_gateway_shard_status",
            &[("shard", "2"), ("status", "disconnected")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn dispatch_lag_is_sampled_and_a_snowflake_from_the_future_counts_zero() {
    use botscope_testkit::gateway::message_json;
    use botscope_testkit::interaction::snowflake_at;
    use std::time::Duration;

    let metrics = TestMetrics::new("disruptor");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let shard = shard(1);
    // This host's clock runs a minute behind Discord's.
    let ahead = snowflake_at(SystemTime::now() + Duration::from_secs(60));
    let late = snowflake_at(SystemTime::now() - Duration::from_secs(3));
    for n in 0..17 {
        let id = if n == 0 { ahead } else { late };
        tap.observe(
            &shard,
            &dispatch("MESSAGE_CREATE", message_json(id, 1, "m")),
        );
    }
    let scrape = metrics.scrape();
    let lag = "disruptor_gateway_dispatch_lag_seconds";
    // The first, the 9th and the 17th.
    assert_eq!(
        scrape.value(&format!("{lag}_count"), &[("shard", "1")]),
        Some(3.0)
    );
    let bucket = |le| scrape.value(&format!("{lag}_bucket"), &[("shard", "1"), ("le", le)]);
    assert_eq!(bucket("0.005"), Some(1.0));
    assert_eq!(bucket("2.5"), Some(1.0));
    assert_eq!(bucket("5"), Some(3.0));
    assert_eq!(
        scrape.value("disruptor_gateway_events_total", &[("shard", "1")]),
        Some(17.0)
    );
}

#[tokio::test]
async fn rate_limited_opcodes_are_numbers_or_other() {
    let metrics = TestMetrics::new("disruptor");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let shard = shard(0);
    // As Discord sends it: twilight-model 0.18 fails on `meta`.
    for opcode in [8, 99] {
        let payload = json!({
            "op": 0, "s": 1, "t": "RATE_LIMITED",
            "d": { "opcode": opcode, "retry_after": 1.5, "meta": { "guild_id": "9" } },
        });
        let error = twilight_gateway::parse(payload.to_string(), EventTypeFlags::all())
            .expect_err("twilight-model 0.18 cannot read Discord's meta");
        tap.observe(&shard, &Err(error));
    }
    // Another event that fails to deserialize is no RATE_LIMITED.
    let other = json!({ "op": 0, "s": 2, "t": "GUILD_CREATE", "d": { "id": "x" } });
    let error =
        twilight_gateway::parse(other.to_string(), EventTypeFlags::all()).expect_err("not a guild");
    tap.observe(&shard, &Err(error));
    let scrape = metrics.scrape();
    let limited = "disruptor_gateway_ratelimited_total";
    assert_eq!(
        scrape.value(limited, &[("shard", "0"), ("opcode", "8")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(limited, &[("shard", "0"), ("opcode", "other")]),
        Some(1.0)
    );
    assert_eq!(scrape.label_values(limited, "opcode"), ["8", "other"]);
}

#[tokio::test]
async fn errors_update_the_status_only() {
    let metrics = TestMetrics::new("disruptor");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let shard = shard(0);
    let error = twilight_gateway::parse("not json".to_owned(), EventTypeFlags::all())
        .expect_err("a deserializing error");
    tap.observe(&shard, &Err(error));
    let scrape = metrics.scrape();
    assert!(!scrape.has("disruptor_gateway_events_total"));
    assert!(!scrape.has("disruptor_gateway_ratelimited_total"));
    assert_eq!(
        scrape.value("disruptor_gateway_shard_status", &[("shard", "0")]),
        Some(1.0)
    );
}

/// Every variant of twilight-model's `EventType`, in declaration order: read through its serde
/// derive by variant index, so a variant a later twilight-model adds is in the list.
fn every_event_type() -> Vec<EventType> {
    (0_u32..)
        .map_while(|index| {
            let index = IntoDeserializer::<serde::de::value::Error>::into_deserializer(index);
            EventType::deserialize(index).ok()
        })
        .collect()
}

/// The label a user should see for `kind`: the dispatch name twilight-model serializes, or
/// for the gateway's own events the name of their opcode.
fn expected_label(kind: EventType) -> String {
    match kind {
        EventType::GatewayClose => "CLOSE".to_owned(),
        EventType::GatewayHeartbeat => "HEARTBEAT".to_owned(),
        EventType::GatewayHeartbeatAck => "HEARTBEAT_ACK".to_owned(),
        EventType::GatewayHello => "HELLO".to_owned(),
        EventType::GatewayInvalidateSession => "INVALID_SESSION".to_owned(),
        EventType::GatewayReconnect => "RECONNECT".to_owned(),
        kind => serde_json::to_value(kind)
            .ok()
            .and_then(|name| name.as_str().map(str::to_owned))
            .expect("a dispatch name"),
    }
}

/// Counts one event of every twilight-model variant on `shard` and checks each reaches the
/// scrape under its own name, once.
fn every_event_type_is_counted_under_its_name(
    tap: &GatewayTap,
    metrics: &TestMetrics,
    shard: &str,
) {
    let kinds = every_event_type();
    // twilight-model 0.18 has 77; fewer means the listing itself broke.
    assert!(kinds.len() >= 77, "{} variants", kinds.len());
    let entry = tap.inner.register(shard.parse().expect("a shard number"));
    for kind in &kinds {
        entry.events.count(&entry.shard, *kind);
    }
    let expected: BTreeMap<String, f64> = kinds
        .iter()
        .map(|kind| (expected_label(*kind), 1.0))
        .collect();
    assert_eq!(expected.len(), kinds.len(), "one label per variant");
    let scrape = metrics.scrape();
    let events = "disruptor_gateway_events_total";
    let seen: BTreeMap<String, f64> = scrape
        .label_values(events, "event_type")
        .into_iter()
        .map(|name| {
            let value = scrape.value(events, &[("shard", shard), ("event_type", &name)]);
            (name, value.unwrap_or_default())
        })
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn every_twilight_event_type_reaches_the_scrape_with_its_name() {
    let metrics = TestMetrics::new("disruptor");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    every_event_type_is_counted_under_its_name(&tap, &metrics, "0");
}

#[tokio::test]
async fn event_types_past_the_table_are_counted_all_the_same() {
    // A twilight-model with more variants than this crate knows: the table holds 3.
    let metrics = TestMetrics::new("disruptor");
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    let entry = ShardEntry::new(
        0,
        &tap.inner.instruments.dispatch_lag,
        EventCounts::with_table(3),
    );
    tap.inner
        .shards
        .write()
        .expect("not poisoned")
        .push(Some(Arc::new(entry)));
    every_event_type_is_counted_under_its_name(&tap, &metrics, "0");
}
