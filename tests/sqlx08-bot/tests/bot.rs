//! The bot on sqlx 0.8, wired as its author would from the READMEs: the pool wrapped before
//! `Telemetry::install()`, its database layer unchanged, and what it measured read from the
//! text of the scrape.

use botscope::Telemetry;
use botscope::sqlx::sqlx08::InstrumentedPool;
use botscope_sqlx08_bot::{add_xp, migrate, share_xp, xp};

/// The value of the sample of `name` whose labels include `labels`, from exposition text.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_on_sqlx_08_is_measured_whatever_it_hands_its_functions() {
    // One connection: an in-memory SQLite database lives and dies with its connection.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    // Built before install: it reports once install runs.
    let db = InstrumentedPool::new(pool, "bot");
    let telemetry = Telemetry::builder()
        .namespace("bot")
        .serve(false)
        .install()
        .unwrap();

    migrate(&db).await.unwrap();
    add_xp(&db, 1, 10).await.unwrap();
    share_xp(&db, [1, 2], 5).await.unwrap();
    let mut conn = db.acquire().await.unwrap();
    add_xp(&mut conn, 2, 1).await.unwrap();
    drop(conn);
    let mut tx = db.begin().await.unwrap();
    add_xp(&mut tx, 3, 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(xp(&db, 1).await.unwrap(), 15);
    assert_eq!(xp(&db, 2).await.unwrap(), 6);
    let missing = xp(&db, 9).await.err().unwrap();
    assert!(matches!(missing, sqlx::Error::RowNotFound), "{missing}");

    let text = telemetry.render();
    let queries = |operation, status| {
        value(
            &text,
            "bot_database_queries_total",
            &[
                ("db", "bot"),
                ("operation", operation),
                ("table", "xp"),
                ("status", status),
            ],
        )
    };
    assert_eq!(queries("CREATE", "success"), Some(1.0), "{text}");
    // `query_scalar!` turns the empty answer into `RowNotFound` after the executor returned,
    // so the third `SELECT` is a success too (botscope-sqlx's README says so).
    assert_eq!(queries("SELECT", "success"), Some(3.0), "{text}");
    assert_eq!(queries("SELECT", "error"), Some(0.0), "{text}");
    // `share_xp(&db)` and `db.begin()` begin on the pool; `tx.commit()` is the wrapper's.
    let untabled = |operation| {
        value(
            &text,
            "bot_database_queries_total",
            &[
                ("operation", operation),
                ("table", ""),
                ("status", "success"),
            ],
        )
    };
    assert_eq!(untabled("BEGIN"), Some(2.0), "{text}");
    assert_eq!(untabled("COMMIT"), Some(1.0), "{text}");
    // Every connection any function had came through the wrapper, its wait timed:
    // migrate, add_xp(&db), share_xp's begin, acquire, begin, three xp.
    assert_eq!(
        value(
            &text,
            "bot_database_connection_acquire_duration_seconds_count",
            &[("db", "bot")]
        ),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "bot_database_connections_max", &[("db", "bot")]),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "bot_database_connections",
            &[("db", "bot"), ("state", "idle")]
        )
        .is_some(),
        "{text}"
    );
    telemetry.shutdown().await;
}

/// The point of the feature: a bot on sqlx 0.8 builds no second sqlx. (Its lock file lists
/// sqlx 0.9, as every lock file lists the optional dependencies of path packages; `cargo
/// tree` shows what is built.)
#[test]
fn the_tree_builds_one_sqlx_and_it_is_0_8() {
    let tree = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--prefix",
            "none",
            "--edges",
            "normal,build",
        ])
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("cargo runs");
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8(tree.stdout).unwrap();
    let mut sqlx: Vec<&str> = tree
        .lines()
        .filter(|line| line.starts_with("sqlx v"))
        .collect();
    sqlx.dedup();
    assert!(!sqlx.is_empty(), "{tree}");
    assert!(
        sqlx.iter().all(|line| line.starts_with("sqlx v0.8.")),
        "{sqlx:?}"
    );
}
