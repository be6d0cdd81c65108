//! The library scenarios S1-S5: Brigade and its peers in this process (S4 in
//! child processes), alternating round by round.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::child;
use crate::go;
use crate::peers::{self, Lib, Opts};
use crate::util::{self, med_range, num, ratio, rounds, Check, Fail, Got, Table};
use crate::{Ctx, Mode};

const QUEUE: usize = 1024;

/// A contender in a library scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Lib(Lib),
    /// `brigade::Builder::run` (stats on): Brigade's batched producer.
    BrigadeRun,
    /// The seed's Go program.
    Go,
    /// S2: one thread, no pool.
    Sequential,
    /// S2: one thread per core, taking chunks of jobs from a shared atomic counter: no queue.
    Ceiling,
}

impl Who {
    fn name(self) -> String {
        match self {
            Who::Lib(l) => l.name().to_string(),
            Who::BrigadeRun => "brigade, Builder::run".into(),
            Who::Go => "go-seed".into(),
            Who::Sequential => "sequential (1 thread, no pool)".into(),
            Who::Ceiling => "cores ceiling (no queue)".into(),
        }
    }
}

fn opts(workers: usize, cores: usize) -> Opts {
    Opts {
        workers,
        queue: QUEUE,
        async_sleep: None,
        runtime_threads: cores,
    }
}

fn go_seed(ctx: &Ctx) -> Result<&go::GoSeed, Fail> {
    ctx.go().map_err(|e| {
        if e.contains("failed") {
            Fail::Error(e)
        } else {
            Fail::Missing(e)
        }
    })
}

/// A row's cells when the contender has no figure.
fn why_cells(g: &Got, n: usize) -> Option<Vec<String>> {
    g.why_row(n)
}

// ---------------------------------------------------------------- S1

