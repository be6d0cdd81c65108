//! The one error type: what we were doing, and what PostgreSQL said.

use std::fmt;

/// A queue operation failed. The message names what was being done.
#[derive(Debug)]
pub struct Error {
    message: String,
    source: Option<postgres::Error>,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            source: None,
        }
    }

    /// A mapper for `map_err`: "cannot {what}: {what PostgreSQL said}".
    pub(crate) fn db(what: &str) -> impl FnOnce(postgres::Error) -> Error + '_ {
        move |e| {
            let said = match e.as_db_error() {
                Some(db) => {
                    let mut m = db.message().to_string();
                    if let Some(d) = db.detail() {
                        m.push_str(&format!(" ({d})"));
                    }
                    if db.code().code() == "42P01" {
                        m.push_str(" (run `brigade queue init`, or Queue::migrate, first)");
                    }
                    m
                }
                None => e.to_string(),
            };
            Error {
                message: format!("cannot {what}: {said}"),
                source: Some(e),
            }
        }
    }

    /// Whether the connection was lost or refused (worth reconnecting),
    /// as opposed to a refused statement.
    pub fn is_connection(&self) -> bool {
        match &self.source {
            Some(e) => {
                e.is_closed()
                    || e.as_db_error().is_none_or(|d| {
                        let c = d.code().code();
                        c.starts_with("08") || c.starts_with("57P")
                    })
            }
            None => false,
        }
    }

    /// Whether PostgreSQL refused the statement for a unique violation.
    pub fn is_unique_violation(&self) -> bool {
        self.source
            .as_ref()
            .and_then(|e| e.as_db_error())
            .is_some_and(|d| d.code().code() == "23505")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
