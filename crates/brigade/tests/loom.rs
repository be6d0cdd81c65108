//! Loom model checks of the shutdown protocol.
//!
//! The real pool code runs here (through `src/sync.rs`, which swaps in loom's
//! `Mutex`, `Condvar`, atomics, threads and thread locals), and loom explores
//! the interleavings of its workers with the threads of each model, up to a
//! preemption bound. Each model checks, on every interleaving it explores:
//!
//! - no thread is left blocked for ever (loom reports a deadlock otherwise):
//!   the results iterator ends, blocked senders return, `wait` returns, and
//!   the workers exit;
//! - every accepted job yields exactly one outcome: the outcomes' seqs are
//!   exactly the accepted ones, none twice, each with its own job handed back;
//!   every refused job is handed back intact in the error;
//! - the counters add up once the pool is finished:
//!   `submitted == succeeded + failed + panicked + timed_out + cancelled`,
//!   nothing queued or running.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p brigade --release --test loom
//! ```
//!
//! (about a minute on two cores). Each model has its own preemption bound, 2
//! or 3, the most that keeps it to seconds; `LOOM_MAX_PREEMPTIONS=n`
//! overrides them all for a deeper search, and `--nocapture` shows how many
//! interleavings each model explored. A deadlock makes loom panic with `deadlock; threads = ..`,
//! after which the test binary usually aborts (a loom object's destructor
//! panics during the unwinding); run the failing model alone to see it.
//! Time, timeouts, rate limits, backoff and `Context::sleep` are kept out of
//! the models (loom cannot model real time), and so is `Builder::run` (its
//! producer is a `std` thread).
#![cfg(loom)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use brigade::{Builder, Failure, Jobs, Outcome, Pool, SendError, Stats, WaitError};
use loom::thread;

/// Runs `f` under loom, exploring every interleaving with at most
/// `preemptions` preemptions (`LOOM_MAX_PREEMPTIONS` overrides the bound of
/// every model), and prints how many interleavings that was.
fn model<F>(preemptions: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    common::quiet_boom();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    // The pool takes its lock many times per job: allow long executions.
    b.max_branches = b.max_branches.max(100_000);
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "{}: {} interleavings in {:.1?}",
        std::thread::current().name().unwrap_or("model"),
        runs.load(Ordering::Relaxed),
        start.elapsed()
    );
}

/// Jobs by seq.
type Ledger = BTreeMap<u64, u32>;

/// Sends `items` in order with blocking sends. Returns the accepted jobs by
/// seq and the refused jobs; a refusal must be `Closed` with the job intact.
fn send_all(jobs: &Jobs<u32>, items: &[u32]) -> (Ledger, Vec<u32>) {
    let mut accepted = Ledger::new();
    let mut refused = Vec::new();
    for &n in items {
        match jobs.send(n) {
            Ok(seq) => assert!(accepted.insert(seq, n).is_none(), "seq {seq} given twice"),
            Err(SendError::Closed(back)) => {
                assert_eq!(back, n, "a refused job comes back intact");
                refused.push(back);
            }
            Err(e) => panic!("a blocking send can only be refused as closed: {e:?}"),
        }
    }
    (accepted, refused)
}

/// Every accepted job has exactly one outcome, carrying its own job, and there is no other.
fn check_outcomes<T, E>(outcomes: &[Outcome<u32, T, E>], accepted: &Ledger) {
    let mut seen = Ledger::new();
    for o in outcomes {
        assert!(
            seen.insert(o.seq, o.job).is_none(),
            "seq {} has two outcomes",
            o.seq
        );
    }
    assert_eq!(
        &seen, accepted,
        "the outcomes are exactly the accepted jobs"
    );
}

/// The counters of a finished pool add up.
fn check_stats(pool: &Pool, submitted: usize) -> Stats {
    let s = pool.stats();
    assert_eq!(s.submitted, submitted as u64, "{s:?}");
    assert_eq!((s.queued, s.running), (0, 0), "{s:?}");
    assert_eq!(
        s.submitted,
        s.succeeded + s.failed + s.panicked + s.timed_out + s.cancelled,
        "{s:?}"
    );
    s
}

