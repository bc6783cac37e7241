//! [`GatewayTap`]: metrics from the items a shard yields.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Instant, SystemTime};

use botscope_core::{GaugeGuard, LabelCap, label_cap::DEFAULT_CAP, snowflake};
use opentelemetry::metrics::{
    AsyncInstrument, BoundHistogram, Counter, Gauge, Histogram, Meter, ObservableCounter,
    ObservableGauge, UpDownCounter,
};
use opentelemetry::{KeyValue, StringValue, Value};
use twilight_gateway::error::{ReceiveMessageError, ReceiveMessageErrorType};
use twilight_gateway::{Event, Shard};
use twilight_model::gateway::event::{EventType, GatewayEventDeserializer};
use twilight_model::gateway::payload::incoming::GuildCreate;
use twilight_model::id::Id;
use twilight_model::id::marker::GuildMarker;

use crate::commands::CommandMetrics;
use crate::flags::AckWatch;
use crate::interaction::{self, DEFAULT_COMMAND_CAP};
use crate::metrics::{
    CODE, COMMAND, COMMANDS_REFRESH_EVERY, DISCORD_GUILD_COUNT, DISCORD_UNAVAILABLE_GUILDS,
    DISPATCH_LAG_BUCKETS, DISPATCH_LAG_SAMPLE_EVERY, EVENT_KINDS, EVENT_TYPE, GATEWAY_CLOSE_CODES,
    GATEWAY_COMMANDS_AVAILABLE, GATEWAY_COMMANDS_MAX, GATEWAY_DISPATCH_LAG, GATEWAY_EVENTS,
    GATEWAY_LATENCY, GATEWAY_RATELIMITED, GATEWAY_RECONNECTS, GATEWAY_SHARD_STATUS, GUILD_ID,
    IDENTIFY, INTERACTIONS, KIND, NO_CODE, OPCODE, RESUME, SECONDS, SHARD, SHARD_STATUSES, STATUS,
    TYPE, VOICE_CONNECTIONS_ACTIVE, event_type_name, opcode_label, status_index,
};
use crate::voice::VoiceMetrics;

/// Metrics from the items a twilight-gateway shard yields. See the [crate docs](crate).
///
/// Cloning is cheap and shares the instruments and the per-shard state: one tap serves every
/// shard of a bot, from any task.
///
/// # Metrics
///
/// | name | type | labels |
/// |---|---|---|
/// | `gateway_events_total` | counter | `shard`, `event_type` |
/// | `discord_guild_count` | gauge | `shard` |
/// | `discord_unavailable_guilds` | gauge | `shard` |
/// | `gateway_latency_seconds` | histogram | `shard` |
/// | `gateway_shard_status` | gauge | `shard`, `status` |
/// | `gateway_reconnects_total` | counter | `shard`, `kind` |
/// | `gateway_close_codes_total` | counter | `shard`, `code` |
/// | `voice_connections_active` | gauge | `guild_id` |
/// | `interactions_total` | counter | `shard`, `type`, `command` |
/// | `gateway_commands_available` | gauge | `shard` |
/// | `gateway_commands_max` | gauge | `shard` |
/// | `gateway_ratelimited_total` | counter | `shard`, `opcode` |
/// | `gateway_dispatch_lag_seconds` | histogram | `shard` |
///
/// # Cardinality
///
/// `shard` takes the bot's shard ids; `event_type` Discord's closed set of event names;
/// `code` the close codes Discord sends (a few dozen at most). `guild_id` passes through a
/// [`LabelCap`]: at most [`DEFAULT_CAP`] values by default, then `other`
/// ([`GatewayTapBuilder::guild_label_cap`], [`GatewayTapBuilder::without_guild_labels`]).
/// `type` has five values; `command` is a registered command's name through a [`LabelCap`]
/// of [`DEFAULT_COMMAND_CAP`] values ([`GatewayTapBuilder::command_cap`]) or a fixed word
/// (see [`interaction`](crate::interaction)). `opcode` is one of Discord's gateway opcode
/// numbers (`0` to `11`) or `other` ([`opcode_label`]).
#[derive(Clone)]
pub struct GatewayTap {
    inner: Arc<Inner>,
}

