//! Building a pool: [`Builder`] in, a validated [`Config`] and a running crew out.

use std::sync::Arc as StdArc;
use std::time::Duration;

use crate::config::{cores, BoxError, Config, RetryEvery, RetryPolicy, RetryWhen};
use crate::context::Context;
use crate::error::BuildError;
use crate::jobs::Jobs;
use crate::results::Results;
use crate::shared::Shared;
use crate::Halves;

/// A builder without per-worker state: the worker function takes `(&job, &ctx)`.
///
/// # Examples
///
/// ```
/// let b: brigade::Builder<brigade::NoState> = brigade::Builder::new();
/// # let _ = b;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoState;

/// A builder with per-worker state of type `S`: the worker function takes
/// `(&mut state, &job, &ctx)`. Made by [`Builder::state`].
///
/// # Examples
///
/// ```
/// let b: brigade::Builder<brigade::WithState<Vec<u8>>> =
///     brigade::Builder::new().state(|_worker| Ok::<_, std::io::Error>(Vec::new()));
/// # let _ = b;
/// ```
pub struct WithState<S> {
    pub(crate) init: StdArc<dyn Fn(usize) -> Result<S, BoxError> + Send + Sync>,
}

/// Sets up a pool: how many workers, how long a queue, which policies; then
/// [`build`](Builder::build) starts it, or [`run`](Builder::run) feeds it an iterator.
///
/// Setters take and return the builder. Impossible settings (zero workers, a
/// zero queue, a rate that is not positive) are reported by `build` as a
/// [`BuildError`], never as a hang later.
///
/// # Examples
///
/// ```
/// use brigade::Builder;
///
/// let (jobs, results) = Builder::new()
///     .workers(3)   // the seed's numWorkers
///     .queue(5)     // the seed's buffered channel
///     .build(|job: &u32, _ctx| Ok::<_, std::convert::Infallible>(job * 2))
///     .unwrap();
/// for j in 1..=5 { jobs.send(j).unwrap(); }
/// drop(jobs); // close(jobs)
/// let mut doubled: Vec<u32> = results.map(|o| o.result.unwrap()).collect();
/// doubled.sort();
/// assert_eq!(doubled, [2, 4, 6, 8, 10]);
/// ```
#[must_use = "a builder does nothing until build() or run()"]
pub struct Builder<St = NoState, R = RetryEvery> {
    pub(crate) cfg: Config,
    pub(crate) retry: R,
    pub(crate) state: St,
}

impl<St, R> std::fmt::Debug for Builder<St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Default for Builder<NoState> {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder<NoState> {
    /// A builder with the defaults: one worker per core, a queue of 1,024,
    /// statistics on, errors collected, no retries, no timeout, no rate limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::Builder::new();
    /// # let _ = b;
    /// ```
    pub fn new() -> Self {
        Builder {
            cfg: Config::default(),
            retry: RetryEvery,
            state: NoState,
        }
    }
}

impl<R> Builder<NoState, R> {
    /// Gives every worker its own state, built by `init(worker_index)` on the
    /// worker's own thread before its first job (so the state need not be
    /// `Send`): one database connection, HTTP client or SMTP transport per
    /// worker, as in the seed's `dbWorker`. If a job panics, the worker's state
    /// is dropped and built again before its next job.
    ///
    /// If an initialiser fails while the pool is being built, `build` returns
    /// [`BuildError::Init`]. If it fails when rebuilding later, the jobs that
    /// worker takes fail with [`Failure::Init`](crate::Failure::Init) until it
    /// succeeds.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::Builder;
    ///
    /// // Each worker keeps a buffer it reuses across jobs.
    /// let results = Builder::new()
    ///     .workers(2)
    ///     .state(|_worker| Ok::<_, std::io::Error>(String::with_capacity(64)))
    ///     .run(0..4u32, |buf: &mut String, n: &u32, _ctx| {
    ///         buf.clear();
    ///         buf.push_str(&n.to_string());
    ///         Ok::<_, ()>(buf.len())
    ///     });
    /// assert_eq!(results.count(), 4);
    /// ```
    pub fn state<S, IE, I>(self, init: I) -> Builder<WithState<S>, R>
    where
        I: Fn(usize) -> Result<S, IE> + Send + Sync + 'static,
        IE: Into<BoxError>,
    {
        Builder {
            cfg: self.cfg,
            retry: self.retry,
            state: WithState {
                init: StdArc::new(move |i| init(i).map_err(Into::into)),
            },
        }
    }

