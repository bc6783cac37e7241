//! The gateway half of the fake Discord: a loopback websocket server for twilight-gateway.
//!
//! [`FakeGateway`] speaks enough of Discord's gateway protocol (JSON, no compression) for real
//! twilight-gateway shards: HELLO, IDENTIFY → READY (whose `resume_gateway_url` points back at
//! the fake) followed by a GUILD_CREATE per available guild, heartbeats → ACKs, RESUME →
//! RESUMED, and on request dispatches (RATE_LIMITED among them), RECONNECT, INVALID_SESSION
//! and close codes. Commands
//! address a shard by its id and wait in a queue until the shard has a session; a command
//! sent while a connection is closing may go to that connection and be lost, so send them
//! once the shard has reported READY or RESUMED.
//!
//! Point a shard at it with `ConfigBuilder::proxy_url(gateway.url())`. The shard builds a
//! rustls connector even for `ws://`, so install a crypto provider first (rustls `ring`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use botscope_testkit::gateway::{FakeGateway, FakeGuild};
//!
//! let gateway = FakeGateway::builder()
//!     .heartbeat_interval(std::time::Duration::from_millis(200))
//!     .spawn()
//!     .await?;
//! gateway.set_guilds(0, [FakeGuild::available(1), FakeGuild::unavailable(2)]);
//! // ConfigBuilder::new(token, intents).proxy_url(gateway.url()) ...
//! gateway.message_create(0, 10, "hello");
//! let ping = gateway.interaction_create(0, &botscope_testkit::interaction::FakeInteraction::command("ping"));
//! // answer it within 3 s of `ping.id`'s time: POST interactions/{ping.id}/{ping.token}/callback
//! gateway.reconnect(0);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_websockets::{CloseCode, Message, ServerBuilder, WebSocketStream};

use crate::interaction::{FakeInteraction, MintedInteraction};

/// The heartbeat interval announced in HELLO unless the builder sets another (Discord's).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(41_250);

/// The user id of the bot unless the builder sets another.
pub const DEFAULT_BOT_USER_ID: u64 = 900_000_000_000_000_001;

/// A guild of a shard's READY, sent as a GUILD_CREATE after it when available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeGuild {
    /// The guild id.
    pub id: u64,
    /// Whether a GUILD_CREATE follows READY (`false`: the guild stays in an outage).
    pub available: bool,
}

impl FakeGuild {
    /// A guild that becomes available after READY.
    pub const fn available(id: u64) -> Self {
        Self {
            id,
            available: true,
        }
    }

    /// A guild that stays unavailable (an outage).
    pub const fn unavailable(id: u64) -> Self {
        Self {
            id,
            available: false,
        }
    }
}

/// Configures a [`FakeGateway`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeGatewayBuilder {
    heartbeat_interval: Duration,
    bot_user_id: u64,
    accept_resumes: bool,
}

impl FakeGatewayBuilder {
    /// The heartbeat interval announced in HELLO (default 41.25 s, like Discord).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// The id of the bot user in READY (default [`DEFAULT_BOT_USER_ID`]).
    pub fn bot_user_id(mut self, id: u64) -> Self {
        self.bot_user_id = id;
        self
    }

    /// Whether a RESUME gets RESUMED (default) or INVALID_SESSION (not resumable).
    pub fn accept_resumes(mut self, accept: bool) -> Self {
        self.accept_resumes = accept;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    ///
    /// Returns the error of binding the listener.
    pub async fn spawn(self) -> io::Result<FakeGateway> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            url: format!("ws://{addr}"),
            heartbeat_interval: self.heartbeat_interval,
            bot_user_id: self.bot_user_id,
            accept_resumes: self.accept_resumes,
            shards: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            next_message: AtomicU64::new(1_000_000),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeGateway { addr, shared, task })
    }
}

/// A loopback fake of Discord's gateway. See the [module docs](self).
///
/// The server stops when the value is dropped.
#[derive(Debug)]
pub struct FakeGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeGateway {
    /// A builder with Discord's defaults.
    pub fn builder() -> FakeGatewayBuilder {
        FakeGatewayBuilder {
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            bot_user_id: DEFAULT_BOT_USER_ID,
            accept_resumes: true,
        }
    }

