//! The library contenders: Brigade and its Rust peers, each started the way
//! its users write it, behind one small interface (send a job, receive a
//! result, finish) so every scenario drives them all the same way.

use std::convert::Infallible;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::util::Check;

/// A library contender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    /// `brigade::Builder` with statistics on (the default): the baseline of every ratio.
    BrigadeOn,
    /// The same with `.stats(false)`.
    BrigadeOff,
    /// N threads each holding a clone of a `crossbeam_channel::bounded(cap)` receiver.
    Crossbeam,
    /// N threads sharing `Arc<Mutex<Receiver>>` of `std::sync::mpsc::sync_channel(cap)`.
    StdMpsc,
    /// `threadpool::ThreadPool::execute` + a result channel.
    Threadpool,
    /// `rayon::ThreadPool::spawn` + a result channel.
    Rayon,
    /// N tokio tasks sharing a `tokio::sync::mpsc` receiver behind a `tokio::sync::Mutex`.
    TokioTasks,
    /// `tokio::task::spawn_blocking` per job + a result channel.
    SpawnBlocking,
    /// `brigade::tokio`: the async flavour, workers on tokio tasks (not in `ALL`: it runs
    /// only in the async scenarios).
    BrigadeAsync,
}

impl Lib {
    /// Every library contender, Brigade first.
    pub const ALL: [Lib; 8] = [
        Lib::BrigadeOn,
        Lib::BrigadeOff,
        Lib::Crossbeam,
        Lib::StdMpsc,
        Lib::Threadpool,
        Lib::Rayon,
        Lib::TokioTasks,
        Lib::SpawnBlocking,
    ];

    /// The id used on the child-process command line.
    pub fn id(self) -> &'static str {
        match self {
            Lib::BrigadeOn => "brigade",
            Lib::BrigadeOff => "brigade-nostats",
            Lib::Crossbeam => "crossbeam",
            Lib::StdMpsc => "std-mpsc",
            Lib::Threadpool => "threadpool",
            Lib::Rayon => "rayon",
            Lib::TokioTasks => "tokio-tasks",
            Lib::SpawnBlocking => "spawn_blocking",
            Lib::BrigadeAsync => "brigade-async",
        }
    }

    /// The name shown in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Lib::BrigadeOn => "brigade, stats on",
            Lib::BrigadeOff => "brigade, stats off",
            Lib::Crossbeam => "crossbeam (hand-rolled)",
            Lib::StdMpsc => "std-mpsc (hand-rolled)",
            Lib::Threadpool => "threadpool",
            Lib::Rayon => "rayon spawn",
            Lib::TokioTasks => "tokio-tasks",
            Lib::SpawnBlocking => "spawn_blocking",
            Lib::BrigadeAsync => "brigade::tokio (async), stats on",
        }
    }

    pub fn from_id(s: &str) -> Option<Lib> {
        Lib::ALL
            .into_iter()
            .chain([Lib::BrigadeAsync])
            .find(|l| l.id() == s)
    }
}

/// How to start a contender.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// Worker threads (or tasks, for tokio-tasks; blocking threads, for spawn_blocking).
    pub workers: usize,
    /// The bounded job queue's capacity (and the result channel's).
    pub queue: usize,
    /// tokio-tasks only: an asynchronous sleep before each job (the async S3 variant).
    pub async_sleep: Option<Duration>,
    /// tokio-tasks only: the runtime's worker threads.
    pub runtime_threads: usize,
}

/// The sending side of a started contender.
pub enum Tx<J, T, F> {
    Std(mpsc::SyncSender<J>),
    Crossbeam(crossbeam_channel::Sender<J>),
    Threadpool {
        pool: threadpool::ThreadPool,
        f: Arc<F>,
        res: mpsc::SyncSender<T>,
    },
    Rayon {
        pool: Arc<rayon::ThreadPool>,
        f: Arc<F>,
        res: mpsc::SyncSender<T>,
    },
    Tokio(tokio::sync::mpsc::Sender<J>),
    Blocking {
        handle: tokio::runtime::Handle,
        f: Arc<F>,
        res: mpsc::SyncSender<T>,
    },
    Brigade(brigade::Jobs<J>),
    BrigadeAsync(brigade::tokio::Jobs<J>),
}

