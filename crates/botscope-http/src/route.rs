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
//! # One parse per request
//!
//! [`Routes`] is the one parser behind every layer: it reads the `/api/v{N}` prefix once and
//! yields a [`Route`] with the capped `endpoint` label, the `method` label, the endpoint
//! twilight's ratelimiter queues the request under (tokens replaced by a keyed hash) and the
//! [`RouteKind`]. The first layer to see a request leaves the `Route` in the request's
//! extensions and the others reuse it, so one request gets exactly one cap decision.
//!
//! ```
//! use botscope_http::route::{RouteKind, Routes};
//! use http::Method;
//!
//! let routes = Routes::new(500);
//! let route = routes.parse(&Method::POST, "/api/v10/interactions/1/secret-token/callback");
//! assert_eq!(route.version(), Some(10));
//! assert_eq!(
//!     route.endpoint().as_str(),
//!     "/interactions/{interaction_id}/{interaction_token}/callback",
//! );
//! assert_eq!(route.kind(), RouteKind::InteractionCallback);
//! assert!(route.kind().is_exempt_from_global());
//! let limiter = route.limiter_endpoint().unwrap();
//! assert!(limiter.path.starts_with("interactions/1/t") && !limiter.path.contains("secret"));
//! ```
//!
//! # Cardinality
//!
//! The vocabulary is closed, so the number of templates is bounded by the shapes of paths up
//! to [`MAX_SEGMENTS`] segments; [`Routes`] also passes them through a
//! [`LabelCap`] of [`DEFAULT_ENDPOINT_CAP`] values by default.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt::{self, Write as _};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use botscope_core::LabelCap;
use http::Method;
use opentelemetry::StringValue;
use twilight_http_ratelimiting::{Endpoint, Method as LimiterMethod};

/// The label of a path that is not a Discord API path.
pub const OTHER: &str = "other";

/// Paths with more segments than this (after `/api/v{N}`) are labelled [`OTHER`].
pub const MAX_SEGMENTS: usize = 12;

/// The default cap on distinct `endpoint` values of a [`Routes`].
pub const DEFAULT_ENDPOINT_CAP: usize = 500;

/// The placeholder of a segment outside the vocabulary.
pub const PARAM: &str = "{param}";

/// The path words of Discord's REST API: every literal segment of Discord's official OpenAPI
/// description (`tests/data/discord-rest-routes.json`, checked by `tests/official_routes.rs`)
/// and of twilight-http's `routing::Route`. Sorted (byte order), for binary search.
const WORDS: &[&str] = &[
    "@me",
    "@original",
    "active",
    "activity-instances",
    "answers",
    "application-emojis",
    "applications",
    "archived",
    "attachment",
    "audit-logs",
    "auto-moderation",
    "bans",
    "bot",
    "bulk",
    "bulk-ban",
    "bulk-delete",
    "callback",
    "channel-linking",
    "channels",
    "commands",
    "connections",
    "consume",
    "counts",
    "crosspost",
    "dms",
    "emojis",
    "entitlements",
    "exceptions",
    "expire",
    "followers",
    "gateway",
    "github",
    "guilds",
    "incident-actions",
    "integrations",
    "interactions",
    "invites",
    "job-status",
    "keys",
    "lobbies",
    "member",
    "member-counts",
    "members",
    "messages",
    "metadata",
    "mfa",
    "moderation-metadata",
    "new-member-welcome",
    "nick",
    "oauth2",
    "onboarding",
    "partner-sdk",
    "permissions",
    "pins",
    "polls",
    "preview",
    "private",
    "provisional-accounts",
    "prune",
    "public",
    "reactions",
    "recipients",
    "regions",
    "requests",
    "role-connection",
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
    "target-users",
    "templates",
    "thread-members",
    "threads",
    "token",
    "typing",
    "unmerge",
    "userinfo",
    "users",
    "vanity-url",
    "voice",
    "voice-states",
    "voice-status",
    "webhooks",
    "welcome-screen",
    "widget",
    "widget.json",
    "widget.png",
];

/// Whether `segment` is one of the Discord path words kept as is in a template.
pub fn is_known_word(segment: &str) -> bool {
    WORD_LOOKUP.contains_key(segment)
}

