//! Reading the inputs (CSV, TSV, JSONL, stdin, .gz) and cutting them into
//! batches on record boundaries.
//!
//! A batch holds its rows flat: one byte buffer and a (start, end) pair per
//! field, so a batch of 5,000 rows is three allocations, not 40,000.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use csv::ByteRecord;
use serde_json::{Map, Value};

use super::args::Format;
use super::rejects::Reject;

/// Records read ahead from each later input to learn its JSONL keys.
const SAMPLE: usize = 1000;

/// Marks a NULL field in `Batch::fields`.
const NULL: u32 = u32::MAX;

/// Rows cut from one input, loaded as one transaction.
#[derive(Debug)]
pub struct Batch {
    /// The input's name as given (`-` for stdin).
    pub file: Arc<str>,
    /// The table columns the fields go to, in field order.
    pub columns: Arc<Vec<String>>,
    data: Vec<u8>,
    fields: Vec<(u32, u32)>,
    /// The line each row starts on (1-based).
    pub lines: Vec<u64>,
    /// The first and last record lines this batch covers (rejected ones included).
    pub first_line: u64,
    /// See `first_line`.
    pub last_line: u64,
    /// Records refused while reading (wrong field count, bad JSON).
    pub rejects: Vec<Reject>,
    /// Input bytes this batch was read from.
    pub bytes: u64,
}

impl Batch {
    fn new(file: Arc<str>, columns: Arc<Vec<String>>) -> Batch {
        Batch {
            file,
            columns,
            data: Vec::new(),
            fields: Vec::new(),
            lines: Vec::new(),
            first_line: 0,
            last_line: 0,
            rejects: Vec::new(),
            bytes: 0,
        }
    }

    /// Rows to insert.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// Records read into this batch: rows plus those refused while reading.
    pub fn records(&self) -> u64 {
        (self.lines.len() + self.rejects.len()) as u64
    }

    /// Fields per row.
    pub fn ncols(&self) -> usize {
        self.columns.len()
    }

    /// One field: `None` is NULL.
    pub fn field(&self, row: usize, col: usize) -> Option<&[u8]> {
        let (s, e) = self.fields[row * self.columns.len() + col];
        (s != NULL).then(|| &self.data[s as usize..e as usize])
    }

    /// A row as a JSON object, for the rejects file.
    pub fn row_json(&self, row: usize) -> Value {
        let mut m = Map::new();
        for (c, name) in self.columns.iter().enumerate() {
            let v = match self.field(row, c) {
                None => Value::Null,
                Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            };
            m.insert(name.clone(), v);
        }
        Value::Object(m)
    }

    fn push(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.fields.push((NULL, NULL)),
            Some(b) => {
                let s = self.data.len() as u32;
                self.data.extend_from_slice(b);
                self.fields.push((s, self.data.len() as u32));
            }
        }
    }

    fn truncate_row(&mut self) {
        self.fields.truncate(self.lines.len() * self.columns.len());
    }
}

/// How inputs are read: the options that apply to every file.
#[derive(Debug, Clone)]
pub struct ReadOpts {
    pub format: Option<Format>,
    pub delimiter: Option<u8>,
    pub null: Option<String>,
    pub no_header: bool,
    pub columns: Option<Vec<String>>,
    pub batch_rows: usize,
    pub batch_bytes: usize,
}

/// Opens an input: `-` is stdin, `.gz` is decompressed.
fn open(name: &str) -> io::Result<Box<dyn Read + Send>> {
    if name == "-" {
        return Ok(Box::new(io::stdin()));
    }
    let f = File::open(name)?;
    if f.metadata()?.is_dir() {
        return Err(io::Error::other("is a folder, not a file"));
    }
    if name.ends_with(".gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Ok(Box::new(f))
    }
}

/// Passes reads through, keeping a copy of the bytes of the records not yet
/// looked at, so that a quoted empty field ("") can be told from an empty
/// one: the csv crate gives both as empty.
struct Tee {
    inner: Box<dyn Read + Send>,
    keep: bool,
    buf: Vec<u8>,
    base: u64,
}

impl Read for Tee {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if self.keep {
            self.buf.extend_from_slice(&out[..n]);
        }
        Ok(n)
    }
}

impl Tee {
    fn raw(&self, start: u64, end: u64) -> &[u8] {
        let s = start.saturating_sub(self.base) as usize;
        let e = (end.saturating_sub(self.base) as usize).min(self.buf.len());
        &self.buf[s.min(e)..e]
    }

    fn forget_before(&mut self, pos: u64) {
        let n = pos.saturating_sub(self.base) as usize;
        if n > 256 * 1024 {
            let n = n.min(self.buf.len());
            self.buf.drain(..n);
            self.base += n as u64;
        }
    }
}

