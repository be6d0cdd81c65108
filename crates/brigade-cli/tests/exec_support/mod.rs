//! Helpers for the `brigade exec` tests: run it with bytes in and out, read
//! the JSON summary from stderr, and find GNU parallel (the oracle).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::bin;

/// Runs `brigade exec ARGS` in `dir` with `stdin` (bytes) and waits for it.
pub fn exec_in<S: AsRef<OsStr>>(dir: &Path, args: &[S], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("exec").args(args);
    run_with_stdin(cmd, dir, stdin)
}

/// Runs a prepared command in `dir`, feeding it `stdin` from a thread.
pub fn run_with_stdin(mut cmd: Command, dir: &Path, stdin: &[u8]) -> Output {
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let mut w = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// The last line of stderr, parsed as JSON (the `--json` summary).
pub fn json_summary(out: &Output) -> Value {
    let s = String::from_utf8_lossy(&out.stderr);
    let last = s.lines().last().unwrap_or_else(|| {
        panic!(
            "no stderr; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// GNU parallel on PATH, or why the tests that need it cannot run. With
/// BRIGADE_REQUIRE_SERVICES set, a missing parallel fails the test.
pub fn gnu_parallel() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("parallel"))
            .find(|p| p.is_file())
    });
    let is_gnu = found.as_ref().is_some_and(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU parallel"))
    });
    if is_gnu {
        return found;
    }
    let why = "GNU parallel is not installed (apt-get install -y parallel)";
    if std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_some() {
        panic!("{why}, and BRIGADE_REQUIRE_SERVICES is set");
    }
    eprintln!("skipped: {why}");
    None
}

/// Writes `name` in `dir` with `bytes`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Starts `brigade exec ARGS` in `dir`, stdin closed, stdout and stderr piped.
pub fn spawn_exec<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> std::process::Child {
    Command::new(bin())
        .arg("exec")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start brigade exec")
}
