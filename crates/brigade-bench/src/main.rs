//! `brigade-bench`: Brigade against its peers, in the same run, as Markdown tables.
//!
//! ```text
//! cargo run --release -p brigade-bench -- [--quick] [--check] [--only S1,C2] [--rounds N]
//!                                         [--brigade PATH] [--go-seed DIR]
//! ```
//!
//! The scenarios and targets are those of the project's `BENCHMARKS.md`:
//! S1 pool overhead, S2 CPU-bound speed-up, S3 sleeping jobs, S4 peak memory,
//! S5 submit-to-start latency, C1 `brigade exec`, C2 `brigade logs`, C3
//! `brigade images` (pending while the CLI lacks it). Every library scenario runs Brigade and its
//! peers in this process, alternating round by round after a warm-up, and
//! checks each run's result count and checksum: a wrong count is an error
//! (reported, and the exit code is 1), never a number. S4 and the memory of
//! S3's async variant run one child process per figure; C1-C3 run the
//! tools as child processes. A tool that is not installed gets a row that
//! says so.
//!
//! `--quick` takes under two minutes on a 2-core machine; `--quick --check`
//! is a smoke test with tiny sizes that only checks that every scenario runs
//! and counts right.

mod child;
mod cli;
mod go;
mod libs;
mod peers;
mod util;

use std::cell::OnceCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// How big and how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The sizes of BENCHMARKS.md.
    Full,
    /// Smaller sizes, fewer rounds: under two minutes on 2 cores.
    Quick,
    /// Tiny sizes, one round, no warm-up: does every scenario run and count right?
    Check,
}

/// The run's settings and the things built once and shared by the scenarios.
pub struct Ctx {
    pub mode: Mode,
    pub cores: usize,
    rounds: Option<usize>,
    go_src: PathBuf,
    go: OnceCell<Result<go::GoSeed, String>>,
    brigade: Option<PathBuf>,
    brigade_bin: OnceCell<Result<PathBuf, String>>,
    ns_per_iter: OnceCell<f64>,
}

impl Ctx {
    /// The size for this mode.
    pub fn pick<T>(&self, full: T, quick: T, check: T) -> T {
        match self.mode {
            Mode::Full => full,
            Mode::Quick => quick,
            Mode::Check => check,
        }
    }

    /// Measured rounds for this mode (`--rounds` overrides).
    pub fn rounds(&self, full: usize, quick: usize) -> usize {
        self.rounds.unwrap_or(self.pick(full, quick, 1))
    }

    /// "N rounds after a warm-up" (`what`: how the warm-up differs), or the check mode's one round.
    pub fn rounds_text(&self, n: usize, what: &str) -> String {
        if self.warmup() {
            format!(
                "{n} round{} after a warm-up{what}",
                if n == 1 { "" } else { "s" }
            )
        } else {
            format!("{n} round{}, no warm-up", if n == 1 { "" } else { "s" })
        }
    }

    /// Whether to run a warm-up round first.
    pub fn warmup(&self) -> bool {
        self.mode != Mode::Check
    }

