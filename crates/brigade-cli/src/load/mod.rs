//! `brigade load`: CSV, TSV and JSONL into SQLite or PostgreSQL in batches,
//! one connection per worker (the seed's use case 4, its `dbWorker`).
//!
//! The main thread checks everything that can be checked before a row moves
//! (the inputs' headers, the connection, the table and its columns, the
//! ledger), then a reader thread cuts the inputs into batches and the crew
//! loads them, each worker on its own connection. The run behaviour (progress,
//! summary, exit codes, Ctrl-C) is `run.rs`'s.
//!
//! Files: `args.rs` the command line, `input.rs` readers and batching,
//! `infer.rs` types for --create, `sink.rs` the per-batch transaction (bisect,
//! retry), `sqlite.rs` and `postgres.rs` the two databases, `ledger.rs`
//! --import-id, `rejects.rs` the rejects file.

pub(crate) mod args;
mod binary;
mod infer;
mod input;
mod ledger;
mod postgres;
mod rejects;
mod sink;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade::{Builder, Context, Failure, Outcome};
use serde::Serialize;

pub use args::Args;
use args::{table_from_file, Method, Target};
use infer::Dialect;
use input::{Batch, Batches, Committed, ReadOpts, Source};
use rejects::Rejects;
use sink::{quote_table, Connect, Db, LoadError, Loaded, Plan, Slot};

use crate::run::{self, exit, Next, Summary};
use crate::units::human;

/// Opens one connection to the target.
fn open_db(target: &Target, plan: Arc<Plan>) -> Result<Box<dyn Db>, sink::DbError> {
    match target {
        Target::Sqlite(p) => Ok(Box::new(sqlite::open(p, plan)?)),
        Target::Postgres(url) => Ok(Box::new(postgres::connect(url, plan)?)),
    }
}

/// What the batches added up to.
#[derive(Debug, Default)]
struct Totals {
    inserted: u64,
    not_loaded: u64,
    batches: u64,
    failed_batches: u64,
    retries: u64,
    permanent: bool,
    write_error: Option<String>,
}

/// The `--json` summary: the shared run summary plus the rows' accounts.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    run: &'a Summary,
    table: &'a str,
    database: String,
    rows_read: u64,
    rows_inserted: u64,
    rows_rejected: u64,
    rows_skipped: u64,
    rows_not_loaded: u64,
    headers_skipped: u64,
    batches: u64,
    batches_failed: u64,
    bytes_read: u64,
    rows_per_second: f64,
    bytes_per_second: f64,
    rejects_file: Option<String>,
}

/// Runs `brigade load`; returns the exit code.
pub fn main(args: Args) -> i32 {
    match load(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("brigade load: {msg}");
            exit::USAGE
        }
    }
}

fn check_columns(cols: &[String]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for c in cols {
        if c.trim().is_empty() {
            return Err("--columns: a column name is empty".into());
        }
        if !seen.insert(c) {
            return Err(format!("--columns names '{c}' twice"));
        }
    }
    Ok(())
}

