//! The disruptor demo bot: every botscope crate wired the way a bot author would.
//!
//! ```sh
//! cargo run --example disruptor          # embedded fake Discord + SQLite
//! curl -s 127.0.0.1:9464/metrics
//! ```
//!
//! Without `DISCORD_TOKEN` it runs against botscope-testkit's fake Discord on loopback (REST
//! and two gateway shards with a steady stream of events) and an in-memory SQLite database.
//! With `DISCORD_TOKEN` it talks to real Discord, and to PostgreSQL when `DATABASE_URL` says
//! so. Other settings: `BOTSCOPE_LISTEN` (default 127.0.0.1:9464), `BOTSCOPE_NAMING`
//! (`botscope`, the default, or `semconv` for the OpenTelemetry semantic-convention names of
//! the REST and database families), `DISRUPTOR_SHARDS` (the shard ids this process runs,
//! e.g. `0-0`; default all) and `DISRUPTOR_SHARD_TOTAL` (default 2), so several processes
//! can split one bot's shards.
//!
//! Traces: with `OTEL_TRACES_EXPORTER=otlp` the demo exports its spans over OTLP/HTTP to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` when set, else to botscope-testkit's receiver in the same
//! process, and then prints one interaction's trace tree every 10 s. Log lines (stderr,
//! `RUST_LOG`, default `warn,disruptor=info`; `disruptor=debug` adds a line per answer) start
//! with the trace and span id of the span they were written in, when traces are on.

mod db;
mod sim;

use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use botscope::gateway::cache::CacheMetrics;
use botscope::gateway::lavalink::LavalinkTap;
use botscope::gateway::{CommandMetrics, GatewayTap, InstrumentedQueue, VoiceMetrics};
use botscope::http::DiscordProxy;
use botscope::jobs::{Job, SchedulerRegistry, cron};
use botscope::traces::{TraceIds, Traces};
use botscope::{DEFAULT_LISTEN, Naming, Telemetry};
use botscope_testkit::Scrape;
use botscope_testkit::otlp::{Kind, OtlpReceiver};
use db::Db;
use sim::Sim;
use tokio_cron_scheduler::JobScheduler;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use twilight_cache_inmemory::{DefaultInMemoryCache, ResourceType};
use twilight_gateway::queue::InMemoryQueue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};
use twilight_model::application::command::Command;
use twilight_model::application::interaction::{Interaction, InteractionData, InteractionType};
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};
use twilight_model::id::Id;

// jemalloc as the allocator, so `disruptor_system_memory_bytes{type="heap_inuse"}` (feature
// `jemalloc`) describes the heap the bot really uses.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Everything the bot's handlers and jobs share.
struct Bot {
    http: twilight_http::Client,
    db: Db,
    voice: VoiceMetrics,
    commands: CommandMetrics,
    lavalink: LavalinkTap,
    /// What the bot knows of its guilds, channels and members, sized in `N_cache_entries`.
    cache: Arc<DefaultInMemoryCache>,
    /// The embedded fake, when there is no token.
    sim: Option<Arc<Sim>>,
    /// Guilds whose voice channel the bot is in.
    in_voice: Mutex<Vec<u64>>,
}

struct Settings {
    token: Option<String>,
    database_url: Option<String>,
    listen: String,
    naming: Naming,
    shards: Range<u32>,
    total: u32,
    /// `DISRUPTOR_STALL`: how long to block every runtime worker, every 30 s.
    stall: Option<Duration>,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let total = match var("DISRUPTOR_SHARD_TOTAL") {
            Some(total) => total.parse::<u32>().ok().filter(|t| *t > 0).ok_or(format!(
                "DISRUPTOR_SHARD_TOTAL={total:?} is not a positive number"
            ))?,
            None => 2,
        };
        let shards = match var("DISRUPTOR_SHARDS") {
            Some(range) => {
                let parsed = range.split_once('-').and_then(|(a, b)| {
                    Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
                });
                match parsed {
                    Some((first, last)) if first <= last && last < total => first..last + 1,
                    _ => {
                        return Err(format!(
                            "DISRUPTOR_SHARDS={range:?}: expected FIRST-LAST below {total}"
                        ));
                    }
                }
            }
            None => 0..total,
        };
        let naming = match var("BOTSCOPE_NAMING") {
            Some(name) => Naming::parse(&name).ok_or(format!(
                "BOTSCOPE_NAMING={name:?}: expected botscope or semconv"
            ))?,
            None => Naming::Botscope,
        };
        let stall = match var("DISRUPTOR_STALL") {
            Some(seconds) => Some(
                seconds
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| !d.is_zero() && *d < STALL_EVERY)
                    .ok_or(format!(
                        "DISRUPTOR_STALL={seconds:?}: expected seconds above 0 and below 30, such as 1"
                    ))?,
            ),
            None => None,
        };
        Ok(Self {
            stall,
            token: var("DISCORD_TOKEN"),
            database_url: var("DATABASE_URL"),
            listen: var("BOTSCOPE_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            naming,
            shards,
            total,
        })
    }
}

