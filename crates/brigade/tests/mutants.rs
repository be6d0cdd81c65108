//! Tests written to kill the mutants that cargo-mutants found surviving the
//! rest of the suite (issue [mutants]): two pools used together,
//! `is_finished`, the statistics clocks, backoff, the rate limiter after an
//! idle spell, and when a slow job's outcome arrives.
//!
//! Timing checks here are lower bounds only (a loaded machine makes things
//! slower, never faster); everything else waits on gates, not sleeps.

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use brigade::{Builder, Failure, TrySendError, WaitError};
use common::watchdog;

// ---- 1. Two pools: one pool's worker is not the other pool's worker ----

#[test]
fn a_job_in_one_pool_sends_to_reads_from_and_waits_on_another() {
    watchdog(60, || {
        let (b_jobs, b_results) = Builder::new()
            .workers(2)
            .queue(4)
            .build(|n: &u32, _ctx| Ok::<_, ()>(n * 10))
            .unwrap();
        let b_jobs = Arc::new(Mutex::new(Some(b_jobs)));
        let b_results = Arc::new(Mutex::new(Some(b_results)));
        let (bj, br) = (b_jobs.clone(), b_results.clone());
        let a_results = Builder::new()
            .workers(1)
            .run(vec![()], move |_: &(), _ctx| {
                // Pool B's halves, used from pool A's worker: none of these may be
                // refused as "inside a worker" of B.
                let jobs = bj.lock().unwrap().take().unwrap();
                let pool = jobs.pool();
                for n in 1..=3 {
                    jobs.send(n).map_err(|e| format!("send to B: {e}"))?;
                }
                drop(jobs);
                let results = br.lock().unwrap().take().unwrap();
                let sum: u32 = results.map(|o| o.result.unwrap()).sum();
                pool.wait().map_err(|e| format!("wait on B: {e}"))?;
                Ok::<_, String>(sum)
            });
        let outs: Vec<_> = a_results.collect();
        assert_eq!(outs.len(), 1);
        assert_eq!(
            outs[0].result.as_ref().ok(),
            Some(&60),
            "{:?}",
            outs[0].result
        );
    });
}

#[test]
fn a_job_in_one_pool_is_bounded_by_the_other_pools_queue() {
    watchdog(60, || {
        // Pool B: one worker held at a gate, a queue of 2.
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate_rx = Mutex::new(gate_rx);
        let (b_jobs, b_results) = Builder::new()
            .workers(1)
            .queue(2)
            .build(move |_: &u32, _ctx| {
                let _ = gate_rx.lock().unwrap().recv();
                Ok::<_, ()>(())
            })
            .unwrap();
        // Let B's worker take job 0 and block, so that the queue is empty.
        b_jobs.send(0).unwrap();
        while b_jobs.pool().stats().running == 0 {
            std::thread::yield_now();
        }
        let bj = b_jobs.clone();
        let a_results = Builder::new()
            .workers(1)
            .run(vec![()], move |_: &(), _ctx| {
                let mut accepted = 0;
                for n in 1..=5 {
                    match bj.try_send(n) {
                        Ok(_) => accepted += 1,
                        Err(TrySendError::Full(_)) => break,
                        Err(e) => return Err(format!("{e}")),
                    }
                }
                Ok(accepted)
            });
        let outs: Vec<_> = a_results.collect();
        assert_eq!(
            outs[0].result,
            Ok(2),
            "a worker of pool A must see pool B's queue bound"
        );
        for _ in 0..3 {
            gate_tx.send(()).unwrap();
        }
        drop(b_jobs);
        assert_eq!(b_results.count(), 3);
    });
}

#[test]
fn a_worker_waiting_on_its_own_pool_is_still_refused() {
    watchdog(60, || {
        // The converse of the two-pool tests: pool A's own wait, from its worker.
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(|p: &brigade::Pool, _ctx| Ok::<_, ()>(p.wait()))
            .unwrap();
        jobs.send(jobs.pool()).unwrap();
        drop(jobs);
        let o: Vec<_> = results.collect();
        assert_eq!(o[0].result, Ok(Err(WaitError::InsideWorker)));
    });
}

// ---- 2. is_finished waits for the workers to drop their state ----

struct SlowDrop(Arc<Mutex<mpsc::Receiver<()>>>);

impl Drop for SlowDrop {
    fn drop(&mut self) {
        let _ = self.0.lock().unwrap().recv();
    }
}