    /// Starts a fake with the defaults of [`builder`](Self::builder).
    ///
    /// # Errors
    ///
    /// Returns the error of binding the listener.
    pub async fn spawn() -> io::Result<Self> {
        Self::builder().spawn().await
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to hand to `ConfigBuilder::proxy_url`: `ws://127.0.0.1:P`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The bot's user id, as sent in READY.
    pub fn bot_user_id(&self) -> u64 {
        self.shared.bot_user_id
    }

    /// The guilds of `shard`'s next READY; the available ones follow it as GUILD_CREATE.
    pub fn set_guilds(&self, shard: u32, guilds: impl IntoIterator<Item = FakeGuild>) {
        self.shared.slot(shard).guilds = guilds.into_iter().collect();
    }

    /// Sends any dispatch event: `{"op":0,"t":event_type,"s":…,"d":data}`.
    pub fn dispatch(&self, shard: u32, event_type: &str, data: Value) {
        self.shared.send(
            shard,
            Command::Dispatch {
                event_type: event_type.to_owned(),
                data,
            },
        );
    }

    /// Sends GUILD_CREATE, of a full guild or of an unavailable one.
    pub fn guild_create(&self, shard: u32, guild_id: u64, available: bool) {
        let data = if available {
            guild_json(guild_id)
        } else {
            json!({ "id": guild_id.to_string(), "unavailable": true })
        };
        self.dispatch(shard, "GUILD_CREATE", data);
    }

    /// Sends GUILD_DELETE: `unavailable` marks an outage, else the bot left the guild.
    pub fn guild_delete(&self, shard: u32, guild_id: u64, unavailable: bool) {
        let data = if unavailable {
            json!({ "id": guild_id.to_string(), "unavailable": true })
        } else {
            json!({ "id": guild_id.to_string() })
        };
        self.dispatch(shard, "GUILD_DELETE", data);
    }

    /// Sends VOICE_STATE_UPDATE for `user_id` in `guild_id`; `channel_id` `None` means it left.
    pub fn voice_state_update(
        &self,
        shard: u32,
        guild_id: u64,
        user_id: u64,
        channel_id: Option<u64>,
    ) {
        let data = json!({
            "channel_id": channel_id.map(|id| id.to_string()),
            "deaf": false,
            "guild_id": guild_id.to_string(),
            "mute": false,
            "self_deaf": false,
            "self_mute": false,
            "self_video": false,
            "session_id": "fake-voice-session",
            "suppress": false,
            "user_id": user_id.to_string(),
            "request_to_speak_timestamp": null,
        });
        self.dispatch(shard, "VOICE_STATE_UPDATE", data);
    }

    /// Sends MESSAGE_CREATE in `channel_id`.
    pub fn message_create(&self, shard: u32, channel_id: u64, content: &str) {
        let id = self.shared.next_message.fetch_add(1, Ordering::Relaxed);
        self.dispatch(
            shard,
            "MESSAGE_CREATE",
            message_json(id, channel_id, content),
        );
    }

    /// Sends INTERACTION_CREATE for `interaction`, created now (a fresh snowflake), and
    /// returns its id and token, to answer it through the REST fake.
    pub fn interaction_create(
        &self,
        shard: u32,
        interaction: &FakeInteraction,
    ) -> MintedInteraction {
        let minted = interaction.minted();
        self.dispatch(shard, "INTERACTION_CREATE", minted.json());
        minted
    }

    /// Sends RATE_LIMITED for a command of `opcode` (Discord sends it today only for 8,
    /// Request Guild Members), in Discord's shape: `{"opcode": 8, "retry_after": 5.0,
    /// "meta": {"guild_id": "…", "nonce": "…"}}` ([`rate_limited_json`]).
    ///
    /// twilight-model 0.18 reads `meta` as `{"RequestGuildMembers": {…}}` instead, so a
    /// twilight shard yields Discord's payload as a deserializing error; send
    /// [`rate_limited_json_twilight`] through [`dispatch`](Self::dispatch) for the shape it
    /// parses into `Event::RateLimited`.
    pub fn rate_limited(
        &self,
        shard: u32,
        opcode: u8,
        retry_after: f64,
        guild_id: u64,
        nonce: Option<&str>,
    ) {
        let data = rate_limited_json(opcode, retry_after, guild_id, nonce);
        self.dispatch(shard, "RATE_LIMITED", data);
    }

    /// Sends `count` MESSAGE_CREATE events to `shard`, one every `1 / per_second` seconds.
    ///
    /// The returned handle finishes once all are queued; abort it to stop early.
    pub fn stream_messages(&self, shard: u32, count: usize, per_second: u32) -> JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        let period = Duration::from_secs(1) / per_second.max(1);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            for n in 0..count {
                ticks.tick().await;
                let data = message_json(n as u64 + 1, 10, "streamed");
                shared.send(
                    shard,
                    Command::Dispatch {
                        event_type: "MESSAGE_CREATE".to_owned(),
                        data,
                    },
                );
            }
        })
    }

    /// Sends op 7 RECONNECT: the shard closes (4000) and resumes.
    pub fn reconnect(&self, shard: u32) {
        self.shared.send(shard, Command::Reconnect);
    }

    /// Sends op 9 INVALID_SESSION: resumable or not (then the shard identifies anew).
    pub fn invalid_session(&self, shard: u32, resumable: bool) {
        self.shared.send(shard, Command::InvalidSession(resumable));
    }

    /// Closes the shard's connection with a websocket close `code`.
    pub fn close(&self, shard: u32, code: u16) {
        self.shared.send(shard, Command::Close(code));
    }

    /// How many IDENTIFY payloads `shard` sent.
    pub fn identifies(&self, shard: u32) -> usize {
        self.shared
            .slot(shard)
            .counts
            .identifies
            .load(Ordering::Relaxed)
    }

    /// How many RESUME payloads `shard` sent.
    pub fn resumes(&self, shard: u32) -> usize {
        self.shared
            .slot(shard)
            .counts
            .resumes
            .load(Ordering::Relaxed)
    }

    /// How many heartbeats `shard` sent (each one was acknowledged).
    pub fn heartbeats(&self, shard: u32) -> usize {
        self.shared
            .slot(shard)
            .counts
            .heartbeats
            .load(Ordering::Relaxed)
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a test asks of a shard's connection.
#[derive(Debug)]
enum Command {
    Dispatch { event_type: String, data: Value },
    Reconnect,
    InvalidSession(bool),
    Close(u16),
}

#[derive(Debug, Default)]
struct Counts {
    identifies: AtomicUsize,
    resumes: AtomicUsize,
    heartbeats: AtomicUsize,
}

/// Per shard id: its guilds, its command queue (held by its live connection) and counters.
#[derive(Debug)]
struct Slot {
    guilds: Vec<FakeGuild>,
    tx: mpsc::UnboundedSender<Command>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Command>>>,
    counts: Arc<Counts>,
    sequence: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Shared {
    url: String,
    heartbeat_interval: Duration,
    bot_user_id: u64,
    accept_resumes: bool,
    shards: Mutex<HashMap<u32, Slot>>,
    /// Session id → shard id.
    sessions: Mutex<HashMap<String, u32>>,
    next_session: AtomicU64,
    next_message: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn slot(&self, shard: u32) -> SlotRef<'_> {
        let mut shards = lock(&self.shards);
        shards.entry(shard).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            Slot {
                guilds: Vec::new(),
                tx,
                rx: Arc::new(tokio::sync::Mutex::new(rx)),
                counts: Arc::default(),
                sequence: Arc::new(AtomicU64::new(0)),
            }
        });
        SlotRef { shards, shard }
    }

    fn send(&self, shard: u32, command: Command) {
        // The receiver lives in the slot as long as the fake does.
        let _ = self.slot(shard).tx.send(command);
    }
}