/// A path word of [`WORDS`], and the placeholder of an id that follows it.
#[derive(Clone, Copy)]
struct Word {
    word: &'static str,
    id: &'static str,
}

/// [`WORDS`] hashed once: a segment is looked up with one hash and one compare, where a binary
/// search cost seven string compares (the most of a request's parse, measured with `perf` on
/// the `metrics_layer` bench).
static WORD_LOOKUP: LazyLock<HashMap<&'static str, Word, foldhash::fast::FixedState>> =
    LazyLock::new(|| {
        WORDS
            .iter()
            .map(|&word| {
                let id = id_placeholder(word);
                (word, Word { word, id })
            })
            .collect()
    });

/// The placeholder of an id, by the path word before it: the one table of id placeholders
/// (an id after any other segment is [`ID`]). Sorted by word (byte order), for binary search.
const ID_PLACEHOLDERS: &[(&str, &str)] = &[
    ("answers", "{answer_id}"),
    ("application-emojis", "{emoji_id}"),
    ("applications", "{application_id}"),
    ("bans", USER_ID),
    ("channels", "{channel_id}"),
    ("commands", "{command_id}"),
    ("dms", USER_ID),
    ("emojis", "{emoji_id}"),
    ("entitlements", "{entitlement_id}"),
    ("exceptions", EXCEPTION_ID),
    ("guilds", "{guild_id}"),
    ("integrations", "{integration_id}"),
    ("interactions", INTERACTION_ID),
    ("lobbies", "{lobby_id}"),
    ("members", USER_ID),
    ("messages", "{message_id}"),
    ("permissions", "{overwrite_id}"),
    ("pins", "{message_id}"),
    ("polls", "{message_id}"),
    ("recipients", USER_ID),
    ("requests", "{request_id}"),
    ("roles", "{role_id}"),
    ("rules", "{rule_id}"),
    ("scheduled-events", EVENT_ID),
    ("skus", "{sku_id}"),
    ("soundboard-sounds", "{sound_id}"),
    ("stage-instances", "{channel_id}"),
    ("sticker-packs", "{pack_id}"),
    ("stickers", "{sticker_id}"),
    ("subscriptions", "{subscription_id}"),
    ("thread-members", USER_ID),
    ("threads", "{thread_id}"),
    ("users", USER_ID),
    ("voice-states", USER_ID),
    ("webhooks", WEBHOOK_ID),
];

// The placeholders the walk names itself, besides the table's.
const USER_ID: &str = "{user_id}";
const EXCEPTION_ID: &str = "{exception_id}";
const INTERACTION_ID: &str = "{interaction_id}";
const EVENT_ID: &str = "{event_id}";
const WEBHOOK_ID: &str = "{webhook_id}";
/// An id after a segment that names nothing.
const ID: &str = "{id}";
/// The second user of a DM (`/partner-sdk/dms/{user_id}/{other_user_id}`).
const OTHER_USER_ID: &str = "{other_user_id}";
const EMOJI: &str = "{emoji}";
const CODE: &str = "{code}";
const WEBHOOK_TOKEN: &str = "{webhook_token}";
const INTERACTION_TOKEN: &str = "{interaction_token}";

/// Every placeholder that is not in [`ID_PLACEHOLDERS`].
const OTHER_PLACEHOLDERS: [&str; 7] = [
    ID,
    OTHER_USER_ID,
    EMOJI,
    CODE,
    WEBHOOK_TOKEN,
    INTERACTION_TOKEN,
    PARAM,
];

/// The placeholder of an id following `previous`.
fn id_placeholder(previous: &str) -> &'static str {
    ID_PLACEHOLDERS
        .binary_search_by(|(word, _)| (*word).cmp(previous))
        .map_or(ID, |found| ID_PLACEHOLDERS[found].1)
}

/// Whether `segment` looks like a snowflake id.
fn is_id(segment: &str) -> bool {
    !segment.is_empty() && segment.len() <= 20 && segment.bytes().all(|b| b.is_ascii_digit())
}

