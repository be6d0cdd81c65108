//! `brigade demo`: the Go seed's program, run for real, with its timeline.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade::{Builder, Context};

use crate::run::{self, Next, RunArgs};
use crate::units::{human, parse_duration};

/// The Go seed's program: 5 jobs, 3 workers, 1 s each, with a timeline
///
/// Runs N jobs of simulated work on a crew of workers, printing each start, finish and result, then a timeline of who ran what
/// when, and the wall time against the sequential time.
///
/// With the defaults (5 jobs, 3 workers, 1 s each) it takes about 2 s
/// instead of 5: jobs 1-3 run at once, then 4 and 5.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  brigade demo\n  brigade demo --jobs 20 -j 4 --work 250ms\n  brigade demo --json"
)]
pub struct Args {
    /// How many jobs
    #[arg(long, value_name = "N", default_value_t = 5)]
    jobs: u32,
    /// How long each job works, e.g. 1s, 250ms
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    work: Duration,
    #[command(flatten)]
    run: RunArgs,
}

struct Span {
    worker: usize,
    job: u32,
    start: Duration,
    end: Duration,
}

pub fn main(args: Args) -> i32 {
    let workers = args.run.workers.unwrap_or(3);
    let started = Instant::now();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let record = spans.clone();
    let work = args.work;
    let echo = !args.run.json;
    let results = args.run.apply(Builder::new(), 3).run(
        1..=args.jobs,
        move |job: &u32, ctx: &Context<u32>| {
            let id = ctx.worker() + 1;
            let begin = started.elapsed();
            if echo {
                let _ = writeln!(std::io::stdout(), "Worker {id} started job {job}");
            }
            ctx.sleep(work); // the simulated work; wakes early on Ctrl-C
            if echo {
                let _ = writeln!(std::io::stdout(), "Worker {id} finished job {job}");
            }
            record.lock().unwrap().push(Span {
                worker: id,
                job: *job,
                start: begin,
                end: started.elapsed(),
            });
            Ok::<_, std::convert::Infallible>(job * 2)
        },
    );
    let summary = run::drive(&args.run, results, Some(args.jobs as u64), started, |o| {
        if !echo {
            return Next::Continue;
        }
        match &o.result {
            Ok(v) => run::on_write(writeln!(std::io::stdout(), "Result: {v}")),
            Err(why) => run::on_write(writeln!(std::io::stdout(), "Job {}: {why}", o.job)),
        }
    });
    if echo {
        let spans = spans.lock().unwrap();
        let chart = timeline(&spans, workers, started.elapsed());
        let sequential = work * args.jobs;
        let wall = Duration::from_secs_f64(summary.wall_seconds);
        let _ = writeln!(
            std::io::stdout(),
            "\n{chart}\nTotal time: {} with {workers} workers (sequential: {}, {:.1}x faster)",
            human(wall),
            human(sequential),
            sequential.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        );
    }
    summary.print(&args.run);
    summary.exit_code
}

/// Draws the seed's "Execution Flow Visualization" from the real run.
fn timeline(spans: &[Span], workers: usize, wall: Duration) -> String {
    const WIDTH: usize = 60;
    let scale = WIDTH as f64 / wall.as_secs_f64().max(1e-9);
    let col = |d: Duration| ((d.as_secs_f64() * scale).round() as usize).min(WIDTH);
    let mut out = String::from("Timeline (who ran which job when):\n");
    // A time axis with a mark each second (or at the start and end for short runs).
    let mut axis = vec![b' '; WIDTH + 8];
    let secs = wall.as_secs_f64().floor() as usize;
    let marks: Vec<(usize, String)> = if (1..=12).contains(&secs) {
        (0..=secs)
            .map(|s| (col(Duration::from_secs(s as u64)), format!("{s}s")))
            .collect()
    } else {
        vec![(0, "0".into()), (WIDTH, human(wall))]
    };
    for (c, label) in marks {
        for (i, b) in label.bytes().enumerate() {
            if c + i < axis.len() {
                axis[c + i] = b;
            }
        }
    }
    out.push_str(&format!(
        "{:10}{}\n",
        "",
        String::from_utf8_lossy(&axis).trim_end()
    ));
    for w in 1..=workers {
        let mut row = vec![' '; WIDTH + 1];
        for s in spans.iter().filter(|s| s.worker == w) {
            let (a, b) = (col(s.start), col(s.end).max(col(s.start) + 1));
            for c in row.iter_mut().take(b).skip(a) {
                *c = '=';
            }
            row[a] = '[';
            row[b - 1] = ']';
            let label = format!("job {}", s.job);
            if b - a >= label.len() + 2 {
                let at = a + (b - a - label.len()) / 2;
                for (i, ch) in label.chars().enumerate() {
                    row[at + i] = ch;
                }
            }
        }
        let line: String = row.into_iter().collect();
        out.push_str(&format!("Worker {w:<3}{}\n", line.trim_end()));
    }
    out
}