/// A locked slot.
struct SlotRef<'a> {
    shards: MutexGuard<'a, HashMap<u32, Slot>>,
    shard: u32,
}

impl std::ops::Deref for SlotRef<'_> {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        // `Shared::slot` inserted the entry while holding this same guard.
        &self.shards[&self.shard]
    }
}

impl std::ops::DerefMut for SlotRef<'_> {
    fn deref_mut(&mut self) -> &mut Slot {
        self.shards
            .get_mut(&self.shard)
            .unwrap_or_else(|| unreachable!("inserted under the same guard"))
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, Arc::clone(&shared)));
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok((_request, mut ws)) = ServerBuilder::new().accept(stream).await else {
        return;
    };
    let hello = json!({
        "op": 10,
        "d": { "heartbeat_interval": shared.heartbeat_interval.as_millis() as u64 },
    });
    if send_json(&mut ws, &hello).await.is_err() {
        return;
    }

    // Before IDENTIFY or RESUME the connection belongs to no shard.
    let session = loop {
        let Some(Ok(message)) = ws.next().await else {
            return;
        };
        let Some(payload) = parse(&message) else {
            continue;
        };
        match payload["op"].as_u64() {
            Some(1) if send_json(&mut ws, &json!({ "op": 11 })).await.is_err() => return,
            Some(2) => match identify(&mut ws, &shared, &payload["d"]).await {
                Some(session) => break session,
                None => return,
            },
            Some(6) => match resume(&mut ws, &shared, &payload["d"]).await {
                Some(Some(session)) => break session,
                Some(None) => continue,
                None => return,
            },
            _ => {}
        }
    };
    run_session(ws, session).await;
}