/// Two clones of the jobs half, each sending one job and dropping itself,
/// one on the main thread and one on another: whichever drop is last closes
/// the pool, racing with the jobs running and finishing on one worker. A
/// send may wait for the queue of one to have room. (The outcomes bound is
/// two: with one, the main thread, which reads the outcomes only after its
/// send, could wait for ever for room that only its own reading makes, which
/// loom duly reports; `Jobs` documents that hazard.) Nobody calls `wait`:
/// the worker must exit on its own once every handle is gone.
#[test]
fn close_races_last_job() {
    model(3, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .results_capacity(2)
            .build(|n: &u32, _ctx| Ok::<_, ()>(n * 2))
            .unwrap();
        let pool = results.pool();
        let other = jobs.clone();
        let producer = thread::spawn(move || send_all(&other, &[8]));
        let (mut accepted, refused) = send_all(&jobs, &[7]);
        assert!(refused.is_empty());
        drop(jobs);
        let outcomes: Vec<_> = results.collect();
        let (more, refused) = producer.join().unwrap();
        assert!(
            refused.is_empty(),
            "the pool closes only when both are gone"
        );
        accepted.extend(more);
        check_outcomes(&outcomes, &accepted);
        assert!(outcomes.iter().all(|o| o.result == Ok(o.job * 2)));
        let s = check_stats(&pool, 2);
        assert_eq!(s.succeeded, 2);
    });
}

/// Two workers, a queue of two: a producer thread sends two jobs and drops
/// its half while the workers run them and the main thread reads the outcomes.
#[test]
fn close_races_jobs_on_two_workers() {
    model(2, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(2)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2]));
        let outcomes: Vec<_> = results.collect();
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        check_outcomes(&outcomes, &accepted);
        assert!(outcomes.iter().all(|o| o.result == Ok(o.job)));
        check_stats(&pool, 2);
        pool.wait().unwrap();
        assert!(pool.is_finished());
    });
}

/// Cancel (from another thread) races with a running job and a queued one,
/// and with a third send that may be blocked on the full queue. The jobs half
/// stays alive throughout: cancel alone must end the results.
#[test]
fn cancel_races_running_and_queued_jobs() {
    model(3, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(2)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let (mut accepted, refused) = send_all(&jobs, &[1, 2]);
        assert!(refused.is_empty());
        let canceller = {
            let pool = pool.clone();
            thread::spawn(move || pool.cancel())
        };
        // May wait for room, then be refused by the cancel, or be accepted first.
        let (more, _) = send_all(&jobs, &[3]);
        accepted.extend(more);
        let outcomes: Vec<_> = results.collect();
        check_outcomes(&outcomes, &accepted);
        let mut cancelled = 0;
        for o in &outcomes {
            match &o.result {
                Ok(v) => assert_eq!(*v, o.job),
                Err(Failure::Cancelled) => {
                    assert_eq!(o.attempts, 0, "a cancelled job never started");
                    assert_eq!(o.worker, None);
                    cancelled += 1;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        canceller.join().unwrap();
        assert!(matches!(jobs.send(4), Err(SendError::Closed(4))));
        let s = check_stats(&pool, accepted.len());
        assert_eq!(s.cancelled, cancelled);
        drop(jobs);
        pool.wait().unwrap();
    });
}

/// The results half is dropped (after reading one outcome) while outcomes
/// are being delivered and a producer is blocked on the unread-outcomes bound
/// (`results_capacity(1)`): the drop must release the producer, every job
/// still runs, and the counters add up.
#[test]
fn results_drop_races_delivery() {
    model(3, || {
        let (jobs, mut results) = Builder::new()
            .workers(1)
            .queue(1)
            .results_capacity(1)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2, 3]));
        let first = results.next().expect("one outcome at least");
        drop(results);
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty(), "nothing closed the pool");
        assert_eq!(accepted.get(&first.seq), Some(&first.job));
        pool.wait().unwrap();
        let s = check_stats(&pool, 3);
        assert_eq!(s.succeeded, 3);
    });
}

