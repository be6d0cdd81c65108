//! The worker: a brigade pool fed from the queue. Three threads, each with its
//! own connection:
//!
//! - the **claimer** claims batches (`FOR UPDATE SKIP LOCKED`) while the pool
//!   has room, and sleeps on `LISTEN` (or the poll interval) when the queue is empty;
//! - the **settler** writes outcomes back: completions in one fenced statement
//!   per batch, failures one by one, releases in one statement;
//! - the **heartbeat** renews the leases of every job held, rescues expired
//!   leases of any worker, and prunes finished jobs.
//!
//! The jobs held (claimed, not yet settled) are in one map, `id -> token`.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brigade::{Builder, Context, Failure, Jobs, Outcome, Pool, Results, Stopped};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::queue::{Queue, Settled};
use crate::{Backoff, Error, Job};

/// A worker process's settings; [`start`](Worker::start) or [`run`](Worker::run) it.
///
/// # Examples
///
/// ```no_run
/// use brigade_postgres::{Job, Worker};
/// use std::time::Duration;
/// let report = Worker::new("postgres://postgres@127.0.0.1/test")
///     .queues(["emails"])
///     .workers(8)
///     .lease(Duration::from_secs(30))
///     .drain(true)
///     .run(|job: &Job<String>, _ctx| {
///         println!("sending to {}", job.args);
///         Ok::<_, String>(())
///     })
///     .unwrap();
/// println!("{} completed", report.completed);
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    url: String,
    schema: String,
    queues: Vec<String>,
    workers: usize,
    batch: usize,
    lease: Duration,
    poll: Duration,
    backoff: Backoff,
    timeout: Option<Duration>,
    drain: bool,
    name: String,
    retention: Option<Duration>,
}

/// A started worker: the pool's results half, and its control.
pub type Started<J, T, E> = (Results<Job<J>, T, E>, Control);

/// What a worker did, counted by the settler.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Jobs completed.
    pub completed: u64,
    /// Failed attempts that will be retried after a backoff.
    pub failed: u64,
    /// Failed attempts that made their job `dead`.
    pub dead: u64,
    /// Jobs given back to the queue (never started, or running at the shutdown deadline).
    pub released: u64,
    /// Results refused because the lease had passed on (rescued, cancelled,
    /// taken by another worker); they were dropped.
    pub refused: u64,
    /// Leases the heartbeat found lost while the job was still running here.
    pub leases_lost: u64,
    /// Expired leases of any worker this one rescued.
    pub rescued: u64,
    /// Database errors met and retried or given up on, the last few.
    pub errors: Vec<String>,
}

enum Verdict {
    Complete,
    Fail { error: String, permanent: bool },
    Release { started: bool },
}

enum Msg {
    Settle(i64, i32, Verdict),
    Stop,
}

type Hook = Box<dyn Fn(i64) + Send + Sync>;

struct Shared {
    held: Mutex<HashMap<i64, i32>>,
    room: Condvar,
    stop: AtomicBool,
    stop_heartbeat: AtomicBool,
    report: Mutex<Report>,
    on_refused: Option<Hook>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn error(&self, e: &Error) {
        let mut r = lock(&self.report);
        if r.errors.len() >= 20 {
            r.errors.remove(0);
        }
        r.errors.push(e.to_string());
    }

    /// Forgets claims that are settled, and wakes the claimer.
    fn forget(&self, claims: &[(i64, i32)]) {
        let mut held = lock(&self.held);
        for (id, token) in claims {
            if held.get(id) == Some(token) {
                held.remove(id);
            }
        }
        drop(held);
        self.room.notify_all();
    }