impl<J, T, F> Tx<J, T, F>
where
    J: Send + 'static,
    T: Send + 'static,
    F: Fn(J) -> T + Send + Sync + 'static,
{
    /// Submits one job, waiting while a bounded queue is full.
    #[inline]
    pub fn send(&self, job: J) -> Result<(), String> {
        match self {
            Tx::Std(tx) => tx.send(job).map_err(|_| "the crew is gone".to_string()),
            Tx::Crossbeam(tx) => tx.send(job).map_err(|_| "the crew is gone".to_string()),
            Tx::Threadpool { pool, f, res } => {
                let (f, res) = (f.clone(), res.clone());
                pool.execute(move || {
                    let _ = res.send(f(job));
                });
                Ok(())
            }
            Tx::Rayon { pool, f, res } => {
                let (f, res) = (f.clone(), res.clone());
                pool.spawn(move || {
                    let _ = res.send(f(job));
                });
                Ok(())
            }
            Tx::Tokio(tx) => tx
                .blocking_send(job)
                .map_err(|_| "the tasks are gone".to_string()),
            Tx::Blocking { handle, f, res } => {
                let (f, res) = (f.clone(), res.clone());
                drop(handle.spawn_blocking(move || {
                    let _ = res.send(f(job));
                }));
                Ok(())
            }
            Tx::Brigade(jobs) => jobs
                .send(job)
                .map(drop)
                .map_err(|e| format!("send refused: {e}")),
            Tx::BrigadeAsync(jobs) => jobs
                .send_blocking(job)
                .map(drop)
                .map_err(|e| format!("send refused: {e}")),
        }
    }
}

/// The receiving side of a started contender.
pub enum Rx<J, T> {
    Std(mpsc::Receiver<T>),
    Crossbeam(crossbeam_channel::Receiver<T>),
    Tokio(tokio::sync::mpsc::Receiver<T>),
    Brigade(brigade::Results<J, T, Infallible>),
    BrigadeAsync(
        tokio::runtime::Handle,
        brigade::tokio::Results<J, T, Infallible>,
    ),
}

impl<J: Send + Sync, T: Send> Rx<J, T> {
    /// The next result; `None` once every sender is gone and every result read.
    #[inline]
    pub fn recv(&mut self) -> Option<Result<T, String>> {
        match self {
            Rx::Std(rx) => rx.recv().ok().map(Ok),
            Rx::Crossbeam(rx) => rx.recv().ok().map(Ok),
            Rx::Tokio(rx) => rx.blocking_recv().map(Ok),
            Rx::Brigade(rx) => rx
                .next()
                .map(|o| o.result.map_err(|f| format!("job {} failed: {f:?}", o.seq))),
            Rx::BrigadeAsync(rt, rx) => rt
                .block_on(rx.next())
                .map(|o| o.result.map_err(|f| format!("job {} failed: {f:?}", o.seq))),
        }
    }
}

/// What to shut down once the results are in.
pub enum Guard {
    Threads(Vec<JoinHandle<()>>),
    Threadpool(threadpool::ThreadPool),
    Rayon(Arc<rayon::ThreadPool>),
    Runtime(tokio::runtime::Runtime),
    Brigade(brigade::Pool),
    BrigadeAsync(tokio::runtime::Runtime, brigade::tokio::Pool),
}

