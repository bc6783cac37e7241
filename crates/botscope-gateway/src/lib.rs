#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cache")]
pub mod cache;
pub mod commands;
pub mod flags;
pub mod interaction;
#[cfg(feature = "lavalink")]
pub mod lavalink;
pub mod metrics;
pub mod queue;
mod tap;
pub mod voice;

#[cfg(feature = "cache")]
pub use cache::{CacheMetrics, CacheMetricsBuilder};
pub use commands::{CommandGuard, CommandMetrics, CommandMetricsBuilder, CommandRun, TimedCommand};
#[cfg(feature = "lavalink")]
pub use lavalink::{LavalinkTap, LavalinkTapBuilder};
pub use queue::{InstrumentedQueue, InstrumentedQueueBuilder};
pub use tap::{GatewayTap, GatewayTapBuilder};
pub use voice::{
    AttemptRecord, AudioTiming, TimedAttempt, TimedAudio, VoiceAttempt, VoiceMetrics,
    VoiceMetricsBuilder,
};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(GatewayTap: Clone, Send, Sync, Default);
    static_assertions::assert_impl_all!(CommandMetrics: Clone, Send, Sync, Default);
    static_assertions::assert_impl_all!(TimedCommand<std::future::Ready<()>>: Send, Sync);
    static_assertions::assert_impl_all!(CommandGuard: Send, Sync);
}
