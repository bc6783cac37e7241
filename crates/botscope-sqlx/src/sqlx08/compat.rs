//! What sqlx 0.8's traits ask of the wrapper that 0.9's do not: `Execute::sql` borrows the
//! query (so its text is read in place), and statements and SQL text borrow the query's
//! lifetime `'q`.

use sqlx::{Database, Execute};

use super::metrics::{Metrics, Query};
use super::sqlx;

/// Finds the series `query` records into; the query goes to the driver as it is.
pub(crate) fn start<'q, DB, E>(metrics: &Metrics, query: E) -> (Query, E)
where
    DB: Database,
    E: Execute<'q, DB>,
{
    (metrics.query(query.sql()), query)
}

/// `Executor::prepare_with` and `describe` for `&'t mut` a wrapper of a `$db` connection,
/// handed to the connection `$conn` unmeasured (they run no query of the caller's).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused_macros)
)]
macro_rules! delegate_prepare {
    ($db:ty, $t:lifetime, |$this:ident| $conn:expr) => {
        fn prepare_with<'e, 'q: 'e>(
            self,
            sql: &'q str,
            parameters: &'e [<$db as sqlx::Database>::TypeInfo],
        ) -> ::futures_util::future::BoxFuture<
            'e,
            Result<<$db as sqlx::Database>::Statement<'q>, sqlx::Error>,
        >
        where
            $t: 'e,
        {
            let $this = self;
            sqlx::Executor::prepare_with($conn, sql, parameters)
        }

        fn describe<'e, 'q: 'e>(
            self,
            sql: &'q str,
        ) -> ::futures_util::future::BoxFuture<'e, Result<sqlx::Describe<$db>, sqlx::Error>>
        where
            $t: 'e,
        {
            let $this = self;
            sqlx::Executor::describe($conn, sql)
        }
    };
}

#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused_imports)
)]
pub(crate) use delegate_prepare;

/// `Executor::prepare_with` and `describe` for `&InstrumentedPool<$db>` (lifetime `$p`): on
/// a connection acquired from the pool, the wait timed, the statement not.
macro_rules! pool_prepare {
    ($db:ident, $p:lifetime) => {
        fn prepare_with<'e, 'q: 'e>(
            self,
            sql: &'q str,
            parameters: &'e [$db::TypeInfo],
        ) -> ::futures_util::future::BoxFuture<'e, Result<$db::Statement<'q>, sqlx::Error>>
        where
            $p: 'e,
        {
            let conn = self.pooled();
            Box::pin(async move { conn.await?.prepare_with(sql, parameters).await })
        }

        fn describe<'e, 'q: 'e>(
            self,
            sql: &'q str,
        ) -> ::futures_util::future::BoxFuture<'e, Result<sqlx::Describe<$db>, sqlx::Error>>
        where
            $p: 'e,
        {
            let conn = self.pooled();
            Box::pin(async move { conn.await?.describe(sql).await })
        }
    };
}

pub(crate) use pool_prepare;
