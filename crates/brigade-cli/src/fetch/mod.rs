//! `brigade fetch`: URLs fetched concurrently on the async pool
//! (`brigade::tokio`), one JSONL record per input. See DESIGN.md beside this
//! file for how the parts fit.

mod args;
mod client;
mod crawl;
mod hosts;
mod page;
mod save;

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade::tokio::Builder;
use brigade::Failure;
use serde::Serialize;

pub use args::Args;
use client::{Fetcher, Record, Skip};
use crawl::{Crawl, Job, Verdict};

use crate::interrupt;
use crate::run::{self, exit, Next, Summary};

/// Requests in flight at once when -j is not given.
pub const DEFAULT_WORKERS: usize = 50;

/// Why a job gave no successful record.
enum Halt {
    /// The fetch failed; here is its record.
    Failed(Box<Record>),
    /// Ctrl-C came before the job started: no record, so --resume fetches it next time.
    NotStarted,
    /// A found link that robots.txt disallows: no record, counted in the crawl's counts.
    Disallowed,
}

/// The summary: the shared one, and fetch's own counts.
#[derive(Serialize)]
struct FetchSummary {
    #[serde(flatten)]
    run: Summary,
    /// Inputs skipped because --resume had them.
    resumed_skipped: u64,
    /// Crawl counts, with --crawl.
    #[serde(skip_serializing_if = "Option::is_none")]
    crawl: Option<crawl::Counts>,
}

/// Runs `brigade fetch`; returns the exit code.
pub fn main(args: Args) -> i32 {
    if let Err(e) = args.check() {
        eprintln!("brigade fetch: {e}");
        return exit::USAGE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(run::cores())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("brigade fetch: cannot start the async runtime: {e}");
            return exit::USAGE;
        }
    };
    rt.block_on(fetch_all(args))
}

/// Where the inputs come from.
enum Source {
    Args(Vec<String>),
    File(std::path::PathBuf),
    Stdin,
}