impl Guard {
    /// Shuts the contender down: joins its threads where it has a way to.
    pub fn finish(self) -> Result<(), String> {
        match self {
            Guard::Threads(crew) => {
                for t in crew {
                    t.join().map_err(|_| "a worker panicked".to_string())?;
                }
            }
            Guard::Threadpool(pool) => {
                pool.join();
                if pool.panic_count() > 0 {
                    return Err("a job panicked".into());
                }
            }
            // rayon stops its threads asynchronously when the last handle goes.
            Guard::Rayon(pool) => drop(pool),
            Guard::Runtime(rt) => drop(rt),
            Guard::Brigade(pool) => pool.wait().map_err(|e| format!("wait: {e}"))?,
            Guard::BrigadeAsync(rt, pool) => {
                rt.block_on(pool.wait()).map_err(|e| format!("wait: {e}"))?;
            }
        }
        Ok(())
    }
}

/// A started contender.
pub type Started<J, T, F> = (Tx<J, T, F>, Rx<J, T>, Guard);

fn spawn_crew(n: usize, body: impl Fn() + Send + Sync + Clone + 'static) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let body = body.clone();
            thread::spawn(body)
        })
        .collect()
}

/// Starts `lib` with the worker function `f`.
pub fn start<J, T, F>(lib: Lib, o: &Opts, f: F) -> Result<Started<J, T, F>, String>
where
    J: Copy + Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(J) -> T + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Ok(match lib {
        Lib::BrigadeOn | Lib::BrigadeOff => {
            let (jobs, results) = brigade::Builder::new()
                .workers(o.workers)
                .queue(o.queue)
                .stats(lib == Lib::BrigadeOn)
                .build(move |j: &J, _ctx| Ok::<T, Infallible>(f(*j)))
                .map_err(|e| format!("build: {e}"))?;
            let pool = results.pool();
            (
                Tx::Brigade(jobs),
                Rx::Brigade(results),
                Guard::Brigade(pool),
            )
        }
        Lib::BrigadeAsync => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(o.runtime_threads.max(1))
                .enable_time()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            let sleep = o.async_sleep;
            let (jobs, results) = rt
                .block_on(
                    brigade::tokio::Builder::new()
                        .workers(o.workers)
                        .queue(o.queue)
                        .build(move |j: &J, _ctx| {
                            // The work itself first (a no-op or a mix), then the wait: the
                            // future need not hold on to `f`.
                            let v = f(*j);
                            Box::pin(async move {
                                if let Some(d) = sleep {
                                    tokio::time::sleep(d).await;
                                }
                                Ok::<T, Infallible>(v)
                            })
                        }),
                )
                .map_err(|e| format!("build: {e}"))?;
            let pool = results.pool();
            let handle = rt.handle().clone();
            (
                Tx::BrigadeAsync(jobs),
                Rx::BrigadeAsync(handle, results),
                Guard::BrigadeAsync(rt, pool),
            )
        }
        Lib::Crossbeam => {
            let (jtx, jrx) = crossbeam_channel::bounded::<J>(o.queue);
            let (rtx, rrx) = crossbeam_channel::bounded::<T>(o.queue);
            let crew = spawn_crew(o.workers, move || {
                for j in jrx.iter() {
                    if rtx.send(f(j)).is_err() {
                        break;
                    }
                }
            });
            (Tx::Crossbeam(jtx), Rx::Crossbeam(rrx), Guard::Threads(crew))
        }
        Lib::StdMpsc => {
            let (jtx, jrx) = mpsc::sync_channel::<J>(o.queue);
            let (rtx, rrx) = mpsc::sync_channel::<T>(o.queue);
            let jrx = Arc::new(Mutex::new(jrx));
            let crew = spawn_crew(o.workers, move || loop {
                // Bind first: the lock must be released before the job runs.
                let next = jrx.lock().unwrap().recv();
                let Ok(j) = next else { break };
                if rtx.send(f(j)).is_err() {
                    break;
                }
            });
            (Tx::Std(jtx), Rx::Std(rrx), Guard::Threads(crew))
        }
        Lib::Threadpool => {
            let pool = threadpool::ThreadPool::new(o.workers);
            let (res, rrx) = mpsc::sync_channel::<T>(o.queue);
            (
                Tx::Threadpool {
                    pool: pool.clone(),
                    f,
                    res,
                },
                Rx::Std(rrx),
                Guard::Threadpool(pool),
            )
        }
        Lib::Rayon => {
            let pool = Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(o.workers)
                    .build()
                    .map_err(|e| format!("build: {e}"))?,
            );
            let (res, rrx) = mpsc::sync_channel::<T>(o.queue);
            (
                Tx::Rayon {
                    pool: pool.clone(),
                    f,
                    res,
                },
                Rx::Std(rrx),
                Guard::Rayon(pool),
            )
        }
        Lib::TokioTasks => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(o.runtime_threads.max(1))
                .enable_time()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            let (jtx, jrx) = tokio::sync::mpsc::channel::<J>(o.queue);
            let (rtx, rrx) = tokio::sync::mpsc::channel::<T>(o.queue);
            let jrx = Arc::new(tokio::sync::Mutex::new(jrx));
            let sleep = o.async_sleep;
            for _ in 0..o.workers {
                let (jrx, rtx, f) = (jrx.clone(), rtx.clone(), f.clone());
                rt.spawn(async move {
                    loop {
                        let next = jrx.lock().await.recv().await;
                        let Some(j) = next else { break };
                        if let Some(d) = sleep {
                            tokio::time::sleep(d).await;
                        }
                        if rtx.send(f(j)).await.is_err() {
                            break;
                        }
                    }
                });
            }
            (Tx::Tokio(jtx), Rx::Tokio(rrx), Guard::Runtime(rt))
        }
        Lib::SpawnBlocking => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(o.workers)
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            let (res, rrx) = mpsc::sync_channel::<T>(o.queue);
            (
                Tx::Blocking {
                    handle: rt.handle().clone(),
                    f,
                    res,
                },
                Rx::Std(rrx),
                Guard::Runtime(rt),
            )
        }
    })
}

