//! A program that wraps a SQLite pool and writes in a transaction: every statement shows in
//! the scrape under its upper-case operation and its table.

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};

fn success(s: &Scrape, operation: &str, table: &str) -> Option<f64> {
    s.value(
        "disruptor_database_queries_total",
        &[
            ("db", "main"),
            ("operation", operation),
            ("table", table),
            ("status", "success"),
        ],
    )
}

fn timed(s: &Scrape, operation: &str, table: &str) -> Option<f64> {
    s.value(
        "disruptor_database_query_duration_seconds_count",
        &[("db", "main"), ("operation", operation), ("table", table)],
    )
}

#[tokio::test]
async fn insert_select_update_in_a_transaction() {
    let metrics = TestMetrics::new("disruptor");
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let pool = InstrumentedPool::builder(pool, "main")
        .meter(metrics.meter())
        .build();

    sqlx::query("create table guilds (id integer primary key, name text not null)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO guilds (id, name) VALUES (?, ?)")
        .bind(1_i64)
        .bind("botscope")
        .execute(&mut tx)
        .await
        .unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM guilds WHERE id = ?")
        .bind(1_i64)
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(name, "botscope");
    sqlx::query("update guilds set name = ? where id = ?")
        .bind("renamed")
        .bind(1_i64)
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let s = metrics.scrape();
    for (operation, table) in [
        ("CREATE", "guilds"),
        ("INSERT", "guilds"),
        ("SELECT", "guilds"),
        ("UPDATE", "guilds"),
        ("BEGIN", ""),
        ("COMMIT", ""),
    ] {
        assert_eq!(
            success(&s, operation, table),
            Some(1.0),
            "{operation} {table}: {}",
            s.text()
        );
        assert_eq!(timed(&s, operation, table), Some(1.0), "{operation}");
    }
    let operations = s.label_values("disruptor_database_queries_total", "operation");
    assert!(
        operations
            .iter()
            .all(|o| o.chars().all(|c| c.is_ascii_uppercase())),
        "{operations:?}"
    );
}
