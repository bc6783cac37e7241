//! A handler that blocks the runtime shows in the next scrape: as a late wake-up of the lag
//! probe when every worker is blocked, and as a worker busy the whole interval when only one
//! of several is.

use std::time::Duration;

use botscope::{BuildErrorType, Telemetry};
use botscope_testkit::Scrape;

fn telemetry() -> Telemetry {
    Telemetry::builder()
        .namespace("lagtest")
        .serve(false)
        .set_global(false)
        .install()
        .expect("install")
}

/// Scrapes (off the runtime, as the /metrics server does) until `seen` holds, for up to 20 s
/// of wall time.
async fn scrape_until(telemetry: &Telemetry, seen: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = Scrape::parse(&telemetry.render());
        if seen(&scrape) {
            return scrape;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not seen within 20 s:\n{}",
            scrape.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lag samples above the 0.5 s bucket bound.
fn stalls(scrape: &Scrape) -> f64 {
    let count = scrape
        .value("lagtest_runtime_lag_seconds_count", &[])
        .unwrap_or(0.0);
    let fast = scrape
        .value("lagtest_runtime_lag_seconds_bucket", &[("le", "0.5")])
        .unwrap_or(0.0);
    count - fast
}

/// Blocks `workers` worker threads at once for `block`: one task each, spawned from outside
/// the runtime so they queue where any worker takes them.
async fn block_workers(workers: usize, block: Duration) {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let tasks: Vec<_> = (0..workers)
            .map(|_| runtime.spawn(async move { std::thread::sleep(block) }))
            .collect();
        tasks
    })
    .await
    .expect("spawned");
}

async fn a_blocked_runtime_shows_as_lag() {
    let telemetry = telemetry();
    // the probe has woken at least once
    let before = scrape_until(&telemetry, |s| {
        s.value("lagtest_runtime_lag_seconds_count", &[])
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    let (stalls_before, sum_before) = (stalls(&before), lag_sum(&before));

    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    block_workers(workers, Duration::from_millis(800)).await;

    let after = scrape_until(&telemetry, |s| stalls(s) > stalls_before).await;
    let added = lag_sum(&after) - sum_before;
    assert!(
        added >= 0.7,
        "lag sum grew by {added} s after an 800 ms block"
    );
}

fn lag_sum(scrape: &Scrape) -> f64 {
    scrape
        .value("lagtest_runtime_lag_seconds_sum", &[])
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocked_current_thread_runtime_shows_as_lag() {
    a_blocked_runtime_shows_as_lag().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_multi_thread_runtime_shows_as_lag() {
    a_blocked_runtime_shows_as_lag().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn one_blocked_worker_of_several_reads_busy_the_whole_interval() {
    let telemetry = telemetry();
    // Every worker has reported; none has been busy for a whole interval yet.
    scrape_until(&telemetry, |s| {
        s.label_values("lagtest_runtime_worker_busy_ratio", "worker")
            .len()
            == 3
    })
    .await;
    let block = Duration::from_millis(2_000);
    let blocked = tokio::spawn(async move { std::thread::sleep(block) });
    // The baseline is read while the task blocks its worker, so that worker publishes
    // nothing between the two readings …
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = telemetry.render();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let scrape = Scrape::parse(&telemetry.render());
    let ratios: Vec<f64> = scrape
        .series("lagtest_runtime_worker_busy_ratio")
        .map(|sample| sample.value)
        .collect();
    // … while the others (the probe's, this test's) park and unpark: exactly one worker
    // reads busy for the whole interval.
    assert_eq!(
        ratios.iter().filter(|&&ratio| ratio == 1.0).count(),
        1,
        "{}",
        scrape.text()
    );
    blocked.await.expect("blocked task");
}

#[tokio::test]
async fn a_zero_period_is_refused_and_none_turns_the_probe_off() {
    let error = Telemetry::builder()
        .serve(false)
        .set_global(false)
        .runtime_lag(Some(Duration::ZERO))
        .install()
        .expect_err("zero period");
    assert_eq!(error.kind(), &BuildErrorType::InvalidRuntimeLagPeriod);

    let telemetry = Telemetry::builder()
        .namespace("nolag")
        .serve(false)
        .set_global(false)
        .runtime_lag(None)
        .install()
        .expect("install");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = Scrape::parse(&telemetry.render());
    assert!(
        !scrape.has("nolag_runtime_lag_seconds_count"),
        "{}",
        scrape.text()
    );
    assert!(
        scrape.has("nolag_runtime_worker_busy_ratio"),
        "{}",
        scrape.text()
    );
}
