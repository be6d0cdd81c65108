//! The run behaviour every subcommand shares: the pool options, the progress
//! bar, the summary, and the exit code.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use brigade::{Builder, Failure, Outcome, Percentiles, Pool, Results, Stats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::interrupt;
use crate::units::{human, parse_duration, parse_rate};

/// Exit codes, the same for every subcommand.
pub mod exit {
    /// Every job succeeded.
    pub const OK: i32 = 0;
    /// Some jobs failed.
    pub const FAILED: i32 = 1;
    /// Bad usage or bad input.
    pub const USAGE: i32 = 2;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

fn parse_workers(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("a crew needs at least one worker".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a number of workers")),
    }
}

fn parse_queue(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("the queue needs room for at least one job".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a queue size")),
    }
}

/// The options every subcommand takes.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Run options (every subcommand)")]
pub struct RunArgs {
    /// Number of workers running jobs at once [default: see the subcommand]
    #[arg(short = 'j', long = "workers", value_name = "N", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Jobs waiting in the queue before the input is held back
    #[arg(long, value_name = "N", default_value = "1024", value_parser = parse_queue)]
    pub queue: usize,
    /// Retry a failed job up to N more times, with exponential backoff
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Time limit per job, e.g. 500ms, 30s, 2m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Start at most this many jobs per second, e.g. 10/s, 600/m
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Stop at the first failure; the jobs not yet started are reported as such
    #[arg(long)]
    pub fail_fast: bool,
    /// Print the summary as one JSON object on stdout instead of text on stderr
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no summary
    #[arg(short, long)]
    pub quiet: bool,
}

impl RunArgs {
    /// Applies these options to a pool builder; `default_workers` when -j is not given.
    pub fn apply<St>(&self, b: Builder<St>, default_workers: usize) -> Builder<St> {
        let mut b = b
            .workers(self.workers.unwrap_or(default_workers))
            .queue(self.queue)
            .retries(self.retries);
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        self.apply_limits(b)
    }

    /// Applies only --rate and --fail-fast, for tools whose --retries and
    /// --timeout mean something of their own (a batch's, an SMTP step's).
    pub fn apply_limits<St>(&self, mut b: Builder<St>) -> Builder<St> {
        if let Some(r) = self.rate {
            b = b.rate_limit(r);
        }
        if self.fail_fast {
            b = b.fail_fast();
        }
        b
    }
}

/// The number of cores, for CPU-bound defaults.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Latencies in milliseconds, for the JSON summary.
#[derive(Serialize, Debug, Clone, Copy, Default)]
pub struct Millis {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl From<Percentiles> for Millis {
    fn from(p: Percentiles) -> Self {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        Millis {
            p50: ms(p.p50),
            p99: ms(p.p99),
            max: ms(p.max),
        }
    }
}

/// What a run did. Its field names are the stable `--json` output.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Summary {
    /// Jobs that produced an outcome.
    pub jobs: u64,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Jobs whose work failed (after any retries).
    pub failed: u64,
    /// Jobs that panicked (a bug in brigade's job code).
    pub panicked: u64,
    /// Jobs stopped by --timeout.
    pub timed_out: u64,
    /// Jobs accepted but cancelled before they started (Ctrl-C, --fail-fast).
    pub cancelled: u64,
    /// Inputs never started: cancelled ones plus those never read.
    pub never_started: u64,
    /// Extra attempts made by --retries.
    pub retried: u64,
    /// Wall-clock time of the run, in seconds.
    pub wall_seconds: f64,
    /// Jobs finished per second.
    pub jobs_per_second: f64,
    /// Time jobs waited in the queue.
    pub queue_wait_ms: Millis,
    /// Time jobs ran.
    pub run_time_ms: Millis,
    /// Whether Ctrl-C or SIGTERM stopped the run.
    pub interrupted: bool,
    /// The exit code.
    pub exit_code: i32,
}

impl Summary {
    /// Counts one outcome.
    pub fn tally<T, E>(&mut self, result: &Result<T, Failure<E>>) {
        self.jobs += 1;
        match result {
            Ok(_) => self.succeeded += 1,
            Err(Failure::Error(_) | Failure::Init(_)) => self.failed += 1,
            Err(Failure::Panicked(_)) => self.panicked += 1,
            Err(Failure::TimedOut) => self.timed_out += 1,
            Err(Failure::Cancelled) => self.cancelled += 1,
            Err(_) => self.failed += 1,
        }
    }

    /// Fills in the rest once the pool is finished: its statistics, the wall
    /// time, whether Ctrl-C came, and the exit code. `quiet_stop`: the run
    /// stopped early because stdout was closed.
    pub fn finish(
        &mut self,
        stats: &Stats,
        total: Option<u64>,
        started: Instant,
        quiet_stop: bool,
    ) {
        let sum = self;
        let wall = started.elapsed();
        sum.retried = stats.retried;
        sum.interrupted = interrupt::interrupted();
        let unread = total.map_or(0, |t| t.saturating_sub(stats.submitted));
        sum.never_started = sum.cancelled + unread;
        sum.wall_seconds = (wall.as_secs_f64() * 1e3).round() / 1e3;
        sum.jobs_per_second = if wall.as_secs_f64() > 0.0 {
            sum.jobs as f64 / wall.as_secs_f64()
        } else {
            0.0
        };
        sum.queue_wait_ms = stats.queue_wait.into();
        sum.run_time_ms = stats.run_time.into();
        sum.exit_code = if sum.interrupted {
            exit::INTERRUPTED
        } else if quiet_stop {
            exit::OK
        } else if sum.failed + sum.panicked + sum.timed_out + sum.cancelled > 0 {
            exit::FAILED
        } else {
            exit::OK
        };
    }

