//! [`SchedulerRegistry`]: the schedulers a bot runs, counted in `N_scheduler_queue_depth`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use botscope_core::{GaugeGuard, LabelCap};
use opentelemetry::metrics::{BoundUpDownCounter, Meter};

use crate::error::{JobError, JobErrorType};
use crate::job::JobBuilder;
use crate::metrics::{HANDLER_TYPE_CAP, QUEUE_DEPTH};

/// The schedulers registered in a bot (the Go bot's scheduler manager), counted in
/// `N_scheduler_queue_depth`.
///
/// [`register`](Self::register) returns a [`Registration`]; the scheduler stays counted
/// until the registration is dropped. Clones share the same registry.
///
/// [`job`](Self::job) builds the registry's jobs, which share its meter and its
/// `handler_type` cap.
///
/// # Cardinality
///
/// The jobs built from [`job`](Self::job) admit at most
/// [`handler_type_cap`](SchedulerRegistryBuilder::handler_type_cap) distinct handler types
/// (default [`HANDLER_TYPE_CAP`]), then read `other`; each registry counts its own.
/// Scheduler names given to [`register`](Self::register) reach no label.
///
/// ```
/// use botscope_jobs::SchedulerRegistry;
///
/// # fn main() -> Result<(), botscope_jobs::JobError> {
/// let registry = SchedulerRegistry::new();
/// let voice = registry.register("random_voice_join")?;
/// assert_eq!(registry.len(), 1);
/// drop(voice);
/// assert!(registry.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SchedulerRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    meter: Meter,
    /// The `handler_type` cap of the jobs built from [`SchedulerRegistry::job`].
    handler_types: Arc<LabelCap>,
    depth: BoundUpDownCounter<i64>,
    next_id: AtomicU64,
    names: Mutex<BTreeMap<u64, Arc<str>>>,
}

impl SchedulerRegistry {
    /// An empty registry recording to the global meter provider.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to record to an explicit meter.
    pub fn builder() -> SchedulerRegistryBuilder {
        SchedulerRegistryBuilder::default()
    }

    /// A builder for a job named `handler_type` recording to this registry's meter, its
    /// handler type through this registry's cap (see `# Cardinality`).
    ///
    /// ```
    /// use botscope_jobs::SchedulerRegistry;
    ///
    /// # fn main() -> Result<(), botscope_jobs::JobError> {
    /// let registry = SchedulerRegistry::builder().handler_type_cap(2).build();
    /// let jobs: Vec<_> = ["a", "b", "c"]
    ///     .into_iter()
    ///     .map(|name| registry.job(name).build(|| async {}))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(jobs[2].handler_type(), "c"); // counted as `other`
    /// # Ok(()) }
    /// ```
    pub fn job(&self, handler_type: &str) -> JobBuilder {
        JobBuilder::with_cap(
            handler_type,
            self.inner.meter.clone(),
            Arc::clone(&self.inner.handler_types),
        )
    }

    /// Registers a scheduler called `name`; it counts until the registration is dropped.
    ///
    /// Names need not be unique: each registration counts once.
    ///
    /// # Errors
    ///
    /// [`JobErrorType::EmptySchedulerName`] if `name` is empty.
    pub fn register(&self, name: &str) -> Result<Registration, JobError> {
        if name.is_empty() {
            return Err(JobError::new(JobErrorType::EmptySchedulerName));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = Arc::from(name);
        self.lock().insert(id, Arc::clone(&name));
        Ok(Registration {
            id,
            name,
            registry: Arc::clone(&self.inner),
            _depth: GaugeGuard::new(&self.inner.depth),
        })
    }

    /// The number of schedulers registered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no scheduler is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of the schedulers registered now, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.lock().values().map(|name| name.to_string()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<str>>> {
        self.inner.lock()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<str>>> {
        // The map stays consistent whatever panicked while it was held: one insert or remove.
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for SchedulerRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SchedulerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerRegistry")
            .field("names", &self.names())
            .finish()
    }
}

/// Builds a [`SchedulerRegistry`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct SchedulerRegistryBuilder {
    meter: Option<Meter>,
    handler_type_cap: Option<usize>,
}

impl SchedulerRegistryBuilder {
    /// Records to `meter` instead of the global provider's `botscope-jobs` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct `handler_type` values among the jobs built from
    /// [`SchedulerRegistry::job`], then `other` (default [`HANDLER_TYPE_CAP`]).
    pub fn handler_type_cap(mut self, cap: usize) -> Self {
        self.handler_type_cap = Some(cap);
        self
    }

    /// An empty registry; the gauge shows 0 right away.
    pub fn build(self) -> SchedulerRegistry {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        let depth = meter
            .i64_up_down_counter(QUEUE_DEPTH)
            .with_description("Schedulers registered in the scheduler manager")
            .build()
            .bind(&[]);
        depth.add(0);
        SchedulerRegistry {
            inner: Arc::new(Inner {
                handler_types: Arc::new(LabelCap::new(
                    self.handler_type_cap.unwrap_or(HANDLER_TYPE_CAP),
                )),
                meter,
                depth,
                next_id: AtomicU64::new(0),
                names: Mutex::new(BTreeMap::new()),
            }),
        }
    }
}

/// One scheduler counted in a [`SchedulerRegistry`] until this is dropped.
#[must_use = "the scheduler is unregistered as soon as the registration is dropped"]
pub struct Registration {
    id: u64,
    name: Arc<str>,
    registry: Arc<Inner>,
    _depth: GaugeGuard,
}

impl Registration {
    /// The name the scheduler was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
