//! What every job yields: an [`Outcome`], its value or the [`Failure`] that explains why there is none.

use std::fmt;
use std::time::Duration;

/// The one outcome of one accepted job.
///
/// Every job the pool accepts yields exactly one `Outcome` on the
/// [`Results`](crate::Results) side, whatever happens to it: it ran and
/// returned, it failed, it panicked, it ran past its timeout, or it was
/// cancelled before it started. The job itself comes back inside, so the
/// caller can always tell which job this was, and retry or record it.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, Failure};
///
/// let results = Builder::new()
///     .workers(2)
///     .run(1..=4u32, |n: &u32, _ctx| if n % 2 == 0 { Ok(n * 10) } else { Err("odd") });
/// let mut outcomes: Vec<_> = results.collect();
/// outcomes.sort_by_key(|o| o.seq);
/// assert_eq!(outcomes[0].job, 1);
/// assert!(matches!(outcomes[0].result, Err(Failure::Error("odd"))));
/// assert_eq!(outcomes[1].result, Ok(20));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome<J, T, E> {
    /// The job's submission sequence number: 0 for the first job accepted, then 1, 2, ...
    /// Follow-up jobs take numbers from the same sequence.
    pub seq: u64,
    /// The job itself, handed back.
    pub job: J,
    /// The worker that took the job; `None` if no worker took it (it was
    /// cancelled in the queue or before its turn in a worker's batch).
    pub worker: Option<usize>,
    /// How many times the job was started (0 if never; more than 1 after retries).
    pub attempts: u32,
    /// Time from acceptance to the start of the first attempt (zero with statistics off).
    pub queue_wait: Duration,
    /// Time spent running, all attempts together (zero with statistics off).
    pub run_time: Duration,
    /// The job's value, or why there is none.
    pub result: Result<T, Failure<E>>,
}

impl<J, T, E> Outcome<J, T, E> {
    /// Whether the job produced a value.
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new().run(0..1u8, |_: &u8, _| Ok::<_, ()>(1)).collect();
    /// assert!(o[0].is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Why a job has no value.
///
/// # Examples
///
/// ```
/// use brigade::Failure;
/// let f: Failure<&str> = Failure::Panicked("boom".into());
/// assert_eq!(f.to_string(), "panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// The worker function returned this error (after any retries).
    Error(E),
    /// The worker function panicked with this message.
    Panicked(String),
    /// The job was still running when its deadline passed (see
    /// [`Builder::timeout`](crate::Builder::timeout)); its value, if any, is discarded.
    TimedOut,
    /// The job was never started: the pool was cancelled first. The job is
    /// handed back intact in [`Outcome::job`].
    Cancelled,
    /// The worker's state could not be built (see
    /// [`Builder::state`](crate::Builder::state)), so the job could not run.
    Init(String),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "{e}"),
            Failure::Panicked(m) => write!(f, "panicked: {m}"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Cancelled => f.write_str("cancelled before it started"),
            Failure::Init(m) => write!(f, "worker state could not be built: {m}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Failure<E> {}

/// Turns a panic's payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
