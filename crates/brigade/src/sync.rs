//! The one place the pool takes its synchronisation primitives from.
//!
//! Normal builds use `std`; builds with `RUSTFLAGS="--cfg loom"` use loom's
//! models of the same types, so the model checker explores every interleaving
//! of the real pool code (see `tests/loom.rs`). Nothing else in the crate
//! names `std::sync` or `std::thread` directly for shared state.
//!
//! Handles are counted with `std::sync::Arc` in both builds: loom's `Arc`
//! cannot point at a trait object, and the pool's protocol does not rest on
//! reference counts (the `Jobs` handles are counted under the lock).

pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread;

/// loom's `thread_local!` does not accept std's `const { .. }` initialiser
/// form; this strips it and hands the plain expression to loom.
#[cfg(loom)]
macro_rules! loom_thread_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr }; $($rest:tt)*) => {
        loom::thread_local!($(#[$attr])* $vis static $name: $t = $init;);
        $crate::sync::thread_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        loom::thread_local!($(#[$attr])* $vis static $name: $t = $init;);
        $crate::sync::thread_local!($($rest)*);
    };
    () => {};
}
#[cfg(loom)]
pub(crate) use loom_thread_local as thread_local;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// Locks `m`, ignoring poisoning. No user code runs under the pool's locks:
/// a worker function, initialiser or predicate runs after the lock is
/// released, and a user value the pool drops is dropped after the lock is
/// released, inside a panic guard (`shared::Locked`, `guard.rs`). So a
/// poisoned lock would mean a bug of the pool's own, and carries no broken
/// invariant that ignoring the poison could spread.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Waits on `cv`, ignoring poisoning (see [`lock`]).
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match cv.wait(g) {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Waits on `cv` for at most `d`, ignoring poisoning (see [`lock`]).
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    d: std::time::Duration,
) -> MutexGuard<'a, T> {
    match cv.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(p) => p.into_inner().0,
    }
}

/// Starts a named thread (loom's threads have no names).
#[cfg(not(loom))]
pub(crate) fn spawn_named<F>(name: String, f: F) -> std::io::Result<thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    thread::Builder::new().name(name).spawn(f)
}

/// Starts a named thread (loom's threads have no names).
#[cfg(loom)]
pub(crate) fn spawn_named<F>(_name: String, f: F) -> std::io::Result<thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    Ok(thread::spawn(f))
}
