//! `discord_guild_count` and `discord_unavailable_guilds`: the guilds a shard serves.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Gauge, Meter};
use twilight_gateway::Event;
use twilight_model::gateway::payload::incoming::GuildCreate;
use twilight_model::id::Id;
use twilight_model::id::marker::GuildMarker;

use crate::metrics::{DISCORD_GUILD_COUNT, DISCORD_UNAVAILABLE_GUILDS};

/// The guilds of one shard.
#[derive(Default)]
pub(super) struct ShardGuilds {
    /// Guild id → unavailable.
    guilds: HashMap<Id<GuildMarker>, bool>,
    /// How many values of `guilds` are `true`.
    unavailable: usize,
}

impl ShardGuilds {
    /// `Some(unavailable)` adds or updates the guild, `None` removes it.
    fn set(&mut self, guild: Id<GuildMarker>, unavailable: Option<bool>) {
        let was_unavailable = match unavailable {
            Some(unavailable) => {
                self.unavailable += usize::from(unavailable);
                self.guilds.insert(guild, unavailable)
            }
            None => self.guilds.remove(&guild),
        };
        self.unavailable -= usize::from(was_unavailable == Some(true));
    }
}

/// The two guild gauges.
pub(super) struct GuildGauges {
    count: Gauge<i64>,
    unavailable: Gauge<i64>,
}

impl GuildGauges {
    pub(super) fn new(meter: &Meter) -> Self {
        Self {
            count: meter
                .i64_gauge(DISCORD_GUILD_COUNT)
                .with_description("Guilds served by a shard, available or not")
                .build(),
            unavailable: meter
                .i64_gauge(DISCORD_UNAVAILABLE_GUILDS)
                .with_description("Guilds of a shard that are unavailable (outages)")
                .build(),
        }
    }

    /// Follows a shard's guilds through READY, GUILD_CREATE, GUILD_DELETE and
    /// UNAVAILABLE_GUILD (other events change nothing); returns the guild the bot left, if
    /// `event` says it left one.
    pub(super) fn observe(
        &self,
        shard: &KeyValue,
        guilds: &Mutex<ShardGuilds>,
        event: &Event,
    ) -> Option<Id<GuildMarker>> {
        let mut left = None;
        let mut state = guilds.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Ready(ready) => {
                // READY lists every guild of the session, so it replaces what came before.
                state.guilds = ready.guilds.iter().map(|g| (g.id, g.unavailable)).collect();
                state.unavailable = state.guilds.values().filter(|u| **u).count();
            }
            Event::GuildCreate(create) => {
                let unavailable = match &**create {
                    GuildCreate::Available(_) => false,
                    GuildCreate::Unavailable(guild) => guild.unavailable,
                };
                state.set(create.id(), Some(unavailable));
            }
            // An unavailable GUILD_DELETE is an outage: the guild stays in the count.
            Event::GuildDelete(delete) if delete.unavailable == Some(true) => {
                state.set(delete.id, Some(true));
            }
            Event::GuildDelete(delete) => {
                state.set(delete.id, None);
                left = Some(delete.id);
            }
            Event::UnavailableGuild(guild) => state.set(guild.id, Some(true)),
            _ => return None,
        }
        // Recorded under the lock, so two racing observers agree on the final value.
        let shard = std::slice::from_ref(shard);
        let total = i64::try_from(state.guilds.len()).unwrap_or(i64::MAX);
        let unavailable = i64::try_from(state.unavailable).unwrap_or(i64::MAX);
        self.count.record(total, shard);
        self.unavailable.record(unavailable, shard);
        left
    }
}
