//! [`GatewayTap`]: metrics from the items a shard yields.

mod dispatch_span;
mod events;
mod guilds;
mod rate_limited;
mod shard;
#[cfg(test)]
mod tests;
mod voice_states;

use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};

use botscope_core::span::Span;
use botscope_core::{LabelCap, label_cap::DEFAULT_CAP};
use opentelemetry::metrics::{
    AsyncInstrument, Counter, Gauge, Histogram, Meter, ObservableCounter, ObservableGauge,
};
use opentelemetry::{KeyValue, Value};
use twilight_gateway::error::ReceiveMessageError;
use twilight_gateway::{Event, Shard};

use self::events::EventCounts;
use self::guilds::GuildGauges;
use self::shard::{CommandPermits, ShardEntry};
use self::voice_states::BotVoice;
use crate::commands::CommandMetrics;
use crate::flags::AckWatch;
use crate::interaction::{self, DEFAULT_COMMAND_CAP};
use crate::metrics::{
    CODE, COMMAND, COMMANDS_REFRESH_EVERY, DISPATCH_LAG_BUCKETS, DISPATCH_LAG_SAMPLE_EVERY,
    GATEWAY_CLOSE_CODES, GATEWAY_COMMANDS_AVAILABLE, GATEWAY_COMMANDS_MAX, GATEWAY_DISPATCH_LAG,
    GATEWAY_EVENTS, GATEWAY_LATENCY, GATEWAY_RATELIMITED, GATEWAY_RECONNECTS, GATEWAY_SHARD_STATUS,
    INTERACTIONS, KIND, NO_CODE, OPCODE, SECONDS, TYPE, opcode_label, status_index,
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
/// `shard` takes the bot's shard ids; `event_type` Discord's closed set of event names (an
/// event a newer twilight-model adds keeps its dispatch name, or reads `other`);
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
                guilds: GuildGauges::new(&meter),
                voice: BotVoice::new(&meter, guild_cap),
                _events: events,
                _commands: commands,
                guild_cap,
                commands: LabelCap::new(command_cap),
                command_cap,
                command_metrics: OnceLock::new(),
                meter: meter.clone(),
                shards: RwLock::new(Vec::new()),
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

    /// The span of an event `shard` yielded, to run its handler in, so everything the
    /// handler does (its command, queries, REST calls) is a child of the event:
    ///
    /// ```ignore
    /// let span = tap.span(&shard, &event);
    /// tokio::spawn(handle(event, state).instrument(span));
    /// ```
    ///
    /// `gateway {EVENT_TYPE}` (a `debug` consumer span, target `botscope_gateway`) with
    /// `discord.shard.id`, `discord.event.type`, `discord.event.sequence` (the session's
    /// sequence when the event was read), `discord.guild.id`; an INTERACTION_CREATE adds
    /// `discord.interaction.id`, `discord.command.name` (capped as the `command` label, never
    /// an option or a token) and `discord.interaction.deadline` (unix milliseconds when its
    /// 3 seconds run out). The span ends when the last clone of it drops: when the handler
    /// ends, if only the handler holds it. With no subscriber that wants it, a disabled span
    /// at the cost of one interest check.
    pub fn span<Q>(&self, shard: &Shard<Q>, event: &Event) -> Span {
        dispatch_span::dispatch_span(
            shard.id().number(),
            shard.session().map(twilight_gateway::Session::sequence),
            event,
            &self.inner.commands,
        )
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

/// The instruments the tap records into directly; the guild and voice gauges live with their
/// bookkeeping ([`GuildGauges`], [`BotVoice`]).
struct Instruments {
    latency: Histogram<f64>,
    status: Gauge<i64>,
    reconnects: Counter<u64>,
    close_codes: Counter<u64>,
    interactions: Counter<u64>,
    ratelimited: Counter<u64>,
    dispatch_lag: Histogram<f64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        Self {
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
    guilds: GuildGauges,
    voice: BotVoice,
    /// `gateway_events`: counted in [`ShardEntry::events`], reported at collection.
    _events: ObservableCounter<u64>,
    /// `gateway_commands_available` and `_max`: read into [`ShardEntry`], reported at
    /// collection.
    _commands: [ObservableGauge<u64>; 2],
    guild_cap: usize,
    /// The `command` cap of `interactions_total`.
    commands: LabelCap,
    command_cap: usize,
    command_metrics: OnceLock<CommandMetrics>,
    meter: Meter,
    /// Indexed by shard id; shard ids are dense from zero.
    shards: RwLock<Vec<Option<Arc<ShardEntry>>>>,
    voice_metrics: OnceLock<VoiceMetrics>,
    /// Says once if heartbeat acknowledgements never reach the tap.
    ack_watch: AckWatch,
}

impl Inner {
    fn register(&self, number: u32) -> Arc<ShardEntry> {
        let mut shards = self.shards.write().unwrap_or_else(PoisonError::into_inner);
        let index = number as usize;
        if shards.len() <= index {
            shards.resize(index + 1, None);
        }
        Arc::clone(shards[index].get_or_insert_with(|| {
            Arc::new(ShardEntry::new(
                number,
                &self.instruments.dispatch_lag,
                EventCounts::new(),
            ))
        }))
    }

    fn observe<Q>(
        &self,
        entry: &ShardEntry,
        shard: &Shard<Q>,
        item: &Result<Event, ReceiveMessageError>,
    ) {
        let status = status_index(shard.state()) as u8;
        entry.record_status(&self.instruments.status, status);
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                if let Some(opcode) = rate_limited::undeserialized_rate_limited(error) {
                    self.count_rate_limited(entry, opcode);
                }
                entry.read_commands(shard);
                return;
            }
        };
        let seen = entry.events.count(&entry.shard, event.kind());
        // The events of this type before this one: the first and every n-th after it refresh
        // the command gauges and sample the dispatch lag.
        let mut read_commands = seen.is_multiple_of(COMMANDS_REFRESH_EVERY);
        let sample_lag = seen.is_multiple_of(DISPATCH_LAG_SAMPLE_EVERY);
        match event {
            Event::MessageCreate(create) if sample_lag => entry.record_lag(create.id.get()),
            Event::Ready(ready) => {
                read_commands = true;
                self.voice.ready(ready.user.id);
                self.guilds.observe(&entry.shard, &entry.guilds, event);
            }
            Event::GuildCreate(_) | Event::GuildDelete(_) | Event::UnavailableGuild(_) => {
                if let Some(left) = self.guilds.observe(&entry.shard, &entry.guilds, event) {
                    self.voice.left(left);
                }
            }
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
            Event::VoiceStateUpdate(update) => self.voice.update(update),
            Event::RateLimited(limited) => {
                self.count_rate_limited(entry, Some(u64::from(limited.opcode as u8)));
            }
            Event::GatewayHeartbeatAck => {
                read_commands = true;
                if let Some(round_trip) = entry.heartbeat_acked(shard) {
                    self.instruments
                        .latency
                        .record(round_trip.as_secs_f64(), std::slice::from_ref(&entry.shard));
                }
            }
            Event::GatewayHello(_) => {
                read_commands = true;
                let resuming = status == status_index(twilight_gateway::ShardState::Resuming) as u8;
                if let Some(kind) = entry.hello(resuming) {
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
        if read_commands {
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
            if let Some(permits) = entry.commands() {
                observer.observe(read(permits), std::slice::from_ref(&entry.shard));
            }
        }
    }

    /// The callback of `gateway_events`: every (shard, event type) seen so far.
    fn report_events(&self, observer: &dyn AsyncInstrument<u64>) {
        let shards = self.shards.read().unwrap_or_else(PoisonError::into_inner);
        for entry in shards.iter().flatten() {
            entry.events.report(observer);
        }
    }
}
