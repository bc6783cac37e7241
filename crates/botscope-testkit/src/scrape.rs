//! A real Prometheus exposition for tests, and a parser to read samples back out of it.
//!
//! [`TestMetrics`] is the exporter `botscope::Telemetry` serves ([`botscope_exporter::Exporter`])
//! without the server, the system metrics or the global provider: the same wiring, so a test
//! asserts on exactly the text a user's Prometheus would scrape (namespace applied, scope labels
//! off, `target_info`).
//!
//! ```
//! use botscope_testkit::TestMetrics;
//! use opentelemetry::KeyValue;
//!
//! let metrics = TestMetrics::new("disruptor");
//! let counter = metrics.meter().u64_counter("scheduler_jobs").build();
//! counter.add(2, &[KeyValue::new("status", "success")]);
//!
//! let scrape = metrics.scrape();
//! assert_eq!(scrape.value("disruptor_scheduler_jobs_total", &[("status", "success")]), Some(2.0));
//! ```

use std::collections::BTreeMap;

use botscope_exporter::Exporter;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// A meter provider exporting to its own Prometheus registry, rendered on demand. Clones share
/// it.
#[derive(Debug, Clone)]
pub struct TestMetrics {
    exporter: Exporter,
}

impl TestMetrics {
    /// A provider whose metric names carry `namespace_`, wired as `botscope::Telemetry` wires
    /// its own. Needs no Tokio runtime.
    ///
    /// # Panics
    ///
    /// If `namespace` is not a valid namespace (`[a-zA-Z_][a-zA-Z0-9_]*`).
    pub fn new(namespace: &str) -> Self {
        let exporter = Exporter::builder(namespace)
            .build()
            .unwrap_or_else(|e| panic!("TestMetrics::new({namespace:?}): {e}"));
        Self { exporter }
    }

    /// The provider itself, for code that takes a `MeterProvider`.
    pub fn provider(&self) -> &SdkMeterProvider {
        self.exporter.meter_provider()
    }

    /// A meter of the provider, to hand to a builder's `meter(..)`.
    pub fn meter(&self) -> Meter {
        self.exporter.meter_provider().meter("botscope-test")
    }

    /// The exposition text a scrape would return right now (what `botscope::Telemetry::render`
    /// returns): empty once a metric callback has panicked.
    pub fn render(&self) -> String {
        self.exporter.render().unwrap_or_default()
    }

    /// [`render`](Self::render), parsed.
    pub fn scrape(&self) -> Scrape {
        Scrape::parse(&self.render())
    }
}

/// One sample of an exposition: a metric name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with suffixes such as `_total` or `_bucket`.
    pub name: String,
    /// The labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses exposition text (format 0.0.4). Comment lines are kept only in [`text`](Self::text).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The raw text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The samples of metric `name` (exact name, e.g. `x_bucket`).
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample of `name` whose labels include every pair of `labels`,
    /// summed if several match; `None` if none does.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for sample in self.series(name) {
            let matches = labels
                .iter()
                .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v));
            if matches {
                *found.get_or_insert(0.0) += sample.value;
            }
        }
        found
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.series(name).next().is_some()
    }

    /// The distinct values label `label` takes on metric `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .series(name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let value_part = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some(&(_, c)) = chars.peek() {
            if c == '}' {
                end = chars.next().map(|(i, _)| i);
                break;
            }
            if c == ',' || c == ' ' {
                chars.next();
                continue;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => return None,
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
        }
        &body[end? + 1..]
    } else {
        rest
    };
    let value = value_part.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes_and_plain_samples() {
        let text = "# HELP x help\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 7\n";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.value("x_total", &[("b", "q\"uote")]), Some(3.0));
        assert_eq!(scrape.value("up", &[]), Some(1.0));
        assert_eq!(scrape.value("h_bucket", &[("le", "+Inf")]), Some(7.0));
        assert_eq!(scrape.value("x_total", &[("a", "2")]), None);
        assert_eq!(scrape.label_values("x_total", "a"), ["1"]);
    }

    #[test]
    fn renders_units_and_suffixes_like_the_real_exporter() {
        let metrics = TestMetrics::new("disruptor");
        let meter = metrics.meter();
        meter
            .f64_histogram("database_query_duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build()
            .record(0.5, &[]);
        let scrape = metrics.scrape();
        assert_eq!(
            scrape.value(
                "disruptor_database_query_duration_seconds_bucket",
                &[("le", "1")]
            ),
            Some(1.0)
        );
        assert!(!scrape.text().contains("otel_scope_name"));
        // As botscope::Telemetry: the namespace names the service unless OTEL_SERVICE_NAME does.
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            assert_eq!(
                scrape.label_values("target_info", "service_name"),
                ["disruptor"]
            );
        }
    }
}
