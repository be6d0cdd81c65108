//! Rows refused (by the reader or the database), written as JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// One refused row: where it came from, what it held, and why.
#[derive(Serialize, Debug, Clone)]
pub struct Reject {
    /// The input's name as given.
    pub file: String,
    /// The line the record starts on (1-based).
    pub line: u64,
    /// The row: an object by column, or the raw fields / line when it could not be parsed.
    pub row: Value,
    /// The reader's or the database's error.
    pub error: String,
}

/// Where rejects go: the --rejects file, or the first few to stderr.
pub struct Rejects {
    path: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    /// Rejects written so far.
    pub count: u64,
    shown: u64,
    quiet: bool,
}

/// Rejects printed to stderr when there is no --rejects file.
const SHOWN: u64 = 5;

impl Rejects {
    /// Creates (truncates) the rejects file, if one is given.
    pub fn create(path: Option<&Path>, quiet: bool) -> Result<Rejects, String> {
        let out = match path {
            Some(p) => Some(BufWriter::new(
                File::create(p).map_err(|e| format!("--rejects {}: {e}", p.display()))?,
            )),
            None => None,
        };
        Ok(Rejects {
            path: path.map(Path::to_path_buf),
            out,
            count: 0,
            shown: 0,
            quiet,
        })
    }

    /// Records one reject.
    pub fn write(&mut self, r: &Reject) -> Result<(), String> {
        self.count += 1;
        match &mut self.out {
            Some(w) => {
                let line = serde_json::to_string(r).expect("a reject serialises");
                writeln!(w, "{line}").map_err(|e| self.err(e))
            }
            None => {
                if !self.quiet && self.shown < SHOWN {
                    self.shown += 1;
                    eprintln!("brigade load: {}:{}: rejected: {}", r.file, r.line, r.error);
                }
                Ok(())
            }
        }
    }

    fn err(&self, e: std::io::Error) -> String {
        let p = self.path.as_deref().unwrap_or(Path::new("-"));
        format!("--rejects {}: {e}", p.display())
    }

    /// Flushes the file; says how many were not shown when there is none.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(w) = &mut self.out {
            let r = w.flush();
            return r.map_err(|e| self.err(e));
        }
        if !self.quiet && self.count > self.shown {
            eprintln!(
                "brigade load: {} more rejected rows not shown (--rejects FILE keeps them all)",
                self.count - self.shown
            );
        }
        Ok(())
    }
}
