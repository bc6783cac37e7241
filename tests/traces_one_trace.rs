//! One interaction, one trace: a real twilight shard delivers an INTERACTION_CREATE whose
//! handler, wrapped by the command decorator, runs two queries on SQLite and answers through
//! twilight-http and the in-process proxy; the testkit's OTLP receiver gets the whole tree,
//! every parent right, each status the scrape's. Its own test binary: it installs the
//! process's global subscriber.

#[path = "traces/mod.rs"]
mod traces;

use botscope_testkit::interaction::FakeInteraction;
use botscope_testkit::otlp::Kind;
use traces::{BOT_TOKEN, Bot, WAIT, answer, named, status};
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn one_interaction_is_one_trace_from_the_event_to_discord() {
    let bot = Bot::start().await;
    // The process's subscriber, as a bot installs it (`.init()`): sqlx's SQLite worker drops
    // the last clone of a query's span on its own thread, and tracing-subscriber's registry
    // closes the span's parent through that thread's default subscriber. With a subscriber
    // set only for the test's thread (`set_default`), the command and event spans would
    // never close.
    let subscriber = tracing_subscriber::registry().with(bot.telemetry.tracing_layer());
    tracing::subscriber::set_global_default(subscriber).expect("the only test of this binary");
    let secret = "hunter2-bound-literal";

    let db = bot.db.clone();
    let http = std::sync::Arc::clone(&bot.http);
    let (sent, handled) = bot
        .dispatch_one(
            |gateway| gateway.interaction_create(0, &FakeInteraction::command("join")),
            move |interaction| async move {
                sqlx::query("INSERT INTO guilds (id, prefix) VALUES (?, ?)")
                    .bind(81384788765712384_i64)
                    .bind(secret)
                    .execute(&db)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query("SELECT prefix FROM guilds WHERE id = 81384788765712384")
                    .fetch_one(&db)
                    .await
                    .map_err(|e| e.to_string())?;
                http.interaction(interaction.application_id)
                    .create_response(interaction.id, &interaction.token, &answer("joined"))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            },
        )
        .await;
    handled.expect("the handler answered");
    // sqlx's SQLite worker holds clones of the statements' spans (and their parents) until
    // it is done with them; closing the pool waits for that
    bot.db.inner().close().await;
    bot.telemetry.flush_traces().await.expect("flushed");

    let event = bot
        .receiver
        .wait_for(WAIT, |span| span.name == "gateway INTERACTION_CREATE")
        .await
        .unwrap();
    let trace = bot.receiver.trace(&event.trace_id);
    let tree = bot.receiver.tree(&event.trace_id);
    println!("{tree}");
    assert_eq!(event.parent_span_id, "", "the event is the root\n{tree}");
    assert_eq!(event.kind, Kind::Consumer);
    assert_eq!(event.service_name.as_deref(), Some("bot"));

    let command = named(&trace, "command join");
    let insert = named(&trace, "INSERT guilds");
    let select = named(&trace, "SELECT guilds");
    let request = named(&trace, "request");
    let callback = named(
        &trace,
        "POST /interactions/{interaction_id}/{interaction_token}/callback",
    );
    assert_eq!(command.parent_span_id, event.span_id, "{tree}");
    assert_eq!(insert.parent_span_id, command.span_id, "{tree}");
    assert_eq!(select.parent_span_id, command.span_id, "{tree}");
    // twilight's request span is the handler's; the proxy's span is a child of it
    assert_eq!(request.parent_span_id, command.span_id, "{tree}");
    assert_eq!(callback.parent_span_id, request.span_id, "{tree}");
    assert_eq!(callback.kind, Kind::Client);
    assert_eq!(insert.kind, Kind::Client);
    for span in &trace {
        assert_eq!(span.trace_id, event.trace_id);
        assert!(
            span.start_unix_nanos >= event.start_unix_nanos,
            "{} starts before the event",
            span.name
        );
    }
    // twilight's path, templated before export
    assert_eq!(
        request.attribute("path"),
        Some("/interactions/{interaction_id}/{interaction_token}/callback")
    );
    assert_eq!(
        callback.attribute("discord.interaction.late"),
        Some("false")
    );
    assert_eq!(
        callback.attribute("discord.interaction.outcome"),
        Some("ok")
    );
    assert_eq!(command.attribute("discord.interaction.late"), Some("false"));
    assert_eq!(
        command.attribute("discord.interaction.id"),
        Some(sent.id.to_string().as_str())
    );

    // each status is the scrape's
    let scrape = bot.scrape();
    let one = |name: &str, labels: &[(&str, &str)]| {
        assert_eq!(
            scrape.value(name, labels),
            Some(1.0),
            "{name} {labels:?}\n{}",
            scrape.text()
        );
    };
    assert_eq!(status(command), "unset");
    one(
        "bot_commands_total",
        &[("command", "join"), ("status", "success")],
    );
    assert_eq!((status(insert), status(select)), ("unset", "unset"));
    one(
        "bot_database_queries_total",
        &[
            ("table", "guilds"),
            ("operation", "INSERT"),
            ("status", "success"),
        ],
    );
    one(
        "bot_database_queries_total",
        &[
            ("table", "guilds"),
            ("operation", "SELECT"),
            ("status", "success"),
        ],
    );
    let code = callback
        .attribute("http.response.status_code")
        .expect("a status code");
    assert_eq!(status(callback), "unset");
    one(
        "bot_discord_api_requests_total",
        &[
            (
                "endpoint",
                "/interactions/{interaction_id}/{interaction_token}/callback",
            ),
            ("status_code", code),
        ],
    );
    one("bot_interaction_responses_total", &[("outcome", "ok")]);

    // no secret in any exported span: names, attributes, events
    for span in bot.receiver.spans() {
        for text in span.texts() {
            for leaked in [
                sent.token.as_str(),
                BOT_TOKEN,
                secret,
                "81384788765712384",
                "joined",
                "VALUES",
            ] {
                assert!(
                    !text.contains(leaked),
                    "{leaked:?} in {}: {text}",
                    span.name
                );
            }
        }
    }
}
