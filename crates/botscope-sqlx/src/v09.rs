//! The wrapper for sqlx 0.9, re-exported at the crate root. Its files are shared with
//! [`sqlx08`](crate::sqlx08): each names sqlx as `super::sqlx`, the major this module picks;
//! `compat` holds the little that differs between the two.

// Each of these files is compiled once per major, on purpose.
#![allow(clippy::duplicate_mod)]

pub(crate) use ::sqlx;

use crate::sql;

mod compat;

one_major!();
