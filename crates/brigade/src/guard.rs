//! User code runs inside these guards: a panic in it, or in the `Drop` of a
//! value it handed us, never unwinds through the pool's own bookkeeping.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::outcome::Panic;

/// Runs user code, turning a panic into a [`Panic`] value.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(Panic::new)
}

/// Drops a user value. If its `Drop` panics, the panic is swallowed (and so
/// is a panic in dropping that panic's payload, and so on). Never call it
/// with the pool's lock held: a `Drop` may take the pool's handles.
pub(crate) fn drop_quietly<T>(value: T) {
    let mut failed = catch_unwind(AssertUnwindSafe(move || drop(value))).err();
    // A payload whose own Drop panics with another such payload, without end,
    // is leaked after a few rounds rather than looping for ever.
    for _ in 0..8 {
        match failed.take() {
            None => return,
            Some(payload) => failed = catch_unwind(AssertUnwindSafe(move || drop(payload))).err(),
        }
    }
    std::mem::forget(failed);
}

/// Drops each value of `values` on its own, so one panicking `Drop` does not
/// stop the others from being dropped.
pub(crate) fn drop_each_quietly<T>(values: impl IntoIterator<Item = T>) {
    for v in values {
        drop_quietly(v);
    }
}
