//! Every timed unit is a span, from the same place that records its metric: a job run, a
//! query and a command handler, read as an OpenTelemetry backend receives them (through
//! tracing-opentelemetry into the SDK), beside the scrape of the same runs. Each span's status
//! and `error.type` say what the metric's `status` says; what a unit does runs beneath its span.

use botscope::gateway::GatewayTap;
use botscope::jobs::Job;
use botscope_testkit::TestMetrics;
use botscope_testkit::interaction::FakeInteraction;
use botscope_testkit::traces::Traces;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use twilight_model::application::interaction::Interaction;

#[derive(Debug)]
struct BotError;

fn status(span: &SpanData) -> &'static str {
    match span.status {
        Status::Unset => "unset",
        Status::Ok => "ok",
        Status::Error { .. } => "error",
    }
}

fn interaction(name: &str) -> Interaction {
    serde_json::from_value(FakeInteraction::command(name).minted().json()).expect("an interaction")
}

#[tokio::test]
async fn a_job_run_is_a_span_whose_status_is_the_runs() {
    let metrics = TestMetrics::new("bot");
    let traces = Traces::new();
    let _capture = traces.capture();

    let ok = Job::builder("cleanup")
        .meter(metrics.meter())
        .build(|| async { Ok::<_, BotError>(()) })
        .unwrap();
    ok.run().await.unwrap();
    let failing = Job::builder("refresh")
        .meter(metrics.meter())
        .build(|| async { Err::<(), _>(BotError) })
        .unwrap();
    failing.run().await.unwrap_err();
    let panicking = Job::builder("sweep")
        .meter(metrics.meter())
        .build(|| async {
            if true {
                panic!("the sweep broke");
            }
            Ok::<_, BotError>(())
        })
        .unwrap();
    let joined = tokio::spawn(async move { panicking.run().await }).await;
    assert!(joined.unwrap_err().is_panic());
    let slow = Job::builder("slow")
        .meter(metrics.meter())
        .build(|| async { std::future::pending::<Result<(), BotError>>().await })
        .unwrap();
    let cancelled = tokio::time::timeout(std::time::Duration::from_millis(1), slow.run()).await;
    assert!(cancelled.is_err());

    let scrape = metrics.scrape();
    for (job, metric_status, span_status, error_type) in [
        ("cleanup", "success", "unset", None),
        ("refresh", "error", "error", Some("error")),
        ("sweep", "panic", "error", Some("panic")),
        ("slow", "cancelled", "error", Some("cancelled")),
    ] {
        assert_eq!(
            scrape.value(
                "bot_scheduler_jobs_total",
                &[("handler_type", job), ("status", metric_status)]
            ),
            Some(1.0),
            "{job}: {}",
            scrape.text()
        );
        let span = traces.span(&format!("job {job}"));
        assert_eq!(status(&span), span_status, "{job}");
        assert_eq!(
            traces.attribute(&span, "error.type").as_deref(),
            error_type,
            "{job}"
        );
        assert_eq!(traces.attribute(&span, "job.name").as_deref(), Some(job));
    }
}

/// A bot's measured parts, on one meter: an SQLite pool and the command decorator.
struct Bot {
    metrics: TestMetrics,
    traces: Traces,
    db: botscope::sqlx::InstrumentedPool<sqlx::Sqlite>,
    commands: botscope::gateway::CommandMetrics,
}

impl Bot {
    async fn new() -> Self {
        let metrics = TestMetrics::new("bot");
        let sqlite = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let db = botscope::sqlx::InstrumentedPool::builder(sqlite, "bot")
            .meter(metrics.meter())
            .build();
        let commands = GatewayTap::builder()
            .meter(metrics.meter())
            .build()
            .commands();
        Self {
            metrics,
            traces: Traces::new(),
            db,
            commands,
        }
    }
}

