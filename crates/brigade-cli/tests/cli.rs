//! End-to-end tests: they run the `brigade` binary as a user would.
//! (`brigade exec` has its own: tests/exec_*.rs.)

use std::io::Write;
use std::path::Path;

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

// ---- bad input -------------------------------------------------------------------------

#[test]
fn bad_input_is_exit_2_with_a_message_naming_it() {
    let cases: &[(&[&str], &str)] = &[
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
