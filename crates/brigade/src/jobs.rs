//! The sending half: [`Jobs`].

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::core::{SendMode, Shared};
use crate::error::SendError;
use crate::outcome::panic_message;
use crate::pool::Pool;
use crate::sync::Arc;

/// What the jobs half needs from the pool, whatever its result types.
pub(crate) trait Sink<J>: Send + Sync {
    fn send(&self, job: J, mode: SendMode) -> Result<u64, SendError<J>>;
    fn send_batch(&self, batch: &mut VecDeque<J>) -> bool;
    fn producer_panicked(&self, message: String);
    fn add_sender(&self);
    fn drop_sender(&self);
    fn close(&self);
    fn pool(&self) -> Pool;
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Sink<J> for Arc<Shared<J, T, E>> {
    fn send(&self, job: J, mode: SendMode) -> Result<u64, SendError<J>> {
        Shared::send(self, job, mode)
    }
    fn send_batch(&self, batch: &mut VecDeque<J>) -> bool {
        Shared::send_batch(self, batch)
    }
    fn producer_panicked(&self, message: String) {
        self.lock().producer_panic.get_or_insert(message);
    }
    fn add_sender(&self) {
        Shared::add_sender(self)
    }
    fn drop_sender(&self) {
        Shared::drop_sender(self)
    }
    fn close(&self) {
        Shared::close(self)
    }
    fn pool(&self) -> Pool {
        Shared::pool(self)
    }
}

/// The sending half of a pool: the seed's `jobs chan<- int`.
///
/// Clone it to feed the pool from several producer threads. Every send
/// that returns `Ok` has been accepted, and its job will have exactly one
/// [`Outcome`](crate::Outcome); a send that is refused gives the job back
/// in the [`SendError`].
///
/// # Closing and dropping
///
/// Dropping the last clone closes the pool for new jobs, like the seed's
/// `close(jobs)`: the workers finish what is queued, and the results half
/// ends once every outcome is delivered. [`close`](Jobs::close) does the same
/// at once for every clone; sends on any clone are then refused. Closing is
/// idempotent.
///
/// # Deadlocks
///
/// A full queue blocks [`send`](Jobs::send) until a worker takes a job, and
/// the pool holds at most [`results_capacity`](crate::Builder::results_capacity)
/// unread outcomes before senders wait for the results half to be read: that
/// is what bounds memory. The bound on unread outcomes is shared by every
/// producer, so a thread that sends and then reads the results can wait for
/// ever on outcomes only it would read. Feed the pool from other threads than
/// the one that reads the results (as [`Builder::run`](crate::Builder::run)
/// does), or send from the reading thread only while the total sent stays
/// within the queue's and the results' capacities.
///
/// # Examples
///
/// ```
/// use std::thread;
/// let (jobs, results) = brigade::Builder::new().workers(2).queue(4)
///     .build(|n: &u64, _ctx| Ok::<_, ()>(n * 2)).unwrap();
/// // Two producers, each with its own clone.
/// let producers: Vec<_> = (0..2u64).map(|p| {
///     let jobs = jobs.clone();
///     thread::spawn(move || for n in 0..100 { jobs.send(p * 1000 + n).unwrap(); })
/// }).collect();
/// drop(jobs); // the clones keep the pool open until they are dropped too
/// assert_eq!(results.count(), 200);
/// for p in producers { p.join().unwrap(); }
/// ```
pub struct Jobs<J> {
    sink: std::sync::Arc<dyn Sink<J>>,
}

impl<J: Send + 'static> Jobs<J> {
    pub(crate) fn new<T: Send + 'static, E: Send + 'static>(shared: Arc<Shared<J, T, E>>) -> Self {
        Jobs {
            sink: std::sync::Arc::new(shared),
        }
    }
}

impl<J> Jobs<J> {
    /// Sends a job, waiting while the queue is full. Returns the job's
    /// sequence number, or gives the job back if the pool is closed or
    /// cancelled (also when that happens while this send waits).
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(jobs.send(10), Ok(0));
    /// assert_eq!(jobs.send(11), Ok(1));
    /// ```
    pub fn send(&self, job: J) -> Result<u64, SendError<J>> {
        self.sink.send(job, SendMode::Block)
    }

