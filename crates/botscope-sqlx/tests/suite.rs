//! The same behaviour suite on SQLite (in memory, always), PostgreSQL (`BOTSCOPE_PG_URL`) and
//! MariaDB/MySQL (`BOTSCOPE_MYSQL_URL`), asserted from a real Prometheus scrape.
//!
//! The suite runs on both sqlx majors: module `sqlx09` (the crate root's wrapper) and `sqlx08`
//! (`botscope_sqlx::sqlx08`, feature `sqlx-08`). Each database gets a module from `suite!`
//! inside each. The PostgreSQL and MariaDB modules are
//! `#[ignore]`d in a plain `cargo test` (they need servers) and run by `.ci/run` with
//! `--ignored`; run that way, an unset URL or a server that does not answer fails the test.

mod common;

/// The suite for one backend. `$pool` connects a pool of `max` connections (acquire timeout
/// `timeout`); `$p1`/`$p2` are its first two placeholders; `$slow` runs for a second or two;
/// `$many` returns many rows. The enclosing module names the major: `sqlx`, `wrapper` (the
/// wrapper's module for that major) and `sql` (a `String` as that major's query text).
macro_rules! suite {
    (
        $(#[$test_attr:meta])*
        mod $name:ident, db $db:ty,
        pool |$max:ident, $timeout:ident| $pool:expr,
        p1 $p1:literal, p2 $p2:literal, p3 $p3:literal,
        slow $slow:literal,
    ) => {
        mod $name {
            #![allow(clippy::unwrap_used)]

            use std::time::Duration;

            use botscope_testkit::TestMetrics;
            use futures_util::{StreamExt, TryStreamExt};

            use super::wrapper::InstrumentedPool;
            use super::{sql, sqlx, wrapper as botscope_sqlx};
            use sqlx::{Executor, Row};

            #[allow(unused_imports)]
            use super::common::{self, connections, settle, unique};

            const DB: &str = stringify!($name);
            const MANY: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) SELECT x FROM c";

            type Db = $db;

            async fn pool(
                $max: u32,
                $timeout: Duration,
            ) -> (InstrumentedPool<Db>, TestMetrics) {
                let pool: sqlx::Pool<Db> = $pool;
                let metrics = TestMetrics::new("test");
                let pool = InstrumentedPool::builder(pool, DB).meter(metrics.meter()).build();
                (pool, metrics)
            }

            fn queries(s: &botscope_testkit::Scrape, op: &str, table: &str, status: &str) -> f64 {
                s.value(
                    "test_database_queries_total",
                    &[("db", DB), ("operation", op), ("table", table), ("status", status)],
                )
                .unwrap_or(0.0)
            }

            fn errors(s: &botscope_testkit::Scrape, op: &str, table: &str, class: &str) -> f64 {
                s.value(
                    "test_database_errors_total",
                    &[("db", DB), ("operation", op), ("table", table), ("error_type", class)],
                )
                .unwrap_or(0.0)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$test_attr])*
            async fn every_call_form_is_measured() {
                let (pool, metrics) = pool(3, Duration::from_secs(10)).await;
                let t = unique("calls");
                sqlx::query(sql(format!(
                    "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL)"
                )))
                .execute(&pool)
                .await
                .unwrap();

                // sqlx::query(..).execute / fetch_one / fetch_optional / fetch_all / fetch / fetch_many
                for id in 1..=3_i64 {
                    sqlx::query(sql(format!("INSERT INTO {t} (id, name) VALUES ({}, {})", $p1, $p2)))
                        .bind(id)
                        .bind(format!("guild-{id}"))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                let select = format!("SELECT id, name FROM {t} WHERE id >= {} ORDER BY id", $p1);
                let rows = sqlx::query(sql(select.clone())).bind(1_i64).fetch_all(&pool).await.unwrap();
                assert_eq!(rows.len(), 3);
                let row = sqlx::query(sql(select.clone())).bind(2_i64).fetch_one(&pool).await.unwrap();
                assert_eq!(row.get::<i64, _>(0), 2);
                let none = sqlx::query(sql(select.clone())).bind(9_i64).fetch_optional(&pool).await.unwrap();
                assert!(none.is_none());
                let streamed: Vec<_> = sqlx::query(sql(select.clone())).bind(1_i64).fetch(&pool).try_collect().await.unwrap();
                assert_eq!(streamed.len(), 3);
                let steps = (&pool).fetch_many(sqlx::query(sql(select.clone())).bind(1_i64)).count().await;
                assert!(steps >= 3);

                // query_as / query_scalar
                let typed: Vec<(i64, String)> = sqlx::query_as(sql(select.clone())).bind(1_i64).fetch_all(&pool).await.unwrap();
                assert_eq!(typed[0].1, "guild-1");
                let count: i64 = sqlx::query_scalar(sql(format!("SELECT COUNT(*) FROM {t}"))).fetch_one(&pool).await.unwrap();
                assert_eq!(count, 3);

                // Executor methods directly, with a bare string
                let done = (&pool).execute(sql(format!("UPDATE {t} SET name = 'renamed' WHERE id = 3"))).await.unwrap();
                assert_eq!(done.rows_affected(), 1);

                // transactions: commit and rollback
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(sql(format!("INSERT INTO {t} (id, name) VALUES ({}, {})", $p1, $p2)))
                    .bind(4_i64).bind("tx").execute(&mut tx).await.unwrap();
                let inside: i64 = sqlx::query_scalar(sql(format!("SELECT COUNT(*) FROM {t}"))).fetch_one(&mut tx).await.unwrap();
                assert_eq!(inside, 4);
                let streamed: Vec<_> = sqlx::query(sql(select.clone())).bind(1_i64).fetch(&mut tx).try_collect().await.unwrap();
                assert_eq!(streamed.len(), 4);
                tx.commit().await.unwrap();
                // sqlx's own idiom, `&mut *tx`, is measured alike
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(sql(format!("DELETE FROM {t} WHERE id = {}", $p1))).bind(4_i64).execute(&mut *tx).await.unwrap();
                tx.rollback().await.unwrap();

                // a connection from acquire(), through sqlx's `&mut *conn`
                let mut conn = pool.acquire().await.unwrap();
                let kept: i64 = sqlx::query_scalar(sql(format!("SELECT COUNT(*) FROM {t}"))).fetch_one(&mut *conn).await.unwrap();
                assert_eq!(kept, 4, "the rolled back delete left the row");
                drop(conn);

                sqlx::raw_sql(sql(format!("DROP TABLE {t}"))).execute(&pool).await.unwrap();

                let s = settle(&metrics, |s| connections(s, DB, "in_use") == Some(0.0)).await;
                assert_eq!(queries(&s, "CREATE", &t, "success"), 1.0);
                assert_eq!(queries(&s, "INSERT", &t, "success"), 4.0);
                assert_eq!(queries(&s, "SELECT", &t, "success"), 10.0, "{}", s.text());
                assert_eq!(queries(&s, "UPDATE", &t, "success"), 1.0);
                assert_eq!(queries(&s, "DELETE", &t, "success"), 1.0);
                assert_eq!(queries(&s, "DROP", &t, "success"), 1.0);
                assert_eq!(queries(&s, "BEGIN", "", "success"), 2.0);
                assert_eq!(queries(&s, "COMMIT", "", "success"), 1.0);
                assert_eq!(queries(&s, "ROLLBACK", "", "success"), 1.0);
                assert_eq!(
                    s.value(
                        "test_database_query_duration_seconds_count",
                        &[("db", DB), ("operation", "SELECT"), ("table", t.as_str())]
                    ),
                    Some(10.0)
                );
                assert_eq!(
                    s.value("test_database_query_duration_seconds_bucket", &[("db", DB), ("operation", "SELECT"), ("le", "10")]),
                    Some(10.0)
                );
                // every pool query and begin() waited for a connection once, and so did acquire()
                assert_eq!(
                    s.value("test_database_connection_acquire_duration_seconds_count", &[("db", DB)]),
                    Some(1.0 + 3.0 + 7.0 + 1.0 + 1.0 + 2.0 + 1.0)
                );
                assert_eq!(s.value("test_database_connections_max", &[("db", DB)]), Some(3.0));
                assert_eq!(connections(&s, DB, "in_use"), Some(0.0));
                assert!(connections(&s, DB, "idle").unwrap() >= 1.0);
                assert!(!s.has("test_database_errors_total") || errors(&s, "SELECT", &t, "row_not_found") == 0.0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$test_attr])*
            async fn constraint_errors_are_classified_and_passed_through() {
                let (pool, metrics) = pool(2, Duration::from_secs(10)).await;
                let parent = unique("parent");
                let child = unique("child");
                sqlx::query(sql(format!("CREATE TABLE {parent} (id BIGINT PRIMARY KEY)"))).execute(&pool).await.unwrap();
                sqlx::query(sql(format!(
                    "CREATE TABLE {child} (id BIGINT PRIMARY KEY, parent_id BIGINT NOT NULL, \
                     name VARCHAR(32) NOT NULL UNIQUE, qty BIGINT NOT NULL DEFAULT 0 CHECK (qty >= 0), \
                     FOREIGN KEY (parent_id) REFERENCES {parent} (id))"
                ))).execute(&pool).await.unwrap();
                sqlx::query(sql(format!("INSERT INTO {parent} (id) VALUES (1)"))).execute(&pool).await.unwrap();

                let insert = format!("INSERT INTO {child} (id, parent_id, name, qty) VALUES ({}, {}, {}, 0)", $p1, $p2, $p3);
                let run = |id: i64, parent_id: i64, name: Option<&'static str>| {
                    let insert = insert.clone();
                    let pool = pool.clone();
                    async move {
                        sqlx::query(sql(insert)).bind(id).bind(parent_id).bind(name).execute(&pool).await
                    }
                };
                run(1, 1, Some("a")).await.unwrap();
                let unique_err = run(2, 1, Some("a")).await.unwrap_err();
                let fk_err = run(3, 99, Some("b")).await.unwrap_err();
                let null_err = run(4, 1, None).await.unwrap_err();
                let check_err = sqlx::query(sql(format!("UPDATE {child} SET qty = -1 WHERE id = 1"))).execute(&pool).await.unwrap_err();
                // (`.err().unwrap()`: sqlx 0.8's rows are not `Debug`)
                let missing = sqlx::query(sql(format!("SELECT id FROM {child} WHERE id = {}", $p1))).bind(42_i64).fetch_one(&pool).await.err().unwrap();

                // errors pass through untouched
                assert!(unique_err.as_database_error().unwrap().is_unique_violation(), "{unique_err}");
                assert!(fk_err.as_database_error().unwrap().is_foreign_key_violation(), "{fk_err}");
                assert!(matches!(missing, sqlx::Error::RowNotFound));
                assert_eq!(botscope_sqlx::error_type(&null_err), "not_null_violation", "{null_err}");
                assert_eq!(botscope_sqlx::error_type(&check_err), "check_violation", "{check_err}");

                sqlx::query(sql(format!("DROP TABLE {child}"))).execute(&pool).await.unwrap();
                sqlx::query(sql(format!("DROP TABLE {parent}"))).execute(&pool).await.unwrap();

                let s = metrics.scrape();
                assert_eq!(errors(&s, "INSERT", &child, "unique_violation"), 1.0);
                assert_eq!(errors(&s, "INSERT", &child, "foreign_key_violation"), 1.0);
                assert_eq!(errors(&s, "INSERT", &child, "not_null_violation"), 1.0);
                assert_eq!(errors(&s, "UPDATE", &child, "check_violation"), 1.0);
                assert_eq!(errors(&s, "SELECT", &child, "row_not_found"), 1.0);
                assert_eq!(queries(&s, "INSERT", &child, "error"), 3.0);
                assert_eq!(queries(&s, "INSERT", &child, "success"), 1.0);
                assert_eq!(queries(&s, "UPDATE", &child, "error"), 1.0);
                assert_eq!(queries(&s, "SELECT", &child, "error"), 1.0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$test_attr])*
            async fn a_busy_pool_of_one_times_out() {
                let (pool, metrics) = pool(1, Duration::from_millis(300)).await;
                let held = pool.acquire().await.unwrap();
                let waited = std::time::Instant::now();
                let err = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
                assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
                let err = pool.begin().await.unwrap_err();
                assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
                let waited = waited.elapsed().as_secs_f64();

                let s = metrics.scrape();
                assert_eq!(errors(&s, "SELECT", "", "pool_timed_out"), 1.0);
                assert_eq!(errors(&s, "BEGIN", "", "pool_timed_out"), 1.0);
                assert_eq!(connections(&s, DB, "in_use"), Some(1.0));
                assert_eq!(connections(&s, DB, "idle"), Some(0.0));
                // the failed waits are in the acquire histogram, at least as long as the timeout
                assert_eq!(
                    s.value("test_database_connection_acquire_duration_seconds_bucket", &[("db", DB), ("le", "0.25")]),
                    Some(1.0),
                    "only the first, uncontended acquire is under 250 ms"
                );
                // and the clock agrees with the wall clock: the two waits add up to at least the
                // two timeouts and at most the time they took together (plus the uncontended one)
                let sum = s
                    .value("test_database_connection_acquire_duration_seconds_sum", &[("db", DB)])
                    .unwrap_or_default();
                assert!((0.6..waited + 0.05).contains(&sum), "acquire waits {sum} s in {waited} s");
                drop(held);
                let s = settle(&metrics, |s| connections(s, DB, "in_use") == Some(0.0)).await;
                assert_eq!(connections(&s, DB, "in_use"), Some(0.0));
                assert_eq!(connections(&s, DB, "idle"), Some(1.0));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$test_attr])*
            async fn cancelled_streams_and_futures_leave_the_gauges_right() {
                let (pool, metrics) = pool(2, Duration::from_secs(30)).await;
                // a stream dropped after its first row: a success, and its connection returns
                let mut rows = sqlx::query(MANY).fetch(&pool);
                assert!(rows.next().await.unwrap().is_ok());
                assert_eq!(connections(&metrics.scrape(), DB, "in_use"), Some(1.0));
                drop(rows);
                let s = settle(&metrics, |s| connections(s, DB, "in_use") == Some(0.0)).await;
                assert_eq!(connections(&s, DB, "in_use"), Some(0.0));
                assert_eq!(queries(&s, "SELECT", "c", "success"), 1.0);

                // a future dropped in the middle of a slow query
                let cancelled = tokio::time::timeout(Duration::from_millis(150), sqlx::query($slow).execute(&pool)).await;
                assert!(cancelled.is_err(), "the slow query finished in 150 ms");

                // a future dropped while it waits for a connection
                let a = pool.acquire().await.unwrap();
                let b = pool.acquire().await.unwrap();
                let waiting = tokio::time::timeout(Duration::from_millis(100), sqlx::query("SELECT 1").fetch_optional(&pool)).await;
                assert!(waiting.is_err());
                let s = metrics.scrape();
                assert_eq!(connections(&s, DB, "in_use"), Some(2.0));
                drop((a, b));

                let s = settle(&metrics, |s| connections(s, DB, "in_use") == Some(0.0)).await;
                assert_eq!(connections(&s, DB, "in_use"), Some(0.0), "{}", s.text());
                let size = connections(&s, DB, "idle").unwrap();
                assert!((1.0..=2.0).contains(&size));
                assert!(!s.has("test_database_errors_total"), "no cancellation is an error");
                // the slow query (its table is `c` on SQLite) and the wait are both cancelled
                let cancelled = queries(&s, "SELECT", "", "cancelled") + queries(&s, "SELECT", "c", "cancelled");
                assert_eq!(cancelled, 2.0, "{}", s.text());
                // the pool still serves queries
                sqlx::query("SELECT 1").execute(&pool).await.unwrap();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$test_attr])*
            async fn literals_never_reach_a_label() {
                let (pool, metrics) = pool(1, Duration::from_secs(10)).await;
                let t = unique("lit");
                sqlx::query(sql(format!("CREATE TABLE {t} (id BIGINT, note VARCHAR(64))"))).execute(&pool).await.unwrap();
                sqlx::query(sql(format!(
                    "/* secretcomment */ INSERT INTO {t} (id, note) VALUES (31337, 'secretvalue FROM secrettable')"
                ))).execute(&pool).await.unwrap();
                let _ = sqlx::query(sql(format!("SELECT note FROM {t} WHERE note = 'secretwhere' -- secretline"))).fetch_all(&pool).await.unwrap();
                sqlx::query(sql(format!("DROP TABLE {t}"))).execute(&pool).await.unwrap();
                let s = metrics.scrape();
                assert_eq!(queries(&s, "INSERT", &t, "success"), 1.0);
                assert_eq!(queries(&s, "SELECT", &t, "success"), 1.0);
                for sample in s.samples() {
                    for value in sample.labels.values() {
                        assert!(!value.contains("secret") && !value.contains("31337"), "{value}");
                    }
                }
            }

            /// A bot's own function, generic over sqlx's `Acquire`, as a database layer writes it.
            async fn ping_through<'a, A>(conn: A) -> Result<(), sqlx::Error>
            where
                A: sqlx::Acquire<'a, Database = Db>,
            {
                let mut conn = conn.acquire().await?;
                sqlx::query("SELECT 1").execute(&mut *conn).await?;
                Ok(())
            }

            /// The same, opening its own transaction (or savepoint) on what it is given.
            async fn ping_in_transaction<'a, A>(conn: A) -> Result<(), sqlx::Error>
            where
                A: sqlx::Acquire<'a, Database = Db>,
            {
                let mut tx = conn.begin().await?;
                sqlx::query("SELECT 1").execute(&mut *tx).await?;
                tx.commit().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$test_attr])*
            async fn code_generic_over_acquire_takes_the_pool_its_connections_and_transactions() {
                let (pool, metrics) = pool(2, Duration::from_secs(10)).await;
                let acquires = |s: &botscope_testkit::Scrape| {
                    s.value("test_database_connection_acquire_duration_seconds_count", &[("db", DB)])
                        .unwrap_or(0.0)
                };
                ping_through(&pool).await.unwrap();
                ping_in_transaction(&pool).await.unwrap();
                let s = metrics.scrape();
                assert_eq!(acquires(&s), 2.0, "one acquire each, timed");
                assert_eq!(queries(&s, "BEGIN", "", "success"), 1.0);

                let mut conn = pool.acquire().await.unwrap();
                ping_through(&mut conn).await.unwrap();
                ping_in_transaction(&mut conn).await.unwrap();
                drop(conn);
                let mut tx = pool.begin().await.unwrap();
                ping_through(&mut tx).await.unwrap();
                ping_in_transaction(&mut tx).await.unwrap();
                tx.commit().await.unwrap();

                let s = metrics.scrape();
                assert_eq!(acquires(&s), 4.0, "the connection's and the transaction's");
                assert_eq!(queries(&s, "BEGIN", "", "success"), 3.0, "pool, connection, pool.begin");
                assert_eq!(queries(&s, "SAVEPOINT", "", "success"), 1.0, "the transaction's begin");
                assert_eq!(queries(&s, "COMMIT", "", "success"), 1.0, "tx.commit, the wrapper's own");
                assert!(
                    connections(&s, DB, "in_use").is_some(),
                    "the pool gauges are read through the same pool"
                );
            }
        }
    };
}

