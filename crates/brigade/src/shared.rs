//! The shared state of one pool and its whole protocol: the queue, the
//! workers' batches, the outcomes waiting to be read, the counters, and
//! shutdown. Every change of the state happens in a method of this file.
//!
//! See `DESIGN-NOTES.md` beside this file for why one lock, how it is kept
//! off the per-job path (batches), and which test proves which promise.
//!
//! Lock order: the state lock, then a worker's batch lock, then the alarm
//! lock. A worker holds its own batch lock alone while it takes the next job
//! of its batch; sleepers hold the alarm lock alone.
//!
//! No user code runs under the state lock: a user value that the pool drops
//! (an outcome nobody will read, a job cancelled after the results half is
//! gone) goes to `State::garbage`, which [`Locked`]'s `Drop` empties after
//! the lock is released, each value inside a panic guard.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::clock;
use crate::config::{check_workers, BoxError, Config, RetryFn};
use crate::context::{Context, JobOps};
use crate::error::{BuildError, InitError, WaitError};
use crate::guard::{drop_each_quietly, drop_quietly};
use crate::outcome::{Failure, Outcome, Panic};
use crate::stats::{Histogram, Stats};
use crate::sync::{self, Arc, AtomicBool, Condvar, Mutex, MutexGuard, Ordering};
use crate::worker;

/// A job on its way through the queue.
pub(crate) struct Envelope<J> {
    pub(crate) seq: u64,
    pub(crate) job: J,
    /// Clock ticks at acceptance (0 with statistics off).
    pub(crate) enqueued: u64,
}

/// The jobs a worker took from the queue and has not started yet, which idle
/// workers may steal, and the job it runs now.
pub(crate) struct Batch<J> {
    jobs: VecDeque<Envelope<J>>,
    current: Option<u64>,
}

/// One worker's batch, shared with the thieves and with cancel.
pub(crate) struct BatchRef<J>(Arc<Mutex<Batch<J>>>);

impl<J> Clone for BatchRef<J> {
    fn clone(&self) -> Self {
        BatchRef(Arc::clone(&self.0))
    }
}

