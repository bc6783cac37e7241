#![doc = include_str!("../README.md")]

mod acquire;
mod connection;
pub mod error_type;
pub mod metrics;
mod pool;
mod query;
pub mod sql;
mod transaction;

pub use connection::{InstrumentedConnection, PooledConnection};
pub use error_type::error_type;
pub use pool::{InstrumentedPool, InstrumentedPoolBuilder};
pub use transaction::{InstrumentedTransaction, TransactionConnection};

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::ops::Deref;

    use sqlx::{MySql, Postgres, Sqlite};

    use super::*;

    static_assertions::assert_impl_all!(InstrumentedPool<Sqlite>: Clone, Send, Sync, Debug);
    static_assertions::assert_impl_all!(InstrumentedPoolBuilder<Postgres>: Send, Sync, Debug);
    static_assertions::assert_impl_all!(InstrumentedPool<Postgres>: Clone, Send, Sync, Debug);
    static_assertions::assert_impl_all!(InstrumentedPool<MySql>: Clone, Send, Sync, Debug);
    static_assertions::assert_not_impl_any!(InstrumentedPool<Sqlite>: Deref);
    static_assertions::assert_impl_all!(&'static InstrumentedPool<Sqlite>: sqlx::Executor<'static>);
    static_assertions::assert_impl_all!(InstrumentedTransaction<Postgres>: Send, Debug);
    static_assertions::assert_impl_all!(&'static mut InstrumentedTransaction<MySql>: sqlx::Executor<'static>);
    static_assertions::assert_impl_all!(InstrumentedConnection<Sqlite>: Send, Debug);
    static_assertions::assert_impl_all!(&'static mut InstrumentedConnection<Sqlite>: sqlx::Executor<'static>);
    static_assertions::assert_impl_all!(&'static mut TransactionConnection<Postgres>: sqlx::Executor<'static>);
    static_assertions::assert_impl_all!(&'static mut PooledConnection<MySql>: sqlx::Executor<'static>);
    static_assertions::assert_impl_all!(&'static InstrumentedPool<Postgres>: sqlx::Acquire<'static>);
    static_assertions::assert_impl_all!(&'static mut InstrumentedConnection<MySql>: sqlx::Acquire<'static>);
    static_assertions::assert_impl_all!(&'static mut InstrumentedTransaction<Sqlite>: sqlx::Acquire<'static>);
}
