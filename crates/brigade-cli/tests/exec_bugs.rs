//! One test per bug of the `[exec]` issue; each failed on the code before the fix.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

mod common;
mod exec_support;

use common::*;
use exec_support::*;

#[test]
fn attached_and_combined_short_options_parse_as_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(dir.path(), &["-j3", "--quiet", "echo", ":::", "a"], b"");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "a\n".into()),
        "{}",
        text(&out.stderr)
    );
    let out = exec_in(
        dir.path(),
        &["-kj3", "--quiet", "echo", ":::", "a", "b"],
        b"",
    );
    assert_eq!(text(&out.stdout), "a\nb\n", "{}", text(&out.stderr));
    let out = exec_in(dir.path(), &["-j=3", "--quiet", "echo", ":::", "a"], b"");
    assert_eq!(text(&out.stdout), "a\n", "{}", text(&out.stderr));

    // -j3 before --dry-run: the dry run still runs nothing.
    let out = exec_in(
        dir.path(),
        &["-j3", "--dry-run", "touch", "made.{}", ":::", "a"],
        b"",
    );
    assert_eq!(text(&out.stdout), "touch made.a\n", "{}", text(&out.stderr));
    assert!(!dir.path().join("made.a").exists(), "--dry-run ran the job");

    // -a FILE, attached or not, before the command: inputs from the file, not the terminal.
    write(dir.path(), "urls.txt", b"u1\nu2\n");
    for a in [vec!["-a", "urls.txt"], vec!["-aurls.txt"]] {
        let mut args = a.clone();
        args.extend(["--quiet", "-k", "echo", "got"]);
        let out = exec_in(dir.path(), &args, b"not this\n");
        assert_eq!(
            text(&out.stdout),
            "got u1\ngot u2\n",
            "{a:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn an_unknown_option_before_the_command_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["--bogus", "-Y"] {
        let out = exec_in(dir.path(), &[bad, "touch", "ran", ":::", "a"], b"");
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(bad),
            "{bad}: {}",
            text(&out.stderr)
        );
        assert!(!dir.path().join("ran").exists(), "{bad} became the command");
    }
    // After the command, options belong to it.
    let out = exec_in(dir.path(), &["--quiet", "echo", "-n", "x", ":::", "a"], b"");
    assert_eq!(text(&out.stdout), "x a");
}

#[test]
fn inputs_are_bytes_from_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    // A file name that is not UTF-8, from stdin (find's output) and after :::.
    let name = b"caf\xe9 \xff.txt";
    let out = exec_in(
        dir.path(),
        &["--quiet", "-k", "printf", "%s,"],
        &[name.as_slice(), b"\n"].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, [name.as_slice(), b","].concat());

    let out = exec_in(
        dir.path(),
        &[
            OsStr::new("--quiet"),
            OsStr::new("touch"),
            OsStr::new(":::"),
            OsStr::from_bytes(name),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        dir.path().join(OsStr::from_bytes(name)).exists(),
        "the file was made under a mangled name"
    );

    write(dir.path(), "list", &[name.as_slice(), b"\n"].concat());
    let out = exec_in(dir.path(), &["--quiet", "-a", "list", "printf", "%s,"], b"");
    assert_eq!(out.stdout, [name.as_slice(), b","].concat());
}

#[test]
fn a_job_ends_when_its_process_exits_not_when_its_output_closes() {
    let dir = tempfile::tempdir().unwrap();
    // The job leaves a child behind that holds its stdout open until the test
    // releases it, which the test does only after brigade has exited.
    // (-q sh -c SCRIPT {}: the same job before and after the fix.)
    let script = "(while [ ! -e release ]; do sleep 0.05; done) & echo started $0";
    let child = spawn_exec(
        dir.path(),
        &[
            "-q",
            "--timeout",
            "60s",
            "sh",
            "-c",
            script,
            "{}",
            ":::",
            "x",
        ],
    );
    // Read what brigade prints without waiting for the pipe to close: the
    // leftover child shares it.
    let pid = child.id();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        match nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid as i32),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        )
        .unwrap()
        {
            nix::sys::wait::WaitStatus::Exited(_, code) => break Some(code),
            nix::sys::wait::WaitStatus::StillAlive if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => break None,
        }
    };
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let mut child = child;
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(
        status,
        Some(0),
        "brigade waited for the leftover child (or failed)"
    );
    assert_eq!(out, "started x\n");
}

