//! The seed's Go program and its three patterns, ported as tests, the way
//! crossbeam ported Go's channel tests. Each test names the Go it stands for.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade::{Builder, Context, Failure};
use common::watchdog;

/// The seed's program: 5 jobs, 3 workers, results are job*2; every job is
/// started and finished by one worker, and at most 3 run at once.
/// (The 1 s of work is shortened: timings belong in the example, not in tests.)
#[test]
fn seed_program() {
    watchdog(60, || {
        let log = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (l, r, p) = (log.clone(), running.clone(), peak.clone());
        let (jobs, results) = Builder::new()
            .workers(3)
            .queue(5)
            .build(move |job: &u32, ctx: &Context<u32>| {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                l.lock()
                    .unwrap()
                    .push(format!("Worker {} started job {job}", ctx.worker() + 1));
                std::thread::sleep(Duration::from_millis(20));
                l.lock()
                    .unwrap()
                    .push(format!("Worker {} finished job {job}", ctx.worker() + 1));
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, String>(job * 2)
            })
            .unwrap();
        for j in 1..=5 {
            jobs.send(j).unwrap();
        }
        drop(jobs); // close(jobs)
        let mut got: Vec<u32> = results.map(|o| o.result.unwrap()).collect();
        got.sort();
        assert_eq!(got, [2, 4, 6, 8, 10]);
        assert!(
            peak.load(Ordering::SeqCst) <= 3,
            "more than 3 jobs ran at once"
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 10);
        for j in 1..=5 {
            let started: Vec<_> = log
                .iter()
                .filter(|l| l.ends_with(&format!("started job {j}")))
                .collect();
            let finished: Vec<_> = log
                .iter()
                .filter(|l| l.ends_with(&format!("finished job {j}")))
                .collect();
            assert_eq!((started.len(), finished.len()), (1, 1), "job {j}");
            // The same worker started and finished it, and ids are 1..=3.
            let who = |s: &str| {
                s.split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            };
            assert_eq!(who(started[0]), who(finished[0]));
            assert!((1..=3).contains(&who(started[0])));
        }
    });
}

/// Go: `for job := range jobs` ends when jobs is closed, even with no jobs at all,
/// and `range results` then ends too.
#[test]
fn closing_an_empty_pool_ends_the_results() {
    watchdog(30, || {
        let (jobs, results) = Builder::new()
            .workers(3)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        drop(jobs);
        assert_eq!(results.count(), 0);
        pool.wait().unwrap();
        assert!(pool.is_finished());
    });
}

/// Pattern 1, dynamic job generation: a producer generates jobs until
/// `shouldStop()`, then closes. Here the producer is a lazy iterator, which the
/// pool must not run ahead of by more than its bounds.
#[test]
fn pattern1_dynamic_producer_is_consumed_lazily() {
    watchdog(60, || {
        let produced = Arc::new(AtomicUsize::new(0));
        let p = produced.clone();
        let gen = (0u64..).inspect(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        });
        let should_stop = 10_000;
        let mut results = Builder::new()
            .workers(2)
            .queue(8)
            .results_capacity(8)
            .run(gen.take(should_stop), |n: &u64, _ctx| Ok::<_, ()>(*n));
        // Read one outcome, then stall: the producer can be ahead by at most the
        // queue, the unread outcomes, the running jobs and one in its hand.
        assert!(results.next().is_some());
        std::thread::sleep(Duration::from_millis(100));
        let ahead = produced.load(Ordering::SeqCst);
        assert!(
            ahead <= 1 + 8 + 8 + 2 + 1 + 32,
            "producer ran {ahead} jobs ahead of a stalled reader"
        );
        assert_eq!(results.count() + 1, should_stop);
    });
}

/// Pattern 2, errors as results: `Result{Value, Err}` for every job; the
/// caller can tell which job failed.
#[test]
fn pattern2_errors_are_outcomes() {
    watchdog(30, || {
        let outcomes: Vec<_> = Builder::new()
            .workers(3)
            .run(0..100u32, |n: &u32, _ctx| {
                if n % 7 == 0 {
                    Err(format!("bad {n}"))
                } else {
                    Ok(n + 1)
                }
            })
            .collect();
        assert_eq!(outcomes.len(), 100);
        for o in &outcomes {
            if o.job % 7 == 0 {
                assert_eq!(o.result, Err(Failure::Error(format!("bad {}", o.job))));
            } else {
                assert_eq!(o.result, Ok(o.job + 1));
            }
        }
    });
}

/// Pattern 3, shutdown with context: `case <-ctx.Done(): return`. Cancel stops
/// new starts, the queued jobs come back unstarted, and the running ones see it.
#[test]
fn pattern3_cancel_is_seen_by_running_jobs_and_returns_queued_ones() {
    watchdog(30, || {
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(100)
            .build(move |_: &u32, ctx: &Context<u32>| {
                s.fetch_add(1, Ordering::SeqCst);
                while !ctx.is_cancelled() {
                    ctx.sleep(Duration::from_secs(10));
                }
                Ok::<_, ()>("saw cancel")
            })
            .unwrap();
        for n in 0..50 {
            jobs.send(n).unwrap();
        }
        while started.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        let pool = jobs.pool();
        pool.cancel();
        assert!(jobs.send(99).is_err(), "a cancelled pool takes no jobs");
        let outcomes: Vec<_> = results.collect();
        assert_eq!(outcomes.len(), 50);
        let saw = outcomes
            .iter()
            .filter(|o| o.result == Ok("saw cancel"))
            .count();
        let cancelled: Vec<_> = outcomes
            .iter()
            .filter(|o| o.result == Err(Failure::Cancelled))
            .collect();
        assert_eq!(saw, 2);
        assert_eq!(cancelled.len(), 48);
        for o in cancelled {
            assert_eq!(
                (o.attempts, o.worker),
                (0, None),
                "a cancelled job never started"
            );
        }
        let jobs_back: HashSet<u32> = outcomes.iter().map(|o| o.job).collect();
        assert_eq!(jobs_back, (0..50).collect());
        pool.wait().unwrap();
    });
}
