//! The --joblog, in GNU parallel's format: a row per job, written and flushed
//! by the worker the moment the job's process exits, so that a hard stop
//! loses no finished job and `--resume` can trust the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// An open job log.
pub struct Joblog {
    file: Mutex<File>,
}

/// One finished job, as the log records it.
pub struct Row<'a> {
    /// The job number.
    pub seq: u64,
    /// When it started.
    pub start: SystemTime,
    /// How long it ran.
    pub took: Duration,
    /// Bytes sent to its stdin (--pipe).
    pub sent: u64,
    /// Bytes it wrote to stdout.
    pub received: u64,
    /// Its exit code (-1 when killed by a signal).
    pub code: i32,
    /// The signal that killed it, or 0.
    pub signal: i32,
    /// Its command line.
    pub command: &'a [u8],
}

/// The jobs an earlier run's log lists: job number -> whether it succeeded.
pub type Done = HashMap<u64, bool>;

impl Joblog {
    /// Opens the log: a fresh one, or (resuming) the old one to append to, with
    /// the jobs it lists.
    pub fn open(path: &Path, resume: bool) -> Result<(Joblog, Done), String> {
        let named = |e: io::Error| format!("cannot write the job log {}: {e}", path.display());
        let mut done = Done::new();
        let file = if resume {
            match std::fs::read(path) {
                Ok(old) => done = parse(&old),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read the job log {}: {e}", path.display())),
            }
            let mut f = File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(named)?;
            if f.metadata().map_err(named)?.len() == 0 {
                f.write_all(HEADER.as_bytes()).map_err(named)?;
            }
            f
        } else {
            let mut f = File::create(path).map_err(named)?;
            f.write_all(HEADER.as_bytes()).map_err(named)?;
            f
        };
        Ok((
            Joblog {
                file: Mutex::new(file),
            },
            done,
        ))
    }

    /// Writes one row, whole, in one write (the file is unbuffered).
    pub fn write(&self, r: &Row) -> io::Result<()> {
        let start = r
            .start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut line = format!(
            "{}\t:\t{start:10.3}\t{:8.3}\t{}\t{}\t{}\t{}\t",
            r.seq,
            r.took.as_secs_f64(),
            r.sent,
            r.received,
            r.code,
            r.signal
        )
        .into_bytes();
        line.extend(r.command.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
        line.push(b'\n');
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&line)
    }
}

/// The rows of a log: job number -> exit code 0 and no signal.
fn parse(text: &[u8]) -> Done {
    let mut done = Done::new();
    for line in text.split(|&b| b == b'\n').skip(1) {
        let cols: Vec<&[u8]> = line.splitn(9, |&b| b == b'\t').collect();
        if cols.len() < 9 {
            continue;
        }
        let num = |c: &[u8]| std::str::from_utf8(c).ok()?.trim().parse::<i64>().ok();
        let (Some(seq), Some(code), Some(sig)) = (num(cols[0]), num(cols[6]), num(cols[7])) else {
            continue;
        };
        let ok = code == 0 && sig == 0;
        // A later row for the same job (a resumed run) wins.
        done.insert(seq as u64, ok);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_resume_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let (log, done) = Joblog::open(&p, false).unwrap();
        assert!(done.is_empty());
        for (seq, code) in [(1, 0), (2, 3)] {
            log.write(&Row {
                seq,
                start: SystemTime::now(),
                took: Duration::from_millis(5),
                sent: 0,
                received: 2,
                code,
                signal: 0,
                command: b"echo a\nb",
            })
            .unwrap();
        }
        drop(log);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(1).unwrap().ends_with("\techo a b"));
        let (_, done) = Joblog::open(&p, true).unwrap();
        assert_eq!(done.get(&1), Some(&true));
        assert_eq!(done.get(&2), Some(&false));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            text,
            "resuming keeps the rows"
        );
    }
}
