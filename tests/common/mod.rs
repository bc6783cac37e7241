//! Helpers shared by the end-to-end tests: a real Prometheus server.

pub mod demo;
pub mod prometheus;
