//! The async pool's control handle, [`Pool`]: close, cancel, wait, resize, statistics.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use super::builder::{too_many, JobFuture, MAX_WORKERS};
use super::context::Context;
use super::shared::{After, Shared};
use super::worker::{work, Code, Seat};
use crate::{BuildError, Stats, Stopped, WaitError};

tokio::task_local! {
    /// The pool whose worker runs on this task, to refuse waiting on it from inside.
    static IN_POOL: usize;
}

/// Whether the current task is one of the workers of pool `id`.
pub(crate) fn inside(id: usize) -> bool {
    IN_POOL.try_with(|p| *p == id).unwrap_or(false)
}

/// What the control handle needs from the pool, whatever its types.
pub(crate) trait Control: Send + Sync {
    fn id(&self) -> usize;
    fn close(&self);
    fn cancel(&self);
    fn is_finished(&self) -> bool;
    /// Finished, and every worker gone (its state dropped).
    fn is_done(&self) -> bool;
    fn done(&self) -> &tokio::sync::Notify;
    fn resize(&self, workers: usize) -> Result<(), BuildError>;
    fn stats(&self) -> Stats;
}

/// A running pool: its shared half, its code and the runtime its workers run on.
pub(crate) struct Crew<J: Send, T: Send, E: Send, S, F> {
    shared: Arc<Shared<J, T, E>>,
    code: Arc<Code<S, F, E>>,
    handle: tokio::runtime::Handle,
}

impl<J, T, E, S, F> Crew<J, T, E, S, F>
where
    J: Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
    S: Send + 'static,
    F: for<'a> Fn(&'a mut S, &'a J, &'a Context<J>) -> JobFuture<'a, T, E> + Send + Sync + 'static,
{
    pub(crate) fn new(
        shared: Arc<Shared<J, T, E>>,
        code: Arc<Code<S, F, E>>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        Crew {
            shared,
            code,
            handle,
        }
    }

    /// Spawns the first crew (the slots were counted in by `Shared::new`).
    pub(crate) fn start(&self) {
        for id in 0..self.shared.cfg.workers {
            self.spawn(id, true);
        }
    }

    fn spawn(&self, id: usize, first: bool) {
        // The seat is made before the task: if the runtime drops the task unpolled, the
        // seat's `Drop` still settles the books.
        let seat = Seat::new(Arc::clone(&self.shared), id, first);
        let task = work(seat, Arc::clone(&self.code));
        drop(self.handle.spawn(IN_POOL.scope(self.id(), task)));
    }

    /// Waits until every first worker built its state; the first failure if one did not.
    pub(crate) async fn started(&self) -> Result<(), (usize, String)> {
        loop {
            let mut n = pin!(self.shared.done.notified());
            n.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(e) = st.init_error.take() {
                    return Err(e);
                }
                if st.inits_pending == 0 {
                    return Ok(());
                }
            }
            n.await;
        }
    }
}