/// Builds a [`GatewayTap`].
#[derive(Debug, Default)]
#[must_use]
pub struct GatewayTapBuilder {
    meter: Option<Meter>,
    guild_cap: Option<usize>,
    command_cap: Option<usize>,
}

impl GatewayTapBuilder {
    /// Records into `meter` instead of the global provider's meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct `guild_id` label values per metric, then `other` (default
    /// [`DEFAULT_CAP`]).
    pub fn guild_label_cap(mut self, cap: usize) -> Self {
        self.guild_cap = Some(cap);
        self
    }

    /// Switches `guild_id` labels off: every guild is counted as `other`.
    pub fn without_guild_labels(self) -> Self {
        self.guild_label_cap(0)
    }

    /// At most `cap` distinct command names in `interactions_total` (and in the
    /// [`CommandMetrics`] of [`GatewayTap::commands`]), then `other` (default
    /// [`DEFAULT_COMMAND_CAP`]).
    pub fn command_cap(mut self, cap: usize) -> Self {
        self.command_cap = Some(cap);
        self
    }

    /// Builds the instruments.
    pub fn build(self) -> GatewayTap {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        let guild_cap = self.guild_cap.unwrap_or(DEFAULT_CAP);
        let command_cap = self.command_cap.unwrap_or(DEFAULT_COMMAND_CAP);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let events = {
                let weak = weak.clone();
                meter
                    .u64_observable_counter(GATEWAY_EVENTS)
                    .with_description("Events received from the Discord gateway")
                    .with_callback(move |observer| {
                        if let Some(inner) = weak.upgrade() {
                            inner.report_events(observer);
                        }
                    })
                    .build()
            };
            let commands = [
                (
                    GATEWAY_COMMANDS_AVAILABLE,
                    "Gateway commands a shard may send now (twilight's command ratelimiter)",
                    CommandPermits::available as fn(CommandPermits) -> u64,
                ),
                (
                    GATEWAY_COMMANDS_MAX,
                    "Gateway commands a shard may send per 60 s, heartbeats reserved",
                    CommandPermits::max,
                ),
            ]
            .map(|(name, description, read)| {
                let weak = weak.clone();
                meter
                    .u64_observable_gauge(name)
                    .with_description(description)
                    .with_callback(move |observer| {
                        if let Some(inner) = weak.upgrade() {
                            inner.report_commands(observer, read);
                        }
                    })
                    .build()
            });
            Inner {
                instruments: Instruments::new(&meter),
                _events: events,
                _commands: commands,
                voice_guilds: LabelCap::new(guild_cap),
                guild_cap,
                commands: LabelCap::new(command_cap),
                command_cap,
                command_metrics: OnceLock::new(),
                meter: meter.clone(),
                shards: RwLock::new(Vec::new()),
                bot_user: AtomicU64::new(0),
                voice: Mutex::new(HashMap::new()),
                voice_metrics: OnceLock::new(),
                ack_watch: AckWatch::default(),
            }
        });
        GatewayTap { inner }
    }
}

impl GatewayTap {
    /// A tap recording into the global meter provider, with the default `guild_id` cap.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose the meter and the `guild_id` label policy.
    pub fn builder() -> GatewayTapBuilder {
        GatewayTapBuilder::default()
    }

    /// [`VoiceMetrics`] recording into the same meter, with the same `guild_id` policy.
    ///
    /// Every call returns a handle to the same instruments.
    pub fn voice(&self) -> VoiceMetrics {
        self.inner
            .voice_metrics
            .get_or_init(|| {
                VoiceMetrics::builder()
                    .meter(self.inner.meter.clone())
                    .guild_label_cap(self.inner.guild_cap)
                    .build()
            })
            .clone()
    }

    /// [`CommandMetrics`] recording into the same meter, with the same command name cap.
    ///
    /// Every call returns a handle to the same instruments.
    pub fn commands(&self) -> CommandMetrics {
        self.inner
            .command_metrics
            .get_or_init(|| {
                CommandMetrics::builder()
                    .meter(self.inner.meter.clone())
                    .command_cap(self.inner.command_cap)
                    .build()
            })
            .clone()
    }

