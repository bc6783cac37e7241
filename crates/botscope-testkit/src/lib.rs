#![doc = include_str!("../README.md")]

pub mod bench;
pub mod client;
pub mod gateway;
pub mod interaction;
pub mod rest;
pub mod scrape;

pub use scrape::{Scrape, TestMetrics};
