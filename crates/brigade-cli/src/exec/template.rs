//! The command template: GNU parallel's replacement strings, and how a job's
//! command line is built from them, run directly or through `sh -c`.
//!
//! As in parallel, the command is its words joined by spaces, and each input
//! put in it is shell-quoted. When the text around the inputs has no shell
//! syntax, splitting it on whitespace gives the same words the shell would,
//! so the job runs directly, without a shell.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// A change applied to an input before it goes into the command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// `{}`: as is.
    Whole,
    /// `{.}`: without the extension.
    NoExt,
    /// `{/}`: the last path component.
    Base,
    /// `{//}`: the directory.
    Dir,
    /// `{/.}`: the last path component without its extension.
    BaseNoExt,
}

impl Transform {
    fn from_suffix(s: &str) -> Option<Transform> {
        Some(match s {
            "" => Transform::Whole,
            "." => Transform::NoExt,
            "/" => Transform::Base,
            "//" => Transform::Dir,
            "/." => Transform::BaseNoExt,
            _ => return None,
        })
    }

    /// Applies the change, with GNU parallel's rules.
    pub fn apply(self, v: &[u8]) -> Vec<u8> {
        match self {
            Transform::Whole => v.to_vec(),
            Transform::NoExt => strip_ext(v).to_vec(),
            Transform::Base => base(v).to_vec(),
            Transform::Dir => dir(v),
            Transform::BaseNoExt => strip_ext(base(v)).to_vec(),
        }
    }
}

/// Everything after the last `/`.
fn base(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// Without a final `.ext` (a dot followed by neither `/` nor `.` to the end).
fn strip_ext(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'.' || b == b'/') {
        Some(i) if p[i] == b'.' => &p[..i],
        _ => p,
    }
}

/// The directory, as POSIX dirname gives it.
fn dir(p: &[u8]) -> Vec<u8> {
    let trimmed = {
        let mut end = p.len();
        while end > 1 && p[end - 1] == b'/' {
            end -= 1;
        }
        &p[..end]
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        None => b".".to_vec(),
        Some(i) => {
            let mut d = &trimmed[..i];
            while d.len() > 1 && d.ends_with(b"/") {
                d = &d[..d.len() - 1];
            }
            if d.is_empty() {
                b"/".to_vec()
            } else {
                d.to_vec()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// Command text, seen by the shell (or split on whitespace).
    Lit(Vec<u8>),
    /// Command text the user asked to quote (-q).
    Quoted(Vec<u8>),
    /// An input: all of them (`None`) or the one at a position (1-based).
    Value(Option<usize>, Transform),
    /// `{#}`
    Seq,
    /// `{%}`
    Slot,
}

/// One word of the command line: the whitespace before it, then its pieces.
#[derive(Debug, Clone)]
struct Word {
    sep: Vec<u8>,
    pieces: Vec<Piece>,
}

/// How the command line of each job is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pack {
    /// `{}` holds all of a job's inputs, separated by spaces (the default, -n, -m).
    All,
    /// The word holding `{}` is repeated for each input (-X).
    Context,
}

/// A command line with replacement strings, checked once at the start.
#[derive(Debug, Clone)]
pub struct Template {
    words: Vec<Word>,
    /// No command at all: each input is itself a command line.
    inputs_are_commands: bool,
    has_value: bool,
    needs_shell: bool,
    pack: Pack,
}

/// What one job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Run these words directly.
    Direct(Vec<OsString>),
    /// Run this line with `sh -c`.
    Shell(OsString),
}

/// The values a job's replacement strings stand for.
pub struct Fill<'a> {
    /// The job's inputs, in order.
    pub args: &'a [Vec<u8>],
    /// The job number, from 1.
    pub seq: u64,
    /// The job slot, from 1.
    pub slot: usize,
}

#[derive(Debug)]
enum Frag {
    Lit(Vec<u8>),
    Val(Vec<u8>),
    Break,
}

