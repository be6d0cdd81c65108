//! Building an async pool: [`Builder`] in, a validated configuration and a running crew out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::context::Context;
use super::jobs::Jobs;
use super::pool::{Crew, Pool};
use super::results::Results;
use super::shared::Shared;
use super::worker::{Code, InitFn};
use crate::{BoxError, BuildError, InitError, RetryEvery, RetryPolicy, RetryWhen};

/// The most workers one async pool may have: 4,194,304 (2^22). More is a
/// [`BuildError`], not an allocation failure.
pub const MAX_WORKERS: usize = 1 << 22;

/// The future a worker function returns for one job: boxed, and allowed to borrow the
/// job, the [`Context`] and the worker's state for as long as it runs.
///
/// Write the worker function as `|job, ctx| Box::pin(async move { ... })`.
///
/// # Examples
///
/// ```
/// use brigade::tokio::{Context, JobFuture};
/// fn double<'a>(n: &'a u32, _ctx: &'a Context<u32>) -> JobFuture<'a, u32, ()> {
///     Box::pin(async move { Ok(n * 2) })
/// }
/// # let _ = double;
/// ```
pub type JobFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

/// The two halves [`Builder::build`] returns: send on the first, read outcomes from the second.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (jobs, results): brigade::tokio::Halves<u8, u8, ()> = brigade::tokio::Builder::new()
///     .build(|n: &u8, _ctx| { let n = *n; Box::pin(async move { Ok(n) }) })
///     .await
///     .unwrap();
/// # drop((jobs, results)); }
/// ```
pub type Halves<J, T, E> = (Jobs<J>, Results<J, T, E>);

/// The validated settings every part of the async pool reads.
// Shared with the thread pool's `Config` once both settle (same fields, same checks).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) queue: usize,
    pub(crate) results: usize,
    pub(crate) window: Option<usize>,
    pub(crate) fail_fast: bool,
    pub(crate) retries: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) rate_interval: Option<Duration>,
    pub(crate) stats: bool,
}

/// A builder without per-worker state: the worker function takes `(&job, &ctx)`.
///
/// # Examples
///
/// ```
/// let b: brigade::tokio::Builder<brigade::tokio::NoState> = brigade::tokio::Builder::new();
/// # let _ = b;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoState;

/// A builder with per-worker state of type `S`, built by an async initialiser: the worker
/// function takes `(&mut state, &job, &ctx)`. Made by [`Builder::state`].
///
/// # Examples
///
/// ```
/// let b: brigade::tokio::Builder<brigade::tokio::WithState<Vec<u8>>> = brigade::tokio::Builder::new()
///     .state(|_worker| async { Ok::<_, std::io::Error>(Vec::new()) });
/// # let _ = b;
/// ```
pub struct WithState<S> {
    init: InitFn<S>,
}

pub(crate) type RetryIf<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// Sets up an async pool: how many workers (tasks), how long a queue, which policies;
/// then [`build`](Builder::build) starts it on the current tokio runtime.
///
/// The options are the thread pool's ([`crate::Builder`]); the defaults differ only in the
/// worker count (100 tasks: async workers are for work that waits).
///
/// Impossible settings (zero workers, more than [`MAX_WORKERS`], a zero queue, a rate
/// that is not positive, a retry predicate of the wrong error type) are reported by
/// `build` as a [`BuildError`], never as a panic or a hang later.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use brigade::tokio::Builder;
///
/// let (jobs, results) = Builder::new()
///     .workers(3)
///     .queue(5)
///     .build(|job: &u32, _ctx| { let j = *job; Box::pin(async move { Ok::<_, ()>(j * 2) }) })
///     .await
///     .unwrap();
/// for j in 1..=5 { jobs.send(j).await.unwrap(); }
/// drop(jobs); // close(jobs)
/// let mut doubled: Vec<u32> = results.collect_all().await.into_iter().map(|o| o.result.unwrap()).collect();
/// doubled.sort();
/// assert_eq!(doubled, [2, 4, 6, 8, 10]);
/// # }
/// ```
pub struct Builder<St = NoState, R = RetryEvery> {
    cfg: Config,
    bad_rate: bool,
    retry: R,
    state: St,
}

