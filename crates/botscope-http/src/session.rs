//! The daily budget of gateway session starts, read from `GET /gateway/bot` as it passes the
//! proxy: twilight-gateway's `create_recommended` and most bots call it at start-up, so the
//! gauges fill with no code of the bot's.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `N_gateway_session_starts_remaining` | gauge | — : identifies left until the reset |
//! | `N_gateway_session_starts_total_limit` | gauge | — : identifies allowed per period (1,000 a day for most bots) |
//! | `N_gateway_session_starts_reset_seconds` | gauge | — : time until the budget resets, as of the last answer |
//! | `N_gateway_max_concurrency` | gauge | — : shards that may identify per 5 s |
//!
//! Once the budget is spent, Discord resets the bot's token and every shard stays down until
//! the reset. The gauges hold the last answer; `reset_seconds` is not counted down between
//! answers.
//!
//! [`Forward`](crate::Forward) reads the body of a 2xx answer to `GET /gateway/bot` when it
//! states its length (at most [`MAX_GATEWAY_BOT_BODY`] bytes) and is not compressed (it asks
//! Discord for an uncompressed answer on this route), passes it on unchanged and leaves a
//! [`SessionStartLimit`] in the response's extensions for the metrics layer.

use std::time::Duration;

use serde_json::Value;

/// The most bytes of a `GET /gateway/bot` answer read for its session start limit.
pub const MAX_GATEWAY_BOT_BODY: u64 = 16_384;

/// The `session_start_limit` of a `GET /gateway/bot` answer (twilight-model's
/// `SessionStartLimit`), left in the response's extensions by the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStartLimit {
    /// Session starts allowed per period.
    pub total: u64,
    /// Session starts left.
    pub remaining: u64,
    /// Time until the budget resets.
    pub reset_after: Duration,
    /// Shards that may identify per 5 seconds.
    pub max_concurrency: u64,
}

impl SessionStartLimit {
    /// The limit in a `GET /gateway/bot` body, if it is JSON with a whole one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let limit = value.get("session_start_limit")?;
        let field = |name: &str| limit.get(name).and_then(Value::as_u64);
        Some(Self {
            total: field("total")?,
            remaining: field("remaining")?,
            reset_after: Duration::from_millis(field("reset_after")?),
            max_concurrency: field("max_concurrency")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_discords_answer_and_nothing_else() {
        let body = br#"{"url": "wss://gateway.discord.gg", "shards": 9,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000,
            "max_concurrency": 1}}"#;
        assert_eq!(
            SessionStartLimit::parse(body),
            Some(SessionStartLimit {
                total: 1000,
                remaining: 999,
                reset_after: Duration::from_secs(14_400),
                max_concurrency: 1,
            })
        );
        assert_eq!(SessionStartLimit::parse(br#"{"url": "wss://x"}"#), None);
        assert_eq!(
            SessionStartLimit::parse(
                br#"{"session_start_limit": {"total": 1000, "remaining": -1, "reset_after": 0, "max_concurrency": 1}}"#
            ),
            None
        );
        assert_eq!(SessionStartLimit::parse(b"<html>"), None);
    }
}