/// Shell builtins and keywords that must run in a shell, or behave differently there.
const SHELL_FIRST_WORDS: &[&[u8]] = &[
    b"echo",
    b"cd",
    b"exit",
    b"export",
    b"read",
    b"set",
    b"unset",
    b"eval",
    b"exec",
    b"source",
    b".",
    b"alias",
    b"ulimit",
    b"umask",
    b"wait",
    b"trap",
    b"shift",
    b"type",
    b"command",
    b"local",
    b"return",
    b"if",
    b"for",
    b"while",
    b"until",
    b"case",
    b"!",
    b"{",
    b"readonly",
    b"times",
    b"getopts",
    b"hash",
    b"jobs",
    b"fg",
    b"bg",
];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}

/// Bytes with no meaning to the shell (besides whitespace).
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_./,:+@%^=".contains(&b) || b >= 0x80
}

/// Quotes a value for `sh` the way GNU parallel does: plain words as they
/// are, the rest in single quotes, a `'` itself as `"'"`.
pub fn shell_quote(s: &[u8]) -> Vec<u8> {
    if !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+_-/.".contains(&b))
    {
        return s.to_vec();
    }
    if s.is_empty() {
        return b"''".to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 2);
    for (i, part) in s.split(|&b| b == b'\'').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\"'\"");
        }
        if !part.is_empty() {
            out.push(b'\'');
            out.extend_from_slice(part);
            out.push(b'\'');
        }
    }
    out
}

impl Template {
    /// Parses the command words. `names` are the --header names, in input-source order.
    pub fn parse(
        command: &[OsString],
        quote: bool,
        force_shell: bool,
        names: &[Vec<u8>],
        pack: Pack,
    ) -> Result<Template, String> {
        let raw: Vec<&[u8]> = command.iter().map(|w| w.as_bytes()).collect();
        let joined = raw.join(&b' ');
        if let Some(i) = find(&joined, b"{=") {
            let end = find(&joined[i..], b"=}").map_or(joined.len(), |e| i + e + 2);
            return Err(format!(
                "the perl expression '{}' is not supported: brigade runs no perl. Use the \
                 replacement strings {{}} {{.}} {{/}} {{//}} {{/.}} {{#}} {{%}} {{N}}, or do it in the shell",
                String::from_utf8_lossy(&joined[i..end])
            ));
        }
        let mut words = Vec::new();
        if quote {
            for (i, w) in raw.iter().enumerate() {
                let pieces = parse_word(w, names, true)?;
                words.push(Word {
                    sep: if i == 0 { Vec::new() } else { b" ".to_vec() },
                    pieces,
                });
            }
        } else {
            let mut i = 0;
            while i < joined.len() {
                let start = i;
                while i < joined.len() && is_space(joined[i]) {
                    i += 1;
                }
                let sep = joined[start..i].to_vec();
                let wstart = i;
                while i < joined.len() && !is_space(joined[i]) {
                    i += 1;
                }
                let pieces = if wstart < i {
                    parse_word(&joined[wstart..i], names, false)?
                } else {
                    Vec::new()
                };
                words.push(Word { sep, pieces });
            }
        }
        let has_value = words
            .iter()
            .flat_map(|w| &w.pieces)
            .any(|p| matches!(p, Piece::Value(..)));
        let inputs_are_commands = words.iter().all(|w| w.pieces.is_empty());
        let lit_special = words.iter().any(|w| {
            w.sep.iter().any(|&b| !is_space(b))
                || w.pieces.iter().any(|p| match p {
                    Piece::Lit(t) => t.iter().any(|&b| !is_plain(b)),
                    _ => false,
                })
        });
        let first_needs_shell = match words.iter().find(|w| !w.pieces.is_empty()) {
            Some(w) => match w.pieces.as_slice() {
                [Piece::Lit(t)] => SHELL_FIRST_WORDS.contains(&t.as_slice()) || t.contains(&b'='),
                [Piece::Quoted(_), ..] => false,
                [Piece::Lit(_), ..] => w
                    .pieces
                    .iter()
                    .any(|p| matches!(p, Piece::Lit(t) if t.contains(&b'='))),
                _ => true,
            },
            None => true,
        };
        Ok(Template {
            words,
            inputs_are_commands,
            has_value,
            needs_shell: force_shell || inputs_are_commands || lit_special || first_needs_shell,
            pack,
        })
    }