async fn fetch_all(args: Args) -> i32 {
    let started = Instant::now();
    let fetcher = match Fetcher::new(&args) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            eprintln!("brigade fetch: {e}");
            return exit::USAGE;
        }
    };
    let (done, mut resume) = match &args.resume {
        None => (HashSet::new(), None),
        Some(path) => match open_resume(path) {
            Ok((done, file)) => (done, Some(file)),
            Err(e) => {
                eprintln!("brigade fetch: --resume {}: {e}", path.display());
                return exit::USAGE;
            }
        },
    };
    let mut sources = Vec::new();
    if !args.urls.is_empty() {
        sources.push(Source::Args(args.urls.clone()));
    }
    if let Some(f) = &args.input_file {
        sources.push(Source::File(f.clone()));
    }
    if sources.is_empty() {
        sources.push(Source::Stdin);
    }
    let total = if args.crawl {
        None
    } else {
        match count_inputs(&sources, &done) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("brigade fetch: {e}");
                return exit::USAGE;
            }
        }
    };
    let crawl = args.crawl.then(|| {
        Arc::new(Crawl::new(
            args.depth,
            args.max_pages,
            args.frontier,
            args.same_host,
            &args.allow_domain,
        ))
    });

    let j = args.run.workers.unwrap_or(DEFAULT_WORKERS);
    // More pool workers than requests in flight (-j, a semaphore in the
    // fetcher), so that jobs waiting for a busy or slowed host do not hold
    // back the jobs of other hosts.
    let mut b = Builder::new()
        .workers(j.saturating_mul(4).clamp(1, brigade::tokio::MAX_WORKERS))
        .queue(args.run.queue);
    if let Some(r) = args.run.rate {
        b = b.rate_limit(r);
    }
    if args.run.fail_fast {
        b = b.fail_fast();
    }
    let (f, c) = (Arc::clone(&fetcher), crawl.clone());
    let built = b
        .build(move |job: &Job, ctx| {
            let (f, c) = (Arc::clone(&f), c.clone());
            Box::pin(async move {
                if let Some(c) = &c {
                    c.started(job);
                }
                if interrupt::interrupted() {
                    return Err(Halt::NotStarted);
                }
                let (mut rec, links) = match &job.bad {
                    Some(why) => (
                        Record {
                            input: job.input.clone(),
                            error: Some(why.clone()),
                            failed: true,
                            ..Record::default()
                        },
                        Vec::new(),
                    ),
                    None => {
                        let got = f.fetch(&job.input).await;
                        (got.record, got.links)
                    }
                };
                if rec.skip == Some(Skip::NotStarted) {
                    return Err(Halt::NotStarted);
                }
                if let (Some(c), true, Some(Skip::Disallowed)) = (&c, job.depth > 0, rec.skip) {
                    // A found link robots.txt forbids is left, like one out of scope.
                    c.disallowed();
                    return Err(Halt::Disallowed);
                }
                if let Some(c) = &c {
                    rec.depth = Some(job.depth);
                    rec.parent = job.parent.as_deref().map(str::to_string);
                    if c.goes_deeper(job.depth) {
                        let parent: Arc<str> =
                            Arc::from(rec.final_url.as_deref().unwrap_or(&job.input));
                        for link in links {
                            if c.offer(&link, job) == Verdict::Follow {
                                let next = Job {
                                    input: link,
                                    bad: None,
                                    depth: job.depth + 1,
                                    parent: Some(Arc::clone(&parent)),
                                    root_host: job.root_host.clone(),
                                };
                                if ctx.spawn(next).is_err() {
                                    c.unclaim();
                                }
                            }
                        }
                    }
                }
                if rec.failed {
                    Err(Halt::Failed(Box::new(rec)))
                } else {
                    Ok(rec)
                }
            })
        })
        .await;
    let (jobs, mut results) = match built {
        Ok(h) => h,
        Err(e) => {
            eprintln!("brigade fetch: cannot start the pool: {e}");
            return exit::USAGE;
        }
    };
    let pool = jobs.pool();

    // The inputs are read on a plain thread (stdin may block for ever).
    let producer_crawl = crawl.clone();
    let skipped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let skipped_in = Arc::clone(&skipped);
    let producer = std::thread::Builder::new()
        .name("brigade-fetch-input".into())
        .spawn(move || {
            let result = read_inputs(sources, |line, bad| {
                if done.contains(&line) {
                    skipped_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return true;
                }
                let job = Job::input(line, bad);
                if let Some(c) = &producer_crawl {
                    c.seed(&job);
                }
                !interrupt::interrupted() && jobs.send_blocking(job).is_ok()
            });
            if let Err(e) = result {
                eprintln!("brigade fetch: {e}");
                return false;
            }
            true
        });
    if let Err(e) = producer {
        eprintln!("brigade fetch: cannot start the input reader: {e}");
        pool.cancel();
        return exit::USAGE;
    }

    // The first Ctrl-C: no new inputs, no new fetches; the running ones finish.
    let watched = pool.clone();
    tokio::spawn(async move {
        while !watched.is_finished() {
            if interrupt::interrupted() {
                watched.close();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let bar = run::progress_bar(&args.run, total, "URLs");
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut sum = Summary::default();
    let mut quiet_stop = false;
    let mut last_flush = Instant::now();
    while let Some(o) = results.next().await {
        let rec = match o.result {
            Ok(rec) => {
                sum.tally::<(), ()>(&Ok(()));
                rec
            }
            Err(Failure::Error(Halt::Failed(rec))) => {
                let rec = *rec;
                sum.tally::<(), ()>(&Err(Failure::Error(())));
                rec
            }
            Err(Failure::Error(Halt::Disallowed)) => continue,
            Err(Failure::Error(Halt::NotStarted)) | Err(Failure::Cancelled) => {
                sum.tally::<(), ()>(&Err(Failure::Cancelled));
                continue;
            }
            Err(other) => {
                let what = match &other {
                    Failure::Panicked(p) => format!("internal error: {p:?}"),
                    Failure::TimedOut => "timed out".to_string(),
                    _ => "internal error".to_string(),
                };
                sum.tally::<(), Halt>(&Err(other));
                Record {
                    input: o.job.input.clone(),
                    error: Some(what),
                    failed: true,
                    ..Record::default()
                }
            }
        };
        if let Some(b) = &bar {
            b.inc(1);
        }
        let wrote = write_record(&mut out, &rec, resume.is_some(), &mut last_flush);
        let wrote = match (wrote, &mut resume) {
            (Ok(()), Some(file)) => file
                .write_all(format!("{}\n", rec.input).as_bytes())
                .map_err(|e| io::Error::new(e.kind(), format!("--resume file: {e}"))),
            (r, _) => r,
        };
        if let Next::StopQuietly = run::on_write(wrote) {
            quiet_stop = true;
            pool.cancel();
            break;
        }
    }
    let _ = out.flush();
    drop(out);
    if let Some(b) = bar {
        b.finish_and_clear();
        interrupt::show_progress(None);
    }
    let _ = pool.wait().await;
    sum.finish(&pool.stats(), total, started, quiet_stop);
    let fs = FetchSummary {
        run: sum,
        resumed_skipped: skipped.load(std::sync::atomic::Ordering::Relaxed),
        crawl: crawl.map(|c| c.counts()),
    };
    print_summary(&args, &fs);
    fs.run.exit_code
}

fn write_record(
    out: &mut impl Write,
    rec: &Record,
    flush_now: bool,
    last_flush: &mut Instant,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, rec)?;
    out.write_all(b"\n")?;
    if flush_now || last_flush.elapsed() > Duration::from_millis(100) {
        out.flush()?;
        *last_flush = Instant::now();
    }
    Ok(())
}

fn print_summary(args: &Args, fs: &FetchSummary) {
    if args.run.json {
        println!(
            "{}",
            serde_json::to_string(fs).expect("a summary serialises")
        );
        return;
    }
    fs.run.print(&args.run);
    if args.run.quiet {
        return;
    }
    if fs.resumed_skipped > 0 {
        eprintln!(
            "         {} inputs skipped: already in the --resume file",
            fs.resumed_skipped
        );
    }
    if let Some(c) = &fs.crawl {
        eprintln!(
            "         crawl: {} links found, {} followed, {} seen before, {} out of scope, {} disallowed by robots.txt, {} past --max-pages, {} past --frontier",
            c.links_found, c.followed, c.duplicates, c.out_of_scope, c.disallowed, c.over_max_pages, c.frontier_overflow
        );
    }
}

/// Reads the --resume file (the inputs done) and opens it for appending.
fn open_resume(path: &std::path::Path) -> io::Result<(HashSet<String>, File)> {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        f.read_to_end(&mut text)?;
    }
    let done = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // A line cut short by kill -9 is left as it is, but the next one starts fresh.
    if text.last().is_some_and(|b| *b != b'\n') {
        file.write_all(b"\n")?;
    }
    Ok((done, file))
}

/// One input line: trimmed; None for a blank line; a line that is not UTF-8
/// is kept (lossily) with the reason it cannot be fetched.
fn input_line(raw: &[u8]) -> Option<(String, Option<String>)> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    match std::str::from_utf8(raw) {
        Ok(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| (s.to_string(), None))
        }
        Err(e) => {
            let shown = String::from_utf8_lossy(raw).trim().to_string();
            Some((shown, Some(format!("input is not valid UTF-8 ({e})"))))
        }
    }
}

