//! [`InstrumentedPool`]: an sqlx pool whose queries are measured.

use std::fmt;
use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use opentelemetry::metrics::{Meter, MeterProvider, ObservableGauge};
use opentelemetry::{KeyValue, StringValue};
use sqlx::{Database, Either, Execute, Executor, Pool, SqlStr};

use crate::connection::InstrumentedConnection;
use crate::metrics::{self, DEFAULT_TABLE_CAP, Metrics, SCOPE, VERSION};
use crate::query::{self, Generator};
use crate::transaction::InstrumentedTransaction;

/// An sqlx [`Pool`] whose queries, errors and connections are measured. See the [crate
/// docs](crate) for an example and the metrics.
///
/// `&InstrumentedPool<DB>` is an [`Executor`]: pass it wherever `&Pool<DB>` went. It does not
/// dereference to the pool, so no query can bypass the metrics by accident; [`inner`](
/// Self::inner) reaches the pool on purpose. Cloning is cheap and shares the instruments.
///
/// # Cancel safety
///
/// Dropping a query future or stream before it ends returns its connection to the pool (sqlx
/// does that from a spawned task, so the `in_use` gauge, read from the pool at scrape, settles
/// a moment later) and records the query as a success: it did not fail.
///
/// # Cardinality
///
/// `db` is the name given to [`new`](Self::new); `operation` has a closed vocabulary (see
/// [`sql`](crate::sql)); `table` takes at most [`DEFAULT_TABLE_CAP`] values per pool (see
/// [`with_table_cap`](Self::with_table_cap)), then `other`.
pub struct InstrumentedPool<DB: Database> {
    shared: Arc<Shared<DB>>,
}

struct Shared<DB: Database> {
    pool: Pool<DB>,
    metrics: Arc<Metrics>,
    db: StringValue,
    table_cap: usize,
    meter: Meter,
    // Kept so the callbacks live as long as the pool; they hold only a weak reference back.
    _gauges: [ObservableGauge<i64>; 2],
}

impl<DB: Database> InstrumentedPool<DB> {
    /// Wraps `pool`, labelling its metrics `db=db_name`, with the global meter provider.
    pub fn new(pool: Pool<DB>, db_name: impl Into<StringValue>) -> Self {
        let meter = botscope_core::meter::global_meter(SCOPE, VERSION);
        Self::build(pool, db_name.into(), &meter, DEFAULT_TABLE_CAP)
    }

    /// Records through `meter` instead of the global provider's.
    ///
    /// Call it while building: clones made before keep the instruments they had.
    #[must_use]
    pub fn with_meter(self, meter: Meter) -> Self {
        Self::build(
            self.shared.pool.clone(),
            self.shared.db.clone(),
            &meter,
            self.shared.table_cap,
        )
    }

    /// Records through a meter of `provider` named after this crate.
    #[must_use]
    pub fn with_meter_provider<P: MeterProvider + ?Sized>(self, provider: &P) -> Self {
        let meter = botscope_core::meter::provider_meter(provider, SCOPE, VERSION);
        self.with_meter(meter)
    }

    /// Admits at most `cap` distinct `table` values (default [`DEFAULT_TABLE_CAP`]); later ones
    /// become `other`. `0` switches the label off.
    #[must_use]
    pub fn with_table_cap(self, cap: usize) -> Self {
        let meter = self.shared.meter.clone();
        Self::build(
            self.shared.pool.clone(),
            self.shared.db.clone(),
            &meter,
            cap,
        )
    }

    fn build(pool: Pool<DB>, db: StringValue, meter: &Meter, table_cap: usize) -> Self {
        let shared = Arc::new_cyclic(|weak: &Weak<Shared<DB>>| {
            let metrics = Arc::new(Metrics::new(meter, db.clone(), table_cap));
            let db_kv = KeyValue::new("db", db.clone());
            let connections = {
                let weak = weak.clone();
                let replay = metrics.replay();
                let idle = [db_kv.clone(), KeyValue::new("state", "idle")];
                let in_use = [db_kv.clone(), KeyValue::new("state", "in_use")];
                meter
                    .i64_observable_gauge(metrics::CONNECTIONS)
                    .with_description("Pool connections by state, read at scrape.")
                    .with_callback(move |observer| {
                        // Also the collect hook of the success counter and the duration
                        // histograms.
                        replay.run();
                        if let Some(shared) = weak.upgrade() {
                            let size = i64::from(shared.pool.size());
                            let idle_now =
                                i64::try_from(shared.pool.num_idle()).unwrap_or(i64::MAX);
                            observer.observe(idle_now.min(size), &idle);
                            observer.observe((size - idle_now).max(0), &in_use);
                        }
                    })
                    .build()
            };
            let max = {
                let weak = weak.clone();
                let attrs = [db_kv];
                meter
                    .i64_observable_gauge(metrics::CONNECTIONS_MAX)
                    .with_description("The most connections the pool opens.")
                    .with_callback(move |observer| {
                        if let Some(shared) = weak.upgrade() {
                            let max = shared.pool.options().get_max_connections();
                            observer.observe(i64::from(max), &attrs);
                        }
                    })
                    .build()
            };
            Shared {
                metrics,
                pool,
                db,
                table_cap,
                meter: meter.clone(),
                _gauges: [connections, max],
            }
        });
        Self { shared }
    }

