//! A durable job queue on PostgreSQL for brigade: when one machine is not
//! enough, many worker processes on many machines share one queue in the
//! database they already run, and a `kill -9` loses nothing.
//!
//! # A tour
//!
//! **Step 1, the schema.** [`Queue::migrate`] applies the embedded, versioned
//! migrations the schema lacks (idempotently, under an advisory lock).
//!
//! **Step 2, push.** [`Queue::push`] / [`Queue::push_many`] insert jobs (a
//! `jsonb` payload, a named queue, a priority, a `run_at`, `max_attempts`, a
//! unique key) and wake idle workers with `NOTIFY`.
//!
//! **Step 3, work.** A [`Worker`] runs a brigade pool fed from the queue. Its
//! worker function has the in-memory pool's shape, `Fn(&Job<J>, &Context) ->
//! Result<T, E>`; [`Job`] derefs to the payload `J`. A panic, an error or a
//! timeout is a failed attempt.
//!
//! **The guarantees**, in the queue's own words (see `DESIGN.md` beside this file):
//!
//! - a claim (`FOR UPDATE SKIP LOCKED`, in batches) sets a lease
//!   (`lease_until`) and increments the job's **token**; a heartbeat renews
//!   the lease while the job runs;
//! - completing, failing, renewing and releasing are all fenced `WHERE id = $1
//!   AND token = $2 AND state = 'running'`: a worker paused past its lease
//!   learns its result was refused ([`Report::refused`]) and drops it;
//! - a rescuer moves expired leases back to `available` under the same guard,
//!   the attempt counted;
//! - failed attempts come back after a capped exponential backoff with
//!   jitter; after `max_attempts` the job is `dead`, with its last error and
//!   its history, and [`Queue::retry`] replays it.
//!
//! # Examples
//!
//! ```no_run
//! use brigade_postgres::{Job, NewJob, Queue, Worker};
//! let url = "postgres://postgres@127.0.0.1/test";
//! let mut q = Queue::connect(url, "brigade")?;
//! q.migrate()?;
//! q.push(&NewJob::new(serde_json::json!(21)))?;
//! let report = Worker::new(url)
//!     .drain(true)
//!     .run(|n: &Job<u64>, _ctx| Ok::<_, String>(**n * 2))?;
//! assert_eq!(report.completed, 1);
//! # Ok::<(), brigade_postgres::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod queue;
mod schema;
mod worker;

use std::ops::Deref;
use std::time::Duration;

pub use error::Error;
pub use queue::{DeadJob, NewJob, Queue, Running, Settled, Status};
pub use schema::LATEST as SCHEMA_VERSION;
pub use worker::{Control, Report, Started, Worker};

/// A claimed job: the payload `J` (also reached through `Deref`) with its
/// id, attempt and the token of this claim.
#[derive(Debug, Clone)]
pub struct Job<J> {
    /// The job's id.
    pub id: i64,
    /// This attempt, from 1.
    pub attempt: i32,
    /// Attempts before the job is dead.
    pub max_attempts: i32,
    /// The queue it came from.
    pub queue: String,
    /// The payload.
    pub args: J,
    token: i32,
}

impl<J> Job<J> {
    /// The claim's token: every claim of the job increments it, and only the
    /// holder of the current token can complete, fail or renew the job.
    pub fn token(&self) -> i32 {
        self.token
    }
}

impl<J> Deref for Job<J> {
    type Target = J;
    fn deref(&self) -> &J {
        &self.args
    }
}

/// The delay before a failed job runs again: `base * 2^(attempt-1)`, at most
/// `max`, times a random factor in [0.5, 1) (jitter, so that jobs that failed
/// together do not come back together).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay (before jitter).
    pub base: Duration,
    /// The cap (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s, doubling, capped at 10 minutes.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
        }
    }
}
