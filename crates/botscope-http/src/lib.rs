//! botscope-http: under construction.
