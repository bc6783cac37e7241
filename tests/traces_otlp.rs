//! Traces as a backend receives them: `Telemetry::builder().traces(..)` exporting over
//! OTLP/HTTP to botscope-testkit's receiver, with a real twilight shard, twilight-http client,
//! the in-process proxy and SQLite. Ids, parents, kinds, statuses and attributes are read from
//! the decoded protobuf; statuses are compared with the scrape. The whole trace of one
//! interaction is `traces_one_trace.rs`'s.

use std::time::{Duration, SystemTime};

use botscope::jobs::Job;
use botscope::traces::Traces;
use botscope_testkit::Scrape;
use botscope_testkit::interaction::FakeInteraction;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[path = "traces/mod.rs"]
mod traces;

use traces::{Bot, BotError, WAIT, answer, named, status};

#[tokio::test]
async fn a_late_answer_says_so_on_the_command_and_on_its_callback() {
    let bot = Bot::start().await;
    let subscriber = tracing_subscriber::registry().with(bot.telemetry.tracing_layer());
    let _default = tracing::subscriber::set_default(subscriber);

    let http = std::sync::Arc::clone(&bot.http);
    // Discord created it 4 s ago: its 3 s are over before the bot sees it
    let four_seconds_ago = SystemTime::now() - Duration::from_secs(4);
    let (_, handled) = bot
        .dispatch_one(
            |gateway| {
                let late = FakeInteraction::command("join").minted_at(four_seconds_ago);
                gateway.dispatch(0, "INTERACTION_CREATE", late.json());
                late
            },
            move |interaction| async move {
                http.interaction(interaction.application_id)
                    .create_response(interaction.id, &interaction.token, &answer("too late"))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        )
        .await;
    assert!(handled.is_err(), "Discord refuses a late callback");
    bot.telemetry.flush_traces().await.expect("flushed");

    let command = bot
        .receiver
        .wait_for(WAIT, |span| span.name == "command join")
        .await
        .unwrap();
    let trace = bot.receiver.trace(&command.trace_id);
    let callback = named(
        &trace,
        "POST /interactions/{interaction_id}/{interaction_token}/callback",
    );
    assert_eq!(command.attribute("discord.interaction.late"), Some("true"));
    assert_eq!(callback.attribute("discord.interaction.late"), Some("true"));
    assert_eq!(
        callback.attribute("discord.interaction.outcome"),
        Some("late")
    );
    assert_eq!(callback.attribute("http.response.status_code"), Some("404"));
    assert_eq!(
        (status(callback), callback.attribute("error.type")),
        ("error", Some("404"))
    );
    assert_eq!(
        (status(&command), command.attribute("error.type")),
        ("error", Some("error"))
    );
    let scrape = bot.scrape();
    assert_eq!(
        scrape.value("bot_interaction_responses_total", &[("outcome", "late")]),
        Some(1.0),
        "{}",
        scrape.text()
    );
    assert_eq!(
        scrape.value(
            "bot_commands_total",
            &[("command", "join"), ("status", "error")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_panicking_job_and_a_cancelled_query_end_their_spans_as_the_scrape_says() {
    let bot = Bot::start().await;
    let subscriber = tracing_subscriber::registry().with(bot.telemetry.tracing_layer());
    let _default = tracing::subscriber::set_default(subscriber);

    let panics = Job::builder("panics")
        .meter(bot.telemetry.meter("test"))
        .build(|| async {
            if std::hint::black_box(true) {
                panic!("the job's own bug");
            }
            Ok::<_, BotError>(())
        })
        .unwrap();
    let _ = tokio::spawn(async move { panics.run().await }).await;
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT COUNT(*) FROM c";
    let dropped = tokio::time::timeout(
        Duration::from_millis(5),
        sqlx::query(slow).fetch_one(&bot.db),
    )
    .await;
    assert!(dropped.is_err(), "the query outlived its timeout");
    bot.db.inner().close().await;
    bot.telemetry.flush_traces().await.expect("flushed");

    let job = bot
        .receiver
        .wait_for(WAIT, |span| span.name == "job panics")
        .await
        .unwrap();
    assert_eq!(
        (status(&job), job.attribute("error.type")),
        ("error", Some("panic"))
    );
    let query = bot
        .receiver
        .wait_for(WAIT, |span| span.name == "SELECT c")
        .await
        .unwrap();
    assert_eq!(
        (status(&query), query.attribute("error.type")),
        ("error", Some("cancelled"))
    );
    let scrape = bot.scrape();
    assert_eq!(
        scrape.value(
            "bot_scheduler_jobs_total",
            &[("handler_type", "panics"), ("status", "panic")]
        ),
        Some(1.0),
        "{}",
        scrape.text()
    );
    assert_eq!(
        scrape.value(
            "bot_database_queries_total",
            &[("table", "c"), ("status", "cancelled")]
        ),
        Some(1.0)
    );
    assert_eq!(bot.rest.requests().len(), 0, "nothing else ran");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_holds_up_nothing_but_its_export() {
    // accepts every connection and never answers
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hole.local_addr().unwrap();
    let _hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hole.accept().await {
            held.push(stream);
        }
    });
    let telemetry = traces::telemetry(
        Traces::otlp()
            .endpoint(format!("http://{addr}/v1/traces"))
            .timeout(Duration::from_millis(500)),
    );
    let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
    let _default = tracing::subscriber::set_default(subscriber);
    let job = Job::builder("tick")
        .meter(telemetry.meter("test"))
        .build(|| async { Ok::<_, BotError>(()) })
        .unwrap();
    job.run().await.unwrap();

    // the runtime (one thread) keeps running the bot while the export hangs
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = {
        let ticks = std::sync::Arc::clone(&ticks);
        let job = job.clone();
        tokio::spawn(async move {
            loop {
                job.run().await.unwrap();
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let flushed = telemetry.flush_traces().await;
    ticker.abort();
    assert!(flushed.is_err(), "no answer is no export");
    let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(ticks > 0, "the bot's tasks ran while the export waited");
    let scrape = Scrape::parse(&telemetry.render());
    assert_eq!(
        scrape.value(
            "bot_scheduler_jobs_total",
            &[("handler_type", "tick"), ("status", "success")]
        ),
        Some(1.0 + ticks as f64)
    );
    assert!(
        scrape
            .value("bot_trace_spans_exported_total", &[("status", "error")])
            .is_some_and(|dropped| dropped >= 1.0),
        "{}",
        scrape.text()
    );
}

#[tokio::test]
async fn a_log_line_leads_to_its_trace() {
    let receiver = botscope_testkit::otlp::OtlpReceiver::start().await.unwrap();
    let telemetry = traces::telemetry(Traces::otlp().endpoint(receiver.traces_url()));
    let logs = botscope_testkit::logs::Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(telemetry.tracing_layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .event_format(botscope::traces::TraceIds(tracing_subscriber::fmt::format()))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        );
    let _default = tracing::subscriber::set_default(subscriber);
    let job = Job::builder("announce")
        .meter(telemetry.meter("test"))
        .build(|| async {
            tracing::info!("inside the job");
            Ok::<_, BotError>(())
        })
        .unwrap();
    job.run().await.unwrap();
    tracing::info!("outside any span");
    telemetry.flush_traces().await.expect("flushed");

    let span = receiver
        .wait_for(WAIT, |span| span.name == "job announce")
        .await
        .unwrap();
    let text = logs.text();
    let inside = text
        .lines()
        .find(|line| line.contains("inside the job"))
        .expect("the job's line");
    assert!(
        inside.starts_with(&format!(
            "trace_id={} span_id={} ",
            span.trace_id, span.span_id
        )),
        "{inside}\n{span:?}"
    );
    let outside = text
        .lines()
        .find(|line| line.contains("outside any span"))
        .expect("the other line");
    assert!(!outside.contains("trace_id="), "{outside}");
}
