//! The receiving half: [`Results`], an iterator of outcomes.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::error::NextError;
use crate::guard::drop_each_quietly;
use crate::outcome::Outcome;
use crate::pool::Pool;
use crate::shared::Shared;
use crate::sync::Arc;

/// The receiving half of a pool: an [`Iterator`] of [`Outcome`]s, the seed's
/// `results <-chan int`.
///
/// The iterator ends by itself once the jobs half is closed (every clone
/// dropped, or closed explicitly, or the pool cancelled) and every accepted
/// job has delivered its outcome: there is no `close(results)` to get wrong.
/// Outcomes come in completion order, or in submission order when the pool
/// was built with [`ordered`](crate::Builder::ordered).
///
/// # Panics
///
/// Reading the results of a pool from inside one of its own workers, when no
/// outcome is ready, panics instead of waiting for ever (the pool cannot
/// finish while that job runs); the panic becomes the job's outcome. If the
/// iterator given to [`Builder::run`](crate::Builder::run) panicked, the
/// results half raises that panic after the last outcome.
///
/// Reading them from a helper thread that a job started with
/// [`Context::spawn_thread`](crate::Context::spawn_thread) panics the same
/// way. A thread a job starts any other way is unknown to the pool: if the
/// job waits for it while it reads this pool's results, neither can end, and
/// this is not detected (std has no hook to carry a worker's identity into
/// the threads it starts).
///
/// # Dropping
///
/// Dropping the results half does not stop the pool: the jobs still run,
/// their outcomes are dropped, and senders no longer wait for outcomes to be
/// read. Use [`Pool::cancel`] to stop the work as well.
///
/// # Examples
///
/// ```
/// let (jobs, results) = brigade::Builder::new().workers(3).queue(5)
///     .build(|n: &u32, _ctx| Ok::<_, ()>(n * 2)).unwrap();
/// std::thread::spawn(move || { for j in 1..=5 { jobs.send(j).unwrap(); } });
/// let mut values: Vec<u32> = results.map(|o| o.result.unwrap()).collect();
/// values.sort();
/// assert_eq!(values, [2, 4, 6, 8, 10]);
/// ```
#[must_use = "a pool whose results are dropped runs its jobs and drops their outcomes"]
pub struct Results<J, T, E> {
    shared: Arc<Shared<J, T, E>>,
    local: VecDeque<Outcome<J, T, E>>,
    /// Ordered mode: outcomes that arrived ahead of their turn.
    ahead: BTreeMap<u64, Outcome<J, T, E>>,
    /// Ordered mode: the seq to yield next.
    next: u64,
    /// Every outcome was taken from the pool: what is left is in `local` and `ahead`.
    done: bool,
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Results<J, T, E> {
    pub(crate) fn new(shared: Arc<Shared<J, T, E>>) -> Self {
        Results {
            shared,
            local: VecDeque::new(),
            ahead: BTreeMap::new(),
            next: 0,
            done: false,
        }
    }

    /// A control handle for the pool: cancel, wait, resize, statistics.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_jobs, results) = brigade::Builder::new().workers(2).build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(results.pool().stats().workers, 2);
    /// ```
    pub fn pool(&self) -> Pool {
        Pool::new(self.shared.clone())
    }
}

impl<J, T, E> Results<J, T, E> {
    pub(crate) fn name(&self) -> &str {
        &self.shared.cfg.name
    }

    fn ordered(&self) -> bool {
        self.shared.cfg.window.is_some()
    }

    /// The next outcome already taken from the pool, if its turn has come.
    fn ready(&mut self) -> Option<Outcome<J, T, E>> {
        if !self.ordered() {
            return self.local.pop_front();
        }
        for o in self.local.drain(..) {
            self.ahead.insert(o.seq, o);
        }
        if let Some(o) = self.ahead.remove(&self.next) {
            self.next += 1;
            return Some(o);
        }
        if self.done {
            // Every seq below the last accepted one has an outcome, so nothing
            // should be left; if something is, hand it over rather than lose it.
            let (&first, _) = self.ahead.iter().next()?;
            self.next = first;
            return self.ahead.remove(&first);
        }
        None
    }

