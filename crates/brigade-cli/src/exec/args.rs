//! The options of `brigade exec`, parsed by clap, then checked once into a `Config`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::run::{self, RunArgs};
use crate::units::{parse_duration, parse_rate};

/// Run a command once per input, in parallel: a drop-in for the GNU parallel
/// command lines people type, and for `xargs -P`.
///
/// Inputs come from the arguments after `:::` (several groups: every
/// combination), from files (`::::` FILE or -a FILE, each line an input), or
/// from stdin, one per line. In the command, replacement strings stand for the
/// input (as in GNU parallel):
///
///   {}    the input                 {/}   its last path component
///   {.}   without its extension     {//}  its directory
///   {/.}  basename, no extension    {#}   the job number (1, 2, ...)
///   {%}   the job slot (1..=-j)     {1} {2} ...  the 1st, 2nd input source
///   {1.} {2/} {1//} {2/.}  ...      the same forms, for one input source
///   {NAME}  a column named by --header
///
/// With no replacement string, the inputs are appended to the command. The
/// command line is the words joined by spaces, as GNU parallel builds it; the
/// inputs are shell-quoted. When that line has shell syntax (; | & $ > < ` '
/// " \ * ? [ ~ ( ) { } #, or a shell builtin like echo or cd first) it runs
/// through `sh -c`; otherwise it is split on spaces and run directly, which
/// is the same thing, only faster. --quote (-q) quotes the command's words so
/// that no shell ever sees them.
///
/// Output: each job's stdout and stderr are printed as one block when it
/// ends, never mixed with another job's lines. Output is spooled to a
/// temporary file, so memory stays bounded whatever the jobs print. A job has
/// ended when its process exits, even if something it left in the background
/// still holds its output open.
///
/// Where brigade differs from GNU parallel, on purpose:
///
///   exit code     0 all jobs succeeded, 1 some failed, 2 bad usage, 130
///                 interrupted (parallel exits with the number of failed jobs)
///   --retries N   N attempts in all, as in parallel (1 = no retry); retries
///                 wait a short exponential backoff
///   --quiet       has no short form: -q is parallel's --quote
///   summary       a summary on stderr at the end (--quiet: none; --json: one
///                 JSON line on stderr, or in --json-file FILE)
///   --fail-fast   short for --halt soon,fail=1
///   --rate N/s    start at most N jobs a second (parallel has no such option)
///   the shell     always sh (parallel uses $PARALLEL_SHELL or $SHELL); set
///                 PARALLEL_SHELL=/bin/sh to compare the two
///   -j 0          256 workers at most
///   --shell       forces `sh -c` even for a line without shell syntax
///   -k            orders grouped output only: not with -u / --line-buffer
///   --line-buffer a job ends when its output closes, not when it exits
///   --results     as parallel 20221122: saves, and prints nothing
///   not supported {= perl =}, --tagstring, -S/--sshlogin, --sql*, --fifo,
///                 --cat, --semaphore, --onall, --transfer
///   --timeout N%  N% of the true median run time of the jobs that succeeded
///                 (parallel's is approximate); no limit until one succeeded
///                 (each is a usage error, never silently ignored)
#[derive(clap::Args, Debug)]
#[command(
    verbatim_doc_comment,
    after_help = "Examples:\n  \
    brigade exec gzip -9 ::: *.log\n  \
    find . -name '*.png' -print0 | brigade exec -0 -j 8 convert {} {.}.jpg\n  \
    brigade exec -k --timeout 10s --retries 3 -a urls.txt curl -sf {}\n  \
    brigade exec 'grep -c ERROR {} > {.}.count' ::: *.log\n  \
    brigade exec -k echo {1}-{2} ::: a b ::: 1 2          (a-1 a-2 b-1 b-2)\n  \
    brigade exec -k echo {1}={2} ::: a b :::+ 1 2         (a=1 b=2)\n  \
    brigade exec --colsep , --header : echo {name} :::: people.csv\n  \
    seq 1000 | brigade exec --pipe -N 100 wc -l\n  \
    brigade exec --joblog jobs.tsv --resume-failed ./build.sh ::: a b c\n  \
    brigade exec --dry-run echo {#} {/} ::: a/b.txt c/d.txt"
)]
pub struct Args {
    /// Read inputs from FILE, one per line ('-' is stdin); given twice, every combination
    #[arg(
        short = 'a',
        long = "arg-file",
        value_name = "FILE",
        help_heading = "Inputs"
    )]
    pub arg_file: Vec<PathBuf>,
    /// Inputs are separated by NUL bytes, not newlines (find -print0)
    #[arg(short = '0', long = "null", help_heading = "Inputs")]
    pub null: bool,
    /// Inputs are separated by DELIM (one character; \n, \t, \0 accepted)
    #[arg(
        short = 'd',
        long = "delimiter",
        value_name = "DELIM",
        help_heading = "Inputs"
    )]
    pub delimiter: Option<String>,
    /// Split each input into columns at REGEX; {1} {2} ... are the columns
    #[arg(long, value_name = "REGEX", help_heading = "Inputs")]
    pub colsep: Option<String>,
    /// Skip inputs that are empty or only whitespace
    #[arg(short = 'r', long = "no-run-if-empty", help_heading = "Inputs")]
    pub no_run_if_empty: bool,
    /// The first input of each source names it: {NAME} (only ':' is accepted)
    #[arg(long, value_name = ":", help_heading = "Inputs")]
    pub header: Option<String>,

    /// At most N inputs per job (appended, or all of them in {})
    #[arg(
        short = 'n',
        long = "max-args",
        value_name = "N",
        help_heading = "Inputs per job"
    )]
    pub max_args: Option<usize>,
    /// N inputs per job, as {1} .. {N}; -N 0 runs the command once per input, with none
    #[arg(
        short = 'N',
        long = "max-replace-args",
        value_name = "N",
        help_heading = "Inputs per job"
    )]
    pub max_replace_args: Option<usize>,
    /// As many inputs per job as fit, each in a copy of the word holding {}
    #[arg(short = 'X', help_heading = "Inputs per job")]
    pub context_replace: bool,
    /// As many inputs per job as fit, all of them in {}
    #[arg(short = 'm', help_heading = "Inputs per job")]
    pub multiple: bool,
    /// Split stdin into blocks for the jobs' stdin (--block SIZE, or -N records each)
    #[arg(long, help_heading = "Inputs per job")]
    pub pipe: bool,
    /// With --pipe: the block size, e.g. 1M, 64K (1024s) or 1m, 64k (1000s), cut at a line end [default: 1M]
    #[arg(long, value_name = "SIZE", help_heading = "Inputs per job")]
    pub block: Option<String>,

    /// Quote the command's words, so that no shell interprets them (parallel's -q)
    #[arg(short = 'q', long, help_heading = "The command")]
    pub quote: bool,
    /// Always run the command line through `sh -c`
    #[arg(long, help_heading = "The command")]
    pub shell: bool,

    /// Jobs at once: N, N% of the cores, +N or -N cores, 0 = as many as possible
    #[arg(
        short = 'j',
        long = "jobs",
        visible_alias = "workers",
        value_name = "N",
        value_parser = parse_jobs,
        help_heading = "The job set"
    )]
    pub jobs: Option<Jobs>,
    /// Wait DURATION between job starts, e.g. 0.5, 100ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "The job set")]
    pub delay: Option<Duration>,
    /// When to stop: now|soon,fail=N|success=N|done=N (N or N%), e.g. soon,fail=1
    #[arg(long, value_name = "WHEN,WHAT=N", value_parser = parse_halt, help_heading = "The job set")]
    pub halt: Option<Halt>,
    /// Short for --halt soon,fail=1
    #[arg(long, help_heading = "The job set")]
    pub fail_fast: bool,
    /// Time limit per job, e.g. 500ms, 30s, 2m, or 300% of the median run time
    /// of the jobs that succeeded so far; then the --termseq signals
    #[arg(long, value_name = "DURATION|N%", value_parser = parse_timeout, help_heading = "The job set")]
    pub timeout: Option<Timeout>,
    /// Signals for a job past its --timeout: SIG,MS,SIG,MS,... [default: TERM,200,TERM,100,TERM,50,KILL,25]
    #[arg(long, value_name = "SEQ", value_parser = parse_termseq, help_heading = "The job set")]
    pub termseq: Option<TermSeq>,
    /// Attempts per job in all, as in GNU parallel (1 = no retry)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        help_heading = "The job set"
    )]
    pub retries: u32,
    /// Start at most this many jobs per second, e.g. 10/s, 600/m
    #[arg(long, value_name = "N/s", value_parser = parse_rate, help_heading = "The job set")]
    pub rate: Option<f64>,
    /// Jobs waiting in the queue before the input is held back
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        help_heading = "The job set"
    )]
    pub queue: usize,

    /// Print outputs in input order, not completion order
    #[arg(short = 'k', long, help_heading = "Output")]
    pub keep_order: bool,
    /// Prefix each output line with the job's inputs and a tab
    #[arg(long, help_heading = "Output")]
    pub tag: bool,
    /// Print whole lines as they come, not each job's output at its end
    #[arg(long, visible_alias = "lb", help_heading = "Output")]
    pub line_buffer: bool,
    /// Let the jobs write straight to stdout and stderr: fastest, lines may mix
    #[arg(short = 'u', long, help_heading = "Output")]
    pub ungroup: bool,
    /// Save each job's stdout, stderr and number in DIR/1/INPUT/... instead of printing them
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub results: Option<PathBuf>,
    /// Where to spool the jobs' output [default: $TMPDIR or /tmp]
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub tmpdir: Option<PathBuf>,

    /// Write a row per job to FILE as it ends, in GNU parallel's format
    #[arg(long, value_name = "FILE", help_heading = "Job log and resuming")]
    pub joblog: Option<PathBuf>,
    /// Skip the jobs the --joblog already lists; append to it
    #[arg(long, help_heading = "Job log and resuming")]
    pub resume: bool,
    /// Skip the jobs the --joblog lists as succeeded; run the failed ones again
    #[arg(long, help_heading = "Job log and resuming")]
    pub resume_failed: bool,
    /// Print the command lines that would run, and run none
    #[arg(long, help_heading = "Job log and resuming")]
    pub dry_run: bool,

    /// No progress bar and no summary
    #[arg(long, help_heading = "Reporting")]
    pub quiet: bool,
    /// The summary as one JSON line on stderr (never mixed with the jobs' stdout)
    #[arg(long, help_heading = "Reporting")]
    pub json: bool,
    /// Write the JSON summary to FILE instead
    #[arg(long, value_name = "FILE", help_heading = "Reporting")]
    pub json_file: Option<PathBuf>,
    /// Accepted and ignored, so that GNU parallel command lines run unchanged
    #[arg(long, hide = true)]
    pub will_cite: bool,

    /// The command and its arguments, then the input sources (::: ARGS, :::+ ARGS, :::: FILES)
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// How many jobs at once, as -j gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jobs {
    /// Exactly N.
    Exactly(usize),
    /// A percentage of the cores.
    PercentOfCores(f64),
    /// The cores plus (or minus) N.
    CoresPlus(i64),
    /// As many as possible (-j 0).
    AsManyAsPossible,
}

