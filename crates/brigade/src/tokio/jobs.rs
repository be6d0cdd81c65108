//! The sending half of an async pool, [`Jobs`]: async, non-blocking, timed and blocking sends.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use super::blocking::block_on;
use super::error::{self, SendError, SendTimeoutError, TrySendError};
use super::pool::Pool;
use super::shared::Shared;

/// The sending half of an async pool: the seed's `jobs chan<- int`.
///
/// Clone it for more producers. A full queue makes [`send`](Jobs::send) wait
/// (backpressure); every refused send gives the job back.
///
/// # Dropping
///
/// Dropping the last clone closes the pool (as [`close`](Jobs::close) does): what was
/// accepted still runs, and the results stream ends once it is all accounted for.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (jobs, results) = brigade::tokio::Builder::new().workers(2).queue(2)
///     .build(|n: &u32, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n + 1) }) })
///     .await.unwrap();
/// let producer = tokio::spawn(async move {
///     for n in 0..10 { jobs.send(n).await.unwrap(); }
/// });
/// assert_eq!(results.collect_all().await.len(), 10);
/// producer.await.unwrap();
/// # }
/// ```
pub struct Jobs<J> {
    shared: Arc<dyn Sender<J>>,
    pool: Pool,
}

/// What the jobs half needs from the pool, whatever its result types.
pub(crate) trait Sender<J>: Send + Sync {
    /// Accepts the job if there is room: `Ok(seq)`; `Err((job, closed))` if not.
    fn offer(&self, job: J, wait: Option<&mut bool>) -> Result<u64, (J, bool)>;
    fn space(&self) -> &tokio::sync::Notify;
    /// This sender stopped waiting for room.
    fn stop_waiting(&self);
    fn add_sender(&self);
    fn drop_sender(&self);
    fn close(&self);
    /// A send from one of the pool's own jobs: never waits (see [`Jobs::send`]).
    fn send_inside(&self, job: J) -> Result<u64, J>;
}

impl<J: Send, T: Send, E: Send> Sender<J> for Shared<J, T, E> {
    fn offer(&self, job: J, waiting: Option<&mut bool>) -> Result<u64, (J, bool)> {
        let at = if self.cfg.stats {
            crate::clock::ticks()
        } else {
            0
        };
        let mut st = self.lock();
        if st.closed {
            if let Some(w) = waiting {
                if *w {
                    st.senders_waiting -= 1;
                    *w = false;
                }
            }
            return Err((job, true));
        }
        if self.has_room(&st) {
            if let Some(w) = waiting {
                if *w {
                    st.senders_waiting -= 1;
                    *w = false;
                }
            }
            return Ok(self.admit(&mut st, job, at));
        }
        if let Some(w) = waiting {
            if !*w {
                st.senders_waiting += 1;
                *w = true;
            }
        }
        Err((job, false))
    }

    fn space(&self) -> &tokio::sync::Notify {
        &self.space
    }

    fn stop_waiting(&self) {
        self.lock().senders_waiting -= 1;
    }

    fn add_sender(&self) {
        self.lock().senders += 1;
    }

    fn drop_sender(&self) {
        let mut st = self.lock();
        st.senders -= 1;
        if st.senders == 0 {
            self.close_locked(&mut st);
        }
    }

    fn close(&self) {
        let mut st = self.lock();
        self.close_locked(&mut st);
    }

    fn send_inside(&self, job: J) -> Result<u64, J> {
        let at = if self.cfg.stats {
            crate::clock::ticks()
        } else {
            0
        };
        let mut st = self.lock();
        if st.closed {
            return Err(job);
        }
        Ok(self.admit(&mut st, job, at))
    }
}

/// Counts a sender out of the waiting list if its send is dropped while it waits.
struct Waiting<'a, J> {
    sender: &'a dyn Sender<J>,
    counted: bool,
}

impl<J> Drop for Waiting<'_, J> {
    fn drop(&mut self) {
        if self.counted {
            self.sender.stop_waiting();
        }
    }
}

