//! What is read out of a body: its text (decoded by its charset), and the
//! title, links and CSS matches of an HTML page.

use encoding_rs::Encoding;
use scraper::{Html, Selector};
use url::Url;

use super::args::Extract;

/// A body decoded to text.
pub struct Text {
    /// The text.
    pub text: String,
    /// The charset it was decoded from (WHATWG name).
    pub charset: &'static str,
    /// Whether some bytes did not decode and were replaced by U+FFFD.
    pub replaced: bool,
}

/// Whether a Content-Type is text worth decoding (or absent, so maybe).
pub fn is_text(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/")
                || ct.contains("html")
                || ct.contains("xml")
                || ct.contains("json")
        }
    }
}

/// Whether the body is HTML: by its Content-Type, or by its first bytes when there is none.
pub fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type {
        Some(ct) => ct.to_ascii_lowercase().contains("html"),
        None => {
            let head = &body[..body.len().min(256)];
            let head = String::from_utf8_lossy(head).to_ascii_lowercase();
            let head = head.trim_start();
            head.starts_with("<!doctype html") || head.starts_with("<html")
        }
    }
}

/// Decodes a body: the charset of the Content-Type, else a BOM, else a
/// `<meta charset>` in the first 1024 bytes, else UTF-8.
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Text {
    let declared = content_type
        .and_then(charset_param)
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .or_else(|| Encoding::for_bom(body).map(|(e, _)| e))
        .or_else(|| meta_charset(&body[..body.len().min(1024)]))
        .unwrap_or(encoding_rs::UTF_8);
    let (text, used, replaced) = declared.decode(body);
    Text {
        text: text.into_owned(),
        charset: used.name(),
        replaced,
    }
}

fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// `<meta charset="x">` or `<meta http-equiv=... content="...; charset=x">`.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
    let at = lower.find("charset=")?;
    let rest = lower[at + "charset=".len()..].trim_start_matches(['"', '\'', ' ']);
    let end = rest
        .find(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':' || c == '.')
        })
        .unwrap_or(rest.len());
    Encoding::for_label(&rest.as_bytes()[..end])
}

/// What was extracted from a page.
#[derive(Default)]
pub struct Found {
    /// The `<title>`, whitespace collapsed.
    pub title: Option<String>,
    /// The links, absolute, normalised, deduplicated, in page order.
    pub links: Vec<String>,
    /// The texts of each `css:` selector's matches, in the order asked.
    pub css: Vec<(String, Vec<String>)>,
}

/// Parses an HTML page (never fails: a malformed page is parsed as browsers
/// do) and extracts its title, what `what` asks, and links when `want_links`.
pub fn extract(html: &str, base: &Url, what: &[Extract], want_links: bool) -> Found {
    let doc = Html::parse_document(html);
    let mut found = Found::default();
    let title = Selector::parse("title").expect("a valid selector");
    found.title = doc
        .select(&title)
        .next()
        .map(|t| collapse(&t.text().collect::<String>()));
    for w in what {
        match w {
            Extract::Title | Extract::Links => {}
            Extract::Css(s) => {
                // Checked when the arguments were parsed.
                if let Ok(sel) = Selector::parse(s) {
                    let texts = doc
                        .select(&sel)
                        .map(|e| collapse(&e.text().collect::<String>()))
                        .collect();
                    found.css.push((s.clone(), texts));
                }
            }
        }
    }
    if want_links || what.iter().any(|w| matches!(w, Extract::Links)) {
        let base_sel = Selector::parse("base[href]").expect("a valid selector");
        let base = doc
            .select(&base_sel)
            .next()
            .and_then(|b| b.value().attr("href"))
            .and_then(|h| base.join(h).ok())
            .unwrap_or_else(|| base.clone());
        let sel = Selector::parse("a[href], area[href]").expect("a valid selector");
        let mut seen = std::collections::HashSet::new();
        for a in doc.select(&sel) {
            let Some(href) = a.value().attr("href") else {
                continue;
            };
            let Ok(u) = base.join(href.trim()) else {
                continue;
            };
            if let Some(n) = normalise(u) {
                if seen.insert(n.clone()) {
                    found.links.push(n);
                }
            }
        }
    }
    found
}

/// A URL in the one form used for deduplication: http or https only, no
/// fragment. (The url crate already lowercases the scheme and host, drops a
/// default port and resolves dot segments.)
pub fn normalise(mut u: Url) -> Option<String> {
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return None;
    }
    u.set_fragment(None);
    Some(u.into())
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        let latin1 = b"caf\xe9";
        let t = decode(Some("text/html; charset=ISO-8859-1"), latin1);
        assert_eq!(t.text, "café");
        assert_eq!(t.charset, "windows-1252");
        assert!(!t.replaced);
        let t = decode(
            Some("text/html"),
            b"<meta charset=\"shift_jis\">\x93\xfa\x96\x7b",
        );
        assert!(t.text.ends_with("日本"), "{}", t.text);
        let t = decode(None, b"bad \xff utf8");
        assert!(t.replaced);
        assert_eq!(t.charset, "UTF-8");
    }

    #[test]
    fn links_and_title() {
        let base = Url::parse("http://Example.com:80/a/b.html").unwrap();
        let f = extract(
            "<html><title> Hello\n  there </title><a href='../c#x'>c</a><a href='../c'>c</a>\
             <a href='mailto:x@y'>m</a><a href='https://other.org/'>o</a><p class=k>one</p><p class=k>two",
            &base,
            &[Extract::Title, Extract::Css("p.k".into())],
            true,
        );
        assert_eq!(f.title.as_deref(), Some("Hello there"));
        assert_eq!(f.links, ["http://example.com/c", "https://other.org/"]);
        assert_eq!(
            f.css,
            [(
                "p.k".to_string(),
                vec!["one".to_string(), "two".to_string()]
            )]
        );
    }
}
