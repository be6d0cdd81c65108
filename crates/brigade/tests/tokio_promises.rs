//! The promises of DESIGN.md, proven against the async pool (`brigade::tokio`), each on
//! both the current-thread and the multi-thread runtime.
//!
//! No test relies on `sleep` to pass: jobs that must be running when something happens
//! say so on a channel, and a sleep only ever stands for "a job that takes a while".
#![cfg(feature = "tokio")]

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brigade::tokio::{Builder, Context, JobFuture};
use brigade::{BuildError, Failure, Outcome, Stopped, WaitError};
use common::{quiet_boom, watchdog};
use tokio::sync::mpsc;

/// The two runtimes every test runs on.
fn runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    vec![
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap(),
        ),
    ]
}

/// Runs the test body on both runtimes, under a watchdog: a hang fails the test.
fn on_both<F, Fut>(body: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()>,
{
    quiet_boom();
    let body = Arc::new(body);
    for (name, rt) in runtimes() {
        let body = Arc::clone(&body);
        watchdog(60, move || {
            eprintln!("-- on the {name} runtime");
            rt.block_on(body());
        });
    }
}

/// What a job of the mixed scenarios does, by its number.
fn mixed<'a>(n: &'a u32, _ctx: &'a Context<u32>) -> JobFuture<'a, u32, String> {
    Box::pin(async move {
        match n % 5 {
            0 => Ok(*n),
            1 => Err(format!("bad {n}")),
            2 => panic!("boom {n}"),
            3 => {
                // Far past the pool's timeout: the pool must drop this future.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(*n)
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(n * 10)
            }
        }
    })
}

/// Checks every accepted job has exactly one outcome, its own job handed back.
fn one_each(outcomes: &[Outcome<u32, u32, String>], accepted: &[(u64, u32)]) {
    assert_eq!(
        outcomes.len(),
        accepted.len(),
        "one outcome per accepted job"
    );
    let mut seen = HashSet::new();
    for o in outcomes {
        assert!(seen.insert(o.seq), "seq {} reported twice", o.seq);
    }
    for (seq, job) in accepted {
        let o = outcomes
            .iter()
            .find(|o| o.seq == *seq)
            .expect("an outcome for every job");
        assert_eq!(o.job, *job, "the job comes back with its outcome");
    }
}

#[test]
fn every_job_has_one_outcome_with_ok_err_panic_timeout_mixed() {
    on_both(|| async {
        let (jobs, results) = Builder::new()
            .workers(8)
            .queue(4)
            .timeout(Duration::from_millis(30))
            .build(mixed)
            .await
            .unwrap();
        let pool = jobs.pool();
        let feed = tokio::spawn(async move {
            let mut accepted = Vec::new();
            for n in 0..200u32 {
                accepted.push((jobs.send(n).await.unwrap(), n));
            }
            accepted
        });
        let outcomes = results.collect_all().await;
        let accepted = feed.await.unwrap();
        one_each(&outcomes, &accepted);
        for o in &outcomes {
            let n = o.job;
            match (n % 5, &o.result) {
                (0, Ok(v)) => assert_eq!(*v, n),
                (1, Err(Failure::Error(e))) => assert_eq!(e, &format!("bad {n}")),
                (2, Err(Failure::Panicked(p))) => {
                    assert!(p.to_string().contains(&format!("boom {n}")))
                }
                (3, Err(Failure::TimedOut)) => assert_eq!(o.attempts, 1),
                (4, Ok(v)) => assert_eq!(*v, n * 10),
                (_, r) => panic!("job {n}: unexpected {r:?}"),
            }
        }
        let s = pool.stats();
        assert_eq!(
            (
                s.submitted,
                s.succeeded,
                s.failed,
                s.panicked,
                s.timed_out,
                s.cancelled
            ),
            (200, 80, 40, 40, 40, 0)
        );
        // Panics were contained: the pool kept its size.
        assert_eq!(s.target_workers, 8);
        pool.wait().await.unwrap();
    });
}

#[test]
fn cancel_drops_running_futures_and_hands_back_queued_jobs() {
    on_both(|| async {
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let (cleaned_tx, mut cleaned) = mpsc::unbounded_channel();
        let (jobs, results) = Builder::new()
            .workers(3)
            .queue(100)
            .build(move |n: &u32, ctx| {
                let started = started_tx.clone();
                let cleaned = cleaned_tx.clone();
                let token = ctx.token();
                Box::pin(async move {
                    // Code outside the job's future sees the cancellation.
                    tokio::spawn(async move {
                        token.cancelled().await;
                        let _ = cleaned.send(());
                    });
                    started.send(*n).unwrap();
                    std::future::pending::<()>().await;
                    Ok::<u32, ()>(*n)
                })
            })
            .await
            .unwrap();
        let mut accepted = Vec::new();
        for n in 0..20u32 {
            accepted.push((jobs.send(n).await.unwrap(), n));
        }
        for _ in 0..3 {
            started.recv().await.unwrap();
        }
        let pool = jobs.pool();
        pool.cancel();
        // After a cancel, sends are refused with the job handed back.
        assert_eq!(jobs.send(99).await.unwrap_err().into_inner(), 99);
        assert_eq!(jobs.try_send(98).unwrap_err().into_inner(), 98);
        let outcomes: Vec<_> = results.collect_all().await;
        assert_eq!(outcomes.len(), 20);
        let mut seen = HashSet::new();
        for o in &outcomes {
            assert!(seen.insert(o.seq));
            assert_eq!(o.result, Err(Failure::Cancelled));
        }
        let ran = outcomes.iter().filter(|o| o.attempts == 1).count();
        assert_eq!(
            ran, 3,
            "the three running jobs were dropped, the rest never started"
        );
        assert!(outcomes
            .iter()
            .filter(|o| o.attempts == 0)
            .all(|o| o.worker.is_none()));
        for _ in 0..3 {
            cleaned.recv().await.unwrap();
        }
        pool.wait().await.unwrap();
        assert_eq!(pool.stats().cancelled, 20);
    });
}

#[test]
fn timeout_drops_the_future_and_hands_the_job_back() {
    on_both(|| async {
        struct Flag(Arc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let (jobs, results) = Builder::new()
            .workers(2)
            .timeout(Duration::from_millis(20))
            .build(move |s: &String, _ctx| {
                let flag = Flag(d.clone());
                Box::pin(async move {
                    let _flag = flag;
                    std::future::pending::<()>().await;
                    Ok::<usize, ()>(s.len())
                })
            })
            .await
            .unwrap();
        jobs.send("first".to_string()).await.unwrap();
        jobs.send("second".to_string()).await.unwrap();
        drop(jobs);
        let mut outcomes = results.collect_all().await;
        outcomes.sort_by_key(|o| o.seq);
        assert_eq!(outcomes[0].job, "first");
        assert_eq!(outcomes[1].job, "second");
        assert!(outcomes.iter().all(|o| o.result == Err(Failure::TimedOut)));
        assert_eq!(dropped.load(Ordering::SeqCst), 2, "each future was dropped");
    });
}

#[test]
fn dropping_the_handles_in_any_order_still_runs_every_job() {
    on_both(|| async {
        // Every order of dropping (jobs, results) while jobs run, with a pool handle kept.
        for results_first in [false, true] {
            let done = Arc::new(AtomicUsize::new(0));
            let d = done.clone();
            let (jobs, results) = Builder::new()
                .workers(4)
                .queue(8)
                .results_capacity(2)
                .build(move |_: &u32, _ctx| {
                    let d = d.clone();
                    Box::pin(async move {
                        tokio::task::yield_now().await;
                        d.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(())
                    })
                })
                .await
                .unwrap();
            let pool = results.pool();
            if results_first {
                // Nobody reads: senders must not wait for outcomes to be read.
                drop(results);
                for n in 0..50 {
                    jobs.send(n).await.unwrap();
                }
                drop(jobs);
            } else {
                let feed = tokio::spawn(async move {
                    for n in 0..50 {
                        jobs.send(n).await.unwrap();
                    }
                });
                let mut results = results;
                // Read a few, then walk away.
                for _ in 0..3 {
                    results.next().await.unwrap();
                }
                drop(results);
                feed.await.unwrap();
            }
            pool.wait().await.unwrap();
            assert_eq!(done.load(Ordering::SeqCst), 50);
            let s = pool.stats();
            assert_eq!((s.submitted, s.succeeded), (50, 50));
        }
        // Dropping every handle at once: the workers still finish and exit.
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, mut all_done) = mpsc::unbounded_channel();
        let d = done.clone();
        let (jobs, results) = Builder::new()
            .workers(2)
            .build(move |_: &u32, _ctx| {
                let (d, tx) = (d.clone(), tx.clone());
                Box::pin(async move {
                    if d.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                        tx.send(()).unwrap();
                    }
                    Ok::<_, ()>(())
                })
            })
            .await
            .unwrap();
        for n in 0..10 {
            jobs.send(n).await.unwrap();
        }
        drop((jobs, results));
        all_done.recv().await.unwrap();
    });
}

