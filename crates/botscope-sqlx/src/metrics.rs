//! Metric names, units and the instruments behind them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};

use botscope_core::{LabelCap, status};
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, Value};
use quanta::Clock;

use crate::buffer::DurationCells;
use crate::error_type::error_type;
use crate::sql;

/// Histogram `N_database_query_duration_seconds{db,operation,table}`.
pub const QUERY_DURATION: &str = "database_query_duration";
/// Counter `N_database_queries_total{db,operation,table,status}`.
pub const QUERIES: &str = "database_queries";
/// Counter `N_database_errors_total{db,operation,table,error_type}`.
pub const ERRORS: &str = "database_errors";
/// Histogram `N_database_connection_acquire_duration_seconds{db}`.
pub const ACQUIRE_DURATION: &str = "database_connection_acquire_duration";
/// Gauge `N_database_connections{db,state}`, `state` = `idle` or `in_use`.
pub const CONNECTIONS: &str = "database_connections";
/// Gauge `N_database_connections_max{db}`.
pub const CONNECTIONS_MAX: &str = "database_connections_max";
/// Unit of the duration histograms.
pub const SECONDS: &str = "s";

/// The default cap of distinct `table` values per pool.
pub const DEFAULT_TABLE_CAP: usize = 200;
/// Statements whose labels are cached per pool beside the 256 lock-free slots; the cache
/// starts over when full.
pub const STATEMENT_CACHE_CAPACITY: usize = 1_024;

pub(crate) const SCOPE: &str = env!("CARGO_PKG_NAME");
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every series of a pool shares: the clock, the acquire wait and the error counter.
#[derive(Debug)]
struct PoolWide {
    /// The TSC where it is invariant (calibrated once per process), else the monotonic clock.
    clock: Clock,
    acquires: DurationCells,
    /// `acquire_duration` bound to `db`, for the replay.
    acquire_duration: BoundHistogram<f64>,
    errors: Counter<u64>,
}

/// One `{db, operation, table}` series: its attributes and what it counted. Statements that
/// share an operation and a table share a series, which outlives the statement cache.
#[derive(Debug)]
pub(crate) struct Series {
    pool: Arc<PoolWide>,
    /// `db`, `operation`, `table`.
    base: [KeyValue; 3],
    /// Successes since the last replay, added to `success_counter` then.
    successes: AtomicU64,
    /// `queries` bound to `base` + `status=success` and `status=error`. Synchronous, so that
    /// two wrappers with the same labels add up.
    success_counter: BoundCounter<u64>,
    failures: BoundCounter<u64>,
    durations: DurationCells,
    /// `query_duration` bound to `base`, for the replay.
    duration: BoundHistogram<f64>,
}

impl Series {
    /// Hands the successes and durations recorded since the last call to OpenTelemetry.
    fn hand_over(&self) {
        let successes = self.successes.swap(0, Relaxed);
        if successes > 0 {
            self.success_counter.add(successes);
        }
        self.durations.drain(&self.duration);
    }

    #[inline]
    fn record(&self, elapsed_ns: u64, error: Option<&sqlx::Error>) {
        self.durations.record_nanos(elapsed_ns);
        let Some(error) = error else {
            self.successes.fetch_add(1, Relaxed);
            return;
        };
        self.failures.add(1);
        let [db, operation, table] = self.base.clone();
        self.pool.errors.add(
            1,
            &[
                db,
                operation,
                table,
                KeyValue::new("error_type", error_type(error)),
            ],
        );
    }
}

/// The successes and durations of a pool's queries, handed to OpenTelemetry by [`Replay`].
#[derive(Debug)]
struct Recorded {
    pool: Arc<PoolWide>,
    queries: Counter<u64>,
    query_duration: Histogram<f64>,
    /// Bounded: a closed set of operations times at most `table cap + 2` tables.
    series: Mutex<HashMap<(&'static str, StringValue), Arc<Series>>>,
}

/// Replays into the success counter and the duration histograms what the pool's queries
/// recorded since the last collect. Call it from a collect callback.
///
/// It holds the pool's metrics weakly: OpenTelemetry never drops a callback, so a strong
/// reference would keep every pool's series alive. What a dropped pool recorded since the
/// last collect is handed over as its series and its pool-wide state drop.
#[derive(Debug, Clone)]
pub(crate) struct Replay(Weak<Recorded>);

impl Replay {
    pub(crate) fn run(&self) {
        let Some(recorded) = self.0.upgrade() else {
            return;
        };
        let series: Vec<Arc<Series>> = recorded
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for series in &series {
            series.hand_over();
        }
        recorded.pool.hand_over();
    }
}

impl Drop for Series {
    fn drop(&mut self) {
        self.hand_over();
    }
}

impl PoolWide {
    /// Records a wait for a connection that began at the raw clock reading `start`.
    #[inline]
    fn record_acquire(&self, start: u64) {
        self.acquires
            .record_nanos(self.clock.delta_as_nanos(start, self.clock.raw()));
    }