    /// Whether the command uses any input replacement string.
    pub fn has_value(&self) -> bool {
        self.has_value
    }

    fn frags(&self, f: &Fill) -> Vec<Frag> {
        let mut out = Vec::new();
        if self.inputs_are_commands {
            for (i, a) in f.args.iter().enumerate() {
                if i > 0 {
                    out.push(Frag::Lit(b" ".to_vec()));
                }
                out.push(Frag::Lit(a.clone()));
            }
            return out;
        }
        for w in &self.words {
            if !w.sep.is_empty() {
                out.push(Frag::Lit(w.sep.clone()));
            }
            let repeat = self.pack == Pack::Context
                && f.args.len() > 1
                && w.pieces.iter().any(|p| matches!(p, Piece::Value(None, _)));
            if repeat {
                for (i, a) in f.args.iter().enumerate() {
                    if i > 0 {
                        out.push(Frag::Break);
                    }
                    word_frags(&w.pieces, f, std::slice::from_ref(a), &mut out);
                }
            } else {
                word_frags(&w.pieces, f, f.args, &mut out);
            }
        }
        if !self.has_value {
            for a in f.args {
                out.push(Frag::Break);
                out.push(Frag::Val(a.clone()));
            }
        }
        out
    }

    /// The command line as the shell would read it (for --dry-run, the joblog, messages).
    pub fn line(&self, f: &Fill) -> OsString {
        let mut s = Vec::new();
        for fr in self.frags(f) {
            match fr {
                Frag::Lit(t) => s.extend_from_slice(&t),
                Frag::Val(v) => s.extend_from_slice(&shell_quote(&v)),
                Frag::Break => s.push(b' '),
            }
        }
        OsString::from_vec(s)
    }

    /// What to run for one job.
    pub fn cmd(&self, f: &Fill) -> Cmd {
        if self.needs_shell {
            return Cmd::Shell(self.line(f));
        }
        let mut words: Vec<OsString> = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        let mut end_word = |cur: &mut Option<Vec<u8>>| {
            if let Some(w) = cur.take() {
                words.push(OsString::from_vec(w));
            }
        };
        for fr in self.frags(f) {
            match fr {
                Frag::Lit(t) => {
                    for b in t {
                        if is_space(b) {
                            end_word(&mut cur);
                        } else {
                            cur.get_or_insert_with(Vec::new).push(b);
                        }
                    }
                }
                Frag::Val(v) => cur.get_or_insert_with(Vec::new).extend_from_slice(&v),
                Frag::Break => end_word(&mut cur),
            }
        }
        end_word(&mut cur);
        Cmd::Direct(words)
    }
}