impl<J> BatchRef<J> {
    fn new() -> Self {
        BatchRef(Arc::new(Mutex::new(Batch {
            jobs: VecDeque::new(),
            current: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Batch<J>> {
        sync::lock(&self.0)
    }

    /// The owner's next job, marked as the one it runs now; `None` when the
    /// batch is empty (run, or stolen).
    pub(crate) fn next_job(&self) -> Option<Envelope<J>> {
        let mut b = self.lock();
        let next = b.jobs.pop_front();
        b.current = next.as_ref().map(|e| e.seq);
        next
    }
}

/// How a send waits for room.
#[derive(Clone, Copy)]
pub(crate) enum SendMode {
    Block,
    Try,
    Until(Instant),
}

/// How a batch of sends ended.
pub(crate) enum BatchSent {
    All,
    Closed,
    WouldDeadlock,
}

/// Why a send was refused, with the job; `Jobs` turns it into each operation's error type.
pub(crate) enum Refused<J> {
    Closed(J),
    Full(J),
    Timeout(J),
    WouldDeadlock(J),
}

#[derive(Default)]
struct Counters {
    submitted: u64,
    succeeded: u64,
    failed: u64,
    panicked: u64,
    timed_out: u64,
    cancelled: u64,
    retried: u64,
}

/// The threads waiting on one condition variable, and the wake-ups sent to
/// them that they have not taken up yet. A woken thread stays counted as
/// waiting until it holds the lock again; waking it again would cost a futex
/// call for nothing, so only `sleeping()` threads are woken.
///
/// Invariant: `woken <= waiting`. A thread leaving a wait takes up one
/// wake-up if any was sent; a spurious wake-up may take up one meant for
/// another thread, which then wakes anyway: the count is too low, which
/// costs an extra wake-up later, never a lost one.
#[derive(Default)]
struct Waiters {
    waiting: usize,
    woken: usize,
}

impl Waiters {
    fn sleeping(&self) -> usize {
        debug_assert!(self.woken <= self.waiting);
        self.waiting - self.woken
    }

    /// Wakes up to `n` sleeping threads.
    fn wake(&mut self, cv: &Condvar, n: usize) {
        let m = n.min(self.sleeping());
        if m == 0 {
            return;
        }
        self.woken += m;
        if self.woken == self.waiting {
            cv.notify_all();
        } else {
            for _ in 0..m {
                cv.notify_one();
            }
        }
    }

    fn wake_all(&mut self, cv: &Condvar) {
        if self.sleeping() > 0 {
            self.woken = self.waiting;
            cv.notify_all();
        }
    }

    fn enter(&mut self) {
        self.waiting += 1;
    }

    fn leave(&mut self) {
        debug_assert!(self.waiting > 0);
        self.waiting -= 1;
        self.woken = self.woken.saturating_sub(1);
        debug_assert!(self.woken <= self.waiting);
    }
}

/// A worker slot: the batch of the worker in it, if any.
struct Slot<J> {
    batch: Option<BatchRef<J>>,
    /// Its last take from the queue was several jobs, so thieves should look at it.
    multi: bool,
}

/// Everything behind the lock.
pub(crate) struct State<J, T, E> {
    queue: VecDeque<Envelope<J>>,
    results: VecDeque<Outcome<J, T, E>>,
    /// User values to drop once the lock is released (see [`Locked`]).
    garbage: Vec<Outcome<J, T, E>>,
    /// The results half is alive; when it is gone, outcomes are dropped.
    results_open: bool,
    /// The thread that made or last read the results half.
    reader: Option<sync::thread::ThreadId>,
    /// Sends blocked on the reader's thread (more than one only if the
    /// results half moved while one waited). Such a wait may have begun on a
    /// full queue and become a wait on unread outcomes only that thread can
    /// read, so it is woken whenever the queue gets room, to look again.
    reader_sending: usize,
    /// Live `Jobs` handles; the last one dropped closes the pool.
    senders: usize,
    /// No more jobs from producers (follow-ups still allowed until cancelled).
    closed: bool,
    /// No more starts; queued jobs were handed back as cancelled.
    cancelled: bool,
    /// Closed, nothing queued, nothing taken: every outcome is delivered.
    finished: bool,
    next_seq: u64,
    /// Jobs taken from the queue (waiting in a batch or running) whose
    /// outcomes are not yet delivered.
    taken: usize,
    /// Workers the pool is sized to.
    target: usize,
    slots: Vec<Slot<J>>,
    /// Slots with a worker in them.
    live: usize,
    /// Slots whose `multi` is set.
    multi: usize,
    /// Worker threads that have not yet ended (their state dropped).
    threads: usize,
    handles: Vec<sync::thread::JoinHandle<()>>,
    inits_done: usize,
    init_error: Option<InitError>,
    /// `build` is waiting for the first workers' states.
    building: bool,
    /// The panic of `Builder::run`'s iterator, raised by the results half at its end.
    producer_panic: Option<Panic>,
    /// Ordered mode: every outcome with a lower seq was read.
    floor: u64,
    work: Waiters,
    space: Waiters,
    ready: Waiters,
    done: Waiters,
    counters: Counters,
    wait_hist: Histogram,
    run_hist: Histogram,
}

/// The state lock, held. Dropping it releases the lock first, then drops
/// the garbage the critical section left, each value in a panic guard.
pub(crate) struct Locked<'a, J, T, E> {
    guard: Option<MutexGuard<'a, State<J, T, E>>>,
    mutex: &'a Mutex<State<J, T, E>>,
}

impl<J, T, E> std::ops::Deref for Locked<'_, J, T, E> {
    type Target = State<J, T, E>;
    fn deref(&self) -> &State<J, T, E> {
        self.guard.as_ref().expect("held")
    }
}

impl<J, T, E> std::ops::DerefMut for Locked<'_, J, T, E> {
    fn deref_mut(&mut self) -> &mut State<J, T, E> {
        self.guard.as_mut().expect("held")
    }
}

impl<J, T, E> Drop for Locked<'_, J, T, E> {
    fn drop(&mut self) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        let garbage = std::mem::take(&mut g.garbage);
        drop(g);
        drop_each_quietly(garbage);
    }
}

impl<'a, J, T, E> Locked<'a, J, T, E> {
    /// Waits on `cv`, or, if the critical section left garbage, drops it
    /// without the lock and returns at once (as a spurious wake-up would:
    /// every caller checks its condition again). A value the pool dropped
    /// may hold a handle whose drop is what the waiter waits for.
    fn wait(&mut self, cv: &Condvar, deadline: Option<Instant>) {
        let mut g = self.guard.take().expect("held");
        if !g.garbage.is_empty() {
            let garbage = std::mem::take(&mut g.garbage);
            drop(g);
            drop_each_quietly(garbage);
            self.guard = Some(sync::lock(self.mutex));
            return;
        }
        let g = match deadline {
            None => sync::wait(cv, g),
            Some(d) => sync::wait_timeout(cv, g, d.saturating_duration_since(Instant::now())),
        };
        self.guard = Some(g);
    }
}

/// Starts a worker thread in a slot. A pool of its own threads returns the
/// handle to join; a scoped pool's threads are joined by their scope.
pub(crate) type SpawnFn<J, T, E> = Box<
    dyn Fn(
            &Arc<Shared<J, T, E>>,
            usize,
            BatchRef<J>,
        ) -> std::io::Result<Option<sync::thread::JoinHandle<()>>>
        + Send
        + Sync,
>;