/// A shard's connection after IDENTIFY or RESUME: it holds the shard's command queue.
struct Session {
    rx: tokio::sync::OwnedMutexGuard<mpsc::UnboundedReceiver<Command>>,
    counts: Arc<Counts>,
    sequence: Arc<AtomicU64>,
}

impl Session {
    async fn open(shared: &Shared, shard: u32) -> Self {
        let (rx, counts, sequence) = {
            let slot = shared.slot(shard);
            (
                Arc::clone(&slot.rx),
                Arc::clone(&slot.counts),
                Arc::clone(&slot.sequence),
            )
        };
        // Waits until the shard's previous connection has finished.
        let rx = rx.lock_owned().await;
        Self {
            rx,
            counts,
            sequence,
        }
    }

    fn dispatch(&self, event_type: &str, data: Value) -> Value {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        json!({ "op": 0, "t": event_type, "s": sequence, "d": data })
    }
}

async fn identify(ws: &mut Ws, shared: &Shared, data: &Value) -> Option<Session> {
    let shard = data["shard"][0].as_u64().unwrap_or(0) as u32;
    let session = Session::open(shared, shard).await;
    session.counts.identifies.fetch_add(1, Ordering::Relaxed);
    session.sequence.store(0, Ordering::Relaxed);

    let session_id = format!(
        "fake-session-{shard}-{}",
        shared.next_session.fetch_add(1, Ordering::Relaxed)
    );
    lock(&shared.sessions).insert(session_id.clone(), shard);
    let guilds = shared.slot(shard).guilds.clone();
    let ready = json!({
        "v": 10,
        "user": {
            "id": shared.bot_user_id.to_string(),
            "username": "fake-bot",
            "discriminator": "0000",
            "bot": true,
            "mfa_enabled": false,
        },
        "guilds": guilds
            .iter()
            .map(|g| json!({ "id": g.id.to_string(), "unavailable": true }))
            .collect::<Vec<_>>(),
        "session_id": session_id,
        "resume_gateway_url": shared.url,
        "shard": data["shard"].clone(),
        "application": { "id": shared.bot_user_id.to_string(), "flags": 0 },
    });
    send_json(ws, &session.dispatch("READY", ready))
        .await
        .ok()?;
    for guild in guilds.iter().filter(|g| g.available) {
        let create = session.dispatch("GUILD_CREATE", guild_json(guild.id));
        send_json(ws, &create).await.ok()?;
    }
    Some(session)
}

/// `None`: the connection failed; `Some(None)`: the resume was refused.
async fn resume(ws: &mut Ws, shared: &Shared, data: &Value) -> Option<Option<Session>> {
    let known = data["session_id"]
        .as_str()
        .and_then(|id| lock(&shared.sessions).get(id).copied());
    let Some(shard) = known.filter(|_| shared.accept_resumes) else {
        send_json(ws, &json!({ "op": 9, "d": false })).await.ok()?;
        return Some(None);
    };
    let session = Session::open(shared, shard).await;
    session.counts.resumes.fetch_add(1, Ordering::Relaxed);
    let resumed = session.dispatch("RESUMED", json!({}));
    send_json(ws, &resumed).await.ok()?;
    Some(Some(session))
}

