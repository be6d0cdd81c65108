//! The control handle: [`Pool`]. Shutdown, waiting, resizing, statistics.

use std::time::Duration;

use crate::error::{BuildError, WaitError};
use crate::stats::Stats;
use crate::sync::Arc;

/// What the control handle needs from the pool, whatever its job and result types.
pub(crate) trait Control: Send + Sync {
    fn close(&self);
    fn cancel(&self);
    fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError>;
    fn resize(self: Arc<Self>, n: usize) -> Result<(), BuildError>;
    fn is_finished(&self) -> bool;
    fn stats(&self) -> Stats;
}

/// How a [`Pool::shutdown_timeout`] ended.
///
/// # Examples
///
/// ```
/// use brigade::Stopped;
/// assert_ne!(Stopped::Graceful, Stopped::Cancelled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything queued and running finished before the deadline.
    Graceful,
    /// The deadline passed: the pool was cancelled, queued jobs came back as
    /// cancelled, and the running ones were asked to stop and then finished.
    Cancelled,
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

    /// Graceful shutdown with a deadline: close, wait up to `grace`, and if
    /// the pool is not finished by then, [`cancel`](Pool::cancel) and wait
    /// for the running jobs to return.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use brigade::Stopped;
    /// let (jobs, _results) = brigade::Builder::new().workers(1)
    ///     .build(|_: &u8, ctx| { ctx.sleep(Duration::from_secs(60)); Ok::<_, ()>(()) }).unwrap();
    /// jobs.send(1).unwrap();
    /// let how = jobs.pool().shutdown_timeout(Duration::from_millis(20)).unwrap();
    /// assert_eq!(how, Stopped::Cancelled);
    /// ```
    pub fn shutdown_timeout(&self, grace: Duration) -> Result<Stopped, WaitError> {
        self.close();
        match self.ctl.wait(Some(grace)) {
            Ok(()) => Ok(Stopped::Graceful),
            Err(WaitError::Timeout) => {
                self.cancel();
                self.wait().map(|()| Stopped::Cancelled)
            }
            Err(e) => Err(e),
        }
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
        f.debug_struct("Pool")
            .field("stats", &self.stats())
            .finish()
    }
}
