#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod buckets;
pub mod clock;
pub mod gauge;
pub mod label_cap;
pub mod meter;
pub mod naming;
pub mod outcome;
pub mod snowflake;
pub mod span;
pub mod status;

pub use buckets::DEFAULT_BUCKETS;
pub use gauge::GaugeGuard;
pub use label_cap::LabelCap;
pub use naming::Naming;
pub use outcome::{Classify, Ending, Finish, Timed, Timer};
pub use status::Outcome;
