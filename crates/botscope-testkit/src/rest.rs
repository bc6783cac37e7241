//! The REST half of the fake Discord: a loopback HTTP server that twilight-http can talk to.
//!
//! [`FakeDiscord`] answers the routes the tests and the demo use with JSON that twilight-model
//! deserializes — `GET users/@me`, `GET users/{id}`, `POST channels/{id}/messages`,
//! `GET channels/{id}/messages[/{id}]`, `GET guilds/{id}`, `GET applications/@me` and
//! `GET oauth2/applications/@me` (the bot's application, [`APPLICATION_ID`], which most bots
//! read at start-up), `PUT applications/{id}/commands` (an empty list), `POST webhooks/{id}/{token}`
//! (a message with `?wait=true`, else 204), `GET`/`PATCH`/`DELETE
//! webhooks/{id}/{token}/messages/{id|@original}`, `POST interactions/{id}/{token}/callback`,
//! `GET gateway` and `GET gateway/bot` (with a [`SessionStartLimit`], set with
//! [`FakeDiscord::set_session_start_limit`]) — and 404 with Discord's error JSON for anything
//! else. Successful answers carry ratelimit
//! headers with `x-ratelimit-scope: user`, as Discord's do.
//!
//! Interactions keep Discord's deadlines, read from the interaction's snowflake alone: a
//! callback within [`RESPONSE_DEADLINE`] of it gets 204, a later one 404 with JSON code 10062
//! "Unknown interaction"; a token whose callback was accepted serves follow-ups
//! (`webhooks/{application_id}/{token}…`) for [`FOLLOWUP_TTL`] (configurable with
//! [`FakeDiscord::set_followup_ttl`]), then answers 401 with code 50027 "Invalid Webhook Token".
//!
//! A script of [`Reply`]s overrides the answers: the next requests get scripted statuses,
//! 5xx, 401, any status with the headers and JSON body of the test's choosing
//! ([`Reply::json`]), the four kinds of 429 with real headers, the answers of Discord's edge
//! ([`EdgeKind`]: Cloudflare's 1015 page, a header-less 429, the 40333 403, an HTML 5xx), or
//! extra latency; [`FakeDiscord::always`] sets one answer for every request. Every request
//! received is logged.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use botscope_testkit::rest::{FakeDiscord, RateLimitKind, Reply};
//!
//! let fake = FakeDiscord::spawn().await?;
//! fake.push(Reply::rate_limited(RateLimitKind::User));
//! // twilight_http::Client::builder().proxy(fake.host(), true) ...
//! assert!(fake.requests().is_empty());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::interaction::{APPLICATION_ID, FOLLOWUP_TTL, RESPONSE_DEADLINE};
use botscope_core::snowflake::created_at;

/// The id of the bot user `users/@me` answers with.
pub const BOT_USER_ID: u64 = 900_000_000_000_000_001;

/// The kind of a scripted 429, each with the headers Discord (or Cloudflare) sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitKind {
    /// A per-route bucket ran out: `x-ratelimit-scope: user`, bucket headers, remaining 0.
    User,
    /// The bot's global limit: `x-ratelimit-global: true`, `x-ratelimit-scope: global`.
    Global,
    /// A shared resource limit: `x-ratelimit-scope: shared`, bucket headers.
    Shared,
    /// A Cloudflare ban: no ratelimit header at all, an HTML body.
    Cloudflare,
}

/// An answer of Discord's edge (Cloudflare) rather than its API, as seen in the wild
/// (discord-api-docs #6473, #5810, #7145).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EdgeKind {
    /// Cloudflare's rate limit ban: 429, `content-type: text/html`, body `error code: 1015`, no
    /// ratelimit header and no `retry-after`.
    Cloudflare1015,
    /// A 429 with Discord's JSON (`code: 0`) but no ratelimit header and no `retry-after`.
    RatelimitNoHeaders,
    /// 403 `{"message": "internal network error", "code": 40333}`.
    InternalNetworkError,
    /// A 5xx HTML page of Cloudflare's (`content-type: text/html`); not a 5xx status counts
    /// as 502.
    Html5xx(u16),
}

