//! Route templates: the `endpoint` label of every Discord REST metric.
//!
//! A request path becomes a template from a closed vocabulary (SPEC section 4), so neither an
//! id, nor a token, nor any other segment a request carries can reach a label:
//!
//! - `/api`, `/api/v{N}` and the query string are dropped;
//! - a numeric id becomes a placeholder named by the segment before it
//!   (`/channels/{channel_id}/messages/{message_id}`), `{id}` when that segment names nothing;
//! - the segment after a webhook or interaction id is its token: `{webhook_token}`,
//!   `{interaction_token}`;
//! - the segment after `reactions` is `{emoji}`, after `invites` or `templates` a `{code}`;
//! - a known Discord path word (`messages`, `@me`, `@original`, …) stays as is;
//! - any other segment becomes `{param}`;
//! - a path that is not a Discord API path, or has more than [`MAX_SEGMENTS`] segments,
//!   becomes [`OTHER`].
//!
//! ```
//! use botscope_http::route;
//! use http::Method;
//!
//! assert_eq!(
//!     route::template(&Method::POST, "/api/v10/channels/381870553235193857/messages?x=1"),
//!     "/channels/{channel_id}/messages",
//! );
//! assert_eq!(
//!     route::template(&Method::POST, "/api/v10/webhooks/1/secret-token?wait=true"),
//!     "/webhooks/{webhook_id}/{webhook_token}",
//! );
//! assert_eq!(route::template(&Method::GET, "/favicon.ico"), "other");
//! assert_eq!(route::method_label(&Method::OPTIONS), "_OTHER");
//! ```
//!
//! # Cardinality
//!
//! The vocabulary is closed, so the number of templates is bounded by the shapes of paths up
//! to [`MAX_SEGMENTS`] segments; the metrics layer also passes them through a
//! [`LabelCap`](botscope_core::LabelCap) of [`DEFAULT_ENDPOINT_CAP`] values.

use http::Method;

/// The label of a path that is not a Discord API path.
pub const OTHER: &str = "other";

/// Paths with more segments than this (after `/api/v{N}`) are labelled [`OTHER`].
pub const MAX_SEGMENTS: usize = 12;

/// The default cap on distinct `endpoint` values per metric; see [`template`].
pub const DEFAULT_ENDPOINT_CAP: usize = 500;

/// The placeholder of a segment outside the vocabulary.
pub const PARAM: &str = "{param}";

/// The path words of Discord's REST API, from twilight-http's `routing::Route` (plus a few
/// routes twilight does not wrap yet). Sorted, for binary search.
const WORDS: &[&str] = &[
    "@me",
    "@original",
    "active",
    "activity-instances",
    "answers",
    "application-emojis",
    "applications",
    "archived",
    "audit-logs",
    "auto-moderation",
    "bans",
    "bot",
    "bulk-ban",
    "bulk-delete",
    "callback",
    "channels",
    "commands",
    "connections",
    "consume",
    "crosspost",
    "emojis",
    "entitlements",
    "expire",
    "followers",
    "gateway",
    "github",
    "guilds",
    "incident-actions",
    "integrations",
    "interactions",
    "invites",
    "member",
    "member-counts",
    "members",
    "messages",
    "metadata",
    "mfa",
    "nick",
    "oauth2",
    "onboarding",
    "permissions",
    "pins",
    "polls",
    "preview",
    "private",
    "prune",
    "public",
    "reactions",
    "recipients",
    "regions",
    "role-connections",
    "roles",
    "rules",
    "scheduled-events",
    "search",
    "send-soundboard-sound",
    "skus",
    "slack",
    "soundboard-default-sounds",
    "soundboard-sounds",
    "stage-instances",
    "sticker-packs",
    "stickers",
    "subscriptions",
    "sync",
    "templates",
    "thread-members",
    "threads",
    "typing",
    "users",
    "vanity-url",
    "voice",
    "voice-states",
    "webhooks",
    "welcome-screen",
    "widget",
    "widget.json",
    "widget.png",
];

/// Whether `segment` is one of the Discord path words kept as is in a template.
pub fn is_known_word(segment: &str) -> bool {
    WORDS.binary_search(&segment).is_ok()
}

/// The placeholder of an id following `previous`.
fn id_placeholder(previous: &str) -> &'static str {
    match previous {
        "applications" => "{application_id}",
        "bans" | "members" | "users" | "recipients" | "thread-members" | "voice-states" => {
            "{user_id}"
        }
        "channels" | "stage-instances" => "{channel_id}",
        "commands" => "{command_id}",
        "emojis" | "application-emojis" => "{emoji_id}",
        "entitlements" => "{entitlement_id}",
        "guilds" => "{guild_id}",
        "integrations" => "{integration_id}",
        "interactions" => "{interaction_id}",
        "messages" | "pins" => "{message_id}",
        "answers" => "{answer_id}",
        "permissions" => "{overwrite_id}",
        "polls" => "{message_id}",
        "roles" => "{role_id}",
        "rules" => "{rule_id}",
        "scheduled-events" => "{event_id}",
        "skus" => "{sku_id}",
        "soundboard-sounds" => "{sound_id}",
        "sticker-packs" => "{pack_id}",
        "stickers" => "{sticker_id}",
        "subscriptions" => "{subscription_id}",
        "threads" => "{thread_id}",
        "webhooks" => "{webhook_id}",
        _ => "{id}",
    }
}

