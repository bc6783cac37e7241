//! [`InstrumentedPool`]: an sqlx pool whose queries are measured.

use std::fmt;
use std::sync::Arc;

use super::sqlx;
use botscope_core::clock;
use botscope_core::naming::Naming;
use botscope_core::outcome::Timed;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use opentelemetry::StringValue;
use opentelemetry::metrics::{Meter, MeterProvider};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Either, Execute, Executor, Pool};

use super::compat;
use super::connection::InstrumentedConnection;
use super::metrics::{self, DEFAULT_TABLE_CAP, Metrics, SCOPE, VERSION};
use super::query::TimedStream;
use super::transaction::InstrumentedTransaction;

/// An sqlx [`Pool`] whose queries, errors and connections are measured. See the [crate
/// docs](crate) for an example and the metrics.
///
/// `&InstrumentedPool<DB>` is an [`Executor`]: pass it wherever `&Pool<DB>` went. It does not
/// dereference to the pool, so no query can bypass the metrics by accident; [`inner`](
/// Self::inner) reaches the pool on purpose. Cloning is cheap and shares the instruments.
///
/// # Cancel safety
///
/// Dropping a query future before it ends returns its connection to the pool (sqlx does that
/// from a spawned task, so the `in_use` gauge, read from the pool at scrape, settles a moment
/// later) and counts the query as `cancelled`. A row stream dropped after its first item
/// counts as a `success`, one dropped before it as `cancelled` (see the [outcome
/// rules](super::metrics#outcomes)).
///
/// # Cardinality
///
/// `db` is the name given to [`new`](Self::new) or [`builder`](Self::builder); `operation`
/// has a closed vocabulary (see [`sql`](super::sql)); `table` takes at most
/// [`DEFAULT_TABLE_CAP`] values per pool (see [`InstrumentedPoolBuilder::table_cap`]), then
/// `other`.
pub struct InstrumentedPool<DB: Database> {
    /// This handle's own pool, which [`into_inner`](Self::into_inner) moves out.
    pool: Pool<DB>,
    metrics: Arc<Metrics>,
    /// The handle the gauge callbacks read, weakly: OpenTelemetry never drops a callback, so
    /// a strong one would keep the pool open forever. It goes with the last clone.
    gauged: Arc<Pool<DB>>,
}

/// Builds an [`InstrumentedPool`]: from [`InstrumentedPool::builder`].
#[must_use]
pub struct InstrumentedPoolBuilder<DB: Database> {
    pool: Pool<DB>,
    db: StringValue,
    meter: Option<Meter>,
    table_cap: usize,
    naming: Option<Naming>,
}

impl<DB: Database> InstrumentedPoolBuilder<DB> {
    /// Records through `meter` instead of the global provider's.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Records through a meter of `provider` named after this crate.
    pub fn meter_provider<P: MeterProvider + ?Sized>(self, provider: &P) -> Self {
        self.meter(botscope_core::meter::provider_meter(
            provider, SCOPE, VERSION,
        ))
    }

    /// Admits at most `cap` distinct `table` values (default [`DEFAULT_TABLE_CAP`]); later
    /// ones become `other`. `0` switches the label off.
    pub fn table_cap(mut self, cap: usize) -> Self {
        self.table_cap = cap;
        self
    }

