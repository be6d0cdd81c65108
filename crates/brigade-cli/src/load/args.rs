//! The command line of `brigade load`, and its validation into a `Target`.

use std::path::PathBuf;

use crate::run::RunArgs;

/// Load CSV, TSV or JSONL files into SQLite or PostgreSQL, in batches, one
/// connection per worker
///
/// Each FILE (or `-` for stdin) is read once, cut into batches on record
/// boundaries (a quoted CSV field may span lines), and each batch goes in as
/// one transaction: COPY on PostgreSQL (or multi-row INSERT with
/// `--method insert`), prepared multi-row INSERTs on SQLite. The format comes
/// from the extension (.csv, .tsv/.tab, .jsonl/.ndjson; stdin is CSV) unless
/// --format says otherwise.
///
/// CSV values: an empty unquoted field is NULL, a quoted empty field ("") is
/// an empty string (PostgreSQL's own CSV rule); --null changes the NULL
/// marker. A line equal to the header later in the file (files joined with
/// cat) is skipped and counted. JSONL: one object per line, keys are columns,
/// null is NULL, nested values are stored as JSON text.
///
/// The table must exist, with the input's columns (matched by name, in any
/// order; table columns absent from the input get their defaults), unless
/// --create makes a missing one from the types seen in the first rows
/// (integer, real, boolean, timestamp, date, text; --type overrides).
///
/// A row the database refuses (a bad value, a constraint) is found by
/// bisecting its batch and written to --rejects as JSON (file, line, row,
/// error); the rest of the batch goes in. Rows read = rows inserted + rows
/// rejected (+ rows skipped by --import-id, + rows of batches never
/// loaded), and the summary says so. With --import-id, each batch commits
/// together with a ledger row (table brigade_load_ledger), so a rerun with
/// the same id after Ctrl-C, kill -9 or a lost connection skips exactly the
/// rows already committed. A lost connection, a serialization failure or a
/// deadlock is retried on a fresh connection with backoff (--retries, 8 by
/// default here); a missing table or bad credentials stop the run (exit 2).
///
/// Workers: 1 for SQLite by default (it has one writer at a time; the reader
/// runs on its own thread), the number of cores (2 to 8) for PostgreSQL. Each
/// worker holds one connection. --queue counts batches here and is capped at
/// twice the workers, so memory stays bounded by a few batches whatever the
/// input's size. --timeout is ignored: a batch is never cut off mid-transaction.
///
/// Exit codes: 0 every row went in, 1 some rows were rejected or some
/// batches failed, 2 bad usage, bad input or a permanent database error,
/// 130 interrupted. SQLite databases are switched to WAL journaling with
/// synchronous=NORMAL (committed batches survive a crash of brigade, not a
/// power cut).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    brigade load --db shop.db --create orders.csv\n  \
    brigade load --db postgres://postgres@127.0.0.1/test --table orders orders-*.csv\n  \
    zcat big.csv.gz | brigade load --db postgres://localhost/test --table big --import-id big-2024 -\n  \
    brigade load --db data.db --table events --create --type ts=TEXT events.jsonl\n  \
    brigade load --db postgres://localhost/test --table users --upsert id --rejects bad.jsonl users.csv")]
pub struct Args {
    /// Input files: CSV, TSV or JSONL; `-` reads stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Database: a SQLite file (`path.db` or `sqlite:path.db`) or `postgres://user@host:port/db`
    #[arg(long, value_name = "URL")]
    pub db: String,
    /// Table to load into [default: the first file's name without its extension]
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Input format [default: from the extension; stdin is CSV]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Column names, for input without a header line (implies --no-header for CSV/TSV)
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// The CSV/TSV input has no header line: columns are taken from --columns or the table, in order
    #[arg(long)]
    pub no_header: bool,
    /// CSV field delimiter (one byte)
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// A CSV/TSV field with exactly this text is NULL [default: an empty unquoted field]
    #[arg(long, value_name = "TEXT")]
    pub null: Option<String>,
    /// Create the table if it is missing, with column types inferred from the first rows
    #[arg(long)]
    pub create: bool,
    /// Column type for --create, e.g. --type zip=TEXT --type price=NUMERIC(10,2)
    #[arg(long = "type", value_name = "COL=TYPE", value_parser = parse_type)]
    pub types: Vec<(String, String)>,
    /// Rows sampled for type inference
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub sample: usize,
    /// Empty the table before loading (never done otherwise; skipped when resuming an --import-id)
    #[arg(long)]
    pub truncate: bool,
    /// Insert or update by this key (comma-separated columns with a unique index): ON CONFLICT
    #[arg(long, value_name = "KEY", value_delimiter = ',')]
    pub upsert: Option<Vec<String>>,
    /// PostgreSQL: COPY (fastest) or multi-row INSERT; --upsert always uses insert
    #[arg(long, value_enum, default_value = "copy")]
    pub method: Method,
    /// Rows per batch (one transaction each)
    #[arg(long, value_name = "N", default_value_t = 5000, value_parser = parse_positive)]
    pub batch_rows: usize,
    /// Bytes per batch at most (whichever of --batch-rows and this comes first), e.g. 16MiB
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub batch_bytes: usize,
    /// Write rejected rows here as JSON lines: {"file","line","row","error"}
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Record each committed batch under this id, so that a rerun skips exactly those
    #[arg(long, value_name = "ID")]
    pub import_id: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The input formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values, RFC 4180 quoting
    Csv,
    /// Tab-separated values, no quoting
    Tsv,
    /// One JSON object per line
    Jsonl,
}