/// Whether `segment` looks like a snowflake id.
fn is_id(segment: &str) -> bool {
    !segment.is_empty() && segment.len() <= 20 && segment.bytes().all(|b| b.is_ascii_digit())
}

/// The part of `path` after `/api` or `/api/v{N}`, or `None` if it is not a Discord API path.
fn api_rest(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api")?;
    if rest.is_empty() {
        return Some("");
    }
    let rest = rest.strip_prefix('/')?;
    if let Some(version) = rest.strip_prefix('v') {
        let digits = version.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let after = &version[digits..];
            if after.is_empty() {
                return Some("");
            }
            if let Some(after) = after.strip_prefix('/') {
                return Some(after);
            }
        }
    }
    Some(rest)
}

/// The `endpoint` label of a request: see the [module docs](self).
///
/// `path` may carry a query string, which is ignored. The method does not change the template
/// today; it is taken so routes that differ only by method can be told apart later without an
/// API change.
pub fn template(method: &Method, path: &str) -> String {
    let mut out = String::new();
    template_into(method, path, &mut out);
    out
}

/// [`template`], written into `out` (cleared first), to reuse one buffer.
pub fn template_into(method: &Method, path: &str, out: &mut String) {
    let _ = method;
    out.clear();
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let Some(rest) = api_rest(path) else {
        return out.push_str(OTHER);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return out.push_str(OTHER);
    }

    // The segment before the current one, and the one before that, as template pieces.
    let mut previous: &str = "";
    let mut before_previous: &str = "";
    for (index, segment) in rest.split('/').enumerate() {
        if index >= MAX_SEGMENTS || segment.is_empty() {
            out.clear();
            return out.push_str(OTHER);
        }
        let piece: &str = match previous {
            "reactions" => "{emoji}",
            "invites" | "templates" => "{code}",
            "{webhook_id}" if before_previous == "webhooks" && !is_known_word(segment) => {
                "{webhook_token}"
            }
            "{interaction_id}" if before_previous == "interactions" => "{interaction_token}",
            "{emoji}" if is_id(segment) => "{user_id}",
            _ if is_id(segment) => id_placeholder(previous),
            _ => match WORDS.binary_search(&segment) {
                Ok(found) => WORDS[found],
                Err(_) => PARAM,
            },
        };
        out.push('/');
        out.push_str(piece);
        before_previous = previous;
        previous = piece;
    }
}

/// The `method` label: `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, else `_OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "_OTHER",
    }
}

/// Every piece a template can be made of (path words, placeholders), for tests and docs.
pub fn vocabulary() -> impl Iterator<Item = &'static str> {
    const PLACEHOLDERS: &[&str] = &[
        "{application_id}",
        "{user_id}",
        "{channel_id}",
        "{command_id}",
        "{emoji_id}",
        "{entitlement_id}",
        "{guild_id}",
        "{integration_id}",
        "{interaction_id}",
        "{message_id}",
        "{answer_id}",
        "{overwrite_id}",
        "{role_id}",
        "{rule_id}",
        "{event_id}",
        "{sku_id}",
        "{sound_id}",
        "{pack_id}",
        "{sticker_id}",
        "{subscription_id}",
        "{thread_id}",
        "{webhook_id}",
        "{id}",
        "{emoji}",
        "{code}",
        "{webhook_token}",
        "{interaction_token}",
        PARAM,
    ];
    WORDS.iter().chain(PLACEHOLDERS).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_sorted_for_binary_search() {
        assert!(
            WORDS.windows(2).all(|w| w[0] < w[1]),
            "WORDS must stay sorted"
        );
    }

    #[test]
    fn prefixes_and_odd_shapes() {
        let get = Method::GET;
        assert_eq!(template(&get, "/api/v10/users/@me"), "/users/@me");
        assert_eq!(template(&get, "/api/v9/users/@me/"), "/users/@me");
        assert_eq!(template(&get, "/api/users/@me"), "/users/@me");
        assert_eq!(template(&get, "/api/v10"), OTHER);
        assert_eq!(template(&get, "/api/v10/"), OTHER);
        assert_eq!(template(&get, "/api/v10//users"), OTHER);
        assert_eq!(template(&get, "/apix/v10/users"), OTHER);
        assert_eq!(template(&get, "/users/@me"), OTHER);
        assert_eq!(template(&get, "/api/vx/users"), "/{param}/users");
        assert_eq!(
            template(&get, "/api/v10/a/b/c/d/e/f/g/h/i/j/k/l"),
            "/{param}".repeat(12)
        );
        assert_eq!(template(&get, "/api/v10/a/b/c/d/e/f/g/h/i/j/k/l/m"), OTHER);
    }

    #[test]
    fn methods() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::HEAD), "_OTHER");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap()),
            "_OTHER"
        );
    }
}
