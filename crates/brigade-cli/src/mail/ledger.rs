//! The --status ledger: an append-only JSONL file, one line per state change
//! of a recipient. Each line goes to the file in one `write` before the next
//! SMTP step, so a kill -9 loses no line that mattered (a power cut may: the
//! file is not fsynced). A rerun reads it back with [`read`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A recipient's state, as written in the ledger.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// DATA was accepted and the message is going out: if this is the last
    /// line, nobody knows whether the server took it.
    Sending,
    /// The server accepted the message.
    Sent,
    /// A 4xx reply or a network error before the message: not delivered, worth retrying.
    TempFail,
    /// A 5xx reply: not delivered, not worth retrying.
    PermFail,
    /// Bad input: not sent (see `reason`).
    Skipped,
}

/// One line of the ledger.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Line {
    /// The address, as written in the input.
    pub recipient: String,
    /// The new state.
    pub status: Status,
    /// The server's reply code, when there was one.
    pub smtp_code: Option<u16>,
    /// Attempts made so far for this recipient, over every run.
    pub attempts: u32,
    /// The message's Message-ID (none for a row skipped before rendering).
    pub message_id: Option<String>,
    /// When, in UTC (RFC 3339).
    pub time: String,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The recipient's line in the --to file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl Line {
    /// A line stamped now.
    pub fn new(recipient: &str, status: Status, attempts: u32) -> Line {
        Line {
            recipient: recipient.to_string(),
            status,
            smtp_code: None,
            attempts,
            message_id: None,
            time: now_rfc3339(),
            reason: None,
            line: None,
        }
    }
}

/// The ledger being written (or none, without --status or in a dry run).
pub struct Ledger {
    file: Option<Mutex<File>>,
    path: PathBuf,
}

impl Ledger {
    /// Opens `path` for appending (creating it), or a ledger that writes nothing.
    pub fn open(path: Option<&Path>) -> Result<Ledger, String> {
        let Some(path) = path else {
            return Ok(Ledger {
                file: None,
                path: PathBuf::new(),
            });
        };
        let err = |e: std::io::Error| format!("--status {}: {e}", path.display());
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(err)?;
        // After a line cut short by a crash, start on a fresh line.
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
            }
        }
        Ok(Ledger {
            file: Some(Mutex::new(file)),
            path: path.to_path_buf(),
        })
    }

    /// Appends one line with a single write. An error means the state change
    /// is not recorded: the caller must not go on to the next SMTP step.
    pub fn write(&self, line: &Line) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut buf = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        buf.push(b'\n');
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&buf).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--status {}: {e}", self.path.display()))
        })
    }
}

/// What earlier runs left for one recipient.
#[derive(Debug, Clone)]
pub struct Earlier {
    /// The last state written.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// The Message-ID used, to use again.
    pub message_id: Option<String>,
}

/// What earlier runs left, by recipient key (see [`key`]).
#[derive(Debug, Default)]
pub struct History {
    /// Each recipient's last state.
    pub by_key: HashMap<String, Earlier>,
    /// The run id found in the ledger's Message-IDs, if any.
    pub run_id: Option<String>,
}

/// The key of an address in the ledger: the address, lowercased (so
/// `Ann@Example.com` and `ann@example.com` are one recipient).
pub fn key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Reads a ledger back. A missing file is an empty history. A torn last line
/// (a crash mid-write) is ignored with a warning; any other unreadable line
/// is an error naming it.
pub fn read(path: &Path) -> Result<History, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
        Err(e) => return Err(format!("--status {}: {e}", path.display())),
    };
    let mut h = History::default();
    for (i, text) in BufReader::new(file).split(b'\n').enumerate() {
        let text = text.map_err(|e| format!("--status {}: {e}", path.display()))?;
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line: Line = match serde_json::from_slice(&text) {
            Ok(l) => l,
            // A write cut short by a crash: the state change it was recording never happened.
            Err(_) if !text.trim_ascii_end().ends_with(b"}") => {
                eprintln!(
                    "brigade mail: warning: --status {} line {}: a line cut short by a crash, ignored",
                    path.display(),
                    i + 1
                );
                continue;
            }
            Err(e) => {
                return Err(format!(
                    "--status {} line {}: not a ledger line: {e}",
                    path.display(),
                    i + 1
                ))
            }
        };
        if h.run_id.is_none() {
            h.run_id = line.message_id.as_deref().and_then(run_id_of);
        }
        let e = h.by_key.entry(key(&line.recipient)).or_insert(Earlier {
            status: line.status,
            attempts: 0,
            message_id: None,
        });
        // A `skipped` line (a repeated row, say) never hides that a message went out.
        let settled = matches!(e.status, Status::Sent | Status::PermFail | Status::Sending);
        if !(line.status == Status::Skipped && settled) {
            e.status = line.status;
        }
        e.attempts = e.attempts.max(line.attempts);
        if line.message_id.is_some() {
            e.message_id = line.message_id;
        }
    }
    Ok(h)
}

/// `<hash.RUNID@domain>` -> `RUNID`.
fn run_id_of(message_id: &str) -> Option<String> {
    let inner = message_id.strip_prefix('<')?.strip_suffix('>')?;
    let (local, _) = inner.split_once('@')?;
    let (_, run) = local.split_once('.')?;
    (!run.is_empty()).then(|| run.to_string())
}

/// Now, as `2026-12-02T01:20:00.123Z`.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_424), (2025, 12, 2));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn history() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        let l = Ledger::open(Some(&p)).unwrap();
        let mut a = Line::new("Ann@x.org", Status::Sending, 1);
        a.message_id = Some("<abc.run-1@x.org>".into());
        l.write(&a).unwrap();
        l.write(&Line::new("ann@x.org", Status::Sent, 1)).unwrap();
        l.write(&Line::new("ANN@x.org", Status::Skipped, 0))
            .unwrap();
        l.write(&Line::new("dee@x.org", Status::Skipped, 0))
            .unwrap();
        l.write(&Line::new("dee@x.org", Status::TempFail, 1))
            .unwrap();
        l.write(&Line::new("dee@x.org", Status::Skipped, 1))
            .unwrap();
        l.write(&Line::new("bob@x.org", Status::Sending, 2))
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"recipient\":\"to")
            .unwrap();
        // Reopening starts a fresh line after the torn one.
        let l = Ledger::open(Some(&p)).unwrap();
        l.write(&Line::new("cy@x.org", Status::Sent, 1)).unwrap();
        let h = read(&p).unwrap();
        assert_eq!(h.by_key["cy@x.org"].status, Status::Sent);
        assert_eq!(h.run_id.as_deref(), Some("run-1"));
        assert_eq!(h.by_key["ann@x.org"].status, Status::Sent);
        assert_eq!(
            h.by_key["ann@x.org"].message_id.as_deref(),
            Some("<abc.run-1@x.org>")
        );
        assert_eq!(h.by_key["bob@x.org"].status, Status::Sending);
        assert_eq!(h.by_key["dee@x.org"].status, Status::Skipped);
        assert_eq!(h.by_key["bob@x.org"].attempts, 2);
        // A bad line in the middle is an error naming it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{}\n")
            .unwrap();
        assert!(read(&p).unwrap_err().contains("line 10"));
    }
}
