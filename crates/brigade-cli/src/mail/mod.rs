//! `brigade mail`: one templated email per recipient over SMTP, one
//! connection per worker (the seed's use case 3), with a per-recipient
//! ledger that makes a rerun exactly-once. See `DESIGN.md` beside this file.
//!
//! The main thread checks what can be checked before anything is sent (the
//! template, the recipients' header, the ledger, the server), then a reader
//! thread turns rows into jobs (skipping bad rows, repeats and recipients the
//! ledger says are done) and the crew renders and sends them, each worker on
//! its own connection. The run behaviour (progress, summary, exit codes,
//! Ctrl-C) is `run.rs`'s.
//!
//! Files: `args.rs` the command line, `recipients.rs` the --to file,
//! `template.rs` the template, `ledger.rs` --status, `smtp.rs` the server
//! and the connection, `message.rs` building a message, `send.rs` one
//! recipient's delivery with its retries.

mod args;
mod ledger;
mod message;
mod recipients;
mod send;
mod smtp;
mod template;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade::{Builder, Context, Failure};
use lettre::message::Mailbox;
use minijinja::Value;
use serde::Serialize;

pub use args::Args;
use ledger::{Ledger, Line, Status};
use recipients::Recipients;
use send::{Delivered, Fail, FailKind, Job, Setup};
use smtp::{Conn, Server};
use template::Template;

use crate::run::{self, exit, Next, Summary};

/// Runs `brigade mail`; returns the exit code.
pub fn main(args: Args) -> i32 {
    match mail(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("brigade mail: {msg}");
            exit::USAGE
        }
    }
}

/// What the reader found while turning rows into jobs.
#[derive(Debug, Default)]
struct Read {
    rows: u64,
    queued: u64,
    bad: u64,
    duplicates: u64,
    already_sent: u64,
    already_failed: u64,
    unknown: u64,
    limited: bool,
    unsent: u64,
}

/// The `--json` report: the shared run summary plus the recipients' accounts.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    run: &'a Summary,
    recipients: u64,
    sent: u64,
    perm_fail: u64,
    temp_fail: u64,
    unknown: u64,
    skipped: u64,
    duplicates: u64,
    already_sent: u64,
    already_failed: u64,
    not_started: u64,
    messages_per_second: f64,
    status_file: Option<String>,
    dry_run: bool,
}