#[test]
fn joblog_rows_are_written_as_jobs_end() {
    let dir = tempfile::tempdir().unwrap();
    let script = "if [ $0 = hold ]; then while [ ! -e release ]; do sleep 0.05; done; fi";
    let child = Command::new(bin())
        .args([
            "exec", "-q", "-j", "2", "--joblog", "log", "sh", "-c", script, "{}",
        ])
        .args([":::", "hold", "1", "2", "3", "4", "5"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Five jobs finish while the first one is held: their rows must be in the
    // file while brigade still runs.
    let log = dir.path().join("log");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rows = loop {
        let rows = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        if rows >= 6 || std::time::Instant::now() > until {
            break rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let out = wait_or_fail(child, 60);
    assert_eq!(rows, 6, "header + 5 finished jobs, before the run ended");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 7);
}

#[test]
fn sighup_is_treated_like_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let script = "touch started.$0; while [ ! -e release ]; do sleep 0.05; done; echo done $0";
    let child = spawn_exec(
        dir.path(),
        &[
            "-q", "--json", "-j", "1", "sh", "-c", script, "{}", ":::", "1", "2", "3",
        ],
    );
    wait_for_file(&dir.path().join("started.1"), 30);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    // Brigade must still be alive, waiting for the running job.
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let out = wait_or_fail(child, 30);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "done 1\n",
        "the running job was let finish"
    );
    let v = json_summary(&out);
    assert_eq!(
        (v["succeeded"].as_u64(), v["never_started"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
}

#[test]
fn reading_inputs_from_a_terminal_warns() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let child = Command::new(bin())
        .args(["exec", "--quiet", "echo", "got"])
        .stdin(Stdio::from(pty.slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    // A line, then Ctrl-D (end of input at the start of a line).
    std::io::Write::write_all(&mut master, b"x\n\x04").unwrap();
    let out = wait_or_fail(child, 30);
    assert_eq!(text(&out.stdout), "got x\n", "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("terminal") && err.contains("Ctrl-D"), "{err}");
}

#[test]
fn a_zero_timeout_is_refused() {
    for t in ["0", "0s", "0ms"] {
        let out = brigade(&["exec", "--timeout", t, "true", ":::", "x"]);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(
            text(&out.stderr).contains(&format!("'{t}'")),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_json_summary_never_mixes_with_job_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(dir.path(), &["--json", "-k", "echo", ":::", "a", "b"], b"");
    assert_eq!(
        text(&out.stdout),
        "a\nb\n",
        "stdout is the jobs' output only"
    );
    let v = json_summary(&out);
    assert_eq!(v["succeeded"], 2);

    let out = exec_in(
        dir.path(),
        &["--json-file", "sum.json", "-k", "echo", ":::", "a"],
        b"",
    );
    assert_eq!(text(&out.stdout), "a\n");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sum.json")).unwrap())
            .unwrap();
    assert_eq!(v["succeeded"], 1);
}

#[test]
fn the_progress_bar_shows_a_whole_rate_and_cancelled_jobs_are_not_progress() {
    let dir = tempfile::tempdir().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    // Job 1 waits for the test's Ctrl-C; jobs 2-5 are then cancelled.
    // (A script file: the same command line before and after the fix.)
    let job = dir.path().join("job.sh");
    write(
        dir.path(),
        "job.sh",
        b"#!/bin/sh\ntouch started.$1\nwhile [ ! -e release ]; do sleep 0.05; done\n",
    );
    std::fs::set_permissions(&job, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let child = Command::new(bin())
        .args([
            "exec", "-j", "1", "./job.sh", "{}", ":::", "1", "2", "3", "4", "5",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let reader = read_terminal(pty.master);
    wait_for_file(&dir.path().join("started.1"), 30);
    // Let the bar draw a few ticks (it ticks every 200 ms), then interrupt.
    std::thread::sleep(std::time::Duration::from_millis(700));
    sigint(&child);
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.path().join("release"), b"").unwrap();
    let out = wait_or_fail(child, 30);
    assert_eq!(out.status.code(), Some(130));
    let screen = reader.join().unwrap();
    assert!(screen.contains("/s"), "no progress bar drawn: {screen:?}");
    let four_decimals = regex::Regex::new(r"\d\.\d{4}/s").unwrap();
    assert!(
        !four_decimals.is_match(&screen),
        "the rate shows four decimals: {screen:?}"
    );
    assert!(
        !screen.contains("5/5 jobs"),
        "cancelled jobs counted as progress: {screen:?}"
    );
}