impl<J, T, E, S, F> Control for Crew<J, T, E, S, F>
where
    J: Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
    S: Send + 'static,
    F: for<'a> Fn(&'a mut S, &'a J, &'a Context<J>) -> JobFuture<'a, T, E> + Send + Sync + 'static,
{
    fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as *const () as usize
    }

    fn close(&self) {
        let mut st = self.shared.lock();
        self.shared.close_locked(&mut st);
    }

    fn cancel(&self) {
        let mut after = After::default();
        {
            let mut st = self.shared.lock();
            self.shared.cancel_locked(&mut st, &mut after);
        }
        after.run();
    }

    fn is_finished(&self) -> bool {
        self.shared.lock().finished()
    }

    fn is_done(&self) -> bool {
        let st = self.shared.lock();
        st.finished() && st.live == 0
    }

    fn done(&self) -> &tokio::sync::Notify {
        &self.shared.done
    }

    fn resize(&self, workers: usize) -> Result<(), BuildError> {
        if workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if workers > MAX_WORKERS {
            return Err(too_many(workers));
        }
        let mut new = Vec::new();
        {
            let mut st = self.shared.lock();
            if st.finished() {
                return Ok(());
            }
            let old = st.target;
            st.target = workers;
            if st.slots.len() < workers {
                st.slots.resize(workers, false);
            }
            for id in 0..workers {
                if !st.slots[id] {
                    st.slots[id] = true;
                    st.live += 1;
                    new.push(id);
                }
            }
            if workers < old {
                // Idle workers above the new size look again and leave.
                self.shared.work.notify_waiters();
            }
        }
        for id in new {
            self.spawn(id, false);
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

/// A control handle for a running async pool; get one from
/// [`Jobs::pool`](super::Jobs::pool) or [`Results::pool`](super::Results::pool).
///
/// Cheap to clone; knows nothing of the job and result types. Every method may be called
/// any number of times, from any task or thread.
///
/// # Dropping
///
/// Dropping a `Pool` does nothing to the pool.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (jobs, results) = brigade::tokio::Builder::new().workers(2)
///     .build(|n: &u32, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
///     .await.unwrap();
/// let pool = jobs.pool();
/// for n in 0..10 { jobs.send(n).await.unwrap(); }
/// drop(results); // nobody reads the outcomes: the jobs still run
/// drop(jobs);    // close
/// pool.wait().await.unwrap();
/// assert_eq!(pool.stats().succeeded, 10);
/// # }
/// ```
#[derive(Clone)]
pub struct Pool {
    ctl: Arc<dyn Control>,
}

impl Pool {
    pub(crate) fn new(ctl: Arc<dyn Control>) -> Self {
        Pool { ctl }
    }

    pub(crate) fn id(&self) -> usize {
        self.ctl.id()
    }

    /// Graceful shutdown, phase one: take no more jobs from senders; what is queued and
    /// running still finishes. (Running jobs can still add follow-up jobs.)
    ///
    /// # Examples
    ///
    /// See [`Pool::wait`].
    pub fn close(&self) {
        self.ctl.close()
    }

    /// Immediate shutdown: take no more jobs, drop the running jobs' futures now (their
    /// outcomes say [`Cancelled`](crate::Failure::Cancelled), with the job handed back), and
    /// hand back every queued job as cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, results) = brigade::tokio::Builder::new().workers(1)
    ///     .build(|_: &u8, _ctx| Box::pin(async {
    ///         std::future::pending::<()>().await;
    ///         Ok::<_, ()>(())
    ///     }))
    ///     .await.unwrap();
    /// jobs.send(1).await.unwrap();
    /// jobs.send(2).await.unwrap();
    /// jobs.pool().cancel();
    /// let all = results.collect_all().await;
    /// assert_eq!(all.len(), 2);
    /// assert!(all.iter().all(|o| o.result == Err(brigade::Failure::Cancelled)));
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.ctl.cancel()
    }

    /// Waits until the pool is finished (closed, nothing queued or running) and every
    /// worker task has ended and dropped its state.
    ///
    /// # Errors
    ///
    /// [`WaitError::InsideWorker`] when called from one of this pool's own jobs, where the
    /// wait could never end.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, _results) = brigade::tokio::Builder::new()
    ///     .build(|n: &u8, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// let pool = jobs.pool();
    /// pool.close();
    /// pool.wait().await.unwrap();
    /// assert!(pool.is_finished());
    /// # }
    /// ```
    pub async fn wait(&self) -> Result<(), WaitError> {
        if inside(self.id()) {
            return Err(WaitError::InsideWorker);
        }
        loop {
            let mut n = pin!(self.ctl.done().notified());
            n.as_mut().enable();
            if self.ctl.is_done() {
                return Ok(());
            }
            n.await;
        }
    }

    /// Close, then wait: the graceful shutdown in one call.
    ///
    /// # Errors
    ///
    /// As [`wait`](Pool::wait).
    ///
    /// # Examples
    ///
    /// See [`Pool::wait`].
    pub async fn shutdown(&self) -> Result<(), WaitError> {
        self.close();
        self.wait().await
    }

    /// Graceful shutdown up to `grace`, then immediate: close, wait up to `grace`, and if
    /// the pool is still busy, cancel it and wait for the rest.
    ///
    /// # Errors
    ///
    /// As [`wait`](Pool::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let (jobs, _results) = brigade::tokio::Builder::new().workers(1)
    ///     .build(|_: &u8, _ctx| Box::pin(async { std::future::pending::<()>().await; Ok::<_, ()>(()) }))
    ///     .await.unwrap();
    /// jobs.send(1).await.unwrap();
    /// let stopped = jobs.pool().shutdown_timeout(Duration::from_millis(20)).await.unwrap();
    /// assert!(matches!(stopped, brigade::Stopped::Cancelled { .. }));
    /// # }
    /// ```
    pub async fn shutdown_timeout(&self, grace: Duration) -> Result<Stopped, WaitError> {
        if inside(self.id()) {
            return Err(WaitError::InsideWorker);
        }
        self.close();
        let graceful = match tokio::time::Instant::now().checked_add(grace) {
            Some(at) => tokio::time::timeout_at(at, self.wait()).await.is_ok(),
            None => {
                self.wait().await?;
                true
            }
        };
        if graceful {
            return Ok(Stopped::Graceful);
        }
        self.cancel();
        self.wait().await?;
        // The async pool drops running futures at the cancel, so no job is left running.
        Ok(Stopped::Cancelled {
            running: Vec::new(),
        })
    }

    /// Whether the pool is finished: closed, nothing queued, nothing running.
    ///
    /// # Examples
    ///
    /// See [`Pool::wait`].
    pub fn is_finished(&self) -> bool {
        self.ctl.is_finished()
    }

    /// Changes the number of workers. New workers start at once; extra workers leave
    /// after their current job. Zero, or more than [`MAX_WORKERS`], is a [`BuildError`].
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroWorkers`], or [`BuildError::Spawn`] for too many workers.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, _results) = brigade::tokio::Builder::new().workers(2)
    ///     .build(|n: &u8, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// let pool = jobs.pool();
    /// pool.resize(50).unwrap();
    /// assert_eq!(pool.stats().target_workers, 50);
    /// assert!(pool.resize(0).is_err());
    /// # }
    /// ```
    pub fn resize(&self, workers: usize) -> Result<(), BuildError> {
        self.ctl.resize(workers)
    }

    /// A snapshot of the counters and latencies.
    ///
    /// # Examples
    ///
    /// See [`Pool`].
    pub fn stats(&self) -> Stats {
        self.ctl.stats()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}
