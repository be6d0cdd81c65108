//! The worker loop: take a batch, run each job with panics contained,
//! retries, timeout and rate limit applied, hand the outcomes back.
//!
//! Every call into user code (the initialiser, the worker function, the
//! retry predicate, the `Drop` of a state, a value, an error or a panic
//! payload) runs inside a guard of `guard.rs`. If the thread unwinds through
//! the pool's own code anyway, [`Settle`] gives the books back to the pool
//! and another worker takes the slot.

use std::time::{Duration, Instant};

use crate::clock;
use crate::config::{BoxError, Config};
use crate::context::Context;
use crate::error::InitError;
use crate::guard::{catch, drop_quietly};
use crate::outcome::{Failure, Outcome};
use crate::shared::{BatchRef, Envelope, Shared};
use crate::sync::Arc;

/// Jobs faster than this on average are taken in batches; slower ones one at
/// a time, so that their outcomes are delivered as soon as each is ready.
const FAST_JOB: Duration = Duration::from_micros(20);
/// A worker whose state cannot be rebuilt pauses this long after failing a
/// job, doubling up to [`MAX_INIT_PAUSE`], so that it does not fail the
/// whole queue while healthy workers could run it.
const FIRST_INIT_PAUSE: Duration = Duration::from_millis(10);
const MAX_INIT_PAUSE: Duration = Duration::from_secs(1);

/// What every worker of one pool runs: the state initialiser and the worker function.
pub(crate) struct Code<S, F> {
    pub(crate) init: std::sync::Arc<dyn Fn(usize) -> Result<S, BoxError> + Send + Sync>,
    pub(crate) f: F,
}

fn build_state<S, F>(code: &Code<S, F>, idx: usize) -> Result<S, BoxError> {
    match catch(|| (code.init)(idx)) {
        Ok(r) => r,
        Err(p) => Err(format!("initialiser panicked: {p}").into()),
    }
}

/// Gives a worker's books back to the pool if its thread unwinds.
struct Settle<'a, J: Send + 'static, T: Send + 'static, E: Send + 'static> {
    shared: &'a Arc<Shared<J, T, E>>,
    idx: usize,
    batch: BatchRef<J>,
    outs: Vec<Outcome<J, T, E>>,
    inited: bool,
    settled: bool,
}

impl<J: Send + 'static, T: Send + 'static, E: Send + 'static> Drop for Settle<'_, J, T, E> {
    fn drop(&mut self) {
        if !self.settled {
            let outs = &mut self.outs;
            self.shared
                .worker_lost(self.idx, &self.batch, outs, self.inited);
        }
    }
}

/// One worker's private bookkeeping between trips to the lock.
struct Local<S> {
    idx: usize,
    state: Option<S>,
    retried: u64,
    /// Clock reading at the end of the previous job of this batch.
    carry: Option<u64>,
    rng: u64,
    /// How long to pause after failing a job because the state could not be rebuilt.
    init_pause: Duration,
    pause: Option<Duration>,
}

