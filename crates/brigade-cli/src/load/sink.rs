//! What every database sink does the same way: one transaction per batch,
//! bad rows found by bisecting, the ledger row committed with the batch, and
//! transient errors retried on a fresh connection with backoff.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use brigade::Context;

use super::args::Method;
use super::input::Batch;
use super::rejects::Reject;

/// How bad an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// The data: a value, a constraint. Bisect and reject the row.
    Row,
    /// The connection or a conflict: retry the batch on a fresh connection.
    Transient,
    /// Anything else (a missing table, bad credentials): stop.
    Permanent,
}

/// A database error, classified.
#[derive(Debug, Clone)]
pub struct DbError {
    pub kind: ErrKind,
    pub message: String,
    /// The failing row, counted from the start of the rows sent, when the database says.
    pub row: Option<usize>,
    /// Set when the connection was lost during COMMIT: the transaction to ask about.
    pub in_doubt: Option<i64>,
}

impl DbError {
    pub fn new(kind: ErrKind, message: impl Into<String>) -> DbError {
        DbError {
            kind,
            message: message.into(),
            row: None,
            in_doubt: None,
        }
    }
}

/// What every sink is told once.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The table, quoted for SQL.
    pub table: String,
    /// Column name -> SQL type, for the casts of `--method insert` on PostgreSQL.
    pub types: std::collections::HashMap<String, String>,
    pub upsert: Option<Vec<String>>,
    pub method: Method,
    pub import_id: Option<String>,
    /// Attempts after the first for transient errors.
    pub retries: u32,
}

/// One connection to the database.
pub trait Db: Send {
    /// The table's columns and types, or `None` when it does not exist.
    fn columns(&mut self, table: &str) -> Result<Option<Vec<(String, String)>>, DbError>;
    /// Runs statements outside any batch.
    fn execute(&mut self, sql: &str) -> Result<(), DbError>;
    /// The (file, first line, last line) committed under this import id.
    fn ledger_rows(&mut self, import_id: &str) -> Result<Vec<(String, u64, u64)>, DbError>;
    /// Starts a batch's transaction.
    fn begin(&mut self) -> Result<(), DbError>;
    /// Inserts `rows` of `b`: all of them or, with an error, none.
    fn insert(&mut self, b: &Batch, rows: Range<usize>) -> Result<(), DbError>;
    /// Adds the batch's ledger row to the transaction.
    fn record(&mut self, import_id: &str, b: &Batch) -> Result<(), DbError>;
    fn commit(&mut self) -> Result<(), DbError>;
    /// Ends a failed transaction; errors are ignored (the connection may be gone).
    fn rollback(&mut self);
    /// After a connection lost during COMMIT: whether that transaction committed.
    fn was_committed(&mut self, token: i64) -> Result<bool, DbError>;
}

/// Opens a connection.
pub type Connect = Arc<dyn Fn() -> Result<Box<dyn Db>, DbError> + Send + Sync>;

/// A worker's state: its connection, opened again after a transient error.
pub struct Slot {
    db: Option<Box<dyn Db>>,
    connect: Connect,
}

impl Slot {
    /// Opens the worker's connection.
    pub fn open(connect: Connect) -> Result<Slot, String> {
        let db = connect().map_err(|e| e.message)?;
        Ok(Slot {
            db: Some(db),
            connect,
        })
    }
}

/// A batch that went in.
#[derive(Debug)]
pub struct Loaded {
    /// Rows inserted.
    pub rows: u64,
    /// Rows refused: by the reader, then by the database.
    pub rejects: Vec<Reject>,
    /// Transient errors retried.
    pub retries: u32,
}

/// A batch that did not go in.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub message: String,
    /// A permanent error: the run stops (exit 2).
    pub permanent: bool,
    pub retries: u32,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn backoff(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    // A little jitter so that workers cut off together do not come back together.
    let jitter = (u64::from(std::process::id()) ^ (u64::from(attempt) * 7919)) % (ms / 4 + 1);
    Duration::from_millis(ms + jitter)
}

/// Loads one batch (the worker function).
pub fn load(
    slot: &mut Slot,
    plan: &Plan,
    b: &Batch,
    ctx: &Context<'_, Batch>,
) -> Result<Loaded, LoadError> {
    let mut retries = 0u32;
    // Set when a connection was lost during COMMIT: the transaction to ask
    // about, and the rejects of that attempt (what it left out).
    let mut doubt: Option<(i64, Vec<Reject>)> = None;
    loop {
        let mut rejects = Vec::new();
        let res = step(slot, plan, b, &mut doubt, &mut rejects);
        let e = match res {
            Ok(Step::Committed) => return Ok(done(b, rejects, retries)),
            Ok(Step::WasCommitted(r)) => return Ok(done(b, r, retries)),
            Err(e) => e,
        };
        if let Some(db) = slot.db.as_mut() {
            db.rollback();
        }
        let place = format!("{} lines {}-{}", b.file, b.first_line, b.last_line);
        if e.kind != ErrKind::Transient || retries >= plan.retries {
            let gave_up = if e.kind == ErrKind::Transient {
                format!(" (gave up after {retries} retries)")
            } else {
                String::new()
            };
            return Err(LoadError {
                message: format!("{place}: {}{gave_up}", e.message),
                permanent: e.kind == ErrKind::Permanent,
                retries,
            });
        }
        if let Some(token) = e.in_doubt {
            doubt = Some((token, rejects));
        }
        // A fresh connection for the next attempt.
        slot.db = None;
        retries += 1;
        if !ctx.sleep(backoff(retries)) {
            return Err(LoadError {
                message: format!(
                    "{place}: not loaded: interrupted while retrying after: {}",
                    e.message
                ),
                permanent: false,
                retries,
            });
        }
    }
}

