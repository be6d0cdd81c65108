//! End-to-end tests: they run the `brigade` binary as a user would.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

// ---- demo ------------------------------------------------------------------------------

#[test]
fn demo_prints_the_seeds_lines_and_a_timeline() {
    let out = brigade(&["demo", "--work", "20ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for j in 1..=5 {
        assert_eq!(s.matches(&format!("started job {j}\n")).count(), 1, "{s}");
        assert_eq!(s.matches(&format!("finished job {j}\n")).count(), 1, "{s}");
        assert!(s.contains(&format!("Result: {}\n", j * 2)), "{s}");
    }
    assert!(s
        .lines()
        .filter(|l| l.starts_with("Worker ") && l.contains(" started job "))
        .all(|l| {
            let id: usize = l.split_whitespace().nth(1).unwrap().parse().unwrap();
            (1..=3).contains(&id)
        }));
    assert!(s.contains("Timeline"), "{s}");
    for w in 1..=3 {
        assert!(
            s.lines()
                .any(|l| l.starts_with(&format!("Worker {w}")) && l.contains("[")),
            "{s}"
        );
    }
    assert!(s.contains("Total time:") && s.contains("sequential"), "{s}");
    assert!(text(&out.stderr).contains("5 succeeded"));
}

#[test]
fn demo_json_summary() {
    let out = brigade(&["demo", "--jobs", "7", "-j", "2", "--work", "1ms", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json_tail(&out);
    assert_eq!(v["jobs"], 7);
    assert_eq!(v["succeeded"], 7);
    for field in [
        "failed",
        "panicked",
        "timed_out",
        "cancelled",
        "never_started",
        "retried",
    ] {
        assert_eq!(v[field], 0, "{field}");
    }
    assert_eq!(v["interrupted"], false);
    assert_eq!(v["exit_code"], 0);
    assert!(v["wall_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["jobs_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["run_time_ms"]["p50"].as_f64().unwrap() >= 0.9, "{v}");
    assert!(v["queue_wait_ms"]["p99"].as_f64().is_some());
}

// ---- exec ------------------------------------------------------------------------------

#[test]
fn exec_runs_one_command_per_input_from_arguments() {
    let out = brigade(&["exec", "-q", "echo", "got", "{}", ":::", "a", "b", "c"]);
    assert_eq!(out.status.code(), Some(0));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["got a", "got b", "got c"]);
}

#[test]
fn exec_reads_inputs_from_stdin_and_files_and_fills_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let out = brigade_in(
        dir.path(),
        &["exec", "-q", "-k", "echo", "{#}|{}|{.}|{/}|{//}|{/.}"],
        "x/y/one.txt\ntwo.tar.gz\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "1|x/y/one.txt|x/y/one|one.txt|x/y|one\n2|two.tar.gz|two.tar|two.tar.gz|.|two.tar\n"
    );

    std::fs::write(dir.path().join("inputs"), "p\nq\n").unwrap();
    let out = brigade_in(
        dir.path(),
        &["exec", "-q", "-k", "-a", "inputs", "echo"],
        "",
    );
    assert_eq!(text(&out.stdout), "p\nq\n");
}

#[test]
fn exec_keep_order_prints_in_input_order() {
    // Later inputs finish first; -k still prints them in input order.
    let inputs: Vec<String> = (0..8).map(|i| format!("0.{}", 8 - i)).collect();
    let mut args = vec![
        "exec",
        "-q",
        "-k",
        "-j",
        "8",
        "sh",
        "-c",
        "sleep $0; echo $0",
    ];
    args.push(":::");
    args.extend(inputs.iter().map(String::as_str));
    let out = brigade(&args);
    assert_eq!(out.status.code(), Some(0));
    let got: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(got, inputs);
}

#[test]
fn exec_never_interleaves_two_jobs_output() {
    let script = "for i in $(seq 1 300); do echo \"job $0 line $i\"; done";
    let mut args = vec!["exec", "-q", "-j", "8", "sh", "-c", script, ":::"];
    let ids: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    args.extend(ids.iter().map(String::as_str));
    let out = brigade(&args);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 40 * 300);
    // Each job's 300 lines are one contiguous, complete block.
    for block in lines.chunks(300) {
        let job = block[0].split_whitespace().nth(1).unwrap();
        for (i, l) in block.iter().enumerate() {
            assert_eq!(*l, format!("job {job} line {}", i + 1));
        }
    }
}

#[test]
fn exec_timeout_kills_the_child_and_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    let out = brigade(&[
        "exec",
        "--json",
        "--timeout",
        "300ms",
        "sh",
        "-c",
        &script,
        ":::",
        "x",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout did not stop the job"
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_tail(&out);
    assert_eq!(v["timed_out"], 1);
    assert_gone(&pidfile, 10, "the background child survived the timeout");
}

#[test]
fn exec_retries_and_joblog() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jobs.log");
    // "flaky" fails the first time (creates its marker), then succeeds; "bad" always fails.
    let script = "if [ $0 = bad ]; then exit 3; fi; if [ -e m.$0 ]; then echo ok $0; else touch m.$0; exit 1; fi";
    let out = brigade_in(
        dir.path(),
        &[
            "exec",
            "--json",
            "-k",
            "--retries",
            "2",
            "--joblog",
            "jobs.log",
            "sh",
            "-c",
            script,
            ":::",
            "flaky",
            "bad",
            "fine",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_tail(&out);
    assert_eq!(
        (v["succeeded"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["retried"], 1 + 2 + 1); // flaky once, bad twice, fine once (its first run made the marker)
    assert!(
        text(&out.stderr).contains("job 2 (sh -c")
            && text(&out.stderr).contains("exited with code 3")
    );
    let log = std::fs::read_to_string(log).unwrap();
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
    assert_eq!(rows.len(), 4);
    let by_seq = |s: &str| rows.iter().find(|r| r[0] == s).unwrap().clone();
    assert_eq!(by_seq("1")[6], "0");
    assert_eq!(by_seq("2")[6], "3");
    assert_eq!(by_seq("3")[6], "0");
    assert!(by_seq("2")[8].starts_with("sh -c ") && by_seq("2")[8].ends_with(" bad"));
    for r in &rows[1..] {
        assert!(
            r[2].parse::<f64>().unwrap() > 1.6e9,
            "start time is epoch seconds"
        );
        assert!(r[3].parse::<f64>().unwrap() >= 0.0);
    }
}

#[test]
fn exec_dry_run_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = brigade_in(
        dir.path(),
        &[
            "exec",
            "--dry-run",
            "touch",
            "{/.}.done",
            ":::",
            "a/x.txt",
            "it's",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "touch x.done\ntouch 'it'\\''s.done'\n");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "dry run created files"
    );
}

#[test]
fn exec_shell_mode_and_missing_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = brigade_in(
        dir.path(),
        &[
            "exec",
            "-q",
            "--shell",
            "echo {} > {.}.out",
            ":::",
            "a.txt",
            "b c.txt",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b c.out")).unwrap(),
        "b c.txt\n"
    );

    let out = brigade(&["exec", "-q", "no-such-command-xyz", ":::", "1", "2"]);
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
        "{} exec -q -j 2 seq 1 100000 ::: 1 2 3 4 5 6 7 8 | head -n 1; echo \"status ${{PIPESTATUS[0]}}\"",
        bin().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let s = text(&out.stdout);
    assert!(s.ends_with("status 0\n"), "{s}");
    assert!(
        !text(&out.stderr).contains("panicked at"),
        "{}",
        text(&out.stderr)
    );
}

// ---- bad input -------------------------------------------------------------------------

#[test]
fn bad_input_is_exit_2_with_a_message_naming_it() {
    let cases: &[(&[&str], &str)] = &[
        (&["exec", "--timeout", "soon", "true", ":::", "x"], "soon"),
        (&["exec", "--rate", "0/s", "true", ":::", "x"], "0/s"),
        (&["exec", "-j", "0", "true", ":::", "x"], "worker"),
        (&["exec", "echo", "{..}", ":::", "x"], "{..}"),
        (
            &["exec", "-a", "/no/such/inputs", "echo"],
            "/no/such/inputs",
        ),
        (&["logs", "/no/such/dir"], "/no/such/dir"),
        (
            &["logs", "--pattern", "error=(unclosed", "."],
            "error=(unclosed",
        ),
        (&["logs", "--pattern", "nolevel", "."], "nolevel"),
        (&["demo", "--work", "forever"], "forever"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, named) in cases {
        let out = brigade(args);
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

// ---- Ctrl-C ----------------------------------------------------------------------------

#[test]
fn sigint_once_finishes_running_jobs_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin())
        .args([
            "exec",
            "--json",
            "-j",
            "1",
            "sh",
            "-c",
            "touch started.$0; sleep 0.5; echo done $0",
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
    let s = text(&out.stdout);
    assert!(
        s.contains("done 1\n"),
        "the running job was not let finish: {s}"
    );
    let v = json_tail(&out);
    assert_eq!(v["interrupted"], true);
    let ran = v["succeeded"].as_u64().unwrap();
    assert!(ran >= 1);
    assert_eq!(v["never_started"].as_u64().unwrap() + ran, 10, "{v}");
}

#[test]
fn sigint_twice_stops_at_once_and_kills_children() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin())
        .args([
            "exec",
            "-j",
            "2",
            "sh",
            "-c",
            "echo $$ > pid.$0; sleep 60",
            ":::",
            "a",
            "b",
            "c",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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

// ---- logs ------------------------------------------------------------------------------

/// A tree with known answers: (relative path, errors, warnings, lines).
fn log_tree(dir: &Path) -> Vec<(&'static str, u64, u64, u64)> {
    let w = |p: &str, body: &[u8]| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    w("app.log", b"INFO start\nERROR db down\nWARN slow\nerror: again\nWarning and FATAL on one line\nterrors are not errors\n");
    w(
        "sub/deep/worker.log",
        b"[WARN] a\n[warn] b\n[CRITICAL] c\nno newline at end ERR",
    );
    w("sub/empty.log", b"");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"ERROR zipped\nERROR zipped again\nWARNING zipped\nfine\n")
        .unwrap();
    w("old/app.log.gz", &gz.finish().unwrap());
    w("old/corrupt.gz", b"this is not gzip data");
    w("bin/core.dump", b"ERROR\0\0\0binary");
    vec![
        ("app.log", 3, 1, 6),
        ("sub/deep/worker.log", 2, 2, 4),
        ("sub/empty.log", 0, 0, 0),
        ("old/app.log.gz", 2, 1, 4),
    ]
}

#[test]
fn logs_counts_a_tree_with_known_answers() {
    let dir = tempfile::tempdir().unwrap();
    let want = log_tree(dir.path());
    let out = brigade_in(dir.path(), &["logs", "--json", "."], "");
    // The corrupt .gz is unreadable: reported, skipped, and the run says some failed.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_tail(&out);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), want.len(), "{v}");
    for (path, errors, warnings, lines) in &want {
        let f = files
            .iter()
            .find(|f| f["path"].as_str().unwrap().trim_start_matches("./") == *path)
            .unwrap_or_else(|| panic!("{path} missing from {v}"));
        assert_eq!(f["errors"], *errors, "{path}");
        assert_eq!(f["warnings"], *warnings, "{path}");
        assert_eq!(f["lines"], *lines, "{path}");
        assert!(f["bytes"].as_u64().is_some());
    }
    // Sorted by errors, most first.
    let errs: Vec<u64> = files
        .iter()
        .map(|f| f["errors"].as_u64().unwrap())
        .collect();
    assert!(errs.windows(2).all(|w| w[0] >= w[1]), "{errs:?}");
    assert_eq!(v["totals"]["errors"], 7);
    assert_eq!(v["totals"]["warnings"], 4);
    assert_eq!(v["totals"]["files"], 4);
    assert_eq!(v["skipped"][0]["reason"], "binary");
    assert!(v["skipped"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("core.dump"));
    assert!(v["unreadable"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("corrupt.gz"));
    assert_eq!(v["summary"]["jobs"], 6);
    assert_eq!(v["summary"]["failed"], 1);
    assert_eq!(v["summary"]["exit_code"], 1);
}

#[test]
fn logs_table_top_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    log_tree(dir.path());
    let out = brigade_in(dir.path(), &["logs", "--top", "2", "."], "");
    let s = text(&out.stdout);
    let rows: Vec<&str> = s.lines().collect();
    assert!(
        rows[0].contains("ERRORS") && rows[0].contains("FILE"),
        "{s}"
    );
    assert!(
        rows[1].ends_with("app.log") && rows[1].trim_start().starts_with('3'),
        "{s}"
    );
    assert!(
        rows[2].ends_with("worker.log") || rows[2].ends_with("app.log.gz"),
        "{s}"
    );
    assert!(s.contains("2 more files"), "{s}");
    assert!(
        rows.last()
            .unwrap()
            .contains("total: 4 files, 1 binary skipped, 1 unreadable"),
        "{s}"
    );
    let err = text(&out.stderr);
    assert!(err.contains("core.dump: binary file, skipped"), "{err}");
    assert!(err.contains("corrupt.gz"), "{err}");
}

#[test]
fn logs_custom_patterns_and_a_missing_path_among_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.log"),
        "thread panicked at src/x.rs\nDeprecated call\nERROR\n",
    )
    .unwrap();
    let out = brigade_in(
        dir.path(),
        &[
            "logs",
            "--json",
            "--no-default-patterns",
            "--pattern",
            "error=panicked at",
            "--pattern",
            "warning=(?i)deprecated",
            "a.log",
            "missing.log",
        ],
        "",
    );
    // The missing path is bad input (exit 2), named, and the good file is still counted.
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.log"));
    let v = json_tail(&out);
    assert_eq!(v["files"][0]["errors"], 1);
    assert_eq!(v["files"][0]["warnings"], 1);
}
