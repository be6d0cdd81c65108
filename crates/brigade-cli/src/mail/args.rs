//! The command line of `brigade mail`.

use std::path::PathBuf;
use std::time::Duration;

use crate::run::RunArgs;
use crate::units::parse_duration;

/// Send one templated email per recipient over SMTP, one connection per
/// worker, with a per-recipient status file that makes reruns exactly-once
///
/// --to is a CSV file (a header line with an `email` column) or a JSONL file
/// (one object per line with an `email` key); every other column or key is a
/// template variable. --template is a small file: header lines (Subject:,
/// and optionally From:, To:, Reply-To:), a blank line, the text body, and
/// optionally a line `--- html ---` followed by an HTML body. Every part is a
/// minijinja template rendered with strict undefined: a variable a row lacks
/// is an error for that recipient (shown by --dry-run), never an empty string.
///
/// Each worker keeps one SMTP connection open across messages, sends RSET
/// between them, and reconnects when the server closed it (on idle or after
/// a number of messages). A 4xx reply, or a network error before DATA, is
/// retried with backoff (honouring "try again in N seconds" in the reply); a
/// 5xx reply is a permanent failure for that recipient; the run goes on.
///
/// --status FILE is an append-only JSONL ledger, one line per state change of
/// a recipient (sending, sent, temp_fail, perm_fail, skipped), each written
/// before the next SMTP step. A rerun with the same --status skips the
/// recipients already sent or permanently failed. A recipient whose last line
/// is `sending` (brigade was killed between DATA and the server's reply: the
/// message may or may not have been accepted) is reported as unknown and not
/// sent again unless --resend-unknown. The Message-ID is derived from the run
/// id and the recipient, so a copy sent twice can be recognised downstream.
///
/// Bad input never stops the run: a row without a valid address, a missing
/// template variable or a repeated recipient is a `skipped` line with the
/// reason. An unreachable server (or refused TLS or login) stops the run with
/// exit 2 before anything is sent.
///
/// Run options, as mail reads them: -j is the number of connections (4 by
/// default); --rate caps the messages per second of the whole run; --retries
/// is the retries after a 4xx reply or a network error (5 by default here);
/// --timeout is the SMTP socket timeout for each step (60s by default), never
/// a cut-off of a message that is going out; --queue is the rendered messages
/// waiting for a worker.
///
/// Exit codes: 0 every recipient was sent (or was already), 1 some failed,
/// were skipped for bad input or are unknown, 2 bad usage, bad input files or
/// an unreachable server, 130 interrupted (rerun to finish).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    brigade mail --smtp smtp+starttls://user@mail.example.com:587 --to users.csv \\\n      \
    --template welcome.txt --status welcome.status.jsonl -j 4 --rate 20/s\n  \
    brigade mail --to users.jsonl --template welcome.txt --dry-run --limit 2\n  \
    brigade mail --to users.csv --template welcome.txt --dry-run out/\n\n\
Template file:\n  \
    Subject: Your order {{ order }} has shipped\n  \
    From: Shop <shop@example.com>\n\n  \
    Hello {{ name }}, ...\n  \
    --- html ---\n  \
    <p>Hello {{ name }}, ...</p>\n\n\
Credentials: in the URL (smtp://user:password@host:port) or in the environment,\n\
BRIGADE_SMTP_USER and BRIGADE_SMTP_PASSWORD; they are never printed.")]
pub struct Args {
    /// SMTP server: smtp://host:port (plain), smtp+starttls://host:port or smtps://host:port (implicit TLS)
    #[arg(long, value_name = "URL", required_unless_present = "dry_run")]
    pub smtp: Option<String>,
    /// Recipients: a CSV file with an `email` column, or JSONL (.jsonl, .ndjson) with an `email` key
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// The message template: headers, a blank line, the text body, optionally `--- html ---` and an HTML body
    #[arg(long, value_name = "FILE")]
    pub template: PathBuf,
    /// The ledger: one JSON line per state change of a recipient; a rerun skips those done
    #[arg(long, value_name = "FILE")]
    pub status: Option<PathBuf>,
    /// The sender, when the template has no From: line
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,
    /// Attach this file to every message (may be given several times)
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Render the messages without sending: to DIR (one .eml file each), or to stdout without DIR (or with -)
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "-")]
    pub dry_run: Option<PathBuf>,
    /// Send (or render) at most N messages in this run
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Send again the recipients a killed run left unknown (a duplicate is possible)
    #[arg(long)]
    pub resend_unknown: bool,
    /// The run id in each Message-ID [default: the ledger's, else a hash of the template]
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// First retry delay after a 4xx reply or a network error (doubled each time, with jitter)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub backoff: Duration,
    /// Longest wait before a retry, including one a server asked for
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Trust this PEM certificate (a private CA or a self-signed server) besides the usual roots
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

fn parse_run_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "'{text}': a run id is 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}