/// The suite on SQLite, PostgreSQL and MariaDB, for the major the enclosing module names.
macro_rules! backends {
    () => {
        suite! {
            mod sqlite, db sqlx::Sqlite,
            pool |max, timeout|
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(timeout)
                    .connect("sqlite::memory:")
                    .await
                    .expect("an in-memory SQLite database opens"),
            p1 "$1", p2 "$2", p3 "$3",
            slow "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT COUNT(*) FROM c",
        }

        suite! {
            #[ignore = "needs PostgreSQL: set BOTSCOPE_PG_URL and run with --ignored (.ci/run does)"]
            mod postgres, db sqlx::Postgres,
            pool |max, timeout|
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(timeout)
                    .connect(&common::url("BOTSCOPE_PG_URL"))
                    .await
                    .expect("BOTSCOPE_PG_URL is set, so PostgreSQL must answer"),
            p1 "$1", p2 "$2", p3 "$3",
            slow "SELECT pg_sleep(1)",
        }

        suite! {
            #[ignore = "needs MariaDB or MySQL: set BOTSCOPE_MYSQL_URL and run with --ignored (.ci/run does)"]
            mod mysql, db sqlx::MySql,
            pool |max, timeout|
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(timeout)
                    .connect(&common::url("BOTSCOPE_MYSQL_URL"))
                    .await
                    .expect("BOTSCOPE_MYSQL_URL is set, so MariaDB/MySQL must answer"),
            p1 "?", p2 "?", p3 "?",
            slow "SELECT SLEEP(1)",
        }
    };
}

