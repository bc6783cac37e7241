//! The same-run comparison every botscope benchmark prints after criterion's report: the bare
//! path and the instrumented one sampled alternately, so machine noise hits both alike, and
//! the median cost per call of each with their difference and ratio.

use std::future::Future;
use std::time::Instant;

/// Batches sampled per path.
pub const SAMPLES: usize = 101;

/// The medians of a same-run comparison, in nanoseconds per call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The bare path.
    pub bare_ns: f64,
    /// The instrumented path.
    pub instrumented_ns: f64,
}

impl Comparison {
    /// Nanoseconds the instrumentation adds per call.
    pub fn added_ns(&self) -> f64 {
        self.instrumented_ns - self.bare_ns
    }

    /// Instrumented over bare.
    pub fn ratio(&self) -> f64 {
        self.instrumented_ns / self.bare_ns
    }

    /// Prints the comparison as one line, with the budget of added nanoseconds.
    pub fn print(&self, name: &str, budget_ns: f64) {
        println!(
            "{name}, same run: bare median {:.1} ns, instrumented median {:.1} ns, added {:.1} ns \
             (budget {budget_ns:.0}), ratio {:.2}x",
            self.bare_ns,
            self.instrumented_ns,
            self.added_ns(),
            self.ratio()
        );
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// [`SAMPLES`] batches of `batch` calls of each path, alternately.
pub fn interleaved(
    batch: u32,
    mut bare: impl FnMut(),
    mut instrumented: impl FnMut(),
) -> Comparison {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(batch)
    };
    let (mut b, mut i) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for _ in 0..SAMPLES {
        b.push(time(&mut bare));
        i.push(time(&mut instrumented));
    }
    Comparison {
        bare_ns: median(&mut b),
        instrumented_ns: median(&mut i),
    }
}

/// [`interleaved`] for async paths: each call's future is awaited before the next.
pub async fn interleaved_async<A, B>(
    batch: u32,
    mut bare: impl FnMut() -> A,
    mut instrumented: impl FnMut() -> B,
) -> Comparison
where
    A: Future,
    B: Future,
{
    let (mut b, mut i) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for _ in 0..SAMPLES {
        let start = Instant::now();
        for _ in 0..batch {
            std::hint::black_box(bare().await);
        }
        b.push(start.elapsed().as_nanos() as f64 / f64::from(batch));
        let start = Instant::now();
        for _ in 0..batch {
            std::hint::black_box(instrumented().await);
        }
        i.push(start.elapsed().as_nanos() as f64 / f64::from(batch));
    }
    Comparison {
        bare_ns: median(&mut b),
        instrumented_ns: median(&mut i),
    }
}
