//! Metric names, units and the instruments behind them.
//!
//! Each query is recorded straight into OpenTelemetry when it ends, through instruments bound
//! to its labels (`experimental_metrics_bound_instruments`, which botscope-core turns on):
//! the labels of a statement are read once, by the [`sql`](super::sql::classify) lexer, and its
//! series is cached under a hash of its text (at most [`STATEMENT_CACHE_CAPACITY`] statements,
//! the coldest evicted), so a query costs a hash, a cache look-up and two bound records.
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
//!
//! # Naming
//!
//! Under [`Naming::Semconv`] (from [`InstrumentedPoolBuilder::naming`](
//! super::InstrumentedPoolBuilder::naming), else the process-wide default
//! `botscope::Telemetry` sets) the families follow the OpenTelemetry semantic conventions
//! v1.44 instead:
//!
//! | botscope name | semantic convention | attributes |
//! |---|---|---|
//! | `N_database_query_duration_seconds`, `N_database_queries_total`, `N_database_errors_total` | [`OPERATION_DURATION`] (histogram, s) | `db.system.name`, `db.namespace`, `db.operation.name`, `db.collection.name`, `error.type`, `db.response.status_code` |
//! | `N_database_connections` | [`CONNECTION_COUNT`] (up/down counter) | `db.client.connection.pool.name`, `db.client.connection.state` (`idle`, `used`) |
//! | `N_database_connections_max` | [`CONNECTION_MAX`] (up/down counter) | `db.client.connection.pool.name` |
//! | `N_database_connection_acquire_duration_seconds` | [`CONNECTION_WAIT_TIME`] (histogram, s) | `db.client.connection.pool.name` |
//!
//! - `db.system.name` is `postgresql`, `mysql` or `sqlite` (sqlx's MySQL driver cannot tell
//!   MariaDB apart: `mysql`); `db.namespace` and `db.client.connection.pool.name` are the
//!   pool's `db` name.
//! - `db.operation.name` is the operation (absent for `OTHER`); `db.collection.name` the
//!   capped table (absent when the statement names none).
//! - Every query is timed, whatever its ending: `error.type` is absent on success, else the
//!   [`error_type`](super::error_type()) class (`_OTHER` for `other`), `panic` or
//!   `cancelled`. The histogram's count replaces the two counters.
//! - `db.response.status_code` is the database's own code of an error that came from the
//!   database (a SQLSTATE for PostgreSQL and MySQL, the result code for SQLite), at most
//!   [`STATUS_CODE_CAP`] values per pool, then `other`.
//! - The buckets are the conventions' ([`OPERATION_DURATION_BUCKETS`]); they advise none for
//!   the wait, which uses the same.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::sqlx;
use botscope_core::LabelCap;
use botscope_core::clock::Instant;
use botscope_core::naming::{ERROR_TYPE, ERROR_TYPE_OTHER, Naming};
use botscope_core::outcome::{Ending, Finish, Timed};
use opentelemetry::metrics::{
    AsyncInstrument, BoundCounter, BoundHistogram, Counter, Histogram, Meter,
};
use opentelemetry::{KeyValue, StringValue, Value};
use quick_cache::UnitWeighter;
use quick_cache::sync::DefaultLifecycle;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tracing::Span;

use super::error_type::error_type;
use super::sql;

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

// The OpenTelemetry semantic conventions v1.44, for `Naming::Semconv`. Checked against
// open-telemetry/semantic-conventions `model/db/metrics.yaml` (commit 193fc3d3) and the
// buckets of `docs/db/database-metrics.md` (commit 01d94504), by the test
// `tests/semconv_names.rs` of botscope-tests.

