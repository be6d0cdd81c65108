//! The state every handle and worker of one async pool shares: one lock over the queue,
//! the outcomes and the counters, and the wake-up lists around it.
//!
//! The lock is a plain `std::sync::Mutex`, never held across an `.await` and never while
//! user code runs (a job's `Drop` included): what must be dropped is carried out of the
//! critical section and dropped after it, inside a guard against panics.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::builder::Config;
use super::context::{CancelInner, JobOps};
use super::error;
use crate::stats::Histogram;
use crate::{Failure, Outcome, Stats};

/// A job waiting in the queue.
pub(crate) struct Queued<J> {
    pub(crate) seq: u64,
    pub(crate) job: J,
    /// Clock reading at acceptance (0 with statistics off).
    pub(crate) at: u64,
}

/// The counters of [`Stats`], kept under the lock.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) submitted: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) panicked: u64,
    pub(crate) timed_out: u64,
    pub(crate) cancelled: u64,
    pub(crate) retried: u64,
}

pub(crate) struct State<J, T, E> {
    pub(crate) queue: VecDeque<Queued<J>>,
    /// Outcomes ready for the reader, in the order it gets them.
    pub(crate) ready: VecDeque<Outcome<J, T, E>>,
    /// Ordered mode: outcomes that finished before an earlier job.
    parked: BTreeMap<u64, Outcome<J, T, E>>,
    /// Ordered mode: the next sequence number to move from `parked` to `ready`.
    next_ready: u64,
    /// Ordered mode: the oldest sequence number the reader has not taken yet.
    pub(crate) floor: u64,
    next_seq: u64,
    /// Jobs taken by a worker whose outcome is not delivered yet.
    pub(crate) running: usize,
    pub(crate) closed: bool,
    pub(crate) cancelled: bool,
    /// Live clones of the jobs half.
    pub(crate) senders: usize,
    pub(crate) reader_alive: bool,
    pub(crate) reader_waker: Option<Waker>,
    /// Workers parked on `work`, and senders parked on `space`.
    pub(crate) idle: usize,
    pub(crate) senders_waiting: usize,
    /// Workers the pool is sized to; `slots[i]` says whether worker `i` is alive.
    pub(crate) target: usize,
    pub(crate) slots: Vec<bool>,
    pub(crate) live: usize,
    /// First state initialisations not reported yet, and the first that failed.
    pub(crate) inits_pending: usize,
    pub(crate) init_error: Option<(usize, String)>,
    /// Rate limit: the earliest start the next job may have.
    pub(crate) next_start: Option<Instant>,
    pub(crate) counts: Counts,
    pub(crate) queue_wait: Histogram,
    pub(crate) run_time: Histogram,
}

impl<J, T, E> State<J, T, E> {
    /// Closed, nothing queued, nothing running: every accepted job has its outcome.
    pub(crate) fn finished(&self) -> bool {
        self.closed && self.queue.is_empty() && self.running == 0
    }

    /// Every outcome not handed to the reader yet, to drop once the lock is released.
    #[allow(clippy::type_complexity)]
    pub(crate) fn take_unread(
        &mut self,
    ) -> (VecDeque<Outcome<J, T, E>>, BTreeMap<u64, Outcome<J, T, E>>) {
        (
            std::mem::take(&mut self.ready),
            std::mem::take(&mut self.parked),
        )
    }

    fn buffered(&self) -> usize {
        self.ready.len() + self.parked.len()
    }
}

/// One pool's shared half.
pub(crate) struct Shared<J, T, E> {
    state: Mutex<State<J, T, E>>,
    pub(crate) cfg: Config,
    /// Idle workers wait here for a job (or for the end).
    pub(crate) work: Notify,
    /// Senders wait here for room.
    pub(crate) space: Notify,
    /// `wait` and `build` wait here.
    pub(crate) done: Notify,
    /// The cancellation flag and the list running jobs wait on.
    pub(crate) cancel: Arc<CancelInner>,
}