/// A panicking job between two others, with one worker, racing with close:
/// the panic is that job's outcome, the worker carries on with its state
/// rebuilt, and the pool keeps its size.
#[test]
fn panicking_job_races_close() {
    model(3, || {
        let inits = Arc::new(AtomicUsize::new(0));
        let counted = inits.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(2)
            .state(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .build(|_: &mut (), n: &u32, _ctx| {
                if *n == 2 {
                    panic!("boom: job {n}");
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2, 3]));
        let outcomes: Vec<_> = results.collect();
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        check_outcomes(&outcomes, &accepted);
        for o in &outcomes {
            match (o.job, &o.result) {
                (2, Err(Failure::Panicked(m))) => assert_eq!(m.message(), "boom: job 2"),
                (n, Ok(v)) if n != 2 => assert_eq!(*v, n),
                (n, r) => panic!("job {n}: unexpected {r:?}"),
            }
        }
        let s = check_stats(&pool, 3);
        assert_eq!((s.succeeded, s.panicked, s.target_workers), (2, 1, 1));
        pool.wait().unwrap();
        // Built once at the start and once again after the panic, before job 3.
        assert_eq!(inits.load(Ordering::SeqCst), 2);
    });
}

/// One worker, a queue of one: job 1 adds a follow-up job while job 2 fills
/// the queue (its sender may be blocked), and the producer closes. The
/// follow-up goes past the full queue instead of deadlocking the worker,
/// and the pool does not finish under it.
#[test]
fn follow_up_with_one_worker_and_full_queue_races_close() {
    model(3, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|n: &u32, ctx| {
                if *n == 1 {
                    let seq = ctx
                        .spawn(10)
                        .expect("not cancelled: the follow-up is taken");
                    return Ok::<_, ()>(Some(seq));
                }
                Ok(None)
            })
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2]));
        let outcomes: Vec<_> = results.collect();
        let (mut accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        let follow_ups: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| match o.result {
                Ok(Some(seq)) => Some(seq),
                _ => None,
            })
            .collect();
        assert_eq!(follow_ups.len(), 1);
        accepted.insert(follow_ups[0], 10);
        check_outcomes(&outcomes, &accepted);
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        check_stats(&pool, 3);
        pool.wait().unwrap();
    });
}

/// A follow-up job races with cancel: it is either taken (and then has an
/// outcome, run or cancelled) or handed back to the job that spawned it.
#[test]
fn follow_up_races_cancel() {
    model(3, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|n: &u32, ctx| {
                if *n == 1 {
                    return Ok::<_, ()>(match ctx.spawn(10) {
                        Ok(seq) => Some(seq),
                        Err(back) => {
                            assert_eq!(back, 10, "a refused follow-up comes back intact");
                            None
                        }
                    });
                }
                Ok(None)
            })
            .unwrap();
        let pool = jobs.pool();
        let (mut accepted, _) = send_all(&jobs, &[1]);
        let canceller = {
            let pool = pool.clone();
            thread::spawn(move || pool.cancel())
        };
        let outcomes: Vec<_> = results.collect();
        canceller.join().unwrap();
        for o in &outcomes {
            if let Ok(Some(seq)) = o.result {
                accepted.insert(seq, 10);
            }
        }
        check_outcomes(&outcomes, &accepted);
        check_stats(&pool, accepted.len());
        drop(jobs);
        pool.wait().unwrap();
    });
}

/// `Pool::wait` on the main thread races with a producer that sends two jobs
/// and closes, on two workers. `wait` returns only when every outcome is
/// delivered and every worker has exited; and a job that calls `wait` on its
/// own pool gets an error instead of hanging.
#[test]
fn wait_races_close() {
    model(3, || {
        let slot: Arc<Mutex<Option<Pool>>> = Arc::new(Mutex::new(None));
        let in_job = slot.clone();
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(1)
            .results_capacity(2)
            .build(move |n: &u32, _ctx| {
                // Taken, so the pool does not keep a handle to itself.
                let pool = in_job.lock().unwrap().take();
                Ok::<_, ()>((*n, pool.map(|p| p.wait())))
            })
            .unwrap();
        let pool = jobs.pool();
        *slot.lock().unwrap() = Some(pool.clone());
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2]));
        pool.wait().unwrap();
        assert!(pool.is_finished());
        let outcomes: Vec<_> = results.collect();
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        check_outcomes(&outcomes, &accepted);
        let mut inside = 0;
        for o in &outcomes {
            match &o.result {
                Ok((n, None)) => assert_eq!(*n, o.job),
                Ok((n, Some(Err(WaitError::InsideWorker)))) => {
                    assert_eq!(*n, o.job);
                    inside += 1;
                }
                r => panic!("unexpected {r:?}"),
            }
        }
        assert_eq!(inside, 1);
        check_stats(&pool, 2);
    });
}