/// Histogram `db.client.operation.duration` (stable): replaces [`QUERY_DURATION`],
/// [`QUERIES`] and [`ERRORS`] under `Naming::Semconv`.
pub const OPERATION_DURATION: &str = "db.client.operation.duration";
/// Up/down counter `db.client.connection.count`: replaces [`CONNECTIONS`].
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// Up/down counter `db.client.connection.max`: replaces [`CONNECTIONS_MAX`].
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// Histogram `db.client.connection.wait_time`: replaces [`ACQUIRE_DURATION`].
pub const CONNECTION_WAIT_TIME: &str = "db.client.connection.wait_time";
/// The unit of the connection counts: an annotation, which Prometheus names leave out.
pub const CONNECTIONS_UNIT: &str = "{connection}";
/// The buckets the conventions advise for [`OPERATION_DURATION`], in seconds; the wait uses
/// them too.
pub const OPERATION_DURATION_BUCKETS: [f64; 9] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
/// The most distinct `db.response.status_code` values per pool; later ones become `other`.
pub const STATUS_CODE_CAP: usize = 100;

const DB_SYSTEM_NAME: &str = "db.system.name";
const DB_NAMESPACE: &str = "db.namespace";
const DB_OPERATION_NAME: &str = "db.operation.name";
const DB_COLLECTION_NAME: &str = "db.collection.name";
const DB_RESPONSE_STATUS_CODE: &str = "db.response.status_code";
pub(crate) const POOL_NAME: &str = "db.client.connection.pool.name";
pub(crate) const CONNECTION_STATE: &str = "db.client.connection.state";

/// `db.system.name` of an sqlx driver, from its `Database::NAME`.
pub fn db_system_name(driver: &str) -> &'static str {
    match driver {
        "PostgreSQL" => "postgresql",
        "MySQL" => "mysql",
        "SQLite" => "sqlite",
        _ => "other_sql",
    }
}

/// The default cap of distinct `table` values per pool.
pub const DEFAULT_TABLE_CAP: usize = 200;
/// Statements whose labels are cached per pool; past it the cache evicts the statements seen
/// least. The cache holds what it derived from a statement (its series) under a 64-bit hash
/// of its text, never the text, so a long statement costs it no more than a short one.
pub const STATEMENT_CACHE_CAPACITY: usize = 1_024;

/// The statement cache: a statement's series under the hash of its text. Two texts whose
/// hashes collide share the first one's series; with at most
/// [`STATEMENT_CACHE_CAPACITY`] entries that is about one new text in 10^16.
type Statements =
    quick_cache::sync::Cache<u64, Arc<Series>, UnitWeighter, foldhash::fast::RandomState>;

pub(crate) const SCOPE: &str = env!("CARGO_PKG_NAME");
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One `{db, operation, table}` series: the instruments bound to it and what its queries'
/// spans say. Statements that share an operation and a table share a series, which outlives
/// the statement cache.
#[derive(Debug)]
pub(crate) struct Series {
    instruments: Instruments,
    span: SpanFields,
}

/// The span attributes of a series' queries (the OpenTelemetry database conventions): never
/// the statement's text, only what its labels hold.
#[derive(Debug)]
struct SpanFields {
    /// `db.system.name`.
    system: &'static str,
    /// `db.namespace`: the pool's `db` name.
    namespace: StringValue,
    /// `db.operation.name`, absent for `OTHER`.
    operation: Option<&'static str>,
    /// `db.collection.name` (capped as the `table` label is), absent when none.
    collection: Option<StringValue>,
    /// `db.query.summary` (`SELECT guilds`), and the span's name; absent when the statement
    /// has neither an operation nor a table.
    summary: Option<Box<str>>,
}

impl SpanFields {
    fn new(
        system: &'static str,
        namespace: StringValue,
        operation: &'static str,
        table: &StringValue,
    ) -> Self {
        let operation = (operation != sql::OTHER).then_some(operation);
        let collection = (!table.as_str().is_empty()).then(|| table.clone());
        let summary = match (operation, &collection) {
            (Some(operation), Some(collection)) => {
                Some(format!("{operation} {}", collection.as_str()).into())
            }
            (Some(operation), None) => Some(operation.into()),
            (None, Some(collection)) => Some(collection.as_str().into()),
            (None, None) => None,
        };
        Self {
            system,
            namespace,
            operation,
            collection,
            summary,
        }
    }

