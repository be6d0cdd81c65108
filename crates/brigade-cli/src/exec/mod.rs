//! `brigade exec`: run a command once per input, in parallel, with GNU
//! parallel's command lines.
//!
//! One concern a file: `args` (the options, checked once), `inputs` (input
//! sources, packing into jobs, --pipe blocks), `template` (replacement strings
//! and the shell), `spool` (output to temporary files), `killer` (timeouts
//! and --termseq), `joblog` (the log and --resume). This file runs the jobs.

pub(crate) mod args;
mod inputs;
mod joblog;
pub(crate) mod killer;
mod spool;
pub(crate) mod template;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use brigade::{Builder, Context, Failure, Outcome, Pool};
use regex::bytes::Regex;

use crate::interrupt;
use crate::run::{self, exit, Next};
use crate::units::human;

pub use args::Args;
use args::{Halt, HaltOn, OutputMode, Timeout};
use inputs::{Job, Packing};
use joblog::{Joblog, Row};
use killer::Killer;
use spool::Spool;
use template::{Cmd, Fill, Pack, Template};

/// A job whose process exited.
#[derive(Debug)]
pub struct Ran {
    out: Spool,
    err: Spool,
    status: ExitStatus,
    /// The command line, for messages.
    line: Vec<u8>,
    /// Stopped by --timeout or --halt now.
    stopped: bool,
    /// How long its process ran.
    took: Duration,
}

/// Why a job failed.
#[derive(Debug)]
pub enum ExecError {
    /// The command could not be started.
    Spawn(String),
    /// It ran and exited non-zero or was killed.
    Exit(Ran),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Spawn(m) => f.write_str(m),
            ExecError::Exit(r) => write!(f, "{}", why(r)),
        }
    }
}

fn why(r: &Ran) -> String {
    match (r.status.code(), r.status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    }
}

/// --delay: the earliest time the next job may start.
struct Delay {
    every: Duration,
    next: Mutex<Option<Instant>>,
}

impl Delay {
    fn wait_turn(&self) {
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + self.every);
            start
        };
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
    }
}

/// --halt, decided by the worker that ends a job, before it takes the next.
struct Halting {
    rule: Halt,
    total: Option<u64>,
    state: Mutex<HaltState>,
    pool: OnceLock<Pool>,
}

#[derive(Default)]
struct HaltState {
    done: u64,
    ok: u64,
    failed: u64,
    halted: Option<HaltOn>,
}

impl Halting {
    /// Counts a job's final result; halts when the rule says so.
    fn count(&self, ok: bool, killer: &Killer) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.done += 1;
        if ok {
            st.ok += 1;
        } else {
            st.failed += 1;
        }
        if st.halted.is_some() {
            return;
        }
        let (counted, fresh, what) = match self.rule.on {
            HaltOn::Fail => (st.failed, !ok, "failed"),
            HaltOn::Success => (st.ok, ok, "succeeded"),
            HaltOn::Done => (st.done, true, "done"),
        };
        if !(fresh && self.rule.reached(counted, st.done, self.total)) {
            return;
        }
        st.halted = Some(self.rule.on);
        drop(st);
        eprintln!(
            "brigade exec: --halt: {counted} jobs {what}: {}",
            if self.rule.now {
                "stopping the running jobs, starting no more"
            } else {
                "starting no more jobs, waiting for the running ones"
            }
        );
        if let Some(p) = self.pool.get() {
            p.cancel();
        }
        if self.rule.now {
            killer.stop_all();
        }
    }

    fn halted(&self) -> Option<HaltOn> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).halted
    }
}

/// What every worker needs to run a job.
struct Plan {
    template: Template,
    mode: OutputMode,
    tag: bool,
    tmpdir: Option<PathBuf>,
    results: Option<PathBuf>,
    timeout: Option<Timeout>,
    killer: Arc<Killer>,
    joblog: Option<Joblog>,
    delay: Option<Delay>,
    attempts: u32,
    halting: Option<Halting>,
}

/// The tag --tag puts before each line: the job's inputs, then a tab.
fn tag_of(args: &[Vec<u8>]) -> Vec<u8> {
    let mut t = args.join(&b' ');
    t.push(b'\t');
    t
}

