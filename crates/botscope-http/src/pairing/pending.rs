//! The twilight spans that wait to be paired: see the [parent module](super).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::span::Id;

/// The most twilight requests that wait to be paired at once.
pub const MAX_PENDING: usize = 4_096;

type Key = (Box<str>, Box<str>);

#[derive(Default)]
struct Pending {
    /// Unpaired spans by method and path, oldest first.
    by_request: HashMap<Key, VecDeque<Id>>,
    /// Spans paired once and still open, oldest first: the parents of a request twilight
    /// sends again (it retries a 429 at once, under the same span).
    paired: HashMap<Key, VecDeque<Id>>,
    /// The method and path of each open span noted.
    by_id: HashMap<Id, Key>,
}

impl Pending {
    /// Removes `id` from the queue of `key` in `queues`.
    fn forget(queues: &mut HashMap<Key, VecDeque<Id>>, key: &Key, id: &Id) {
        if let Some(queue) = queues.get_mut(key) {
            queue.retain(|waiting| waiting != id);
            if queue.is_empty() {
                queues.remove(key);
            }
        }
    }
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);
/// Whether anything waits: spares the lock on every span close and every request otherwise.
static WAITING: AtomicBool = AtomicBool::new(false);

fn pending() -> MutexGuard<'static, Option<Pending>> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key(method: &str, path: &str) -> Key {
    (method.into(), path.trim_start_matches('/').into())
}

/// Notes twilight's `request` span `id`, for `method` and `path` (relative to `/api/vN/`).
pub(crate) fn opened(id: Id, method: &str, path: &str) {
    let mut guard = pending();
    let pending = guard.get_or_insert_with(Pending::default);
    if pending.by_id.len() >= MAX_PENDING {
        return;
    }
    let key = key(method, path);
    pending
        .by_request
        .entry(key.clone())
        .or_default()
        .push_back(id.clone());
    pending.by_id.insert(id, key);
    WAITING.store(true, Ordering::Release);
}

/// Forgets span `id` if it waits.
pub(crate) fn closed(id: &Id) {
    if !WAITING.load(Ordering::Acquire) {
        return;
    }
    let mut guard = pending();
    let Some(pending) = guard.as_mut() else {
        return;
    };
    if let Some(key) = pending.by_id.remove(id) {
        Pending::forget(&mut pending.by_request, &key, id);
        Pending::forget(&mut pending.paired, &key, id);
    }
    WAITING.store(!pending.by_id.is_empty(), Ordering::Release);
}

/// Pairs the oldest unpaired twilight span of `method` and `path` (relative to `/api/vN/`),
/// else the oldest one paired before and still open (twilight sending its request again),
/// and hands its id to `read` while the span is sure to be open (a span's close waits for
/// this to return), for `read` to take what it needs of it.
pub(crate) fn take<T>(method: &str, path: &str, read: impl FnOnce(&Id) -> T) -> Option<T> {
    if !WAITING.load(Ordering::Acquire) {
        return None;
    }
    let mut guard = pending();
    let pending = guard.as_mut()?;
    let key = key(method, path);
    let unpaired = pending
        .by_request
        .get_mut(&key)
        .and_then(VecDeque::pop_front);
    let id = match unpaired {
        Some(id) => {
            Pending::forget(&mut pending.by_request, &key, &id);
            pending.paired.entry(key).or_default().push_back(id.clone());
            id
        }
        None => pending.paired.get(&key)?.front()?.clone(),
    };
    Some(read(&id))
}

/// How many open twilight requests the pairing knows (paired or not); each leaves when its
/// span closes.
pub(crate) fn len() -> usize {
    pending().as_ref().map_or(0, |pending| pending.by_id.len())
}
