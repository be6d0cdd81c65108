//! The async flavour (feature `tokio`): the same pool, with workers on tokio tasks, for
//! crews of thousands to hundreds of thousands of I/O-bound workers.
//!
//! The seed's I/O-bound uses (a scraper, a mailer, database inserts) want far more
//! workers than threads allow. Here each worker is a spawned tokio task that takes a job,
//! awaits its future and files its outcome; 100,000 of them cost a few tens of MiB.
//!
//! The shape is the thread pool's: a [`Builder`] with the same options, two halves
//! ([`Jobs`] to send on, [`Results`] to read), a [`Pool`] control handle, and the core's
//! [`Outcome`](crate::Outcome), [`Failure`](crate::Failure) and [`Stats`](crate::Stats).
//! What differs:
//!
//! - **The worker function returns a future** that may borrow the job, its [`Context`]
//!   and the worker's state: `|job, ctx| Box::pin(async move { ... })` ([`JobFuture`]).
//! - **Timeouts are real**: at the deadline the job's future is dropped, and the outcome
//!   is [`TimedOut`](crate::Failure::TimedOut) with the job handed back.
//! - **Cancel is immediate**: [`Pool::cancel`] drops the running futures at once
//!   (outcome [`Cancelled`](crate::Failure::Cancelled), job handed back, `attempts` says
//!   it had started) and hands back the queued jobs as cancelled. Code that must clean up
//!   can hold the job's [`CancelToken`].
//! - **No futurelock**: the workers are tasks of their own, not futures buffered inside
//!   the reader's stream, so a slow or paused reader never stalls running jobs; only the
//!   bounded buffers fill, and then the senders wait.
//! - **Sends**: async [`Jobs::send`], [`Jobs::try_send`], [`Jobs::send_timeout`], and
//!   [`Jobs::send_blocking`] for producers on plain threads.
//! - **Results** is a `futures_core::Stream`, with async [`Results::next`] and
//!   [`Results::try_next`].
//!
//! The promises are the thread pool's: one outcome per job on every path (error, panic,
//! timeout, cancel, resize, dropped handles, even the runtime dropped while jobs run);
//! bounded memory; no deadlocks; panics contained (the worker rebuilds its state and
//! carries on); explicit two-phase shutdown ([`Pool::close`], [`Pool::cancel`],
//! [`Pool::shutdown_timeout`]); user `Drop` code never runs under the pool's lock, and a
//! panicking `Drop` never kills a worker.
//!
//! Timeouts, the rate limit, retry backoff, [`Jobs::send_timeout`] and
//! [`Pool::shutdown_timeout`] need the runtime's time driver (`enable_time`, on with
//! `#[tokio::main]`).
//!
//! # Examples
//!
//! The seed's program: 5 jobs, 3 workers, each job takes a while.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use brigade::tokio::Builder;
//!
//! let (jobs, mut results) = Builder::new()
//!     .workers(3)
//!     .queue(5)
//!     .build(|job: &u32, ctx| Box::pin(async move {
//!         println!("worker {} started job {job}", ctx.worker() + 1);
//!         tokio::time::sleep(Duration::from_millis(10)).await;
//!         Ok::<_, std::convert::Infallible>(job * 2)
//!     }))
//!     .await
//!     .unwrap();
//! for j in 1..=5 {
//!     jobs.send(j).await.unwrap();
//! }
//! drop(jobs); // close(jobs)
//! let mut sum = 0;
//! while let Some(outcome) = results.next().await {
//!     sum += outcome.result.unwrap();
//! }
//! assert_eq!(sum, 30);
//! # }
//! ```

mod blocking;
mod builder;
mod context;
mod error;
mod jobs;
mod pool;
mod results;
mod shared;
mod worker;

pub use builder::{Builder, Halves, JobFuture, NoState, WithState, MAX_WORKERS};
pub use context::{CancelToken, Context};
pub use error::{SendError, SendTimeoutError, TrySendError};
pub use jobs::Jobs;
pub use pool::Pool;
pub use results::Results;
