//! Each promise of DESIGN.md, with tests that fail if it breaks.
//! Every test runs under a watchdog: a hang fails instead of blocking CI.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use brigade::{
    BuildError, Builder, Context, Failure, SendError, SendTimeoutError, Stopped, TrySendError,
    WaitError,
};
use common::{quiet_boom, watchdog};

// ---- Promise 1: one outcome per job -------------------------------------------------

#[test]
fn every_kind_of_outcome_once() {
    quiet_boom();
    watchdog(30, || {
        let outcomes: Vec<_> = Builder::new()
            .workers(3)
            .timeout(Duration::from_millis(50))
            .run(0..400u32, |n: &u32, ctx: &Context<u32>| match n % 4 {
                0 => Ok(*n),
                1 => Err(*n),
                2 => panic!("boom {n}"),
                _ => {
                    while !ctx.is_expired() {
                        ctx.sleep(Duration::from_millis(100));
                    }
                    Ok(0)
                }
            })
            .collect();
        let seqs: HashSet<u64> = outcomes.iter().map(|o| o.seq).collect();
        assert_eq!(seqs.len(), 400, "a seq came back twice or not at all");
        for o in &outcomes {
            let n = o.job;
            match n % 4 {
                0 => assert_eq!(o.result, Ok(n)),
                1 => assert_eq!(o.result, Err(Failure::Error(n))),
                2 => assert_eq!(o.result, Err(Failure::Panicked(format!("boom {n}").into()))),
                _ => assert_eq!(o.result, Err(Failure::TimedOut)),
            }
            assert_eq!(o.attempts, 1);
            assert!(o.worker.unwrap() < 3);
        }
    });
}