/// A path split after `/api` or `/api/v{N}`.
struct ApiPath<'a> {
    /// `N` of a `/api/v{N}/…` path.
    version: Option<u32>,
    /// What follows the prefix, without its leading `/`.
    rest: &'a str,
}

/// The one place the `/api/v{N}` prefix is read: `None` if `path` (without its query) is not
/// a Discord API path.
fn split_api(path: &str) -> Option<ApiPath<'_>> {
    let rest = path.strip_prefix("/api")?;
    if rest.is_empty() {
        return Some(ApiPath {
            version: None,
            rest,
        });
    }
    let rest = rest.strip_prefix('/')?;
    if let Some(version) = rest.strip_prefix('v') {
        let digits = version.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let (number, after) = version.split_at(digits);
            if after.is_empty() {
                return Some(ApiPath {
                    version: None,
                    rest: after,
                });
            }
            if let Some(after) = after.strip_prefix('/') {
                return Some(ApiPath {
                    // Only digits: a parse can fail by overflow alone.
                    version: Some(number.parse().unwrap_or(u32::MAX)),
                    rest: after,
                });
            }
        }
    }
    Some(ApiPath {
        version: None,
        rest,
    })
}

/// What a path segment is, looked up once per segment.
#[derive(Clone, Copy)]
enum Segment {
    /// A numeric id.
    Id,
    /// A Discord path word.
    Word(Word),
    /// Anything else: a token, an emoji, a code, something unknown, or nothing.
    Other,
}

impl Segment {
    fn of(segment: &str) -> Self {
        if is_id(segment) {
            return Self::Id;
        }
        match WORD_LOOKUP.get(segment) {
            Some(word) => Self::Word(*word),
            None => Self::Other,
        }
    }
}

/// The limiter's path being written, and the key of the hash that stands in for tokens.
///
/// The limiter logs endpoint paths (at info level when a bucket runs out), and a token in a
/// log line is a credential in a log file. Redacting by what a segment is, rather than by
/// where a token should be, also covers paths of shapes nobody expected. The hash keeps
/// segments apart, so buckets stay exactly as twilight-http's.
struct LimiterPath<'a> {
    path: &'a mut String,
    tokens: &'a RandomState,
}

impl LimiterPath<'_> {
    fn push(&mut self, index: usize, segment: &str, kind: Segment) {
        if index > 0 {
            self.path.push('/');
        }
        match kind {
            Segment::Other if !segment.is_empty() => {
                let _ = write!(self.path, "t{:016x}", self.tokens.hash_one(segment));
            }
            _ => self.path.push_str(segment),
        }
    }
}

/// Walks `rest` (a path after its `/api/v{N}/` prefix) once, segment by segment: its
/// template into `template` and, when asked, the limiter's path (see
/// [`Route::limiter_endpoint`]).
fn walk(rest: &str, template: &mut String, mut limiter: Option<LimiterPath<'_>>) {
    template.clear();
    let trimmed = rest.strip_suffix('/');
    let segments = trimmed.unwrap_or(rest);
    let mut templated = !segments.is_empty();

    // The segment before the current one, and the one before that, as template pieces, and
    // the placeholder of an id after the previous one.
    let mut previous: &str = "";
    let mut before_previous: &str = "";
    let mut previous_id = ID;
    for (index, segment) in Segments::of(segments).enumerate() {
        let kind = Segment::of(segment);
        if let Some(limiter) = &mut limiter {
            limiter.push(index, segment, kind);
        }
        if templated && (index >= MAX_SEGMENTS || segment.is_empty()) {
            templated = false;
        }
        if !templated {
            if limiter.is_none() {
                break;
            }
            continue;
        }
        let piece: &str = match (previous, kind) {
            ("reactions", _) => EMOJI,
            ("invites" | "templates", _) => CODE,
            (WEBHOOK_ID, Segment::Id | Segment::Other) if before_previous == "webhooks" => {
                WEBHOOK_TOKEN
            }
            (INTERACTION_ID, _) if before_previous == "interactions" => INTERACTION_TOKEN,
            (EMOJI, Segment::Id) => USER_ID,
            // `/partner-sdk/dms/{user_id}/{other_user_id}`: a DM names both of its users.
            (USER_ID, Segment::Id) if before_previous == "dms" => OTHER_USER_ID,
            // `/scheduled-events/{event_id}/{exception_id}/users`: one occurrence of a series.
            (EVENT_ID, Segment::Id) if before_previous == "scheduled-events" => EXCEPTION_ID,
            (_, Segment::Id) => previous_id,
            (_, Segment::Word(word)) => word.word,
            (_, Segment::Other) => PARAM,
        };
        template.push('/');
        template.push_str(piece);
        before_previous = previous;
        previous = piece;
        // An id names the word before it; after any other piece it is `{id}`.
        previous_id = match kind {
            // The piece is the word itself (the same `&'static str`), not a placeholder.
            Segment::Word(word) if std::ptr::eq(piece.as_ptr(), word.word.as_ptr()) => word.id,
            _ => ID,
        };
    }
    if let (Some(limiter), Some(_)) = (limiter, trimmed) {
        limiter.path.push('/');
    }
    if !templated {
        template.clear();
        template.push_str(OTHER);
    }
}

