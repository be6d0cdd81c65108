//! The SMTP side: the --smtp URL, one connection per worker (lettre's sync
//! `SmtpConnection` with rustls), and one message sent step by step so that
//! the ledger's `sending` line is written between DATA and the message.

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use lettre::Address;

use crate::load::args::redact;

/// How to reach the server: parsed once from --smtp.
pub struct Server {
    host: String,
    port: u16,
    security: Security,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    /// The URL without its password, for messages.
    pub shown: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    Implicit,
}

impl Server {
    /// Reads `smtp://`, `smtp+starttls://` or `smtps://[user[:password]@]host[:port]`.
    /// Credentials missing from the URL come from BRIGADE_SMTP_USER and BRIGADE_SMTP_PASSWORD.
    pub fn parse(url: &str, ca: Option<&[u8]>, timeout: Duration) -> Result<Server, String> {
        let shown = redact(url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("--smtp '{shown}': write smtp://host:port"))?;
        let (security, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" | "submission" => (Security::StartTls, 587),
            "smtps" => (Security::Implicit, 465),
            other => {
                return Err(format!(
                    "--smtp '{shown}': unknown scheme '{other}' (use smtp, smtp+starttls or smtps)"
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| format!("--smtp '{shown}': cannot read host and port"))?;
        let port = port.unwrap_or(default_port);
        let (mut user, mut password) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (Some(decode(u)), Some(decode(p))),
                None => (Some(decode(a)), None),
            },
            None => (None, None),
        };
        if user.is_none() {
            user = std::env::var("BRIGADE_SMTP_USER").ok();
        }
        if password.is_none() {
            password = std::env::var("BRIGADE_SMTP_PASSWORD").ok();
        }
        let credentials = match (user, password) {
            (Some(u), Some(p)) => Some(Credentials::new(u, p)),
            (Some(_), None) => {
                return Err(format!(
                    "--smtp '{shown}': a user but no password (put it in BRIGADE_SMTP_PASSWORD)"
                ))
            }
            _ => None,
        };
        let tls = if security == Security::Plain {
            None
        } else {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(pem) = ca {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| format!("--ca: not a PEM certificate: {e}"))?;
                b = b.add_root_certificate(cert);
            }
            Some(b.build_rustls().map_err(|e| format!("TLS setup: {e}"))?)
        };
        Ok(Server {
            host,
            port,
            security,
            tls,
            credentials,
            timeout,
            hello: ClientId::default(),
            shown,
        })
    }

    /// Opens a connection: TCP (and TLS), EHLO, STARTTLS, login.
    pub fn connect(&self) -> Result<SmtpConnection, SmtpError> {
        let wrapper = match self.security {
            Security::Implicit => self.tls.as_ref(),
            _ => None,
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )?;
        if self.security == Security::StartTls {
            let tls = self.tls.as_ref().expect("STARTTLS has TLS parameters");
            if let Err(e) = conn.starttls(tls, &self.hello) {
                conn.abort();
                return Err(e);
            }
        }
        if let Some(c) = &self.credentials {
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], c) {
                conn.abort();
                return Err(e);
            }
        }
        Ok(conn)
    }

    /// Whether a login is configured on a connection without TLS.
    pub fn cleartext_login(&self) -> bool {
        self.credentials.is_some() && self.security == Security::Plain
    }
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (s, None),
    };
    (!h.is_empty()).then(|| (h.to_string(), p))
}

/// Percent-decoding for user names and passwords in the URL (`%40` for `@`).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How one SMTP step ended badly.
#[derive(Debug)]
pub enum StepError {
    /// A reply with a code: 4xx (transient) or 5xx (permanent).
    Reply { code: u16, text: String },
    /// The connection failed (refused, reset, timed out, closed).
    Network(String),
}

impl StepError {
    fn from(e: SmtpError) -> StepError {
        match e.status() {
            Some(code) => {
                let code = u16::from(code);
                let text = e.to_string();
                StepError::Reply { code, text }
            }
            None => StepError::Network(e.to_string()),
        }
    }

    /// The reply code, if any.
    pub fn code(&self) -> Option<u16> {
        match self {
            StepError::Reply { code, .. } => Some(*code),
            StepError::Network(_) => None,
        }
    }

    /// A 5xx reply.
    pub fn is_permanent(&self) -> bool {
        matches!(self.code(), Some(c) if c >= 500)
    }

    /// What to show.
    pub fn text(&self) -> &str {
        match self {
            StepError::Reply { text, .. } | StepError::Network(text) => text,
        }
    }
}

/// How a send ended.
pub enum Sent {
    /// The server accepted the message (its reply text).
    Accepted,
    /// Refused before the message went out: nothing was delivered.
    Before(StepError),
    /// Refused with a reply after the message: nothing was delivered.
    After(StepError),
    /// The connection broke after the message started: it may have been delivered.
    Unknown(String),
}

/// One worker's connection: opened on first use, reset between messages,
/// reopened when the server has closed it.
#[derive(Default)]
pub struct Conn {
    conn: Option<SmtpConnection>,
    used: bool,
}