/// The most workers -j 0 starts.
pub const MAX_WORKERS: usize = 256;

impl Jobs {
    /// The number of workers for `cores` cores, and `total` jobs when known.
    pub fn workers(self, cores: usize, total: Option<u64>) -> usize {
        let n = match self {
            Jobs::Exactly(n) => n,
            Jobs::PercentOfCores(p) => (cores as f64 * p / 100.0).floor() as usize,
            Jobs::CoresPlus(d) => (cores as i64).saturating_add(d).max(1) as usize,
            Jobs::AsManyAsPossible => {
                total.map_or(MAX_WORKERS, |t| t.min(MAX_WORKERS as u64) as usize)
            }
        };
        n.max(1)
    }
}

fn parse_jobs(text: &str) -> Result<Jobs, String> {
    let t = text.trim();
    let bad = || format!("'{text}' is not a number of jobs (try 4, 50%, +2, -1 or 0)");
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p.parse().map_err(|_| bad())?;
        if !(v.is_finite() && v > 0.0) {
            return Err(format!(
                "'{text}': a percentage of the cores must be positive"
            ));
        }
        return Ok(Jobs::PercentOfCores(v));
    }
    if t.starts_with('+') || t.starts_with('-') {
        return t.parse::<i64>().map(Jobs::CoresPlus).map_err(|_| bad());
    }
    match t.parse::<usize>() {
        Ok(0) => Ok(Jobs::AsManyAsPossible),
        Ok(n) => Ok(Jobs::Exactly(n)),
        Err(_) => Err(bad()),
    }
}

