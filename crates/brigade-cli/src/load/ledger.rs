//! The --import-id ledger: one row per committed batch, written in the
//! batch's own transaction, so that the table and the ledger never disagree.
//! A rerun reads the ranges of record lines already committed and skips
//! exactly those records (even if the batch size changed in between).

use super::infer::Dialect;

/// The ledger table, in the database's default schema.
pub const TABLE: &str = "brigade_load_ledger";

/// Creates the ledger if it is missing.
pub fn create_sql(d: Dialect) -> String {
    let (big, ts) = match d {
        Dialect::Postgres => ("BIGINT", "TIMESTAMPTZ NOT NULL DEFAULT now()"),
        Dialect::Sqlite => ("INTEGER", "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP"),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (
            import_id TEXT NOT NULL,
            file TEXT NOT NULL,
            first_line {big} NOT NULL,
            last_line {big} NOT NULL,
            rows {big} NOT NULL,
            loaded_at {ts},
            PRIMARY KEY (import_id, file, first_line)
        )"
    )
}

/// The committed ranges of one import id (one parameter: the id).
pub fn select_sql(d: Dialect) -> String {
    let p = match d {
        Dialect::Postgres => "$1",
        Dialect::Sqlite => "?1",
    };
    format!("SELECT file, first_line, last_line FROM {TABLE} WHERE import_id = {p}")
}

/// One committed batch (parameters: id, file, first line, last line, rows).
pub fn insert_sql(d: Dialect) -> String {
    let ps = match d {
        Dialect::Postgres => "$1, $2, $3, $4, $5",
        Dialect::Sqlite => "?1, ?2, ?3, ?4, ?5",
    };
    format!("INSERT INTO {TABLE} (import_id, file, first_line, last_line, rows) VALUES ({ps})")
}