    /// Sends a job if the queue has room now; otherwise gives it back at once
    /// as [`SendError::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::SendError;
    /// let (jobs, _results) = brigade::Builder::new().workers(1).queue(1)
    ///     .build(|_: &u8, ctx| { ctx.sleep(std::time::Duration::from_secs(10)); Ok::<_, ()>(()) }).unwrap();
    /// let pool = jobs.pool();
    /// let mut refused = None;
    /// for n in 0..10 {
    ///     if let Err(SendError::Full(job)) = jobs.try_send(n) { refused = Some(job); break; }
    /// }
    /// assert!(refused.is_some()); // one worker and one slot cannot take ten jobs
    /// pool.cancel();
    /// ```
    pub fn try_send(&self, job: J) -> Result<u64, SendError<J>> {
        self.sink.send(job, SendMode::Try)
    }

    /// Sends a job, waiting at most `timeout` for room; then gives it back as
    /// [`SendError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (jobs, _results) = brigade::Builder::new()
    ///     .build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert!(jobs.send_timeout(1, Duration::from_millis(50)).is_ok());
    /// ```
    pub fn send_timeout(&self, job: J, timeout: Duration) -> Result<u64, SendError<J>> {
        let deadline = Instant::now().checked_add(timeout);
        match deadline {
            Some(d) => self.sink.send(job, SendMode::Until(d)),
            None => self.sink.send(job, SendMode::Block),
        }
    }

    /// Feeds every job of `jobs` to the pool (for `Builder::run`), taking
    /// them from the iterator lazily, a few at a time, so that a run of jobs
    /// costs a few trips to the pool's lock instead of one each. Stops when
    /// the pool closes or its results half is dropped; the jobs in hand then
    /// were never accepted and are dropped. If the iterator panics, the jobs
    /// already taken from it are still sent, and the panic is recorded for
    /// the results half to raise once it has handed over every outcome.
    pub(crate) fn send_all<I: IntoIterator<Item = J>>(&self, jobs: I) {
        const CHUNK: usize = 32;
        let mut iter = jobs.into_iter();
        let mut batch = VecDeque::with_capacity(CHUNK);
        loop {
            let taken = catch_unwind(AssertUnwindSafe(|| {
                for _ in 0..CHUNK {
                    match iter.next() {
                        Some(job) => batch.push_back(job),
                        None => return false,
                    }
                }
                true
            }));
            let (more, panicked) = match taken {
                Ok(more) => (more, None),
                Err(payload) => (false, Some(panic_message(&*payload))),
            };
            let open = batch.is_empty() || self.sink.send_batch(&mut batch);
            if let Some(msg) = panicked {
                self.sink.producer_panicked(msg);
            }
            if !more || !open {
                return;
            }
        }
    }

    /// Closes the pool for new jobs, for every clone of this half: graceful
    /// shutdown. Queued and running jobs finish. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// jobs.send(1).unwrap();
    /// jobs.close();
    /// jobs.close();
    /// assert!(jobs.send(2).is_err());
    /// assert_eq!(results.count(), 1);
    /// ```
    pub fn close(&self) {
        self.sink.close()
    }

    /// A control handle for the pool: cancel, wait, resize, statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().workers(2).build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(jobs.pool().stats().workers, 2);
    /// ```
    pub fn pool(&self) -> Pool {
        self.sink.pool()
    }
}

impl<J> Clone for Jobs<J> {
    fn clone(&self) -> Self {
        self.sink.add_sender();
        Jobs {
            sink: self.sink.clone(),
        }
    }
}

impl<J> Drop for Jobs<J> {
    /// Dropping the last clone closes the pool (see [`Jobs::close`]).
    fn drop(&mut self) {
        self.sink.drop_sender();
    }
}

impl<J> std::fmt::Debug for Jobs<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}
