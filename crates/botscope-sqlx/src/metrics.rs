//! Metric names, units and the instruments behind them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use botscope_core::{LabelCap, status};
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, Value};

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
/// Statements whose labels are cached per pool; the cache starts over when full.
pub const STATEMENT_CACHE_CAPACITY: usize = 1_024;

pub(crate) const SCOPE: &str = env!("CARGO_PKG_NAME");
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The attributes of one statement, built once and cached, with the duration histogram and
/// the success counter bound to them: the hot path records without an attribute lookup.
#[derive(Debug)]
pub(crate) struct Labels {
    /// `db`, `operation`, `table`.
    base: [KeyValue; 3],
    duration: BoundHistogram<f64>,
    /// `queries` under `base` + `status=success`.
    success: BoundCounter<u64>,
}

/// Instruments and label caches shared by a pool, its transactions and its connections.
#[derive(Debug)]
pub(crate) struct Metrics {
    query_duration: Histogram<f64>,
    queries: Counter<u64>,
    errors: Counter<u64>,
    db: KeyValue,
    acquire_bound: BoundHistogram<f64>,
    tables: LabelCap,
    statements: RwLock<HashMap<Box<str>, Arc<Labels>, BuildHasherDefault<TextHasher>>>,
}

/// The statement cache's hasher: FxHash, a multiply per word. The cache is looked up on every
/// query and SipHash cost more than the rest of the lookup; the keys are the application's SQL
/// texts, at most [`STATEMENT_CACHE_CAPACITY`] of them, so flooding is not a concern.
#[derive(Default)]
struct TextHasher(u64);

