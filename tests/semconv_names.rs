//! `Naming::Semconv`: the REST and database families carry the OpenTelemetry semantic
//! conventions' names, units, instrument kinds, attributes and buckets, as a scrape shows them.
//!
//! The expected values are written out from open-telemetry/semantic-conventions v1.44
//! (`schemas/1.44.0`, commit cce43684):
//! - `model/http/metrics.yaml` (commit c2089b1b0a8ba0e49554fa41aa98c133fdf1d11f):
//!   `http.client.request.duration`, histogram, unit `s`, stable, attributes of
//!   `metric_attributes.http.client`, which `model/http/common.yaml` (commit
//!   1ebf1557c025c28b21b760ed26dc26c89fbd68a1) lists: `http.request.method` (required),
//!   `server.address`, `server.port` (required), `http.response.status_code` (if one was
//!   received), `error.type` (if the request ended with an error: the status code for an
//!   error status), `url.template` (opt-in);
//! - the advised buckets of `docs/http/http-metrics.md`:
//!   `[ 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10 ]`;
//! - `model/db/metrics.yaml` (commit 193fc3d3cc1488e080f80c3f7ca000d4aff56e87):
//!   `db.client.operation.duration` (histogram, `s`, stable; `db.system.name` required,
//!   `db.namespace`, `db.operation.name`, `db.collection.name`, `db.response.status_code`,
//!   `error.type` conditionally), `db.client.connection.count` (updowncounter,
//!   `{connection}`; `db.client.connection.state`, `db.client.connection.pool.name`),
//!   `db.client.connection.max` (updowncounter, `{connection}`; pool name),
//!   `db.client.connection.wait_time` (histogram, `s`; pool name);
//! - the advised buckets of `docs/db/database-metrics.md` (commit
//!   01d94504d2ec9a5653a5bde13908bc933d96ff29) for `db.client.operation.duration`:
//!   `[ 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10 ]` (none for the wait time, which uses
//!   the same).
//!
//! Prometheus names: dots become underscores, unit `s` adds `_seconds`, the annotation
//! `{connection}` adds nothing, and an up/down counter is a `gauge`.

use std::collections::BTreeSet;

use botscope::Naming;
use botscope::http::DiscordProxy;
use botscope::sqlx::InstrumentedPool;
use botscope::{Telemetry, core::meter::provider_meter};
use botscope_testkit::Scrape;
use botscope_testkit::rest::{FakeDiscord, Reply};

const HTTP_BUCKETS: [&str; 15] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5",
    "7.5", "10", "+Inf",
];
const DB_BUCKETS: [&str; 10] = [
    "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf",
];

/// `# TYPE` of `family` in the exposition text.
fn type_of<'a>(text: &'a str, family: &str) -> Option<&'a str> {
    let prefix = format!("# TYPE {family} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
}

/// The label names of the samples of `name` (without `le`), one set per series.
fn label_sets(scrape: &Scrape, name: &str) -> BTreeSet<Vec<String>> {
    scrape
        .series(name)
        .map(|sample| {
            sample
                .labels
                .keys()
                .filter(|key| *key != "le")
                .cloned()
                .collect()
        })
        .collect()
}

/// The `le` bounds of one series of the histogram `family`, in exposition order.
fn buckets(scrape: &Scrape, family: &str) -> Vec<String> {
    let name = format!("{family}_bucket");
    let first = scrape
        .series(&name)
        .next()
        .expect("a bucket")
        .labels
        .clone();
    scrape
        .series(&name)
        .filter(|sample| {
            sample
                .labels
                .iter()
                .all(|(key, value)| key == "le" || first.get(key) == Some(value))
        })
        .map(|sample| sample.labels["le"].clone())
        .collect()
}

