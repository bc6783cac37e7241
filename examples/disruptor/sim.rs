//! The embedded default: a fake Discord on loopback (botscope-testkit's REST fake and two
//! gateway shards) with a steady stream of traffic, and Lavalink v4 payloads for the voice
//! jobs. Nothing here is instrumentation: it only gives the real bot something to do.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use botscope_testkit::gateway::{FakeGateway, FakeGuild, message_json};
use botscope_testkit::interaction::FakeInteraction;
use botscope_testkit::rest::{EdgeKind, FakeDiscord, RateLimitKind, Reply};
use twilight_lavalink::model::IncomingEvent;

/// Guilds per shard at start-up; one of them stays in an outage.
const GUILDS_PER_SHARD: u64 = 6;
/// How long the fake serves an interaction's follow-ups (Discord: 15 minutes), short so the
/// demo shows expired ones.
pub(crate) const FOLLOWUP_TTL: Duration = Duration::from_secs(2);
/// The voice channel the bot "joins" in every guild.
pub(crate) const VOICE_CHANNEL: u64 = 700_000_000_000_000_001;
const TEXT_CHANNEL: u64 = 710_000_000_000_000_001;

/// A fake Discord and the guilds it knows.
pub(crate) struct Sim {
    pub(crate) rest: FakeDiscord,
    pub(crate) gateway: FakeGateway,
    shards: Range<u32>,
    total: u32,
    next_guild: AtomicU64,
    next_message: AtomicU64,
}

impl Sim {
    /// Starts the fakes with the guilds of `shards` (of `total`).
    pub(crate) async fn start(shards: Range<u32>, total: u32) -> std::io::Result<Self> {
        let rest = FakeDiscord::spawn().await?;
        rest.set_followup_ttl(FOLLOWUP_TTL);
        let gateway = FakeGateway::builder()
            .heartbeat_interval(Duration::from_secs(2))
            .spawn()
            .await?;
        let sim = Self {
            rest,
            gateway,
            shards,
            total,
            next_guild: AtomicU64::new(1),
            next_message: AtomicU64::new(1),
        };
        for shard in sim.shards.clone() {
            // the last guild of each shard stays in an outage
            let guilds = (0..GUILDS_PER_SHARD).map(|k| {
                let id = sim.new_guild_id(shard);
                if k + 1 == GUILDS_PER_SHARD {
                    FakeGuild::unavailable(id)
                } else {
                    FakeGuild::available(id)
                }
            });
            sim.gateway.set_guilds(shard, guilds.collect::<Vec<_>>());
        }
        Ok(sim)
    }

    /// The `n`th guild id, on `shard`: Discord's formula `(id >> 22) % total` gives the shard.
    fn guild_id(&self, n: u64, shard: u32) -> u64 {
        let timestamp = (300_000_000_000 + n) * u64::from(self.total) + u64::from(shard);
        (timestamp << 22) | n
    }

    /// A guild id not used before, on `shard`.
    fn new_guild_id(&self, shard: u32) -> u64 {
        self.guild_id(self.next_guild.fetch_add(1, Ordering::Relaxed), shard)
    }

    /// The shard a guild is on.
    pub(crate) fn shard_of(&self, guild_id: u64) -> u32 {
        ((guild_id >> 22) % u64::from(self.total)) as u32
    }

    /// The bot's own voice state moves into (or out of) `VOICE_CHANNEL` of `guild_id`.
    pub(crate) fn voice_state(&self, guild_id: u64, joined: bool) {
        let channel = joined.then_some(VOICE_CHANNEL);
        self.gateway.voice_state_update(
            self.shard_of(guild_id),
            guild_id,
            self.gateway.bot_user_id(),
            channel,
        );
    }

    /// A message with `content` in guild `guild_id`.
    fn message(&self, shard: u32, guild_id: u64, content: &str) {
        let id = self.next_message.fetch_add(1, Ordering::Relaxed);
        self.replay(shard, guild_id, id, content);
    }

    /// A message with a given id: sending one twice is what a replay after a resume does.
    fn replay(&self, shard: u32, guild_id: u64, id: u64, content: &str) {
        let mut data = message_json(id, TEXT_CHANNEL, content);
        data["guild_id"] = guild_id.to_string().into();
        self.gateway.dispatch(shard, "MESSAGE_CREATE", data);
    }