impl TextHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

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
        let acquire_duration = meter
            .f64_histogram(ACQUIRE_DURATION)
            .with_unit(SECONDS)
            .with_description("Time spent waiting for a pool connection.")
            .with_boundaries(botscope_core::buckets::default_buckets())
            .build();
        Self {
            query_duration: meter
                .f64_histogram(QUERY_DURATION)
                .with_unit(SECONDS)
                .with_description("Time from asking for a connection to the end of a query.")
                .with_boundaries(botscope_core::buckets::default_buckets())
                .build(),
            queries: meter
                .u64_counter(QUERIES)
                .with_description("Queries by outcome.")
                .build(),
            errors: meter
                .u64_counter(ERRORS)
                .with_description("Failed queries by error class.")
                .build(),
            acquire_bound: acquire_duration.bind(std::slice::from_ref(&db)),
            db,
            tables: LabelCap::new(table_cap),
            statements: RwLock::new(HashMap::default()),
        }
    }

    pub(crate) fn db(&self) -> &KeyValue {
        &self.db
    }

    /// The labels of `sql`, from the cache or the lexer.
    pub(crate) fn labels(&self, sql: &str) -> Arc<Labels> {
        if let Ok(cache) = self.statements.read()
            && let Some(labels) = cache.get(sql)
        {
            return Arc::clone(labels);
        }
        let classified = sql::classify(sql);
        let table = match classified.table() {
            Some(table) => self.tables.admit(table),
            None => StringValue::from(""),
        };
        let labels = Arc::new(self.bind(classified.operation(), table));
        if let Ok(mut cache) = self.statements.write() {
            if cache.len() >= STATEMENT_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(sql.into(), Arc::clone(&labels));
        }
        labels
    }

    fn bind(&self, operation: &'static str, table: StringValue) -> Labels {
        let base = [
            self.db.clone(),
            KeyValue::new("operation", operation),
            KeyValue::new("table", Value::String(table)),
        ];
        let [db, op, table] = base.clone();
        let success = [db, op, table, KeyValue::new("status", status::SUCCESS)];
        Labels {
            duration: self.query_duration.bind(&base),
            success: self.queries.bind(&success),
            base,
        }
    }

    /// Labels of statements the wrapper issues itself (`begin`, `commit`, `rollback`).
    pub(crate) fn fixed_labels(&self, operation: &'static str) -> Arc<Labels> {
        self.labels(operation)
    }

    pub(crate) fn record_acquire(&self, start: Instant) {
        self.acquire_bound.record(start.elapsed().as_secs_f64());
    }

    fn record(&self, labels: &Labels, start: Instant, error: Option<&sqlx::Error>) {
        labels.duration.record(start.elapsed().as_secs_f64());
        match error {
            None => labels.success.add(1),
            Some(error) => {
                let [db, operation, table] = labels.base.clone();
                self.queries.add(
                    1,
                    &[
                        db.clone(),
                        operation.clone(),
                        table.clone(),
                        KeyValue::new("status", status::ERROR),
                    ],
                );
                self.errors.add(
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
    }
}

/// Times one query and records it exactly once: on [`finish`](Self::finish), or on drop,
/// which counts as a success (a stream dropped before its end did not fail).
#[derive(Debug)]
pub(crate) struct QueryGuard {
    metrics: Arc<Metrics>,
    labels: Arc<Labels>,
    start: Instant,
    /// The wait for a pool connection, not yet recorded.
    acquire: Option<Duration>,
    done: bool,
}

impl QueryGuard {
    pub(crate) fn new(metrics: Arc<Metrics>, labels: Arc<Labels>) -> Self {
        Self {
            metrics,
            labels,
            start: Instant::now(),
            acquire: None,
            done: false,
        }
    }

    /// Notes that the pool handed out a connection (or gave up) now. The wait is recorded by
    /// [`record_acquire`](Self::record_acquire) or with the outcome, off the path between
    /// the acquire and the query's start.
    pub(crate) fn acquired(&mut self) {
        self.acquire = Some(self.start.elapsed());
    }

    /// Records the acquire wait noted by [`acquired`](Self::acquired), if not done yet.
    pub(crate) fn record_acquire(&mut self) {
        if let Some(wait) = self.acquire.take() {
            self.metrics.acquire_bound.record(wait.as_secs_f64());
        }
    }

    /// Records the outcome now.
    pub(crate) fn finish(&mut self, error: Option<&sqlx::Error>) {
        if !self.done {
            self.done = true;
            self.record_acquire();
            self.metrics.record(&self.labels, self.start, error);
        }
    }

    /// Records the outcome of `result` and hands it back.
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
            let _ = metrics.labels(&format!("SELECT * FROM t{} WHERE id = {i}", i % 3));
        }
        let cached = metrics
            .statements
            .read()
            .map(|c| c.len())
            .unwrap_or(usize::MAX);
        assert!(cached <= STATEMENT_CACHE_CAPACITY);
        let tables: Vec<_> = (0..3)
            .map(|i| {
                metrics.labels(&format!("SELECT 1 FROM t{i}")).base[2]
                    .value
                    .to_string()
            })
            .collect();
        assert_eq!(tables, ["t0", "t1", "other"]);
        let same = metrics.labels("SELECT 1 FROM t0");
        assert!(
            Arc::ptr_eq(&same, &metrics.labels("SELECT 1 FROM t0")),
            "cached"
        );
    }

    #[test]
    fn counts_survive_the_cache_starting_over() {
        let scraped = botscope_testkit::TestMetrics::new("t");
        let metrics = Arc::new(Metrics::new(&scraped.meter(), "db".into(), 10));
        let run =
            |sql: &str| QueryGuard::new(Arc::clone(&metrics), metrics.labels(sql)).finish(None);
        run("SELECT * FROM kept");
        for i in 0..STATEMENT_CACHE_CAPACITY + 1 {
            run(&format!("SELECT {i}"));
        }
        run("SELECT * FROM kept");
        let value = |s: &botscope_testkit::Scrape| {
            s.value(
                "t_database_queries_total",
                &[("table", "kept"), ("status", "success")],
            )
        };
        assert_eq!(value(&scraped.scrape()), Some(2.0));
        drop(metrics);
        assert_eq!(value(&scraped.scrape()), Some(2.0));
    }
}