#[test]
fn dropping_the_runtime_while_jobs_run_still_gives_one_outcome_each() {
    quiet_boom();
    for multi in [false, true] {
        watchdog(60, move || {
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .unwrap();
            let (jobs, results, accepted) = rt.block_on(async {
                let (started_tx, mut started) = mpsc::unbounded_channel();
                let (jobs, results) = Builder::new()
                    .workers(4)
                    .queue(64)
                    .build(move |n: &u32, _ctx| {
                        let started = started_tx.clone();
                        Box::pin(async move {
                            if n % 2 == 0 {
                                return Ok::<_, ()>(*n);
                            }
                            started.send(()).unwrap();
                            std::future::pending::<()>().await;
                            Ok(*n)
                        })
                    })
                    .await
                    .unwrap();
                let mut accepted = Vec::new();
                for n in 0..40u32 {
                    accepted.push((jobs.send(n).await.unwrap(), n));
                }
                // Four odd jobs hold the four workers; everything else waits or is done.
                for _ in 0..4 {
                    started.recv().await.unwrap();
                }
                (jobs, results, accepted)
            });
            // A producer on a plain thread, blocked on a full queue, when the runtime goes.
            let full_jobs = jobs.clone();
            let blocked = std::thread::spawn(move || {
                let mut refused = None;
                for n in 100..200u32 {
                    if let Err(e) = full_jobs.send_blocking(n) {
                        refused = Some(e.into_inner());
                        break;
                    }
                }
                refused
            });
            drop(rt);
            // The blocked producer is released with its job handed back.
            assert!(blocked.join().unwrap().is_some());
            drop(jobs);
            // Read on another runtime: every job has exactly one outcome.
            let rt2 = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let outcomes = rt2.block_on(results.collect_all());
            let mut seen = HashSet::new();
            for o in &outcomes {
                assert!(seen.insert(o.seq));
                match &o.result {
                    Ok(v) => assert_eq!(*v % 2, 0),
                    Err(Failure::Cancelled) => {}
                    r => panic!("unexpected {r:?}"),
                }
            }
            for (seq, n) in &accepted {
                let o = outcomes.iter().find(|o| o.seq == *seq).expect("outcome");
                assert_eq!(o.job, *n);
            }
            // The blocked producer's accepted jobs are there too, each once.
            assert!(outcomes.len() >= accepted.len());
        });
    }
}