/// A one-shot gate a job can wait at: loom's `Mutex` and `Condvar`, so a
/// job can be held running while the model does something else.
#[derive(Default)]
struct Gate {
    open: loom::sync::Mutex<bool>,
    cv: loom::sync::Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// A producer blocked on the full queue (one worker, queue of one, outcomes
/// bounded to one) while job 1 is held running at a gate, and the main
/// thread stops the pool and then joins the producer before opening the
/// gate or reading anything: the stop alone must release the blocked send
/// (accepted or handed back), not the end of a running job. Then every
/// accepted job has its one outcome.
fn blocked_sender(stop: fn(&Pool)) {
    model(3, move || {
        let gate = Arc::new(Gate::default());
        let in_job = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .results_capacity(1)
            .build(move |n: &u32, _ctx| {
                if *n == 1 {
                    in_job.pass();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2, 3]));
        stop(&pool);
        let (accepted, refused) = producer.join().unwrap();
        gate.open();
        assert_eq!(accepted.len() + refused.len(), 3);
        assert!(!accepted.is_empty() || refused == [1, 2, 3]);
        let outcomes: Vec<_> = results.collect();
        check_outcomes(&outcomes, &accepted);
        check_stats(&pool, accepted.len());
        pool.wait().unwrap();
    });
}

/// Backpressure is released by a worker taking a job, not only by one
/// finishing: job 1 is held running at a gate that opens only after the
/// producer's second send (which may wait on the full queue of one) has
/// returned. Then the producer's drop closes the pool.
#[test]
fn full_queue_sender_wakes_when_a_worker_takes_a_job() {
    model(3, || {
        let gate = Arc::new(Gate::default());
        let in_job = gate.clone();
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(move |n: &u32, _ctx| {
                if *n == 1 {
                    in_job.pass();
                }
                Ok::<_, ()>(*n)
            })
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2]));
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        gate.open();
        let outcomes: Vec<_> = results.collect();
        check_outcomes(&outcomes, &accepted);
        check_stats(&pool, 2);
        pool.wait().unwrap();
    });
}

#[test]
fn blocked_sender_and_close() {
    blocked_sender(Pool::close);
}

#[test]
fn blocked_sender_and_cancel() {
    blocked_sender(Pool::cancel);
}

/// Ordered results with a window of two on two workers and a queue of one:
/// jobs 1 and 2 run side by side and job 2 may finish first and wait in the
/// reorder buffer; job 3's sender waits on the window until job 1's outcome
/// is read, then closes. The outcomes come in submission order, each once.
#[test]
fn ordered_window_races_close() {
    model(2, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(1)
            .ordered_window(2)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2, 3]));
        let outcomes: Vec<_> = results.collect();
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        check_outcomes(&outcomes, &accepted);
        let seqs: Vec<u64> = outcomes.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, [0, 1, 2], "submission order");
        check_stats(&pool, 3);
        pool.wait().unwrap();
    });
}

/// Fail-fast on two workers: job 1 fails and cancels the pool from its
/// worker while job 2 may be running on the other, job 3 may be queued or
/// still being sent. The failure, the cancelled jobs and the refused send
/// all add up.
#[test]
fn fail_fast_races_running_and_queued_jobs() {
    model(2, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(1)
            .results_capacity(3)
            .fail_fast()
            .build(|n: &u32, _ctx| if *n == 1 { Err("bad") } else { Ok(*n) })
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2, 3]));
        let outcomes: Vec<_> = results.collect();
        let (accepted, refused) = producer.join().unwrap();
        assert_eq!(accepted.get(&0), Some(&1), "the first send is always taken");
        assert_eq!(accepted.len() + refused.len(), 3);
        check_outcomes(&outcomes, &accepted);
        let mut cancelled = 0;
        for o in &outcomes {
            match (o.job, &o.result) {
                (1, Err(Failure::Error("bad"))) => {}
                (n, Ok(v)) if n != 1 => assert_eq!(*v, n),
                (n, Err(Failure::Cancelled)) if n != 1 => cancelled += 1,
                (n, r) => panic!("job {n}: unexpected {r:?}"),
            }
        }
        let s = check_stats(&pool, accepted.len());
        assert_eq!((s.failed, s.cancelled), (1, cancelled));
        pool.wait().unwrap();
    });
}