    /// The Go seed's programs, built on first use; `Err` says why there are none.
    pub fn go(&self) -> Result<&go::GoSeed, String> {
        self.go
            .get_or_init(|| go::prepare(&self.go_src))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Nanoseconds per spin iteration, calibrated on first use.
    pub fn ns_per_iter(&self) -> f64 {
        *self.ns_per_iter.get_or_init(libs::calibrate)
    }

    /// The release `brigade` binary: `--brigade PATH`, or built with
    /// `cargo build --release -p brigade-cli` into this binary's target
    /// directory (a no-op when it is up to date).
    pub fn brigade_bin(&self) -> Result<PathBuf, String> {
        self.brigade_bin
            .get_or_init(|| match &self.brigade {
                Some(p) if p.is_file() => Ok(p.clone()),
                Some(p) => Err(format!("--brigade {}: no such file", p.display())),
                None => build_cli(),
            })
            .clone()
    }
}

/// This workspace's root (from where this crate was compiled).
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

fn build_cli() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    // <target>/<profile>/brigade-bench
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot tell the target directory")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprint!("(cargo build --release -p brigade-cli)");
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "brigade-cli",
            "--manifest-path",
        ])
        .arg(workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .map_err(|e| format!("cannot run cargo to build brigade-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build --release -p brigade-cli failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let bin = target.join("release").join("brigade");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} was not built", bin.display()))
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A scenario: its id, its title, and the function that runs it and returns its Markdown.
type Scenario = (&'static str, &'static str, fn(&Ctx) -> String);

const SCENARIOS: [Scenario; 9] = [
    ("S1", "pool overhead, no-op jobs", libs::s1),
    ("S2", "CPU-bound jobs, speed-up", libs::s2),
    ("S3", "sleeping jobs, wall / ideal", libs::s3),
    ("S4", "peak memory (VmHWM)", libs::s4),
    ("S5", "submit-to-start latency", libs::s5),
    (
        "C1",
        "`brigade exec` vs `xargs -P` vs GNU `parallel`",
        cli::c1,
    ),
    ("C2", "`brigade logs` vs `rg -c` vs `grep -c`", cli::c2),
    (
        "C3",
        "`brigade images` vs `convert` via `xargs -P`",
        cli::c3,
    ),
    (
        "C5",
        "`brigade load` vs `psql \\copy`, pgloader, `sqlite3 .import`, `sqlite-utils insert`",
        cli::c5,
    ),
];

struct Args {
    mode: Mode,
    only: Vec<String>,
    rounds: Option<usize>,
    brigade: Option<PathBuf>,
    go_seed: Option<PathBuf>,
}

fn usage(code: i32) -> ! {
    eprintln!(
        "usage: brigade-bench [--quick] [--check] [--only S1,C2,...] [--rounds N] [--brigade PATH] [--go-seed DIR]\n\
         \n\
         Measures Brigade against its peers in one run and prints Markdown tables.\n\
         \n\
         --quick          smaller sizes and fewer rounds (under two minutes on 2 cores)\n\
         --check          with --quick: a smoke test with tiny sizes, one round, no warm-up;\n\
         \x20                exits non-zero if any scenario fails or counts wrong\n\
         --only LIST      run only these scenarios: S1 S2 S3 S4 S5 C1 C2 C3 C5\n\
         --rounds N       measured rounds per scenario (default: by mode)\n\
         --brigade PATH   the brigade CLI binary to measure (default: built with\n\
         \x20                cargo build --release -p brigade-cli into this binary's target dir)\n\
         --go-seed DIR    the Go seed's programs (default: ../shared/anchors/go-seed\n\
         \x20                beside the workspace)"
    );
    std::process::exit(code)
}

fn parse_args(argv: &[String]) -> Args {
    let mut a = Args {
        mode: Mode::Full,
        only: Vec::new(),
        rounds: None,
        brigade: None,
        go_seed: None,
    };
    let (mut quick, mut check) = (false, false);
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let (key, inline) = match flag.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .unwrap_or_else(|| usage(2))
        };
        match key.as_str() {
            "-h" | "--help" => usage(0),
            "--quick" => quick = true,
            "--check" => check = true,
            "--only" => a.only.extend(
                value()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim().to_ascii_uppercase()),
            ),
            "--rounds" => match value().parse::<usize>() {
                Ok(n) if n > 0 => a.rounds = Some(n),
                _ => usage(2),
            },
            "--brigade" => a.brigade = Some(value().into()),
            "--go-seed" => a.go_seed = Some(value().into()),
            _ => {
                eprintln!("unknown argument: {flag}");
                usage(2)
            }
        }
    }
    if check && !quick {
        eprintln!("--check goes with --quick: --quick --check");
        usage(2);
    }
    a.mode = match (quick, check) {
        (_, true) => Mode::Check,
        (true, false) => Mode::Quick,
        _ => Mode::Full,
    };
    for o in &a.only {
        if !SCENARIOS.iter().any(|(id, _, _)| id == o) {
            eprintln!("unknown scenario in --only: {o}");
            usage(2);
        }
    }
    a
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "not installed".into())
}

