//! The span of one event a shard yielded: the parent of everything its handler does.

use std::time::{Duration, UNIX_EPOCH};

use botscope_core::LabelCap;
use botscope_core::snowflake;
use botscope_core::span::Span;
use twilight_gateway::Event;

use crate::interaction::command_label;
use crate::metrics::event_type_name;

/// How long Discord waits for an interaction's first answer.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(3);

/// `gateway {EVENT_TYPE}`: shard, event type, the session's sequence and the guild; for an
/// interaction its id, its command (through `commands`, as the label) and the unix time in
/// milliseconds its 3-second deadline ends.
pub(super) fn dispatch_span(
    shard: u32,
    sequence: Option<u64>,
    event: &Event,
    commands: &LabelCap,
) -> Span {
    let event_type = event_type_name(event.kind());
    let span = botscope_core::unit_span!(
        target: "botscope_gateway",
        "gateway.dispatch",
        otel.name = %format_args!("gateway {event_type}"),
        otel.kind = "consumer",
        "discord.shard.id" = shard,
        "discord.event.type" = event_type,
        "discord.event.sequence" = sequence,
        "discord.guild.id" = event.guild_id().map(tracing::field::display),
        "discord.interaction.id" = tracing::field::Empty,
        "discord.command.name" = tracing::field::Empty,
        "discord.interaction.deadline" = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Event::InteractionCreate(interaction) = event
    {
        let deadline = snowflake::created_at(interaction.id.get()) + RESPONSE_DEADLINE;
        span.record(
            "discord.interaction.id",
            tracing::field::display(interaction.id),
        );
        span.record(
            "discord.command.name",
            command_label(interaction, commands).as_str(),
        );
        if let Ok(since_epoch) = deadline.duration_since(UNIX_EPOCH) {
            span.record(
                "discord.interaction.deadline",
                u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
            );
        }
    }
    span
}