    /// A client span named by its `db.query.summary` (`SELECT guilds`), as the conventions
    /// name database spans; `db.system.name` when the statement has neither.
    fn span(&self) -> Span {
        let summary = self.summary.as_deref();
        botscope_core::unit_span!(
            target: "botscope_sqlx",
            "db.query",
            otel.name = summary.unwrap_or(self.system),
            otel.kind = "client",
            "db.system.name" = self.system,
            "db.namespace" = self.namespace.as_str(),
            "db.operation.name" = self.operation,
            "db.collection.name" = self.collection.as_ref().map(StringValue::as_str),
            "db.query.summary" = summary,
        )
    }
}

/// The instruments of one series, bound where its common endings go.
#[derive(Debug)]
enum Instruments {
    /// The botscope names.
    Botscope {
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
    },
    /// `db.client.operation.duration`.
    Semconv {
        /// `db.system.name`, `db.namespace`, and `db.operation.name`, `db.collection.name`
        /// when known.
        base: Box<[KeyValue]>,
        /// The histogram bound to `base`: successes, the common case.
        successes: BoundHistogram<f64>,
        /// Unbound, for endings with an `error.type`.
        duration: Histogram<f64>,
        /// The pool's cap of `db.response.status_code`.
        codes: Arc<LabelCap>,
    },
}

impl Instruments {
    /// Records one query that took `elapsed` and ended as `ending`.
    #[inline]
    fn record<T>(&self, elapsed: Duration, ending: Ending<'_, Result<T, sqlx::Error>>) {
        match self {
            Self::Botscope {
                base,
                duration,
                successes,
                failures,
                queries,
                errors,
            } => match ending {
                Ending::Completed(Ok(_)) => {
                    successes.add(1);
                    duration.record(elapsed.as_secs_f64());
                }
                Ending::Completed(Err(error)) => {
                    failures.add(1);
                    duration.record(elapsed.as_secs_f64());
                    let [db, operation, table] = base.clone();
                    errors.add(
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
                    let [db, operation, table] = base.clone();
                    queries.add(1, &[db, operation, table, KeyValue::new("status", status)]);
                }
            },
            Self::Semconv {
                base,
                successes,
                duration,
                codes,
            } => {
                let (class, code) = match ending {
                    Ending::Completed(Ok(_)) => {
                        successes.record(elapsed.as_secs_f64());
                        return;
                    }
                    Ending::Completed(Err(error)) => {
                        (semconv_error_type(error), database_code(error))
                    }
                    Ending::Panicked | Ending::Cancelled => (ending.outcome().as_str(), None),
                };
                let mut attributes = Vec::with_capacity(base.len() + 2);
                attributes.extend_from_slice(base);
                attributes.push(KeyValue::new(ERROR_TYPE, class));
                if let Some(code) = code {
                    attributes.push(KeyValue::new(
                        DB_RESPONSE_STATUS_CODE,
                        Value::String(codes.admit(&code)),
                    ));
                }
                duration.record(elapsed.as_secs_f64(), &attributes);
            }
        }
    }
}

/// `error.type` under the conventions: the [`error_type`] class, with the conventions'
/// `_OTHER` for `other`.
fn semconv_error_type(error: &sqlx::Error) -> &'static str {
    match error_type(error) {
        super::error_type::OTHER => ERROR_TYPE_OTHER,
        class => class,
    }
}

/// The database's own code of an error it sent (SQLSTATE, or SQLite's result code).
fn database_code(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(std::borrow::Cow::into_owned),
        _ => None,
    }
}

/// The [`Finish`] of a timed query: records it in its series.
#[derive(Debug)]
pub(crate) struct Query(Arc<Series>);

impl<T> Finish<Result<T, sqlx::Error>> for Query {
    fn span(&self) -> Span {
        self.0.span.span()
    }

