//! A cheap clock for the statistics.
//!
//! `std::time::Instant::now()` costs ~30 ns on the machines we measure on,
//! which is as much as a whole queue hand-off. The statistics read the CPU's
//! time-stamp counter through `quanta` instead (~12 ns), and the worker reuses
//! the end of one job as the start of the next, so a job costs one reading on
//! the worker and a batch of submissions shares one reading on the producer.
//! With statistics off the pool reads no clock at all for them.

use std::sync::OnceLock;
use std::time::Duration;

fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// A raw reading of the cheap clock; only differences of two readings mean anything.
#[cfg(not(loom))]
pub(crate) fn ticks() -> u64 {
    clock().raw()
}

/// Under loom the clock stands still: the worker picks its batch size from
/// how long jobs take, and the model checker can only replay an interleaving
/// if no choice depends on real time. (Every job then counts as fast.)
#[cfg(loom)]
pub(crate) fn ticks() -> u64 {
    0
}

/// The time between two readings, zero if `end` is not after `start`.
pub(crate) fn between(start: u64, end: u64) -> Duration {
    if end <= start {
        Duration::ZERO
    } else {
        Duration::from_nanos(clock().delta_as_nanos(start, end))
    }
}
