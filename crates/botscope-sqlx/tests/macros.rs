//! The `query!` family through the wrapper, on each database. The macros compile from the
//! query data cached in `.sqlx` (`SQLX_OFFLINE=true` in `.env`), so no database is needed to
//! build; running needs the same databases as the suite.

mod common;

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};

struct One {
    one: i64,
}

fn selects(s: &Scrape, db: &str) -> Option<f64> {
    s.value(
        "test_database_queries_total",
        &[
            ("db", db),
            ("operation", "SELECT"),
            ("table", ""),
            ("status", "success"),
        ],
    )
}

#[tokio::test]
async fn sqlite() {
    let metrics = TestMetrics::new("test");
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let pool = InstrumentedPool::builder(pool, "sqlite")
        .meter(metrics.meter())
        .build();
    let row = sqlx::query!(r#"SELECT 1 AS "one!" /* sqlite */"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    let two = sqlx::query_scalar!(r#"SELECT 2 AS "two!" /* sqlite */"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let all = sqlx::query_as!(One, r#"SELECT 3 AS "one!" /* sqlite */"#)
        .fetch_all(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((row.one, two, all[0].one), (1, 2, 3));
    assert_eq!(selects(&metrics.scrape(), "sqlite"), Some(3.0));
}

#[tokio::test]
#[ignore = "needs a server: set BOTSCOPE_PG_URL and run with --ignored (.ci/run does)"]
async fn postgres() {
    let url = common::url("BOTSCOPE_PG_URL");
    let metrics = TestMetrics::new("test");
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("BOTSCOPE_PG_URL is set, so PostgreSQL must answer");
    let pool = InstrumentedPool::builder(pool, "postgres")
        .meter(metrics.meter())
        .build();
    let row = sqlx::query!(r#"SELECT CAST(1 AS BIGINT) AS "one!" /* postgres */"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    let two = sqlx::query_scalar!(r#"SELECT CAST(2 AS BIGINT) AS "two!" /* postgres */"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let all = sqlx::query_as!(One, r#"SELECT CAST(3 AS BIGINT) AS "one!" /* postgres */"#)
        .fetch_all(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((row.one, two, all[0].one), (1, 2, 3));
    assert_eq!(selects(&metrics.scrape(), "postgres"), Some(3.0));
}

#[tokio::test]
#[ignore = "needs a server: set BOTSCOPE_MYSQL_URL and run with --ignored (.ci/run does)"]
async fn mysql() {
    let url = common::url("BOTSCOPE_MYSQL_URL");
    let metrics = TestMetrics::new("test");
    let pool = sqlx::MySqlPool::connect(&url)
        .await
        .expect("BOTSCOPE_MYSQL_URL is set, so MariaDB/MySQL must answer");
    let pool = InstrumentedPool::builder(pool, "mysql")
        .meter(metrics.meter())
        .build();
    let row = sqlx::query!("SELECT CAST(1 AS SIGNED) AS `one!` /* mysql */")
        .fetch_one(&pool)
        .await
        .unwrap();
    let two = sqlx::query_scalar!("SELECT CAST(2 AS SIGNED) AS `two!` /* mysql */")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let all = sqlx::query_as!(One, "SELECT CAST(3 AS SIGNED) AS `one!` /* mysql */")
        .fetch_all(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((row.one, two, all[0].one), (1, 2, 3));
    assert_eq!(selects(&metrics.scrape(), "mysql"), Some(3.0));
}
