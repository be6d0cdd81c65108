//! The promises against a hostile user: `Drop` code that panics or takes the
//! pool's handles, jobs that wait for each other, extreme settings, slow
//! state drops, and the misuse that would hang. Each test failed (or hung)
//! on the core before the [promises] rewrite. Every test runs under a watchdog.

mod common;

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use brigade::{BuildError, Builder, Context, Failure, Jobs, NextError, SendError, Stopped};
use common::{quiet_boom, watchdog, Bomb};

/// After whatever broke, the crew still has `n` workers and runs 50 more jobs.
fn crew_still_works<J: Send + 'static>(
    jobs: &Jobs<J>,
    results: &mut brigade::Results<J, u32, impl Send + 'static>,
    make: impl Fn(u32) -> J,
    n: usize,
) {
    for i in 0..50 {
        jobs.send(make(i)).unwrap();
    }
    let ok = results.by_ref().take(50).filter(|o| o.is_ok()).count();
    assert_eq!(ok, 50);
    assert_eq!(jobs.pool().stats().workers, n, "the crew shrank");
}

// ---- 1. User code never runs under the lock; every user drop is guarded ----

/// A value that counts how many of its kind are alive.
struct Tracked(Arc<AtomicUsize>);

impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Tracked {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn every_value_the_pool_throws_away_is_dropped_not_leaked_and_guarded() {
    quiet_boom();
    watchdog(60, || {
        let live = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let l = live.clone();
        // A job: whether it holds the worker, a counted value, maybe a Bomb.
        type Job = (bool, Tracked, Option<Bomb>);
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(16)
            .build(move |job: &Job, _ctx: &Context<Job>| {
                if job.0 {
                    started_tx.send(()).unwrap();
                    let _ = release_rx.lock().unwrap().recv();
                }
                Ok::<_, ()>(Tracked::new(&l))
            })
            .unwrap();
        let pool = results.pool();
        // Outcomes that reach the results half and are never taken; one worker
        // runs them in order, so the first one (taken below) has no Bomb.
        jobs.send((false, Tracked::new(&live), None)).unwrap();
        for _ in 0..2 {
            jobs.send((false, Tracked::new(&live), Some(Bomb))).unwrap();
        }
        let mut results = results;
        let first = results.next().unwrap();
        assert!(first.job.2.is_none());
        // The only worker is held; jobs wait in the queue behind it.
        jobs.send((true, Tracked::new(&live), Some(Bomb))).unwrap();
        started.recv().unwrap();
        for _ in 0..4 {
            jobs.send((false, Tracked::new(&live), Some(Bomb))).unwrap();
        }
        // The results half goes, with what it held unread; the queued jobs are
        // cancelled with nobody to read them; the held job's outcome is
        // delivered after the results half is gone. Every Drop panics, and
        // none of it reaches this thread or the crew.
        drop(results);
        pool.cancel();
        release.send(()).unwrap();
        drop(jobs);
        pool.wait().unwrap();
        drop(first);
        assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
    });
}

/// A job that holds a clone of its own pool's jobs half.
struct Holder(#[allow(dead_code)] Option<Jobs<Holder>>);

#[test]
fn a_job_holding_its_pools_jobs_half_is_dropped_without_the_lock() {
    watchdog(60, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(4)
            .build(|_: &Holder, _ctx: &Context<Holder>| Ok::<_, ()>(()))
            .unwrap();
        let pool = jobs.pool();
        // Nobody reads: each outcome (and the Jobs clone inside its job) is dropped by the pool.
        drop(results);
        for _ in 0..100 {
            jobs.send(Holder(Some(jobs.clone()))).unwrap();
        }
        // These must not block behind a worker stuck in a Drop under the lock.
        let _ = pool.stats();
        drop(jobs);
        pool.wait_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(pool.stats().succeeded, 100);
    });
}

#[test]
fn cancel_drops_queued_jobs_holding_the_jobs_half_without_the_lock() {
    watchdog(60, || {
        let gate = Arc::new(AtomicBool::new(false));
        let g = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(100)
            .build(move |_: &Holder, _ctx: &Context<Holder>| {
                while !g.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        let pool = jobs.pool();
        drop(results);
        for _ in 0..20 {
            jobs.send(Holder(Some(jobs.clone()))).unwrap();
        }
        pool.cancel();
        gate.store(true, Ordering::SeqCst);
        drop(jobs);
        pool.wait_timeout(Duration::from_secs(30)).unwrap();
    });
}

#[test]
fn a_value_dropped_on_timeout_may_panic_in_drop() {
    quiet_boom();
    watchdog(60, || {
        let (jobs, mut results) = Builder::new()
            .workers(1)
            .timeout(Duration::from_millis(5))
            .build(|n: &u32, ctx: &Context<u32>| {
                if *n == 1000 {
                    while !ctx.is_expired() {
                        ctx.sleep(Duration::from_millis(1));
                    }
                    return Ok((0, Some(Bomb)));
                }
                Ok::<_, ()>((*n, None))
            })
            .unwrap();
        jobs.send(1000).unwrap();
        assert_eq!(
            results.next().unwrap().result.unwrap_err(),
            Failure::TimedOut
        );
        for i in 0..50 {
            jobs.send(i).unwrap();
        }
        assert_eq!(results.by_ref().take(50).filter(|o| o.is_ok()).count(), 50);
        assert_eq!(jobs.pool().stats().workers, 1);
    });
}

#[test]
fn an_error_dropped_before_a_retry_may_panic_in_drop() {
    quiet_boom();
    watchdog(60, || {
        let (jobs, mut results) = Builder::new()
            .workers(1)
            .retries(1)
            .backoff(Duration::ZERO, Duration::ZERO)
            .build(|n: &u32, ctx: &Context<u32>| {
                if *n == 1000 && ctx.attempt() == 1 {
                    return Err(Bomb);
                }
                Ok(*n)
            })
            .unwrap();
        jobs.send(1000).unwrap();
        let o = results.next().unwrap();
        assert_eq!((o.attempts, o.result.unwrap()), (2, 1000));
        crew_still_works(&jobs, &mut results, |i| i, 1);
    });
}

#[test]
fn a_panic_payload_may_panic_in_drop() {
    quiet_boom();
    watchdog(60, || {
        let (jobs, mut results) = Builder::new()
            .workers(1)
            .build(|n: &u32, _ctx: &Context<u32>| {
                if *n == 1000 {
                    std::panic::panic_any(Bomb);
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        jobs.send(1000).unwrap();
        // The payload is kept; dropping this outcome drops it (and its panic is contained).
        let o = results.next().unwrap();
        assert!(matches!(o.result, Err(Failure::Panicked(_))));
        drop(o);
        crew_still_works(&jobs, &mut results, |i| i, 1);
        // A payload nobody reads is dropped by the pool, also without harm.
        drop(results);
        jobs.send(1000).unwrap();
        let pool = jobs.pool();
        drop(jobs);
        pool.wait_timeout(Duration::from_secs(30)).unwrap();
    });
}

#[test]
fn an_initialisers_panic_payload_may_panic_in_drop() {
    quiet_boom();
    watchdog(60, || {
        let err = Builder::new()
            .workers(2)
            .state(|w| -> Result<(), String> {
                if w == 1 {
                    std::panic::panic_any(Bomb);
                }
                Ok(())
            })
            .build(|_: &mut (), n: &u8, _ctx: &Context<u8>| Ok::<_, ()>(*n))
            .unwrap_err();
        let BuildError::Init(e) = &err else {
            panic!("{err}")
        };
        assert_eq!(e.worker(), 1);
        assert!(err.to_string().contains("initialiser panicked"), "{err}");
    });
}

#[test]
fn a_state_whose_drop_panics_is_rebuilt_and_the_crew_keeps_its_size() {
    quiet_boom();
    watchdog(60, || {
        let (jobs, mut results) = Builder::new()
            .workers(2)
            .state(|_| Ok::<_, std::io::Error>(Bomb))
            .build(|_: &mut Bomb, n: &u32, _ctx: &Context<u32>| {
                if *n == 1000 {
                    panic!("boom in job");
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        jobs.send(1000).unwrap();
        assert!(matches!(
            results.next().unwrap().result,
            Err(Failure::Panicked(_))
        ));
        crew_still_works(&jobs, &mut results, |i| i, 2);
        let pool = jobs.pool();
        drop(jobs);
        assert_eq!(results.count(), 0);
        pool.wait_timeout(Duration::from_secs(30)).unwrap();
    });
}

// ---- 2. No job waits in a private batch while a worker is idle ----------

#[test]
fn jobs_that_wait_for_each_other_all_start_after_a_burst_of_fast_jobs() {
    watchdog(60, || {
        for round in 0..20 {
            let barrier = Arc::new(Barrier::new(4));
            let b = barrier.clone();
            let (jobs, results) = Builder::new()
                .workers(4)
                .queue(1024)
                .build(move |n: &u32, _ctx: &Context<u32>| {
                    if *n >= 1_000_000 {
                        b.wait();
                    }
                    Ok::<_, ()>(())
                })
                .unwrap();
            let reader = std::thread::spawn(move || results.count());
            // Fast jobs: the workers take them in batches.
            jobs.send_all(0..10_000u32).unwrap();
            // Four jobs that wait for each other, then more fast ones behind
            // them: one worker's batch may hold several of the four.
            let mixed: Vec<u32> = (1_000_000..1_000_004).chain(0..200).collect();
            jobs.send_all(mixed).unwrap();
            drop(jobs);
            assert_eq!(reader.join().unwrap(), 10_204, "round {round}");
        }
    });
}

#[test]
fn cancel_hands_batched_jobs_back_at_once_and_running_counts_started_jobs() {
    watchdog(60, || {
        let hold = Arc::new(AtomicBool::new(true));
        let h = hold.clone();
        let (started, is_started) = mpsc::channel();
        let started = Mutex::new(started);
        let (jobs, mut results) = Builder::new()
            .workers(1)
            .queue(1024)
            .build(move |n: &u32, _ctx: &Context<u32>| {
                if *n == 1_000_000 {
                    started.lock().unwrap().send(()).unwrap();
                    while h.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        // Warm up: fast jobs make the worker take batches.
        jobs.send_all(0..500u32).unwrap();
        assert_eq!(results.by_ref().take(500).count(), 500);
        // A blocker and ten jobs behind it, in one trip: one batch.
        jobs.send_all((1_000_000..1_000_001).chain(0..10)).unwrap();
        is_started.recv().unwrap();
        let s = jobs.pool().stats();
        assert_eq!(s.running, 1, "only the blocker started: {s:?}");
        assert_eq!(s.queued, 10, "{s:?}");
        jobs.pool().cancel();
        // The ten come back now, while the blocker still runs.
        let back: Vec<_> = results.by_ref().take(10).collect();
        assert!(back.iter().all(|o| o.result == Err(Failure::Cancelled)));
        assert!(hold.load(Ordering::SeqCst));
        hold.store(false, Ordering::SeqCst);
        assert_eq!(results.next().unwrap().result, Ok(1_000_000));
        assert!(results.next().is_none());
    });
}

// ---- 3. Extreme settings work or are a BuildError -------------------------

#[test]
fn extreme_settings_work_or_are_build_errors() {
    watchdog(60, || {
        let f = |n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n);
        let n = Builder::new()
            .ordered_window(usize::MAX)
            .run(0..100u32, f)
            .count();
        assert_eq!(n, 100);
        let n = Builder::new()
            .queue(usize::MAX)
            .ordered()
            .run(0..100u32, f)
            .count();
        assert_eq!(n, 100);
        for workers in [usize::MAX, 1 << 40, brigade::MAX_WORKERS + 1] {
            assert!(matches!(
                Builder::new().workers(workers).build(f).unwrap_err(),
                BuildError::TooManyWorkers { .. }
            ));
        }
        assert!(matches!(
            Builder::new().io_bound(usize::MAX).build(f).unwrap_err(),
            BuildError::TooManyWorkers { .. }
        ));
        assert!(matches!(
            Builder::new().name("a\0b").build(f).unwrap_err(),
            BuildError::BadName
        ));
        // An infinite rate is no limit at all.
        let n = Builder::new()
            .rate_limit(f64::INFINITY)
            .run(0..100u32, f)
            .count();
        assert_eq!(n, 100);
        // Resizing to too many is refused and changes nothing.
        let (jobs, _results) = Builder::new().workers(2).build(f).unwrap();
        let pool = jobs.pool();
        assert!(matches!(
            pool.resize(usize::MAX),
            Err(BuildError::TooManyWorkers { .. })
        ));
        let s = pool.stats();
        assert_eq!((s.workers, s.target_workers), (2, 2));
    });
}

#[test]
fn a_tiny_rate_is_still_a_limit() {
    watchdog(60, || {
        // 7e-20 jobs a second: the first starts, the second waits (it used to mean "unlimited").
        let (jobs, mut results) = Builder::new()
            .workers(2)
            .rate_limit(7e-20)
            .build(|n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        jobs.send(1).unwrap();
        jobs.send(2).unwrap();
        assert!(results
            .next_timeout(Duration::from_secs(30))
            .unwrap()
            .is_ok());
        assert_eq!(
            results
                .next_timeout(Duration::from_millis(200))
                .unwrap_err(),
            NextError::Empty
        );
        jobs.pool().cancel();
        assert_eq!(results.next().unwrap().result, Err(Failure::Cancelled));
    });
}

// ---- 4. Resizing joins the workers that left ------------------------------

fn vm_size_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn resizing_up_and_down_does_not_keep_exited_threads() {
    watchdog(120, || {
        let (jobs, _results) = Builder::new()
            .workers(1)
            .build(|n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let cycle = || {
            pool.resize(8).unwrap();
            pool.resize(1).unwrap();
            while pool.stats().workers > 1 {
                std::thread::yield_now();
            }
        };
        for _ in 0..5 {
            cycle();
        }
        let Some(before) = vm_size_kib() else {
            eprintln!("skipped: no /proc/self/status");
            return;
        };
        for _ in 0..200 {
            cycle();
        }
        let after = vm_size_kib().unwrap();
        // 200 cycles of 7 unjoined threads would keep 1,400 stacks (2.8 GiB).
        // VmSize is the whole process's, and the other tests of this binary
        // run beside this one (their threads have stacks too), so the bound
        // leaves them 1 GiB.
        assert!(
            after < before + 1024 * 1024,
            "VmSize grew from {before} KiB to {after} KiB"
        );
    });
}

// ---- 5. Statistics say what their docs say ---------------------------------

#[test]
fn queue_wait_counts_from_acceptance_not_from_a_blocked_send() {
    watchdog(60, || {
        let hold = Arc::new(AtomicBool::new(true));
        let h = hold.clone();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let s = starts.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(move |n: &u32, _ctx: &Context<u32>| {
                s.lock().unwrap().push((*n, Instant::now()));
                if *n == 0 {
                    while h.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        let reader = std::thread::spawn(move || results.collect::<Vec<_>>());
        jobs.send(0).unwrap();
        while starts.lock().unwrap().is_empty() {
            std::thread::yield_now();
        }
        jobs.send(1).unwrap(); // fills the queue of one
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            hold.store(false, Ordering::SeqCst);
        });
        let t0 = Instant::now();
        jobs.send(2).unwrap(); // blocks until job 1 is taken, a second from now
        drop(jobs);
        releaser.join().unwrap();
        let outcomes = reader.join().unwrap();
        let start2 = starts
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| *n == 2)
            .unwrap()
            .1;
        let o2 = outcomes.iter().find(|o| o.job == 2).unwrap();
        // Accepted at least a second after t0: its wait in the queue leaves that second out.
        assert!(
            o2.queue_wait + Duration::from_millis(900) <= start2 - t0,
            "queue_wait {:?}, from the send to the start {:?}",
            o2.queue_wait,
            start2 - t0
        );
    });
}

#[test]
fn run_time_leaves_the_backoff_out() {
    watchdog(60, || {
        let o: Vec<_> = Builder::new()
            .retries(1)
            .backoff(Duration::from_secs(2), Duration::from_secs(2))
            .run(0..1u8, |_: &u8, ctx: &Context<u8>| {
                if ctx.attempt() == 1 {
                    Err("again")
                } else {
                    Ok(())
                }
            })
            .collect();
        assert_eq!(o[0].attempts, 2);
        // The backoff waited at least a second; the two attempts took next to nothing.
        assert!(
            o[0].run_time < Duration::from_secs(1),
            "{:?}",
            o[0].run_time
        );
    });
}

// ---- 6. shutdown_timeout is a bound ----------------------------------------

#[test]
fn shutdown_timeout_returns_at_its_deadline_naming_the_jobs_still_running() {
    watchdog(60, || {
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let (started, is_started) = mpsc::channel();
        let started = Mutex::new(started);
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(move |n: &u32, _ctx: &Context<u32>| {
                started.lock().unwrap().send(()).unwrap();
                // Ignores cancellation.
                while !r.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        jobs.send(7).unwrap();
        jobs.send(8).unwrap();
        is_started.recv().unwrap();
        let how = jobs
            .pool()
            .shutdown_timeout(Duration::from_millis(50))
            .unwrap();
        assert_eq!(how, Stopped::Cancelled { running: vec![0] });
        assert!(!release.load(Ordering::SeqCst));
        release.store(true, Ordering::SeqCst);
        let mut o: Vec<_> = results.collect();
        o.sort_by_key(|o| o.seq);
        assert_eq!(o[0].result, Ok(7));
        assert_eq!(o[1].result, Err(Failure::Cancelled));
    });
}

#[test]
fn shutdown_timeout_on_an_idle_pool_with_a_slow_state_drop_is_graceful() {
    struct Slow;
    impl Drop for Slow {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    watchdog(60, || {
        let (jobs, _results) = Builder::new()
            .workers(2)
            .state(|_| Ok::<_, std::io::Error>(Slow))
            .build(|_: &mut Slow, n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let how = pool.shutdown_timeout(Duration::from_millis(10)).unwrap();
        assert_eq!(how, Stopped::Graceful);
        pool.wait().unwrap();
    });
}

// ---- 7. The misuse that would hang is an error ------------------------------

#[test]
fn sending_past_the_unread_outcomes_from_the_reading_thread_is_an_error() {
    watchdog(60, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(4)
            .build(|n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        let mut refused = None;
        for n in 0..100 {
            if let Err(e) = jobs.send(n) {
                refused = Some(e);
                break;
            }
        }
        let e = refused.expect("100 jobs through a queue of 4 and 4 unread outcomes");
        assert!(matches!(e, SendError::WouldDeadlock(_)), "{e}");
        let job = e.into_inner();
        drop(jobs);
        // Every accepted job still has its outcome.
        assert_eq!(results.count() as u32, job);
    });
}

#[test]
fn a_reading_threads_send_blocked_on_a_full_queue_is_refused_once_its_wait_turns_to_the_outcomes() {
    // The send starts waiting on a full queue (which the crew drains), but by
    // the time the worker makes room there, the unread outcomes are at their
    // bound, and only this thread reads them. It must find out, not sleep on.
    // Found by the mutation runs (opt-level 1 timing); the pause below makes
    // the order likely, and the test holds in any order.
    watchdog(60, || {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let g = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(4)
            .build(move |n: &u32, _ctx: &Context<u32>| {
                if *n == 100 {
                    let (open, cv) = &*g;
                    let mut o = open.lock().unwrap();
                    while !*o {
                        o = cv.wait(o).unwrap();
                    }
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = results.pool();
        // Three unread outcomes, then the gated job running, then a full queue.
        for n in 0..3 {
            jobs.send(n).unwrap();
        }
        while pool.stats().succeeded < 3 {
            std::thread::yield_now();
        }
        jobs.send(100).unwrap();
        while pool.stats().running < 1 {
            std::thread::yield_now();
        }
        for n in 3..7 {
            jobs.send(n).unwrap();
        }
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        });
        let mut refused = None;
        for n in 7..1000 {
            if let Err(e) = jobs.send(n) {
                refused = Some(e);
                break;
            }
        }
        opener.join().unwrap();
        let e = refused.expect("a send refused");
        assert!(matches!(e, SendError::WouldDeadlock(_)), "{e}");
        let last = e.into_inner();
        drop(jobs);
        // Every accepted job has its outcome: 0..last and the gated one.
        assert_eq!(results.count() as u32, last + 1);
    });
}

#[test]
fn a_jobs_helper_thread_reading_or_waiting_on_its_own_pool_is_refused_instead_of_hanging() {
    watchdog(30, || {
        type R = brigade::Results<u8, u8, String>;
        let slot: Arc<Mutex<Option<(R, brigade::Pool)>>> = Arc::new(Mutex::new(None));
        let s = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .build(move |n: &u8, ctx: &Context<u8>| {
                if *n == 0 {
                    return Ok(0);
                }
                let (mut r, pool) = s.lock().unwrap().take().unwrap();
                // The job waits for its helper; the helper reads the results
                // past what is ready, then would wait for a pool that cannot
                // finish while the job runs.
                let helper = ctx
                    .spawn_thread(move || {
                        assert!(matches!(pool.wait(), Err(brigade::WaitError::InsideWorker)));
                        let first = r.next(); // job 0's outcome is ready
                        let _ = r.next(); // nothing more can come: refused
                        first.map(|o| o.seq)
                    })
                    .unwrap();
                match helper.join() {
                    Ok(_) => Err("the helper read on".to_string()),
                    Err(_) => Err("the helper's read was refused".to_string()),
                }
            })
            .unwrap();
        let pool = jobs.pool();
        jobs.send(0).unwrap();
        while pool.stats().succeeded < 1 {
            std::thread::yield_now();
        }
        *slot.lock().unwrap() = Some((results, pool.clone()));
        jobs.send(1).unwrap();
        drop(jobs);
        pool.wait().unwrap();
        let s = pool.stats();
        assert_eq!((s.succeeded, s.failed), (1, 1));
    });
}

#[test]
fn a_results_half_moved_to_a_reader_thread_is_no_deadlock() {
    watchdog(60, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(4)
            .build(|n: &u32, _ctx: &Context<u32>| Ok::<_, ()>(*n))
            .unwrap();
        let reader = std::thread::spawn(move || results.count());
        for n in 0..10_000 {
            jobs.send(n).unwrap();
        }
        drop(jobs);
        assert_eq!(reader.join().unwrap(), 10_000);
    });
}

// ---- A worker whose state cannot be rebuilt does not eat the queue ----------

#[test]
fn a_broken_worker_backs_off_instead_of_failing_the_queue() {
    quiet_boom();
    watchdog(60, || {
        let builds = Arc::new(AtomicUsize::new(0));
        let b = builds.clone();
        let (jobs, results) = Builder::new()
            .workers(4)
            .queue(256)
            .state(move |w| {
                // Worker 3 builds once, then never again.
                if w == 3 && b.fetch_add(1, Ordering::SeqCst) > 0 {
                    Err("database gone")
                } else {
                    Ok(())
                }
            })
            .build(|_: &mut (), n: &u32, ctx: &Context<u32>| {
                if ctx.worker() == 3 && *n == u32::MAX {
                    panic!("boom: break worker 3");
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let reader = std::thread::spawn(move || results.collect::<Vec<_>>());
        // Keep sending until worker 3 has taken the breaking job.
        while builds.load(Ordering::SeqCst) < 2 {
            jobs.send(u32::MAX).unwrap();
            std::thread::yield_now();
        }
        jobs.send_all(0..10_000u32).unwrap();
        drop(jobs);
        let outcomes = reader.join().unwrap();
        let init_failures = outcomes
            .iter()
            .filter(|o| matches!(o.result, Err(Failure::Init(_))))
            .count();
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        assert!(
            init_failures < 200,
            "one broken worker of 4 failed {init_failures} jobs"
        );
        assert_eq!(ok + init_failures, outcomes.len() - panicked(&outcomes));
    });
}

fn panicked<J, T, E>(outcomes: &[brigade::Outcome<J, T, E>]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o.result, Err(Failure::Panicked(_))))
        .count()
}

// ---- The API a crossbeam or std user expects --------------------------------

#[test]
fn errors_work_with_the_question_mark_and_keep_their_sources() {
    struct NotDebug;
    fn send_one(jobs: &Jobs<NotDebug>) -> Result<u64, Box<dyn Error + Send + Sync>> {
        Ok(jobs.send(NotDebug)?)
    }
    let (jobs, _results) = Builder::new()
        .build(|_: &NotDebug, _ctx: &Context<NotDebug>| Ok::<_, ()>(()))
        .unwrap();
    jobs.close();
    let e = send_one(&jobs).unwrap_err();
    assert_eq!(e.to_string(), "the pool is closed and takes no more jobs");
    assert_eq!(
        format!("{:?}", jobs.try_send(NotDebug).unwrap_err()),
        "Closed(..)"
    );

    // Failure's source is the worker's own error.
    let o: Vec<_> = Builder::new()
        .run(0..1u8, |_: &u8, _ctx: &Context<u8>| {
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .collect();
    let Err(f) = &o[0].result else { panic!() };
    assert_eq!(f.source().unwrap().to_string(), "disk full");
}

#[test]
fn a_finished_results_half_stays_finished_and_says_how_many_are_left() {
    let (jobs, mut results) = Builder::new()
        .build(|n: &u8, _ctx: &Context<u8>| Ok::<_, ()>(*n))
        .unwrap();
    for n in 0..3 {
        jobs.send(n).unwrap();
    }
    drop(jobs);
    assert!(results.next().unwrap().is_ok());
    results.pool().wait().unwrap();
    assert_eq!(results.by_ref().count(), 2);
    assert_eq!(results.size_hint(), (0, Some(0)));
    assert!(results.next().is_none());
    assert!(results.next().is_none());
    assert_eq!(results.try_next().unwrap_err(), NextError::Finished);
}

#[test]
fn a_panic_can_be_resumed_with_its_own_payload() {
    quiet_boom();
    #[derive(Debug, PartialEq)]
    struct Code(u32);
    let o: Vec<_> = Builder::new()
        .run(0..1u8, |_: &u8, _ctx: &Context<u8>| -> Result<(), ()> {
            std::panic::panic_any(Code(42))
        })
        .collect();
    let Some(Err(Failure::Panicked(p))) = o.into_iter().next().map(|o| o.result) else {
        panic!()
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.resume())).unwrap_err();
    assert_eq!(*caught.downcast::<Code>().unwrap(), Code(42));
}