#[test]
fn is_finished_stays_false_while_a_states_drop_is_blocked() {
    watchdog(60, || {
        let (release, blocked) = mpsc::channel::<()>();
        let blocked = Arc::new(Mutex::new(blocked));
        let (jobs, results) = Builder::new()
            .workers(1)
            .state(move |_| Ok::<_, std::convert::Infallible>(SlowDrop(blocked.clone())))
            .build(|_: &mut SlowDrop, n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        jobs.send(1).unwrap();
        drop(jobs);
        // Every outcome is in: the pool is done with jobs, but the worker is
        // still inside the state's Drop.
        assert_eq!(results.count(), 1);
        assert_eq!(
            pool.wait_timeout(Duration::from_millis(50)),
            Err(WaitError::Timeout)
        );
        assert!(
            !pool.is_finished(),
            "finished while a worker is still dropping its state"
        );
        release.send(()).unwrap();
        pool.wait().unwrap();
        assert!(pool.is_finished());
    });
}

// ---- 3 and 4. The statistics clocks ----

#[test]
fn queue_wait_counts_the_time_a_job_waited_for_the_only_worker() {
    watchdog(60, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(4)
            .build(|ms: &u64, _ctx| {
                std::thread::sleep(Duration::from_millis(*ms));
                Ok::<_, ()>(())
            })
            .unwrap();
        let pool = jobs.pool();
        jobs.send(150).unwrap();
        jobs.send(0).unwrap();
        drop(jobs);
        assert_eq!(results.count(), 2);
        let s = pool.stats();
        assert_eq!(s.queue_wait.count, 2);
        // The second job waited for the first one's 150 ms (max is exact).
        assert!(
            s.queue_wait.max >= Duration::from_millis(140),
            "queue_wait.max = {:?}",
            s.queue_wait.max
        );
        assert!(
            s.run_time.max >= Duration::from_millis(150),
            "run_time.max = {:?}",
            s.run_time.max
        );
    });
}

