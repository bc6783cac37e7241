//! [`InstrumentedQueue`]: how long shards wait for their turn to identify.
//!
//! Discord lets `max_concurrency` shards identify per 5 seconds, and twilight-gateway asks a
//! [`Queue`] before each IDENTIFY. Wrap the queue the shards share, as tracing's `Instrument`
//! wraps a future, and hand the wrapper to `ConfigBuilder::queue`:
//!
//! ```no_run
//! use botscope_gateway::InstrumentedQueue;
//! use twilight_gateway::queue::InMemoryQueue;
//! use twilight_gateway::{ConfigBuilder, Intents, Shard, ShardId};
//!
//! # #[tokio::main] async fn main() {
//! // InMemoryQueue::new(max_concurrency, remaining, reset_after, total) from GET /gateway/bot
//! let queue = InstrumentedQueue::new(InMemoryQueue::default());
//! // or InstrumentedQueue::builder(InMemoryQueue::default()).meter(meter).build()
//! let config = ConfigBuilder::new("token".to_owned(), Intents::GUILDS)
//!     .queue(queue.clone())
//!     .build();
//! let shard = Shard::with_config(ShardId::ONE, config);
//! # }
//! ```
//!
//! # Metrics
//!
//! | name | type | labels |
//! |---|---|---|
//! | `gateway_identify_wait_seconds` | histogram | `shard`: from `enqueue` to the go-ahead |
//! | `gateway_identify_queue_depth` | gauge | —: shards waiting now |
//!
//! A wait is recorded when the inner queue lets the shard go. A shard that gave up waiting
//! (dropped, or disconnected before its turn) only leaves the depth; one whose inner channel
//! closed (the shard then asks again) records nothing for that turn, and its next turn is
//! timed from the new `enqueue`. Buckets: [`IDENTIFY_WAIT_BUCKETS`], up to two minutes.
//!
//! # How
//!
//! `enqueue` must return a `oneshot::Receiver`, so the wrapper hands the shard a receiver of
//! its own and spawns a small task on the current Tokio runtime that waits for the inner
//! queue's go-ahead, records it and passes it on. A closed inner channel closes the shard's
//! (so it asks again, as without the wrapper); a shard that drops its receiver drops the
//! inner one too, so the inner queue skips it, as without the wrapper. The depth moves
//! through a [`GaugeGuard`], so a dropped shard or task always brings it back down. Called
//! outside a Tokio runtime (twilight calls it from the shard's poll, inside one), the
//! wrapper hands out the inner receiver unmeasured rather than fail.
//!
//! [`IDENTIFY_WAIT_BUCKETS`]: crate::metrics::IDENTIFY_WAIT_BUCKETS

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use botscope_core::GaugeGuard;
use botscope_core::outcome::{Ending, Finish, Timer};
use botscope_core::span::Span;
use opentelemetry::metrics::{BoundUpDownCounter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue};
use tokio::sync::oneshot;
use twilight_gateway_queue::Queue;

use crate::metrics::{
    GATEWAY_IDENTIFY_QUEUE_DEPTH, GATEWAY_IDENTIFY_WAIT, IDENTIFY_WAIT_BUCKETS, SECONDS, SHARD,
};

/// A twilight-gateway [`Queue`] that records how long shards wait to identify. See the
/// [module docs](self).
///
/// Cloning clones the inner queue and shares the instruments: clone it into the config of
/// every shard that shares the inner queue.
#[derive(Clone)]
pub struct InstrumentedQueue<Q> {
    inner: Q,
    instruments: Arc<Instruments>,
}

/// Builds an [`InstrumentedQueue`].
#[must_use]
pub struct InstrumentedQueueBuilder<Q> {
    inner: Q,
    meter: Option<Meter>,
}

impl<Q> InstrumentedQueueBuilder<Q> {
    /// Records into `meter` instead of the global provider's meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Builds the instruments.
    pub fn build(self) -> InstrumentedQueue<Q> {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        let instruments = Instruments {
            wait: meter
                .f64_histogram(GATEWAY_IDENTIFY_WAIT)
                .with_unit(SECONDS)
                .with_description("Time a shard waited in the identify queue for its turn")
                .with_boundaries(IDENTIFY_WAIT_BUCKETS.to_vec())
                .build(),
            depth: meter
                .i64_up_down_counter(GATEWAY_IDENTIFY_QUEUE_DEPTH)
                .with_description("Shards waiting in the identify queue")
                .build()
                .bind(&[]),
        };
        InstrumentedQueue {
            inner: self.inner,
            instruments: Arc::new(instruments),
        }
    }
}