    /// Records one item of `shard.next_event(..)`.
    ///
    /// Counts the event; follows the shard's status, guilds, heartbeat latency,
    /// reconnections and close codes; and keeps `voice_connections_active` from the bot's own
    /// voice states; counts INTERACTION_CREATE by type and command (see
    /// [`interaction`](crate::interaction): no user-supplied text reaches a label) and
    /// RATE_LIMITED by opcode; records the dispatch lag of MESSAGE_CREATE and
    /// INTERACTION_CREATE; and reads the shard's command ratelimiter. Errors update the
    /// status and the ratelimiter gauges, and count a RATE_LIMITED that twilight could not
    /// deserialize. Never fails and never panics.
    ///
    /// The label set of an event type is built the first time a shard yields it; later
    /// events of that type add one to an atomic counter, which `gateway_events_total`
    /// reports when the exporter collects (an observable counter). The hot path takes no lock
    /// other than an uncontended read of the shard table (and, for the dispatch lag, the
    /// histogram's own).
    ///
    /// # Ratelimiter cadence
    ///
    /// Reading twilight's ratelimiter costs a clock read and a scan of the permits in use, so
    /// the tap reads it on the events of the gateway's own (HELLO, HEARTBEAT_ACK, RECONNECT,
    /// INVALID_SESSION, CLOSE), on READY and RESUMED, on errors, on a shard's first event of
    /// each type and on every [`COMMANDS_REFRESH_EVERY`]th after that. The gauges are at most
    /// one heartbeat interval (about 41 s) old, and far fresher on a busy shard, where the
    /// limit bites. The shard publishes them while it has a ratelimiter: not while
    /// disconnected, never with `ConfigBuilder::ratelimit_messages(false)`.
    ///
    /// # Dispatch lag sampling
    ///
    /// A wall-clock read costs about 40 ns on the 2-core machine this crate is measured on,
    /// and a histogram sample about 30 ns more: on every MESSAGE_CREATE that alone would
    /// exceed the tap's budget of 50 ns per event. So the lag is sampled: a shard's first
    /// MESSAGE_CREATE and INTERACTION_CREATE, then every
    /// [`DISPATCH_LAG_SAMPLE_EVERY`]th of each. The quantiles stay the same; the histogram's
    /// `_count` is the number of samples, not of events (that is `gateway_events_total`).
    ///
    /// [`COMMANDS_REFRESH_EVERY`]: crate::metrics::COMMANDS_REFRESH_EVERY
    /// [`DISPATCH_LAG_SAMPLE_EVERY`]: crate::metrics::DISPATCH_LAG_SAMPLE_EVERY
    pub fn observe<Q>(&self, shard: &Shard<Q>, item: &Result<Event, ReceiveMessageError>) {
        let number = shard.id().number();
        let shards = self
            .inner
            .shards
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = shards.get(number as usize).and_then(Option::as_ref) else {
            drop(shards);
            let entry = self.inner.register(number);
            self.inner.observe(&entry, shard, item);
            return;
        };
        self.inner.observe(entry, shard, item);
    }
}

impl Default for GatewayTap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for GatewayTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shards = self
            .inner
            .shards
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("GatewayTap")
            .field("shards", &shards.iter().flatten().count())
            .field("guild_cap", &self.inner.guild_cap)
            .finish_non_exhaustive()
    }
}

