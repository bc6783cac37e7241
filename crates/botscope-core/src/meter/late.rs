//! Meters handed out before a provider is installed, which bind to it once it is.
//!
//! [`install`] builds the real instrument of every sync instrument and records what it held
//! (up to [`MAX_HELD`] measurements each, so a gauge moved up before install and down after
//! still reads right), registers every observable instrument's callbacks on the real
//! provider, and bound handles bind the real instrument at their next measurement. After
//! install, a measurement costs one atomic load and one indirect call more than on the real
//! instrument; meters asked for after install are the real ones.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use opentelemetry::metrics::{
    AsyncInstrumentBuilder, BoundCounter, BoundGauge, BoundHistogram, BoundSyncInstrument,
    BoundUpDownCounter, Counter, Gauge, Histogram, HistogramBuilder, InstrumentBuilder,
    InstrumentProvider, Meter, MeterProvider, ObservableCounter, ObservableGauge,
    ObservableUpDownCounter, SyncInstrument, UpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};

/// The provider late meters bind to.
pub(super) type Provider = Arc<dyn MeterProvider + Send + Sync>;

static TARGET: OnceLock<Provider> = OnceLock::new();

/// Registers an observable instrument's callbacks on the installed provider.
type Registration = Box<dyn FnOnce() + Send>;

/// A sync instrument built before install: its real instrument is built at install.
trait Resolve: Send + Sync {
    fn resolve(&self);
}

enum Waiting {
    Sync(Weak<dyn Resolve>),
    Observable(Registration),
}

/// What install binds, in the order it was built.
struct Pending {
    waiting: Vec<Waiting>,
    /// The length at which dropped sync instruments are swept out (a bot that builds
    /// instruments per call and never installs must not grow this forever).
    sweep_at: usize,
}

const FIRST_SWEEP: usize = 64;

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    waiting: Vec::new(),
    sweep_at: FIRST_SWEEP,
});

/// Binds every late meter to `provider`; `false` (and nothing changes) if one was installed
/// before.
pub(super) fn install(provider: Provider) -> bool {
    if TARGET.set(provider).is_err() {
        return false;
    }
    // Set before the lock is taken: a registration that finds no target under the lock is
    // queued before this drain, one that finds it binds itself (see `wait`).
    let waiting = std::mem::take(&mut lock_pending().waiting);
    for waiting in waiting {
        match waiting {
            Waiting::Sync(state) => {
                if let Some(state) = state.upgrade() {
                    state.resolve();
                }
            }
            Waiting::Observable(registration) => registration(),
        }
    }
    true
}

/// The installed provider.
pub(super) fn target() -> Option<&'static Provider> {
    TARGET.get()
}

/// A meter of `scope` that binds to the provider when one is installed.
pub(super) fn meter(scope: InstrumentationScope) -> Meter {
    Meter::new(Arc::new(LateInstruments(Arc::new(LateMeter {
        scope,
        real: OnceLock::new(),
    }))))
}

fn lock_pending() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues `waiting` for install, or binds it now if install happened.
fn wait(waiting: Waiting) {
    let mut pending = lock_pending();
    if TARGET.get().is_some() {
        drop(pending);
        match waiting {
            Waiting::Sync(state) => {
                if let Some(state) = state.upgrade() {
                    state.resolve();
                }
            }
            Waiting::Observable(registration) => registration(),
        }
        return;
    }
    pending.waiting.push(waiting);
    if pending.waiting.len() >= pending.sweep_at {
        pending.waiting.retain(
            |waiting| !matches!(waiting, Waiting::Sync(state) if state.strong_count() == 0),
        );
        pending.sweep_at = (pending.waiting.len() * 2).max(FIRST_SWEEP);
    }
}

struct LateMeter {
    scope: InstrumentationScope,
    real: OnceLock<Meter>,
}

impl LateMeter {
    fn real(&self) -> Option<&Meter> {
        match self.real.get() {
            Some(meter) => Some(meter),
            None => {
                let provider = TARGET.get()?;
                Some(
                    self.real
                        .get_or_init(|| provider.meter_with_scope(self.scope.clone())),
                )
            }
        }
    }
}

/// A real sync instrument: how to record on it and on its bound handles.
trait Real<T>: Send + Sync + 'static {
    type Bound: Send + Sync + 'static;

    fn measure(&self, value: T, attributes: &[KeyValue]);
    fn bind(&self, attributes: &[KeyValue]) -> Self::Bound;
    fn measure_bound(bound: &Self::Bound, value: T);
}

