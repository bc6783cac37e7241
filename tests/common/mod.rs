//! Helpers shared by the end-to-end tests: a real Prometheus server.

pub mod demo;
pub mod prometheus;

/// botscope-testkit's README, whose example drives botscope-http's proxy and botscope-gateway's
/// tap against the fake Discord: its doctest runs here, since the testkit cannot dev-depend on
/// the crates that test with it (that would be a loop of crates; see `.ci/floors`).
#[cfg(doctest)]
#[doc = include_str!("../../crates/botscope-testkit/README.md")]
pub struct TestkitReadme;
