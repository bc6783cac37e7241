#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "lavalink")]
pub mod lavalink;
pub mod metrics;
mod tap;
pub mod voice;

#[cfg(feature = "lavalink")]
pub use lavalink::{LavalinkTap, LavalinkTapBuilder};
pub use tap::{GatewayTap, GatewayTapBuilder};
pub use voice::{
    AttemptRecord, AudioTiming, TimedAttempt, TimedAudio, VoiceAttempt, VoiceMetrics,
    VoiceMetricsBuilder,
};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(GatewayTap: Clone, Send, Sync, Default);
}
