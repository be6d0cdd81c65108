//! The PostgreSQL sink: COPY (binary where every column's type and value
//! allow it, else text; see `binary.rs`) or multi-row INSERT, one connection
//! per worker, savepoints for bisecting, `txid_status` to settle a COMMIT
//! whose answer was lost.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, SimpleQueryMessage, Statement};

use super::args::Method;
use super::binary;
use super::infer::Dialect;
use super::input::Batch;
use super::ledger;
use super::sink::{column_list, on_conflict, quote_table, Db, DbError, ErrKind, Plan};

/// The application_name of brigade's connections (see pg_stat_activity).
pub const APP_NAME: &str = "brigade-load";

pub struct Pg {
    client: Client,
    plan: Arc<Plan>,
    buf: Vec<u8>,
    txid: i64,
    stmts: HashMap<(String, usize), Statement>,
    ledger: Option<Statement>,
}

/// Connects; bad credentials or a missing database are permanent, a refused
/// or lost connection transient.
pub fn connect(url: &str, plan: Arc<Plan>) -> Result<Pg, DbError> {
    let mut cfg: postgres::Config = url
        .parse()
        .map_err(|e| DbError::new(ErrKind::Permanent, format!("bad connection string: {e}")))?;
    cfg.application_name(APP_NAME);
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    let client = cfg.connect(NoTls).map_err(|e| {
        let mut d = classify(&e);
        d.message = format!("cannot connect: {}", d.message);
        d
    })?;
    Ok(Pg {
        client,
        plan,
        buf: Vec::new(),
        txid: 0,
        stmts: HashMap::new(),
        ledger: None,
    })
}

/// Sorts an error into row, transient or permanent, with a message that names what failed.
pub fn classify(e: &postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = if code.starts_with("22") || code.starts_with("23") || code == "54000" {
            ErrKind::Row
        } else if code.starts_with("08")
            || code.starts_with("57P")
            || matches!(code, "40001" | "40P01" | "53300" | "55P03")
        {
            ErrKind::Transient
        } else {
            ErrKind::Permanent
        };
        let mut msg = db.message().to_string();
        if let Some(d) = db.detail() {
            msg.push_str(&format!(" ({d})"));
        }
        let mut row = None;
        if let Some(w) = db.where_() {
            if let Some(c) = w.split(", ").find(|p| p.starts_with("column ")) {
                let c = c.split(':').next().unwrap_or(c);
                msg.push_str(&format!(" [{c}]"));
            }
            row = w
                .split(", ")
                .find_map(|p| p.strip_prefix("line "))
                .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1));
        }
        let mut d = DbError::new(kind, format!("{msg} (SQLSTATE {code})"));
        d.row = row;
        return d;
    }
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return DbError::new(ErrKind::Transient, format!("connection lost: {e}"));
    }
    DbError::new(ErrKind::Permanent, e.to_string())
}

fn err(e: postgres::Error) -> DbError {
    classify(&e)
}

/// Appends `v` in COPY text format.
fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    let mut from = 0;
    for (i, &c) in v.iter().enumerate() {
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&v[from..i]);
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(&v[from..]);
}

impl Pg {
    fn in_savepoint(
        &mut self,
        f: impl FnOnce(&mut Pg) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        self.client
            .batch_execute("SAVEPOINT brigade")
            .map_err(err)?;
        match f(self) {
            Ok(()) => self
                .client
                .batch_execute("RELEASE SAVEPOINT brigade")
                .map_err(err),
            Err(e) => {
                if e.kind == ErrKind::Row {
                    self.client
                        .batch_execute("ROLLBACK TO SAVEPOINT brigade; RELEASE SAVEPOINT brigade")
                        .map_err(err)?;
                }
                Err(e)
            }
        }
    }

