//! The seed's program on the async pool, as a test: 5 jobs, 3 workers, results are job*2,
//! at most 3 jobs at once, every job started and finished by one worker. (The 1 s of work
//! is shortened: timings belong in the example, `examples/seed_async.rs`.)
#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brigade::tokio::Builder;

#[test]
fn seed_program_async() {
    common::watchdog(60, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let (r, p) = (running.clone(), peak.clone());
            let (jobs, mut results) = Builder::new()
                .workers(3)
                .queue(5)
                .build(move |job: &u32, ctx| {
                    let (r, p) = (r.clone(), p.clone());
                    Box::pin(async move {
                        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                        p.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        r.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>((ctx.worker(), job * 2))
                    })
                })
                .await
                .unwrap();
            for j in 1..=5 {
                jobs.send(j).await.unwrap();
            }
            drop(jobs);
            let mut values = Vec::new();
            while let Some(o) = results.next().await {
                let (worker, v) = o.result.unwrap();
                assert!(worker < 3);
                assert_eq!(
                    o.worker,
                    Some(worker),
                    "the outcome names the worker that ran it"
                );
                values.push(v);
            }
            values.sort();
            assert_eq!(values, [2, 4, 6, 8, 10]);
            let peak = peak.load(Ordering::SeqCst);
            assert!(
                (1..=3).contains(&peak),
                "at most 3 jobs at once, saw {peak}"
            );
        });
    });
}
