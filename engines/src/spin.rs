//! Locks held for a microsecond or a few, taken by a spin first.

use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How long a taker spins before it sleeps on the lock.
const SPIN: Duration = Duration::from_micros(20);

/// Takes a lock with `try_take`, spinning up to `SPIN`, then with `take`
/// (which sleeps). The shard locks and the log's append lock are held for
/// a microsecond or a few; a worker that sleeps on one (a futex wait, then
/// a wake by the holder) costs more than the holder's whole command when
/// clients hammer one key.
fn acquire<G>(try_take: impl Fn() -> Option<G>, take: impl FnOnce() -> G) -> G {
    if let Some(guard) = try_take() {
        return guard;
    }
    let started = Instant::now();
    while started.elapsed() < SPIN {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
        if let Some(guard) = try_take() {
            return guard;
        }
    }
    take()
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    acquire(|| mutex.try_lock(), || mutex.lock())
}

pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    acquire(|| lock.try_read(), || lock.read())
}

pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    acquire(|| lock.try_write(), || lock.write())
}
