//! The `handler_type` cap belongs to the registry the jobs are built from.

use botscope_jobs::{Job, SchedulerRegistry};
use botscope_testkit::TestMetrics;

const JOBS: &str = "disruptor_scheduler_jobs_total";

async fn run_jobs(registry: &SchedulerRegistry, prefix: &str, count: usize) {
    for i in 0..count {
        let job = registry
            .job(&format!("{prefix}_{i}"))
            .build(|| async {})
            .expect("a handler type");
        job.run().await;
    }
}

#[tokio::test]
async fn handler_types_past_a_registrys_cap_read_other() {
    let metrics = TestMetrics::new("disruptor");
    let registry = SchedulerRegistry::builder()
        .meter(metrics.meter())
        .handler_type_cap(3)
        .build();
    run_jobs(&registry, "guild", 5).await;
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.label_values(JOBS, "handler_type"),
        ["guild_0", "guild_1", "guild_2", "other"]
    );
    let success = |handler_type| {
        scrape.value(
            JOBS,
            &[("handler_type", handler_type), ("status", "success")],
        )
    };
    assert_eq!(success("other"), Some(2.0));
    assert_eq!(success("guild_0"), Some(1.0));
}

#[tokio::test]
async fn each_registry_counts_its_own_cap_and_lone_jobs_keep_their_name() {
    let metrics = TestMetrics::new("disruptor");
    let registry = |cap| {
        SchedulerRegistry::builder()
            .meter(metrics.meter())
            .handler_type_cap(cap)
            .build()
    };
    let (first, second) = (registry(1), registry(2));
    run_jobs(&first, "a", 2).await;
    run_jobs(&second, "b", 3).await;
    Job::builder("cleanup")
        .meter(metrics.meter())
        .build(|| async {})
        .expect("a handler type")
        .run()
        .await;
    let scrape = metrics.scrape();
    assert_eq!(
        scrape.label_values(JOBS, "handler_type"),
        ["a_0", "b_0", "b_1", "cleanup", "other"]
    );
    assert_eq!(
        scrape.value(JOBS, &[("handler_type", "other"), ("status", "success")]),
        Some(2.0)
    );
}
