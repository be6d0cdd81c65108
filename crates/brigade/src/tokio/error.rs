//! Where the async flavour builds the core's shared types: refused sends, failures and outcomes.
//!
//! The core's error and outcome types are changing (see the lead's rewrite); every place
//! that constructs one lives here, so the switch is one file.

use std::any::Any;
use std::time::Duration;

use crate::{Failure, Outcome};

pub use crate::{SendError, SendTimeoutError, TrySendError};

pub(crate) fn closed<J>(job: J) -> SendError<J> {
    SendError::Closed(job)
}

pub(crate) fn try_closed<J>(job: J) -> TrySendError<J> {
    TrySendError::Closed(job)
}

pub(crate) fn full<J>(job: J) -> TrySendError<J> {
    TrySendError::Full(job)
}

pub(crate) fn timeout_closed<J>(job: J) -> SendTimeoutError<J> {
    SendTimeoutError::Closed(job)
}

pub(crate) fn timed_out<J>(job: J) -> SendTimeoutError<J> {
    SendTimeoutError::Timeout(job)
}

/// The failure of a job whose future (or worker function) panicked.
pub(crate) fn panicked<E>(payload: Box<dyn Any + Send>) -> Failure<E> {
    Failure::Panicked(crate::Panic::new(payload))
}

/// The message of a panic, for an initialiser that panicked.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    crate::outcome::message_of(payload)
}

/// The failure of a job whose worker could not build its state.
pub(crate) fn init_failed<E>(worker: usize, message: String) -> Failure<E> {
    Failure::Init(crate::InitError::new(worker, message.into()))
}

/// One outcome, built outside the core.
pub(crate) fn outcome<J, T, E>(
    seq: u64,
    job: J,
    worker: Option<usize>,
    attempts: u32,
    times: (Duration, Duration),
    result: Result<T, Failure<E>>,
) -> Outcome<J, T, E> {
    let mut o = Outcome::new(seq, job, result);
    o.worker = worker;
    o.attempts = attempts;
    o.queue_wait = times.0;
    o.run_time = times.1;
    o
}
