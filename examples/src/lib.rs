//! Examples for botscope: see `examples/disruptor.rs`.
