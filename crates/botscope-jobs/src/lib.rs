//! botscope-jobs: under construction.
