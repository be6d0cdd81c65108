//! `brigade queue`: a durable job queue on PostgreSQL (the `brigade-postgres`
//! crate), and `work`, a distributed `exec`: many processes on many machines
//! claim jobs from one queue and run a command per job, with exec's
//! replacement strings.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use brigade::{Context, Failure, Outcome};
use brigade_postgres::{Backoff, Job, NewJob, Queue, Worker};
use clap::Subcommand;
use serde_json::Value;

use crate::exec::args::{TermSeq, Timeout};
use crate::exec::killer::Killer;
use crate::exec::template::{Cmd, Fill, Pack, Template};
use crate::interrupt;
use crate::run::{self, exit, Next, RunArgs};
use crate::units::{human, parse_duration};

/// A durable job queue in PostgreSQL: push jobs, and run them with any
/// number of `work` processes on any number of machines.
///
/// A claimed job is held under a lease that a heartbeat renews while it runs.
/// A worker that dies (kill -9, a lost machine) loses its jobs to the others
/// when the lease runs out; a worker paused past its lease finds its result
/// refused. Failed jobs come back after a backoff, and are `dead` after
/// --max-attempts, kept with their errors for `dead` and `retry`.
///
/// Example:
///   export DATABASE_URL=postgres://postgres@127.0.0.1/test
///   brigade queue init
///   ls *.wav | brigade queue push --queue audio
///   brigade queue work --queue audio -j 4 --drain -- flac {}    # on every machine
///   brigade queue status
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// PostgreSQL URL, e.g. postgres://user@host/db [default: $DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    db: Option<String>,
    /// The schema holding the queue's tables
    #[arg(long, global = true, value_name = "NAME", default_value = "brigade")]
    schema: String,
    #[command(subcommand)]
    cmd: Cmd2,
}

#[derive(Subcommand, Debug)]
enum Cmd2 {
    /// Create or upgrade the queue's tables (idempotent; `work` and `push` need them)
    Init,
    /// Push jobs: one per line of the files (or stdin), as a JSON string, or one JSON value per line with --jsonl
    Push(PushArgs),
    /// Claim jobs and run COMMAND for each, with exec's replacement strings ({} {.} {/} {#} {%}...)
    Work(WorkArgs),
    /// Counts by queue and state, throughput, the oldest waiting job, and the running jobs
    Status {
        /// One JSON object on stdout
        #[arg(long)]
        json: bool,
    },
    /// List the dead jobs (failed --max-attempts times), with their last error
    Dead {
        /// One JSON object per job on stdout, with the history of its attempts
        #[arg(long)]
        json: bool,
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Run a dead or cancelled job again (its history is kept)
    Retry {
        /// The job's id
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Every dead job
        #[arg(long)]
        all_dead: bool,
    },
    /// Cancel a waiting or running job (a running job's result will be refused)
    Cancel {
        /// The job's id
        id: i64,
    },
    /// Delete completed and cancelled jobs older than a retention (dead ones are kept)
    Prune {
        /// Keep jobs finished within this long, e.g. 24h, or 168h for a week
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        keep: Duration,
    },
}

#[derive(clap::Args, Debug)]
struct PushArgs {
    /// Files to read jobs from, one per line [default: stdin]
    files: Vec<PathBuf>,
    /// The named queue
    #[arg(long, default_value = "default")]
    queue: String,
    /// Each line is a JSON value (an array gives {1} {2}...), not a string
    #[arg(long)]
    jsonl: bool,
    /// Not before this time: +DURATION from now (+30s, +2h), or a timestamp PostgreSQL reads ('2027-01-01 09:00+00')
    #[arg(long, value_name = "TIME")]
    run_at: Option<String>,
    /// Refuse the job while a job of the queue with this key is waiting or running
    #[arg(long, value_name = "KEY", conflicts_with = "unique")]
    unique_key: Option<String>,
    /// Each job's own text is its unique key: a line already waiting or running is not pushed again
    #[arg(long)]
    unique: bool,
    /// Attempts before a job is dead
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..))]
    max_attempts: i32,
    /// Lower runs first
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i16,
}