pub fn s1(ctx: &Ctx) -> String {
    let jobs: u64 = ctx.pick(1_000_000, 200_000, 2_000);
    let rounds_n = ctx.rounds(5, 3);
    let expected = util::noop_expected(jobs);
    let mut out = format!(
        "{jobs} no-op jobs (a `u64` in, a mix of it out), queue {QUEUE}, one producer thread, the main \
         thread collecting; the whole life cycle (start, feed, collect, shut down) per run. \
         {}, peers alternating. Figure: wall time / jobs. go-seed: its own \
         timing of the same cycle (`overhead.go JOBS WORKERS {QUEUE}`). Ratio: peer / brigade (stats on); \
         above 1 means Brigade is faster.\n\n",
        ctx.rounds_text(rounds_n, "")
    );
    let list = [
        Who::Lib(Lib::BrigadeOn),
        Who::Lib(Lib::BrigadeOff),
        Who::BrigadeRun,
        Who::Lib(Lib::Crossbeam),
        Who::Lib(Lib::StdMpsc),
        Who::Go,
        Who::Lib(Lib::Threadpool),
        Who::Lib(Lib::Rayon),
        Who::Lib(Lib::TokioTasks),
        Who::Lib(Lib::SpawnBlocking),
        Who::Lib(Lib::BrigadeAsync),
    ];
    let mut t = Table::new(&[
        "peer",
        "workers",
        "ns/job median [min-max]",
        "ratio to brigade (median [per-round range])",
    ]);
    let mut by_workers = Vec::new();
    for workers in [2usize, 8] {
        let o = opts(workers, ctx.cores);
        let got = rounds(
            &list,
            ctx.warmup(),
            rounds_n,
            |w| format!("S1 {}", w.name()),
            |who, _| {
                let ns = |d: Duration| d.as_nanos() as f64 / jobs as f64;
                match who {
                    Who::Lib(l) => {
                        let (d, c) = peers::run_feed(l, &o, jobs, util::noop)?;
                        c.verify(&expected, l.id())?;
                        Ok(vec![ns(d)])
                    }
                    Who::BrigadeRun => {
                        let (d, c) = peers::brigade_run(&o, jobs, util::noop)?;
                        c.verify(&expected, "brigade run")?;
                        Ok(vec![ns(d)])
                    }
                    Who::Go => {
                        let seed = go_seed(ctx)?;
                        let (d, _) = go::overhead(seed, jobs, workers, QUEUE)?;
                        Ok(vec![ns(d)])
                    }
                    _ => unreachable!(),
                }
            },
        );
        let base = got[0].metric(0);
        for (who, g) in list.iter().zip(&got) {
            let cells =
                why_cells(g, 2).unwrap_or_else(|| vec![g.cell(0), ratio(&g.metric(0), &base)]);
            t.row([vec![who.name(), workers.to_string()], cells].concat());
        }
        by_workers.push((workers, got));
    }
    out.push_str(&t.render());

    // Targets.
    let (_, got2) = &by_workers[0];
    let med = |g: &Got| {
        let v = g.metric(0);
        (!v.is_empty()).then(|| util::median(&v))
    };
    let idx = |w: Who| list.iter().position(|x| *x == w).expect("listed");
    let b = med(&got2[0]);
    let cb = med(&got2[idx(Who::Lib(Lib::Crossbeam))]);
    let gs = med(&got2[idx(Who::Go)]);
    let pair = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| x / y);
    let r_cb = pair(b, cb);
    util::target(
        "S1 ns/job, workers=2, stats on, vs crossbeam",
        "<= 1.0x crossbeam",
        match (b, cb) {
            (Some(b), Some(c)) => format!("{} vs {} ns/job: {:.2}x", num(b), num(c), b / c),
            _ => "no figure".into(),
        },
        util::verdict(r_cb.map(|r| r <= 1.0)),
    );
    let r_go = pair(b, gs);
    util::target(
        "S1 ns/job, workers=2, stats on, vs go-seed",
        "<= 0.5x go-seed",
        match (b, gs) {
            (Some(b), Some(g)) => format!("{} vs {} ns/job: {:.2}x", num(b), num(g), b / g),
            _ => got2[idx(Who::Go)]
                .why()
                .unwrap_or_else(|| "no figure".into()),
        },
        if gs.is_none() {
            "no figure"
        } else {
            util::verdict(r_go.map(|r| r <= 0.5))
        },
    );
    let mut parts = Vec::new();
    let mut all = Some(true);
    for (workers, got) in &by_workers {
        let b = med(&got[0]);
        for l in [
            Lib::Threadpool,
            Lib::Rayon,
            Lib::SpawnBlocking,
            Lib::TokioTasks,
        ] {
            match pair(med(&got[idx(Who::Lib(l))]), b) {
                Some(r) => {
                    parts.push(format!("{} {r:.1}x (w={workers})", l.id()));
                    all = all.map(|a| a && r >= 4.0);
                }
                None => all = None,
            }
        }
    }
    util::target(
        "S1 vs library peers (workers 2 and 8)",
        ">= 4x faster than threadpool, rayon spawn, spawn_blocking, tokio-tasks",
        parts.join(", "),
        util::verdict(all),
    );
    // The async flavour against the hand-rolled tokio crew, driven the same way (a plain
    // producer thread sending with a blocking send, the main thread receiving).
    let mut parts = Vec::new();
    let mut all = Some(true);
    for (workers, got) in &by_workers {
        let a = med(&got[idx(Who::Lib(Lib::BrigadeAsync))]);
        let tt = med(&got[idx(Who::Lib(Lib::TokioTasks))]);
        match (a, tt) {
            (Some(a), Some(tt)) => {
                parts.push(format!(
                    "{} vs {} ns/job: {:.2}x (w={workers})",
                    num(a),
                    num(tt),
                    a / tt
                ));
                all = all.map(|x| x && a / tt <= 1.0);
            }
            _ => all = None,
        }
    }
    util::target(
        "S1 async: brigade::tokio vs a hand-rolled tokio crew",
        "<= 1.0x tokio-tasks (N tasks on a bounded tokio mpsc)",
        parts.join(", "),
        util::verdict(all),
    );
    out
}

// ---------------------------------------------------------------- S2

