//! Metric names, units and label values, in one place.
//!
//! Instrument names carry no namespace, unit or `_total`: the Prometheus exporter adds them
//! (`gateway_events` renders as `N_gateway_events_total`, `gateway_latency` with unit `s` as
//! `N_gateway_latency_seconds`).

use twilight_gateway::ShardState;
use twilight_model::gateway::event::EventType;

/// Counter of gateway events by `shard` and `event_type`.
pub const GATEWAY_EVENTS: &str = "gateway_events";
/// Gauge of the guilds a shard serves, available or not, by `shard`.
pub const DISCORD_GUILD_COUNT: &str = "discord_guild_count";
/// Gauge of a shard's guilds in an outage, by `shard`.
pub const DISCORD_UNAVAILABLE_GUILDS: &str = "discord_unavailable_guilds";
/// Histogram of heartbeat round trips in seconds, by `shard`.
pub const GATEWAY_LATENCY: &str = "gateway_latency";
/// Gauge, 1 on a shard's current status and 0 on the others, by `shard` and `status`.
pub const GATEWAY_SHARD_STATUS: &str = "gateway_shard_status";
/// Counter of reconnections by `shard` and `kind` (`resume`, `identify`).
pub const GATEWAY_RECONNECTS: &str = "gateway_reconnects";
/// Counter of websocket close frames by `shard` and `code`.
pub const GATEWAY_CLOSE_CODES: &str = "gateway_close_codes";
/// Counter of voice connection attempts by `guild_id` and `status` (`success`, `error`).
pub const VOICE_CONNECTION_ATTEMPTS: &str = "voice_connection_attempts";
/// Gauge of the guilds whose voice channel the bot is in, by `guild_id`.
pub const VOICE_CONNECTIONS_ACTIVE: &str = "voice_connections_active";
/// Histogram of audio processing times in seconds, by `operation` and `guild_id`.
pub const AUDIO_PROCESSING_DURATION: &str = "audio_processing_duration";
/// Counter of Lavalink track events by `event_type` and `guild_id`.
pub const AUDIO_TRACK_EVENTS: &str = "audio_track_events";
/// Gauge of a Lavalink node's players, by `node`.
pub const LAVALINK_PLAYERS: &str = "lavalink_players";
/// Gauge of a Lavalink node's playing players, by `node`.
pub const LAVALINK_PLAYING_PLAYERS: &str = "lavalink_playing_players";

/// Counter of INTERACTION_CREATE events by `shard`, `type` and `command`.
pub const INTERACTIONS: &str = "interactions";
/// Histogram of command handler times in seconds, by `command` and `status`.
pub const COMMAND_DURATION: &str = "command_duration";
/// Counter of command handler runs by `command` and `status`.
pub const COMMANDS: &str = "commands";
/// Bucket bounds of the command duration histogram, in seconds: the interaction buckets,
/// which resolve Discord's 3-second response deadline.
pub const COMMAND_DURATION_BUCKETS: [f64; 13] = botscope_core::buckets::INTERACTION_BUCKETS;

/// Unit of every duration: seconds.
pub const SECONDS: &str = "s";

/// Label key of the shard id.
pub const SHARD: &str = "shard";
/// Label key of the event name.
pub const EVENT_TYPE: &str = "event_type";
/// Label key of the shard status.
pub const STATUS: &str = "status";
/// Label key of the reconnection kind.
pub const KIND: &str = "kind";
/// Label key of the close code.
pub const CODE: &str = "code";
/// Label key of the guild id.
pub const GUILD_ID: &str = "guild_id";
/// Label key of the audio operation.
pub const OPERATION: &str = "operation";
/// Label key of the interaction type.
pub const TYPE: &str = "type";
/// Label key of the command name.
pub const COMMAND: &str = "command";
/// Label key of the Lavalink node.
pub const NODE: &str = "node";

/// `kind` of a reconnection that resumed the session.
pub const RESUME: &str = "resume";
/// `kind` of a reconnection that identified a new session.
pub const IDENTIFY: &str = "identify";
/// `code` of a close without a close frame.
pub const NO_CODE: &str = "none";

/// The `status` values of `gateway_shard_status`: `active`, `identifying`, `resuming`,
/// `disconnected`, `fatally_closed`.
pub const SHARD_STATUSES: [&str; 5] = [
    "active",
    "identifying",
    "resuming",
    "disconnected",
    "fatally_closed",
];

/// The index of a shard state in [`SHARD_STATUSES`].
pub(crate) const fn status_index(state: ShardState) -> usize {
    match state {
        ShardState::Active => 0,
        ShardState::Identifying => 1,
        ShardState::Resuming => 2,
        ShardState::Disconnected { .. } => 3,
        ShardState::FatallyClosed => 4,
    }
}

/// The number of [`EventType`] variants: event types index per-shard attribute tables.
pub(crate) const EVENT_KINDS: usize = EventType::WebhooksUpdate as usize + 1;

/// The `event_type` label of an event: Discord's dispatch name (`MESSAGE_CREATE`), or for
/// the events a shard emits outside dispatches, the name of their opcode (`HELLO`,
/// `HEARTBEAT_ACK`, `RECONNECT`, `INVALID_SESSION`, `HEARTBEAT`) or `CLOSE`.
pub const fn event_type_name(kind: EventType) -> &'static str {
    match kind.name() {
        Some(name) => name,
        None => match kind {
            EventType::GatewayHeartbeat => "HEARTBEAT",
            EventType::GatewayHeartbeatAck => "HEARTBEAT_ACK",
            EventType::GatewayHello => "HELLO",
            EventType::GatewayInvalidateSession => "INVALID_SESSION",
            EventType::GatewayReconnect => "RECONNECT",
            _ => "CLOSE",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_events_have_opcode_names_and_dispatches_discord_names() {
        assert_eq!(event_type_name(EventType::MessageCreate), "MESSAGE_CREATE");
        assert_eq!(event_type_name(EventType::MemberAdd), "GUILD_MEMBER_ADD");
        assert_eq!(event_type_name(EventType::Ready), "READY");
        assert_eq!(
            event_type_name(EventType::MessagePollVoteAdd),
            "MESSAGE_POLL_VOTE_ADD"
        );
        assert_eq!(event_type_name(EventType::GatewayHello), "HELLO");
        assert_eq!(event_type_name(EventType::GatewayClose), "CLOSE");
        assert_eq!(
            event_type_name(EventType::GatewayHeartbeatAck),
            "HEARTBEAT_ACK"
        );
    }

    #[test]
    fn every_event_type_fits_the_table() {
        for kind in [
            EventType::AutoModerationActionExecution,
            EventType::WebhooksUpdate,
            EventType::VoiceStateUpdate,
            EventType::GatewayClose,
        ] {
            assert!((kind as usize) < EVENT_KINDS);
        }
    }
}
