//! `cargo run --example disruptor`, then a scrape: every metric family of SPEC section 3 is
//! live within 15 seconds.

use std::time::{Duration, Instant};

use botscope_testkit::{Scrape, client};
use botscope_tests::demo::Demo;
use botscope_tests::prometheus::check_metrics;

/// Every family of the catalogue as the demo (namespace `disruptor`, feature `jemalloc`)
/// exposes it, by the sample name a histogram or counter shows.
const FAMILIES: [&str; 59] = [
    "disruptor_scheduler_job_duration_seconds_bucket",
    "disruptor_scheduler_jobs_total",
    "disruptor_scheduler_active_jobs",
    "disruptor_scheduler_queue_depth",
    "disruptor_voice_connection_attempts_total",
    "disruptor_voice_connections_active",
    "disruptor_audio_track_events_total",
    "disruptor_audio_processing_duration_seconds_bucket",
    "disruptor_discord_api_requests_total",
    "disruptor_discord_api_request_duration_seconds_bucket",
    "disruptor_discord_guild_count",
    "disruptor_system_memory_bytes",
    "disruptor_database_query_duration_seconds_bucket",
    "disruptor_database_queries_total",
    "disruptor_database_errors_total",
    "disruptor_system_tasks",
    "disruptor_discord_api_requests_in_flight",
    "disruptor_discord_api_ratelimited_total",
    "disruptor_discord_api_ratelimit_wait_seconds_bucket",
    "disruptor_discord_api_invalid_requests",
    "disruptor_discord_api_requests_queued",
    "disruptor_discord_api_global_hold_seconds",
    "disruptor_gateway_events_total",
    "disruptor_gateway_latency_seconds_bucket",
    "disruptor_gateway_shard_status",
    "disruptor_gateway_reconnects_total",
    "disruptor_gateway_close_codes_total",
    "disruptor_discord_unavailable_guilds",
    "disruptor_scheduler_last_success_timestamp_seconds",
    "disruptor_scheduler_job_lag_seconds_bucket",
    "disruptor_database_connections",
    "disruptor_database_connections_max",
    "disruptor_database_connection_acquire_duration_seconds_bucket",
    "disruptor_lavalink_players",
    "disruptor_lavalink_playing_players",
    "disruptor_runtime_workers",
    "disruptor_runtime_global_queue_depth",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
    "process_virtual_memory_bytes",
    "target_info",
    // Discord's limits
    "disruptor_discord_api_edge_errors_total",
    "disruptor_gateway_session_starts_remaining",
    "disruptor_gateway_session_starts_total_limit",
    "disruptor_gateway_session_starts_reset_seconds",
    "disruptor_gateway_max_concurrency",
    "disruptor_gateway_commands_available",
    "disruptor_gateway_commands_max",
    "disruptor_gateway_ratelimited_total",
    "disruptor_gateway_identify_wait_seconds_bucket",
    "disruptor_gateway_identify_queue_depth",
    "disruptor_gateway_dispatch_lag_seconds_bucket",
    "disruptor_cache_entries",
    // runtime health
    "disruptor_runtime_lag_seconds_bucket",
    "disruptor_runtime_worker_busy_ratio",
];

/// A series the demo's interactions must show, and how to tell it is there.
type Seen = (&'static str, fn(&Scrape) -> bool);

/// What the demo's slash commands, autocomplete and button clicks show: answered in time and
/// late, counted by type and command, timed per command, some failing.
fn interaction_series() -> Vec<Seen> {
    fn positive(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> bool {
        scrape.value(name, labels).is_some_and(|value| value > 0.0)
    }
    vec![
        ("disruptor_interaction_response_seconds_bucket", |s| {
            s.has("disruptor_interaction_response_seconds_bucket")
        }),
        (
            "disruptor_interaction_responses_total{outcome=\"ok\"}",
            |s| {
                positive(
                    s,
                    "disruptor_interaction_responses_total",
                    &[("outcome", "ok")],
                )
            },
        ),
        (
            "disruptor_interaction_responses_total{outcome=~\"late|unknown_interaction\"}",
            |s| {
                positive(
                    s,
                    "disruptor_interaction_responses_total",
                    &[("outcome", "late")],
                ) || positive(
                    s,
                    "disruptor_interaction_responses_total",
                    &[("outcome", "unknown_interaction")],
                )
            },
        ),
        (
            "disruptor_interactions_total{type=\"application_command\",command=\"ping\"}",
            |s| {
                positive(
                    s,
                    "disruptor_interactions_total",
                    &[("type", "application_command"), ("command", "ping")],
                )
            },
        ),
        (
            "disruptor_command_duration_seconds_bucket{command=\"ping\",status=\"success\"}",
            |s| {
                s.series("disruptor_command_duration_seconds_bucket")
                    .any(|sample| {
                        sample.labels.get("command").map(String::as_str) == Some("ping")
                            && sample.labels.get("status").map(String::as_str) == Some("success")
                    })
            },
        ),
        ("disruptor_commands_total{status=\"error\"}", |s| {
            s.series("disruptor_commands_total").any(|sample| {
                sample.labels.get("status").map(String::as_str) == Some("error")
                    && sample.value > 0.0
            })
        }),
        ("disruptor_interaction_followups_total", |s| {
            s.has("disruptor_interaction_followups_total")
        }),
    ]
}

/// Scrapes the demo every 500 ms until `missing` finds nothing missing in a scrape, and returns
/// that scrape's text; fails 15 s after `started`, saying what the last scrape missed.
async fn scrape_until(
    demo: &Demo,
    started: Instant,
    mut missing: impl FnMut(&Scrape) -> Option<String>,
) -> String {
    let mut last = String::from("no scrape yet");
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not live after 15 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = client::get(demo.metrics_addr(), "/metrics")
            .await
            .expect("scrape")
            .text();
        match missing(&Scrape::parse(&text)) {
            None => return text,
            Some(what) => last = what,
        }
    }
}

#[tokio::test]
#[ignore = "needs the built demo: run by .ci/run"]
async fn every_family_is_live_within_15_seconds() {
    let started = Instant::now();
    let demo = Demo::start(0, 1, 2).await;
    let mut missing: Vec<&str> = FAMILIES.to_vec();
    let mut unseen = interaction_series();
    scrape_until(&demo, started, |scrape| {
        missing.retain(|family| !scrape.has(family));
        unseen.retain(|(_, seen)| !seen(scrape));
        (!missing.is_empty() || !unseen.is_empty()).then(|| {
            let unseen: Vec<_> = unseen.iter().map(|(name, _)| name).collect();
            format!("{missing:?} {unseen:?}")
        })
    })
    .await;
    // The seed labels, by name, on the live series.
    let text = client::get(demo.metrics_addr(), "/metrics")
        .await
        .expect("scrape")
        .text();
    let scrape = Scrape::parse(&text);
    for (family, labels) in [
        (
            "disruptor_discord_api_requests_total",
            &["endpoint", "method", "status_code"][..],
        ),
        (
            "disruptor_database_errors_total",
            &["db", "operation", "table", "error_type"],
        ),
        (
            "disruptor_scheduler_jobs_total",
            &["handler_type", "status"],
        ),
        (
            "disruptor_audio_track_events_total",
            &["event_type", "guild_id"],
        ),
        (
            "disruptor_voice_connection_attempts_total",
            &["guild_id", "status"],
        ),
    ] {
        let sample = scrape.series(family).next().expect("live");
        let names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        let mut expected = labels.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected, "{family}");
    }
    for kind in [
        "heap_alloc",
        "heap_inuse",
        "heap_sys",
        "heap_idle",
        "heap_released",
        "resident",
        "virtual",
    ] {
        assert!(
            scrape
                .value("disruptor_system_memory_bytes", &[("type", kind)])
                .is_some(),
            "type={kind}"
        );
    }
}