/// A job's time limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timeout {
    /// A fixed duration.
    After(Duration),
    /// This many times the median run time of the jobs that succeeded so
    /// far (`--timeout 300%` is 3.0); no limit until one has succeeded.
    OfMedian(f64),
}

fn parse_timeout(text: &str) -> Result<Timeout, String> {
    if let Some(pct) = text.trim().strip_suffix('%') {
        return match pct.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && p > 0.0 => Ok(Timeout::OfMedian(p / 100.0)),
            _ => Err(format!(
                "'{text}': a relative timeout is a positive percentage of the median run time, e.g. 300%"
            )),
        };
    }
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("'{text}': a timeout must be longer than zero"));
    }
    Ok(Timeout::After(d))
}

/// When --halt stops the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Halt {
    /// Kill the running jobs (now), or let them finish (soon).
    pub now: bool,
    /// What is counted.
    pub on: HaltOn,
    /// How many: a count, or a percentage of all jobs.
    pub threshold: Threshold,
}

/// The jobs --halt counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HaltOn {
    /// Failed jobs.
    Fail,
    /// Succeeded jobs.
    Success,
    /// Every finished job.
    Done,
}

/// A count, or a percentage of the jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// This many jobs.
    Count(u64),
    /// This share of all jobs, in percent.
    Percent(f64),
}