impl Default for Builder<NoState, RetryEvery> {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder<NoState, RetryEvery> {
    /// A builder with the defaults: 100 workers, a queue of 1,024, statistics on, errors
    /// collected, no retries, no timeout, no rate limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new();
    /// # let _ = b;
    /// ```
    pub fn new() -> Self {
        Builder {
            cfg: Config {
                workers: 100,
                queue: 1024,
                results: 0,
                window: None,
                fail_fast: false,
                retries: 0,
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_secs(10),
                timeout: None,
                rate_interval: None,
                stats: true,
            },
            bad_rate: false,
            retry: RetryEvery,
            state: NoState,
        }
    }
}

impl<R> Builder<NoState, R> {
    /// Gives every worker its own state, built by the async `init(worker_index)` before the
    /// worker's first job: one HTTP client, SMTP transport or database connection per
    /// worker. If a job panics, the worker's state is dropped and built again before its
    /// next job.
    ///
    /// If an initialiser fails while the pool is being built, `build` returns
    /// [`BuildError::Init`]. If it fails when rebuilding later, the jobs that worker takes
    /// fail with [`Failure::Init`](crate::Failure::Init) until it succeeds.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, results) = brigade::tokio::Builder::new()
    ///     .workers(2)
    ///     .state(|worker| async move { Ok::<_, std::io::Error>(worker * 100) })
    ///     .build(|base: &mut usize, n: &usize, _ctx| Box::pin(async move { Ok::<_, ()>(*base + n) }))
    ///     .await
    ///     .unwrap();
    /// jobs.send(1).await.unwrap();
    /// drop(jobs);
    /// let v = results.collect_all().await[0].result.clone().unwrap();
    /// assert!(v == 1 || v == 101);
    /// # }
    /// ```
    pub fn state<S, IE, I, Fut>(self, init: I) -> Builder<WithState<S>, R>
    where
        I: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, IE>> + Send + 'static,
        IE: Into<BoxError>,
    {
        let init: InitFn<S> = Arc::new(move |w| {
            let fut = init(w);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Builder {
            cfg: self.cfg,
            bad_rate: self.bad_rate,
            retry: self.retry,
            state: WithState { init },
        }
    }

    /// Starts the crew on the current tokio runtime with a worker function of the job and
    /// its [`Context`], returning a [`JobFuture`]. Waits for nothing but the workers' start.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] for impossible settings, or when there is no tokio runtime
    /// ([`BuildError::Spawn`]).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub async fn build<J, T, E, F>(self, f: F) -> Result<Halves<J, T, E>, BuildError>
    where
        J: Send + Sync + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> Fn(&'a J, &'a Context<J>) -> JobFuture<'a, T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        self.state(|_| async { Ok::<(), BoxError>(()) })
            .build(move |_: &mut (), job: &J, ctx: &Context<J>| f(job, ctx))
            .await
    }
}

impl<S: Send + 'static, R> Builder<WithState<S>, R> {
    /// Starts the crew on the current tokio runtime with a worker function of the worker's
    /// state, the job and its [`Context`], and waits until every worker built its state.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] for impossible settings, when there is no tokio runtime
    /// ([`BuildError::Spawn`]), or when an initialiser fails ([`BuildError::Init`]; the
    /// pool is then cancelled and its workers exit).
    ///
    /// # Examples
    ///
    /// See [`Builder::state`].
    pub async fn build<J, T, E, F>(self, f: F) -> Result<Halves<J, T, E>, BuildError>
    where
        J: Send + Sync + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: for<'a> Fn(&'a mut S, &'a J, &'a Context<J>) -> JobFuture<'a, T, E>
            + Send
            + Sync
            + 'static,
        R: RetryPolicy<E>,
    {
        let cfg = self.validate()?;
        let retry_if = self.retry.predicate();
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            // Wants its own variant (BuildError::NoRuntime) in the shared error type.
            BuildError::Spawn(Arc::new(std::io::Error::other(format!(
                "an async pool must be built inside a tokio runtime ({e})"
            ))))
        })?;
        let shared = Arc::new(Shared::new(cfg));
        let code = Arc::new(Code {
            init: self.state.init,
            f,
            retry_if,
        });
        let crew = Arc::new(Crew::new(Arc::clone(&shared), code, handle));
        let pool = Pool::new(crew.clone());
        let sender: Arc<dyn super::jobs::Sender<J>> = shared.clone();
        let jobs = Jobs::new(sender, pool.clone());
        let results = Results::new(Arc::clone(&shared), pool.clone());
        crew.start();
        if let Err((worker, message)) = crew.started().await {
            pool.cancel();
            return Err(BuildError::Init(InitError::new(worker, message.into())));
        }
        Ok((jobs, results))
    }
}

impl<St, R> Builder<St, R> {
    fn validate(&self) -> Result<Config, BuildError> {
        let mut cfg = self.cfg.clone();
        if cfg.workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if cfg.workers > MAX_WORKERS {
            return Err(too_many(cfg.workers));
        }
        if cfg.queue == 0 {
            return Err(BuildError::ZeroQueue);
        }
        if self.bad_rate {
            return Err(BuildError::BadRate);
        }
        if cfg.results == 0 {
            cfg.results = cfg.queue;
        }
        if let Some(w) = cfg.window.as_mut() {
            if *w == 0 {
                *w = cfg.queue.saturating_add(cfg.workers);
            }
        }
        Ok(cfg)
    }

