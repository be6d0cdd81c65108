//! `brigade exec` end to end: what the differential suite cannot show
//! (timeouts, signals, the joblog, resuming, halting, exit codes).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
mod exec_support;

use common::*;
use exec_support::*;

fn lines(b: &[u8]) -> Vec<String> {
    text(b).lines().map(String::from).collect()
}

#[test]
fn keep_order_prints_in_input_order() {
    // Later inputs finish first; -k still prints them in input order.
    let inputs: Vec<String> = (0..8).map(|i| format!("0.{}", 8 - i)).collect();
    let mut args = vec!["--quiet", "-k", "-j", "8", "sleep {}; echo {}", ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(dir.path(), &args, b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&out.stdout), inputs);
}

#[test]
fn never_interleaves_two_jobs_output() {
    let script = "for i in $(seq 1 300); do echo \"job {} line $i\"; done";
    let mut args = vec!["--quiet", "-j", "8", script, ":::"];
    let ids: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    args.extend(ids.iter().map(String::as_str));
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(dir.path(), &args, b"");
    assert_eq!(out.status.code(), Some(0));
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 40 * 300);
    for block in got.chunks(300) {
        let job = block[0].split_whitespace().nth(1).unwrap();
        for (i, l) in block.iter().enumerate() {
            assert_eq!(*l, format!("job {job} line {}", i + 1));
        }
    }
}