    /// The [`error_type`] class (`_OTHER` for `other`), `panic` or `cancelled`: the
    /// `error.type` of [`Naming::Semconv`]'s histogram.
    fn error_type(&self, ending: &Ending<'_, Result<T, sqlx::Error>>) -> Option<Cow<'static, str>> {
        match ending {
            Ending::Completed(Ok(_)) => None,
            Ending::Completed(Err(error)) => Some(Cow::Borrowed(semconv_error_type(error))),
            Ending::Panicked | Ending::Cancelled => {
                ending.outcome().error_type().map(Cow::Borrowed)
            }
        }
    }

    #[inline]
    fn finish(self, elapsed: Duration, ending: Ending<'_, Result<T, sqlx::Error>>) {
        self.0.instruments.record(elapsed, ending);
    }
}

/// The [`Finish`] of a wait for a pool connection: records the wait once the pool answered,
/// with a connection or an error; a wait given up (the query was dropped) records nothing.
struct AcquireWait<'a>(&'a BoundHistogram<f64>);

impl<T> Finish<T> for AcquireWait<'_> {
    fn finish(self, elapsed: Duration, ending: Ending<'_, T>) {
        if ending.is_completed() {
            self.0.record(elapsed.as_secs_f64());
        }
    }
}

/// The query instruments of one [`Naming`].
#[derive(Debug)]
enum Families {
    Botscope {
        queries: Counter<u64>,
        query_duration: Histogram<f64>,
        errors: Counter<u64>,
    },
    Semconv {
        duration: Histogram<f64>,
        /// `db.system.name` and `db.namespace`.
        system: [KeyValue; 2],
        codes: Arc<LabelCap>,
    },
}

/// Instruments and label caches shared by a pool, its transactions and its connections.
#[derive(Debug)]
pub(crate) struct Metrics {
    db: KeyValue,
    db_name: StringValue,
    /// `db.system.name`, of spans and of [`Naming::Semconv`]'s series.
    system: &'static str,
    /// The connection wait bound to `db` (or `db.client.connection.pool.name`).
    acquire_duration: BoundHistogram<f64>,
    families: Families,
    tables: LabelCap,
    /// Bounded: a closed set of operations times at most `table cap + 1` tables.
    series: Mutex<HashMap<(&'static str, StringValue), Arc<Series>>>,
    /// Hashes a statement's text into its [`Statements`] key.
    statement_keys: foldhash::fast::RandomState,
    /// The series of the statements seen, under the hash of their text.
    statements: Statements,
}

impl Metrics {
    /// `system`: the `db.system.name` of spans and of [`Naming::Semconv`] ([`db_system_name`]).
    pub(crate) fn new(
        meter: &Meter,
        db: StringValue,
        table_cap: usize,
        naming: Naming,
        system: &'static str,
    ) -> Self {
        let db_name = db;
        let db = KeyValue::new("db", Value::String(db_name.clone()));
        let histogram = |name: &'static str, description: &'static str, buckets: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit(SECONDS)
                .with_description(description)
                .with_boundaries(buckets.to_vec())
                .build()
        };
        let (acquire_duration, families) = match naming {
            Naming::Semconv => (
                histogram(
                    CONNECTION_WAIT_TIME,
                    "The time it took to obtain an open connection from the pool.",
                    &OPERATION_DURATION_BUCKETS,
                )
                .bind(&[KeyValue::new(POOL_NAME, Value::String(db_name.clone()))]),
                Families::Semconv {
                    duration: histogram(
                        OPERATION_DURATION,
                        "Duration of database client operations.",
                        &OPERATION_DURATION_BUCKETS,
                    ),
                    system: [
                        KeyValue::new(DB_SYSTEM_NAME, system),
                        KeyValue::new(DB_NAMESPACE, Value::String(db_name.clone())),
                    ],
                    codes: Arc::new(LabelCap::new(STATUS_CODE_CAP)),
                },
            ),
            // `Naming::Botscope`, and any naming added later until it is wired here.
            _ => (
                histogram(
                    ACQUIRE_DURATION,
                    "Time spent waiting for a pool connection.",
                    &botscope_core::buckets::DEFAULT_BUCKETS,
                )
                .bind(std::slice::from_ref(&db)),
                Families::Botscope {
                    queries: meter
                        .u64_counter(QUERIES)
                        .with_description("Queries by outcome.")
                        .build(),
                    query_duration: histogram(
                        QUERY_DURATION,
                        "Time from asking for a connection to the end of a query.",
                        &botscope_core::buckets::DEFAULT_BUCKETS,
                    ),
                    errors: meter
                        .u64_counter(ERRORS)
                        .with_description("Failed queries by error class.")
                        .build(),
                },
            ),
        };
        Self {
            acquire_duration,
            families,
            db,
            db_name,
            system,
            tables: LabelCap::new(table_cap),
            series: Mutex::new(HashMap::new()),
            statement_keys: foldhash::fast::RandomState::default(),
            statements: Statements::with(
                STATEMENT_CACHE_CAPACITY,
                STATEMENT_CACHE_CAPACITY as u64,
                UnitWeighter,
                foldhash::fast::RandomState::default(),
                DefaultLifecycle::default(),
            ),
        }
    }

