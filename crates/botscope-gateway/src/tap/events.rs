//! `gateway_events_total`: a shard's event counts, kept in atomics and reported at collection.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::AsyncInstrument;
use twilight_model::gateway::event::EventType;

use crate::metrics::{EVENT_KINDS, EVENT_TYPE, event_type_name};

/// The count of one event type on one shard.
#[derive(Default)]
struct EventSlot {
    count: AtomicU64,
    attributes: OnceLock<[KeyValue; 2]>,
}

impl EventSlot {
    /// Counts one event; returns how many of its type came before.
    fn count(&self, shard: &KeyValue, kind: EventType) -> u64 {
        self.attributes.get_or_init(|| {
            [
                shard.clone(),
                KeyValue::new(EVENT_TYPE, event_type_name(kind)),
            ]
        });
        self.count.fetch_add(1, Ordering::Relaxed)
    }

    fn report(&self, observer: &dyn AsyncInstrument<u64>) {
        if let Some(attributes) = self.attributes.get() {
            observer.observe(self.count.load(Ordering::Relaxed), attributes);
        }
    }
}

/// The event counts of one shard.
pub(super) struct EventCounts {
    /// Per [`EventType`]: its count, and its `[shard, event_type]` built on its first event.
    table: Box<[EventSlot]>,
}

impl EventCounts {
    pub(super) fn new() -> Self {
        Self {
            table: (0..EVENT_KINDS).map(|_| EventSlot::default()).collect(),
        }
    }

    /// Counts one event of `kind` on `shard`; returns how many of its type came before.
    pub(super) fn count(&self, shard: &KeyValue, kind: EventType) -> u64 {
        // `EventType` is exhaustive and `EVENT_KINDS` counts its variants: always `Some`.
        self.table
            .get(kind as usize)
            .map_or(0, |slot| slot.count(shard, kind))
    }

    /// Reports every event type seen so far.
    pub(super) fn report(&self, observer: &dyn AsyncInstrument<u64>) {
        for slot in &self.table {
            slot.report(observer);
        }
    }
}
