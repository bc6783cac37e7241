//! Real twilight-gateway shards against the testkit's fake gateway, tapped, asserted from a
//! Prometheus scrape.

use std::time::Duration;

use std::time::SystemTime;

use botscope_gateway::{GatewayTap, InstrumentedQueue};
use botscope_testkit::gateway::{FakeGateway, FakeGuild, message_json, rate_limited_json_twilight};
use botscope_testkit::interaction::{FakeInteraction, snowflake_at};
use botscope_testkit::{Scrape, TestMetrics};
use serde_json::json;
use tokio::sync::oneshot;
use twilight_gateway::queue::Queue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, ShardState, StreamExt as _,
};
use twilight_model::application::interaction::{Interaction, InteractionData};
use twilight_model::gateway::event::EventType;
use twilight_model::gateway::payload::outgoing::RequestGuildMembers;
use twilight_model::id::Id;

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
const COMMANDS_AVAILABLE: &str = "disruptor_gateway_commands_available";
const COMMANDS_MAX: &str = "disruptor_gateway_commands_max";
const RATELIMITED: &str = "disruptor_gateway_ratelimited_total";
const IDENTIFY_WAIT: &str = "disruptor_gateway_identify_wait_seconds";
const IDENTIFY_DEPTH: &str = "disruptor_gateway_identify_queue_depth";
const DISPATCH_LAG: &str = "disruptor_gateway_dispatch_lag_seconds";

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

/// The heartbeat of the tests that wait for ACKs: a few per second, and long enough that a
/// loaded 2-core machine acknowledges each heartbeat before the next one is due.
const HEARTBEAT: Duration = Duration::from_millis(500);

struct Harness<Q = NoWait> {
    gateway: FakeGateway,
    metrics: TestMetrics,
    tap: GatewayTap,
    shards: Vec<Shard<Q>>,
}

impl Harness {
    async fn new(heartbeat: Duration, guilds: [Vec<FakeGuild>; 2]) -> Self {
        Self::with_queue(heartbeat, guilds, |_| NoWait).await
    }
}

