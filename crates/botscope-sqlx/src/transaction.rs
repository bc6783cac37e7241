//! [`InstrumentedTransaction`]: a transaction whose queries, commit and rollback are measured.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::sqlx;
use botscope_core::outcome::Timed;
use sqlx::{Database, Transaction};

use super::connection::backend_executors;
use super::metrics::Metrics;

/// A transaction from [`InstrumentedPool::begin`](super::InstrumentedPool::begin).
/// `&mut InstrumentedTransaction<DB>` is an [`Executor`](sqlx::Executor) (with the backend's
/// feature on: `sqlite`, `postgres` or `mysql`), and so is `&mut *tx`, sqlx's own idiom: the
/// transaction dereferences to its [`TransactionConnection`], measured as well.
///
/// ```
/// # async fn run(pool: botscope_sqlx::InstrumentedPool<sqlx::Sqlite>) -> Result<(), sqlx::Error> {
/// let mut tx = pool.begin().await?;
/// sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut *tx).await?; // as with sqlx
/// sqlx::query("INSERT INTO t VALUES (1)").execute(&mut tx).await?; // the same
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// Like sqlx's [`Transaction`], it rolls back when dropped without [`commit`](Self::commit)
/// or [`rollback`](Self::rollback) (that implicit rollback is not measured).
///
/// # Cancel safety
///
/// A query future dropped before it ends counts as `cancelled`; row streams follow the
/// [outcome rules](super::metrics#outcomes).
pub struct InstrumentedTransaction<DB: Database> {
    conn: TransactionConnection<DB>,
}

/// What `*tx` is for an [`InstrumentedTransaction`]: the transaction's connection, with its
/// queries measured. `&mut TransactionConnection<DB>` is an [`Executor`](sqlx::Executor), so
/// `query.execute(&mut *tx)` works as it does on sqlx's own transactions.
pub struct TransactionConnection<DB: Database> {
    tx: Transaction<'static, DB>,
    metrics: Arc<Metrics>,
}

impl<DB: Database> InstrumentedTransaction<DB> {
    pub(crate) fn new(tx: Transaction<'static, DB>, metrics: Arc<Metrics>) -> Self {
        Self {
            conn: TransactionConnection { tx, metrics },
        }
    }

    /// Commits, measured as operation `COMMIT`.
    ///
    /// # Errors
    ///
    /// The database's answer to `COMMIT`.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it resolves, the transaction is rolled back as sqlx does on drop; the
    /// attempt counts as `cancelled`.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let TransactionConnection { tx, metrics } = self.conn;
        Timed::new(tx.commit(), metrics.query("COMMIT")).await
    }

    /// Rolls back, measured as operation `ROLLBACK`.
    ///
    /// # Errors
    ///
    /// The database's answer to `ROLLBACK`.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it resolves, the rollback still happens when the connection returns
    /// to the pool; the attempt counts as `cancelled`.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let TransactionConnection { tx, metrics } = self.conn;
        Timed::new(tx.rollback(), metrics.query("ROLLBACK")).await
    }

    /// The sqlx transaction. Queries run on it directly are not measured.
    pub fn inner_mut(&mut self) -> &mut Transaction<'static, DB> {
        &mut self.conn.tx
    }

    /// Unwraps the sqlx transaction.
    pub fn into_inner(self) -> Transaction<'static, DB> {
        self.conn.tx
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.conn.metrics
    }
}

impl<DB: Database> Deref for InstrumentedTransaction<DB> {
    type Target = TransactionConnection<DB>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for InstrumentedTransaction<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> fmt::Debug for InstrumentedTransaction<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedTransaction")
            .field("db", &self.conn.metrics.db_name())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> fmt::Debug for TransactionConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionConnection")
            .field("db", &self.metrics.db_name())
            .finish_non_exhaustive()
    }
}

backend_executors!(InstrumentedTransaction, |this| (&mut *this.conn.tx));
backend_executors!(TransactionConnection, |this| (&mut *this.tx));
