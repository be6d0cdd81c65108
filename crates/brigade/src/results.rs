//! The receiving half: [`Results`], an iterator of outcomes.

use std::collections::{BTreeMap, VecDeque};

use crate::core::Shared;
use crate::outcome::Outcome;
use crate::pool::Pool;
use crate::sync::{self, Arc};

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
pub struct Results<J, T, E> {
    shared: Arc<Shared<J, T, E>>,
    local: VecDeque<Outcome<J, T, E>>,
    /// Ordered mode: outcomes that arrived ahead of their turn.
    ahead: BTreeMap<u64, Outcome<J, T, E>>,
    /// Ordered mode: the seq to yield next.
    next: u64,
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
        self.shared.pool()
    }
}

impl<J, T, E> Results<J, T, E> {
    pub(crate) fn name(&self) -> &str {
        &self.shared.cfg.name
    }

    /// Takes every delivered outcome into `local` at once; false when the pool is finished and drained.
    fn refill(&mut self) -> bool {
        let shared = &*self.shared;
        let mut st = shared.lock();
        if shared.cfg.window.is_some() && st.floor != self.next {
            st.floor = self.next;
            shared.wake_senders(&mut st);
        }
        loop {
            if !st.results.is_empty() {
                std::mem::swap(&mut st.results, &mut self.local);
                shared.wake_senders(&mut st);
                return true;
            }
            if st.finished {
                if let Some(msg) = st.producer_panic.take() {
                    drop(st);
                    panic!("brigade: the jobs iterator given to Builder::run panicked: {msg}");
                }
                return false;
            }
            if shared.on_own_worker() {
                drop(st);
                // The pool cannot finish while this job runs: waiting would never end.
                // The panic becomes this job's outcome.
                panic!("brigade: a worker cannot wait for its own pool's results");
            }
            st.ready_waiters += 1;
            st = sync::wait(&shared.ready, st);
            st.ready_waiters -= 1;
            st.ready_woken = false;
        }
    }
}

impl<J, T, E> Iterator for Results<J, T, E> {
    type Item = Outcome<J, T, E>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.shared.cfg.window.is_none() {
            if let Some(o) = self.local.pop_front() {
                return Some(o);
            }
            if self.done || !self.refill() {
                self.done = true;
                return None;
            }
            return self.local.pop_front();
        }
        loop {
            if let Some(o) = self.ahead.remove(&self.next) {
                self.next += 1;
                return Some(o);
            }
            if !self.local.is_empty() {
                for o in self.local.drain(..) {
                    self.ahead.insert(o.seq, o);
                }
                continue;
            }
            if self.done || !self.refill() {
                self.done = true;
                // Every seq below the last accepted one has an outcome, so nothing
                // should be left; if something is, hand it over rather than lose it.
                let first = self.ahead.keys().next().copied()?;
                self.next = first;
            }
        }
    }
}

impl<J, T, E> Drop for Results<J, T, E> {
    /// Dropping the results half drops undelivered outcomes and every later
    /// one; the jobs still run (see the type's docs).
    fn drop(&mut self) {
        let leftovers = {
            let mut st = self.shared.lock();
            st.results_open = false;
            if st.space_waiters > 0 {
                self.shared.space.notify_all();
            }
            std::mem::take(&mut st.results)
        };
        drop(leftovers);
    }
}

impl<J, T, E> std::fmt::Debug for Results<J, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results").finish_non_exhaustive()
    }
}
