//! What the bot's users feel of its interactions, measured in the proxy with no code of the
//! bot's: how long the first response took, and whether Discord still took it.
//!
//! Discord gives a bot 3 seconds ([`RESPONSE_DEADLINE`]) from the creation of an interaction
//! to send its initial response (`POST /interactions/{id}/{token}/callback`); after that the
//! token is dead, the callback fails with 404 and JSON code 10062 "Unknown interaction", and
//! the user reads "The application did not respond". The interaction's id is a snowflake,
//! whose top bits are the moment Discord created it, so the proxy reads the latency from the
//! path alone.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `N_interaction_response_seconds` | histogram | — : creation (the snowflake) to the moment the proxy forwards the callback |
//! | `N_interaction_responses_total` | counter | `outcome`: `ok`, `late`, `unknown_interaction`, `error` |
//! | `N_interaction_followups_total` | counter | `outcome`: `ok`, `expired`, `error` |
//! | `N_clock_skew_total` | counter | — : callbacks whose interaction seems created after this host's now |
//!
//! The histogram has no `type` label: the callback's path does not say whether it answers a
//! command, a component or a modal, and reading its body on every callback to find out would
//! cost more than the label is worth. The gateway tap's `N_interactions_total{type}` has it.
//!
//! A callback's outcome is `late` when it was forwarded more than 3 s after the interaction
//! was created, whatever Discord answered; else `unknown_interaction` for a 404 with code
//! 10062 (or a 404 whose body could not be read: on this route the interaction is the only
//! thing that can be unknown); else `ok` for a 2xx, and `error` for anything else — another
//! status, a transport failure, a timeout, a request the bot gave up on.
//!
//! A follow-up (`/webhooks/{application_id}/{interaction_token}…`) counts `expired` when
//! Discord answers 401, or 404 with code 50027 "Invalid Webhook Token": the 15 minutes the
//! token serves follow-ups are over. `ok` for a 2xx, `error` otherwise.
//!
//! The error code is read by the proxy from the body of 4xx and 5xx answers (an
//! [`ErrorBody`](crate::ErrorBody) in the response's extensions, see [`edge`](crate::edge)),
//! when the answer states its length (at most [`MAX_ERROR_BODY`] bytes) and is not
//! compressed; the body is passed on unchanged and never logged.
//!
//! # Clock skew
//!
//! The latency compares Discord's clock (the snowflake) with this host's wall clock. A
//! callback whose interaction seems to come from the future is recorded at 0 s and counted in
//! `N_clock_skew_total`: a rising count means this host's clock runs behind, and every latency
//! reads short by as much. Keep the host on NTP.

use std::time::Duration;

use http::StatusCode;

/// How long after its creation Discord accepts an interaction's initial response.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(3);

/// How long an interaction lives: its token serves follow-ups for 15 minutes. A callback for
/// an interaction older than that cannot be real (a forged or replayed id, or a host clock far
/// ahead of Discord's); its age is not a latency.
pub const INTERACTION_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// `reason` of `N_clock_skew_total`: the interaction seems created after this host's now
/// (this host's clock runs behind Discord's).
pub const SKEW_AHEAD: &str = "ahead";

/// `reason` of `N_clock_skew_total`: the interaction seems older than it can live
/// ([`INTERACTION_LIFETIME`]).
pub const SKEW_EXPIRED: &str = "expired";

/// JSON code of a callback for an interaction Discord no longer knows (too late, or answered
/// twice).
pub const UNKNOWN_INTERACTION: u32 = 10062;

/// JSON code of a follow-up whose interaction token expired.
pub const INVALID_WEBHOOK_TOKEN: u32 = 50027;

/// The most bytes of an error body (4xx or 5xx) the proxy reads.
pub const MAX_ERROR_BODY: u64 = 4_096;

/// Discord's JSON error `code`, read by the proxy from a 4xx or 5xx answer (in an
/// [`ErrorBody::Discord`](crate::ErrorBody::Discord) in the response's extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscordErrorCode(pub u32);

impl DiscordErrorCode {
    /// The `code` of a Discord error body, if it is JSON with one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let code = value.get("code")?.as_u64()?;
        u32::try_from(code).ok().map(Self)
    }
}

/// The `outcome` of an interaction callback; see the [module docs](self).
pub(crate) fn callback_outcome(
    late: bool,
    answer: Option<(StatusCode, Option<u32>)>,
) -> &'static str {
    match answer {
        _ if late => "late",
        Some((StatusCode::NOT_FOUND, None | Some(UNKNOWN_INTERACTION))) => "unknown_interaction",
        Some((status, _)) if status.is_success() => "ok",
        _ => "error",
    }
}

/// The `outcome` of an interaction follow-up; see the [module docs](self).
pub(crate) fn followup_outcome(answer: Option<(StatusCode, Option<u32>)>) -> &'static str {
    match answer {
        Some((StatusCode::UNAUTHORIZED, _))
        | Some((StatusCode::NOT_FOUND, Some(INVALID_WEBHOOK_TOKEN))) => "expired",
        Some((status, _)) if status.is_success() => "ok",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_discords_json_only() {
        assert_eq!(
            DiscordErrorCode::parse(br#"{"message": "Unknown interaction", "code": 10062}"#),
            Some(DiscordErrorCode(UNKNOWN_INTERACTION))
        );
        assert_eq!(
            DiscordErrorCode::parse(b"<html>error code: 1015</html>"),
            None
        );
        assert_eq!(DiscordErrorCode::parse(br#"{"code": -1}"#), None);
        assert_eq!(DiscordErrorCode::parse(br#"{"code": 99999999999}"#), None);
    }

    #[test]
    fn outcomes() {
        let ok = Some((StatusCode::NO_CONTENT, None));
        let unknown = Some((StatusCode::NOT_FOUND, Some(UNKNOWN_INTERACTION)));
        assert_eq!(callback_outcome(false, ok), "ok");
        assert_eq!(callback_outcome(true, ok), "late");
        assert_eq!(callback_outcome(true, unknown), "late");
        assert_eq!(callback_outcome(false, unknown), "unknown_interaction");
        assert_eq!(
            callback_outcome(false, Some((StatusCode::NOT_FOUND, None))),
            "unknown_interaction"
        );
        assert_eq!(
            callback_outcome(false, Some((StatusCode::BAD_REQUEST, Some(50035)))),
            "error"
        );
        assert_eq!(callback_outcome(false, None), "error");
        assert_eq!(followup_outcome(Some((StatusCode::OK, None))), "ok");
        assert_eq!(
            followup_outcome(Some((
                StatusCode::UNAUTHORIZED,
                Some(INVALID_WEBHOOK_TOKEN)
            ))),
            "expired"
        );
        assert_eq!(
            followup_outcome(Some((StatusCode::NOT_FOUND, Some(INVALID_WEBHOOK_TOKEN)))),
            "expired"
        );
        assert_eq!(
            followup_outcome(Some((StatusCode::NOT_FOUND, Some(10015)))),
            "error"
        );
        assert_eq!(followup_outcome(None), "error");
    }
}
