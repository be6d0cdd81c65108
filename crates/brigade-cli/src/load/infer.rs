//! Column types for --create, inferred from a sample of the input.

/// What a column's values look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Fits a 64-bit integer (no leading zeros: `007` is text).
    Integer,
    /// A decimal or scientific number.
    Real,
    /// `true` or `false`, any case.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD[ T]HH:MM[:SS[.fff]]`.
    Timestamp,
    /// A timestamp with `Z` or an offset.
    TimestampTz,
    /// Anything else.
    Text,
}

/// Which SQL spelling to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Kind {
    /// The column type to create.
    pub fn sql(self, d: Dialect) -> &'static str {
        match (self, d) {
            (Kind::Integer, Dialect::Sqlite) => "INTEGER",
            (Kind::Integer, Dialect::Postgres) => "BIGINT",
            (Kind::Real, Dialect::Sqlite) => "REAL",
            (Kind::Real, Dialect::Postgres) => "DOUBLE PRECISION",
            (Kind::Boolean, _) => "BOOLEAN",
            (Kind::Date, _) => "DATE",
            (Kind::Timestamp, _) => "TIMESTAMP",
            (Kind::TimestampTz, Dialect::Sqlite) => "TIMESTAMP",
            (Kind::TimestampTz, Dialect::Postgres) => "TIMESTAMPTZ",
            (Kind::Text, _) => "TEXT",
        }
    }
}

/// The kind of one non-null value.
pub fn kind_of(v: &str) -> Kind {
    let t = v.trim();
    if is_integer(t) {
        Kind::Integer
    } else if is_real(t) {
        Kind::Real
    } else if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        Kind::Boolean
    } else {
        time_kind(t).unwrap_or(Kind::Text)
    }
}

fn is_integer(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0'))
        && t.parse::<i64>().is_ok()
}

fn is_real(t: &str) -> bool {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().all(|b| {
            b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+'
        })
        && !(body.len() > 1 && body.starts_with('0') && !body.starts_with("0."))
        && t.parse::<f64>().is_ok_and(f64::is_finite)
}

fn digits(s: &[u8], n: usize) -> bool {
    s.len() >= n && s[..n].iter().all(u8::is_ascii_digit)
}

fn time_kind(t: &str) -> Option<Kind> {
    let b = t.as_bytes();
    if !(digits(b, 4)
        && b.get(4) == Some(&b'-')
        && digits(&b[5..], 2)
        && b.get(7) == Some(&b'-')
        && digits(&b[8..], 2))
    {
        return None;
    }
    if b.len() == 10 {
        return Some(Kind::Date);
    }
    let rest = &b[10..];
    if !(matches!(rest.first(), Some(b' ' | b'T'))
        && digits(&rest[1..], 2)
        && rest.get(3) == Some(&b':')
        && digits(&rest[4..], 2))
    {
        return None;
    }
    let mut i = 6;
    if rest.get(i) == Some(&b':') {
        if !digits(&rest[i + 1..], 2) {
            return None;
        }
        i += 3;
        if rest.get(i) == Some(&b'.') {
            i += 1;
            while rest.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    let zone = &rest[i..];
    if zone.is_empty() {
        Some(Kind::Timestamp)
    } else if zone == b"Z"
        || zone == b"z"
        || (matches!(zone[0], b'+' | b'-')
            && zone[1..].iter().all(|&c| c.is_ascii_digit() || c == b':')
            && zone.len() >= 3)
    {
        Some(Kind::TimestampTz)
    } else {
        None
    }
}

/// The narrowest kind holding both.
fn widen(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        _ if a == b => a,
        (Integer, Real) | (Real, Integer) => Real,
        (Date, Timestamp) | (Timestamp, Date) => Timestamp,
        (TimestampTz, Timestamp | Date) | (Timestamp | Date, TimestampTz) => TimestampTz,
        _ => Text,
    }
}

/// One kind per column over the sampled rows (NULLs ignored; a column of
/// only NULLs is text).
pub fn infer(ncols: usize, rows: &[Vec<Option<String>>]) -> Vec<Kind> {
    let mut kinds: Vec<Option<Kind>> = vec![None; ncols];
    for row in rows {
        for (k, v) in kinds.iter_mut().zip(row) {
            if let Some(v) = v {
                if *k == Some(Kind::Text) {
                    continue;
                }
                let this = kind_of(v);
                *k = Some(k.map_or(this, |k| widen(k, this)));
            }
        }
    }
    kinds.into_iter().map(|k| k.unwrap_or(Kind::Text)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of("42"), Kind::Integer);
        assert_eq!(kind_of("-7"), Kind::Integer);
        assert_eq!(kind_of("007"), Kind::Text);
        assert_eq!(kind_of("99999999999999999999"), Kind::Real);
        assert_eq!(kind_of("3.5"), Kind::Real);
        assert_eq!(kind_of("0.5"), Kind::Real);
        assert_eq!(kind_of("1e9"), Kind::Real);
        assert_eq!(kind_of("inf"), Kind::Text);
        assert_eq!(kind_of("NaN"), Kind::Text);
        assert_eq!(kind_of("TRUE"), Kind::Boolean);
        assert_eq!(kind_of("2024-02-29"), Kind::Date);
        assert_eq!(kind_of("2024-02-29 10:11:12"), Kind::Timestamp);
        assert_eq!(kind_of("2024-02-29T10:11:12.123Z"), Kind::TimestampTz);
        assert_eq!(kind_of("2024-02-29T10:11+02:00"), Kind::TimestampTz);
        assert_eq!(kind_of("2024-02-29 soon"), Kind::Text);
        assert_eq!(kind_of("héllo"), Kind::Text);
    }

    #[test]
    fn columns_widen() {
        let s = |v: &str| Some(v.to_string());
        let rows = vec![
            vec![s("1"), s("1"), s("2024-01-01"), None, s("x")],
            vec![s("2"), s("1.5"), s("2024-01-01 00:00:00"), None, s("3")],
        ];
        assert_eq!(
            infer(5, &rows),
            [
                Kind::Integer,
                Kind::Real,
                Kind::Timestamp,
                Kind::Text,
                Kind::Text
            ]
        );
    }
}
