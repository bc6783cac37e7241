// The README's example drives botscope-http and botscope-gateway, which dev-depend on this
// crate: its doctest runs in the workspace's tests/ crate (`TestkitReadme`), not here.
#![cfg_attr(not(doctest), doc = include_str!("../README.md"))]

pub mod bench;
pub mod client;
pub mod gateway;
pub mod interaction;
pub mod logs;
pub mod otlp;
pub mod rest;
pub mod scrape;
pub mod traces;

pub use scrape::{Scrape, TestMetrics};

/// A header map of static pairs, for tests of code that reads headers.
pub fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            )
        })
        .collect()
}