    /// Starts the crew with a worker function that takes the job and its
    /// [`Context`], and returns the two halves: [`Jobs`] to send on and
    /// [`Results`] to read outcomes from.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new()
    ///     .build(|s: &String, _ctx| Ok::<_, ()>(s.len()))
    ///     .unwrap();
    /// jobs.send("four".to_string()).unwrap();
    /// drop(jobs);
    /// assert_eq!(results.map(|o| o.result.unwrap()).sum::<usize>(), 4);
    /// ```
    pub fn build<J, T, E, F>(self, f: F) -> Result<Halves<J, T, E>, BuildError>
    where
        J: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&J, &Context<'_, J>) -> Result<T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        self.state(|_| Ok::<(), BoxError>(()))
            .build(move |_: &mut (), job: &J, ctx: &Context<'_, J>| f(job, ctx))
    }

    /// Builds the pool, then feeds it `jobs` from a producer thread, lazily:
    /// the iterator is only advanced as the queue has room (the seed's dynamic
    /// producer). Closes the jobs half when the iterator ends. Returns the
    /// results half; iterate it for the outcomes. Dropping the results half
    /// stops the feed (the jobs already accepted still run), so
    /// `run(0.., f).take(3)` ends.
    ///
    /// # Panics
    ///
    /// If the settings are invalid (see [`BuildError`]); use
    /// [`build`](Builder::build) to handle that as an error. If the iterator
    /// panics, the jobs it gave before still run, and the results half
    /// panics with the iterator's message after handing over their outcomes.
    ///
    /// # Examples
    ///
    /// ```
    /// // Ordered: outcomes come back in the order of the input.
    /// let squares: Vec<u64> = brigade::Builder::new()
    ///     .ordered()
    ///     .run(1..=5u64, |n: &u64, _ctx| Ok::<_, ()>(n * n))
    ///     .map(|o| o.result.unwrap())
    ///     .collect();
    /// assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// ```
    pub fn run<I, T, E, F>(self, jobs: I, f: F) -> Results<I::Item, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&I::Item, &Context<'_, I::Item>) -> Result<T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        self.state(|_| Ok::<(), BoxError>(())).run(
            jobs,
            move |_: &mut (), job: &I::Item, ctx: &Context<'_, I::Item>| f(job, ctx),
        )
    }

    /// Like [`run`](Builder::run), but bad settings are an error instead of a panic.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = brigade::Builder::new().workers(0)
    ///     .try_run(0..3u8, |n: &u8, _ctx| Ok::<_, ()>(*n))
    ///     .unwrap_err();
    /// assert!(matches!(err, brigade::BuildError::ZeroWorkers));
    /// ```
    pub fn try_run<I, T, E, F>(self, jobs: I, f: F) -> Result<Results<I::Item, T, E>, BuildError>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&I::Item, &Context<'_, I::Item>) -> Result<T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        self.state(|_| Ok::<(), BoxError>(())).try_run(
            jobs,
            move |_: &mut (), job: &I::Item, ctx: &Context<'_, I::Item>| f(job, ctx),
        )
    }
}

