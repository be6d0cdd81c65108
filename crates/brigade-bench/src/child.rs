//! Child processes: the bench re-runs itself with a hidden subcommand to
//! measure one contender's peak memory alone in a fresh process (S4, and the
//! memory of S3's async variant), and runs other programs with their peak RSS.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::peers::{self, Lib, Opts};
use crate::util::{self, Fail};

/// The hidden subcommand's name.
pub const CHILD: &str = "__child";

/// This process's peak resident set (VmHWM), in KiB.
pub fn vmhwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `__child feed LIB JOBS WORKERS QUEUE SLEEP_MS`: one whole life cycle of
/// `LIB` with no-op jobs (after an async sleep of SLEEP_MS for tokio-tasks
/// when it is not 0), checked; prints `ok vmhwm_kib=N secs=S` at the end.
pub fn main(args: &[String]) -> i32 {
    let usage = || {
        eprintln!("usage: brigade-bench {CHILD} feed LIB JOBS WORKERS QUEUE SLEEP_MS");
        2
    };
    let [kind, lib, jobs, workers, queue, sleep_ms] = args else {
        return usage();
    };
    let (Some(lib), Ok(jobs), Ok(workers), Ok(queue), Ok(sleep_ms)) = (
        Lib::from_id(lib),
        jobs.parse::<u64>(),
        workers.parse::<usize>(),
        queue.parse::<usize>(),
        sleep_ms.parse::<u64>(),
    ) else {
        return usage();
    };
    if kind != "feed" {
        return usage();
    }
    let o = Opts {
        workers,
        queue,
        async_sleep: (sleep_ms > 0).then(|| Duration::from_millis(sleep_ms)),
        runtime_threads: crate::cores(),
    };
    let expected = util::noop_expected(jobs);
    let res = peers::run_feed(lib, &o, jobs, util::noop)
        .and_then(|(d, c)| c.verify(&expected, lib.id()).map(|()| d));
    match res {
        Ok(d) => {
            let kib = vmhwm_kib().unwrap_or(0);
            println!("ok vmhwm_kib={kib} secs={:.6}", d.as_secs_f64());
            0
        }
        Err(e) => {
            println!("error {e}");
            1
        }
    }
}

/// Runs `lib` in a child process; returns (peak RSS in KiB, wall time in s).
pub fn feed(
    lib: Lib,
    jobs: u64,
    workers: usize,
    queue: usize,
    sleep_ms: u64,
) -> Result<(u64, f64), Fail> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let out = Command::new(exe)
        .arg(CHILD)
        .arg("feed")
        .arg(lib.id())
        .args([
            jobs.to_string(),
            workers.to_string(),
            queue.to_string(),
            sleep_ms.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("child: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("").trim();
    if !out.status.success() || !line.starts_with("ok ") {
        return Err(Fail::Error(format!(
            "child failed ({}): {line}",
            out.status
        )));
    }
    let get = |key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    match (get("vmhwm_kib"), get("secs")) {
        (Some(k), Some(s)) if k > 0.0 => Ok((k as u64, s)),
        _ => Err(Fail::Error(format!("child: unexpected output: {line}"))),
    }
}

/// Runs a command to its end; returns its stdout and its peak RSS in KiB
/// (`ru_maxrss` from `wait4`, as the child cannot report it itself: the
/// largest of the child and the descendants it waited for). A non-zero exit
/// is an error. Standard input is the caller's to set (inherited otherwise).
pub fn run_rusage(cmd: &mut Command) -> Result<(String, u64), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut out = String::new();
    let mut err = String::new();
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let _ = child.stdout.take().expect("piped").read_to_string(&mut out);
    let err = err_reader.join().unwrap_or_default();
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 only writes into the
    // two out-parameters, which live on this stack frame for the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        return Err(format!(
            "wait4 {cmd:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The child is reaped: `child` must not be waited for again (dropping it does not).
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!(
            "{cmd:?} failed (wait status {status}): {}",
            err.trim()
        ));
    }
    Ok((out, ru.ru_maxrss as u64))
}