/// Where a job's stdout or stderr goes while it runs.
enum Sink {
    File(File),
    Pipe,
    Inherit,
}

impl Sink {
    fn stdio(&self) -> io::Result<Stdio> {
        Ok(match self {
            Sink::File(f) => Stdio::from(f.try_clone()?),
            Sink::Pipe => Stdio::piped(),
            Sink::Inherit => Stdio::inherit(),
        })
    }

    fn settle(self) -> io::Result<Spool> {
        match self {
            Sink::File(f) => Spool::settle(f),
            _ => Ok(Spool::default()),
        }
    }
}

/// Copies whole lines from a job's pipe to our stdout or stderr (--line-buffer).
fn relay(
    r: impl Read + Send + 'static,
    to_stdout: bool,
    tag: Option<Vec<u8>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut whole = tag.clone().unwrap_or_default();
            whole.extend_from_slice(&line);
            let _ = if to_stdout {
                io::stdout().lock().write_all(&whole)
            } else {
                io::stderr().lock().write_all(&whole)
            };
        }
    })
}

fn run_one(plan: &Plan, job: &Job, ctx: &Context<Job>) -> Result<Ran, ExecError> {
    let r = run_attempt(plan, job, ctx);
    if let (Err(ExecError::Spawn(_)), Some(log)) = (&r, &plan.joblog) {
        // Never started: logged as the shell logs a command it cannot run.
        let fill = Fill {
            args: &job.args,
            seq: job.seq,
            slot: ctx.worker() + 1,
        };
        let line = plan.template.line(&fill).into_vec();
        let row = Row {
            seq: job.seq,
            start: SystemTime::now(),
            took: Duration::ZERO,
            sent: 0,
            received: 0,
            code: 127,
            signal: 0,
            command: &line,
        };
        if let Err(e) = log.write(&row) {
            eprintln!("brigade exec: cannot write the job log: {e}");
        }
    }
    if let Some(h) = &plan.halting {
        // The last attempt: what the pool will not retry.
        let last = match &r {
            Ok(_) | Err(ExecError::Spawn(_)) => true,
            Err(ExecError::Exit(ran)) => ran.stopped || ctx.attempt() >= plan.attempts,
        };
        if last {
            h.count(r.is_ok(), &plan.killer);
        }
    }
    r
}

