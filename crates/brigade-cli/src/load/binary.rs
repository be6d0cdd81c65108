//! PostgreSQL's binary COPY format, for the column types whose text input
//! the client can parse exactly as the server would.
//!
//! Binary COPY costs the server less than half what text does for C5's rows
//! (BENCHMARKS.md, "COPY text or binary?"): it skips the server's text input
//! functions. The parsers here are strict on purpose: a field they do not
//! accept (`' 42'`, `'yes'` with spaces, `'1e400'`, `'epoch'`, a timestamp
//! with a zone) is not an error here; the whole batch goes as text instead,
//! and the server decides, so a load means the same in both formats.

use super::input::Batch;
use std::ops::Range;

/// How one column's values are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
    Text,
    Timestamp,
}

/// The kind for a column of SQL type `sql` (as `format_type` writes it),
/// or `None` when this module does not send that type.
pub fn kind_of(sql: &str) -> Option<Kind> {
    Some(match sql {
        "smallint" => Kind::Int2,
        "integer" => Kind::Int4,
        "bigint" => Kind::Int8,
        "real" => Kind::Float4,
        "double precision" => Kind::Float8,
        "boolean" => Kind::Bool,
        "text" | "character varying" => Kind::Text,
        "timestamp without time zone" => Kind::Timestamp,
        _ => return None,
    })
}

/// Writes `rows` of `b` as one binary COPY stream into `out`; false (and
/// `out` is to be thrown away) if some field is not one this module sends.
pub fn encode(kinds: &[Kind], b: &Batch, rows: Range<usize>, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    let nfields = match i16::try_from(kinds.len()) {
        Ok(n) => n,
        Err(_) => return false,
    };
    for r in rows {
        out.extend_from_slice(&nfields.to_be_bytes());
        for (c, &k) in kinds.iter().enumerate() {
            match b.field(r, c) {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    if !field(k, v, out) {
                        return false;
                    }
                }
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    true
}

/// Appends one length-prefixed field.
fn field(k: Kind, v: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    match k {
        Kind::Int2 => s.parse::<i16>().map(|n| put(&n.to_be_bytes())).is_ok(),
        Kind::Int4 => s.parse::<i32>().map(|n| put(&n.to_be_bytes())).is_ok(),
        Kind::Int8 => s.parse::<i64>().map(|n| put(&n.to_be_bytes())).is_ok(),
        Kind::Float8 => float(s).map(|x| put(&x.to_be_bytes())).is_some(),
        Kind::Float4 => float(s)
            .and_then(|_| s.parse::<f32>().ok())
            .filter(|x| x.is_finite() && (*x != 0.0 || !has_nonzero_digit(s)))
            .map(|x| put(&x.to_be_bytes()))
            .is_some(),
        Kind::Bool => match boolean(s) {
            Some(x) => {
                put(&[u8::from(x)]);
                true
            }
            None => false,
        },
        Kind::Text => {
            if v.contains(&0) || v.len() > i32::MAX as usize {
                return false;
            }
            put(v);
            true
        }
        Kind::Timestamp => timestamp(s).map(|t| put(&t.to_be_bytes())).is_some(),
    }
}

fn has_nonzero_digit(s: &str) -> bool {
    let mantissa = s.split(['e', 'E']).next().unwrap_or("");
    mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c))
}

/// A plain decimal number (no `inf`, `NaN` or spaces) that is finite and
/// does not underflow to zero, where the server would refuse it.
fn float(s: &str) -> Option<f64> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
    {
        return None;
    }
    let x: f64 = s.parse().ok()?;
    (x.is_finite() && (x != 0.0 || !has_nonzero_digit(s))).then_some(x)
}

fn boolean(s: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["t", "true", "y", "yes", "on", "1"];
    const FALSE: [&str; 6] = ["f", "false", "n", "no", "off", "0"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| s.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// Days from 1970-01-01 to the date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`), as microseconds since
/// 2000-01-01 00:00:00, PostgreSQL's epoch.
fn timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1 || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let micros = match &s[19..] {
        "" => 0,
        frac => {
            let digits = frac.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32)
        }
    };
    let days = days_from_civil(y, mo, d) - days_from_civil(2000, 1, 1);
    Some(((days * 86_400 + h * 3_600 + mi * 60 + sec) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        assert_eq!(timestamp("2000-01-01 00:00:00"), Some(0));
        assert_eq!(
            timestamp("2024-01-01 10:00:00"),
            Some((8766 * 86_400 + 36_000) * 1_000_000)
        );
        assert_eq!(timestamp("1999-12-31T23:59:59.5"), Some(-500_000));
        assert_eq!(
            timestamp("2024-02-29 00:00:00.000001").map(|t| t % 10),
            Some(1)
        );
        for bad in [
            "2023-02-29 00:00:00",
            "2024-13-01 00:00:00",
            "2024-01-01 24:00:00",
            "2024-01-01 00:00:60",
            "2024-01-01 00:00:00+02",
            "2024-01-01 00:00:00.1234567",
            "2024-01-01",
            "epoch",
            " 2024-01-01 00:00:00",
        ] {
            assert_eq!(timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_the_server_would_read_otherwise_go_as_text() {
        assert_eq!(float("1.5"), Some(1.5));
        assert_eq!(float("-2e3"), Some(-2000.0));
        assert_eq!(float("0.000"), Some(0.0));
        for bad in ["", " 1", "1e400", "1e-400", "inf", "NaN", "1,5"] {
            assert_eq!(float(bad), None, "{bad}");
        }
        let mut out = Vec::new();
        assert!(!field(Kind::Int4, b" 42", &mut out));
        assert!(!field(Kind::Int2, b"40000", &mut out));
        assert!(!field(Kind::Float4, b"1e39", &mut out));
        assert!(!field(Kind::Bool, b"maybe", &mut out));
        assert!(!field(Kind::Text, b"a\0b", &mut out));
        assert!(!field(Kind::Text, b"\xff", &mut out));
        assert!(field(Kind::Bool, b"Yes", &mut out));
        assert_eq!(out, [0, 0, 0, 1, 1]);
    }

    #[test]
    fn only_types_without_modifiers_go_binary() {
        assert_eq!(kind_of("bigint"), Some(Kind::Int8));
        assert_eq!(kind_of("character varying"), Some(Kind::Text));
        assert_eq!(kind_of("character varying(20)"), None);
        assert_eq!(kind_of("timestamp(3) without time zone"), None);
        assert_eq!(kind_of("numeric"), None);
    }
}
