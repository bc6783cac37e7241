//! Metric names, units and the instruments behind them.
//!
//! Each query is recorded straight into OpenTelemetry when it ends, through instruments bound
//! to its labels (`experimental_metrics_bound_instruments`, which botscope-core turns on):
//! the labels of a statement are read once, by the [`sql`](crate::sql::classify) lexer, and cached with
//! its series, so a query costs a cache look-up and two bound records.
//!
//! # Outcomes
//!
//! A query ends in one of four ways, which set the `status` of `N_database_queries_total`:
//!
//! | ending | `status` | duration recorded | `N_database_errors_total` |
//! |---|---|---|---|
//! | the driver answered with a result | `success` | yes | — |
//! | the driver (or the pool) answered with an error | `error` | yes | `+1` with its `error_type` |
//! | polling it panicked (the panic carries on unchanged) | `panic` | no | — |
//! | dropped before it finished | `cancelled` | no | — |
//!
//! `N_database_query_duration_seconds` has no `status` label, so it holds only queries that
//! ran to their end: the partial time of a panic or a cancellation would skew its quantiles.
//!
//! A row stream (`fetch`, `fetch_many`) ends when it returns its last item or an error. One
//! the caller drops after it yielded at least one item (a row, or a statement's result)
//! counts as a `success` with the time until the drop, as a `fetch_one` does that stops after
//! the first row: the caller got rows and chose to stop. One dropped before its first item
//! counts as `cancelled`.
//!
//! The wait for a pool connection (`N_database_connection_acquire_duration_seconds`) is
//! recorded when the pool answers, with a connection or an error; a query cancelled while it
//! waits records no wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use botscope_core::LabelCap;
use botscope_core::outcome::{Ending, Finish};
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, Value};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::time::Instant;

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
/// Statement texts whose labels are cached per pool; the cache starts over when full.
pub const STATEMENT_CACHE_CAPACITY: usize = 1_024;

pub(crate) const SCOPE: &str = env!("CARGO_PKG_NAME");
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One `{db, operation, table}` series and the instruments bound to it. Statements that share
/// an operation and a table share a series, which outlives the statement cache.
#[derive(Debug)]
pub(crate) struct Series {
    /// `db`, `operation`, `table`.
    base: [KeyValue; 3],
    /// `query_duration` bound to `base`.
    duration: BoundHistogram<f64>,
    /// `queries` bound to `base` + `status=success`.
    successes: BoundCounter<u64>,
    /// `queries` bound to `base` + `status=error`.
    failures: BoundCounter<u64>,
    /// Unbound, for the rare `panic` and `cancelled` statuses.
    queries: Counter<u64>,
    /// Unbound: `error_type` is known only once an error came.
    errors: Counter<u64>,
}

impl Series {
    /// Records one query that took `elapsed` and ended as `ending`.
    #[inline]
    fn record<T>(&self, elapsed: Duration, ending: Ending<'_, Result<T, sqlx::Error>>) {
        match ending {
            Ending::Completed(Ok(_)) => {
                self.successes.add(1);
                self.duration.record(elapsed.as_secs_f64());
            }
            Ending::Completed(Err(error)) => {
                self.failures.add(1);
                self.duration.record(elapsed.as_secs_f64());
                let [db, operation, table] = self.base.clone();
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
            Ending::Panicked | Ending::Cancelled => {
                let status = ending.outcome().as_str();
                let [db, operation, table] = self.base.clone();
                self.queries
                    .add(1, &[db, operation, table, KeyValue::new("status", status)]);
            }
        }
    }
}

/// The [`Finish`] of a timed query: records it in its series.
#[derive(Debug)]
pub(crate) struct Query(Arc<Series>);

impl<T> Finish<Result<T, sqlx::Error>> for Query {
    #[inline]
    fn finish(self, elapsed: Duration, ending: Ending<'_, Result<T, sqlx::Error>>) {
        self.0.record(elapsed, ending);
    }
}

/// Instruments and label caches shared by a pool, its transactions and its connections.
#[derive(Debug)]
pub(crate) struct Metrics {
    db: KeyValue,
    db_name: StringValue,
    /// `acquire_duration` bound to `db`.
    acquire_duration: BoundHistogram<f64>,
    queries: Counter<u64>,
    query_duration: Histogram<f64>,
    errors: Counter<u64>,
    tables: LabelCap,
    /// Bounded: a closed set of operations times at most `table cap + 1` tables.
    series: Mutex<HashMap<(&'static str, StringValue), Arc<Series>>>,
    /// The series of each statement text seen; starts over when full.
    statements: RwLock<HashMap<Box<str>, Arc<Series>, foldhash::fast::RandomState>>,
}

impl Metrics {
    pub(crate) fn new(meter: &Meter, db: StringValue, table_cap: usize) -> Self {
        let db_name = db;
        let db = KeyValue::new("db", Value::String(db_name.clone()));
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit(SECONDS)
                .with_description(description)
                .with_boundaries(botscope_core::buckets::default_buckets())
                .build()
        };
        Self {
            acquire_duration: duration(
                ACQUIRE_DURATION,
                "Time spent waiting for a pool connection.",
            )
            .bind(std::slice::from_ref(&db)),
            queries: meter
                .u64_counter(QUERIES)
                .with_description("Queries by outcome.")
                .build(),
            query_duration: duration(
                QUERY_DURATION,
                "Time from asking for a connection to the end of a query.",
            ),
            errors: meter
                .u64_counter(ERRORS)
                .with_description("Failed queries by error class.")
                .build(),
            db,
            db_name,
            tables: LabelCap::new(table_cap),
            series: Mutex::new(HashMap::new()),
            statements: RwLock::new(HashMap::default()),
        }
    }

    /// The `db` label value.
    pub(crate) fn db_name(&self) -> &str {
        self.db_name.as_str()
    }

    /// The series of `sql`: from the statement cache, else from the lexer.
    fn statement(&self, sql: &str) -> Arc<Series> {
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
        if let Ok(mut cache) = self.statements.write() {
            if cache.len() >= STATEMENT_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(sql.into(), Arc::clone(&series));
        }
        series
    }

    fn series(&self, operation: &'static str, table: StringValue) -> Arc<Series> {
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
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
                Arc::new(Series {
                    duration: self.query_duration.bind(&base),
                    successes: self
                        .queries
                        .bind(&with_status(botscope_core::status::SUCCESS)),
                    failures: self
                        .queries
                        .bind(&with_status(botscope_core::status::ERROR)),
                    queries: self.queries.clone(),
                    errors: self.errors.clone(),
                    base,
                })
            });
        Arc::clone(series)
    }

    /// The [`Finish`] of a query of `sql`.
    #[inline]
    pub(crate) fn query(&self, sql: &str) -> Query {
        Query(self.statement(sql))
    }

    /// Acquires a connection from `pool`, recording the wait from `start` (the moment the
    /// caller asked, shared with the query's own timer) to the pool's answer.
    pub(crate) async fn acquire<DB: Database>(
        &self,
        pool: &Pool<DB>,
        start: Instant,
    ) -> Result<PoolConnection<DB>, sqlx::Error> {
        let conn = pool.acquire().await;
        self.acquire_duration.record(start.elapsed().as_secs_f64());
        conn
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
            Arc::ptr_eq(&same, &metrics.statement("select 1 from T0")),
            "one series per operation and table"
        );
    }
}