fn run_attempt(plan: &Plan, job: &Job, ctx: &Context<Job>) -> Result<Ran, ExecError> {
    if let Some(d) = &plan.delay {
        d.wait_turn();
    }
    let slot = ctx.worker() + 1;
    let fill = Fill {
        args: &job.args,
        seq: job.seq,
        slot,
    };
    let line = plan.template.line(&fill).into_vec();
    let mut cmd = match plan.template.cmd(&fill) {
        Cmd::Direct(words) => {
            let Some((first, rest)) = words.split_first() else {
                return Err(ExecError::Spawn("the command line is empty".into()));
            };
            let mut c = Command::new(first);
            c.args(rest);
            c
        }
        Cmd::Shell(line) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
    };
    let io_err = |what: &str, e: io::Error| ExecError::Spawn(format!("{what}: {e}"));
    let (out, err) = match plan.mode {
        OutputMode::Group => match &plan.results {
            Some(root) => {
                let dir = spool::results_dir(root, &job.args);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| io_err(&format!("cannot create {}", dir.display()), e))?;
                std::fs::write(dir.join("seq"), job.seq.to_string())
                    .map_err(|e| io_err(&format!("cannot write in {}", dir.display()), e))?;
                let open = |n: &str| {
                    spool::kept_file(&dir.join(n))
                        .map(Sink::File)
                        .map_err(|e| io_err(&format!("cannot write {}", dir.join(n).display()), e))
                };
                (open("stdout")?, open("stderr")?)
            }
            None => {
                let open = || {
                    spool::file(plan.tmpdir.as_deref())
                        .map(Sink::File)
                        .map_err(|e| io_err("cannot create a spool file for the output", e))
                };
                (open()?, open()?)
            }
        },
        OutputMode::LineBuffer => (Sink::Pipe, Sink::Pipe),
        OutputMode::Ungroup => (Sink::Inherit, Sink::Inherit),
    };
    cmd.stdin(if job.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(
        out.stdio()
            .map_err(|e| io_err("cannot pass the spool file", e))?,
    )
    .stderr(
        err.stdio()
            .map_err(|e| io_err("cannot pass the spool file", e))?,
    )
    .env("PARALLEL_SEQ", job.seq.to_string())
    .env("PARALLEL_JOBSLOT", slot.to_string())
    .process_group(0);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        let name = match plan.template.cmd(&fill) {
            Cmd::Direct(w) => w
                .first()
                .map(|w| w.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Cmd::Shell(_) => "sh".into(),
        };
        ExecError::Spawn(format!("cannot run '{name}': {e}"))
    })?;
    let id = plan.killer.register(child.id() as i32, t0);
    if let (Some(data), Some(mut stdin)) = (job.stdin.clone(), child.stdin.take()) {
        // Detached: a job that never reads its stdin must not hold this one up.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let tag = plan.tag.then(|| tag_of(&job.args));
    let relays: Vec<_> = [
        child.stdout.take().map(|o| relay(o, true, tag.clone())),
        child.stderr.take().map(|e| relay(e, false, tag.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let status = child.wait();
    let stopped = plan.killer.unregister(id);
    let took = t0.elapsed();
    for r in relays {
        let _ = r.join();
    }
    let status = status.map_err(|e| ExecError::Spawn(format!("lost track of the job: {e}")))?;
    let ran = Ran {
        out: out
            .settle()
            .map_err(|e| io_err("cannot read the spooled output", e))?,
        err: err
            .settle()
            .map_err(|e| io_err("cannot read the spooled output", e))?,
        status,
        line,
        stopped,
        took,
    };
    if status.success() && !stopped {
        plan.killer.succeeded(took);
    }
    let last_attempt = status.success() || stopped || ctx.attempt() >= plan.attempts;
    if let (Some(log), true) = (&plan.joblog, last_attempt) {
        let row = Row {
            seq: job.seq,
            start: started,
            took,
            sent: job.stdin.as_ref().map_or(0, |d| d.len() as u64),
            received: ran.out.len(),
            code: status.code().unwrap_or(-1),
            signal: status.signal().unwrap_or(0),
            command: &ran.line,
        };
        if let Err(e) = log.write(&row) {
            eprintln!("brigade exec: cannot write the job log: {e}");
        }
    }
    if status.success() {
        Ok(ran)
    } else {
        Err(ExecError::Exit(ran))
    }
}

fn usage(msg: impl fmt::Display) -> i32 {
    eprintln!("brigade exec: {msg}");
    exit::USAGE
}

/// The whole run, or a usage error.
pub fn main(args: Args) -> i32 {
    let started = Instant::now();
    if let Err(e) = args.check() {
        return usage(e);
    }
    let mode = args.output_mode().expect("checked");
    let halt = args.halt().expect("checked");
    if args.keep_order && mode != OutputMode::Group {
        return usage(
            "-k cannot order output that is not grouped: leave out -k, or -u / --line-buffer",
        );
    }
    if args.results.is_some() && mode != OutputMode::Group {
        return usage("--results needs grouped output: leave out -u / --line-buffer");
    }
    let sep = match args::separator(&args) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let colsep = match &args.colsep {
        None => None,
        Some(c) => match Regex::new(c) {
            Ok(r) => Some(r),
            Err(e) => return usage(format!("--colsep '{c}' is not a valid regex: {e}")),
        },
    };
    let split = match inputs::split(args.command.clone(), &args.arg_file) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if split.reads_stdin() && io::stdin().is_terminal() {
        eprintln!(
            "brigade exec: reading inputs from the terminal, one per line; end them with Ctrl-D \
             (or give them after :::, with -a FILE, or through a pipe)"
        );
    }

    // The jobs: blocks of stdin (--pipe), or packed input tuples.
    let (jobs, names, total, read_failed) = if args.pipe {
        let (r, what) = match split.pipe_source() {
            Ok(s) => s,
            Err(e) => return usage(e),
        };
        let block = match args.block.as_deref().map(args::parse_size).transpose() {
            Ok(b) => b.unwrap_or(1 << 20),
            Err(e) => return usage(e),
        };
        let failed = Arc::default();
        let jobs = inputs::blocks(r, what, block, args.max_replace_args, Arc::clone(&failed));
        (jobs, Vec::new(), None, failed)
    } else {
        let how = inputs::Reading {
            sep,
            colsep,
            skip_blank: args.no_run_if_empty,
            header: args.header.is_some(),
        };
        let inp = match split.inputs(&how) {
            Ok(i) => i,
            Err(e) => return usage(e),
        };
        let packing = match (args.max_args, args.max_replace_args) {
            (Some(0), _) => {
                return usage(
                    "-n 0: give at least one input per job (-N 0 runs the command with none)",
                )
            }
            (Some(n), _) | (_, Some(n @ 1..)) => Packing::Up(n),
            (_, Some(0)) => Packing::NoArgs,
            _ if args.context_replace || args.multiple => Packing::Fill {
                workers: args.workers(inp.total),
            },
            _ => Packing::One,
        };
        let (jobs, total) = inputs::jobs(inp.tuples, inp.total, packing);
        (jobs, inp.names, total, inp.read_failed)
    };
    let pack = if args.context_replace {
        Pack::Context
    } else {
        Pack::All
    };
    let template = match Template::parse(&split.command, args.quote, args.shell, &names, pack) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    if args.pipe && template.has_value() {
        return usage("with --pipe the input goes to the jobs' stdin: the command takes no {} (only {#} and {%})");
    }

    if args.dry_run {
        let mut out = io::stdout().lock();
        for job in jobs {
            let fill = Fill {
                args: &job.args,
                seq: job.seq,
                slot: 1,
            };
            let mut line = template.line(&fill).into_vec();
            line.push(b'\n');
            if let Next::StopQuietly = run::on_write(out.write_all(&line)) {
                break;
            }
        }
        return if read_failed.load(Ordering::SeqCst) {
            exit::USAGE
        } else {
            exit::OK
        };
    }

    let resume = args.resume || args.resume_failed;
    let (joblog, done) = match &args.joblog {
        None => (None, Default::default()),
        Some(p) => match Joblog::open(p, resume) {
            Ok((log, done)) => (Some(log), done),
            Err(e) => return usage(e),
        },
    };
    let (jobs, total): (Box<dyn Iterator<Item = Job> + Send>, _) = if resume {
        let skip_failed = args.resume;
        let skipped = done.values().filter(|ok| **ok || skip_failed).count() as u64;
        let jobs = jobs.filter(move |j| match done.get(&j.seq) {
            Some(true) => false,
            Some(false) => !skip_failed,
            None => true,
        });
        (Box::new(jobs), total.map(|t| t.saturating_sub(skipped)))
    } else {
        (jobs, total)
    };

    let killer = match Killer::start(args.termseq.clone().unwrap_or_default(), args.timeout) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("brigade exec: cannot start the timeout thread: {e}");
            return exit::FAILED;
        }
    };
    let k = killer.clone();
    interrupt::on_hard_stop(move || k.kill_all());
    let workers = args.workers(total);
    let plan = Arc::new(Plan {
        template,
        mode,
        tag: args.tag,
        tmpdir: args.tmpdir.clone(),
        results: args.results.clone(),
        timeout: args.timeout,
        killer: killer.clone(),
        joblog,
        delay: args.delay.map(|every| Delay {
            every,
            next: Mutex::new(None),
        }),
        attempts: args.retries,
        halting: halt.map(|rule| Halting {
            rule,
            total,
            state: Mutex::default(),
            pool: OnceLock::new(),
        }),
    });
    let run_args = args.run_args(workers);
    let mut builder = run_args
        .apply(Builder::new(), workers)
        .backoff(Duration::from_millis(10), Duration::from_secs(1))
        .retry_if(|e: &ExecError| matches!(e, ExecError::Exit(r) if !r.stopped));
    if args.keep_order {
        builder = builder.ordered();
    }
    let p = plan.clone();
    let results = builder.run(jobs, move |job: &Job, ctx: &Context<Job>| {
        run_one(&p, job, ctx)
    });
    if let Some(h) = &plan.halting {
        let pool = results.pool();
        if h.halted().is_some() {
            pool.cancel(); // a job ended before the pool was known
        }
        let _ = h.pool.set(pool);
    }

    let mut stopped_jobs = 0u64;
    let mut summary = run::drive(&run_args, results, total, started, |o| {
        if matches!(&o.result, Err(Failure::Error(ExecError::Exit(r))) if r.stopped) {
            stopped_jobs += 1;
        }
        print_outcome(&plan, o)
    });
    let halted = plan.halting.as_ref().and_then(Halting::halted);
    // Jobs stopped by --timeout (or --halt now) are counted as timed out, not failed.
    summary.failed = summary.failed.saturating_sub(stopped_jobs);
    summary.timed_out += stopped_jobs;
    if matches!(halted, Some(HaltOn::Success | HaltOn::Done))
        && summary.exit_code == exit::FAILED
        && summary.failed + summary.timed_out + summary.panicked == 0
    {
        // The run stopped because it had what it needed: not a failure.
        summary.exit_code = exit::OK;
    }
    if read_failed.load(Ordering::SeqCst) && summary.exit_code == exit::OK {
        summary.exit_code = exit::FAILED;
    }
    report(&args, &summary);
    summary.exit_code
}

fn report(args: &Args, summary: &run::Summary) {
    let json = || serde_json::to_string(summary).expect("a summary serialises");
    if let Some(p) = &args.json_file {
        if let Err(e) = std::fs::write(p, json() + "\n") {
            eprintln!(
                "brigade exec: cannot write the summary to {}: {e}",
                p.display()
            );
        }
    } else if args.json {
        eprintln!("{}", json());
    }
    if !args.quiet && !args.json && args.json_file.is_none() {
        eprintln!("{}", summary.text());
    }
}

fn print_outcome(plan: &Plan, o: &Outcome<Job, Ran, ExecError>) -> Next {
    let job = &o.job;
    let tag = (plan.tag && plan.mode == OutputMode::Group).then(|| tag_of(&job.args));
    let show = |ran: &Ran| -> io::Result<()> {
        if plan.results.is_some() {
            return Ok(()); // saved in the results folder, as parallel does
        }
        ran.out.copy_to(&mut io::stdout().lock(), tag.as_deref())?;
        ran.err.copy_to(&mut io::stderr().lock(), tag.as_deref())
    };
    let r = match &o.result {
        Ok(ran) => show(ran),
        Err(Failure::Error(ExecError::Exit(ran))) => show(ran).and_then(|()| {
            let what = if ran.stopped {
                match plan.timeout {
                    Some(Timeout::After(t)) => {
                        format!("timed out after {} and was stopped", human(t))
                    }
                    Some(Timeout::OfMedian(k)) => format!(
                        "ran {}, past {}% of the median run time, and was stopped",
                        human(ran.took),
                        k * 100.0
                    ),
                    None => "was stopped".into(),
                }
            } else {
                why(ran)
            };
            writeln!(
                io::stderr(),
                "brigade exec: job {} ({}) {what}",
                job.seq,
                String::from_utf8_lossy(&ran.line)
            )
        }),
        Err(Failure::Error(ExecError::Spawn(msg))) => {
            writeln!(io::stderr(), "brigade exec: job {}: {msg}", job.seq)
        }
        Err(Failure::Cancelled) => Ok(()),
        Err(other) => writeln!(io::stderr(), "brigade exec: job {}: {other}", job.seq),
    };
    run::on_write(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_join_the_inputs() {
        assert_eq!(tag_of(&[b"a".to_vec(), b"1".to_vec()]), b"a 1\t");
    }

    #[test]
    fn default_termseq_starts_with_term() {
        assert_eq!(
            args::TermSeq::default().0[0].0,
            nix::sys::signal::Signal::SIGTERM
        );
    }
}
