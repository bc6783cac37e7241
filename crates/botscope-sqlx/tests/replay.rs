//! Durations are counted in atomics and handed to the histograms when a reader collects: what
//! a scrape shows must be what recording every query straight into OpenTelemetry would show.

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Sqlite, SqlitePool};

async fn pool() -> SqlitePool {
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

fn counts(s: &Scrape) -> [Option<f64>; 3] {
    let select = [("db", "main"), ("operation", "select"), ("table", "")];
    [
        s.value(
            "t_database_queries_total",
            &[
                ("db", "main"),
                ("operation", "select"),
                ("status", "success"),
            ],
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
    let pool = pool().await;
    let a = InstrumentedPool::new(pool.clone(), "main").with_meter(metrics.meter());
    let b = InstrumentedPool::new(pool, "main").with_meter(metrics.meter());
    select_ones(&a, 3).await;
    select_ones(&b, 2).await;
    assert_eq!(counts(&metrics.scrape()), [Some(5.0); 3]);
    select_ones(&a, 1).await;
    assert_eq!(counts(&metrics.scrape()), [Some(6.0); 3]);
}

#[tokio::test]
async fn durations_of_a_dropped_pool_still_arrive() {
    let metrics = TestMetrics::new("t");
    let wrapped = InstrumentedPool::new(pool().await, "main").with_meter(metrics.meter());
    select_ones(&wrapped, 4).await;
    wrapped.inner().close().await;
    drop(wrapped);
    let s = metrics.scrape();
    assert_eq!(counts(&s), [Some(4.0); 3]);
    // the pool gauges went with the pool
    assert!(!s.has("t_database_connections"));
}

#[tokio::test]
async fn every_query_lands_in_a_bucket_and_the_sum() {
    let metrics = TestMetrics::new("t");
    let wrapped = InstrumentedPool::new(pool().await, "main").with_meter(metrics.meter());
    let started = std::time::Instant::now();
    select_ones(&wrapped, 50).await;
    let took = started.elapsed().as_secs_f64();
    let s = metrics.scrape();
    let select = [("db", "main"), ("operation", "select"), ("table", "")];
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