    /// Hands the acquire waits recorded since the last call to OpenTelemetry.
    fn hand_over(&self) {
        self.acquires.drain(&self.acquire_duration);
    }
}

impl Drop for PoolWide {
    fn drop(&mut self) {
        self.hand_over();
    }
}

/// Slots of the lock-free statement cache (a power of two).
const SLOTS: usize = 256;

/// A statement text and its series, set once.
type Slot = OnceLock<(Box<str>, Arc<Series>)>;

/// Instruments and label caches shared by a pool, its transactions and its connections.
///
/// The hot path counts durations in atomics ([`DurationCells`]); a collect callback hands them
/// to the histograms through [`Replay`].
#[derive(Debug)]
pub(crate) struct Metrics {
    recorded: Arc<Recorded>,
    db: KeyValue,
    tables: LabelCap,
    /// Statement texts by hash, each slot set once and then only read: most queries find
    /// their series here without a lock.
    slots: Box<[Slot]>,
    /// The statements whose slot was taken; starts over when full.
    statements: RwLock<HashMap<Box<str>, Arc<Series>, BuildHasherDefault<TextHasher>>>,
}

/// The statement cache's hasher: FxHash, a multiply per word. The cache is looked up on every
/// query and SipHash cost more than the rest of the lookup; the keys are the application's SQL
/// texts, at most [`STATEMENT_CACHE_CAPACITY`] of them, so flooding is not a concern.
#[derive(Default)]
struct TextHasher(u64);

impl TextHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    /// The slot of `sql`, from the hash's top bits: they depend on every byte, where the low
    /// bits of a multiply see only the low bits of its input.
    fn slot(sql: &str) -> usize {
        let mut hasher = Self::default();
        hasher.write(sql.as_bytes());
        (hasher.finish() >> (u64::BITS - SLOTS.trailing_zeros())) as usize
    }

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for TextHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Metrics {
    pub(crate) fn new(meter: &Meter, db: StringValue, table_cap: usize) -> Self {
        let db = KeyValue::new("db", Value::String(db));
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit(SECONDS)
                .with_description(description)
                .with_boundaries(botscope_core::buckets::default_buckets())
                .build()
        };
        let pool = Arc::new(PoolWide {
            clock: Clock::new(),
            acquires: DurationCells::default(),
            acquire_duration: duration(
                ACQUIRE_DURATION,
                "Time spent waiting for a pool connection.",
            )
            .bind(std::slice::from_ref(&db)),
            errors: meter
                .u64_counter(ERRORS)
                .with_description("Failed queries by error class.")
                .build(),
        });
        let recorded = Arc::new(Recorded {
            pool,
            queries: meter
                .u64_counter(QUERIES)
                .with_description("Queries by outcome.")
                .build(),
            query_duration: duration(
                QUERY_DURATION,
                "Time from asking for a connection to the end of a query.",
            ),
            series: Mutex::new(HashMap::new()),
        });
        Self {
            recorded,
            db,
            tables: LabelCap::new(table_cap),
            slots: std::iter::repeat_with(Slot::new).take(SLOTS).collect(),
            statements: RwLock::new(HashMap::default()),
        }
    }

    pub(crate) fn db(&self) -> &KeyValue {
        &self.db
    }

    /// The collect hook that hands recorded durations to the histograms.
    pub(crate) fn replay(&self) -> Replay {
        Replay(Arc::downgrade(&self.recorded))
    }

    /// The series of `sql`: from its slot, the statement cache or the lexer.
    pub(crate) fn statement(&self, sql: &str) -> Arc<Series> {
        let slot = &self.slots[TextHasher::slot(sql)];
        if let Some((text, series)) = slot.get()
            && **text == *sql
        {
            return Arc::clone(series);
        }
        if let Ok(cache) = self.statements.read()
            && let Some(series) = cache.get(sql)
        {
            return Arc::clone(series);
        }
        let classified = sql::classify(sql);
        let table = match classified.table() {
            Some(table) => self.tables.admit(table),
            None => StringValue::from(""),
        };
        let series = self.series(classified.operation(), table);
        if slot.set((sql.into(), Arc::clone(&series))).is_err()
            && let Ok(mut cache) = self.statements.write()
        {
            if cache.len() >= STATEMENT_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(sql.into(), Arc::clone(&series));
        }
        series
    }

    fn series(&self, operation: &'static str, table: StringValue) -> Arc<Series> {
        let mut all = self
            .recorded
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let series = all
            .entry((operation, table))
            .or_insert_with_key(|(_, table)| {
                let base = [
                    self.db.clone(),
                    KeyValue::new("operation", operation),
                    KeyValue::new("table", Value::String(table.clone())),
                ];
                let with_status = |status: &'static str| {
                    let [db, operation, table] = base.clone();
                    [db, operation, table, KeyValue::new("status", status)]
                };
                let queries = &self.recorded.queries;
                Arc::new(Series {
                    pool: Arc::clone(&self.recorded.pool),
                    successes: AtomicU64::new(0),
                    success_counter: queries.bind(&with_status(status::SUCCESS)),
                    failures: queries.bind(&with_status(status::ERROR)),
                    duration: self.recorded.query_duration.bind(&base),
                    base,
                    durations: DurationCells::default(),
                })
            });
        Arc::clone(series)
    }

    /// A guard timing a query of `sql`, from now.
    pub(crate) fn start(&self, sql: &str) -> QueryGuard {
        QueryGuard::new(self.statement(sql))
    }

    /// A raw reading of the clock, for [`record_acquire`](Self::record_acquire).
    pub(crate) fn now(&self) -> u64 {
        self.recorded.pool.clock.raw()
    }

    /// Records a connection acquire that began at `start` (from [`now`](Self::now)).
    pub(crate) fn record_acquire(&self, start: u64) {
        self.recorded.pool.record_acquire(start);
    }
}

