//! [`CacheMetrics`] (feature `cache`): how much a twilight-cache-inmemory cache holds.
//!
//! ```
//! use std::sync::Arc;
//!
//! use botscope_gateway::CacheMetrics;
//! use twilight_cache_inmemory::DefaultInMemoryCache;
//!
//! let cache = Arc::new(DefaultInMemoryCache::new());
//! let _metrics = CacheMetrics::new(&cache);
//! // or CacheMetrics::builder(&cache).meter(meter).build()
//! // ... then, in the event loop: cache.update(&event);
//! ```
//!
//! # Metrics
//!
//! | name | type | labels |
//! |---|---|---|
//! | `cache_entries` | gauge | `resource` |
//!
//! `resource` is one of the counts twilight's `InMemoryCache::stats()` offers: `guilds`,
//! `unavailable_guilds`, `channels`, `members`, `presences`, `users`, `roles`, `emojis`,
//! `voice_states` ([`RESOURCES`]). Stickers and messages have no count there, and counting
//! them would walk every entry at each scrape, so they are left out.
//!
//! The gauges are read when the exporter collects (an observable gauge): nothing runs per
//! event. Each count is the length of one `DashMap`, read shard by shard under its read lock.
//! The callback holds the cache weakly: once the cache is dropped, the series stop.

use std::fmt;
use std::sync::{Arc, Weak};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableGauge};
use twilight_cache_inmemory::{CacheableModels, InMemoryCache, InMemoryCacheStats};

use crate::metrics::{CACHE_ENTRIES, RESOURCE};

/// The `resource` values of `cache_entries`, in the order they are reported.
pub const RESOURCES: [&str; 9] = [
    "guilds",
    "unavailable_guilds",
    "channels",
    "members",
    "presences",
    "users",
    "roles",
    "emojis",
    "voice_states",
];

/// The counts behind [`RESOURCES`], in the same order.
fn counts<M: CacheableModels>(stats: &InMemoryCacheStats<'_, M>) -> [usize; 9] {
    [
        stats.guilds(),
        stats.unavailable_guilds(),
        stats.channels(),
        stats.members(),
        stats.presences(),
        stats.users(),
        stats.roles(),
        stats.emojis(),
        stats.voice_states(),
    ]
}

/// Gauges of a twilight-cache-inmemory cache's sizes. See the [module docs](self).
///
/// One per cache: two caches reporting into one meter would publish the same series.
#[must_use = "the gauges report as long as the cache lives; keep the value with it"]
pub struct CacheMetrics {
    _entries: ObservableGauge<u64>,
}

/// Builds [`CacheMetrics`].
#[must_use]
pub struct CacheMetricsBuilder<M: CacheableModels> {
    cache: Weak<InMemoryCache<M>>,
    meter: Option<Meter>,
}

impl CacheMetrics {
    /// Gauges of `cache`, recorded into the global meter provider.
    pub fn new<M>(cache: &Arc<InMemoryCache<M>>) -> Self
    where
        M: CacheableModels + 'static,
        InMemoryCache<M>: Send + Sync,
    {
        Self::builder(cache).build()
    }

    /// A builder to choose the meter. The gauges hold `cache` weakly.
    pub fn builder<M: CacheableModels>(cache: &Arc<InMemoryCache<M>>) -> CacheMetricsBuilder<M> {
        CacheMetricsBuilder {
            cache: Arc::downgrade(cache),
            meter: None,
        }
    }
}

impl<M: CacheableModels> CacheMetricsBuilder<M> {
    /// Records into `meter` instead of the global provider's meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Registers the gauges.
    pub fn build(self) -> CacheMetrics
    where
        M: 'static,
        InMemoryCache<M>: Send + Sync,
    {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        let cache = self.cache;
        let attributes = RESOURCES.map(|resource| [KeyValue::new(RESOURCE, resource)]);
        let entries = meter
            .u64_observable_gauge(CACHE_ENTRIES)
            .with_description("Entries of the in-memory cache, by resource")
            .with_callback(move |observer| {
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                for (count, attributes) in counts(&cache.stats()).into_iter().zip(&attributes) {
                    observer.observe(count as u64, attributes);
                }
            })
            .build();
        CacheMetrics { _entries: entries }
    }
}

impl fmt::Debug for CacheMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheMetrics").finish_non_exhaustive()
    }
}

impl<M: CacheableModels> fmt::Debug for CacheMetricsBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheMetricsBuilder")
            .field("cache_alive", &(self.cache.strong_count() > 0))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use botscope_testkit::TestMetrics;
    use twilight_cache_inmemory::DefaultInMemoryCache;

    use super::*;

    static_assertions::assert_impl_all!(CacheMetrics: Send, Sync);

    #[test]
    fn every_resource_is_reported_and_the_series_stop_with_the_cache() {
        let metrics = TestMetrics::new("disruptor");
        let cache = Arc::new(DefaultInMemoryCache::new());
        let _gauges = CacheMetrics::builder(&cache).meter(metrics.meter()).build();
        let scrape = metrics.scrape();
        let mut reported = scrape.label_values("disruptor_cache_entries", "resource");
        reported.sort();
        let mut expected = RESOURCES.map(str::to_owned).to_vec();
        expected.sort();
        assert_eq!(reported, expected);
        assert_eq!(
            scrape.value("disruptor_cache_entries", &[("resource", "guilds")]),
            Some(0.0)
        );

        drop(cache);
        assert!(!metrics.scrape().has("disruptor_cache_entries"));
    }
}
