//! `botscope_core::meter::install_provider`: instruments of every kind built before it report
//! after it, with what they measured before. Installing is process-wide, so this binary holds
//! this one test.

use std::sync::Arc;

use botscope::core::meter::{global_meter, install_provider, provider_installed};
use botscope_testkit::TestMetrics;
use opentelemetry::KeyValue;

/// Instruments of every kind built before the install report after it, with what they
/// measured before, and meters asked for after it are the real ones.
#[test]
fn instruments_built_before_install_report_after_it() {
    let meter = global_meter("late-test", "0.0.0");
    let counter = meter.u64_counter("things").build();
    let bound = meter
        .f64_histogram("waits")
        .with_unit("s")
        .with_boundaries(vec![1.0, 2.0])
        .build();
    let bound = bound.bind(&[KeyValue::new("kind", "bound")]);
    let gauge = meter.i64_up_down_counter("open").build();
    let _observed = meter
        .u64_observable_gauge("observed")
        .with_callback(|observer| observer.observe(7, &[]))
        .build();
    counter.add(100, &[KeyValue::new("when", "before")]);
    bound.record(100.0);
    gauge.add(1, &[]);
    assert!(!provider_installed());

    let metrics = TestMetrics::new("late");
    assert!(install_provider(Arc::new(metrics.provider().clone())));
    assert!(
        !install_provider(Arc::new(metrics.provider().clone())),
        "binds once"
    );
    counter.add(2, &[KeyValue::new("when", "after")]);
    bound.record(1.5);
    gauge.add(-3, &[]);
    let after = global_meter("late-test", "0.0.0")
        .u64_counter("later")
        .build();
    after.add(1, &[]);

    let scrape = metrics.scrape();
    assert_eq!(
        scrape.value("late_things_total", &[("when", "after")]),
        Some(2.0)
    );
    assert_eq!(
        scrape.value("late_things_total", &[("when", "before")]),
        Some(100.0)
    );
    assert_eq!(
        scrape.value(
            "late_waits_seconds_bucket",
            &[("kind", "bound"), ("le", "2")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("late_waits_seconds_count", &[("kind", "bound")]),
        Some(2.0)
    );
    assert_eq!(scrape.value("late_open", &[]), Some(-2.0));
    assert_eq!(scrape.value("late_observed", &[]), Some(7.0));
    assert_eq!(scrape.value("late_later_total", &[]), Some(1.0));
}
