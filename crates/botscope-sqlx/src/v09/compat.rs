//! What sqlx 0.9's traits ask of the wrapper that 0.8's do not: its `Execute::sql` consumes
//! the query (so the query is re-packed to read its text), and statements and SQL text carry
//! no lifetime.

use sqlx::error::BoxDynError;
use sqlx::{Database, Execute, SqlStr};

use super::metrics::{Metrics, Query};
use super::sqlx;

/// A query taken apart so its SQL text can be read before it runs.
///
/// `Execute::sql` consumes the query, so the wrapper takes everything out of it first (the
/// cached statement, the arguments, the persistence flag) and hands the driver this value,
/// which gives back exactly what the original would have.
pub(crate) struct Prepared<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Prepared<DB> {
    fn new<'q, E: Execute<'q, DB>>(mut query: E) -> Self {
        let statement = query.statement().cloned();
        let persistent = query.persistent();
        let arguments = Some(query.take_arguments());
        Self {
            sql: query.sql(),
            statement,
            arguments,
            persistent,
        }
    }
}

impl<DB: Database> Execute<'_, DB> for Prepared<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Re-packs `query` and finds the series it records into.
pub(crate) fn start<'q, DB, E>(metrics: &Metrics, query: E) -> (Query, Prepared<DB>)
where
    DB: Database,
    E: Execute<'q, DB>,
{
    let prepared = Prepared::new(query);
    (metrics.query(prepared.sql.as_str()), prepared)
}

/// `Executor::prepare_with` and `describe` for `&'t mut` a wrapper of a `$db` connection,
/// handed to the connection `$conn` unmeasured (they run no query of the caller's).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused_macros)
)]
macro_rules! delegate_prepare {
    ($db:ty, $t:lifetime, |$this:ident| $conn:expr) => {
        fn prepare_with<'e>(
            self,
            sql: sqlx::SqlStr,
            parameters: &'e [<$db as sqlx::Database>::TypeInfo],
        ) -> ::futures_util::future::BoxFuture<
            'e,
            Result<<$db as sqlx::Database>::Statement, sqlx::Error>,
        >
        where
            $t: 'e,
        {
            let $this = self;
            sqlx::Executor::prepare_with($conn, sql, parameters)
        }

        fn describe<'e>(
            self,
            sql: sqlx::SqlStr,
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
        fn prepare_with<'e>(
            self,
            sql: sqlx::SqlStr,
            parameters: &'e [$db::TypeInfo],
        ) -> ::futures_util::future::BoxFuture<'e, Result<$db::Statement, sqlx::Error>>
        where
            $p: 'e,
        {
            let conn = self.pooled();
            Box::pin(async move { conn.await?.prepare_with(sql, parameters).await })
        }

        fn describe<'e>(
            self,
            sql: sqlx::SqlStr,
        ) -> ::futures_util::future::BoxFuture<'e, Result<sqlx::Describe<$db>, sqlx::Error>> {
            let conn = self.pooled();
            Box::pin(async move { conn.await?.describe(sql).await })
        }
    };
}

pub(crate) use pool_prepare;