enum Step {
    Committed,
    WasCommitted(Vec<Reject>),
}

fn step(
    slot: &mut Slot,
    plan: &Plan,
    b: &Batch,
    doubt: &mut Option<(i64, Vec<Reject>)>,
    rejects: &mut Vec<Reject>,
) -> Result<Step, DbError> {
    let db = match slot.db.as_mut() {
        Some(db) => db,
        None => slot.db.insert((slot.connect)()?),
    };
    if let Some((token, _)) = doubt {
        if db.was_committed(*token)? {
            let (_, r) = doubt.take().expect("a doubt");
            return Ok(Step::WasCommitted(r));
        }
        *doubt = None;
    }
    attempt(db.as_mut(), plan, b, rejects)?;
    Ok(Step::Committed)
}

fn done(b: &Batch, db_rejects: Vec<Reject>, retries: u32) -> Loaded {
    let rows = b.rows() as u64 - db_rejects.len() as u64;
    let mut rejects = b.rejects.clone();
    rejects.extend(db_rejects);
    Loaded {
        rows,
        rejects,
        retries,
    }
}

/// One try at a batch: begin, insert (bisecting around bad rows), ledger row, commit.
fn attempt(
    db: &mut dyn Db,
    plan: &Plan,
    b: &Batch,
    rejects: &mut Vec<Reject>,
) -> Result<(), DbError> {
    db.begin()?;
    insert_all(db, b, 0..b.rows(), rejects)?;
    if let Some(id) = &plan.import_id {
        db.record(id, b)?;
    }
    db.commit()
}

/// Inserts `range`; on a row error, splits it (at the row the database
/// named, else in halves) until each bad row stands alone and is rejected.
fn insert_all(
    db: &mut dyn Db,
    b: &Batch,
    mut range: Range<usize>,
    rejects: &mut Vec<Reject>,
) -> Result<(), DbError> {
    while !range.is_empty() {
        let e = match db.insert(b, range.clone()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind == ErrKind::Row => e,
            Err(e) => return Err(e),
        };
        let (start, len) = (range.start, range.len());
        if len == 1 {
            rejects.push(Reject {
                file: b.file.to_string(),
                line: b.lines[start],
                row: b.row_json(start),
                error: e.message,
            });
            return Ok(());
        }
        match e.row {
            Some(i) if i < len => {
                insert_all(db, b, start..start + i, rejects)?;
                insert_all(db, b, start + i..start + i + 1, rejects)?;
                range = start + i + 1..range.end;
            }
            _ => {
                let mid = start + len / 2;
                insert_all(db, b, start..mid, rejects)?;
                range = mid..range.end;
            }
        }
    }
    Ok(())
}

/// Quotes an identifier for SQL: `a"b` -> `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a table name, `schema.table` allowed.
pub fn quote_table(name: &str) -> String {
    match name.split_once('.') {
        Some((s, t)) if !s.is_empty() && !t.is_empty() => {
            format!("{}.{}", quote_ident(s), quote_ident(t))
        }
        _ => quote_ident(name),
    }
}

/// The comma-separated quoted column list.
pub fn column_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ON CONFLICT (key) DO UPDATE SET c = excluded.c, ...` for --upsert.
pub fn on_conflict(cols: &[String], key: &[String]) -> String {
    let keys = column_list(key);
    let set: Vec<String> = cols
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{q} = excluded.{q}", q = quote_ident(c)))
        .collect();
    if set.is_empty() {
        format!(" ON CONFLICT ({keys}) DO NOTHING")
    } else {
        format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", set.join(", "))
    }
}

/// `CREATE TABLE` for --create.
pub fn create_sql(table: &str, cols: &[(String, String)]) -> String {
    let defs: Vec<String> = cols
        .iter()
        .map(|(c, t)| format!("{} {t}", quote_ident(c)))
        .collect();
    format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("s.t"), "\"s\".\"t\"");
        assert_eq!(quote_table("t"), "\"t\"");
        assert_eq!(
            on_conflict(&["id".into(), "v".into()], &["id".into()]),
            " ON CONFLICT (\"id\") DO UPDATE SET \"v\" = excluded.\"v\""
        );
        assert_eq!(
            on_conflict(&["id".into()], &["id".into()]),
            " ON CONFLICT (\"id\") DO NOTHING"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(3));
        assert!(backoff(30) <= Duration::from_millis(6_250));
    }
}