/// How rows go into PostgreSQL.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// COPY ... FROM STDIN: binary where every column type and value allows it, else text
    Copy,
    /// COPY ... FROM STDIN, always in text format
    CopyText,
    /// INSERT ... VALUES (...), (...) with bound parameters
    Insert,
}

/// Where the rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://...`).
    Postgres(String),
}

impl Target {
    /// Reads `--db`: `postgres://` or `postgresql://` is PostgreSQL; `sqlite:` or a plain path is SQLite.
    pub fn parse(db: &str) -> Result<Target, String> {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Ok(Target::Postgres(db.to_string()));
        }
        let path = db
            .strip_prefix("sqlite://")
            .or_else(|| db.strip_prefix("sqlite:"))
            .unwrap_or(db);
        if path.is_empty() {
            return Err(format!("--db '{db}': no database file named"));
        }
        if path.contains("://") {
            return Err(format!(
                "--db '{db}': unknown scheme (use postgres://... or a SQLite file path)"
            ));
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }

    /// The database for messages, without any password.
    pub fn display(&self) -> String {
        match self {
            Target::Sqlite(p) => p.display().to_string(),
            Target::Postgres(url) => redact(url),
        }
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rfind('@') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
        None => url.to_string(),
    }
}

/// The format of one input: --format, else the extension, else CSV.
pub fn format_of(file: &str, forced: Option<Format>) -> Format {
    if let Some(f) = forced {
        return f;
    }
    let lower = file.to_ascii_lowercase();
    let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
    if lower.ends_with(".tsv") || lower.ends_with(".tab") {
        Format::Tsv
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
        Format::Jsonl
    } else {
        Format::Csv
    }
}

/// The default table name: the file name up to its first dot.
pub fn table_from_file(file: &str) -> Option<String> {
    if file == "-" {
        return None;
    }
    let name = std::path::Path::new(file).file_name()?.to_str()?;
    let stem = name.split('.').next().unwrap_or(name);
    (!stem.is_empty()).then(|| stem.to_string())
}

fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "tab" => Ok(b'\t'),
        t if t.len() == 1 => Ok(t.as_bytes()[0]),
        _ => Err(format!("'{text}': the delimiter is one ASCII character")),
    }
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("'{text}' is not a positive number")),
        Ok(n) => Ok(n),
    }
}

/// Sizes: `16MiB`, `512KiB`, `1GB`, `4096`; at least 1 KiB, at most 1 GiB.
fn parse_size(text: &str) -> Result<usize, String> {
    let bytes = crate::units::parse_bytes(text)?;
    if !(1024..=(1 << 30)).contains(&bytes) {
        return Err(format!("'{text}': a batch holds 1KiB to 1GiB"));
    }
    Ok(bytes as usize)
}

fn parse_type(text: &str) -> Result<(String, String), String> {
    let (col, ty) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}': write COLUMN=TYPE, e.g. zip=TEXT"))?;
    let ty = ty.trim();
    let ok = !ty.is_empty()
        && ty
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _(),".contains(c));
    if col.is_empty() || !ok {
        return Err(format!(
            "'{text}': a type is a name like TEXT, BIGINT or NUMERIC(10,2)"
        ));
    }
    Ok((col.to_string(), ty.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("a.db"),
            Ok(Target::Sqlite(PathBuf::from("a.db")))
        );
        assert_eq!(
            Target::parse("sqlite:x/a.db"),
            Ok(Target::Sqlite(PathBuf::from("x/a.db")))
        );
        assert!(matches!(
            Target::parse("postgres://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(Target::parse("mysql://h/db").is_err());
        assert!(Target::parse("sqlite:").is_err());
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn formats_sizes_types() {
        assert_eq!(format_of("a.TSV", None), Format::Tsv);
        assert_eq!(format_of("a.jsonl", None), Format::Jsonl);
        assert_eq!(format_of("-", None), Format::Csv);
        assert_eq!(format_of("a.csv", Some(Format::Tsv)), Format::Tsv);
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert!(parse_size("1").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(
            parse_type("p=NUMERIC(10,2)"),
            Ok(("p".into(), "NUMERIC(10,2)".into()))
        );
        assert!(parse_type("p=int; drop table x").is_err());
        assert_eq!(
            table_from_file("dir/orders.2024.csv").as_deref(),
            Some("orders")
        );
        assert_eq!(table_from_file("-"), None);
    }
}
