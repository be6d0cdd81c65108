//! What decides a line's level, one chunk of whole lines at a time.
//!
//! Two paths with the same answers (`tests::fast_path_agrees` checks it):
//!
//! - `Words`, the default level words alone: ASCII-fold the chunk into a
//!   scratch buffer of the chunk's size (never a copy of the file), find the
//!   words' stems with a case-sensitive multi-literal search (SIMD, several
//!   GB/s, where a case-insensitive regex over six words runs well under
//!   1 GB/s), and decide the whole-word test by hand around each hit.
//! - `Regexes`, as soon as a `--pattern` is given: one regex for any level
//!   finds the next candidate line, then the line alone is tested, so `^`,
//!   `$` and a match that would run past the line's end all mean what they
//!   mean per line (as in `rg`).

use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use memchr::{memchr, memrchr};
use regex::bytes::{Regex, RegexBuilder};

/// The default error-level words, whole words, any case.
pub const DEFAULT_ERROR: &str = r"(?i-u:\b(?:error|err|fatal|critical)\b)";
/// The default warning-level words, whole words, any case.
pub const DEFAULT_WARNING: &str = r"(?i-u:\b(?:warn|warning)\b)";

/// Lines counted at each level in a chunk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub errors: u64,
    pub warnings: u64,
}

#[derive(Debug)]
pub enum Matcher {
    Words(Words),
    Regexes(Regexes),
}

impl Matcher {
    /// `errors` and `warnings` are the user's expressions; `defaults`: add the
    /// default level words.
    pub fn new(defaults: bool, errors: &[String], warnings: &[String]) -> Result<Matcher, String> {
        if defaults && errors.is_empty() && warnings.is_empty() {
            return Ok(Matcher::Words(Words::new()));
        }
        let mut errs: Vec<String> = errors.iter().map(|r| format!("(?:{r})")).collect();
        let mut warns: Vec<String> = warnings.iter().map(|r| format!("(?:{r})")).collect();
        if defaults {
            errs.push(DEFAULT_ERROR.into());
            warns.push(DEFAULT_WARNING.into());
        }
        if errs.is_empty() && warns.is_empty() {
            return Err("--no-default-patterns needs at least one --pattern".into());
        }
        let build = |alts: &[String]| {
            // An empty alternation would match everywhere; this matches nothing.
            let re = if alts.is_empty() {
                r"[^\x00-\xff]".to_string()
            } else {
                alts.join("|")
            };
            RegexBuilder::new(&re)
                .multi_line(true)
                .build()
                .map_err(|e| e.to_string())
        };
        let all: Vec<String> = errs.iter().chain(&warns).cloned().collect();
        Ok(Matcher::Regexes(Regexes {
            any: build(&all)?,
            error: build(&errs)?,
        }))
    }

    /// A scratch buffer for `count`, the size of the largest chunk.
    pub fn scratch(&self, chunk: usize) -> Vec<u8> {
        match self {
            Matcher::Words(_) => Vec::with_capacity(chunk),
            Matcher::Regexes(_) => Vec::new(),
        }
    }

    /// Counts the lines of `chunk` (whole lines, the last one perhaps without
    /// its newline) at each level, each line once at its highest level.
    pub fn count(&self, chunk: &[u8], scratch: &mut Vec<u8>) -> Levels {
        match self {
            Matcher::Words(w) => w.count(chunk, scratch),
            Matcher::Regexes(r) => r.count(chunk),
        }
    }
}

#[derive(Debug)]
pub struct Regexes {
    /// Any line at any level matches this.
    any: Regex,
    /// A line at error level matches this too.
    error: Regex,
}

impl Regexes {
    fn count(&self, chunk: &[u8]) -> Levels {
        let mut n = Levels::default();
        let mut at = 0;
        while at < chunk.len() {
            let Some(m) = self.any.find_at(chunk, at) else {
                break;
            };
            // The line where the match starts (a match may run on past its end:
            // the line alone decides).
            let start = memrchr(b'\n', &chunk[at..m.start()]).map_or(at, |i| at + i + 1);
            let end = memchr(b'\n', &chunk[m.start()..]).map_or(chunk.len(), |i| m.start() + i);
            let line = &chunk[start..end];
            if self.error.is_match(line) {
                n.errors += 1;
            } else if self.any.is_match(line) {
                n.warnings += 1;
            }
            at = end + 1;
        }
        n
    }
}

/// The default words' fast path.
#[derive(Debug)]
pub struct Words {
    /// The stems, lowercase, in the SIMD searcher (Teddy) where the CPU has
    /// one: a hit is where a word may start.
    packed: Option<packed::Searcher>,
    /// The same, for CPUs without it.
    stems: AhoCorasick,
}

/// A hit's level: 0 none, 1 warning, 2 error.
type Level = u8;

