//! `brigade logs`: errors and warnings per log file over a tree (the seed's use case 5).
//!
//! Each file is read in chunks of whole lines (`chunks.rs`), so memory stays
//! the same whatever the file's size; `matcher.rs` counts a chunk's lines per
//! level; `input.rs` finds the files and opens them.

mod chunks;
mod input;
mod matcher;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use brigade::{Builder, Context, Failure};
use regex::bytes::Regex;
use serde::Serialize;

use crate::run::{self, exit, Next, RunArgs};
use chunks::Stop;
use input::{GlobArg, Job, What};
use matcher::{Levels, Matcher};

/// Count error and warning lines per log file over a tree (.gz, .bz2, .xz, .zst too)
///
/// Counts the lines at error level and at warning level in every log file
/// under the given paths, several files at a time, and prints a table sorted
/// by errors. Folders are walked recursively; `-` reads standard input;
/// `.gz`, `.bz2`, `.xz` and `.zst` files are decompressed as they are read;
/// binary and unreadable files are reported and skipped. Symlinks named on
/// the command line are followed; inside folders they are reported and
/// skipped unless --follow is given.
///
/// By default a line is at error level if it holds ERROR, ERR, FATAL or
/// CRITICAL as a whole word, and at warning level if it holds WARN or
/// WARNING (any case); a line with both counts as an error. --pattern adds a
/// regular expression to a level; it is matched against each line alone, so
/// `^` and `$` are the line's start and end (as in rg).
///
/// Memory: each worker reads its file in 256 KiB chunks, whatever the file's
/// size (a line longer than 4 MiB is an error), so the peak RSS stays under
/// 64 MiB with the default workers and with -j 8.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    brigade logs /var/log\n  \
    brigade logs --top 10 app/logs old/*.gz\n  \
    brigade logs -g '*.log' -g '*.log.*' -g '!archive/' /var/log\n  \
    journalctl -b | brigade logs -\n  \
    brigade logs --pattern error='panicked at' --pattern warning='(?i)deprecated' .\n  \
    brigade logs --pattern error='^E' --no-default-patterns app.log\n  \
    brigade logs --json logs/ | jq '.files[0]'")]
pub struct Args {
    /// Files and folders to scan; - is standard input
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Add a pattern to a level: error=REGEX or warning=REGEX (repeatable)
    #[arg(long = "pattern", value_name = "LEVEL=REGEX")]
    patterns: Vec<String>,
    /// Use only the --pattern expressions, not the default level words
    #[arg(long)]
    no_default_patterns: bool,
    /// Show only the N files with the most errors (the totals still count all)
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Search only files that match GLOB inside folders; !GLOB leaves them out
    /// (repeatable; rg's syntax: the last glob that matches wins; a glob with
    /// a / matches from the folder named, a trailing / matches folders)
    #[arg(short = 'g', long = "glob", value_name = "GLOB", value_parser = input::parse_glob)]
    globs: Vec<GlobArg>,
    /// As --glob, ignoring case
    #[arg(long = "iglob", value_name = "GLOB", value_parser = input::parse_iglob)]
    iglobs: Vec<GlobArg>,
    /// Follow symlinks inside folders too (those named are always followed)
    #[arg(short = 'L', long)]
    follow: bool,
    #[command(flatten)]
    run: RunArgs,
}

/// The matcher for `args`, or the error naming the bad --pattern.
fn matcher(args: &Args) -> Result<Matcher, String> {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for p in &args.patterns {
        let Some((level, re)) = p.split_once('=') else {
            return Err(format!(
                "bad --pattern '{p}': expected LEVEL=REGEX, e.g. error='out of memory'"
            ));
        };
        Regex::new(re).map_err(|e| format!("bad --pattern '{p}': {e}"))?;
        match level.to_ascii_lowercase().as_str() {
            "error" | "err" => errors.push(re.to_string()),
            "warning" | "warn" => warnings.push(re.to_string()),
            other => {
                return Err(format!(
                    "bad --pattern '{p}': unknown level '{other}' (use error or warning)"
                ))
            }
        }
    }
    Matcher::new(!args.no_default_patterns, &errors, &warnings)
}

/// One file's counts; field names are the stable `--json` output.
#[derive(Serialize, Debug, Clone)]
struct FileCount {
    path: String,
    errors: u64,
    warnings: u64,
    lines: u64,
    bytes: u64,
}

enum Scan {
    Counted(FileCount),
    Skipped(&'static str),
}

/// A worker's reusable buffers: the chunk, and scratch for the matcher.
type Buffers = (Vec<u8>, Vec<u8>);

fn scan(m: &Matcher, bufs: &mut Buffers, job: &Job, ctx: &Context<Job>) -> Result<Scan, String> {
    let (buf, scratch) = bufs;
    let name = job.name();
    match &job.what {
        What::WalkError(e) => return Err(format!("{name}: {e}")),
        What::Skip(why) => return Ok(Scan::Skipped(why)),
        What::File | What::Stdin => {}
    }
    let mut r = input::open(job).map_err(|e| format!("cannot read {name}: {e}"))?;
    let mut n = Levels::default();
    let read = chunks::for_each_chunk(&mut r, buf, |chunk| {
        let c = m.count(chunk, scratch);
        n.errors += c.errors;
        n.warnings += c.warnings;
        // Stop at Ctrl-C twice or at the --timeout, between chunks.
        !ctx.is_cancelled() && ctx.deadline().is_none_or(|d| Instant::now() < d)
    });
    match read {
        Ok(t) => Ok(Scan::Counted(FileCount {
            path: name,
            errors: n.errors,
            warnings: n.warnings,
            lines: t.lines,
            bytes: t.bytes,
        })),
        Err(Stop::Binary) => Ok(Scan::Skipped("binary file")),
        Err(Stop::LongLine(line)) => Err(format!(
            "{name}: line {line} is longer than {} MiB, the most one worker holds; not counted",
            chunks::MAX_LINE >> 20
        )),
        Err(Stop::Stopped) => Err(format!("{name}: stopped before its end")),
        Err(Stop::Io(e)) => Err(format!("cannot read {name}: {e}")),
    }
}

#[derive(Serialize, Default)]
struct Totals {
    files: u64,
    errors: u64,
    warnings: u64,
    lines: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Skipped {
    path: String,
    reason: String,
}

#[derive(Serialize)]
struct Report<'a> {
    files: &'a [FileCount],
    totals: &'a Totals,
    skipped: &'a [Skipped],
    unreadable: &'a [Skipped],
    summary: &'a run::Summary,
}

pub fn main(args: Args) -> i32 {
    let started = Instant::now();
    let globs: Vec<&GlobArg> = args.globs.iter().chain(&args.iglobs).collect();
    let (matcher, filter) = match matcher(&args).and_then(|m| Ok((m, input::Filter::new(&globs)?)))
    {
        Ok((m, f)) => (Arc::new(m), f),
        Err(e) => {
            eprintln!("brigade logs: {e}");
            return exit::USAGE;
        }
    };
    if args.paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        eprintln!("brigade logs: - (standard input) is named more than once");
        return exit::USAGE;
    }
    let mut bad_input = false;
    let mut roots = Vec::new();
    for p in &args.paths {
        // (metadata follows a symlink: a broken one named is bad input.)
        match std::fs::metadata(p) {
            Err(e) if p.as_os_str() != "-" => {
                eprintln!("brigade logs: {}: {e}", p.display());
                bad_input = true;
            }
            _ => roots.push(p.clone()),
        }
    }
    let m = matcher.clone();
    let scratch = matcher.clone();
    let results = args
        .run
        .apply(Builder::new(), run::cores())
        .state(move |_| Ok::<_, io::Error>((Vec::new(), scratch.scratch(chunks::CHUNK))))
        .run(
            input::walk(roots, filter, args.follow),
            move |bufs: &mut Buffers, job: &Job, ctx: &Context<Job>| scan(&m, bufs, job, ctx),
        );

    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut unreadable = Vec::new();
    let json = args.run.json;
    let summary = run::drive(&args.run, results, None, started, |o| {
        match &o.result {
            Ok(Scan::Counted(c)) => files.push(c.clone()),
            Ok(Scan::Skipped(why)) => {
                if !json {
                    eprintln!("brigade logs: {}: {why}, skipped", o.job.name());
                }
                skipped.push(Skipped {
                    path: o.job.name(),
                    // "binary", as before, for the binary case.
                    reason: why.trim_end_matches(" file").into(),
                });
            }
            Err(Failure::Error(e)) => {
                if !json {
                    eprintln!("brigade logs: {e}");
                }
                unreadable.push(Skipped {
                    path: o.job.name(),
                    reason: e.clone(),
                });
            }
            Err(Failure::Cancelled) => {}
            Err(other) => {
                let why = format!("{}: {other}", o.job.name());
                if !json {
                    eprintln!("brigade logs: {why}");
                }
                unreadable.push(Skipped {
                    path: o.job.name(),
                    reason: why,
                });
            }
        }
        Next::Continue
    });
    files.sort_by(|a, b| {
        b.errors
            .cmp(&a.errors)
            .then(b.warnings.cmp(&a.warnings))
            .then(a.path.cmp(&b.path))
    });
    let mut totals = Totals::default();
    for f in &files {
        totals.files += 1;
        totals.errors += f.errors;
        totals.warnings += f.warnings;
        totals.lines += f.lines;
        totals.bytes += f.bytes;
    }
    let shown = &files[..args.top.unwrap_or(files.len()).min(files.len())];
    let mut summary = summary;
    if bad_input && !summary.interrupted {
        summary.exit_code = exit::USAGE;
    }
    let written = if json {
        let report = Report {
            files: shown,
            totals: &totals,
            skipped: &skipped,
            unreadable: &unreadable,
            summary: &summary,
        };
        writeln!(
            io::stdout(),
            "{}",
            serde_json::to_string(&report).expect("a report serialises")
        )
    } else {
        let binary = skipped.iter().filter(|s| s.reason == "binary").count();
        print_table(
            shown,
            &totals,
            files.len(),
            (binary, skipped.len() - binary),
            unreadable.len(),
        )
    };
    if let Next::StopQuietly = run::on_write(written) {
        return summary.exit_code;
    }
    if !json {
        summary.print(&args.run);
    }
    summary.exit_code
}

fn print_table(
    shown: &[FileCount],
    totals: &Totals,
    all: usize,
    (binary, other): (usize, usize),
    unreadable: usize,
) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    writeln!(
        out,
        "{:>10}  {:>10}  {:>12}  FILE",
        "ERRORS", "WARNINGS", "LINES"
    )?;
    for f in shown {
        writeln!(
            out,
            "{:>10}  {:>10}  {:>12}  {}",
            f.errors, f.warnings, f.lines, f.path
        )?;
    }
    if shown.len() < all {
        writeln!(
            out,
            "{:>10}  {:>10}  {:>12}  ... {} more files",
            "",
            "",
            "",
            all - shown.len()
        )?;
    }
    let mut note = format!("total: {all} files");
    if binary > 0 {
        note.push_str(&format!(", {binary} binary skipped"));
    }
    if other > 0 {
        note.push_str(&format!(", {other} other skipped (see above)"));
    }
    if unreadable > 0 {
        note.push_str(&format!(", {unreadable} unreadable"));
    }
    writeln!(
        out,
        "{:>10}  {:>10}  {:>12}  {note}",
        totals.errors, totals.warnings, totals.lines
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_options_are_consistent_and_globs_keep_their_order() {
        Wrap::command().debug_assert();
        let w = Wrap::parse_from(["logs", "--iglob", "*.LOG", "-g", "!a.log", "."]);
        let globs: Vec<&GlobArg> = w.args.globs.iter().chain(&w.args.iglobs).collect();
        let f = input::Filter::new(&globs).unwrap();
        // The later glob (-g '!a.log') wins over the earlier --iglob.
        assert!(!f.allows(std::path::Path::new("a.log"), false));
        assert!(f.allows(std::path::Path::new("b.log"), false));
    }
}
