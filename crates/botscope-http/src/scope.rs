//! [`RateLimitScope`]: whose limit a 429 says ran out, read from its headers.

use std::fmt;

use http::HeaderMap;
use twilight_http_ratelimiting::RateLimitHeaders;

/// Discord's flag of a 429 of the global limit (twilight names no constant for it).
const GLOBAL_HEADER: &str = "x-ratelimit-global";

/// The scope of a 429: whose limit ran out. Its [`as_str`](Self::as_str) is the `scope`
/// label of `N_discord_api_ratelimited_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateLimitScope {
    /// A per-route bucket of the bot (`x-ratelimit-scope: user`, or bucket headers).
    User,
    /// The bot's global limit (`x-ratelimit-scope: global` or `x-ratelimit-global`).
    Global,
    /// A limit of the resource, shared with everyone (`x-ratelimit-scope: shared`); it does
    /// not count as an invalid request.
    Shared,
    /// A 429 without any ratelimit header: Cloudflare banned the IP.
    Cloudflare,
}

impl RateLimitScope {
    /// The scope of a 429 from its headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        if let Some(scope) = Self::declared(headers) {
            return scope;
        }
        if headers.contains_key(RateLimitHeaders::SCOPE) {
            // A scope Discord has not documented yet: treat it as a route's own limit.
            Self::User
        } else if headers.contains_key(GLOBAL_HEADER) {
            Self::Global
        } else if headers.contains_key(RateLimitHeaders::BUCKET)
            || headers.contains_key(RateLimitHeaders::LIMIT)
        {
            Self::User
        } else {
            Self::Cloudflare
        }
    }

    /// The scope `x-ratelimit-scope` names, read exactly as twilight-http reads it.
    pub(crate) fn declared(headers: &HeaderMap) -> Option<Self> {
        match headers.get(RateLimitHeaders::SCOPE)?.as_bytes() {
            b"user" => Some(Self::User),
            b"global" => Some(Self::Global),
            b"shared" => Some(Self::Shared),
            _ => None,
        }
    }

    /// The `scope` label: `user`, `global`, `shared` or `cloudflare`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Global => "global",
            Self::Shared => "shared",
            Self::Cloudflare => "cloudflare",
        }
    }

    /// Whether Discord counts a 429 of this scope as an invalid request (10,000 in 10
    /// minutes ban the IP): every scope but `shared`.
    pub const fn counts_as_invalid(self) -> bool {
        !matches!(self, Self::Shared)
    }
}

impl fmt::Display for RateLimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::headers;

    use super::*;

    #[test]
    fn scopes_of_429s() {
        let scope = |pairs| RateLimitScope::from_headers(&headers(pairs));
        assert_eq!(
            scope(&[("x-ratelimit-scope", "user")]),
            RateLimitScope::User
        );
        assert_eq!(
            scope(&[("x-ratelimit-scope", "shared")]),
            RateLimitScope::Shared
        );
        assert_eq!(
            scope(&[("x-ratelimit-scope", "global")]),
            RateLimitScope::Global
        );
        assert_eq!(scope(&[("x-ratelimit-scope", "new")]), RateLimitScope::User);
        assert_eq!(
            scope(&[("x-ratelimit-global", "true")]),
            RateLimitScope::Global
        );
        assert_eq!(
            scope(&[("x-ratelimit-bucket", "abc")]),
            RateLimitScope::User
        );
        assert_eq!(scope(&[("retry-after", "5")]), RateLimitScope::Cloudflare);
        let labels: Vec<_> = [
            RateLimitScope::User,
            RateLimitScope::Global,
            RateLimitScope::Shared,
            RateLimitScope::Cloudflare,
        ]
        .iter()
        .map(|scope| (scope.to_string(), scope.counts_as_invalid()))
        .collect();
        assert_eq!(
            labels,
            [
                ("user".to_owned(), true),
                ("global".to_owned(), true),
                ("shared".to_owned(), false),
                ("cloudflare".to_owned(), true)
            ]
        );
    }
}