/// A scripted answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// The route's normal answer.
    Route,
    /// `status` with Discord's error JSON (401, 403, 404, 5xx…).
    Status(u16),
    /// A 429 of `kind`, asking to retry after `retry_after`.
    RateLimited {
        /// The kind of 429.
        kind: RateLimitKind,
        /// The wait asked for: `retry-after` (whole seconds, rounded up) and
        /// `x-ratelimit-reset-after` (exact).
        retry_after: Duration,
    },
    /// An answer of Discord's edge.
    Edge(EdgeKind),
    /// `status` with `headers` and `body` as given (`content-type: application/json` unless
    /// `headers` sets one): [`Reply::json`], [`Reply::header`].
    Json {
        /// The status.
        status: u16,
        /// Extra headers, in order.
        headers: Vec<(String, String)>,
        /// The body.
        body: Value,
    },
    /// Waits `delay` before answering `then`.
    Delayed {
        /// The extra latency.
        delay: Duration,
        /// The answer after it.
        then: Box<Self>,
    },
}

impl Reply {
    /// A 429 of `kind` asking for a 1 s wait (`retry-after: 1`, the smallest whole second).
    pub fn rate_limited(kind: RateLimitKind) -> Self {
        Self::RateLimited {
            kind,
            retry_after: Duration::from_secs(1),
        }
    }

    /// A 429 of `kind` asking for `retry_after`.
    pub fn rate_limited_for(kind: RateLimitKind, retry_after: Duration) -> Self {
        Self::RateLimited { kind, retry_after }
    }

    /// `status` with `body` as JSON: any answer a test needs, say a 200 of a route the fake
    /// does not know or a 400 with Discord's error JSON.
    pub fn json(status: u16, body: Value) -> Self {
        Self::Json {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds the header `name: value` to a [`Reply::Json`] (to a delayed one, to its answer);
    /// other replies are returned unchanged.
    #[must_use]
    pub fn header(self, name: &str, value: &str) -> Self {
        match self {
            Self::Json {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.to_owned(), value.to_owned()));
                Self::Json {
                    status,
                    headers,
                    body,
                }
            }
            Self::Delayed { delay, then } => Self::Delayed {
                delay,
                then: Box::new(then.header(name, value)),
            },
            other => other,
        }
    }

    /// `self` after `delay`.
    pub fn delayed(self, delay: Duration) -> Self {
        Self::Delayed {
            delay,
            then: Box::new(self),
        }
    }
}

/// The `session_start_limit` of the fake's `GET /gateway/bot` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStartLimit {
    /// Session starts allowed per period.
    pub total: u64,
    /// Session starts left.
    pub remaining: u64,
    /// Time until the budget resets (milliseconds in the JSON).
    pub reset_after: Duration,
    /// Shards that may identify per 5 s.
    pub max_concurrency: u64,
}

impl Default for SessionStartLimit {
    /// Discord's budget of most bots, part spent: 1,000 a day, 997 left, reset in 4 hours,
    /// one identify per 5 s.
    fn default() -> Self {
        Self {
            total: 1_000,
            remaining: 997,
            reset_after: Duration::from_secs(4 * 3_600),
            max_concurrency: 1,
        }
    }
}

/// The gateway address `GET /gateway[/bot]` answers with by default.
pub const GATEWAY_URL: &str = "wss://gateway.discord.gg";

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// The headers as received.
    pub headers: HeaderMap,
    /// The body length in bytes.
    pub body_len: usize,
}

#[derive(Debug)]
struct State {
    script: VecDeque<Reply>,
    always: Option<Reply>,
    latency: Duration,
    log: Vec<ReceivedRequest>,
    response_deadline: Duration,
    followup_ttl: Duration,
    /// The tokens of answered interactions and when their interaction was created; entries
    /// older than the follow-up TTL go when the next callback arrives.
    answered: HashMap<String, SystemTime>,
    gateway: Gateway,
}

