//! Real twilight-gateway shards against the testkit's fake gateway, tapped, asserted from a
//! Prometheus scrape.

use std::time::Duration;

use botscope_gateway::GatewayTap;
use botscope_testkit::gateway::{FakeGateway, FakeGuild};
use botscope_testkit::interaction::FakeInteraction;
use botscope_testkit::{Scrape, TestMetrics};
use serde_json::json;
use tokio::sync::oneshot;
use twilight_gateway::queue::Queue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, ShardState, StreamExt as _,
};
use twilight_model::application::interaction::{Interaction, InteractionData};
use twilight_model::gateway::event::EventType;

const EVENTS: &str = "disruptor_gateway_events_total";
const GUILDS: &str = "disruptor_discord_guild_count";
const UNAVAILABLE: &str = "disruptor_discord_unavailable_guilds";
const STATUS: &str = "disruptor_gateway_shard_status";
const RECONNECTS: &str = "disruptor_gateway_reconnects_total";
const CLOSE_CODES: &str = "disruptor_gateway_close_codes_total";
const LATENCY_COUNT: &str = "disruptor_gateway_latency_seconds_count";
const VOICE_ACTIVE: &str = "disruptor_voice_connections_active";
const INTERACTIONS: &str = "disruptor_interactions_total";
const COMMANDS: &str = "disruptor_commands_total";
const COMMAND_DURATION: &str = "disruptor_command_duration_seconds";

/// Lets every shard identify at once: the default queue spaces identifies 5 s apart.
#[derive(Clone, Copy, Debug)]
struct NoWait;

impl Queue for NoWait {
    fn enqueue(&self, _id: u32) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(());
        rx
    }
}

struct Harness {
    gateway: FakeGateway,
    metrics: TestMetrics,
    tap: GatewayTap,
    shards: Vec<Shard<NoWait>>,
}

impl Harness {
    async fn new(heartbeat: Duration, guilds: [Vec<FakeGuild>; 2]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let gateway = FakeGateway::builder()
            .heartbeat_interval(heartbeat)
            .spawn()
            .await
            .expect("bind the fake gateway");
        for (shard, guilds) in guilds.into_iter().enumerate() {
            gateway.set_guilds(shard as u32, guilds);
        }
        let metrics = TestMetrics::new("disruptor");
        let tap = GatewayTap::builder().meter(metrics.meter()).build();
        let shards = (0..2)
            .map(|id| {
                let config = ConfigBuilder::new("fake-token".to_owned(), Intents::all())
                    .proxy_url(gateway.url())
                    .queue(NoWait)
                    .build();
                Shard::with_config(ShardId::new(id, 2), config)
            })
            .collect();
        Self {
            gateway,
            metrics,
            tap,
            shards,
        }
    }

    /// Polls shard `id`, tapping every item, until an event matches; returns the kinds seen.
    async fn until(&mut self, id: usize, wanted: impl Fn(&Event) -> bool) -> Vec<EventType> {
        let shard = &mut self.shards[id];
        let mut seen = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            let item = tokio::select! {
                item = shard.next_event(EventTypeFlags::all()) => item,
                () = &mut deadline => panic!("shard {id} never yielded the event; saw {seen:?}"),
            };
            let Some(item) = item else {
                panic!("shard {id} ended; saw {seen:?}");
            };
            self.tap.observe(shard, &item);
            if let Ok(event) = &item {
                seen.push(event.kind());
                if wanted(event) {
                    return seen;
                }
            }
        }
    }

    async fn until_kind(&mut self, id: usize, kind: EventType) -> Vec<EventType> {
        self.until(id, |event| event.kind() == kind).await
    }

    fn scrape(&self) -> Scrape {
        self.metrics.scrape()
    }
}

fn status_of(scrape: &Scrape, shard: &str) -> Vec<String> {
    scrape
        .series(STATUS)
        .filter(|s| s.labels.get("shard").map(String::as_str) == Some(shard) && s.value == 1.0)
        .filter_map(|s| s.labels.get("status").cloned())
        .collect()
}

fn events(scrape: &Scrape, shard: &str, event_type: &str) -> Option<f64> {
    scrape.value(EVENTS, &[("shard", shard), ("event_type", event_type)])
}

