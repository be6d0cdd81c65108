//! The control handle: [`Pool`]. Shutdown, waiting, resizing, statistics.

use std::time::{Duration, Instant};

use crate::error::{BuildError, WaitError};
use crate::shared::Shared;
use crate::stats::Stats;
use crate::sync::Arc;

/// What the control handle needs from the pool, whatever its job and result types.
pub(crate) trait Control: Send + Sync {
    fn close(&self);
    fn cancel(&self);
    fn is_cancelled(&self) -> bool;
    fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError>;
    fn shutdown_until(&self, deadline: Option<Instant>) -> Result<Option<Vec<u64>>, WaitError>;
    fn resize(self: Arc<Self>, n: usize) -> Result<(), BuildError>;
    fn is_finished(&self) -> bool;
    fn stats(&self) -> Stats;
    fn name(&self) -> &str;
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Control for Shared<J, T, E> {
    fn close(&self) {
        Shared::close(self)
    }
    fn cancel(&self) {
        Shared::cancel(self)
    }
    fn is_cancelled(&self) -> bool {
        Shared::is_cancelled(self)
    }
    fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        Shared::wait(self, timeout)
    }
    fn shutdown_until(&self, deadline: Option<Instant>) -> Result<Option<Vec<u64>>, WaitError> {
        Shared::shutdown_until(self, deadline)
    }
    fn resize(self: Arc<Self>, n: usize) -> Result<(), BuildError> {
        Shared::resize(&self, n)
    }
    fn is_finished(&self) -> bool {
        Shared::is_finished(self)
    }
    fn stats(&self) -> Stats {
        Shared::stats(self)
    }
    fn name(&self) -> &str {
        &self.cfg.name
    }
}

/// How a [`Pool::shutdown_timeout`] ended.
///
/// # Examples
///
/// ```
/// use brigade::Stopped;
/// assert_ne!(Stopped::Graceful, Stopped::Cancelled { running: vec![] });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// Every job finished before the deadline. (Workers may still be
    /// dropping their states; [`Pool::wait`] waits for that too.)
    Graceful,
    /// The deadline passed: the pool was cancelled, and the jobs not started
    /// come back as cancelled.
    Cancelled {
        /// The sequence numbers of the jobs still running at the deadline,
        /// in order. They were asked to stop ([`Context::is_cancelled`](crate::Context::is_cancelled));
        /// their outcomes come when they return.
        running: Vec<u64>,
    },
}

/// A control handle for a running pool; get one from
/// [`Jobs::pool`](crate::Jobs::pool) or [`Results::pool`](crate::Results::pool).
///
/// It is cheap to clone and knows nothing of the job and result types.
/// Every method is safe to call any number of times, from any thread.
///
/// # Dropping
///
/// Dropping a `Pool` does nothing to the pool. When every handle (jobs,
/// results, control) is gone, the workers finish what is queued and exit on
/// their own; call [`wait`](Pool::wait) or [`shutdown`](Pool::shutdown) to
/// know they are done.
///
/// # Examples
///
/// ```
/// let (jobs, results) = brigade::Builder::new().workers(2)
///     .build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap();
/// let pool = jobs.pool();
/// for n in 0..10 { jobs.send(n).unwrap(); }
/// drop(results);      // nobody reads the outcomes: the jobs still run
/// drop(jobs);         // close
/// pool.wait().unwrap();
/// assert_eq!(pool.stats().succeeded, 10);
/// ```
#[derive(Clone)]
pub struct Pool {
    ctl: Arc<dyn Control>,
}

impl Pool {
    pub(crate) fn new(ctl: Arc<dyn Control>) -> Self {
        Pool { ctl }
    }

    /// Graceful shutdown, first phase: take no more jobs (every jobs half
    /// refuses them); queued and running jobs finish. Does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// jobs.send(1).unwrap();
    /// results.pool().close();
    /// assert!(jobs.send(2).is_err());
    /// assert_eq!(results.count(), 1);
    /// ```
    pub fn close(&self) {
        self.ctl.close()
    }

    /// Immediate shutdown: take no more jobs and start none; every queued job
    /// comes back at once as a [`Cancelled`](crate::Failure::Cancelled)
    /// outcome, and running jobs see [`Context::is_cancelled`](crate::Context::is_cancelled)
    /// (their sleeps wake). Does not wait for the running jobs.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::Failure;
    /// let (jobs, results) = brigade::Builder::new().workers(1)
    ///     .build(|_: &u8, ctx| { ctx.sleep(std::time::Duration::from_secs(60)); Ok::<_, ()>(()) }).unwrap();
    /// for n in 0..5 { jobs.send(n).unwrap(); }
    /// jobs.pool().cancel();
    /// let outcomes: Vec<_> = results.collect();
    /// assert_eq!(outcomes.len(), 5);
    /// assert!(outcomes.iter().filter(|o| o.result == Err(Failure::Cancelled)).count() >= 4);
    /// ```
    pub fn cancel(&self) {
        self.ctl.cancel()
    }

