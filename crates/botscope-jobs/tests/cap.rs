//! The process-wide cap on `handler_type` values (its own test binary: the cap is global).

use botscope_jobs::Job;
use botscope_jobs::metrics::HANDLER_TYPE_CAP;
use botscope_testkit::TestMetrics;

#[tokio::test]
async fn handler_types_past_the_cap_read_other() {
    let metrics = TestMetrics::new("disruptor");
    for i in 0..HANDLER_TYPE_CAP + 50 {
        let job = Job::builder(&format!("guild_{i}"))
            .meter(metrics.meter())
            .build(|| async {})
            .unwrap();
        job.run().await;
    }
    let scrape = metrics.scrape();
    let values = scrape.label_values("disruptor_scheduler_jobs_total", "handler_type");
    assert_eq!(values.len(), HANDLER_TYPE_CAP + 1);
    assert_eq!(
        scrape.value(
            "disruptor_scheduler_jobs_total",
            &[("handler_type", "other"), ("status", "success")]
        ),
        Some(50.0)
    );
}