/// The state one pool's handles and workers share.
pub(crate) struct Shared<J, T, E> {
    state: Mutex<State<J, T, E>>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// Senders wait here for room.
    space: Condvar,
    /// The results half waits here for outcomes.
    ready: Condvar,
    /// `wait` and `build` wait here.
    done: Condvar,
    /// Set once by cancel; read by running jobs and workers without the lock.
    cancel_flag: AtomicBool,
    /// Set once the pool is finished; read by sleepers without the lock.
    finished_flag: AtomicBool,
    /// Cancellable sleeps (backoff, rate limit, `Context::sleep`, a broken
    /// worker's pause) wait here.
    alarm: Mutex<()>,
    alarm_cv: Condvar,
    /// Rate limit: when the next job may start.
    rate_next: Mutex<Option<Instant>>,
    pub(crate) cfg: Config,
    pub(crate) retry_if: Option<RetryFn<E>>,
    /// Holds the user's worker function and initialiser; dropped quietly.
    spawn_worker: Option<SpawnFn<J, T, E>>,
}

sync::thread_local! {
    /// The pool (by address) whose worker this thread is, or 0.
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The pool whose worker (or job's helper thread) the calling thread is, or 0.
#[cfg(not(loom))]
pub(crate) fn worker_mark() -> usize {
    WORKER_OF.with(|w| w.get())
}

/// Marks the calling thread as a helper of a job of the pool `mark` names.
#[cfg(not(loom))]
pub(crate) fn set_worker_mark(mark: usize) {
    WORKER_OF.with(|w| w.set(mark));
}

/// The most jobs a worker takes from the queue at once.
const MAX_BATCH: usize = 32;

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Shared<J, T, E> {
    /// Starts a crew and returns its shared state once every worker has built its state.
    pub(crate) fn start<S: 'static, F>(
        cfg: Config,
        retry_if: Option<RetryFn<E>>,
        init: std::sync::Arc<dyn Fn(usize) -> Result<S, BoxError> + Send + Sync>,
        f: F,
    ) -> Result<Arc<Self>, BuildError>
    where
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E> + Send + Sync + 'static,
    {
        let code = std::sync::Arc::new(worker::Code { init, f });
        let name = cfg.name.clone();
        let spawn_worker: SpawnFn<J, T, E> = Box::new(move |shared, idx, batch| {
            let shared = Arc::clone(shared);
            let code = std::sync::Arc::clone(&code);
            sync::spawn_named(format!("{name}-{idx}"), move || {
                shared.worker_main(&code, idx, batch);
            })
            .map(Some)
        });
        Self::start_with(cfg, retry_if, spawn_worker)
    }

    /// Starts a crew whose threads `spawn_worker` starts.
    pub(crate) fn start_with(
        cfg: Config,
        retry_if: Option<RetryFn<E>>,
        spawn_worker: SpawnFn<J, T, E>,
    ) -> Result<Arc<Self>, BuildError> {
        let n = cfg.workers;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(cfg.queue.min(4096)),
                results: VecDeque::new(),
                garbage: Vec::new(),
                results_open: true,
                reader: Some(sync::thread::current().id()),
                reader_sending: 0,
                senders: 1,
                closed: false,
                cancelled: false,
                finished: false,
                next_seq: 0,
                taken: 0,
                target: n,
                slots: Vec::new(),
                live: 0,
                multi: 0,
                threads: 0,
                handles: Vec::new(),
                inits_done: 0,
                init_error: None,
                building: true,
                producer_panic: None,
                floor: 0,
                work: Waiters::default(),
                space: Waiters::default(),
                ready: Waiters::default(),
                done: Waiters::default(),
                counters: Counters::default(),
                wait_hist: Histogram::new(),
                run_hist: Histogram::new(),
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            ready: Condvar::new(),
            done: Condvar::new(),
            cancel_flag: AtomicBool::new(false),
            finished_flag: AtomicBool::new(false),
            alarm: Mutex::new(()),
            alarm_cv: Condvar::new(),
            rate_next: Mutex::new(None),
            cfg,
            retry_if,
            spawn_worker: Some(spawn_worker),
        });
        let mut error = None;
        {
            let mut st = shared.lock();
            let mut started = 0;
            for idx in 0..n {
                if let Err(e) = shared.spawn_in(&mut st, idx) {
                    error = Some(e);
                    break;
                }
                started += 1;
            }
            // Wait until every started worker has tried to build its state.
            while st.inits_done < started {
                st.done.enter();
                st.wait(&shared.done, None);
                st.done.leave();
            }
            st.building = false;
            if error.is_none() {
                error = st.init_error.take().map(BuildError::Init);
            }
        }
        if let Some(e) = error {
            shared.cancel();
            shared.close();
            let _ = shared.wait(None);
            return Err(e);
        }
        Ok(shared)
    }

    /// Starts a worker in slot `idx` (which must be free).
    fn spawn_in(self: &Arc<Self>, st: &mut State<J, T, E>, idx: usize) -> Result<(), BuildError> {
        let spawn = self.spawn_worker.as_ref().expect("alive");
        let batch = BatchRef::new();
        let handle = spawn(self, idx, batch.clone())
            .map_err(|e| BuildError::Spawn(std::sync::Arc::new(e)))?;
        if st.slots.len() <= idx {
            st.slots.resize_with(idx + 1, || Slot {
                batch: None,
                multi: false,
            });
        }
        st.slots[idx].batch = Some(batch);
        st.live += 1;
        st.threads += 1;
        st.handles.extend(handle);
        Ok(())
    }

    /// A worker thread's whole life, on the thread.
    pub(crate) fn worker_main<S, F>(
        self: &Arc<Self>,
        code: &worker::Code<S, F>,
        idx: usize,
        batch: BatchRef<J>,
    ) where
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E>,
    {
        WORKER_OF.with(|w| w.set(self.id()));
        worker::run(self, code, idx, batch);
    }

    /// The thread of worker `idx` could not be started after all (a scoped
    /// pool starts its threads from a helper thread): free its slot. While
    /// the pool is being built, `build` reports it; later, a pool left with
    /// no worker at all is cancelled, so that nothing waits for ever.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn spawn_failed(&self, idx: usize, error: std::io::Error) {
        let mut st = self.lock();
        if st.building {
            st.inits_done += 1;
            if st.init_error.is_none() {
                let e: BoxError = format!("cannot start the worker's thread: {error}").into();
                st.init_error = Some(InitError::new(idx, e));
            }
        }
        self.leave_slot(&mut st, idx);
        st.threads -= 1;
        if !st.building && st.live == 0 && !st.finished {
            self.cancel_locked(&mut st);
        }
        st.done.wake_all(&self.done);
    }

    /// Joins the threads of workers that have ended, so that a pool resized
    /// up and down for ever does not keep their stacks.
    fn reap(st: &mut State<J, T, E>) {
        #[cfg(not(loom))]
        {
            let (ended, running): (Vec<_>, Vec<_>) =
                st.handles.drain(..).partition(|h| h.is_finished());
            st.handles = running;
            for h in ended {
                let _ = h.join();
            }
        }
        #[cfg(loom)]
        let _ = st;
    }

    pub(crate) fn resize(self: &Arc<Self>, n: usize) -> Result<(), BuildError> {
        check_workers(n)?;
        let mut st = self.lock();
        Self::reap(&mut st);
        st.target = n;
        let mut result = Ok(());
        if !st.finished {
            for idx in 0..n {
                if st.slots.get(idx).is_some_and(|s| s.batch.is_some()) {
                    continue;
                }
                if let Err(e) = self.spawn_in(&mut st, idx) {
                    result = Err(e);
                    break;
                }
            }
        }
        // Workers above the new size leave when they next look for work.
        st.work.wake_all(&self.work);
        result
    }

    /// Settles the books of worker `idx` whose thread is unwinding through
    /// the pool's own code (a bug, not user code: that runs in guards):
    /// the jobs of its batch go back to the queue, its outcomes are
    /// delivered, and another worker takes its slot.
    pub(crate) fn worker_lost(
        self: &Arc<Self>,
        idx: usize,
        batch: &BatchRef<J>,
        outs: &mut Vec<Outcome<J, T, E>>,
        inited: bool,
    ) {
        let mut st = self.lock();
        if !inited {
            st.inits_done += 1;
        }
        let (unstarted, current) = {
            let mut b = batch.lock();
            let unstarted: Vec<_> = b.jobs.drain(..).collect();
            (unstarted, b.current.take())
        };
        st.taken -= unstarted.len();
        for env in unstarted.into_iter().rev() {
            st.queue.push_front(env);
        }
        // The job it was running cannot be given back; count it done so the
        // pool does not wait for it for ever.
        let delivered_current = current.is_some_and(|seq| outs.iter().any(|o| o.seq == seq));
        if current.is_some() && !delivered_current {
            st.taken -= 1;
        }
        self.deliver(&mut st, outs, 0);
        self.check_finished(&mut st);
        self.leave_slot(&mut st, idx);
        st.threads -= 1;
        if !st.finished && idx < st.target {
            let _ = self.spawn_in(&mut st, idx);
        }
        st.work.wake_all(&self.work);
        st.done.wake_all(&self.done);
    }
}

