//! The wrapper for sqlx 0.8 (feature `sqlx-08`): the same types and behaviour as the crate
//! root's for sqlx 0.9, for a bot still on sqlx 0.8.
//!
//! ```toml
//! [dependencies]
//! botscope-sqlx = { version = "0.1", default-features = false, features = ["sqlx-08", "postgres"] }
//! sqlx = { version = "0.8", features = ["runtime-tokio", "postgres"] }
//! ```
//!
//! ```
//! # async fn demo() -> Result<(), sqlx08::Error> {
//! # use sqlx08 as sqlx;
//! use botscope_sqlx::sqlx08::InstrumentedPool;
//!
//! let pool = InstrumentedPool::new(sqlx::SqlitePool::connect("sqlite::memory:").await?, "disruptor");
//! let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
//! assert_eq!(one, 1);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Its files are the crate root's: each names sqlx as `super::sqlx`, the major its module
//! picks; `compat` holds the little that differs between the two majors (how a query's text
//! is read, and the lifetimes of statements).

// Each of these files is compiled once per major, on purpose.
#![allow(clippy::duplicate_mod)]

pub(crate) use ::sqlx08 as sqlx;

use crate::sql;

mod compat;

one_major!();
