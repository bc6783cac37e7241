//! [`InstrumentedConnection`]: a pool connection whose queries are measured.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::sqlx;
use sqlx::Database;
use sqlx::pool::PoolConnection;

use super::metrics::Metrics;

/// A connection from [`InstrumentedPool::acquire`](super::InstrumentedPool::acquire).
/// `&mut InstrumentedConnection<DB>` is an [`Executor`](sqlx::Executor) (with the backend's
/// feature on: `sqlite`, `postgres` or `mysql`), and so is `&mut *conn`, sqlx's own idiom: the
/// connection dereferences to its [`PooledConnection`], measured as well. The connection goes
/// back to the pool when dropped.
///
/// # Cancel safety
///
/// A query future dropped before it ends counts as `cancelled`; what happens to the
/// connection is what sqlx does for its own (the driver finishes or discards the
/// half-read answer before the next query). Row streams follow the [outcome
/// rules](super::metrics#outcomes).
pub struct InstrumentedConnection<DB: Database> {
    conn: PooledConnection<DB>,
}

/// What `*conn` is for an [`InstrumentedConnection`]: the pool connection, with its queries
/// measured. `&mut PooledConnection<DB>` is an [`Executor`](sqlx::Executor), so
/// `query.execute(&mut *conn)` works as it does on sqlx's own pool connections.
pub struct PooledConnection<DB: Database> {
    conn: PoolConnection<DB>,
    metrics: Arc<Metrics>,
}

impl<DB: Database> InstrumentedConnection<DB> {
    pub(crate) fn new(conn: PoolConnection<DB>, metrics: Arc<Metrics>) -> Self {
        Self {
            conn: PooledConnection { conn, metrics },
        }
    }

    /// The pool connection. Queries run on it directly are not measured.
    pub fn inner_mut(&mut self) -> &mut PoolConnection<DB> {
        &mut self.conn.conn
    }

    /// Unwraps the pool connection.
    pub fn into_inner(self) -> PoolConnection<DB> {
        self.conn.conn
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.conn.metrics
    }
}

impl<DB: Database> Deref for InstrumentedConnection<DB> {
    type Target = PooledConnection<DB>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for InstrumentedConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> fmt::Debug for InstrumentedConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConnection")
            .field("db", &self.conn.metrics.db_name())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> fmt::Debug for PooledConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("db", &self.metrics.db_name())
            .finish_non_exhaustive()
    }
}

/// Implements `Executor` for `&mut $ty<$db>` by timing each query on the connection `$conn`.
///
/// One impl per backend: a generic impl bounded by `for<'c> &'c mut DB::Connection: Executor`
/// sends the trait solver into an endless loop (sqlx itself gave up the generic impls for
/// `Transaction` and `PoolConnection` for that reason).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused_macros)
)]
macro_rules! delegate_executor {
    ($ty:ident, $db:ty, |$this:ident| $conn:expr) => {
        impl<'t> sqlx::Executor<'t> for &'t mut $ty<$db> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::stream::BoxStream<
                'e,
                Result<
                    sqlx::Either<
                        <$db as sqlx::Database>::QueryResult,
                        <$db as sqlx::Database>::Row,
                    >,
                    sqlx::Error,
                >,
            >
            where
                't: 'e,
                E: 'q + sqlx::Execute<'q, $db>,
            {
                let $this = self;
                let (finish, query) = super::compat::start(&$this.metrics, query);
                Box::pin(super::query::TimedStream::new(
                    sqlx::Executor::fetch_many($conn, query),
                    finish,
                ))
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<Option<<$db as sqlx::Database>::Row>, sqlx::Error>,
            >
            where
                't: 'e,
                E: 'q + sqlx::Execute<'q, $db>,
            {
                let $this = self;
                let (finish, query) = super::compat::start(&$this.metrics, query);
                let future = sqlx::Executor::fetch_optional($conn, query);
                Box::pin(::botscope_core::outcome::Timed::new(future, finish))
            }

            fn fetch_one<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<<$db as sqlx::Database>::Row, sqlx::Error>,
            >
            where
                't: 'e,
                E: 'q + sqlx::Execute<'q, $db>,
            {
                let $this = self;
                let (finish, query) = super::compat::start(&$this.metrics, query);
                let future = sqlx::Executor::fetch_optional($conn, query);
                let row = async move { future.await?.ok_or(sqlx::Error::RowNotFound) };
                Box::pin(::botscope_core::outcome::Timed::new(row, finish))
            }

            super::compat::delegate_prepare!($db, 't, |$this| $conn);
        }
    };
}

#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused_imports)
)]
pub(crate) use delegate_executor;

/// `delegate_executor!` for every backend feature that is on.
macro_rules! backend_executors {
    ($ty:ident, |$this:ident| $conn:expr) => {
        #[cfg(feature = "sqlite")]
        super::connection::delegate_executor!($ty, sqlx::Sqlite, |$this| $conn);
        #[cfg(feature = "postgres")]
        super::connection::delegate_executor!($ty, sqlx::Postgres, |$this| $conn);
        #[cfg(feature = "mysql")]
        super::connection::delegate_executor!($ty, sqlx::MySql, |$this| $conn);
    };
}

pub(crate) use backend_executors;

backend_executors!(InstrumentedConnection, |this| (&mut *this.conn.conn));
backend_executors!(PooledConnection, |this| (&mut *this.conn));