impl<J, T, E> Shared<J, T, E> {
    pub(crate) fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// Whether the calling thread is one of this pool's workers.
    pub(crate) fn on_own_worker(&self) -> bool {
        WORKER_OF.with(|w| w.get()) == self.id()
    }

    pub(crate) fn lock(&self) -> Locked<'_, J, T, E> {
        Locked {
            guard: Some(sync::lock(&self.state)),
            mutex: &self.state,
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel_flag.load(Ordering::Relaxed)
    }

    fn stamp(&self) -> u64 {
        if self.cfg.stats {
            clock::ticks()
        } else {
            0
        }
    }

    /// Room for one more job from a producer: the queue, the unread outcomes
    /// and the ordered window all have it.
    fn has_room(&self, st: &State<J, T, E>) -> bool {
        st.queue.len() < self.cfg.queue && self.results_room(st)
    }

    /// The unread outcomes and the ordered window have room.
    fn results_room(&self, st: &State<J, T, E>) -> bool {
        if !st.results_open {
            return true;
        }
        if st.results.len() >= self.cfg.results {
            return false;
        }
        match self.cfg.window {
            Some(w) => st.next_seq < st.floor.saturating_add(w as u64),
            None => true,
        }
    }

    /// Accepts a job into the queue; the caller holds the lock, has checked
    /// the rules, and wakes a worker afterwards.
    fn push(st: &mut State<J, T, E>, job: J, enqueued: u64) -> u64 {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.counters.submitted += 1;
        st.queue.push_back(Envelope { seq, job, enqueued });
        seq
    }

