//! Brigade: a worker pool whose promises hold on every path.
//!
//! A fixed crew of workers takes jobs from a bounded queue and hands back one
//! [`Outcome`] per job. It is the Go worker-pool pattern (workers, a buffered
//! jobs channel, a results channel, a `WaitGroup`, `close(jobs)`), with the
//! bookkeeping done by the library instead of by hand.
//!
//! # A tour: the seed's six steps in Rust
//!
//! **Step 1, the worker function.** Go's `worker(id, jobs, results, wg)`
//! becomes a plain function of the job and a [`Context`]. The context carries
//! what Go passes by hand: the worker's id, the job's sequence number, the
//! attempt, cancellation. The function returns a `Result`: errors are
//! outcomes (the seed's pattern 2), not panics.
//!
//! ```
//! use brigade::Context;
//! fn worker(job: &u32, ctx: &Context<u32>) -> Result<u32, String> {
//!     println!("Worker {} started job {job}", ctx.worker() + 1);
//!     Ok(job * 2)
//! }
//! # let _ = worker;
//! ```
//!
//! **Step 2, configuration.** `numWorkers` and the channel's buffer are
//! [`Builder::workers`] and [`Builder::queue`]; [`Builder::cpu_bound`] and
//! [`Builder::io_bound`] apply the seed's rule of thumb. Zero workers is a
//! build error, not a hang.
//!
//! **Step 3, the channels.** [`Builder::build`] returns two halves: [`Jobs`]
//! to send on (cloneable across producer threads) and [`Results`] to read
//! from. The direction is in the types, as with Go's `chan<-` and `<-chan`.
//! A full queue blocks the sender: backpressure.
//!
//! **Step 4, the workers** start inside `build`, each on its own thread,
//! each optionally with its own state ([`Builder::state`]: one connection per
//! worker).
//!
//! **Step 5, send and close.** [`Jobs::send`], then drop the jobs half (or
//! [`Jobs::close`]): that is `close(jobs)`.
//!
//! **Step 6, wait and collect.** Iterate the results half. There is no
//! `wg.Wait(); close(results)` to get wrong: the iterator ends by itself once
//! the jobs half is closed and every accepted job has its outcome.
//!
//! ```
//! use brigade::Builder;
//!
//! let (jobs, results) = Builder::new()
//!     .workers(3)
//!     .queue(5)
//!     .build(|job: &u32, _ctx| Ok::<u32, String>(job * 2))
//!     .unwrap();
//! for j in 1..=5 {
//!     jobs.send(j).unwrap();
//! }
//! drop(jobs);
//! let mut doubled: Vec<u32> = results.map(|o| o.result.unwrap()).collect();
//! doubled.sort();
//! assert_eq!(doubled, [2, 4, 6, 8, 10]);
//! ```
//!
//! # The seed's patterns
//!
//! - **Dynamic job generation** (pattern 1): [`Builder::run`] feeds any
//!   iterator from a producer thread, lazily, as the queue has room; and a job
//!   can add follow-up jobs with [`Context::spawn`].
//! - **Error handling** (pattern 2): every job yields an [`Outcome`] whose
//!   `result` is the value or a [`Failure`]: the worker's error, a panic with
//!   its message, a timeout, or cancellation.
//! - **Shutdown with context** (pattern 3): [`Pool::cancel`] stops new starts,
//!   hands queued jobs back as cancelled outcomes, and running jobs see
//!   [`Context::is_cancelled`]. [`Pool::shutdown_timeout`] is graceful up to a
//!   deadline, then immediate.
//!
//! ```
//! use brigade::{Builder, Failure};
//!
//! let outcomes: Vec<_> = Builder::new()
//!     .workers(2)
//!     .ordered()
//!     .run(["7", "x", "9"], |s: &&str, _ctx| s.parse::<u32>().map_err(|e| e.to_string()))
//!     .collect();
//! assert_eq!(outcomes[0].result, Ok(7));
//! assert!(matches!(&outcomes[1].result, Err(Failure::Error(e)) if e.contains("invalid digit")));
//! assert_eq!(outcomes[1].job, "x"); // the failed job comes back: retry it or record it
//! ```
//!
//! # The async flavour (feature `tokio`)
//!
//! For work that mostly waits (fetching URLs, sending mail, talking to a database)
//! the seed's rule of thumb asks for far more workers than threads allow. With the
//! `tokio` feature, `brigade::tokio` is the same pool with its workers on tokio
//! tasks: the same options, [`Outcome`]s, [`Failure`]s and [`Stats`], crews of
//! 100,000 workers, real timeouts (the job's future is dropped at its deadline)
//! and an immediate cancel. The worker function returns a boxed future that may
//! borrow the job and its context.
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use brigade::Failure;
//!
//! let (jobs, mut results) = brigade::tokio::Builder::new()
//!     .workers(10_000)
//!     .timeout(Duration::from_millis(50))
//!     .build(|ms: &u64, _ctx| Box::pin(async move {
//!         tokio::time::sleep(Duration::from_millis(*ms)).await; // an I/O wait
//!         Ok::<_, std::io::Error>(*ms)
//!     }))
//!     .await
//!     .unwrap();
//! jobs.send(1).await.unwrap();
//! jobs.send(60_000).await.unwrap(); // a minute: past the timeout
//! drop(jobs);
//! let mut timed_out = Vec::new();
//! while let Some(o) = results.next().await {
//!     if matches!(o.result, Err(Failure::TimedOut)) {
//!         timed_out.push(o.job); // the job comes back
//!     }
//! }
//! assert_eq!(timed_out, [60_000]);
//! # }
//! # #[cfg(not(feature = "tokio"))] fn main() {}
//! ```
//!
//! # The promises
//!
//! 1. **One outcome per job, always**, on every path: error, panic, timeout,
//!    cancel, resize, dropped handles. A refused send gives the job back.
//! 2. **Bounded memory**: the queue, the unread outcomes and the ordered
//!    window are all bounded, so ten million jobs use what ten thousand do.
//! 3. **No deadlocks** from closing, cancelling, dropping or panics; follow-up
//!    jobs never deadlock the crew; waiting from inside a worker is an error.
//! 4. **A panic is contained**: it becomes that job's outcome, and the worker
//!    rebuilds its state and carries on.
//! 5. **Shutdown is explicit**: [`Pool::close`] (graceful), [`Pool::cancel`]
//!    (immediate), [`Pool::shutdown_timeout`] (graceful, then immediate).
//! 6. **Cheap**: one lock trip per batch of jobs, a wake-up only for a thread
//!    that sleeps, and a cheap clock for the statistics ([`Stats`]).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod builder;
mod clock;
mod config;
mod context;
mod error;
mod guard;
mod jobs;
mod outcome;
mod pool;
mod results;
#[cfg(not(loom))]
mod scope;
mod shared;
mod stats;
mod sync;
#[cfg(feature = "tokio")]
pub mod tokio;
mod worker;

pub use builder::{Builder, NoState, WithState};
pub use config::{BoxError, RetryEvery, RetryPolicy, RetryWhen, MAX_WORKERS};
pub use context::Context;
pub use error::{
    BuildError, InitError, NextError, SendError, SendTimeoutError, TrySendError, WaitError,
};
pub use jobs::Jobs;
pub use outcome::{Failure, Outcome, Panic};
pub use pool::{Pool, Stopped};
pub use results::Results;
pub use stats::{Percentiles, Stats};

/// The two halves [`Builder::build`] returns: send on the first, read outcomes from the second.
///
/// # Examples
///
/// ```
/// let (jobs, results): brigade::Halves<u8, u8, ()> =
///     brigade::Builder::new().build(|n: &u8, _ctx| Ok(*n)).unwrap();
/// # drop((jobs, results));
/// ```
pub type Halves<J, T, E> = (Jobs<J>, Results<J, T, E>);
