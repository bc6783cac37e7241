//! A cap on the number of distinct values a label can take.
//!
//! Labels that user data can reach (guild ids, table names, handler types) would otherwise
//! grow a new time series for every value ever seen. A [`LabelCap`] admits the first `N`
//! distinct values and maps every later one to an overflow value (`other` by default), so a
//! metric has at most `N + 1` series for that label, whatever the input.
//!
//! ```
//! use botscope_core::LabelCap;
//!
//! let cap = LabelCap::new(2);
//! assert_eq!(cap.admit("a").as_str(), "a");
//! assert_eq!(cap.admit("b").as_str(), "b");
//! assert_eq!(cap.admit("c").as_str(), "other");
//! assert_eq!(cap.admit("a").as_str(), "a"); // admitted values stay admitted
//! ```
//!
//! # Concurrency
//!
//! Looking up a value that is already admitted takes no lock: it hashes the value and reads
//! an append-only open-addressing table. Admission reserves a slot with one atomic add. The
//! table is sized once, at twice the cap, so it never rehashes.

use std::fmt;
use std::hash::BuildHasher;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry::{KeyValue, StringValue, Value};

/// The overflow value used unless [`LabelCap::with_overflow`] sets another.
pub const OVERFLOW: &str = "other";

/// The largest cap a [`LabelCap`] holds; larger requests are clamped to it.
///
/// A label with a million values is no longer a label a Prometheus server can keep.
pub const MAX_CAP: usize = 1 << 20;

/// The default cap of user-influenced labels such as `guild_id`.
pub const DEFAULT_CAP: usize = 1_000;

/// At most `cap` distinct values of a label, then an overflow value. See the [module
/// docs](self).
pub struct LabelCap {
    cap: usize,
    admitted: AtomicUsize,
    slots: Box<[OnceLock<StringValue>]>,
    /// Seeded per cap, so values cannot be chosen to collide in every process; foldhash, not
    /// SipHash: the admission of a label value is on every request's path.
    hasher: foldhash::quality::RandomState,
    overflow: StringValue,
}

impl LabelCap {
    /// A cap admitting at most `cap` distinct values (clamped to [`MAX_CAP`]); `0` sends
    /// every value to the overflow value, which switches the label off.
    pub fn new(cap: usize) -> Self {
        let cap = cap.min(MAX_CAP);
        // Load factor at most one half keeps probe sequences short.
        let len = (cap * 2).next_power_of_two().max(2);
        Self {
            cap,
            admitted: AtomicUsize::new(0),
            slots: (0..len).map(|_| OnceLock::new()).collect(),
            hasher: foldhash::quality::RandomState::default(),
            overflow: StringValue::from(OVERFLOW),
        }
    }

    /// A cap that admits nothing: every value becomes the overflow value.
    pub fn disabled() -> Self {
        Self::new(0)
    }

    /// Uses `overflow` instead of `other` for values past the cap.
    #[must_use]
    pub fn with_overflow(mut self, overflow: impl Into<StringValue>) -> Self {
        self.overflow = overflow.into();
        self
    }

    /// The maximum number of distinct values admitted.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The number of distinct values admitted so far.
    pub fn len(&self) -> usize {
        self.admitted.load(Ordering::Acquire).min(self.cap)
    }

    /// Whether no value has been admitted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The overflow value.
    pub fn overflow(&self) -> &StringValue {
        &self.overflow
    }

    /// The label value for `value`: `value` itself if it is (or can still be) admitted, else
    /// the overflow value. Cloning the result is a reference-count increment.
    pub fn admit(&self, value: &str) -> StringValue {
        let mask = self.slots.len() - 1;
        let start = self.hasher.hash_one(value) as usize;
        for probe in 0..self.slots.len() {
            let slot = &self.slots[(start.wrapping_add(probe)) & mask];
            match slot.get() {
                Some(held) if held.as_str() == value => return held.clone(),
                Some(_) => continue,
                None => {}
            }
            // An empty slot: the value is not admitted yet. Reserve room under the cap first,
            // so racing admissions can never exceed it.
            if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.cap {
                self.admitted.fetch_sub(1, Ordering::AcqRel);
                return self.overflow.clone();
            }
            match slot.set(StringValue::from(Arc::<str>::from(value))) {
                Ok(()) => {
                    if let Some(held) = slot.get() {
                        return held.clone();
                    }
                }
                Err(_) => {
                    // Another thread filled this slot first: give the reservation back and
                    // see whether it admitted the same value.
                    self.admitted.fetch_sub(1, Ordering::AcqRel);
                    if let Some(held) = slot.get().filter(|held| held.as_str() == value) {
                        return held.clone();
                    }
                }
            }
        }
        // Unreachable while the table is at most half full; overflow is the safe answer.
        self.overflow.clone()
    }

    /// [`admit`](Self::admit) as an attribute `key=value`.
    pub fn key_value(&self, key: &'static str, value: &str) -> KeyValue {
        KeyValue::new(key, Value::String(self.admit(value)))
    }
}

impl Default for LabelCap {
    /// A cap of [`DEFAULT_CAP`] values.
    fn default() -> Self {
        Self::new(DEFAULT_CAP)
    }
}

impl fmt::Debug for LabelCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelCap")
            .field("cap", &self.cap)
            .field("admitted", &self.len())
            .field("overflow", &self.overflow.as_str())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::thread;

    use super::*;

    static_assertions::assert_impl_all!(LabelCap: Send, Sync);

    #[test]
    fn a_million_values_through_a_cap_of_a_thousand_give_1001_outputs() {
        let cap = LabelCap::new(1_000);
        let outputs: HashSet<String> = (0..1_000_000u64)
            .map(|id| cap.admit(&id.to_string()).as_str().to_owned())
            .collect();
        assert_eq!(outputs.len(), 1_001);
        assert!(outputs.contains("other"));
        assert_eq!(cap.len(), 1_000);
    }

    #[test]
    fn admitted_values_are_returned_as_is() {
        let cap = LabelCap::new(3);
        for v in ["x", "y", "x", "z", "y"] {
            assert_eq!(cap.admit(v).as_str(), v);
        }
        assert_eq!(cap.admit("w").as_str(), "other");
        assert_eq!(cap.admit("z").as_str(), "z");
    }

    #[test]
    fn zero_cap_and_custom_overflow() {
        let cap = LabelCap::disabled();
        assert_eq!(cap.admit("1").as_str(), "other");
        assert!(cap.is_empty());
        let cap = LabelCap::new(0).with_overflow("_overflow");
        assert_eq!(cap.admit("1").as_str(), "_overflow");
    }

    #[test]
    fn huge_caps_are_clamped() {
        assert_eq!(LabelCap::new(usize::MAX).cap(), MAX_CAP);
    }

    #[test]
    fn concurrent_admission_never_exceeds_the_cap() {
        let cap = Arc::new(LabelCap::new(100));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let cap = Arc::clone(&cap);
                thread::spawn(move || {
                    (0..10_000u32)
                        .map(|i| {
                            cap.admit(&((i * 7 + t) % 500).to_string())
                                .as_str()
                                .to_owned()
                        })
                        .collect::<HashSet<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            all.extend(h.join().expect("thread panicked"));
        }
        assert_eq!(all.len(), 101);
        assert_eq!(cap.len(), 100);
    }
}