    fn copy(&mut self, b: &Batch, rows: Range<usize>) -> Result<(), DbError> {
        let mut buf = std::mem::take(&mut self.buf);
        let kinds: Option<Vec<binary::Kind>> = b
            .columns
            .iter()
            .map(|c| self.plan.types.get(c).and_then(|t| binary::kind_of(t)))
            .collect();
        let binary = self.plan.method == Method::Copy
            && kinds.is_some_and(|k| binary::encode(&k, b, rows.clone(), &mut buf));
        if binary {
            let sql = format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                self.plan.table,
                column_list(&b.columns)
            );
            let res = self.send_copy(&sql, &buf);
            self.buf = buf;
            return res;
        }
        buf.clear();
        for r in rows {
            for c in 0..b.ncols() {
                if c > 0 {
                    buf.push(b'\t');
                }
                match b.field(r, c) {
                    None => buf.extend_from_slice(b"\\N"),
                    Some(v) => escape_into(&mut buf, v),
                }
            }
            buf.push(b'\n');
        }
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            self.plan.table,
            column_list(&b.columns)
        );
        let res = self.send_copy(&sql, &buf);
        self.buf = buf;
        res
    }

    /// Runs one `COPY ... FROM STDIN` with `data`.
    fn send_copy(&mut self, sql: &str, data: &[u8]) -> Result<(), DbError> {
        let mut w = self.client.copy_in(sql).map_err(err)?;
        if let Err(e) = w.write_all(data) {
            return Err(DbError::new(
                ErrKind::Transient,
                format!("connection lost during COPY: {e}"),
            ));
        }
        w.finish().map_err(err).map(|_| ())
    }

    fn statement(&mut self, cols: &[String], rows: usize) -> Result<Statement, DbError> {
        let key = (cols.join("\u{1}"), rows);
        if let Some(s) = self.stmts.get(&key) {
            return Ok(s.clone());
        }
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.plan.table,
            column_list(cols)
        );
        let mut n = 0;
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (i, c) in cols.iter().enumerate() {
                n += 1;
                if i > 0 {
                    sql.push_str(", ");
                }
                match self.plan.types.get(c) {
                    Some(t) => sql.push_str(&format!("${n}::text::{t}")),
                    None => sql.push_str(&format!("${n}")),
                }
            }
            sql.push(')');
        }
        if let Some(key) = &self.plan.upsert {
            sql.push_str(&on_conflict(cols, key));
        }
        let types = vec![Type::TEXT; n];
        let stmt = self.client.prepare_typed(&sql, &types).map_err(err)?;
        self.stmts.insert(key, stmt.clone());
        Ok(stmt)
    }

    fn insert_rows(&mut self, b: &Batch, rows: Range<usize>) -> Result<(), DbError> {
        let ncols = b.ncols().max(1);
        let per = (65_535 / ncols).clamp(1, 1_000);
        let mut start = rows.start;
        while start < rows.end {
            let n = per.min(rows.end - start);
            let stmt = self.statement(&b.columns, n)?;
            let mut vals: Vec<Option<&str>> = Vec::with_capacity(n * ncols);
            for r in start..start + n {
                for c in 0..b.ncols() {
                    let v = match b.field(r, c) {
                        None => None,
                        Some(bytes) => Some(std::str::from_utf8(bytes).map_err(|_| {
                            let mut e = DbError::new(
                                ErrKind::Row,
                                format!("invalid UTF-8 in column {}", b.columns[c]),
                            );
                            e.row = Some(r - rows.start);
                            e
                        })?),
                    };
                    vals.push(v);
                }
            }
            let params: Vec<&(dyn ToSql + Sync)> =
                vals.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            self.client.execute(&stmt, &params).map_err(err)?;
            start += n;
        }
        Ok(())
    }
}

impl Db for Pg {
    fn columns(&mut self, table: &str) -> Result<Option<Vec<(String, String)>>, DbError> {
        let table = &quote_table(table);
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .map_err(err)?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1)::oid AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&table],
            )
            .map_err(err)?;
        Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
    }

    fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.client.batch_execute(sql).map_err(err)
    }

    fn ledger_rows(&mut self, import_id: &str) -> Result<Vec<(String, u64, u64)>, DbError> {
        let rows = self
            .client
            .query(&ledger::select_sql(Dialect::Postgres), &[&import_id])
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| {
                let (a, b): (i64, i64) = (r.get(1), r.get(2));
                (r.get(0), a as u64, b as u64)
            })
            .collect())
    }

    fn begin(&mut self) -> Result<(), DbError> {
        let msgs = self
            .client
            .simple_query("BEGIN; SELECT txid_current()")
            .map_err(err)?;
        self.txid = msgs
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .unwrap_or(0);
        Ok(())
    }

    fn insert(&mut self, b: &Batch, rows: Range<usize>) -> Result<(), DbError> {
        let copy = matches!(self.plan.method, Method::Copy | Method::CopyText)
            && self.plan.upsert.is_none();
        self.in_savepoint(|pg| {
            if copy {
                pg.copy(b, rows)
            } else {
                pg.insert_rows(b, rows)
            }
        })
    }

    fn record(&mut self, import_id: &str, b: &Batch) -> Result<(), DbError> {
        let stmt = match &self.ledger {
            Some(s) => s.clone(),
            None => {
                let s = self
                    .client
                    .prepare(&ledger::insert_sql(Dialect::Postgres))
                    .map_err(err)?;
                self.ledger.insert(s).clone()
            }
        };
        let file: &str = &b.file;
        self.client
            .execute(
                &stmt,
                &[
                    &import_id,
                    &file,
                    &(b.first_line as i64),
                    &(b.last_line as i64),
                    &(b.records() as i64),
                ],
            )
            .map_err(err)
            .map(|_| ())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.client.batch_execute("COMMIT").map_err(|e| {
            let mut d = classify(&e);
            // Lost mid-COMMIT: ask later (a conflict at COMMIT answers "aborted").
            if d.kind == ErrKind::Transient {
                d.in_doubt = (self.txid != 0).then_some(self.txid);
            }
            d
        })
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn was_committed(&mut self, token: i64) -> Result<bool, DbError> {
        for _ in 0..100 {
            let status: Option<String> = self
                .client
                .query_one("SELECT txid_status($1)", &[&token])
                .map_err(err)?
                .get(0);
            match status.as_deref() {
                Some("committed") => return Ok(true),
                Some("aborted") => return Ok(false),
                Some(_) => std::thread::sleep(Duration::from_millis(50)),
                None => break,
            }
        }
        Err(DbError::new(
            ErrKind::Permanent,
            format!("cannot tell whether transaction {token} committed"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes() {
        let mut v = Vec::new();
        escape_into(&mut v, b"a\tb\\c\nd\re");
        assert_eq!(v, b"a\\tb\\\\c\\nd\\re");
    }
}