    /// Drives the traffic until the task is aborted: commands and chatter on every shard,
    /// guild joins and leaves, a resume and a re-identify, bursts of 429s and server errors.
    pub(crate) async fn run_traffic(&self) {
        const COMMANDS: [&str; 5] = ["!ping", "!settings", "hello there", "!settings", "gg"];
        let shards: Vec<u32> = self.shards.clone().collect();
        let mut joined: Vec<u64> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        for n in 0u64.. {
            tick.tick().await;
            let shard = shards[(n as usize) % shards.len()];
            let home = self.home_guild(shard);
            self.message(shard, home, COMMANDS[(n as usize) % COMMANDS.len()]);
            // Slash commands, autocomplete and a button, from users of the home guild.
            let interaction = match n % 16 {
                1 | 5 | 9 | 13 => Some(FakeInteraction::command("ping")),
                3 => Some(FakeInteraction::command("join").option("channel", "general")),
                7 | 15 => Some(FakeInteraction::command("leave")),
                11 => Some(FakeInteraction::autocomplete("join", "channel", "gen")),
                14 => Some(FakeInteraction::button("vote:yes")),
                _ => None,
            };
            if let Some(interaction) = interaction {
                self.gateway
                    .interaction_create(shard, &interaction.guild(home));
            }
            match n % 120 {
                // a burst of ratelimits and failures, as Discord and Cloudflare send them
                8 => {
                    self.rest.push_all([
                        Reply::rate_limited_for(RateLimitKind::User, Duration::from_millis(200)),
                        Reply::rate_limited_for(RateLimitKind::Shared, Duration::from_millis(200)),
                        Reply::rate_limited_for(RateLimitKind::Global, Duration::from_millis(200)),
                        Reply::rate_limited_for(
                            RateLimitKind::Cloudflare,
                            Duration::from_millis(200),
                        ),
                        Reply::Status(502),
                    ]);
                }
                // a replayed message: the command log's unique key rejects it
                12 => self.replay(shard, home, 1, "!ping"),
                // Discord's edge refuses a request (an IP on its way to a ban)
                16 => self.rest.push(Reply::Edge(EdgeKind::InternalNetworkError)),
                // a member request too many: the gateway answers RATE_LIMITED
                24 => self
                    .gateway
                    .rate_limited(shard, 8, 2.5, home, Some("members")),
                // op 7: the shard resumes
                20 if shard == shards[0] => self.gateway.reconnect(shard),
                // a new guild joins, another leaves
                30 | 90 => {
                    let id = self.new_guild_id(shard);
                    self.gateway.guild_create(shard, id, true);
                    joined.push(id);
                }
                60 => {
                    if let Some(id) = joined.pop() {
                        self.gateway.guild_delete(self.shard_of(id), id, false);
                    }
                }
                // the last shard's session is invalidated: it identifies again
                45 => self
                    .gateway
                    .invalid_session(shards[shards.len() - 1], false),
                _ => {}
            }
        }
    }

    /// The first guild of a shard's READY, which never leaves.
    fn home_guild(&self, shard: u32) -> u64 {
        self.guild_id(
            u64::from(shard - self.shards.start) * GUILDS_PER_SHARD + 1,
            shard,
        )
    }
}

/// The track every fake player plays.
const TRACK: &str = r#"{"encoded":"QAAAjQIAJVJpY2sgQXN0bGV5IC0gTmV2ZXIgR29ubmEgR2l2ZSBZb3UgVXAADlJpY2tBc3RsZXlWRVZPAAAAAAADPCAAC2RRdzR3OVdnWGNRAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9ZFF3NHc5V2dYY1EAB3lvdXR1YmUAAAAAAAAAAA==","info":{"identifier":"dQw4w9WgXcQ","isSeekable":true,"author":"RickAstleyVEVO","length":212000,"isStream":false,"position":0,"title":"Never Gonna Give You Up","uri":"https://www.youtube.com/watch?v=dQw4w9WgXcQ","artworkUrl":null,"isrc":null,"sourceName":"youtube"},"pluginInfo":{},"userData":{}}"#;

/// A Lavalink v4 track event (`TrackStartEvent`, `TrackEndEvent`, `TrackExceptionEvent`,
/// `TrackStuckEvent`) for `guild_id`, parsed by twilight-lavalink as it would parse the node's.
pub(crate) fn track_event(kind: &str, guild_id: u64) -> Option<IncomingEvent> {
    let extra = match kind {
        "TrackEndEvent" => r#","reason":"finished""#,
        "TrackExceptionEvent" => {
            r#","exception":{"message":"This video is unavailable","severity":"common","cause":"FriendlyException"}"#
        }
        "TrackStuckEvent" => r#","thresholdMs":10000"#,
        _ => "",
    };
    let json = format!(
        r#"{{"op":"event","type":"{kind}","guildId":"{guild_id}","track":{TRACK}{extra}}}"#
    );
    serde_json::from_str(&json).ok()
}

/// A Lavalink v4 `stats` message.
pub(crate) fn node_stats(players: u64, playing: u64) -> Option<IncomingEvent> {
    let json = format!(
        r#"{{"op":"stats","players":{players},"playingPlayers":{playing},"uptime":60000,"memory":{{"free":1,"used":1,"allocated":1,"reservable":1}},"cpu":{{"cores":2,"systemLoad":0.1,"lavalinkLoad":0.05}},"frameStats":null}}"#
    );
    serde_json::from_str(&json).ok()
}
