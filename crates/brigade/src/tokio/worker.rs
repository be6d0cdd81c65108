//! One worker: a tokio task that takes a job, runs its future against the pool's
//! cancellation and the job's deadline, retries it, and files its outcome.
//!
//! Everything a worker owes the pool is settled by its [`Seat`]'s `Drop`: the job in its
//! hands gets its outcome (cancelled) even when the runtime drops the task mid-job, and
//! the last worker to go cancels what is still queued, so no job is ever lost and no
//! reader or sender waits for ever.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::builder::{JobFuture, RetryIf};
use super::context::{CancelInner, Context};
use super::error;
use super::shared::{drop_contained, After, Queued, Shared, State};
use crate::clock;
use crate::{BoxError, Failure};

pub(crate) type InitFn<S> =
    Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = Result<S, BoxError>> + Send>> + Send + Sync>;

/// What every worker of one pool runs.
pub(crate) struct Code<S, F, E> {
    pub(crate) init: InitFn<S>,
    pub(crate) f: F,
    pub(crate) retry_if: Option<RetryIf<E>>,
}

/// A worker's place in the pool, settled in `Drop` whatever ends the worker.
pub(crate) struct Seat<J: Send, T: Send, E: Send> {
    shared: Arc<Shared<J, T, E>>,
    id: usize,
    /// Whether this worker still owes `build` the result of its first initialisation.
    first: bool,
    /// Whether this worker is counted in `idle`.
    idle: bool,
    /// The job taken from the queue whose outcome is not filed yet.
    in_hand: Option<Queued<J>>,
}

/// How one job ended, before it becomes an outcome.
struct Finished<T, E> {
    result: Result<T, Failure<E>>,
    attempts: u32,
    times: (Duration, Duration),
}

/// How one attempt ended.
enum Attempt<T, E> {
    Done(Result<T, E>),
    Panicked(Box<dyn Any + Send>),
    TimedOut,
    Cancelled,
}

impl<J: Send, T: Send, E: Send> Seat<J, T, E> {
    pub(crate) fn new(shared: Arc<Shared<J, T, E>>, id: usize, first: bool) -> Self {
        Seat {
            shared,
            id,
            first,
            idle: false,
            in_hand: None,
        }
    }

    fn report_init(&mut self, error: Option<String>) {
        if !self.first {
            return;
        }
        self.first = false;
        let mut st = self.shared.lock();
        st.inits_pending -= 1;
        if let Some(m) = error {
            if st.init_error.is_none() {
                st.init_error = Some((self.id, m));
            }
        }
        if st.inits_pending == 0 || st.init_error.is_some() {
            self.shared.done.notify_waiters();
        }
    }

    /// Files the outcome of the job in hand (if `done`), then waits for the next job and
    /// puts it in hand, in the same critical section when one is queued; `None` when the
    /// worker should exit. The inner option is the start the rate limit reserved for it.
    async fn next_job(&mut self, mut done: Option<Finished<T, E>>) -> Option<Option<Instant>> {
        /// What the critical section decided.
        enum Next {
            Exit,
            Run(Option<Instant>),
            Wait,
        }
        let shared = Arc::clone(&self.shared);
        loop {
            let mut woken = pin!(shared.work.notified());
            let mut after = None;
            let next = {
                let mut st = shared.lock();
                if let Some(fin) = done.take() {
                    after = self.file(&mut st, fin);
                }
                if self.idle {
                    st.idle -= 1;
                    self.idle = false;
                }
                if self.id >= st.target {
                    // Resized away.
                    Next::Exit
                } else if let Some(q) = st.queue.pop_front() {
                    st.running += 1;
                    shared.made_room(&st);
                    let start_at = shared.cfg.rate_interval.and_then(|every| {
                        let now = Instant::now();
                        let slot = st.next_start.map_or(now, |n| n.max(now));
                        st.next_start = slot.checked_add(every);
                        (slot > now).then_some(slot)
                    });
                    self.in_hand = Some(q);
                    Next::Run(start_at)
                } else if st.finished() {
                    Next::Exit
                } else {
                    woken.as_mut().enable();
                    st.idle += 1;
                    self.idle = true;
                    Next::Wait
                }
            };
            // Every path wakes the reader and drops unread outcomes outside the lock.
            if let Some(a) = after {
                a.run();
            }
            match next {
                Next::Exit => return None,
                Next::Run(start_at) => return Some(start_at),
                Next::Wait => woken.await,
            }
        }
    }

    /// Files the outcome of the job in hand, under the lock; what to do once it is released.
    fn file(&mut self, st: &mut State<J, T, E>, fin: Finished<T, E>) -> Option<After<J, T, E>> {
        let q = self.in_hand.take()?;
        let worker = (fin.attempts > 0).then_some(self.id);
        let out = error::outcome(q.seq, q.job, worker, fin.attempts, fin.times, fin.result);
        if fin.attempts > 0 {
            self.shared.record_times(st, fin.times);
        }
        Some(self.shared.deliver(st, out))
    }

