//! End-to-end tests of `brigade mail` against a real SMTP server: aiosmtpd
//! (Debian's python3-aiosmtpd, run with /usr/bin/python3), started by each
//! test on a free port with the handler in `mail_support/smtp_sink.py`, which
//! misbehaves on request (451s, 550s, dropped connections, idle timeouts,
//! STARTTLS) and appends every message it accepts to a file before it says
//! 250. The tests read that file: every message, each exactly once.
//!
//! With BRIGADE_REQUIRE_SERVICES set (CI), a missing aiosmtpd fails the test;
//! without it, the test says why and skips.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{bin, text, wait_or_fail};

const PYTHON: &str = "/usr/bin/python3";

/// A running aiosmtpd sink, killed on drop.
struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Sink {
    /// Starts the sink with extra options; None (skip) if aiosmtpd is missing and not required.
    fn start(dir: &Path, name: &str, extra: &[&str]) -> Option<Sink> {
        let ok = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            if std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_some() {
                panic!("aiosmtpd is required (BRIGADE_REQUIRE_SERVICES) but {PYTHON} cannot import it: apt-get install python3-aiosmtpd");
            }
            eprintln!(
                "skipped: {PYTHON} cannot import aiosmtpd (apt-get install python3-aiosmtpd)"
            );
            return None;
        }
        let out = dir.join(format!("{name}.arrived.jsonl"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mail_support/smtp_sink.py");
        let mut child = Command::new(PYTHON)
            .arg(script)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the sink did not start: {line:?}"));
        Some(Sink { child, port, out })
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far.
    fn arrived(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.out) {
            Ok(s) => s
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// How many copies each recipient got.
    fn copies(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for msg in self.arrived() {
            for r in msg["rcpt_tos"].as_array().unwrap() {
                *m.entry(r.as_str().unwrap().to_lowercase()).or_default() += 1;
            }
        }
        m
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_mail(dir: &Path, args: &[&str]) -> Child {
    Command::new(bin())
        .arg("mail")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run brigade")
}

fn mail(dir: &Path, args: &[&str]) -> Output {
    wait_or_fail(spawn_mail(dir, args), 120)
}

/// `brigade mail --smtp URL --to to.csv --template t.txt EXTRA...`
fn send(dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--smtp", url, "--to", "to.csv", "--template", "t.txt"];
    args.extend_from_slice(extra);
    mail(dir, &args)
}

/// Writes `to.csv` (N recipients `{prefix}{i}@x.org` with a name and a code) and `t.txt`.
fn inputs(d: &Path, prefix: &str, n: usize) {
    let mut rows = String::from("email,name,code\n");
    for i in 0..n {
        rows.push_str(&format!("{prefix}{i}@x.org,N{i},{i}\n"));
    }
    std::fs::write(d.join("to.csv"), rows).unwrap();
    std::fs::write(d.join("t.txt"), TEMPLATE).unwrap();
}

fn json(out: &Output) -> Value {
    let s = text(&out.stdout);
    let last = s
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no JSON on stdout; stderr:\n{}", text(&out.stderr)));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// The ledger's lines.
fn ledger(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each recipient's last status in the ledger.
fn last_status(lines: &[Value]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for l in lines {
        let who = l["recipient"].as_str().unwrap().to_lowercase();
        let st = l["status"].as_str().unwrap().to_string();
        // A `skipped` line for a repeat never overrides a real state.
        if st == "skipped" && m.contains_key(&who) {
            continue;
        }
        m.insert(who, st);
    }
    m
}

/// Seconds since midnight UTC of a ledger time stamp (the tests run for seconds).
fn secs_of_day(t: &str) -> f64 {
    let hms = &t[11..23];
    let h: f64 = hms[0..2].parse().unwrap();
    let m: f64 = hms[3..5].parse().unwrap();
    let s: f64 = hms[6..].parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

const TEMPLATE: &str = "Subject: Hello {{ name }}\nFrom: Shop <shop@example.com>\n\n\
Dear {{ name }}, your code is {{ code }}.\n--- html ---\n<p>Dear {{ name }}</p>\n";

fn stderr_of(o: &Output) -> String {
    text(&o.stderr)
}

#[test]
fn every_message_exactly_once_through_451_550_and_dropped_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(sink) = Sink::start(
        d,
        "main",
        &[
            "--temp-rcpt",
            "r3@x.org:2",
            "--temp-rcpt",
            "r7@x.org:1",
            "--temp-data",
            "r5@x.org:1",
            "--greylist",
            "r13@x.org:1",
            "--perm",
            "r9@x.org",
            "--perm",
            "r11@x.org",
            "--drop-after",
            "4",
        ],
    ) else {
        return;
    };
    // 30 good rows, two bad ones, one repeat.
    let mut rows = String::new();
    for i in 0..30 {
        rows.push_str(&format!(
            "{{\"email\":\"r{i}@x.org\",\"name\":\"N<{i}>\",\"code\":{}}}\n",
            i * 7
        ));
    }
    rows.push_str("{\"email\":\"not an address\",\"name\":\"x\",\"code\":1}\n");
    rows.push_str("{\"email\":\"nocode@x.org\",\"name\":\"x\"}\n");
    rows.push_str("{\"email\":\"R4@x.org\",\"name\":\"again\",\"code\":1}\n");
    std::fs::write(d.join("to.jsonl"), rows).unwrap();
    std::fs::write(d.join("t.txt"), TEMPLATE).unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    std::fs::write(d.join("data.bin"), &binary).unwrap();
    std::fs::write(d.join("note.txt"), "a note\n").unwrap();
    let url = sink.url();
    let args = [
        "--smtp",
        &url,
        "--to",
        "to.jsonl",
        "--template",
        "t.txt",
        "--status",
        "st.jsonl",
        "--attach",
        "data.bin",
        "--attach",
        "note.txt",
        "-j",
        "3",
        "--backoff",
        "50ms",
        "--run-id",
        "run-a",
        "--json",
    ];
    let out = mail(d, &args);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let j = json(&out);
    assert_eq!(j["sent"], 28, "{j}");
    assert_eq!(j["perm_fail"], 2, "{j}");
    assert_eq!(j["skipped"], 2, "{j}");
    assert_eq!(j["duplicates"], 1, "{j}");
    assert_eq!(j["unknown"], 0, "{j}");
    assert!(
        err.contains("not an address") && err.contains("this row has no code"),
        "{err}"
    );

    let copies = sink.copies();
    for i in 0..30 {
        let who = format!("r{i}@x.org");
        let want = usize::from(i != 9 && i != 11);
        assert_eq!(
            copies.get(&who).copied().unwrap_or(0),
            want,
            "{who}: {copies:?}"
        );
    }
    assert_eq!(copies.len(), 28);

    let lines = ledger(&d.join("st.jsonl"));
    let last = last_status(&lines);
    let mut ids = HashMap::new();
    for l in &lines {
        if l["status"] == "sent" {
            ids.insert(
                l["recipient"].as_str().unwrap().to_string(),
                l["message_id"].as_str().unwrap().to_string(),
            );
        }
    }
    for msg in sink.arrived() {
        let who = msg["rcpt_tos"][0].as_str().unwrap();
        let i: usize = who[1..who.find('@').unwrap()].parse().unwrap();
        let h = &msg["headers"];
        assert_eq!(h["subject"], format!("Hello N<{i}>"));
        assert_eq!(h["to"], who);
        assert_eq!(h["from"], "Shop <shop@example.com>");
        assert_eq!(msg["mail_from"], "shop@example.com");
        let id = h["message-id"].as_str().unwrap();
        assert_eq!(ids[who], id, "the ledger has the Message-ID that went out");
        assert!(id.ends_with(".run-a@example.com>"), "{id}");
        let parts = msg["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 4, "{parts:?}");
        assert_eq!(parts[0]["type"], "text/plain");
        assert!(parts[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Dear N<{i}>, your code is {}.", i * 7)));
        assert_eq!(parts[1]["type"], "text/html");
        assert!(parts[1]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("<p>Dear N&lt;{i}&gt;</p>")));
        assert_eq!(parts[2]["filename"], "data.bin");
        assert_eq!(parts[2]["type"], "application/octet-stream");
        let hex: String = binary.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parts[2]["hex"], hex.as_str());
        assert_eq!(parts[3]["filename"], "note.txt");
        assert!(parts[3]["text"].as_str().unwrap().starts_with("a note"));
    }
    // Message-IDs are distinct per recipient.
    let distinct: std::collections::HashSet<_> = ids.values().collect();
    assert_eq!(distinct.len(), ids.len());

    // The ledger: retries recorded, 5xx permanent, bad rows skipped with reasons.
    assert_eq!(last["r9@x.org"], "perm_fail");
    assert_eq!(last["r3@x.org"], "sent");
    // (A connection the sink dropped at MAIL is a temp_fail without a code: left out here.)
    let replies = |who: &str| -> Vec<(String, Value)> {
        lines
            .iter()
            .filter(|l| l["recipient"] == who)
            .filter(|l| !(l["status"] == "temp_fail" && l["smtp_code"].is_null()))
            .map(|l| {
                (
                    l["status"].as_str().unwrap().to_string(),
                    l["smtp_code"].clone(),
                )
            })
            .collect()
    };
    let st = |v: &[(String, Value)]| v.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    let r3 = replies("r3@x.org");
    assert_eq!(st(&r3), ["temp_fail", "temp_fail", "sending", "sent"]);
    assert_eq!(r3[0].1, 451);
    assert_eq!(r3[3].1, 250);
    // A 451 after the message: `sending`, then temp_fail, then sent on retry.
    assert_eq!(
        st(&replies("r5@x.org")),
        ["sending", "temp_fail", "sending", "sent"]
    );
    // "try again in 1 seconds" is honoured, though --backoff is 50ms.
    let r13: Vec<&Value> = lines
        .iter()
        .filter(|l| l["recipient"] == "r13@x.org")
        .collect();
    let grey = r13
        .iter()
        .position(|l| {
            l["reason"]
                .as_str()
                .is_some_and(|r| r.contains("Greylisted"))
        })
        .expect("the greylisting 451 is in the ledger");
    let t = |k: usize| secs_of_day(r13[k]["time"].as_str().unwrap());
    let gap = (t(grey + 1) - t(grey)).rem_euclid(86400.0);
    assert!(gap >= 0.9, "retried after {gap} s: {r13:?}");
    assert_eq!(r13.last().unwrap()["status"], "sent");
    let skipped: Vec<&Value> = lines.iter().filter(|l| l["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 3);
    assert!(skipped.iter().any(|l| l["reason"]
        .as_str()
        .unwrap()
        .contains("duplicate of line 5")));

    // Connections: kept open across messages, and re-opened after each drop.
    let mut per_conn: HashMap<String, usize> = HashMap::new();
    for m in sink.arrived() {
        *per_conn
            .entry(m["conn"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(per_conn.values().all(|&n| n <= 4), "{per_conn:?}");
    assert!(
        per_conn.values().any(|&n| n > 1),
        "no connection was reused: {per_conn:?}"
    );

    // Reruns send nothing again (the second one reads the `skipped` line the
    // first rerun wrote for the repeated row after r4's `sent`).
    for _ in 0..2 {
        let out = mail(d, &args);
        let j = json(&out);
        assert_eq!(j["sent"], 0, "{j}");
        assert_eq!(j["already_sent"], 28, "{j}");
        assert_eq!(j["already_failed"], 2, "{j}");
        assert_eq!(sink.arrived().len(), 28);
        assert_eq!(out.status.code(), Some(1), "the bad rows are still bad");
    }
}

#[test]
fn idle_connections_closed_by_the_server_are_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(sink) = Sink::start(d, "idle", &["--idle-timeout", "0.3"]) else {
        return;
    };
    inputs(d, "i", 3);
    let url = sink.url();
    // One worker, one message a second: the server closes the connection between them.
    let out = send(d, &url, &["-j", "1", "--rate", "1/s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(json(&out)["sent"], 3);
    let copies = sink.copies();
    assert_eq!(copies.values().copied().collect::<Vec<_>>(), [1, 1, 1]);
    let conns: std::collections::HashSet<String> = sink
        .arrived()
        .iter()
        .map(|m| m["conn"].as_str().unwrap().to_string())
        .collect();
    assert!(conns.len() >= 2, "the worker never reconnected: {conns:?}");
}

#[test]
fn starttls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A private CA (self-signed) and a server certificate it signed.
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=brigade-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    ];
    for step in steps {
        match Command::new("openssl").args(&step).current_dir(d).output() {
            Ok(o) if o.status.success() => {}
            other => {
                if std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_some() {
                    panic!("openssl is required to make a certificate: {other:?}");
                }
                eprintln!("skipped: openssl cannot make a certificate: {other:?}");
                return;
            }
        }
    }
    let Some(sink) = Sink::start(
        d,
        "tls",
        &[
            "--tls-cert",
            d.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            d.join("key.pem").to_str().unwrap(),
        ],
    ) else {
        return;
    };
    inputs(d, "t", 2);
    let url = format!("smtp+starttls://127.0.0.1:{}", sink.port);
    // Not trusted: stopped before anything is sent.
    let out = send(d, &url, &["--status", "st.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot reach"),
        "{}",
        stderr_of(&out)
    );
    assert!(sink.arrived().is_empty());
    assert!(ledger(&d.join("st.jsonl")).is_empty());
    // Trusted with --ca: sent over TLS (the sink refuses MAIL before STARTTLS).
    let out = mail(
        d,
        &[
            "--smtp",
            &url,
            "--ca",
            "ca.pem",
            "--to",
            "to.csv",
            "--template",
            "t.txt",
            "--status",
            "st.jsonl",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(json(&out)["sent"], 2);
    assert_eq!(sink.copies().len(), 2);
    // Plain SMTP to the same server: the server requires STARTTLS, a 5xx for each.
    let plain = sink.url();
    let out = send(d, &plain, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(json(&out)["perm_fail"], 2);
    assert_eq!(sink.arrived().len(), 2);
}

#[test]
fn kill_9_mid_run_then_rerun_sends_each_once_except_the_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(sink) = Sink::start(d, "kill", &["--delay-ms", "10"]) else {
        return;
    };
    let n = 400;
    inputs(d, "k", n);
    let url = sink.url();
    let args = [
        "--smtp",
        url.as_str(),
        "--to",
        "to.csv",
        "--template",
        "t.txt",
        "--status",
        "st.jsonl",
        "-j",
        "4",
        "--json",
    ];
    let mut child = spawn_mail(d, &args);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = ledger(&d.join("st.jsonl"))
            .iter()
            .filter(|l| l["status"] == "sent")
            .count();
        if sent >= 40 {
            break;
        }
        assert!(Instant::now() < until, "brigade sent too little");
        assert!(
            child.try_wait().unwrap().is_none(),
            "brigade ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let before = sink.arrived().len();
    assert!(before < n, "the kill came after the end");

    // Rerun: the unknown (left `sending`) are reported and not resent.
    let lines = ledger(&d.join("st.jsonl"));
    let unknown: Vec<String> = last_status(&lines)
        .into_iter()
        .filter(|(_, s)| s == "sending")
        .map(|(w, _)| w)
        .collect();
    assert!(unknown.len() <= 4, "more unknown than workers: {unknown:?}");
    let out = mail(d, &args);
    assert_eq!(
        out.status.code(),
        Some(u8::from(!unknown.is_empty()).into()),
        "{}",
        stderr_of(&out)
    );
    let j = json(&out);
    assert_eq!(j["unknown"], unknown.len(), "{j}");
    let copies = sink.copies();
    for i in 0..n {
        let who = format!("k{i}@x.org");
        let c = copies.get(&who).copied().unwrap_or(0);
        if unknown.contains(&who) {
            assert!(c <= 1, "{who}: {c} copies");
        } else {
            assert_eq!(c, 1, "{who}: {c} copies");
        }
    }
    // With --resend-unknown: none missed; a duplicate only among the unknown,
    // with the same Message-ID as the first copy.
    let mut again = args.to_vec();
    again.push("--resend-unknown");
    let out = mail(d, &again);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let copies = sink.copies();
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for m in sink.arrived() {
        ids.entry(m["rcpt_tos"][0].as_str().unwrap().to_string())
            .or_default()
            .push(m["headers"]["message-id"].as_str().unwrap().to_string());
    }
    for i in 0..n {
        let who = format!("k{i}@x.org");
        let c = copies.get(&who).copied().unwrap_or(0);
        let max = if unknown.contains(&who) { 2 } else { 1 };
        assert!((1..=max).contains(&c), "{who}: {c} copies");
        let v = &ids[&who];
        assert!(v.iter().all(|x| x == &v[0]), "{who}: {v:?}");
    }
}

#[test]
fn unreachable_server_is_exit_2_and_the_password_is_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d, "u", 1);
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("smtp://user:s3cret@127.0.0.1:{port}");
    let out = send(d, &url, &["--status", "st.jsonl"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot reach smtp://user:***@127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert!(ledger(&d.join("st.jsonl")).is_empty());
}

#[test]
fn bad_usage_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("to.csv"), "name\nA\n").unwrap();
    std::fs::write(d.join("t.txt"), TEMPLATE).unwrap();
    std::fs::write(d.join("bad.txt"), "Subject: {{ oops\n\nbody").unwrap();
    std::fs::write(d.join("good.csv"), "email\na@x.org\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--to", "to.csv", "--template", "t.txt", "--dry-run"],
            "no 'email' column",
        ),
        (
            &["--to", "missing.csv", "--template", "t.txt", "--dry-run"],
            "missing.csv",
        ),
        (
            &["--to", "to.csv", "--template", "bad.txt", "--dry-run"],
            "bad.txt",
        ),
        (
            &[
                "--to",
                "good.csv",
                "--template",
                "t.txt",
                "--smtp",
                "ftp://x",
            ],
            "unknown scheme",
        ),
    ];
    for (args, want) in cases {
        let out = mail(d, args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn dry_run_renders_without_a_server_and_shows_missing_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("to.jsonl"),
        "{\"email\":\"a@x.org\",\"name\":\"A\",\"code\":1}\n{\"email\":\"b@x.org\",\"name\":\"B\"}\n{\"email\":\"c@x.org\",\"name\":\"C\",\"code\":3}\n{\"email\":\"d@x.org\",\"name\":\"D\",\"code\":4}\n",
    )
    .unwrap();
    std::fs::write(d.join("t.txt"), TEMPLATE).unwrap();
    // To a folder: one file per message.
    let out = mail(
        d,
        &[
            "--to",
            "to.jsonl",
            "--template",
            "t.txt",
            "--dry-run",
            "out",
            "--status",
            "st.jsonl",
        ],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("b@x.org") && err.contains("this row has no code"),
        "{err}"
    );
    let mut files: Vec<String> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "000001-a@x.org.eml",
            "000003-c@x.org.eml",
            "000004-d@x.org.eml"
        ]
    );
    let a = std::fs::read_to_string(d.join("out/000001-a@x.org.eml")).unwrap();
    assert!(
        a.contains("Subject: Hello A") && a.contains("your code is 1."),
        "{a}"
    );
    assert!(!d.join("st.jsonl").exists(), "a dry run writes no ledger");
    // To stdout, the first two, in order.
    let out = mail(
        d,
        &[
            "--to",
            "to.jsonl",
            "--template",
            "t.txt",
            "--dry-run",
            "--limit",
            "2",
        ],
    );
    let s = text(&out.stdout);
    assert_eq!(s.matches("Message-ID:").count(), 2, "{s}");
    let (ia, ic) = (
        s.find("To: a@x.org").unwrap(),
        s.find("To: c@x.org").unwrap(),
    );
    assert!(ia < ic);
    assert!(!s.contains("d@x.org"));
}

#[test]
fn limit_sends_the_next_n_on_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(sink) = Sink::start(d, "limit", &[]) else {
        return;
    };
    inputs(d, "l", 7);
    let url = sink.url();
    let args = [
        "--smtp",
        url.as_str(),
        "--to",
        "to.csv",
        "--template",
        "t.txt",
        "--status",
        "st.jsonl",
        "--limit",
        "3",
        "--json",
    ];
    for want in [3, 6, 7, 7] {
        let out = mail(d, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        assert_eq!(sink.arrived().len(), want);
    }
    assert!(sink.copies().values().all(|&c| c == 1));
}

#[test]
fn credentials_from_the_url_or_the_environment_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(sink) = Sink::start(d, "auth", &["--auth", "shop:pa55-w0rd"]) else {
        return;
    };
    inputs(d, "a", 2);
    let hostport = format!("127.0.0.1:{}", sink.port);
    // A wrong password: stopped at login, before anything is sent; the password not shown.
    // (This aiosmtpd never answers a failed AUTH, for smtplib too: a short --timeout.)
    let out = send(
        d,
        &format!("smtp://shop:wr0ng-pw@{hostport}"),
        &["--timeout", "2s"],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("smtp://shop:***@"), "{err}");
    assert!(!err.contains("wr0ng-pw"), "{err}");
    assert!(sink.arrived().is_empty());
    // Right, in the URL (percent-encoding allowed).
    let out = send(
        d,
        &format!("smtp://shop:pa55%2Dw0rd@{hostport}"),
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("pa55"));
    assert_eq!(sink.arrived().len(), 2);
    // Right, from the environment.
    let child = Command::new(bin())
        .args([
            "mail",
            "--smtp",
            &format!("smtp://{hostport}"),
            "--to",
            "to.csv",
            "--template",
            "t.txt",
            "--json",
        ])
        .env("BRIGADE_SMTP_USER", "shop")
        .env("BRIGADE_SMTP_PASSWORD", "pa55-w0rd")
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_or_fail(child, 120);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("pa55") && !text(&out.stdout).contains("pa55"));
    assert_eq!(sink.arrived().len(), 4);
}

#[test]
fn ctrl_c_finishes_the_messages_going_out_and_a_rerun_completes_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(sink) = Sink::start(d, "int", &["--delay-ms", "10"]) else {
        return;
    };
    let n = 300;
    inputs(d, "c", n);
    let url = sink.url();
    let args = [
        "--smtp",
        url.as_str(),
        "--to",
        "to.csv",
        "--template",
        "t.txt",
        "--status",
        "st.jsonl",
        "-j",
        "3",
        "--json",
    ];
    let child = spawn_mail(d, &args);
    let until = Instant::now() + Duration::from_secs(60);
    while sink.arrived().len() < 30 {
        assert!(Instant::now() < until, "brigade sent too little");
        std::thread::sleep(Duration::from_millis(5));
    }
    common::sigint(&child);
    let out = wait_or_fail(child, 60);
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    let j = json(&out);
    assert!(j["interrupted"].as_bool().unwrap(), "{j}");
    // Graceful: the messages going out finished, so nothing is left unknown.
    assert_eq!(j["unknown"], 0, "{j}");
    let sent_first = sink.arrived().len();
    assert_eq!(j["sent"], sent_first, "{j}");
    assert!(sent_first < n, "the interrupt came after the end");
    let out = mail(d, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(json(&out)["already_sent"], sent_first);
    let copies = sink.copies();
    assert_eq!(copies.len(), n);
    assert!(copies.values().all(|&c| c == 1), "a duplicate after Ctrl-C");
}