impl Halt {
    /// Whether `counted` jobs of `done` finished (of `total`, when known) trigger the halt.
    pub fn reached(&self, counted: u64, done: u64, total: Option<u64>) -> bool {
        match self.threshold {
            Threshold::Count(n) => counted >= n,
            Threshold::Percent(p) => {
                // Like parallel: a percentage of all jobs, and at least 3 jobs done
                // when the total is unknown (a percentage of the jobs done so far).
                let base = total.unwrap_or(done.max(3));
                base > 0 && counted as f64 * 100.0 >= p * base as f64 && done > 0
            }
        }
    }
}

fn parse_halt(text: &str) -> Result<Halt, String> {
    let bad = || {
        format!(
            "'{text}' is not a --halt (try now,fail=1, soon,fail=10%, now,success=1, soon,done=5)"
        )
    };
    let t = text.trim();
    // parallel's numeric shorthands: 1 = soon,fail=1; 2 = now,fail=1.
    match t {
        "0" | "never" => {
            return Err(format!(
                "'{text}': --halt never is the default; leave it out"
            ))
        }
        "1" => return parse_halt("soon,fail=1"),
        "2" => return parse_halt("now,fail=1"),
        _ => {}
    }
    let (when, what) = t.split_once(',').ok_or_else(bad)?;
    let now = match when {
        "now" => true,
        "soon" => false,
        _ => return Err(bad()),
    };
    let (on, n) = what.split_once('=').ok_or_else(bad)?;
    let on = match on {
        "fail" => HaltOn::Fail,
        "success" => HaltOn::Success,
        "done" => HaltOn::Done,
        _ => return Err(bad()),
    };
    let threshold = match n.strip_suffix('%') {
        Some(p) => {
            let v: f64 = p.parse().map_err(|_| bad())?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("'{text}': the percentage must be in 0-100"));
            }
            Threshold::Percent(v)
        }
        None => match n.parse::<u64>() {
            Ok(0) | Err(_) => return Err(bad()),
            Ok(c) => Threshold::Count(c),
        },
    };
    Ok(Halt { now, on, threshold })
}

/// The signals sent to a job past its deadline, each followed by a wait.
#[derive(Debug, Clone, PartialEq)]
pub struct TermSeq(pub Vec<(Signal, Duration)>);

