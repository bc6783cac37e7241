//! Wrapper vs bare pool: SQLite in-memory `SELECT 1`, in the same run.
//!
//! Criterion measures each path; then an interleaved run (batches of 400 queries on the bare
//! pool, the wrapper around that same pool and two controls taking turns in a rotating order,
//! so machine noise hits all alike) gives the median per query of each and the ratio
//! wrapper / bare. That is repeated on [`SETUPS`] fresh pools, whose placement in memory and
//! on the scheduler moves a ratio by a per cent or two, and the median ratio is printed.
//!
//! Run it pinned to one core (`taskset -c 0 cargo bench -p botscope-sqlx --bench select_one
//! -- zzz`, where `zzz` skips criterion's own runs): on two idle virtual cores the SQLite worker
//! thread is woken across cores, which costs 100 µs or more per query and hides the wrapper.
//! Pinned, everything runs on one core in turn, which makes the wrapper's own work count the
//! most: a worst case.
//!
//! With `BOTSCOPE_PG_URL` set, the same interleaved run compares the two paths on PostgreSQL
//! (one connection, shared by both); unset, that part prints that it was skipped. Budget:
//! ratio ≤ 1.01.
//!
//! # Instruction counts
//!
//! Time ratios on a shared machine move by a per cent or two; instruction counts do not.
//! `BOTSCOPE_BENCH_QUERIES=N BOTSCOPE_BENCH_PATH=bare|wrapped` runs only `N` `fetch_one`s of
//! `SELECT 1` on one path and exits, for `valgrind --tool=callgrind`. Run it for two values
//! of `N` and divide the difference of the totals by the difference of `N`, so the setup
//! cancels: that is the cost of one query. Budget: wrapped ≤ 1.05 × bare.
//! `BOTSCOPE_BENCH_PATH=wrapped_all` runs the wrapper's row stream instead (`fetch_all`).
//!
//! ```text
//! cargo bench -p botscope-sqlx --bench select_one --no-run   # prints the binary's path
//! BOTSCOPE_BENCH_QUERIES=2000 BOTSCOPE_BENCH_PATH=wrapped \
//!     valgrind --tool=callgrind --callgrind-out-file=/tmp/w2000 target/release/deps/select_one-…
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::TestMetrics;
use criterion::{Criterion, criterion_group};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Executor, PgPool, Postgres, Sqlite, SqlitePool};
use tokio::runtime::Runtime;

/// The bare path and the wrapper run on the same pool (one connection, one SQLite worker
/// thread), so they do the same work and only the wrapper differs. Two separate in-memory
/// pools are not the same work: each has its own worker thread, and where the scheduler puts
/// it moves the round trip by several per cent (the separate-pool control below shows it).
fn setup() -> (Runtime, SqlitePool, InstrumentedPool<Sqlite>, TestMetrics) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let metrics = TestMetrics::new("bench");
    let pool = rt.block_on(one_connection_pool());
    let wrapped = InstrumentedPool::builder(pool.clone(), "bench")
        .meter(metrics.meter())
        .build();
    (rt, pool, wrapped, metrics)
}

async fn one_connection_pool() -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite opens")
}

async fn bare_one(pool: &SqlitePool) {
    let row: (i64,) = sqlx::query_as("SELECT 1")
        .fetch_one(pool)
        .await
        .expect("select 1");
    assert_eq!(row.0, 1);
}

async fn wrapped_one(pool: &InstrumentedPool<Sqlite>) {
    let row: (i64,) = sqlx::query_as("SELECT 1")
        .fetch_one(pool)
        .await
        .expect("select 1");
    assert_eq!(row.0, 1);
}

/// `SELECT 1` through `fetch_all`, which runs the wrapper's row stream (`fetch_many`).
async fn wrapped_all(pool: &InstrumentedPool<Sqlite>) {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT 1")
        .fetch_all(pool)
        .await
        .expect("select 1");
    assert_eq!(rows, [(1,)]);
}

fn select_one(c: &mut Criterion) {
    let (rt, bare, wrapped, _metrics) = setup();
    let mut group = c.benchmark_group("sqlite_select_1");
    group.bench_function("bare_pool/fetch_one", |b| {
        b.to_async(&rt).iter(|| bare_one(&bare))
    });
    group.bench_function("instrumented/fetch_one", |b| {
        b.to_async(&rt).iter(|| wrapped_one(&wrapped))
    });
    group.bench_function("bare_pool/execute", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.execute("SELECT 1").await.expect("select 1") })
    });
    group.bench_function("instrumented/execute", |b| {
        b.to_async(&rt)
            .iter(|| async { (&wrapped).execute("SELECT 1").await.expect("select 1") })
    });
    group.finish();
}

/// Fresh pool-and-wrapper pairs measured one after the other.
const SETUPS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Which call the interleaved run makes.
#[derive(Clone, Copy)]
enum Call {
    FetchOne,
    Execute,
}

