//! botscope-gateway: under construction.
