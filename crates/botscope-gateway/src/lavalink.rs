//! [`LavalinkTap`]: track events and node player gauges from twilight-lavalink's events.
//!
//! ```no_run
//! use botscope_gateway::LavalinkTap;
//! use twilight_lavalink::model::IncomingEvent;
//!
//! # fn events() -> Vec<IncomingEvent> { Vec::new() }
//! let tap = LavalinkTap::builder().node("main").build();
//! for event in events() {
//!     tap.observe(&event);
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use botscope_core::LabelCap;
use botscope_core::label_cap::DEFAULT_CAP;
use opentelemetry::metrics::{Counter, Gauge, Meter};
use opentelemetry::{KeyValue, StringValue};
use twilight_lavalink::model::IncomingEvent;
use twilight_lavalink::model::incoming::EventType;

use crate::metrics::{
    AUDIO_TRACK_EVENTS, EVENT_TYPE, GUILD_ID, LAVALINK_PLAYERS, LAVALINK_PLAYING_PLAYERS, NODE,
};

/// The node label unless [`LavalinkTapBuilder::node`] sets another.
pub const DEFAULT_NODE: &str = "default";

/// Metrics from a Lavalink node's events. See the [module docs](self).
///
/// A tap labels stats with one node name; [`with_node`](Self::with_node) gives a tap for
/// another node sharing the same instruments and caps.
///
/// # Metrics
///
/// | name | type | labels |
/// |---|---|---|
/// | `audio_track_events_total` | counter | `event_type` (`start`, `end`, `exception`, `stuck`), `guild_id` |
/// | `lavalink_players` | gauge | `node` |
/// | `lavalink_playing_players` | gauge | `node` |
///
/// # Cardinality
///
/// `guild_id` passes through a [`LabelCap`] (default [`DEFAULT_CAP`] values, then `other`);
/// `node` takes the names given in code.
#[derive(Clone)]
pub struct LavalinkTap {
    inner: Arc<Inner>,
    node: [KeyValue; 1],
}

struct Inner {
    track_events: Counter<u64>,
    players: Gauge<i64>,
    playing_players: Gauge<i64>,
    guilds: LabelCap,
}

/// Builds a [`LavalinkTap`].
#[derive(Debug, Default)]
#[must_use]
pub struct LavalinkTapBuilder {
    meter: Option<Meter>,
    guild_cap: Option<usize>,
    node: Option<String>,
}

impl LavalinkTapBuilder {
    /// Records into `meter` instead of the global provider's meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The `node` label of stats events (default [`DEFAULT_NODE`]).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// At most `cap` distinct `guild_id` values, then `other` (default [`DEFAULT_CAP`]).
    pub fn guild_label_cap(mut self, cap: usize) -> Self {
        self.guild_cap = Some(cap);
        self
    }

    /// Switches `guild_id` labels off: every guild is counted as `other`.
    pub fn without_guild_labels(self) -> Self {
        self.guild_label_cap(0)
    }

    /// Builds the instruments.
    pub fn build(self) -> LavalinkTap {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        let inner = Inner {
            track_events: meter
                .u64_counter(AUDIO_TRACK_EVENTS)
                .with_description("Lavalink track events")
                .build(),
            players: meter
                .i64_gauge(LAVALINK_PLAYERS)
                .with_description("Players of a Lavalink node, active or not")
                .build(),
            playing_players: meter
                .i64_gauge(LAVALINK_PLAYING_PLAYERS)
                .with_description("Players of a Lavalink node that are playing")
                .build(),
            guilds: LabelCap::new(self.guild_cap.unwrap_or(DEFAULT_CAP)),
        };
        LavalinkTap {
            inner: Arc::new(inner),
            node: [node_label(
                self.node.unwrap_or_else(|| DEFAULT_NODE.to_owned()),
            )],
        }
    }
}

fn node_label(node: String) -> KeyValue {
    KeyValue::new(NODE, StringValue::from(node))
}

impl LavalinkTap {
    /// A tap recording into the global meter provider, node [`DEFAULT_NODE`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose the meter, the node name and the `guild_id` label policy.
    pub fn builder() -> LavalinkTapBuilder {
        LavalinkTapBuilder::default()
    }

    /// A tap for the node `node`, sharing this tap's instruments and `guild_id` cap.
    #[must_use]
    pub fn with_node(&self, node: impl Into<String>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            node: [node_label(node.into())],
        }
    }

    /// Records one event of the node: track events are counted, stats set the node's player
    /// gauges, other events are ignored. Never fails and never panics.
    pub fn observe(&self, event: &IncomingEvent) {
        match event {
            IncomingEvent::Event(event) => {
                let kind = match event.r#type {
                    EventType::TrackStartEvent => "start",
                    EventType::TrackEndEvent => "end",
                    EventType::TrackExceptionEvent => "exception",
                    EventType::TrackStuckEvent => "stuck",
                    _ => return,
                };
                let guild = self.inner.guilds.key_value(GUILD_ID, &event.guild_id);
                self.inner
                    .track_events
                    .add(1, &[KeyValue::new(EVENT_TYPE, kind), guild]);
            }
            IncomingEvent::Stats(stats) => {
                let players = i64::try_from(stats.players).unwrap_or(i64::MAX);
                let playing = i64::try_from(stats.playing_players).unwrap_or(i64::MAX);
                self.inner.players.record(players, &self.node);
                self.inner.playing_players.record(playing, &self.node);
            }
            _ => {}
        }
    }
}

