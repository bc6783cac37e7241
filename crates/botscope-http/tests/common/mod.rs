//! Helpers shared by the test crates of botscope-http.

// Each test crate uses a part of these.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use botscope_http::metrics::BoxError;
use botscope_http::{DiscordProxy, DiscordProxyBuilder};
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::FakeDiscord;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use twilight_http::Client;
use twilight_http::error::ErrorType;

pub(crate) mod official;

/// A bot token of the real shape, to look for in scrapes and logs.
pub(crate) const BOT_TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";

/// The status of a twilight-http error that is an HTTP response.
pub(crate) fn status_of(error: &twilight_http::Error) -> u16 {
    match error.kind() {
        ErrorType::Response { status, .. } => status.get(),
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// The bot's own TLS: twilight-http's `build()` needs a process-wide crypto provider, which
/// botscope leaves to the bot.
pub(crate) fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A proxy to `fake` recording into `metrics`, built further by `build`, and a twilight-http
/// client configured for it.
pub(crate) async fn proxy_to(
    fake: &FakeDiscord,
    metrics: &TestMetrics,
    build: impl FnOnce(DiscordProxyBuilder) -> DiscordProxyBuilder,
) -> (DiscordProxy, Client) {
    install_tls();
    let builder = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(metrics.meter());
    let proxy = build(builder).spawn().await.expect("proxy");
    let client = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    (proxy, client)
}

/// Answers a fresh interaction with a deferred update, as a bot does within Discord's 3 s.
pub(crate) async fn send_callback(client: &Client) -> Result<(), twilight_http::Error> {
    let response = twilight_model::http::interaction::InteractionResponse {
        kind: twilight_model::http::interaction::InteractionResponseType::DeferredUpdateMessage,
        data: None,
    };
    client
        .interaction(twilight_model::id::Id::new(302_050_872_383_242_240))
        .create_response(
            // Fresh: the fake answers a callback only within Discord's 3 s of the snowflake.
            twilight_model::id::Id::new(botscope_testkit::interaction::snowflake_at(
                std::time::SystemTime::now(),
            )),
            "interaction-token",
            &response,
        )
        .await
        .map(drop)
}

/// An error type of a user's own, as their layer or service returns it.
#[derive(Debug)]
pub(crate) struct TheirError(pub(crate) String);

impl std::fmt::Display for TheirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "their layer: {}", self.0)
    }
}

impl std::error::Error for TheirError {}

impl From<BoxError> for TheirError {
    fn from(error: BoxError) -> Self {
        Self(error.to_string())
    }
}

/// Every event and span field at every level, as text.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<String>>);

impl Capture {
    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut text));
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = self.0.lock().unwrap();
        let _ = write!(
            text,
            "\n{} {}",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut text));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
