//! Job, JobLayer, instrument and SchedulerRegistry, asserted from a real Prometheus scrape.

use std::future::pending;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use botscope_jobs::{Job, JobErrorType, JobLayer, SchedulerRegistry, instrument};
use botscope_testkit::{Scrape, TestMetrics};
use tower::{Layer, ServiceExt, service_fn};

const RUNS: &str = "disruptor_scheduler_jobs_total";
const DURATION: &str = "disruptor_scheduler_job_duration_seconds";
const ACTIVE: &str = "disruptor_scheduler_active_jobs";
const LAST_SUCCESS: &str = "disruptor_scheduler_last_success_timestamp_seconds";
const DEPTH: &str = "disruptor_scheduler_queue_depth";

fn runs(scrape: &Scrape, handler: &str, status: &str) -> Option<f64> {
    scrape.value(RUNS, &[("handler_type", handler), ("status", status)])
}

fn bucket(scrape: &Scrape, handler: &str, status: &str, le: &str) -> Option<f64> {
    scrape.value(
        &format!("{DURATION}_bucket"),
        &[("handler_type", handler), ("status", status), ("le", le)],
    )
}

#[tokio::test]
async fn series_of_a_new_job_start_at_zero() {
    let metrics = TestMetrics::new("disruptor");
    let _job = Job::builder("random_voice_join")
        .meter(metrics.meter())
        .build(|| async {})
        .unwrap();
    let scrape = metrics.scrape();
    assert_eq!(runs(&scrape, "random_voice_join", "success"), Some(0.0));
    assert_eq!(runs(&scrape, "random_voice_join", "error"), Some(0.0));
    assert_eq!(
        scrape.value(ACTIVE, &[("handler_type", "random_voice_join")]),
        Some(0.0)
    );
    assert!(
        !scrape.has(LAST_SUCCESS),
        "no success yet:\n{}",
        scrape.text()
    );
}

#[tokio::test(start_paused = true)]
async fn durations_land_in_the_right_buckets() {
    let metrics = TestMetrics::new("disruptor");
    let job = Job::builder("cleanup")
        .meter(metrics.meter())
        .build(|| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
        })
        .unwrap();
    job.run().await;
    let slow = Job::builder("cleanup")
        .meter(metrics.meter())
        .build(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
    slow.run().await.unwrap();
    let long = Job::builder("cleanup")
        .meter(metrics.meter())
        .build(|| async {
            tokio::time::sleep(Duration::from_secs(45)).await;
        })
        .unwrap();
    long.run().await;

    let scrape = metrics.scrape();
    // Jobs get buckets past 10 s, so a 30 s p95 alert can fire.
    assert_eq!(bucket(&scrape, "cleanup", "success", "10"), Some(2.0));
    assert_eq!(bucket(&scrape, "cleanup", "success", "30"), Some(2.0));
    assert_eq!(bucket(&scrape, "cleanup", "success", "60"), Some(3.0));
    assert_eq!(bucket(&scrape, "cleanup", "success", "0.025"), Some(0.0));
    assert_eq!(bucket(&scrape, "cleanup", "success", "0.05"), Some(1.0));
    assert_eq!(bucket(&scrape, "cleanup", "success", "1"), Some(1.0));
    assert_eq!(bucket(&scrape, "cleanup", "success", "2.5"), Some(2.0));
    let sum = scrape
        .value(&format!("{DURATION}_sum"), &[("handler_type", "cleanup")])
        .unwrap();
    assert!((sum - 47.03).abs() < 1e-6, "sum {sum}");
    assert_eq!(runs(&scrape, "cleanup", "success"), Some(3.0));
}

#[tokio::test]
async fn errors_pass_through_unchanged_and_count_as_error() {
    let metrics = TestMetrics::new("disruptor");
    let job = Job::builder("sync_roles")
        .meter(metrics.meter())
        .build(|| async { Err::<u8, _>(std::io::Error::other("discord is down")) })
        .unwrap();
    let error = job.run().await.unwrap_err();
    assert_eq!(error.to_string(), "discord is down");

    let scrape = metrics.scrape();
    assert_eq!(runs(&scrape, "sync_roles", "error"), Some(1.0));
    assert_eq!(runs(&scrape, "sync_roles", "success"), Some(0.0));
    assert_eq!(bucket(&scrape, "sync_roles", "error", "+Inf"), Some(1.0));
}

#[tokio::test]
async fn a_panic_is_counted_and_carries_on_unchanged() {
    let metrics = TestMetrics::new("disruptor");
    let job = Job::builder("flaky")
        .meter(metrics.meter())
        .build(|| async {
            if true {
                panic!("the job broke");
            }
        })
        .unwrap();
    let joined = tokio::spawn(job.run()).await.unwrap_err();
    let payload = joined.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the job broke"));

    // and without a runtime catching it
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        futures_lite_block_on(job.run());
    }));
    assert!(caught.is_err());

    let scrape = metrics.scrape();
    assert_eq!(runs(&scrape, "flaky", "panic"), Some(2.0));
    assert_eq!(
        scrape.value(ACTIVE, &[("handler_type", "flaky")]),
        Some(0.0)
    );
    assert!(!scrape.has(LAST_SUCCESS));
}

