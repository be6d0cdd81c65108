//! Benchmark S6 (see BENCHMARKS.md): 100,000 no-op jobs pushed, then worked
//! off by 2 worker processes, PostgreSQL on the same machine; then the
//! pickup latency (push to start) on an idle queue. Side by side: the
//! brigade-postgres worker, and a hand-written single-query SKIP LOCKED loop
//! on the same table.
//!
//! ```text
//! cargo run --release -p brigade-postgres --example s6_bench -- run [URL] [JOBS] [ROUNDS] [ONLY]
//! ```
//!
//! ONLY (optional): a comma list of `brigade-worker`, `naive-worker`, `latency`.
//!
//! The hand-written loop gets one round (it is much slower). It re-runs
//! itself as the worker processes (`brigade-worker`, `naive-worker`,
//! `latency-worker`). Each system gets its own schema, dropped at the end.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brigade_postgres::{Job, NewJob, Queue, Worker};
use serde_json::json;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn fresh(url: &str, schema: &str) -> Queue {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    let mut q = Queue::connect(url, schema).unwrap();
    q.migrate().unwrap();
    q
}

fn drop_schema(url: &str, schema: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
}

fn push_all(q: &mut Queue, n: usize) -> Duration {
    let t = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(5000);
        let batch: Vec<NewJob> = (0..k).map(|i| NewJob::new(json!(i))).collect();
        q.push_many(&batch).unwrap();
        left -= k;
    }
    t.elapsed()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.parse().unwrap())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Pushes `n` jobs, runs 2 worker processes of `mode` to the end; jobs/s.
fn throughput(url: &str, mode: &str, n: usize) -> (f64, f64) {
    let schema = format!("s6_{}", mode.replace('-', "_"));
    let mut q = fresh(url, &schema);
    let pushed = push_all(&mut q, n);
    let me = std::env::current_exe().unwrap();
    let t = Instant::now();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&me)
                .args([mode, url, &schema])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut done = 0u64;
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
        done += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap();
    }
    let wall = t.elapsed().as_secs_f64();
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let completed: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(completed as usize, n, "{mode}: every job completed");
    assert_eq!(done as usize, n, "{mode}: each once");
    drop_schema(url, &schema);
    (n as f64 / wall, n as f64 / pushed.as_secs_f64())
}

/// One idle worker process; jobs pushed one at a time, 10 ms apart; the
/// worker records start - push. Returns (p50, p99) in ms.
fn latency(url: &str, mode: &str, n: usize) -> (f64, f64) {
    let schema = format!("s6_lat_{}", mode.replace('-', "_"));
    let mut q = fresh(url, &schema);
    let me = std::env::current_exe().unwrap();
    let kid = Command::new(&me)
        .args([mode, url, &schema, &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500)); // the worker is up and idle
    for _ in 0..n {
        q.push(&NewJob::new(json!(now_us()))).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = kid.wait_with_output().unwrap();
    let mut v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse::<f64>().unwrap() / 1000.0)
        .collect();
    assert_eq!(v.len(), n);
    drop_schema(url, &schema);
    (pct(&mut v, 0.5), pct(&mut v, 0.99))
}

fn brigade_worker(url: &str, schema: &str) {
    let r = Worker::new(url)
        .schema(schema)
        .workers(2)
        .batch(env_or("S6_BATCH", 500))
        .drain(true)
        .run(|_: &Job<i64>, _ctx| Ok::<_, String>(()))
        .unwrap();
    println!("{}", r.completed);
}

/// The hand-written loop: one statement per job claims and completes it.
fn naive_worker(url: &str, schema: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let st = c
        .prepare(&format!(
            "UPDATE {schema}.jobs j SET state = 'completed', finished_at = now()
             WHERE j.id = (SELECT id FROM {schema}.jobs WHERE state = 'available'
                           AND queue = 'default' AND run_at <= now()
                           ORDER BY priority, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING j.payload"
        ))
        .unwrap();
    let mut n = 0u64;
    while c.query_opt(&st, &[]).unwrap().is_some() {
        n += 1;
    }
    println!("{n}");
}

fn latency_worker(url: &str, schema: &str, n: usize) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let (results, control) = Worker::new(url)
        .schema(schema)
        .workers(2)
        .start(move |j: &Job<i64>, _ctx| {
            s.lock().unwrap().push(now_us() - j.args);
            Ok::<_, String>(())
        })
        .unwrap();
    let mut got = 0;
    for o in results {
        control.settle(&o);
        got += 1;
        if got == n {
            break;
        }
    }
    control.finish();
    for v in seen.lock().unwrap().iter() {
        println!("{v}");
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let url_at = |i: usize| {
        a.get(i)
            .cloned()
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
    };
    match a.first().map(String::as_str) {
        Some("brigade-worker") => brigade_worker(&a[1], &a[2]),
        Some("naive-worker") => naive_worker(&a[1], &a[2]),
        Some("latency-worker") => latency_worker(&a[1], &a[2], a[3].parse().unwrap()),
        Some("run") => {
            let url = url_at(1);
            let n: usize = a.get(2).map_or(100_000, |s| s.parse().unwrap());
            let rounds: usize = a.get(3).map_or(3, |s| s.parse().unwrap());
            let only = a.get(4).cloned().unwrap_or_default();
            for mode in ["brigade-worker", "naive-worker"] {
                if !only.is_empty() && !only.contains(mode) {
                    continue;
                }
                let mut rates = Vec::new();
                let mut push = Vec::new();
                // The loop is ~40x slower: one round of it.
                let rounds = if mode == "naive-worker" { 1 } else { rounds };
                for _ in 0..rounds {
                    let (r, p) = throughput(&url, mode, n);
                    rates.push(r);
                    push.push(p);
                }
                println!(
                    "S6 {mode}: {n} no-op jobs, 2 processes: median {:.0} jobs/s (rounds: {}); push {:.0} jobs/s",
                    median(&mut rates.clone()),
                    rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
                    median(&mut push),
                );
            }
            if !only.is_empty() && !only.contains("latency") {
                return;
            }
            let (p50, p99) = latency(&url, "latency-worker", 300);
            println!("S6 pickup latency, idle queue, 300 jobs 10 ms apart: p50 {p50:.2} ms, p99 {p99:.2} ms");
        }
        _ => {
            eprintln!("usage: s6_bench run [URL] [JOBS] [ROUNDS]");
            std::process::exit(2);
        }
    }
}