/// What to do once the lock is released.
#[must_use]
pub(crate) struct After<J, T, E> {
    reader: Option<Waker>,
    garbage: Vec<Outcome<J, T, E>>,
}

impl<J, T, E> Default for After<J, T, E> {
    fn default() -> Self {
        After {
            reader: None,
            garbage: Vec::new(),
        }
    }
}

impl<J, T, E> After<J, T, E> {
    /// Wakes the reader and drops the outcomes nobody will read, outside the lock.
    pub(crate) fn run(self) {
        if let Some(w) = self.reader {
            w.wake();
        }
        if !self.garbage.is_empty() {
            let garbage = self.garbage;
            // A job's or a value's `Drop` may panic: that must not take a worker or a
            // handle down with it.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(garbage)));
        }
    }
}

/// Drops `value` (user code) so that a panic in its `Drop` stays contained.
pub(crate) fn drop_contained<V>(value: V) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}

impl<J, T, E> Shared<J, T, E> {
    pub(crate) fn new(cfg: Config) -> Self {
        let workers = cfg.workers;
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                ready: VecDeque::new(),
                parked: BTreeMap::new(),
                next_ready: 0,
                floor: 0,
                next_seq: 0,
                running: 0,
                closed: false,
                cancelled: false,
                senders: 1,
                reader_alive: true,
                reader_waker: None,
                idle: 0,
                senders_waiting: 0,
                target: workers,
                slots: vec![true; workers],
                live: workers,
                inits_pending: workers,
                init_error: None,
                next_start: None,
                counts: Counts::default(),
                queue_wait: Histogram::new(),
                run_time: Histogram::new(),
            }),
            cfg,
            work: Notify::new(),
            space: Notify::new(),
            done: Notify::new(),
            cancel: Arc::new(CancelInner::default()),
        }
    }

    /// The lock. A panic never happens while it is held (no user code runs under it), but
    /// if one did, the books are still the best there is: carry on with them.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<J, T, E>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a sender may add a job now.
    pub(crate) fn has_room(&self, st: &State<J, T, E>) -> bool {
        let cfg = &self.cfg;
        // With the reader gone, unread outcomes and the ordered window no longer hold
        // senders back: nobody would ever read them to make room.
        st.queue.len() < cfg.queue
            && (!st.reader_alive
                || st.buffered() < cfg.results
                    && cfg
                        .window
                        .is_none_or(|w| st.next_seq < st.floor.saturating_add(w as u64)))
    }

    /// Accepts a job (the caller checked that it may) and wakes an idle worker for it.
    pub(crate) fn admit(&self, st: &mut State<J, T, E>, job: J, at: u64) -> u64 {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.counts.submitted += 1;
        st.queue.push_back(Queued { seq, job, at });
        if st.idle > 0 {
            self.work.notify_one();
        }
        seq
    }

    /// A worker took a job out of the queue. A waiting sender is woken only once the
    /// queue is down to half its capacity: it then sends a run of jobs per wake-up instead
    /// of one (a parked producer thread costs microseconds to wake), and the workers still
    /// have half a queue to work on meanwhile.
    pub(crate) fn made_room(&self, st: &State<J, T, E>) {
        if st.senders_waiting > 0 && st.queue.len() <= self.cfg.queue / 2 {
            self.space.notify_one();
        }
    }

    /// Files a finished job's outcome and settles the books.
    pub(crate) fn deliver(&self, st: &mut State<J, T, E>, out: Outcome<J, T, E>) -> After<J, T, E> {
        st.running -= 1;
        let mut after = After::default();
        let failed = self.count(st, &out.result);
        self.file(st, out, &mut after);
        if failed && self.cfg.fail_fast && !st.cancelled {
            self.cancel_locked(st, &mut after);
        }
        if st.finished() {
            self.finish_locked(st);
        }
        after
    }

    /// Counts an outcome; true if it is a failure that fail-fast stops on.
    fn count(&self, st: &mut State<J, T, E>, result: &Result<T, Failure<E>>) -> bool {
        let c = &mut st.counts;
        match result {
            Ok(_) => {
                c.succeeded += 1;
                false
            }
            Err(Failure::Cancelled) => {
                c.cancelled += 1;
                false
            }
            Err(Failure::Panicked(_)) => {
                c.panicked += 1;
                true
            }
            Err(Failure::TimedOut) => {
                c.timed_out += 1;
                true
            }
            #[allow(unreachable_patterns)]
            Err(_) => {
                c.failed += 1;
                true
            }
        }
    }

    /// Puts an outcome where the reader will find it (or in the garbage if there is none).
    fn file(&self, st: &mut State<J, T, E>, out: Outcome<J, T, E>, after: &mut After<J, T, E>) {
        if !st.reader_alive {
            after.garbage.push(out);
            return;
        }
        if self.cfg.window.is_some() {
            st.parked.insert(out.seq, out);
            while let Some(o) = st.parked.remove(&st.next_ready) {
                st.ready.push_back(o);
                st.next_ready += 1;
            }
        } else {
            st.ready.push_back(out);
        }
        if !st.ready.is_empty() {
            if let Some(w) = st.reader_waker.take() {
                after.reader = Some(w);
            }
        }
    }

    /// Cancel: no more jobs, queued ones come back cancelled, running ones are told.
    pub(crate) fn cancel_locked(&self, st: &mut State<J, T, E>, after: &mut After<J, T, E>) {
        st.closed = true;
        if !st.cancelled {
            st.cancelled = true;
            self.cancel.cancel();
        }
        let queued = std::mem::take(&mut st.queue);
        for q in queued {
            st.counts.cancelled += 1;
            let out = error::outcome(
                q.seq,
                q.job,
                None,
                0,
                Default::default(),
                Err(Failure::Cancelled),
            );
            self.file(st, out, after);
        }
        self.close_locked(st);
        if let Some(w) = st.reader_waker.take() {
            after.reader = Some(w);
        }
    }

    /// Graceful close: no more jobs from senders.
    pub(crate) fn close_locked(&self, st: &mut State<J, T, E>) {
        st.closed = true;
        // Senders waiting for room learn that the pool is closed.
        self.space.notify_waiters();
        if st.finished() {
            self.finish_locked(st);
        }
    }

    /// Everything is accounted for: idle workers exit, the reader ends, waiters look again.
    fn finish_locked(&self, st: &mut State<J, T, E>) {
        self.work.notify_waiters();
        self.done.notify_waiters();
        if let Some(w) = st.reader_waker.take() {
            // Waking under the lock is fine here: a waker only schedules a task.
            w.wake();
        }
    }

    /// A follow-up job from a running one: never waits, goes past the queue's capacity.
    pub(crate) fn follow_up(&self, job: J) -> Result<u64, J> {
        let at = if self.cfg.stats {
            crate::clock::ticks()
        } else {
            0
        };
        let mut st = self.lock();
        if st.cancelled {
            return Err(job);
        }
        Ok(self.admit(&mut st, job, at))
    }

    pub(crate) fn stats(&self) -> Stats {
        let st = self.lock();
        let c = &st.counts;
        Stats {
            submitted: c.submitted,
            queued: st.queue.len() as u64,
            running: st.running as u64,
            succeeded: c.succeeded,
            failed: c.failed,
            panicked: c.panicked,
            timed_out: c.timed_out,
            cancelled: c.cancelled,
            retried: c.retried,
            workers: st.live,
            target_workers: st.target,
            queue_wait: st.queue_wait.percentiles(),
            run_time: st.run_time.percentiles(),
        }
    }

    /// Records a started job's wait in the queue.
    pub(crate) fn record_times(&self, st: &mut State<J, T, E>, times: (Duration, Duration)) {
        if self.cfg.stats {
            st.queue_wait.record(times.0);
            st.run_time.record(times.1);
        }
    }
}

impl<J: Send, T: Send, E: Send> JobOps<J> for Shared<J, T, E> {
    fn follow_up(&self, job: J) -> Result<u64, J> {
        Shared::follow_up(self, job)
    }
}