/// A worker thread's whole life.
pub(crate) fn run<J, T, E, S, F>(
    shared: &Arc<Shared<J, T, E>>,
    code: &Code<S, F>,
    idx: usize,
    batch: BatchRef<J>,
) where
    J: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E>,
{
    let mut books = Settle {
        shared,
        idx,
        batch,
        outs: Vec::new(),
        inited: false,
        settled: false,
    };
    let (state, error) = match build_state(code, idx) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    shared.init_done(idx, error);
    books.inited = true;
    let mut local = Local {
        idx,
        state,
        retried: 0,
        carry: None,
        rng: (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        init_pause: FIRST_INIT_PAUSE,
        pause: None,
    };
    let mut fast = false;
    let batching = |local: &Local<S>, fast: bool| fast && local.state.is_some();
    while shared.exchange(
        idx,
        &books.batch,
        &mut books.outs,
        local.retried,
        batching(&local, fast),
    ) {
        local.retried = 0;
        let t0 = clock::ticks();
        local.carry = shared.cfg.stats.then_some(t0);
        let mut n = 0u32;
        while let Some(env) = books.batch.next_job() {
            let o = local.run_job(shared, code, env);
            books.outs.push(o);
            n += 1;
        }
        let t1 = local.carry.unwrap_or_else(clock::ticks);
        fast = n > 0 && clock::between(t0, t1) < FAST_JOB * n;
        if let Some(pause) = local.pause.take() {
            // Hand the failure over now, then let healthy workers take the queue.
            shared.deliver_now(&mut books.outs, local.retried);
            local.retried = 0;
            shared.sleep_until(Instant::now() + pause, true);
        }
    }
    books.settled = true;
    // Drop the state (closing its connections) before the pool counts this worker gone.
    drop_quietly(local.state.take());
    shared.thread_ended();
}

impl<S> Local<S> {
    fn run_job<J, T, E, F>(
        &mut self,
        shared: &Shared<J, T, E>,
        code: &Code<S, F>,
        env: Envelope<J>,
    ) -> Outcome<J, T, E>
    where
        J: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E>,
    {
        let Envelope { seq, job, enqueued } = env;
        let cfg = &shared.cfg;
        let mut out = Outcome::new(seq, job, Err(Failure::Cancelled));
        if shared.is_cancelled() {
            return out;
        }
        if let Some(interval) = cfg.rate_interval {
            self.carry = None;
            if !shared.rate_wait(interval) {
                return out;
            }
        }
        out.worker = Some(self.idx);
        if self.state.is_none() {
            self.carry = None;
            match build_state(code, self.idx) {
                Ok(s) => {
                    self.state = Some(s);
                    self.init_pause = FIRST_INIT_PAUSE;
                }
                Err(e) => {
                    out.result = Err(Failure::Init(InitError::new(self.idx, e)));
                    self.pause = Some(self.init_pause);
                    self.init_pause = (self.init_pause * 2).min(MAX_INIT_PAUSE);
                    return out;
                }
            }
        }
        let mut start = if cfg.stats {
            self.carry.take().unwrap_or_else(clock::ticks)
        } else {
            0
        };
        if cfg.stats {
            out.queue_wait = clock::between(enqueued, start);
        }
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            // A timeout too large to add to the clock is no timeout.
            let deadline = cfg.timeout.and_then(|t| Instant::now().checked_add(t));
            let ctx = Context {
                worker: self.idx,
                seq,
                attempt,
                deadline,
                ops: shared,
            };
            let state = self
                .state
                .as_mut()
                .expect("state is built before each attempt");
            let r = catch(|| (code.f)(state, &out.job, &ctx));
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if cfg.stats {
                let end = clock::ticks();
                out.run_time += clock::between(start, end);
                self.carry = Some(end);
            }
            match r {
                Ok(late) if expired => {
                    drop_quietly(late);
                    break Err(Failure::TimedOut);
                }
                Ok(Ok(v)) => break Ok(v),
                Ok(Err(e)) => match self.retry_wait(shared, cfg, attempt, &e) {
                    Retry::No => break Err(Failure::Error(e)),
                    Retry::Panicked(p) => {
                        drop_quietly(e);
                        break Err(Failure::Panicked(p));
                    }
                    Retry::After(until) => {
                        if !shared.sleep_until(until, false) {
                            // Cancelled during the backoff: the last error is the outcome.
                            break Err(Failure::Error(e));
                        }
                        drop_quietly(e);
                        self.retried += 1;
                        self.carry = None;
                        if cfg.stats {
                            start = clock::ticks();
                        }
                    }
                },
                Err(panic) => {
                    // The state may be half-updated: drop it and build a fresh one next time.
                    drop_quietly(self.state.take());
                    break Err(Failure::Panicked(panic));
                }
            }
        };
        out.attempts = attempt;
        out.result = result;
        if cfg.fail_fast && !matches!(out.result, Ok(_) | Err(Failure::Cancelled)) {
            // Stop the rest of the batches and the queue now, not at delivery.
            shared.cancel();
        }
        out
    }

    /// Whether the error `e` of attempt number `attempt` is retried, and when.
    fn retry_wait<J, T, E>(
        &mut self,
        shared: &Shared<J, T, E>,
        cfg: &Config,
        attempt: u32,
        e: &E,
    ) -> Retry {
        if attempt > cfg.retries || shared.is_cancelled() {
            return Retry::No;
        }
        // The predicate is user code too: a panic in it is this job's outcome.
        if let Some(p) = &shared.retry_if {
            match catch(|| p(e)) {
                Ok(true) => {}
                Ok(false) => return Retry::No,
                Err(panic) => return Retry::Panicked(panic),
            }
        }
        // A backoff too large to add to the clock means no retry.
        match Instant::now().checked_add(self.backoff(cfg, attempt)) {
            Some(until) => Retry::After(until),
            None => Retry::No,
        }
    }

    /// The wait before retry number `attempt`: exponential, capped, jittered into its upper half.
    fn backoff(&mut self, cfg: &Config, attempt: u32) -> Duration {
        let exp = cfg
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(20));
        let full = exp.min(cfg.backoff_max);
        // xorshift64: cheap, and good enough to spread retries apart.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        full / 2 + full.mul_f64(frac / 2.0)
    }
}

enum Retry {
    No,
    Panicked(crate::outcome::Panic),
    After(Instant),
}