fn word_frags(pieces: &[Piece], f: &Fill, args: &[Vec<u8>], out: &mut Vec<Frag>) {
    for p in pieces {
        match p {
            Piece::Lit(t) => out.push(Frag::Lit(t.clone())),
            Piece::Quoted(t) => out.push(Frag::Val(t.clone())),
            Piece::Seq => out.push(Frag::Val(f.seq.to_string().into_bytes())),
            Piece::Slot => out.push(Frag::Val(f.slot.to_string().into_bytes())),
            Piece::Value(None, t) => {
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push(Frag::Break);
                    }
                    out.push(Frag::Val(t.apply(a)));
                }
            }
            // Past the last input: nothing at all, not even an empty word (as parallel).
            Piece::Value(Some(n), t) => {
                if let Some(a) = f.args.get(n - 1) {
                    out.push(Frag::Val(t.apply(a)));
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a word into text and replacement strings.
fn parse_word(w: &[u8], names: &[Vec<u8>], quote: bool) -> Result<Vec<Piece>, String> {
    let text_piece = |t: Vec<u8>| {
        if quote {
            Piece::Quoted(t)
        } else {
            Piece::Lit(t)
        }
    };
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut i = 0;
    while i < w.len() {
        if w[i] == b'{' {
            if let Some(len) = w[i + 1..].iter().position(|&b| b == b'}') {
                let inner = &w[i + 1..i + 1 + len];
                if let Some(p) = replacement(inner, names)? {
                    if !text.is_empty() {
                        pieces.push(text_piece(std::mem::take(&mut text)));
                    }
                    pieces.push(p);
                    i += len + 2;
                    continue;
                }
            }
        }
        text.push(w[i]);
        i += 1;
    }
    if !text.is_empty() {
        pieces.push(text_piece(text));
    }
    Ok(pieces)
}

/// The replacement string `{inner}` stands for; `None` when it is plain text (`{print $1}`).
fn replacement(inner: &[u8], names: &[Vec<u8>]) -> Result<Option<Piece>, String> {
    let s = String::from_utf8_lossy(inner);
    match s.as_ref() {
        "#" => return Ok(Some(Piece::Seq)),
        "%" => return Ok(Some(Piece::Slot)),
        _ => {}
    }
    if let Some(t) = Transform::from_suffix(&s) {
        return Ok(Some(Piece::Value(None, t)));
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        let n: usize = s[..digits].parse().unwrap_or(0);
        return match Transform::from_suffix(&s[digits..]) {
            Some(_) if n == 0 => Err(format!(
                "{{{s}}}: input sources are numbered from 1 ({{1}}, {{2}}, ...)"
            )),
            Some(t) => Ok(Some(Piece::Value(Some(n), t))),
            None if s[digits..].bytes().all(|b| b"./#%+".contains(&b)) => Err(unknown(&s)),
            None => Ok(None),
        };
    }
    if let Some(pos) = names.iter().position(|n| n.as_slice() == inner) {
        return Ok(Some(Piece::Value(Some(pos + 1), Transform::Whole)));
    }
    if !s.is_empty() && s.bytes().all(|b| b"./#%+".contains(&b)) {
        return Err(unknown(&s));
    }
    Ok(None)
}

fn unknown(s: &str) -> String {
    format!(
        "unknown replacement string {{{s}}} (brigade knows {{}} {{.}} {{/}} {{//}} {{/.}} {{#}} {{%}} \
         and {{N}} {{N.}} {{N/}} {{N//}} {{N/.}})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(words: &[&str]) -> Template {
        let w: Vec<OsString> = words.iter().map(OsString::from).collect();
        Template::parse(&w, false, false, &[], Pack::All).unwrap()
    }

    fn fill(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn direct(t: &Template, args: &[&str], seq: u64) -> Vec<String> {
        let a = fill(args);
        match t.cmd(&Fill {
            args: &a,
            seq,
            slot: 1,
        }) {
            Cmd::Direct(w) => w.iter().map(|s| s.to_string_lossy().into_owned()).collect(),
            Cmd::Shell(s) => panic!("expected a direct command, got sh -c {s:?}"),
        }
    }

    fn shell(t: &Template, args: &[&str]) -> String {
        let a = fill(args);
        match t.cmd(&Fill {
            args: &a,
            seq: 1,
            slot: 1,
        }) {
            Cmd::Shell(s) => s.to_string_lossy().into_owned(),
            Cmd::Direct(w) => panic!("expected sh -c, got {w:?}"),
        }
    }

    #[test]
    fn replacement_strings_follow_parallel() {
        let t = tpl(&["cp", "{}", "out/{/.}.bak", "{//}", "{.}", "{#}"]);
        assert_eq!(
            direct(&t, &["a/b/c.txt"], 7),
            ["cp", "a/b/c.txt", "out/c.bak", "a/b", "a/b/c", "7"]
        );
        let cases = [
            (".hidden", "", ".hidden", ".", ""),
            ("a.b.c", "a.b", "a.b.c", ".", "a.b"),
            ("/a/b/", "/a/b/", "", "/a", ""),
            ("a.b/", "a.b/", "", ".", ""),
            ("/", "/", "", "/", ""),
            ("x/.y", "x/", ".y", "x", ""),
        ];
        for (input, noext, b, d, bne) in cases {
            let v = input.as_bytes();
            assert_eq!(Transform::NoExt.apply(v), noext.as_bytes(), "{{.}} {input}");
            assert_eq!(Transform::Base.apply(v), b.as_bytes(), "{{/}} {input}");
            assert_eq!(Transform::Dir.apply(v), d.as_bytes(), "{{//}} {input}");
            assert_eq!(
                Transform::BaseNoExt.apply(v),
                bne.as_bytes(),
                "{{/.}} {input}"
            );
        }
    }

    #[test]
    fn inputs_are_appended_and_words_split_like_the_shell() {
        assert_eq!(
            direct(&tpl(&["gzip", "-9"]), &["x y"], 1),
            ["gzip", "-9", "x y"]
        );
        assert_eq!(direct(&tpl(&["ls   -l"]), &["a"], 1), ["ls", "-l", "a"]);
        assert_eq!(
            direct(&tpl(&["cat", "x{}y"]), &["1", "2"], 1),
            ["cat", "x1", "2y"]
        );
        assert_eq!(
            direct(&tpl(&["cat", "{2}-{1}"]), &["a", "b"], 1),
            ["cat", "b-a"]
        );
        assert_eq!(direct(&tpl(&["cat", "{3}"]), &["a"], 1), ["cat"]);
        assert_eq!(direct(&tpl(&["cat", "x{3}"]), &["a"], 1), ["cat", "x"]);
    }

    #[test]
    fn shell_syntax_goes_through_sh_with_inputs_quoted() {
        let t = tpl(&["echo {} > {.}.out"]);
        assert_eq!(
            shell(&t, &["it's.txt"]),
            r#"echo 'it'"'"'s.txt' > 'it'"'"'s'.out"#
        );
        assert_eq!(shell(&tpl(&["echo"]), &["a b"]), "echo 'a b'");
        assert_eq!(shell(&tpl(&["cd", "/"]), &["a"]), "cd / a");
        assert_eq!(shell(&tpl(&["wc", "-l", "$HOME"]), &["a"]), "wc -l $HOME a");
        assert_eq!(
            shell(&tpl(&["awk", "{print $1}", "{}"]), &["f"]),
            "awk {print $1} f"
        );
        assert_eq!(shell(&tpl(&[]), &["echo hi"]), "echo hi");
    }

    #[test]
    fn quote_mode_keeps_words_whole() {
        let w: Vec<OsString> = ["printf", "%s|", "a;b", "{}"]
            .iter()
            .map(OsString::from)
            .collect();
        let t = Template::parse(&w, true, false, &[], Pack::All).unwrap();
        assert_eq!(direct(&t, &["c d"], 1), ["printf", "%s|", "a;b", "c d"]);
    }

    #[test]
    fn context_replace_repeats_the_word() {
        let w: Vec<OsString> = ["cat", "pre{}post"].iter().map(OsString::from).collect();
        let t = Template::parse(&w, false, false, &[], Pack::Context).unwrap();
        assert_eq!(direct(&t, &["1", "2"], 1), ["cat", "pre1post", "pre2post"]);
    }

    #[test]
    fn header_names_and_bad_strings() {
        let w: Vec<OsString> = ["cat", "{x}", "{y/}"].iter().map(OsString::from).collect();
        let t = Template::parse(&w, false, false, &[b"x".to_vec()], Pack::All).unwrap();
        assert_eq!(shell(&t, &["1"]), "cat 1 {y/}");
        let e = Template::parse(
            &["echo".into(), "{..}".into()],
            false,
            false,
            &[],
            Pack::All,
        )
        .unwrap_err();
        assert!(e.contains("{..}"), "{e}");
        let e = Template::parse(&["echo {= s/a/b/ =}".into()], false, false, &[], Pack::All)
            .unwrap_err();
        assert!(
            e.contains("{= s/a/b/ =}") && e.contains("not supported"),
            "{e}"
        );
    }
}