/// How often `DISRUPTOR_STALL` blocks the runtime.
const STALL_EVERY: Duration = Duration::from_secs(30);

/// What a handler that makes a synchronous call does to a bot: every `STALL_EVERY`, blocks
/// each runtime worker for `stall`, so the runtime-lag panel and the `RuntimeStalled` alert
/// have something to show. (One blocked worker of several shows only in the busy-ratio
/// panel: the others keep running the lag probe.)
async fn stall_runtime(stall: Duration) {
    let mut every = tokio::time::interval(STALL_EVERY);
    loop {
        every.tick().await;
        let runtime = tokio::runtime::Handle::current();
        let workers = runtime.metrics().num_workers();
        // Spawned from outside the workers, the blocking tasks wait in the shared queue,
        // where each idle worker takes one.
        let _ = tokio::task::spawn_blocking(move || {
            for _ in 0..workers {
                runtime.spawn(async move { std::thread::sleep(stall) });
            }
        })
        .await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("disruptor: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // twilight's HTTP and gateway clients build rustls configs: they need a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::from_env()?;

    // Traces when OTEL_TRACES_EXPORTER=otlp: to OTEL_EXPORTER_OTLP_ENDPOINT, or to a receiver
    // here whose trees the demo prints.
    let receiver = match traces_to_self() {
        true => Some(OtlpReceiver::start_bounded(RECEIVED_SPANS).await?),
        false => None,
    };
    let mut traces = Traces::from_env();
    if let Some(receiver) = &receiver {
        traces = traces.endpoint(receiver.traces_url());
    }
    let telemetry = Telemetry::builder()
        .namespace("disruptor")
        .service_name("disruptor")
        .listen(settings.listen.as_str())
        // Installed first: the proxy and the pool below take its naming as their default.
        .naming(settings.naming)
        .traces(traces)
        .install()?;
    let logs = std::env::var("RUST_LOG")
        .ok()
        .and_then(|filter| filter.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("disruptor", tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(telemetry.tracing_layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(TraceIds(tracing_subscriber::fmt::format()))
                .with_filter(logs),
        )
        .init();

    let sim = match settings.token {
        Some(_) => None,
        None => Some(Arc::new(
            Sim::start(settings.shards.clone(), settings.total).await?,
        )),
    };
    let token = settings
        .token
        .clone()
        .unwrap_or_else(|| "fake-token-for-the-demo".to_owned());

    // twilight-http, pointed at the loopback proxy that measures and ratelimits its requests
    let mut proxy = DiscordProxy::builder();
    if let Some(sim) = &sim {
        proxy = proxy.upstream(sim.rest.url());
    }
    let proxy = proxy.spawn().await?;
    let http = proxy
        .configure(twilight_http::Client::builder().token(token.clone()))
        .build();
    let me = http.current_user().await?.model().await?;
    // The slash commands the bot answers; a bot's application id is its user id.
    let commands: Vec<Command> = serde_json::from_value(serde_json::json!([
        { "name": "ping", "description": "Is the bot there?", "type": 1, "version": "1" },
        { "name": "join", "description": "Join your voice channel", "type": 1, "version": "1",
          "options": [{ "name": "channel", "description": "Which one", "type": 3,
                        "autocomplete": true }] },
        { "name": "leave", "description": "Leave the voice channel", "type": 1, "version": "1" },
    ]))?;
    http.interaction(me.id.cast())
        .set_global_commands(&commands)
        .await?;

    // The day's session starts (published by the proxy as it passes), and an identify queue
    // sized by them, whose waits are measured.
    let limit = http
        .gateway()
        .authed()
        .await?
        .model()
        .await?
        .session_start_limit;
    let queue = InstrumentedQueue::new(InMemoryQueue::new(
        limit.max_concurrency,
        limit.remaining,
        Duration::from_millis(limit.reset_after),
        limit.total,
    ));

    let db = Db::connect(settings.database_url.as_deref()).await?;
    let tap = GatewayTap::new();
    let cache = Arc::new(
        DefaultInMemoryCache::builder()
            .resource_types(ResourceType::GUILD | ResourceType::CHANNEL | ResourceType::VOICE_STATE)
            .build(),
    );
    let _cache_metrics = CacheMetrics::new(&cache);
    let bot = Arc::new(Bot {
        http,
        db,
        voice: tap.voice(),
        commands: tap.commands(),
        lavalink: LavalinkTap::builder().node("main").build(),
        cache,
        sim: sim.clone(),
        in_voice: Mutex::new(Vec::new()),
    });

    for id in settings.shards.clone() {
        let mut config = ConfigBuilder::new(
            token.clone(),
            Intents::GUILDS | Intents::GUILD_MESSAGES | Intents::GUILD_VOICE_STATES,
        )
        .queue(queue.clone());
        if let Some(sim) = &sim {
            config = config.proxy_url(sim.gateway.url());
        }
        let shard = Shard::with_config(ShardId::new(id, settings.total), config.build());
        tokio::spawn(run_shard(shard, tap.clone(), Arc::clone(&bot)));
    }

    // scheduled jobs, decorated and registered
    let registry = SchedulerRegistry::new();
    let scheduler = JobScheduler::new().await?;
    let joiner = Arc::clone(&bot);
    let join = Job::new("random_voice_join", move || {
        random_voice_join(Arc::clone(&joiner))
    })?;
    cron::add_cron_job(&scheduler, &registry, "*/3 * * * * *", join).await?;
    let cleaner = Arc::clone(&bot);
    let cleanup = Job::new("audio_cleanup", move || audio_cleanup(Arc::clone(&cleaner)))?;
    cron::add_cron_job(&scheduler, &registry, "*/5 * * * * *", cleanup).await?;
    scheduler.start().await?;

    if let Some(stall) = settings.stall {
        tokio::spawn(stall_runtime(stall));
    }

    let traffic = sim
        .clone()
        .map(|sim| tokio::spawn(async move { sim.run_traffic().await }));

    if let Some(addr) = telemetry.local_addr() {
        println!(
            "disruptor: bot {} ({}), metrics on http://{addr}/metrics",
            me.name, me.id
        );
    }
    if let Some(receiver) = &receiver {
        println!(
            "disruptor: traces to the receiver at {}",
            receiver.endpoint()
        );
    }
    let mut summary = tokio::time::interval(Duration::from_secs(10));
    summary.tick().await;
    loop {
        tokio::select! {
            _ = summary.tick() => {
                println!("{}", summarize(&Scrape::parse(&telemetry.render())));
                if let Some(tree) = receiver.as_ref().and_then(latest_interaction) {
                    println!("disruptor: one interaction's trace\n{tree}");
                }
            }
            signal = tokio::signal::ctrl_c() => {
                signal?;
                break;
            }
        }
    }
    if let Some(traffic) = traffic {
        traffic.abort();
    }
    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;
    proxy.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}

/// One line of totals, read from the exposition as Prometheus would see it. Requests and
/// queries are counted by the catalogue's counters or, under `BOTSCOPE_NAMING=semconv`, by
/// the semantic conventions' histograms; only one of each pair is there.
fn summarize(scrape: &Scrape) -> String {
    let total = |name: &str| scrape.value(name, &[]).unwrap_or(0.0);
    format!(
        "disruptor: requests={} events={} queries={} jobs={}",
        total("disruptor_discord_api_requests_total")
            + total("http_client_request_duration_seconds_count"),
        total("disruptor_gateway_events_total"),
        total("disruptor_database_queries_total")
            + total("db_client_operation_duration_seconds_count"),
        total("disruptor_scheduler_jobs_total"),
    )
}

/// How many received spans the demo's own receiver keeps.
const RECEIVED_SPANS: usize = 20_000;

/// Whether traces are on (`OTEL_TRACES_EXPORTER=otlp`) with no endpoint set: then the demo
/// receives them itself.
fn traces_to_self() -> bool {
    let set = |name| std::env::var(name).is_ok_and(|value: String| !value.trim().is_empty());
    std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|value| value.trim() == "otlp")
        && !set("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

/// The tree of the latest interaction whose whole trace arrived: the gateway event, the
/// command, its queries and its REST callback through twilight and the proxy.
fn latest_interaction(receiver: &OtlpReceiver) -> Option<String> {
    let spans = receiver.spans();
    let callback = spans.iter().rev().find(|span| {
        span.kind == Kind::Client
            && span.name.starts_with("POST /interactions/")
            && spans.iter().any(|root| {
                root.trace_id == span.trace_id
                    && root.parent_span_id.is_empty()
                    && root.name == "gateway INTERACTION_CREATE"
            })
    })?;
    Some(receiver.tree(&callback.trace_id))
}

/// The identify queue every shard of this process shares.
type Queue = InstrumentedQueue<InMemoryQueue>;

/// One shard's event loop: the tap sees every item first, then the bot handles it.
async fn run_shard(mut shard: Shard<Queue>, tap: GatewayTap, bot: Arc<Bot>) {
    while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
        tap.observe(&shard, &item);
        let Ok(event) = item else { continue };
        bot.cache.update(&event);
        let bot = Arc::clone(&bot);
        // the dispatch's span: everything its handler does is a child of it
        let span = tap.span(&shard, &event);
        match event {
            Event::GuildCreate(guild) => {
                if let twilight_model::gateway::payload::incoming::GuildCreate::Available(guild) =
                    *guild
                {
                    spawn_in(span, async move {
                        let _ = bot
                            .db
                            .upsert_guild(guild.id.get(), &guild.name, unix_now())
                            .await;
                    });
                }
            }
            Event::GuildDelete(guild) if guild.unavailable != Some(true) => {
                spawn_in(span, async move {
                    let _ = bot.db.forget_guild(guild.id.get()).await;
                });
            }
            Event::MessageCreate(message) => {
                spawn_in(span, async move { handle_message(&bot, &message).await });
            }
            Event::InteractionCreate(interaction) => {
                spawn_in(span, async move {
                    let interaction = interaction.0;
                    // Errors are the metrics' business: the bot says so and moves on.
                    if let Err(error) = bot
                        .commands
                        .instrument(&interaction, handle_interaction(&bot, &interaction))
                        .await
                    {
                        tracing::warn!(%error, "a command failed");
                    }
                });
            }
            _ => {}
        }
    }
}

/// Runs a handler on its own task, inside the span of the event it handles.
fn spawn_in(span: tracing::Span, handler: impl Future<Output = ()> + Send + 'static) {
    use tracing::Instrument as _;
    tokio::spawn(handler.instrument(span));
}

/// Commands: `!ping`, `!settings`. Errors are the metrics' business: the bot moves on.
async fn handle_message(bot: &Bot, message: &twilight_model::channel::Message) {
    let Some(guild_id) = message.guild_id else {
        return;
    };
    let reply = match message.content.as_str() {
        "!ping" => "pong".to_owned(),
        "!settings" => match bot.db.settings(guild_id.get()).await {
            Ok(Some((prefix, name))) => format!("{name}: prefix {prefix}"),
            Ok(None) => "no settings yet".to_owned(),
            Err(_) => "settings are unavailable".to_owned(),
        },
        _ => return,
    };
    // a replayed message is rejected by the log's unique key: counted, and answered once only
    if bot
        .db
        .log_command(message.id.get(), guild_id.get(), &message.content)
        .await
        .is_err()
    {
        return;
    }
    let _ = bot
        .http
        .create_message(message.channel_id)
        .content(&reply)
        .await;
}

/// Slash commands `/ping`, `/join` (with autocomplete) and `/leave`, and the buttons of their
/// answers. `/join` sometimes takes longer than Discord's 3 s; `/leave` sometimes fails.
async fn handle_interaction(bot: &Bot, interaction: &Interaction) -> Result<(), String> {
    let reply = |kind, content: Option<&str>| InteractionResponse {
        kind,
        data: Some(InteractionResponseData {
            content: content.map(str::to_owned),
            choices: (kind == InteractionResponseType::ApplicationCommandAutocompleteResult)
                .then(Vec::new),
            ..InteractionResponseData::default()
        }),
    };
    let name = match &interaction.data {
        Some(InteractionData::ApplicationCommand(command)) => command.name.as_str(),
        _ => "",
    };
    let response = match (interaction.kind, name) {
        (InteractionType::ApplicationCommandAutocomplete, _) => reply(
            InteractionResponseType::ApplicationCommandAutocompleteResult,
            None,
        ),
        (InteractionType::MessageComponent, _) => {
            reply(InteractionResponseType::DeferredUpdateMessage, None)
        }
        (_, "ping") => reply(
            InteractionResponseType::ChannelMessageWithSource,
            Some("pong"),
        ),
        (_, "join") => {
            // A slow voice server: every third join answers after the deadline.
            static JOINS: AtomicU64 = AtomicU64::new(0);
            if JOINS.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) {
                tokio::time::sleep(Duration::from_millis(3_300)).await;
            }
            reply(
                InteractionResponseType::ChannelMessageWithSource,
                Some("joined"),
            )
        }
        (_, "leave") => reply(
            InteractionResponseType::ChannelMessageWithSource,
            Some("left"),
        ),
        _ => return Err("an interaction this bot does not know".to_owned()),
    };
    // what a real command looks up and writes down (query errors are the metrics' business)
    if let Some(guild_id) = interaction.guild_id.filter(|_| !name.is_empty()) {
        let _ = bot.db.settings(guild_id.get()).await;
        let _ = bot
            .db
            .log_command(interaction.id.get(), guild_id.get(), name)
            .await;
    }
    let client = bot.http.interaction(interaction.application_id);
    client
        .create_response(interaction.id, &interaction.token, &response)
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(command = name, "answered");
    static LEAVES: AtomicU64 = AtomicU64::new(0);
    static PINGS: AtomicU64 = AtomicU64::new(0);
    match name {
        // Every third leave finds no voice connection to leave.
        "leave" if LEAVES.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) => {
            Err("not in a voice channel".to_owned())
        }
        // Every other ping gets a follow-up; every other follow-up comes after the token
        // expired (the fake's TTL is short).
        "ping" => {
            let n = PINGS.fetch_add(1, Ordering::Relaxed);
            if !n.is_multiple_of(2) {
                return Ok(());
            }
            if n.is_multiple_of(4) {
                tokio::time::sleep(sim::FOLLOWUP_TTL + Duration::from_millis(500)).await;
            }
            client
                .create_followup(&interaction.token)
                .content("still here")
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

/// Joins the voice channel of a random guild (the Go bot's `random_voice_join`).
async fn random_voice_join(bot: Arc<Bot>) -> Result<(), String> {
    let guild = bot.db.random_guild().await.map_err(|e| e.to_string())?;
    let Some(guild) = guild else { return Ok(()) };
    let attempt = bot.voice.attempt(Id::new(guild));
    let Some(sim) = &bot.sim else {
        // Joining for real needs a Lavalink node and a voice channel id: not configured.
        attempt.failed();
        return Err("voice needs a Lavalink node".to_owned());
    };
    // One join in six fails, as voice servers do: every sixth, so the first ones succeed and
    // the voice and audio families are live within seconds of start-up.
    static JOINS: AtomicU64 = AtomicU64::new(0);
    tokio::time::sleep(Duration::from_millis(20 + pseudo_random() % 200)).await;
    if JOINS.fetch_add(1, Ordering::Relaxed) % 6 == 5 {
        attempt.failed();
        return Err(format!("voice server for guild {guild} did not answer"));
    }
    sim.voice_state(guild, true);
    attempt.succeeded();
    bot.in_voice.lock().map_err(|_| "poisoned")?.push(guild);
    let kind = match pseudo_random() % 10 {
        0 => "TrackExceptionEvent",
        1 => "TrackStuckEvent",
        _ => "TrackStartEvent",
    };
    if let Some(event) = sim::track_event(kind, guild) {
        bot.lavalink.observe(&event);
    }
    Ok(())
}

/// Leaves every voice channel and cleans up its player, timed per guild.
async fn audio_cleanup(bot: Arc<Bot>) {
    let guilds: Vec<u64> = bot
        .in_voice
        .lock()
        .map(|mut g| std::mem::take(&mut *g))
        .unwrap_or_default();
    for guild in &guilds {
        bot.voice
            .time("cleanup", Id::new(*guild), async {
                tokio::time::sleep(Duration::from_millis(5 + pseudo_random() % 50)).await;
                if let Some(sim) = &bot.sim {
                    sim.voice_state(*guild, false);
                    if let Some(event) = sim::track_event("TrackEndEvent", *guild) {
                        bot.lavalink.observe(&event);
                    }
                }
            })
            .await;
    }
    if bot.sim.is_some()
        && let Some(stats) = sim::node_stats(guilds.len() as u64 + 1, guilds.len() as u64)
    {
        bot.lavalink.observe(&stats);
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Good enough for a demo's dice: the clock's nanoseconds, stirred.
fn pseudo_random() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}
