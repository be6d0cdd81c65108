//! Where the async flavour builds the core's shared types: refused sends, failures and outcomes.
//!
//! The core's error and outcome types are changing (see the lead's rewrite); every place
//! that constructs one lives here, so the switch is one file.

use std::any::Any;
use std::time::Duration;

use crate::{Failure, Outcome};

/// The error of [`Jobs::send`](super::Jobs::send) and
/// [`Jobs::send_blocking`](super::Jobs::send_blocking): the pool is closed; the job comes back.
// after rebase: `pub use crate::SendError;` (the struct).
pub type SendError<J> = crate::SendError<J>;
/// The error of [`Jobs::try_send`](super::Jobs::try_send): no room now, or closed.
// after rebase: `pub use crate::TrySendError;`.
pub type TrySendError<J> = crate::SendError<J>;
/// The error of [`Jobs::send_timeout`](super::Jobs::send_timeout): no room in time, or closed.
// after rebase: `pub use crate::SendTimeoutError;`.
pub type SendTimeoutError<J> = crate::SendError<J>;

// after rebase: `SendError(job)` / `SendError::new(job)`.
pub(crate) fn closed<J>(job: J) -> SendError<J> {
    crate::SendError::Closed(job)
}

// after rebase: `TrySendError::Closed(job)`.
pub(crate) fn try_closed<J>(job: J) -> TrySendError<J> {
    crate::SendError::Closed(job)
}

// after rebase: `TrySendError::Full(job)`.
pub(crate) fn full<J>(job: J) -> TrySendError<J> {
    crate::SendError::Full(job)
}

// after rebase: `SendTimeoutError::Closed(job)`.
pub(crate) fn timeout_closed<J>(job: J) -> SendTimeoutError<J> {
    crate::SendError::Closed(job)
}

// after rebase: `SendTimeoutError::Timeout(job)`.
pub(crate) fn timed_out<J>(job: J) -> SendTimeoutError<J> {
    crate::SendError::Timeout(job)
}

/// The failure of a job whose future (or worker function) panicked.
// after rebase: `Failure::Panicked(crate::Panic::new(payload))`.
pub(crate) fn panicked<E>(payload: Box<dyn Any + Send>) -> Failure<E> {
    Failure::Panicked(crate::outcome::panic_message(&*payload))
}

/// The message of a panic, for an initialiser that panicked.
// after rebase: `crate::Panic::new(payload).to_string()`.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    crate::outcome::panic_message(payload)
}

/// The failure of a job whose worker could not build its state.
// after rebase: `Failure::Init(<the core's init error type>)`.
pub(crate) fn init_failed<E>(message: String) -> Failure<E> {
    Failure::Init(message)
}

/// One outcome, built outside the core.
// after rebase: `Outcome::new(seq, job, result)` plus the setters the core offers.
pub(crate) fn outcome<J, T, E>(
    seq: u64,
    job: J,
    worker: Option<usize>,
    attempts: u32,
    times: (Duration, Duration),
    result: Result<T, Failure<E>>,
) -> Outcome<J, T, E> {
    Outcome {
        seq,
        job,
        worker,
        attempts,
        queue_wait: times.0,
        run_time: times.1,
        result,
    }
}