/// What `GET /gateway/bot` answers.
#[derive(Debug, Clone)]
struct Gateway {
    url: String,
    shards: u32,
    limit: SessionStartLimit,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            url: GATEWAY_URL.to_owned(),
            shards: 1,
            limit: SessionStartLimit::default(),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            script: VecDeque::new(),
            always: None,
            latency: Duration::ZERO,
            log: Vec::new(),
            response_deadline: RESPONSE_DEADLINE,
            followup_ttl: FOLLOWUP_TTL,
            answered: HashMap::new(),
            gateway: Gateway::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data behind.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake Discord REST API on loopback: see the [module docs](self).
#[derive(Debug)]
pub struct FakeDiscord {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FakeDiscord {
    /// Serves the fake on `127.0.0.1`, on a free port.
    ///
    /// # Errors
    ///
    /// If no loopback port can be bound.
    pub async fn spawn() -> io::Result<Self> {
        Self::spawn_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Serves the fake on `addr`.
    ///
    /// # Errors
    ///
    /// If `addr` cannot be bound.
    pub async fn spawn_on(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (shutdown, signal) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), signal));
        Ok(Self {
            addr,
            shared,
            shutdown,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for twilight-http's `ClientBuilder::proxy(host, true)`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, for a proxy's upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request (after those already scripted) gets `reply`.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().script.push_back(reply);
    }

    /// The next requests get `replies`, in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().script.extend(replies);
    }

    /// Every request not scripted gets `reply`; `None` restores the route's answers.
    pub fn always(&self, reply: Option<Reply>) {
        self.shared.lock().always = reply;
    }

    /// Latency added to every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// How long after an interaction's creation its callback is accepted (default
    /// [`RESPONSE_DEADLINE`], Discord's 3 s).
    pub fn set_response_deadline(&self, deadline: Duration) {
        self.shared.lock().response_deadline = deadline;
    }

    /// How long an answered interaction's token serves follow-ups (default [`FOLLOWUP_TTL`],
    /// Discord's 15 minutes; short in tests).
    pub fn set_followup_ttl(&self, ttl: Duration) {
        self.shared.lock().followup_ttl = ttl;
    }

    /// The `session_start_limit` `GET /gateway/bot` answers with (default
    /// [`SessionStartLimit::default`]).
    pub fn set_session_start_limit(&self, limit: SessionStartLimit) {
        self.shared.lock().gateway.limit = limit;
    }

    /// The `url` and `shards` `GET /gateway/bot` answers with (default [`GATEWAY_URL`] and 1),
    /// for example the address of a fake gateway.
    pub fn set_gateway(&self, url: impl Into<String>, shards: u32) {
        let mut state = self.shared.lock();
        state.gateway.url = url.into();
        state.gateway.shards = shards;
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().log.clone()
    }

    /// The number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.lock().log.len()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Stops serving: the listener closes, open connections are dropped.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut signal: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = signal.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    connections.abort_all();
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body_len = body.collect().await.map_or(0, |b| b.to_bytes().len());
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let (reply, latency, gateway) = {
        let mut state = shared.lock();
        state.log.push(ReceivedRequest {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            headers: parts.headers.clone(),
            body_len,
        });
        let reply = state
            .script
            .pop_front()
            .or_else(|| state.always.clone())
            .unwrap_or(Reply::Route);
        (reply, state.latency, state.gateway.clone())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut reply = reply;
    while let Reply::Delayed { delay, then } = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    match reply {
        Reply::Status(status) => error(status),
        Reply::RateLimited { kind, retry_after } => rate_limited(kind, retry_after),
        Reply::Edge(kind) => edge(kind),
        Reply::Json {
            status,
            headers,
            body,
        } => scripted_json(status, &headers, &body),
        _ => interaction_deadline(shared, &parts.method, &path)
            .unwrap_or_else(|| route(&parts.method, &path, query.as_deref(), &gateway)),
    }
}

/// Discord's answer to a callback after the response deadline, or to a follow-up whose token
/// has expired; `None` when the request is within its deadline (or no interaction's).
fn interaction_deadline(
    shared: &Shared,
    method: &Method,
    path: &str,
) -> Option<Response<Full<Bytes>>> {
    let rest = path.strip_prefix("/api/v")?.split_once('/')?.1;
    let segments: Vec<&str> = rest.split('/').collect();
    let now = SystemTime::now();
    let mut state = shared.lock();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["interactions", id, token, "callback"]) => {
            let created = created_at(id.parse().ok()?);
            let age = now.duration_since(created).unwrap_or_default();
            if age > state.response_deadline {
                return Some(json_response(
                    StatusCode::NOT_FOUND,
                    &json!({ "message": "Unknown interaction", "code": 10062 }),
                ));
            }
            let ttl = state.followup_ttl;
            state
                .answered
                .retain(|_, created| now.duration_since(*created).unwrap_or_default() <= ttl);
            state.answered.insert((*token).to_owned(), created);
            None
        }
        (_, ["webhooks", _, token, ..]) => {
            let created = *state.answered.get(*token)?;
            (now.duration_since(created).unwrap_or_default() > state.followup_ttl).then(|| {
                json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({ "message": "Invalid Webhook Token", "code": 50027 }),
                )
            })
        }
        _ => None,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A [`Reply::Json`]: an unknown status is a 500, a header that cannot be sent is left out.
fn scripted_json(status: u16, headers: &[(String, String)], body: &Value) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, body);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn error(status: u16) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!(
        "{}: {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    json_response(status, &json!({ "message": message, "code": 0 }))
}

