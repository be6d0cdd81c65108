//! Building one message: headers, the text (and HTML) part, the attachments,
//! and a Message-ID derived from the run id and the recipient.

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use super::template::Rendered;

/// A file attached to every message.
pub struct Attached {
    name: String,
    body: Arc<Vec<u8>>,
    kind: ContentType,
}

/// Reads every --attach file once, up front.
pub fn read_attachments(paths: &[PathBuf]) -> Result<Vec<Attached>, String> {
    paths
        .iter()
        .map(|p| {
            let body = std::fs::read(p).map_err(|e| format!("--attach {}: {e}", p.display()))?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            let kind = ContentType::parse(mime_of(&name)).expect("a valid MIME type");
            Ok(Attached {
                name,
                body: Arc::new(body),
                kind,
            })
        })
        .collect()
}

fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("zip") => "application/zip",
        Some("json") => "application/json",
        Some("ics") => "text/calendar; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The default run id: a hash of the template, so that a rerun with the same
/// template gives the same Message-IDs.
pub fn default_run_id(template: &[u8]) -> String {
    format!("t{}", &hex(&Sha256::digest(template))[..12])
}

/// `<HASH.RUNID@DOMAIN>`, where HASH is derived from the run id and the recipient.
pub fn message_id(run_id: &str, recipient_key: &str, domain: &str) -> String {
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    h.update([0]);
    h.update(recipient_key.as_bytes());
    format!("<{}.{run_id}@{domain}>", &hex(&h.finalize())[..24])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the message for `to` from its rendering.
pub fn build(
    r: &Rendered,
    default_from: Option<&Mailbox>,
    to: &Address,
    message_id: String,
    attachments: &[Attached],
) -> Result<Message, String> {
    let from = match (&r.from, default_from) {
        (Some(f), _) => f
            .parse::<Mailbox>()
            .map_err(|e| format!("From: '{f}' is not an address: {e}"))?,
        (None, Some(f)) => f.clone(),
        (None, None) => return Err("no From: address".into()),
    };
    let to_box = match &r.to {
        Some(t) => t
            .parse::<Mailbox>()
            .map_err(|e| format!("To: '{t}' is not an address: {e}"))?,
        None => Mailbox::new(None, to.clone()),
    };
    let mut b = Message::builder()
        .from(from)
        .to(to_box)
        .subject(r.subject.clone())
        .message_id(Some(message_id));
    if let Some(rt) = &r.reply_to {
        b = b.reply_to(
            rt.parse::<Mailbox>()
                .map_err(|e| format!("Reply-To: '{rt}' is not an address: {e}"))?,
        );
    }
    let text = SinglePart::plain(r.text.clone());
    let body = match &r.html {
        Some(h) => Body::Multi(MultiPart::alternative_plain_html(r.text.clone(), h.clone())),
        None => Body::Single(text),
    };
    let built = if attachments.is_empty() {
        match body {
            Body::Single(p) => b.singlepart(p),
            Body::Multi(m) => b.multipart(m),
        }
    } else {
        let mut mixed = match body {
            Body::Single(p) => MultiPart::mixed().singlepart(p),
            Body::Multi(m) => MultiPart::mixed().multipart(m),
        };
        for a in attachments {
            mixed = mixed.singlepart(
                Attachment::new(a.name.clone()).body(a.body.as_ref().clone(), a.kind.clone()),
            );
        }
        b.multipart(mixed)
    };
    built.map_err(|e| format!("cannot build the message: {e}"))
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic() {
        let a = message_id("run1", "ann@x.org", "shop.example");
        assert_eq!(a, message_id("run1", "ann@x.org", "shop.example"));
        assert_ne!(a, message_id("run2", "ann@x.org", "shop.example"));
        assert_ne!(a, message_id("run1", "bob@x.org", "shop.example"));
        assert!(a.starts_with('<') && a.ends_with(".run1@shop.example>"));
        assert_eq!(default_run_id(b"x"), default_run_id(b"x"));
    }

    #[test]
    fn parts() {
        let r = Rendered {
            subject: "Hi".into(),
            text: "plain body".into(),
            html: Some("<p>html body</p>".into()),
            ..Default::default()
        };
        let from: Mailbox = "Shop <shop@x.org>".parse().unwrap();
        let to: Address = "ann@x.org".parse().unwrap();
        let att = [Attached {
            name: "a.txt".into(),
            body: Arc::new(b"attached".to_vec()),
            kind: ContentType::parse(mime_of("a.txt")).unwrap(),
        }];
        let m = build(&r, Some(&from), &to, "<id@x.org>".into(), &att).unwrap();
        let s = String::from_utf8(m.formatted()).unwrap();
        assert!(s.contains("Message-ID: <id@x.org>"), "{s}");
        assert!(s.contains("multipart/mixed") && s.contains("multipart/alternative"));
        assert!(s.contains("plain body") && s.contains("<p>html body</p>"));
        assert!(s.contains("filename=\"a.txt\""));
    }
}