#[tokio::test]
async fn a_command_parents_its_queries_and_each_query_says_how_it_ended() {
    let Bot {
        metrics,
        traces,
        db,
        commands,
    } = Bot::new().await;
    let _capture = traces.capture();
    sqlx::query("CREATE TABLE guilds (id INTEGER PRIMARY KEY, prefix TEXT NOT NULL)")
        .execute(&db)
        .await
        .unwrap();
    let secret_prefix = "hunter2-literal";

    let join = interaction("join");
    let id = join.id.to_string();
    let answered = commands
        .run(join, |_interaction| async {
            sqlx::query("INSERT INTO guilds (id, prefix) VALUES (?, ?)")
                .bind(81384788765712384_i64)
                .bind(secret_prefix)
                .execute(&db)
                .await?;
            // a second insert of the same id breaks the key
            sqlx::query("INSERT INTO guilds (id, prefix) VALUES (81384788765712384, 'again')")
                .execute(&db)
                .await
        })
        .await;
    assert!(answered.is_err());
    // a query dropped before it ends: `cancelled`, on the span as on the counter
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT COUNT(*) FROM c";
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(5),
        sqlx::query(slow).fetch_one(&db),
    )
    .await;
    assert!(dropped.is_err());
    // sqlx's SQLite worker holds a clone of the span of the statement it runs (and so its
    // parents) until it is done with it, on its own thread: closing the pool waits for that
    db.inner().close().await;

    let tree = traces.tree();
    assert!(
        tree.contains(
            "command join {error}\n  INSERT guilds [client]\n  INSERT guilds [client] {error}\n"
        ),
        "{tree}"
    );
    let command = traces.span("command join");
    assert_eq!(
        traces.attribute(&command, "discord.interaction.id"),
        Some(id)
    );
    assert_eq!(
        traces.attribute(&command, "error.type").as_deref(),
        Some("error")
    );
    let inserts: Vec<_> = traces
        .spans()
        .into_iter()
        .filter(|span| span.name == "INSERT guilds")
        .collect();
    assert_eq!(inserts.len(), 2);
    for insert in &inserts {
        assert_eq!(insert.parent_span_id, command.span_context.span_id());
        assert_eq!(insert.span_kind, SpanKind::Client);
        assert_eq!(
            insert.span_context.trace_id(),
            command.span_context.trace_id()
        );
        for (key, value) in [
            ("db.system.name", "sqlite"),
            ("db.namespace", "bot"),
            ("db.operation.name", "INSERT"),
            ("db.collection.name", "guilds"),
            ("db.query.summary", "INSERT guilds"),
        ] {
            assert_eq!(
                traces.attribute(insert, key).as_deref(),
                Some(value),
                "{key}"
            );
        }
    }
    assert_eq!(
        traces.attribute(&inserts[1], "error.type").as_deref(),
        Some("unique_violation")
    );
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(
            "bot_database_errors_total",
            &[("table", "guilds"), ("error_type", "unique_violation")]
        ),
        Some(1.0),
        "{}",
        scrape.text()
    );

    let select = traces.span("SELECT c");
    assert_eq!(status(&select), "error");
    assert_eq!(
        traces.attribute(&select, "error.type").as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        metrics.scrape().value(
            "bot_database_queries_total",
            &[("table", "c"), ("status", "cancelled")]
        ),
        Some(1.0)
    );

    // no statement text and no bound or literal value in any span
    for span in traces.spans() {
        let text = format!("{} {:?} {:?}", span.name, span.attributes, span.events);
        for secret in [
            secret_prefix,
            "again",
            "81384788765712384",
            "VALUES",
            "RECURSIVE",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn a_guarded_command_lends_its_span_to_the_handler_the_bot_awaits() {
    use tracing::Instrument as _;

    let Bot {
        metrics,
        traces,
        db,
        commands,
    } = Bot::new().await;
    let _capture = traces.capture();

    // a job, not a query: sqlx's SQLite worker holds clones of the spans current when it is
    // sent work, and lets go of them on its own thread, some time later
    let dice = Job::builder("roll_dice")
        .meter(metrics.meter())
        .build(|| async { Ok::<_, BotError>(4) })
        .unwrap();
    let roll = interaction("roll");
    let guard = commands.start(&roll);
    // the handler, as the bot awaits it: what it starts opens its spans beneath the command
    let rolled = async { dice.run().await }
        .instrument(guard.span().clone())
        .await;
    guard.finish(&rolled);
    drop(db);
    assert_eq!(
        traces.tree(),
        "command roll\n  job roll_dice\n",
        "{}",
        traces.tree()
    );
    assert_eq!(
        metrics.scrape().value(
            "bot_commands_total",
            &[("command", "roll"), ("status", "success")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_rest_call_through_the_proxy_is_a_client_span_named_by_its_route() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rest = botscope_testkit::rest::FakeDiscord::spawn()
        .await
        .expect("fake REST");
    let metrics = TestMetrics::new("bot");
    let traces = Traces::new();
    let _capture = traces.capture();
    let proxy = botscope::http::DiscordProxy::builder()
        .upstream(rest.url())
        .meter(metrics.meter())
        .spawn()
        .await
        .expect("proxy");
    let http = proxy
        .configure(twilight_http::Client::builder().token("Bot-s3cret-token".to_owned()))
        .build();
    http.create_message(twilight_model::id::Id::new(42))
        .content("hello, hidden content")
        .await
        .expect("POST a message");
    let webhook_token = "w3bhook-t0ken-hidden";
    let _ = http
        .execute_webhook(twilight_model::id::Id::new(77), webhook_token)
        .content("more hidden content")
        .await;
    proxy.shutdown().await;

    let post = traces.span("POST /channels/{channel_id}/messages");
    assert_eq!(post.span_kind, SpanKind::Client);
    assert_eq!(status(&post), "unset");
    for (key, value) in [
        ("http.request.method", "POST"),
        ("url.template", "/channels/{channel_id}/messages"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            traces.attribute(&post, key).as_deref(),
            Some(value),
            "{key}"
        );
    }
    let webhook = traces.span("POST /webhooks/{webhook_id}/{webhook_token}");
    let code = traces
        .attribute(&webhook, "http.response.status_code")
        .expect("the webhook call's status");
    let metric_status = if code.starts_with(['4', '5']) {
        "error"
    } else {
        "unset"
    };
    assert_eq!(status(&webhook), metric_status, "{code}");
    let scrape = metrics.scrape();
    assert!(
        scrape
            .value(
                "bot_discord_api_requests_total",
                &[
                    ("endpoint", "/webhooks/{webhook_id}/{webhook_token}"),
                    ("status_code", code.as_str())
                ]
            )
            .is_some(),
        "{}",
        scrape.text()
    );
    // botscope's spans; twilight's own (its ratelimiter's `response` span, say) still carry
    // the raw path, which the export side has to rewrite (issue 24, item 4)
    let ours: Vec<_> = traces
        .spans()
        .into_iter()
        .filter(|span| {
            traces
                .attribute(span, "target")
                .is_some_and(|t| t.starts_with("botscope"))
        })
        .collect();
    // each request and its wait for the bucket
    let mut names: Vec<_> = ours.iter().map(|span| span.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "POST /channels/{channel_id}/messages",
            "POST /webhooks/{webhook_id}/{webhook_token}",
            "ratelimit wait",
            "ratelimit wait",
        ],
        "{}",
        traces.tree()
    );
    let mut waited: Vec<_> = ours
        .iter()
        .filter(|span| span.name == "ratelimit wait")
        .filter_map(|span| traces.attribute(span, "url.template"))
        .collect();
    waited.sort();
    assert_eq!(
        waited,
        [
            "/channels/{channel_id}/messages",
            "/webhooks/{webhook_id}/{webhook_token}"
        ]
    );
    for span in ours {
        let text = format!("{} {:?} {:?}", span.name, span.attributes, span.events);
        for secret in ["s3cret", webhook_token, "hidden", "webhooks/77"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn an_interaction_from_a_real_shard_parents_its_command_and_what_it_runs() {
    use tracing::Instrument as _;
    use twilight_gateway::{
        ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
    };

    let _ = rustls::crypto::ring::default_provider().install_default();
    let gateway = botscope_testkit::gateway::FakeGateway::builder()
        .spawn()
        .await
        .expect("fake gateway");
    let Bot {
        metrics,
        traces,
        db: _,
        commands,
    } = Bot::new().await;
    let tap = GatewayTap::builder().meter(metrics.meter()).build();
    // the handler's work: a job (queries under a command are a_command_parents_its_queries…'s)
    let join = Job::builder("join_voice")
        .meter(metrics.meter())
        .build(|| async { Ok::<_, BotError>(1_u64) })
        .unwrap();
    let _capture = traces.capture();

    let config = ConfigBuilder::new("fake-token".to_owned(), Intents::GUILDS)
        .proxy_url(gateway.url())
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut sent = None;
    let mut handled = None;
    while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
        tap.observe(&shard, &item);
        match item.expect("an event") {
            Event::Ready(_) => {
                sent = Some(gateway.interaction_create(0, &FakeInteraction::command("join")));
            }
            event @ Event::InteractionCreate(_) => {
                // the bot's dispatch: its handler runs in the event's span
                let span = tap.span(&shard, &event);
                let Event::InteractionCreate(interaction) = event else {
                    unreachable!()
                };
                let commands = commands.clone();
                let join = join.clone();
                let handler = async move {
                    commands
                        .run(
                            interaction.0,
                            |_interaction| async move { join.run().await },
                        )
                        .await
                };
                handled = Some(tokio::spawn(handler.instrument(span)).await.unwrap());
                break;
            }
            _ => {}
        }
    }
    assert_eq!(handled.expect("the interaction came").expect("answered"), 1);
    let sent = sent.expect("READY came");
    let event = traces.span("gateway INTERACTION_CREATE");

    let tree = traces.tree();
    assert!(
        tree.contains(
            "gateway INTERACTION_CREATE [consumer]\n  command join\n    job join_voice\n"
        ),
        "{tree}"
    );
    for (key, value) in [
        ("discord.shard.id", "0".to_owned()),
        ("discord.event.type", "INTERACTION_CREATE".to_owned()),
        ("discord.command.name", "join".to_owned()),
        ("discord.interaction.id", sent.id.to_string()),
    ] {
        assert_eq!(traces.attribute(&event, key), Some(value), "{key}");
    }
    let deadline: u64 = traces
        .attribute(&event, "discord.interaction.deadline")
        .expect("a deadline")
        .parse()
        .expect("unix milliseconds");
    let minted = minted_ms(sent.id);
    assert_eq!(deadline, minted + 3_000);
    assert!(traces.attribute(&event, "discord.event.sequence").is_some());
    let command = traces.span("command join");
    assert_eq!(command.parent_span_id, event.span_context.span_id());
    for span in traces.spans() {
        let text = format!("{} {:?} {:?}", span.name, span.attributes, span.events);
        assert!(
            !text.contains(&sent.token),
            "the interaction token in {text}"
        );
    }
    assert_eq!(
        metrics.scrape().value(
            "bot_commands_total",
            &[("command", "join"), ("status", "success")]
        ),
        Some(1.0)
    );
}

/// The unix time in milliseconds Discord minted snowflake `id` (its top 42 bits after
/// Discord's epoch, 2015-01-01).
fn minted_ms(id: u64) -> u64 {
    (id >> 22) + 1_420_070_400_000
}
