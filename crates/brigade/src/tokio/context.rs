//! What a running async job can see and do: [`Context`] and its [`CancelToken`].

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

/// What the pool does for a job behind its context, whatever the result types.
pub(crate) trait JobOps<J>: Send + Sync {
    fn follow_up(&self, job: J) -> Result<u64, J>;
}

/// The pool's cancellation flag and the list of tasks waiting for it.
#[derive(Default)]
pub(crate) struct CancelInner {
    flag: AtomicBool,
    notify: Notify,
}

impl CancelInner {
    pub(crate) fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            let mut n = pin!(self.notify.notified());
            n.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            n.await;
        }
    }
}

/// The pool's cancellation, as a value a job can keep: clone it into a cleanup task, or
/// await [`cancelled`](CancelToken::cancelled).
///
/// The pool drops a running job's future at once when it is cancelled, so code inside the
/// job never sees the token flip; code the job started elsewhere (a spawned task, a
/// `Drop` guard) can.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use brigade::tokio::Builder;
///
/// let (jobs, results) = Builder::new().workers(1)
///     .build(|_: &u8, ctx| {
///         let token = ctx.token();
///         Box::pin(async move { Ok::<_, ()>(token.is_cancelled()) })
///     })
///     .await
///     .unwrap();
/// jobs.send(1).await.unwrap();
/// drop(jobs);
/// let all = results.collect_all().await;
/// assert_eq!(all[0].result, Ok(false));
/// # }
/// ```
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

impl CancelToken {
    /// Whether the pool was cancelled.
    ///
    /// # Examples
    ///
    /// See [`CancelToken`].
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Waits until the pool is cancelled (at once if it already was).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, _results) = brigade::tokio::Builder::new()
    ///     .build(|n: &u8, ctx| {
    ///         let token = ctx.token();
    ///         tokio::spawn(async move { token.cancelled().await; /* clean up */ });
    ///         let n = *n;
    ///         Box::pin(async move { Ok::<_, ()>(n) })
    ///     })
    ///     .await
    ///     .unwrap();
    /// jobs.pool().cancel();
    /// # }
    /// ```
    pub async fn cancelled(&self) {
        self.inner.cancelled().await
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A running async job's view of the pool: who runs it, which attempt this is, its
/// deadline, the pool's cancellation, and a way to add follow-up jobs.
///
/// The job's future borrows it for as long as it runs.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use brigade::tokio::Builder;
///
/// let (jobs, results) = Builder::new().workers(2)
///     .build(|n: &u64, ctx| Box::pin(async move {
///         assert!(ctx.worker() < 2);
///         Ok::<_, ()>((ctx.seq(), ctx.attempt(), *n))
///     }))
///     .await
///     .unwrap();
/// jobs.send(7).await.unwrap();
/// drop(jobs);
/// let all = results.collect_all().await;
/// assert_eq!(all[0].result, Ok((0, 1, 7)));
/// # }
/// ```
pub struct Context<J> {
    pub(crate) worker: usize,
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: Arc<CancelInner>,
    pub(crate) ops: Arc<dyn JobOps<J>>,
}

impl<J> Context<J> {
    /// The index of the worker running this job, from 0 to workers - 1.
    ///
    /// # Examples
    ///
    /// See [`Context`].
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The job's sequence number (the same as [`Outcome::seq`](crate::Outcome::seq)).
    ///
    /// # Examples
    ///
    /// See [`Context`].
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, ...
    ///
    /// # Examples
    ///
    /// See [`Context`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// This attempt's deadline, when the pool has a [timeout](super::Builder::timeout).
    /// The pool drops the job's future when it passes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, results) = brigade::tokio::Builder::new()
    ///     .timeout(std::time::Duration::from_secs(60))
    ///     .build(|_: &u8, ctx| Box::pin(async move { Ok::<_, ()>(ctx.deadline().is_some()) }))
    ///     .await.unwrap();
    /// jobs.send(1).await.unwrap();
    /// drop(jobs);
    /// assert_eq!(results.collect_all().await[0].result, Ok(true));
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the pool was cancelled. (A running job's future is dropped at cancel, so
    /// this is mostly for code outside it: see [`token`](Context::token).)
    ///
    /// # Examples
    ///
    /// See [`CancelToken`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The pool's cancellation as a value the job can keep and move into other tasks.
    ///
    /// # Examples
    ///
    /// See [`CancelToken`].
    pub fn token(&self) -> CancelToken {
        CancelToken {
            inner: Arc::clone(&self.cancel),
        }
    }

    /// Adds a follow-up job (a crawler's newly found link, say). It never waits: follow-up
    /// jobs go past the queue's capacity rather than deadlock a crew whose workers all
    /// want to enqueue. The pool does not finish while a job that could add more runs.
    ///
    /// Returns the new job's sequence number, or gives the job back if the pool was
    /// cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // Count down from 5, one job per number, one worker, a queue of one.
    /// let (jobs, results) = brigade::tokio::Builder::new().workers(1).queue(1)
    ///     .build(|n: &u32, ctx| Box::pin(async move {
    ///         if *n > 0 { ctx.spawn(n - 1).unwrap(); }
    ///         Ok::<_, ()>(*n)
    ///     }))
    ///     .await.unwrap();
    /// jobs.send(5).await.unwrap();
    /// drop(jobs);
    /// let mut seen: Vec<u32> = results.collect_all().await.into_iter().map(|o| o.job).collect();
    /// seen.sort();
    /// assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    /// # }
    /// ```
    pub fn spawn(&self, job: J) -> Result<u64, J> {
        self.ops.follow_up(job)
    }
}

impl<J> std::fmt::Debug for Context<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("worker", &self.worker)
            .field("seq", &self.seq)
            .field("attempt", &self.attempt)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}
