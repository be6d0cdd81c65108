//! Property tests of promise 1 for the async pool: every accepted job has exactly one
//! outcome, a refused send gives the job back, the stream ends, nothing hangs, and the
//! statistics add up, over random scenarios on both runtimes.
//!
//! A scenario: settings (workers, queue, ordered, fail-fast, retries, timeout), jobs with
//! a behaviour each (ok, error, panic, a short sleep, hang until the deadline, follow-up
//! jobs), and control events at random points of the sends (close, cancel, resize, the
//! reader dropping the results). 64 cases, or `BRIGADE_PROPTEST_CASES`.
#![cfg(feature = "tokio")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use brigade::tokio::Builder;
use brigade::Failure;
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Ok,
    Err,
    Panic,
    Sleep(u8),
    /// Pending until the timeout (only drawn when there is one).
    Hang,
    /// Adds two follow-up jobs of kind Ok.
    Spawn,
    /// Fails on the first attempt, succeeds on a retry.
    Flaky,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Close,
    Cancel,
    Resize(usize),
    DropResults,
}

#[derive(Clone, Debug)]
struct Scenario {
    multi: bool,
    workers: usize,
    queue: usize,
    ordered: bool,
    fail_fast: bool,
    retries: u32,
    timeout: bool,
    jobs: Vec<Kind>,
    events: Vec<(usize, Event)>,
}

fn kind(timeout: bool) -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Ok),
        1 => Just(Kind::Err),
        1 => Just(Kind::Panic),
        2 => (0u8..3).prop_map(Kind::Sleep),
        1 => Just(if timeout { Kind::Hang } else { Kind::Ok }),
        1 => Just(Kind::Spawn),
        1 => Just(Kind::Flaky),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Close),
        Just(Event::Cancel),
        (1usize..6).prop_map(Event::Resize),
        Just(Event::DropResults),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<bool>(),
        1usize..6,
        1usize..6,
        any::<bool>(),
        any::<bool>(),
        0u32..3,
        any::<bool>(),
    )
        .prop_flat_map(
            |(multi, workers, queue, ordered, fail_fast, retries, timeout)| {
                (vec(kind(timeout), 0..40), vec((0usize..40, event()), 0..3)).prop_map(
                    move |(jobs, events)| Scenario {
                        multi,
                        workers,
                        queue,
                        ordered,
                        fail_fast,
                        retries,
                        timeout,
                        jobs,
                        events,
                    },
                )
            },
        )
}

fn run(s: Scenario) -> Result<(), TestCaseError> {
    let rt = if s.multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(3)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .unwrap();
    rt.block_on(async move {
        let mut b = Builder::new()
            .workers(s.workers)
            .queue(s.queue)
            .retries(s.retries)
            .backoff(Duration::ZERO, Duration::from_millis(1));
        if s.ordered {
            b = b.ordered();
        }
        if s.fail_fast {
            b = b.fail_fast();
        }
        if s.timeout {
            b = b.timeout(Duration::from_millis(5));
        }
        let (jobs, results) = b
            .build(|k: &(u32, Kind), ctx| {
                Box::pin(async move {
                    match k.1 {
                        Kind::Ok => Ok(k.0),
                        Kind::Err => Err(format!("bad {}", k.0)),
                        Kind::Panic => panic!("boom {}", k.0),
                        Kind::Sleep(ms) => {
                            tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                            Ok(k.0)
                        }
                        Kind::Hang => {
                            std::future::pending::<()>().await;
                            Ok(k.0)
                        }
                        Kind::Spawn => {
                            let _ = ctx.spawn((1000 + k.0 * 2, Kind::Ok));
                            let _ = ctx.spawn((1001 + k.0 * 2, Kind::Ok));
                            Ok(k.0)
                        }
                        Kind::Flaky if ctx.attempt() == 1 => Err("flaky".into()),
                        Kind::Flaky => Ok(k.0),
                    }
                })
            })
            .await
            .expect("valid settings");
        let pool = jobs.pool();
        // The reader runs beside the sender, as a task of its own.
        let (drop_tx, mut drop_rx) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            let mut results = results;
            let mut got = Vec::new();
            loop {
                tokio::select! {
                    biased;
                    o = results.next() => match o {
                        Some(o) => got.push(o),
                        None => return (got, true),
                    },
                    _ = &mut drop_rx => return (got, false),
                }
            }
        });
        let mut drop_tx = Some(drop_tx);
        let mut accepted = Vec::new();
        for (i, k) in s.jobs.iter().enumerate() {
            for (_, e) in s.events.iter().filter(|(at, _)| *at == i) {
                match e {
                    Event::Close => jobs.close(),
                    Event::Cancel => pool.cancel(),
                    Event::Resize(n) => pool.resize(*n).unwrap(),
                    Event::DropResults => {
                        if let Some(tx) = drop_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
            let job = (i as u32, *k);
            // A dropped reader means nobody frees outcome room: senders must not wait on it.
            match jobs.send(job).await {
                Ok(seq) => accepted.push((seq, job.0)),
                Err(e) => prop_assert_eq!(e.into_inner().0, job.0, "the refused job comes back"),
            }
        }
        drop(jobs);
        let (got, complete) = reader.await.unwrap();
        pool.wait().await.unwrap();
        let st = pool.stats();
        prop_assert_eq!(st.queued + st.running, 0);
        prop_assert_eq!(
            st.submitted,
            st.succeeded + st.failed + st.panicked + st.timed_out + st.cancelled
        );
        let mut seqs = HashSet::new();
        for o in &got {
            prop_assert!(seqs.insert(o.seq), "seq {} twice", o.seq);
            if let Err(Failure::Cancelled) = o.result {
                prop_assert!(o.attempts <= 1);
            }
        }
        if complete {
            prop_assert_eq!(
                got.len() as u64,
                st.submitted,
                "one outcome per accepted job"
            );
            for (seq, n) in &accepted {
                let o = got.iter().find(|o| o.seq == *seq);
                prop_assert!(o.is_some(), "no outcome for seq {}", seq);
                prop_assert_eq!(o.unwrap().job.0, *n);
            }
            if s.ordered {
                let order: Vec<u64> = got.iter().map(|o| o.seq).collect();
                let mut sorted = order.clone();
                sorted.sort();
                prop_assert_eq!(order, sorted, "ordered outcomes in submission order");
            }
        }
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("BRIGADE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_job_has_exactly_one_outcome(s in scenario()) {
        common::quiet_boom();
        let r = common::watchdog(30, move || run(s));
        r?;
    }
}
