#![doc = include_str!("../README.md")]

pub mod client;
pub mod gateway;
pub mod rest;
pub mod scrape;

pub use scrape::{Scrape, TestMetrics};
