//! How a query ended, as a scrape shows it: `success`, `error`, `panic` (the panic reaches
//! the caller unchanged) and `cancelled` (dropped before it finished), on a real SQLite pool.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};
use futures_util::StreamExt;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Executor, Sqlite};

/// 500 rows, one at a time.
const MANY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) SELECT x FROM c";
/// Runs for seconds.
const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT COUNT(*) FROM c";

/// A one-connection pool, wrapped.
async fn pool(options: SqlitePoolOptions) -> (InstrumentedPool<Sqlite>, TestMetrics) {
    common::one_connection_sqlite("t", options).await
}

fn queries(s: &Scrape, operation: &str, table: &str, status: &str) -> f64 {
    s.value(
        "t_database_queries_total",
        &[
            ("db", "main"),
            ("operation", operation),
            ("table", table),
            ("status", status),
        ],
    )
    .unwrap_or(0.0)
}

fn durations(s: &Scrape, operation: &str, table: &str) -> f64 {
    s.value(
        "t_database_query_duration_seconds_count",
        &[("db", "main"), ("operation", operation), ("table", table)],
    )
    .unwrap_or(0.0)
}

fn acquires(s: &Scrape) -> f64 {
    s.value(
        "t_database_connection_acquire_duration_seconds_count",
        &[("db", "main")],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_query_dropped_while_it_waits_for_a_connection_is_cancelled() {
    let (pool, metrics) = pool(SqlitePoolOptions::new()).await;
    let held = pool.acquire().await.unwrap();
    let waiting = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query("SELECT 1").fetch_one(&pool),
    )
    .await;
    assert!(waiting.is_err(), "the only connection is held");
    let s = metrics.scrape();
    assert_eq!(queries(&s, "SELECT", "", "cancelled"), 1.0, "{}", s.text());
    assert_eq!(queries(&s, "SELECT", "", "success"), 0.0);
    assert_eq!(durations(&s, "SELECT", ""), 0.0, "no partial time");
    assert_eq!(
        acquires(&s),
        1.0,
        "only the held acquire, not the abandoned wait"
    );
    assert!(!s.has("t_database_errors_total"));

    // the same for begin() and a stream that never got its first row
    let begin = tokio::time::timeout(Duration::from_millis(50), pool.begin()).await;
    assert!(begin.is_err());
    let mut rows = sqlx::query(MANY).fetch(&pool);
    let first = tokio::time::timeout(Duration::from_millis(50), rows.next()).await;
    assert!(first.is_err());
    drop(rows);
    let s = metrics.scrape();
    assert_eq!(queries(&s, "BEGIN", "", "cancelled"), 1.0);
    assert_eq!(queries(&s, "SELECT", "c", "cancelled"), 1.0);
    assert_eq!(durations(&s, "SELECT", "c"), 0.0);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_dropped_mid_flight_is_cancelled() {
    let (pool, metrics) = pool(SqlitePoolOptions::new()).await;
    let slow = tokio::time::timeout(
        Duration::from_millis(150),
        sqlx::query_scalar::<_, i64>(SLOW).fetch_one(&pool),
    )
    .await;
    assert!(slow.is_err(), "the slow query finished in 150 ms");
    let s = metrics.scrape();
    assert_eq!(queries(&s, "SELECT", "c", "cancelled"), 1.0, "{}", s.text());
    assert_eq!(queries(&s, "SELECT", "c", "success"), 0.0);
    assert_eq!(durations(&s, "SELECT", "c"), 0.0);
    assert_eq!(acquires(&s), 1.0, "the pool answered before the drop");
}

#[tokio::test]
async fn a_stream_stopped_after_a_row_is_a_success() {
    let (pool, metrics) = pool(SqlitePoolOptions::new()).await;
    let mut rows = sqlx::query(MANY).fetch(&pool);
    assert!(rows.next().await.unwrap().is_ok());
    drop(rows);

    // the same on a transaction's executor
    let mut tx = pool.begin().await.unwrap();
    let mut rows = sqlx::query(MANY).fetch(&mut tx);
    assert!(rows.next().await.unwrap().is_ok());
    drop(rows);
    // and a stream of the transaction dropped before it was polled
    drop(sqlx::query(MANY).fetch(&mut tx));
    tx.rollback().await.unwrap();

    let s = metrics.scrape();
    assert_eq!(queries(&s, "SELECT", "c", "success"), 2.0, "{}", s.text());
    assert_eq!(durations(&s, "SELECT", "c"), 2.0);
    assert_eq!(queries(&s, "SELECT", "c", "cancelled"), 1.0);
    assert_eq!(queries(&s, "ROLLBACK", "", "success"), 1.0);
}

#[tokio::test]
async fn an_error_counts_its_class_and_its_duration() {
    let (pool, metrics) = pool(SqlitePoolOptions::new()).await;
    let err = sqlx::query("SELECT * FROM missing").fetch_all(&pool).await;
    assert!(err.is_err());
    let err = sqlx::query("SELECT 1 WHERE 0").fetch_one(&pool).await;
    assert!(matches!(err, Err(sqlx::Error::RowNotFound)), "{err:?}");
    let s = metrics.scrape();
    assert_eq!(queries(&s, "SELECT", "missing", "error"), 1.0);
    assert_eq!(durations(&s, "SELECT", "missing"), 1.0);
    assert_eq!(queries(&s, "SELECT", "", "error"), 1.0);
    assert_eq!(
        s.value(
            "t_database_errors_total",
            &[("operation", "SELECT"), ("error_type", "row_not_found")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "t_database_errors_total",
            &[("table", "missing"), ("error_type", "database")]
        ),
        Some(1.0),
        "{}",
        s.text()
    );
}

/// A pool whose `before_acquire` hook panics once `armed`: sqlx runs it inside `acquire`,
/// on an idle connection, so inside the poll of the instrumented future.
async fn panicking_pool() -> (InstrumentedPool<Sqlite>, TestMetrics, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = Arc::clone(&armed);
    let options = SqlitePoolOptions::new().before_acquire(move |_conn, _meta| {
        let armed = trigger.load(Ordering::SeqCst);
        Box::pin(async move {
            if armed {
                std::panic::panic_any(String::from("before_acquire blew up"));
            }
            Ok(true)
        })
    });
    let (pool, metrics) = pool(options).await;
    // opens the connection, which then waits idle
    pool.execute("SELECT 1").await.unwrap();
    armed.store(true, Ordering::SeqCst);
    (pool, metrics, armed)
}

fn panic_message(joined: Result<impl Sized, tokio::task::JoinError>) -> String {
    let Err(error) = joined else {
        panic!("the task did not panic");
    };
    assert!(error.is_panic(), "{error}");
    *error
        .into_panic()
        .downcast::<String>()
        .expect("the payload is the hook's own String")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_counted_and_reaches_the_caller_unchanged() {
    let (pool, metrics, _) = panicking_pool().await;
    let task = {
        let pool = pool.clone();
        tokio::spawn(async move { sqlx::query("SELECT 1").fetch_optional(&pool).await })
    };
    assert_eq!(panic_message(task.await), "before_acquire blew up");
    let s = metrics.scrape();
    assert_eq!(queries(&s, "SELECT", "", "panic"), 1.0, "{}", s.text());
    assert_eq!(
        durations(&s, "SELECT", ""),
        1.0,
        "only the query before the panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stream_or_a_begin_is_counted() {
    let (pool, metrics, _) = panicking_pool().await;
    let task = {
        let pool = pool.clone();
        // `execute` is built on `fetch_many`: the row stream path
        tokio::spawn(async move { sqlx::query("UPDATE t SET a = 1").execute(&pool).await })
    };
    assert_eq!(panic_message(task.await), "before_acquire blew up");
    let s = metrics.scrape();
    assert_eq!(queries(&s, "UPDATE", "t", "panic"), 1.0, "{}", s.text());
    assert_eq!(durations(&s, "UPDATE", "t"), 0.0);

    let (pool, metrics, _) = panicking_pool().await;
    let task = tokio::spawn(async move { pool.begin().await.map(drop) });
    assert_eq!(panic_message(task.await), "before_acquire blew up");
    assert_eq!(queries(&metrics.scrape(), "BEGIN", "", "panic"), 1.0);
}