/// Resizing from two workers to one races with sends and the jobs running;
/// once `resize` has returned, the surplus worker starts no new job (job 3
/// runs on worker 0); then the pool closes. Nothing is lost or run twice.
#[test]
fn resize_down_races_jobs_and_close() {
    model(2, || {
        let (jobs, results) = Builder::new()
            .workers(2)
            .queue(2)
            .results_capacity(3)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let (mut accepted, _) = send_all(&jobs, &[1]);
        let resizer = {
            let pool = pool.clone();
            thread::spawn(move || pool.resize(1).unwrap())
        };
        accepted.extend(send_all(&jobs, &[2]).0);
        resizer.join().unwrap();
        accepted.extend(send_all(&jobs, &[3]).0);
        drop(jobs);
        let outcomes: Vec<_> = results.collect();
        check_outcomes(&outcomes, &accepted);
        for o in &outcomes {
            assert_eq!(o.result, Ok(o.job));
            if o.job == 3 {
                assert_eq!(
                    o.worker,
                    Some(0),
                    "a job sent after resize(1) runs on worker 0"
                );
            }
        }
        let s = check_stats(&pool, 3);
        assert_eq!((s.succeeded, s.target_workers), (3, 1));
        pool.wait().unwrap();
    });
}

/// Growing from one worker to two races with the pool closing and
/// finishing: a worker started after the finish must exit too, and `wait`
/// must wait for it.
#[test]
fn resize_up_races_close() {
    model(3, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|n: &u32, _ctx| Ok::<_, ()>(*n))
            .unwrap();
        let pool = jobs.pool();
        let (accepted, _) = send_all(&jobs, &[1]);
        let resizer = {
            let pool = pool.clone();
            thread::spawn(move || pool.resize(2).unwrap())
        };
        drop(jobs);
        let outcomes: Vec<_> = results.collect();
        check_outcomes(&outcomes, &accepted);
        resizer.join().unwrap();
        pool.wait().unwrap();
        assert!(pool.is_finished());
        check_stats(&pool, 1);
    });
}

/// A worker's initialiser fails while the pool is being built: `build`
/// reports it, and first shuts the crew down without hanging.
#[test]
fn init_error_at_build_shuts_down() {
    model(3, || {
        let r = Builder::new()
            .workers(2)
            .state(|w| if w == 1 { Err("no connection") } else { Ok(()) })
            .build(|_: &mut (), n: &u32, _ctx| Ok::<_, ()>(*n));
        match r {
            Err(brigade::BuildError::Init(e)) => {
                let source = std::error::Error::source(&e).map(|s| s.to_string());
                assert_eq!((e.worker(), source.as_deref()), (1, Some("no connection")));
            }
            Err(e) => panic!("unexpected {e:?}"),
            Ok(_) => panic!("the failed initialiser is reported"),
        }
    });
}

/// A job that holds a clone of its own pool's jobs half, with the results
/// half gone: each outcome, and the `Jobs` clone inside its job, is dropped
/// by the pool itself. That drop takes the pool's lock (the last clone closes
/// the pool), so it must run after the lock is released: loom's mutex is not
/// re-entrant, and a drop under the lock deadlocks the model.
#[test]
fn pool_drops_a_job_holding_its_jobs_half_outside_the_lock() {
    struct Holder(#[allow(dead_code)] Option<Jobs<Holder>>);
    model(2, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(1)
            .build(|_: &Holder, _ctx| Ok::<_, ()>(()))
            .unwrap();
        let pool = jobs.pool();
        drop(results);
        let clone = jobs.clone();
        let producer = thread::spawn(move || {
            let a = jobs.send(Holder(Some(jobs.clone()))).is_ok();
            a as u64
        });
        // The main thread's clone travels inside the second job: once both
        // outcomes are dropped, no handle is left and the pool closes.
        let b = clone.send(Holder(None)).is_ok() as u64;
        drop(clone);
        let a = producer.join().unwrap();
        pool.wait().unwrap();
        let s = check_stats(&pool, (a + b) as usize);
        assert_eq!(s.succeeded, a + b);
    });
}

/// A panicking `Drop` on a value the pool throws away (the results half is
/// gone) races with close: the panic is contained where the pool drops its
/// garbage, the worker carries on, and the pool finishes with its counts.
#[test]
fn panicking_drop_of_a_thrown_away_value_races_close() {
    use common::Bomb;
    model(2, || {
        let (jobs, results) = Builder::new()
            .workers(1)
            .queue(2)
            .build(|_: &u32, _ctx| Ok::<_, ()>(Bomb))
            .unwrap();
        let pool = jobs.pool();
        let producer = thread::spawn(move || send_all(&jobs, &[1, 2]));
        drop(results);
        let (accepted, refused) = producer.join().unwrap();
        assert!(refused.is_empty());
        pool.wait().unwrap();
        let s = check_stats(&pool, accepted.len());
        assert_eq!((s.succeeded, s.target_workers), (2, 1));
    });
}