impl Default for LavalinkTap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LavalinkTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LavalinkTap")
            .field("node", &self.node[0].value)
            .field("guild_cap", &self.inner.guilds.cap())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::TestMetrics;

    use super::*;

    static_assertions::assert_impl_all!(LavalinkTap: Clone, Send, Sync);

    const TRACK: &str = r#"{
        "encoded": "QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAADPCAAC2RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lvdXR1YmUAAAAAAAAAAA==",
        "info": {
            "identifier": "dQw4w9WgXcQ",
            "isSeekable": true,
            "author": "RickAstleyVEVO",
            "length": 212000,
            "isStream": false,
            "position": 0,
            "title": "Rick Astley - Never Gonna Give You Up",
            "uri": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "artworkUrl": "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg",
            "isrc": null,
            "sourceName": "youtube"
        },
        "pluginInfo": {},
        "userData": {}
    }"#;

    /// Payloads in the shape Lavalink v4 sends on its websocket.
    fn payloads() -> Vec<IncomingEvent> {
        let events = [
            format!(
                r#"{{"op":"event","type":"TrackStartEvent","guildId":"111","track":{TRACK}}}"#
            ),
            format!(
                r#"{{"op":"event","type":"TrackEndEvent","guildId":"111","track":{TRACK},"reason":"finished"}}"#
            ),
            format!(
                r#"{{"op":"event","type":"TrackStartEvent","guildId":"222","track":{TRACK}}}"#
            ),
            format!(
                r#"{{"op":"event","type":"TrackExceptionEvent","guildId":"222","track":{TRACK},"exception":{{"message":"This video is unavailable","severity":"common","cause":"com.sedmelluq.discord.lavaplayer.tools.FriendlyException: This video is unavailable","causeStackTrace":"com.sedmelluq.discord.lavaplayer.tools.FriendlyException: This video is unavailable\n\tat ..."}}}}"#
            ),
            format!(
                r#"{{"op":"event","type":"TrackStuckEvent","guildId":"222","track":{TRACK},"thresholdMs":10000}}"#
            ),
            r#"{"op":"event","type":"WebSocketClosedEvent","guildId":"222","code":4006,"reason":"Your session is no longer valid.","byRemote":true}"#.to_owned(),
            r#"{"op":"ready","resumed":false,"sessionId":"la3kfsdf5eafe848"}"#.to_owned(),
            r#"{"op":"playerUpdate","guildId":"111","state":{"time":1500467109,"position":60000,"connected":true,"ping":50}}"#.to_owned(),
            r#"{"op":"stats","players":3,"playingPlayers":2,"uptime":123456789,"memory":{"free":123456789,"used":123456789,"allocated":123456789,"reservable":123456789},"cpu":{"cores":4,"systemLoad":0.5,"lavalinkLoad":0.5},"frameStats":{"sent":6000,"nulled":10,"deficit":-3010}}"#.to_owned(),
        ];
        events
            .iter()
            .map(|json| serde_json::from_str(json).expect("a Lavalink v4 payload"))
            .collect()
    }

    #[test]
    fn track_events_and_node_stats_from_lavalink_v4_payloads() {
        let metrics = TestMetrics::new("disruptor");
        let tap = LavalinkTap::builder()
            .meter(metrics.meter())
            .node("main")
            .build();
        for event in payloads() {
            tap.observe(&event);
        }
        let stats: IncomingEvent = serde_json::from_str(
            r#"{"op":"stats","players":1,"playingPlayers":0,"uptime":1,"memory":{"free":1,"used":1,"allocated":1,"reservable":1},"cpu":{"cores":1,"systemLoad":0.1,"lavalinkLoad":0.1},"frameStats":null}"#,
        )
        .expect("stats without frame stats");
        tap.with_node("backup").observe(&stats);

        let scrape = metrics.scrape();
        let events = "disruptor_audio_track_events_total";
        let count =
            |kind, guild| scrape.value(events, &[("event_type", kind), ("guild_id", guild)]);
        assert_eq!(count("start", "111"), Some(1.0));
        assert_eq!(count("end", "111"), Some(1.0));
        assert_eq!(count("start", "222"), Some(1.0));
        assert_eq!(count("exception", "222"), Some(1.0));
        assert_eq!(count("stuck", "222"), Some(1.0));
        assert_eq!(
            scrape.label_values(events, "event_type"),
            ["end", "exception", "start", "stuck"]
        );
        let gauge = |name, node| scrape.value(name, &[("node", node)]);
        assert_eq!(gauge("disruptor_lavalink_players", "main"), Some(3.0));
        assert_eq!(
            gauge("disruptor_lavalink_playing_players", "main"),
            Some(2.0)
        );
        assert_eq!(gauge("disruptor_lavalink_players", "backup"), Some(1.0));
        assert_eq!(
            gauge("disruptor_lavalink_playing_players", "backup"),
            Some(0.0)
        );
    }

    #[test]
    fn guild_labels_are_capped() {
        let metrics = TestMetrics::new("disruptor");
        let tap = LavalinkTap::builder()
            .meter(metrics.meter())
            .guild_label_cap(1)
            .build();
        for event in payloads() {
            tap.observe(&event);
        }
        assert_eq!(
            metrics
                .scrape()
                .label_values("disruptor_audio_track_events_total", "guild_id"),
            ["111", "other"]
        );
    }
}