/// The workspace's commit, and whether its working tree has changes.
fn git_state() -> String {
    let ws = workspace();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&ws)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!(
                "commit {head}{}",
                if dirty {
                    " with uncommitted changes"
                } else {
                    ""
                }
            )
        }
        None => "not a git checkout".into(),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some(child::CHILD) {
        std::process::exit(child::main(&argv[1..]));
    }
    let args = parse_args(&argv);
    let started = Instant::now();
    let ctx = Ctx {
        mode: args.mode,
        cores: cores(),
        rounds: args.rounds,
        go_src: args
            .go_seed
            .unwrap_or_else(|| workspace().join("../shared/anchors/go-seed")),
        go: OnceCell::new(),
        brigade: args.brigade,
        brigade_bin: OnceCell::new(),
        ns_per_iter: OnceCell::new(),
    };
    let mode = match ctx.mode {
        Mode::Full => "full",
        Mode::Quick => "quick",
        Mode::Check => "check (smoke: tiny sizes, figures meaningless)",
    };
    println!("# brigade-bench\n");
    println!(
        "- command: `brigade-bench{}{}`",
        if argv.is_empty() { "" } else { " " },
        argv.join(" ")
    );
    println!("- mode: {mode}");
    println!(
        "- machine: nproc {}, {}, kernel {}",
        ctx.cores,
        cpu_model(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    );
    println!(
        "- load average at start (1, 5, 15 min): {}",
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "n/a".into())
    );
    println!(
        "- tools: {}; go: {}; rg: {}; GNU parallel: {}; xargs: {}; grep: {}",
        first_line("rustc", &["-V"]),
        first_line("go", &["version"]),
        first_line("rg", &["--version"]),
        first_line("parallel", &["--version"]),
        first_line("xargs", &["--version"]),
        first_line("grep", &["--version"]),
    );
    println!(
        "- method: peers alternate within one process (S4, S3's memory row and C1-C3 use child processes), a warm-up \
         then several rounds; median [min-max] over rounds; ratios are of medians, with the range \
         of the per-round ratios; every run's result count and checksum are checked."
    );
    println!("- workspace: {}", git_state());

    let selected = |id: &str| args.only.is_empty() || args.only.iter().any(|o| o == id);
    if selected("C1") || selected("C2") {
        // Built before any scenario starts, so that the build is neither timed nor running alongside.
        eprint!("brigade CLI ");
        match ctx.brigade_bin() {
            Ok(p) => println!("- brigade CLI: `{}`", p.display()),
            Err(e) => println!("- brigade CLI: {e}"),
        }
        eprintln!();
    }
    println!();

    for (id, title, run) in SCENARIOS {
        if !selected(id) {
            continue;
        }
        eprint!("{id} ");
        let load_start = util::loadavg();
        let cpu_start = util::CpuSnap::now();
        let t = Instant::now();
        let body = run(&ctx);
        let secs = t.elapsed().as_secs_f64();
        let load_end = util::loadavg();
        let others = match (cpu_start, util::CpuSnap::now()) {
            (Some(a), Some(b)) => format!("; {}", a.others(&b, secs)),
            _ => String::new(),
        };
        eprintln!(" {secs:.1} s");
        println!("## {id}: {title}\n");
        println!("{body}");
        println!(
            "Load average (1 min): {load_start} at start, {load_end} at end{others}; {secs:.1} s.\n"
        );
    }

    let targets = util::take_targets();
    if !targets.is_empty() {
        println!("## Targets\n");
        let mut t = util::Table::new(&["figure", "target", "measured", "verdict"]);
        for x in targets {
            t.row(vec![x.figure, x.target, x.measured, x.verdict]);
        }
        println!("{}", t.render());
    }
    let errors = util::errors();
    println!(
        "Total {:.1} s; load average (1 min) at the end: {}.",
        started.elapsed().as_secs_f64(),
        util::loadavg()
    );
    if !errors.is_empty() {
        println!("\n## Errors\n");
        for e in &errors {
            println!("- {e}");
        }
        std::process::exit(1);
    }
}
