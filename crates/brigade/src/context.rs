//! What a running job can see and do: [`Context`].

use std::time::{Duration, Instant};

/// What the pool does for a job, behind the job's [`Context`].
pub(crate) trait JobOps<J>: Send + Sync {
    fn follow_up(&self, job: J) -> Result<u64, J>;
    fn is_cancelled(&self) -> bool;
    /// Sleeps until `until` or cancellation; true if `until` was reached.
    fn sleep_until(&self, until: Instant) -> bool;
}

/// A running job's view of the pool: who runs it, which attempt this is,
/// whether the pool was cancelled, its deadline, and a way to add follow-up jobs.
///
/// This is the seed's `ctx context.Context` and `id int` in one value.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, Context};
///
/// let results = Builder::new().workers(2).run(0..3u64, |n: &u64, ctx: &Context<u64>| {
///     assert!(ctx.worker() < 2);
///     assert_eq!(ctx.attempt(), 1);
///     Ok::<_, ()>((ctx.seq(), *n))
/// });
/// for o in results {
///     let (seq, n) = o.result.unwrap();
///     assert_eq!(seq, o.seq);
///     assert_eq!(n, o.job);
/// }
/// ```
pub struct Context<'a, J> {
    pub(crate) worker: usize,
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) deadline: Option<Instant>,
    pub(crate) ops: &'a dyn JobOps<J>,
}

impl<J> std::fmt::Debug for Context<'_, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("worker", &self.worker)
            .field("seq", &self.seq)
            .field("attempt", &self.attempt)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<J> Context<'_, J> {
    /// The index of the worker running this job, from 0 to workers - 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new().workers(1)
    ///     .run(0..1u8, |_: &u8, ctx| Ok::<_, ()>(ctx.worker())).collect();
    /// assert_eq!(o[0].result, Ok(0));
    /// ```
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The job's submission sequence number (the same as [`Outcome::seq`](crate::Outcome::seq)).
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new().ordered()
    ///     .run(["a", "b"], |_: &&str, ctx| Ok::<_, ()>(ctx.seq())).collect();
    /// assert_eq!(o[0].result, Ok(0));
    /// assert_eq!(o[1].result, Ok(1));
    /// ```
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, ...
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new().retries(2).backoff(std::time::Duration::ZERO, std::time::Duration::ZERO)
    ///     .run(0..1u8, |_: &u8, ctx| if ctx.attempt() < 3 { Err("again") } else { Ok(ctx.attempt()) })
    ///     .collect();
    /// assert_eq!(o[0].result, Ok(3));
    /// assert_eq!(o[0].attempts, 3);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the pool was cancelled. A long job should check this now and
    /// then and return early; the pool cannot stop a running thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let (started, is_started) = mpsc::channel();
    /// let (jobs, results) = brigade::Builder::new().workers(1)
    ///     .build(move |_: &u8, ctx| {
    ///         started.send(()).unwrap();
    ///         while !ctx.is_cancelled() { std::thread::yield_now(); }
    ///         Ok::<_, ()>("stopped early")
    ///     }).unwrap();
    /// jobs.send(1).unwrap();
    /// is_started.recv().unwrap();
    /// jobs.pool().cancel();
    /// let o: Vec<_> = results.collect();
    /// assert_eq!(o[0].result, Ok("stopped early"));
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.ops.is_cancelled()
    }

    /// This attempt's deadline, when the pool has a [timeout](crate::Builder::timeout) (per attempt).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o: Vec<_> = brigade::Builder::new().timeout(Duration::from_secs(60))
    ///     .run(0..1u8, |_: &u8, ctx| Ok::<_, ()>(ctx.deadline().is_some())).collect();
    /// assert_eq!(o[0].result, Ok(true));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the job's deadline has passed: its outcome will say
    /// [`TimedOut`](crate::Failure::TimedOut) whatever it returns, so it may as well stop.
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new()
    ///     .run(0..1u8, |_: &u8, ctx| Ok::<_, ()>(ctx.is_expired())).collect();
    /// assert_eq!(o[0].result, Ok(false)); // no timeout set: never expires
    /// ```
    pub fn is_expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sleeps for `d`, waking early if the pool is cancelled or the job's
    /// deadline comes first. Returns true if the whole `d` passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let o: Vec<_> = brigade::Builder::new().timeout(Duration::from_millis(20))
    ///     .run(0..1u8, |_: &u8, ctx| Ok::<_, ()>(ctx.sleep(Duration::from_secs(30)))).collect();
    /// // The deadline cut the sleep short, and the outcome says so.
    /// assert_eq!(o[0].result, Err(brigade::Failure::TimedOut));
    /// ```
    pub fn sleep(&self, d: Duration) -> bool {
        let now = Instant::now();
        let until = now
            .checked_add(d)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let stop = match self.deadline {
            Some(dl) if dl < until => dl,
            _ => until,
        };
        self.ops.sleep_until(stop) && stop == until
    }

    /// Adds a follow-up job (a crawler's newly found link, say). It gets its
    /// own sequence number and its own outcome. It never blocks: follow-up
    /// jobs go past the queue's capacity rather than deadlock a crew whose
    /// workers are all waiting to enqueue. The pool does not finish while a
    /// job that could add more is running.
    ///
    /// Returns the new job's sequence number, or gives the job back if the
    /// pool was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// // Count down from 5, one job per number, with one worker and a queue of one.
    /// let results = brigade::Builder::new().workers(1).queue(1)
    ///     .run([5u32], |n: &u32, ctx| {
    ///         if *n > 0 { ctx.spawn(n - 1).unwrap(); }
    ///         Ok::<_, ()>(*n)
    ///     });
    /// let mut seen: Vec<u32> = results.map(|o| o.job).collect();
    /// seen.sort();
    /// assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    /// ```
    pub fn spawn(&self, job: J) -> Result<u64, J> {
        self.ops.follow_up(job)
    }

    /// Starts a helper thread for this job, as [`std::thread::spawn`] does,
    /// that the pool knows as part of the job. The job usually waits for its
    /// helper, and the pool cannot finish while the job runs; so in the
    /// helper, as in the job itself, reading this pool's results fails (the
    /// read panics, and the panic is the job's if it is passed on), waiting
    /// on the pool is [`WaitError::InsideWorker`](crate::WaitError::InsideWorker),
    /// and a send to the pool goes past its bounds, instead of hanging. A
    /// thread started any other way is unknown to the pool: std has no hook
    /// to carry the job's identity into it.
    ///
    /// # Errors
    ///
    /// The operating system's error if the thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::{Builder, Context};
    ///
    /// let (jobs, results) = Builder::new().workers(1)
    ///     .build(|n: &u64, ctx: &Context<u64>| {
    ///         let helper = ctx.spawn_thread({ let n = *n; move || n * 2 }).unwrap();
    ///         Ok::<_, ()>(helper.join().unwrap())
    ///     })
    ///     .unwrap();
    /// jobs.send(21).unwrap();
    /// drop(jobs);
    /// let doubled: Vec<u64> = results.map(|o| o.result.unwrap()).collect();
    /// assert_eq!(doubled, [42]);
    /// ```
    #[cfg(not(loom))]
    pub fn spawn_thread<F, R>(&self, f: F) -> std::io::Result<std::thread::JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let mark = crate::shared::worker_mark();
        std::thread::Builder::new().spawn(move || {
            crate::shared::set_worker_mark(mark);
            f()
        })
    }
}