/// Whether some sample of `name` carries every label of `labels`.
fn has_labels(scrape: &Scrape, name: &str, labels: &[&str]) -> bool {
    scrape.series(name).any(|sample| {
        labels
            .iter()
            .all(|label| sample.labels.contains_key(*label))
    })
}

/// `BOTSCOPE_NAMING=semconv`: the REST and database families under the OpenTelemetry
/// semantic conventions' names, every other family as before, and promtool finds nothing.
#[tokio::test]
#[ignore = "needs the built demo and promtool: run by .ci/run"]
async fn semconv_naming_shows_the_conventions_names() {
    let started = Instant::now();
    let demo = Demo::start_with(0, 1, 2, &[("BOTSCOPE_NAMING", "semconv")]).await;
    let wanted: [(&str, &[&str]); 2] = [
        (
            "http_client_request_duration_seconds_bucket",
            &[
                "http_request_method",
                "http_response_status_code",
                "url_template",
                "server_address",
                "server_port",
            ],
        ),
        (
            "db_client_operation_duration_seconds_bucket",
            &[
                "db_system_name",
                "db_operation_name",
                "db_collection_name",
                "db_namespace",
            ],
        ),
    ];
    let text = scrape_until(&demo, started, |scrape| {
        let live = wanted
            .iter()
            .all(|(name, labels)| has_labels(scrape, name, labels));
        (!live).then(|| format!("{wanted:?}"))
    })
    .await;
    let scrape = Scrape::parse(&text);
    for family in [
        "db_client_connection_count",
        "db_client_connection_max",
        "db_client_connection_wait_time_seconds_bucket",
        // not named by the conventions: as before
        "disruptor_discord_api_requests_in_flight",
        "disruptor_gateway_events_total",
        "disruptor_scheduler_jobs_total",
    ] {
        assert!(scrape.has(family), "{family} missing");
    }
    for replaced in [
        "disruptor_discord_api_requests_total",
        "disruptor_discord_api_request_duration_seconds_bucket",
        "disruptor_database_query_duration_seconds_bucket",
        "disruptor_database_queries_total",
        "disruptor_database_connections",
    ] {
        assert!(!scrape.has(replaced), "{replaced} still there");
    }
    check_metrics(&text);
}

#[tokio::test]
#[ignore = "needs the built demo: run by .ci/run"]
async fn a_stalled_runtime_shows_in_the_lag_histogram_within_a_minute() {
    let started = Instant::now();
    let demo = Demo::start_with(0, 1, 2, &[("DISRUPTOR_STALL", "1")]).await;
    // The first stall comes at start-up, the next 30 s later: two within a minute.
    let mut stalls = 0.0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(70),
            "{stalls} late wake-ups after 70 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let scrape = Scrape::parse(
            &client::get(demo.metrics_addr(), "/metrics")
                .await
                .expect("scrape")
                .text(),
        );
        let count = scrape.value("disruptor_runtime_lag_seconds_count", &[]);
        let fast = scrape.value("disruptor_runtime_lag_seconds_bucket", &[("le", "0.5")]);
        // RuntimeStalled's expression, over the whole run: wake-ups at least 0.5 s late.
        stalls = count.zip(fast).map_or(0.0, |(count, fast)| count - fast);
        if stalls >= 2.0 {
            let sum = scrape
                .value("disruptor_runtime_lag_seconds_sum", &[])
                .expect("lag sum");
            assert!(sum >= 1.6, "two 1 s stalls, lag sum {sum}");
            break;
        }
    }
}