    /// The wrapped pool. Queries run on it directly are not measured.
    pub fn inner(&self) -> &Pool<DB> {
        &self.shared.pool
    }

    /// Unwraps the pool.
    pub fn into_inner(self) -> Pool<DB> {
        self.shared.pool.clone()
    }

    /// The `db` label value.
    pub fn db_name(&self) -> &str {
        self.shared.db.as_str()
    }

    /// Acquires a connection, timing the wait; queries on it are measured.
    ///
    /// # Errors
    ///
    /// The pool's error: `PoolTimedOut`, `PoolClosed`, or a connect error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it resolves, no connection is taken from the pool.
    pub async fn acquire(&self) -> Result<InstrumentedConnection<DB>, sqlx::Error> {
        let start = self.shared.metrics.now();
        let conn = self.shared.pool.acquire().await;
        self.shared.metrics.record_acquire(start);
        Ok(InstrumentedConnection::new(
            conn?,
            Arc::clone(&self.shared.metrics),
        ))
    }

    /// Acquires a connection and begins a transaction. The acquire wait and the `BEGIN` are
    /// measured (operation `begin`), and so are `commit` and `rollback`.
    ///
    /// # Errors
    ///
    /// The pool's error, or the database's answer to `BEGIN`.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it resolves, the connection goes back to the pool and any started
    /// transaction is rolled back, as with [`Pool::begin`].
    pub async fn begin(&self) -> Result<InstrumentedTransaction<DB>, sqlx::Error> {
        let metrics = &self.shared.metrics;
        let guard = metrics.start("begin");
        let conn = self.shared.pool.acquire().await;
        guard.acquired();
        let tx = match conn {
            // What `Pool::begin` does, after the acquire it cannot time apart.
            Ok(conn) => sqlx::Transaction::begin(conn, None).await,
            Err(error) => Err(error),
        };
        guard
            .result(tx)
            .map(|tx| InstrumentedTransaction::new(tx, Arc::clone(metrics)))
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }
}

impl<DB: Database> Clone for InstrumentedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("db", &self.shared.db.as_str())
            .field("pool", &self.shared.pool)
            .finish_non_exhaustive()
    }
}

impl<'p, DB: Database> Executor<'p> for &InstrumentedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.shared.pool.clone();
        let (mut guard, query) = query::start(self.metrics(), query);
        Generator::new(move |yielder| async move {
            let conn = pool.acquire().await;
            guard.acquired();
            let mut conn = match conn {
                Ok(conn) => conn,
                Err(error) => {
                    guard.finish(Some(&error));
                    return Err(error);
                }
            };
            let mut stream = conn.fetch_many(query);
            let mut next = stream.next().await;
            while let Some(item) = next {
                match item {
                    Ok(item) => yielder.send(item).await,
                    Err(error) => {
                        guard.finish(Some(&error));
                        return Err(error);
                    }
                }
                next = stream.next().await;
            }
            guard.finish(None);
            Ok(())
        })
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.shared.pool.clone();
        let (guard, query) = query::start(self.metrics(), query);
        Box::pin(async move {
            let conn = pool.acquire().await;
            guard.acquired();
            let result = match conn {
                Ok(mut conn) => conn.fetch_optional(query).await,
                Err(error) => Err(error),
            };
            guard.result(result)
        })
    }

    fn fetch_one<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<DB::Row, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.shared.pool.clone();
        let (guard, query) = query::start(self.metrics(), query);
        Box::pin(async move {
            let conn = pool.acquire().await;
            guard.acquired();
            let result = match conn {
                Ok(mut conn) => conn
                    .fetch_optional(query)
                    .await
                    .and_then(|row| row.ok_or(sqlx::Error::RowNotFound)),
                Err(error) => Err(error),
            };
            guard.result(result)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.shared.pool.clone();
        let metrics = Arc::clone(self.metrics());
        Box::pin(async move {
            let start = metrics.now();
            let conn = pool.acquire().await;
            metrics.record_acquire(start);
            conn?.prepare_with(sql, parameters).await
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, sqlx::Error>> {
        let pool = self.shared.pool.clone();
        let metrics = Arc::clone(self.metrics());
        Box::pin(async move {
            let start = metrics.now();
            let conn = pool.acquire().await;
            metrics.record_acquire(start);
            conn?.describe(sql).await
        })
    }
}
