//! [`sqlx::Acquire`] for the wrapper's pool, connections and transactions, so code generic
//! over `A: Acquire<'a, Database = DB>` takes them unchanged.
//!
//! sqlx's trait fixes what it hands out: `Acquire::Connection` must dereference to the
//! driver's own connection (`PgConnection`…) and `begin` returns sqlx's own `Transaction`.
//! So what is measured through it is what the wrapper does before handing them out: the
//! acquire wait (`N_database_connection_acquire_duration_seconds`), the pool gauges and the
//! `BEGIN` (operation `BEGIN`); the queries a caller then runs on the driver's connection,
//! and that transaction's commit or rollback, go straight to sqlx and are not. Code that
//! takes `impl Executor` (or the wrapper's types) has every query measured.

use std::future;

use super::sqlx;
use botscope_core::outcome::Timed;
use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Acquire, Database, Transaction};

use super::connection::InstrumentedConnection;
use super::pool::InstrumentedPool;
use super::transaction::InstrumentedTransaction;

/// Acquires from the pool, timing the wait, and hands out sqlx's pool connection; `begin`
/// is [`InstrumentedPool::begin`], measured, handing out its sqlx transaction.
impl<'a, DB: Database> Acquire<'a> for &'_ InstrumentedPool<DB> {
    type Database = DB;
    type Connection = PoolConnection<DB>;

    fn acquire(self) -> BoxFuture<'static, Result<Self::Connection, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { Ok(pool.acquire().await?.into_inner()) })
    }

    fn begin(self) -> BoxFuture<'static, Result<Transaction<'a, DB>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { Ok(pool.begin().await?.into_inner()) })
    }
}

/// The connection itself; `begin` starts a transaction on it, measured as `BEGIN`.
impl<'c, DB: Database> Acquire<'c> for &'c mut InstrumentedConnection<DB> {
    type Database = DB;
    type Connection = &'c mut DB::Connection;

    fn acquire(self) -> BoxFuture<'c, Result<Self::Connection, sqlx::Error>> {
        Box::pin(future::ready(Ok(&mut **self.inner_mut())))
    }

    fn begin(self) -> BoxFuture<'c, Result<Transaction<'c, DB>, sqlx::Error>> {
        let finish = self.metrics().query("BEGIN");
        Box::pin(Timed::new(
            Transaction::begin(&mut **self.inner_mut(), None),
            finish,
        ))
    }
}

/// The transaction's connection; `begin` opens a savepoint, measured as `SAVEPOINT`.
impl<'t, DB: Database> Acquire<'t> for &'t mut InstrumentedTransaction<DB> {
    type Database = DB;
    type Connection = &'t mut DB::Connection;

    fn acquire(self) -> BoxFuture<'t, Result<Self::Connection, sqlx::Error>> {
        Box::pin(future::ready(Ok(&mut **self.inner_mut())))
    }

    fn begin(self) -> BoxFuture<'t, Result<Transaction<'t, DB>, sqlx::Error>> {
        let finish = self.metrics().query("SAVEPOINT");
        Box::pin(Timed::new(
            Transaction::begin(&mut **self.inner_mut(), None),
            finish,
        ))
    }
}
