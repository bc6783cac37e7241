//! The statement cache holds what it derived from a statement, never its text: a thousand
//! distinct 100 kB statements add at most 1 MB to the heap (botscope issue 21, finding 4:
//! they held 57 MB when the cache kept the texts).
//!
//! Its own test binary: it counts every byte the process's Rust heap holds, through jemalloc's
//! statistics (SQLite's C allocations are not on that heap), so no other test may run beside it.

mod common;

use botscope_sqlx::InstrumentedPool;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{AssertSqlSafe, Sqlite};
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const STATEMENTS: usize = 1_000;
const TEXT_BYTES: usize = 100_000;

/// Bytes the Rust heap holds now.
fn heap_bytes() -> usize {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats")
}

/// `SELECT 1` followed by a comment that makes the text `TEXT_BYTES` long and distinct.
fn long_statement(i: usize) -> String {
    let mut sql = format!("SELECT 1 /* {i} ");
    sql.extend(std::iter::repeat_n('x', TEXT_BYTES - sql.len() - 3));
    sql.push_str(" */");
    sql
}

async fn run(pool: &InstrumentedPool<Sqlite>, sql: String) {
    // Not persistent: sqlx's own per-connection statement cache would keep the text.
    let one: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .fetch_one(pool)
        .await
        .expect("select 1");
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_thousand_long_statements_add_at_most_a_megabyte() {
    let (pool, metrics) = common::one_connection_sqlite("test", SqlitePoolOptions::new()).await;
    // The connection, the series and the runtime's buffers exist before the count starts.
    for i in 0..10 {
        run(&pool, long_statement(STATEMENTS + i)).await;
    }
    let before = heap_bytes();
    for i in 0..STATEMENTS {
        run(&pool, long_statement(i)).await;
    }
    let after = heap_bytes();
    println!(
        "{STATEMENTS} distinct statements of {TEXT_BYTES} bytes: heap {before} -> {after} bytes"
    );
    let added = after.saturating_sub(before);
    assert!(added <= 1_000_000, "+{added} bytes held");
    let scrape = metrics.scrape();
    let select = [("db", "main"), ("operation", "SELECT"), ("table", "")];
    let with_status = [select.as_slice(), &[("status", "success")]].concat();
    assert_eq!(
        scrape.value("test_database_queries_total", &with_status),
        Some((STATEMENTS + 10) as f64),
        "every statement recorded in its one series"
    );
}