    /// The summary as text, for stderr.
    pub fn text(&self) -> String {
        let mut s = format!(
            "brigade: {} jobs in {} ({:.0}/s): {} succeeded, {} failed, {} panicked, {} timed out, {} cancelled, {} never started",
            self.jobs,
            human(Duration::from_secs_f64(self.wall_seconds)),
            self.jobs_per_second,
            self.succeeded,
            self.failed,
            self.panicked,
            self.timed_out,
            self.cancelled,
            self.never_started,
        );
        if self.retried > 0 {
            s.push_str(&format!(", {} retries", self.retried));
        }
        let ms = |v: f64| human(Duration::from_secs_f64(v / 1e3));
        s.push_str(&format!(
            "\n         queue wait p50 {} p99 {}; run time p50 {} p99 {}",
            ms(self.queue_wait_ms.p50),
            ms(self.queue_wait_ms.p99),
            ms(self.run_time_ms.p50),
            ms(self.run_time_ms.p99),
        ));
        if self.interrupted {
            s.push_str(
                "\n         interrupted: running jobs were finished, the rest never started",
            );
        }
        s
    }

    /// Prints the summary the way the options ask: JSON on stdout, or text on stderr.
    pub fn print(&self, args: &RunArgs) {
        if args.json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a summary serialises")
            );
        } else if !args.quiet {
            eprintln!("{}", self.text());
        }
    }
}

/// What the caller's outcome handler asks for next.
pub enum Next {
    /// Carry on.
    Continue,
    /// Stop quietly: stdout was closed (`brigade ... | head`).
    StopQuietly,
}

/// Turns a write error into `Next`: a closed pipe stops quietly, anything else is reported.
pub fn on_write(r: io::Result<()>) -> Next {
    match r {
        Ok(()) => Next::Continue,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Next::StopQuietly,
        Err(e) => {
            eprintln!("brigade: cannot write output: {e}");
            Next::StopQuietly
        }
    }
}

/// Runs a pool to the end: shows progress, hands each outcome to `each`,
/// handles Ctrl-C, and sums it all up. `total` is the number of inputs when
/// known (for the progress bar and the never-started count).
pub fn drive<J, T, E>(
    args: &RunArgs,
    results: Results<J, T, E>,
    total: Option<u64>,
    started: Instant,
    each: impl FnMut(&Outcome<J, T, E>) -> Next,
) -> Summary
where
    J: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    drive_metered(args, results, total, started, &Meter::jobs(), each)
}

/// How much of something one outcome is.
pub type Weigh<'a, J, T, E> = &'a dyn Fn(&Outcome<J, T, E>) -> u64;

/// What the progress bar counts. A tool whose jobs are batches counts what
/// is in them (rows, say), and may show a byte rate beside.
pub struct Meter<'a, J, T, E> {
    /// The unit shown after the count, plural ("jobs", "rows").
    pub unit: &'static str,
    /// How many units one outcome is.
    pub count: Weigh<'a, J, T, E>,
    /// How many bytes one outcome is, shown as bytes a second.
    pub bytes: Option<Weigh<'a, J, T, E>>,
}

impl<J, T, E> Meter<'_, J, T, E> {
    /// One unit a job.
    pub fn jobs() -> Self {
        Meter {
            unit: "jobs",
            count: &|_| 1,
            bytes: None,
        }
    }
}

/// [`drive`], with the progress bar counting what `meter` says; `total`
/// is in the meter's unit.
pub fn drive_metered<J, T, E>(
    args: &RunArgs,
    results: Results<J, T, E>,
    total: Option<u64>,
    started: Instant,
    meter: &Meter<'_, J, T, E>,
    mut each: impl FnMut(&Outcome<J, T, E>) -> Next,
) -> Summary
where
    J: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let pool: Pool = results.pool();
    interrupt::watch(&pool);
    let bar = progress_bar(args, total, meter.unit);
    let mut bytes = 0u64;
    let mut sum = Summary::default();
    let mut quiet_stop = false;
    for o in results {
        sum.tally(&o.result);
        let next = match &bar {
            Some(b) => b.suspend(|| each(&o)),
            None => each(&o),
        };
        // A job cancelled before it started is not progress.
        if let (Some(b), false) = (&bar, matches!(o.result, Err(Failure::Cancelled))) {
            b.inc((meter.count)(&o));
            if let Some(weigh) = meter.bytes {
                bytes += weigh(&o);
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!("{:.1} MB/s", bytes as f64 / secs / 1e6));
            }
        }
        if let Next::StopQuietly = next {
            quiet_stop = true;
            pool.cancel();
            break;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
        interrupt::show_progress(None);
    }
    let _ = pool.wait();
    sum.finish(&pool.stats(), total, started, quiet_stop);
    sum
}

/// The progress bar, on a terminal unless --quiet; `total` (in `unit`) when known.
pub fn progress_bar(args: &RunArgs, total: Option<u64>, unit: &str) -> Option<ProgressBar> {
    if args.quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(&format!(
                "{{bar:40.cyan/blue}} {{pos}}/{{len}} {unit}  {{rate}}  {{msg}}  ETA {{eta}}"
            ))
            .expect("a valid template")
            .with_key("rate", rate)
            .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{pos}} {unit}  {{rate}}  {{msg}}  {{elapsed}}"
            ))
            .expect("a valid template")
            .with_key("rate", rate),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    interrupt::show_progress(Some(bar.clone()));
    Some(bar)
}

/// Jobs per second, whole (indicatif's `{per_sec}` shows four decimals).
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.0}/s", state.per_sec());
}
