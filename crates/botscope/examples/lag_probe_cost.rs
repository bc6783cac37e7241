//! What the runtime-lag probe costs an idle bot: the CPU time of the whole process over 20 s of
//! idling, with and without the probe.
//!
//! `cargo run --release -p botscope --example lag_probe_cost -- probe` (or `-- none`).

use std::time::Duration;

/// CPU time of every thread of this process so far, from the scheduler's own accounting.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), botscope::BuildError> {
    let probe = std::env::args().nth(1).as_deref() == Some("probe");
    let _telemetry = botscope::Telemetry::builder()
        .serve(false)
        .set_global(false)
        .runtime_lag(probe.then_some(botscope::runtime::DEFAULT_LAG_PERIOD))
        .install()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_ns();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let used = cpu_ns().saturating_sub(before) as f64;
    println!(
        "probe: {probe}; CPU over 20 s idle: {:.2} ms ({:.3} % of one core)",
        used / 1e6,
        used / 20e9 * 100.0
    );
    Ok(())
}