#[derive(clap::Args, Debug)]
struct WorkArgs {
    /// Queues to take jobs from (repeat for several)
    #[arg(long, value_name = "NAME", default_value = "default")]
    queue: Vec<String>,
    /// Jobs running at once in this process [default: cores]
    #[arg(short = 'j', long = "workers", value_name = "N")]
    workers: Option<usize>,
    /// Exit once no job of the queues is waiting, scheduled or running anywhere
    #[arg(long)]
    drain: bool,
    /// A job's claim lasts this long without a heartbeat (renewed every third of it)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    lease: Duration,
    /// Time limit per attempt; past it the command is stopped and the attempt failed
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// First retry delay, doubling per attempt (with jitter), capped at 10m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    backoff: Duration,
    /// Most jobs claimed per statement
    #[arg(long, value_name = "N", default_value_t = 100)]
    batch: usize,
    /// How often an idle worker looks at the queue when no NOTIFY came
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    poll: Duration,
    /// After Ctrl-C, wait this long for running jobs, then stop them and release their leases
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    grace: Option<Duration>,
    /// Delete completed jobs this long after they finished (checked every minute)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Print the summary as one JSON object on stdout
    #[arg(long)]
    json: bool,
    /// No progress bar and no summary
    #[arg(short, long)]
    quiet: bool,
    /// The command and its arguments; the job goes where {} is, or at the end
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn fail(msg: impl fmt::Display) -> i32 {
    eprintln!("brigade queue: {msg}");
    exit::USAGE
}

/// The whole subcommand.
pub fn main(args: Args) -> i32 {
    let url = match args
        .db
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
    {
        Some(u) => u,
        None => return fail("no database: give --db postgres://... or set DATABASE_URL"),
    };
    if let Cmd2::Work(w) = args.cmd {
        return work(&url, &args.schema, w);
    }
    let mut q = match Queue::connect(&url, &args.schema) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    let r = match args.cmd {
        Cmd2::Init => q.migrate().map(|v| {
            if v.is_empty() {
                eprintln!(
                    "brigade queue: schema {} is up to date (version {})",
                    args.schema,
                    brigade_postgres::SCHEMA_VERSION
                );
            } else {
                eprintln!(
                    "brigade queue: schema {}: applied migrations {v:?}",
                    args.schema
                );
            }
            exit::OK
        }),
        Cmd2::Push(p) => return push(&mut q, p),
        Cmd2::Status { json } => q.status().map(|s| {
            print_status(&s, json);
            exit::OK
        }),
        Cmd2::Dead { json, limit } => q.dead(limit).map(|d| {
            let mut out = io::stdout().lock();
            for j in d {
                let _ = if json {
                    writeln!(out, "{}", serde_json::to_string(&j).expect("serialises"))
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{} attempts\t{}\t{}",
                        j.id,
                        j.queue,
                        j.attempts,
                        j.last_error.unwrap_or_default().replace('\n', " "),
                        j.payload
                    )
                };
            }
            exit::OK
        }),
        Cmd2::Retry { id: Some(id), .. } => q.retry(id).map(|()| {
            eprintln!("brigade queue: job {id} will run again");
            exit::OK
        }),
        Cmd2::Retry { id: None, .. } => q.retry_all_dead().map(|n| {
            eprintln!("brigade queue: {n} dead jobs will run again");
            exit::OK
        }),
        Cmd2::Cancel { id } => q.cancel(id).map(|()| {
            eprintln!("brigade queue: job {id} cancelled");
            exit::OK
        }),
        Cmd2::Prune { keep } => q.prune(keep).map(|n| {
            eprintln!("brigade queue: deleted {n} finished jobs");
            exit::OK
        }),
        Cmd2::Work(_) => unreachable!("handled above"),
    };
    r.unwrap_or_else(fail)
}

