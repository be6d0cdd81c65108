//! Scenario S1 of `BENCHMARKS.md`: the pool's own cost per job.
//!
//! 1,000,000 no-op jobs (a `u64` in, a trivial function of it out) through a
//! queue of 1,024, side by side in one process, alternating peers round by
//! round, one warm-up round and then N measured rounds:
//!
//! - `crossbeam`: the hand-rolled crew, the floor-setter: N threads sharing a
//!   `crossbeam_channel::bounded(1024)` receiver of jobs, results on another
//!   `bounded(1024)` channel, one producer thread, the main thread collecting;
//! - `brigade stats on`: `Builder::new().workers(n).queue(1024)`, a producer
//!   thread calling `Jobs::send`, the main thread iterating `Results`;
//! - `brigade stats off`: the same with `.stats(false)`;
//! - `brigade run()`: `Builder::run(0..N, ...)` (its own producer thread).
//!
//! Every run is the whole life cycle (start the crew, feed, collect, join the
//! threads) and checks the count and a checksum of the results. The figure is
//! wall time / jobs, reported as the median and range over the rounds, with
//! each peer's ratio to crossbeam (ratio of the medians, and the range of the
//! per-round ratios). The 1-minute load average is printed at start and end.
//!
//! ```text
//! cargo run --release -p brigade --example overhead -- [--jobs N] [--workers N[,N...]] [--rounds N]
//! ```
//!
//! `--workers` defaults to 2; give `--workers 8`, `--workers 2,8` or repeat the
//! flag to measure more crew sizes.

use std::convert::Infallible;
use std::thread;
use std::time::{Duration, Instant};

use brigade::Builder;

const QUEUE: usize = 1024;

/// The "work": a trivial function of the job, so that a lost, duplicated or
/// mixed-up result changes the checksum.
#[inline]
fn f(job: u64) -> u64 {
    job.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
}

/// Count, wrapping sum and xor of the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Check {
    count: u64,
    sum: u64,
    xor: u64,
}

impl Check {
    #[inline]
    fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        self.xor ^= v.rotate_left((v & 63) as u32);
    }

    fn expected(jobs: u64) -> Check {
        let mut c = Check::default();
        for j in 0..jobs {
            c.add(f(j));
        }
        c
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Crossbeam,
    BrigadeStats,
    BrigadeNoStats,
    BrigadeRun,
}

impl Peer {
    const ALL: [Peer; 4] = [
        Peer::Crossbeam,
        Peer::BrigadeStats,
        Peer::BrigadeNoStats,
        Peer::BrigadeRun,
    ];

    fn name(self) -> &'static str {
        match self {
            Peer::Crossbeam => "crossbeam (hand-rolled)",
            Peer::BrigadeStats => "brigade, stats on",
            Peer::BrigadeNoStats => "brigade, stats off",
            Peer::BrigadeRun => "brigade, Builder::run",
        }
    }

    /// One whole life cycle; returns the wall time and the results' check.
    fn run(self, jobs: u64, workers: usize) -> (Duration, Check) {
        match self {
            Peer::Crossbeam => crossbeam(jobs, workers),
            Peer::BrigadeStats => brigade_build(jobs, workers, true),
            Peer::BrigadeNoStats => brigade_build(jobs, workers, false),
            Peer::BrigadeRun => brigade_run(jobs, workers),
        }
    }
}