    /// Wakes blocked senders once there is room, and the reader's own
    /// blocked send whenever the queue has room (see `reader_sending`).
    fn wake_senders(&self, st: &mut State<J, T, E>) {
        if st.space.sleeping() > 0
            && (self.has_room(st) || (st.reader_sending > 0 && st.queue.len() < self.cfg.queue))
        {
            st.space.wake_all(&self.space);
        }
    }

    /// Sends one job, waiting for room as `mode` says.
    pub(crate) fn send(&self, job: J, mode: SendMode) -> Result<u64, Refused<J>> {
        // Read the clock before taking the lock, to keep the critical section short.
        let mut enqueued = self.stamp();
        // A job sending on its own pool's jobs half could wait for room only
        // its own crew can make: it goes past the bounds, like a follow-up.
        let own_worker = self.on_own_worker();
        let mut st = self.lock();
        let mut grace: Option<Instant> = None;
        loop {
            if st.closed {
                return Err(Refused::Closed(job));
            }
            if own_worker || self.has_room(&st) {
                let seq = Self::push(&mut st, job, enqueued);
                st.work.wake(&self.work, 1);
                return Ok(seq);
            }
            let deadline = match mode {
                SendMode::Try => return Err(Refused::Full(job)),
                SendMode::Until(d) if Instant::now() >= d => return Err(Refused::Timeout(job)),
                SendMode::Until(d) => Some(d),
                SendMode::Block => None,
            };
            let block = matches!(mode, SendMode::Block);
            if !self.wait_for_room(&mut st, deadline, block, &mut grace) {
                return Err(Refused::WouldDeadlock(job));
            }
            // Queue wait counts from acceptance, not from the first try.
            enqueued = self.stamp();
        }
    }

    /// Sends every job of `batch` in as few trips to the lock as the room
    /// allows, waiting for room; one clock reading per trip. Returns false
    /// if the pool closed or its results half was dropped (the jobs left in
    /// `batch` were not accepted): this feeds `Builder::run`, where nobody
    /// else could read the outcomes of more jobs.
    pub(crate) fn send_batch(&self, batch: &mut VecDeque<J>, stop_unread: bool) -> BatchSent {
        let mut enqueued = self.stamp();
        let mut st = self.lock();
        let mut grace = None;
        loop {
            if st.closed || (stop_unread && !st.results_open) {
                return BatchSent::Closed;
            }
            let mut pushed = 0;
            while self.has_room(&st) {
                let Some(job) = batch.pop_front() else { break };
                Self::push(&mut st, job, enqueued);
                pushed += 1;
            }
            st.work.wake(&self.work, pushed);
            if batch.is_empty() {
                return BatchSent::All;
            }
            if !self.wait_for_room(&mut st, None, true, &mut grace) {
                return BatchSent::WouldDeadlock;
            }
            enqueued = self.stamp();
        }
    }

    /// A blocked sender waits once for room (until `deadline`). With
    /// `block`, it returns false instead when the wait could never end:
    /// waiting on unread outcomes from the thread that reads them. The
    /// results half may have moved to a thread that has not read yet, so
    /// that thread gets a second (`grace`) to show up before this says so.
    fn wait_for_room(
        &self,
        st: &mut Locked<'_, J, T, E>,
        deadline: Option<Instant>,
        block: bool,
        grace: &mut Option<Instant>,
    ) -> bool {
        let on_results = st.queue.len() < self.cfg.queue;
        let reader = block && st.reader == Some(sync::thread::current().id());
        let deadline = if reader && on_results {
            let now = Instant::now();
            let g = *grace.get_or_insert(now + Duration::from_secs(1));
            if now >= g {
                return false;
            }
            Some(deadline.map_or(g, |d| d.min(g)))
        } else {
            deadline
        };
        st.reader_sending += usize::from(reader);
        st.space.enter();
        st.wait(&self.space, deadline);
        st.space.leave();
        st.reader_sending -= usize::from(reader);
        true
    }