impl<S: 'static, R> Builder<WithState<S>, R> {
    /// Starts the crew with a worker function that takes the worker's state,
    /// the job and its [`Context`]. See [`Builder::state`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new()
    ///     .workers(2)
    ///     .state(|worker| Ok::<_, std::io::Error>(worker * 100))
    ///     .build(|base: &mut usize, n: &usize, _ctx| Ok::<_, ()>(*base + n))
    ///     .unwrap();
    /// jobs.send(1).unwrap();
    /// drop(jobs);
    /// let v = results.map(|o| o.result.unwrap()).next().unwrap();
    /// assert!(v == 1 || v == 101);
    /// ```
    pub fn build<J, T, E, F>(self, f: F) -> Result<Halves<J, T, E>, BuildError>
    where
        J: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        let cfg = self.cfg.validate()?;
        let shared = Shared::start(cfg, self.retry.predicate(), self.state.init, f)?;
        Ok((Jobs::new(shared.clone()), Results::new(shared)))
    }

    /// Like [`Builder::run`], with per-worker state. See [`Builder::state`].
    ///
    /// # Panics
    ///
    /// If the settings are invalid or a state initialiser fails (see
    /// [`BuildError`]); use [`build`](Builder::build) to handle that as an error.
    ///
    /// # Examples
    ///
    /// ```
    /// let total: u32 = brigade::Builder::new()
    ///     .state(|_| Ok::<_, std::io::Error>(Vec::<u32>::new()))
    ///     .run(1..=3u32, |scratch: &mut Vec<u32>, n: &u32, _ctx| {
    ///         scratch.push(*n);
    ///         Ok::<_, ()>(*n)
    ///     })
    ///     .map(|o| o.result.unwrap())
    ///     .sum();
    /// assert_eq!(total, 6);
    /// ```
    pub fn run<I, T, E, F>(self, jobs: I, f: F) -> Results<I::Item, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut S, &I::Item, &Context<'_, I::Item>) -> Result<T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        match self.try_run(jobs, f) {
            Ok(results) => results,
            Err(e) => panic!("brigade: cannot build the pool: {e}"),
        }
    }

    /// Like [`run`](Builder::run), but bad settings and a failed initialiser
    /// are an error instead of a panic.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = brigade::Builder::new()
    ///     .state(|_| Err::<(), _>("no connection"))
    ///     .try_run(0..3u8, |_: &mut (), n: &u8, _ctx| Ok::<_, ()>(*n))
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("no connection"));
    /// ```
    pub fn try_run<I, T, E, F>(self, jobs: I, f: F) -> Result<Results<I::Item, T, E>, BuildError>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut S, &I::Item, &Context<'_, I::Item>) -> Result<T, E> + Send + Sync + 'static,
        R: RetryPolicy<E>,
    {
        let (tx, results) = self.build(f)?;
        let iter = jobs.into_iter();
        let name = format!("{}-producer", results.name());
        let feed = move || tx.feed(iter);
        if let Err(e) = std::thread::Builder::new().name(name).spawn(feed) {
            // The closure (and with it the jobs half) is dropped: the pool closes with no jobs.
            results.pool().cancel();
            return Err(BuildError::Spawn(StdArc::new(e)));
        }
        Ok(results)
    }
}

