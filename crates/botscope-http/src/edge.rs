//! Answers from Discord's edge (Cloudflare and the load balancers in front of the API) rather
//! than from its API, counted apart from ratelimits: an IP on its way to a ban.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `N_discord_api_edge_errors_total` | counter | `kind` (below) |
//!
//! | `kind` | answer |
//! |---|---|
//! | `cloudflare_1015` | Cloudflare's "error code: 1015" page ("You are being rate limited"): the IP is banned for a while |
//! | `ratelimit_no_headers` | any other 429 without a ratelimit header (`scope="cloudflare"` in `N_discord_api_ratelimited_total`, where it stays) |
//! | `internal_network_error` | a 403 with JSON code 40333 "internal network error": Discord's edge refused the request |
//! | `edge_5xx` | a 5xx that is not Discord's JSON error: Cloudflare's own 520–527 and 530, or an HTML or plain-text page |
//!
//! Each answer counts once, under the first kind of the table that fits, so a 1015 page (a
//! 429 without ratelimit headers) reads `cloudflare_1015`, not both. The first three also
//! count in `N_discord_api_invalid_requests`, as Discord counts them (401, 403, and 429 but
//! `shared`); a 5xx does not.
//!
//! # Bodies
//!
//! The kinds that need a body (`cloudflare_1015`, `internal_network_error`, and a 5xx whose
//! type the headers do not give away) are read by [`Forward`](crate::Forward), the proxy's
//! innermost service: for 4xx and 5xx answers only, when the answer states its length, at most
//! [`MAX_ERROR_BODY`] bytes, and is not compressed. It leaves an [`ErrorBody`] in the
//! response's extensions and passes the body on unchanged; bodies are never logged. Without a
//! readable body, a header-less 429 counts `ratelimit_no_headers`, a 5xx counts `edge_5xx`
//! unless its `content-type` is JSON, and a 403 counts no edge kind (it still counts as an
//! invalid request). The metrics layer on a service of your own reads the same marker, or
//! classifies from the headers alone.
//!
//! # Cardinality
//!
//! `kind` has four values.

use std::fmt;

use http::{HeaderMap, StatusCode, header};

use crate::interaction::DiscordErrorCode;
use crate::scope::RateLimitScope;

pub use crate::interaction::MAX_ERROR_BODY;

/// JSON code of Discord's "internal network error" 403, answered by its edge.
pub const INTERNAL_NETWORK_ERROR: u32 = 40_333;

/// Where an error answer came from, when it is Discord's edge rather than its API: the `kind`
/// label of `N_discord_api_edge_errors_total`. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EdgeErrorKind {
    /// Cloudflare's error 1015 page: the IP is being rate limited (banned) by Cloudflare.
    Cloudflare1015,
    /// A 429 without any ratelimit header, other than a 1015 page.
    RatelimitNoHeaders,
    /// A 403 with JSON code 40333, "internal network error".
    InternalNetworkError,
    /// A 5xx that is not Discord's JSON error.
    Edge5xx,
}

impl EdgeErrorKind {
    /// The `kind` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cloudflare1015 => "cloudflare_1015",
            Self::RatelimitNoHeaders => "ratelimit_no_headers",
            Self::InternalNetworkError => "internal_network_error",
            Self::Edge5xx => "edge_5xx",
        }
    }

    /// The kind of an error answer (4xx or 5xx): its status, the [`RateLimitScope`] of a 429,
    /// its headers and what was read of its body, if anything. `None` for Discord's API.
    pub fn classify(
        status: StatusCode,
        scope: Option<RateLimitScope>,
        headers: &HeaderMap,
        body: Option<&ErrorBody>,
    ) -> Option<Self> {
        if matches!(body, Some(ErrorBody::Cloudflare1015)) {
            return Some(Self::Cloudflare1015);
        }
        if status.is_server_error() {
            let cloudflare = matches!(status.as_u16(), 520..=527 | 530);
            let json = match body {
                Some(body) => body.code().is_some(),
                None => is_json(headers),
            };
            return (cloudflare || !json).then_some(Self::Edge5xx);
        }
        match (status, scope, body) {
            (_, Some(RateLimitScope::Cloudflare), _) => Some(Self::RatelimitNoHeaders),
            (StatusCode::FORBIDDEN, _, Some(body))
                if body.code() == Some(INTERNAL_NETWORK_ERROR) =>
            {
                Some(Self::InternalNetworkError)
            }
            _ => None,
        }
    }
}

impl fmt::Display for EdgeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `headers` declare a JSON body.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .get(..16)
                .is_some_and(|kind| kind.eq_ignore_ascii_case("application/json"))
        })
}

/// What the proxy read of the body of a 4xx or 5xx answer, left in the response's extensions
/// for the layers above (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorBody {
    /// Discord's JSON error, with its `code`.
    Discord(DiscordErrorCode),
    /// Cloudflare's error 1015 page.
    Cloudflare1015,
    /// Anything else: an HTML or plain-text page, JSON without a `code`, nothing.
    Other,
}

