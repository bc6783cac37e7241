//! What a tap keeps per shard: its status, connection history, command ratelimiter reading
//! and heartbeat latency.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use botscope_core::snowflake;
use opentelemetry::metrics::{BoundHistogram, Gauge, Histogram};
use opentelemetry::{KeyValue, StringValue};
use twilight_gateway::Shard;

use super::events::EventCounts;
use super::guilds::ShardGuilds;
use crate::metrics::{IDENTIFY, RESUME, SHARD, SHARD_STATUSES, STATUS};

/// No status reported yet.
const NO_STATUS: u8 = u8::MAX;

/// What a tap keeps per shard.
pub(super) struct ShardEntry {
    pub(super) shard: KeyValue,
    pub(super) events: EventCounts,
    /// Index into [`SHARD_STATUSES`] of the status last recorded.
    status: AtomicU8,
    /// The [`CommandPermits`] last read from the shard's ratelimiter.
    commands: AtomicU32,
    /// `gateway_dispatch_lag_seconds` of this shard.
    dispatch_lag: BoundHistogram<f64>,
    pub(super) guilds: Mutex<ShardGuilds>,
    state: Mutex<ShardMut>,
}

#[derive(Default)]
struct ShardMut {
    /// When the heartbeat last recorded was acknowledged (twilight's reading).
    last_ack: Option<Instant>,
    /// Whether the shard connected before (its next HELLO is a reconnection).
    connected: bool,
}

impl ShardEntry {
    pub(super) fn new(number: u32, dispatch_lag: &Histogram<f64>, events: EventCounts) -> Self {
        let shard = KeyValue::new(SHARD, StringValue::from(number.to_string()));
        Self {
            dispatch_lag: dispatch_lag.bind(std::slice::from_ref(&shard)),
            shard,
            events,
            status: AtomicU8::new(NO_STATUS),
            commands: AtomicU32::new(CommandPermits::NONE.0),
            guilds: Mutex::new(ShardGuilds::default()),
            state: Mutex::new(ShardMut::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, ShardMut> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `status` (an index into [`SHARD_STATUSES`]) on `gauge` if it changed.
    pub(super) fn record_status(&self, gauge: &Gauge<i64>, status: u8) {
        if self.status.load(Ordering::Relaxed) == status {
            return;
        }
        // Serialised by the shard's lock, so two racing observers agree on the final value.
        let _state = self.state();
        self.status.store(status, Ordering::Relaxed);
        for (index, name) in SHARD_STATUSES.iter().enumerate() {
            let value = i64::from(index == usize::from(status));
            gauge.record(value, &[self.shard.clone(), KeyValue::new(STATUS, *name)]);
        }
    }

    /// The `kind` of reconnection a HELLO starts, `None` for the shard's first connection.
    /// `resuming`: the shard is in `Resuming` (it has already chosen, holding a session).
    pub(super) fn hello(&self, resuming: bool) -> Option<&'static str> {
        let reconnected = std::mem::replace(&mut self.state().connected, true);
        if resuming {
            Some(RESUME)
        } else if reconnected {
            Some(IDENTIFY)
        } else {
            None
        }
    }

    /// The round trip of the heartbeat a HEARTBEAT_ACK answers, `None` when this ACK answered
    /// no new heartbeat: one sample per answered heartbeat.
    pub(super) fn heartbeat_acked<Q>(&self, shard: &Shard<Q>) -> Option<Duration> {
        let latency = shard.latency();
        let (received, recent) = (latency.received()?, *latency.recent().first()?);
        // An unrequested ACK leaves `received` unchanged.
        let mut state = self.state();
        (state.last_ack != Some(received)).then(|| {
            state.last_ack = Some(received);
            recent
        })
    }

    pub(super) fn read_commands<Q>(&self, shard: &Shard<Q>) {
        self.commands
            .store(CommandPermits::read(shard).0, Ordering::Relaxed);
    }

    /// The command ratelimiter reading last stored, if the shard had a ratelimiter.
    pub(super) fn commands(&self) -> Option<CommandPermits> {
        Some(CommandPermits(self.commands.load(Ordering::Relaxed))).filter(|p| p.is_known())
    }

    /// Records how long ago Discord minted `id`, the snowflake of an event just received;
    /// zero when this host's clock runs behind Discord's.
    pub(super) fn record_lag(&self, id: u64) {
        let lag = snowflake::age_now(id).unwrap_or_default();
        self.dispatch_lag.record(lag.as_secs_f64());
    }
}

/// A reading of a shard's command ratelimiter, packed in a `u32` to be stored in one atomic:
/// bit 16 set when the shard had a ratelimiter, `max` in bits 8–15, `available` in 0–7.
#[derive(Clone, Copy)]
pub(super) struct CommandPermits(u32);

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

    pub(super) fn available(self) -> u64 {
        u64::from(self.0 & 0xff)
    }

    pub(super) fn max(self) -> u64 {
        u64::from(self.0 >> 8 & 0xff)
    }
}