    /// Files the outcome of the job in hand.
    fn finish(&mut self, fin: Finished<T, E>) {
        let shared = Arc::clone(&self.shared);
        let after = self.file(&mut shared.lock(), fin);
        if let Some(a) = after {
            a.run();
        }
    }
}

impl<J: Send, T: Send, E: Send> Drop for Seat<J, T, E> {
    fn drop(&mut self) {
        // A job still in hand: the task was dropped mid-job (the runtime shut down).
        self.finish(Finished {
            result: Err(Failure::Cancelled),
            attempts: 0,
            times: Default::default(),
        });
        if self.first {
            self.report_init(Some("the worker was dropped before it started".into()));
        }
        let mut after = After::default();
        {
            let shared = &self.shared;
            let mut st = shared.lock();
            if self.idle {
                st.idle -= 1;
            }
            if let Some(s) = st.slots.get_mut(self.id) {
                *s = false;
            }
            st.live -= 1;
            if st.live == 0 {
                if !st.finished() {
                    // No worker is left to run what is queued: the runtime is going away.
                    shared.cancel_locked(&mut st, &mut after);
                }
                shared.done.notify_waiters();
            }
        }
        after.run();
    }
}

/// A worker's whole life.
pub(crate) async fn work<J, T, E, S, F>(mut seat: Seat<J, T, E>, code: Arc<Code<S, F, E>>)
where
    J: Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
    S: Send + 'static,
    F: for<'a> Fn(&'a mut S, &'a J, &'a Context<J>) -> JobFuture<'a, T, E> + Send + Sync + 'static,
{
    let shared = Arc::clone(&seat.shared);
    let mut state = match init(&code, seat.id).await {
        Ok(s) => {
            seat.report_init(None);
            Some(s)
        }
        Err(m) => {
            seat.report_init(Some(m));
            None
        }
    };
    let mut ctx = Context {
        worker: seat.id,
        seq: 0,
        attempt: 0,
        deadline: None,
        cancel: Arc::clone(&shared.cancel),
        ops: shared.clone(),
    };
    let mut rng = (seat.id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut done = None;
    while let Some(start_at) = seat.next_job(done.take()).await {
        let Some(q) = seat.in_hand.as_ref() else {
            break;
        };
        done = Some(execute(&shared, &code, &mut state, &mut ctx, q, start_at, &mut rng).await);
    }
    if let Some(s) = state.take() {
        drop_contained(s);
    }
}

/// Builds a worker's state, containing a panicking initialiser.
async fn init<S, F, E>(code: &Code<S, F, E>, worker: usize) -> Result<S, String> {
    let fut = catch_unwind(AssertUnwindSafe(|| (code.init)(worker)))
        .map_err(|p| format!("initialiser panicked: {}", error::panic_text(&*p)))?;
    let mut fut = Contained(Some(fut));
    poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Ready(r)) => Poll::Ready(r.map_err(|e| e.to_string())),
        Ok(Poll::Pending) => Poll::Pending,
        Err(p) => Poll::Ready(Err(format!(
            "initialiser panicked: {}",
            error::panic_text(&*p)
        ))),
    })
    .await
}

/// Runs one job: the rate limit's wait, the state, the attempts and their retries.
async fn execute<J, T, E, S, F>(
    shared: &Shared<J, T, E>,
    code: &Code<S, F, E>,
    state: &mut Option<S>,
    ctx: &mut Context<J>,
    q: &Queued<J>,
    start_at: Option<Instant>,
    rng: &mut u64,
) -> Finished<T, E>
where
    J: Send,
    T: Send,
    E: Send,
    F: for<'a> Fn(&'a mut S, &'a J, &'a Context<J>) -> JobFuture<'a, T, E>,
{
    let not_started = |result| Finished {
        result,
        attempts: 0,
        times: Default::default(),
    };
    if let Some(at) = start_at {
        if !pause(&shared.cancel, at).await {
            return not_started(Err(Failure::Cancelled));
        }
    }
    if state.is_none() {
        match init(code, ctx.worker).await {
            Ok(s) => *state = Some(s),
            Err(m) => return not_started(Err(error::init_failed(ctx.worker, m))),
        }
    }
    let cfg = &shared.cfg;
    let t0 = if cfg.stats { clock::ticks() } else { 0 };
    let mut attempt = 0;
    let result = loop {
        let Some(st) = state.as_mut() else {
            break Err(error::init_failed(
                ctx.worker,
                "the worker has no state".into(),
            ));
        };
        attempt += 1;
        let deadline = cfg.timeout.and_then(|t| Instant::now().checked_add(t));
        ctx.seq = q.seq;
        ctx.attempt = attempt;
        ctx.deadline = deadline.map(Instant::into_std);
        match attempt_once(&shared.cancel, &code.f, st, &q.job, ctx, deadline).await {
            Attempt::Done(Ok(v)) => break Ok(v),
            Attempt::Done(Err(e)) => {
                if attempt <= cfg.retries && worth_retrying(code.retry_if.as_ref(), &e) {
                    shared.lock().counts.retried += 1;
                    let wait = backoff(cfg.backoff_base, cfg.backoff_max, attempt, rng);
                    let until = Instant::now().checked_add(wait);
                    if pause_for(&shared.cancel, until).await {
                        continue;
                    }
                }
                break Err(Failure::Error(e));
            }
            Attempt::Panicked(p) => {
                // The state may be half-updated: build it again before the next job.
                if let Some(s) = state.take() {
                    drop_contained(s);
                }
                break Err(error::panicked(p));
            }
            Attempt::TimedOut => break Err(Failure::TimedOut),
            Attempt::Cancelled => break Err(Failure::Cancelled),
        }
    };
    let times = if cfg.stats {
        (clock::between(q.at, t0), clock::between(t0, clock::ticks()))
    } else {
        Default::default()
    };
    Finished {
        result,
        attempts: attempt,
        times,
    }
}

