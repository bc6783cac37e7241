//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};
use sqlx::Sqlite;
use sqlx::sqlite::SqlitePoolOptions;

/// A table name no other test (in this or another process) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "bs_{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    )
}

/// The URL in `var`. The tests that call this are `#[ignore]`d unless asked for (`.ci/run`
/// asks, with both variables set): asked for without the variable, they fail rather than
/// pass without running.
pub fn url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: this test needs that database (see the README; .ci/run sets it)"
        ),
    }
}

/// Scrapes until `check` holds or ten seconds pass; returns the last scrape either way.
/// Connections go back to an sqlx pool from a spawned task, so a gauge settles a moment
/// after the drop that frees it.
pub async fn settle(metrics: &TestMetrics, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = metrics.scrape();
        if check(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `N_database_connections{db, state}`.
pub fn connections(scrape: &Scrape, db: &str, state: &str) -> Option<f64> {
    scrape.value("test_database_connections", &[("db", db), ("state", state)])
}

/// A one-connection in-memory SQLite pool, wrapped as `db=main`, recording into metrics of
/// the namespace `namespace`.
pub async fn one_connection_sqlite(
    namespace: &str,
    options: SqlitePoolOptions,
) -> (InstrumentedPool<Sqlite>, TestMetrics) {
    let metrics = TestMetrics::new(namespace);
    let pool = options
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect("sqlite::memory:")
        .await
        .expect("sqlite opens");
    let pool = InstrumentedPool::builder(pool, "main")
        .meter(metrics.meter())
        .build();
    (pool, metrics)
}
