//! End-to-end tests across the botscope crates live in `tests/`.