#[test]
fn a_slow_reader_never_stalls_running_jobs() {
    // The futurelock of `buffer_unordered`: the reader takes one outcome, then in its loop
    // body waits for something only the other running jobs can do. With the workers on
    // tasks of their own, they carry on.
    on_both(|| async {
        let all_ran = Arc::new(tokio::sync::Notify::new());
        let count = Arc::new(AtomicUsize::new(0));
        let (a, c) = (all_ran.clone(), count.clone());
        let (jobs, mut results) = Builder::new()
            .workers(16)
            .queue(16)
            .build(move |n: &u32, _ctx| {
                let (a, c) = (a.clone(), c.clone());
                Box::pin(async move {
                    tokio::task::yield_now().await;
                    if c.fetch_add(1, Ordering::SeqCst) + 1 == 16 {
                        a.notify_one();
                    }
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        for n in 0..16 {
            jobs.send(n).await.unwrap();
        }
        drop(jobs);
        let first = results.next().await.unwrap();
        assert!(first.is_ok());
        // The loop body awaits the other jobs: they must make progress without us reading.
        all_ran.notified().await;
        let rest = results.collect_all().await;
        assert_eq!(rest.len(), 15);
    });
}

#[test]
fn impossible_settings_are_build_errors_not_panics() {
    on_both(|| async {
        fn ok<'a>(n: &'a u8, _ctx: &'a Context<u8>) -> JobFuture<'a, u8, ()> {
            Box::pin(async move { Ok(*n) })
        }
        let err = |b: Builder| async move { b.build(ok).await.err() };
        assert!(matches!(
            err(Builder::new().workers(0)).await,
            Some(BuildError::ZeroWorkers)
        ));
        assert!(matches!(
            err(Builder::new().workers(usize::MAX)).await,
            Some(BuildError::Spawn(_))
        ));
        assert!(matches!(
            err(Builder::new().queue(0)).await,
            Some(BuildError::ZeroQueue)
        ));
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE] {
            assert!(
                matches!(
                    err(Builder::new().rate_limit(rate)).await,
                    Some(BuildError::BadRate)
                ),
                "{rate}"
            );
        }
        // A retry predicate of another error type no longer compiles (typed builder).
        // Huge but possible settings work.
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(usize::MAX)
            .results_capacity(usize::MAX)
            .ordered_window(usize::MAX)
            .timeout(Duration::MAX)
            .backoff(Duration::MAX, Duration::MAX)
            .retries(u32::MAX)
            .rate_limit(f64::MAX)
            .build(ok)
            .await
            .unwrap();
        let pool = jobs.pool();
        assert!(matches!(pool.resize(0), Err(BuildError::ZeroWorkers)));
        assert!(pool.resize(usize::MAX).is_err());
        jobs.send(3).await.unwrap();
        drop(jobs);
        let o = results.collect_all().await;
        assert_eq!(o[0].result, Ok(3));
        // An ordered pool over the whole range (window = queue + workers saturates).
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(usize::MAX)
            .ordered()
            .build(ok)
            .await
            .unwrap();
        jobs.send_all(0..10).await.unwrap();
        drop(jobs);
        let seqs: Vec<u64> = results.collect_all().await.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
        // Retries with an endless backoff end at a cancel, with the error.
        let (jobs, mut results) = Builder::new()
            .retries(u32::MAX)
            .backoff(Duration::MAX, Duration::MAX)
            .build(|_: &u8, _ctx| Box::pin(async { Err::<(), _>("no") }))
            .await
            .unwrap();
        jobs.send(1).await.unwrap();
        while jobs.pool().stats().retried == 0 {
            tokio::task::yield_now().await;
        }
        jobs.pool().cancel();
        let o = results.next().await.unwrap();
        assert_eq!(o.result, Err(Failure::Error("no")));
    });
}

#[test]
fn follow_up_jobs_never_deadlock_one_worker_and_a_full_queue() {
    on_both(|| async {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|n: &u32, ctx| {
                Box::pin(async move {
                    if *n > 0 {
                        // Two children each: more than the queue holds.
                        ctx.spawn(n - 1).unwrap();
                        ctx.spawn(n - 1).unwrap();
                    }
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        jobs.send(6).await.unwrap();
        drop(jobs);
        let outcomes = results.collect_all().await;
        assert_eq!(outcomes.len(), 127); // 2^7 - 1
        let seqs: HashSet<u64> = outcomes.iter().map(|o| o.seq).collect();
        assert_eq!(seqs.len(), 127);
    });
}

#[test]
fn a_panic_rebuilds_the_workers_state_and_the_worker_carries_on() {
    on_both(|| async {
        let inits = Arc::new(AtomicUsize::new(0));
        let i = inits.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .ordered()
            .state(move |_| {
                let generation = i.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, std::io::Error>(generation) }
            })
            .build(|generation: &mut usize, n: &u32, _ctx| {
                Box::pin(async move {
                    if *n == 1 {
                        panic!("boom in job 1");
                    }
                    Ok::<_, ()>(*generation)
                })
            })
            .await
            .unwrap();
        jobs.send_all([0, 1, 2]).await.unwrap();
        drop(jobs);
        let o = results.collect_all().await;
        assert_eq!(o[0].result, Ok(0));
        assert!(
            matches!(&o[1].result, Err(Failure::Panicked(p)) if p.to_string().contains("boom in job 1"))
        );
        assert_eq!(
            o[2].result,
            Ok(1),
            "the state was built again after the panic"
        );
        assert_eq!(inits.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn panicking_drops_never_kill_a_worker() {
    on_both(|| async {
        struct Grenade;
        impl Drop for Grenade {
            fn drop(&mut self) {
                panic!("boom in drop");
            }
        }
        let (jobs, results) = Builder::new()
            .workers(1)
            .ordered()
            .timeout(Duration::from_millis(10))
            .build(|n: &u32, _ctx| {
                Box::pin(async move {
                    if *n == 0 {
                        let _g = Grenade;
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        jobs.send_all([0, 1]).await.unwrap();
        drop(jobs);
        let o = results.collect_all().await;
        assert_eq!(o[0].result, Err(Failure::TimedOut));
        assert_eq!(o[1].result, Ok(1), "the worker survived the panicking drop");
    });
}

#[test]
fn ordered_window_holds_senders_back_behind_a_slow_job() {
    on_both(|| async {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(4)
            .queue(100)
            .ordered_window(4)
            .build(move |n: &u32, _ctx| {
                let g = g.clone();
                Box::pin(async move {
                    if *n == 0 {
                        let _ = g.acquire().await.unwrap();
                    }
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        for n in 0..4 {
            jobs.try_send(n).unwrap();
        }
        // Job 0 is stuck, so job 4 would be past the window.
        assert_eq!(jobs.try_send(4).unwrap_err().into_inner(), 4);
        gate.add_permits(1);
        let feed = tokio::spawn(async move { jobs.send_all(4..50).await.unwrap() });
        let seqs: Vec<u64> = results.collect_all().await.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, (0..50).collect::<Vec<_>>());
        feed.await.unwrap();
    });
}

#[test]
fn fail_fast_cancels_the_rest_at_the_first_failure() {
    on_both(|| async {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(100)
            .fail_fast()
            .build(|n: &u32, _ctx| {
                Box::pin(async move {
                    if *n == 3 {
                        Err("three")
                    } else {
                        Ok(*n)
                    }
                })
            })
            .await
            .unwrap();
        let mut accepted = 0;
        for n in 0..100 {
            if jobs.send(n).await.is_ok() {
                accepted += 1;
            }
        }
        drop(jobs);
        let outcomes = results.collect_all().await;
        assert_eq!(outcomes.len(), accepted);
        let failed = outcomes
            .iter()
            .filter(|o| matches!(o.result, Err(Failure::Error("three"))))
            .count();
        assert_eq!(failed, 1);
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        let cancelled = outcomes
            .iter()
            .filter(|o| o.result == Err(Failure::Cancelled))
            .count();
        assert_eq!(ok + failed + cancelled, accepted);
        assert_eq!(ok, 3, "0, 1 and 2 ran before 3 failed");
    });
}

#[test]
fn retries_back_off_and_follow_retry_if() {
    on_both(|| async {
        #[derive(Debug, PartialEq)]
        enum E {
            Busy,
            Gone,
        }
        let (jobs, results) = Builder::new()
            .workers(2)
            .ordered()
            .retries(3)
            .backoff(Duration::from_millis(1), Duration::from_millis(4))
            .retry_if(|e: &E| *e == E::Busy)
            .build(|n: &u32, ctx| {
                Box::pin(async move {
                    match n {
                        0 if ctx.attempt() < 3 => Err(E::Busy),
                        0 => Ok(ctx.attempt()),
                        1 => Err(E::Gone),
                        _ => Err(E::Busy),
                    }
                })
            })
            .await
            .unwrap();
        let pool = jobs.pool();
        jobs.send_all([0, 1, 2]).await.unwrap();
        drop(jobs);
        let o = results.collect_all().await;
        assert_eq!((o[0].result.as_ref().ok(), o[0].attempts), (Some(&3), 3));
        assert_eq!(
            (&o[1].result, o[1].attempts),
            (&Err(Failure::Error(E::Gone)), 1)
        );
        assert_eq!(
            (&o[2].result, o[2].attempts),
            (&Err(Failure::Error(E::Busy)), 4)
        );
        assert_eq!(pool.stats().retried, 2 + 3);
    });
}

#[test]
fn rate_limit_spaces_the_starts() {
    on_both(|| async {
        let start = tokio::time::Instant::now();
        let (jobs, results) = Builder::new()
            .workers(8)
            .rate_limit(100.0)
            .build(move |_: &u32, _ctx| Box::pin(async move { Ok::<_, ()>(start.elapsed()) }))
            .await
            .unwrap();
        jobs.send_all(0..6).await.unwrap();
        drop(jobs);
        let mut times: Vec<Duration> = results
            .collect_all()
            .await
            .into_iter()
            .map(|o| o.result.unwrap())
            .collect();
        times.sort();
        // Six starts at 100 per second: five gaps of 10 ms at least.
        assert!(
            times[5] - times[0] >= Duration::from_millis(49),
            "{times:?}"
        );
    });
}

#[test]
fn resize_grows_and_shrinks_the_crew() {
    on_both(|| async {
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let b = barrier.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(move |_: &u32, _ctx| {
                let b = b.clone();
                Box::pin(async move {
                    // Four jobs that can only finish together: needs four workers.
                    b.wait().await;
                    Ok::<_, ()>(())
                })
            })
            .await
            .unwrap();
        let pool = jobs.pool();
        jobs.send_all(0..4).await.unwrap();
        pool.resize(4).unwrap();
        assert_eq!(pool.stats().target_workers, 4);
        pool.resize(2).unwrap();
        assert_eq!(pool.stats().target_workers, 2);
        // Shrinking lets the running jobs finish; the pool keeps working with two.
        pool.resize(4).unwrap();
        drop(jobs);
        let o = results.collect_all().await;
        assert_eq!(o.len(), 4);
        assert!(o.iter().all(|o| o.is_ok()));
        pool.wait().await.unwrap();
    });
}

#[test]
fn sends_wait_for_room_try_send_and_send_timeout_give_the_job_back() {
    on_both(|| async {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let g = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            // Nobody reads until the end: leave room for the outcomes.
            .results_capacity(10)
            .build(move |n: &u32, _ctx| {
                let (g, s) = (g.clone(), started_tx.clone());
                Box::pin(async move {
                    s.send(()).unwrap();
                    let _p = g.acquire().await.unwrap();
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        jobs.send(0).await.unwrap();
        started.recv().await.unwrap();
        jobs.send(1).await.unwrap(); // queued
        assert_eq!(jobs.try_send(2).unwrap_err().into_inner(), 2);
        assert_eq!(
            jobs.send_timeout(3, Duration::from_millis(5))
                .await
                .unwrap_err()
                .into_inner(),
            3
        );
        // A waiting send completes once there is room.
        let j2 = jobs.clone();
        let waiting = tokio::spawn(async move { j2.send(4).await.map_err(|e| e.into_inner()) });
        gate.add_permits(100);
        waiting.await.unwrap().unwrap();
        drop(jobs);
        let mut got: Vec<u32> = results
            .collect_all()
            .await
            .into_iter()
            .map(|o| o.job)
            .collect();
        got.sort();
        assert_eq!(got, [0, 1, 4]);
    });
}

#[test]
fn waiting_on_the_pool_from_inside_a_job_is_an_error() {
    on_both(|| async {
        let slot: Arc<std::sync::Mutex<Option<brigade::tokio::Pool>>> = Default::default();
        let s = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(move |_: &u32, _ctx| {
                let pool = s.lock().unwrap().clone().unwrap();
                Box::pin(async move { Ok::<_, ()>(pool.wait().await) })
            })
            .await
            .unwrap();
        *slot.lock().unwrap() = Some(jobs.pool());
        jobs.send(1).await.unwrap();
        drop(jobs);
        let o = results.collect_all().await;
        assert_eq!(o[0].result, Ok(Err(WaitError::InsideWorker)));
    });
}

#[test]
fn an_initialiser_that_fails_is_a_build_error() {
    on_both(|| async {
        let r = Builder::new()
            .workers(3)
            .state(|w| async move {
                if w == 2 {
                    Err("no database")
                } else {
                    Ok(())
                }
            })
            .build(|_: &mut (), n: &u8, _ctx| Box::pin(async move { Ok::<_, ()>(*n) }))
            .await;
        match r {
            Err(BuildError::Init(e)) => {
                assert_eq!(e.worker(), 2);
                assert!(e.to_string().contains("no database"), "{e}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("built"),
        }
    });
}

#[test]
fn shutdown_timeout_is_graceful_then_immediate() {
    on_both(|| async {
        let (jobs, results) = Builder::new()
            .workers(2)
            .build(|n: &u32, _ctx| {
                Box::pin(async move {
                    if *n == 0 {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        jobs.send_all([0, 1]).await.unwrap();
        let pool = jobs.pool();
        assert!(matches!(
            pool.shutdown_timeout(Duration::from_millis(20)).await,
            Ok(Stopped::Cancelled { .. })
        ));
        let o = results.collect_all().await;
        assert_eq!(o.len(), 2);
        drop(jobs);

        let (jobs, _results) = Builder::new()
            .build(|n: &u32, _ctx| Box::pin(async move { Ok::<_, ()>(*n) }))
            .await
            .unwrap();
        jobs.send(1).await.unwrap();
        assert_eq!(
            jobs.pool().shutdown_timeout(Duration::from_secs(60)).await,
            Ok(Stopped::Graceful)
        );
    });
}

#[test]
fn statistics_add_up() {
    on_both(|| async {
        let (jobs, results) = Builder::new()
            .workers(4)
            .timeout(Duration::from_millis(20))
            .build(mixed)
            .await
            .unwrap();
        let pool = jobs.pool();
        jobs.send_all(0..50).await.unwrap();
        drop(jobs);
        assert_eq!(results.collect_all().await.len(), 50);
        let s = pool.stats();
        assert_eq!(
            s.submitted,
            s.succeeded + s.failed + s.panicked + s.timed_out + s.cancelled + s.queued + s.running
        );
        assert_eq!((s.queued, s.running), (0, 0));
        assert_eq!(s.run_time.count, 50);
        assert!(s.run_time.max >= Duration::from_millis(1));
    });
}

#[test]
fn a_dropped_reader_never_holds_senders_back_even_when_ordered() {
    // Found by the property test: the ordered window only moves when outcomes are read.
    on_both(|| async {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(2)
            .ordered_window(2)
            .build(|n: &u32, _ctx| Box::pin(async move { Ok::<_, ()>(*n) }))
            .await
            .unwrap();
        drop(results);
        jobs.send_all(0..100).await.unwrap();
        let pool = jobs.pool();
        drop(jobs);
        pool.wait().await.unwrap();
        assert_eq!(pool.stats().succeeded, 100);
    });
}

#[test]
fn a_worker_resized_away_still_wakes_the_reader() {
    // Found by the property test: the last outcome of a worker leaving after a resize.
    on_both(|| async {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let g = gate.clone();
        let (jobs, mut results) = Builder::new()
            .workers(2)
            .build(move |n: &u32, _ctx| {
                let (g, s) = (g.clone(), started_tx.clone());
                Box::pin(async move {
                    s.send(()).unwrap();
                    let _p = g.acquire().await.unwrap();
                    Ok::<_, ()>(*n)
                })
            })
            .await
            .unwrap();
        jobs.send_all([0, 1]).await.unwrap();
        started.recv().await.unwrap();
        started.recv().await.unwrap();
        let pool = jobs.pool();
        pool.resize(1).unwrap();
        drop(jobs);
        // The reader waits first; then both jobs finish, one on the worker that leaves.
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while results.next().await.is_some() {
                n += 1;
            }
            n
        });
        tokio::task::yield_now().await;
        gate.add_permits(2);
        assert_eq!(reader.await.unwrap(), 2);
    });
}

#[test]
fn a_job_sending_to_its_own_full_pool_never_deadlocks() {
    on_both(|| async {
        let slot: Arc<std::sync::Mutex<Option<brigade::tokio::Jobs<u32>>>> = Default::default();
        let s = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(move |n: &u32, _ctx| {
                let own = if *n == 0 {
                    s.lock().unwrap().take()
                } else {
                    None
                };
                Box::pin(async move {
                    if let Some(own) = own {
                        // One worker, a queue of one: these sends would wait for ever.
                        for k in 1..=5 {
                            own.send(k).await.unwrap();
                        }
                    }
                    Ok::<_, ()>(())
                })
            })
            .await
            .unwrap();
        *slot.lock().unwrap() = Some(jobs.clone());
        jobs.send(0).await.unwrap();
        drop(jobs);
        assert_eq!(results.collect_all().await.len(), 6);
    });
}
