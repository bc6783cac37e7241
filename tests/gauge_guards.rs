//! botscope-core's gauge guard as a scrape shows it: a gauge held by a `GaugeGuard`, alone or in
//! a `Timed`, comes back down on every way out (drop, cancel, panic, completion).
//!
//! Here rather than in botscope-core, which would have to dev-depend on botscope-testkit,
//! itself built on botscope-core: a loop between crates.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use botscope::core::{Ending, Finish, GaugeGuard, Timed};
use botscope_testkit::TestMetrics;
use opentelemetry::KeyValue;

/// Records nothing: only the gauge is under test.
struct Ignore;

impl<T> Finish<T> for Ignore {
    fn finish(self, _elapsed: Duration, _ending: Ending<'_, T>) {}
}

fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// An up/down counter of `metrics` bound to `k="v"`, and a reader of its scraped value.
fn active(
    metrics: &TestMetrics,
) -> (
    opentelemetry::metrics::BoundUpDownCounter<i64>,
    impl Fn() -> Option<f64> + '_,
) {
    let counter = metrics
        .meter()
        .i64_up_down_counter("active")
        .build()
        .bind(&[KeyValue::new("k", "v")]);
    (counter, || {
        metrics.scrape().value("t_active", &[("k", "v")])
    })
}

#[test]
fn a_guard_brings_the_gauge_back_on_drop_and_on_panic() {
    let metrics = TestMetrics::new("t");
    let (counter, current) = active(&metrics);

    let a = GaugeGuard::new(&counter);
    let b = GaugeGuard::new(&counter);
    assert_eq!(current(), Some(2.0));
    drop(a);
    assert_eq!(current(), Some(1.0));

    let result = catch_unwind(AssertUnwindSafe(|| {
        let _held = GaugeGuard::new(&counter);
        panic!("job failed");
    }));
    assert!(result.is_err());
    assert_eq!(current(), Some(1.0));
    drop(b);
    assert_eq!(current(), Some(0.0));
}

#[test]
fn a_timed_future_holds_its_gauge_until_the_end_on_every_path() {
    let metrics = TestMetrics::new("t");
    let (counter, current) = active(&metrics);
    let guard = || GaugeGuard::new(&counter);

    let mut cancelled =
        Box::pin(Timed::new(std::future::pending::<()>(), Ignore).with_gauge(guard()));
    let _ = poll_once(cancelled.as_mut());
    assert_eq!(current(), Some(1.0));
    drop(cancelled);
    assert_eq!(current(), Some(0.0));

    let mut panicking = Box::pin(
        Timed::new(
            async {
                if true {
                    panic!("boom")
                }
            },
            Ignore,
        )
        .with_gauge(guard()),
    );
    assert_eq!(current(), Some(1.0));
    let _ = catch_unwind(AssertUnwindSafe(|| poll_once(panicking.as_mut())));
    assert_eq!(current(), Some(0.0));

    let mut done = Box::pin(Timed::new(std::future::ready(()), Ignore).with_gauge(guard()));
    let _ = poll_once(done.as_mut());
    assert_eq!(current(), Some(0.0));
}
