//! Wrapper vs bare pool: SQLite in-memory `SELECT 1`, in the same run.
//!
//! Criterion measures each path; then an interleaved run (batches of 400 queries on the bare
//! pool, the wrapper around that same pool and two controls taking turns in a rotating order,
//! so machine noise hits all alike) gives the median per query of each and the ratio
//! wrapper / bare. That is repeated on [`SETUPS`] fresh pools, whose placement in memory and
//! on the scheduler moves a ratio by a per cent or two, and the median ratio is printed.
//! Budget: ratio ≤ 1.02.
//!
//! Run it pinned to one core (`taskset -c 0 cargo bench -p botscope-sqlx --bench select_one
//! -- zzz`, where `zzz` skips criterion's own runs): on two idle virtual cores the SQLite worker
//! thread is woken across cores, which costs 100 µs or more per query and hides the wrapper.
//! Pinned, everything runs on one core in turn, which makes the wrapper's own work count the
//! most: a worst case.

use std::time::{Duration, Instant};

use botscope_sqlx::InstrumentedPool;
use botscope_testkit::TestMetrics;
use criterion::{Criterion, criterion_group};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Executor, Sqlite, SqlitePool};
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
    let wrapped = InstrumentedPool::new(pool.clone(), "bench").with_meter(metrics.meter());
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

/// Batches on `targets` taking turns (the order rotates every round); the median nanoseconds
/// per query of each target.
async fn interleaved(call: Call, targets: &[Target<'_>], rounds: usize, batch: u32) -> Vec<f64> {
    for &target in targets {
        for _ in 0..batch {
            run(call, target).await;
        }
    }
    let mut samples = vec![Vec::with_capacity(rounds); targets.len()];
    for round in 0..rounds {
        for k in 0..targets.len() {
            let i = (round + k) % targets.len();
            let start = Instant::now();
            for _ in 0..batch {
                run(call, targets[i]).await;
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

fn main() {
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
            let medians = rt.block_on(interleaved(call, &targets, 61, 400));
            bare_ns.push(medians[0]);
            wrapped_ns.push(medians[1]);
            ratios.push(medians[1] / medians[0]);
            same.push(medians[2] / medians[0]);
            other.push(medians[3] / medians[0]);
        }
        let range = |xs: &[f64]| {
            let (lo, hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            format!("{lo:.4}..{hi:.4}")
        };
        println!(
            "sqlite SELECT 1 {name}, {SETUPS} pools, interleaved medians: bare pool {:.0} ns, \
             instrumented {:.0} ns, ratio {:.4} (budget 1.02; per pool {}); controls bare/bare \
             same pool {:.4}, other pool {:.4}",
            median(bare_ns),
            median(wrapped_ns),
            median(ratios.clone()),
            range(&ratios),
            median(same),
            median(other),
        );
    }
}