#[tokio::test]
async fn guild_counts_per_shard_follow_ready_creates_and_deletes() {
    let mut h = Harness::new(
        Duration::from_secs(30),
        [
            vec![
                FakeGuild::available(1),
                FakeGuild::available(2),
                FakeGuild::unavailable(3),
            ],
            vec![FakeGuild::available(10)],
        ],
    )
    .await;

    h.until(
        0,
        |e| matches!(e, Event::GuildCreate(g) if g.id().get() == 2),
    )
    .await;
    h.until(
        1,
        |e| matches!(e, Event::GuildCreate(g) if g.id().get() == 10),
    )
    .await;
    let scrape = h.scrape();
    assert_eq!(scrape.value(GUILDS, &[("shard", "0")]), Some(3.0));
    assert_eq!(scrape.value(UNAVAILABLE, &[("shard", "0")]), Some(1.0));
    assert_eq!(scrape.value(GUILDS, &[("shard", "1")]), Some(1.0));
    assert_eq!(scrape.value(UNAVAILABLE, &[("shard", "1")]), Some(0.0));

    // Shard 0: a new guild, a duplicate create, an outage and a leave.
    h.gateway.guild_create(0, 4, true);
    h.gateway.guild_create(0, 1, true);
    h.gateway.guild_delete(0, 2, true);
    h.gateway.guild_delete(0, 1, false);
    h.gateway.guild_create(0, 3, true); // the outage of guild 3 ends
    h.gateway.dispatch(
        0,
        "MESSAGE_POLL_VOTE_ADD",
        json!({"user_id": "5", "channel_id": "6", "message_id": "7", "guild_id": "4", "answer_id": 1}),
    );
    h.gateway.message_create(0, 6, "done");
    // Shard 1: one joined, one left.
    h.gateway.guild_create(1, 11, true);
    h.gateway.guild_delete(1, 10, false);
    h.gateway.message_create(1, 6, "done");

    h.until_kind(0, EventType::MessageCreate).await;
    h.until_kind(1, EventType::MessageCreate).await;

    let scrape = h.scrape();
    // Shard 0 serves 2 (outage), 3 and 4; shard 1 serves 11.
    assert_eq!(scrape.value(GUILDS, &[("shard", "0")]), Some(3.0));
    assert_eq!(scrape.value(UNAVAILABLE, &[("shard", "0")]), Some(1.0));
    assert_eq!(scrape.value(GUILDS, &[("shard", "1")]), Some(1.0));
    assert_eq!(scrape.value(UNAVAILABLE, &[("shard", "1")]), Some(0.0));

    assert_eq!(events(&scrape, "0", "READY"), Some(1.0));
    assert_eq!(events(&scrape, "0", "HELLO"), Some(1.0));
    assert_eq!(events(&scrape, "0", "GUILD_CREATE"), Some(5.0));
    assert_eq!(events(&scrape, "0", "GUILD_DELETE"), Some(2.0));
    // Shares READY's bit in EventTypeFlags, yet is counted apart.
    assert_eq!(events(&scrape, "0", "MESSAGE_POLL_VOTE_ADD"), Some(1.0));
    assert_eq!(events(&scrape, "0", "MESSAGE_CREATE"), Some(1.0));
    assert_eq!(events(&scrape, "1", "READY"), Some(1.0));
    assert_eq!(events(&scrape, "1", "GUILD_CREATE"), Some(2.0));
    assert_eq!(events(&scrape, "1", "GUILD_DELETE"), Some(1.0));
    assert_eq!(events(&scrape, "1", "MESSAGE_POLL_VOTE_ADD"), None);
    assert_eq!(status_of(&scrape, "0"), ["active"]);
    assert_eq!(status_of(&scrape, "1"), ["active"]);
}

#[tokio::test]
async fn message_streams_are_counted_per_shard_and_type() {
    let mut h = Harness::new(Duration::from_secs(30), [Vec::new(), Vec::new()]).await;
    h.until_kind(0, EventType::Ready).await;
    h.until_kind(1, EventType::Ready).await;

    let streams = [
        h.gateway.stream_messages(0, 40, 400),
        h.gateway.stream_messages(1, 25, 400),
    ];
    for stream in streams {
        stream.await.expect("the stream task finishes");
    }
    h.gateway.message_create(0, 1, "last");
    h.gateway.message_create(1, 1, "last");
    h.until(
        0,
        |e| matches!(e, Event::MessageCreate(m) if m.content == "last"),
    )
    .await;
    h.until(
        1,
        |e| matches!(e, Event::MessageCreate(m) if m.content == "last"),
    )
    .await;

    let scrape = h.scrape();
    assert_eq!(events(&scrape, "0", "MESSAGE_CREATE"), Some(41.0));
    assert_eq!(events(&scrape, "1", "MESSAGE_CREATE"), Some(26.0));
    assert_eq!(events(&scrape, "0", "READY"), Some(1.0));
    assert_eq!(events(&scrape, "1", "READY"), Some(1.0));
}

