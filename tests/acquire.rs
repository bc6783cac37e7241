//! A bot's database layer written against `sqlx::Acquire`, as a user's program: the same
//! functions take the wrapper's pool, a connection from it and a transaction, on SQLite,
//! PostgreSQL and MariaDB (those two `#[ignore]`d in a plain `cargo test`: `.ci/run` sets
//! `BOTSCOPE_PG_URL` and `BOTSCOPE_MYSQL_URL` and runs them).
//!
//! sqlx's trait hands out the driver's own connection and transaction, so what the scrape
//! shows is what the wrapper does before handing them out: the acquire wait and `BEGIN`.

use botscope::sqlx::InstrumentedPool;
use botscope_testkit::{Scrape, TestMetrics};

/// The bot's layer for one database: `$db` its sqlx database, `$p1` its first placeholder.
macro_rules! cards_layer {
    ($module:ident, $db:ty, $p1:literal) => {
        mod $module {
            use sqlx::Acquire;

            pub(crate) async fn create<'a, A: Acquire<'a, Database = $db>>(
                db: A,
            ) -> Result<(), sqlx::Error> {
                let mut conn = db.acquire().await?;
                sqlx::query("DROP TABLE IF EXISTS acquire_cards")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("CREATE TABLE acquire_cards (name VARCHAR(64) NOT NULL)")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            pub(crate) async fn add<'a, A: Acquire<'a, Database = $db>>(
                db: A,
                name: &str,
            ) -> Result<u64, sqlx::Error> {
                let mut conn = db.acquire().await?;
                let done = sqlx::query(concat!(
                    "INSERT INTO acquire_cards (name) VALUES (",
                    $p1,
                    ")"
                ))
                .bind(name)
                .execute(&mut *conn)
                .await?;
                Ok(done.rows_affected())
            }

            /// Its own transaction, queried through `as_mut()`.
            pub(crate) async fn add_two<'a, A: Acquire<'a, Database = $db>>(
                db: A,
            ) -> Result<(), sqlx::Error> {
                let mut tx = db.begin().await?;
                for name in ["two", "three"] {
                    sqlx::query(concat!(
                        "INSERT INTO acquire_cards (name) VALUES (",
                        $p1,
                        ")"
                    ))
                    .bind(name)
                    .execute(tx.as_mut())
                    .await?;
                }
                tx.commit().await
            }

            pub(crate) async fn count<'a, A: Acquire<'a, Database = $db>>(
                db: A,
            ) -> Result<i64, sqlx::Error> {
                let mut conn = db.acquire().await?;
                sqlx::query_scalar("SELECT COUNT(*) FROM acquire_cards")
                    .fetch_one(&mut *conn)
                    .await
            }
        }
    };
}

cards_layer!(sqlite_cards, sqlx::Sqlite, "?");
cards_layer!(pg_cards, sqlx::Postgres, "$1");
cards_layer!(mysql_cards, sqlx::MySql, "?");

/// Drives one layer through the pool, a connection and a transaction, and checks the scrape.
macro_rules! drive {
    ($layer:ident, $pool:expr) => {{
        let metrics = TestMetrics::new("bot");
        let pool = InstrumentedPool::builder($pool, "cards")
            .meter(metrics.meter())
            .build();
        $layer::create(&pool).await.expect("create");
        assert_eq!(
            $layer::add(&pool, "one")
                .await
                .expect("add through the pool"),
            1
        );
        $layer::add_two(&pool)
            .await
            .expect("a transaction from the pool");

        let mut conn = pool.acquire().await.expect("acquire");
        assert_eq!(
            $layer::count(&mut conn)
                .await
                .expect("count on a connection"),
            3
        );
        $layer::add_two(&mut conn)
            .await
            .expect("a transaction on a connection");
        drop(conn);

        let mut tx = pool.begin().await.expect("begin");
        $layer::add(&mut tx, "six")
            .await
            .expect("add in a transaction");
        $layer::add_two(&mut tx)
            .await
            .expect("a savepoint in a transaction");
        tx.commit().await.expect("commit");
        assert_eq!($layer::count(&pool).await.expect("count"), 8);
        check(&metrics.scrape());
    }};
}

fn check(scrape: &Scrape) {
    let acquires = scrape.value(
        "bot_database_connection_acquire_duration_seconds_count",
        &[("db", "cards")],
    );
    // create, add, add_two, acquire, begin and the last count: six waits for the pool
    assert_eq!(acquires, Some(6.0), "{}", scrape.text());
    let ops = |operation| {
        scrape.value(
            "bot_database_queries_total",
            &[
                ("db", "cards"),
                ("operation", operation),
                ("status", "success"),
            ],
        )
    };
    // add_two through the pool and through the connection, and `pool.begin()`
    assert_eq!(ops("BEGIN"), Some(3.0));
    assert_eq!(ops("SAVEPOINT"), Some(1.0));
    assert_eq!(
        ops("COMMIT"),
        Some(1.0),
        "the wrapper's own transaction's commit"
    );
    // the driver's connection runs the queries itself: sqlx's trait hands it out as is
    assert_eq!(ops("INSERT"), None);
}

#[tokio::test]
async fn an_acquire_layer_runs_on_sqlite() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite");
    drive!(sqlite_cards, pool);
}

fn url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set BOTSCOPE_PG_URL and run with --ignored (.ci/run does)"]
async fn an_acquire_layer_runs_on_postgres() {
    let pool = sqlx::PgPool::connect(&url("BOTSCOPE_PG_URL"))
        .await
        .expect("postgres");
    drive!(pg_cards, pool);
}

#[tokio::test]
#[ignore = "needs MariaDB: set BOTSCOPE_MYSQL_URL and run with --ignored (.ci/run does)"]
async fn an_acquire_layer_runs_on_mariadb() {
    let pool = sqlx::MySqlPool::connect(&url("BOTSCOPE_MYSQL_URL"))
        .await
        .expect("mariadb");
    drive!(mysql_cards, pool);
}
