//! botscope-sqlx: under construction.
