//! The event type flags the tap needs, and a log line when a connected shard's heartbeat
//! acknowledgements never reach it.
//!
//! | family | flags |
//! |---|---|
//! | `gateway_latency_seconds` | `GATEWAY_HEARTBEAT_ACK` |
//! | `gateway_reconnects_total` | `GATEWAY_HELLO` |
//! | `discord_guild_count`, `discord_unavailable_guilds` | `READY`, `GUILD_CREATE`, `GUILD_DELETE`, `UNAVAILABLE_GUILD` |
//! | `gateway_ratelimited_total` | `RATE_LIMITED` |
//! | `gateway_commands_available`, `_max` | read on `GATEWAY_HEARTBEAT_ACK`, `GATEWAY_HELLO`, `GATEWAY_RECONNECT`, `GATEWAY_INVALIDATE_SESSION`, `READY`, `RESUMED` (and every 64th event of a type) |
//! | `voice_connections_active` | `READY` (the bot's user id), `VOICE_STATE_UPDATE` |
//! | `interactions_total` | `INTERACTION_CREATE` |
//! | `gateway_dispatch_lag_seconds` | `MESSAGE_CREATE`, `INTERACTION_CREATE` |
//! | `gateway_events_total` | whatever the flags let through |
//! | `gateway_shard_status`, `gateway_close_codes_total` | none: read from the shard, and twilight yields close frames whatever the flags |
//!
//! [`GatewayTap::EVENT_FLAGS`] holds the flags of the rows above them up to
//! `gateway_commands_available`: the events of the connection itself, few and small. The
//! last rows' events (voice states, interactions, messages) a bot asks for when it handles
//! them. twilight shares some bits: `READY` with `MESSAGE_POLL_VOTE_ADD`, `RESUMED` with
//! `MESSAGE_POLL_VOTE_REMOVE`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use twilight_gateway::{Event, EventTypeFlags, Shard, ShardState};

use crate::GatewayTap;

impl GatewayTap {
    /// The flags the tap's connection families need, to OR into the bot's own:
    /// `shard.next_event(MY_FLAGS | GatewayTap::EVENT_FLAGS)`. See the [table](crate::flags)
    /// of which family needs which flag.
    pub const EVENT_FLAGS: EventTypeFlags = EventTypeFlags::GATEWAY_HEARTBEAT_ACK
        .union(EventTypeFlags::GATEWAY_HELLO)
        .union(EventTypeFlags::GATEWAY_RECONNECT)
        .union(EventTypeFlags::GATEWAY_INVALIDATE_SESSION)
        .union(EventTypeFlags::READY)
        .union(EventTypeFlags::RESUMED)
        .union(EventTypeFlags::GUILD_CREATE)
        .union(EventTypeFlags::GUILD_DELETE)
        .union(EventTypeFlags::UNAVAILABLE_GUILD)
        .union(EventTypeFlags::RATE_LIMITED);
}

/// Watches for heartbeat acknowledgements that a shard received and the tap never saw: the
/// bot's flags lack `GATEWAY_HEARTBEAT_ACK`. Fed on the tap's refresh cadence (the first
/// event of each type, every 64th after), so it costs nothing on most events, and one
/// atomic load once it has seen an acknowledgement or warned.
#[derive(Default)]
pub(crate) struct AckWatch {
    /// An acknowledgement event reached the tap, or the warning was logged: stop watching.
    done: AtomicBool,
    state: Mutex<Watched>,
}

struct Watched {
    /// The event types seen so far.
    seen: EventTypeFlags,
    /// The first acknowledgement a shard received that the tap did not see: shard, when.
    unseen: Option<(u32, Instant)>,
}

impl Default for Watched {
    fn default() -> Self {
        Self {
            seen: EventTypeFlags::empty(),
            unseen: None,
        }
    }
}

impl AckWatch {
    /// Looks at `event` of `shard`; logs once when a second unseen acknowledgement shows
    /// the flags lack them.
    pub(crate) fn observe<Q>(&self, shard: &Shard<Q>, event: &Event) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        if matches!(event, Event::GatewayHeartbeatAck) {
            self.done.store(true, Ordering::Relaxed);
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.seen |= EventTypeFlags::from(event.kind());
        let Some(received) = shard.latency().received() else {
            return;
        };
        if !matches!(shard.state(), ShardState::Active) {
            return;
        }
        let id = shard.id().number();
        match state.unseen {
            None => state.unseen = Some((id, received)),
            Some((first, at)) if first == id && at != received => {
                let missing = missing_flags(state.seen);
                drop(state);
                self.done.store(true, Ordering::Relaxed);
                tracing::warn!(
                    shard = id,
                    missing = %missing,
                    "shard {id} is connected and its heartbeats are acknowledged, but no \
                     acknowledgement reached the gateway tap: gateway_latency_seconds stays \
                     empty; add {missing} to the flags given to next_event \
                     (GatewayTap::EVENT_FLAGS holds every flag the tap needs)"
                );
            }
            Some(_) => {}
        }
    }
}

/// The flags a connected, acknowledged shard certainly lacks, given the event types seen.
fn missing_flags(seen: EventTypeFlags) -> String {
    let mut missing = vec!["GATEWAY_HEARTBEAT_ACK"];
    if !seen.contains(EventTypeFlags::GATEWAY_HELLO) {
        missing.push("GATEWAY_HELLO");
    }
    if !seen.intersects(EventTypeFlags::READY | EventTypeFlags::RESUMED) {
        missing.push("READY");
    }
    missing.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_cover_the_connection_events() {
        let flags = GatewayTap::EVENT_FLAGS;
        assert!(
            flags.contains(EventTypeFlags::GATEWAY_HEARTBEAT_ACK | EventTypeFlags::GATEWAY_HELLO)
        );
        assert!(flags.contains(EventTypeFlags::READY | EventTypeFlags::GUILD_CREATE));
        assert!(!flags.contains(EventTypeFlags::MESSAGE_CREATE));
    }

    #[test]
    fn missing_flags_name_only_what_a_connected_shard_must_have_seen() {
        assert_eq!(
            missing_flags(EventTypeFlags::empty()),
            "GATEWAY_HEARTBEAT_ACK | GATEWAY_HELLO | READY"
        );
        assert_eq!(
            missing_flags(EventTypeFlags::GATEWAY_HELLO | EventTypeFlags::RESUMED),
            "GATEWAY_HEARTBEAT_ACK"
        );
    }
}