/// The whole life cycle with one producer thread feeding jobs `0..jobs` and
/// this thread collecting the results: start, feed, collect, shut down.
/// Returns the wall time and the check of the results.
pub fn run_feed<F>(lib: Lib, o: &Opts, jobs: u64, f: F) -> Result<(Duration, Check), String>
where
    F: Fn(u64) -> u64 + Send + Sync + 'static,
{
    let start = Instant::now();
    let (tx, mut rx, guard) = start_u64(lib, o, f)?;
    let producer = thread::spawn(move || -> Result<(), String> {
        for j in 0..jobs {
            tx.send(j)?;
        }
        Ok(())
    });
    let mut check = Check::default();
    let mut first_error = None;
    while let Some(r) = rx.recv() {
        match r {
            Ok(v) => check.add(v),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    drop(rx);
    let fed = producer
        .join()
        .map_err(|_| "the producer panicked".to_string())?;
    guard.finish()?;
    let elapsed = start.elapsed();
    fed?;
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((elapsed, check))
}

fn start_u64<F>(lib: Lib, o: &Opts, f: F) -> Result<Started<u64, u64, F>, String>
where
    F: Fn(u64) -> u64 + Send + Sync + 'static,
{
    start(lib, o, f)
}

/// `brigade::Builder::run`: Brigade's own producer thread, fed from an iterator in batches.
pub fn brigade_run<F>(o: &Opts, jobs: u64, f: F) -> Result<(Duration, Check), String>
where
    F: Fn(u64) -> u64 + Send + Sync + 'static,
{
    let start = Instant::now();
    let results = brigade::Builder::new()
        .workers(o.workers)
        .queue(o.queue)
        .run(0..jobs, move |j: &u64, _ctx| Ok::<u64, Infallible>(f(*j)));
    let pool = results.pool();
    let mut check = Check::default();
    for o in results {
        match o.result {
            Ok(v) => check.add(v),
            Err(e) => return Err(format!("job {} failed: {e:?}", o.seq)),
        }
    }
    pool.wait().map_err(|e| format!("wait: {e}"))?;
    Ok((start.elapsed(), check))
}
