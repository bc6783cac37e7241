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

/// Gauge of the gateway commands a shard may send now, by `shard` (twilight's
/// `CommandRatelimiter::available`).
pub const GATEWAY_COMMANDS_AVAILABLE: &str = "gateway_commands_available";
/// Gauge of the gateway commands a shard may send per 60 s, heartbeats reserved, by `shard`
/// (twilight's `CommandRatelimiter::max`).
pub const GATEWAY_COMMANDS_MAX: &str = "gateway_commands_max";
/// Counter of RATE_LIMITED gateway events by `shard` and `opcode`.
pub const GATEWAY_RATELIMITED: &str = "gateway_ratelimited";
/// Histogram of the time a shard waited in the identify queue, in seconds, by `shard`.
pub const GATEWAY_IDENTIFY_WAIT: &str = "gateway_identify_wait";
/// Gauge of the shards waiting in the identify queue now.
pub const GATEWAY_IDENTIFY_QUEUE_DEPTH: &str = "gateway_identify_queue_depth";
/// Histogram of receive time minus snowflake time of MESSAGE_CREATE and INTERACTION_CREATE,
/// in seconds, by `shard`.
pub const GATEWAY_DISPATCH_LAG: &str = "gateway_dispatch_lag";
/// Gauge of a twilight-cache-inmemory cache's entries, by `resource`.
pub const CACHE_ENTRIES: &str = "cache_entries";

/// Bucket bounds of the identify wait, in seconds: the default buckets, then on to two
/// minutes, since a shard waits 5 s per identify ahead of it in its bucket.
pub const IDENTIFY_WAIT_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0,
];
/// Bucket bounds of the dispatch lag, in seconds: the default buckets.
pub const DISPATCH_LAG_BUCKETS: [f64; 11] = botscope_core::buckets::DEFAULT_BUCKETS;

/// The tap reads a shard's command ratelimiter on its first event of each type, on every
/// event of the gateway's own (HELLO, HEARTBEAT_ACK, CLOSE…), on READY and RESUMED, and
/// on every this-many-th event of each dispatch type after that.
pub const COMMANDS_REFRESH_EVERY: u64 = 64;

/// The tap samples the dispatch lag on a shard's first MESSAGE_CREATE (and
/// INTERACTION_CREATE) and on every this-many-th after that: a wall-clock read and a
/// histogram sample on every event would cost more than the tap's budget (see
/// [`GatewayTap::observe`](crate::GatewayTap::observe)).
pub const DISPATCH_LAG_SAMPLE_EVERY: u64 = 8;

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
/// Label key of the gateway opcode a RATE_LIMITED event is about.
pub const OPCODE: &str = "opcode";
/// Label key of a cache resource.
pub const RESOURCE: &str = "resource";

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

/// The `opcode` label of a gateway opcode: its number (`"8"`) for the opcodes Discord
/// defines (0 to 11), else `other`.
pub const fn opcode_label(opcode: u64) -> &'static str {
    const NAMES: [&str; 12] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"];
    // 5 is unassigned.
    if opcode < NAMES.len() as u64 && opcode != 5 {
        NAMES[opcode as usize]
    } else {
        "other"
    }
}

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

/// The number of [`EventType`] variants this crate was written against: the size of the
/// tap's per-shard table of event counts, indexed by discriminant. A variant a later
/// twilight-model adds past it is counted all the same, under its name, on a slower path.
pub(crate) const EVENT_KINDS: usize = EventType::WebhooksUpdate as usize + 1;

/// `event_type` of a gateway event twilight-model names neither by a dispatch name nor by
/// one of the opcodes this crate knows: one a later twilight-model adds.
pub const OTHER_EVENT: &str = "other";

/// The `event_type` label of an event: Discord's dispatch name (`MESSAGE_CREATE`), or for
/// the events a shard emits outside dispatches, the name of their opcode (`HELLO`,
/// `HEARTBEAT_ACK`, `RECONNECT`, `INVALID_SESSION`, `HEARTBEAT`) or `CLOSE`; [`OTHER_EVENT`]
/// for a non-dispatch event a later twilight-model adds.
pub const fn event_type_name(kind: EventType) -> &'static str {
    match kind.name() {
        Some(name) => name,
        None => match kind {
            EventType::GatewayClose => "CLOSE",
            EventType::GatewayHeartbeat => "HEARTBEAT",
            EventType::GatewayHeartbeatAck => "HEARTBEAT_ACK",
            EventType::GatewayHello => "HELLO",
            EventType::GatewayInvalidateSession => "INVALID_SESSION",
            EventType::GatewayReconnect => "RECONNECT",
            _ => OTHER_EVENT,
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
    fn opcodes_are_numbers_and_unknown_ones_other() {
        assert_eq!(opcode_label(8), "8");
        assert_eq!(opcode_label(0), "0");
        assert_eq!(opcode_label(11), "11");
        assert_eq!(opcode_label(5), "other");
        assert_eq!(opcode_label(12), "other");
        assert_eq!(opcode_label(u64::MAX), "other");
    }

    #[test]
    fn identify_buckets_reach_past_the_alert_threshold() {
        assert!(IDENTIFY_WAIT_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(IDENTIFY_WAIT_BUCKETS.contains(&30.0));
        assert!(IDENTIFY_WAIT_BUCKETS.ends_with(&[120.0]));
    }
}
