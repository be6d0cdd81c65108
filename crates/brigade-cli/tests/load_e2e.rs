//! End-to-end tests of `brigade load`, against real databases: SQLite files
//! in temporary folders, and the PostgreSQL server on 127.0.0.1:5432
//! (database `test`). Each PostgreSQL test uses its own table and drops it.
//! With BRIGADE_REQUIRE_SERVICES set (CI), a missing server fails the test;
//! without it, the test says why and skips.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

fn run(args: &[&str]) -> Output {
    let mut full = vec!["load"];
    full.extend_from_slice(args);
    brigade(&full)
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` rows of id,name,amount,at; every row's name is unique and some are unicode or multi-line.
fn generated_csv(n: usize) -> String {
    let mut out = String::from("id,name,amount,at\n");
    for i in 1..=n {
        let name = match i % 5 {
            0 => format!("\"line one\nline two {i}\""),
            1 => format!("naïve café {i} ✓"),
            2 => format!("\"comma, and \"\"quote\"\" {i}\""),
            _ => format!("plain {i}"),
        };
        writeln!(
            out,
            "{i},{name},{}.{},2024-01-{:02} 10:00:00",
            i * 3,
            i % 100,
            i % 28 + 1
        )
        .unwrap();
    }
    out
}

fn summary(out: &Output) -> serde_json::Value {
    json_tail(out)
}

fn assert_balanced(v: &serde_json::Value) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    assert_eq!(
        n("rows_read"),
        n("rows_inserted") + n("rows_rejected") + n("rows_skipped") + n("rows_not_loaded"),
        "{v}"
    );
}

// ---- SQLite -------------------------------------------------------------------------------

fn sqlite(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db).unwrap()
}

/// Every row of `sql`, each made by `row`.
fn lite_rows<T>(
    db: &Path,
    sql: &str,
    row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Vec<T> {
    sqlite(db)
        .prepare(sql)
        .unwrap()
        .query_map([], row)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Three columns: an integer and two nullable texts.
type Row3 = (i64, Option<String>, Option<String>);

fn row3(r: &rusqlite::Row) -> rusqlite::Result<Row3> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// Polls `ready` until it holds; fails after 60 s saying `what`.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < until, "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigkill(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Rows in `table`, or 0 while it does not exist yet.
fn rows_in(db: &Path, table: &str) -> i64 {
    sqlite(db)
        .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .unwrap_or(0)
}

fn count(db: &Path, table: &str) -> i64 {
    sqlite(db)
        .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .unwrap()
}

#[test]
fn sqlite_multiline_quotes_nulls_empty_strings_and_unicode() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "people.csv",
        "id,name,note\n1,\"two\nlines\",\"\"\n2,,plain\n3,\"Zoë 日本 🚀\",\"a,\"\"b\"\"\"\n",
    );
    let db = dir.path().join("x.db");
    let out = run(&[
        "--db",
        s(&db),
        "--create",
        "--json",
        "--batch-rows",
        "1",
        s(&csv),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_eq!(v["rows_read"], 3);
    assert_eq!(v["rows_inserted"], 3);
    assert_eq!(v["batches"], 3);
    assert_balanced(&v);
    let rows = lite_rows(&db, "SELECT id, name, note FROM people ORDER BY id", row3);
    assert_eq!(
        rows,
        [
            (1, Some("two\nlines".into()), Some(String::new())),
            (2, None, Some("plain".into())),
            (3, Some("Zoë 日本 🚀".into()), Some("a,\"b\"".into())),
        ]
    );
    let ty: String = sqlite(&db)
        .query_row(
            "SELECT type FROM pragma_table_info('people') WHERE name = 'id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ty, "INTEGER");
}

#[test]
fn sqlite_header_in_the_middle_of_a_concatenated_file_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "t.csv", "a,b\n1,x\n2,y\na,b\n3,z\n");
    let db = dir.path().join("x.db");
    let out = run(&["--db", s(&db), "--create", "--json", s(&csv)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_eq!(v["rows_inserted"], 3);
    assert_eq!(v["headers_skipped"], 1);
    assert_eq!(count(&db, "t"), 3);
    let ty: String = sqlite(&db)
        .query_row(
            "SELECT type FROM pragma_table_info('t') WHERE name = 'a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ty, "INTEGER", "the repeated header must not make 'a' text");
}

#[test]
fn sqlite_a_bad_row_in_every_batch_is_rejected_and_the_rest_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    sqlite(&db)
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (v <> 'bad'))",
        )
        .unwrap();
    let mut body = String::from("id,v\n");
    let mut bad = HashSet::new();
    for i in 1..=100 {
        // Every batch of 10 holds one bad row, at a different place each time.
        let v = if i % 10 == (i / 10) % 10 { "bad" } else { "ok" };
        if v == "bad" {
            bad.insert(i + 1); // its line: the header is line 1
        }
        writeln!(body, "{i},{v}").unwrap();
    }
    let csv = write(dir.path(), "t.csv", &body);
    let rejects = dir.path().join("rejects.jsonl");
    let out = run(&[
        "--db",
        s(&db),
        "--table",
        "t",
        "--batch-rows",
        "10",
        "--rejects",
        s(&rejects),
        "--json",
        s(&csv),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejects make exit 1: {}",
        text(&out.stderr)
    );
    let v = summary(&out);
    assert_balanced(&v);
    assert_eq!(v["rows_rejected"], bad.len() as u64);
    assert_eq!(v["rows_inserted"], 100 - bad.len() as u64);
    assert_eq!(count(&db, "t"), 100 - bad.len() as i64);
    let lines: HashSet<u64> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(r["row"]["v"], "bad", "{r}");
            assert!(r["error"].as_str().unwrap().contains("CHECK"), "{r}");
            assert!(r["file"].as_str().unwrap().ends_with("t.csv"));
            r["line"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(lines, bad.iter().map(|&l| l as u64).collect());
}

#[test]
fn sqlite_jsonl_nulls_nested_values_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let j = write(
        dir.path(),
        "ev.jsonl",
        "{\"id\":1,\"name\":\"\",\"tags\":[1,2]}\n{\"id\":2,\"name\":null}\nnot json\n\n{\"id\":3,\"name\":\"é\",\"extra\":true}\n",
    );
    let db = dir.path().join("x.db");
    let out = run(&[
        "--db",
        &format!("sqlite:{}", s(&db)),
        "--create",
        "--json",
        s(&j),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_eq!(v["rows_inserted"], 3);
    assert_eq!(v["rows_rejected"], 1);
    assert_balanced(&v);
    let rows = lite_rows(&db, "SELECT id, name, tags FROM ev ORDER BY id", row3);
    assert_eq!(
        rows,
        [
            (1, Some(String::new()), Some("[1,2]".into())),
            (2, None, None),
            (3, Some("é".into()), None)
        ]
    );
}

#[test]
fn sqlite_no_header_columns_type_override_upsert_and_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let a = write(dir.path(), "a.tsv", "1\t007\tfirst\n2\t008\tfirst\n");
    let out = run(&[
        "--db",
        s(&db),
        "--table",
        "z",
        "--create",
        "--columns",
        "id,zip,v",
        "--type",
        "zip=TEXT",
        s(&a),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    sqlite(&db)
        .execute_batch("CREATE UNIQUE INDEX z_id ON z (id)")
        .unwrap();
    let b = write(dir.path(), "b.tsv", "2\t009\tsecond\n3\t010\tsecond\n");
    let out = run(&[
        "--db",
        s(&db),
        "--table",
        "z",
        "--columns",
        "id,zip,v",
        "--upsert",
        "id",
        s(&b),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = lite_rows(&db, "SELECT id, zip, v FROM z ORDER BY id", row3);
    assert_eq!(
        got,
        [
            (1, Some("007".into()), Some("first".into())),
            (2, Some("009".into()), Some("second".into())),
            (3, Some("010".into()), Some("second".into()))
        ]
    );
    let out = run(&[
        "--db",
        s(&db),
        "--table",
        "z",
        "--columns",
        "id,zip,v",
        "--truncate",
        s(&b),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(count(&db, "z"), 2);
}

#[test]
fn sqlite_import_id_rerun_skips_what_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "g.csv", &generated_csv(1000));
    let db = dir.path().join("x.db");
    let args = [
        "--db",
        s(&db),
        "--create",
        "--import-id",
        "g1",
        "--batch-rows",
        "100",
        "--json",
        s(&csv),
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["rows_inserted"], 1000);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_eq!(v["rows_inserted"], 0);
    assert_eq!(v["rows_skipped"], 1000);
    assert_balanced(&v);
    assert_eq!(count(&db, "g"), 1000);
    // A different batch size skips by record line, not by batch.
    let out = run(&[
        "--db",
        s(&db),
        "--import-id",
        "g1",
        "--batch-rows",
        "7",
        "--json",
        s(&csv),
    ]);
    assert_eq!(summary(&out)["rows_inserted"], 0);
    assert_eq!(count(&db, "g"), 1000);
}

#[test]
fn sqlite_kill_9_mid_run_then_rerun_loads_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let csv = write(dir.path(), "k.csv", &generated_csv(n));
    let db = dir.path().join("x.db");
    let base = [
        "load",
        "--db",
        s(&db),
        "--create",
        "--import-id",
        "k1",
        "--batch-rows",
        "100",
        "-q",
    ];
    // Slowed to 20 batches a second so that the kill lands mid-run.
    let mut first: Vec<&str> = base.to_vec();
    first.extend_from_slice(&["--rate", "20/s", s(&csv)]);
    let child = Command::new(bin())
        .args(&first)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("300 rows loaded", || rows_in(&db, "k") >= 300);
    sigkill(&child);
    let out = wait_or_fail(child, 30);
    assert_eq!(out.status.code(), None, "killed by a signal");
    let partial = count(&db, "k");
    assert!(
        partial < n as i64,
        "the kill came too late to test anything"
    );
    let mut again: Vec<&str> = base.to_vec();
    again.extend_from_slice(&["--json", s(&csv)]);
    let out = brigade(&again);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_balanced(&v);
    assert_eq!(v["rows_skipped"].as_i64().unwrap(), partial);
    assert_eq!(count(&db, "k"), n as i64);
    let distinct: i64 = sqlite(&db)
        .query_row("SELECT count(DISTINCT id) FROM k", [], |r| r.get(0))
        .unwrap();
    assert_eq!(distinct, n as i64, "no row twice");
}

#[test]
fn sqlite_ctrl_c_finishes_running_batches_and_the_counts_still_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let csv = write(dir.path(), "c.csv", &generated_csv(n));
    let db = dir.path().join("x.db");
    let args = [
        "load",
        "--db",
        s(&db),
        "--create",
        "--import-id",
        "c1",
        "--batch-rows",
        "100",
        "--json",
    ];
    let mut first = args.to_vec();
    first.extend_from_slice(&["--rate", "20/s", s(&csv)]);
    let child = Command::new(bin())
        .args(&first)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("300 rows loaded", || rows_in(&db, "c") >= 300);
    sigint(&child);
    let out = wait_or_fail(child, 60);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_balanced(&v);
    assert_eq!(v["interrupted"], true);
    let inserted = v["rows_inserted"].as_i64().unwrap();
    assert!(inserted < n as i64);
    assert_eq!(
        count(&db, "c"),
        inserted,
        "the summary counts what is in the table"
    );
    let mut again = args.to_vec();
    again.push(s(&csv));
    let out = brigade(&again);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["rows_skipped"].as_i64().unwrap(), inserted);
    assert_eq!(count(&db, "c"), n as i64);
}

#[test]
fn sqlite_several_inputs_tsv_gz_and_jsonl_in_one_run() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    sqlite(&db)
        .execute_batch("CREATE TABLE m (id INTEGER, v TEXT)")
        .unwrap();
    let a = write(dir.path(), "a.tsv", "v\tid\nx\t1\n\t2\n");
    let gz = dir.path().join("b.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(b"id,v\n3,\"y\"\n").unwrap();
    enc.finish().unwrap();
    let c = write(dir.path(), "c.jsonl", "{\"v\":\"z\",\"id\":4}\n");
    let out = run(&[
        "--db",
        s(&db),
        "--table",
        "m",
        "--json",
        s(&a),
        s(&gz),
        s(&c),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["rows_inserted"], 4);
    let got = lite_rows(&db, "SELECT id, v FROM m ORDER BY id", |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    });
    assert_eq!(
        got,
        [
            (1, Some("x".into())),
            (2, None),
            (3, Some("y".into())),
            (4, Some("z".into()))
        ]
    );
}

#[test]
fn sqlite_missing_table_and_bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let csv = write(dir.path(), "t.csv", "a\n1\n");
    let out = run(&["--db", s(&db), "--table", "nosuch", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("table nosuch does not exist") && e.contains("--create"),
        "{e}"
    );
    let out = run(&["--db", s(&db), "--create", "missing.csv", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing.csv"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["--db", "mysql://h/db", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown scheme"));
    sqlite(&db)
        .execute_batch("CREATE TABLE t (b INTEGER)")
        .unwrap();
    let out = run(&["--db", s(&db), s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.contains("columns not in table t: a"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn sqlite_stdin_needs_a_table_and_loads_from_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let out = brigade_in(dir.path(), &["load", "--db", s(&db), "-"], "a\n1\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--table"));
    let out = brigade_in(
        dir.path(),
        &[
            "load",
            "--db",
            s(&db),
            "--table",
            "p",
            "--create",
            "--json",
            "-",
        ],
        "a,b\n1,x\n2,y\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(count(&db, "p"), 2);
}

// ---- PostgreSQL ---------------------------------------------------------------------------

/// A connection to the test server, or `None` (with the reason printed) when
/// it is down and the environment does not require it.
fn pg() -> Option<postgres::Client> {
    match postgres::Client::connect(PG, postgres::NoTls) {
        Ok(c) => Some(c),
        Err(e) => {
            if std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_some() {
                panic!("PostgreSQL is required (BRIGADE_REQUIRE_SERVICES) but {PG} is down: {e}");
            }
            eprintln!("skipped: PostgreSQL at {PG} is not reachable: {e}");
            None
        }
    }
}

/// A table of this test's own, dropped (with its ledger rows) when the test ends.
struct Table {
    name: String,
    client: postgres::Client,
}

impl Table {
    fn new(test: &str, ddl: Option<&str>) -> Option<Table> {
        let mut client = pg()?;
        let name = format!("load_{test}_{}", std::process::id());
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .unwrap();
        if let Some(cols) = ddl {
            client
                .batch_execute(&format!("CREATE TABLE {name} ({cols})"))
                .unwrap();
        }
        Some(Table { name, client })
    }

    fn count(&mut self) -> i64 {
        self.client
            .query_one(&format!("SELECT count(*) FROM {}", self.name), &[])
            .unwrap()
            .get(0)
    }

    fn distinct_ids(&mut self) -> i64 {
        self.client
            .query_one(
                &format!("SELECT count(DISTINCT id) FROM {}", self.name),
                &[],
            )
            .unwrap()
            .get(0)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.name));
        let _ = self.client.execute(
            "DELETE FROM brigade_load_ledger WHERE import_id LIKE $1",
            &[&format!("{}%", self.name)],
        );
    }
}

fn pg_multiline_nulls_unicode(method: &str) {
    let Some(mut t) = Table::new(&format!("basic_{method}"), None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "p.csv",
        "id,name,note,at\n1,\"two\nlines\",\"\",2024-01-01 10:00:00\n2,,\"tab\there\",\n3,\"Zoë 日本 🚀\",\"back\\slash\",2024-02-29T10:11:12Z\n",
    );
    let out = run(&[
        "--db",
        PG,
        "--table",
        &t.name,
        "--create",
        "--method",
        method,
        "--batch-rows",
        "2",
        "--json",
        s(&csv),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_eq!(v["rows_inserted"], 3);
    assert_eq!(v["batches"], 2);
    assert_balanced(&v);
    let rows = t
        .client
        .query(
            &format!(
                "SELECT id, name, note, at IS NULL FROM {} ORDER BY id",
                t.name
            ),
            &[],
        )
        .unwrap();
    let got: Vec<(i64, Option<String>, Option<String>, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            (1, Some("two\nlines".into()), Some(String::new()), false),
            (2, None, Some("tab\there".into()), true),
            (
                3,
                Some("Zoë 日本 🚀".into()),
                Some("back\\slash".into()),
                false
            ),
        ]
    );
    let ty: String = t
        .client
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_name = $1 AND column_name = 'at'",
            &[&t.name],
        )
        .unwrap()
        .get(0);
    assert_eq!(ty, "timestamp with time zone");
}

#[test]
fn pg_copy_multiline_nulls_unicode() {
    pg_multiline_nulls_unicode("copy");
}

#[test]
fn pg_insert_multiline_nulls_unicode() {
    pg_multiline_nulls_unicode("insert");
}

fn pg_bad_row_in_every_batch(method: &str) {
    let Some(mut t) = Table::new(
        &format!("bad_{method}"),
        Some("id BIGINT PRIMARY KEY, v INTEGER NOT NULL"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("id,v\n");
    let mut bad_lines = HashSet::new();
    for i in 1..=200u64 {
        // One bad row per batch of 20: a word, a NULL, or a duplicate key, in turn.
        let line = match i % 20 {
            7 => {
                bad_lines.insert(i + 1);
                format!("{i},seven")
            }
            13 if i % 40 == 13 => {
                bad_lines.insert(i + 1);
                format!("{i},")
            }
            13 => {
                bad_lines.insert(i + 1);
                format!("{},1", i - 1)
            }
            _ => format!("{i},{i}"),
        };
        writeln!(body, "{line}").unwrap();
    }
    let csv = write(dir.path(), "b.csv", &body);
    let rejects = dir.path().join("r.jsonl");
    let out = run(&[
        "--db",
        PG,
        "--table",
        &t.name,
        "--method",
        method,
        "--batch-rows",
        "20",
        "--rejects",
        s(&rejects),
        "--json",
        s(&csv),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_balanced(&v);
    assert_eq!(v["rows_rejected"], bad_lines.len() as u64);
    assert_eq!(t.count(), 200 - bad_lines.len() as i64);
    let got: HashSet<u64> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(r["error"].as_str().unwrap().contains("SQLSTATE"), "{r}");
            r["line"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(got, bad_lines);
}

#[test]
fn pg_copy_bad_row_in_every_batch() {
    pg_bad_row_in_every_batch("copy");
}

#[test]
fn pg_insert_bad_row_in_every_batch() {
    pg_bad_row_in_every_batch("insert");
}

#[test]
fn pg_upsert_jsonl_and_header_repeats() {
    let Some(mut t) = Table::new("upsert", Some("id BIGINT PRIMARY KEY, v TEXT")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.jsonl",
        "{\"id\":1,\"v\":\"a\"}\n{\"id\":2,\"v\":\"b\"}\n",
    );
    let b = write(dir.path(), "b.csv", "id,v\n2,B\nid,v\n3,C\n");
    let out = run(&["--db", PG, "--table", &t.name, "--upsert", "id", s(&a)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&[
        "--db",
        PG,
        "--table",
        &t.name,
        "--upsert",
        "id",
        "--json",
        s(&b),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["headers_skipped"], 1);
    let got: Vec<(i64, String)> = t
        .client
        .query(&format!("SELECT id, v FROM {} ORDER BY id", t.name), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, [(1, "a".into()), (2, "B".into()), (3, "C".into())]);
}

#[test]
fn pg_wrong_credentials_and_missing_table_exit_2_naming_them() {
    let Some(t) = Table::new("errors", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "e.csv", "a\n1\n");
    let out = run(&[
        "--db",
        "postgres://nosuchrole:pw@127.0.0.1:5432/test",
        "--table",
        "x",
        s(&csv),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("nosuchrole") && e.contains("cannot connect"),
        "{e}"
    );
    assert!(!e.contains(":pw@"), "the password is not printed: {e}");
    let out = run(&[
        "--db",
        "postgres://postgres@127.0.0.1:5432/nosuchdb",
        "--table",
        "x",
        s(&csv),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nosuchdb"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["--db", PG, "--table", &t.name, s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains(&format!("table {} does not exist", t.name)),
        "{e}"
    );
}

/// Rows in the table once the loader has made progress; fails after 60 s.
fn wait_for_rows(t: &mut Table, at_least: i64) {
    let sql = format!("SELECT count(*) FROM {}", t.name);
    wait_until(&format!("{at_least} rows loaded"), || {
        t.client
            .query_one(&sql, &[])
            .map_or(0, |r| r.get::<_, i64>(0))
            >= at_least
    });
}

#[test]
fn pg_kill_9_mid_run_then_rerun_with_the_import_id_loads_each_row_once() {
    let Some(mut t) = Table::new(
        "kill9",
        Some("id BIGINT, name TEXT, amount NUMERIC, at TIMESTAMP"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000i64;
    let csv = write(dir.path(), "k.csv", &generated_csv(n as usize));
    let id = format!("{}-run", t.name);
    let name = t.name.clone();
    let base = [
        "load",
        "--db",
        PG,
        "--table",
        &name,
        "--import-id",
        &id,
        "--batch-rows",
        "100",
        "-j",
        "3",
        "-q",
    ];
    let mut first = base.to_vec();
    first.extend_from_slice(&["--rate", "20/s", s(&csv)]);
    let child = Command::new(bin())
        .args(&first)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&mut t, 300);
    sigkill(&child);
    let out = wait_or_fail(child, 30);
    assert_eq!(out.status.code(), None);
    // The killed process's open transactions die with its connections.
    std::thread::sleep(Duration::from_millis(200));
    let partial = t.count();
    assert!(partial < n, "the kill came too late to test anything");
    let mut again = base.to_vec();
    again.extend_from_slice(&["--json", s(&csv)]);
    let out = brigade(&again);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_balanced(&v);
    assert_eq!(t.count(), n);
    assert_eq!(t.distinct_ids(), n, "no row twice");
    assert_eq!(
        v["rows_inserted"].as_i64().unwrap() + v["rows_skipped"].as_i64().unwrap(),
        n
    );
}

#[test]
fn pg_terminated_worker_connection_is_retried_without_loss_or_duplicates() {
    let Some(mut t) = Table::new(
        "terminate",
        Some("id BIGINT, name TEXT, amount NUMERIC, at TIMESTAMP"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000i64;
    let csv = write(dir.path(), "t.csv", &generated_csv(n as usize));
    let child = Command::new(bin())
        .args([
            "load",
            "--db",
            PG,
            "--table",
            &t.name,
            "--batch-rows",
            "100",
            "-j",
            "2",
            "--rate",
            "25/s",
            "--json",
            s(&csv),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&mut t, 200);
    let killed: i64 = t
        .client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'brigade-load' AND datname = 'test' \
             AND pid = (SELECT min(pid) FROM pg_stat_activity WHERE application_name = 'brigade-load')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one worker connection terminated");
    let out = wait_or_fail(child, 120);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = summary(&out);
    assert_balanced(&v);
    assert_eq!(v["rows_inserted"].as_i64().unwrap(), n);
    // A connection terminated between two batches is replaced before its
    // next batch without a retry being counted, so `retried` may be 0: what
    // must hold is no loss and no duplicates.
    assert_eq!(t.count(), n);
    assert_eq!(t.distinct_ids(), n, "no row twice");
}

#[test]
fn the_progress_bar_counts_rows_and_bytes_not_batches() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "rows.csv", &generated_csv(3000));
    let db = dir.path().join("x.db");
    let pty = nix::pty::openpty(None, None).unwrap();
    // Three batches of 1,000 rows, slowed by --rate so that the bar draws.
    let child = Command::new(bin())
        .args(["load", "--db", s(&db), "--create", "--batch-rows", "1000"])
        .args(["--rate", "4/s", s(&csv)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let reader = read_terminal(pty.master);
    let out = wait_or_fail(child, 60);
    assert_eq!(out.status.code(), Some(0));
    let screen = reader.join().unwrap();
    assert!(
        screen.contains("1000 rows") || screen.contains("2000 rows"),
        "the bar does not count rows: {screen:?}"
    );
    assert!(screen.contains("MB/s"), "no byte rate: {screen:?}");
    // The bar's own format is "COUNT UNIT  RATE"; the summary's "3 jobs in" is not the bar.
    let batch_bar = regex::Regex::new(r"\d+ jobs  \d").unwrap();
    assert!(
        !batch_bar.is_match(&screen),
        "the bar counts batches: {screen:?}"
    );
}

/// Edge values of every type `brigade load` sends in binary COPY, and values
/// it must leave to the server (sent as text): what lands in the table is
/// what `psql \copy` (text COPY, the oracle) puts there, to the last bit.
#[test]
fn pg_binary_copy_stores_what_psql_copy_stores() {
    let ddl = "i2 smallint, i4 integer, i8 bigint, r real, d double precision, b boolean, \
               t text, v character varying, ts timestamp";
    let Some(mut ours) = Table::new("binary_ours", Some(ddl)) else {
        return;
    };
    let Some(theirs) = Table::new("binary_theirs", Some(ddl)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "edge.csv",
        "i2,i4,i8,r,d,b,t,v,ts\n\
         -32768,-2147483648,-9223372036854775808,3.4028235e38,1.7976931348623157e308,t,plain,x,0001-01-01 00:00:00\n\
         32767,2147483647,9223372036854775807,1.17549435e-38,2.2250738585072014e-308,false,\"tab\there\",\"new\nline\",9999-12-31 23:59:59.999999\n\
         0,+7,-0,0.1,0.1,Yes,\"back\\slash\",Zoë 日本 🚀,2024-02-29T10:11:12.5\n\
         1,2,3,-0,-0.0,OFF,,\"\",1999-12-31 23:59:59\n\
         2,3,4,1e-40,5e-324,1,\"a,b\",\"q\"\"uote\",2000-01-01 00:00:00.000001\n\
         \" 5\",6,7,1.5,2.5,0,text,with spaces ,2024-01-01 10:00:00\n\
         8,9,10,NaN,Infinity, yes ,x,y,epoch\n\
         11,12,13,1e10,-1e-10,on,x,y,2024-06-01 12:00:00+00\n",
    );
    let out = run(&[
        "--db",
        PG,
        "--table",
        &ours.name,
        "--batch-rows",
        "3",
        "--json",
        s(&csv),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["rows_inserted"], 8);
    let copy = format!(
        "\\copy {} FROM '{}' WITH (FORMAT csv, HEADER)",
        theirs.name,
        s(&csv)
    );
    let st = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", PG, "-c", &copy])
        .status()
        .expect("psql runs");
    assert!(st.success(), "psql \\copy failed");
    let (a, b) = (&ours.name, &theirs.name);
    let differ: i64 = ours
        .client
        .query_one(
            &format!(
                "SELECT count(*) FROM ((SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) \
                 UNION ALL (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})) x"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(differ, 0, "rows differ from psql's");
    assert_eq!(ours.count(), 8);
}
