//! The `process_*` families: the prometheus crate's process collector, with
//! `process_cpu_seconds_total` read at the kernel's tick resolution (10 ms on most Linux
//! systems) instead of in whole seconds, so `rate()` of it is smooth on a quiet bot.

use std::sync::{Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Opts};

/// The family the process collector truncates to whole seconds.
const CPU: &str = "process_cpu_seconds_total";

/// [`ProcessCollector`] of this process with its CPU counter replaced by a precise one.
pub(crate) struct ProcessMetrics {
    inner: ProcessCollector,
    cpu: Counter,
    /// Serialises the read-and-add of `cpu`, so two collections never add the same time.
    update: Mutex<()>,
}

impl ProcessMetrics {
    pub(crate) fn for_self() -> prometheus::Result<Self> {
        Ok(Self {
            inner: ProcessCollector::for_self(),
            cpu: Counter::with_opts(Opts::new(
                CPU,
                "Total user and system CPU time spent in seconds.",
            ))?,
            update: Mutex::new(()),
        })
    }
}

/// User plus system time of this process, from `/proc/self/stat`, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second();
    // Tick counts stay far below 2^53: exact as f64.
    #[allow(clippy::cast_precision_loss)]
    Some((stat.utime + stat.stime) as f64 / ticks as f64)
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs: Vec<&Desc> = self.cpu.desc();
        descs.extend(
            self.inner
                .desc()
                .into_iter()
                .filter(|desc| desc.fq_name != CPU),
        );
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(seconds) = cpu_seconds() {
            let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
            let past = self.cpu.get();
            if seconds > past {
                self.cpu.inc_by(seconds - past);
            }
        }
        let mut families = self.cpu.collect();
        families.extend(
            self.inner
                .collect()
                .into_iter()
                .filter(|family| family.name() != CPU),
        );
        families
    }
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;

    use prometheus::{Encoder, Registry, TextEncoder};

    use super::*;

    fn scrape(registry: &Registry) -> String {
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        String::from_utf8(text).unwrap()
    }

    fn cpu(text: &str) -> f64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(CPU))
            .expect("the cpu counter");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn cpu_time_has_sub_second_resolution_and_the_other_families_stay() {
        let registry = Registry::new();
        registry
            .register(Box::new(ProcessMetrics::for_self().unwrap()))
            .unwrap();
        // Burn CPU until the counter shows a fraction of a second: whole seconds only, as the
        // process collector reports, would never get there.
        let mut value = cpu(&scrape(&registry));
        for _ in 0..100 {
            if value.fract() != 0.0 {
                break;
            }
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            value = cpu(&scrape(&registry));
        }
        assert_ne!(value.fract(), 0.0, "process_cpu_seconds_total = {value}");
        let text = scrape(&registry);
        assert_eq!(
            text.matches("# TYPE process_cpu_seconds_total counter")
                .count(),
            1
        );
        for family in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_threads",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
        assert!(cpu(&text) >= value, "the counter never goes back");
    }
}
