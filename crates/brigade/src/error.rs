//! Errors, one type per operation. Every error that refuses a job gives the job back.
//!
//! None of them needs `J: Debug` to be printed, and each is a
//! `std::error::Error`, so `?` works into `Box<dyn Error>` whatever the job type.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::config::BoxError;

macro_rules! job_error {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:expr,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum $name<J> {
            $($(#[$vdoc])* $variant(J),)+
        }

        impl<J> $name<J> {
            /// The refused job, handed back.
            pub fn into_inner(self) -> J {
                match self {
                    $($name::$variant(j) => j,)+
                }
            }
        }

        impl<J> fmt::Display for $name<J> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($name::$variant(_) => $text,)+
                })
            }
        }

        impl<J> fmt::Debug for $name<J> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($name::$variant(_) => concat!(stringify!($variant), "(..)"),)+
                })
            }
        }

        impl<J> Error for $name<J> {}
    };
}

job_error! {
    /// Why [`Jobs::send`](crate::Jobs::send) refused a job; the job comes back inside.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::{Builder, SendError};
    ///
    /// let (jobs, _results) = Builder::new().build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// jobs.close();
    /// let err = jobs.send(7).unwrap_err();
    /// assert!(matches!(err, SendError::Closed(7)));
    /// assert_eq!(err.into_inner(), 7);
    /// ```
    SendError {
        /// The pool takes no more jobs: it was closed or cancelled.
        Closed => "the pool is closed and takes no more jobs",
        /// The sending thread is the one that reads the results, and the
        /// unread outcomes are at [`results_capacity`](crate::Builder::results_capacity)
        /// (or the [ordered window](crate::Builder::ordered_window) is full):
        /// waiting would never end, because only this thread could make room.
        /// Read some outcomes first, or send from another thread.
        WouldDeadlock => "this thread reads the results and they are full: sending would wait for ever (read some outcomes first, or send from another thread)",
    }
}

job_error! {
    /// Why [`Jobs::try_send`](crate::Jobs::try_send) refused a job; the job comes back inside.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(brigade::TrySendError::Full(3).into_inner(), 3);
    /// ```
    TrySendError {
        /// No room now: the queue is full, or the unread outcomes reached
        /// [`results_capacity`](crate::Builder::results_capacity), or the job would
        /// be past the [ordered window](crate::Builder::ordered_window).
        Full => "no room in the pool (queue, unread outcomes or ordered window full)",
        /// The pool takes no more jobs: it was closed or cancelled.
        Closed => "the pool is closed and takes no more jobs",
    }
}

job_error! {
    /// Why [`Jobs::send_timeout`](crate::Jobs::send_timeout) refused a job; the job comes back inside.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = brigade::SendTimeoutError::Timeout("job");
    /// assert_eq!(e.to_string(), "no room in the pool before the timeout");
    /// assert_eq!(format!("{e:?}"), "Timeout(..)");
    /// ```
    SendTimeoutError {
        /// There was no room until the timeout (see [`TrySendError::Full`]).
        Timeout => "no room in the pool before the timeout",
        /// The pool takes no more jobs: it was closed or cancelled.
        Closed => "the pool is closed and takes no more jobs",
    }
}

/// A worker's state initialiser failed (or panicked): which worker, and the
/// initialiser's own error as [`source`](Error::source).
///
/// # Examples
///
/// ```
/// use brigade::{Builder, BuildError};
/// use std::error::Error;
///
/// let err = Builder::new().workers(1)
///     .state(|_| Err::<(), _>(std::io::Error::other("no database")))
///     .build(|_: &mut (), n: &u8, _ctx| Ok::<_, ()>(*n))
///     .unwrap_err();
/// let BuildError::Init(e) = err else { panic!() };
/// assert_eq!(e.worker(), 0);
/// assert_eq!(e.source().unwrap().to_string(), "no database");
/// ```
#[derive(Clone)]
pub struct InitError {
    worker: usize,
    error: Arc<dyn Error + Send + Sync>,
}

impl InitError {
    pub(crate) fn new(worker: usize, error: BoxError) -> Self {
        InitError {
            worker,
            error: Arc::from(error),
        }
    }

    /// The worker whose initialiser failed.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} could not build its state: {}",
            self.worker, self.error
        )
    }
}

impl fmt::Debug for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitError")
            .field("worker", &self.worker)
            .field("error", &self.error.to_string())
            .finish()
    }
}

impl PartialEq for InitError {
    fn eq(&self, other: &Self) -> bool {
        self.worker == other.worker && self.error.to_string() == other.error.to_string()
    }
}

impl Error for InitError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.error)
    }
}

/// Why the pool could not be built (or resized).
///
/// # Examples
///
/// ```
/// use brigade::{Builder, BuildError};
///
/// let err = Builder::new().workers(0).build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap_err();
/// assert!(matches!(err, BuildError::ZeroWorkers));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`: a crew needs at least one worker.
    ZeroWorkers,
    /// More workers than [`MAX_WORKERS`](crate::MAX_WORKERS) (a thread each).
    TooManyWorkers {
        /// The number asked for.
        asked: usize,
    },
    /// `queue(0)`: the queue needs room for at least one job.
    ZeroQueue,
    /// A rate limit that is zero, negative or not a number.
    BadRate,
    /// A thread name prefix with a NUL byte, which no thread name may hold.
    BadName,
    /// A worker's state initialiser failed.
    Init(InitError),
    /// The operating system refused to start a worker thread.
    Spawn(Arc<std::io::Error>),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("a pool needs at least one worker (workers(0))"),
            BuildError::TooManyWorkers { asked } => write!(
                f,
                "{asked} workers is more than the {} threads a pool may have",
                crate::MAX_WORKERS
            ),
            BuildError::ZeroQueue => {
                f.write_str("the job queue needs room for at least one job (queue(0))")
            }
            BuildError::BadRate => {
                f.write_str("the rate limit must be a positive number of jobs per second")
            }
            BuildError::BadName => f.write_str("a thread name cannot contain a NUL byte"),
            BuildError::Init(e) => write!(f, "{e}"),
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BuildError::Init(e) => Some(e),
            BuildError::Spawn(e) => Some(&**e),
            _ => None,
        }
    }
}

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

impl Error for WaitError {}

/// Why [`Results::try_next`](crate::Results::try_next) or
/// [`next_timeout`](crate::Results::next_timeout) returned no outcome.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, NextError};
/// let (jobs, mut results) = Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
/// assert_eq!(results.try_next().unwrap_err(), NextError::Empty);
/// drop(jobs);
/// assert_eq!(results.next_timeout(std::time::Duration::from_secs(60)).unwrap_err(), NextError::Finished);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextError {
    /// No outcome is ready yet (from `try_next`), or none came before the
    /// timeout (from `next_timeout` / `next_deadline`).
    Empty,
    /// The pool is finished and every outcome was read: there will be no more.
    Finished,
}

impl fmt::Display for NextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NextError::Empty => "no outcome is ready yet",
            NextError::Finished => "the pool is finished and every outcome was read",
        })
    }
}

impl Error for NextError {}