fn print_status(s: &brigade_postgres::Status, json: bool) {
    if json {
        println!("{}", serde_json::to_string(s).expect("a status serialises"));
        return;
    }
    let mut out = String::new();
    out.push_str(&format!("{:<20} {:<10} {:>10}\n", "QUEUE", "STATE", "JOBS"));
    for (q, st, n) in &s.counts {
        out.push_str(&format!("{q:<20} {st:<10} {n:>10}\n"));
    }
    out.push_str(&format!(
        "completed in the last minute: {} ({:.1}/s)\n",
        s.completed_last_minute,
        s.completed_last_minute as f64 / 60.0
    ));
    for (q, secs) in &s.oldest_ready_seconds {
        out.push_str(&format!(
            "oldest waiting in {q}: {}\n",
            human(Duration::from_secs_f64(secs.max(0.0)))
        ));
    }
    if !s.running.is_empty() {
        out.push_str("running:\n  ID  QUEUE  WORKER  ATTEMPT  RUNNING  LEASE LEFT\n");
        for r in &s.running {
            out.push_str(&format!(
                "  {}  {}  {}  {}  {}  {}\n",
                r.id,
                r.queue,
                r.worker,
                r.attempt,
                human(Duration::from_secs_f64(r.running_seconds.max(0.0))),
                if r.lease_left_seconds >= 0.0 {
                    human(Duration::from_secs_f64(r.lease_left_seconds))
                } else {
                    "expired".into()
                }
            ));
        }
    }
    print!("{out}");
}

fn push(q: &mut Queue, p: PushArgs) -> i32 {
    let run_at = match p.run_at.as_deref().map(|t| when(q, t)).transpose() {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let sources: Vec<(String, Box<dyn BufRead>)> = if p.files.is_empty() {
        if io::stdin().is_terminal() {
            eprintln!(
                "brigade queue push: reading jobs from the terminal, one per line; end with Ctrl-D"
            );
        }
        vec![("stdin".into(), Box::new(io::stdin().lock()))]
    } else {
        let mut v: Vec<(String, Box<dyn BufRead>)> = Vec::new();
        for f in &p.files {
            match File::open(f) {
                Ok(h) => v.push((f.display().to_string(), Box::new(BufReader::new(h)))),
                Err(e) => return fail(format!("cannot open {}: {e}", f.display())),
            }
        }
        v
    };
    let (mut pushed, mut refused, mut bad) = (0usize, 0usize, 0usize);
    let mut batch = Vec::with_capacity(1000);
    let mut flush = |q: &mut Queue, batch: &mut Vec<NewJob>| -> Result<(), String> {
        let ids = q.push_many(batch).map_err(|e| e.to_string())?;
        pushed += ids.len();
        refused += batch.len() - ids.len();
        batch.clear();
        Ok(())
    };
    for (name, r) in sources {
        for (n, line) in r.split(b'\n').enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("brigade queue push: cannot read {name}: {e}");
                    bad += 1;
                    break;
                }
            };
            let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line));
            if text.trim().is_empty() {
                continue;
            }
            let payload = if p.jsonl {
                match serde_json::from_str::<Value>(&text) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!(
                            "brigade queue push: {name}:{}: not JSON ({e}); skipped",
                            n + 1
                        );
                        bad += 1;
                        continue;
                    }
                }
            } else {
                Value::String(text.into_owned())
            };
            let key = if p.unique {
                Some(payload.to_string())
            } else {
                p.unique_key.clone()
            };
            let mut job = NewJob::new(payload)
                .queue(&p.queue)
                .priority(p.priority)
                .max_attempts(p.max_attempts);
            if let Some(t) = run_at {
                job = job.run_at(t);
            }
            if let Some(k) = key {
                job = job.unique_key(k);
            }
            batch.push(job);
            if batch.len() == 1000 {
                if let Err(e) = flush(q, &mut batch) {
                    return fail(e);
                }
            }
        }
    }
    if let Err(e) = flush(q, &mut batch) {
        return fail(e);
    }
    eprintln!(
        "brigade queue: pushed {pushed} jobs to queue {}{}{}",
        p.queue,
        if refused > 0 {
            format!(", {refused} refused (unique key taken by a live job)")
        } else {
            String::new()
        },
        if bad > 0 {
            format!(", {bad} bad lines skipped")
        } else {
            String::new()
        }
    );
    if bad > 0 {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// `+DURATION` from now, or a timestamp as PostgreSQL reads it.
fn when(q: &mut Queue, text: &str) -> Result<SystemTime, String> {
    if let Some(d) = text.strip_prefix('+') {
        let d = parse_duration(d).map_err(|e| format!("--run-at: {e}"))?;
        return Ok(SystemTime::now() + d);
    }
    let secs = q
        .epoch_of(text)
        .map_err(|e| format!("--run-at '{text}': {e}"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)))
}