/// Times one query and records it exactly once: on [`finish`](Self::finish), or on drop,
/// which counts as a success (a stream dropped before its end did not fail).
#[derive(Debug)]
pub(crate) struct QueryGuard {
    series: Arc<Series>,
    /// A raw clock reading.
    start: u64,
    done: bool,
}

impl QueryGuard {
    fn new(series: Arc<Series>) -> Self {
        Self {
            start: series.pool.clock.raw(),
            series,
            done: false,
        }
    }

    /// Records the wait for a pool connection, which ended now (with a connection or not).
    #[inline]
    pub(crate) fn acquired(&self) {
        self.series.pool.record_acquire(self.start);
    }

    /// Records the outcome now.
    #[inline]
    pub(crate) fn finish(&mut self, error: Option<&sqlx::Error>) {
        if !self.done {
            self.done = true;
            let clock = &self.series.pool.clock;
            self.series
                .record(clock.delta_as_nanos(self.start, clock.raw()), error);
        }
    }

    /// Records the outcome of `result` and hands it back.
    #[inline]
    pub(crate) fn result<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        self.finish(result.as_ref().err());
        result
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider;

    use super::*;

    #[test]
    fn the_statement_cache_is_bounded_and_tables_are_capped() {
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("t");
        let metrics = Metrics::new(&meter, "db".into(), 2);
        for i in 0..STATEMENT_CACHE_CAPACITY * 2 + 7 {
            let _ = metrics.statement(&format!("SELECT * FROM t{} WHERE id = {i}", i % 3));
        }
        let cached = metrics
            .statements
            .read()
            .map(|c| c.len())
            .unwrap_or(usize::MAX);
        assert!(cached <= STATEMENT_CACHE_CAPACITY);
        let tables: Vec<_> = (0..3)
            .map(|i| {
                metrics.statement(&format!("SELECT 1 FROM t{i}")).base[2]
                    .value
                    .to_string()
            })
            .collect();
        assert_eq!(tables, ["t0", "t1", "other"]);
        let same = metrics.statement("SELECT 1 FROM t0");
        assert!(
            Arc::ptr_eq(&same, &metrics.statement("SELECT 1 FROM t0")),
            "cached"
        );
    }

    #[test]
    fn statements_sharing_a_slot_keep_their_own_series() {
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("t");
        let metrics = Metrics::new(&meter, "db".into(), 10);
        let first = "SELECT * FROM first";
        let second = (0..)
            .map(|i| format!("DELETE FROM second{i}"))
            .find(|sql| TextHasher::slot(sql) == TextHasher::slot(first))
            .unwrap_or_default();
        for _ in 0..2 {
            let first = metrics.statement(first);
            let second = metrics.statement(&second);
            assert_eq!(first.base[1].value.as_str(), "select");
            assert_eq!(second.base[1].value.as_str(), "delete");
            assert!(second.base[2].value.as_str().starts_with("second"));
        }
        let cached = metrics.statements.read().map(|c| c.len()).unwrap_or(0);
        assert_eq!(cached, 1, "the second statement lives in the map");
    }

    #[test]
    fn counts_survive_the_cache_starting_over() {
        let scraped = botscope_testkit::TestMetrics::new("t");
        let metrics = Arc::new(Metrics::new(&scraped.meter(), "db".into(), 10));
        // what the pool's collect callback does
        let replay = metrics.replay();
        let run = |sql: &str| metrics.start(sql).finish(None);
        // a statement whose slot is taken lives in the map, which starts over when full
        let first = "SELECT * FROM first";
        run(first);
        let kept = (0..)
            .map(|i| format!("SELECT * FROM kept{i}"))
            .find(|sql| TextHasher::slot(sql) == TextHasher::slot(first))
            .unwrap_or_default();
        let table = kept.rsplit(' ').next().unwrap_or_default().to_owned();
        run(&kept);
        for i in 0..SLOTS + STATEMENT_CACHE_CAPACITY + 1 {
            run(&format!("SELECT {i}"));
        }
        run(&kept);
        let value = |s: &botscope_testkit::Scrape| {
            s.value(
                "t_database_queries_total",
                &[("table", &table), ("status", "success")],
            )
        };
        replay.run();
        assert_eq!(value(&scraped.scrape()), Some(2.0));
        // a query after the last collect is handed over when the metrics drop
        run(&kept);
        drop(metrics);
        assert_eq!(value(&scraped.scrape()), Some(3.0));
        replay.run();
        assert_eq!(value(&scraped.scrape()), Some(3.0));
    }
}
