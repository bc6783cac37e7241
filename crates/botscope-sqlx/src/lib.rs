#![doc = include_str!("../README.md")]

pub mod sql;

/// The modules of one sqlx major, expanded once in `sqlx08` and once in `v09`. Each file
/// names sqlx as `super::sqlx`, which the expanding module binds to its major, and uses that
/// module's `compat` for the little that differs.
macro_rules! one_major {
    () => {
        #[path = "acquire.rs"]
        mod acquire;
        #[path = "connection.rs"]
        mod connection;
        #[path = "error_type.rs"]
        pub mod error_type;
        #[path = "metrics.rs"]
        pub mod metrics;
        #[path = "pool.rs"]
        mod pool;
        #[path = "query.rs"]
        mod query;
        #[path = "transaction.rs"]
        mod transaction;

        pub use connection::{InstrumentedConnection, PooledConnection};
        pub use error_type::error_type;
        pub use pool::{InstrumentedPool, InstrumentedPoolBuilder};
        pub use transaction::{InstrumentedTransaction, TransactionConnection};

        #[cfg(test)]
        mod tests {
            use std::fmt::Debug;
            use std::ops::Deref;

            use super::sqlx::{self, MySql, Postgres, Sqlite};

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
    };
}

#[cfg(feature = "sqlx-08")]
pub mod sqlx08;
#[cfg(feature = "sqlx-09")]
mod v09;

#[cfg(feature = "sqlx-09")]
pub use v09::{
    InstrumentedConnection, InstrumentedPool, InstrumentedPoolBuilder, InstrumentedTransaction,
    PooledConnection, TransactionConnection, error_type, metrics,
};
