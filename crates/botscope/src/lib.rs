//! botscope