fn worth_retrying<E>(p: Option<&RetryIf<E>>, e: &E) -> bool {
    match p {
        None => true,
        // A panicking predicate says no: the error stands.
        Some(p) => catch_unwind(AssertUnwindSafe(|| p(e))).unwrap_or(false),
    }
}

/// The wait before retry number `attempt`: exponential, capped, jittered into its upper half.
fn backoff(base: Duration, max: Duration, attempt: u32, rng: &mut u64) -> Duration {
    let exp = base
        .checked_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .unwrap_or(max)
        .min(max);
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let half = exp / 2;
    let frac = (*rng >> 11) as f64 / (1u64 << 53) as f64;
    half + half.mul_f64(frac)
}

/// Runs one attempt: the job's future against the pool's cancellation and the deadline.
/// The future is dropped at whichever comes first, and a panic in it (or in its `Drop`)
/// is contained.
async fn attempt_once<J, T, E, S, F>(
    cancel: &CancelInner,
    f: &F,
    state: &mut S,
    job: &J,
    ctx: &Context<J>,
    deadline: Option<Instant>,
) -> Attempt<T, E>
where
    F: for<'a> Fn(&'a mut S, &'a J, &'a Context<J>) -> JobFuture<'a, T, E>,
{
    // Not enabled: a cancel after this line still completes it (`notify_waiters` counts
    // from its creation), and a job done at its first poll never touches the list's lock.
    let mut cancelled = pin!(cancel.notified());
    if cancel.is_cancelled() {
        return Attempt::Cancelled;
    }
    let fut = match catch_unwind(AssertUnwindSafe(move || {
        let state = state; // moved in: the future may keep the borrow
        f(state, job, ctx)
    })) {
        Ok(fut) => fut,
        Err(p) => return Attempt::Panicked(p),
    };
    let mut fut = Contained(Some(fut));
    let mut sleep = None;
    let out = poll_fn(|cx| {
        if cancel.is_cancelled() {
            return Poll::Ready(Attempt::Cancelled);
        }
        let polled = catch_unwind(AssertUnwindSafe(|| {
            if let Poll::Ready(r) = fut.poll(cx) {
                return Poll::Ready(Attempt::Done(r));
            }
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Attempt::Cancelled);
            }
            if let Some(d) = deadline {
                // Made on first use (a panic here, timers disabled, is contained too).
                let s = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(d)));
                if s.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Attempt::TimedOut);
                }
            }
            Poll::Pending
        }));
        polled.unwrap_or_else(|p| Poll::Ready(Attempt::Panicked(p)))
    })
    .await;
    drop(fut);
    out
}

/// Waits until `at`; false if the pool was cancelled first.
async fn pause(cancel: &CancelInner, at: Instant) -> bool {
    pause_for(cancel, Some(at)).await
}

/// Waits until `at` (for ever if `None`); false if the pool was cancelled first. Without a
/// time driver it does not wait at all.
async fn pause_for(cancel: &CancelInner, at: Option<Instant>) -> bool {
    let mut cancelled = pin!(cancel.notified());
    cancelled.as_mut().enable();
    if cancel.is_cancelled() {
        return false;
    }
    let mut sleep = match at {
        None => None,
        Some(at) => match catch_unwind(|| Box::pin(tokio::time::sleep_until(at))) {
            Ok(s) => Some(s),
            Err(_) => return true,
        },
    };
    poll_fn(|cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        match sleep.as_mut() {
            Some(s) => match catch_unwind(AssertUnwindSafe(|| s.as_mut().poll(cx))) {
                Ok(Poll::Pending) => Poll::Pending,
                _ => Poll::Ready(true),
            },
            None => Poll::Pending,
        }
    })
    .await
}

/// A user future whose `Drop` may panic: dropped inside a guard.
struct Contained<F>(Option<F>);

impl<F: Future + Unpin> Contained<F> {
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        match self.0.as_mut() {
            Some(f) => Pin::new(f).poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<F> Drop for Contained<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            drop_contained(f);
        }
    }
}