/// A calibrated amount of CPU work that yields a function of the job.
#[inline(never)]
pub fn spin(job: u64, iters: u64) -> u64 {
    let mut x = job | 1;
    for _ in 0..iters {
        x = black_box(x)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
    }
    x
}

/// Nanoseconds per `spin` iteration on this machine (the fastest of a few tries).
pub fn calibrate() -> f64 {
    let n = 2_000_000u64;
    let mut best = f64::INFINITY;
    for i in 0..7 {
        let t = Instant::now();
        black_box(spin(black_box(i), n));
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn spin_expected(jobs: u64, iters: u64, cores: usize) -> (Duration, Check) {
    let start = Instant::now();
    let chunk = jobs.div_ceil(cores as u64);
    let parts: Vec<_> = (0..cores as u64)
        .map(|p| {
            thread::spawn(move || {
                let mut c = Check::default();
                for j in (p * chunk)..((p + 1) * chunk).min(jobs) {
                    c.add(spin(j, iters));
                }
                c
            })
        })
        .collect();
    let mut check = Check::default();
    for p in parts {
        check.merge(p.join().expect("a ceiling thread"));
    }
    (start.elapsed(), check)
}

/// The cores ceiling: `cores` threads taking `chunk` jobs at a time from an atomic counter.
fn ceiling(jobs: u64, iters: u64, chunk: u64, cores: usize) -> (Duration, Check) {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let crew: Vec<_> = (0..cores)
        .map(|_| {
            let next = next.clone();
            thread::spawn(move || {
                let mut c = Check::default();
                loop {
                    let from = next.fetch_add(chunk, Ordering::Relaxed);
                    if from >= jobs {
                        return c;
                    }
                    for j in from..(from + chunk).min(jobs) {
                        c.add(spin(j, iters));
                    }
                }
            })
        })
        .collect();
    let mut check = Check::default();
    for t in crew {
        check.merge(t.join().expect("a ceiling thread"));
    }
    (start.elapsed(), check)
}

pub fn s2(ctx: &Ctx) -> String {
    let sizes: [(u64, u64); 3] = [
        (1, ctx.pick(200_000, 20_000, 200)),
        (10, ctx.pick(200_000, 20_000, 200)),
        (100, ctx.pick(20_000, 2_000, 20)),
    ];
    let rounds_n = ctx.rounds(3, 2);
    let ns_iter = ctx.ns_per_iter();
    let workers = ctx.cores;
    let mut out = format!(
        "CPU-bound jobs (a calibrated spin: {:.2} ns per iteration here), workers = cores = {workers}, \
         queue {QUEUE}. {}, alternating. Speed-up: sequential wall / \
         peer wall in the same round. Share of ceiling: speed-up / the ceiling's speed-up (the \
         ceiling: one thread per core taking chunks of ~50 us of jobs from a shared atomic counter, \
         no queue, no result channel; chunks rather than fixed shares, so a thread that another \
         tenant pre-empts does not hold the others up). Ratio: \
         peer wall / brigade (stats on) wall. 100 us jobs: 20,000 (not 200,000) in full mode, so \
         that each size is ~2 s of sequential work. go-seed: n/a (the seed has no CPU-job program).\n\n",
        ns_iter,
        ctx.rounds_text(rounds_n, "")
    );
    let list: Vec<Who> = [Who::Sequential, Who::Ceiling]
        .into_iter()
        .chain(Lib::ALL.into_iter().map(Who::Lib))
        .collect();
    let mut t = Table::new(&[
        "job size",
        "jobs",
        "peer",
        "wall ms median [min-max]",
        "speed-up vs sequential",
        "share of ceiling",
        "ratio to brigade",
    ]);
    for (us, jobs) in sizes {
        let iters = ((us as f64 * 1000.0) / ns_iter).round().max(1.0) as u64;
        let (_, expected) = spin_expected(jobs, iters, ctx.cores);
        let o = opts(workers, ctx.cores);
        let got = rounds(
            &list,
            ctx.warmup(),
            rounds_n,
            |w| format!("S2 ~{us} us {}", w.name()),
            |who, _| {
                let (d, c) = match who {
                    Who::Sequential => {
                        let start = Instant::now();
                        let mut c = Check::default();
                        for j in 0..jobs {
                            c.add(spin(j, iters));
                        }
                        (start.elapsed(), c)
                    }
                    Who::Ceiling => ceiling(jobs, iters, (50 / us).max(1), ctx.cores),
                    Who::Lib(l) => peers::run_feed(l, &o, jobs, move |j| spin(j, iters))?,
                    _ => unreachable!(),
                };
                c.verify(&expected, &who.name())?;
                Ok(vec![d.as_secs_f64()])
            },
        );
        let seq = got[0].metric(0);
        let ceil_speedup: Vec<f64> = seq
            .iter()
            .zip(got[1].metric(0))
            .map(|(s, c)| s / c)
            .collect();
        let brig = got[2].metric(0);
        let mut brig_share = None;
        let mut brig_speedup = None;
        for (who, g) in list.iter().zip(&got) {
            let head = vec![format!("~{us} us"), jobs.to_string(), who.name()];
            let cells = why_cells(g, 4).unwrap_or_else(|| {
                let v = g.metric(0);
                let ms: Vec<f64> = v.iter().map(|s| s * 1e3).collect();
                let speedup: Vec<f64> = seq.iter().zip(&v).map(|(s, p)| s / p).collect();
                let share: Vec<f64> = speedup
                    .iter()
                    .zip(&ceil_speedup)
                    .map(|(s, c)| s / c)
                    .collect();
                if *who == Who::Lib(Lib::BrigadeOn) {
                    brig_share = Some(util::median(&share));
                    brig_speedup = Some(util::median(&speedup));
                }
                let r = if *who == Who::Sequential {
                    "-".into()
                } else {
                    ratio(&v, &brig)
                };
                vec![
                    med_range(&ms),
                    format!("{}x", med_range(&speedup)),
                    if *who == Who::Sequential {
                        "-".into()
                    } else {
                        med_range(&share)
                    },
                    r,
                ]
            });
            t.row([head, cells].concat());
        }
        let ceil = util::median(&ceil_speedup);
        if us == 10 {
            util::target(
                "S2 at ~10 us jobs",
                ">= 0.95 of the measured cores ceiling",
                match brig_share {
                    Some(s) => format!(
                        "{s:.2} of the ceiling (speed-up {:.2}x, ceiling {ceil:.2}x)",
                        brig_speedup.unwrap_or(f64::NAN)
                    ),
                    None => "no figure".into(),
                },
                util::verdict(brig_share.map(|s| s >= 0.95)),
            );
        }
        if us == 1 {
            util::target(
                "S2 at ~1 us jobs",
                ">= 1.5x sequential",
                match brig_speedup {
                    Some(s) => format!("{s:.2}x sequential (ceiling {ceil:.2}x)"),
                    None => "no figure".into(),
                },
                util::verdict(brig_speedup.map(|s| s >= 1.5)),
            );
        }
    }
    out.push_str(&t.render());
    out
}

// ---------------------------------------------------------------- S3

pub fn s3(ctx: &Ctx) -> String {
    let sleep_ms = 10u64;
    let (jobs, workers) = (ctx.pick(100_000, 30_000, 500), ctx.pick(1_000, 1_000, 100));
    let (ajobs, aworkers) = (
        ctx.pick(100_000, 30_000, 2_000),
        ctx.pick(10_000, 10_000, 1_000),
    );
    let rounds_n = ctx.rounds(3, 2);
    let ideal = |jobs: u64, workers: usize| jobs as f64 * sleep_ms as f64 / 1e3 / workers as f64;
    let mut out = format!(
        "Jobs that sleep {sleep_ms} ms. Threads: {jobs} jobs, {workers} workers (ideal {:.2} s). \
         Async: {ajobs} jobs, {aworkers} workers (ideal {:.2} s). Figure: wall / ideal \
         (ideal = jobs x {sleep_ms} ms / workers), whole life cycle including starting the crew. \
         {}, alternating. go-seed: `io.go`'s own figure (it prints \
         no count, so its results are not checked).\n\n",
        ideal(jobs, workers),
        ideal(ajobs, aworkers),
        ctx.rounds_text(rounds_n, "")
    );
    let sleep = Duration::from_millis(sleep_ms);

    // Threads.
    let list = [
        Who::Lib(Lib::BrigadeOn),
        Who::Lib(Lib::BrigadeOff),
        Who::Lib(Lib::Crossbeam),
        Who::Lib(Lib::StdMpsc),
        Who::Go,
        Who::Lib(Lib::Threadpool),
        Who::Lib(Lib::Rayon),
        Who::Lib(Lib::SpawnBlocking),
    ];
    let expected = util::noop_expected(jobs);
    let o = opts(workers, ctx.cores);
    let got = rounds(
        &list,
        ctx.warmup(),
        rounds_n,
        |w| format!("S3 threads {}", w.name()),
        |who, _| match who {
            Who::Lib(l) => {
                let (d, c) = peers::run_feed(l, &o, jobs, move |j| {
                    thread::sleep(sleep);
                    util::noop(j)
                })?;
                c.verify(&expected, l.id())?;
                Ok(vec![d.as_secs_f64() / ideal(jobs, workers)])
            }
            Who::Go => Ok(vec![go::io(go_seed(ctx)?, jobs, workers, sleep_ms)?.0]),
            _ => unreachable!(),
        },
    );
    let mut t = Table::new(&[
        "variant",
        "peer",
        "wall / ideal median [min-max]",
        "ratio to brigade",
    ]);
    let base = got[0].metric(0);
    let variant = format!("threads, {workers} workers");
    for (who, g) in list.iter().zip(&got) {
        let cells = why_cells(g, 2).unwrap_or_else(|| vec![g.cell(0), ratio(&g.metric(0), &base)]);
        t.row([vec![variant.clone(), who.name()], cells].concat());
    }
    t.row(vec![
        variant.clone(),
        Lib::TokioTasks.name().into(),
        "see the async variant (a blocking sleep would stall the runtime)".into(),
        String::new(),
    ]);
    let b = (!base.is_empty()).then(|| util::median(&base));
    util::target(
        &format!("S3 threads at {workers} workers"),
        "<= 1.1x ideal (go-seed 1.09x)",
        match b {
            Some(b) => format!("{b:.3}x ideal"),
            None => "no figure".into(),
        },
        util::verdict(b.map(|b| b <= 1.1)),
    );

    // Async.
    let alist = [
        Who::Lib(Lib::BrigadeAsync),
        Who::Lib(Lib::TokioTasks),
        Who::Go,
    ];
    let aexpected = util::noop_expected(ajobs);
    let ao = Opts {
        async_sleep: Some(sleep),
        ..opts(aworkers, ctx.cores)
    };
    let agot = rounds(
        &alist,
        ctx.warmup(),
        rounds_n,
        |w| format!("S3 async {}", w.name()),
        |who, _| match who {
            Who::Lib(l) => {
                let (d, c) = peers::run_feed(l, &ao, ajobs, util::noop)?;
                c.verify(&aexpected, l.id())?;
                Ok(vec![d.as_secs_f64() / ideal(ajobs, aworkers)])
            }
            Who::Go => Ok(vec![go::io(go_seed(ctx)?, ajobs, aworkers, sleep_ms)?.0]),
            _ => unreachable!(),
        },
    );
    let avariant = format!("async, {aworkers} workers");
    let abase = agot[0].metric(0);
    for (who, g) in alist.iter().zip(&agot) {
        let cells = why_cells(g, 2).unwrap_or_else(|| vec![g.cell(0), ratio(&g.metric(0), &abase)]);
        t.row([vec![avariant.clone(), who.name()], cells].concat());
    }
    let peers_async: Vec<String> = alist
        .iter()
        .zip(&agot)
        .skip(1)
        .filter(|(_, g)| g.why().is_none())
        .map(|(w, g)| format!("{} {:.2}x", w.name(), util::median(&g.metric(0))))
        .collect();
    let ab = (!abase.is_empty()).then(|| util::median(&abase));
    util::target(
        &format!("S3 async at {aworkers} workers"),
        "<= 1.2x ideal (go-seed 2.04x)",
        match ab {
            Some(b) => format!("{b:.3}x ideal (peers here: {})", peers_async.join(", ")),
            None => "no figure".into(),
        },
        util::verdict(ab.map(|b| b <= 1.2)),
    );
    out.push_str(&t.render());

    // Async memory: 100,000 workers, each sleeping once, in child processes.
    let (mworkers, msleep) = (
        ctx.pick(100_000, 100_000, 1_000),
        ctx.pick(1_000, 1_000, 10),
    );
    out.push_str(&format!(
        "\nAsync memory: {mworkers} jobs, {mworkers} workers each sleeping {msleep} ms once, one \
         child process each, one run; peak RSS (VmHWM of the child; go: `ru_maxrss`).\n\n"
    ));
    let mut m = Table::new(&["peer", "peak RSS MiB", "wall s"]);
    let mut mem = Vec::new();
    let brigade_mem = child::feed(
        Lib::BrigadeAsync,
        mworkers,
        mworkers as usize,
        QUEUE,
        msleep,
    );
    let brigade_row = match &brigade_mem {
        Ok((kib, secs)) => {
            mem.push(format!("brigade-async {:.0} MiB", *kib as f64 / 1024.0));
            vec![num(*kib as f64 / 1024.0), format!("{secs:.2}")]
        }
        Err(f) => vec![
            fail_cell(f.clone(), "S3 memory, brigade-async"),
            String::new(),
        ],
    };
    m.row([vec![Lib::BrigadeAsync.name().into()], brigade_row].concat());
    let tokio_row = match child::feed(Lib::TokioTasks, mworkers, mworkers as usize, QUEUE, msleep) {
        Ok((kib, secs)) => {
            mem.push(format!("tokio-tasks {:.0} MiB", kib as f64 / 1024.0));
            vec![num(kib as f64 / 1024.0), format!("{secs:.2}")]
        }
        Err(f) => vec![fail_cell(f, "S3 memory, tokio-tasks"), String::new()],
    };
    m.row([vec![Lib::TokioTasks.name().into()], tokio_row].concat());
    let mut go_kib = None;
    let go_row = match go_seed(ctx).and_then(|s| go::io(s, mworkers, mworkers as usize, msleep)) {
        Ok((r, kib)) => {
            go_kib = Some(kib);
            mem.push(format!("go-seed {:.0} MiB", kib as f64 / 1024.0));
            vec![
                num(kib as f64 / 1024.0),
                format!("{:.2}", r * msleep as f64 / 1e3),
            ]
        }
        Err(f) => vec![fail_cell(f, "S3 memory, go-seed"), String::new()],
    };
    m.row([vec!["go-seed".into()], go_row].concat());
    // Without Go here, the issue's own anchor stands in: the Go seed's 390 MiB.
    let (go_mib, go_from) = match go_kib {
        Some(k) => (k as f64 / 1024.0, "go-seed measured here"),
        None => (390.0, "go-seed not run here: the issue's 390 MiB"),
    };
    let ideal_s = msleep as f64 / 1e3;
    match &brigade_mem {
        Ok((kib, secs)) => {
            let mib = *kib as f64 / 1024.0;
            util::target(
                "S3 async memory, 100,000 workers",
                "<= 1/3 of go-seed's RSS",
                format!(
                    "{mib:.0} MiB = {:.2}x go-seed ({go_from}); {} ",
                    mib / go_mib,
                    mem.join(", ")
                ),
                util::verdict(Some(mib <= go_mib / 3.0)),
            );
            util::target(
                "S3 async wall, 100,000 workers each sleeping once",
                "<= 1.2x ideal",
                format!(
                    "{secs:.2} s = {:.2}x ideal ({ideal_s:.2} s)",
                    secs / ideal_s
                ),
                util::verdict(Some(secs / ideal_s <= 1.2)),
            );
        }
        Err(_) => util::target(
            "S3 async memory, 100,000 workers",
            "<= 1/3 of go-seed's RSS",
            "no figure".into(),
            "no figure",
        ),
    }
    out.push_str(&m.render());
    out
}

/// The cell for a failed or missing figure, recording an error.
fn fail_cell(f: Fail, what: &str) -> String {
    match f {
        Fail::Missing(m) => m,
        Fail::Error(e) => {
            let e = format!("{what}: {e}");
            util::fail(e.clone());
            format!("ERROR: {e}")
        }
    }
}

// ---------------------------------------------------------------- S4

pub fn s4(ctx: &Ctx) -> String {
    let sizes: Vec<u64> = match ctx.mode {
        Mode::Full => vec![10_000, 1_000_000, 10_000_000],
        Mode::Quick => vec![10_000, 100_000, 1_000_000],
        Mode::Check => vec![1_000, 10_000],
    };
    let workers = ctx.cores;
    let mut out = format!(
        "No-op jobs through a queue of {QUEUE}, workers = {workers}, one child process per peer and \
         size (this binary re-run with a hidden subcommand; it checks its results and reports its \
         own VmHWM at the end; go-seed: `ru_maxrss` from `wait4`). One run each: peak RSS is \
         nearly deterministic. threadpool, rayon and spawn_blocking have unbounded queues, so the \
         producer runs ahead of the workers.\n\n"
    );
    let mut head: Vec<String> = vec!["peer".into()];
    head.extend(sizes.iter().map(|s| format!("{s} jobs, MiB")));
    head.push("largest / smallest".into());
    head.push("ratio to brigade at the largest".into());
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&head_refs);
    let list: Vec<Who> = Lib::ALL
        .into_iter()
        .map(Who::Lib)
        .chain([Who::Go])
        .collect();
    let mut brigade_largest = None;
    let mut brigade_growth = None;
    for who in &list {
        let mut cells = vec![who.name()];
        let mut mib = Vec::new();
        for &jobs in &sizes {
            let r = match who {
                Who::Lib(l) => child::feed(*l, jobs, workers, QUEUE, 0).map(|(k, _)| k),
                Who::Go => {
                    go_seed(ctx).and_then(|s| go::overhead(s, jobs, workers, QUEUE).map(|(_, k)| k))
                }
                _ => unreachable!(),
            };
            match r {
                Ok(kib) => {
                    let m = kib as f64 / 1024.0;
                    mib.push(m);
                    cells.push(format!("{m:.1}"));
                }
                Err(f) => {
                    let missing = matches!(f, Fail::Missing(_));
                    cells.push(fail_cell(f, &format!("S4 {} at {jobs}", who.name())));
                    if missing {
                        break;
                    }
                }
            }
            eprint!(".");
        }
        cells.resize(sizes.len() + 1, String::new());
        if mib.len() == sizes.len() {
            let growth = mib[mib.len() - 1] / mib[0];
            cells.push(format!("{growth:.2}x"));
            let last = mib[mib.len() - 1];
            if *who == Who::Lib(Lib::BrigadeOn) {
                brigade_largest = Some(last);
                brigade_growth = Some(growth);
            }
            cells.push(match brigade_largest {
                Some(b) => format!("{:.2}x", last / b),
                None => "n/a".into(),
            });
        }
        t.row(cells);
    }
    out.push_str(&t.render());
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    util::target(
        "S4 bounded memory (stats on)",
        "RSS at 10^7 jobs <= 1.1x RSS at 10^4",
        match brigade_growth {
            Some(g) => format!(
                "{g:.2}x ({large} vs {small} jobs{})",
                if ctx.mode == Mode::Full {
                    ""
                } else {
                    "; not the target's sizes in this mode"
                }
            ),
            None => "no figure".into(),
        },
        util::verdict(brigade_growth.map(|g| g <= 1.1)),
    );
    out
}

// ---------------------------------------------------------------- S5

/// Submit-to-start latencies of `batches` batches of `burst` jobs, each batch
/// submitted back to back from this thread, waited for, then a pause of `gap`.
/// Returns (p50, p99, p99.9) in microseconds.
fn latency(
    lib: Lib,
    o: &Opts,
    batches: usize,
    burst: usize,
    gap: Duration,
    iters: u64,
) -> Result<Vec<f64>, String> {
    let f = move |(id, t): (u64, Instant)| -> (u64, u64) {
        let lat = t.elapsed().as_nanos() as u64;
        (spin(id, iters), lat)
    };
    let (tx, mut rx, guard) = peers::start(lib, o, f)?;
    let mut lats = Vec::with_capacity(batches * burst);
    let mut check = Check::default();
    let mut id = 0u64;
    for _ in 0..batches {
        for _ in 0..burst {
            tx.send((id, Instant::now()))?;
            id += 1;
        }
        for _ in 0..burst {
            let (v, lat) = rx.recv().ok_or("the results ended early")??;
            check.add(v);
            lats.push(lat);
        }
        thread::sleep(gap);
    }
    drop(tx);
    if let Some(extra) = rx.recv() {
        extra?;
        return Err("more results than jobs".into());
    }
    drop(rx);
    guard.finish()?;
    let mut expected = Check::default();
    for j in 0..id {
        expected.add(spin(j, iters));
    }
    check.verify(&expected, lib.id())?;
    lats.sort_unstable();
    Ok([0.5, 0.99, 0.999]
        .iter()
        .map(|&q| util::percentile(&lats, q) as f64 / 1e3)
        .collect())
}

pub fn s5(ctx: &Ctx) -> String {
    let workers = ctx.cores;
    let gap = Duration::from_millis(1);
    let idle_n = ctx.pick(2_000, 400, 20);
    let (bursts, burst) = (ctx.pick(300, 60, 3), ctx.pick(32, 32, 8));
    let burst_us = 2u64;
    let iters = ((burst_us as f64 * 1000.0) / ctx.ns_per_iter()).round() as u64;
    let rounds_n = ctx.rounds(3, 2);
    let mut out = format!(
        "Submit-to-start latency: the time from just before `send` to the first instruction of the \
         job, workers = {workers}, queue {QUEUE}, submitted and collected by the main thread. Idle: \
         {idle_n} no-op jobs one at a time, each waited for, then a {} ms pause (workers go idle). \
         Bursts: {bursts} bursts of {burst} jobs of ~{burst_us} us, back to back, waited for, then \
         a {} ms pause. {}, alternating; percentiles per \
         round, then median [min-max] over rounds. Ratio: peer p50 / brigade (stats on) p50. \
         go-seed: n/a (the seed has no latency program).\n\n",
        gap.as_millis(),
        gap.as_millis(),
        ctx.rounds_text(rounds_n, " (a tenth of the samples)")
    );
    let mut t = Table::new(&[
        "load",
        "peer",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "p50 ratio to brigade",
    ]);
    let o = opts(workers, ctx.cores);
    let mut targets = Vec::new();
    for (mode, batches, size, it) in [("idle", idle_n, 1, 0), ("bursts", bursts, burst, iters)] {
        let got = rounds(
            &Lib::ALL,
            ctx.warmup(),
            rounds_n,
            |l| format!("S5 {mode} {}", l.name()),
            |l, warm| {
                let n = if warm { (batches / 10).max(1) } else { batches };
                Ok(latency(l, &o, n, size, gap, it)?)
            },
        );
        let base = got[0].metric(0);
        for (l, g) in Lib::ALL.iter().zip(&got) {
            let cells = why_cells(g, 4).unwrap_or_else(|| {
                vec![g.cell(0), g.cell(1), g.cell(2), ratio(&g.metric(0), &base)]
            });
            t.row([vec![mode.to_string(), l.name().into()], cells].concat());
        }
        if got[0].why().is_none() {
            targets.push(format!(
                "{mode}: p50 {} / p99 {} / p99.9 {} us",
                num(util::median(&got[0].metric(0))),
                num(util::median(&got[0].metric(1))),
                num(util::median(&got[0].metric(2)))
            ));
        }
    }
    out.push_str(&t.render());
    util::target(
        "S5 submit-to-start latency (brigade, stats on)",
        "no number set: reported",
        targets.join("; "),
        "reported",
    );
    out
}