    /// The next outcome, waiting for it until `deadline` (for ever with `None`).
    fn pull(&mut self, deadline: Option<Instant>) -> Result<Outcome<J, T, E>, NextError> {
        loop {
            if let Some(o) = self.ready() {
                return Ok(o);
            }
            if self.done {
                return Err(NextError::Finished);
            }
            let floor = self.ordered().then_some(self.next);
            match self.shared.refill(&mut self.local, floor, deadline) {
                Ok(true) if self.local.is_empty() => return Err(NextError::Empty),
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(Some(panic)) => {
                    self.done = true;
                    // The iterator given to `run` panicked: raise it here, with its payload.
                    panic.resume();
                }
                Err(None) => {
                    // The pool cannot finish while this job runs: waiting would never end.
                    // The panic becomes this job's outcome.
                    panic!("brigade: a worker cannot wait for its own pool's results");
                }
            }
        }
    }

    /// The next outcome if one is ready now, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::NextError;
    /// let (jobs, mut results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(results.try_next().unwrap_err(), NextError::Empty);
    /// jobs.send(1).unwrap();
    /// drop(jobs);
    /// let o = loop {
    ///     match results.try_next() {
    ///         Ok(o) => break o,
    ///         Err(NextError::Empty) => std::thread::yield_now(),
    ///         Err(e) => panic!("{e}"),
    ///     }
    /// };
    /// assert_eq!(o.result, Ok(1));
    /// assert_eq!(results.try_next().unwrap_err(), NextError::Finished);
    /// ```
    pub fn try_next(&mut self) -> Result<Outcome<J, T, E>, NextError> {
        self.pull(Some(Instant::now()))
    }

    /// The next outcome, waiting at most `timeout` for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (jobs, mut results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// jobs.send(3).unwrap();
    /// assert_eq!(results.next_timeout(Duration::from_secs(60)).unwrap().result, Ok(3));
    /// assert_eq!(results.next_timeout(Duration::from_millis(1)).unwrap_err(), brigade::NextError::Empty);
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Outcome<J, T, E>, NextError> {
        self.pull(Instant::now().checked_add(timeout))
    }

    /// The next outcome, waiting for it until `deadline` at the latest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (jobs, mut results) = brigade::Builder::new().build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// drop(jobs);
    /// let deadline = Instant::now() + Duration::from_secs(60);
    /// assert_eq!(results.next_deadline(deadline).unwrap_err(), brigade::NextError::Finished);
    /// ```
    pub fn next_deadline(&mut self, deadline: Instant) -> Result<Outcome<J, T, E>, NextError> {
        self.pull(Some(deadline))
    }
}

impl<J, T, E> Iterator for Results<J, T, E> {
    type Item = Outcome<J, T, E>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pull(None).ok()
    }

    /// The outcomes already here; once the pool is finished, exactly those left.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let here = self.local.len() + self.ahead.len();
        if self.done {
            (here, Some(here))
        } else if self.ordered() {
            (0, None)
        } else {
            (here, None)
        }
    }
}

impl<J, T, E> std::iter::FusedIterator for Results<J, T, E> {}

impl<J, T, E> Drop for Results<J, T, E> {
    /// Dropping the results half drops undelivered outcomes and every later
    /// one; the jobs still run (see the type's docs).
    fn drop(&mut self) {
        self.shared.close_results();
        drop_each_quietly(self.local.drain(..));
        drop_each_quietly(std::mem::take(&mut self.ahead).into_values());
    }
}

impl<J, T, E> std::fmt::Debug for Results<J, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("name", &self.name())
            .field("here", &(self.local.len() + self.ahead.len()))
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