/// sqlx 0.9, the crate root's wrapper.
mod sqlx09 {
    use super::common;
    pub(crate) use ::sqlx;
    pub(crate) use botscope_sqlx as wrapper;

    pub(crate) fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(text)
    }

    backends!();
}

/// sqlx 0.8, `botscope_sqlx::sqlx08`.
mod sqlx08 {
    use super::common;
    pub(crate) use ::sqlx08 as sqlx;
    pub(crate) use botscope_sqlx::sqlx08 as wrapper;

    /// sqlx 0.8 runs `&'q str`s: a test's few statements are leaked.
    pub(crate) fn sql(text: String) -> &'static str {
        text.leak()
    }

    backends!();
}

/// PostgreSQL only: a backend killed by `pg_terminate_backend` fails the next query with `io`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set BOTSCOPE_PG_URL and run with --ignored (.ci/run does)"]
async fn postgres_killed_backend_is_io() {
    use botscope_sqlx::InstrumentedPool;
    use botscope_testkit::TestMetrics;

    let url = common::url("BOTSCOPE_PG_URL");
    let metrics = TestMetrics::new("test");
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("BOTSCOPE_PG_URL is set, so PostgreSQL must answer");
    let pool = InstrumentedPool::builder(raw.clone(), "pg")
        .meter(metrics.meter())
        .build();

    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let killer = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&killer)
        .await
        .unwrap();
    assert!(killed);
    // The backend sends its FATAL before it exits: once it has left pg_stat_activity, the
    // message is on the connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(&killer)
                .await
                .unwrap();
        if !alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backend {pid} still alive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let err = sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .unwrap_err();
    // PostgreSQL says goodbye first (FATAL 57P01), then the socket is gone.
    assert!(
        matches!(&err, sqlx::Error::Database(e) if e.code().as_deref() == Some("57P01")),
        "{err:?}"
    );
    assert_eq!(botscope_sqlx::error_type(&err), "io");
    let err = sqlx::query("SELECT 2")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(botscope_sqlx::error_type(&err), "io", "{err:?}");
    let s = metrics.scrape();
    assert_eq!(
        s.value(
            "test_database_errors_total",
            &[("db", "pg"), ("operation", "SELECT"), ("error_type", "io")]
        ),
        Some(2.0)
    );
}
