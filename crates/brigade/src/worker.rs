//! The worker loop: take a batch, run each job with panics contained,
//! retries, timeout and rate limit applied, hand the outcomes back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::builder::BoxError;
use crate::clock;
use crate::context::Context;
use crate::core::{Envelope, Shared};
use crate::outcome::{panic_message, Failure, Outcome};
use crate::sync::{self, Arc, Ordering};

/// The most jobs a worker takes from the queue at once.
const MAX_BATCH: usize = 32;
/// Jobs faster than this on average are taken in batches; slower ones one at a time,
/// so that outcomes are delivered as soon as each is ready and no worker hoards work.
const FAST_JOB: Duration = Duration::from_micros(20);

/// What every worker of one pool runs: the state initialiser and the worker function.
pub(crate) struct Code<S, F> {
    pub(crate) init: std::sync::Arc<dyn Fn(usize) -> Result<S, BoxError> + Send + Sync>,
    pub(crate) f: F,
}

fn build_state<S, F>(code: &Code<S, F>, idx: usize) -> Result<S, String> {
    match catch_unwind(AssertUnwindSafe(|| (code.init)(idx))) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("initialiser panicked: {}", panic_message(&*p))),
    }
}

/// One worker's private bookkeeping between trips to the lock.
struct Local<J, T, E, S> {
    idx: usize,
    state: Option<S>,
    outs: Vec<Outcome<J, T, E>>,
    retried: u64,
    /// Clock reading at the end of the previous job of this batch.
    carry: Option<u64>,
    rng: u64,
}

/// A worker thread's whole life.
pub(crate) fn run<J, T, E, S, F>(shared: &Arc<Shared<J, T, E>>, code: &Code<S, F>, idx: usize)
where
    J: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E>,
{
    let first = build_state(code, idx);
    {
        let mut st = shared.lock();
        st.inits_done += 1;
        if let Err(m) = &first {
            if st.building && st.init_error.is_none() {
                st.init_error = Some((idx, m.clone()));
            }
        }
        if st.done_waiters > 0 {
            shared.done.notify_all();
        }
    }
    let mut local = Local {
        idx,
        state: first.ok(),
        outs: Vec::new(),
        retried: 0,
        carry: None,
        rng: (idx as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
    };
    let mut batch: Vec<Envelope<J>> = Vec::new();
    let mut fast = false;
    let mut st = shared.lock();
    loop {
        if !local.outs.is_empty() {
            shared.deliver(&mut st, &mut local.outs, local.retried);
            local.retried = 0;
        }
        if idx >= st.target || st.finished {
            st.slots[idx] = false;
            break;
        }
        if !st.queue.is_empty() {
            let k = if fast {
                (st.queue.len() / st.target).clamp(1, MAX_BATCH)
            } else {
                1
            };
            batch.extend(st.queue.drain(..k));
            st.running += k;
            shared.wake_senders(&mut st);
            drop(st);
            let t0 = clock::ticks();
            local.carry = shared.cfg.stats.then_some(t0);
            for env in batch.drain(..) {
                let o = local.run_job(shared, code, env);
                local.outs.push(o);
            }
            let t1 = local.carry.unwrap_or_else(clock::ticks);
            fast = clock::between(t0, t1) < FAST_JOB * k as u32;
            st = shared.lock();
            continue;
        }
        st.idle += 1;
        st = sync::wait(&shared.work, st);
        st.idle -= 1;
        st.work_woken = st.work_woken.saturating_sub(1);
    }
    drop(st);
    // Drop the state (closing its connections) before the pool counts this worker gone.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(local.state.take())));
    let mut st = shared.lock();
    st.threads -= 1;
    if st.threads == 0 && st.done_waiters > 0 {
        shared.done.notify_all();
    }
}

impl<J, T, E, S> Local<J, T, E, S>
where
    J: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    fn run_job<F>(
        &mut self,
        shared: &Shared<J, T, E>,
        code: &Code<S, F>,
        env: Envelope<J>,
    ) -> Outcome<J, T, E>
    where
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E>,
    {
        let Envelope { seq, job, enqueued } = env;
        let cfg = &shared.cfg;
        let mut out = Outcome {
            seq,
            job,
            worker: Some(self.idx),
            attempts: 0,
            queue_wait: Duration::ZERO,
            run_time: Duration::ZERO,
            result: Err(Failure::Cancelled),
        };
        if shared.cancel_flag.load(Ordering::Relaxed) {
            out.worker = None;
            return out;
        }
        if let Some(interval) = cfg.rate_interval {
            self.carry = None;
            if !shared.rate_wait(interval) {
                out.worker = None;
                return out;
            }
        }
        if self.state.is_none() {
            self.carry = None;
            match build_state(code, self.idx) {
                Ok(s) => self.state = Some(s),
                Err(m) => {
                    out.result = Err(Failure::Init(m));
                    return out;
                }
            }
        }
        let start = if cfg.stats {
            self.carry.take().unwrap_or_else(clock::ticks)
        } else {
            0
        };
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
            let r = catch_unwind(AssertUnwindSafe(|| (code.f)(state, &out.job, &ctx)));
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            match r {
                Ok(Ok(_)) | Ok(Err(_)) if expired => break Err(Failure::TimedOut),
                Ok(Ok(v)) => break Ok(v),
                Ok(Err(e)) => {
                    if attempt > cfg.retries || shared.cancel_flag.load(Ordering::Relaxed) {
                        break Err(Failure::Error(e));
                    }
                    // The predicate is user code too: a panic in it is this job's outcome.
                    let worth = match &shared.retry_if {
                        None => true,
                        Some(p) => match catch_unwind(AssertUnwindSafe(|| p(&e))) {
                            Ok(w) => w,
                            Err(payload) => {
                                let msg = panic_message(&*payload);
                                break Err(Failure::Panicked(format!("retry predicate: {msg}")));
                            }
                        },
                    };
                    // A backoff too large to add to the clock means no retry.
                    let until = Instant::now().checked_add(self.backoff(cfg, attempt));
                    if worth && until.is_some_and(|u| shared.sleep_until(u)) {
                        self.retried += 1;
                        continue;
                    }
                    break Err(Failure::Error(e));
                }
                Err(payload) => {
                    let msg = panic_message(&*payload);
                    // The state may be half-updated: drop it and build a fresh one next time.
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(self.state.take())));
                    break Err(Failure::Panicked(msg));
                }
            }
        };
        out.attempts = attempt;
        out.result = result;
        if cfg.fail_fast && out.result.is_err() {
            // Stop the rest of this batch and the queue now, not at delivery.
            shared.cancel();
        }
        if cfg.stats {
            let end = clock::ticks();
            out.queue_wait = clock::between(enqueued, start);
            out.run_time = clock::between(start, end);
            self.carry = Some(end);
        }
        out
    }

    /// The wait before retry number `attempt`: exponential, capped, jittered into its upper half.
    fn backoff(&mut self, cfg: &crate::builder::Config, attempt: u32) -> Duration {
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
