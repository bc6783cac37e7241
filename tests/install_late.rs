//! A bot that builds everything first and installs telemetry second, as a user's program:
//! the pool, the proxy, the gateway tap, the command decorator and a job exist before
//! `Telemetry::install`, and every one of their families shows in the scrape after it.

use std::time::Duration;

use botscope::Telemetry;
use botscope_testkit::Scrape;
use botscope_testkit::gateway::FakeGateway;
use botscope_testkit::rest::FakeDiscord;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

/// The families each part shows once driven, by sample name.
const FAMILIES: [&str; 14] = [
    "late_database_queries_total",
    "late_database_query_duration_seconds_bucket",
    "late_database_connections",
    "late_database_connections_max",
    "late_database_connection_acquire_duration_seconds_bucket",
    "late_discord_api_requests_total",
    "late_discord_api_request_duration_seconds_bucket",
    "late_gateway_events_total",
    "late_gateway_shard_status",
    "late_discord_guild_count",
    "late_gateway_latency_seconds_bucket",
    "late_scheduler_jobs_total",
    "late_scheduler_job_duration_seconds_bucket",
    "late_scheduler_queue_depth",
];

#[tokio::test]
async fn everything_built_before_install_reports_after_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rest = FakeDiscord::spawn().await.expect("fake REST");
    let gateway = FakeGateway::builder()
        .heartbeat_interval(Duration::from_millis(200))
        .spawn()
        .await
        .expect("fake gateway");

    // built first: nothing is installed yet
    let pool = botscope::sqlx::InstrumentedPool::new(
        sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("sqlite"),
        "bot",
    );
    let proxy = botscope::http::DiscordProxy::builder()
        .upstream(rest.url())
        .spawn()
        .await
        .expect("proxy");
    let http = proxy
        .configure(twilight_http::Client::builder().token("fake-token".to_owned()))
        .build();
    let tap = botscope::gateway::GatewayTap::new();
    let job =
        botscope::jobs::Job::new("nightly", || async { Ok::<_, std::io::Error>(()) }).expect("job");
    let registry = botscope::jobs::SchedulerRegistry::new();
    let _scheduler = registry.register("main").expect("scheduler");
    let config = ConfigBuilder::new("fake-token".to_owned(), Intents::empty())
        .proxy_url(gateway.url())
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);

    // installed second
    let telemetry = Telemetry::builder()
        .namespace("late")
        .serve(false)
        .system_metrics(false)
        .install()
        .expect("install");

    // driven
    sqlx::query("SELECT 1").execute(&pool).await.expect("query");
    http.current_user().await.expect("REST through the proxy");
    job.run().await.expect("job");
    let mut acks = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while acks < 2 {
        let item = tokio::select! {
            item = shard.next_event(EventTypeFlags::all()) => item,
            () = &mut deadline => panic!("no heartbeat acknowledgement within 20 s"),
        };
        let Some(item) = item else { break };
        tap.observe(&shard, &item);
        if matches!(item, Ok(Event::GatewayHeartbeatAck)) {
            acks += 1;
        }
    }

    let scrape = Scrape::parse(&telemetry.render());
    let missing: Vec<_> = FAMILIES
        .iter()
        .filter(|family| !scrape.has(family))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?} in\n{}",
        scrape.text()
    );
    assert_eq!(
        scrape.value(
            "late_database_queries_total",
            &[("db", "bot"), ("status", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "late_scheduler_jobs_total",
            &[("handler_type", "nightly"), ("status", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(scrape.value("late_scheduler_queue_depth", &[]), Some(1.0));
}
