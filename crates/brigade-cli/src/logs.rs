//! `brigade logs`: errors and warnings per log file over a tree (the seed's use case 5).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use brigade::{Builder, Context, Failure};
use flate2::read::MultiGzDecoder;
use memchr::{memchr, memchr_iter, memrchr};
use regex::bytes::Regex;
use serde::Serialize;

use crate::run::{self, exit, Next, RunArgs};

const DEFAULT_ERROR: &str = r"(?i-u:\b(?:error|err|fatal|critical)\b)";
const DEFAULT_WARNING: &str = r"(?i-u:\b(?:warn|warning)\b)";

/// Count error and warning lines per log file over a tree (.gz too)
///
/// Counts the lines at error level and at warning level in every log file
/// under the given paths, several files at a time, and prints a table sorted
/// by errors. Directories are walked recursively; `.gz` files are read
/// transparently; binary and unreadable files are reported and skipped.
///
/// By default a line is at error level if it holds ERROR, ERR, FATAL or
/// CRITICAL as a whole word, and at warning level if it holds WARN or
/// WARNING (any case); a line with both counts as an error. --pattern adds a
/// regular expression to a level.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    brigade logs /var/log\n  \
    brigade logs --top 10 app/logs old/*.gz\n  \
    brigade logs --pattern error='panicked at' --pattern warning='(?i)deprecated' .\n  \
    brigade logs --json logs/ | jq '.files[0]'")]
pub struct Args {
    /// Files and directories to scan
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
    #[command(flatten)]
    run: RunArgs,
}

/// What decides a line's level.
#[derive(Debug)]
struct Matcher {
    /// Any line at any level matches this.
    any: Regex,
    /// A matching line at error level matches this too.
    error: Regex,
    /// With the default words only: a fast, case-sensitive search over a
    /// lowercased copy that finds every line that could match (see `count`).
    candidates: Option<Regex>,
}

impl Matcher {
    fn new(args: &Args) -> Result<Matcher, String> {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        if !args.no_default_patterns {
            errors.push(DEFAULT_ERROR.to_string());
            warnings.push(DEFAULT_WARNING.to_string());
        }
        for p in &args.patterns {
            let Some((level, re)) = p.split_once('=') else {
                return Err(format!(
                    "bad --pattern '{p}': expected LEVEL=REGEX, e.g. error='out of memory'"
                ));
            };
            Regex::new(re).map_err(|e| format!("bad --pattern '{p}': {e}"))?;
            match level.to_ascii_lowercase().as_str() {
                "error" | "err" => errors.push(format!("(?:{re})")),
                "warning" | "warn" => warnings.push(format!("(?:{re})")),
                other => {
                    return Err(format!(
                        "bad --pattern '{p}': unknown level '{other}' (use error or warning)"
                    ))
                }
            }
        }
        if errors.is_empty() && warnings.is_empty() {
            return Err("--no-default-patterns needs at least one --pattern".into());
        }
        let never = r"[^\x00-\xff]"; // matches nothing
        let error_alt = if errors.is_empty() {
            never.to_string()
        } else {
            errors.join("|")
        };
        let all: Vec<String> = errors.iter().chain(&warnings).cloned().collect();
        let defaults_only = args.patterns.is_empty() && !args.no_default_patterns;
        Ok(Matcher {
            any: Regex::new(&all.join("|")).map_err(|e| e.to_string())?,
            error: Regex::new(&error_alt).map_err(|e| e.to_string())?,
            candidates: defaults_only
                .then(|| Regex::new("err|fatal|critical|warn").expect("a valid regex")),
        })
    }

    /// Counts (error lines, warning lines) in `buf`, each line at its highest
    /// level; `scratch` is a buffer to reuse between calls.
    fn count(&self, buf: &[u8], scratch: &mut Vec<u8>) -> (u64, u64) {
        match &self.candidates {
            Some(cand) => self.count_folded(cand, buf, scratch),
            None => self.count_lines(buf),
        }
    }

    /// The general path: `any` finds the leftmost match of any level; the line
    /// is an error if an error pattern matches it too. Then the search jumps to
    /// the next line, so each line is looked at once.
    fn count_lines(&self, buf: &[u8]) -> (u64, u64) {
        let (mut errors, mut warnings) = (0, 0);
        let mut at = 0;
        while at < buf.len() {
            let Some(m) = self.any.find_at(buf, at) else {
                break;
            };
            let end = memchr(b'\n', &buf[m.end()..]).map_or(buf.len(), |i| m.end() + i);
            let line = &buf[..end];
            if self.error.is_match(m.as_bytes()) || self.error.is_match_at(line, m.end()) {
                errors += 1;
            } else {
                warnings += 1;
            }
            at = end + 1;
        }
        (errors, warnings)
    }

    /// The fast path for the default words. A case-insensitive search for six
    /// words runs at well under 1 GB/s (too many case variants for the SIMD
    /// literal search); so lowercase a copy (cheap: one pass the compiler
    /// vectorises), find the lines holding `err`, `fatal`, `critical` or `warn`
    /// with a case-sensitive search (several GB/s), and only on those lines
    /// run the real, case-insensitive, whole-word patterns. The result is the
    /// same as `count_lines`; `tests::fast_path_agrees` checks it.
    fn count_folded(&self, cand: &Regex, buf: &[u8], folded: &mut Vec<u8>) -> (u64, u64) {
        folded.clear();
        folded.extend(
            buf.iter()
                .map(|&b| b | (u8::from(b.wrapping_sub(b'A') < 26) << 5)),
        );
        let (mut errors, mut warnings) = (0, 0);
        let mut at = 0;
        while at < buf.len() {
            let Some(m) = cand.find_at(folded, at) else {
                break;
            };
            let start = memrchr(b'\n', &buf[..m.start()]).map_or(0, |i| i + 1);
            let end = memchr(b'\n', &buf[m.end()..]).map_or(buf.len(), |i| m.end() + i);
            let line = &buf[start..end];
            if self.error.is_match(line) {
                errors += 1;
            } else if self.any.is_match(line) {
                warnings += 1;
            }
            at = end + 1;
        }
        (errors, warnings)
    }
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
    Binary,
}

struct Job {
    path: PathBuf,
    /// The walk could not read this directory entry.
    walk_error: Option<String>,
}

/// A worker's reusable buffers: the file's bytes, and scratch for the matcher.
type Buffers = (Vec<u8>, Vec<u8>);

fn scan(m: &Matcher, bufs: &mut Buffers, job: &Job) -> Result<Scan, String> {
    let (buf, scratch) = bufs;
    let path = &job.path;
    if let Some(e) = &job.walk_error {
        return Err(format!("{}: {e}", path.display()));
    }
    buf.clear();
    let read = File::open(path).and_then(|f| {
        if path.extension().is_some_and(|e| e == "gz") {
            MultiGzDecoder::new(f).read_to_end(buf)
        } else {
            let mut f = f;
            f.read_to_end(buf)
        }
    });
    if let Err(e) = read {
        return Err(format!("cannot read {}: {e}", path.display()));
    }
    if memchr(0, &buf[..buf.len().min(8192)]).is_some() {
        return Ok(Scan::Binary);
    }
    let (errors, warnings) = m.count(buf, scratch);
    let mut lines = memchr_iter(b'\n', buf).count() as u64;
    if buf.last().is_some_and(|&b| b != b'\n') {
        lines += 1;
    }
    Ok(Scan::Counted(FileCount {
        path: path.display().to_string(),
        errors,
        warnings,
        lines,
        bytes: buf.len() as u64,
    }))
}

/// Every file under `paths`, lazily; walk errors become jobs that fail with the path.
fn walk(paths: Vec<PathBuf>) -> impl Iterator<Item = Job> + Send {
    paths.into_iter().flat_map(|root| {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(e) if e.file_type().is_file() => Some(Job {
                    path: e.into_path(),
                    walk_error: None,
                }),
                Ok(_) => None,
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                    let why = e
                        .io_error()
                        .map_or_else(|| e.to_string(), |io| io.to_string());
                    Some(Job {
                        path,
                        walk_error: Some(why),
                    })
                }
            })
    })
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
    let matcher = match Matcher::new(&args) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("brigade logs: {e}");
            return exit::USAGE;
        }
    };
    let mut bad_input = false;
    let mut roots = Vec::new();
    for p in &args.paths {
        match std::fs::symlink_metadata(p) {
            Ok(_) => roots.push(p.clone()),
            Err(e) => {
                eprintln!("brigade logs: {}: {e}", p.display());
                bad_input = true;
            }
        }
    }
    let m = matcher.clone();
    let results = args
        .run
        .apply(Builder::new(), run::cores())
        .state(|_| Ok::<_, io::Error>((Vec::with_capacity(1 << 20), Vec::new())))
        .run(
            walk(roots),
            move |bufs: &mut Buffers, job: &Job, _ctx: &Context<Job>| scan(&m, bufs, job),
        );

    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut unreadable = Vec::new();
    let json = args.run.json;
    let summary = run::drive(&args.run, results, None, started, |o| {
        match &o.result {
            Ok(Scan::Counted(c)) => files.push(c.clone()),
            Ok(Scan::Binary) => {
                if !json {
                    eprintln!(
                        "brigade logs: {}: binary file, skipped",
                        o.job.path.display()
                    );
                }
                skipped.push(Skipped {
                    path: o.job.path.display().to_string(),
                    reason: "binary".into(),
                });
            }
            Err(Failure::Error(e)) => {
                if !json {
                    eprintln!("brigade logs: {e}");
                }
                unreadable.push(Skipped {
                    path: o.job.path.display().to_string(),
                    reason: e.clone(),
                });
            }
            Err(Failure::Cancelled) => {}
            Err(other) => {
                let why = format!("{}: {other}", o.job.path.display());
                if !json {
                    eprintln!("brigade logs: {why}");
                }
                unreadable.push(Skipped {
                    path: o.job.path.display().to_string(),
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
        print_table(shown, &totals, files.len(), skipped.len(), unreadable.len())
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
    skipped: usize,
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
    if skipped > 0 {
        note.push_str(&format!(", {skipped} binary skipped"));
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

    fn matcher(patterns: &[&str], no_defaults: bool) -> Result<Matcher, String> {
        Matcher::new(&Args {
            paths: vec![],
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            no_default_patterns: no_defaults,
            top: None,
            run: <Wrap as clap::Parser>::parse_from(["x"]).run,
        })
    }

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn counts_each_line_once_at_its_highest_level() {
        let m = matcher(&[], false).unwrap();
        let text = b"ok\nERROR one\nwarn two\nWarning: and Error: both\nterror is not error-free\nerrors\nfatal\n[WARN] x\nok";
        // ERROR one, the both-line, "error-free" (a whole word before '-'), fatal -> 4 errors;
        // warn two, [WARN] x -> 2 warnings; "terror" and "errors" are not whole words.
        assert_eq!(m.count(text, &mut Vec::new()), (4, 2));
        assert_eq!(m.count_lines(text), (4, 2));
    }

    #[test]
    fn custom_patterns_add_or_replace() {
        let m = matcher(&["error=panicked at", "warning=(?i)deprecated"], false).unwrap();
        assert_eq!(
            m.count(
                b"thread panicked at x\nDEPRECATED api\nERROR\n",
                &mut Vec::new()
            ),
            (2, 1)
        );
        let only = matcher(&["warning=slow"], true).unwrap();
        assert_eq!(only.count(b"ERROR slow\nslow\n", &mut Vec::new()), (0, 2));
        assert!(matcher(&["error=("], false)
            .unwrap_err()
            .contains("bad --pattern 'error=('"));
        assert!(matcher(&["info=x"], false)
            .unwrap_err()
            .contains("unknown level 'info'"));
        assert!(matcher(&[], true).is_err());
    }

    #[test]
    fn fast_path_agrees() {
        let m = matcher(&[], false).unwrap();
        assert!(m.candidates.is_some());
        let mut text = Vec::new();
        let words = [
            "error",
            "Err",
            "ERRORS",
            "terror",
            "fatal",
            "FaTaL",
            "critical",
            "crit",
            "warn",
            "Warning",
            "warned",
            "swarn",
            "ok",
            "x",
            "err-1",
            "WARN:",
            "[CRITICAL]",
            "fatalistic",
            "\n",
            "\n",
            "\n",
        ];
        let mut seed = 7u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.extend_from_slice(words[(seed >> 33) as usize % words.len()].as_bytes());
            text.push(if seed & 1 == 0 { b' ' } else { b'\n' });
        }
        assert_eq!(m.count(&text, &mut Vec::new()), m.count_lines(&text));
    }
}