fn mail(args: Args) -> Result<i32, String> {
    let started = Instant::now();
    let chatty = !(args.run.quiet || args.run.json);
    let tpl_name = args.template.display().to_string();
    let source = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("--template {tpl_name}: {e}"))?;
    let template = Template::parse(&tpl_name, &source)?;
    let from = match &args.from {
        Some(f) => Some(
            f.parse::<Mailbox>()
                .map_err(|e| format!("--from '{f}': not an address: {e}"))?,
        ),
        None if template.has_from() => None,
        None => {
            return Err(format!(
                "no sender: give --from, or a 'From:' line in {tpl_name}"
            ))
        }
    };
    let attachments = message::read_attachments(&args.attach)?;
    let history = match &args.status {
        Some(p) => ledger::read(p)?,
        None => ledger::History::default(),
    };
    let run_id = args
        .run_id
        .clone()
        .or_else(|| history.run_id.clone())
        .unwrap_or_else(|| message::default_run_id(source.as_bytes()));
    let rows = Recipients::open(&args.to)?;
    let to_name = args.to.display().to_string();

    let dry = args.dry_run.clone();
    let dry_dir = match &dry {
        Some(d) if d.as_os_str() != "-" => {
            std::fs::create_dir_all(d).map_err(|e| format!("--dry-run {}: {e}", d.display()))?;
            Some(d.clone())
        }
        _ => None,
    };
    let timeout = args.run.timeout.unwrap_or(Duration::from_secs(60));
    let server = match (&dry, &args.smtp) {
        (None, Some(url)) => {
            let ca = match &args.ca {
                Some(p) => {
                    Some(std::fs::read(p).map_err(|e| format!("--ca {}: {e}", p.display()))?)
                }
                None => None,
            };
            let server = Server::parse(url, ca.as_deref(), timeout)?;
            // Reachable, TLS and login all right, before anything is sent.
            let mut probe = server
                .connect()
                .map_err(|e| format!("cannot reach {}: {e}", server.shown))?;
            let _ = probe.quit();
            if server.cleartext_login() && chatty {
                eprintln!(
                    "brigade mail: warning: logging in to {} without TLS",
                    server.shown
                );
            }
            Some(server)
        }
        (None, None) => return Err("--smtp is needed (or --dry-run)".into()),
        (Some(_), _) => None,
    };
    let ledger = Arc::new(Ledger::open(if dry.is_some() {
        None
    } else {
        args.status.as_deref()
    })?);

    let retries = if args.run.retries == 0 {
        5
    } else {
        args.run.retries
    };
    let setup = Arc::new(Setup {
        from: from.clone(),
        attachments,
        ledger: ledger.clone(),
        server,
        run_id,
        backoff: args.backoff,
        max_backoff: args.max_backoff,
        attempts: retries.saturating_add(1),
        dry_dir: dry_dir.clone(),
        ledger_broken: AtomicBool::new(false),
    });

    let to_stdout = dry.is_some() && dry_dir.is_none();
    let workers = args
        .run
        .workers
        .unwrap_or(if dry.is_some() { run::cores() } else { 4 });
    let mut builder = Builder::new()
        .workers(workers)
        .queue(args.run.queue)
        .name("brigade-mail");
    if to_stdout {
        builder = builder.ordered();
    }
    builder = args.run.apply_limits(builder);
    let worker_setup = setup.clone();
    let (jobs, results) = builder
        .state(|_worker| Ok::<_, std::convert::Infallible>(Conn::default()))
        .build(move |conn: &mut Conn, job: &Job, ctx: &Context<'_, Job>| {
            send::deliver(&worker_setup, conn, job, ctx)
        })
        .map_err(|e| format!("cannot start the workers: {e}"))?;

    // The reader: rows to jobs, bad rows and repeats to `skipped` lines.
    let reader = {
        let ledger = ledger.clone();
        let limit = args.limit;
        let resend_unknown = args.resend_unknown;
        let to_name = to_name.clone();
        let write_skips = dry.is_none();
        let run_id = setup.run_id.clone();
        std::thread::Builder::new()
            .name("brigade-mail-reader".into())
            .spawn(move || {
                let mut r = Read::default();
                let mut seen: HashMap<String, u64> = HashMap::new();
                let skip = |line: u64, who: &str, reason: String| -> Result<(), String> {
                    eprintln!("brigade mail: {to_name} line {line}: {who}: skipped: {reason}");
                    if write_skips {
                        let mut l = Line::new(who, Status::Skipped, 0);
                        l.reason = Some(reason);
                        l.line = Some(line);
                        ledger.write(&l).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                };
                for row in rows {
                    r.rows += 1;
                    if limit.is_some_and(|n| r.queued >= n) {
                        r.limited = true;
                        break;
                    }
                    let who = row.email.clone().unwrap_or_default();
                    let vars = match row.vars {
                        Ok(v) => v,
                        Err(reason) => {
                            r.bad += 1;
                            skip(row.line, &who, reason)?;
                            continue;
                        }
                    };
                    let address = match who.parse::<lettre::Address>() {
                        Ok(a) => a,
                        Err(e) => {
                            r.bad += 1;
                            skip(row.line, &who, format!("not an email address: {e}"))?;
                            continue;
                        }
                    };
                    let key = ledger::key(&who);
                    if let Some(first) = seen.get(&key) {
                        r.duplicates += 1;
                        skip(row.line, &who, format!("duplicate of line {first}"))?;
                        continue;
                    }
                    seen.insert(key.clone(), row.line);
                    let earlier = history.by_key.get(&key);
                    match earlier.map(|e| e.status) {
                        Some(Status::Sent) => {
                            r.already_sent += 1;
                            continue;
                        }
                        Some(Status::PermFail) => {
                            r.already_failed += 1;
                            continue;
                        }
                        Some(Status::Sending) if !resend_unknown => {
                            r.unknown += 1;
                            eprintln!(
                                "brigade mail: {to_name} line {}: {who}: unknown: an earlier run stopped between DATA and the server's reply; not sent again (--resend-unknown sends it)",
                                row.line
                            );
                            continue;
                        }
                        _ => {}
                    }
                    let rendered = match template.render(&Value::from_serialize(&vars)) {
                        Ok(r) => r,
                        Err(reason) => {
                            r.bad += 1;
                            skip(row.line, &who, reason)?;
                            continue;
                        }
                    };
                    let message_id = match earlier.and_then(|e| e.message_id.clone()) {
                        Some(id) => id,
                        None => {
                            let sender = rendered.from.as_deref().and_then(|f| f.parse::<Mailbox>().ok());
                            let domain = match (sender, &from) {
                                (Some(f), _) => f.email.domain().to_string(),
                                (None, Some(f)) => f.email.domain().to_string(),
                                (None, None) => address.domain().to_string(),
                            };
                            message::message_id(&run_id, &key, &domain)
                        }
                    };
                    let job = Job {
                        line: row.line,
                        email: who,
                        address,
                        rendered,
                        attempts_before: earlier.map_or(0, |e| e.attempts),
                        message_id,
                    };
                    r.queued += 1;
                    if jobs.send(job).is_err() {
                        r.unsent += 1;
                        break;
                    }
                }
                drop(jobs);
                Ok::<Read, String>(r)
            })
            .map_err(|e| format!("cannot start the reader thread: {e}"))?
    };

    let pool = results.pool();
    let mut counts: HashMap<FailKind, u64> = HashMap::new();
    let mut sent = 0u64;
    let stdout = std::io::stdout();
    let mut summary = run::drive(&args.run, results, None, started, |o| {
        match &o.result {
            Ok(Delivered::Sent | Delivered::Written) => sent += 1,
            Ok(Delivered::Rendered(bytes)) => {
                sent += 1;
                let mut out = stdout.lock();
                let r = out
                    .write_all(bytes)
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush());
                return run::on_write(r);
            }
            Err(Failure::Error(Fail { kind, reason })) => {
                *counts.entry(*kind).or_default() += 1;
                eprintln!(
                    "brigade mail: {to_name} line {}: {}: {}: {reason}",
                    o.job.line,
                    o.job.email,
                    kind.name()
                );
                if *kind == FailKind::Ledger {
                    pool.cancel();
                }
            }
            Err(Failure::Cancelled) => {}
            Err(other) => {
                eprintln!(
                    "brigade mail: {to_name} line {}: {}: {other}",
                    o.job.line, o.job.email
                );
            }
        }
        Next::Continue
    });
    let read = match reader.join() {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("brigade mail: {e}");
            setup.ledger_broken.store(true, Ordering::SeqCst);
            Read::default()
        }
        Err(p) => std::panic::resume_unwind(p),
    };
    let count = |k: FailKind| counts.get(&k).copied().unwrap_or(0);
    let skipped = read.bad + count(FailKind::Skipped);
    let unknown = read.unknown + count(FailKind::Unknown);
    let broken = setup.ledger_broken.load(Ordering::SeqCst) || count(FailKind::Ledger) > 0;
    if summary.exit_code != exit::INTERRUPTED {
        if broken {
            summary.exit_code = exit::USAGE;
        } else if skipped + unknown + count(FailKind::PermFail) + count(FailKind::TempFail) > 0 {
            summary.exit_code = summary.exit_code.max(exit::FAILED);
        }
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let report = Report {
        run: &summary,
        recipients: read.rows - u64::from(read.limited),
        sent,
        perm_fail: count(FailKind::PermFail),
        temp_fail: count(FailKind::TempFail),
        unknown,
        skipped,
        duplicates: read.duplicates,
        already_sent: read.already_sent,
        already_failed: read.already_failed,
        not_started: summary.cancelled + read.unsent,
        messages_per_second: (sent as f64 / wall * 10.0).round() / 10.0,
        status_file: args.status.as_ref().map(|p| p.display().to_string()),
        dry_run: dry.is_some(),
    };
    if args.run.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serialises")
        );
    } else if !args.run.quiet {
        eprintln!("{}", summary.text());
        eprintln!("{}", report_text(&report, read.limited, dry_dir.as_ref()));
    }
    Ok(summary.exit_code)
}

fn report_text(r: &Report<'_>, limited: bool, dir: Option<&PathBuf>) -> String {
    let verb = if r.dry_run { "rendered" } else { "sent" };
    let mut s = format!(
        "brigade mail: {} recipients: {} {verb}, {} failed (5xx), {} still failing (4xx), {} unknown, {} skipped (bad input), {} duplicates",
        r.recipients, r.sent, r.perm_fail, r.temp_fail, r.unknown, r.skipped, r.duplicates
    );
    if r.already_sent + r.already_failed > 0 {
        s.push_str(&format!(
            "; done in earlier runs: {} sent, {} failed",
            r.already_sent, r.already_failed
        ));
    }
    if r.not_started > 0 {
        s.push_str(&format!("; {} not started", r.not_started));
    }
    if limited {
        s.push_str("; stopped at --limit");
    }
    if let Some(d) = dir {
        s.push_str(&format!("; messages in {}", d.display()));
    }
    if let Some(f) = &r.status_file {
        if !r.dry_run {
            s.push_str(&format!("; status in {f}"));
        }
    }
    s
}