impl<St, R> Builder<St, R> {
    /// The number of workers. Zero is a [`BuildError::ZeroWorkers`]; more than
    /// [`MAX_WORKERS`](crate::MAX_WORKERS) is a [`BuildError::TooManyWorkers`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().workers(3)
    ///     .build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert_eq!(jobs.pool().stats().workers, 3);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.cfg.workers = n;
        self
    }

    /// One worker per core: the seed's rule of thumb for CPU-bound work (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::Builder::new().cpu_bound();
    /// # let _ = b;
    /// ```
    pub fn cpu_bound(self) -> Self {
        self.workers(cores())
    }

    /// `per_core` workers per core, for I/O-bound work that mostly waits
    /// (the seed suggests 10 to 100; zero counts as one).
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _r) = brigade::Builder::new().io_bound(10)
    ///     .build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// assert!(jobs.pool().stats().workers >= 10);
    /// ```
    pub fn io_bound(self, per_core: usize) -> Self {
        self.workers(cores().saturating_mul(per_core.max(1)))
    }

    /// The job queue's capacity (default 1,024). A send to a full queue
    /// blocks (backpressure); zero is a [`BuildError::ZeroQueue`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, _results) = brigade::Builder::new().workers(1).queue(1)
    ///     .build(|_: &u8, ctx| { ctx.sleep(std::time::Duration::from_secs(5)); Ok::<_, ()>(()) })
    ///     .unwrap();
    /// jobs.send(1).unwrap(); // taken by the worker (or queued)
    /// # let _ = jobs.try_send(2);
    /// # jobs.pool().cancel();
    /// ```
    pub fn queue(mut self, capacity: usize) -> Self {
        self.cfg.queue = capacity;
        self
    }

    /// How many undelivered outcomes may pile up before senders wait for the
    /// results to be read (default: the queue's capacity). Together with the
    /// queue this bounds the pool's memory whatever the number of jobs.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::Builder::new().queue(64).results_capacity(256);
    /// # let _ = b;
    /// ```
    pub fn results_capacity(mut self, n: usize) -> Self {
        self.cfg.results = n.max(1);
        self
    }

    /// Outcomes in submission order instead of completion order, through a
    /// bounded reorder window of the queue's capacity plus the worker count.
    /// See [`ordered_window`](Builder::ordered_window).
    ///
    /// # Examples
    ///
    /// ```
    /// let seqs: Vec<u64> = brigade::Builder::new().workers(4).ordered()
    ///     .run(0..100u32, |n: &u32, _ctx| Ok::<_, ()>(*n))
    ///     .map(|o| o.seq).collect();
    /// assert_eq!(seqs, (0..100).collect::<Vec<u64>>());
    /// ```
    pub fn ordered(mut self) -> Self {
        self.cfg.window = Some(0);
        self
    }

    /// Outcomes in submission order, with at most `window` jobs accepted past
    /// the oldest outcome not yet read. One slow job then holds the producers
    /// back instead of letting everything after it pile up in memory.
    /// Follow-up jobs are not held back by the window.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = brigade::Builder::new().ordered_window(8)
    ///     .run(0..50u32, |n: &u32, _ctx| Ok::<_, ()>(*n)).count();
    /// assert_eq!(n, 50);
    /// ```
    pub fn ordered_window(mut self, window: usize) -> Self {
        self.cfg.window = Some(window.max(1));
        self
    }

    /// Stop at the first failure (errgroup-style): the first job that fails,
    /// panics or times out cancels the pool; the jobs still queued come back as
    /// [`Cancelled`](crate::Failure::Cancelled). The default is to collect
    /// every error and carry on.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::Failure;
    /// let (jobs, results) = brigade::Builder::new().workers(1).queue(100).fail_fast()
    ///     .build(|n: &u32, _ctx| if *n == 3 { Err("three") } else { Ok(*n) })
    ///     .unwrap();
    /// // Sends after the failure are refused; the accepted ones all get an outcome.
    /// let accepted = (0..100).filter(|n| jobs.send(*n).is_ok()).count();
    /// drop(jobs);
    /// let outcomes: Vec<_> = results.collect();
    /// assert_eq!(outcomes.len(), accepted);
    /// let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    /// let cancelled = outcomes.iter().filter(|o| o.result == Err(Failure::Cancelled)).count();
    /// assert_eq!((ok, cancelled), (3, accepted - 4)); // 0, 1, 2 ran; 3 failed; the rest never started
    /// ```
    pub fn fail_fast(mut self) -> Self {
        self.cfg.fail_fast = true;
        self
    }

    /// Retry a job whose worker function returned an error up to `n` more
    /// times, waiting an exponential backoff with jitter between attempts
    /// (see [`backoff`](Builder::backoff) and [`retry_if`](Builder::retry_if)).
    /// Panics and timeouts are not retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o: Vec<_> = brigade::Builder::new().retries(3).backoff(Duration::from_millis(1), Duration::from_millis(5))
    ///     .run(0..1u8, |_: &u8, ctx| if ctx.attempt() == 1 { Err("flaky") } else { Ok("ok") })
    ///     .collect();
    /// assert_eq!(o[0].result, Ok("ok"));
    /// assert_eq!(o[0].attempts, 2);
    /// ```
    pub fn retries(mut self, n: u32) -> Self {
        self.cfg.retries = n;
        self
    }

    /// The backoff between retries: `base` before the first retry, doubling
    /// each time up to `max`; each wait is drawn at random from its upper half
    /// (jitter), so a crowd of failing jobs does not retry in step. The
    /// default is 100 ms up to 10 s. The wait ends early if the pool is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = brigade::Builder::new().retries(5)
    ///     .backoff(std::time::Duration::from_millis(50), std::time::Duration::from_secs(2));
    /// # let _ = b;
    /// ```
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.cfg.backoff_base = base;
        self.cfg.backoff_max = max.max(base);
        self
    }

    /// Retry only the errors for which `worth_retrying` says true (the default
    /// retries every error). The predicate's error type must be the worker
    /// function's: another type does not compile.
    ///
    /// ```compile_fail
    /// // The worker fails with a String; a predicate over io::Error is refused.
    /// let _ = brigade::Builder::new().retries(1)
    ///     .retry_if(|e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut)
    ///     .run(0..1u8, |_: &u8, _ctx| Err::<(), String>("no".into()));
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// enum E { Busy, Gone }
    /// let o: Vec<_> = brigade::Builder::new().retries(5).backoff(Default::default(), Default::default())
    ///     .retry_if(|e: &E| *e == E::Busy)
    ///     .run(0..1u8, |_: &u8, _ctx| Err::<(), _>(E::Gone))
    ///     .collect();
    /// assert_eq!(o[0].attempts, 1); // Gone is not worth retrying
    /// ```
    pub fn retry_if<E, P>(self, worth_retrying: P) -> Builder<St, RetryWhen<E>>
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        Builder {
            cfg: self.cfg,
            retry: RetryWhen(StdArc::new(worth_retrying)),
            state: self.state,
        }
    }

    /// A time limit **per attempt**: each attempt of a job (the first run and
    /// every retry) gets the whole `limit`, counted from its own start. A
    /// thread cannot be pre-empted, so the job keeps running, but its
    /// [`Context`] reports the deadline ([`deadline`](Context::deadline),
    /// [`is_expired`](Context::is_expired), and [`sleep`](Context::sleep)
    /// wakes at it), and an attempt still running when it passes yields
    /// [`Failure::TimedOut`](crate::Failure::TimedOut) (a timed-out attempt is
    /// not retried). Its value, if any, is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o: Vec<_> = brigade::Builder::new().timeout(Duration::from_millis(10))
    ///     .run(0..1u8, |_: &u8, ctx| { while !ctx.is_expired() { ctx.sleep(Duration::from_millis(1)); } Ok::<_, ()>(()) })
    ///     .collect();
    /// assert_eq!(o[0].result, Err(brigade::Failure::TimedOut));
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.cfg.timeout = Some(limit);
        self
    }

    /// Start at most `per_second` jobs per second across the whole crew
    /// (evenly spaced), next to the concurrency limit. `f64::INFINITY` means
    /// no limit; a rate that is zero, negative or NaN is a
    /// [`BuildError::BadRate`]; rates below one job per century count as one
    /// per century.
    ///
    /// # Examples
    ///
    /// ```
    /// let start = std::time::Instant::now();
    /// let n = brigade::Builder::new().workers(4).rate_limit(200.0)
    ///     .run(0..5u8, |_: &u8, _ctx| Ok::<_, ()>(())).count();
    /// assert_eq!(n, 5);
    /// assert!(start.elapsed() >= std::time::Duration::from_millis(20)); // 4 gaps of 5 ms
    /// ```
    pub fn rate_limit(mut self, per_second: f64) -> Self {
        self.cfg.rate = Some(per_second);
        self
    }

    /// Statistics on (the default) or off. Off, the pool reads no clock for
    /// them: [`Outcome::queue_wait`](crate::Outcome::queue_wait) and
    /// [`run_time`](crate::Outcome::run_time) are zero and the percentiles
    /// empty; the counters are kept either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let (jobs, results) = brigade::Builder::new().stats(false)
    ///     .build(|n: &u8, _ctx| Ok::<_, ()>(*n)).unwrap();
    /// let pool = jobs.pool();
    /// jobs.send(1).unwrap();
    /// drop(jobs);
    /// assert_eq!(results.count(), 1);
    /// assert_eq!(pool.stats().run_time.count, 0);
    /// ```
    pub fn stats(mut self, on: bool) -> Self {
        self.cfg.stats = on;
        self
    }

    /// The prefix of the worker threads' names (default `brigade`: threads are
    /// `brigade-0`, `brigade-1`, ...). A NUL byte in it is a [`BuildError::BadName`].
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new().name("cook").workers(1)
    ///     .run(0..1u8, |_: &u8, _ctx| Ok::<_, ()>(std::thread::current().name().map(String::from)))
    ///     .collect();
    /// assert_eq!(o[0].result, Ok(Some("cook-0".to_string())));
    /// ```
    pub fn name(mut self, prefix: impl Into<String>) -> Self {
        self.cfg.name = prefix.into();
        self
    }
}
