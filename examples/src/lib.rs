//! The disruptor demo bot lives in `examples/disruptor/` (`cargo run --example disruptor`);
//! this crate has no library of its own.