#[test]
fn run_time_counts_exactly_the_jobs_that_started() {
    watchdog(60, || {
        // Init failures (no attempt) and cancelled jobs (no attempt) mixed with
        // jobs that ran, one of which panicked.
        common::quiet_boom();
        let builds = Arc::new(AtomicU32::new(0));
        let b = builds.clone();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let (started_tx, started) = mpsc::channel::<()>();
        let started_tx = Mutex::new(started_tx);
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(64)
            .state(move |_| {
                // The first state is fine; job 1's panic throws it away, and
                // the next two rebuilds fail.
                if (1..=2).contains(&b.fetch_add(1, Ordering::SeqCst)) {
                    Err("no state yet")
                } else {
                    Ok(())
                }
            })
            .build(move |_: &mut (), n: &u32, _ctx| {
                if *n == 1 {
                    panic!("boom: job 1");
                }
                if *n == 10 {
                    let _ = started_tx.lock().unwrap().send(());
                    let _ = gate.lock().unwrap().recv();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = jobs.pool();
        for n in 0..40 {
            jobs.send(n).unwrap();
        }
        // Job 10 is running: cancel, and the jobs not started are handed back.
        started.recv().unwrap();
        pool.cancel();
        release.send(()).unwrap();
        drop(jobs);
        let outs: Vec<_> = results.collect();
        assert_eq!(outs.len(), 40);
        let started = outs.iter().filter(|o| o.attempts > 0).count() as u64;
        let inits = outs
            .iter()
            .filter(|o| matches!(o.result, Err(Failure::Init(_))))
            .count();
        let cancelled = outs
            .iter()
            .filter(|o| matches!(o.result, Err(Failure::Cancelled)))
            .count();
        assert_eq!(inits, 2, "the two failed rebuilds");
        assert!(cancelled >= 1, "nothing was cancelled");
        let s = pool.stats();
        assert_eq!(
            s.run_time.count, started,
            "run_time counts jobs that never ran"
        );
        assert_eq!(s.queue_wait.count, started);
    });
}

// ---- 5. Backoff ----

#[test]
fn backoff_waits_grow_between_attempts() {
    watchdog(60, || {
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let st = stamps.clone();
        let outs: Vec<_> = Builder::new()
            .workers(1)
            .retries(2)
            .backoff(Duration::from_millis(40), Duration::from_secs(1))
            .run(vec![()], move |_: &(), _ctx| {
                st.lock().unwrap().push(Instant::now());
                Err::<(), _>("again")
            })
            .collect();
        assert_eq!(outs[0].attempts, 3);
        let t = stamps.lock().unwrap();
        // Jitter keeps each wait in the upper half of 40 ms, then of 80 ms.
        let first = t[1] - t[0];
        let second = t[2] - t[1];
        assert!(
            first >= Duration::from_millis(20),
            "first backoff {first:?}"
        );
        assert!(
            second >= Duration::from_millis(40),
            "second backoff {second:?}"
        );
    });
}

#[test]
fn a_backoff_too_long_for_the_clock_means_no_retry_not_an_instant_one() {
    watchdog(60, || {
        let outs: Vec<_> = Builder::new()
            .workers(1)
            .retries(3)
            .backoff(Duration::MAX, Duration::MAX)
            .run(vec![()], |_: &(), _ctx| Err::<(), _>("never"))
            .collect();
        assert_eq!(outs[0].attempts, 1);
        assert!(matches!(outs[0].result, Err(Failure::Error("never"))));
    });
}

#[test]
fn a_huge_but_representable_backoff_is_not_taken_as_zero() {
    watchdog(60, || {
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .retries(1)
            .backoff(Duration::from_secs(3600), Duration::from_secs(3600))
            .build(move |_: &(), _ctx| {
                a.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("later")
            })
            .unwrap();
        let pool = jobs.pool();
        jobs.send(()).unwrap();
        drop(jobs);
        std::thread::sleep(Duration::from_millis(200));
        // A lower bound: the retry cannot have come within 200 ms of an hour's backoff.
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        pool.cancel();
        let outs: Vec<_> = results.collect();
        assert_eq!(outs.len(), 1);
        assert!(matches!(outs[0].result, Err(Failure::Error("later"))));
    });
}

// ---- 6. The rate limit after an idle spell ----

#[test]
fn the_rate_limit_lets_no_burst_through_after_an_idle_spell() {
    watchdog(60, || {
        let (jobs, results) = Builder::new()
            .workers(4)
            .rate_limit(50.0)
            .build(|_: &u32, _ctx| Ok::<_, ()>(Instant::now()))
            .unwrap();
        let mut results = results;
        jobs.send(0).unwrap();
        results.next().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let sent = Instant::now();
        for n in 0..5 {
            jobs.send(n).unwrap();
        }
        drop(jobs);
        let mut starts: Vec<Instant> = results.map(|o| o.result.unwrap()).collect();
        starts.sort();
        assert_eq!(starts.len(), 5);
        // 5 jobs at 50/s: the first may start at once, the last 4 intervals of 20 ms later.
        let spread = starts[4] - sent;
        assert!(
            spread >= Duration::from_millis(80),
            "5 jobs started within {spread:?}"
        );
    });
}

// ---- 7. A slow job's outcome is not held back in a batch ----

#[test]
fn each_slow_jobs_outcome_arrives_before_the_next_job_is_let_go() {
    watchdog(60, || {
        // Job n waits for permit n, which the test gives only after it has
        // read outcome n - 1. Outcomes held back until a batch is done would
        // deadlock here (and the watchdog would say so).
        let (permit_tx, permit_rx) = mpsc::channel::<u32>();
        let permit_rx = Mutex::new(permit_rx);
        let (jobs, mut results) = Builder::new()
            .workers(1)
            .queue(32)
            .build(move |n: &u32, _ctx| {
                std::thread::sleep(Duration::from_millis(1));
                if *n > 0 {
                    let got = permit_rx.lock().unwrap().recv().unwrap();
                    assert_eq!(got, *n);
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        for n in 0..20 {
            jobs.send(n).unwrap();
        }
        drop(jobs);
        for n in 0..20u32 {
            let o = results.next().unwrap();
            assert_eq!(o.result, Ok(n));
            if n + 1 < 20 {
                permit_tx.send(n + 1).unwrap();
            }
        }
        assert!(results.next().is_none());
    });
}

#[test]
fn a_send_timeout_too_long_for_the_clock_waits_as_long_as_it_takes() {
    // Duration::MAX cannot be added to the clock: the send waits for room
    // however long that is, not a few seconds (an arithmetic mutant of the
    // fallback made it 2 s) and not not at all.
    watchdog(60, || {
        let (open_tx, open_rx) = mpsc::channel::<()>();
        let open_rx = Mutex::new(open_rx);
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .results_capacity(16)
            .build(move |n: &u32, _ctx: &brigade::Context<u32>| {
                if *n == 0 {
                    let _ = open_rx.lock().unwrap().recv();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = results.pool();
        jobs.send(0).unwrap();
        while pool.stats().running < 1 {
            std::thread::yield_now();
        }
        jobs.send(1).unwrap(); // the queue is full now
        let sender = jobs.clone();
        let (done_tx, done) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let r = sender.send_timeout(2, Duration::MAX);
            done_tx.send(r.is_ok()).unwrap();
        });
        // Longer than the mutant's 2 s; a lower bound only.
        assert!(
            done.recv_timeout(Duration::from_secs(3)).is_err(),
            "send_timeout(Duration::MAX) gave up while the queue was full"
        );
        open_tx.send(()).unwrap();
        assert!(done.recv().unwrap(), "the send failed once there was room");
        t.join().unwrap();
        drop(jobs);
        assert_eq!(results.count(), 3);
    });
}
