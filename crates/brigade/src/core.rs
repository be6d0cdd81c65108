//! The shared core: the queue, the outcomes waiting to be read, the counters,
//! and the shutdown protocol, all under one lock.
//!
//! See `DESIGN-NOTES.md` beside this file for why one lock, and how it is
//! kept off the per-job path (batches).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::builder::{BoxError, Config, RetryIf};
use crate::clock;
use crate::context::{Context, JobOps};
use crate::error::{BuildError, SendError, WaitError};
use crate::outcome::{Failure, Outcome};
use crate::pool::{Control, Pool};
use crate::stats::{Histogram, Stats};
use crate::sync::{self, Arc, AtomicBool, Condvar, Mutex, MutexGuard, Ordering};
use crate::worker;
use crate::{Halves, Jobs, Results};

/// A job on its way through the queue.
pub(crate) struct Envelope<J> {
    pub(crate) seq: u64,
    pub(crate) job: J,
    /// Clock ticks at acceptance (0 with statistics off).
    pub(crate) enqueued: u64,
}

/// How a send waits for room.
#[derive(Clone, Copy)]
pub(crate) enum SendMode {
    Block,
    Try,
    Until(Instant),
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) panicked: u64,
    pub(crate) timed_out: u64,
    pub(crate) cancelled: u64,
    pub(crate) retried: u64,
}

/// Everything behind the lock.
pub(crate) struct State<J, T, E> {
    pub(crate) queue: VecDeque<Envelope<J>>,
    pub(crate) results: VecDeque<Outcome<J, T, E>>,
    /// The results half is alive; when it is gone, outcomes are dropped.
    pub(crate) results_open: bool,
    /// Live `Jobs` handles; the last one dropped closes the pool.
    pub(crate) senders: usize,
    /// No more jobs from producers (follow-ups still allowed until cancelled).
    pub(crate) closed: bool,
    /// No more starts; queued jobs were handed back as cancelled.
    pub(crate) cancelled: bool,
    /// Closed, nothing queued, nothing running: every outcome is delivered.
    pub(crate) finished: bool,
    pub(crate) next_seq: u64,
    /// Jobs taken from the queue whose outcomes are not yet delivered.
    pub(crate) running: usize,
    /// Workers the pool is sized to.
    pub(crate) target: usize,
    /// Which worker slots have a worker that has not decided to leave.
    pub(crate) slots: Vec<bool>,
    /// Worker threads that have not yet ended (their state dropped).
    pub(crate) threads: usize,
    pub(crate) handles: Vec<sync::thread::JoinHandle<()>>,
    pub(crate) inits_done: usize,
    pub(crate) init_error: Option<(usize, String)>,
    /// `build` is waiting for the first workers' states.
    pub(crate) building: bool,
    /// The panic message of `Builder::run`'s iterator, raised by the results half at its end.
    pub(crate) producer_panic: Option<String>,
    /// Ordered mode: every outcome with a lower seq was read.
    pub(crate) floor: u64,
    // Threads waiting on each condition, so nobody pays a wake-up no one needs.
    pub(crate) idle: usize,
    pub(crate) space_waiters: usize,
    pub(crate) ready_waiters: usize,
    // Wake-ups already sent and not yet taken up by the woken thread: a thread
    // stays counted as waiting until it gets the lock back, and notifying it
    // again would cost a futex syscall per job for nothing.
    pub(crate) work_woken: usize,
    pub(crate) ready_woken: bool,
    pub(crate) space_woken: bool,
    pub(crate) done_waiters: usize,
    pub(crate) counters: Counters,
    pub(crate) wait_hist: Histogram,
    pub(crate) run_hist: Histogram,
}

