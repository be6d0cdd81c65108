//! The differential suite: the same command line through GNU parallel (the
//! oracle) and through `brigade exec` must print the same stdout, byte for
//! byte, in -k order (or sorted, where the order is free).
//!
//! Both run with PARALLEL_SHELL=/bin/sh (brigade always uses sh) and HOME in
//! a temporary folder. Without GNU parallel the suite skips with a reason, or
//! fails when BRIGADE_REQUIRE_SERVICES is set.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Output};

mod common;
mod exec_support;

use exec_support::*;

/// One command line, its stdin and files, and how to compare.
struct Case {
    args: Vec<Vec<u8>>,
    stdin: Vec<u8>,
    files: Vec<(&'static str, Vec<u8>)>,
    sorted: bool,
}

fn c(args: &[&str]) -> Case {
    Case {
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        stdin: Vec::new(),
        files: Vec::new(),
        sorted: false,
    }
}

impl Case {
    fn stdin(mut self, s: impl AsRef<[u8]>) -> Case {
        self.stdin = s.as_ref().to_vec();
        self
    }
    fn file(mut self, name: &'static str, s: impl AsRef<[u8]>) -> Case {
        self.files.push((name, s.as_ref().to_vec()));
        self
    }
    fn sorted(mut self) -> Case {
        self.sorted = true;
        self
    }
    fn arg_bytes(mut self, b: &[u8]) -> Case {
        self.args.push(b.to_vec());
        self
    }
}

fn sorted_lines(b: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = b.split(|&x| x == b'\n').map(<[u8]>::to_vec).collect();
    v.sort();
    v
}

fn run_tool(parallel: Option<&Path>, dir: &Path, case: &Case) -> Output {
    let args: Vec<OsString> = case
        .args
        .iter()
        .map(|a| OsString::from_vec(a.clone()))
        .collect();
    let mut cmd = match parallel {
        Some(p) => {
            let mut c = Command::new(p);
            c.arg("--will-cite");
            c
        }
        None => {
            let mut c = Command::new(common::bin());
            c.args(["exec", "--quiet"]);
            c
        }
    };
    cmd.args(&args)
        .env("PARALLEL_SHELL", "/bin/sh")
        .env("HOME", dir)
        .env_remove("PARALLEL");
    run_with_stdin(cmd, dir, &case.stdin)
}

/// Runs every case through both tools; fails listing every difference.
fn check(cases: Vec<Case>) {
    let Some(parallel) = gnu_parallel() else {
        return;
    };
    let mut bad = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &case.files {
            write(dir.path(), name, bytes);
        }
        let want = run_tool(Some(&parallel), dir.path(), case);
        let got = run_tool(None, dir.path(), case);
        let shown: Vec<String> = case
            .args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let same = if case.sorted {
            sorted_lines(&want.stdout) == sorted_lines(&got.stdout)
        } else {
            want.stdout == got.stdout
        };
        if !same {
            bad.push(format!(
                "case {i} {shown:?}:\n  parallel: {:?}\n  brigade:  {:?}\n  brigade stderr: {}",
                String::from_utf8_lossy(&want.stdout[..want.stdout.len().min(300)]),
                String::from_utf8_lossy(&got.stdout[..got.stdout.len().min(300)]),
                String::from_utf8_lossy(&got.stderr)
            ));
        } else if want.status.success() != got.status.success() {
            bad.push(format!(
                "case {i} {shown:?}: parallel exit {:?}, brigade exit {:?}: {}",
                want.status.code(),
                got.status.code(),
                String::from_utf8_lossy(&got.stderr)
            ));
        }
        if want.stdout.is_empty() && !case.args.iter().any(|a| a == b"true") {
            bad.push(format!(
                "case {i} {shown:?}: the oracle printed nothing, the case proves nothing: {}",
                String::from_utf8_lossy(&want.stderr)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} cases differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn replacement_strings() {
    check(vec![
        c(&["echo", ":::", "a", "b", "c"]).sorted(),
        c(&["-k", "echo", "{}", ":::", "a", "b", "c"]),
        c(&[
            "-k", "echo", "{.}", ":::", "a.txt", "b.tar.gz", "c", ".hidden", "d.x/y",
        ]),
        c(&["-k", "echo", "{/}", ":::", "/x/y.txt", "y", "a/b/"]),
        c(&[
            "-k", "echo", "{//}", ":::", "/x/y.txt", "y", "a/b/c", "/a/b/", "/",
        ]),
        c(&["-k", "echo", "{/.}", ":::", "/x/y.txt", "a.b.c", "x/.y"]),
        c(&["-k", "echo", "{#}", "{}", ":::", "a", "b", "c"]),
        c(&["-k", "-j1", "echo", "{%}", "{}", ":::", "a", "b"]),
        c(&["-k", "echo", "pre-{}-post", ":::", "a", "b"]),
        c(&["-k", "echo", "{}", "{}", "{.}", ":::", "a b.txt"]),
        c(&["-k", "echo", "x{}y", ":::", ""]),
        c(&[
            "-k", "echo", "{1.}", "{2/}", ":::", "a.x", "b.y", ":::", "d/e",
        ]),
        c(&[
            "-k", "echo", "{2}", "{1}", "{3}", ":::", "a", "b", ":::", "1",
        ]),
    ]);
}

#[test]
fn input_sources() {
    check(vec![
        c(&["-k", "echo", "{1}-{2}", ":::", "a", "b", ":::", "1", "2"]),
        c(&[
            "-k", "echo", ":::", "a", "b", ":::", "1", "2", ":::", "x", "y",
        ]),
        c(&[
            "-k", "echo", "{2}", "{1}", ":::", "a", "b", ":::+", "1", "2",
        ]),
        c(&["-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"]),
        c(&["-k", "echo", "x{}y", ":::", "a", "b", ":::", "1", "2"]),
        c(&["-k", "echo"]).stdin("a\nb\nc\n"),
        c(&["-k", "echo", "x{}y"]).stdin("a\n\nb\n\n"),
        c(&["-k", "-r", "echo", "x{}y"]).stdin("a\n\n  \nb c\n"),
        c(&["-k", "echo", "[{}]"]).stdin("no newline at the end"),
        c(&["-k", "-0", "echo", "[{}]"]).stdin("a b\0c\nd\0e"),
        c(&["-k", "--null", "printf", "%s,", "{}"]).stdin("x\ny\0z\0"),
        c(&["-k", "-d", ",", "echo", "[{}]"]).stdin("a,b,c"),
        c(&["-k", "-a", "f1", "echo"]).file("f1", "p\nq\n"),
        c(&["-k", "-a", "f1", "-a", "f2", "echo"])
            .file("f1", "p\nq\n")
            .file("f2", "1\n2\n"),
        c(&["-k", "echo", "::::", "f1"]).file("f1", "p\nq\n"),
        c(&["-k", "echo", "::::", "f1", "f2"])
            .file("f1", "p\nq\n")
            .file("f2", "1\n2\n"),
        c(&["-k", "echo", "::::", "f1", ":::", "x", "y"]).file("f1", "p\nq\n"),
        c(&["-k", "echo", "::::", "f1", "::::+", "f2"])
            .file("f1", "p\nq\n")
            .file("f2", "1\n2\n"),
        c(&["-k", "echo", "[{}]", "::::", "f1"]).file("f1", "dos\r\nline\r\n"),
        c(&["-k", "--colsep", ",", "echo", "{2}:{1}"]).stdin("a,b\nc,d\n"),
        c(&["-k", "--colsep", "\\t", "echo", "{1}"]).stdin("a\tb\nc\td\n"),
        c(&["-k", "--colsep", " +", "echo", "{3}"]).stdin("a  b   c\nd e f\n"),
        c(&[
            "-k", "--colsep", ",", "--header", ":", "echo", "{name}", "is", "{age}",
        ])
        .stdin("name,age\nann,31\nbob,42\n"),
        c(&[
            "-k", "--header", ":", "echo", "{x}-{y}", ":::", "x", "1", "2", ":::", "y", "a", "b",
        ]),
    ]);
}

#[test]
fn several_inputs_per_job() {
    check(vec![
        c(&["-k", "-j1", "-X", "echo", ":::", "1", "2", "3", "4", "5"]),
        c(&["-k", "-j1", "-m", "echo", ":::", "1", "2", "3"]),
        c(&[
            "-k",
            "-j2",
            "-X",
            "echo",
            "pre{}post",
            ":::",
            "1",
            "2",
            "3",
            "4",
        ]),
        c(&[
            "-k", "-j3", "-m", "echo", "[{}]", ":::", "1", "2", "3", "4", "5",
        ]),
        c(&["-k", "-n2", "echo", ":::", "1", "2", "3", "4", "5"]),
        c(&["-k", "-n2", "echo", "x{}y", ":::", "1", "2", "3"]),
        c(&["-k", "-N2", "echo", "{1}+{2}", ":::", "1", "2", "3"]),
        c(&["-k", "-N0", "echo", "hi", ":::", "1", "2", "3"]),
        c(&["-k", "-n3", "echo"]).stdin("1\n2\n3\n4\n"),
    ]);
}

#[test]
fn the_shell_and_quoting() {
    check(vec![
        c(&["-k", "echo {} | tr a-z A-Z", ":::", "abc", "def"]),
        c(&["-k", "echo {}; echo again {}", ":::", "a", "b"]),
        c(&[
            "-k", "echo", ":::", "it's", "a\"b", "a b", "$HOME", "`id`", "*", "a;b", "a|b",
        ]),
        c(&["-k", "echo", ":::", "a  b", " lead", "trail ", "tab\there"]),
        c(&["-k", "printf", "%s,\\n", ":::", "a\\nb", "x\\ty"]),
        c(&["-k", "echo", ":::", "a\\b"]),
        c(&[
            "-k", "echo", "{}", ">", "out.{#};", "cat", "out.{#}", ":::", "x y", "z",
        ]),
        c(&["-k", "-q", "printf", "%s|%s\\n", "a b", ":::", "x", "y z"]),
        c(&[
            "-k",
            "-q",
            "sh",
            "-c",
            "echo \"$0-$1\"",
            "{}",
            "x",
            ":::",
            "a",
            "b c",
        ]),
        c(&["-k", ":::", "echo a", "echo b; echo c"]),
        c(&["-k", "FOO=bar", "sh", "-c", "'echo $FOO {}'", ":::", "1"]),
        c(&[
            "-k", "test", "-n", "{}", "&&", "echo", "yes", "{}", ":::", "a", "",
        ]),
        c(&[
            "-k",
            "--dry-run",
            "echo",
            ":::",
            "a b",
            "it's",
            "$x",
            "é",
            "a,b",
            "a+b",
            "'",
            "",
        ]),
        c(&[
            "-k",
            "--dry-run",
            "cp",
            "{}",
            "{.}.bak",
            ":::",
            "one two.txt",
        ]),
    ]);
}

#[test]
fn unicode_and_bytes() {
    check(vec![
        c(&["-k", "echo", ":::", "héllo", "日本語", "🎉", "ÅÄÖ"]),
        c(&[
            "-k",
            "echo",
            "{.}",
            "{/}",
            ":::",
            "dir/файл.txt",
            "名前.tar.gz",
        ]),
        c(&["-k", "echo", "«{}»"]).stdin("ça\nva\n"),
        c(&["-k", "printf", "%s,", ":::"])
            .arg_bytes(b"caf\xe9")
            .arg_bytes(b"\xff\xfe"),
        c(&["-k", "printf", "%s,"]).stdin(b"caf\xe9\n\xff\n".as_slice()),
        c(&["-k", "-0", "printf", "%s,"]).stdin(b"new\nline\0\xe9\0".as_slice()),
    ]);
}

#[test]
fn job_set_and_output_options() {
    let many: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    let mut lots = vec!["-k", "-j4", "echo", ":::"];
    lots.extend(many.iter().map(String::as_str));
    let mut lots_unordered = vec!["-j4", "echo", "n{}", ":::"];
    lots_unordered.extend(many.iter().map(String::as_str));
    check(vec![
        c(&lots),
        c(&lots_unordered).sorted(),
        c(&["-k", "--tag", "echo", ":::", "a", "b"]),
        c(&["-k", "--tag", "echo", ":::", "a", "b", ":::", "1", "2"]),
        c(&["-k", "--tag", "printf", "l1\\nl2\\n", ":::", "x"]),
        c(&["-k", "-j", "50%", "echo", ":::", "a", "b"]),
        c(&["-k", "-j", "+1", "echo", ":::", "a", "b"]),
        c(&["-k", "-j", "0", "echo", ":::", "a", "b", "c"]),
        c(&["-k", "--delay", "0.01", "echo", ":::", "a", "b"]),
        c(&["--line-buffer", "echo", ":::", "a", "b", "c"]).sorted(),
        c(&["-u", "echo", ":::", "a", "b", "c"]).sorted(),
        c(&["-k", "--retries", "2", "echo", ":::", "a"]),
        c(&["-k", "--timeout", "10", "echo", ":::", "a"]),
        // A relative timeout: the last job, 100x the others' median, is stopped.
        c(&[
            "-k",
            "-j1",
            "--timeout",
            "1000%",
            "sleep {}; echo {}",
            ":::",
            "0.2",
            "0.2",
            "0.2",
            "20",
        ]),
        c(&["-k", "--joblog", "log", "echo", ":::", "a", "b"]),
        c(&["-k", "--halt", "soon,fail=1", "echo", ":::", "a", "b"]),
        c(&["-k", "true", ":::", "a", "b"]),
    ]);
}

#[test]
fn huge_outputs() {
    check(vec![
        c(&["-k", "seq 1 200000 | sed s/^/{}:/", ":::", "a", "b", "c"]),
        c(&["-k", "-j3", "yes {} | head -n 100000", ":::", "x", "y", "z"]),
        c(&["-k", "--tag", "seq 1 50000; echo {}", ":::", "p", "q"]),
        c(&["-j3", "seq 1 100000 | sed s/^/{}:/", ":::", "a", "b", "c"]).sorted(),
    ]);
}

#[test]
fn pipe_mode() {
    let lines: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    check(vec![
        c(&["-k", "--pipe", "-N3", "wc", "-l"]).stdin("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
        c(&["-k", "--pipe", "--block", "6", "wc", "-c"]).stdin("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
        c(&["-k", "--pipe", "cat"]).stdin("hello\nworld\n"),
        c(&["-k", "--pipe", "-N100", "sort -n | tail -n 1"]).stdin(&lines),
        c(&["-k", "--pipe", "--block", "1k", "wc", "-l"]).stdin(&lines),
    ]);
}

/// Every file under `root`, with its contents, sorted.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn results_folders_match() {
    let Some(parallel) = gnu_parallel() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let case = c(&[
        "--results",
        "res",
        "sh -c 'echo out {1} {2}; echo err {1} >&2'",
        ":::",
        "a/b",
        "c\\d",
        "e f",
        ":::",
        "1",
        "2",
    ]);
    let want = run_tool(Some(&parallel), dir.path(), &case);
    std::fs::rename(dir.path().join("res"), dir.path().join("want")).unwrap();
    let got = run_tool(None, dir.path(), &case);
    assert!(
        want.status.success() && got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        got.stdout, want.stdout,
        "--results prints nothing on stdout"
    );
    let (want, got) = (
        tree(&dir.path().join("want")),
        tree(&dir.path().join("res")),
    );
    assert_eq!(want.len(), 6 * 3, "{want:?}");
    assert_eq!(got, want);
}