    /// The `db` label value.
    pub(crate) fn db_name(&self) -> &str {
        self.db_name.as_str()
    }

    /// The series of `sql`: from the statement cache, else from the lexer.
    fn statement(&self, sql: &str) -> Arc<Series> {
        let key = self.statement_keys.hash_one(sql);
        if let Some(series) = self.statements.get(&key) {
            return series;
        }
        let classified = sql::classify(sql);
        let table = match classified.table() {
            Some(table) => self.tables.admit(table),
            None => StringValue::from(""),
        };
        let series = self.series(classified.operation(), table);
        self.statements.insert(key, Arc::clone(&series));
        series
    }

    fn series(&self, operation: &'static str, table: StringValue) -> Arc<Series> {
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let series = all
            .entry((operation, table))
            .or_insert_with_key(|(_, table)| Arc::new(self.new_series(operation, table)));
        Arc::clone(series)
    }

    /// The series `{operation, table}`: its instruments, bound, and its span attributes.
    fn new_series(&self, operation: &'static str, table: &StringValue) -> Series {
        Series {
            instruments: self.new_instruments(operation, table),
            span: SpanFields::new(self.system, self.db_name.clone(), operation, table),
        }
    }

    /// The instruments of the series `{operation, table}`, bound.
    fn new_instruments(&self, operation: &'static str, table: &StringValue) -> Instruments {
        match &self.families {
            Families::Botscope {
                queries,
                query_duration,
                errors,
            } => {
                let base = [
                    self.db.clone(),
                    KeyValue::new("operation", operation),
                    KeyValue::new("table", Value::String(table.clone())),
                ];
                let with_status = |status: &'static str| {
                    let [db, operation, table] = base.clone();
                    [db, operation, table, KeyValue::new("status", status)]
                };
                Instruments::Botscope {
                    duration: query_duration.bind(&base),
                    successes: queries.bind(&with_status(botscope_core::status::SUCCESS)),
                    failures: queries.bind(&with_status(botscope_core::status::ERROR)),
                    queries: queries.clone(),
                    errors: errors.clone(),
                    base,
                }
            }
            Families::Semconv {
                duration,
                system,
                codes,
            } => {
                let mut base = system.to_vec();
                if operation != sql::OTHER {
                    base.push(KeyValue::new(DB_OPERATION_NAME, operation));
                }
                if !table.as_str().is_empty() {
                    base.push(KeyValue::new(
                        DB_COLLECTION_NAME,
                        Value::String(table.clone()),
                    ));
                }
                Instruments::Semconv {
                    successes: duration.bind(&base),
                    duration: duration.clone(),
                    codes: Arc::clone(codes),
                    base: base.into(),
                }
            }
        }
    }

    /// The [`Finish`] of a query of `sql`.
    #[inline]
    pub(crate) fn query(&self, sql: &str) -> Query {
        Query(self.statement(sql))
    }

    /// Acquires a connection from `pool`, recording the wait from `start` (the moment the
    /// caller asked, a [`clock::now`](botscope_core::clock::now) reading shared with the
    /// query's own timer) to the pool's answer.
    pub(crate) async fn acquire<DB: Database>(
        &self,
        pool: &Pool<DB>,
        start: Instant,
    ) -> Result<PoolConnection<DB>, sqlx::Error> {
        Timed::new_at(pool.acquire(), AcquireWait(&self.acquire_duration), start).await
    }
}

