//! A real Prometheus server scrapes a bot's `/metrics` and answers queries over its API.

use std::time::Duration;

use botscope::Telemetry;
use botscope_testkit::client;
use botscope_tests::prometheus::{Prometheus, check_metrics};

#[tokio::test]
#[ignore = "needs Debian's prometheus binaries: run by .ci/run"]
async fn prometheus_scrapes_system_and_process_metrics() {
    let telemetry = Telemetry::builder()
        .namespace("disruptor")
        .listen("127.0.0.1:0")
        .set_global(false)
        .install()
        .expect("install");
    let target = telemetry.local_addr().expect("serving");
    let prometheus = Prometheus::start(&[("disruptor", target)], &[]).await;

    let up = prometheus
        .wait_for(r#"up{job="disruptor"} == 1"#, Duration::from_secs(30))
        .await;
    assert_eq!(up.len(), 1);
    for expr in [
        "disruptor_system_tasks",
        r#"disruptor_system_memory_bytes{type="resident"}"#,
        r#"disruptor_system_memory_bytes{type="virtual"}"#,
        "disruptor_runtime_workers",
        "process_resident_memory_bytes",
        "rate(process_cpu_seconds_total[1m])",
    ] {
        prometheus.wait_for(expr, Duration::from_secs(15)).await;
    }

    // promtool lints the very text Prometheus scraped.
    let scrape = client::get(target, "/metrics")
        .await
        .expect("scrape")
        .text();
    check_metrics(&scrape);
    telemetry.shutdown().await;
}
