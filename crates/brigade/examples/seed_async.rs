//! The seed's program in async form: 5 jobs, 3 workers, 1 s of waiting each; about 2 s
//! in all instead of 5. The workers are tokio tasks, so the same program scales to
//! 100,000 workers where threads would not.
//!
//! Run it with `cargo run --release --features tokio --example seed_async`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use brigade::tokio::{Builder, Context, JobFuture};

// Step 1: the worker function. It returns a future that may borrow the job and the
// context; Go's `id` and `wg` are in the context.
fn worker<'a>(job: &'a u32, ctx: &'a Context<u32>) -> JobFuture<'a, u32, Infallible> {
    Box::pin(async move {
        let id = ctx.worker() + 1; // the seed counts workers from 1
        println!("Worker {id} started job {job}");
        tokio::time::sleep(Duration::from_secs(1)).await; // simulate work that waits
        println!("Worker {id} finished job {job}");
        Ok(job * 2)
    })
}

#[tokio::main]
async fn main() {
    let start = Instant::now();

    // Step 2: configuration.
    const NUM_JOBS: u32 = 5;
    const NUM_WORKERS: usize = 3;

    // Steps 3 and 4: the bounded queue, the two halves, the workers (tasks).
    let (jobs, mut results) = Builder::new()
        .workers(NUM_WORKERS)
        .queue(NUM_JOBS as usize)
        .build(worker)
        .await
        .expect("valid settings");

    // Step 5: send the jobs, then close the jobs half.
    for j in 1..=NUM_JOBS {
        jobs.send(j).await.expect("the pool is open");
    }
    drop(jobs);

    // Step 6: collect. The stream ends by itself once every job is done.
    while let Some(outcome) = results.next().await {
        match outcome.result {
            Ok(value) => println!("Result: {value}"),
            Err(why) => println!("Job {} failed: {why}", outcome.job),
        }
    }

    println!(
        "Total time: {:.1?} (sequential: {NUM_JOBS} s)",
        start.elapsed()
    );
}
