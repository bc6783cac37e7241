//! The wrapper as a user builds and drops it: the builder's options, wrappers sharing a name,
//! a dropped or unwrapped pool, every query in the histogram.

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{AssertSqlSafe, Sqlite, SqlitePool};

async fn sqlite() -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite opens")
}

async fn select_ones(pool: &InstrumentedPool<Sqlite>, n: usize) {
    for _ in 0..n {
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(pool)
            .await
            .expect("select 1");
        assert_eq!(one, 1);
    }
}

/// Queries, durations and acquire waits of `SELECT 1` on `db=main`.
fn counts(s: &Scrape) -> [Option<f64>; 3] {
    let select = [("db", "main"), ("operation", "SELECT"), ("table", "")];
    [
        s.value(
            "t_database_queries_total",
            &[select.as_slice(), &[("status", "success")]].concat(),
        ),
        s.value("t_database_query_duration_seconds_count", &select),
        s.value(
            "t_database_connection_acquire_duration_seconds_count",
            &[("db", "main")],
        ),
    ]
}

#[tokio::test]
async fn two_wrappers_with_the_same_name_add_up() {
    let metrics = TestMetrics::new("t");
    let pool = sqlite().await;
    let a = InstrumentedPool::builder(pool.clone(), "main")
        .meter(metrics.meter())
        .build();
    let b = InstrumentedPool::builder(pool, "main")
        .meter_provider(metrics.provider())
        .build();
    select_ones(&a, 3).await;
    select_ones(&b, 2).await;
    assert_eq!(counts(&metrics.scrape()), [Some(5.0); 3]);
    select_ones(&a.clone(), 1).await;
    assert_eq!(counts(&metrics.scrape()), [Some(6.0); 3]);
}

#[tokio::test]
async fn counts_of_a_dropped_pool_stay_and_its_gauges_go() {
    let metrics = TestMetrics::new("t");
    let wrapped = InstrumentedPool::builder(sqlite().await, "main")
        .meter(metrics.meter())
        .build();
    select_ones(&wrapped, 4).await;
    assert!(metrics.scrape().has("t_database_connections"));
    let clone = wrapped.clone();
    wrapped.inner().close().await;
    drop(wrapped);
    assert!(
        metrics.scrape().has("t_database_connections_max"),
        "a clone is left"
    );
    drop(clone);
    let s = metrics.scrape();
    assert_eq!(counts(&s), [Some(4.0); 3]);
    assert!(!s.has("t_database_connections"));
    assert!(!s.has("t_database_connections_max"));
}

#[tokio::test]
async fn into_inner_gives_the_pool_back_unmeasured() {
    let metrics = TestMetrics::new("t");
    let wrapped = InstrumentedPool::builder(sqlite().await, "main")
        .meter(metrics.meter())
        .build();
    select_ones(&wrapped, 1).await;
    let pool = wrapped.into_inner();
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let s = metrics.scrape();
    assert_eq!(counts(&s), [Some(1.0); 3]);
    assert!(
        !s.has("t_database_connections"),
        "the gauges went with the wrapper"
    );
}

#[tokio::test]
async fn the_table_cap_sends_later_tables_to_other() {
    let metrics = TestMetrics::new("t");
    let pool = InstrumentedPool::builder(sqlite().await, "main")
        .meter(metrics.meter())
        .table_cap(2)
        .build();
    for table in ["a", "b", "c", "d"] {
        sqlx::query(AssertSqlSafe(format!("CREATE TABLE {table} (x INTEGER)")))
            .execute(&pool)
            .await
            .unwrap();
    }
    let mut tables = metrics
        .scrape()
        .label_values("t_database_queries_total", "table");
    tables.sort();
    assert_eq!(tables, ["a", "b", "other"]);
}

#[tokio::test]
async fn every_query_lands_in_a_bucket_and_the_sum() {
    let metrics = TestMetrics::new("t");
    let wrapped = InstrumentedPool::builder(sqlite().await, "main")
        .meter(metrics.meter())
        .build();
    let started = std::time::Instant::now();
    select_ones(&wrapped, 50).await;
    let took = started.elapsed().as_secs_f64();
    let s = metrics.scrape();
    let select = [("db", "main"), ("operation", "SELECT"), ("table", "")];
    let inf = [select.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        s.value("t_database_query_duration_seconds_bucket", &inf),
        Some(50.0)
    );
    let sum = s
        .value("t_database_query_duration_seconds_sum", &select)
        .unwrap_or_default();
    assert!(
        sum > 0.0 && sum <= took,
        "50 queries took {took} s; their durations add up to {sum} s"
    );
}