/// Which fields of one raw CSV record are written as `""`.
fn quoted_empties(raw: &[u8], delim: u8, out: &mut Vec<bool>) {
    out.clear();
    let raw = match raw.iter().position(|&b| b != b'\n' && b != b'\r') {
        Some(i) => &raw[i..],
        None => &[],
    };
    let is_qe = |f: &[u8]| f.trim_ascii() == b"\"\"";
    let (mut start, mut inq, mut i) = (0, false, 0);
    while i < raw.len() {
        let b = raw[i];
        if inq {
            if b == b'"' {
                if raw.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    inq = false;
                }
            }
        } else if b == b'"' {
            inq = true;
        } else if b == delim {
            out.push(is_qe(&raw[start..i]));
            start = i + 1;
        } else if b == b'\n' || b == b'\r' {
            break;
        }
        i += 1;
    }
    out.push(is_qe(&raw[start..i]));
}

struct CsvIn {
    rdr: csv::Reader<Tee>,
    delim: u8,
    null: Option<Vec<u8>>,
    quoting: bool,
    header: Option<ByteRecord>,
    rec: ByteRecord,
    nulls: Vec<bool>,
    scratch: Vec<bool>,
    line: u64,
    pending: VecDeque<(ByteRecord, Vec<bool>, u64)>,
}

impl CsvIn {
    /// Reads the next record from the file into `rec`, `nulls`, `line`.
    fn read(&mut self) -> io::Result<bool> {
        let got = self
            .rdr
            .read_byte_record(&mut self.rec)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if !got {
            return Ok(false);
        }
        let start = self.rec.position().map_or(0, |p| p.byte());
        self.line = self.rec.position().map_or(0, |p| p.line());
        let end = self.rdr.position().byte();
        self.nulls.clear();
        if let Some(marker) = &self.null {
            self.nulls
                .extend(self.rec.iter().map(|f| f == marker.as_slice()));
        } else if self.rec.iter().any(|f| f.is_empty()) {
            if self.quoting {
                quoted_empties(
                    self.rdr.get_ref().raw(start, end),
                    self.delim,
                    &mut self.scratch,
                );
                for (i, f) in self.rec.iter().enumerate() {
                    let quoted = self.scratch.get(i).copied().unwrap_or(false);
                    self.nulls.push(f.is_empty() && !quoted);
                }
            } else {
                self.nulls.extend(self.rec.iter().map(|f| f.is_empty()));
            }
        }
        self.rdr.get_mut().forget_before(end);
        Ok(true)
    }

    fn is_null(&self, i: usize) -> bool {
        self.nulls.get(i).copied().unwrap_or(false)
    }
}

/// A JSONL record: its line, and the object or (why not, the raw line).
type JsonRecord = (u64, Result<Map<String, Value>, (String, String)>);

struct JsonIn {
    rdr: BufReader<Box<dyn Read + Send>>,
    buf: String,
    line_no: u64,
    bytes: u64,
    /// The current record: its line, and the object or why it is not one.
    cur: JsonRecord,
    pending: VecDeque<JsonRecord>,
}

impl JsonIn {
    fn read(&mut self) -> io::Result<Option<JsonRecord>> {
        loop {
            self.buf.clear();
            let n = self.rdr.read_line(&mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
            self.line_no += 1;
            let t = self.buf.trim();
            if t.is_empty() {
                continue;
            }
            let parsed = match serde_json::from_str::<Value>(t) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err(("not a JSON object".to_string(), t.to_string())),
                Err(e) => Err((format!("invalid JSON: {e}"), t.to_string())),
            };
            return Ok(Some((self.line_no, parsed)));
        }
    }
}

enum Kind {
    Csv(Box<CsvIn>),
    Json(Box<JsonIn>),
}

/// One open input.
pub struct Source {
    /// The input's name as given.
    pub name: Arc<str>,
    /// Its column names: the header, --columns, the JSON keys of the sample,
    /// or (no header) the table's columns.
    pub columns: Vec<String>,
    /// Whether the columns are positional (no header, no --columns).
    pub positional: bool,
    kind: Kind,
    used: Vec<usize>,
    used_keys: Vec<String>,
    batch_columns: Arc<Vec<String>>,
}

/// What a record turned out to be.
pub enum Record {
    /// A row (pushed into the batch).
    Row,
    /// A record refused while reading.
    Bad(Reject),
}