struct Instruments {
    guild_count: Gauge<i64>,
    unavailable_guilds: Gauge<i64>,
    latency: Histogram<f64>,
    status: Gauge<i64>,
    reconnects: Counter<u64>,
    close_codes: Counter<u64>,
    voice_active: UpDownCounter<i64>,
    interactions: Counter<u64>,
    ratelimited: Counter<u64>,
    dispatch_lag: Histogram<f64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Self {
            guild_count: meter
                .i64_gauge(DISCORD_GUILD_COUNT)
                .with_description("Guilds served by a shard, available or not")
                .build(),
            unavailable_guilds: meter
                .i64_gauge(DISCORD_UNAVAILABLE_GUILDS)
                .with_description("Guilds of a shard that are unavailable (outages)")
                .build(),
            latency: meter
                .f64_histogram(GATEWAY_LATENCY)
                .with_unit(SECONDS)
                .with_description("Heartbeat round trip of a shard")
                .with_boundaries(botscope_core::buckets::default_buckets())
                .build(),
            status: meter
                .i64_gauge(GATEWAY_SHARD_STATUS)
                .with_description("1 on the current status of a shard, 0 on the others")
                .build(),
            reconnects: meter
                .u64_counter(GATEWAY_RECONNECTS)
                .with_description("Reconnections of a shard, by resume or new identify")
                .build(),
            close_codes: meter
                .u64_counter(GATEWAY_CLOSE_CODES)
                .with_description("Websocket close frames received by a shard")
                .build(),
            voice_active: meter
                .i64_up_down_counter(VOICE_CONNECTIONS_ACTIVE)
                .with_description("Guilds whose voice channel the bot is connected to")
                .build(),
            interactions: meter
                .u64_counter(INTERACTIONS)
                .with_description("Interactions received from the gateway, by type and command")
                .build(),
            ratelimited: meter
                .u64_counter(GATEWAY_RATELIMITED)
                .with_description("RATE_LIMITED events: gateway commands Discord refused")
                .build(),
            dispatch_lag: meter
                .f64_histogram(GATEWAY_DISPATCH_LAG)
                .with_unit(SECONDS)
                .with_description(
                    "Receive time minus the snowflake time of MESSAGE_CREATE and INTERACTION_CREATE",
                )
                .with_boundaries(DISPATCH_LAG_BUCKETS.to_vec())
                .build(),
        }
    }
}

struct Inner {
    instruments: Instruments,
    /// `gateway_events`: counted in [`ShardEntry::events`], reported at collection.
    _events: ObservableCounter<u64>,
    /// `gateway_commands_available` and `_max`: read into [`ShardEntry::commands`],
    /// reported at collection.
    _commands: [ObservableGauge<u64>; 2],
    voice_guilds: LabelCap,
    guild_cap: usize,
    /// The `command` cap of `interactions_total`.
    commands: LabelCap,
    command_cap: usize,
    command_metrics: OnceLock<CommandMetrics>,
    meter: Meter,
    /// Indexed by shard id; shard ids are dense from zero.
    shards: RwLock<Vec<Option<Arc<ShardEntry>>>>,
    /// The bot's user id from READY, 0 until then.
    bot_user: AtomicU64,
    /// The guilds whose voice channel the bot is in; dropping a guard lowers the gauge.
    voice: Mutex<HashMap<Id<GuildMarker>, GaugeGuard>>,
    voice_metrics: OnceLock<VoiceMetrics>,
    ack_watch: AckWatch,
}

/// No status reported yet.
const NO_STATUS: u8 = u8::MAX;

/// The count of one event type on one shard.
#[derive(Default)]
struct EventSlot {
    count: AtomicU64,
    attributes: OnceLock<[KeyValue; 2]>,
}

/// What a tap keeps per shard.
struct ShardEntry {
    shard: KeyValue,
    /// Per [`EventType`]: its count, and its `[shard, event_type]` built on its first event.
    events: Box<[EventSlot]>,
    /// Index into [`SHARD_STATUSES`] of the status last recorded.
    status: AtomicU8,
    /// The [`CommandPermits`] last read from the shard's ratelimiter.
    commands: AtomicU32,
    /// `gateway_dispatch_lag_seconds` of this shard.
    dispatch_lag: BoundHistogram<f64>,
    state: Mutex<ShardMut>,
}

/// A reading of a shard's command ratelimiter, packed in a `u32` to be stored in one atomic:
/// bit 16 set when the shard had a ratelimiter, `max` in bits 8–15, `available` in 0–7.
#[derive(Clone, Copy)]
struct CommandPermits(u32);

impl CommandPermits {
    const NONE: Self = Self(0);
    const KNOWN: u32 = 1 << 16;

    fn read<Q>(shard: &Shard<Q>) -> Self {
        shard.ratelimiter().map_or(Self::NONE, |limiter| {
            Self(Self::KNOWN | u32::from(limiter.max()) << 8 | u32::from(limiter.available()))
        })
    }

