//! Errors. Every error that refuses a job gives the job back.

use std::fmt;

/// A refused submission. The job comes back inside, untouched.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, SendError};
///
/// let (jobs, _results) = Builder::new().build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap();
/// jobs.close();
/// match jobs.send(7) {
///     Err(SendError::Closed(job)) => assert_eq!(job, 7),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError<J> {
    /// No room now (only from [`Jobs::try_send`](crate::Jobs::try_send)): the
    /// queue is full, or the unread outcomes reached
    /// [`results_capacity`](crate::Builder::results_capacity), or the job would
    /// be past the [ordered window](crate::Builder::ordered_window).
    Full(J),
    /// There was no room (see [`Full`](SendError::Full)) until the timeout
    /// (only from [`Jobs::send_timeout`](crate::Jobs::send_timeout)).
    Timeout(J),
    /// The pool takes no more jobs: it was closed or cancelled.
    Closed(J),
}

impl<J> SendError<J> {
    /// The refused job.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(brigade::SendError::Full(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> J {
        match self {
            SendError::Full(j) | SendError::Timeout(j) | SendError::Closed(j) => j,
        }
    }
}

impl<J> fmt::Display for SendError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => {
                "no room in the pool (queue, unread outcomes or ordered window full)"
            }
            SendError::Timeout(_) => "no room in the pool before the timeout",
            SendError::Closed(_) => "the pool is closed and takes no more jobs",
        })
    }
}

impl<J: fmt::Debug> std::error::Error for SendError<J> {}

/// Why the pool could not be built.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, BuildError};
///
/// let err = Builder::new().workers(0).build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap_err();
/// assert!(matches!(err, BuildError::ZeroWorkers));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: a crew needs at least one worker.
    ZeroWorkers,
    /// `queue(0)`: the queue needs room for at least one job.
    ZeroQueue,
    /// A rate limit that is zero, negative or not a number.
    BadRate,
    /// The retry predicate was written for another error type than the worker function returns.
    RetryPredicateType {
        /// The worker function's error type.
        expected: &'static str,
    },
    /// A worker's state initialiser failed.
    Init {
        /// The worker whose initialiser failed.
        worker: usize,
        /// The initialiser's error, as text.
        message: String,
    },
    /// The operating system refused to start a worker thread.
    Spawn(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("a pool needs at least one worker (workers(0))"),
            BuildError::ZeroQueue => {
                f.write_str("the job queue needs room for at least one job (queue(0))")
            }
            BuildError::BadRate => {
                f.write_str("the rate limit must be a positive number of jobs per second")
            }
            BuildError::RetryPredicateType { expected } => write!(
                f,
                "the retry predicate does not take the worker function's error type ({expected})"
            ),
            BuildError::Init { worker, message } => {
                write!(f, "worker {worker} could not build its state: {message}")
            }
            BuildError::Spawn(m) => write!(f, "could not start a worker thread: {m}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why waiting on the pool returned without the pool being finished.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use brigade::{Builder, WaitError};
///
/// let (jobs, _results) = Builder::new().build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap();
/// // The jobs half is still open, so the pool cannot finish.
/// let pool = jobs.pool();
/// assert_eq!(pool.wait_timeout(Duration::from_millis(10)), Err(WaitError::Timeout));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout passed first.
    Timeout,
    /// Called from one of the pool's own workers, where waiting could never end.
    InsideWorker,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitError::Timeout => "the pool did not finish before the timeout",
            WaitError::InsideWorker => "a worker cannot wait for its own pool to finish",
        })
    }
}

impl std::error::Error for WaitError {}