/// `path` without its query string.
fn without_query(path: &str) -> &str {
    match path.bytes().position(|b| b == b'?') {
        Some(end) => &path[..end],
        None => path,
    }
}

/// The segments of a path between its `/`s: `str::split('/')` without its searcher, whose
/// set-up costs more than the search on segments this short (measured with callgrind: the
/// metrics layer spent a quarter of its instructions in it).
struct Segments<'a>(Option<&'a str>);

impl<'a> Segments<'a> {
    fn of(path: &'a str) -> Self {
        Self(Some(path))
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        // `/` is ASCII: every index found is a char boundary.
        match rest.bytes().position(|b| b == b'/') {
            Some(end) => {
                self.0 = Some(&rest[end + 1..]);
                Some(&rest[..end])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// The `endpoint` label of a request: see the [module docs](self).
///
/// `path` may carry a query string, which is ignored. The method does not change the template
/// today; it is taken so routes that differ only by method can be told apart later without an
/// API change. This is the template [`Routes::parse`] caps, uncapped.
pub fn template(method: &Method, path: &str) -> String {
    let mut out = String::new();
    template_into(method, path, &mut out);
    out
}

/// [`template`], written into `out` (cleared first), to reuse one buffer.
pub fn template_into(method: &Method, path: &str, out: &mut String) {
    let _ = method;
    match split_api(without_query(path)) {
        Some(api) => walk(api.rest, out, None),
        None => {
            out.clear();
            out.push_str(OTHER);
        }
    }
}

/// `N` of a `/api/v{N}/…` path (a query string is ignored), as [`Route::version`] reads
/// it, without parsing the route: `None` for any other path.
///
/// ```
/// use botscope_http::route;
///
/// assert_eq!(route::api_version("/api/v10/users/@me"), Some(10));
/// assert_eq!(route::api_version("/api/users/@me"), None);
/// assert_eq!(route::api_version("/api/v10"), None);
/// ```
pub fn api_version(path: &str) -> Option<u32> {
    split_api(without_query(path))?.version
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

/// The template of an interaction callback, the one route Discord answers within 3 s.
const INTERACTION_CALLBACK: &str = "/interactions/{interaction_id}/{interaction_token}/callback";

/// The template of the route that answers the session start budget.
const GATEWAY_BOT: &str = "/gateway/bot";

/// How an interaction token begins: the base64 of `interaction:`. Webhook tokens never do.
const INTERACTION_TOKEN_PREFIX: &str = "aW50ZXJhY3Rpb246";

/// What kind of Discord route a request is, for the decisions that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteKind {
    /// Any route under the bot's global limit.
    Standard,
    /// `/webhooks/…` with a webhook's own token, or none: exempt from the global limit.
    Webhook,
    /// `/webhooks/{application_id}/{interaction_token}…`: an interaction's follow-up, which
    /// Discord serves for 15 minutes after the interaction; exempt from the global limit.
    /// Told from a webhook by the token, which for an interaction is the base64 of
    /// `interaction:…`.
    InteractionFollowup,
    /// `/interactions/{interaction_id}/{interaction_token}/callback`: the interaction's
    /// initial response, due within 3 s of the interaction; exempt from the global limit.
    InteractionCallback,
    /// Any other `/interactions/…` route; exempt from the global limit.
    Interaction,
    /// `/gateway/bot`: the gateway's address, recommended shard count and session start
    /// budget ([`session`](crate::session)).
    GatewayBot,
}

impl RouteKind {
    /// Whether Discord exempts the route from the global limit: interaction and webhook
    /// routes, exactly those twilight's limiter exempts (`Endpoint::is_interaction`).
    pub const fn is_exempt_from_global(self) -> bool {
        matches!(
            self,
            Self::Webhook
                | Self::InteractionFollowup
                | Self::InteractionCallback
                | Self::Interaction
        )
    }

    /// The kind of the path `rest` (after its prefix) whose template is `template`, and the
    /// interaction's id for a callback.
    fn of(rest: &str, template: &str) -> (Self, Option<u64>) {
        let mut segments = Segments::of(rest);
        match segments.next() {
            Some("webhooks") => {
                let token = segments.nth(1).unwrap_or_default();
                if token.starts_with(INTERACTION_TOKEN_PREFIX) {
                    (Self::InteractionFollowup, None)
                } else {
                    (Self::Webhook, None)
                }
            }
            Some("interactions") if template == INTERACTION_CALLBACK => (
                Self::InteractionCallback,
                segments.next().and_then(|id| id.parse().ok()),
            ),
            Some("interactions") => (Self::Interaction, None),
            Some("gateway") if template == GATEWAY_BOT => (Self::GatewayBot, None),
            _ => (Self::Standard, None),
        }
    }
}

/// One request's route, parsed once by [`Routes`]: its API version, its capped `endpoint`
/// label, the endpoint twilight's ratelimiter queues it under, and its [`RouteKind`].
///
/// Cloning it is a reference-count increment. The layers find it in the request's
/// extensions (see [`Routes::route`]).
#[derive(Clone, Debug)]
pub struct Route(Arc<Parsed>);

#[derive(Debug)]
struct Parsed {
    version: Option<u32>,
    /// The interaction's snowflake, on an interaction callback.
    interaction_id: Option<u64>,
    endpoint: StringValue,
    method: &'static str,
    limiter: Option<Endpoint>,
    kind: RouteKind,
}

impl Route {
    /// `N` of a `/api/v{N}/…` path; `None` for any other path (no version, or nothing after
    /// it). The proxy forwards only paths with a version.
    pub fn version(&self) -> Option<u32> {
        self.0.version
    }

    /// The `endpoint` label: the [`template`], through the endpoint cap of the [`Routes`]
    /// that parsed it (then `other`).
    pub fn endpoint(&self) -> &StringValue {
        &self.0.endpoint
    }

    /// The `method` label ([`method_label`]).
    pub fn method(&self) -> &'static str {
        self.0.method
    }

    /// The endpoint twilight's ratelimiter queues the request under: the path after the
    /// prefix, every segment that is neither a numeric id nor a Discord path word replaced by
    /// a keyed hash. `None` for methods the limiter does not know and non-API paths.
    pub fn limiter_endpoint(&self) -> Option<&Endpoint> {
        self.0.limiter.as_ref()
    }

    /// What kind of route it is.
    pub fn kind(&self) -> RouteKind {
        self.0.kind
    }

    /// The interaction's id (a snowflake: its creation time is in it), on an
    /// [`InteractionCallback`](RouteKind::InteractionCallback).
    pub fn interaction_id(&self) -> Option<u64> {
        self.0.interaction_id
    }
}

/// The one parser of request paths: the `endpoint` label cap and the key of the hash that
/// stands in for tokens in the limiter's paths.
///
/// Build one and hand clones of it to every layer of one stack
/// ([`DiscordProxy`](crate::DiscordProxy) does): the first to see a request parses it and
/// leaves the [`Route`] in the request's extensions, the others reuse it, so every metric
/// family of one request carries the same `endpoint`. Clones share the cap.
///
/// # Cardinality
///
/// At most `endpoint_cap` distinct `endpoint` values (default [`DEFAULT_ENDPOINT_CAP`]),
/// then `other`.
#[derive(Clone)]
pub struct Routes {
    inner: Arc<Parser>,
}

struct Parser {
    endpoints: LabelCap,
    tokens: RandomState,
    /// Whether the parser was handed to a layer's builder, so that other layers of one stack
    /// may look for its routes in a request's extensions.
    shared: AtomicBool,
}

impl Routes {
    /// A parser admitting at most `endpoint_cap` distinct `endpoint` values.
    pub fn new(endpoint_cap: usize) -> Self {
        Self {
            inner: Arc::new(Parser {
                endpoints: LabelCap::new(endpoint_cap),
                tokens: RandomState::new(),
                shared: AtomicBool::new(false),
            }),
        }
    }

    /// The cap on distinct `endpoint` values.
    pub fn endpoint_cap(&self) -> usize {
        self.inner.endpoints.cap()
    }

    /// The route of a request: `path` may carry a query string, which is ignored.
    pub fn parse(&self, method: &Method, path: &str) -> Route {
        self.parse_path(method, without_query(path), true)
    }

    /// [`parse`](Self::parse) of a path without a query string; without the limiter's
    /// endpoint unless `limiter` (a route only the metrics layer reads needs none).
    fn parse_path(&self, method: &Method, path: &str, limiter: bool) -> Route {
        thread_local! {
            static TEMPLATE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let api = split_api(path);
        let rest = api.as_ref().map_or("", |api| api.rest);
        // The limiter knows five methods, and nothing of a path without a route.
        let limiter_method = match *method {
            _ if rest.is_empty() || !limiter => None,
            Method::GET => Some(LimiterMethod::Get),
            Method::POST => Some(LimiterMethod::Post),
            Method::PUT => Some(LimiterMethod::Put),
            Method::PATCH => Some(LimiterMethod::Patch),
            Method::DELETE => Some(LimiterMethod::Delete),
            _ => None,
        };
        let mut limiter_path = String::new();
        let (endpoint, (kind, interaction_id)) = TEMPLATE.with(|buffer| {
            let mut fresh = String::new();
            // Never re-entered today; a fresh buffer keeps this panic-free if it ever is.
            let mut held = buffer.try_borrow_mut();
            let template = match held.as_deref_mut() {
                Ok(buffer) => buffer,
                Err(_) => &mut fresh,
            };
            if api.is_some() {
                let limiter = limiter_method.map(|_| {
                    limiter_path.reserve(rest.len());
                    LimiterPath {
                        path: &mut limiter_path,
                        tokens: &self.inner.tokens,
                    }
                });
                walk(rest, template, limiter);
            } else {
                template.clear();
                template.push_str(OTHER);
            }
            // `other` is the cap's own overflow value: it takes no slot of the cap.
            let endpoint = if template == OTHER {
                StringValue::from(OTHER)
            } else {
                self.inner.endpoints.admit(template)
            };
            (endpoint, RouteKind::of(rest, template))
        });
        Route(Arc::new(Parsed {
            version: api.and_then(|api| api.version),
            interaction_id,
            endpoint,
            method: method_label(method),
            limiter: limiter_method.map(|method| Endpoint {
                method,
                path: limiter_path,
            }),
            kind,
        }))
    }

    /// Marks the parser as shared by the layers of one stack: [`route_in_stack`](Self::route_in_stack)
    /// then leaves the routes it parses in the requests' extensions. The layers' builders call
    /// it when given a parser.
    pub(crate) fn share(&self) {
        self.inner.shared.store(true, Ordering::Relaxed);
    }

    /// The route of `request` for the metrics layer: the one in its extensions, else parsed
    /// now — and left there only when another layer may look for it (the parser is
    /// [shared](Self::share)); a layer alone saves the extension map's allocations and the
    /// limiter's endpoint, which it never reads.
    pub(crate) fn route_in_stack<B>(&self, request: &mut http::Request<B>) -> Route {
        if self.inner.shared.load(Ordering::Relaxed) {
            return self.route(request);
        }
        match request.extensions().get::<Route>() {
            Some(route) => route.clone(),
            // A URI's path carries no query.
            None => self.parse_path(request.method(), request.uri().path(), false),
        }
    }

    /// The route of `request`: the one in its extensions, else parsed now and left there for
    /// the layers after this one.
    pub fn route<B>(&self, request: &mut http::Request<B>) -> Route {
        if let Some(route) = request.extensions().get::<Route>() {
            return route.clone();
        }
        // A URI's path carries no query.
        let route = self.parse_path(request.method(), request.uri().path(), true);
        request.extensions_mut().insert(route.clone());
        route
    }
}

impl Default for Routes {
    /// A parser with the default cap, [`DEFAULT_ENDPOINT_CAP`].
    fn default() -> Self {
        Self::new(DEFAULT_ENDPOINT_CAP)
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("endpoints", &self.inner.endpoints)
            .finish_non_exhaustive()
    }
}

/// Every piece a template can be made of (path words, placeholders), for tests and docs.
pub fn vocabulary() -> impl Iterator<Item = &'static str> {
    let table = ID_PLACEHOLDERS
        .iter()
        .enumerate()
        .filter(|(index, (_, placeholder))| {
            // Each placeholder once, though several words share it.
            !ID_PLACEHOLDERS[..*index]
                .iter()
                .any(|(_, earlier)| earlier == placeholder)
        })
        .map(|(_, (_, placeholder))| *placeholder);
    WORDS.iter().copied().chain(table).chain(OTHER_PLACEHOLDERS)
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
        assert!(
            ID_PLACEHOLDERS.windows(2).all(|w| w[0].0 < w[1].0),
            "ID_PLACEHOLDERS must stay sorted"
        );
        assert!(ID_PLACEHOLDERS.iter().all(|(word, _)| is_known_word(word)));
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
    fn routes_carry_version_kind_and_one_capped_label() {
        let routes = Routes::new(1);
        let me = routes.parse(&Method::GET, "/api/v10/users/@me?with_counts=true");
        assert_eq!(me.version(), Some(10));
        assert_eq!(me.endpoint().as_str(), "/users/@me");
        assert_eq!(me.method(), "GET");
        assert_eq!(me.kind(), RouteKind::Standard);
        let guilds = routes.parse(&Method::GET, "/api/v10/users/@me/guilds");
        assert_eq!(guilds.endpoint().as_str(), OTHER, "past the cap");
        assert_eq!(routes.parse(&Method::GET, "/api/v10").version(), None);
        assert_eq!(routes.parse(&Method::GET, "/api/users/@me").version(), None);
        assert_eq!(routes.parse(&Method::GET, "/metrics").version(), None);
        let hook = routes.parse(&Method::PATCH, "/api/v9/webhooks/1/tok/messages/2");
        assert_eq!((hook.version(), hook.kind()), (Some(9), RouteKind::Webhook));
        let followup = routes.parse(&Method::POST, "/api/v10/interactions/1/tok");
        assert_eq!(followup.kind(), RouteKind::Interaction);
        let gateway = routes.parse(&Method::GET, "/api/v10/gateway/bot?x=1");
        assert_eq!(gateway.kind(), RouteKind::GatewayBot);
        assert!(!gateway.kind().is_exempt_from_global());
        let plain = routes.parse(&Method::GET, "/api/v10/gateway");
        assert_eq!(plain.kind(), RouteKind::Standard);
    }

    #[test]
    fn the_route_is_parsed_once_and_found_in_the_extensions() {
        let first = Routes::new(10);
        let second = Routes::new(0);
        let mut request = http::Request::get("/api/v10/users/@me").body(()).unwrap();
        let parsed = first.route(&mut request);
        let reused = second.route(&mut request);
        assert!(Arc::ptr_eq(&parsed.0, &reused.0));
        assert_eq!(reused.endpoint().as_str(), "/users/@me");
    }

    #[test]
    fn a_parser_alone_leaves_nothing_in_the_extensions_and_a_shared_one_does() {
        let alone = Routes::new(10);
        let mut request = http::Request::post("/api/v10/channels/1/messages")
            .body(())
            .unwrap();
        let route = alone.route_in_stack(&mut request);
        assert_eq!(route.endpoint().as_str(), "/channels/{channel_id}/messages");
        assert!(
            route.limiter_endpoint().is_none(),
            "only the limiter reads it"
        );
        assert!(request.extensions().get::<Route>().is_none());

        let shared = Routes::new(10);
        shared.share();
        let route = shared.route_in_stack(&mut request);
        let left = request
            .extensions()
            .get::<Route>()
            .expect("left for the next layer")
            .clone();
        assert!(Arc::ptr_eq(&route.0, &left.0));
        assert_eq!(
            left.limiter_endpoint().map(|e| e.path.as_str()),
            Some("channels/1/messages")
        );
        // and found there by a parser that is not shared
        assert!(Arc::ptr_eq(&alone.route_in_stack(&mut request).0, &left.0));
    }

    #[test]
    fn limiter_endpoints_drop_prefix_and_query() {
        let routes = Routes::default();
        let route = routes.parse(&Method::GET, "/api/v10/channels/1/messages?limit=5");
        let endpoint = route.limiter_endpoint().unwrap();
        assert_eq!(endpoint.path, "channels/1/messages");
        assert_eq!(endpoint.method, LimiterMethod::Get);
        let unversioned = routes.parse(&Method::GET, "/api/channels/1");
        assert_eq!(unversioned.limiter_endpoint().unwrap().path, "channels/1");
        assert!(
            routes
                .parse(&Method::HEAD, "/api/v10/x")
                .limiter_endpoint()
                .is_none()
        );
        assert!(
            routes
                .parse(&Method::GET, "/other")
                .limiter_endpoint()
                .is_none()
        );
        assert!(
            routes
                .parse(&Method::GET, "/api/v10")
                .limiter_endpoint()
                .is_none()
        );
    }

    #[test]
    fn interactions_and_webhooks_are_exempt_from_the_global_limit() {
        let routes = Routes::default();
        let exempt =
            |method: Method, path: &str| routes.parse(&method, path).kind().is_exempt_from_global();
        assert!(exempt(Method::POST, "/api/v10/interactions/1/tok/callback"));
        assert!(exempt(Method::POST, "/api/v10/webhooks/1/tok"));
        assert!(exempt(Method::PATCH, "/api/v10/webhooks/1/tok/messages/2"));
        assert!(!exempt(Method::GET, "/api/v10/users/@me"));
        assert!(!exempt(Method::POST, "/api/v10/channels/1/webhooks"));
        // Not a path word, so hashed for the limiter: neither twilight nor we exempt it.
        assert!(!exempt(Method::POST, "/api/v10/Webhooks/1/tok"));
    }

    #[test]
    fn tokens_never_reach_the_limiter_but_stay_apart() {
        let routes = Routes::default();
        let path = |p: &str| {
            let route = routes.parse(&Method::POST, p);
            route.limiter_endpoint().unwrap().path.clone()
        };
        let a = path("/api/v10/webhooks/1/secret-a/messages/@original");
        let b = path("/api/v10/webhooks/1/secret-b/messages/@original");
        assert!(!a.contains("secret") && !b.contains("secret"));
        assert_ne!(a, b);
        assert!(a.starts_with("webhooks/1/t") && a.ends_with("/messages/@original"));
        assert_eq!(a, path("/api/v10/webhooks/1/secret-a/messages/@original"));
        let callback = path("/api/v10/interactions/2/secret-c/callback");
        assert!(callback.starts_with("interactions/2/t") && callback.ends_with("/callback"));
        assert_eq!(path("/api/v10/webhooks/1"), "webhooks/1");
        // Shapes nobody expected are redacted too: only ids and path words stay.
        let odd = path("/api/v10/Webhooks/1/secret-d");
        assert!(odd.starts_with('t') && odd.contains("/1/") && !odd.contains("secret"));
        assert_eq!(
            path("/api/v10/channels/5/messages/6/reactions/%F0%9F%91%8D/@me").len(),
            "channels/5/messages/6/reactions/t0123456789abcdef/@me".len()
        );
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
