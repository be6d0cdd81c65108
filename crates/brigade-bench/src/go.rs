//! The Go seed's own programs (`overhead.go`, `io.go`), built once per run
//! with `go build` in a temporary directory, when `go` is on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::child::run_rusage;
use crate::util::Fail;

pub struct GoSeed {
    _dir: tempfile::TempDir,
    overhead: PathBuf,
    io: PathBuf,
    pub version: String,
}

/// Builds the seed's programs; `Err` says why there is no Go row (not a fault).
pub fn prepare(src: &Path) -> Result<GoSeed, String> {
    let version = match Command::new("go").arg("version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => return Err("go not installed".into()),
    };
    let dir = tempfile::Builder::new()
        .prefix("brigade-bench-go")
        .tempdir()
        .map_err(|e| format!("go: temp dir: {e}"))?;
    let mut built = Vec::new();
    for name in ["overhead", "io"] {
        let file = src.join(format!("{name}.go"));
        if !file.is_file() {
            return Err(format!("go-seed source not found: {}", file.display()));
        }
        // Each file is its own `package main`: give each its own directory.
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).map_err(|e| format!("go: {e}"))?;
        std::fs::copy(&file, sub.join("main.go")).map_err(|e| format!("go: {e}"))?;
        let out = dir.path().join(format!("{name}-bin"));
        let mut cmd = Command::new("go");
        cmd.current_dir(&sub)
            .args(["build", "-o"])
            .arg(&out)
            .arg("main.go")
            .env("GO111MODULE", "off");
        if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
            cmd.env("GOCACHE", dir.path().join("cache"));
        }
        let o = cmd.output().map_err(|e| format!("go build: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "go build {name}.go failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        built.push(out);
    }
    let io = built.pop().expect("two programs");
    let overhead = built.pop().expect("two programs");
    Ok(GoSeed {
        _dir: dir,
        overhead,
        io,
        version,
    })
}

/// The value of `key=` in the Go programs' one-line report.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn run(cmd: &Path, args: &[String]) -> Result<(String, u64), Fail> {
    let (out, rss_kib) =
        run_rusage(Command::new(cmd).args(args).stdin(Stdio::null())).map_err(Fail::Error)?;
    Ok((out, rss_kib))
}

/// `overhead JOBS WORKERS BUFFER`: returns (wall time measured by the program, peak RSS in KiB).
/// Checks the sum it prints: the jobs are 1..=N, each doubled.
pub fn overhead(
    seed: &GoSeed,
    jobs: u64,
    workers: usize,
    buffer: usize,
) -> Result<(Duration, u64), Fail> {
    let args = [jobs.to_string(), workers.to_string(), buffer.to_string()];
    let (out, rss) = run(&seed.overhead, &args)?;
    let bad = || Fail::Error(format!("go overhead: unexpected output: {}", out.trim()));
    let ns_per_job: f64 = field(&out, "ns/job")
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let sum: u64 = field(&out, "sum")
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let expected = jobs * (jobs + 1);
    if sum != expected {
        return Err(Fail::Error(format!(
            "go overhead: sum {sum}, expected {expected}: results lost"
        )));
    }
    Ok((Duration::from_secs_f64(ns_per_job * jobs as f64 / 1e9), rss))
}

/// `io JOBS WORKERS SLEEP_MS`: returns (wall / ideal as the program measures it, peak RSS in KiB).
/// The program prints no count or sum, so its results cannot be checked.
pub fn io(seed: &GoSeed, jobs: u64, workers: usize, sleep_ms: u64) -> Result<(f64, u64), Fail> {
    let args = [jobs.to_string(), workers.to_string(), sleep_ms.to_string()];
    let (out, rss) = run(&seed.io, &args)?;
    let ratio: f64 = field(&out, "ratio")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Fail::Error(format!("go io: unexpected output: {}", out.trim())))?;
    Ok((ratio, rss))
}
