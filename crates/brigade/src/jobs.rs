//! The sending half: [`Jobs`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{SendError, SendTimeoutError, TrySendError};
use crate::guard::catch;
use crate::outcome::Panic;
use crate::pool::{Control, Pool};
use crate::shared::{BatchSent, Refused, SendMode, Shared};
use crate::sync::Arc;

/// What the jobs half needs from the pool, whatever its result types.
pub(crate) trait Sink<J>: Send + Sync {
    fn send(&self, job: J, mode: SendMode) -> Result<u64, Refused<J>>;
    fn send_batch(&self, batch: &mut VecDeque<J>, stop_unread: bool) -> BatchSent;
    fn producer_panicked(&self, panic: Panic);
    fn add_sender(&self);
    fn drop_sender(&self);
    fn close(&self);
    fn is_closed(&self) -> bool;
    fn control(self: Arc<Self>) -> Arc<dyn Control>;
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Sink<J> for Shared<J, T, E> {
    fn send(&self, job: J, mode: SendMode) -> Result<u64, Refused<J>> {
        Shared::send(self, job, mode)
    }
    fn send_batch(&self, batch: &mut VecDeque<J>, stop_unread: bool) -> BatchSent {
        Shared::send_batch(self, batch, stop_unread)
    }
    fn producer_panicked(&self, panic: Panic) {
        Shared::producer_panicked(self, panic)
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
    fn is_closed(&self) -> bool {
        Shared::is_closed(self)
    }
    fn control(self: Arc<Self>) -> Arc<dyn Control> {
        self
    }
}

/// The sending half of a pool: the seed's `jobs chan<- int`.
///
/// Clone it to feed the pool from several producer threads. Every send
/// that returns `Ok` has been accepted, and its job will have exactly one
/// [`Outcome`](crate::Outcome); a send that is refused gives the job back
/// in the error ([`SendError`], [`TrySendError`], [`SendTimeoutError`]).
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
/// is what bounds memory. A thread that sends and then reads the results
/// could wait for ever on outcomes only it would read: `send` notices that
/// this thread is the one that made or last read the results half, and
/// refuses with [`SendError::WouldDeadlock`] (after a second's grace, in
/// case the results half moved to another thread that has not read yet).
/// Feed the pool from other threads than the one that reads the results
/// (as [`Builder::run`](crate::Builder::run) does), or read as you send.
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
#[must_use = "dropping the last jobs half closes the pool"]
pub struct Jobs<J> {
    sink: Arc<dyn Sink<J>>,
}

/// How many jobs `send_all` takes from its iterator per trip to the lock.
const CHUNK: usize = 32;

impl<J: Send + 'static> Jobs<J> {
    pub(crate) fn new<T: Send + 'static, E: Send + 'static>(shared: Arc<Shared<J, T, E>>) -> Self {
        Jobs { sink: shared }
    }
}

impl<J> Jobs<J> {
    /// Sends a job, waiting while there is no room. Returns the job's
    /// sequence number, or gives the job back if the pool is closed or
    /// cancelled (also when that happens while this send waits), or if the
    /// wait could never end ([`SendError::WouldDeadlock`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(jobs.send(10).unwrap(), 0);
    /// assert_eq!(jobs.send(11).unwrap(), 1);
    /// ```
    pub fn send(&self, job: J) -> Result<u64, SendError<J>> {
        self.sink.send(job, SendMode::Block).map_err(|r| match r {
            Refused::WouldDeadlock(j) => SendError::WouldDeadlock(j),
            Refused::Closed(j) | Refused::Full(j) | Refused::Timeout(j) => SendError::Closed(j),
        })
    }

    /// Sends a job if there is room now; otherwise gives it back at once
    /// as [`TrySendError::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::TrySendError;
    /// let (jobs, _results) = brigade::Builder::new().workers(1).queue(1)
    ///     .build(|_: &u8, ctx| { ctx.sleep(std::time::Duration::from_secs(10)); Ok::<_, ()>(()) }).unwrap();
    /// let pool = jobs.pool();
    /// let mut refused = None;
    /// for n in 0..10 {
    ///     if let Err(TrySendError::Full(job)) = jobs.try_send(n) { refused = Some(job); break; }
    /// }
    /// assert!(refused.is_some()); // one worker and one slot cannot take ten jobs
    /// pool.cancel();
    /// ```
    pub fn try_send(&self, job: J) -> Result<u64, TrySendError<J>> {
        self.sink.send(job, SendMode::Try).map_err(|r| match r {
            Refused::Full(j) => TrySendError::Full(j),
            Refused::Closed(j) | Refused::Timeout(j) | Refused::WouldDeadlock(j) => {
                TrySendError::Closed(j)
            }
        })
    }