/// Registers the pool gauges, read from `pool` at scrape while it lives (weakly:
/// OpenTelemetry never drops a callback, so a strong reference would keep the pool open
/// forever). `db` is the pool's `db` name.
pub(crate) fn register_pool_gauges<DB: Database>(
    meter: &Meter,
    naming: Naming,
    db: StringValue,
    pool: &Arc<Pool<DB>>,
) {
    let semconv = naming == Naming::Semconv;
    let name = if semconv {
        KeyValue::new(POOL_NAME, Value::String(db))
    } else {
        KeyValue::new("db", Value::String(db))
    };
    let (state, idle, in_use) = if semconv {
        (CONNECTION_STATE, "idle", "used")
    } else {
        ("state", "idle", "in_use")
    };
    let weak = Arc::downgrade(pool);
    let idle = [name.clone(), KeyValue::new(state, idle)];
    let in_use = [name.clone(), KeyValue::new(state, in_use)];
    let counts = move |observer: &dyn AsyncInstrument<i64>| {
        if let Some(pool) = weak.upgrade() {
            let size = i64::from(pool.size());
            let idle_now = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
            observer.observe(idle_now.min(size), &idle);
            observer.observe((size - idle_now).max(0), &in_use);
        }
    };
    let weak = Arc::downgrade(pool);
    let attrs = [name];
    let max = move |observer: &dyn AsyncInstrument<i64>| {
        if let Some(pool) = weak.upgrade() {
            let max = pool.options().get_max_connections();
            observer.observe(i64::from(max), &attrs);
        }
    };
    // The instruments live on in the provider with their callbacks.
    if semconv {
        meter
            .i64_observable_up_down_counter(CONNECTION_COUNT)
            .with_description(
                "The number of connections that are currently in state described by the `state` attribute.",
            )
            .with_unit(CONNECTIONS_UNIT)
            .with_callback(counts)
            .build();
        meter
            .i64_observable_up_down_counter(CONNECTION_MAX)
            .with_description("The maximum number of open connections allowed.")
            .with_unit(CONNECTIONS_UNIT)
            .with_callback(max)
            .build();
    } else {
        meter
            .i64_observable_gauge(CONNECTIONS)
            .with_description("Pool connections by state, read at scrape.")
            .with_callback(counts)
            .build();
        meter
            .i64_observable_gauge(CONNECTIONS_MAX)
            .with_description("The most connections the pool opens.")
            .with_callback(max)
            .build();
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider;

    use super::*;

    #[test]
    fn the_statement_cache_is_bounded_and_tables_are_capped() {
        let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("t");
        let metrics = Metrics::new(&meter, "db".into(), 2, Naming::Botscope, "sqlite");
        for i in 0..STATEMENT_CACHE_CAPACITY * 2 + 7 {
            let _ = metrics.statement(&format!("SELECT * FROM t{} WHERE id = {i}", i % 3));
        }
        assert!(metrics.statements.len() <= STATEMENT_CACHE_CAPACITY);
        let tables: Vec<_> = (0..3)
            .map(
                |i| match &metrics.statement(&format!("SELECT 1 FROM t{i}")).instruments {
                    Instruments::Botscope { base, .. } => base[2].value.to_string(),
                    Instruments::Semconv { .. } => unreachable!("botscope naming"),
                },
            )
            .collect();
        assert_eq!(tables, ["t0", "t1", "other"]);
        let same = metrics.statement("SELECT 1 FROM t0");
        assert!(
            Arc::ptr_eq(&same, &metrics.statement("select 1 from T0")),
            "one series per operation and table"
        );
    }
}
