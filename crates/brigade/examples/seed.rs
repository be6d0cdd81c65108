//! The seed's program, step by step, in Brigade: 5 jobs, 3 workers, 1 s of
//! work each; about 2 s in all instead of 5.
//!
//! Run it with `cargo run --release --example seed`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use brigade::{Builder, Context};

// Step 1: the worker function. Go's `id` and `wg` are in the context.
fn worker(job: &u32, ctx: &Context<u32>) -> Result<u32, Infallible> {
    let id = ctx.worker() + 1; // the seed counts workers from 1
    println!("Worker {id} started job {job}");
    std::thread::sleep(Duration::from_secs(1)); // simulate work
    println!("Worker {id} finished job {job}");
    Ok(job * 2)
}

fn main() {
    let start = Instant::now();

    // Step 2: configuration.
    const NUM_JOBS: u32 = 5;
    const NUM_WORKERS: usize = 3;

    // Steps 3 and 4: the bounded queue, the two halves, the workers.
    let (jobs, results) = Builder::new()
        .workers(NUM_WORKERS)
        .queue(NUM_JOBS as usize)
        .build(worker)
        .expect("valid settings");

    // Step 5: send the jobs, then close the jobs half.
    for j in 1..=NUM_JOBS {
        jobs.send(j).expect("the pool is open");
    }
    drop(jobs);

    // Step 6: collect. The results end by themselves once every job is done.
    for outcome in results {
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