impl Default for TermSeq {
    fn default() -> Self {
        parse_termseq("TERM,200,TERM,100,TERM,50,KILL,25").expect("a valid default")
    }
}

fn parse_termseq(text: &str) -> Result<TermSeq, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() % 2 != 0 || parts.is_empty() {
        return Err(format!(
            "'{text}' is not a --termseq: give pairs SIGNAL,MILLISECONDS, e.g. TERM,1000,KILL,25"
        ));
    }
    let mut seq = Vec::new();
    for pair in parts.chunks(2) {
        let name = pair[0].trim_start_matches("SIG").to_ascii_uppercase();
        let sig: Signal = format!("SIG{name}")
            .parse()
            .map_err(|_| format!("'{text}': unknown signal '{}'", pair[0]))?;
        let ms: u64 = pair[1]
            .parse()
            .map_err(|_| format!("'{text}': '{}' is not a number of milliseconds", pair[1]))?;
        seq.push((sig, Duration::from_millis(ms)));
    }
    Ok(TermSeq(seq))
}

/// How each job's output reaches the terminal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputMode {
    /// Spooled, printed as one block when the job ends (the default).
    Group,
    /// Whole lines as they come.
    LineBuffer,
    /// Straight through.
    Ungroup,
}

/// The separator between inputs.
pub fn separator(args: &Args) -> Result<u8, String> {
    if args.null {
        if args.delimiter.is_some() {
            return Err("give -0 or -d, not both".into());
        }
        return Ok(0);
    }
    let Some(d) = &args.delimiter else {
        return Ok(b'\n');
    };
    match d.as_str() {
        "\\n" => Ok(b'\n'),
        "\\t" => Ok(b'\t'),
        "\\0" => Ok(0),
        "\\r" => Ok(b'\r'),
        "\\\\" => Ok(b'\\'),
        s if s.len() == 1 => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "-d '{d}': the delimiter must be one byte (or \\n, \\t, \\0)"
        )),
    }
}

/// Parses a size like 1M, 64k, 100 (bytes).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 1M, 64k or 500)"))?;
    // As in parallel: K, M, G count in 1024s, k, m, g in 1000s.
    let mult = match unit.trim() {
        "" | "b" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        u => {
            return Err(format!(
                "'{text}': unknown size unit '{u}' (use K, M, G for 1024s, k, m, g for 1000s)"
            ))
        }
    };
    let n = (v * mult) as usize;
    if n == 0 {
        return Err(format!("'{text}': a block must hold at least one byte"));
    }
    Ok(n)
}

impl Args {
    /// The output mode the options ask for.
    pub fn output_mode(&self) -> Result<OutputMode, String> {
        match (self.ungroup, self.line_buffer) {
            (true, true) => Err("give -u or --line-buffer, not both".into()),
            (true, false) => Ok(OutputMode::Ungroup),
            (false, true) => Ok(OutputMode::LineBuffer),
            _ => Ok(OutputMode::Group),
        }
    }

    /// The halt rule, --fail-fast included.
    pub fn halt(&self) -> Result<Option<Halt>, String> {
        match (self.fail_fast, self.halt) {
            (true, Some(_)) => Err("give --fail-fast or --halt, not both".into()),
            (true, None) => Ok(Some(Halt {
                now: false,
                on: HaltOn::Fail,
                threshold: Threshold::Count(1),
            })),
            (false, h) => Ok(h),
        }
    }