#[test]
fn a_refused_send_gives_the_job_back() {
    watchdog(30, || {
        let gate = Arc::new(Barrier::new(2));
        let g = gate.clone();
        let (started, is_started) = mpsc::channel();
        let started = Mutex::new(started);
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(move |n: &String, _ctx: &Context<String>| {
                if n == "first" {
                    started.lock().unwrap().send(()).unwrap();
                    g.wait();
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        jobs.send("first".into()).unwrap();
        is_started.recv().unwrap(); // the worker holds it and blocks on the gate
                                    // Fill the one slot, then the next try is refused with the job inside.
        let mut refused = None;
        for i in 0..1000 {
            match jobs.try_send(format!("job {i}")) {
                Ok(_) => {}
                Err(TrySendError::Full(j)) => {
                    refused = Some(j);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        let refused = refused.expect("a queue of one refused nothing");
        assert!(refused.starts_with("job "));
        assert!(
            matches!(jobs.send_timeout("late".into(), Duration::from_millis(10)),
            Err(SendTimeoutError::Timeout(j)) if j == "late")
        );
        gate.wait();
        jobs.close();
        assert!(matches!(jobs.send("closed".into()), Err(SendError::Closed(j)) if j == "closed"));
        assert!(results.count() >= 2);
    });
}

#[test]
fn a_sender_blocked_on_a_full_queue_gets_its_job_back_on_close() {
    watchdog(30, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|_: &u32, ctx: &Context<u32>| {
                ctx.sleep(Duration::from_secs(60));
                Ok::<_, ()>(())
            })
            .unwrap();
        let pool = jobs.pool();
        jobs.send(0).unwrap();
        jobs.send(1).unwrap();
        // One running (or queued) and the queue full: this send blocks until close.
        let j2 = jobs.clone();
        let blocked = std::thread::spawn(move || j2.send(2));
        // Most runs close while the sender is parked; the sleep only makes that likelier.
        std::thread::sleep(Duration::from_millis(20));
        pool.close();
        // Nothing frees a slot (the worker sleeps on job 0, job 1 fills the queue),
        // so whether the sender was already parked or not, close refuses job 2.
        assert_eq!(blocked.join().unwrap(), Err(SendError::Closed(2)));
        pool.cancel();
        let n = results.count() as u64;
        assert_eq!(n, pool.stats().submitted);
    });
}

// ---- Promise 2: bounded memory is in tests/memory.rs (its own process) ----------------

#[test]
fn ordered_window_holds_producers_back_behind_a_slow_job() {
    watchdog(30, || {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let window = 8;
        let (jobs, mut results) = Builder::new()
            .workers(2)
            .queue(100)
            .ordered_window(window)
            .build(move |n: &u64, _ctx: &Context<u64>| {
                if *n == 0 {
                    gate.lock().unwrap().recv().unwrap();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = jobs.pool();
        let producer = std::thread::spawn(move || {
            for n in 0..1000u64 {
                jobs.send(n).unwrap();
            }
        });
        // Job 0 is stuck; everything else finishes. The producer must stop at the window.
        while pool.stats().succeeded < window as u64 - 1 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(50));
        let s = pool.stats();
        assert!(
            s.submitted <= window as u64,
            "accepted {} jobs past a window of {window}",
            s.submitted
        );
        release.send(()).unwrap();
        for (i, o) in results.by_ref().enumerate() {
            assert_eq!(o.seq, i as u64);
            assert_eq!(o.job, i as u64);
        }
        producer.join().unwrap();
        assert_eq!(pool.stats().succeeded, 1000);
    });
}

// ---- Promise 3: no deadlocks --------------------------------------------------------

/// Every order of dropping the three handles finishes, with and without queued work.
#[test]
fn no_hang_in_any_drop_order() {
    #[derive(Clone, Copy, Debug)]
    enum H {
        Jobs,
        Results,
        Pool,
    }
    let orders = [
        [H::Jobs, H::Results, H::Pool],
        [H::Jobs, H::Pool, H::Results],
        [H::Results, H::Jobs, H::Pool],
        [H::Results, H::Pool, H::Jobs],
        [H::Pool, H::Jobs, H::Results],
        [H::Pool, H::Results, H::Jobs],
    ];
    for order in orders {
        for queued in [0u32, 50] {
            watchdog(30, move || {
                let ran = Arc::new(AtomicUsize::new(0));
                let r = ran.clone();
                let (jobs, results) = Builder::new()
                    .workers(2)
                    .queue(64)
                    .build(move |_: &u32, _ctx: &Context<u32>| {
                        r.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                for n in 0..queued {
                    jobs.send(n).unwrap();
                }
                let watcher = jobs.pool();
                let (mut j, mut r, mut p) = (Some(jobs), Some(results), Some(watcher.clone()));
                for h in order {
                    match h {
                        H::Jobs => drop(j.take()),
                        H::Results => drop(r.take()),
                        H::Pool => drop(p.take()),
                    }
                }
                watcher.wait().unwrap();
                assert_eq!(
                    ran.load(Ordering::SeqCst),
                    queued as usize,
                    "order {order:?}"
                );
            });
        }
    }
}

#[test]
fn waiting_from_inside_a_worker_is_an_error() {
    watchdog(30, || {
        let slot: Arc<Mutex<Option<brigade::Pool>>> = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(move |_: &u8, _ctx: &Context<u8>| {
                let pool = s.lock().unwrap().clone().unwrap();
                Ok::<_, ()>((
                    pool.wait(),
                    pool.wait_timeout(Duration::from_secs(1)),
                    pool.shutdown(),
                ))
            })
            .unwrap();
        *slot.lock().unwrap() = Some(jobs.pool());
        jobs.send(1).unwrap();
        drop(jobs);
        let o: Vec<_> = results.collect();
        let (a, b, c) = o[0].result.clone().unwrap();
        assert_eq!(a, Err(WaitError::InsideWorker));
        assert_eq!(b, Err(WaitError::InsideWorker));
        assert_eq!(c, Err(WaitError::InsideWorker));
    });
}

#[test]
fn follow_ups_with_one_worker_and_a_full_queue_finish() {
    watchdog(30, || {
        // A tree: each job n < 1000 spawns 2n+1 and 2n+2. One worker, a queue of one,
        // and the jobs half closed right after the root.
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|n: &u32, ctx: &Context<u32>| {
                for child in [2 * n + 1, 2 * n + 2] {
                    if child < 1000 {
                        ctx.spawn(child).expect("not cancelled");
                    }
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        jobs.send(0).unwrap();
        drop(jobs);
        let seen: HashSet<u32> = results.map(|o| o.job).collect();
        assert_eq!(seen, (0..1000).collect());
    });
}

#[test]
fn follow_ups_use_the_whole_crew() {
    watchdog(30, || {
        // The root spawns 20 slow children then returns; the producer has closed.
        // Workers must not leave while a running job may still add work.
        let workers_seen = Arc::new(Mutex::new(HashSet::new()));
        let w = workers_seen.clone();
        let barrier = Arc::new(Barrier::new(4));
        let b = barrier.clone();
        let (jobs, results) = Builder::new()
            .workers(4)
            .build(move |n: &u32, ctx: &Context<u32>| {
                if *n == 0 {
                    for c in 1..=4 {
                        ctx.spawn(c).unwrap();
                    }
                } else {
                    w.lock().unwrap().insert(ctx.worker());
                    b.wait(); // needs 4 children running at once, on 4 workers
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        jobs.send(0).unwrap();
        drop(jobs);
        assert_eq!(results.count(), 5);
        assert_eq!(workers_seen.lock().unwrap().len(), 4);
    });
}

// ---- Promise 4: a panic is contained ------------------------------------------------

#[test]
fn a_panic_rebuilds_the_workers_state_and_keeps_the_crew() {
    quiet_boom();
    watchdog(30, || {
        let inits = Arc::new(AtomicUsize::new(0));
        let i = inits.clone();
        let outcomes: Vec<_> = Builder::new()
            .workers(1)
            .ordered()
            .state(move |_w| {
                i.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Vec::<u32>::new())
            })
            .run(
                0..6u32,
                |seen: &mut Vec<u32>, n: &u32, _ctx: &Context<u32>| {
                    seen.push(*n);
                    if *n == 2 {
                        panic!("boom");
                    }
                    Ok::<_, ()>(seen.clone())
                },
            )
            .collect();
        assert_eq!(outcomes[1].result, Ok(vec![0, 1]));
        assert_eq!(outcomes[2].result, Err(Failure::Panicked("boom".into())));
        // The state was rebuilt: job 3 does not see 0, 1, 2.
        assert_eq!(outcomes[3].result, Ok(vec![3]));
        assert_eq!(outcomes[5].result, Ok(vec![3, 4, 5]));
        assert_eq!(inits.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn panics_never_shrink_the_crew() {
    quiet_boom();
    watchdog(30, || {
        let (jobs, results) = Builder::new()
            .workers(3)
            .build(|_: &u32, _ctx: &Context<u32>| -> Result<(), ()> { panic!("boom") })
            .unwrap();
        let pool = jobs.pool();
        let feeder = jobs.clone();
        std::thread::spawn(move || {
            for n in 0..300 {
                feeder.send(n).unwrap();
            }
        });
        let mut results = results;
        assert_eq!(
            results
                .by_ref()
                .take(300)
                .filter(|o| matches!(o.result, Err(Failure::Panicked(_))))
                .count(),
            300
        );
        // The jobs half is still open: the crew is still there, all of it.
        let s = pool.stats();
        assert_eq!((s.panicked, s.workers), (300, 3));
        drop(jobs);
        assert_eq!(results.count(), 0);
    });
}

#[test]
fn a_failing_initialiser_is_a_build_error() {
    watchdog(30, || {
        let err = Builder::new()
            .workers(4)
            .state(|w| {
                if w == 2 {
                    Err(format!("no connection for worker {w}"))
                } else {
                    Ok(())
                }
            })
            .build(|_: &mut (), n: &u8, _ctx: &Context<u8>| Ok::<_, ()>(*n))
            .unwrap_err();
        let BuildError::Init(init) = &err else {
            panic!("{err}")
        };
        assert_eq!(init.worker(), 2);
        assert_eq!(
            std::error::Error::source(init).unwrap().to_string(),
            "no connection for worker 2"
        );
        assert_eq!(
            err.to_string(),
            "worker 2 could not build its state: no connection for worker 2"
        );
    });
}

#[test]
fn an_initialiser_that_fails_on_rebuild_fails_jobs_not_the_pool() {
    quiet_boom();
    watchdog(30, || {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let outcomes: Vec<_> = Builder::new()
            .workers(1)
            .ordered()
            .state(move |_| {
                // First build works, the rebuild after the panic fails once, then works.
                match c.fetch_add(1, Ordering::SeqCst) {
                    1 => Err("database down"),
                    _ => Ok(()),
                }
            })
            .run(0..4u32, |_: &mut (), n: &u32, _ctx: &Context<u32>| {
                if *n == 0 {
                    panic!("boom");
                }
                Ok::<_, ()>(*n)
            })
            .collect();
        assert!(matches!(outcomes[0].result, Err(Failure::Panicked(_))));
        assert!(
            matches!(&outcomes[1].result, Err(Failure::Init(e)) if e.to_string().ends_with("database down"))
        );
        assert_eq!(outcomes[2].result, Ok(2));
        assert_eq!(outcomes[3].result, Ok(3));
    });
}

// ---- Promise 5: explicit, two-phase shutdown ------------------------------------------

#[test]
fn graceful_shutdown_finishes_everything_queued() {
    watchdog(30, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(200)
            .build(|n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        for n in 0..200 {
            jobs.send(n).unwrap();
        }
        let pool = jobs.pool();
        assert_eq!(
            pool.shutdown_timeout(Duration::from_secs(20)),
            Ok(Stopped::Graceful)
        );
        assert_eq!(results.filter(|o| o.is_ok()).count(), 200);
        // Idempotent.
        pool.close();
        pool.cancel();
        pool.shutdown().unwrap();
    });
}

#[test]
fn shutdown_with_a_deadline_turns_immediate() {
    watchdog(30, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(10)
            .build(|_: &u32, ctx: &Context<u32>| {
                let full = ctx.sleep(Duration::from_secs(60));
                Ok::<_, ()>(full)
            })
            .unwrap();
        for n in 0..5 {
            jobs.send(n).unwrap();
        }
        let pool = jobs.pool();
        assert!(matches!(
            pool.shutdown_timeout(Duration::from_millis(10)),
            Ok(Stopped::Cancelled { .. })
        ));
        let outcomes: Vec<_> = results.collect();
        assert_eq!(outcomes.len(), 5);
        let cut_short = outcomes.iter().filter(|o| o.result == Ok(false)).count();
        let cancelled = outcomes
            .iter()
            .filter(|o| o.result == Err(Failure::Cancelled))
            .count();
        assert_eq!((cut_short, cancelled), (1, 4));
    });
}

#[test]
fn fail_fast_cancels_the_rest_and_they_still_report() {
    watchdog(30, || {
        // Both workers hold their first job until every job is queued, so
        // that the failure always finds jobs left to cancel (without the
        // gate, a fast crew could finish them all first and the test flaked).
        let gate = Arc::new(Barrier::new(3));
        let g = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(1000)
            .fail_fast()
            .build(move |n: &u32, _ctx: &Context<u32>| {
                if *n < 2 {
                    g.wait();
                }
                if *n == 10 {
                    Err("ten")
                } else {
                    Ok(*n)
                }
            })
            .unwrap();
        let accepted: Vec<u32> = (0..1000).filter(|n| jobs.send(*n).is_ok()).collect();
        assert_eq!(accepted.len(), 1000);
        gate.wait();
        drop(jobs);
        let outcomes: Vec<_> = results.collect();
        assert_eq!(outcomes.len(), accepted.len());
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| o.result == Err(Failure::Error("ten")))
                .count(),
            1
        );
        // Nothing started after the failure was seen, beyond the other worker's job in hand.
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        assert!(ok < accepted.len() - 1);
    });
}

// ---- Policies ------------------------------------------------------------------------

#[test]
fn retries_follow_the_predicate_and_are_counted() {
    watchdog(30, || {
        #[derive(Debug, PartialEq, Clone)]
        enum E {
            Transient,
            Permanent,
        }
        let (jobs, results) = Builder::new()
            .workers(2)
            .retries(3)
            .backoff(Duration::from_micros(10), Duration::from_micros(100))
            .retry_if(|e: &E| *e == E::Transient)
            .build(|n: &u32, ctx: &Context<u32>| match n {
                0 => Err(E::Transient),                      // always transient
                1 if ctx.attempt() < 3 => Err(E::Transient), // recovers on the 3rd
                1 => Ok(ctx.attempt()),
                _ => Err(E::Permanent), // never retried
            })
            .unwrap();
        let pool = jobs.pool();
        for n in 0..3 {
            jobs.send(n).unwrap();
        }
        drop(jobs);
        let mut o: Vec<_> = results.collect();
        o.sort_by_key(|o| o.job);
        assert_eq!(
            (o[0].attempts, &o[0].result),
            (4, &Err(Failure::Error(E::Transient)))
        );
        assert_eq!((o[1].attempts, &o[1].result), (3, &Ok(3)));
        assert_eq!(
            (o[2].attempts, &o[2].result),
            (1, &Err(Failure::Error(E::Permanent)))
        );
        assert_eq!(pool.stats().retried, 3 + 2);
    });
}

#[test]
fn bad_settings_are_build_errors() {
    let f = |n: &u8, _ctx: &Context<u8>| Ok::<_, ()>(*n);
    assert!(matches!(
        Builder::new().workers(0).build(f).unwrap_err(),
        BuildError::ZeroWorkers
    ));
    assert!(matches!(
        Builder::new().queue(0).build(f).unwrap_err(),
        BuildError::ZeroQueue
    ));
    for rate in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
        assert!(matches!(
            Builder::new().rate_limit(rate).build(f).unwrap_err(),
            BuildError::BadRate
        ));
    }
}

#[test]
fn rate_limited_jobs_all_run_and_cancel_wakes_the_limiter() {
    watchdog(30, || {
        // 1 job per hour: the first starts at once, the second waits in the limiter
        // until cancel wakes it, and comes back cancelled.
        let (jobs, results) = Builder::new()
            .workers(2)
            .rate_limit(1.0 / 3600.0)
            .build(|n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        jobs.send(0).unwrap();
        jobs.send(1).unwrap();
        while pool.stats().succeeded < 1 {
            std::thread::yield_now();
        }
        pool.cancel();
        let mut o: Vec<_> = results.collect();
        o.sort_by_key(|o| o.seq);
        assert_eq!(o[0].result, Ok(0));
        assert_eq!(o[1].result, Err(Failure::Cancelled));
    });
}

#[test]
fn resize_grows_and_shrinks_the_crew() {
    watchdog(30, || {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let hold = Arc::new(AtomicBool::new(true));
        let (r, p, h) = (running.clone(), peak.clone(), hold.clone());
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(100)
            .build(move |_: &u32, _ctx: &Context<u32>| {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                while h.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(())
            })
            .unwrap();
        let pool = jobs.pool();
        for n in 0..20 {
            jobs.send(n).unwrap();
        }
        pool.resize(4).unwrap();
        // Four workers, all holding a job at once: the crew really grew.
        while running.load(Ordering::SeqCst) < 4 {
            std::thread::yield_now();
        }
        pool.resize(1).unwrap();
        // The three workers above the size leave once their jobs are done.
        assert_eq!(pool.stats().workers, 4);
        hold.store(false, Ordering::SeqCst);
        while pool.stats().workers > 1 {
            std::thread::yield_now();
        }
        drop(jobs);
        assert_eq!(results.count(), 20);
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        pool.wait().unwrap();
    });
}

// ---- Statistics ----------------------------------------------------------------------

#[test]
fn stats_add_up_and_time_the_jobs() {
    quiet_boom();
    watchdog(30, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .build(|n: &u32, _ctx: &Context<u32>| match n % 3 {
                0 => {
                    std::thread::sleep(Duration::from_millis(2));
                    Ok(())
                }
                1 => Err(()),
                _ => panic!("boom"),
            })
            .unwrap();
        let pool = jobs.pool();
        for n in 0..30 {
            jobs.send(n).unwrap();
        }
        drop(jobs);
        let outcomes: Vec<_> = results.collect();
        pool.wait().unwrap();
        let s = pool.stats();
        assert_eq!(
            (s.submitted, s.succeeded, s.failed, s.panicked),
            (30, 10, 10, 10)
        );
        assert_eq!(
            (s.queued, s.running, s.cancelled, s.timed_out),
            (0, 0, 0, 0)
        );
        assert_eq!(s.run_time.count, 30);
        // The sleeping jobs ran at least 2 ms: the clock measures something real.
        assert!(
            s.run_time.max >= Duration::from_millis(2),
            "{:?}",
            s.run_time
        );
        assert!(s.run_time.p50 <= s.run_time.p90 && s.run_time.p90 <= s.run_time.p99);
        for o in outcomes.iter().filter(|o| o.job % 3 == 0) {
            assert!(o.run_time >= Duration::from_millis(2), "{:?}", o.run_time);
        }
    });
}

#[test]
fn reading_results_from_inside_a_worker_fails_that_job_instead_of_hanging() {
    quiet_boom();
    watchdog(30, || {
        type R = brigade::Results<u8, usize, ()>;
        let slot: Arc<Mutex<Option<R>>> = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(move |n: &u8, _ctx: &Context<u8>| {
                if *n == 1 {
                    let mut r = s.lock().unwrap().take().unwrap();
                    let first = r.next(); // outcome of job 0 is ready
                    let _ = r.next(); // nothing else can come while this job runs
                    drop(first);
                }
                Ok::<usize, ()>(0)
            })
            .unwrap();
        let pool = jobs.pool();
        jobs.send(0).unwrap();
        while pool.stats().succeeded < 1 {
            std::thread::yield_now();
        }
        *slot.lock().unwrap() = Some(results);
        jobs.send(1).unwrap();
        drop(jobs);
        pool.wait().unwrap();
        let s = pool.stats();
        assert_eq!((s.succeeded, s.panicked), (1, 1));
    });
}

// ---- Found in review: user code and extreme settings never break a promise -----------

#[test]
fn a_panicking_retry_predicate_is_the_jobs_outcome() {
    quiet_boom();
    watchdog(30, || {
        let outcomes: Vec<_> = Builder::new()
            .workers(1)
            .retries(3)
            .backoff(Duration::ZERO, Duration::ZERO)
            .retry_if(|_: &&str| -> bool { panic!("boom in predicate") })
            .run(0..3u8, |_: &u8, _ctx: &Context<u8>| Err::<(), _>("no"))
            .collect();
        assert_eq!(outcomes.len(), 3);
        for o in outcomes {
            assert_eq!(o.result, Err(Failure::Panicked("boom in predicate".into())));
        }
    });
}

#[test]
fn extreme_settings_never_hang() {
    watchdog(30, || {
        // A timeout or backoff too large for the clock means none; a rate too small is one per century.
        let o: Vec<_> = Builder::new()
            .timeout(Duration::MAX)
            .retries(1)
            .backoff(Duration::MAX, Duration::MAX)
            .run(
                0..2u8,
                |n: &u8, _ctx: &Context<u8>| if *n == 0 { Ok(0) } else { Err("x") },
            )
            .collect();
        assert_eq!(o.len(), 2);
        let f = |n: &u8, _ctx: &Context<u8>| Ok::<_, ()>(*n);
        let (jobs, _results) = Builder::new().rate_limit(1e-300).build(f).unwrap();
        jobs.pool().cancel();
    });
}

#[test]
fn a_job_sending_on_its_own_full_pool_does_not_deadlock() {
    watchdog(30, || {
        let slot: Arc<Mutex<Option<brigade::Jobs<u32>>>> = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(move |n: &u32, _ctx: &Context<u32>| {
                if *n < 50 {
                    // Not ctx.spawn: the plain jobs half, from inside the pool.
                    let tx = s.lock().unwrap().clone().unwrap();
                    tx.send(n + 100).unwrap();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        *slot.lock().unwrap() = Some(jobs.clone());
        let producer = std::thread::spawn(move || {
            for n in 0..50 {
                jobs.send(n).unwrap();
            }
        });
        let (mut originals, mut all) = (0, 0);
        for o in results {
            all += 1;
            if o.job < 50 {
                originals += 1;
                if originals == 50 {
                    // Every job that sends has run: drop the last jobs half, closing.
                    slot.lock().unwrap().take();
                }
            }
        }
        assert_eq!((originals, all), (50, 100));
        producer.join().unwrap();
    });
}

#[test]
fn a_panicking_iterator_keeps_its_jobs_and_surfaces_the_panic() {
    quiet_boom();
    watchdog(30, || {
        let mut results = Builder::new().workers(2).run(
            (0..10u32).map(|n| {
                if n == 5 {
                    panic!("boom in iterator")
                } else {
                    n
                }
            }),
            |n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n),
        );
        let mut seen = Vec::new();
        let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for o in results.by_ref() {
                seen.push(o.job);
            }
        }));
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4], "the jobs before the panic were lost");
        // The iterator's own panic, with its own payload.
        let payload = end.unwrap_err();
        assert_eq!(*payload.downcast::<&str>().unwrap(), "boom in iterator");
    });
}

#[test]
fn dropping_the_results_of_run_stops_an_endless_feed() {
    watchdog(30, || {
        let results = Builder::new()
            .workers(2)
            .run(0u64.., |n: &u64, _ctx: &Context<u64>| Ok::<_, ()>(*n));
        let pool = results.pool();
        let first: Vec<_> = results.take(3).collect();
        assert_eq!(first.len(), 3);
        pool.wait().unwrap();
        assert!(pool.is_finished());
    });
}

#[test]
fn fail_fast_at_delivery_wakes_sleeping_jobs() {
    watchdog(60, || {
        // Worker 1 (added by resize) cannot build its state: its job fails with
        // Init, which cancels the pool at delivery; worker 0's long sleep must wake.
        let (started, is_started) = mpsc::channel();
        let started = Mutex::new(started);
        let (jobs, results) = Builder::new()
            .workers(1)
            .fail_fast()
            .state(|w| {
                if w == 0 {
                    Ok(())
                } else {
                    Err("no state for worker 1")
                }
            })
            .build(move |_: &mut (), n: &u32, ctx: &Context<u32>| {
                if *n == 0 {
                    started.lock().unwrap().send(()).unwrap();
                    return Ok::<_, ()>(ctx.sleep(Duration::from_secs(600)));
                }
                Ok(true)
            })
            .unwrap();
        let pool = jobs.pool();
        jobs.send(0).unwrap();
        is_started.recv().unwrap();
        pool.resize(2).unwrap();
        jobs.send(1).unwrap();
        drop(jobs);
        let mut o: Vec<_> = results.collect();
        o.sort_by_key(|o| o.seq);
        assert_eq!(
            o[0].result,
            Ok(false),
            "the sleep was not cut short by the cancel"
        );
        assert!(matches!(o[1].result, Err(Failure::Init(_))));
    });
}