    /// Waits until the pool is finished (closed, every job's outcome
    /// delivered) and every worker has exited, its state dropped. Does not
    /// close the pool: if the jobs half stays open, this waits for ever.
    ///
    /// # Errors
    ///
    /// [`WaitError::InsideWorker`] when called from one of this pool's own
    /// workers, where it could never return.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// let pool = jobs.pool();
    /// drop(jobs);
    /// pool.wait().unwrap();
    /// assert!(pool.is_finished());
    /// ```
    pub fn wait(&self) -> Result<(), WaitError> {
        self.ctl.wait(None)
    }

    /// Like [`wait`](Pool::wait), giving up after `timeout` with [`WaitError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// let pool = jobs.pool();
    /// assert!(pool.wait_timeout(Duration::from_millis(1)).is_err()); // still open
    /// drop(jobs);
    /// assert!(pool.wait_timeout(Duration::from_secs(60)).is_ok());
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.ctl.wait(Some(timeout))
    }

    /// Graceful shutdown: [`close`](Pool::close), then [`wait`](Pool::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// jobs.send(1).unwrap();
    /// jobs.pool().shutdown().unwrap();
    /// assert_eq!(results.count(), 1);
    /// ```
    pub fn shutdown(&self) -> Result<(), WaitError> {
        self.close();
        self.wait()
    }

    /// Graceful shutdown with a deadline: close, wait up to `grace` for every
    /// job to finish, and if they have not by then, [`cancel`](Pool::cancel)
    /// and return at once, naming the jobs still running. It never waits
    /// past `grace` for a job that ignores cancellation, nor for a worker's
    /// state to drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use brigade::Stopped;
    /// let (started, is_started) = std::sync::mpsc::channel();
    /// let started = std::sync::Mutex::new(started);
    /// let (jobs, _results) = brigade::Builder::new().workers(1)
    ///     .build(move |_: &u8, ctx| {
    ///         started.lock().unwrap().send(()).unwrap();
    ///         ctx.sleep(Duration::from_secs(60)); // wakes at once when cancelled
    ///         Ok::<_, ()>(())
    ///     }).unwrap();
    /// jobs.send(1).unwrap();
    /// is_started.recv().unwrap();
    /// let how = jobs.pool().shutdown_timeout(Duration::from_millis(20)).unwrap();
    /// assert_eq!(how, Stopped::Cancelled { running: vec![0] });
    /// ```
    pub fn shutdown_timeout(&self, grace: Duration) -> Result<Stopped, WaitError> {
        let deadline = Instant::now().checked_add(grace);
        Ok(match self.ctl.shutdown_until(deadline)? {
            None => Stopped::Graceful,
            Some(running) => Stopped::Cancelled { running },
        })
    }

    /// Whether the pool was cancelled (by [`cancel`](Pool::cancel), a
    /// deadline of [`shutdown_timeout`](Pool::shutdown_timeout), or fail-fast).
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// let pool = jobs.pool();
    /// assert!(!pool.is_cancelled());
    /// pool.cancel();
    /// assert!(pool.is_cancelled());
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.ctl.is_cancelled()
    }

    /// Whether the pool is finished and every worker has exited.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert!(!jobs.pool().is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.ctl.is_finished()
    }

    /// Changes the number of workers while the pool runs. New workers start
    /// at once (building their state on their own thread); surplus workers
    /// leave after the job they are running. Zero is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().workers(2)
    ///     .build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// let pool = jobs.pool();
    /// pool.resize(5).unwrap();
    /// assert_eq!(pool.stats().workers, 5);
    /// assert!(pool.resize(0).is_err());
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), BuildError> {
        self.ctl.clone().resize(workers)
    }

    /// A snapshot of the pool's counters and latency percentiles.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(jobs.pool().stats().submitted, 0);
    /// ```
    pub fn stats(&self) -> Stats {
        self.ctl.stats()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No lock: a Debug print must not wait behind (or slow down) the crew.
        f.debug_struct("Pool")
            .field("name", &self.ctl.name())
            .field("cancelled", &self.ctl.is_cancelled())
            .finish_non_exhaustive()
    }
}