macro_rules! real {
    ($($ty:ident<$t:ty>, $bound:ident, $method:ident;)*) => {$(
        impl Real<$t> for $ty<$t> {
            type Bound = $bound<$t>;

            fn measure(&self, value: $t, attributes: &[KeyValue]) {
                self.$method(value, attributes);
            }

            fn bind(&self, attributes: &[KeyValue]) -> Self::Bound {
                $ty::bind(self, attributes)
            }

            fn measure_bound(bound: &Self::Bound, value: $t) {
                bound.$method(value);
            }
        }
    )*};
}

real! {
    Counter<u64>, BoundCounter, add;
    Counter<f64>, BoundCounter, add;
    UpDownCounter<i64>, BoundUpDownCounter, add;
    UpDownCounter<f64>, BoundUpDownCounter, add;
    Gauge<u64>, BoundGauge, record;
    Gauge<i64>, BoundGauge, record;
    Gauge<f64>, BoundGauge, record;
    Histogram<u64>, BoundHistogram, record;
    Histogram<f64>, BoundHistogram, record;
}

type Build<I> = Box<dyn Fn(&Meter) -> I + Send + Sync>;

/// How many measurements an instrument holds before install; later ones are dropped.
const MAX_HELD: usize = 4096;

struct LateState<T, I> {
    meter: Arc<LateMeter>,
    build: Build<I>,
    real: OnceLock<I>,
    /// Measurements made before install, recorded by `resolve`.
    held: Mutex<Vec<(T, Vec<KeyValue>)>>,
}

impl<T: Send + 'static, I: Real<T>> LateState<T, I> {
    #[inline]
    fn measure(&self, value: T, attributes: &[KeyValue]) {
        match self.real.get() {
            Some(real) => real.measure(value, attributes),
            None => self.hold(value, attributes),
        }
    }

    /// Keeps a measurement until install, unless install happened meanwhile: `resolve`
    /// sets `real` and drains under the same lock, so none is lost or recorded twice.
    #[cold]
    fn hold(&self, value: T, attributes: &[KeyValue]) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        match self.real.get() {
            Some(real) => {
                drop(held);
                real.measure(value, attributes);
            }
            None if held.len() < MAX_HELD => held.push((value, attributes.to_vec())),
            None => {}
        }
    }
}

impl<T: Send + 'static, I: Real<T>> Resolve for LateState<T, I> {
    /// Builds the real instrument and records what was held.
    fn resolve(&self) {
        let Some(meter) = self.meter.real() else {
            return;
        };
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let real = self.real.get_or_init(|| (self.build)(meter));
        for (value, attributes) in held.drain(..) {
            real.measure(value, &attributes);
        }
    }
}

struct LateSync<T, I>(Arc<LateState<T, I>>);

impl<T: Send + 'static, I: Real<T>> SyncInstrument<T> for LateSync<T, I> {
    fn measure(&self, value: T, attributes: &[KeyValue]) {
        self.0.measure(value, attributes);
    }

    fn bind(&self, attributes: &[KeyValue]) -> Box<dyn BoundSyncInstrument<T> + Send + Sync> {
        let bound = OnceLock::new();
        if let Some(real) = self.0.real.get() {
            let _ = bound.set(real.bind(attributes));
        }
        Box::new(LateBound {
            state: Arc::clone(&self.0),
            attributes: attributes.to_vec(),
            bound,
        })
    }
}

struct LateBound<T, I: Real<T>> {
    state: Arc<LateState<T, I>>,
    attributes: Vec<KeyValue>,
    bound: OnceLock<I::Bound>,
}

impl<T: Send + 'static, I: Real<T>> BoundSyncInstrument<T> for LateBound<T, I> {
    fn measure(&self, value: T) {
        if let Some(bound) = self.bound.get() {
            I::measure_bound(bound, value);
        } else if let Some(real) = self.state.real.get() {
            I::measure_bound(
                self.bound.get_or_init(|| real.bind(&self.attributes)),
                value,
            );
        } else {
            self.state.hold(value, &self.attributes);
        }
    }
}

/// What every instrument builder carries: name, description, unit.
#[derive(Clone)]
struct Spec {
    name: Cow<'static, str>,
    description: Option<Cow<'static, str>>,
    unit: Option<Cow<'static, str>>,
}

/// Applies a [`Spec`] (and `boundaries`) to a real builder.
macro_rules! apply {
    ($builder:expr, $spec:expr) => {{
        let mut builder = $builder;
        if let Some(description) = $spec.description.clone() {
            builder = builder.with_description(description);
        }
        if let Some(unit) = $spec.unit.clone() {
            builder = builder.with_unit(unit);
        }
        builder
    }};
}