impl Conn {
    /// Drops the connection (after an error that leaves it in doubt).
    pub fn reset(&mut self) {
        if let Some(mut c) = self.conn.take() {
            c.abort();
        }
        self.used = false;
    }

    /// A connection ready for MAIL FROM: the open one after a successful RSET,
    /// or a new one if there was none or the server closed it.
    fn ready(&mut self, server: &Server) -> Result<&mut SmtpConnection, StepError> {
        if self.used {
            let alive = match self.conn.as_mut() {
                Some(c) => !c.has_broken() && c.command(Rset).is_ok(),
                None => false,
            };
            if !alive {
                self.reset();
            }
        }
        if self.conn.is_none() {
            self.conn = Some(server.connect().map_err(StepError::from)?);
            self.used = false;
        }
        self.used = true;
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Sends one message: MAIL, RCPT, DATA, then `before_message()` (the
    /// ledger's `sending` line), then the message. Any error before DATA
    /// means nothing was delivered; a network error after it is unknown.
    pub fn send(
        &mut self,
        server: &Server,
        from: Option<&Address>,
        to: &Address,
        message: &[u8],
        before_message: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<Sent, std::io::Error> {
        let conn = match self.ready(server) {
            Ok(c) => c,
            Err(e) => return Ok(Sent::Before(e)),
        };
        let mut options = Vec::new();
        if !message.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let steps = conn
            .command(Mail::new(from.cloned(), options))
            .and_then(|_| conn.command(Rcpt::new(to.clone(), vec![])))
            .and_then(|_| conn.command(Data));
        if let Err(e) = steps {
            let e = StepError::from(e);
            if matches!(e, StepError::Network(_)) {
                self.reset();
            }
            return Ok(Sent::Before(e));
        }
        before_message()?;
        // One write for the whole message and its final dot: lettre's
        // `message` writes the dot separately, and Nagle's algorithm then
        // holds it until the server's delayed ACK (40 ms a message).
        let reply = match std::str::from_utf8(message) {
            Ok(text) => conn.command(Dotted(text)),
            Err(_) => conn.message(message),
        };
        match reply {
            Ok(_) => Ok(Sent::Accepted),
            Err(e) => match StepError::from(e) {
                StepError::Network(text) => {
                    self.reset();
                    Ok(Sent::Unknown(text))
                }
                reply => Ok(Sent::After(reply)),
            },
        }
    }

    /// Says goodbye, politely.
    pub fn quit(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.quit();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.quit();
    }
}

/// A message's content, dot-stuffed, with the final `.` line.
struct Dotted<'a>(&'a str);

impl std::fmt::Display for Dotted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        if rest.starts_with('.') {
            f.write_str(".")?;
        }
        while let Some(i) = rest.find("\n.") {
            f.write_str(&rest[..i + 2])?;
            f.write_str(".")?;
            rest = &rest[i + 2..];
        }
        f.write_str(rest)?;
        if !self.0.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

/// "try again in 30 seconds", "retry in 2 minutes": the delay a reply asks for.
pub fn asked_delay(text: &str) -> Option<Duration> {
    let lower = text.to_ascii_lowercase();
    let at = lower
        .find("try again in")
        .or_else(|| lower.find("retry in"))?;
    let rest = &lower[at..];
    let digits_at = rest.find(|c: char| c.is_ascii_digit())?;
    let rest = &rest[digits_at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let n: u64 = rest[..end].parse().ok()?;
    let unit = rest[end..].trim_start();
    let secs = if unit.starts_with("min") {
        n.saturating_mul(60)
    } else if unit.starts_with("hour") {
        n.saturating_mul(3600)
    } else {
        n
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = Server::parse("smtp://127.0.0.1:2525", None, Duration::from_secs(5)).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.security),
            ("127.0.0.1", 2525, Security::Plain)
        );
        let s = Server::parse(
            "smtps://u:p%40ss@mail.example.com",
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!((s.port, s.security), (465, Security::Implicit));
        assert_eq!(s.shown, "smtps://u:***@mail.example.com");
        let s = Server::parse("smtp+starttls://[::1]:587/", None, Duration::from_secs(5)).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 587));
        assert!(Server::parse("http://x", None, Duration::from_secs(1))
            .err()
            .unwrap()
            .contains("unknown scheme"));
        assert!(Server::parse("smtp://x:notaport", None, Duration::from_secs(1)).is_err());
        assert_eq!(decode("p%40ss%3a"), "p@ss:");
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            Dotted(".a\r\n.b\r\nc").to_string(),
            "..a\r\n..b\r\nc\r\n.\r\n"
        );
        assert_eq!(Dotted("a\r\n").to_string(), "a\r\n.\r\n");
    }

    #[test]
    fn delays() {
        assert_eq!(
            asked_delay("4.7.1 Greylisted, try again in 30 seconds"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            asked_delay("Please retry in 2 minutes"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(asked_delay("mailbox busy"), None);
    }
}
