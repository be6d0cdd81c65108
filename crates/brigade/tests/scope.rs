//! `Builder::scope`: a pool whose worker function borrows from the caller's
//! stack. Each test checks one of its promises: every job sent finishes
//! before `scope` returns, no worker outlives the scope, a handle kept past
//! the scope finds the pool closed, a panic in the body cancels and goes on,
//! and resize works inside a scope.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

use brigade::{BuildError, Builder, Failure, SendError};
use common::{quiet_boom, watchdog};

#[test]
fn the_worker_function_borrows_and_every_sent_job_is_done_when_scope_returns() {
    watchdog(60, || {
        let done = AtomicUsize::new(0); // borrowed, not Arc
        let names = [String::from("a"), String::from("bb"), String::from("ccc")];
        let sent = Builder::new()
            .workers(3)
            .queue(2)
            .scope(
                |i: &usize, _ctx| {
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(names[*i % 3].len())
                },
                |jobs, results| {
                    // Nobody reads: the scope itself must still finish every job.
                    drop(results);
                    for i in 0..300 {
                        jobs.send(i).unwrap();
                    }
                    300
                },
            )
            .unwrap();
        assert_eq!(done.load(Ordering::SeqCst), sent);
    });
}

#[test]
fn outcomes_returned_from_the_body_are_read_after_the_scope() {
    watchdog(60, || {
        let base = 1000u64;
        let results = Builder::new()
            .workers(2)
            .scope(
                |n: &u64, _ctx| Ok::<_, ()>(base + n),
                |jobs, results| {
                    jobs.send_all(0..50).unwrap();
                    results
                },
            )
            .unwrap();
        let mut got: Vec<u64> = results.map(|o| o.result.unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (1000..1050).collect::<Vec<_>>());
    });
}

#[test]
fn a_jobs_half_kept_past_the_scope_finds_the_pool_closed() {
    watchdog(60, || {
        let kept = Mutex::new(None);
        Builder::new()
            .workers(1)
            .scope(
                |n: &u32, _ctx| Ok::<_, ()>(*n),
                |jobs, _results| {
                    jobs.send(1).unwrap();
                    *kept.lock().unwrap() = Some(jobs);
                },
            )
            .unwrap();
        let jobs = kept.into_inner().unwrap().unwrap();
        assert!(jobs.is_closed());
        assert!(matches!(jobs.send(2), Err(SendError::Closed(2))));
        let pool = jobs.pool();
        assert!(pool.is_finished(), "a worker outlived the scope");
        assert_eq!(pool.stats().workers, 0);
    });
}

#[test]
fn a_panicking_body_cancels_the_pool_and_the_panic_goes_on() {
    quiet_boom();
    watchdog(60, || {
        let started = AtomicUsize::new(0);
        let gate = Barrier::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Builder::new().workers(1).queue(100).scope(
                |n: &u32, ctx| {
                    started.fetch_add(1, Ordering::SeqCst);
                    if *n == 0 {
                        gate.wait();
                        // Hold the only worker until the cancel.
                        while !ctx.is_cancelled() {
                            std::thread::yield_now();
                        }
                    }
                    Ok::<_, ()>(*n)
                },
                |jobs, _results| {
                    jobs.send_all(0..100).unwrap();
                    gate.wait();
                    panic!("boom in the body");
                },
            )
        }));
        let payload = r.expect_err("the body's panic goes on");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in the body"));
        // Job 0 ran until the cancel; the 99 queued jobs were never started.
        assert_eq!(started.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn resize_inside_a_scope_starts_scoped_workers() {
    watchdog(60, || {
        // Four jobs that can only finish together: they need four workers at once.
        let meet = Barrier::new(4);
        let ok = Builder::new()
            .workers(1)
            .scope(
                |_: &u32, _ctx| {
                    meet.wait();
                    Ok::<_, ()>(())
                },
                |jobs, results| {
                    jobs.pool().resize(4).unwrap();
                    jobs.send_all(0..4).unwrap();
                    drop(jobs);
                    results.filter(|o| o.is_ok()).count()
                },
            )
            .unwrap();
        assert_eq!(ok, 4);
    });
}

#[test]
fn bad_settings_and_failed_initialisers_are_errors_and_the_body_never_runs() {
    watchdog(60, || {
        let ran = AtomicUsize::new(0);
        let e = Builder::new()
            .workers(0)
            .scope(
                |n: &u32, _ctx| Ok::<_, ()>(*n),
                |_, _| ran.fetch_add(1, Ordering::SeqCst),
            )
            .unwrap_err();
        assert!(matches!(e, BuildError::ZeroWorkers));
        let e = Builder::new()
            .workers(3)
            .state(|w| if w == 2 { Err("no connection") } else { Ok(()) })
            .scope(
                |_: &mut (), n: &u32, _ctx| Ok::<_, ()>(*n),
                |_, _| ran.fetch_add(1, Ordering::SeqCst),
            )
            .unwrap_err();
        assert!(matches!(e, BuildError::Init(_)), "{e:?}");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_panicking_job_in_a_scope_is_its_outcome_and_the_crew_carries_on() {
    quiet_boom();
    watchdog(60, || {
        let outs: Vec<_> = Builder::new()
            .workers(2)
            .scope(
                |n: &u32, _ctx| {
                    if n % 10 == 3 {
                        panic!("boom {n}");
                    }
                    Ok::<_, ()>(*n)
                },
                |jobs, results| {
                    jobs.send_all(0..100).unwrap();
                    drop(jobs);
                    results.collect()
                },
            )
            .unwrap();
        assert_eq!(outs.len(), 100);
        let panics = outs
            .iter()
            .filter(|o| matches!(o.result, Err(Failure::Panicked(_))))
            .count();
        assert_eq!(panics, 10);
    });
}