impl<J: Send + 'static> Jobs<J> {
    pub(crate) fn new(shared: Arc<dyn Sender<J>>, pool: Pool) -> Self {
        Jobs { shared, pool }
    }

    /// Sends a job, waiting while there is no room (the queue is full, too many outcomes
    /// are unread, or the job would be past the ordered window). Returns the job's
    /// sequence number.
    ///
    /// # Errors
    ///
    /// The pool is closed or cancelled: the job comes back in the error.
    ///
    /// Called from one of this pool's own jobs, it never waits: the job goes past the
    /// queue's bounds (as [`Context::spawn`](super::Context::spawn) does), so a crew whose
    /// jobs all send cannot deadlock.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the job was not sent and is dropped
    /// with it.
    ///
    /// # Examples
    ///
    /// See [`Jobs`].
    pub async fn send(&self, job: J) -> Result<u64, SendError<J>> {
        self.send_until(job, None)
            .await
            .map_err(|(job, _)| error::closed(job))
    }

    /// Sends every job of `jobs` in turn, waiting for room as [`send`](Jobs::send) does.
    /// Returns how many were sent.
    ///
    /// # Errors
    ///
    /// The pool closed: the job it refused comes back (the rest of the iterator is not
    /// consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, results) = brigade::tokio::Builder::new().queue(4)
    ///     .build(|n: &u32, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// let feed = tokio::spawn(async move { jobs.send_all(0..100).await.unwrap() });
    /// assert_eq!(results.collect_all().await.len(), 100);
    /// assert_eq!(feed.await.unwrap(), 100);
    /// # }
    /// ```
    pub async fn send_all<I: IntoIterator<Item = J>>(&self, jobs: I) -> Result<u64, SendError<J>> {
        let mut n = 0;
        for job in jobs {
            self.send(job).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Sends a job only if there is room now.
    ///
    /// # Errors
    ///
    /// No room now, or the pool is closed: the job comes back in the error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, _results) = brigade::tokio::Builder::new().workers(1).queue(1)
    ///     .build(|n: &u8, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// assert!(jobs.try_send(1).is_ok());
    /// // The worker has not run yet (one thread, no await since): the queue is full.
    /// assert_eq!(jobs.try_send(2).unwrap_err().into_inner(), 2);
    /// # }
    /// ```
    pub fn try_send(&self, job: J) -> Result<u64, TrySendError<J>> {
        self.shared.offer(job, None).map_err(|(job, closed)| {
            if closed {
                error::try_closed(job)
            } else {
                error::full(job)
            }
        })
    }

    /// Sends a job, waiting at most `timeout` for room. Needs a runtime with timers.
    ///
    /// # Errors
    ///
    /// No room before the timeout, or the pool is closed: the job comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Jobs::send).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let (jobs, _results) = brigade::tokio::Builder::new().workers(1).queue(1)
    ///     .build(|_: &u8, _ctx| Box::pin(async { std::future::pending::<()>().await; Ok::<_, ()>(()) }))
    ///     .await.unwrap();
    /// jobs.send(1).await.unwrap(); // the worker takes it and never finishes
    /// tokio::task::yield_now().await;
    /// jobs.send(2).await.unwrap(); // queued
    /// let refused = jobs.send_timeout(3, Duration::from_millis(10)).await.unwrap_err();
    /// assert_eq!(refused.into_inner(), 3);
    /// # jobs.pool().cancel();
    /// # }
    /// ```
    pub async fn send_timeout(
        &self,
        job: J,
        timeout: Duration,
    ) -> Result<u64, SendTimeoutError<J>> {
        let until = tokio::time::Instant::now().checked_add(timeout);
        self.send_until(job, until).await.map_err(|(job, closed)| {
            if closed {
                error::timeout_closed(job)
            } else {
                error::timed_out(job)
            }
        })
    }

    /// Sends a job from a plain thread (not an async task), blocking it while there is no
    /// room. The runtime need not be reachable from this thread.
    ///
    /// # Errors
    ///
    /// The pool is closed or cancelled: the job comes back.
    ///
    /// # Sharp edges
    ///
    /// It blocks the calling thread: never call it from an async task (on a
    /// current-thread runtime that would stop the very workers that make room). Use
    /// [`send`](Jobs::send) there, or call it from `spawn_blocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
    /// let (jobs, results) = brigade::tokio::Builder::new().queue(2)
    ///     .build(|n: &u32, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// let producer = std::thread::spawn(move || {
    ///     for n in 0..10 { jobs.send_blocking(n).unwrap(); }
    /// });
    /// assert_eq!(results.collect_all().await.len(), 10);
    /// producer.join().unwrap();
    /// # }
    /// ```
    pub fn send_blocking(&self, job: J) -> Result<u64, SendError<J>> {
        match self.shared.offer(job, None) {
            Ok(seq) => Ok(seq),
            Err((job, true)) => Err(error::closed(job)),
            Err((job, false)) => block_on(self.send(job)),
        }
    }

    /// The shared send loop: `Err((job, closed))`.
    async fn send_until(
        &self,
        mut job: J,
        until: Option<tokio::time::Instant>,
    ) -> Result<u64, (J, bool)> {
        let sender = &*self.shared;
        if super::pool::inside(self.pool.id()) {
            // A job of this pool waiting for room could wait for ever (every worker might be
            // doing the same): like a follow-up job, it goes past the bounds.
            return sender.send_inside(job).map_err(|j| (j, true));
        }
        let mut waiting = Waiting {
            sender,
            counted: false,
        };
        let mut timer = None;
        loop {
            let mut room = pin!(sender.space().notified());
            room.as_mut().enable();
            match sender.offer(job, Some(&mut waiting.counted)) {
                Ok(seq) => return Ok(seq),
                Err((j, true)) => return Err((j, true)),
                Err((j, false)) => job = j,
            }
            match until {
                None => room.await,
                Some(at) => {
                    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    let expired = std::future::poll_fn(|cx| {
                        if room.as_mut().poll(cx).is_ready() {
                            return std::task::Poll::Ready(false);
                        }
                        t.as_mut().poll(cx).map(|()| true)
                    })
                    .await;
                    if expired {
                        // One last look: room may have come with the deadline.
                        return match sender.offer(job, Some(&mut waiting.counted)) {
                            Ok(seq) => Ok(seq),
                            Err((j, closed)) => Err((j, closed)),
                        };
                    }
                }
            }
        }
    }

    /// Closes the pool for senders (every clone): the seed's `close(jobs)`. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, _results) = brigade::tokio::Builder::new()
    ///     .build(|n: &u8, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n) }) })
    ///     .await.unwrap();
    /// jobs.close();
    /// assert_eq!(jobs.send(7).await.unwrap_err().into_inner(), 7);
    /// # }
    /// ```
    pub fn close(&self) {
        self.shared.close()
    }

    /// The pool's control handle.
    ///
    /// # Examples
    ///
    /// See [`Pool`].
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }
}

impl<J> Clone for Jobs<J> {
    fn clone(&self) -> Self {
        self.shared.add_sender();
        Jobs {
            shared: Arc::clone(&self.shared),
            pool: self.pool.clone(),
        }
    }
}

impl<J> Drop for Jobs<J> {
    fn drop(&mut self) {
        self.shared.drop_sender()
    }
}

impl<J> std::fmt::Debug for Jobs<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}