impl Source {
    /// Opens `name` and reads its header line, if it has one.
    pub fn open(name: &str, opts: &ReadOpts) -> Result<Source, String> {
        let input = open(name).map_err(|e| format!("{name}: {e}"))?;
        let format = super::args::format_of(name, opts.format);
        let name: Arc<str> = Arc::from(name);
        match format {
            Format::Csv | Format::Tsv => {
                let tsv = format == Format::Tsv;
                let delim = opts.delimiter.unwrap_or(if tsv { b'\t' } else { b',' });
                let quoting = !tsv;
                let null = opts.null.as_ref().map(|s| s.as_bytes().to_vec());
                let keep = quoting && null.is_none();
                let rdr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(delim)
                    .quoting(quoting)
                    .buffer_capacity(64 * 1024)
                    .from_reader(Tee {
                        inner: input,
                        keep,
                        buf: Vec::new(),
                        base: 0,
                    });
                let mut c = CsvIn {
                    rdr,
                    delim,
                    null,
                    quoting,
                    header: None,
                    rec: ByteRecord::new(),
                    nulls: Vec::new(),
                    scratch: Vec::new(),
                    line: 0,
                    pending: VecDeque::new(),
                };
                let (columns, positional) = if let Some(cols) = &opts.columns {
                    (cols.clone(), false)
                } else if opts.no_header {
                    (Vec::new(), true)
                } else {
                    if !c.read().map_err(|e| format!("{name}: {e}"))? {
                        return Err(format!("{name}: empty input, no header line"));
                    }
                    let mut cols: Vec<String> = c
                        .rec
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).trim().to_string())
                        .collect();
                    if let Some(first) = cols.first_mut() {
                        *first = first.trim_start_matches('\u{feff}').to_string();
                    }
                    if let Some(i) = cols.iter().position(|c| c.is_empty()) {
                        return Err(format!(
                            "{name}: the header's column {} has no name (use --no-header --columns)",
                            i + 1
                        ));
                    }
                    let mut seen = std::collections::HashSet::new();
                    if let Some(d) = cols.iter().find(|c| !seen.insert(c.as_str())) {
                        return Err(format!("{name}: the header names column '{d}' twice"));
                    }
                    c.header = Some(c.rec.clone());
                    (cols, false)
                };
                Ok(Source {
                    name,
                    columns,
                    positional,
                    kind: Kind::Csv(Box::new(c)),
                    used: Vec::new(),
                    used_keys: Vec::new(),
                    batch_columns: Arc::new(Vec::new()),
                })
            }
            Format::Jsonl => Ok(Source {
                name,
                columns: opts.columns.clone().unwrap_or_default(),
                positional: false,
                kind: Kind::Json(Box::new(JsonIn {
                    rdr: BufReader::with_capacity(64 * 1024, input),
                    buf: String::new(),
                    line_no: 0,
                    bytes: 0,
                    cur: (0, Err((String::new(), String::new()))),
                    pending: VecDeque::new(),
                })),
                used: Vec::new(),
                used_keys: Vec::new(),
                batch_columns: Arc::new(Vec::new()),
            }),
        }
    }

    /// Reads up to `n` records ahead (they are kept and loaded later) and
    /// returns their values by source column, for type inference. For JSONL,
    /// the keys seen become the columns (in order of first appearance)
    /// unless --columns named them.
    pub fn sample(&mut self, n: usize) -> Result<Vec<Vec<Option<String>>>, String> {
        let name = self.name.clone();
        let err = |e: io::Error| format!("{name}: {e}");
        let mut out = Vec::new();
        match &mut self.kind {
            Kind::Csv(c) => {
                while c.pending.len() < n && c.read().map_err(err)? {
                    c.pending
                        .push_back((c.rec.clone(), c.nulls.clone(), c.line));
                }
                // A repeated header stays queued (the batcher counts and skips it).
                let header = c.header.as_ref();
                for (rec, nulls, _) in c.pending.iter().filter(|p| Some(&p.0) != header) {
                    out.push(
                        rec.iter()
                            .enumerate()
                            .map(|(i, f)| {
                                (!nulls.get(i).copied().unwrap_or(false))
                                    .then(|| String::from_utf8_lossy(f).into_owned())
                            })
                            .collect(),
                    );
                }
            }
            Kind::Json(j) => {
                while j.pending.len() < n {
                    match j.read().map_err(err)? {
                        Some(r) => j.pending.push_back(r),
                        None => break,
                    }
                }
                let learn = self.columns.is_empty();
                for (_, m) in &j.pending {
                    let Ok(m) = m else { continue };
                    if learn {
                        for k in m.keys() {
                            if !self.columns.contains(k) {
                                self.columns.push(k.clone());
                            }
                        }
                    }
                }
                for (_, m) in &j.pending {
                    let Ok(m) = m else { continue };
                    out.push(
                        self.columns
                            .iter()
                            .map(|k| m.get(k).and_then(json_text))
                            .collect(),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Matches this input's columns to the table's (exactly, else ignoring
    /// case). Returns the input columns the table lacks: an error for CSV,
    /// ignored keys for JSONL.
    pub fn bind(&mut self, table: &[String]) -> Vec<String> {
        if self.positional {
            self.columns = table.to_vec();
        }
        let find = |c: &str| {
            table
                .iter()
                .position(|t| t == c)
                .or_else(|| table.iter().position(|t| t.eq_ignore_ascii_case(c)))
        };
        let mut unknown = Vec::new();
        let mut names = Vec::new();
        self.used.clear();
        self.used_keys.clear();
        for (i, c) in self.columns.iter().enumerate() {
            match find(c) {
                Some(t) => {
                    self.used.push(i);
                    self.used_keys.push(c.clone());
                    names.push(table[t].clone());
                }
                None => unknown.push(c.clone()),
            }
        }
        self.batch_columns = Arc::new(names);
        unknown
    }

    /// The table columns this input fills, in field order.
    pub fn bound_columns(&self) -> &[String] {
        &self.batch_columns
    }

    /// Moves to the next record; its line, or `None` at the end.
    fn advance(&mut self) -> io::Result<Option<u64>> {
        match &mut self.kind {
            Kind::Csv(c) => {
                if let Some((rec, nulls, line)) = c.pending.pop_front() {
                    c.rec = rec;
                    c.nulls = nulls;
                    c.line = line;
                    return Ok(Some(line));
                }
                Ok(c.read()?.then_some(c.line))
            }
            Kind::Json(j) => {
                let next = match j.pending.pop_front() {
                    Some(r) => Some(r),
                    None => j.read()?,
                };
                Ok(next.map(|r| {
                    j.cur = r;
                    j.cur.0
                }))
            }
        }
    }

    fn offset(&self) -> u64 {
        match &self.kind {
            Kind::Csv(c) => c.rdr.position().byte(),
            Kind::Json(j) => j.bytes,
        }
    }

    fn is_repeated_header(&self) -> bool {
        match &self.kind {
            Kind::Csv(c) => c.header.as_ref() == Some(&c.rec),
            Kind::Json(_) => false,
        }
    }

    /// Appends the current record to `b` as a row, or says why it cannot be one.
    fn push_current(&self, b: &mut Batch) -> Record {
        match &self.kind {
            Kind::Csv(c) => {
                if c.rec.len() != self.columns.len() {
                    return Record::Bad(Reject {
                        file: self.name.to_string(),
                        line: c.line,
                        row: Value::Array(
                            c.rec
                                .iter()
                                .map(|f| Value::String(String::from_utf8_lossy(f).into_owned()))
                                .collect(),
                        ),
                        error: format!(
                            "expected {} fields, found {}",
                            self.columns.len(),
                            c.rec.len()
                        ),
                    });
                }
                for &i in &self.used {
                    b.push((!c.is_null(i)).then(|| &c.rec[i]));
                }
                b.lines.push(c.line);
                Record::Row
            }
            Kind::Json(j) => match &j.cur.1 {
                Err((why, raw)) => Record::Bad(Reject {
                    file: self.name.to_string(),
                    line: j.cur.0,
                    row: Value::String(raw.to_string()),
                    error: why.to_string(),
                }),
                Ok(m) => {
                    for k in &self.used_keys {
                        match m.get(k) {
                            None | Some(Value::Null) => b.push(None),
                            Some(Value::String(s)) => b.push(Some(s.as_bytes())),
                            Some(v) => b.push(Some(v.to_string().as_bytes())),
                        }
                    }
                    b.lines.push(j.cur.0);
                    Record::Row
                }
            },
        }
    }
}

/// A JSON value as the text a column gets; `None` for null.
fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Record lines already committed under the import id, per input.
#[derive(Debug, Default, Clone)]
pub struct Committed(HashMap<String, Vec<(u64, u64)>>);

impl Committed {
    /// From the ledger's (file, first line, last line) rows.
    pub fn new(rows: Vec<(String, u64, u64)>) -> Committed {
        let mut m: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for (f, a, b) in rows {
            m.entry(f).or_default().push((a, b));
        }
        for v in m.values_mut() {
            v.sort_unstable();
        }
        Committed(m)
    }

    /// Batches already committed.
    pub fn batches(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    fn contains(&self, ranges: Option<&Vec<(u64, u64)>>, line: u64) -> bool {
        let Some(r) = ranges else { return false };
        let i = r.partition_point(|&(a, _)| a <= line);
        i > 0 && r[i - 1].1 >= line
    }
}

/// What the reader saw, beyond the batches it produced.
#[derive(Debug, Default, Clone)]
pub struct ReadStats {
    /// Records read (rows and refused records, skipped ones included).
    pub records: u64,
    /// Records skipped because the ledger has them.
    pub skipped: u64,
    /// Repeated header lines skipped.
    pub headers: u64,
    /// Input bytes read (CSV/TSV only).
    pub bytes: u64,
    /// Inputs that could not be read (to the end), with why.
    pub errors: Vec<String>,
}

/// The batches of every input, in order: an iterator the producer thread drains.
pub struct Batches {
    current: Option<Source>,
    rest: VecDeque<String>,
    opts: ReadOpts,
    table: Vec<String>,
    committed: Committed,
    /// Where the last batch of the current input ended, in its bytes.
    pos: u64,
    /// What was seen so far.
    pub stats: ReadStats,
}

impl Batches {
    /// `first` is already open and bound; `rest` are opened in turn.
    pub fn new(
        first: Source,
        rest: Vec<String>,
        opts: ReadOpts,
        table: Vec<String>,
        committed: Committed,
    ) -> Batches {
        Batches {
            current: Some(first),
            rest: rest.into(),
            opts,
            table,
            committed,
            pos: 0,
            stats: ReadStats::default(),
        }
    }

    fn open_next(&mut self) -> Option<()> {
        while let Some(name) = self.rest.pop_front() {
            match Source::open(&name, &self.opts) {
                Ok(mut s) => {
                    // JSONL learns its keys from a sample (kept, loaded later).
                    if let Err(e) = s.sample(SAMPLE) {
                        self.stats.errors.push(e);
                        continue;
                    }
                    let unknown = s.bind(&self.table);
                    if s.batch_columns.is_empty() {
                        self.stats
                            .errors
                            .push(format!("{name}: none of its columns are in the table"));
                        continue;
                    }
                    if !unknown.is_empty() && !matches!(s.kind, Kind::Json(_)) {
                        self.stats.errors.push(format!(
                            "{name}: columns not in the table: {}",
                            unknown.join(", ")
                        ));
                        continue;
                    }
                    self.current = Some(s);
                    self.pos = 0;
                    return Some(());
                }
                Err(e) => self.stats.errors.push(e),
            }
        }
        None
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            if self.current.is_none() {
                self.open_next()?;
            }
            let src = self.current.as_mut().expect("an open input");
            let ranges = self.committed.0.get(&*src.name);
            let mut b = Batch::new(src.name.clone(), src.batch_columns.clone());
            let mut done = false;
            loop {
                let line = match src.advance() {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        done = true;
                        break;
                    }
                    Err(e) => {
                        self.stats.errors.push(format!(
                            "{}: read error after line {}: {e}",
                            src.name, b.last_line
                        ));
                        done = true;
                        break;
                    }
                };
                if src.is_repeated_header() {
                    self.stats.headers += 1;
                    continue;
                }
                self.stats.records += 1;
                if self.committed.contains(ranges, line) {
                    self.stats.skipped += 1;
                    continue;
                }
                if b.first_line == 0 {
                    b.first_line = line;
                }
                b.last_line = line;
                match src.push_current(&mut b) {
                    Record::Row => {}
                    Record::Bad(r) => {
                        b.truncate_row();
                        b.rejects.push(r);
                    }
                }
                if b.records() as usize >= self.opts.batch_rows
                    || b.data.len() >= self.opts.batch_bytes
                {
                    break;
                }
            }
            let end = src.offset();
            b.bytes = end.saturating_sub(self.pos);
            self.pos = end;
            self.stats.bytes += b.bytes;
            if done {
                self.current = None;
            }
            if b.records() > 0 {
                return Some(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_empty_fields() {
        let mut v = Vec::new();
        quoted_empties(b"a,,\"\",\"x,\"\"y\",\n", b',', &mut v);
        assert_eq!(v, [false, false, true, false, false]);
        quoted_empties(b"\n\"\"", b',', &mut v);
        assert_eq!(v, [true]);
    }

    #[test]
    fn committed_ranges() {
        let c = Committed::new(vec![("a".into(), 2, 10), ("a".into(), 20, 30)]);
        let r = c.0.get("a");
        assert!(!c.contains(r, 1));
        assert!(c.contains(r, 2));
        assert!(c.contains(r, 10));
        assert!(!c.contains(r, 11));
        assert!(c.contains(r, 25));
        assert!(!c.contains(r, 31));
        assert!(!c.contains(None, 5));
    }
}