    pub(crate) fn producer_panicked(&self, panic: Panic) {
        let mut st = self.lock();
        if st.producer_panic.is_none() {
            st.producer_panic = Some(panic);
        }
    }

    pub(crate) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    pub(crate) fn drop_sender(&self) {
        let mut st = self.lock();
        st.senders -= 1;
        if st.senders == 0 {
            self.close_locked(&mut st);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn close_locked(&self, st: &mut State<J, T, E>) {
        if st.closed {
            return;
        }
        st.closed = true;
        st.space.wake_all(&self.space);
        self.check_finished(st);
    }

    /// Marks the pool cancelled and hands back every job not started: those
    /// in the queue and those in the workers' batches.
    fn cancel_locked(&self, st: &mut State<J, T, E>) {
        if st.cancelled {
            return;
        }
        st.cancelled = true;
        self.cancel_flag.store(true, Ordering::SeqCst);
        let mut unstarted: Vec<Envelope<J>> = st.queue.drain(..).collect();
        let mut from_batches = 0;
        for slot in &st.slots {
            if let Some(b) = &slot.batch {
                let mut b = b.lock();
                from_batches += b.jobs.len();
                unstarted.extend(b.jobs.drain(..));
            }
        }
        st.taken -= from_batches;
        st.counters.cancelled += unstarted.len() as u64;
        for env in unstarted {
            let o = Outcome::new(env.seq, env.job, Err(Failure::Cancelled));
            if st.results_open {
                st.results.push_back(o);
            } else {
                st.garbage.push(o);
            }
        }
        st.ready.wake(&self.ready, 1);
        // Already closed or not, the queue just emptied: the pool may be finished now.
        self.close_locked(st);
        self.check_finished(st);
        st.work.wake_all(&self.work);
        // Wake the cancellable sleeps, whichever path cancelled (cancel,
        // fail-fast in a worker or at delivery).
        self.ring_alarm();
    }

    /// Wakes cancellable sleeps.
    fn ring_alarm(&self) {
        let _g = sync::lock(&self.alarm);
        self.alarm_cv.notify_all();
    }

    /// Marks the pool finished once it is closed and nothing is queued or taken.
    fn check_finished(&self, st: &mut State<J, T, E>) {
        if st.finished || !st.closed || !st.queue.is_empty() || st.taken > 0 {
            return;
        }
        st.finished = true;
        self.finished_flag.store(true, Ordering::SeqCst);
        st.work.wake_all(&self.work);
        st.ready.wake_all(&self.ready);
        st.space.wake_all(&self.space);
        st.done.wake_all(&self.done);
        // A broken worker pausing before its next try must see it now.
        self.ring_alarm();
    }

    /// Records and hands over a worker's finished outcomes.
    fn deliver(&self, st: &mut State<J, T, E>, outs: &mut Vec<Outcome<J, T, E>>, retried: u64) {
        if outs.is_empty() {
            return;
        }
        st.counters.retried += retried;
        st.taken -= outs.len();
        let mut failure = false;
        for o in outs.drain(..) {
            let c = &mut st.counters;
            match &o.result {
                Ok(_) => c.succeeded += 1,
                Err(Failure::Error(_) | Failure::Init(_)) => c.failed += 1,
                Err(Failure::Panicked(_)) => c.panicked += 1,
                Err(Failure::TimedOut) => c.timed_out += 1,
                Err(Failure::Cancelled) => c.cancelled += 1,
            }
            failure |= !matches!(o.result, Ok(_) | Err(Failure::Cancelled));
            if self.cfg.stats && o.attempts > 0 {
                st.wait_hist.record(o.queue_wait);
                st.run_hist.record(o.run_time);
            }
            if st.results_open {
                st.results.push_back(o);
            } else {
                st.garbage.push(o);
            }
        }
        if failure && self.cfg.fail_fast {
            self.cancel_locked(st);
        }
        // Delivering never makes room for senders (the outcomes now wait to be
        // read), so only the reader needs waking.
        st.ready.wake(&self.ready, 1);
        self.check_finished(st);
    }

    /// A worker's trip to the lock between batches: delivers `outs`, then
    /// fills `mine` with its next jobs, from the queue or stolen from another
    /// worker's batch, waiting while there are none. Returns false when the
    /// worker should leave (the pool is finished, or resized below it).
    pub(crate) fn exchange(
        &self,
        idx: usize,
        mine: &BatchRef<J>,
        outs: &mut Vec<Outcome<J, T, E>>,
        retried: u64,
        batching: bool,
    ) -> bool {
        let mut st = self.lock();
        self.deliver(&mut st, outs, retried);
        loop {
            if idx >= st.target || st.finished {
                self.leave_slot(&mut st, idx);
                return false;
            }
            if !st.queue.is_empty() {
                let k = if batching {
                    (st.queue.len() / st.target).clamp(1, MAX_BATCH)
                } else {
                    1
                };
                let mut b = mine.lock();
                b.jobs.extend(st.queue.drain(..k));
                drop(b);
                st.taken += k;
                self.set_multi(&mut st, idx, k > 1);
                self.wake_senders(&mut st);
                // No job may wait in a batch while a worker sleeps: wake the
                // sleepers to steal what this worker does not start at once.
                st.work.wake(&self.work, k - 1);
                return true;
            }
            if st.multi > 0 && self.steal(&mut st, idx, mine) {
                return true;
            }
            st.work.enter();
            st.wait(&self.work, None);
            st.work.leave();
        }
    }

    /// Delivers a worker's outcomes without taking more jobs.
    pub(crate) fn deliver_now(&self, outs: &mut Vec<Outcome<J, T, E>>, retried: u64) {
        let mut st = self.lock();
        self.deliver(&mut st, outs, retried);
    }

    fn set_multi(&self, st: &mut State<J, T, E>, idx: usize, multi: bool) {
        let slot = &mut st.slots[idx];
        if slot.multi != multi {
            slot.multi = multi;
            if multi {
                st.multi += 1;
            } else {
                st.multi -= 1;
            }
        }
    }

    /// Takes the later half of the fullest batch of another worker into `mine`.
    fn steal(&self, st: &mut State<J, T, E>, idx: usize, mine: &BatchRef<J>) -> bool {
        let mut best: Option<(usize, usize)> = None;
        for (i, slot) in st.slots.iter().enumerate() {
            if i == idx || !slot.multi {
                continue;
            }
            if let Some(b) = &slot.batch {
                let n = b.lock().jobs.len();
                if n > best.map_or(0, |(_, m)| m) {
                    best = Some((i, n));
                }
            }
        }
        let Some((victim, _)) = best else {
            // Nothing left to steal anywhere: stop looking until the next batch.
            for i in 0..st.slots.len() {
                self.set_multi(st, i, false);
            }
            return false;
        };
        let stolen: VecDeque<Envelope<J>> = {
            let vb = st.slots[victim].batch.as_ref().expect("checked");
            let mut vb = vb.lock();
            let n = vb.jobs.len();
            vb.jobs.split_off(n - n.div_ceil(2))
        };
        let k = stolen.len();
        mine.lock().jobs.extend(stolen);
        self.set_multi(st, idx, k > 1);
        st.work.wake(&self.work, k - 1);
        k > 0
    }

    /// Worker `idx` leaves its slot.
    fn leave_slot(&self, st: &mut State<J, T, E>, idx: usize) {
        self.set_multi(st, idx, false);
        if st.slots[idx].batch.take().is_some() {
            st.live -= 1;
        }
    }

    /// A worker thread has ended: its state is dropped.
    pub(crate) fn thread_ended(&self) {
        let mut st = self.lock();
        st.threads -= 1;
        if st.threads == 0 {
            st.done.wake_all(&self.done);
        }
    }

    /// A worker has tried to build its first state.
    pub(crate) fn init_done(&self, idx: usize, mut error: Option<BoxError>) {
        {
            let mut st = self.lock();
            st.inits_done += 1;
            if st.building && st.init_error.is_none() {
                st.init_error = error.take().map(|e| InitError::new(idx, e));
            }
            st.done.wake_all(&self.done);
        }
        // Not kept: dropped without the lock.
        drop_quietly(error);
    }

    pub(crate) fn close(&self) {
        let mut st = self.lock();
        self.close_locked(&mut st);
    }

    pub(crate) fn cancel(&self) {
        let mut st = self.lock();
        self.cancel_locked(&mut st);
    }

    /// Waits until the pool is finished and, with `threads`, every worker
    /// thread has ended; false at the deadline.
    fn wait_until(&self, deadline: Option<Instant>, threads: bool) -> bool {
        let mut st = self.lock();
        while !(st.finished && (!threads || st.threads == 0)) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            st.done.enter();
            st.wait(&self.done, deadline);
            st.done.leave();
        }
        true
    }

    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        if self.on_own_worker() {
            return Err(WaitError::InsideWorker);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if !self.wait_until(deadline, true) {
            return Err(WaitError::Timeout);
        }
        let handles = std::mem::take(&mut self.lock().handles);
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    }

    /// Graceful until `deadline`, then immediate; returns at the deadline at
    /// the latest, with the jobs still running then (their outcomes come later).
    pub(crate) fn shutdown_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u64>>, WaitError> {
        if self.on_own_worker() {
            return Err(WaitError::InsideWorker);
        }
        self.close();
        if self.wait_until(deadline, false) {
            return Ok(None);
        }
        let mut st = self.lock();
        if st.finished {
            return Ok(None);
        }
        // Read the running jobs before the cancel wakes them, so that a job
        // that returns at the cancel is still named.
        let mut running: Vec<u64> = st
            .slots
            .iter()
            .filter_map(|s| s.batch.as_ref().and_then(|b| b.lock().current))
            .collect();
        self.cancel_locked(&mut st);
        running.sort_unstable();
        Ok(Some(running))
    }

    /// Sleeps until `until`; false if the pool was cancelled (or, with
    /// `or_finished`, finished) first. Both flags are set before the alarm
    /// rings, and read here under the alarm lock: no wake-up is lost.
    pub(crate) fn sleep_until(&self, until: Instant, or_finished: bool) -> bool {
        let mut g = sync::lock(&self.alarm);
        loop {
            if self.cancel_flag.load(Ordering::SeqCst)
                || (or_finished && self.finished_flag.load(Ordering::SeqCst))
            {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            g = sync::wait_timeout(&self.alarm_cv, g, until - now);
        }
    }

    /// Waits for the rate limiter's next slot; false if cancelled first.
    pub(crate) fn rate_wait(&self, interval: Duration) -> bool {
        let at = {
            let mut next = sync::lock(&self.rate_next);
            let now = Instant::now();
            let at = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            // Cannot overflow: the interval is at most a century.
            *next = Some(at.checked_add(interval).unwrap_or(at));
            at
        };
        self.sleep_until(at, false)
    }

    /// The results half takes the outcomes delivered so far into `into`,
    /// waiting until there are some or the pool is finished (or the deadline
    /// passes). Returns false when there will be no more.
    pub(crate) fn refill(
        &self,
        into: &mut VecDeque<Outcome<J, T, E>>,
        floor: Option<u64>,
        deadline: Option<Instant>,
    ) -> Result<bool, Option<Panic>> {
        let mut st = self.lock();
        st.reader = Some(sync::thread::current().id());
        if let Some(f) = floor {
            if st.floor != f {
                st.floor = f;
                self.wake_senders(&mut st);
            }
        }
        loop {
            if !st.results.is_empty() {
                std::mem::swap(&mut st.results, into);
                self.wake_senders(&mut st);
                return Ok(true);
            }
            if st.finished {
                return match st.producer_panic.take() {
                    Some(p) => Err(Some(p)),
                    None => Ok(false),
                };
            }
            if self.on_own_worker() {
                // The pool cannot finish while this job runs: waiting would never end.
                return Err(None);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(true);
            }
            st.ready.enter();
            st.wait(&self.ready, deadline);
            st.ready.leave();
        }
    }

    /// The results half is gone: outcomes from now on are dropped.
    pub(crate) fn close_results(&self) {
        let mut st = self.lock();
        st.results_open = false;
        st.reader = None;
        let unread = std::mem::take(&mut st.results);
        st.garbage.extend(unread);
        st.space.wake_all(&self.space);
    }

    pub(crate) fn is_finished(&self) -> bool {
        let st = self.lock();
        st.finished && st.threads == 0
    }

    pub(crate) fn stats(&self) -> Stats {
        let st = self.lock();
        let batched: usize = st
            .slots
            .iter()
            .filter_map(|s| s.batch.as_ref().map(|b| b.lock().jobs.len()))
            .sum();
        let c = &st.counters;
        Stats {
            submitted: c.submitted,
            queued: (st.queue.len() + batched) as u64,
            running: (st.taken - batched) as u64,
            succeeded: c.succeeded,
            failed: c.failed,
            panicked: c.panicked,
            timed_out: c.timed_out,
            cancelled: c.cancelled,
            retried: c.retried,
            workers: st.live,
            target_workers: st.target,
            queue_wait: st.wait_hist.percentiles(),
            run_time: st.run_hist.percentiles(),
        }
    }

    /// Adds a follow-up job: past the bounds, refused only once cancelled.
    pub(crate) fn follow_up(&self, job: J) -> Result<u64, J> {
        let mut st = self.lock();
        if st.cancelled {
            return Err(job);
        }
        let enqueued = self.stamp();
        let seq = Self::push(&mut st, job, enqueued);
        st.work.wake(&self.work, 1);
        Ok(seq)
    }
}

impl<J, T, E> Drop for Shared<J, T, E> {
    fn drop(&mut self) {
        // Whatever user values are left (jobs, outcomes, the worker function
        // and its captures) are dropped in guards, without the lock.
        let (queue, results, garbage) = {
            let mut st = sync::lock(&self.state);
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.results),
                std::mem::take(&mut st.garbage),
            )
        };
        drop_each_quietly(queue.into_iter().map(|e| e.job));
        drop_each_quietly(results);
        drop_each_quietly(garbage);
        drop_quietly(self.spawn_worker.take());
    }
}

impl<J: Send, T: Send, E: Send> JobOps<J> for Shared<J, T, E> {
    fn follow_up(&self, job: J) -> Result<u64, J> {
        Shared::follow_up(self, job)
    }

    fn is_cancelled(&self) -> bool {
        Shared::is_cancelled(self)
    }

    fn sleep_until(&self, until: Instant) -> bool {
        Shared::sleep_until(self, until, false)
    }
}