struct LateInstruments(Arc<LateMeter>);

impl LateInstruments {
    fn sync<T: Send + 'static, I: Real<T>>(
        &self,
        build: impl Fn(&Meter) -> I + Send + Sync + 'static,
    ) -> Arc<LateSync<T, I>> {
        let state = Arc::new(LateState {
            meter: Arc::clone(&self.0),
            build: Box::new(build),
            real: OnceLock::new(),
            held: Mutex::new(Vec::new()),
        });
        let weak: Weak<dyn Resolve> = Arc::downgrade(&state) as Weak<LateState<T, I>>;
        wait(Waiting::Sync(weak));
        Arc::new(LateSync(state))
    }

    fn observable(&self, registration: impl FnOnce(&Meter) + Send + 'static) {
        let meter = Arc::clone(&self.0);
        wait(Waiting::Observable(Box::new(move || {
            if let Some(real) = meter.real() {
                registration(real);
            }
        })));
    }
}

macro_rules! late_sync {
    ($($method:ident: $ty:ident<$t:ty>;)*) => {$(
        fn $method(&self, builder: InstrumentBuilder<'_, $ty<$t>>) -> $ty<$t> {
            let spec = Spec {
                name: builder.name,
                description: builder.description,
                unit: builder.unit,
            };
            $ty::new(self.sync(move |meter| apply!(meter.$method(spec.name.clone()), spec).build()))
        }
    )*};
}

macro_rules! late_histogram {
    ($($method:ident: $t:ty;)*) => {$(
        fn $method(&self, builder: HistogramBuilder<'_, Histogram<$t>>) -> Histogram<$t> {
            let spec = Spec {
                name: builder.name,
                description: builder.description,
                unit: builder.unit,
            };
            let boundaries = builder.boundaries;
            Histogram::new(self.sync(move |meter| {
                let mut real = apply!(meter.$method(spec.name.clone()), spec);
                if let Some(boundaries) = boundaries.clone() {
                    real = real.with_boundaries(boundaries);
                }
                real.build()
            }))
        }
    )*};
}

macro_rules! late_observable {
    ($($method:ident: $ty:ident<$t:ty>;)*) => {$(
        fn $method(&self, builder: AsyncInstrumentBuilder<'_, $ty<$t>, $t>) -> $ty<$t> {
            let spec = Spec {
                name: builder.name,
                description: builder.description,
                unit: builder.unit,
            };
            let callbacks = builder.callbacks;
            self.observable(move |meter| {
                let mut real = apply!(meter.$method(spec.name.clone()), spec);
                for callback in callbacks {
                    real = real.with_callback(callback);
                }
                real.build();
            });
            $ty::new()
        }
    )*};
}

impl InstrumentProvider for LateInstruments {
    late_sync! {
        u64_counter: Counter<u64>;
        f64_counter: Counter<f64>;
        i64_up_down_counter: UpDownCounter<i64>;
        f64_up_down_counter: UpDownCounter<f64>;
        u64_gauge: Gauge<u64>;
        i64_gauge: Gauge<i64>;
        f64_gauge: Gauge<f64>;
    }

    late_histogram! {
        f64_histogram: f64;
        u64_histogram: u64;
    }

    late_observable! {
        u64_observable_counter: ObservableCounter<u64>;
        f64_observable_counter: ObservableCounter<f64>;
        i64_observable_up_down_counter: ObservableUpDownCounter<i64>;
        f64_observable_up_down_counter: ObservableUpDownCounter<f64>;
        u64_observable_gauge: ObservableGauge<u64>;
        i64_observable_gauge: ObservableGauge<i64>;
        f64_observable_gauge: ObservableGauge<f64>;
    }
}

#[cfg(test)]
mod tests {
    use crate::meter::{global_meter, provider_installed};

    /// A bot that builds instruments per call and has not installed yet: the dropped ones are
    /// swept out of the queue. (Installing is process-wide: `tests/late_meters.rs` of the
    /// `botscope-tests` crate tests it in a binary of its own.)
    #[test]
    fn dropped_instruments_are_swept_before_install() {
        let meter = global_meter("late-test", "0.0.0");
        for _ in 0..1_000 {
            meter.u64_counter("per_call").build().add(1, &[]);
        }
        assert!(!provider_installed());
        assert!(super::lock_pending().waiting.len() < 2 * super::FIRST_SWEEP);
    }
}
