//! `gateway_events_total`: a shard's event counts, kept in atomics and reported at collection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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
    /// Indexed by [`EventType`] discriminant: every variant twilight had when this crate was
    /// written ([`EVENT_KINDS`]). The hot path is one atomic add.
    table: Box<[EventSlot]>,
    /// Variants past the table: those a later twilight-model adds. Slower (a lock), but
    /// counted under their own name rather than dropped.
    overflow: Mutex<Vec<(EventType, Arc<EventSlot>)>>,
}

impl EventCounts {
    pub(super) fn new() -> Self {
        Self::with_table(EVENT_KINDS)
    }

    pub(super) fn with_table(len: usize) -> Self {
        Self {
            table: (0..len).map(|_| EventSlot::default()).collect(),
            overflow: Mutex::new(Vec::new()),
        }
    }

    /// Counts one event of `kind` on `shard`; returns how many of its type came before.
    pub(super) fn count(&self, shard: &KeyValue, kind: EventType) -> u64 {
        if let Some(slot) = self.table.get(kind as usize) {
            return slot.count(shard, kind);
        }
        let slot = {
            let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
            match overflow.iter().find(|(seen, _)| *seen == kind) {
                Some((_, slot)) => Arc::clone(slot),
                None => {
                    let slot = Arc::new(EventSlot::default());
                    overflow.push((kind, Arc::clone(&slot)));
                    slot
                }
            }
        };
        slot.count(shard, kind)
    }

    /// Reports every event type seen so far.
    pub(super) fn report(&self, observer: &dyn AsyncInstrument<u64>) {
        for slot in &self.table {
            slot.report(observer);
        }
        let overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, slot) in overflow.iter() {
            slot.report(observer);
        }
    }
}