    /// Sends a job, waiting at most `timeout` for room; then gives it back as
    /// [`SendTimeoutError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (jobs, _results) = brigade::Builder::new()
    ///     .build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert!(jobs.send_timeout(1, Duration::from_millis(50)).is_ok());
    /// ```
    pub fn send_timeout(&self, job: J, timeout: Duration) -> Result<u64, SendTimeoutError<J>> {
        // A timeout too long to add to the clock waits as long as it takes.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 100));
        self.sink
            .send(job, SendMode::Until(deadline))
            .map_err(|r| match r {
                Refused::Timeout(j) | Refused::Full(j) => SendTimeoutError::Timeout(j),
                Refused::Closed(j) | Refused::WouldDeadlock(j) => SendTimeoutError::Closed(j),
            })
    }

    /// Sends every job of `jobs`, waiting for room as [`send`](Jobs::send)
    /// does, taking them from the iterator a few at a time so that a run of
    /// jobs costs a few trips to the pool's lock instead of one each.
    ///
    /// If the pool closes (or the wait for room could never end, see
    /// [`SendError::WouldDeadlock`]), the jobs taken from the iterator and
    /// not accepted come back in the error, and the iterator is not advanced further (pass
    /// `iter.by_ref()` to keep the rest). A panic of the iterator is raised
    /// here, after the jobs it gave before were sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new().build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// let reader = std::thread::spawn(move || results.count());
    /// jobs.send_all(0..10_000).unwrap();
    /// drop(jobs);
    /// assert_eq!(reader.join().unwrap(), 10_000);
    /// ```
    pub fn send_all<I: IntoIterator<Item = J>>(&self, jobs: I) -> Result<(), SendError<Vec<J>>> {
        let mut iter = jobs.into_iter();
        loop {
            let (mut batch, more) = match take_chunk(&mut iter) {
                Ok(taken) => taken,
                Err((batch, panic)) => {
                    let refused = self.send_chunk(batch);
                    drop(refused);
                    panic.resume();
                }
            };
            if !batch.is_empty() {
                // The jobs already pushed are accepted; the rest come back.
                match self.sink.send_batch(&mut batch, false) {
                    BatchSent::All => {}
                    BatchSent::Closed => return Err(SendError::Closed(batch.into())),
                    BatchSent::WouldDeadlock => return Err(SendError::WouldDeadlock(batch.into())),
                }
            }
            if !more {
                return Ok(());
            }
        }
    }

    fn send_chunk(&self, mut batch: VecDeque<J>) -> Option<VecDeque<J>> {
        if batch.is_empty() || matches!(self.sink.send_batch(&mut batch, false), BatchSent::All) {
            None
        } else {
            Some(batch)
        }
    }

    /// Feeds every job of `jobs` to the pool (for `Builder::run`). Stops when
    /// the pool closes or its results half is dropped; the jobs in hand then
    /// were never accepted and are dropped. If the iterator panics, the jobs
    /// already taken from it are still sent, and the panic is recorded for
    /// the results half to raise once it has handed over every outcome.
    pub(crate) fn feed<I: Iterator<Item = J>>(&self, mut iter: I) {
        loop {
            let (mut batch, more, panic) = match take_chunk(&mut iter) {
                Ok((batch, more)) => (batch, more, None),
                Err((batch, panic)) => (batch, false, Some(panic)),
            };
            let open = batch.is_empty()
                || matches!(self.sink.send_batch(&mut batch, true), BatchSent::All);
            if let Some(p) = panic {
                self.sink.producer_panicked(p);
            }
            crate::guard::drop_each_quietly(batch);
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

    /// Whether the pool takes no more jobs (closed, cancelled, or every
    /// other clone dropped... which cannot be while this one lives).
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert!(!jobs.is_closed());
    /// jobs.pool().cancel();
    /// assert!(jobs.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sink.is_closed()
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
        Pool::new(Arc::clone(&self.sink).control())
    }
}

/// Takes up to [`CHUNK`] jobs from `iter`, with a panic guard: whether more
/// may follow, or the iterator's panic with the jobs it gave before.
#[allow(clippy::type_complexity)]
fn take_chunk<J, I: Iterator<Item = J>>(
    iter: &mut I,
) -> Result<(VecDeque<J>, bool), (VecDeque<J>, Panic)> {
    let mut batch = VecDeque::with_capacity(CHUNK);
    let taken = catch(|| {
        for _ in 0..CHUNK {
            match iter.next() {
                Some(job) => batch.push_back(job),
                None => return false,
            }
        }
        true
    });
    match taken {
        Ok(more) => Ok((batch, more)),
        Err(panic) => Err((batch, panic)),
    }
}

impl<J> Clone for Jobs<J> {
    fn clone(&self) -> Self {
        self.sink.add_sender();
        Jobs {
            sink: Arc::clone(&self.sink),
        }
    }
}

impl<J> Drop for Jobs<J> {
    fn drop(&mut self) {
        self.sink.drop_sender();
    }
}

impl<J> std::fmt::Debug for Jobs<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}