fn load(args: Args) -> Result<i32, String> {
    let started = Instant::now();
    let target = Target::parse(&args.db)?;
    let dialect = match target {
        Target::Sqlite(_) => Dialect::Sqlite,
        Target::Postgres(_) => Dialect::Postgres,
    };
    let db_name = target.display();
    if args.files.iter().filter(|f| *f == "-").count() > 1 {
        return Err("stdin (-) can be read only once".into());
    }
    let table_name = match args
        .table
        .clone()
        .or_else(|| table_from_file(&args.files[0]))
    {
        Some(t) => t,
        None => return Err("--table is needed when reading stdin".into()),
    };
    if let Some(cols) = &args.columns {
        check_columns(cols)?;
    }
    if args.create && args.no_header && args.columns.is_none() {
        return Err("--create needs column names: a header line, or --columns".into());
    }
    let chatty = !(args.run.quiet || args.run.json);
    if args.run.timeout.is_some() && chatty {
        eprintln!("brigade load: --timeout is ignored: a batch is never cut off mid-transaction");
    }
    let opts = ReadOpts {
        format: args.format,
        delimiter: args.delimiter,
        null: args.null.clone(),
        no_header: args.no_header || args.columns.is_some(),
        columns: args.columns.clone(),
        batch_rows: args.batch_rows,
        batch_bytes: args.batch_bytes,
    };

    // Every input opens and has a header before anything is loaded.
    let mut first = Source::open(&args.files[0], &opts)?;
    for f in &args.files[1..] {
        if f != "-" {
            Source::open(f, &opts)?;
        }
    }
    let sample = first.sample(args.sample.max(1))?;
    let mut rejects = Rejects::create(args.rejects.as_deref(), !chatty)?;

    let method = if args.upsert.is_some() {
        Method::Insert
    } else {
        args.method
    };
    let mut plan = Plan {
        table: quote_table(&table_name),
        types: HashMap::new(),
        upsert: args.upsert.clone(),
        method,
        import_id: args.import_id.clone(),
        retries: if args.run.retries == 0 {
            8
        } else {
            args.run.retries
        },
    };
    let db_err = |e: sink::DbError| format!("{db_name}: {}", e.message);
    let mut ctl = open_db(&target, Arc::new(plan.clone())).map_err(db_err)?;

    // The table: as it is, or created from the sample.
    let table_cols = match ctl.columns(&table_name).map_err(db_err)? {
        Some(c) => c,
        None if args.create => {
            if first.columns.is_empty() {
                return Err(format!("{}: no columns found to create {table_name} from", first.name));
            }
            let kinds = infer::infer(first.columns.len(), &sample);
            let overrides: HashMap<&str, &str> =
                args.types.iter().map(|(c, t)| (c.as_str(), t.as_str())).collect();
            if let Some((c, _)) = args.types.iter().find(|(c, _)| !first.columns.contains(c)) {
                return Err(format!("--type {c}=...: {} has no column '{c}'", first.name));
            }
            let defs: Vec<(String, String)> = first
                .columns
                .iter()
                .zip(kinds)
                .map(|(c, k)| {
                    let t = overrides.get(c.as_str()).copied().unwrap_or(k.sql(dialect));
                    (c.clone(), t.to_string())
                })
                .collect();
            ctl.execute(&sink::create_sql(&plan.table, &defs))
                .map_err(|e| format!("{db_name}: cannot create table {table_name}: {}", e.message))?;
            if chatty {
                let list: Vec<String> = defs.iter().map(|(c, t)| format!("{c} {t}")).collect();
                eprintln!("brigade load: created table {table_name} ({})", list.join(", "));
            }
            ctl.columns(&table_name)
                .map_err(db_err)?
                .ok_or_else(|| format!("{db_name}: table {table_name} vanished after CREATE"))?
        }
        None => {
            return Err(format!(
                "{db_name}: table {table_name} does not exist (--create makes it from the input's columns)"
            ))
        }
    };
    let names: Vec<String> = table_cols.iter().map(|(c, _)| c.clone()).collect();
    plan.types = table_cols.into_iter().collect();

    let unknown = first.bind(&names);
    let json_input = args::format_of(&first.name, args.format) == args::Format::Jsonl;
    if !unknown.is_empty() {
        if json_input {
            if chatty {
                eprintln!(
                    "brigade load: {}: keys not in table {table_name}, ignored: {}",
                    first.name,
                    unknown.join(", ")
                );
            }
        } else {
            return Err(format!(
                "{}: columns not in table {table_name}: {} (the table has: {})",
                first.name,
                unknown.join(", "),
                names.join(", ")
            ));
        }
    }
    if first.bound_columns().is_empty() {
        return Err(format!(
            "{}: none of its columns are in table {table_name}",
            first.name
        ));
    }
    if let Some(key) = &plan.upsert {
        if let Some(k) = key.iter().find(|k| !first.bound_columns().contains(k)) {
            return Err(format!(
                "--upsert {k}: not a column loaded from {}",
                first.name
            ));
        }
    }

    // The ledger, and what it says is done already.
    let committed = match &args.import_id {
        Some(id) => {
            // Two loads starting at once may race to create it: the loser tries again.
            let create = ledger::create_sql(dialect);
            if ctl.execute(&create).is_err() {
                std::thread::sleep(Duration::from_millis(200));
                ctl.execute(&create).map_err(db_err)?;
            }
            Committed::new(ctl.ledger_rows(id).map_err(db_err)?)
        }
        None => Committed::default(),
    };
    if args.truncate {
        if committed.batches() > 0 {
            if chatty {
                eprintln!(
                    "brigade load: not truncating {table_name}: resuming import {} ({} batches committed)",
                    args.import_id.as_deref().unwrap_or(""),
                    committed.batches()
                );
            }
        } else {
            let sql = match dialect {
                Dialect::Postgres => format!("TRUNCATE {}", plan.table),
                Dialect::Sqlite => format!("DELETE FROM {}", plan.table),
            };
            ctl.execute(&sql)
                .map_err(|e| format!("{db_name}: cannot truncate {table_name}: {}", e.message))?;
        }
    }
    drop(ctl);

    // The crew: one connection each.
    let default_workers = match dialect {
        Dialect::Sqlite => 1,
        Dialect::Postgres => run::cores().clamp(2, 8),
    };
    let workers = args.run.workers.unwrap_or(default_workers);
    // Batches are big: queue a few per worker, not --queue's thousand.
    let queue = args.run.queue.min(workers.saturating_mul(2).max(2));
    let plan = Arc::new(plan);
    let connect: Connect = {
        let (target, plan) = (target.clone(), plan.clone());
        Arc::new(move || open_db(&target, plan.clone()))
    };
    let mut builder = Builder::new()
        .workers(workers)
        .queue(queue)
        .name("brigade-load");
    builder = args.run.apply_limits(builder);
    let worker_plan = plan.clone();
    let (jobs, results) = builder
        .state(move |_worker| Slot::open(connect.clone()))
        .build(
            move |slot: &mut Slot, b: &Batch, ctx: &Context<'_, Batch>| {
                sink::load(slot, &worker_plan, b, ctx)
            },
        )
        .map_err(|e| format!("{db_name}: {e}"))?;

    let mut batches = Batches::new(first, args.files[1..].to_vec(), opts, names, committed);
    let reader = std::thread::Builder::new()
        .name("brigade-load-reader".into())
        .spawn(move || {
            let mut unsent = 0;
            for b in &mut batches {
                if let Err(e) = jobs.send(b) {
                    unsent += e.into_inner().records();
                    break;
                }
            }
            drop(jobs);
            (batches.stats, unsent)
        })
        .map_err(|e| format!("cannot start the reader thread: {e}"))?;

    let pool = results.pool();
    let mut tot = Totals::default();
    // The bar counts rows (loaded or rejected) and input bytes, not batches.
    let meter = run::Meter {
        unit: "rows",
        count: &|o: &Outcome<Batch, Loaded, LoadError>| o.job.records(),
        bytes: Some(&|o: &Outcome<Batch, Loaded, LoadError>| o.job.bytes),
    };
    let mut summary = run::drive_metered(&args.run, results, None, started, &meter, |o| {
        match &o.result {
            Ok(l) => {
                tot.inserted += l.rows;
                tot.batches += 1;
                tot.retries += u64::from(l.retries);
                for r in &l.rejects {
                    if let Err(e) = rejects.write(r) {
                        tot.write_error.get_or_insert(e);
                    }
                }
            }
            Err(f) => {
                tot.not_loaded += o.job.records();
                match f {
                    Failure::Error(e) => {
                        tot.failed_batches += 1;
                        tot.retries += u64::from(e.retries);
                        eprintln!("brigade load: {e}");
                        if e.permanent && !tot.permanent {
                            tot.permanent = true;
                            eprintln!(
                                "brigade load: stopping: the error above is not worth retrying"
                            );
                            pool.cancel();
                        }
                    }
                    Failure::Cancelled => {}
                    other => {
                        tot.failed_batches += 1;
                        eprintln!(
                            "brigade load: {} lines {}-{}: {other}",
                            o.job.file, o.job.first_line, o.job.last_line
                        );
                    }
                }
            }
        }
        Next::Continue
    });
    let (stats, unsent) = reader
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    tot.not_loaded += unsent;
    if let Err(e) = rejects.finish() {
        tot.write_error.get_or_insert(e);
    }

    for e in &stats.errors {
        eprintln!("brigade load: {e}");
    }
    if let Some(e) = &tot.write_error {
        eprintln!("brigade load: {e}");
    }
    summary.retried = tot.retries;
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    if summary.exit_code != exit::INTERRUPTED {
        if tot.permanent || !stats.errors.is_empty() || tot.write_error.is_some() {
            summary.exit_code = exit::USAGE;
        } else if rejects.count > 0 || tot.not_loaded > 0 {
            summary.exit_code = summary.exit_code.max(exit::FAILED);
        }
    }
    let report = Report {
        run: &summary,
        table: &table_name,
        database: db_name,
        rows_read: stats.records,
        rows_inserted: tot.inserted,
        rows_rejected: rejects.count,
        rows_skipped: stats.skipped,
        rows_not_loaded: tot.not_loaded,
        headers_skipped: stats.headers,
        batches: tot.batches,
        batches_failed: tot.failed_batches,
        bytes_read: stats.bytes,
        rows_per_second: (tot.inserted as f64 / wall).round(),
        bytes_per_second: (stats.bytes as f64 / wall).round(),
        rejects_file: args.rejects.as_ref().map(|p| p.display().to_string()),
    };
    let balanced = report.rows_read
        == report.rows_inserted
            + report.rows_rejected
            + report.rows_skipped
            + report.rows_not_loaded;
    if !balanced {
        eprintln!("brigade load: BUG: the row counts do not add up");
    }
    if args.run.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serialises")
        );
    } else if !args.run.quiet {
        eprintln!("{}", summary.text());
        eprintln!("{}", report_text(&report, args.import_id.as_deref()));
    }
    Ok(summary.exit_code)
}

fn report_text(r: &Report<'_>, import_id: Option<&str>) -> String {
    let mut s = format!(
        "brigade load: {} rows read = {} inserted + {} rejected",
        r.rows_read, r.rows_inserted, r.rows_rejected
    );
    if r.rows_skipped > 0 || import_id.is_some() {
        s.push_str(&format!(
            " + {} already loaded (import {})",
            r.rows_skipped,
            import_id.unwrap_or("")
        ));
    }
    if r.rows_not_loaded > 0 {
        s.push_str(&format!(" + {} not loaded", r.rows_not_loaded));
    }
    s.push_str(&format!(
        "\n         {} batches into {} ({}); {:.0} rows/s, {:.1} MB/s in {}",
        r.batches,
        r.table,
        r.database,
        r.rows_per_second,
        r.bytes_per_second / 1e6,
        human(Duration::from_secs_f64(r.run.wall_seconds))
    ));
    if r.headers_skipped > 0 {
        s.push_str(&format!(
            "; {} repeated header lines skipped",
            r.headers_skipped
        ));
    }
    if let Some(f) = &r.rejects_file {
        if r.rows_rejected > 0 {
            s.push_str(&format!("; rejects in {f}"));
        }
    }
    s
}