    const fn is_known(self) -> bool {
        self.0 & Self::KNOWN != 0
    }

    fn available(self) -> u64 {
        u64::from(self.0 & 0xff)
    }

    fn max(self) -> u64 {
        u64::from(self.0 >> 8 & 0xff)
    }
}

#[derive(Default)]
struct ShardMut {
    /// Guild id → unavailable.
    guilds: HashMap<Id<GuildMarker>, bool>,
    /// How many values of `guilds` are `true`.
    unavailable: usize,
    /// When the heartbeat last recorded was acknowledged.
    last_ack: Option<Instant>,
    /// Whether the shard connected before (its next HELLO is a reconnection).
    connected: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn register(&self, number: u32) -> Arc<ShardEntry> {
        let mut shards = self.shards.write().unwrap_or_else(PoisonError::into_inner);
        let index = number as usize;
        if shards.len() <= index {
            shards.resize(index + 1, None);
        }
        Arc::clone(shards[index].get_or_insert_with(|| {
            Arc::new(ShardEntry::new(number, &self.instruments.dispatch_lag))
        }))
    }

    fn observe<Q>(
        &self,
        entry: &ShardEntry,
        shard: &Shard<Q>,
        item: &Result<Event, ReceiveMessageError>,
    ) {
        let status = status_index(shard.state()) as u8;
        if entry.status.load(Ordering::Relaxed) != status {
            self.record_status(entry, status);
        }
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                if let Some(opcode) = undeserialized_rate_limited(error) {
                    self.count_rate_limited(entry, opcode);
                }
                entry.read_commands(shard);
                return;
            }
        };
        let kind = event.kind();
        // `EventType` is exhaustive and `EVENT_KINDS` counts its variants: always `Some`.
        let seen = entry.events.get(kind as usize).map_or(0, |slot| {
            slot.attributes
                .get_or_init(|| event_attributes(&entry.shard, kind));
            slot.count.fetch_add(1, Ordering::Relaxed)
        });
        // The events of this type before this one: the first and every n-th after it refresh
        // the command gauges and sample the dispatch lag.
        let mut read_commands = seen.is_multiple_of(COMMANDS_REFRESH_EVERY);
        let sample_lag = seen.is_multiple_of(DISPATCH_LAG_SAMPLE_EVERY);
        match event {
            Event::MessageCreate(create) if sample_lag => entry.record_lag(create.id.get()),
            Event::Ready(ready) => {
                self.bot_user.store(ready.user.id.get(), Ordering::Relaxed);
                let mut state = lock(&entry.state);
                // READY lists every guild of the session, so it replaces what came before.
                state.guilds = ready.guilds.iter().map(|g| (g.id, g.unavailable)).collect();
                state.unavailable = state.guilds.values().filter(|u| **u).count();
                self.record_guilds(entry, &state);
            }
            Event::GuildCreate(create) => {
                let unavailable = match &**create {
                    GuildCreate::Available(_) => false,
                    GuildCreate::Unavailable(guild) => guild.unavailable,
                };
                self.set_guild(entry, create.id(), Some(unavailable));
            }
            Event::GuildDelete(delete) => {
                // An unavailable GUILD_DELETE is an outage: the guild stays in the count.
                if delete.unavailable == Some(true) {
                    self.set_guild(entry, delete.id, Some(true));
                } else {
                    self.set_guild(entry, delete.id, None);
                    lock(&self.voice).remove(&delete.id);
                }
            }
            Event::UnavailableGuild(guild) => self.set_guild(entry, guild.id, Some(true)),
            Event::InteractionCreate(create) => {
                let interaction = &create.0;
                if sample_lag {
                    entry.record_lag(interaction.id.get());
                }
                self.instruments.interactions.add(
                    1,
                    &[
                        entry.shard.clone(),
                        KeyValue::new(TYPE, interaction::type_label(interaction.kind)),
                        KeyValue::new(
                            COMMAND,
                            Value::String(interaction::command_label(interaction, &self.commands)),
                        ),
                    ],
                );
            }
            Event::VoiceStateUpdate(update) => {
                let bot = self.bot_user.load(Ordering::Relaxed);
                if bot != 0
                    && update.user_id.get() == bot
                    && let Some(guild) = update.guild_id
                {
                    self.set_voice(guild, update.channel_id.is_some());
                }
            }
            Event::RateLimited(limited) => {
                self.count_rate_limited(entry, Some(u64::from(limited.opcode as u8)));
            }
            Event::GatewayHeartbeatAck => {
                read_commands = true;
                let latency = shard.latency();
                let mut state = lock(&entry.state);
                // An unrequested ACK leaves `received` unchanged: one sample per answered
                // heartbeat.
                if let (Some(received), Some(recent)) =
                    (latency.received(), latency.recent().first())
                    && state.last_ack != Some(received)
                {
                    state.last_ack = Some(received);
                    drop(state);
                    self.instruments
                        .latency
                        .record(recent.as_secs_f64(), std::slice::from_ref(&entry.shard));
                }
            }
            Event::GatewayHello(_) => {
                read_commands = true;
                // The shard has already chosen: `Resuming` when it holds a session.
                let resuming = status == status_index(twilight_gateway::ShardState::Resuming) as u8;
                let reconnected = std::mem::replace(&mut lock(&entry.state).connected, true);
                let kind = if resuming {
                    Some(RESUME)
                } else if reconnected {
                    Some(IDENTIFY)
                } else {
                    None
                };
                if let Some(kind) = kind {
                    self.instruments
                        .reconnects
                        .add(1, &[entry.shard.clone(), KeyValue::new(KIND, kind)]);
                }
            }
            Event::GatewayClose(frame) => {
                read_commands = true;
                let code = match frame {
                    Some(frame) => Value::I64(i64::from(frame.code)),
                    None => Value::from(NO_CODE),
                };
                self.instruments
                    .close_codes
                    .add(1, &[entry.shard.clone(), KeyValue::new(CODE, code)]);
            }
            Event::Resumed | Event::GatewayReconnect | Event::GatewayInvalidateSession(_) => {
                read_commands = true;
            }
            _ => {}
        }
        if read_commands || matches!(event, Event::Ready(_)) {
            entry.read_commands(shard);
            self.ack_watch.observe(shard, event);
        }
    }

    /// Counts a RATE_LIMITED event about `opcode` (`None`: unreadable, counted `other`).
    fn count_rate_limited(&self, entry: &ShardEntry, opcode: Option<u64>) {
        let opcode = opcode_label(opcode.unwrap_or(u64::MAX));
        self.instruments
            .ratelimited
            .add(1, &[entry.shard.clone(), KeyValue::new(OPCODE, opcode)]);
    }

    /// The callback of `gateway_commands_available` and `_max`: `read` picks the value.
    fn report_commands(
        &self,
        observer: &dyn AsyncInstrument<u64>,
        read: fn(CommandPermits) -> u64,
    ) {
        let shards = self.shards.read().unwrap_or_else(PoisonError::into_inner);
        for entry in shards.iter().flatten() {
            let permits = CommandPermits(entry.commands.load(Ordering::Relaxed));
            if permits.is_known() {
                observer.observe(read(permits), std::slice::from_ref(&entry.shard));
            }
        }
    }

    /// The callback of `gateway_events`: every (shard, event type) seen so far.
    fn report_events(&self, observer: &dyn AsyncInstrument<u64>) {
        let shards = self.shards.read().unwrap_or_else(PoisonError::into_inner);
        for entry in shards.iter().flatten() {
            for slot in entry.events.iter() {
                if let Some(attributes) = slot.attributes.get() {
                    observer.observe(slot.count.load(Ordering::Relaxed), attributes);
                }
            }
        }
    }

    fn record_status(&self, entry: &ShardEntry, status: u8) {
        // Serialised by the shard's lock, so two racing observers agree on the final value.
        let _state = lock(&entry.state);
        entry.status.store(status, Ordering::Relaxed);
        for (index, name) in SHARD_STATUSES.iter().enumerate() {
            let value = i64::from(index == usize::from(status));
            self.instruments
                .status
                .record(value, &[entry.shard.clone(), KeyValue::new(STATUS, *name)]);
        }
    }

    /// `Some(unavailable)` adds or updates the guild, `None` removes it.
    fn set_guild(&self, entry: &ShardEntry, guild: Id<GuildMarker>, unavailable: Option<bool>) {
        let mut state = lock(&entry.state);
        let was_unavailable = match unavailable {
            Some(unavailable) => {
                state.unavailable += usize::from(unavailable);
                state.guilds.insert(guild, unavailable)
            }
            None => state.guilds.remove(&guild),
        };
        state.unavailable -= usize::from(was_unavailable == Some(true));
        self.record_guilds(entry, &state);
    }

    fn record_guilds(&self, entry: &ShardEntry, state: &ShardMut) {
        let shard = std::slice::from_ref(&entry.shard);
        let total = i64::try_from(state.guilds.len()).unwrap_or(i64::MAX);
        let unavailable = i64::try_from(state.unavailable).unwrap_or(i64::MAX);
        self.instruments.guild_count.record(total, shard);
        self.instruments
            .unavailable_guilds
            .record(unavailable, shard);
    }

    fn set_voice(&self, guild: Id<GuildMarker>, connected: bool) {
        let mut voice = lock(&self.voice);
        if connected {
            voice.entry(guild).or_insert_with(|| {
                let label = self.voice_guilds.key_value(GUILD_ID, &guild.to_string());
                GaugeGuard::new(&self.instruments.voice_active.bind(&[label]))
            });
        } else {
            voice.remove(&guild);
        }
    }
}

