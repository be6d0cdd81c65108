//! The settings a pool runs with, validated once at build time, and the
//! retry policy's types. Every part of the pool reads [`Config`]; nothing
//! here knows about threads or locks.

use std::sync::Arc;
use std::time::Duration;

use crate::error::BuildError;

/// The error type a state initialiser may return: anything that converts to a boxed error.
///
/// # Examples
///
/// ```
/// let e: brigade::BoxError = "no database".into();
/// assert_eq!(e.to_string(), "no database");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most workers one pool may have: each is a thread. For crews larger
/// than threads allow, use tasks instead of threads.
pub const MAX_WORKERS: usize = 1 << 16;

/// The longest wait between two starts under a rate limit: rates below one
/// job per century count as one per century, so that every clock
/// computation stays in range.
const MAX_RATE_INTERVAL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The validated settings every part of the pool reads.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) queue: usize,
    /// Unread outcomes before senders wait; 0 until validated means "the queue's capacity".
    pub(crate) results: usize,
    /// Ordered mode's window; `Some(0)` until validated means "queue + workers".
    pub(crate) window: Option<usize>,
    pub(crate) fail_fast: bool,
    pub(crate) retries: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) timeout: Option<Duration>,
    /// The rate limit as asked, in jobs per second.
    pub(crate) rate: Option<f64>,
    /// The rate limit as the gap between two starts (set by validation).
    pub(crate) rate_interval: Option<Duration>,
    pub(crate) stats: bool,
    pub(crate) name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: cores(),
            queue: 1024,
            results: 0,
            window: None,
            fail_fast: false,
            retries: 0,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            timeout: None,
            rate: None,
            rate_interval: None,
            stats: true,
            name: "brigade".into(),
        }
    }
}

impl Config {
    /// Checks every setting and fills in the derived ones.
    pub(crate) fn validate(mut self) -> Result<Config, BuildError> {
        check_workers(self.workers)?;
        if self.queue == 0 {
            return Err(BuildError::ZeroQueue);
        }
        if self.name.contains('\0') {
            return Err(BuildError::BadName);
        }
        self.rate_interval = match self.rate {
            None => None,
            Some(r) if r.is_nan() || r <= 0.0 => return Err(BuildError::BadRate),
            Some(r) if r == f64::INFINITY => None,
            Some(r) => Some(
                Duration::try_from_secs_f64(1.0 / r)
                    .unwrap_or(MAX_RATE_INTERVAL)
                    .min(MAX_RATE_INTERVAL),
            ),
        };
        if self.results == 0 {
            self.results = self.queue;
        }
        if let Some(w) = self.window.as_mut() {
            if *w == 0 {
                *w = self.queue.saturating_add(self.workers);
            }
        }
        self.backoff_max = self.backoff_max.max(self.backoff_base);
        Ok(self)
    }
}

/// A worker count is between 1 and [`MAX_WORKERS`].
pub(crate) fn check_workers(n: usize) -> Result<(), BuildError> {
    match n {
        0 => Err(BuildError::ZeroWorkers),
        n if n > MAX_WORKERS => Err(BuildError::TooManyWorkers { asked: n }),
        _ => Ok(()),
    }
}

/// The number of cores this process may use (at least 1).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The retry predicate as the worker sees it.
pub(crate) type RetryFn<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// Which errors are worth a retry: [`RetryEvery`] (the default) or a
/// predicate set by [`Builder::retry_if`](crate::Builder::retry_if). The
/// predicate's error type is checked against the worker function's when the
/// pool is built: a mismatch does not compile.
///
/// This trait is sealed: only the two types of this crate implement it.
pub trait RetryPolicy<E>: sealed::Sealed {
    #[doc(hidden)]
    fn predicate(self) -> Option<RetryFn<E>>;
}

/// The default retry policy: every error is worth retrying (up to
/// [`Builder::retries`](crate::Builder::retries)).
///
/// # Examples
///
/// ```
/// let b: brigade::Builder<brigade::NoState, brigade::RetryEvery> = brigade::Builder::new();
/// # let _ = b;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryEvery;

/// A retry predicate over the error type `E`, set by
/// [`Builder::retry_if`](crate::Builder::retry_if).
///
/// # Examples
///
/// ```
/// let b: brigade::Builder<brigade::NoState, brigade::RetryWhen<std::io::Error>> =
///     brigade::Builder::new().retry_if(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut);
/// # let _ = b;
/// ```
pub struct RetryWhen<E>(pub(crate) RetryFn<E>);

impl<E> std::fmt::Debug for RetryWhen<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryWhen(..)")
    }
}

impl<E> RetryPolicy<E> for RetryEvery {
    fn predicate(self) -> Option<RetryFn<E>> {
        None
    }
}

impl<E> RetryPolicy<E> for RetryWhen<E> {
    fn predicate(self) -> Option<RetryFn<E>> {
        Some(self.0)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RetryEvery {}
    impl<E> Sealed for super::RetryWhen<E> {}
}