    /// The number of workers (tasks). Zero, or more than [`MAX_WORKERS`], is a [`BuildError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, _results) = brigade::tokio::Builder::new().workers(10_000)
    ///     .build(|n: &u8, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// assert_eq!(jobs.pool().stats().target_workers, 10_000);
    /// # }
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.cfg.workers = n;
        self
    }

    /// The job queue's capacity (default 1,024). A send to a full queue waits
    /// (backpressure); zero is a [`BuildError::ZeroQueue`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().queue(64);
    /// # let _ = b;
    /// ```
    pub fn queue(mut self, capacity: usize) -> Self {
        self.cfg.queue = capacity;
        self
    }

    /// How many unread outcomes may pile up before senders wait for the results to be
    /// read (default: the queue's capacity). Together with the queue this bounds the
    /// pool's memory whatever the number of jobs.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().queue(64).results_capacity(256);
    /// # let _ = b;
    /// ```
    pub fn results_capacity(mut self, n: usize) -> Self {
        self.cfg.results = n.max(1);
        self
    }

    /// Outcomes in submission order, through a bounded reorder window of the queue's
    /// capacity plus the worker count. See [`ordered_window`](Builder::ordered_window).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().ordered();
    /// # let _ = b;
    /// ```
    pub fn ordered(mut self) -> Self {
        self.cfg.window = Some(0);
        self
    }

    /// Outcomes in submission order, with at most `window` jobs accepted past the oldest
    /// outcome not yet read: one slow job holds the senders back instead of letting
    /// everything after it pile up. Follow-up jobs are not held back by the window.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().ordered_window(8);
    /// # let _ = b;
    /// ```
    pub fn ordered_window(mut self, window: usize) -> Self {
        self.cfg.window = Some(window.max(1));
        self
    }

    /// Stop at the first failure (errgroup-style): the first job that fails, panics or
    /// times out cancels the pool (running futures are dropped, queued jobs come back
    /// [`Cancelled`](crate::Failure::Cancelled)).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().fail_fast();
    /// # let _ = b;
    /// ```
    pub fn fail_fast(mut self) -> Self {
        self.cfg.fail_fast = true;
        self
    }

    /// Retry a job whose future returned an error up to `n` more times, waiting an
    /// exponential backoff with jitter in between (see [`backoff`](Builder::backoff) and
    /// [`retry_if`](Builder::retry_if)). Panics, timeouts and cancels are not retried.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().retries(3);
    /// # let _ = b;
    /// ```
    pub fn retries(mut self, n: u32) -> Self {
        self.cfg.retries = n;
        self
    }

    /// The backoff between retries: `base` before the first retry, doubling up to `max`,
    /// each wait drawn at random from its upper half (jitter). Default 100 ms up to 10 s.
    /// A cancel ends the wait at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = brigade::tokio::Builder::new().retries(5).backoff(Duration::from_millis(50), Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.cfg.backoff_base = base;
        self.cfg.backoff_max = max.max(base);
        self
    }

    /// Retry only the errors for which `worth_retrying` says true (the default retries
    /// every error). The predicate's error type must be the worker function's, or `build`
    /// does not compile.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().retries(2).retry_if(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut);
    /// # let _ = b;
    /// ```
    pub fn retry_if<E, P>(self, worth_retrying: P) -> Builder<St, RetryWhen<E>>
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        Builder {
            cfg: self.cfg,
            bad_rate: self.bad_rate,
            retry: RetryWhen(Arc::new(worth_retrying)),
            state: self.state,
        }
    }

    /// A per-attempt time limit, and a real one: at the deadline the job's future is
    /// dropped and the outcome is [`TimedOut`](crate::Failure::TimedOut), with the job
    /// handed back. Needs a runtime with the time driver on (`enable_time`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let (jobs, results) = brigade::tokio::Builder::new().timeout(Duration::from_millis(10))
    ///     .build(|_: &u8, _ctx| Box::pin(async {
    ///         tokio::time::sleep(Duration::from_secs(3600)).await;
    ///         Ok::<_, ()>(())
    ///     }))
    ///     .await.unwrap();
    /// jobs.send(1).await.unwrap();
    /// drop(jobs);
    /// let o = results.collect_all().await;
    /// assert_eq!(o[0].result, Err(brigade::Failure::TimedOut));
    /// assert_eq!(o[0].job, 1);
    /// # }
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.cfg.timeout = Some(limit);
        self
    }

    /// Start at most `per_second` jobs per second across the whole crew, evenly spaced.
    /// A rate that is not a positive number is a [`BuildError::BadRate`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().rate_limit(50.0);
    /// # let _ = b;
    /// ```
    pub fn rate_limit(mut self, per_second: f64) -> Self {
        let interval = (per_second.is_finite() && per_second > 0.0)
            .then(|| Duration::try_from_secs_f64(1.0 / per_second).ok())
            .flatten();
        self.bad_rate = interval.is_none();
        self.cfg.rate_interval = interval;
        self
    }

    /// Statistics on (the default) or off. Off, the pool reads no clock for them; the
    /// counters are kept either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::tokio::Builder::new().stats(false);
    /// # let _ = b;
    /// ```
    pub fn stats(mut self, on: bool) -> Self {
        self.cfg.stats = on;
        self
    }
}

pub(crate) fn too_many(n: usize) -> BuildError {
    // Not `TooManyWorkers`: its message names the thread pool's limit.
    BuildError::Spawn(Arc::new(std::io::Error::other(format!(
        "{n} workers asked for; an async pool has at most {MAX_WORKERS}"
    ))))
}
