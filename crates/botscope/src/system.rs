//! Process and runtime metrics read at scrape time.
//!
//! | metric | labels |
//! |---|---|
//! | `N_system_tasks` | — (alive Tokio tasks, Go's goroutine gauge) |
//! | `N_system_memory_bytes` | `type`: `resident`, `virtual`; with feature `jemalloc` also `heap_alloc`, `heap_inuse`, `heap_sys`, `heap_idle`, `heap_released` |
//! | `N_runtime_workers` | — |
//! | `N_runtime_global_queue_depth` | — |
//!
//! Only Tokio's stable `RuntimeMetrics` are used, so no `--cfg tokio_unstable` is needed.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use tokio::runtime::{Handle, RuntimeMetrics};

/// Instrument names (the exporter adds the namespace and unit suffixes).
pub(crate) mod names {
    pub(crate) const TASKS: &str = "system_tasks";
    pub(crate) const MEMORY: &str = "system_memory";
    pub(crate) const WORKERS: &str = "runtime_workers";
    pub(crate) const GLOBAL_QUEUE_DEPTH: &str = "runtime_global_queue_depth";
}

/// Registers the system gauges on `meter`; their callbacks read `runtime` at every scrape.
pub(crate) fn register(meter: &Meter, runtime: Handle) {
    runtime_gauge(
        meter,
        names::TASKS,
        "Alive Tokio tasks",
        &runtime,
        RuntimeMetrics::num_alive_tasks,
    );
    runtime_gauge(
        meter,
        names::WORKERS,
        "Tokio runtime worker threads",
        &runtime,
        RuntimeMetrics::num_workers,
    );
    runtime_gauge(
        meter,
        names::GLOBAL_QUEUE_DEPTH,
        "Tasks waiting in the Tokio runtime's global queue",
        &runtime,
        RuntimeMetrics::global_queue_depth,
    );
    meter
        .u64_observable_gauge(names::MEMORY)
        .with_description("Memory of the process by type")
        .with_unit("By")
        .with_callback(|observer| {
            for (kind, bytes) in memory() {
                observer.observe(bytes, &[KeyValue::new("type", kind)]);
            }
        })
        .build();
}

/// An observable gauge reading one figure of the runtime's stable metrics.
fn runtime_gauge(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
    runtime: &Handle,
    read: fn(&RuntimeMetrics) -> usize,
) {
    let runtime = runtime.clone();
    meter
        .u64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |observer| observer.observe(read(&runtime.metrics()) as u64, &[]))
        .build();
}

/// Memory figures by `type` label value. A figure that cannot be read is left out rather
/// than reported as zero.
fn memory() -> Vec<(&'static str, u64)> {
    let mut out = Vec::with_capacity(7);
    if let Some((resident, virt)) = process_memory() {
        out.push(("resident", resident));
        out.push(("virtual", virt));
    }
    #[cfg(feature = "jemalloc")]
    out.extend(jemalloc::memory());
    out
}

#[cfg(target_os = "linux")]
fn process_memory() -> Option<(u64, u64)> {
    // statm: size resident shared text lib data dt, in pages
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = statm.split_whitespace().map(str::parse::<u64>);
    let size = fields.next()?.ok()?;
    let resident = fields.next()?.ok()?;
    let page = procfs::page_size();
    Some((resident * page, size * page))
}

#[cfg(not(target_os = "linux"))]
fn process_memory() -> Option<(u64, u64)> {
    None
}

#[cfg(feature = "jemalloc")]
mod jemalloc {
    use tikv_jemalloc_ctl::{epoch, stats};

    /// jemalloc statistics under the Go runtime's names. They describe jemalloc's heap, so
    /// they are meaningful only when jemalloc is the global allocator.
    pub(super) fn memory() -> Vec<(&'static str, u64)> {
        // Statistics are cached by jemalloc until the epoch advances.
        if epoch::advance().is_err() {
            return Vec::new();
        }
        let read = |r: tikv_jemalloc_ctl::Result<usize>| r.ok().map(|v| v as u64);
        let (Some(allocated), Some(active), Some(mapped), Some(retained)) = (
            read(stats::allocated::read()),
            read(stats::active::read()),
            read(stats::mapped::read()),
            read(stats::retained::read()),
        ) else {
            return Vec::new();
        };
        vec![
            ("heap_alloc", allocated),
            ("heap_inuse", active),
            ("heap_sys", mapped),
            ("heap_idle", mapped.saturating_sub(active)),
            ("heap_released", retained),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn process_memory_is_read_from_proc() {
        let (resident, virt) = process_memory().expect("statm readable on linux");
        assert!(resident > 0 && virt >= resident, "{resident} {virt}");
    }
}
