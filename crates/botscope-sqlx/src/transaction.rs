//! [`InstrumentedTransaction`]: a transaction whose queries, commit and rollback are measured.

use std::fmt;
use std::sync::Arc;

use sqlx::{Database, Transaction};

use crate::connection::backend_executors;
use crate::metrics::Metrics;

/// A transaction from [`InstrumentedPool::begin`](crate::InstrumentedPool::begin).
/// `&mut InstrumentedTransaction<DB>` is an [`Executor`](sqlx::Executor) (with the backend's
/// feature on: `sqlite`, `postgres` or `mysql`).
///
/// Like sqlx's [`Transaction`], it rolls back when dropped without [`commit`](Self::commit)
/// or [`rollback`](Self::rollback) (that implicit rollback is not measured).
pub struct InstrumentedTransaction<DB: Database> {
    tx: Transaction<'static, DB>,
    metrics: Arc<Metrics>,
}

impl<DB: Database> InstrumentedTransaction<DB> {
    pub(crate) fn new(tx: Transaction<'static, DB>, metrics: Arc<Metrics>) -> Self {
        Self { tx, metrics }
    }

    /// Commits, measured as operation `commit`.
    ///
    /// # Errors
    ///
    /// The database's answer to `COMMIT`.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it resolves, the transaction is rolled back as sqlx does on drop; the
    /// attempt counts as a success.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let guard = self.metrics.start("commit");
        guard.result(self.tx.commit().await)
    }

    /// Rolls back, measured as operation `rollback`.
    ///
    /// # Errors
    ///
    /// The database's answer to `ROLLBACK`.
    ///
    /// # Cancel safety
    ///
    /// Dropped before it resolves, the rollback still happens when the connection returns
    /// to the pool.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let guard = self.metrics.start("rollback");
        guard.result(self.tx.rollback().await)
    }

    /// The sqlx transaction. Queries run on it directly are not measured.
    pub fn inner_mut(&mut self) -> &mut Transaction<'static, DB> {
        &mut self.tx
    }

    /// Unwraps the sqlx transaction.
    pub fn into_inner(self) -> Transaction<'static, DB> {
        self.tx
    }
}

impl<DB: Database> fmt::Debug for InstrumentedTransaction<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedTransaction")
            .field("db", &self.metrics.db().value.as_str())
            .finish_non_exhaustive()
    }
}

backend_executors!(InstrumentedTransaction, |this| (&mut *this.tx));
