//! The SQLite sink: prepared multi-row INSERTs, one transaction per batch
//! (BEGIN IMMEDIATE, so writers queue on the file lock instead of deadlocking).

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::infer::Dialect;
use super::input::Batch;
use super::ledger;
use super::sink::{column_list, on_conflict, Db, DbError, ErrKind, Plan};

/// Most parameters one statement binds (SQLite's own limit is 32,766).
const MAX_PARAMS: usize = 32_000;
/// Most rows one statement inserts.
const MAX_ROWS: usize = 500;

pub struct Lite {
    conn: Connection,
    plan: Arc<Plan>,
    sql: std::collections::HashMap<(String, usize), Arc<str>>,
}

fn classify(e: &rusqlite::Error) -> DbError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig) => {
            ErrKind::Row
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrKind::Transient,
        _ => ErrKind::Permanent,
    };
    DbError::new(kind, e.to_string())
}

fn err(e: rusqlite::Error) -> DbError {
    classify(&e)
}

/// Opens the database file (created if missing) for loading: WAL journal,
/// synchronous=NORMAL, a long busy timeout.
pub fn open(path: &Path, plan: Arc<Plan>) -> Result<Lite, DbError> {
    let conn = Connection::open(path)
        .map_err(|e| DbError::new(ErrKind::Permanent, format!("cannot open: {e}")))?;
    conn.busy_timeout(Duration::from_secs(60)).map_err(err)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(|e| DbError::new(ErrKind::Permanent, format!("cannot open: {e}")))?;
    conn.execute_batch("PRAGMA synchronous=NORMAL")
        .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(Lite {
        conn,
        plan,
        sql: std::collections::HashMap::new(),
    })
}

impl Lite {
    fn sql(&mut self, cols: &[String], rows: usize) -> Arc<str> {
        let key = (cols.join("\u{1}"), rows);
        if let Some(s) = self.sql.get(&key) {
            return s.clone();
        }
        let one = format!("({})", vec!["?"; cols.len()].join(","));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.plan.table,
            column_list(cols),
            vec![one.as_str(); rows].join(",")
        );
        if let Some(key) = &self.plan.upsert {
            sql.push_str(&on_conflict(cols, key));
        }
        let sql: Arc<str> = sql.into();
        self.sql.insert(key, sql.clone());
        sql
    }

    fn insert_rows(&mut self, b: &Batch, rows: Range<usize>) -> Result<(), DbError> {
        let ncols = b.ncols().max(1);
        let per = (MAX_PARAMS / ncols).clamp(1, MAX_ROWS);
        let mut start = rows.start;
        while start < rows.end {
            let n = per.min(rows.end - start);
            let sql = self.sql(&b.columns, n);
            let mut stmt = self.conn.prepare_cached(&sql).map_err(err)?;
            let mut p = 1;
            for r in start..start + n {
                for c in 0..b.ncols() {
                    match b.field(r, c) {
                        None => stmt.raw_bind_parameter(p, rusqlite::types::Null),
                        Some(bytes) => match std::str::from_utf8(bytes) {
                            Ok(s) => stmt.raw_bind_parameter(p, s),
                            Err(_) => {
                                let mut e = DbError::new(
                                    ErrKind::Row,
                                    format!("invalid UTF-8 in column {}", b.columns[c]),
                                );
                                e.row = Some(r - rows.start);
                                return Err(e);
                            }
                        },
                    }
                    .map_err(err)?;
                    p += 1;
                }
            }
            stmt.raw_execute().map_err(err)?;
            start += n;
        }
        Ok(())
    }
}

impl Db for Lite {
    fn columns(&mut self, table: &str) -> Result<Option<Vec<(String, String)>>, DbError> {
        let name = table;
        let mut stmt = self
            .conn
            .prepare("SELECT name, type FROM pragma_table_info(?1)")
            .map_err(err)?;
        let cols = stmt
            .query_map([&name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok((!cols.is_empty()).then_some(cols))
    }

    fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(err)
    }

    fn ledger_rows(&mut self, import_id: &str) -> Result<Vec<(String, u64, u64)>, DbError> {
        let mut stmt = self
            .conn
            .prepare(&ledger::select_sql(Dialect::Sqlite))
            .map_err(err)?;
        let rows = stmt
            .query_map([import_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(err)
    }

    fn insert(&mut self, b: &Batch, rows: Range<usize>) -> Result<(), DbError> {
        self.conn.execute_batch("SAVEPOINT brigade").map_err(err)?;
        match self.insert_rows(b, rows) {
            Ok(()) => self.conn.execute_batch("RELEASE brigade").map_err(err),
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK TO brigade; RELEASE brigade")
                    .map_err(err)?;
                Err(e)
            }
        }
    }

    fn record(&mut self, import_id: &str, b: &Batch) -> Result<(), DbError> {
        let mut stmt = self
            .conn
            .prepare_cached(&ledger::insert_sql(Dialect::Sqlite))
            .map_err(err)?;
        stmt.execute(rusqlite::params![
            import_id,
            &*b.file,
            b.first_line as i64,
            b.last_line as i64,
            b.records() as i64
        ])
        .map_err(err)
        .map(|_| ())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(err)
    }

    fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn was_committed(&mut self, _token: i64) -> Result<bool, DbError> {
        // A local COMMIT that failed did not happen.
        Ok(false)
    }
}
