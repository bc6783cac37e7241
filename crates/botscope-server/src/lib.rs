#![doc = include_str!("../README.md")]

mod connections;
mod io;
mod serve;
mod tracked;

pub use serve::{
    DEFAULT_GRACE, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_WRITE_TIMEOUT, Server, bind,
};
/// The shutdown signal [`Server::serve`] takes, re-exported from tokio-util.
pub use tokio_util::sync::CancellationToken;