fn keys(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|&key| key.to_owned()).collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn semconv_families_match_the_conventions() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = Telemetry::builder()
        .namespace("disruptor")
        .serve(false)
        .system_metrics(false)
        .set_global(false)
        .naming(Naming::Semconv)
        .install()
        .expect("telemetry");
    let provider = telemetry.meter_provider();

    // REST: a twilight-http client through the proxy to the fake, one success, one 404.
    let fake = FakeDiscord::spawn().await.expect("fake discord");
    let proxy = DiscordProxy::builder()
        .upstream(fake.url())
        .meter(provider_meter(provider, "botscope-http", "0"))
        .naming(Naming::Semconv)
        .spawn()
        .await
        .expect("proxy");
    let http = proxy
        .configure(twilight_http::Client::builder().token("Bot token".to_owned()))
        .build();
    http.current_user().await.expect("users/@me");
    fake.push(Reply::Status(404));
    assert!(http.current_user().await.is_err(), "the fake answers 404");

    // Database: an in-memory SQLite pool, a success, and a unique violation.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite");
    let pool = InstrumentedPool::builder(pool, "disruptor")
        .meter_provider(provider)
        .naming(Naming::Semconv)
        .build();
    sqlx::query("CREATE TABLE guilds (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO guilds (id) VALUES (1)")
        .execute(&pool)
        .await
        .expect("insert");
    sqlx::query("INSERT INTO guilds (id) VALUES (1)")
        .execute(&pool)
        .await
        .expect_err("a unique violation");

    let text = telemetry.render();
    let scrape = Scrape::parse(&text);

    // http.client.request.duration
    let family = "http_client_request_duration_seconds";
    assert_eq!(type_of(&text, family), Some("histogram"), "{text}");
    assert_eq!(buckets(&scrape, family), HTTP_BUCKETS);
    let addr = fake.addr();
    let port = addr.port().to_string();
    let ip = addr.ip().to_string();
    let common = [
        ("http_request_method", "GET"),
        ("server_address", ip.as_str()),
        ("server_port", port.as_str()),
        ("url_template", "/users/@me"),
    ];
    let ok: Vec<_> = common
        .iter()
        .copied()
        .chain([("http_response_status_code", "200")])
        .collect();
    assert_eq!(
        scrape.value(&format!("{family}_count"), &ok),
        Some(1.0),
        "{text}"
    );
    let not_found: Vec<_> = common
        .iter()
        .copied()
        .chain([("http_response_status_code", "404"), ("error_type", "404")])
        .collect();
    assert_eq!(
        scrape.value(&format!("{family}_count"), &not_found),
        Some(1.0),
        "{text}"
    );
    let base = [
        "http_request_method",
        "server_address",
        "server_port",
        "url_template",
        "http_response_status_code",
    ];
    let with_error: Vec<_> = base.iter().copied().chain(["error_type"]).collect();
    assert_eq!(
        label_sets(&scrape, &format!("{family}_count")),
        BTreeSet::from([keys(&base), keys(&with_error)])
    );

    // db.client.operation.duration
    let family = "db_client_operation_duration_seconds";
    assert_eq!(type_of(&text, family), Some("histogram"), "{text}");
    assert_eq!(buckets(&scrape, family), DB_BUCKETS);
    let count = format!("{family}_count");
    let inserted = scrape
        .series(&count)
        .find(|sample| {
            sample.labels.get("db_operation_name").map(String::as_str) == Some("INSERT")
                && !sample.labels.contains_key("error_type")
        })
        .expect("the insert");
    assert_eq!(inserted.value, 1.0);
    assert_eq!(
        inserted.labels,
        [
            ("db_system_name", "sqlite"),
            ("db_namespace", "disruptor"),
            ("db_operation_name", "INSERT"),
            ("db_collection_name", "guilds"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    );
    let violation = scrape
        .series(&count)
        .find(|sample| sample.labels.contains_key("error_type"))
        .expect("the failed insert");
    assert_eq!(violation.labels["error_type"], "unique_violation");
    assert_eq!(violation.labels["db_operation_name"], "INSERT");
    // SQLite's extended result code of a duplicate primary key, SQLITE_CONSTRAINT_PRIMARYKEY.
    assert_eq!(violation.labels["db_response_status_code"], "1555");
    assert_eq!(
        keys(
            &violation
                .labels
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        keys(&[
            "db_system_name",
            "db_namespace",
            "db_operation_name",
            "db_collection_name",
            "error_type",
            "db_response_status_code",
        ])
    );

    // db.client.connection.*
    assert_eq!(type_of(&text, "db_client_connection_count"), Some("gauge"));
    let states: BTreeSet<_> = scrape
        .label_values("db_client_connection_count", "db_client_connection_state")
        .into_iter()
        .collect();
    assert_eq!(
        states,
        BTreeSet::from(["idle".to_owned(), "used".to_owned()])
    );
    assert_eq!(
        label_sets(&scrape, "db_client_connection_count"),
        BTreeSet::from([keys(&[
            "db_client_connection_pool_name",
            "db_client_connection_state"
        ])])
    );
    assert_eq!(type_of(&text, "db_client_connection_max"), Some("gauge"));
    assert_eq!(
        scrape.value(
            "db_client_connection_max",
            &[("db_client_connection_pool_name", "disruptor")]
        ),
        Some(2.0)
    );
    let family = "db_client_connection_wait_time_seconds";
    assert_eq!(type_of(&text, family), Some("histogram"));
    assert_eq!(buckets(&scrape, family), DB_BUCKETS);
    assert_eq!(
        label_sets(&scrape, &format!("{family}_count")),
        BTreeSet::from([keys(&["db_client_connection_pool_name"])])
    );

    // The families they replace are gone; the others keep the namespace.
    for replaced in [
        "disruptor_discord_api_requests_total",
        "disruptor_discord_api_request_duration_seconds_count",
        "disruptor_database_query_duration_seconds_count",
        "disruptor_database_queries_total",
        "disruptor_database_errors_total",
        "disruptor_database_connections",
        "disruptor_database_connections_max",
        "disruptor_database_connection_acquire_duration_seconds_count",
    ] {
        assert!(!scrape.has(replaced), "{replaced} in {text}");
    }
    assert!(
        scrape.has("disruptor_discord_api_requests_in_flight"),
        "{text}"
    );

    proxy.shutdown().await;
    fake.shutdown().await;
}