#[tokio::test]
async fn status_reconnects_close_codes_and_latency() {
    let mut h = Harness::new(
        Duration::from_millis(100),
        [vec![FakeGuild::available(1)], vec![FakeGuild::available(2)]],
    )
    .await;

    // identifying → active
    h.until_kind(0, EventType::GatewayHello).await;
    assert_eq!(status_of(&h.scrape(), "0"), ["identifying"]);
    h.until_kind(0, EventType::Ready).await;
    assert_eq!(status_of(&h.scrape(), "0"), ["active"]);

    // Heartbeats: one latency sample per acknowledged heartbeat.
    let mut acks = 0;
    while acks < 3 {
        h.until_kind(0, EventType::GatewayHeartbeatAck).await;
        acks += 1;
    }
    let scrape = h.scrape();
    let acked = events(&scrape, "0", "HEARTBEAT_ACK").expect("acks counted");
    assert!(acked >= 3.0, "{acked}");
    assert_eq!(scrape.value(LATENCY_COUNT, &[("shard", "0")]), Some(acked));
    assert_eq!(scrape.value(LATENCY_COUNT, &[("shard", "1")]), None);

    // RECONNECT: the shard closes with 4000 and resumes: → resuming → active.
    h.gateway.reconnect(0);
    let seen = h.until_kind(0, EventType::GatewayHello).await;
    assert!(seen.contains(&EventType::GatewayReconnect), "{seen:?}");
    assert!(seen.contains(&EventType::GatewayClose), "{seen:?}");
    let scrape = h.scrape();
    assert_eq!(status_of(&scrape, "0"), ["resuming"]);
    assert_eq!(
        scrape.value(RECONNECTS, &[("shard", "0"), ("kind", "resume")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(CLOSE_CODES, &[("shard", "0"), ("code", "4000")]),
        Some(1.0)
    );
    h.until_kind(0, EventType::Resumed).await;
    assert_eq!(status_of(&h.scrape(), "0"), ["active"]);
    assert_eq!(h.gateway.resumes(0), 1);

    // INVALID_SESSION, not resumable: a new identify.
    h.gateway.invalid_session(0, false);
    h.until_kind(0, EventType::GatewayHello).await;
    assert_eq!(status_of(&h.scrape(), "0"), ["identifying"]);
    h.until_kind(0, EventType::Ready).await;
    let scrape = h.scrape();
    assert_eq!(status_of(&scrape, "0"), ["active"]);
    assert_eq!(
        scrape.value(RECONNECTS, &[("shard", "0"), ("kind", "identify")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(RECONNECTS, &[("shard", "0"), ("kind", "resume")]),
        Some(1.0)
    );
    assert_eq!(h.gateway.identifies(0), 2);
    assert_eq!(events(&scrape, "0", "INVALID_SESSION"), Some(1.0));

    // Shard 1: a reconnectable close code (resumes), then a fatal one.
    h.until_kind(1, EventType::Ready).await;
    h.gateway.close(1, 4008);
    h.until_kind(1, EventType::Resumed).await;
    h.gateway.close(1, 4004);
    h.until_kind(1, EventType::GatewayClose).await;
    assert_eq!(h.shards[1].state(), ShardState::FatallyClosed);
    let scrape = h.scrape();
    assert_eq!(status_of(&scrape, "1"), ["fatally_closed"]);
    assert_eq!(
        scrape.value(CLOSE_CODES, &[("shard", "1"), ("code", "4008")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(CLOSE_CODES, &[("shard", "1"), ("code", "4004")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(RECONNECTS, &[("shard", "1"), ("kind", "resume")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(RECONNECTS, &[("shard", "1"), ("kind", "identify")]),
        None
    );
    // Every status series exists, with exactly one at 1 per shard.
    assert_eq!(
        scrape.label_values(STATUS, "status"),
        [
            "active",
            "disconnected",
            "fatally_closed",
            "identifying",
            "resuming"
        ]
    );
    assert_eq!(scrape.value(STATUS, &[("shard", "1")]), Some(1.0));
}

#[tokio::test]
async fn voice_active_follows_the_bots_own_voice_state() {
    let mut h = Harness::new(Duration::from_secs(30), [Vec::new(), Vec::new()]).await;
    h.until_kind(0, EventType::Ready).await;
    h.until_kind(1, EventType::Ready).await;
    let bot = h.gateway.bot_user_id();

    h.gateway.voice_state_update(0, 5, bot, Some(50));
    h.gateway.voice_state_update(0, 6, 12345, Some(60)); // someone else
    h.gateway.voice_state_update(1, 7, bot, Some(70));
    h.gateway.voice_state_update(1, 7, bot, Some(71)); // moved channel: still one
    h.until(
        0,
        |e| matches!(e, Event::VoiceStateUpdate(v) if v.user_id.get() == 12345),
    )
    .await;
    h.until(
        1,
        |e| matches!(e, Event::VoiceStateUpdate(v) if v.channel_id.is_some_and(|c| c.get() == 71)),
    )
    .await;
    let scrape = h.scrape();
    assert_eq!(scrape.value(VOICE_ACTIVE, &[("guild_id", "5")]), Some(1.0));
    assert_eq!(scrape.value(VOICE_ACTIVE, &[("guild_id", "7")]), Some(1.0));
    assert_eq!(scrape.value(VOICE_ACTIVE, &[("guild_id", "6")]), None);

    h.gateway.voice_state_update(0, 5, bot, None);
    h.until(
        0,
        |e| matches!(e, Event::VoiceStateUpdate(v) if v.channel_id.is_none()),
    )
    .await;
    let scrape = h.scrape();
    assert_eq!(scrape.value(VOICE_ACTIVE, &[("guild_id", "5")]), Some(0.0));
    assert_eq!(scrape.value(VOICE_ACTIVE, &[("guild_id", "7")]), Some(1.0));
    assert_eq!(events(&scrape, "0", "VOICE_STATE_UPDATE"), Some(3.0));
    assert_eq!(events(&scrape, "1", "VOICE_STATE_UPDATE"), Some(2.0));
}

/// Every log line of the test, at every level, from every crate.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn interactions_are_counted_by_type_and_capped_command_without_user_text() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let mut h = Harness::new(Duration::from_secs(30), [Vec::new(), Vec::new()]).await;
    h.until_kind(0, EventType::Ready).await;
    let commands = h.tap.commands();

    let secret = "SECRET-user-text";
    let mut tokens = Vec::new();
    for interaction in [
        FakeInteraction::command("ping").option("message", secret),
        FakeInteraction::autocomplete("join", "channel", secret),
        FakeInteraction::button(&format!("vote:{secret}")),
        FakeInteraction::modal_submit(&format!("feedback:{secret}"), secret),
    ] {
        tokens.push(h.gateway.interaction_create(0, &interaction).token);
    }
    // 10,000 distinct command names, through the tap's cap of 200.
    for n in 0..10_000 {
        let name = format!("generated-{n}");
        tokens.push(
            h.gateway
                .interaction_create(0, &FakeInteraction::command(&name))
                .token,
        );
    }
    h.gateway
        .interaction_create(0, &FakeInteraction::command("last"));
    h.until(0, |event| {
        matches!(
            event,
            Event::InteractionCreate(create) if matches!(
                &create.data,
                Some(InteractionData::ApplicationCommand(data)) if data.name == "last"
            )
        )
    })
    .await;

    // The bot's handler of a command, once with each outcome.
    let ping = FakeInteraction::command("ping").minted().json();
    let ping: Interaction =
        serde_json::from_value(ping).expect("twilight reads the fake's interaction");
    assert_eq!(
        commands.instrument(&ping, async { Ok::<_, ()>(1) }).await,
        Ok(1)
    );
    assert_eq!(
        commands
            .instrument(&ping, async { Err::<(), _>("no") })
            .await,
        Err("no")
    );
    let stuck = commands.instrument(&ping, std::future::pending::<Result<(), ()>>());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), stuck)
            .await
            .is_err()
    );
    let panicking = commands.instrument(&ping, async {
        if true {
            panic!("handler bug");
        }
        Ok::<(), ()>(())
    });
    assert!(tokio::spawn(panicking).await.unwrap_err().is_panic());

    let scrape = h.scrape();
    let interactions = |kind: &str, command: &str| {
        scrape.value(
            INTERACTIONS,
            &[("shard", "0"), ("type", kind), ("command", command)],
        )
    };
    assert_eq!(interactions("application_command", "ping"), Some(1.0));
    assert_eq!(interactions("autocomplete", "join"), Some(1.0));
    assert_eq!(interactions("message_component", "button"), Some(1.0));
    assert_eq!(interactions("modal_submit", "modal"), Some(1.0));
    let names = scrape.label_values(INTERACTIONS, "command");
    assert!(names.len() <= 200 + 1 + 3, "{} command values", names.len());
    assert!(names.iter().any(|n| n == "other"));
    for status in ["success", "error", "cancelled", "panic"] {
        assert_eq!(
            scrape.value(COMMANDS, &[("command", "ping"), ("status", status)]),
            Some(1.0),
            "{status}"
        );
    }
    assert_eq!(
        scrape.value(
            &format!("{COMMAND_DURATION}_count"),
            &[("command", "ping"), ("status", "success")]
        ),
        Some(1.0)
    );

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the subscriber saw the shard's logs");
    for text in [scrape.text(), logs.as_str()] {
        assert!(!text.contains("SECRET"), "user text leaked");
        assert!(
            tokens.iter().all(|token| !text.contains(token.as_str())),
            "a token leaked"
        );
        assert!(!text.contains("fake-interaction-token"), "a token leaked");
    }
}