/// Polls a future to completion on this thread, without a runtime.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_cancelled_mid_run_is_counted_and_leaves_active_at_zero() {
    let metrics = TestMetrics::new("disruptor");
    let job = Job::builder("stuck")
        .meter(metrics.meter())
        .build(pending::<()>)
        .unwrap();

    let task = tokio::spawn(job.run());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(ACTIVE, &[("handler_type", "stuck")]),
        Some(1.0)
    );

    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // and a run dropped by a timeout
    assert!(
        tokio::time::timeout(Duration::from_secs(3), job.run())
            .await
            .is_err()
    );

    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value(ACTIVE, &[("handler_type", "stuck")]),
        Some(0.0)
    );
    assert_eq!(runs(&scrape, "stuck", "cancelled"), Some(2.0));
    assert_eq!(bucket(&scrape, "stuck", "cancelled", "0.1"), Some(1.0));
    assert_eq!(bucket(&scrape, "stuck", "cancelled", "5"), Some(2.0));
    assert_eq!(bucket(&scrape, "stuck", "cancelled", "2.5"), Some(1.0));
}

#[tokio::test]
async fn last_success_moves_only_on_success() {
    let metrics = TestMetrics::new("disruptor");
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&fail);
    let job = Job::builder("backup")
        .meter(metrics.meter())
        .build(move || {
            let fail = flag.load(std::sync::atomic::Ordering::SeqCst);
            async move { if fail { Err("disk full") } else { Ok(()) } }
        })
        .unwrap();
    let last = || {
        metrics
            .scrape()
            .value(LAST_SUCCESS, &[("handler_type", "backup")])
    };

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    job.run().await.unwrap();
    let first = last().expect("set by the success");
    assert!(first >= before.floor(), "{first} < {before}");

    // The next success must carry a later timestamp: wait until the wall clock moved on.
    while botscope_core::clock::since_unix_epoch().as_secs_f64() <= first {
        std::thread::yield_now();
    }
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    job.run().await.unwrap_err();
    assert_eq!(last(), Some(first), "an error leaves it alone");

    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    job.run().await.unwrap();
    let second = last().unwrap();
    assert!(second > first, "{second} <= {first}");
}

#[tokio::test]
async fn the_layer_records_every_call_of_a_service() {
    let metrics = TestMetrics::new("disruptor");
    let layer = Job::builder("daily_digest")
        .meter(metrics.meter())
        .layer()
        .unwrap();
    let service = layer.layer(service_fn(|n: u32| async move {
        if n == 0 {
            Err(std::io::Error::other("nothing to send"))
        } else {
            Ok(n * 2)
        }
    }));
    assert_eq!(service.clone().oneshot(21).await.unwrap(), 42);
    assert_eq!(service.clone().oneshot(1).await.unwrap(), 2);
    let error = service.oneshot(0).await.unwrap_err();
    assert_eq!(error.to_string(), "nothing to send");

    let scrape = metrics.scrape();
    assert_eq!(runs(&scrape, "daily_digest", "success"), Some(2.0));
    assert_eq!(runs(&scrape, "daily_digest", "error"), Some(1.0));
    assert_eq!(
        scrape.value(ACTIVE, &[("handler_type", "daily_digest")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn instrument_times_a_one_off_run_on_the_global_provider() {
    let metrics = TestMetrics::new("disruptor");
    // The only test in this binary installing a provider.
    botscope_core::meter::install_provider(std::sync::Arc::new(metrics.provider().clone()));
    let value = instrument("one_off", async { Ok::<_, ()>(5) })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(value, 5);
    let scrape = metrics.scrape();
    assert_eq!(runs(&scrape, "one_off", "success"), Some(1.0));
}

#[test]
fn an_empty_name_is_a_typed_error() {
    let job = Job::new("", || async {}).unwrap_err();
    assert_eq!(job.kind(), &JobErrorType::EmptyHandlerType);
    let layer = JobLayer::new("").unwrap_err();
    assert_eq!(layer.kind(), &JobErrorType::EmptyHandlerType);
    let one_off = instrument("", async {}).unwrap_err();
    assert_eq!(one_off.kind(), &JobErrorType::EmptyHandlerType);
    let registry = SchedulerRegistry::builder()
        .meter(TestMetrics::new("d").meter())
        .build();
    let registration = registry.register("").unwrap_err();
    assert_eq!(registration.kind(), &JobErrorType::EmptySchedulerName);
    assert!(registry.is_empty());
}

#[test]
fn queue_depth_follows_registrations() {
    let metrics = TestMetrics::new("disruptor");
    let registry = SchedulerRegistry::builder().meter(metrics.meter()).build();
    assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(0.0));

    let voice = registry.register("random_voice_join").unwrap();
    let digest = registry.clone().register("daily_digest").unwrap();
    assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(2.0));
    assert_eq!(registry.names(), ["random_voice_join", "daily_digest"]);
    assert_eq!(voice.name(), "random_voice_join");

    drop(voice);
    assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(1.0));
    assert_eq!(registry.names(), ["daily_digest"]);
    drop(digest);
    assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(0.0));
    assert!(registry.is_empty());
}
