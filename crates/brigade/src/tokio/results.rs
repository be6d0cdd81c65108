//! The receiving half of an async pool, [`Results`]: a `Stream` of outcomes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::pool::{inside, Pool};
use super::shared::{drop_contained, Shared};
use crate::Outcome;

/// The receiving half of an async pool: a [`Stream`] of [`Outcome`]s, the seed's
/// `results <-chan int`.
///
/// The stream ends by itself once the jobs half is closed and every accepted job has its
/// outcome. Outcomes come in completion order, or in submission order when the pool was
/// built with [`ordered`](super::Builder::ordered).
///
/// The workers are tasks of their own, not futures inside this stream: a reader that is
/// slow, or stops reading for a while, never stalls the running jobs. They carry on until
/// the bounded buffers fill, and then only the senders wait.
///
/// # Panics
///
/// Polling the results of a pool from inside one of its own jobs, when no outcome is
/// ready, panics instead of waiting for ever (the pool cannot finish while that job runs);
/// the panic becomes the job's outcome.
///
/// # Dropping
///
/// Dropping the results half does not stop the pool: the jobs still run, their outcomes
/// are dropped, and senders no longer wait for outcomes to be read. Use
/// [`Pool::cancel`] to stop the work as well.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (jobs, mut results) = brigade::tokio::Builder::new().workers(3)
///     .build(|n: &u32, _ctx| { let n = *n; Box::pin(async move { Ok::<_, ()>(n * 2) }) })
///     .await.unwrap();
/// tokio::spawn(async move { for n in 1..=5 { jobs.send(n).await.unwrap(); } });
/// let mut sum = 0;
/// while let Some(o) = results.next().await {
///     sum += o.result.unwrap();
/// }
/// assert_eq!(sum, 30);
/// # }
/// ```
pub struct Results<J, T, E> {
    shared: Arc<Shared<J, T, E>>,
    local: VecDeque<Outcome<J, T, E>>,
    pool: Pool,
}

impl<J: Send, T: Send, E: Send> Results<J, T, E> {
    pub(crate) fn new(shared: Arc<Shared<J, T, E>>, pool: Pool) -> Self {
        Results {
            shared,
            local: VecDeque::new(),
            pool,
        }
    }

    /// The next outcome, or `None` once every accepted job has had its outcome and the
    /// jobs half is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no outcome is lost if the future is dropped.
    ///
    /// # Examples
    ///
    /// See [`Results`].
    pub async fn next(&mut self) -> Option<Outcome<J, T, E>> {
        std::future::poll_fn(|cx| self.poll_outcome(cx)).await
    }

    /// The next value, errgroup-style: `Ok(Some(value))`, `Ok(None)` at the end, or the
    /// first outcome that failed as `Err`, with its job and its
    /// [`Failure`](crate::Failure) inside.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (jobs, mut results) = brigade::tokio::Builder::new().workers(1).ordered()
    ///     .build(|s: &&str, _ctx| { let s = *s; Box::pin(async move { s.parse::<u32>() }) })
    ///     .await.unwrap();
    /// jobs.send_all(["1", "x", "3"]).await.unwrap();
    /// drop(jobs);
    /// assert_eq!(results.try_next().await.unwrap(), Some(1));
    /// let failed = results.try_next().await.unwrap_err();
    /// assert_eq!(failed.job, "x");
    /// # }
    /// ```
    pub async fn try_next(&mut self) -> Result<Option<T>, Outcome<J, T, E>> {
        match self.next().await {
            None => Ok(None),
            Some(o) => match o.result {
                Ok(v) => Ok(Some(v)),
                Err(e) => Err(crate::tokio::error::outcome(
                    o.seq,
                    o.job,
                    o.worker,
                    o.attempts,
                    (o.queue_wait, o.run_time),
                    Err(e),
                )),
            },
        }
    }

    /// Every remaining outcome, in the order the stream gives them.
    ///
    /// # Examples
    ///
    /// See [`Builder`](super::Builder).
    pub async fn collect_all(mut self) -> Vec<Outcome<J, T, E>> {
        let mut all = Vec::new();
        while let Some(o) = self.next().await {
            all.push(o);
        }
        all
    }

    /// The pool's control handle.
    ///
    /// # Examples
    ///
    /// See [`Pool`].
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome<J, T, E>>> {
        if let Some(o) = self.local.pop_front() {
            return Poll::Ready(Some(o));
        }
        {
            let shared = &*self.shared;
            let mut st = shared.lock();
            if !st.ready.is_empty() {
                // Take every ready outcome in one go: one lock trip per batch.
                std::mem::swap(&mut self.local, &mut st.ready);
                st.floor = st.floor.saturating_add(self.local.len() as u64);
                if st.senders_waiting > 0 {
                    shared.space.notify_waiters();
                }
                drop(st);
                return Poll::Ready(self.local.pop_front());
            }
            if st.finished() {
                return Poll::Ready(None);
            }
            if !inside(self.pool.id()) {
                match &st.reader_waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.reader_waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        panic!("brigade: a job read its own pool's results; it would wait for ever");
    }
}

// Nothing in `Results` is ever pinned in place: polling only moves outcomes out.
impl<J, T, E> Unpin for Results<J, T, E> {}

impl<J: Send, T: Send, E: Send> Stream for Results<J, T, E> {
    type Item = Outcome<J, T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_outcome(cx)
    }
}

impl<J, T, E> Drop for Results<J, T, E> {
    fn drop(&mut self) {
        let (ready, parked) = {
            let mut st = self.shared.lock();
            st.reader_alive = false;
            st.reader_waker = None;
            // Senders no longer wait for outcomes to be read.
            self.shared.space.notify_waiters();
            st.take_unread()
        };
        drop_contained((ready, parked, std::mem::take(&mut self.local)));
    }
}

impl<J, T, E> std::fmt::Debug for Results<J, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results").finish_non_exhaustive()
    }
}