#[test]
fn timeout_stops_the_process_group_term_first() {
    let dir = tempfile::tempdir().unwrap();
    // The job traps TERM (it cleans up: writes a file) and leaves a child in its group.
    let script = "trap 'echo cleaned > cleaned.{}; exit 9' TERM; sleep 60 & echo $! > bg.pid; wait";
    let out = exec_in(
        dir.path(),
        &["--json", "--timeout", "300ms", script, ":::", "x"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_summary(&out);
    assert_eq!(
        (v["timed_out"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert!(
        text(&out.stderr).contains("timed out after 300.0ms"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cleaned.x")).unwrap(),
        "cleaned\n"
    );
    assert_gone(
        &dir.path().join("bg.pid"),
        10,
        "the background child survived the timeout",
    );
}

#[test]
fn a_relative_timeout_stops_a_job_far_past_the_median_of_the_successes() {
    // One at a time: four jobs of 0.3 s succeed, then one that would sleep
    // 60 s is stopped at 1000% of their median (about 3 s). A job only
    // 10x slower than its peers is stopped, so the quick ones are safe even
    // on a loaded machine.
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "-k",
            "-j1",
            "--timeout",
            "1000%",
            "sleep {}; echo done {}",
            ":::",
            "0.3",
            "0.3",
            "0.3",
            "0.3",
            "60",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(lines(&out.stdout), vec!["done 0.3"; 4]);
    let v = json_summary(&out);
    assert_eq!(
        (v["succeeded"].as_u64(), v["timed_out"].as_u64()),
        (Some(4), Some(1)),
        "{v}"
    );
    assert!(
        text(&out.stderr).contains("past 1000% of the median run time"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn termseq_kill_stops_a_job_that_ignores_term() {
    let dir = tempfile::tempdir().unwrap();
    let script = "trap '' TERM; echo $$ > pid; while :; do sleep 0.05; done; true {}";
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "--timeout",
            "200ms",
            "--termseq",
            "TERM,100,KILL,25",
            script,
            ":::",
            "x",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_summary(&out)["timed_out"], 1);
    assert_gone(&dir.path().join("pid"), 10, "KILL did not follow TERM");
    let out = exec_in(
        dir.path(),
        &["--termseq", "TERM,soon", "true", ":::", "x"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn retries_count_attempts_as_parallel_does_and_joblog_rows_say_why() {
    let dir = tempfile::tempdir().unwrap();
    // "flaky" fails the first time (it makes its marker), then succeeds; "bad" always fails.
    let script = "if [ {} = bad ]; then exit 3; fi; if [ -e m.{} ]; then echo ok {}; else touch m.{}; exit 1; fi";
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "-k",
            "--retries",
            "3",
            "--joblog",
            "jobs.log",
            script,
            ":::",
            "flaky",
            "bad",
            "fine",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_summary(&out);
    assert_eq!(
        (v["succeeded"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(1))
    );
    // 3 attempts in all: flaky 1 retry, bad 2, fine 1 (its first run made the marker).
    assert_eq!(v["retried"], 1 + 2 + 1);
    assert!(
        text(&out.stderr).contains("job 2 (") && text(&out.stderr).contains("exited with code 3")
    );
    let log = std::fs::read_to_string(dir.path().join("jobs.log")).unwrap();
    let rows: Vec<Vec<&str>> = log.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "Seq",
            "Host",
            "Starttime",
            "JobRuntime",
            "Send",
            "Receive",
            "Exitval",
            "Signal",
            "Command"
        ]
    );
    assert_eq!(
        rows.len(),
        4,
        "one row per job, for its last attempt: {log}"
    );
    let by_seq = |s: &str| rows.iter().find(|r| r[0] == s).unwrap().clone();
    assert_eq!(
        (by_seq("1")[6], by_seq("2")[6], by_seq("3")[6]),
        ("0", "3", "0")
    );
    assert!(by_seq("2")[8].contains("bad"));
    for r in &rows[1..] {
        assert!(
            r[2].trim().parse::<f64>().unwrap() > 1.6e9,
            "start time is epoch seconds"
        );
        assert!(r[3].trim().parse::<f64>().unwrap() >= 0.0);
    }
    assert_eq!(
        by_seq("1")[5],
        "9",
        "Receive is the bytes of stdout ('ok flaky\\n')"
    );
}

#[test]
fn resume_skips_logged_jobs_and_resume_failed_reruns_failures() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo ran {} >> runs; [ {} != b ] || [ -e fixed ]";
    let run = |extra: &[&str]| {
        let mut args = vec!["--quiet", "-j", "1", "--joblog", "log"];
        args.extend(extra);
        args.extend([script, ":::", "a", "b", "c"]);
        exec_in(dir.path(), &args, b"")
    };
    assert_eq!(run(&[]).status.code(), Some(1));
    let out = run(&["--resume"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing left to run: {}",
        text(&out.stderr)
    );
    std::fs::write(dir.path().join("fixed"), b"").unwrap();
    let out = run(&["--resume-failed"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs, "ran a\nran b\nran c\nran b\n");
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("Seq")).count(),
        1,
        "{log}"
    );
    assert_eq!(log.lines().count(), 1 + 4);
    let out = exec_in(dir.path(), &["--resume", "true", ":::", "x"], b"");
    assert_eq!(out.status.code(), Some(2), "--resume without --joblog");
}

#[test]
fn halt_soon_and_now() {
    let dir = tempfile::tempdir().unwrap();
    // -j 1: job 2 fails; soon = job 3 onwards never start.
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "-j",
            "1",
            "--halt",
            "soon,fail=1",
            "[ {} != 2 ] && echo {}",
            ":::",
            "1",
            "2",
            "3",
            "4",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "1\n");
    let v = json_summary(&out);
    assert_eq!(
        (v["failed"].as_u64(), v["never_started"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );

    // now: a running job is stopped when another one fails.
    let script = "if [ {} = slow ]; then echo $$ > slow.pid; while :; do sleep 0.05; done; else while [ ! -e slow.pid ]; do sleep 0.05; done; exit 4; fi";
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "-j",
            "2",
            "--halt",
            "now,fail=1",
            script,
            ":::",
            "slow",
            "fails",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_gone(
        &dir.path().join("slow.pid"),
        10,
        "--halt now left a job running",
    );

    // success=1 stops with exit 0: the run got what it needed.
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "-j",
            "1",
            "--halt",
            "now,success=1",
            "echo",
            ":::",
            "a",
            "b",
            "c",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a\n");

    // --fail-fast is soon,fail=1.
    let out = exec_in(
        dir.path(),
        &[
            "--json",
            "-j",
            "1",
            "--fail-fast",
            "exit {}",
            ":::",
            "0",
            "3",
            "0",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_summary(&out)["never_started"], 1);
}

#[test]
fn job_slots_are_unique_among_running_jobs_and_env_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--quiet",
        "-j",
        "3",
        "echo {%} $PARALLEL_JOBSLOT {#} $PARALLEL_SEQ",
        ":::",
    ];
    let ids: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    args.extend(ids.iter().map(String::as_str));
    let out = exec_in(dir.path(), &args, b"");
    let mut seqs = Vec::new();
    for l in lines(&out.stdout) {
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!(w[0], w[1], "{l}");
        assert_eq!(w[2], w[3], "{l}");
        assert!(["1", "2", "3"].contains(&w[0]), "{l}");
        seqs.push(w[2].parse::<u32>().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
}

#[test]
fn delay_spaces_job_starts() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = exec_in(
        dir.path(),
        &[
            "--quiet", "-j", "4", "--delay", "150ms", "true", ":::", "1", "2", "3", "4",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "three gaps of 150 ms"
    );
}

#[test]
fn dry_run_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(
        dir.path(),
        &["--dry-run", "touch", "{/.}.done", ":::", "a/x.txt", "it's"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "touch x.done\ntouch 'it'\"'\"'s'.done\n");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "dry run created files"
    );
}

#[test]
fn shell_lines_and_missing_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = exec_in(
        dir.path(),
        &["--quiet", "echo {} > {.}.out", ":::", "a.txt", "b c.txt"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b c.out")).unwrap(),
        "b c.txt\n"
    );

    let out = exec_in(
        dir.path(),
        &["--quiet", "no-such-command-xyz", ":::", "1", "2"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("cannot run 'no-such-command-xyz'").count(),
        2,
        "{err}"
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    let script = format!(
        "{} exec --quiet -j 2 seq 1 100000 ::: 1 2 3 4 5 6 7 8 | head -n 1; echo \"status ${{PIPESTATUS[0]}}\"",
        bin().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        text(&out.stdout).ends_with("status 0\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !text(&out.stderr).contains("panicked at"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_is_exit_2_with_a_message_naming_it() {
    let cases: &[(&[&str], &str)] = &[
        (&["--timeout", "soon", "true", ":::", "x"], "soon"),
        (&["--timeout", "0%", "true", ":::", "x"], "0%"),
        (&["--rate", "0/s", "true", ":::", "x"], "0/s"),
        (&["-j", "many", "true", ":::", "x"], "many"),
        (
            &["--halt", "later,fail=1", "true", ":::", "x"],
            "later,fail=1",
        ),
        (&["echo", "{..}", ":::", "x"], "{..}"),
        (&["echo", "{= s/a/b/ =}", ":::", "x"], "{= s/a/b/ =}"),
        (&["-a", "/no/such/inputs", "echo"], "/no/such/inputs"),
        (&["echo", "::::", "/no/such/file"], "/no/such/file"),
        (&["--colsep", "(", "echo", ":::", "x"], "("),
        (&["--retries", "0", "true", ":::", "x"], "--retries"),
        (&["--header", "x", "true", ":::", "x"], "--header"),
        (&["-d", "ab", "echo", ":::", "x"], "ab"),
        (&["--pipe", "echo", "{}"], "--pipe"),
        (&["--block", "1M", "echo", ":::", "x"], "--block"),
        (&["-k", "-u", "echo", ":::", "x"], "-k"),
        (&["echo", ":::+", "x"], ":::+"),
    ];
    for (args, named) in cases {
        let mut a = vec!["exec"];
        a.extend(*args);
        let out = brigade(&a);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(named),
            "{args:?}: stderr does not name {named}: {err}"
        );
        assert!(!err.contains("panicked at"), "{args:?}: {err}");
    }
}

#[test]
fn line_buffer_and_ungroup_print_while_jobs_run() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["--line-buffer", "-u"] {
        // The job prints a line, then waits for a file the test makes once it saw the line.
        let script = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second; true";
        let mut child = spawn_exec(dir.path(), &["--quiet", mode, script, ":::", "x"]);
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut r, &mut first).unwrap();
        assert_eq!(first, "first\n", "{mode}");
        std::fs::write(dir.path().join("go"), b"").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut r, &mut rest).unwrap();
        assert_eq!(rest, "second\n", "{mode}");
        assert!(child.wait().unwrap().success());
        std::fs::remove_file(dir.path().join("go")).unwrap();
    }
}

#[test]
fn sigint_once_finishes_running_jobs_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin())
        .args([
            "exec",
            "--json",
            "-j",
            "1",
            "touch started.{}; sleep 0.5; echo done {}",
            ":::",
        ])
        .args((1..=10).map(|i| i.to_string()))
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&dir.path().join("started.1"), 20);
    sigint(&child);
    let out = wait_or_fail(child, 30);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("done 1\n"),
        "the running job was not let finish"
    );
    let v = json_summary(&out);
    assert_eq!(v["interrupted"], true);
    let ran = v["succeeded"].as_u64().unwrap();
    assert!(ran >= 1);
    assert_eq!(v["never_started"].as_u64().unwrap() + ran, 10, "{v}");
}

#[test]
fn sigint_twice_stops_at_once_and_kills_children() {
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_exec(
        dir.path(),
        &[
            "-j",
            "2",
            "--joblog",
            "log",
            "echo $$ > pid.{}; sleep 60",
            ":::",
            "a",
            "b",
            "c",
        ],
    );
    wait_for_file(&dir.path().join("pid.a"), 20);
    wait_for_file(&dir.path().join("pid.b"), 20);
    sigint(&child);
    std::thread::sleep(Duration::from_millis(100));
    sigint(&child);
    let out = wait_or_fail(child, 20);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    for name in ["pid.a", "pid.b"] {
        assert_gone(
            &dir.path().join(name),
            10,
            "a child survived a double Ctrl-C",
        );
    }
}

#[test]
fn pipe_feeds_blocks_to_stdin_and_counts_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (1..=10_000).map(|i| format!("{i}\n")).collect();
    let out = exec_in(
        dir.path(),
        &["--quiet", "--pipe", "--block", "10k", "-j", "4", "wc", "-l"],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let total: u64 = lines(&out.stdout)
        .iter()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 10_000);
    assert!(
        lines(&out.stdout).len() > 4,
        "the input was split into blocks"
    );
}
