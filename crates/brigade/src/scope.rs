//! Scoped pools: a worker function that borrows from the caller's stack.
//!
//! [`Builder::scope`] runs the crew inside [`std::thread::scope`]. The worker
//! function (and what it borrows) lives in the caller's frame; the workers are
//! scoped threads that borrow it, so it needs no `'static` bound and no `Arc`.
//! The jobs, values and errors are still owned (`'static`): they travel
//! through the same [`Jobs`] and [`Results`] halves as any pool's, which may
//! outlive the scope.
//!
//! How it keeps the promises:
//!
//! - The pool's protocol is the unchanged one of `shared.rs`; only the
//!   starting of worker threads differs. Workers are started by a helper
//!   thread of the scope (the "spawner"), because [`Pool::resize`] and the
//!   replacement of a lost worker start threads from other threads, under the
//!   pool's lock, where no `&Scope` is at hand: they post a request, and the
//!   spawner starts the scoped thread.
//! - When the body returns (or panics), the pool is closed and every queued
//!   and running job is finished (cancelled first, if the body panicked), and
//!   every worker thread has ended, before the spawner is told to stop and the
//!   scope joins them all. So no worker outlives the borrow, whatever handles
//!   the body leaked; a [`Jobs`] clone kept past the scope finds the pool
//!   closed.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::builder::{NoState, WithState};
use crate::config::{BoxError, RetryPolicy};
use crate::shared::{BatchRef, Shared, SpawnFn};
use crate::{worker, BuildError, Builder, Context, Jobs, Results};

/// A request to the scope's spawner thread.
enum Request<J, T, E> {
    Start(Arc<Shared<J, T, E>>, usize, BatchRef<J>),
    Stop,
}

impl<R> Builder<NoState, R> {
    /// Runs `body` with the two halves of a pool whose worker function may
    /// borrow from the caller, as [`std::thread::scope`] allows threads to.
    ///
    /// When `body` returns, the pool is closed (a [`Jobs`] clone kept past
    /// the scope finds it closed), every job already sent runs to its
    /// outcome, and every worker has ended; then `scope` returns what `body`
    /// returned. Outcomes not read by then stay in the [`Results`] half if
    /// `body` returned it, and are dropped if it dropped it. If `body`
    /// panics, the pool is cancelled, its workers end, and the panic goes on.
    ///
    /// The jobs, values and errors are owned (`'static`); only the worker
    /// function borrows. The settings are checked as by
    /// [`build`](Builder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::Builder;
    ///
    /// let words = vec!["alpha", "beta", "gamma"]; // borrowed by the workers
    /// let total = Builder::new()
    ///     .workers(2)
    ///     .scope(
    ///         |i: &usize, _ctx| Ok::<_, ()>(words[*i].len()),
    ///         |jobs, results| {
    ///             for i in 0..words.len() {
    ///                 jobs.send(i).unwrap();
    ///             }
    ///             drop(jobs);
    ///             results.map(|o| o.result.unwrap()).sum::<usize>()
    ///         },
    ///     )
    ///     .unwrap();
    /// assert_eq!(total, 14);
    /// ```
    pub fn scope<J, T, E, F, B, O>(self, f: F, body: B) -> Result<O, BuildError>
    where
        J: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&J, &Context<'_, J>) -> Result<T, E> + Send + Sync,
        B: FnOnce(Jobs<J>, Results<J, T, E>) -> O,
        R: RetryPolicy<E>,
    {
        self.state(|_| Ok::<(), BoxError>(())).scope(
            move |_: &mut (), job: &J, ctx: &Context<'_, J>| f(job, ctx),
            body,
        )
    }
}

impl<S: 'static, R> Builder<WithState<S>, R> {
    /// [`Builder::scope`] with per-worker state (see [`Builder::state`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::Builder;
    ///
    /// let offset = 100; // borrowed by the workers
    /// let mut got: Vec<u32> = Builder::new()
    ///     .workers(2)
    ///     .state(|_| Ok::<_, std::io::Error>(String::new()))
    ///     .scope(
    ///         |buf: &mut String, n: &u32, _ctx| {
    ///             buf.clear();
    ///             buf.push_str(&(n + offset).to_string());
    ///             Ok::<_, ()>(buf.parse::<u32>().unwrap())
    ///         },
    ///         |jobs, results| {
    ///             jobs.send_all(1..=3).unwrap();
    ///             drop(jobs);
    ///             results.map(|o| o.result.unwrap()).collect()
    ///         },
    ///     )
    ///     .unwrap();
    /// got.sort();
    /// assert_eq!(got, [101, 102, 103]);
    /// ```
    pub fn scope<J, T, E, F, B, O>(self, f: F, body: B) -> Result<O, BuildError>
    where
        J: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(&mut S, &J, &Context<'_, J>) -> Result<T, E> + Send + Sync,
        B: FnOnce(Jobs<J>, Results<J, T, E>) -> O,
        R: RetryPolicy<E>,
    {
        let cfg = self.cfg.validate()?;
        let retry_if = self.retry.predicate();
        let code = worker::Code {
            init: self.state.init,
            f,
        };
        let name = cfg.name.clone();
        let (to_spawner, requests) = mpsc::channel::<Request<J, T, E>>();
        let stop = to_spawner.clone();
        let to_spawner = Mutex::new(to_spawner);
        let spawn_worker: SpawnFn<J, T, E> = Box::new(move |shared, idx, batch| {
            let sent = to_spawner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(Request::Start(Arc::clone(shared), idx, batch));
            match sent {
                Ok(()) => Ok(None),
                Err(_) => Err(std::io::Error::other("the pool's scope has ended")),
            }
        });
        let outcome = std::thread::scope(|s| {
            let code = &code;
            let spawner_name = format!("{name}-spawner");
            let spawner = std::thread::Builder::new()
                .name(spawner_name)
                .spawn_scoped(s, move || {
                    while let Ok(Request::Start(shared, idx, batch)) = requests.recv() {
                        let worker = Arc::clone(&shared);
                        let started = std::thread::Builder::new()
                            .name(format!("{name}-{idx}"))
                            .spawn_scoped(s, move || worker.worker_main(code, idx, batch));
                        if let Err(e) = started {
                            shared.spawn_failed(idx, e);
                        }
                    }
                })
                .map_err(|e| BuildError::Spawn(std::sync::Arc::new(e)))?;
            let run = || -> Result<std::thread::Result<O>, BuildError> {
                let shared = Shared::start_with(cfg, retry_if, spawn_worker)?;
                let halves = (Jobs::new(shared.clone()), Results::new(shared.clone()));
                let out = catch_unwind(AssertUnwindSafe(|| body(halves.0, halves.1)));
                if out.is_err() {
                    shared.cancel();
                }
                shared.close();
                // Not from one of this pool's workers (it has just been made):
                // this cannot be refused, and waits for every worker to end.
                let _ = shared.wait(None);
                Ok(out)
            };
            let result = run();
            let _ = stop.send(Request::Stop);
            drop(spawner);
            result
        })?;
        match outcome {
            Ok(v) => Ok(v),
            Err(panic) => resume_unwind(panic),
        }
    }
}
