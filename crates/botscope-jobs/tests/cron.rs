//! The tokio-cron-scheduler adapter on a real `JobScheduler`, in real time.
#![cfg(feature = "cron")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use botscope_jobs::cron::add_cron_job_with;
use botscope_jobs::{Job, SchedulerRegistry};
use botscope_testkit::TestMetrics;
use tokio_cron_scheduler::JobScheduler;

const LAG: &str = "disruptor_scheduler_job_lag_seconds";
const DEPTH: &str = "disruptor_scheduler_queue_depth";

/// Waits (in real time, at most `limit`) until `done` holds.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_schedule_fires_records_runs_and_lag() {
    let metrics = TestMetrics::new("disruptor");
    let registry = SchedulerRegistry::builder().meter(metrics.meter()).build();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let job = Job::builder("heartbeat_check")
        .meter(metrics.meter())
        .build(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
        .unwrap();

    let mut scheduler = JobScheduler::new().await.unwrap();
    let ended = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&ended);
    let id = add_cron_job_with(&scheduler, &registry, "* * * * * *", job, move |result| {
        assert!(result.is_ok());
        seen.fetch_add(1, Ordering::SeqCst);
    })
    .await
    .unwrap();
    assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(1.0));
    assert_eq!(registry.names(), ["heartbeat_check"]);
    scheduler.start().await.unwrap();

    assert!(
        // Two fires take about 2 s; the deadline leaves a loaded machine room.
        wait_for(Duration::from_secs(20), || ran.load(Ordering::SeqCst) >= 2).await,
        "the job did not fire twice in 20 s"
    );
    assert!(
        wait_for(Duration::from_secs(10), || ended.load(Ordering::SeqCst)
            >= 2)
        .await,
        "the bot saw the runs' results"
    );
    let scrape = metrics.scrape();
    let runs = scrape
        .value(
            "disruptor_scheduler_jobs_total",
            &[("handler_type", "heartbeat_check"), ("status", "success")],
        )
        .unwrap();
    assert!(runs >= 2.0, "{}", scrape.text());
    let lags = scrape
        .value(
            &format!("{LAG}_count"),
            &[("handler_type", "heartbeat_check")],
        )
        .unwrap();
    assert!(lags >= 2.0, "{}", scrape.text());
    let lag_sum = scrape
        .value(
            &format!("{LAG}_sum"),
            &[("handler_type", "heartbeat_check")],
        )
        .unwrap();
    // Each run starts after its tick; measured from the wrong tick (the next one, or the
    // epoch) the lag would be 0 or enormous. The scheduler wakes every 500 ms; 10 s leaves
    // a loaded machine room.
    assert!(lag_sum > 0.0, "{}", scrape.text());
    let within_seconds = scrape
        .value(
            &format!("{LAG}_bucket"),
            &[("handler_type", "heartbeat_check"), ("le", "10")],
        )
        .unwrap();
    assert_eq!(within_seconds, lags, "{}", scrape.text());
    eprintln!("lag over {lags} runs: mean {:.3} s", lag_sum / lags);

    // Removing the job from the scheduler ends its registration.
    scheduler.remove(&id).await.unwrap();
    assert!(
        // tokio-cron-scheduler drops the job on its own tick: give a loaded 2-core machine time.
        wait_for(Duration::from_secs(10), || registry.is_empty()).await,
        "still registered: {:?}",
        registry.names()
    );
    assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(0.0));
    scheduler.shutdown().await.unwrap();
}
