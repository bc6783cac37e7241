//! The bot the trace tests drive: botscope wired as the README says, traces to the testkit's
//! OTLP receiver, with the fake Discord, a real shard and twilight-http client, the
//! in-process proxy and SQLite.
#![allow(dead_code)] // each test binary uses its part

use std::time::Duration;

use botscope::Telemetry;
use botscope::gateway::{CommandMetrics, GatewayTap};
use botscope::http::DiscordProxy;
use botscope::traces::Traces;
use botscope_testkit::Scrape;
use botscope_testkit::gateway::FakeGateway;
use botscope_testkit::interaction::MintedInteraction;
use botscope_testkit::otlp::{OtlpReceiver, ReceivedSpan, Status};
use botscope_testkit::rest::FakeDiscord;
use tracing::Instrument as _;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};
use twilight_model::application::interaction::Interaction;
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};

pub(crate) const WAIT: Duration = Duration::from_secs(30);
pub(crate) const BOT_TOKEN: &str = "Bot-t0ken-never-exported";

/// A bot as the README wires it, with traces to the receiver.
pub(crate) struct Bot {
    pub(crate) receiver: OtlpReceiver,
    pub(crate) telemetry: Telemetry,
    pub(crate) rest: FakeDiscord,
    pub(crate) gateway: FakeGateway,
    /// Serves `http` until the test ends.
    pub(crate) _proxy: DiscordProxy,
    pub(crate) http: std::sync::Arc<twilight_http::Client>,
    pub(crate) db: botscope::sqlx::InstrumentedPool<sqlx::Sqlite>,
    pub(crate) tap: GatewayTap,
    pub(crate) commands: CommandMetrics,
}

/// Telemetry as a test installs it: no server, no system metrics, not global, exporting as
/// `traces` says.
pub(crate) fn telemetry(traces: Traces) -> Telemetry {
    Telemetry::builder()
        .namespace("bot")
        .serve(false)
        .system_metrics(false)
        .set_global(false)
        .traces(traces)
        .install()
        .expect("telemetry")
}

impl Bot {
    pub(crate) async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let receiver = OtlpReceiver::start().await.expect("receiver");
        let telemetry = telemetry(
            Traces::otlp()
                .endpoint(receiver.traces_url())
                .batch_delay(Duration::from_millis(20)),
        );
        let meter = telemetry.meter("test");
        let rest = FakeDiscord::spawn().await.expect("fake REST");
        let gateway = FakeGateway::builder().spawn().await.expect("fake gateway");
        let proxy = DiscordProxy::builder()
            .upstream(rest.url())
            .meter(meter.clone())
            .spawn()
            .await
            .expect("proxy");
        let http = std::sync::Arc::new(
            proxy
                .configure(twilight_http::Client::builder().token(BOT_TOKEN.to_owned()))
                .build(),
        );
        let sqlite = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let db = botscope::sqlx::InstrumentedPool::builder(sqlite, "bot")
            .meter(meter.clone())
            .build();
        sqlx::query("CREATE TABLE guilds (id INTEGER PRIMARY KEY, prefix TEXT NOT NULL)")
            .execute(db.inner())
            .await
            .unwrap();
        let tap = GatewayTap::builder().meter(meter).build();
        let commands = tap.commands();
        Self {
            receiver,
            telemetry,
            rest,
            gateway,
            _proxy: proxy,
            http,
            db,
            tap,
            commands,
        }
    }

    pub(crate) fn scrape(&self) -> Scrape {
        Scrape::parse(&self.telemetry.render())
    }

    /// Connects a shard, sends the interaction `mint` makes once READY came, and runs
    /// `handle` on it as a bot does: in the dispatch's span, under the command decorator.
    pub(crate) async fn dispatch_one<H, F>(
        &self,
        mint: impl FnOnce(&FakeGateway) -> MintedInteraction,
        handle: H,
    ) -> (MintedInteraction, Result<(), String>)
    where
        H: FnOnce(Interaction) -> F + Send + 'static,
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let config = ConfigBuilder::new(BOT_TOKEN.to_owned(), Intents::GUILDS)
            .proxy_url(self.gateway.url())
            .build();
        let mut shard = Shard::with_config(ShardId::ONE, config);
        let mut mint = Some(mint);
        let mut sent = None;
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            self.tap.observe(&shard, &item);
            match item.expect("an event") {
                Event::Ready(_) => sent = mint.take().map(|mint| mint(&self.gateway)),
                event @ Event::InteractionCreate(_) => {
                    let span = self.tap.span(&shard, &event);
                    let Event::InteractionCreate(interaction) = event else {
                        unreachable!()
                    };
                    // a unit's span is a child of the span current when it is created:
                    // create the command's inside the dispatch's
                    let commands = self.commands.clone();
                    let handler = async move { commands.run(interaction.0, handle).await };
                    let handled = tokio::spawn(handler.instrument(span)).await.unwrap();
                    return (sent.expect("READY came first"), handled);
                }
                _ => {}
            }
        }
        panic!("the shard ended before the interaction came");
    }
}

pub(crate) fn answer(content: &str) -> InteractionResponse {
    InteractionResponse {
        kind: InteractionResponseType::ChannelMessageWithSource,
        data: Some(InteractionResponseData {
            content: Some(content.to_owned()),
            ..InteractionResponseData::default()
        }),
    }
}

pub(crate) fn status(span: &ReceivedSpan) -> &'static str {
    match span.status {
        Status::Unset => "unset",
        Status::Ok => "ok",
        Status::Error => "error",
    }
}

/// The one span of `spans` named `name`.
pub(crate) fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let mut found = spans.iter().filter(|span| span.name == name);
    match (found.next(), found.next()) {
        (Some(span), None) => span,
        _ => panic!(
            "expected one span named {name:?} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        ),
    }
}

#[derive(Debug)]
pub(crate) struct BotError;

impl std::fmt::Display for BotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bot error")
    }
}

impl std::error::Error for BotError {}
