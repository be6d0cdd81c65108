//! `brigade logs` end to end: per-line anchors (rg as the oracle), symlinks,
//! standard input, the compressed formats, --glob / --iglob.
//! (The first tests are in cli.rs; memory is in logs_memory.rs.)

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::*;

/// `rg`, or None (with the reason printed) when it is missing and the
/// services are not required.
fn rg() -> Option<&'static str> {
    let found = Command::new("rg")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_none(),
            "rg (ripgrep) is not installed and BRIGADE_REQUIRE_SERVICES is set"
        );
        eprintln!("skipped: rg (ripgrep) is not installed");
        return None;
    }
    Some("rg")
}

/// rg's count of matching lines in one file (0 when none match).
fn rg_count(file: &Path, args: &[&str]) -> u64 {
    let out = Command::new(rg().unwrap())
        .args(["-c", "--no-config"])
        .args(args)
        .arg(file)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(out.status.code() != Some(2), "rg: {}", text(&out.stderr));
    text(&out.stdout).trim().parse().unwrap_or(0)
}

/// brigade's (errors, warnings) for one file.
fn counts(file: &Path, args: &[&str]) -> (u64, u64) {
    let mut all = vec!["logs", "--json", "-q"];
    all.extend_from_slice(args);
    all.push(file.to_str().unwrap());
    let out = brigade(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json_tail(&out);
    let t = &v["totals"];
    (
        t["errors"].as_u64().unwrap(),
        t["warnings"].as_u64().unwrap(),
    )
}

#[test]
fn pattern_anchors_match_per_line_as_rg_counts() {
    if rg().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    std::fs::write(
        &file,
        "ERROR a\nEb\nEc\nxE\n\n  at frame 1\n  at frame 2\nend x\nx\nthe end\nE",
    )
    .unwrap();
    for re in [
        "^E", "E$", "^$", r"^\s+at ", "x$", r"^\w+$", "end", r"a\s+E", "^[^E]*$",
    ] {
        let want = rg_count(&file, &["-e", re]);
        let got = counts(
            &file,
            &["--no-default-patterns", "--pattern", &format!("error={re}")],
        );
        assert_eq!(got, (want, 0), "pattern {re:?}: rg counts {want}");
    }
    // The issue's case: 3 lines start with E (and a 4th, at the end, without a newline).
    let got = counts(&file, &["--no-default-patterns", "--pattern", "error=^E"]);
    assert_eq!(got, (4, 0));
}

/// Deterministic log lines, level words and lookalikes in random case, some
/// lines long: several chunks' worth, so lines cross the reader's chunk edges.
fn soup(bytes: usize) -> String {
    let parts = "error Err ERRORS terror fatal critical crit warn Warning warned swarn \
                 err-1 WARN: [CRITICAL] fatalistic _warn warn_ err9 info served 12ms user=bob";
    let parts: Vec<&str> = parts.split_whitespace().collect();
    let mut s = String::new();
    let mut seed = 11u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while s.len() < bytes {
        let words = 1 + next() % if next() % 50 == 0 { 2000 } else { 12 };
        for _ in 0..words {
            let r = next();
            for c in parts[(r % parts.len() as u64) as usize].chars() {
                s.push(if next() % 3 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                });
            }
            s.push(' ');
        }
        s.push('\n');
    }
    s
}

#[test]
fn default_words_count_as_rg_does_across_chunks() {
    if rg().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("soup.log");
    std::fs::write(&file, soup(3 << 20)).unwrap();
    let error_words = ["-e", "error", "-e", "err", "-e", "fatal", "-e", "critical"];
    let mut all = error_words.to_vec();
    all.extend(["-e", "warn", "-e", "warning"]);
    let mut flags = vec!["-i", "-w"];
    let errors = rg_count(&file, &[flags.clone(), error_words.to_vec()].concat());
    flags.extend(all);
    let any = rg_count(&file, &flags);
    assert!(errors > 1000 && any > errors, "{errors} {any}");
    assert_eq!(counts(&file, &[]), (errors, any - errors));
    // The regex path (a --pattern that matches nothing) agrees too.
    assert_eq!(
        counts(&file, &["--pattern", "error=^NEVER_THERE$"]),
        (errors, any - errors)
    );
}