async fn run_session(mut ws: Ws, mut session: Session) {
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(message)) = incoming else { return };
                if message.is_close() {
                    // tokio-websockets answers the close frame; drain until the stream ends.
                    while let Some(Ok(_)) = ws.next().await {}
                    return;
                }
                let Some(payload) = parse(&message) else { continue };
                // Only heartbeats need an answer once the session runs.
                if payload["op"].as_u64() == Some(1) {
                    session.counts.heartbeats.fetch_add(1, Ordering::Relaxed);
                    if send_json(&mut ws, &json!({ "op": 11 })).await.is_err() {
                        return;
                    }
                }
            }
            command = session.rx.recv() => {
                let Some(command) = command else { return };
                let sent = match command {
                    Command::Dispatch { event_type, data } => {
                        send_json(&mut ws, &session.dispatch(&event_type, data)).await
                    }
                    Command::Reconnect => send_json(&mut ws, &json!({ "op": 7, "d": null })).await,
                    Command::InvalidSession(resumable) => {
                        send_json(&mut ws, &json!({ "op": 9, "d": resumable })).await
                    }
                    Command::Close(code) => {
                        let code = CloseCode::try_from(code).unwrap_or(CloseCode::NORMAL_CLOSURE);
                        let _ = ws.send(Message::close(Some(code), "")).await;
                        while let Some(Ok(_)) = ws.next().await {}
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

async fn send_json(ws: &mut Ws, value: &Value) -> Result<(), tokio_websockets::Error> {
    ws.send(Message::text(value.to_string())).await
}

fn parse(message: &Message) -> Option<Value> {
    serde_json::from_str(message.as_text()?).ok()
}

/// The smallest available guild twilight-model accepts.
fn guild_json(id: u64) -> Value {
    json!({
        "id": id.to_string(),
        "name": format!("guild {id}"),
        "owner_id": DEFAULT_BOT_USER_ID.to_string(),
        "afk_timeout": 300,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "features": [],
        "mfa_level": 0,
        "nsfw_level": 0,
        "preferred_locale": "en-US",
        "premium_progress_bar_enabled": false,
        "roles": [],
        "system_channel_flags": 0,
        "verification_level": 0,
        "channels": [],
        "members": [],
        "voice_states": [],
    })
}

/// The `d` of a RATE_LIMITED dispatch as Discord sends it (discord-api-docs #7760).
pub fn rate_limited_json(
    opcode: u8,
    retry_after: f64,
    guild_id: u64,
    nonce: Option<&str>,
) -> Value {
    json!({
        "opcode": opcode,
        "retry_after": retry_after,
        "meta": { "guild_id": guild_id.to_string(), "nonce": nonce },
    })
}

/// The `d` of a RATE_LIMITED dispatch in the shape twilight-model 0.18 deserializes, with
/// `meta` tagged by the variant of its `RateLimitMetadata`.
pub fn rate_limited_json_twilight(
    opcode: u8,
    retry_after: f64,
    guild_id: u64,
    nonce: Option<&str>,
) -> Value {
    let mut data = rate_limited_json(opcode, retry_after, guild_id, nonce);
    data["meta"] = json!({ "RequestGuildMembers": data["meta"].take() });
    data
}

/// The JSON of a MESSAGE_CREATE (or a REST message) that twilight-model accepts; add `guild_id`
/// for a guild message.
pub fn message_json(id: u64, channel_id: u64, content: &str) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": {
            "id": "1000",
            "username": "someone",
            "discriminator": "0001",
            "avatar": null,
        },
        "content": content,
        "timestamp": "2024-01-01T00:00:00.000000+00:00",
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0,
    })
}

#[cfg(test)]
mod tests {
    use tokio_websockets::ClientBuilder;

    use super::*;

    type Client = WebSocketStream<tokio_websockets::MaybeTlsStream<TcpStream>>;

    async fn connect(gateway: &FakeGateway) -> Client {
        let uri = format!("{}/?v=10&encoding=json", gateway.url());
        let (client, _) = ClientBuilder::new()
            .uri(&uri)
            .expect("a valid uri")
            .connect()
            .await
            .expect("connect to the fake");
        client
    }

    async fn recv(client: &mut Client) -> Value {
        loop {
            let message = client
                .next()
                .await
                .expect("an open connection")
                .expect("a frame");
            if let Some(value) = parse(&message) {
                return value;
            }
        }
    }