    fn refused(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        lock(&self.report).refused += ids.len() as u64;
        if let Some(h) = &self.on_refused {
            for id in ids {
                h(*id);
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Worker {
    /// A worker for the queue `default` in the schema `brigade`: 4 workers,
    /// claims of up to 100, a 30 s lease, a 2 s poll, 5 attempts.
    pub fn new(url: impl Into<String>) -> Worker {
        Worker {
            url: url.into(),
            schema: "brigade".into(),
            queues: vec!["default".into()],
            workers: 4,
            batch: 100,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(2),
            backoff: Backoff::default(),
            timeout: None,
            drain: false,
            name: default_name(),
            retention: None,
        }
    }

    /// The schema holding the queue (default `brigade`).
    pub fn schema(mut self, s: impl Into<String>) -> Worker {
        self.schema = s.into();
        self
    }

    /// The named queues to take jobs from.
    pub fn queues<I: IntoIterator<Item = S>, S: Into<String>>(mut self, q: I) -> Worker {
        self.queues = q.into_iter().map(Into::into).collect();
        self
    }

    /// Jobs running at once in this process.
    pub fn workers(mut self, n: usize) -> Worker {
        self.workers = n.max(1);
        self
    }

    /// Most jobs claimed by one statement; the process holds at most
    /// `workers + batch` jobs (running or about to).
    pub fn batch(mut self, n: usize) -> Worker {
        self.batch = n.max(1);
        self
    }

    /// How long a claim holds without a heartbeat; the heartbeat renews it
    /// every third of it. A worker that stops (crash, pause, lost network)
    /// loses its jobs to the rescuer this long after its last heartbeat.
    pub fn lease(mut self, d: Duration) -> Worker {
        self.lease = d.max(Duration::from_millis(300));
        self
    }

    /// How often an idle worker looks at the queue when no notification came.
    pub fn poll(mut self, d: Duration) -> Worker {
        self.poll = d.max(Duration::from_millis(10));
        self
    }

    /// The delay before a failed job runs again.
    pub fn backoff(mut self, b: Backoff) -> Worker {
        self.backoff = b;
        self
    }

    /// A time limit per attempt; an attempt past it is a failed attempt.
    pub fn timeout(mut self, d: Duration) -> Worker {
        self.timeout = Some(d);
        self
    }

    /// Stop once no job of the queues is available, scheduled or running
    /// anywhere (instead of waiting for more).
    pub fn drain(mut self, on: bool) -> Worker {
        self.drain = on;
        self
    }

    /// The name recorded on the jobs this worker claims (default `host:pid`).
    pub fn name(mut self, n: impl Into<String>) -> Worker {
        self.name = n.into();
        self
    }

    /// Delete completed and cancelled jobs this long after they finished
    /// (checked every minute by the heartbeat thread). Off by default.
    pub fn retention(mut self, d: Duration) -> Worker {
        self.retention = Some(d);
        self
    }

    /// Runs `f` on every job until the queue is drained (with
    /// [`drain`](Worker::drain)) or for ever; settles each outcome.
    pub fn run<J, T, E, F>(self, f: F) -> Result<Report, Error>
    where
        J: DeserializeOwned + Send + Sync + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
        F: Fn(&Job<J>, &Context<'_, Job<J>>) -> Result<T, E> + Send + Sync + 'static,
    {
        let (results, control) = self.start(f)?;
        for o in results {
            control.settle(&o);
        }
        Ok(control.finish())
    }

    /// Starts the pool and its three threads. Hand every outcome of the
    /// results half to [`Control::settle`], then call [`Control::finish`].
    pub fn start<J, T, E, F>(self, f: F) -> Result<Started<J, T, E>, Error>
    where
        J: DeserializeOwned + Send + Sync + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
        F: Fn(&Job<J>, &Context<'_, Job<J>>) -> Result<T, E> + Send + Sync + 'static,
    {
        self.start_with(f, None)
    }

    /// As [`start`](Worker::start), calling `on_refused(id)` for each result
    /// refused because the job's lease had passed on.
    pub fn start_with<J, T, E, F>(
        self,
        f: F,
        on_refused: Option<Box<dyn Fn(i64) + Send + Sync>>,
    ) -> Result<Started<J, T, E>, Error>
    where
        J: DeserializeOwned + Send + Sync + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
        F: Fn(&Job<J>, &Context<'_, Job<J>>) -> Result<T, E> + Send + Sync + 'static,
    {
        if self.queues.is_empty() {
            return Err(Error::new("a worker needs at least one queue"));
        }
        // Connect all three first: a bad URL or a missing schema is an error now.
        let mut claimer = Queue::connect(&self.url, &self.schema)?;
        claimer.live(&self.queues)?; // the table exists
        claimer.listen()?;
        let settler = Queue::connect(&self.url, &self.schema)?;
        let beat = Queue::connect(&self.url, &self.schema)?;
        let mut b = Builder::new()
            .workers(self.workers)
            .queue(self.workers + self.batch)
            .name("brigade-queue");
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        let (jobs, results) = b
            .build(f)
            .map_err(|e| Error::new(format!("cannot start the pool: {e}")))?;
        let shared = Arc::new(Shared {
            held: Mutex::new(HashMap::new()),
            room: Condvar::new(),
            stop: AtomicBool::new(false),
            stop_heartbeat: AtomicBool::new(false),
            report: Mutex::new(Report::default()),
            on_refused,
        });
        let (tx, rx) = mpsc::channel();
        let cfg = Arc::new(self);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::new(format!("cannot start a thread: {e}")))
        };
        let threads = vec![
            {
                let (cfg, sh, tx) = (cfg.clone(), shared.clone(), tx.clone());
                spawn(
                    "brigade-queue-claim",
                    Box::new(move || claim_loop(&cfg, &sh, claimer, jobs, &tx)),
                )?
            },
            {
                let (cfg, sh) = (cfg.clone(), shared.clone());
                spawn(
                    "brigade-queue-settle",
                    Box::new(move || settle_loop(&cfg, &sh, settler, rx)),
                )?
            },
            {
                let (cfg, sh) = (cfg.clone(), shared.clone());
                spawn(
                    "brigade-queue-heartbeat",
                    Box::new(move || heartbeat_loop(&cfg, &sh, beat)),
                )?
            },
        ];
        let control = Control {
            shared,
            tx,
            pool: results.pool(),
            cfg,
            threads: Arc::new(Mutex::new(threads)),
        };
        Ok((results, control))
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Settles outcomes and stops a started worker. Cloneable: one clone can
/// settle while another shuts down.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    tx: Sender<Msg>,
    pool: Pool,
    cfg: Arc<Worker>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Control {
    /// Writes an outcome back to the queue (batched, on the settler thread):
    /// a result completes the job; an error, panic or timeout is a failed
    /// attempt; a job cancelled before it started is released. A job whose
    /// lease passed on meanwhile is refused and counted in [`Report::refused`].
    pub fn settle<J, T, E: Display>(&self, o: &Outcome<Job<J>, T, E>) {
        let v = match &o.result {
            Ok(_) => Verdict::Complete,
            Err(Failure::Cancelled) => Verdict::Release { started: false },
            Err(f) => Verdict::Fail {
                error: f.to_string(),
                permanent: false,
            },
        };
        let _ = self.tx.send(Msg::Settle(o.job.id, o.job.token, v));
    }

    /// The pool running the jobs (to cancel it, or read its stats).
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// The counts so far.
    pub fn report(&self) -> Report {
        lock(&self.shared.report).clone()
    }

    /// Stops claiming; lets the jobs held run for up to `grace`; then
    /// releases the leases of those still running (their results will be
    /// refused) and hands the queued ones back. Returns how many leases it
    /// released at the deadline.
    pub fn shutdown(&self, grace: Duration) -> usize {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.room.notify_all();
        match self.pool.shutdown_timeout(grace) {
            Ok(Stopped::Cancelled { .. }) => self.release_held(),
            _ => 0,
        }
    }

    /// Releases the leases of every job still held (on a fresh connection),
    /// for a deadline or a hard stop; returns how many.
    pub fn release_held(&self) -> usize {
        let claims: Vec<(i64, i32)> = lock(&self.shared.held)
            .iter()
            .map(|(i, t)| (*i, *t))
            .collect();
        if claims.is_empty() {
            return 0;
        }
        let r = Queue::connect(&self.cfg.url, &self.cfg.schema)
            .and_then(|mut q| q.release(&claims, true));
        match r {
            Ok(refused) => {
                let n = claims.len() - refused.len();
                lock(&self.shared.report).released += n as u64;
                self.shared.forget(&claims);
                n
            }
            Err(e) => {
                self.shared.error(&e);
                0
            }
        }
    }

    /// Call after the results half ended: writes the last outcomes, releases
    /// anything still held, stops the threads, and returns the counts.
    pub fn finish(self) -> Report {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.room.notify_all();
        let _ = self.tx.send(Msg::Stop);
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        let mut rest = Vec::new();
        for t in threads {
            if t.thread().name() == Some("brigade-queue-heartbeat") {
                rest.push(t);
            } else {
                let _ = t.join();
            }
        }
        self.release_held();
        self.shared.stop_heartbeat.store(true, Ordering::SeqCst);
        for t in rest {
            let _ = t.join();
        }
        self.report()
    }
}

/// Reconnects (re-LISTENing if asked) until it works, or until `give_up`
/// says so (`None`).
fn reconnect(cfg: &Worker, sh: &Shared, listen: bool, give_up: &dyn Fn() -> bool) -> Option<Queue> {
    let mut wait = Duration::from_millis(100);
    loop {
        let r = Queue::connect(&cfg.url, &cfg.schema).and_then(|mut q| {
            if listen {
                q.listen()?;
            }
            Ok(q)
        });
        match r {
            Ok(q) => return Some(q),
            Err(e) => sh.error(&e),
        }
        if give_up() {
            return None;
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

fn claim_loop<J: DeserializeOwned + Send + 'static>(
    cfg: &Worker,
    sh: &Shared,
    mut q: Queue,
    jobs: Jobs<Job<J>>,
    tx: &Sender<Msg>,
) {
    let pool = jobs.pool();
    let cap = cfg.workers + cfg.batch;
    // Claim again once half a batch is free (or the crew may run dry), not
    // as each job ends: a claim of one job costs as much as a claim of many.
    let low_water = cfg.workers + cfg.batch / 2;
    loop {
        if sh.stopping() || pool.is_cancelled() {
            break;
        }
        let room = {
            let mut held = lock(&sh.held);
            while held.len() > low_water && !sh.stopping() && !pool.is_cancelled() {
                held = sh
                    .room
                    .wait_timeout(held, cfg.poll)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            cap.saturating_sub(held.len())
        };
        if sh.stopping() || pool.is_cancelled() {
            break;
        }
        let want = room.min(cfg.batch);
        let claimed = match q.claim(&cfg.queues, want as i64, &cfg.name, cfg.lease) {
            Ok(c) => c,
            Err(e) => {
                sh.error(&e);
                if e.is_connection() || q.is_closed() {
                    match reconnect(cfg, sh, true, &|| sh.stopping() || pool.is_cancelled()) {
                        Some(n) => q = n,
                        None => break,
                    }
                } else {
                    std::thread::sleep(cfg.poll);
                }
                continue;
            }
        };
        let got = claimed.len();
        {
            let mut held = lock(&sh.held);
            for j in &claimed {
                held.insert(j.id, j.token);
            }
        }
        for j in claimed {
            let (id, token) = (j.id, j.token);
            match j.decode::<J>() {
                Ok(job) => {
                    if jobs.send(job).is_err() {
                        let _ =
                            tx.send(Msg::Settle(id, token, Verdict::Release { started: false }));
                    }
                }
                Err(error) => {
                    let permanent = true;
                    let _ = tx.send(Msg::Settle(id, token, Verdict::Fail { error, permanent }));
                }
            }
        }
        if got > 0 {
            continue;
        }
        // Nothing due: drain, or sleep until a push, the next due job, or the poll.
        let mut wait = cfg.poll;
        match q.live(&cfg.queues) {
            Ok((running, available, due)) => {
                if cfg.drain && running == 0 && available == 0 && lock(&sh.held).is_empty() {
                    break;
                }
                if cfg.drain && running > 0 {
                    // Their end (or their rescue) sends no NOTIFY: look again soon.
                    wait = wait.min(Duration::from_millis(100));
                }
                if let Some(d) = due.filter(|d| d.is_finite()) {
                    wait = wait.min(Duration::from_secs_f64(d.clamp(0.001, 3600.0)));
                }
            }
            Err(e) => {
                sh.error(&e);
                continue;
            }
        }
        if let Err(e) = q.wait_notified(wait) {
            sh.error(&e);
        }
    }
    drop(jobs); // closes the pool: the queued jobs run, then the results end
}

fn settle_loop(cfg: &Worker, sh: &Shared, mut q: Queue, rx: Receiver<Msg>) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { return };
        let mut batch = vec![first];
        while batch.len() < 2000 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut complete = Vec::new();
        let mut release = [Vec::new(), Vec::new()];
        let mut fail = Vec::new();
        for m in batch {
            match m {
                Msg::Stop => stop = true,
                Msg::Settle(id, token, Verdict::Complete) => complete.push((id, token)),
                Msg::Settle(id, token, Verdict::Release { started }) => {
                    release[started as usize].push((id, token))
                }
                Msg::Settle(id, token, Verdict::Fail { error, permanent }) => {
                    fail.push((id, token, error, permanent))
                }
            }
        }
        let mut with_retry = |what: &mut dyn FnMut(&mut Queue) -> Result<(), Error>| loop {
            match what(&mut q) {
                Ok(()) => return,
                Err(e) => {
                    sh.error(&e);
                    if !(e.is_connection() || q.is_closed()) {
                        return; // the lease will expire and the rescuer take the job
                    }
                    match reconnect(cfg, sh, false, &|| sh.stopping()) {
                        Some(n) => q = n,
                        None => return,
                    }
                }
            }
        };
        if !complete.is_empty() {
            with_retry(&mut |q| {
                let refused = q.complete(&complete)?;
                lock(&sh.report).completed += (complete.len() - refused.len()) as u64;
                sh.refused(&refused);
                Ok(())
            });
            sh.forget(&complete);
        }
        for (started, claims) in release.iter().enumerate() {
            if claims.is_empty() {
                continue;
            }
            with_retry(&mut |q| {
                let refused = q.release(claims, started == 1)?;
                lock(&sh.report).released += (claims.len() - refused.len()) as u64;
                Ok(())
            });
            sh.forget(claims);
        }
        for (id, token, error, permanent) in fail {
            with_retry(&mut |q| {
                match q.fail(id, token, &error, cfg.backoff, permanent)? {
                    Settled::Done => lock(&sh.report).failed += 1,
                    Settled::Dead => lock(&sh.report).dead += 1,
                    Settled::Refused => sh.refused(&[id]),
                }
                Ok(())
            });
            sh.forget(&[(id, token)]);
        }
    }
}

fn heartbeat_loop(cfg: &Worker, sh: &Shared, mut q: Queue) {
    let every = cfg.lease / 3;
    let mut next_prune = Instant::now();
    while !sh.stop_heartbeat.load(Ordering::SeqCst) {
        let claims: Vec<(i64, i32)> = lock(&sh.held).iter().map(|(i, t)| (*i, *t)).collect();
        let r = (|| -> Result<(), Error> {
            if !claims.is_empty() {
                let lost = q.heartbeat(&claims, cfg.lease)?;
                if !lost.is_empty() {
                    // Settled meanwhile, or truly lost: count those still held.
                    let held = lock(&sh.held);
                    let n = claims
                        .iter()
                        .filter(|(i, t)| lost.contains(i) && held.get(i) == Some(t))
                        .count();
                    drop(held);
                    lock(&sh.report).leases_lost += n as u64;
                }
            }
            let rescued = q.rescue()?;
            lock(&sh.report).rescued += rescued;
            if let Some(keep) = cfg.retention {
                if Instant::now() >= next_prune {
                    q.prune(keep)?;
                    next_prune = Instant::now() + Duration::from_secs(60);
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            sh.error(&e);
            if e.is_connection() || q.is_closed() {
                if let Some(n) =
                    reconnect(cfg, sh, false, &|| sh.stop_heartbeat.load(Ordering::SeqCst))
                {
                    q = n;
                }
            }
        }
        let until = Instant::now() + every;
        while Instant::now() < until && !sh.stop_heartbeat.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(every));
        }
    }
}

impl Job<Value> {
    /// Turns the payload into the worker's job type; the error names the job.
    fn decode<J: DeserializeOwned>(self) -> Result<Job<J>, String> {
        let args = serde_json::from_value(self.args)
            .map_err(|e| format!("job {} has a payload this worker cannot read: {e}", self.id))?;
        Ok(Job {
            id: self.id,
            token: self.token,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            queue: self.queue,
            args,
        })
    }
}
