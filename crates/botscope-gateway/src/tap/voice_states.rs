//! `voice_connections_active`: the guilds whose voice channel the bot itself is in, from the
//! bot's own VOICE_STATE_UPDATEs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use botscope_core::{GaugeGuard, LabelCap};
use opentelemetry::metrics::{Meter, UpDownCounter};
use twilight_model::id::Id;
use twilight_model::id::marker::{GuildMarker, UserMarker};
use twilight_model::voice::VoiceState;

use crate::metrics::{GUILD_ID, VOICE_CONNECTIONS_ACTIVE};

/// The bot's voice connections, one gauge guard per guild.
pub(super) struct BotVoice {
    active: UpDownCounter<i64>,
    /// The `guild_id` cap.
    guilds: LabelCap,
    /// The bot's user id from READY, 0 until then.
    bot_user: AtomicU64,
    /// The guilds whose voice channel the bot is in; dropping a guard lowers the gauge.
    connections: Mutex<HashMap<Id<GuildMarker>, GaugeGuard>>,
}

impl BotVoice {
    pub(super) fn new(meter: &Meter, guild_cap: usize) -> Self {
        Self {
            active: meter
                .i64_up_down_counter(VOICE_CONNECTIONS_ACTIVE)
                .with_description("Guilds whose voice channel the bot is connected to")
                .build(),
            guilds: LabelCap::new(guild_cap),
            bot_user: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// Learns the bot's user id (from READY).
    pub(super) fn ready(&self, user: Id<UserMarker>) {
        self.bot_user.store(user.get(), Ordering::Relaxed);
    }

    /// Follows a VOICE_STATE_UPDATE: only the bot's own change the gauge.
    pub(super) fn update(&self, update: &VoiceState) {
        let bot = self.bot_user.load(Ordering::Relaxed);
        if bot == 0 || update.user_id.get() != bot {
            return;
        }
        let Some(guild) = update.guild_id else {
            return;
        };
        let mut connections = self.lock();
        if update.channel_id.is_some() {
            connections.entry(guild).or_insert_with(|| {
                let label = self.guilds.key_value(GUILD_ID, &guild.to_string());
                GaugeGuard::new(&self.active.bind(&[label]))
            });
        } else {
            connections.remove(&guild);
        }
    }

    /// Leaving a guild also ends its voice connection.
    pub(super) fn left(&self, guild: Id<GuildMarker>) {
        self.lock().remove(&guild);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id<GuildMarker>, GaugeGuard>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