    async fn send(client: &mut Client, value: Value) {
        client
            .send(Message::text(value.to_string()))
            .await
            .expect("send");
    }

    #[tokio::test]
    async fn identify_heartbeat_dispatch_and_resume() {
        let gateway = FakeGateway::builder()
            .heartbeat_interval(Duration::from_millis(500))
            .spawn()
            .await
            .expect("bind");
        gateway.set_guilds(1, [FakeGuild::available(7), FakeGuild::unavailable(8)]);

        let mut client = connect(&gateway).await;
        let hello = recv(&mut client).await;
        assert_eq!(hello["op"], 10);
        assert_eq!(hello["d"]["heartbeat_interval"], 500);

        send(
            &mut client,
            json!({"op": 2, "d": {"token": "t", "shard": [1, 2]}}),
        )
        .await;
        let ready = recv(&mut client).await;
        assert_eq!(
            (ready["t"].as_str(), ready["s"].as_u64()),
            (Some("READY"), Some(1))
        );
        assert_eq!(ready["d"]["resume_gateway_url"], gateway.url());
        assert_eq!(ready["d"]["guilds"].as_array().map(Vec::len), Some(2));
        let create = recv(&mut client).await;
        assert_eq!(create["t"], "GUILD_CREATE");
        assert_eq!(create["d"]["id"], "7");

        send(&mut client, json!({"op": 1, "d": 2})).await;
        assert_eq!(recv(&mut client).await["op"], 11);
        gateway.guild_delete(1, 7, true);
        let delete = recv(&mut client).await;
        assert_eq!(
            (delete["t"].as_str(), delete["s"].as_u64()),
            (Some("GUILD_DELETE"), Some(3))
        );
        assert_eq!(delete["d"]["unavailable"], true);
        assert_eq!((gateway.identifies(1), gateway.heartbeats(1)), (1, 1));

        // A second connection resumes the session and continues its sequence.
        let session_id = ready["d"]["session_id"].clone();
        drop(client);
        let mut client = connect(&gateway).await;
        recv(&mut client).await;
        send(
            &mut client,
            json!({"op": 6, "d": {"token": "t", "session_id": session_id, "seq": 3}}),
        )
        .await;
        let resumed = recv(&mut client).await;
        assert_eq!(
            (resumed["t"].as_str(), resumed["s"].as_u64()),
            (Some("RESUMED"), Some(4))
        );
        gateway.message_create(1, 9, "after the resume");
        let message = recv(&mut client).await;
        assert_eq!(message["s"], 5);
        assert_eq!(message["d"]["content"], "after the resume");
        assert_eq!(gateway.resumes(1), 1);

        // Unknown sessions are refused, as non-resumable.
        let mut other = connect(&gateway).await;
        recv(&mut other).await;
        send(
            &mut other,
            json!({"op": 6, "d": {"token": "t", "session_id": "nope", "seq": 1}}),
        )
        .await;
        assert_eq!(recv(&mut other).await, json!({"op": 9, "d": false}));
    }

    #[tokio::test]
    async fn commands_reach_the_shard_as_opcodes_and_close_frames() {
        let gateway = FakeGateway::spawn().await.expect("bind");
        let mut client = connect(&gateway).await;
        recv(&mut client).await;
        send(
            &mut client,
            json!({"op": 2, "d": {"token": "t", "shard": [0, 1]}}),
        )
        .await;
        assert_eq!(recv(&mut client).await["t"], "READY");

        gateway.rate_limited(0, 8, 5.0, 41, Some("n-1"));
        let limited = recv(&mut client).await;
        assert_eq!(limited["op"], 0);
        assert_eq!(limited["t"], "RATE_LIMITED");
        assert_eq!(
            limited["d"],
            json!({"opcode": 8, "retry_after": 5.0, "meta": {"guild_id": "41", "nonce": "n-1"}})
        );

        gateway.reconnect(0);
        assert_eq!(recv(&mut client).await, json!({"op": 7, "d": null}));
        gateway.invalid_session(0, true);
        assert_eq!(recv(&mut client).await, json!({"op": 9, "d": true}));
        gateway.close(0, 4004);
        let frame = client.next().await.expect("a frame").expect("no error");
        assert_eq!(
            frame.as_close().map(|(code, _)| u16::from(code)),
            Some(4004)
        );
    }
}