impl ShardEntry {
    fn new(number: u32, dispatch_lag: &Histogram<f64>) -> Self {
        let shard = KeyValue::new(SHARD, StringValue::from(number.to_string()));
        let events = (0..EVENT_KINDS).map(|_| EventSlot::default()).collect();
        Self {
            dispatch_lag: dispatch_lag.bind(std::slice::from_ref(&shard)),
            shard,
            events,
            status: AtomicU8::new(NO_STATUS),
            commands: AtomicU32::new(CommandPermits::NONE.0),
            state: Mutex::new(ShardMut::default()),
        }
    }

    fn read_commands<Q>(&self, shard: &Shard<Q>) {
        self.commands
            .store(CommandPermits::read(shard).0, Ordering::Relaxed);
    }

    /// Records how long ago Discord minted `id`, the snowflake of an event just received;
    /// zero when this host's clock runs behind Discord's.
    fn record_lag(&self, id: u64) {
        let lag = snowflake::age(id, SystemTime::now()).unwrap_or_default();
        self.dispatch_lag.record(lag.as_secs_f64());
    }
}

/// The opcode of a RATE_LIMITED dispatch that twilight could not deserialize: `Some(None)`
/// when the opcode is unreadable, `None` when `error` is not about a RATE_LIMITED.
///
/// twilight-model 0.18 reads `meta` as `{"RequestGuildMembers": {"guild_id": …}}`, while
/// Discord sends `{"guild_id": …, "nonce": …}` (discord-api-docs #7760), so Discord's own
/// RATE_LIMITED reaches the bot as a deserializing error carrying the payload's text.
fn undeserialized_rate_limited(error: &ReceiveMessageError) -> Option<Option<u64>> {
    let ReceiveMessageErrorType::Deserializing { event } = error.kind() else {
        return None;
    };
    let payload = GatewayEventDeserializer::from_json(event)?;
    if payload.op() != 0 || payload.event_type() != EventType::RateLimited.name() {
        return None;
    }
    let value = serde_json::from_str::<serde_json::Value>(event).ok();
    Some(value.and_then(|value| value["d"]["opcode"].as_u64()))
}

fn event_attributes(shard: &KeyValue, kind: EventType) -> [KeyValue; 2] {
    [
        shard.clone(),
        KeyValue::new(EVENT_TYPE, event_type_name(kind)),
    ]
}

#[cfg(test)]
mod tests {
    use botscope_testkit::TestMetrics;
    use serde_json::json;
    use twilight_gateway::{ConfigBuilder, EventTypeFlags, Intents, ShardId};

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
        let error = twilight_gateway::parse(other.to_string(), EventTypeFlags::all())
            .expect_err("not a guild");
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
}