    /// The names of the query and pool families (see the [naming
    /// rules](super::metrics#naming)); default: the process-wide
    /// [`botscope_core::naming::global`], which `botscope::Telemetry` sets.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// Builds the instruments and registers the pool gauges' callbacks (once per pool).
    pub fn build(self) -> InstrumentedPool<DB> {
        let meter = botscope_core::meter::meter_or_global(self.meter, SCOPE, VERSION);
        let naming = botscope_core::naming::naming_or_global(self.naming);
        let metrics = Arc::new(Metrics::new(
            &meter,
            self.db.clone(),
            self.table_cap,
            naming,
            metrics::db_system_name(DB::NAME),
        ));
        let gauged = Arc::new(self.pool.clone());
        metrics::register_pool_gauges(&meter, naming, self.db, &gauged);
        InstrumentedPool {
            pool: self.pool,
            metrics,
            gauged,
        }
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPoolBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPoolBuilder")
            .field("db", &self.db.as_str())
            .field("table_cap", &self.table_cap)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> InstrumentedPool<DB> {
    /// Wraps `pool`, labelling its metrics `db=db_name`, with the global meter provider and
    /// the default table cap: `builder(pool, db_name).build()`.
    pub fn new(pool: Pool<DB>, db_name: impl Into<StringValue>) -> Self {
        Self::builder(pool, db_name).build()
    }

    /// A builder for a wrapper of `pool` labelled `db=db_name`, to choose the meter and the
    /// table cap.
    pub fn builder(pool: Pool<DB>, db_name: impl Into<StringValue>) -> InstrumentedPoolBuilder<DB> {
        InstrumentedPoolBuilder {
            pool,
            db: db_name.into(),
            meter: None,
            table_cap: DEFAULT_TABLE_CAP,
            naming: None,
        }
    }

    /// The wrapped pool. Queries run on it directly are not measured.
    pub fn inner(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Unwraps the pool. Once the last clone of this wrapper is gone, the pool gauges stop
    /// reporting it.
    pub fn into_inner(self) -> Pool<DB> {
        self.pool
    }

    /// The `db` label value.
    pub fn db_name(&self) -> &str {
        self.metrics.db_name()
    }

    /// Acquires a connection, timing the wait; queries on it are measured.
    ///
    /// # Errors
    ///
    /// The pool's error: `PoolTimedOut`, `PoolClosed`, or a connect error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it resolves, no connection is taken from the pool and no
    /// wait is recorded.
    pub async fn acquire(&self) -> Result<InstrumentedConnection<DB>, sqlx::Error> {
        let conn = self.metrics.acquire(&self.pool, clock::now()).await?;
        Ok(InstrumentedConnection::new(conn, Arc::clone(&self.metrics)))
    }

    /// Acquires a connection and begins a transaction. The acquire wait and the `BEGIN` are
    /// measured (operation `BEGIN`), and so are `commit` and `rollback`.
    ///
    /// # Errors
    ///
    /// The pool's error, or the database's answer to `BEGIN`.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it resolves, the connection goes back to the pool and any started
    /// transaction is rolled back, as with [`Pool::begin`]; the `BEGIN` counts as
    /// `cancelled`.
    pub async fn begin(&self) -> Result<InstrumentedTransaction<DB>, sqlx::Error> {
        let metrics = &self.metrics;
        let start = clock::now();
        let begin = async {
            let conn = metrics.acquire(&self.pool, start).await?;
            // What `Pool::begin` does, after the acquire it cannot time apart.
            sqlx::Transaction::begin(conn, None).await
        };
        let tx = Timed::new_at(begin, metrics.query("BEGIN"), start).await?;
        Ok(InstrumentedTransaction::new(tx, Arc::clone(metrics)))
    }
}

impl<DB: Database> InstrumentedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// A pool connection, the wait timed from the first poll; it owns what it needs, so it
    /// outlives `&self` (for `prepare_with` and `describe`, whose statements are not timed).
    fn pooled(&self) -> impl Future<Output = Result<PoolConnection<DB>, sqlx::Error>> + Send + 'static {
        let pool = self.pool.clone();
        let metrics = Arc::clone(&self.metrics);
        async move { metrics.acquire(&pool, clock::now()).await }
    }

    /// `query`'s row (or none) on a pool connection, timed from now; `answer` shapes it.
    fn timed_row<'e, 'q: 'e, E, T>(
        &self,
        query: E,
        answer: impl FnOnce(Option<DB::Row>) -> Result<T, sqlx::Error> + Send + 'e,
    ) -> BoxFuture<'e, Result<T, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
        T: Send + 'e,
    {
        let pool = self.pool.clone();
        let metrics = Arc::clone(&self.metrics);
        let (finish, query) = compat::start(&self.metrics, query);
        let start = clock::now();
        let row = async move {
            let mut conn = metrics.acquire(&pool, start).await?;
            answer(conn.fetch_optional(query).await?)
        };
        Box::pin(Timed::new_at(row, finish, start))
    }
}

impl<DB: Database> Clone for InstrumentedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            metrics: Arc::clone(&self.metrics),
            gauged: Arc::clone(&self.gauged),
        }
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("db", &self.db_name())
            .field("pool", &self.pool)
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
        let pool = self.pool.clone();
        let metrics = Arc::clone(&self.metrics);
        let (finish, query) = compat::start(&self.metrics, query);
        let start = clock::now();
        // The stream owns the pool connection its inner stream borrows.
        let rows = async_stream::try_stream! {
            let mut conn = metrics.acquire(&pool, start).await?;
            let mut stream = conn.fetch_many(query);
            while let Some(item) = stream.next().await {
                yield item?;
            }
        };
        TimedStream::new_at(Box::pin(rows), finish, start).boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        self.timed_row(query, Ok)
    }

    fn fetch_one<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<DB::Row, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        self.timed_row(query, |row| row.ok_or(sqlx::Error::RowNotFound))
    }

    compat::pool_prepare!(DB, 'p);
}
