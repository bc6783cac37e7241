//! No SQL literal ever reaches a label: a property test over generated statements, on the
//! lexer and through a real pool and scrape.

use botscope_sqlx::InstrumentedPool;
use botscope_sqlx::sql::classify;
use botscope_testkit::TestMetrics;
use proptest::prelude::*;
use sqlx::AssertSqlSafe;

/// Every literal carries this marker; no identifier does.
const MARK: &str = "zq";
/// Every number literal starts with these digits; no identifier has digits.
const NUM_MARK: &str = "90210";

const TABLES: [&str; 5] = ["users", "guilds", "app.events", "\"Mixed Case\"", "`tick`"];
const KEYWORDS: [&str; 8] = [
    " FROM ", " INTO ", "UPDATE ", " TABLE ", "WITH ", ";", "--", "/*",
];

fn string_literal() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9 ,.()*=\"`-]{0,6}".boxed(),
                prop::sample::select(KEYWORDS.to_vec())
                    .prop_map(str::to_owned)
                    .boxed(),
                Just("''".to_owned()).boxed(),
            ],
            0..5,
        ),
        prop::sample::select(vec!["", "E", "N"]),
    )
        .prop_map(|(parts, prefix)| format!("{prefix}'{MARK}{}'", parts.concat()))
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        string_literal(),
        "[0-9]{0,6}".prop_map(|d| format!("{NUM_MARK}{d}")),
        "[a-z ]{0,8}".prop_map(|s| format!("$${MARK}{s} FROM x$$")),
        "[a-z ]{0,8}".prop_map(|s| format!("$t${MARK}{s}$t$")),
    ]
}

fn comment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,10}".prop_map(|s| format!("/* {MARK} FROM {s} */ ")),
        "[a-z ]{0,10}".prop_map(|s| format!("-- {MARK} INTO {s}\n")),
        Just(String::new()),
    ]
}

/// A statement and the (operation, table) it must be read as.
fn case() -> impl Strategy<Value = (String, &'static str, Option<String>)> {
    let table = prop::sample::select(TABLES.to_vec());
    (
        0..7_usize,
        table,
        literal(),
        literal(),
        comment(),
        comment(),
    )
        .prop_map(|(shape, table, a, b, c1, c2)| {
            let name = Some(table.trim_matches(['"', '`']).to_lowercase_unquoted(table));
            match shape {
                0 => (
                    format!("{c1}SELECT {a}, id FROM {table} WHERE name = {b} {c2}"),
                    "SELECT",
                    name,
                ),
                1 => (
                    format!("{c1}INSERT INTO {table} (a, b) VALUES ({a}, {b}){c2}"),
                    "INSERT",
                    name,
                ),
                2 => (
                    format!("UPDATE {table} SET a = {a} {c1}WHERE b = {b}"),
                    "UPDATE",
                    name,
                ),
                3 => (
                    format!("DELETE FROM {table} WHERE a IN ({a}, {b}) {c1}"),
                    "DELETE",
                    name,
                ),
                4 => (
                    format!(
                        "WITH w AS (SELECT {a} AS v) {c1}SELECT v FROM w, {table} WHERE x = {b}"
                    ),
                    "SELECT",
                    Some("w".to_owned()),
                ),
                5 => (format!("SELECT {a}{c1}"), "SELECT", None),
                _ => (format!("{a} {c1} FROM {b} {table}"), "OTHER", None),
            }
        })
}

fn statement() -> impl Strategy<Value = String> {
    case().prop_map(|(sql, _, _)| sql)
}

trait Unquoted {
    fn to_lowercase_unquoted(&self, original: &str) -> String;
}

impl Unquoted for str {
    /// Unquoted names fold to lowercase; quoted ones keep their case.
    fn to_lowercase_unquoted(&self, original: &str) -> String {
        if original.starts_with(['"', '`']) {
            self.to_owned()
        } else {
            self.to_lowercase()
        }
    }
}

fn leaks(label: &str) -> bool {
    label.contains(MARK) || label.contains(NUM_MARK)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_lexer_never_returns_a_literal((sql, operation, table) in case()) {
        let classified = classify(&sql);
        prop_assert_eq!(classified.operation(), operation, "{}", sql);
        prop_assert_eq!(classified.table(), table.as_deref(), "{}", sql);
        prop_assert!(!leaks(classified.operation()), "{sql}");
        if let Some(table) = classified.table() {
            prop_assert!(!leaks(table), "{sql} -> {table}");
        }
    }

    #[test]
    fn arbitrary_text_gives_a_closed_operation(sql in "\\PC{0,80}") {
        let classified = classify(&sql);
        prop_assert!(classified.operation().chars().all(|c| c.is_ascii_uppercase()));
        if let Some(table) = classified.table() {
            prop_assert!(table.len() <= botscope_sqlx::sql::MAX_TABLE_LEN);
            prop_assert!(!table.contains('\''));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_literal_in_a_scraped_label(statements in prop::collection::vec(statement(), 1..8)) {
        let metrics = TestMetrics::new("prop");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:")
                .await
                .unwrap();
            let pool = InstrumentedPool::builder(pool, "prop").meter(metrics.meter()).build();
            for sql in &statements {
                // most fail (no such table, syntax): the labels are recorded all the same
                let _ = sqlx::query(AssertSqlSafe(sql.clone())).execute(&pool).await;
            }
        });
        let scrape = metrics.scrape();
        let recorded: f64 = scrape.series("prop_database_queries_total").map(|s| s.value).sum();
        prop_assert_eq!(recorded, statements.len() as f64);
        for sample in scrape.samples() {
            for value in sample.labels.values() {
                prop_assert!(!leaks(value), "{value} in {statements:?}");
            }
        }
    }
}
