//! Promise 2, bounded memory: ten million jobs through a queue of 1,024 use
//! what ten thousand do. This file is its own test binary, so its own process:
//! the peak resident set (VmHWM) it reads is the pool's alone.

mod common;

use brigade::{Builder, Context};

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn run(jobs: u64) {
    let results = Builder::new()
        .workers(2)
        .queue(1024)
        .run(0..jobs, |n: &u64, _ctx: &Context<u64>| {
            Ok::<_, ()>(n ^ 0x5555)
        });
    let (mut count, mut sum) = (0u64, 0u64);
    for o in results {
        count += 1;
        sum = sum.wrapping_add(o.result.unwrap() ^ 0x5555);
    }
    assert_eq!(count, jobs);
    assert_eq!(sum, jobs * (jobs - 1) / 2);
}

#[test]
fn ten_million_jobs_use_what_ten_thousand_do() {
    common::watchdog(600, || {
        let jobs: u64 = std::env::var("BRIGADE_MEMORY_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000_000);
        run(10_000);
        let small = peak_rss_kib();
        run(jobs);
        let large = peak_rss_kib();
        eprintln!("peak RSS after 10^4 jobs: {small} KiB; after {jobs} more: {large} KiB");
        // Growth allowed: a few MiB of allocator slack, nothing proportional to the jobs
        // (an unbounded queue of 10^7 outcomes would be hundreds of MiB).
        assert!(
            large <= small + 4096,
            "peak RSS grew from {small} KiB to {large} KiB"
        );
    });
}