/// Feeds every input line to `each` until it returns false.
fn read_inputs(
    sources: Vec<Source>,
    mut each: impl FnMut(String, Option<String>) -> bool,
) -> Result<(), String> {
    for s in sources {
        match s {
            Source::Args(urls) => {
                for u in urls {
                    if let Some((line, bad)) = input_line(u.as_bytes()) {
                        if !each(line, bad) {
                            return Ok(());
                        }
                    }
                }
            }
            Source::File(path) => {
                let f = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if !each_line(BufReader::new(f), &mut each)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                {
                    return Ok(());
                }
            }
            Source::Stdin => {
                if !each_line(io::stdin().lock(), &mut each).map_err(|e| format!("stdin: {e}"))? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn each_line(
    mut r: impl BufRead,
    each: &mut impl FnMut(String, Option<String>) -> bool,
) -> io::Result<bool> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(true);
        }
        let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Some((line, bad)) = input_line(raw) {
            if !each(line, bad) {
                return Ok(false);
            }
        }
    }
}

/// How many inputs there are, when that can be known without reading stdin.
fn count_inputs(sources: &[Source], done: &HashSet<String>) -> Result<Option<u64>, String> {
    let mut n = 0u64;
    for s in sources {
        match s {
            Source::Stdin => return Ok(None),
            Source::Args(urls) => {
                n += urls
                    .iter()
                    .filter_map(|u| input_line(u.as_bytes()))
                    .filter(|(l, _)| !done.contains(l))
                    .count() as u64;
            }
            Source::File(path) => {
                let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                each_line(BufReader::new(f), &mut |l, _| {
                    n += u64::from(!done.contains(&l));
                    true
                })
                .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    Ok(Some(n))
}
