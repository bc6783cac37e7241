//! A trace endpoint that is down: the bot runs on, the spans are dropped and counted, and the
//! failure is said once. Its own test binary: it installs the process's global subscriber,
//! which is where the exporter's thread logs.

#[path = "traces/mod.rs"]
mod traces;

use std::time::Duration;

use botscope::jobs::Job;
use botscope::traces::Traces;
use botscope_testkit::Scrape;
use botscope_testkit::logs::Logs;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn an_endpoint_that_is_down_costs_the_bot_its_spans_and_nothing_else() {
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let telemetry = traces::telemetry(
        Traces::otlp()
            .endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
            .timeout(Duration::from_secs(2)),
    );
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(telemetry.tracing_layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

    let job = Job::builder("tick")
        .meter(telemetry.meter("test"))
        .build(|| async { Ok::<_, traces::BotError>(()) })
        .unwrap();
    let (rounds, per_round) = (3, 200);
    for _ in 0..rounds {
        for _ in 0..per_round {
            job.run().await.expect("the job runs on");
        }
        // each round's export fails
        assert!(telemetry.flush_traces().await.is_err());
    }

    let scrape = Scrape::parse(&telemetry.render());
    let runs = f64::from(rounds * per_round);
    assert_eq!(
        scrape.value(
            "bot_scheduler_jobs_total",
            &[("handler_type", "tick"), ("status", "success")]
        ),
        Some(runs)
    );
    assert_eq!(
        scrape.value("bot_trace_spans_exported_total", &[("status", "error")]),
        Some(runs),
        "every job's span was dropped, and counted\n{}",
        scrape.text()
    );
    assert_eq!(
        scrape.value("bot_trace_spans_exported_total", &[("status", "success")]),
        None
    );
    let text = logs.text();
    assert_eq!(
        text.matches("trace export failed").count(),
        1,
        "said once, not once per batch:\n{text}"
    );
    assert!(text.contains("WARN"), "{text}");
    telemetry.shutdown().await;
}
