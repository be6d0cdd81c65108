//! Helpers shared by the end-to-end tests: run the binary, read its output,
//! wait for it without hanging, signal it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_brigade"))
}

pub fn brigade(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run brigade")
}

pub fn brigade_in(dir: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run brigade");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_ref())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The last line of stdout, parsed as JSON.
pub fn json_tail(out: &Output) -> Value {
    let s = text(&out.stdout);
    let last = s
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stdout; stderr: {}", text(&out.stderr)));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// Waits for `child`, killing it and failing if it takes longer than `secs`.
pub fn wait_or_fail(mut child: Child, secs: u64) -> Output {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("brigade did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_for_file(p: &Path, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !p.exists() {
        assert!(Instant::now() < until, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn sigint(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

/// Whether a process is gone (or a zombie nobody reaped yet).
pub fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Fails unless the process whose pid is in `pidfile` is gone within `secs` seconds.
pub fn assert_gone(pidfile: &Path, secs: u64, what: &str) {
    let pid: i32 = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(secs);
    while !is_gone(pid) {
        assert!(
            Instant::now() < until,
            "{what}: process {pid} is still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads everything a program writes to a terminal, on a thread, from the
/// pty's master side; the thread ends (EIO) once the last holder of the
/// terminal exits, and returns what was drawn.
pub fn read_terminal(master: std::os::fd::OwnedFd) -> std::thread::JoinHandle<String> {
    let mut master = std::fs::File::from(master);
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut master, &mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    })
}