#[test]
fn a_symlink_named_is_followed_and_those_inside_folders_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::create_dir_all(d.join("elsewhere")).unwrap();
    std::fs::write(d.join("elsewhere/real.log"), "ERROR a\nWARN b\n").unwrap();
    std::fs::write(d.join("logs/own.log"), "FATAL c\n").unwrap();
    std::os::unix::fs::symlink("../elsewhere/real.log", d.join("logs/linked.log")).unwrap();
    std::os::unix::fs::symlink("elsewhere/real.log", d.join("named.log")).unwrap();

    // Named on the command line: followed, as rg does.
    let out = brigade_in(d, &["logs", "--json", "named.log"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json_tail(&out);
    assert_eq!(v["totals"]["files"], 1, "{v}");
    assert_eq!(v["files"][0]["path"], "named.log");
    assert_eq!(v["files"][0]["errors"], 1);

    // Inside a folder: not followed, and said so.
    let out = brigade_in(d, &["logs", "logs"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("linked.log: symlink, not followed"),
        "stderr: {err}"
    );
    assert!(text(&out.stdout).contains("total: 1 files, 1 other skipped"));
    let v = json_tail(&brigade_in(d, &["logs", "--json", "logs"], ""));
    assert!(v["skipped"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("linked.log"));
    assert!(v["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("symlink"));

    // --follow follows it.
    let v = json_tail(&brigade_in(d, &["logs", "--json", "--follow", "logs"], ""));
    assert_eq!(v["totals"]["files"], 2, "{v}");
    assert_eq!(v["totals"]["errors"], 2);
}

#[test]
fn unreadable_files_in_a_folder_are_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.log"), "ERROR\n").unwrap();
    let locked = dir.path().join("locked.log");
    std::fs::write(&locked, "ERROR\n").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&locked).is_ok() {
        eprintln!("skipped: this user (root) reads files whatever their mode");
        return;
    }
    let out = brigade_in(dir.path(), &["logs", "."], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("locked.log"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("total: 1 files, 1 unreadable"));
}

#[test]
fn dash_reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "WARN x\n").unwrap();
    let out = brigade_in(
        dir.path(),
        &["logs", "--json", "-", "a.log"],
        "ERROR one\nfine\nwarning two\nerror three",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json_tail(&out);
    let stdin = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "<stdin>")
        .unwrap_or_else(|| panic!("no <stdin> in {v}"));
    assert_eq!(stdin["errors"], 2);
    assert_eq!(stdin["warnings"], 1);
    assert_eq!(stdin["lines"], 4);
    assert_eq!(v["totals"]["warnings"], 2);
    let out = brigade(&["logs", "-", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("standard input"));
}

#[test]
fn bz2_xz_and_zst_are_read_as_gz_is() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"ERROR a\nWARN b\nfine\nFATAL c\n".repeat(1000);
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&body).unwrap();
    std::fs::write(dir.path().join("a.log.bz2"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&body).unwrap();
    std::fs::write(dir.path().join("b.log.xz"), xz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("c.log.zst"),
        zstd::encode_all(&body[..], 3).unwrap(),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    std::fs::write(dir.path().join("d.log.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.path().join("e.xz"), b"not xz at all").unwrap();

    let out = brigade_in(dir.path(), &["logs", "--json", "."], "");
    let v = json_tail(&out);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 4, "{v}");
    for f in files {
        assert_eq!(f["errors"], 2000, "{f}");
        assert_eq!(f["warnings"], 1000, "{f}");
        assert_eq!(f["lines"], 4000, "{f}");
        assert_eq!(f["bytes"], body.len(), "{f}");
    }
    // A file that is not what its name says: named, and the rest still counted.
    assert_eq!(out.status.code(), Some(1));
    assert!(v["unreadable"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("e.xz"));
}

#[test]
fn globs_include_and_exclude_as_rg_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for p in [
        "a.log",
        "b.txt",
        "C.LOG",
        "old/c.log",
        "sub/keep.log",
        "sub/drop.log",
    ] {
        let path = d.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "ERROR\n").unwrap();
    }
    let found = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["logs", "--json"];
        all.extend_from_slice(args);
        let out = brigade_in(d, &all, "");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let mut names: Vec<String> = json_tail(&out)["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("./")
                    .to_string()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        found(&["-g", "*.log", "-g", "!old/", "."]),
        ["a.log", "sub/drop.log", "sub/keep.log"]
    );
    assert_eq!(
        found(&["--iglob", "*.log", "-g", "!sub/drop.log", "."]),
        ["C.LOG", "a.log", "old/c.log", "sub/keep.log"]
    );
    // The later glob wins.
    assert_eq!(
        found(&["-g", "!*.log", "--glob", "keep.log", "sub"]),
        ["sub/keep.log"]
    );
    // A file named on the command line is read whatever the globs.
    assert_eq!(found(&["-g", "*.log", "b.txt"]), ["b.txt"]);
    let out = brigade_in(d, &["logs", "-g", "a[", "."], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("a["), "{}", text(&out.stderr));
}

#[test]
fn a_line_longer_than_the_limit_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut long = b"ERROR first\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5 << 20));
    long.extend_from_slice(b"\nERROR after\n");
    std::fs::write(dir.path().join("long.log"), long).unwrap();
    std::fs::write(dir.path().join("ok.log"), "ERROR\n").unwrap();
    let out = brigade_in(dir.path(), &["logs", "--json", "."], "");
    assert_eq!(out.status.code(), Some(1));
    let v = json_tail(&out);
    assert_eq!(v["totals"]["files"], 1);
    let why = v["unreadable"][0]["reason"].as_str().unwrap();
    assert!(why.contains("long.log") && why.contains("line 2"), "{why}");
}