/// The state one pool's handles and workers share.
pub(crate) struct Shared<J, T, E> {
    pub(crate) state: Mutex<State<J, T, E>>,
    /// Workers wait here for jobs.
    pub(crate) work: Condvar,
    /// Senders wait here for room.
    pub(crate) space: Condvar,
    /// The results half waits here for outcomes.
    pub(crate) ready: Condvar,
    /// `wait` and `build` wait here.
    pub(crate) done: Condvar,
    /// Set once by cancel; read by running jobs without the lock.
    pub(crate) cancel_flag: AtomicBool,
    /// Cancellable sleeps (backoff, rate limit, `Context::sleep`) wait here.
    alarm: Mutex<()>,
    alarm_cv: Condvar,
    /// Rate limit: when the next job may start.
    rate_next: Mutex<Option<Instant>>,
    pub(crate) cfg: Config,
    pub(crate) retry_if: Option<RetryIf<E>>,
    spawn_worker: SpawnFn<J, T, E>,
}

type SpawnFn<J, T, E> = Box<
    dyn Fn(&Arc<Shared<J, T, E>>, usize) -> std::io::Result<sync::thread::JoinHandle<()>>
        + Send
        + Sync,
>;

sync::thread_local! {
    /// The pool (by address) whose worker this thread is, or 0.
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Shared<J, T, E> {
    /// Starts a crew and returns its two halves once every worker has built its state.
    pub(crate) fn start<S: 'static, F>(
        cfg: Config,
        retry_if: Option<RetryIf<E>>,
        init: std::sync::Arc<dyn Fn(usize) -> Result<S, BoxError> + Send + Sync>,
        f: F,
    ) -> Result<Halves<J, T, E>, BuildError>
    where
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E> + Send + Sync + 'static,
    {
        let code = std::sync::Arc::new(worker::Code { init, f });
        let name = cfg.name.clone();
        let spawn_worker: SpawnFn<J, T, E> = Box::new(move |shared, idx| {
            let shared = Arc::clone(shared);
            let code = std::sync::Arc::clone(&code);
            sync::spawn_named(format!("{name}-{idx}"), move || {
                WORKER_OF.with(|w| w.set(shared.id()));
                worker::run(&shared, &code, idx);
            })
        });
        let n = cfg.workers;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(cfg.queue.min(4096)),
                results: VecDeque::new(),
                results_open: true,
                senders: 1,
                closed: false,
                cancelled: false,
                finished: false,
                next_seq: 0,
                running: 0,
                target: n,
                slots: vec![false; n],
                threads: 0,
                handles: Vec::with_capacity(n),
                inits_done: 0,
                init_error: None,
                building: true,
                producer_panic: None,
                floor: 0,
                idle: 0,
                space_waiters: 0,
                ready_waiters: 0,
                work_woken: 0,
                ready_woken: false,
                space_woken: false,
                done_waiters: 0,
                counters: Counters::default(),
                wait_hist: Histogram::new(),
                run_hist: Histogram::new(),
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            ready: Condvar::new(),
            done: Condvar::new(),
            cancel_flag: AtomicBool::new(false),
            alarm: Mutex::new(()),
            alarm_cv: Condvar::new(),
            rate_next: Mutex::new(None),
            cfg,
            retry_if,
            spawn_worker,
        });
        let mut spawn_error = None;
        {
            let mut st = sync::lock(&shared.state);
            for idx in 0..n {
                match (shared.spawn_worker)(&shared, idx) {
                    Ok(h) => {
                        st.slots[idx] = true;
                        st.threads += 1;
                        st.handles.push(h);
                    }
                    Err(e) => {
                        spawn_error = Some(BuildError::Spawn(e.to_string()));
                        break;
                    }
                }
            }
            // Wait until every started worker has tried to build its state.
            while spawn_error.is_none() && st.inits_done < n {
                st.done_waiters += 1;
                st = sync::wait(&shared.done, st);
                st.done_waiters -= 1;
            }
            st.building = false;
            if spawn_error.is_none() {
                if let Some((worker, message)) = st.init_error.take() {
                    spawn_error = Some(BuildError::Init { worker, message });
                }
            }
        }
        if let Some(e) = spawn_error {
            shared.cancel();
            shared.close();
            let _ = shared.wait(None);
            return Err(e);
        }
        let jobs = Jobs::new(shared.clone());
        let results = Results::new(shared);
        Ok((jobs, results))
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

    fn has_room(&self, st: &State<J, T, E>) -> bool {
        if st.queue.len() >= self.cfg.queue {
            return false;
        }
        if !st.results_open {
            return true;
        }
        if st.results.len() >= self.cfg.results {
            return false;
        }
        match self.cfg.window {
            Some(w) => st.next_seq < st.floor + w as u64,
            None => true,
        }
    }

    /// Accepts a job into the queue; the caller holds the lock, has checked
    /// the rules, and wakes a worker afterwards (see [`Self::wake_workers`]).
    fn push(&self, st: &mut State<J, T, E>, job: J, enqueued: u64) -> u64 {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.counters.submitted += 1;
        st.queue.push_back(Envelope { seq, job, enqueued });
        seq
    }

    /// Wakes up to `n` idle workers for newly queued jobs, counting only
    /// workers not already woken.
    fn wake_workers(&self, st: &mut State<J, T, E>, n: usize) {
        let sleeping = st.idle.saturating_sub(st.work_woken);
        let m = n.min(sleeping);
        if m == 0 {
            return;
        }
        st.work_woken += m;
        if m >= st.idle {
            self.work.notify_all();
        } else {
            for _ in 0..m {
                self.work.notify_one();
            }
        }
    }

    /// Wakes the results half if it waits and was not woken already.
    pub(crate) fn wake_reader(&self, st: &mut State<J, T, E>) {
        if st.ready_waiters > 0 && !st.ready_woken {
            st.ready_woken = true;
            self.ready.notify_one();
        }
    }

    /// Wakes blocked senders once there is room, if they were not woken already.
    pub(crate) fn wake_senders(&self, st: &mut State<J, T, E>) {
        if st.space_waiters > 0 && !st.space_woken && self.has_room(st) {
            st.space_woken = true;
            self.space.notify_all();
        }
    }

    /// Waits on `cv` as a blocked sender; returns the guard.
    fn wait_for_space<'a>(
        &self,
        st: MutexGuard<'a, State<J, T, E>>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State<J, T, E>> {
        let mut st = st;
        st.space_waiters += 1;
        // A wake-up sent before this sender came does not reach it: let the
        // next room event send one again.
        st.space_woken = false;
        st = match deadline {
            None => sync::wait(&self.space, st),
            Some(d) => {
                sync::wait_timeout(&self.space, st, d.saturating_duration_since(Instant::now()))
            }
        };
        st.space_waiters -= 1;
        st.space_woken = false;
        st
    }

    fn stamp(&self) -> u64 {
        if self.cfg.stats {
            clock::ticks()
        } else {
            0
        }
    }

    /// Sends every job of `batch` in as few trips to the lock as the room
    /// allows, waiting for room; one clock reading per trip. Returns false
    /// if the pool closed or its results half was dropped (the jobs left in
    /// `batch` were not accepted): this feeds `Builder::run`, where nobody
    /// else could read the outcomes of more jobs.
    pub(crate) fn send_batch(&self, batch: &mut VecDeque<J>) -> bool {
        let mut enqueued = self.stamp();
        let mut st = sync::lock(&self.state);
        loop {
            if st.closed || !st.results_open {
                return false;
            }
            let mut pushed = 0;
            while self.has_room(&st) {
                let Some(job) = batch.pop_front() else { break };
                self.push(&mut st, job, enqueued);
                pushed += 1;
            }
            self.wake_workers(&mut st, pushed);
            if batch.is_empty() {
                return true;
            }
            st = self.wait_for_space(st, None);
            enqueued = self.stamp();
        }
    }

    pub(crate) fn send(&self, job: J, mode: SendMode) -> Result<u64, SendError<J>> {
        // Read the clock before taking the lock, to keep the critical section short.
        let enqueued = self.stamp();
        // A job sending on its own pool's jobs half could wait for room only
        // its own crew can make: it goes past the bounds, like a follow-up.
        let own_worker = self.on_own_worker();
        let mut st = sync::lock(&self.state);
        loop {
            if st.closed {
                return Err(SendError::Closed(job));
            }
            if own_worker || self.has_room(&st) {
                let seq = self.push(&mut st, job, enqueued);
                self.wake_workers(&mut st, 1);
                return Ok(seq);
            }
            st = match mode {
                SendMode::Try => return Err(SendError::Full(job)),
                SendMode::Block => self.wait_for_space(st, None),
                SendMode::Until(deadline) => {
                    if Instant::now() >= deadline {
                        return Err(SendError::Timeout(job));
                    }
                    self.wait_for_space(st, Some(deadline))
                }
            };
        }
    }

    pub(crate) fn add_sender(&self) {
        sync::lock(&self.state).senders += 1;
    }

    pub(crate) fn drop_sender(&self) {
        let mut st = sync::lock(&self.state);
        st.senders -= 1;
        if st.senders == 0 {
            self.close_locked(&mut st);
        }
    }

    fn close_locked(&self, st: &mut State<J, T, E>) {
        if st.closed {
            return;
        }
        st.closed = true;
        if st.space_waiters > 0 {
            self.space.notify_all();
        }
        self.check_finished(st);
    }

    fn cancel_locked(&self, st: &mut State<J, T, E>) {
        if st.cancelled {
            return;
        }
        st.cancelled = true;
        self.cancel_flag.store(true, Ordering::SeqCst);
        let queued: Vec<Envelope<J>> = st.queue.drain(..).collect();
        st.counters.cancelled += queued.len() as u64;
        for env in queued {
            let o = Outcome {
                seq: env.seq,
                job: env.job,
                worker: None,
                attempts: 0,
                queue_wait: Duration::ZERO,
                run_time: Duration::ZERO,
                result: Err(Failure::Cancelled),
            };
            if st.results_open {
                st.results.push_back(o);
            }
        }
        self.wake_reader(st);
        // Already closed or not, the queue just emptied: the pool may be finished now.
        self.close_locked(st);
        self.check_finished(st);
        if st.idle > 0 {
            self.work.notify_all();
        }
        // Wake the cancellable sleeps (backoff, rate limit, Context::sleep),
        // whichever path cancelled (cancel, fail-fast at delivery).
        self.ring_alarm();
    }

    /// Wakes cancellable sleeps. Lock order: the state lock, then the alarm
    /// lock; a sleeper holds only the alarm lock, never the state lock.
    fn ring_alarm(&self) {
        let _g = sync::lock(&self.alarm);
        self.alarm_cv.notify_all();
    }

    /// Marks the pool finished once it is closed and nothing is queued or running.
    fn check_finished(&self, st: &mut State<J, T, E>) {
        if st.finished || !st.closed || !st.queue.is_empty() || st.running > 0 {
            return;
        }
        st.finished = true;
        self.work.notify_all();
        self.ready.notify_all();
        self.space.notify_all();
        self.done.notify_all();
    }

    /// Records and hands over a worker's finished outcomes.
    pub(crate) fn deliver(
        &self,
        st: &mut State<J, T, E>,
        outs: &mut Vec<Outcome<J, T, E>>,
        retried: u64,
    ) {
        st.counters.retried += retried;
        st.running -= outs.len();
        let mut first_failure = false;
        for o in outs.drain(..) {
            let c = &mut st.counters;
            match &o.result {
                Ok(_) => c.succeeded += 1,
                Err(Failure::Error(_) | Failure::Init(_)) => c.failed += 1,
                Err(Failure::Panicked(_)) => c.panicked += 1,
                Err(Failure::TimedOut) => c.timed_out += 1,
                Err(Failure::Cancelled) => c.cancelled += 1,
            }
            if !matches!(o.result, Ok(_) | Err(Failure::Cancelled)) {
                first_failure = true;
            }
            if self.cfg.stats && o.attempts > 0 {
                st.wait_hist.record(o.queue_wait);
                st.run_hist.record(o.run_time);
            }
            if st.results_open {
                st.results.push_back(o);
            }
        }
        if first_failure && self.cfg.fail_fast && !st.cancelled {
            self.cancel_locked(st);
        }
        // Delivering never makes room for senders (the outcomes now wait to be
        // read), so only the reader needs waking.
        self.wake_reader(st);
        self.check_finished(st);
    }

    pub(crate) fn close(&self) {
        let mut st = sync::lock(&self.state);
        self.close_locked(&mut st);
    }

    pub(crate) fn cancel(&self) {
        let mut st = sync::lock(&self.state);
        self.cancel_locked(&mut st);
    }

    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        if self.on_own_worker() {
            return Err(WaitError::InsideWorker);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = sync::lock(&self.state);
        while !(st.finished && st.threads == 0) {
            st.done_waiters += 1;
            st = match deadline {
                None => sync::wait(&self.done, st),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        st.done_waiters -= 1;
                        return Err(WaitError::Timeout);
                    }
                    sync::wait_timeout(&self.done, st, d - now)
                }
            };
            st.done_waiters -= 1;
        }
        let handles = std::mem::take(&mut st.handles);
        drop(st);
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    }

    /// Sleeps until `until`; false if the pool was cancelled first.
    pub(crate) fn sleep_until(&self, until: Instant) -> bool {
        let mut g = sync::lock(&self.alarm);
        loop {
            if self.cancel_flag.load(Ordering::SeqCst) {
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
            *next = at.checked_add(interval);
            at
        };
        self.sleep_until(at)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<J, T, E>> {
        sync::lock(&self.state)
    }
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Shared<J, T, E> {
    pub(crate) fn pool(self: &Arc<Self>) -> Pool {
        Pool::new(self.clone())
    }

    fn resize_to(self: &Arc<Self>, n: usize) -> Result<(), BuildError> {
        if n == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        let mut st = sync::lock(&self.state);
        st.target = n;
        if st.slots.len() < n {
            st.slots.resize(n, false);
        }
        let mut result = Ok(());
        if !st.finished {
            for idx in 0..n {
                if st.slots[idx] {
                    continue;
                }
                match (self.spawn_worker)(self, idx) {
                    Ok(h) => {
                        st.slots[idx] = true;
                        st.threads += 1;
                        st.handles.push(h);
                    }
                    Err(e) => {
                        result = Err(BuildError::Spawn(e.to_string()));
                        break;
                    }
                }
            }
        }
        // Workers above the new size leave when they next look for work.
        self.work.notify_all();
        result
    }
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Control for Shared<J, T, E> {
    fn close(&self) {
        Shared::close(self)
    }
    fn cancel(&self) {
        Shared::cancel(self)
    }
    fn wait(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        Shared::wait(self, timeout)
    }
    fn resize(self: Arc<Self>, n: usize) -> Result<(), BuildError> {
        self.resize_to(n)
    }
    fn is_finished(&self) -> bool {
        let st = sync::lock(&self.state);
        st.finished && st.threads == 0
    }
    fn stats(&self) -> Stats {
        let st = sync::lock(&self.state);
        let c = &st.counters;
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
            workers: st.target,
            queue_wait: st.wait_hist.percentiles(),
            run_time: st.run_hist.percentiles(),
        }
    }
}

impl<J: Send, T: Send, E: Send> JobOps<J> for Shared<J, T, E> {
    fn follow_up(&self, job: J) -> Result<u64, J> {
        let mut st = sync::lock(&self.state);
        if st.cancelled {
            return Err(job);
        }
        let seq = self.push(&mut st, job, self.stamp());
        self.wake_workers(&mut st, 1);
        Ok(seq)
    }

    fn is_cancelled(&self) -> bool {
        self.cancel_flag.load(Ordering::Relaxed)
    }

    fn sleep_until(&self, until: Instant) -> bool {
        Shared::sleep_until(self, until)
    }
}