fn crossbeam(jobs: u64, workers: usize) -> (Duration, Check) {
    let start = Instant::now();
    let (job_tx, job_rx) = crossbeam_channel::bounded::<u64>(QUEUE);
    let (res_tx, res_rx) = crossbeam_channel::bounded::<u64>(QUEUE);
    let crew: Vec<_> = (0..workers)
        .map(|_| {
            let rx = job_rx.clone();
            let tx = res_tx.clone();
            thread::spawn(move || {
                for j in rx {
                    if tx.send(f(j)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(job_rx);
    drop(res_tx);
    let producer = thread::spawn(move || {
        for j in 0..jobs {
            job_tx.send(j).expect("the crew is alive");
        }
    });
    let mut check = Check::default();
    for v in res_rx {
        check.add(v);
    }
    producer.join().expect("producer");
    for w in crew {
        w.join().expect("worker");
    }
    (start.elapsed(), check)
}

fn brigade_build(jobs: u64, workers: usize, stats: bool) -> (Duration, Check) {
    let start = Instant::now();
    let (tx, results) = Builder::new()
        .workers(workers)
        .queue(QUEUE)
        .stats(stats)
        .build(|j: &u64, _ctx| Ok::<u64, Infallible>(f(*j)))
        .expect("valid settings");
    let pool = results.pool();
    let producer = thread::spawn(move || {
        for j in 0..jobs {
            tx.send(j).expect("the pool is open");
        }
    });
    let mut check = Check::default();
    for o in results {
        match o.result {
            Ok(v) => check.add(v),
            Err(e) => panic!("job {} failed: {e:?}", o.job),
        }
    }
    producer.join().expect("producer");
    pool.wait().expect("wait");
    let elapsed = start.elapsed();
    if stats {
        let s = pool.stats();
        assert_eq!(s.succeeded, jobs, "stats: succeeded");
        assert_eq!(s.run_time.count, jobs, "stats: run_time count");
    }
    (elapsed, check)
}

fn brigade_run(jobs: u64, workers: usize) -> (Duration, Check) {
    let start = Instant::now();
    let results = Builder::new()
        .workers(workers)
        .queue(QUEUE)
        .run(0..jobs, |j: &u64, _ctx| Ok::<u64, Infallible>(f(*j)));
    let pool = results.pool();
    let mut check = Check::default();
    for o in results {
        match o.result {
            Ok(v) => check.add(v),
            Err(e) => panic!("job {} failed: {e:?}", o.job),
        }
    }
    pool.wait().expect("wait");
    (start.elapsed(), check)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

struct Args {
    jobs: u64,
    workers: Vec<usize>,
    rounds: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: overhead [--jobs N] [--workers N[,N...]] [--rounds N]\n\
         defaults: --jobs 1000000 --workers 2 --rounds 7"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        jobs: 1_000_000,
        workers: Vec::new(),
        rounds: 7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (key, inline) = match flag.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if key == "-h" || key == "--help" {
            usage();
        }
        let value = inline.or_else(|| it.next()).unwrap_or_else(|| usage());
        let num = |s: &str| -> u64 {
            s.replace('_', "").parse().unwrap_or_else(|_| {
                eprintln!("not a number: {s}");
                usage()
            })
        };
        match key.as_str() {
            "--jobs" => a.jobs = num(&value),
            "--rounds" => a.rounds = num(&value) as usize,
            "--workers" => a.workers.extend(value.split(',').map(|w| num(w) as usize)),
            _ => usage(),
        }
    }
    if a.workers.is_empty() {
        a.workers.push(2);
    }
    if a.jobs == 0 || a.rounds == 0 || a.workers.contains(&0) {
        usage();
    }
    a
}

fn main() {
    let args = parse_args();
    let load_start = loadavg();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let expected = Check::expected(args.jobs);
    println!(
        "S1 overhead: {} no-op jobs, queue {QUEUE}, workers {:?}, 1 warm-up + {} rounds, \
         {cores} cores, load(1m) at start {load_start}",
        args.jobs, args.workers, args.rounds
    );

    // times[w][peer] = ns/job per measured round.
    let mut tables = Vec::new();
    for &workers in &args.workers {
        let mut times = vec![Vec::with_capacity(args.rounds); Peer::ALL.len()];
        for round in 0..=args.rounds {
            // Alternate: rotate which peer goes first each round.
            for k in 0..Peer::ALL.len() {
                let i = (k + round) % Peer::ALL.len();
                let peer = Peer::ALL[i];
                let (d, check) = peer.run(args.jobs, workers);
                assert_eq!(
                    check,
                    expected,
                    "{} (workers {workers}, round {round}): wrong results",
                    peer.name()
                );
                if round > 0 {
                    times[i].push(d.as_nanos() as f64 / args.jobs as f64);
                }
            }
            eprint!(".");
        }
        eprintln!();
        tables.push((workers, times));
    }
    let load_end = loadavg();

    println!();
    println!("| peer | workers | ns/job median [min-max] | ratio to crossbeam (median [per-round min-max]) |");
    println!("| --- | --- | --- | --- |");
    for (workers, times) in &tables {
        let base = &times[0];
        let base_med = median(base);
        for (i, peer) in Peer::ALL.iter().enumerate() {
            let t = &times[i];
            let (lo, hi) = min_max(t);
            let per_round: Vec<f64> = t.iter().zip(base).map(|(a, b)| a / b).collect();
            let (rlo, rhi) = min_max(&per_round);
            println!(
                "| {} | {workers} | {:.1} [{:.1}-{:.1}] | {:.2}x [{:.2}-{:.2}] |",
                peer.name(),
                median(t),
                lo,
                hi,
                median(t) / base_med,
                rlo,
                rhi
            );
        }
    }
    println!();
    println!("load average (1 min): start {load_start}, end {load_end}");
}