/// How Cloudflare's 1015 answers read: the short page ("error code: 1015") and the long one
/// ("Error 1015 … You are being rate limited"). Discord's own JSON 429 says "You are being
/// rate limited." too, which is why JSON is tried first.
const CLOUDFLARE_1015: [&[u8]; 3] = [
    b"error code: 1015",
    b"you are being rate limited",
    b"cf-error-code\">1015<",
];

impl ErrorBody {
    /// Reads a body: Discord's JSON error first, then Cloudflare's 1015 markers.
    pub fn parse(body: &[u8]) -> Self {
        if let Some(code) = DiscordErrorCode::parse(body) {
            return Self::Discord(code);
        }
        if CLOUDFLARE_1015.iter().any(|marker| contains(body, marker)) {
            return Self::Cloudflare1015;
        }
        Self::Other
    }

    /// Discord's JSON error code, if the body is Discord's error.
    pub const fn code(&self) -> Option<u32> {
        match self {
            Self::Discord(code) => Some(code.0),
            Self::Cloudflare1015 | Self::Other => None,
        }
    }
}

/// Whether `haystack` contains `needle` (lower case), ASCII case aside. Bodies are at most
/// [`MAX_ERROR_BODY`] bytes, so the naive scan is enough.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(
        status: u16,
        scope: Option<RateLimitScope>,
        content_type: Option<&'static str>,
        body: Option<&[u8]>,
    ) -> Option<EdgeErrorKind> {
        let headers = content_type
            .map(|value| botscope_testkit::headers(&[("content-type", value)]))
            .unwrap_or_default();
        let body = body.map(ErrorBody::parse);
        EdgeErrorKind::classify(
            StatusCode::from_u16(status).unwrap(),
            scope,
            &headers,
            body.as_ref(),
        )
    }

    #[test]
    fn bodies() {
        assert_eq!(
            ErrorBody::parse(br#"{"message": "internal network error", "code": 40333}"#),
            ErrorBody::Discord(DiscordErrorCode(40333))
        );
        assert_eq!(
            ErrorBody::parse(br#"{"message": "You are being rate limited.", "code": 0}"#),
            ErrorBody::Discord(DiscordErrorCode(0))
        );
        assert_eq!(
            ErrorBody::parse(b"error code: 1015"),
            ErrorBody::Cloudflare1015
        );
        assert_eq!(
            ErrorBody::parse(b"<html><title>Error 1015</title><p>You are being Rate Limited</p>"),
            ErrorBody::Cloudflare1015
        );
        assert_eq!(
            ErrorBody::parse(b"<html>502 Bad Gateway</html>"),
            ErrorBody::Other
        );
        assert_eq!(ErrorBody::parse(b""), ErrorBody::Other);
        assert_eq!(ErrorBody::parse(&[0xff; 64]), ErrorBody::Other);
    }

    #[test]
    fn kinds() {
        use EdgeErrorKind::*;
        use RateLimitScope::{Cloudflare, Shared, User};

        let json = Some("application/json");
        let html = Some("text/html; charset=UTF-8");
        let page: &[u8] = b"error code: 1015";
        assert_eq!(
            kind(429, Some(Cloudflare), html, Some(page)),
            Some(Cloudflare1015)
        );
        assert_eq!(
            kind(429, Some(Cloudflare), json, Some(br#"{"code": 0}"#)),
            Some(RatelimitNoHeaders)
        );
        assert_eq!(
            kind(429, Some(Cloudflare), html, None),
            Some(RatelimitNoHeaders)
        );
        assert_eq!(kind(429, Some(User), json, Some(br#"{"code": 0}"#)), None);
        assert_eq!(kind(429, Some(Shared), json, None), None);
        let internal: &[u8] = br#"{"message": "internal network error", "code": 40333}"#;
        assert_eq!(
            kind(403, None, json, Some(internal)),
            Some(InternalNetworkError)
        );
        assert_eq!(
            kind(
                403,
                None,
                json,
                Some(br#"{"message": "Missing Access", "code": 50001}"#)
            ),
            None
        );
        assert_eq!(kind(403, None, json, None), None);
        assert_eq!(kind(404, None, json, Some(internal)), None);
        assert_eq!(
            kind(502, None, html, Some(b"<html>bad gateway</html>")),
            Some(Edge5xx)
        );
        assert_eq!(kind(502, None, html, None), Some(Edge5xx));
        assert_eq!(kind(503, None, None, None), Some(Edge5xx));
        assert_eq!(
            kind(521, None, json, Some(br#"{"code": 0}"#)),
            Some(Edge5xx)
        );
        assert_eq!(kind(500, None, json, Some(br#"{"code": 0}"#)), None);
        assert_eq!(kind(503, None, Some("Application/JSON"), None), None);
        assert_eq!(kind(400, None, html, Some(b"<html></html>")), None);
    }

    #[test]
    fn labels() {
        assert_eq!(EdgeErrorKind::Cloudflare1015.to_string(), "cloudflare_1015");
        assert_eq!(EdgeErrorKind::Edge5xx.as_str(), "edge_5xx");
    }
}