impl<Q: fmt::Debug> fmt::Debug for InstrumentedQueueBuilder<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedQueueBuilder")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<Q> InstrumentedQueue<Q> {
    /// Wraps `inner`, recording into the global meter provider.
    pub fn new(inner: Q) -> Self {
        Self::builder(inner).build()
    }

    /// A builder to choose the meter.
    pub fn builder(inner: Q) -> InstrumentedQueueBuilder<Q> {
        InstrumentedQueueBuilder { inner, meter: None }
    }

    /// The inner queue.
    pub fn get_ref(&self) -> &Q {
        &self.inner
    }

    /// The inner queue, mutably.
    pub fn get_mut(&mut self) -> &mut Q {
        &mut self.inner
    }

    /// The inner queue.
    pub fn into_inner(self) -> Q {
        self.inner
    }
}

impl<Q: fmt::Debug> fmt::Debug for InstrumentedQueue<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedQueue")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<Q: Queue> Queue for InstrumentedQueue<Q> {
    fn enqueue(&self, id: u32) -> oneshot::Receiver<()> {
        // Asked first, so the inner queue sees the shard in the same order either way.
        let inner = self.inner.enqueue(id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return inner;
        };
        let (tx, rx) = oneshot::channel();
        let wait = IdentifyWait {
            histogram: self.instruments.wait.clone(),
            shard: KeyValue::new(SHARD, StringValue::from(id.to_string())),
        };
        let timer = Timer::start(wait).with_gauge(GaugeGuard::new(&self.instruments.depth));
        runtime.spawn(forward(inner, tx, timer));
        rx
    }
}

struct Instruments {
    wait: Histogram<f64>,
    depth: BoundUpDownCounter<i64>,
}

type GoAhead = Result<(), oneshot::error::RecvError>;

/// Waits for the inner queue's go-ahead and passes it on to the shard.
async fn forward(
    mut inner: oneshot::Receiver<()>,
    mut shard: oneshot::Sender<()>,
    timer: Timer<GoAhead, IdentifyWait>,
) {
    tokio::select! {
        go_ahead = &mut inner => {
            // Recorded (and the depth lowered) before the shard may send IDENTIFY.
            timer.complete(&go_ahead);
            if go_ahead.is_ok() {
                // The shard may have gone meanwhile: nothing to tell it then.
                let _ = shard.send(());
            }
            // Else `shard` drops here: its channel closes too, and it asks again.
        }
        () = shard.closed() => {
            // The shard gave up: `inner` drops with the task, so the inner queue skips it, and
            // the timer ends as cancelled, which records nothing but lowers the depth.
            drop(timer);
        }
    }
}

/// Records a wait that ended with the go-ahead.
struct IdentifyWait {
    histogram: Histogram<f64>,
    shard: KeyValue,
}

impl Finish<GoAhead> for IdentifyWait {
    /// `identify wait`, with the shard.
    fn span(&self) -> Span {
        botscope_core::unit_span!(
            target: "botscope_gateway",
            "identify.wait",
            otel.name = "identify wait",
            "discord.shard.id" = %self.shard.value,
        )
    }

