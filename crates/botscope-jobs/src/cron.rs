//! The tokio-cron-scheduler 0.15 adapter (feature `cron`).
//!
//! [`add_cron_job`] turns a [`Job`] into a tokio-cron-scheduler job on a cron schedule,
//! adds it to a `JobScheduler` and registers it in a [`SchedulerRegistry`]; [`cron_job`]
//! only builds it; [`add_cron_job_with`] also hands each run's output to a function of the
//! bot's (to log a failed run, say). Each run is recorded like [`Job::run`], and its lag — actual start minus
//! scheduled tick — goes to `N_scheduler_job_lag_seconds{handler_type}`.
//!
//! ```no_run
//! use botscope_jobs::{Job, SchedulerRegistry, cron::add_cron_job};
//! use tokio_cron_scheduler::JobScheduler;
//!
//! # async fn join_random_voice() -> Result<(), std::io::Error> { Ok(()) }
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = SchedulerRegistry::new();
//! let scheduler = JobScheduler::new().await?;
//! let job = Job::new("random_voice_join", || join_random_voice())?;
//! add_cron_job(&scheduler, &registry, "0 */10 * * * *", job).await?; // every 10 minutes
//! scheduler.start().await?;
//! # Ok(()) }
//! ```
//!
//! # The scheduled tick
//!
//! tokio-cron-scheduler does not tell a job which tick it runs for: its ticker wakes every
//! 500 ms, starts every job whose next tick has passed and then, in another task, moves the
//! job's next tick to the first occurrence after "now". Reading the scheduler's metadata
//! from the job races with that update, so the adapter keeps the same bookkeeping itself:
//! it starts from the next tick the scheduler computed when the job was built, and after
//! each run moves it, as the scheduler does, to the first occurrence of the schedule after
//! the start. A run's scheduled tick is that expected tick; should the expected tick lie in
//! the future (a clock step), the schedule's latest occurrence at or before the start is
//! used instead. A scheduler stalled for several periods therefore shows the whole stall,
//! not the time since the latest occurrence. Schedules are in UTC, as in
//! `tokio_cron_scheduler::Job::new_async`.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use botscope_core::outcome::Classify;
use chrono::{DateTime, Utc};
use tokio_cron_scheduler::job::JobId;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};

use crate::error::{JobError, JobErrorType};
use crate::job::Job;
use crate::registry::{Registration, SchedulerRegistry};

/// Adds `job` to `scheduler` on the cron `schedule` (six fields, seconds first, UTC) and
/// registers it in `registry` under its handler type, for as long as the scheduler keeps it.
///
/// Returns the scheduler's id of the job (for `JobScheduler::remove`, which also ends the
/// registration). See the [module docs](self).
///
/// # Errors
///
/// [`JobErrorType::Schedule`] if the schedule does not parse, [`JobErrorType::Scheduler`] if
/// the scheduler refuses the job.
///
/// # Cancel safety
///
/// Not cancel safe: dropped midway, the job may or may not have been added.
pub async fn add_cron_job<F, Fut>(
    scheduler: &JobScheduler,
    registry: &SchedulerRegistry,
    schedule: &str,
    job: Job<F>,
) -> Result<JobId, JobError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Classify,
{
    add_cron_job_with(scheduler, registry, schedule, job, |_| {}).await
}

/// [`add_cron_job`], and `on_end` sees the output of every run, once it is recorded: the
/// scheduler has nowhere to send it, so this is where a bot logs a failed run without moving
/// its handling into the job itself.
///
/// ```no_run
/// use botscope_jobs::{Job, SchedulerRegistry, cron::add_cron_job_with};
/// use tokio_cron_scheduler::JobScheduler;
///
/// # async fn sync_roles() -> Result<(), std::io::Error> { Ok(()) }
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// # let (scheduler, registry) = (JobScheduler::new().await?, SchedulerRegistry::new());
/// let job = Job::new("sync_roles", || sync_roles())?;
/// add_cron_job_with(&scheduler, &registry, "0 0 * * * *", job, |result| {
///     if let Err(error) = result {
///         eprintln!("sync_roles failed: {error}");
///     }
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`add_cron_job`].
///
/// # Cancel safety
///
/// Not cancel safe: dropped midway, the job may or may not have been added.
pub async fn add_cron_job_with<F, Fut, E>(
    scheduler: &JobScheduler,
    registry: &SchedulerRegistry,
    schedule: &str,
    job: Job<F>,
    on_end: E,
) -> Result<JobId, JobError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Classify,
    E: Fn(&Fut::Output) + Send + Sync + 'static,
{
    let registration = registry.register(job.handler_type())?;
    let cron = build(schedule, job, Some(registration), on_end)?;
    scheduler
        .add(cron)
        .await
        .map_err(|source| JobError::with_source(JobErrorType::Scheduler, source))
}

/// A tokio-cron-scheduler job running `job` on the cron `schedule` (six fields, seconds
/// first, UTC), recording each run and its lag. See the [module docs](self).
///
/// # Errors
///
/// [`JobErrorType::Schedule`] if the schedule does not parse.
pub fn cron_job<F, Fut>(schedule: &str, job: Job<F>) -> Result<CronJob, JobError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Classify,
{
    build(schedule, job, None, |_| {})
}

