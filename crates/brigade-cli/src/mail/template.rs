//! The message template: header lines, a blank line, the text body, and
//! optionally a line `--- html ---` then the HTML body. Every piece is a
//! minijinja template with strict undefined (a missing variable is an error,
//! not an empty string); the HTML body is auto-escaped.

use minijinja::{Environment, UndefinedBehavior, Value};

/// The line between the text part and the HTML part.
pub const HTML_MARK: &str = "--- html ---";

const HEADERS: [&str; 4] = ["subject", "from", "to", "reply-to"];

/// A checked, compiled template.
pub struct Template {
    env: Environment<'static>,
    has: [bool; 4],
    html: bool,
}

/// One recipient's rendering.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The Subject: header.
    pub subject: String,
    /// The From: header, if the template has one.
    pub from: Option<String>,
    /// The To: header, if the template has one (else the row's address).
    pub to: Option<String>,
    /// The Reply-To: header.
    pub reply_to: Option<String>,
    /// The text part.
    pub text: String,
    /// The HTML part.
    pub html: Option<String>,
}

impl Template {
    /// Parses and compiles a template file's text; `name` is for messages.
    pub fn parse(name: &str, source: &str) -> Result<Template, String> {
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        let (head, body) = match source.find("\n\n").or_else(|| source.find("\r\n\r\n")) {
            Some(i) => (&source[..i], source[i..].trim_start_matches(['\r', '\n'])),
            None => {
                return Err(format!(
                "{name}: no blank line after the headers (write 'Subject: ...', a blank line, then the body)"
            ))
            }
        };
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let mut has = [false; 4];
        for (i, line) in head.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            let (h, v) = line
                .split_once(':')
                .ok_or_else(|| format!("{name} line {}: not a header line 'Name: value'", i + 1))?;
            let h = h.trim().to_ascii_lowercase();
            let idx = HEADERS.iter().position(|k| *k == h).ok_or_else(|| {
                format!(
                    "{name} line {}: unknown header '{}' (use Subject, From, To, Reply-To)",
                    i + 1,
                    h
                )
            })?;
            if has[idx] {
                return Err(format!("{name} line {}: '{h}' given twice", i + 1));
            }
            has[idx] = true;
            env.add_template_owned(h.clone(), v.trim().to_string())
                .map_err(|e| format!("{name} line {}: {e}", i + 1))?;
        }
        if !has[0] {
            return Err(format!("{name}: no 'Subject:' line"));
        }
        let (text, html) = match split_html(body) {
            Some((t, h)) => (t, Some(h)),
            None => (body, None),
        };
        env.add_template_owned("text", text.to_string())
            .map_err(|e| format!("{name}: text body: {e}"))?;
        if let Some(h) = html {
            // The .html name turns on auto-escaping for this part.
            env.add_template_owned("body.html", h.to_string())
                .map_err(|e| format!("{name}: HTML body: {e}"))?;
        }
        Ok(Template {
            env,
            has,
            html: html.is_some(),
        })
    }

    /// Whether the template sets From:.
    pub fn has_from(&self) -> bool {
        self.has[1]
    }

    /// Renders one recipient's message.
    pub fn render(&self, vars: &Value) -> Result<Rendered, String> {
        let go = |name: &str| -> Result<String, String> {
            let t = self.env.get_template(name).map_err(|e| e.to_string())?;
            t.render(vars).map_err(|e| describe(name, &e, &t, vars))
        };
        let header = |i: usize| -> Result<Option<String>, String> {
            if !self.has[i] {
                return Ok(None);
            }
            let v = go(HEADERS[i])?;
            if v.contains(['\r', '\n']) {
                return Err(format!("{}: renders to more than one line", HEADERS[i]));
            }
            Ok(Some(v.trim().to_string()))
        };
        Ok(Rendered {
            subject: header(0)?.unwrap_or_default(),
            from: header(1)?,
            to: header(2)?,
            reply_to: header(3)?,
            text: go("text")?,
            html: if self.html {
                Some(go("body.html")?)
            } else {
                None
            },
        })
    }
}

fn split_html(body: &str) -> Option<(&str, &str)> {
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        if line.trim_end() == HTML_MARK {
            return Some((&body[..at], &body[at + line.len()..]));
        }
        at += line.len();
    }
    None
}

fn describe(
    part: &str,
    e: &minijinja::Error,
    t: &minijinja::Template<'_, '_>,
    vars: &Value,
) -> String {
    let part = if part == "body.html" { "html" } else { part };
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        let mut missing: Vec<String> = t
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| vars.get_attr(v).map_or(true, |x| x.is_undefined()))
            .collect();
        missing.sort();
        if !missing.is_empty() {
            return format!("template {part}: this row has no {}", missing.join(", "));
        }
    }
    format!("template {part}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(j: serde_json::Value) -> Value {
        Value::from_serialize(&j)
    }

    #[test]
    fn parts_and_strictness() {
        let t = Template::parse(
            "t",
            "Subject: Hi {{ name }}\nFrom: Shop <s@x.org>\n\nHello {{ name }}!\n--- html ---\n<p>{{ name }}</p>\n",
        )
        .unwrap();
        assert!(t.has_from());
        let r = t
            .render(&vars(serde_json::json!({"name": "<Ann>"})))
            .unwrap();
        assert_eq!(r.subject, "Hi <Ann>");
        assert_eq!(r.text, "Hello <Ann>!\n");
        assert_eq!(r.html.as_deref(), Some("<p>&lt;Ann&gt;</p>\n"));
        let e = t.render(&vars(serde_json::json!({"nom": 1}))).unwrap_err();
        assert_eq!(e, "template subject: this row has no name");

        let t = Template::parse("t", "Subject: {{ s }}\n\nbody\n").unwrap();
        assert!(t
            .render(&vars(serde_json::json!({"s": "a\nBcc: evil@x.org"})))
            .unwrap_err()
            .contains("more than one line"));
        assert!(Template::parse("t", "Subject: x\nBcc: y\n\nb")
            .err()
            .unwrap()
            .contains("unknown header"));
        assert!(Template::parse("t", "From: a@x.org\n\nb")
            .err()
            .unwrap()
            .contains("no 'Subject:'"));
        assert!(Template::parse("t", "Subject: {{ x\n\nb").is_err());
    }
}