/// The pool a batch runs on.
#[derive(Clone, Copy)]
enum Target<'a> {
    Bare(&'a SqlitePool),
    Wrapped(&'a InstrumentedPool<Sqlite>),
}

async fn run(call: Call, target: Target<'_>) {
    match (call, target) {
        (Call::FetchOne, Target::Bare(pool)) => bare_one(pool).await,
        (Call::FetchOne, Target::Wrapped(pool)) => wrapped_one(pool).await,
        (Call::Execute, Target::Bare(pool)) => {
            pool.execute("SELECT 1").await.expect("select 1");
        }
        (Call::Execute, Target::Wrapped(pool)) => {
            pool.execute("SELECT 1").await.expect("select 1");
        }
    }
}

/// Batches of `run` on `targets` taking turns (the order rotates every round); the median
/// nanoseconds per query of each target.
async fn interleaved<T, F, Fut>(targets: &[T], run: F, rounds: usize, batch: u32) -> Vec<f64>
where
    T: Copy,
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()>,
{
    for &target in targets {
        for _ in 0..batch {
            run(target).await;
        }
    }
    let mut samples = vec![Vec::with_capacity(rounds); targets.len()];
    for round in 0..rounds {
        for k in 0..targets.len() {
            let i = (round + k) % targets.len();
            let start = Instant::now();
            for _ in 0..batch {
                run(targets[i]).await;
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / f64::from(batch));
        }
    }
    samples.into_iter().map(median).collect()
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = select_one
}

/// `BOTSCOPE_BENCH_QUERIES` queries on the path `BOTSCOPE_BENCH_PATH`, for callgrind.
fn count_only(queries: &str) {
    let n: u32 = queries.parse().expect("BOTSCOPE_BENCH_QUERIES is a number");
    let path = std::env::var("BOTSCOPE_BENCH_PATH").unwrap_or_default();
    let (rt, bare, wrapped, _metrics) = setup();
    rt.block_on(async {
        for _ in 0..n {
            match path.as_str() {
                "bare" => bare_one(&bare).await,
                "wrapped" => wrapped_one(&wrapped).await,
                "wrapped_all" => wrapped_all(&wrapped).await,
                other => {
                    panic!("BOTSCOPE_BENCH_PATH is bare, wrapped or wrapped_all, not {other:?}")
                }
            }
        }
    });
}

/// The interleaved run on PostgreSQL: the bare pool and the wrapper around it, one
/// connection, five rounds of fresh pools like the SQLite one.
fn postgres() {
    let Ok(url) = std::env::var("BOTSCOPE_PG_URL") else {
        println!("postgres SELECT 1: skipped (set BOTSCOPE_PG_URL to run it)");
        return;
    };
    let (mut bare_ns, mut wrapped_ns, mut ratios, mut same) = (vec![], vec![], vec![], vec![]);
    for _ in 0..SETUPS {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let metrics = TestMetrics::new("bench");
        let bare = rt
            .block_on(PgPoolOptions::new().max_connections(1).connect(&url))
            .expect("BOTSCOPE_PG_URL answers");
        let wrapped = InstrumentedPool::builder(bare.clone(), "bench")
            .meter(metrics.meter())
            .build();
        let targets = [
            PgTarget::Bare(&bare),
            PgTarget::Wrapped(&wrapped),
            PgTarget::Bare(&bare),
        ];
        let medians = rt.block_on(interleaved(&targets, pg_run, 31, 200));
        bare_ns.push(medians[0]);
        wrapped_ns.push(medians[1]);
        ratios.push(medians[1] / medians[0]);
        same.push(medians[2] / medians[0]);
    }
    println!(
        "postgres SELECT 1 fetch_one, {SETUPS} pools, interleaved medians: bare pool {:.0} ns, \
         instrumented {:.0} ns, ratio {:.4} (budget 1.01; per pool {}); control bare/bare {:.4}",
        median(bare_ns),
        median(wrapped_ns),
        median(ratios.clone()),
        range(&ratios),
        median(same),
    );
}

/// The pool a PostgreSQL batch runs on.
#[derive(Clone, Copy)]
enum PgTarget<'a> {
    Bare(&'a PgPool),
    Wrapped(&'a InstrumentedPool<Postgres>),
}

async fn pg_run(target: PgTarget<'_>) {
    match target {
        PgTarget::Bare(pool) => pg_one(pool).await,
        PgTarget::Wrapped(pool) => pg_one(pool).await,
    }
}

async fn pg_one<'a, E>(executor: E)
where
    E: Executor<'a, Database = sqlx::Postgres>,
{
    let row: (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(executor)
        .await
        .expect("select 1");
    assert_eq!(row.0, 1);
}

fn range(xs: &[f64]) -> String {
    let (lo, hi) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    format!("{lo:.4}..{hi:.4}")
}

fn main() {
    if let Ok(queries) = std::env::var("BOTSCOPE_BENCH_QUERIES") {
        count_only(&queries);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    for (name, call) in [("fetch_one", Call::FetchOne), ("execute", Call::Execute)] {
        let (mut bare_ns, mut wrapped_ns, mut ratios, mut same, mut other) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..SETUPS {
            let (rt, bare, wrapped, _metrics) = setup();
            // Controls: the bare path again on the same pool (the noise floor of the
            // interleaving), and on a pool of its own (the spread between two connections).
            let separate = rt.block_on(one_connection_pool());
            let targets = [
                Target::Bare(&bare),
                Target::Wrapped(&wrapped),
                Target::Bare(&bare),
                Target::Bare(&separate),
            ];
            let medians = rt.block_on(interleaved(&targets, |t| run(call, t), 61, 400));
            bare_ns.push(medians[0]);
            wrapped_ns.push(medians[1]);
            ratios.push(medians[1] / medians[0]);
            same.push(medians[2] / medians[0]);
            other.push(medians[3] / medians[0]);
        }
        println!(
            "sqlite SELECT 1 {name}, {SETUPS} pools, interleaved medians: bare pool {:.0} ns, \
             instrumented {:.0} ns, ratio {:.4} (per pool {}; the budget, 1.05, is on instructions); controls bare/bare \
             same pool {:.4}, other pool {:.4}",
            median(bare_ns),
            median(wrapped_ns),
            median(ratios.clone()),
            range(&ratios),
            median(same),
            median(other),
        );
    }
    postgres();
}