fn build<F, Fut, E>(
    schedule: &str,
    job: Job<F>,
    registration: Option<Registration>,
    on_end: E,
) -> Result<CronJob, JobError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Classify,
    E: Fn(&Fut::Output) + Send + Sync + 'static,
{
    let on_end = Arc::new(on_end);
    let invalid = |source| {
        JobError::with_source(
            JobErrorType::Schedule {
                schedule: schedule.to_owned(),
            },
            source,
        )
    };
    // The parsed schedule, parsed exactly as tokio-cron-scheduler parses it.
    let mut probe = CronJob::new_async(schedule, |_, _| Box::pin(async {})).map_err(invalid)?;
    let cron = probe
        .job_data()
        .map_err(invalid)?
        .schedule()
        .ok_or_else(|| {
            JobError::new(JobErrorType::Schedule {
                schedule: schedule.to_owned(),
            })
        })?;

    let expected = Arc::new(Mutex::new(None));
    let next_tick = Arc::clone(&expected);
    let mut cron_job = CronJob::new_async(schedule, move |_, _| {
        // The registration lives as long as the scheduler keeps this closure.
        let _registered: &Option<Registration> = &registration;
        let (now, now_secs) = unix_now();
        let scheduled = scheduled_tick(
            &next_tick,
            now_secs,
            |at| {
                let at = DateTime::<Utc>::from_timestamp(at, 0)?;
                cron.find_previous_occurrence(&at, true)
                    .ok()
                    .map(|tick| tick.timestamp())
            },
            |at| {
                let at = DateTime::<Utc>::from_timestamp(at, 0)?;
                cron.find_next_occurrence(&at, false)
                    .ok()
                    .map(|tick| tick.timestamp())
            },
        );
        if let Some(scheduled) = scheduled {
            job.handler().record_lag(lag(now, scheduled));
        }
        let run = job.run();
        let on_end = Arc::clone(&on_end);
        Box::pin(async move {
            // The run's outcome is recorded; the scheduler has nowhere to send it.
            on_end(&run.await);
        })
    })
    .map_err(invalid)?;
    let first = cron_job.job_data().map_err(invalid)?.next_tick;
    *lock(&expected) = i64::try_from(first).ok().filter(|&tick| tick > 0);
    Ok(cron_job)
}

/// Now since the Unix epoch, and in whole seconds (the resolution of cron ticks).
fn unix_now() -> (Duration, i64) {
    let now = botscope_core::clock::since_unix_epoch();
    (now, i64::try_from(now.as_secs()).unwrap_or(i64::MAX))
}

/// `now` minus the tick `scheduled` (unix seconds), never negative.
fn lag(now: Duration, scheduled: i64) -> Duration {
    let scheduled = Duration::from_secs(u64::try_from(scheduled).unwrap_or(0));
    now.saturating_sub(scheduled)
}

/// The tick a run starting at `now` (unix seconds) belongs to, moving the expected tick to
/// the next occurrence after `now`. See the module docs.
fn scheduled_tick(
    expected: &Mutex<Option<i64>>,
    now: i64,
    previous_or_at: impl FnOnce(i64) -> Option<i64>,
    next_after: impl FnOnce(i64) -> Option<i64>,
) -> Option<i64> {
    let mut expected = lock(expected);
    let scheduled = match *expected {
        Some(tick) if tick <= now => Some(tick),
        _ => previous_or_at(now),
    };
    *expected = next_after(now);
    scheduled
}

fn lock(expected: &Mutex<Option<i64>>) -> std::sync::MutexGuard<'_, Option<i64>> {
    // An `Option<i64>` cannot be left half-written: a poisoned lock still holds a valid tick.
    expected.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_tick_is_used_and_then_moved_past_the_start() {
        let expected = Mutex::new(Some(100));
        // started 3 s late, with ticks every 10 s: the run belongs to tick 100
        let tick = scheduled_tick(
            &expected,
            103,
            |_| Some(100),
            |now| Some(now - now % 10 + 10),
        );
        assert_eq!(tick, Some(100));
        assert_eq!(*lock(&expected), Some(110));
        // a stall of 25 s still counts from the tick that was due
        let tick = scheduled_tick(&expected, 135, |_| Some(130), |_| Some(140));
        assert_eq!(tick, Some(110));
    }

    #[test]
    fn an_expected_tick_in_the_future_falls_back_to_the_latest_occurrence() {
        let expected = Mutex::new(Some(200));
        let tick = scheduled_tick(&expected, 150, |_| Some(150), |_| Some(160));
        assert_eq!(tick, Some(150));
        assert_eq!(*lock(&expected), Some(160));
        let none = Mutex::new(None);
        assert_eq!(scheduled_tick(&none, 5, |_| None, |_| None), None);
    }

    #[test]
    fn lag_is_never_negative() {
        assert_eq!(
            lag(Duration::from_millis(10_250), 10),
            Duration::from_millis(250)
        );
        assert_eq!(lag(Duration::from_secs(9), 10), Duration::ZERO);
    }

    #[test]
    fn an_invalid_schedule_is_a_typed_error() {
        let job = Job::new("bad", || async {}).unwrap();
        let Err(error) = cron_job("every tuesday", job) else {
            panic!("an invalid schedule was accepted");
        };
        assert_eq!(
            error.kind(),
            &JobErrorType::Schedule {
                schedule: "every tuesday".into()
            }
        );
    }
}
