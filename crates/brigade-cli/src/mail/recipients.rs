//! The --to file, read lazily: CSV with a header line, or JSONL. Each row is
//! a recipient (its `email`) and the template's variables (every column or key).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::{Map, Value};

/// One row of the input.
pub struct Row {
    /// Its line in the file (1-based; for CSV, the line where the record starts).
    pub line: u64,
    /// The row's `email`, if it has one.
    pub email: Option<String>,
    /// The variables (the `email` included), or why the row cannot be read.
    pub vars: Result<Map<String, Value>, String>,
}

/// The rows of a --to file.
pub enum Recipients {
    /// CSV with its header.
    Csv(csv::StringRecordsIntoIter<BufReader<File>>, Vec<String>),
    /// One JSON object per line.
    Jsonl(std::iter::Enumerate<std::io::Split<BufReader<File>>>),
}

impl Recipients {
    /// Opens `path`: JSONL for `.jsonl`/`.ndjson`/`.json`, CSV otherwise (its
    /// header must have an `email` column).
    pub fn open(path: &Path) -> Result<Recipients, String> {
        let name = path.display();
        let file = File::open(path).map_err(|e| format!("--to {name}: {e}"))?;
        let lower = path.to_string_lossy().to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
            return Ok(Recipients::Jsonl(
                BufReader::new(file).split(b'\n').enumerate(),
            ));
        }
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(BufReader::new(file));
        let header: Vec<String> = r
            .headers()
            .map_err(|e| format!("--to {name}: cannot read the header line: {e}"))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if !header.iter().any(|h| h == "email") {
            return Err(format!(
                "--to {name}: the header has no 'email' column (it has: {})",
                header.join(", ")
            ));
        }
        Ok(Recipients::Csv(r.into_records(), header))
    }
}

impl Iterator for Recipients {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        match self {
            Recipients::Csv(records, header) => {
                let rec = records.next()?;
                Some(match rec {
                    Ok(rec) => {
                        let line = rec.position().map_or(0, |p| p.line());
                        if rec.len() != header.len() {
                            let email = header
                                .iter()
                                .position(|h| h == "email")
                                .and_then(|i| rec.get(i))
                                .map(str::to_string);
                            Row {
                                line,
                                email,
                                vars: Err(format!(
                                    "has {} fields, the header has {}",
                                    rec.len(),
                                    header.len()
                                )),
                            }
                        } else {
                            let vars: Map<String, Value> = header
                                .iter()
                                .zip(rec.iter())
                                .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                                .collect();
                            row(line, vars)
                        }
                    }
                    Err(e) => Row {
                        line: e.position().map_or(0, |p| p.line()),
                        email: None,
                        vars: Err(format!("unreadable CSV record: {e}")),
                    },
                })
            }
            Recipients::Jsonl(lines) => loop {
                let (i, text) = lines.next()?;
                let line = i as u64 + 1;
                let text = match text {
                    Ok(t) => t,
                    Err(e) => {
                        return Some(Row {
                            line,
                            email: None,
                            vars: Err(format!("cannot read: {e}")),
                        })
                    }
                };
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(match serde_json::from_slice::<Value>(&text) {
                    Ok(Value::Object(vars)) => row(line, vars),
                    Ok(_) => Row {
                        line,
                        email: None,
                        vars: Err("not a JSON object".into()),
                    },
                    Err(e) => Row {
                        line,
                        email: None,
                        vars: Err(format!("not JSON: {e}")),
                    },
                });
            },
        }
    }
}

fn row(line: u64, vars: Map<String, Value>) -> Row {
    match vars.get("email") {
        Some(Value::String(s)) if !s.trim().is_empty() => Row {
            line,
            email: Some(s.trim().to_string()),
            vars: Ok(vars),
        },
        Some(Value::String(_)) | None | Some(Value::Null) => Row {
            line,
            email: None,
            vars: Err("no email".into()),
        },
        Some(_) => Row {
            line,
            email: None,
            vars: Err("'email' is not a string".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("r.csv");
        std::fs::write(
            &c,
            "email,name\na@x.org,Ann\n\"b@x.org\",\"B, \"\"Bee\"\"\"\nc@x.org\n,Nobody\n",
        )
        .unwrap();
        let rows: Vec<Row> = Recipients::open(&c).unwrap().collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].email.as_deref(), Some("a@x.org"));
        assert_eq!(rows[1].vars.as_ref().unwrap()["name"], "B, \"Bee\"");
        assert_eq!(rows[1].line, 3);
        assert!(rows[2].vars.as_ref().unwrap_err().contains("1 fields"));
        assert_eq!(rows[3].vars.as_ref().unwrap_err(), "no email");

        let j = dir.path().join("r.jsonl");
        std::fs::write(&j, "{\"email\":\"a@x.org\",\"n\":3}\n\nnot json\n[1]\n").unwrap();
        let rows: Vec<Row> = Recipients::open(&j).unwrap().collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].vars.as_ref().unwrap()["n"], 3);
        assert_eq!(rows[1].line, 3);
        assert!(rows[1].vars.as_ref().unwrap_err().starts_with("not JSON"));
        assert!(rows[2].vars.is_err());

        let bad = dir.path().join("nomail.csv");
        std::fs::write(&bad, "name\nx\n").unwrap();
        assert!(Recipients::open(&bad)
            .err()
            .unwrap()
            .contains("no 'email' column"));
    }
}