    fn finish(self, elapsed: Duration, ending: Ending<'_, GoAhead>) {
        if let Ending::Completed(Ok(())) = ending {
            self.histogram
                .record(elapsed.as_secs_f64(), std::slice::from_ref(&self.shard));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use botscope_testkit::TestMetrics;

    use super::*;

    const WAIT: &str = "disruptor_gateway_identify_wait_seconds";
    const DEPTH: &str = "disruptor_gateway_identify_queue_depth";

    static_assertions::assert_impl_all!(InstrumentedQueue<twilight_gateway_queue::InMemoryQueue>: Clone, Send, Sync, Queue);

    /// A shard id and the sender of its go-ahead.
    type Waiting = (u32, oneshot::Sender<()>);

    /// Keeps every go-ahead sender, for the test to answer or drop.
    #[derive(Clone, Default)]
    struct Manual(Arc<Mutex<Vec<Waiting>>>);

    impl Queue for Manual {
        fn enqueue(&self, id: u32) -> oneshot::Receiver<()> {
            let (tx, rx) = oneshot::channel();
            self.0.lock().unwrap().push((id, tx));
            rx
        }
    }

    impl Manual {
        fn take(&self, id: u32) -> oneshot::Sender<()> {
            let mut waiting = self.0.lock().unwrap();
            let index = waiting.iter().position(|(shard, _)| *shard == id).unwrap();
            waiting.remove(index).1
        }
    }

    fn queue(metrics: &TestMetrics) -> (Manual, InstrumentedQueue<Manual>) {
        let manual = Manual::default();
        let queue = InstrumentedQueue::builder(manual.clone())
            .meter(metrics.meter())
            .build();
        (manual, queue)
    }

    #[tokio::test(start_paused = true)]
    async fn waits_are_recorded_per_shard_and_the_depth_follows_the_queue() {
        let metrics = TestMetrics::new("disruptor");
        let (manual, queue) = queue(&metrics);
        let first = queue.enqueue(0);
        let second = queue.enqueue(1);
        tokio::task::yield_now().await;
        assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(2.0));

        // Lets `shard` go after `delay`; the depth left and the wait recorded.
        let go = async |shard: u32, waiting: oneshot::Receiver<()>, delay: Duration| {
            tokio::time::advance(delay).await;
            manual.take(shard).send(()).unwrap();
            waiting.await.expect("the go-ahead passes through");
            let scrape = metrics.scrape();
            let shard = shard.to_string();
            let sum = scrape.value(&format!("{WAIT}_sum"), &[("shard", &shard)]);
            (scrape.value(DEPTH, &[]), sum, scrape)
        };
        let (depth, waited, _) = go(0, first, Duration::from_millis(1_500)).await;
        assert_eq!((depth, waited), (Some(1.0), Some(1.5)));
        let (depth, waited, scrape) = go(1, second, Duration::from_secs(40)).await;
        assert_eq!((depth, waited), (Some(0.0), Some(41.5)));
        // 41.5 s lands between the 30 s and 60 s bounds.
        let bucket =
            |le: &str| scrape.value(&format!("{WAIT}_bucket"), &[("shard", "1"), ("le", le)]);
        assert_eq!(bucket("30"), Some(0.0));
        assert_eq!(bucket("60"), Some(1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_inner_channel_stays_closed_and_records_no_wait() {
        let metrics = TestMetrics::new("disruptor");
        let (manual, queue) = queue(&metrics);
        let waiting = queue.enqueue(3);
        tokio::task::yield_now().await;
        drop(manual.take(3));
        assert!(
            waiting.await.is_err(),
            "the shard sees a closed channel and requeues"
        );
        let scrape = metrics.scrape();
        assert_eq!(scrape.value(DEPTH, &[]), Some(0.0));
        assert_eq!(
            scrape.value(&format!("{WAIT}_count"), &[("shard", "3")]),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_that_gives_up_leaves_the_depth_and_the_inner_queue() {
        let metrics = TestMetrics::new("disruptor");
        let (manual, queue) = queue(&metrics);
        let waiting = queue.enqueue(5);
        tokio::task::yield_now().await;
        assert_eq!(metrics.scrape().value(DEPTH, &[]), Some(1.0));
        drop(waiting);
        let mut inner = manual.take(5);
        tokio::time::timeout(Duration::from_secs(1), inner.closed())
            .await
            .expect("the inner queue sees the shard gone");
        let scrape = metrics.scrape();
        assert_eq!(scrape.value(DEPTH, &[]), Some(0.0));
        assert_eq!(
            scrape.value(&format!("{WAIT}_count"), &[("shard", "5")]),
            None
        );
    }

    #[test]
    fn outside_a_runtime_the_inner_receiver_is_handed_out() {
        let metrics = TestMetrics::new("disruptor");
        let (manual, queue) = queue(&metrics);
        let mut waiting = queue.enqueue(7);
        manual.take(7).send(()).unwrap();
        assert_eq!(waiting.try_recv(), Ok(()));
        assert_eq!(metrics.scrape().value(DEPTH, &[]).unwrap_or(0.0), 0.0);
    }
}
