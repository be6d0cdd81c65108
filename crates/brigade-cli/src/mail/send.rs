//! One recipient's delivery, run by a worker on its own connection: render,
//! build, then send with retries, writing each state change to the ledger
//! before the next SMTP step.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brigade::Context;
use lettre::message::Mailbox;
use lettre::Address;

use super::ledger::{Ledger, Line, Status};
use super::message::{self, Attached};
use super::smtp::{asked_delay, Conn, Sent, Server, StepError};
use super::template::Rendered;

/// What every worker shares.
pub struct Setup {
    /// --from, when given.
    pub from: Option<Mailbox>,
    /// --attach files.
    pub attachments: Vec<Attached>,
    /// The --status ledger.
    pub ledger: Arc<Ledger>,
    /// The server; none in a dry run.
    pub server: Option<Server>,
    /// The run id in Message-IDs.
    pub run_id: String,
    /// The first retry delay.
    pub backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// Attempts per recipient in this run.
    pub attempts: u32,
    /// --dry-run DIR.
    pub dry_dir: Option<PathBuf>,
    /// Set when a ledger line could not be written.
    pub ledger_broken: AtomicBool,
}

/// One recipient.
pub struct Job {
    /// Its line in the --to file.
    pub line: u64,
    /// Its address, as written.
    pub email: String,
    /// Its address, parsed.
    pub address: Address,
    /// The rendered template.
    pub rendered: Rendered,
    /// Attempts made by earlier runs.
    pub attempts_before: u32,
    /// The Message-ID: an earlier run's, else derived from the run id and the recipient.
    pub message_id: String,
}

/// A recipient done.
pub enum Delivered {
    /// The server accepted it.
    Sent,
    /// Dry run: written to the folder.
    Written,
    /// Dry run: the message, for stdout.
    Rendered(Vec<u8>),
}

/// Why a recipient was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// Bad input (a template variable missing, a bad header).
    Skipped,
    /// A 5xx reply.
    PermFail,
    /// 4xx replies or network errors until the attempts ran out.
    TempFail,
    /// The connection broke after the message went out.
    Unknown,
    /// The ledger could not be written: the run stops.
    Ledger,
}

impl FailKind {
    /// The word shown.
    pub fn name(self) -> &'static str {
        match self {
            FailKind::Skipped => "skipped",
            FailKind::PermFail => "perm_fail",
            FailKind::TempFail => "temp_fail",
            FailKind::Unknown => "unknown",
            FailKind::Ledger => "not recorded",
        }
    }
}

/// A failure and its reason.
#[derive(Debug)]
pub struct Fail {
    /// What kind.
    pub kind: FailKind,
    /// Why, in words.
    pub reason: String,
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.reason)
    }
}

fn fail(kind: FailKind, reason: impl Into<String>) -> Fail {
    Fail {
        kind,
        reason: reason.into(),
    }
}

/// Delivers one recipient. See the module doc.
pub fn deliver(
    s: &Setup,
    conn: &mut Conn,
    job: &Job,
    ctx: &Context<'_, Job>,
) -> Result<Delivered, Fail> {
    let record = |status: Status, attempts: u32, code: Option<u16>, reason: Option<&str>| {
        let mut l = Line::new(&job.email, status, attempts);
        l.smtp_code = code;
        l.message_id = Some(job.message_id.clone());
        l.reason = reason.map(str::to_string);
        l.line = Some(job.line);
        s.ledger.write(&l).map_err(|e| {
            s.ledger_broken
                .store(true, std::sync::atomic::Ordering::SeqCst);
            fail(FailKind::Ledger, e.to_string())
        })
    };
    let built = message::build(
        &job.rendered,
        s.from.as_ref(),
        &job.address,
        job.message_id.clone(),
        &s.attachments,
    );
    let msg = match built {
        Ok(m) => m,
        Err(reason) => {
            if s.server.is_some() {
                record(Status::Skipped, job.attempts_before, None, Some(&reason))?;
            }
            return Err(fail(FailKind::Skipped, reason));
        }
    };
    let bytes = msg.formatted();
    let Some(server) = &s.server else {
        return match &s.dry_dir {
            Some(dir) => {
                let name = format!("{:06}-{}.eml", job.line, safe_name(&job.email));
                std::fs::write(dir.join(&name), &bytes)
                    .map_err(|e| fail(FailKind::Skipped, format!("cannot write {name}: {e}")))?;
                Ok(Delivered::Written)
            }
            None => Ok(Delivered::Rendered(bytes)),
        };
    };
    let from = msg.envelope().from();
    let mut attempts = job.attempts_before;
    for n in 0..s.attempts {
        attempts += 1;
        let sent = conn
            .send(server, from, &job.address, &bytes, || {
                record(Status::Sending, attempts, None, None)
                    .map_err(|f| std::io::Error::other(f.reason))
            })
            .map_err(|e| fail(FailKind::Ledger, e.to_string()))?;
        let e: StepError = match sent {
            Sent::Accepted => {
                record(Status::Sent, attempts, Some(250), None)?;
                return Ok(Delivered::Sent);
            }
            Sent::Unknown(why) => {
                return Err(fail(
                    FailKind::Unknown,
                    format!("the connection broke while the message was going out ({why}); it may or may not have been delivered, so it is not retried"),
                ))
            }
            Sent::Before(e) | Sent::After(e) => e,
        };
        if e.is_permanent() {
            record(Status::PermFail, attempts, e.code(), Some(e.text()))?;
            return Err(fail(FailKind::PermFail, e.text()));
        }
        record(Status::TempFail, attempts, e.code(), Some(e.text()))?;
        let last = n + 1 == s.attempts;
        if last || ctx.is_cancelled() {
            let why = if last { "gave up" } else { "interrupted" };
            return Err(fail(
                FailKind::TempFail,
                format!("{why} after {attempts} attempts: {}", e.text()),
            ));
        }
        let wait = asked_delay(e.text())
            .unwrap_or_else(|| jittered(s.backoff, n, job.line))
            .min(s.max_backoff);
        if !ctx.sleep(wait) {
            return Err(fail(
                FailKind::TempFail,
                format!("interrupted after {attempts} attempts: {}", e.text()),
            ));
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// base x 2^n, +-25%, at most an hour.
fn jittered(base: Duration, n: u32, salt: u64) -> Duration {
    let d = base
        .saturating_mul(1u32 << n.min(16))
        .min(Duration::from_secs(3600));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as u64;
    let r = (nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 1000;
    d.mul_f64(0.75 + r as f64 / 2000.0)
}

fn safe_name(email: &str) -> String {
    email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}