fn is_word(b: Option<&u8>) -> bool {
    b.is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Words {
    fn new() -> Words {
        const STEMS: [&str; 4] = ["err", "fatal", "critical", "warn"];
        let stems = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(STEMS)
            .expect("four literals build");
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(STEMS)
            .build();
        Words { packed, stems }
    }

    /// Where the first stem at or after `from` in `hay` starts.
    fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        match &self.packed {
            Some(p) => p.find_in(hay, Span::from(from..hay.len())),
            None => self.stems.find(Input::new(hay).range(from..)),
        }
        .map(|m| m.start())
    }

    /// The level of the word that starts at `p` in the folded text `f`, where
    /// a stem was found (0 when the stem is not a whole level word).
    fn level_at(f: &[u8], p: usize) -> Level {
        if p > 0 && is_word(f.get(p - 1)) {
            return 0;
        }
        let whole = |w: &[u8]| f[p..].starts_with(w) && !is_word(f.get(p + w.len()));
        match f[p] {
            b'e' if whole(b"err") || whole(b"error") => 2,
            b'f' if whole(b"fatal") => 2,
            b'c' if whole(b"critical") => 2,
            b'w' if whole(b"warn") || whole(b"warning") => 1,
            _ => 0,
        }
    }

    fn count(&self, chunk: &[u8], folded: &mut Vec<u8>) -> Levels {
        folded.clear();
        folded.extend(
            chunk
                .iter()
                .map(|&b| b | (u8::from(b.wrapping_sub(b'A') < 26) << 5)),
        );
        let f = &folded[..];
        let mut n = Levels::default();
        let mut at = 0;
        while let Some(p) = self.find(f, at) {
            let end = memchr(b'\n', &f[p..]).map_or(f.len(), |i| p + i);
            let mut level = Self::level_at(f, p);
            let mut from = p + 1;
            // The line's other hits, while it could still rise.
            while level < 2 {
                match self.find(&f[..end], from) {
                    Some(q) => {
                        level = level.max(Self::level_at(f, q));
                        from = q + 1;
                    }
                    None => break,
                }
            }
            match level {
                2 => n.errors += 1,
                1 => n.warnings += 1,
                _ => {}
            }
            at = end + 1;
            if at >= f.len() {
                break;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Matcher {
        Matcher::new(true, &[], &[]).unwrap()
    }

    fn regexes(errors: &[&str], warnings: &[&str], defaults: bool) -> Result<Matcher, String> {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Matcher::new(defaults, &own(errors), &own(warnings))
    }

    fn count(m: &Matcher, text: &[u8]) -> (u64, u64) {
        let n = m.count(text, &mut Vec::new());
        (n.errors, n.warnings)
    }

    #[test]
    fn counts_each_line_once_at_its_highest_level() {
        let text = b"ok\nERROR one\nwarn two\nWarning: and Error: both\nterror is not error-free\nerrors\nfatal\n[WARN] x\nok";
        // ERROR one, the both-line, "error-free" (a whole word before '-'), fatal -> 4 errors;
        // warn two, [WARN] x -> 2 warnings; "terror" and "errors" are not whole words.
        assert_eq!(count(&words(), text), (4, 2));
        // The same words through the regex path.
        let re = regexes(&[DEFAULT_ERROR], &[DEFAULT_WARNING], false).unwrap();
        assert_eq!(count(&re, text), (4, 2));
    }

    #[test]
    fn custom_patterns_add_or_replace() {
        let m = regexes(&["panicked at"], &["(?i)deprecated"], true).unwrap();
        assert_eq!(
            count(&m, b"thread panicked at x\nDEPRECATED api\nERROR\n"),
            (2, 1)
        );
        let only = regexes(&[], &["slow"], false).unwrap();
        assert_eq!(count(&only, b"ERROR slow\nslow\n"), (0, 2));
        assert!(regexes(&[], &[], false).is_err());
    }

    #[test]
    fn anchors_and_matches_are_per_line() {
        let m = regexes(&["^E"], &[], false).unwrap();
        assert_eq!(count(&m, b"ERROR a\nEb\nEc\nxE\n"), (3, 0));
        let m = regexes(&["x$"], &[], false).unwrap();
        assert_eq!(count(&m, b"ax\nxa\nbx"), (2, 0));
        // A match may not run from one line into the next.
        let m = regexes(&[r"a\s+b"], &[], false).unwrap();
        assert_eq!(count(&m, b"a\nb\na b\n"), (1, 0));
        let m = regexes(&["a[^z]*b"], &[], false).unwrap();
        assert_eq!(count(&m, b"xa\nb\n"), (0, 0));
    }

    #[test]
    fn fast_path_agrees() {
        let m = words();
        assert!(matches!(m, Matcher::Words(_)));
        let re = regexes(&[DEFAULT_ERROR], &[DEFAULT_WARNING], false).unwrap();
        let mut text = Vec::new();
        let words = [
            "error",
            "Err",
            "ERRORS",
            "terror",
            "fatal",
            "FaTaL",
            "critical",
            "crit",
            "warn",
            "Warning",
            "warned",
            "swarn",
            "ok",
            "x",
            "err-1",
            "WARN:",
            "[CRITICAL]",
            "fatalistic",
            "_warn",
            "warn_",
            "err9",
            "\u{e9}rror",
            "\n",
            "\n",
            "\n",
        ];
        let mut seed = 7u64;
        for _ in 0..40_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.extend_from_slice(words[(seed >> 33) as usize % words.len()].as_bytes());
            text.push(if seed & 1 == 0 { b' ' } else { b'\n' });
        }
        assert_eq!(count(&m, &text), count(&re, &text));
        assert_ne!(count(&m, &text), (0, 0));
        // Without the SIMD searcher (a CPU without it) too.
        let Matcher::Words(mut w) = m else {
            unreachable!()
        };
        w.packed = None;
        assert_eq!(count(&Matcher::Words(w), &text), count(&re, &text));
    }
}