impl<Q: Queue + Clone + Unpin> Harness<Q> {
    /// Two shards sharing the queue that `queue` builds (it may record into the metrics).
    async fn with_queue(
        heartbeat: Duration,
        guilds: [Vec<FakeGuild>; 2],
        queue: impl FnOnce(&TestMetrics) -> Q,
    ) -> Self {
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
        let queue = queue(&metrics);
        let shards = (0..2)
            .map(|id| {
                let config = ConfigBuilder::new("fake-token".to_owned(), Intents::all())
                    .proxy_url(gateway.url())
                    .queue(queue.clone())
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

    /// Polls both shards until READY.
    async fn until_ready(&mut self) {
        for id in 0..2 {
            self.until_kind(id, EventType::Ready).await;
        }
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
    h.until_ready().await;

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
    // Fast heartbeats for the latency samples, yet slow enough that a loaded machine answers
    // each before the next: twilight reconnects a shard whose heartbeat went unanswered.
    let mut h = Harness::new(
        HEARTBEAT,
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
    h.until_ready().await;
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

#[tokio::test]
async fn send_ratelimit_gauges_fall_after_a_burst_of_commands() {
    // A fast heartbeat: ACKs refresh the gauges often, and twilight reserves its maximum.
    let mut h = Harness::new(HEARTBEAT, [Vec::new(), Vec::new()]).await;
    h.until_kind(0, EventType::Ready).await;
    h.until_kind(0, EventType::GatewayHeartbeatAck).await;
    let scrape = h.scrape();
    // 120 per 60 s, less the heartbeats reserved: twilight keeps at least 110.
    assert_eq!(scrape.value(COMMANDS_MAX, &[("shard", "0")]), Some(110.0));
    let before = scrape
        .value(COMMANDS_AVAILABLE, &[("shard", "0")])
        .expect("the shard has a ratelimiter");
    // IDENTIFY took one permit.
    assert!((100.0..=109.0).contains(&before), "{before}");
    // Shard 1 never connected: no ratelimiter, no series.
    assert_eq!(scrape.value(COMMANDS_MAX, &[("shard", "1")]), None);

    for n in 0..30 {
        let request = RequestGuildMembers::builder(Id::new(1))
            .nonce(format!("burst-{n}"))
            .query("", None);
        h.shards[0].command(&request);
    }
    // The commands leave on the next poll; the ACK after them refreshes the gauges.
    h.until_kind(0, EventType::GatewayHeartbeatAck).await;
    h.until_kind(0, EventType::GatewayHeartbeatAck).await;
    let scrape = h.scrape();
    let after = scrape
        .value(COMMANDS_AVAILABLE, &[("shard", "0")])
        .expect("the shard has a ratelimiter");
    assert!(after <= before - 30.0, "{before} -> {after}");
    assert_eq!(scrape.value(COMMANDS_MAX, &[("shard", "0")]), Some(110.0));
}

#[tokio::test]
async fn rate_limited_is_counted_by_opcode_in_discords_shape_and_twilights() {
    let mut h = Harness::new(Duration::from_secs(30), [Vec::new(), Vec::new()]).await;
    h.until_ready().await;

    // Discord's payload, which twilight-model 0.18 yields as a deserializing error.
    h.gateway.rate_limited(0, 8, 5.0, 77, Some("SECRET-nonce"));
    h.gateway.rate_limited(0, 8, 2.5, 77, None);
    // The shape twilight parses into `Event::RateLimited`.
    h.gateway.dispatch(
        1,
        "RATE_LIMITED",
        rate_limited_json_twilight(8, 5.0, 77, Some("SECRET-nonce")),
    );
    h.gateway.message_create(0, 1, "after");
    h.gateway.message_create(1, 1, "after");
    h.until_kind(0, EventType::MessageCreate).await;
    let seen = h.until_kind(1, EventType::MessageCreate).await;
    assert!(seen.contains(&EventType::RateLimited), "{seen:?}");

    let scrape = h.scrape();
    let limited = |shard| scrape.value(RATELIMITED, &[("shard", shard), ("opcode", "8")]);
    assert_eq!((limited("0"), limited("1")), (Some(2.0), Some(1.0)));
    assert_eq!(events(&scrape, "1", "RATE_LIMITED"), Some(1.0));
    assert!(!scrape.text().contains("SECRET"));
    assert!(!scrape.text().contains("\"77\""));
}

/// How long shard 1 waits in the [`Staggered`] queue.
const STAGGER: Duration = Duration::from_millis(300);

/// Lets shard 0 identify at once and shard 1 after [`STAGGER`].
#[derive(Clone, Copy, Debug)]
struct Staggered;

impl Queue for Staggered {
    fn enqueue(&self, id: u32) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(STAGGER * id).await;
            let _ = tx.send(());
        });
        rx
    }
}

#[tokio::test]
async fn identify_waits_of_two_shards_through_one_queue() {
    let mut h = Harness::with_queue(Duration::from_secs(30), [Vec::new(), Vec::new()], |m| {
        InstrumentedQueue::builder(Staggered)
            .meter(m.meter())
            .build()
    })
    .await;
    h.until_ready().await;

    let scrape = h.scrape();
    let waited = |shard: &str, what: &str| {
        scrape
            .value(&format!("{IDENTIFY_WAIT}_{what}"), &[("shard", shard)])
            .unwrap_or_else(|| panic!("no identify wait {what} for shard {shard}"))
    };
    assert_eq!(waited("0", "count"), 1.0);
    assert_eq!(waited("1", "count"), 1.0);
    // Shard 1 waited its stagger at least (how much longer depends on the machine's load),
    // shard 0 only for the queue's task to run.
    let (first, second) = (waited("0", "sum"), waited("1", "sum"));
    assert!(second >= STAGGER.as_secs_f64(), "{second}");
    assert!(first < second, "{first} vs {second}");
    assert_eq!(
        scrape.value(
            &format!("{IDENTIFY_WAIT}_bucket"),
            &[("shard", "1"), ("le", "0.25")]
        ),
        Some(0.0)
    );
    assert_eq!(scrape.value(IDENTIFY_DEPTH, &[]), Some(0.0));
    assert_eq!((h.gateway.identifies(0), h.gateway.identifies(1)), (1, 1));
}

#[tokio::test]
async fn dispatch_lag_of_message_and_interaction_creates() {
    let mut h = Harness::new(Duration::from_secs(30), [Vec::new(), Vec::new()]).await;
    h.until_kind(0, EventType::Ready).await;

    // Minted 2 s ago: Discord took 2 s to deliver them, and the loopback a little more.
    let sent = SystemTime::now();
    let minted = sent - Duration::from_secs(2);
    h.gateway.dispatch(
        0,
        "MESSAGE_CREATE",
        message_json(snowflake_at(minted), 1, "late"),
    );
    h.gateway.dispatch(
        0,
        "INTERACTION_CREATE",
        FakeInteraction::command("ping").minted_at(minted).json(),
    );
    h.until_kind(0, EventType::InteractionCreate).await;
    let received = SystemTime::now();

    let scrape = h.scrape();
    let lag = |what: &str, labels: &[(&str, &str)]| {
        scrape.value(&format!("{DISPATCH_LAG}_{what}"), labels)
    };
    assert_eq!(lag("count", &[("shard", "0")]), Some(2.0));
    // Each lag lies between the time since minting when sent and when received (plus the
    // millisecond a snowflake rounds down), however long the loopback took.
    let since_minted = |at: SystemTime| at.duration_since(minted).unwrap_or_default();
    let (low, high) = (since_minted(sent), since_minted(received));
    let sum = lag("sum", &[("shard", "0")]).expect("a lag sum");
    assert!(
        (2.0 * low.as_secs_f64()..=2.0 * high.as_secs_f64() + 0.002).contains(&sum),
        "{sum} outside 2 × [{low:?}, {high:?}]"
    );
    assert_eq!(lag("bucket", &[("shard", "0"), ("le", "1")]), Some(0.0));
    assert_eq!(lag("bucket", &[("shard", "0"), ("le", "10")]), Some(2.0));
    assert_eq!(lag("count", &[("shard", "1")]), None);
}

#[cfg(feature = "cache")]
#[tokio::test]
async fn cache_gauges_after_guild_create() {
    use std::sync::Arc;

    use botscope_gateway::CacheMetrics;
    use twilight_cache_inmemory::DefaultInMemoryCache;

    const ENTRIES: &str = "disruptor_cache_entries";

    let mut h = Harness::new(
        Duration::from_secs(30),
        [
            vec![
                FakeGuild::available(1),
                FakeGuild::available(2),
                FakeGuild::unavailable(3),
            ],
            Vec::new(),
        ],
    )
    .await;
    let cache = Arc::new(DefaultInMemoryCache::new());
    let _gauges = CacheMetrics::builder(&cache)
        .meter(h.metrics.meter())
        .build();
    // The bot's event loop, which updates the cache with every event, until a GUILD_CREATE.
    let until_guild = |id: u64| {
        let cache = Arc::clone(&cache);
        move |event: &Event| {
            cache.update(event);
            matches!(event, Event::GuildCreate(g) if g.id().get() == id)
        }
    };
    let assert_entries = |scrape: Scrape, expected: &[(&str, f64)]| {
        for (resource, count) in expected {
            let found = scrape.value(ENTRIES, &[("resource", resource)]);
            assert_eq!(found, Some(*count), "{resource}");
        }
    };

    h.until(0, until_guild(2)).await;
    assert_entries(
        h.scrape(),
        &[
            ("guilds", 2.0),
            ("unavailable_guilds", 1.0),
            ("channels", 0.0),
        ],
    );

    // A guild with a channel, two roles and a member.
    let mut guild = json!({
        "id": "4", "name": "guild 4", "owner_id": "1000", "afk_timeout": 300,
        "default_message_notifications": 0, "explicit_content_filter": 0, "features": [],
        "mfa_level": 0, "nsfw_level": 0, "preferred_locale": "en-US",
        "premium_progress_bar_enabled": false, "system_channel_flags": 0,
        "verification_level": 0, "voice_states": [],
    });
    guild["channels"] = json!([{ "id": "40", "type": 0, "name": "general", "position": 0 }]);
    guild["roles"] = json!([41, 42].map(|id| json!({
        "id": id.to_string(), "name": "role", "color": 0, "hoist": false, "managed": false,
        "mentionable": false, "permissions": "0", "position": 0, "flags": 0,
        "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
    })));
    guild["members"] = json!([{
        "user": { "id": "1000", "username": "someone", "discriminator": "0001", "avatar": null },
        "roles": ["41"], "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "flags": 0,
    }]);
    h.gateway.dispatch(0, "GUILD_CREATE", guild);
    h.until(0, until_guild(4)).await;
    assert_entries(
        h.scrape(),
        &[
            ("guilds", 3.0),
            ("unavailable_guilds", 1.0),
            ("channels", 1.0),
            ("roles", 2.0),
            ("members", 1.0),
            ("users", 1.0),
            ("voice_states", 0.0),
        ],
    );
}