/// What a job's command did.
#[derive(Debug)]
struct Ran {
    out: Vec<u8>,
    err: Vec<u8>,
    line: String,
}

/// Why a job's attempt failed.
#[derive(Debug)]
struct CmdError {
    why: String,
    ran: Option<Ran>,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ran {
            Some(r) => write!(f, "{} {}", r.line, self.why),
            None => f.write_str(&self.why),
        }
    }
}

/// A job's payload as replacement-string inputs: a string is one input, an
/// array one input per element, anything else its JSON text.
fn inputs(v: &Value) -> Vec<Vec<u8>> {
    let one = |v: &Value| match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    };
    match v {
        Value::Array(a) => a.iter().map(one).collect(),
        other => vec![one(other)],
    }
}

struct Plan {
    template: Template,
    killer: Arc<Killer>,
    timeout: Option<Duration>,
}

fn run_job(plan: &Plan, job: &Job<Value>, ctx: &Context<Job<Value>>) -> Result<Ran, CmdError> {
    let args = inputs(&job.args);
    let fill = Fill {
        args: &args,
        seq: job.id as u64,
        slot: ctx.worker() + 1,
    };
    let line = plan.template.line(&fill).to_string_lossy().into_owned();
    let mut cmd = match plan.template.cmd(&fill) {
        Cmd::Direct(words) => {
            let Some((first, rest)) = words.split_first() else {
                return Err(CmdError {
                    why: "the command line is empty".into(),
                    ran: None,
                });
            };
            let mut c = Command::new(first);
            c.args(rest);
            c
        }
        Cmd::Shell(l) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(l);
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("BRIGADE_JOB_ID", job.id.to_string())
        .env("BRIGADE_ATTEMPT", job.attempt.to_string())
        .env("PARALLEL_SEQ", job.id.to_string())
        .env("PARALLEL_JOBSLOT", (ctx.worker() + 1).to_string())
        .process_group(0);
    let child = cmd.spawn().map_err(|e| CmdError {
        why: format!("cannot run '{line}': {e}"),
        ran: None,
    })?;
    let t0 = Instant::now();
    let id = plan.killer.register(child.id() as i32, t0);
    let out = child.wait_with_output();
    let stopped = plan.killer.unregister(id);
    let out = out.map_err(|e| CmdError {
        why: format!("lost track of '{line}': {e}"),
        ran: None,
    })?;
    let ran = Ran {
        out: out.stdout,
        err: out.stderr,
        line,
    };
    if out.status.success() {
        return Ok(ran);
    }
    let why = match (
        stopped,
        plan.timeout,
        out.status.code(),
        out.status.signal(),
    ) {
        (true, Some(t), _, _) => format!("timed out after {} and was stopped", human(t)),
        (_, _, Some(c), _) => format!("exited with code {c}"),
        (_, _, None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    };
    Err(CmdError {
        why,
        ran: Some(ran),
    })
}

fn work(url: &str, schema: &str, w: WorkArgs) -> i32 {
    let started = Instant::now();
    let template = match Template::parse(&w.command, false, false, &[], Pack::All) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let killer = match Killer::start(TermSeq::default(), w.timeout.map(Timeout::After)) {
        Ok(k) => k,
        Err(e) => return fail(format!("cannot start the timeout thread: {e}")),
    };
    let workers = w.workers.unwrap_or_else(run::cores);
    let plan = Arc::new(Plan {
        template,
        killer: killer.clone(),
        timeout: w.timeout,
    });
    let mut worker = Worker::new(url)
        .schema(schema)
        .queues(w.queue.clone())
        .workers(workers)
        .batch(w.batch)
        .lease(w.lease)
        .poll(w.poll)
        .drain(w.drain)
        .backoff(Backoff {
            base: w.backoff,
            max: Duration::from_secs(600),
        });
    if let Some(r) = w.retention {
        worker = worker.retention(r);
    }
    let p = plan.clone();
    let quiet = w.quiet;
    let on_refused = Box::new(move |id: i64| {
        if !quiet {
            eprintln!(
                "brigade queue: job {id}: result refused, its lease had passed to another worker (or it was cancelled); dropped"
            );
        }
    });
    let (results, control) = match worker.start_with(
        move |job: &Job<Value>, ctx: &Context<Job<Value>>| run_job(&p, job, ctx),
        Some(on_refused),
    ) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let k = killer.clone();
    let c = control.clone();
    interrupt::on_hard_stop(move || {
        k.kill_all();
        c.release_held();
    });
    if let Some(grace) = w.grace {
        let (k, c) = (killer.clone(), control.clone());
        std::thread::spawn(move || {
            while !interrupt::interrupted() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let until = Instant::now() + grace;
            while Instant::now() < until {
                if c.pool().is_finished() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let n = c.release_held();
            k.kill_all();
            eprintln!(
                "brigade queue: --grace passed: stopped the running jobs, released {n} leases"
            );
            std::process::exit(exit::INTERRUPTED);
        });
    }
    let run_args = RunArgs {
        workers: Some(workers),
        queue: workers + w.batch,
        retries: 0,
        timeout: w.timeout,
        rate: None,
        fail_fast: false,
        json: w.json,
        quiet: w.quiet,
    };
    let summary = run::drive(&run_args, results, None, started, |o| {
        control.settle(o);
        print_outcome(o)
    });
    let report = control.finish();
    summary.print(&run_args);
    if !w.quiet {
        eprintln!(
            "brigade queue: {} completed, {} failed (will retry), {} dead, {} released, {} refused, {} leases rescued{}",
            report.completed,
            report.failed,
            report.dead,
            report.released,
            report.refused,
            report.rescued,
            match report.errors.last() {
                Some(e) => format!("; {} database errors, the last: {e}", report.errors.len()),
                None => String::new(),
            }
        );
    }
    summary.exit_code
}

fn print_outcome(o: &Outcome<Job<Value>, Ran, CmdError>) -> Next {
    let show = |r: &Ran| -> io::Result<()> {
        io::stdout().lock().write_all(&r.out)?;
        io::stderr().lock().write_all(&r.err)
    };
    let job = &o.job;
    let r = match &o.result {
        Ok(ran) => show(ran),
        Err(Failure::Error(e)) => {
            let shown = e.ran.as_ref().map_or(Ok(()), show);
            shown.and_then(|()| {
                writeln!(
                    io::stderr(),
                    "brigade queue: job {} (attempt {}/{}): {e}",
                    job.id,
                    job.attempt,
                    job.max_attempts
                )
            })
        }
        Err(Failure::Cancelled) => Ok(()),
        Err(other) => writeln!(io::stderr(), "brigade queue: job {}: {other}", job.id),
    };
    run::on_write(r)
}
