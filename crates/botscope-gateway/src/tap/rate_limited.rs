//! A twilight workaround: Discord's own RATE_LIMITED arrives as a deserializing error.
//!
//! twilight-model 0.18 (the event came with twilight-rs/twilight#2483) reads `meta` as
//! externally tagged, `{"RequestGuildMembers": {"guild_id": …}}`, while Discord sends
//! `{"guild_id": …, "nonce": …}` (discord/discord-api-docs#7760). So a RATE_LIMITED that
//! Discord really sends reaches the bot as `ReceiveMessageErrorType::Deserializing`,
//! carrying the payload's text, and the tap reads its opcode from that text. Once twilight
//! reads Discord's shape, the error no longer happens and this path stays unused.

use twilight_gateway::error::{ReceiveMessageError, ReceiveMessageErrorType};
use twilight_model::gateway::event::{EventType, GatewayEventDeserializer};

/// The opcode of a RATE_LIMITED dispatch that twilight could not deserialize: `Some(None)`
/// when the opcode is unreadable, `None` when `error` is not about a RATE_LIMITED.
pub(super) fn undeserialized_rate_limited(error: &ReceiveMessageError) -> Option<Option<u64>> {
    let ReceiveMessageErrorType::Deserializing { event } = error.kind() else {
        return None;
    };
    let payload = GatewayEventDeserializer::from_json(event)?;
    if payload.op() != 0 || payload.event_type() != EventType::RateLimited.name() {
        return None;
    }
    let value = serde_json::from_str::<serde_json::Value>(event).ok();
    Some(value.and_then(|value| value["d"]["opcode"].as_u64()))
}