    /// Checks the combinations clap cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.retries == 0 {
            return Err("--retries 0: give the number of attempts in all, at least 1".into());
        }
        if self.queue == 0 {
            return Err("--queue 0: the queue needs room for at least one job".into());
        }
        if self.header.as_deref().is_some_and(|h| h != ":") {
            return Err(
                "--header: only ':' (the first input of each source names it) is supported".into(),
            );
        }
        if (self.resume || self.resume_failed) && self.joblog.is_none() {
            return Err("--resume and --resume-failed need --joblog FILE".into());
        }
        let several = [
            self.max_args.is_some(),
            self.max_replace_args.is_some() && !self.pipe,
            self.context_replace,
            self.multiple,
        ];
        if several.iter().filter(|b| **b).count() > 1 {
            return Err("give one of -n, -N, -X and -m".into());
        }
        if self.pipe && (self.max_args.is_some() || self.context_replace || self.multiple) {
            return Err("--pipe takes --block or -N, not -n, -X or -m".into());
        }
        if self.block.is_some() && !self.pipe {
            return Err("--block only makes sense with --pipe".into());
        }
        self.output_mode()?;
        self.halt()?;
        Ok(())
    }

    /// The shared run options, for the progress bar and the summary.
    pub fn run_args(&self, workers: usize) -> RunArgs {
        RunArgs {
            workers: Some(workers),
            queue: self.queue,
            retries: self.retries - 1,
            // Timeouts are the killer's: the pool would report them without waiting for the process.
            timeout: None,
            rate: self.rate,
            fail_fast: false,
            json: self.json || self.json_file.is_some(),
            quiet: self.quiet,
        }
    }

    /// The default number of jobs: one per core, as in parallel.
    pub fn workers(&self, total: Option<u64>) -> usize {
        self.jobs
            .unwrap_or(Jobs::Exactly(run::cores()))
            .workers(run::cores(), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_forms() {
        assert_eq!(parse_jobs("3"), Ok(Jobs::Exactly(3)));
        assert_eq!(parse_jobs("0"), Ok(Jobs::AsManyAsPossible));
        assert_eq!(parse_jobs("+2"), Ok(Jobs::CoresPlus(2)));
        assert_eq!(parse_jobs("-1"), Ok(Jobs::CoresPlus(-1)));
        assert_eq!(parse_jobs("50%"), Ok(Jobs::PercentOfCores(50.0)));
        assert!(parse_jobs("many").unwrap_err().contains("'many'"));
        assert_eq!(Jobs::PercentOfCores(50.0).workers(4, None), 2);
        assert_eq!(Jobs::PercentOfCores(10.0).workers(4, None), 1);
        assert_eq!(Jobs::CoresPlus(2).workers(4, None), 6);
        assert_eq!(Jobs::CoresPlus(-9).workers(4, None), 1);
        assert_eq!(Jobs::AsManyAsPossible.workers(4, Some(7)), 7);
        assert_eq!(Jobs::AsManyAsPossible.workers(4, None), MAX_WORKERS);
    }

    #[test]
    fn halt_forms() {
        let h = parse_halt("now,fail=1").unwrap();
        assert!(h.now && h.on == HaltOn::Fail && h.threshold == Threshold::Count(1));
        let h = parse_halt("soon,success=20%").unwrap();
        assert!(!h.now && h.on == HaltOn::Success && h.threshold == Threshold::Percent(20.0));
        assert!(h.reached(2, 5, Some(10)));
        assert!(!h.reached(1, 5, Some(10)));
        assert_eq!(parse_halt("2").unwrap(), parse_halt("now,fail=1").unwrap());
        for bad in [
            "later,fail=1",
            "now,fail=0",
            "now",
            "soon,oops=1",
            "now,fail=120%",
        ] {
            assert!(parse_halt(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_and_termseq() {
        assert!(parse_timeout("0").unwrap_err().contains("longer than zero"));
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("250%"), Ok(Timeout::OfMedian(2.5)));
        for bad in ["0%", "-5%", "x%", "inf%", "%"] {
            assert!(
                parse_timeout(bad).unwrap_err().contains("percentage"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_timeout("2s"),
            Ok(Timeout::After(Duration::from_secs(2)))
        );
        let t = parse_termseq("TERM,1000,SIGKILL,25").unwrap();
        assert_eq!(
            t.0,
            [
                (Signal::SIGTERM, Duration::from_millis(1000)),
                (Signal::SIGKILL, Duration::from_millis(25))
            ]
        );
        assert!(parse_termseq("TERM").is_err());
        assert!(parse_termseq("NOPE,10").unwrap_err().contains("NOPE"));
        assert_eq!(TermSeq::default().0.len(), 4);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("10"), Ok(10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("2x").is_err());
    }
}
