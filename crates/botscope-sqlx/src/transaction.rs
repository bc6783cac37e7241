//! [`InstrumentedTransaction`]: a transaction whose queries, commit and rollback are measured.

use std::fmt;
use std::sync::Arc;

use botscope_core::outcome::Timed;
use sqlx::{Database, Transaction};

use crate::connection::backend_executors;
use crate::metrics::Metrics;

/// A transaction from [`InstrumentedPool::begin`](crate::InstrumentedPool::begin).
/// `&mut InstrumentedTransaction<DB>` is an [`Executor`](sqlx::Executor) (with the backend's
/// feature on: `sqlite`, `postgres` or `mysql`).
///
/// Like sqlx's [`Transaction`], it rolls back when dropped without [`commit`](Self::commit)
/// or [`rollback`](Self::rollback) (that implicit rollback is not measured).
///
/// # Cancel safety
///
/// A query future dropped before it ends counts as `cancelled`; row streams follow the
/// [outcome rules](crate::metrics#outcomes).
pub struct InstrumentedTransaction<DB: Database> {
    tx: Transaction<'static, DB>,
    metrics: Arc<Metrics>,
}

impl<DB: Database> InstrumentedTransaction<DB> {
    pub(crate) fn new(tx: Transaction<'static, DB>, metrics: Arc<Metrics>) -> Self {
        Self { tx, metrics }
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
        Timed::new(self.tx.commit(), self.metrics.query("COMMIT")).await
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
        Timed::new(self.tx.rollback(), self.metrics.query("ROLLBACK")).await
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
            .field("db", &self.metrics.db_name())
            .finish_non_exhaustive()
    }
}

backend_executors!(InstrumentedTransaction, |this| (&mut *this.tx));