/// A body with a `content-type`, no ratelimit header.
fn page(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The HTML of Cloudflare's 5xx pages, shortened.
const CLOUDFLARE_5XX_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>discord.com | 502: Bad gateway</title></head>\n<body><h1>Bad gateway</h1><span class=\"cf-error-code\">502</span>\n<p>The web server reported a bad gateway error.</p>\n<p>Cloudflare Ray ID: 8f2a1b3c4d5e6f70</p></body></html>\n";

fn edge(kind: EdgeKind) -> Response<Full<Bytes>> {
    match kind {
        EdgeKind::Cloudflare1015 => page(
            StatusCode::TOO_MANY_REQUESTS,
            "text/html",
            "error code: 1015",
        ),
        EdgeKind::RatelimitNoHeaders => page(
            StatusCode::TOO_MANY_REQUESTS,
            "application/json",
            r#"{"message": "You are being rate limited.", "retry_after": 1.0, "global": false, "code": 0}"#,
        ),
        EdgeKind::InternalNetworkError => page(
            StatusCode::FORBIDDEN,
            "application/json",
            r#"{"message": "internal network error", "code": 40333}"#,
        ),
        EdgeKind::Html5xx(status) => page(
            StatusCode::from_u16(status)
                .ok()
                .filter(StatusCode::is_server_error)
                .unwrap_or(StatusCode::BAD_GATEWAY),
            "text/html; charset=UTF-8",
            CLOUDFLARE_5XX_PAGE,
        ),
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn epoch_after(after: Duration) -> String {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + after;
    format!("{:.3}", at.as_secs_f64())
}

fn rate_limited(kind: RateLimitKind, retry_after: Duration) -> Response<Full<Bytes>> {
    let secs = retry_after.as_secs_f64();
    let whole = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    if kind == RateLimitKind::Cloudflare {
        let mut response = Response::new(Full::new(Bytes::from_static(
            b"<html><body>error code: 1015</body></html>",
        )));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = response.headers_mut();
        insert(headers, "content-type", "text/html");
        insert(headers, "retry-after", &whole.to_string());
        return response;
    }
    let global = kind == RateLimitKind::Global;
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({ "message": "You are being rate limited.", "retry_after": secs, "global": global, "code": 0 }),
    );
    let headers = response.headers_mut();
    insert(headers, "retry-after", &whole.to_string());
    match kind {
        RateLimitKind::Global => {
            insert(headers, "x-ratelimit-global", "true");
            insert(headers, "x-ratelimit-scope", "global");
        }
        RateLimitKind::User | RateLimitKind::Shared => {
            insert(headers, "x-ratelimit-bucket", "fakebucket429");
            insert(headers, "x-ratelimit-limit", "5");
            insert(headers, "x-ratelimit-remaining", "0");
            insert(headers, "x-ratelimit-reset", &epoch_after(retry_after));
            insert(headers, "x-ratelimit-reset-after", &format!("{secs:.3}"));
            let scope = if kind == RateLimitKind::User {
                "user"
            } else {
                "shared"
            };
            insert(headers, "x-ratelimit-scope", scope);
        }
        RateLimitKind::Cloudflare => {}
    }
    response
}

fn ok_headers(response: &mut Response<Full<Bytes>>, bucket: &str) {
    let headers = response.headers_mut();
    insert(headers, "x-ratelimit-bucket", bucket);
    insert(headers, "x-ratelimit-limit", "50");
    insert(headers, "x-ratelimit-remaining", "49");
    insert(
        headers,
        "x-ratelimit-reset",
        &epoch_after(Duration::from_secs(1)),
    );
    insert(headers, "x-ratelimit-reset-after", "1.000");
    insert(headers, "x-ratelimit-scope", "user");
}

const TIMESTAMP: &str = "2026-01-01T00:00:00.000000+00:00";

fn user(id: &str) -> Value {
    json!({
        "id": id, "username": "fake", "discriminator": "0001", "global_name": null,
        "avatar": null, "bot": true, "mfa_enabled": false, "verified": true, "flags": 0,
        "public_flags": 0
    })
}

fn message(channel_id: &str, id: &str) -> Value {
    json!({
        "id": id, "channel_id": channel_id, "author": user(&BOT_USER_ID.to_string()),
        "content": "hello", "timestamp": TIMESTAMP, "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": [], "pinned": false, "type": 0
    })
}

fn guild(id: &str) -> Value {
    json!({
        "id": id, "name": "fake guild", "icon": null, "owner_id": BOT_USER_ID.to_string(),
        "afk_channel_id": null, "afk_timeout": 300, "default_message_notifications": 0,
        "explicit_content_filter": 0, "features": [], "mfa_level": 0, "nsfw_level": 0,
        "preferred_locale": "en-US", "premium_progress_bar_enabled": false, "roles": [],
        "emojis": [], "stickers": [], "system_channel_flags": 0, "verification_level": 0
    })
}

/// The bot's application, as `applications/@me` answers it.
fn application() -> Value {
    json!({
        "id": APPLICATION_ID.to_string(), "name": "fake bot", "description": "", "icon": null,
        "bot_public": true, "bot_require_code_grant": false, "flags": 0, "team": null,
        "verify_key": "0".repeat(64), "owner": user(&BOT_USER_ID.to_string()),
        "bot": user(&BOT_USER_ID.to_string())
    })
}

/// The id a new message gets: fixed, so answers are reproducible.
const NEW_MESSAGE_ID: &str = "900000000000000100";

fn gateway_bot(gateway: &Gateway) -> Value {
    let limit = &gateway.limit;
    json!({
        "url": gateway.url, "shards": gateway.shards,
        "session_start_limit": {
            "total": limit.total, "remaining": limit.remaining,
            "reset_after": u64::try_from(limit.reset_after.as_millis()).unwrap_or(u64::MAX),
            "max_concurrency": limit.max_concurrency
        }
    })
}

fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
    gateway: &Gateway,
) -> Response<Full<Bytes>> {
    let Some(rest) = path
        .strip_prefix("/api/v")
        .and_then(|v| v.split_once('/'))
        .map(|(_, rest)| rest)
    else {
        return error(404);
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let (status, body, bucket) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["users", "@me"]) => (200, Some(user(&BOT_USER_ID.to_string())), "users"),
        ("GET", ["users", id]) => (200, Some(user(id)), "users"),
        ("POST", ["channels", channel, "messages"]) => {
            (200, Some(message(channel, NEW_MESSAGE_ID)), "messages")
        }
        ("GET", ["channels", channel, "messages"]) => (
            200,
            Some(Value::Array(vec![message(channel, NEW_MESSAGE_ID)])),
            "messages",
        ),
        ("GET", ["channels", channel, "messages", id]) => {
            (200, Some(message(channel, id)), "messages")
        }
        ("GET", ["guilds", id]) => (200, Some(guild(id)), "guilds"),
        ("GET", ["applications", "@me"] | ["oauth2", "applications", "@me"]) => {
            (200, Some(application()), "applications")
        }
        ("GET", ["gateway"]) => (200, Some(json!({ "url": gateway.url })), "gateway"),
        ("GET", ["gateway", "bot"]) => (200, Some(gateway_bot(gateway)), "gateway"),
        ("POST", ["webhooks", _, _]) => {
            let wait = query.is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"));
            if wait {
                (
                    200,
                    Some(message("900000000000000200", NEW_MESSAGE_ID)),
                    "webhooks",
                )
            } else {
                (204, None, "webhooks")
            }
        }
        ("GET" | "PATCH", ["webhooks", _, _, "messages", id]) => (
            200,
            Some(message(
                "900000000000000200",
                if *id == "@original" {
                    NEW_MESSAGE_ID
                } else {
                    id
                },
            )),
            "webhooks",
        ),
        ("DELETE", ["webhooks", _, _, "messages", _]) => (204, None, "webhooks"),
        ("POST", ["interactions", _, _, "callback"]) => (204, None, "interactions"),
        ("PUT", ["applications", _, "commands"]) => {
            (200, Some(Value::Array(Vec::new())), "commands")
        }
        _ => return error(404),
    };
    let mut response = match body {
        Some(body) => json_response(StatusCode::OK, &body),
        None => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            response
        }
    };
    ok_headers(&mut response, bucket);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_404s() {
        let gateway = Gateway::default();
        let route = |method: &Method, path: &str| route(method, path, None, &gateway);
        let ok = route(&Method::GET, "/api/v10/users/@me");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["x-ratelimit-scope"], "user");
        assert_eq!(route(&Method::GET, "/api/v10/nope").status(), 404);
        assert_eq!(route(&Method::GET, "/nope").status(), 404);
        assert_eq!(
            route(&Method::POST, "/api/v10/webhooks/1/tok").status(),
            204
        );
        assert_eq!(route(&Method::GET, "/api/v10/gateway").status(), 200);
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn gateway_bot_answers_its_session_start_limit() {
        let gateway = Gateway {
            shards: 3,
            limit: SessionStartLimit {
                remaining: 10,
                reset_after: Duration::from_millis(1_500),
                ..SessionStartLimit::default()
            },
            ..Gateway::default()
        };
        let answer = route(&Method::GET, "/api/v10/gateway/bot", None, &gateway);
        assert_eq!(answer.status(), 200);
        let value: Value = serde_json::from_str(&body(answer).await).unwrap();
        assert_eq!(value["shards"], 3);
        assert_eq!(value["url"], GATEWAY_URL);
        assert_eq!(
            value["session_start_limit"],
            json!({"total": 1000, "remaining": 10, "reset_after": 1500, "max_concurrency": 1})
        );
    }

    #[tokio::test]
    async fn edge_answers_look_like_cloudflares() {
        let banned = edge(EdgeKind::Cloudflare1015);
        assert_eq!(banned.status(), 429);
        assert_eq!(banned.headers()["content-type"], "text/html");
        assert!(
            banned
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("x-ratelimit"))
        );
        assert!(!banned.headers().contains_key("retry-after"));
        assert_eq!(body(banned).await, "error code: 1015");
        let bare = edge(EdgeKind::RatelimitNoHeaders);
        assert_eq!(bare.status(), 429);
        assert!(
            bare.headers()
                .keys()
                .all(|k| !k.as_str().starts_with("x-ratelimit"))
        );
        let internal = edge(EdgeKind::InternalNetworkError);
        assert_eq!(internal.status(), 403);
        assert!(body(internal).await.contains("40333"));
        let page = edge(EdgeKind::Html5xx(521));
        assert_eq!(page.status(), 521);
        assert!(body(page).await.starts_with("<!DOCTYPE html>"));
        assert_eq!(edge(EdgeKind::Html5xx(404)).status(), 502);
    }

    #[test]
    fn rate_limit_kinds_carry_their_headers() {
        let user = rate_limited(RateLimitKind::User, Duration::from_millis(1500));
        assert_eq!(user.headers()["x-ratelimit-scope"], "user");
        assert_eq!(user.headers()["retry-after"], "2");
        assert_eq!(user.headers()["x-ratelimit-reset-after"], "1.500");
        let global = rate_limited(RateLimitKind::Global, Duration::from_secs(1));
        assert_eq!(global.headers()["x-ratelimit-global"], "true");
        let cloudflare = rate_limited(RateLimitKind::Cloudflare, Duration::from_secs(1));
        assert!(
            cloudflare
                .headers()
                .keys()
                .all(|k| !k.as_str().starts_with("x-ratelimit"))
        );
    }

    async fn get(addr: SocketAddr, target: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn logs_requests_and_follows_the_script() {
        let fake = FakeDiscord::spawn().await.unwrap();
        fake.push(Reply::Status(503));
        assert!(
            get(fake.addr(), "/api/v10/users/@me?x=1")
                .await
                .starts_with("HTTP/1.1 503")
        );
        let ok = get(fake.addr(), "/api/v10/users/@me").await;
        assert!(ok.starts_with("HTTP/1.1 200"));
        assert!(ok.contains("\"mfa_enabled\":false"));
        let log = fake.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].path, "/api/v10/users/@me");
        assert_eq!(log[0].query.as_deref(), Some("x=1"));
        fake.shutdown().await;
    }
}
