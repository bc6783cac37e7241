#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cron")]
#[cfg_attr(docsrs, doc(cfg(feature = "cron")))]
pub mod cron;
mod error;
mod future;
mod job;
mod layer;
pub mod metrics;
mod registry;

pub use botscope_core::outcome::Classify;
pub use error::{JobError, JobErrorType};
pub use future::JobFuture;
pub use job::{Job, JobBuilder, instrument};
pub use layer::{JobLayer, JobService};
pub use registry::{Registration, SchedulerRegistry, SchedulerRegistryBuilder};

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(JobLayer: Clone, Send, Sync);
    static_assertions::assert_impl_all!(JobService<tower::util::BoxCloneSyncService<(), (), ()>>: Clone, Send, Sync);
    static_assertions::assert_impl_all!(SchedulerRegistry: Clone, Send, Sync);
    static_assertions::assert_impl_all!(Registration: Send, Sync);
    static_assertions::assert_impl_all!(JobBuilder: Clone, Send, Sync);
    static_assertions::assert_impl_all!(JobFuture<std::future::Ready<()>>: Send, Sync);
}
