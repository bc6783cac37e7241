//! The error of building a job, a layer, a registration or a cron job.

use std::error::Error;
use std::fmt;

/// Building a job, a [`JobLayer`](crate::JobLayer), a scheduler
/// [`Registration`](crate::Registration) or a cron job failed.
#[derive(Debug)]
pub struct JobError {
    kind: JobErrorType,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl JobError {
    pub(crate) const fn new(kind: JobErrorType) -> Self {
        Self { kind, source: None }
    }

    #[cfg_attr(not(feature = "cron"), allow(dead_code))]
    pub(crate) fn with_source(
        kind: JobErrorType,
        source: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            source: Some(Box::new(source)),
        }
    }

    /// What went wrong.
    pub const fn kind(&self) -> &JobErrorType {
        &self.kind
    }

    /// The kind and the underlying error, if any.
    pub fn into_parts(self) -> (JobErrorType, Option<Box<dyn Error + Send + Sync>>) {
        (self.kind, self.source)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JobErrorType::EmptyHandlerType => {
                f.write_str("handler type is empty: name the job, e.g. \"random_voice_join\"")
            }
            JobErrorType::EmptySchedulerName => {
                f.write_str("scheduler name is empty: give the registration a name")
            }
            JobErrorType::Schedule { schedule } => write!(
                f,
                "cron schedule `{schedule}` is invalid: use six fields, seconds first (\"0 */5 * * * *\")"
            ),
            JobErrorType::Scheduler => f.write_str("the job scheduler refused the job"),
        }
    }
}

impl Error for JobError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn Error + 'static))
    }
}

/// The kind of a [`JobError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobErrorType {
    /// The handler type (the `handler_type` label) is empty.
    EmptyHandlerType,
    /// A scheduler registration was given an empty name.
    EmptySchedulerName,
    /// tokio-cron-scheduler could not parse the cron schedule.
    Schedule {
        /// The schedule as given.
        schedule: String,
    },
    /// tokio-cron-scheduler failed to add the job; the source says why.
    Scheduler,
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(JobError: Error, Send, Sync);

    #[test]
    fn messages_are_lowercase_without_a_trailing_period() {
        let kinds = [
            JobErrorType::EmptyHandlerType,
            JobErrorType::EmptySchedulerName,
            JobErrorType::Schedule {
                schedule: "x".into(),
            },
            JobErrorType::Scheduler,
        ];
        for kind in kinds {
            let message = JobError::new(kind).to_string();
            assert!(message.starts_with(char::is_lowercase), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
