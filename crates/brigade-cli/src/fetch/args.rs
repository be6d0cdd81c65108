//! The command line of `brigade fetch`, and its validation into `Settings`.

use std::path::PathBuf;
use std::time::Duration;

use crate::run::RunArgs;
use crate::units::{parse_bytes, parse_duration};

/// Fetch URLs concurrently and print one JSON record per input: status,
/// title, size, timing, redirect chain, or the error
///
/// URLs come from the arguments, from -a FILE, or from stdin (one per line;
/// blank lines are skipped; a URL without a scheme gets http://). Every input
/// gets exactly one JSONL record on stdout, a failed fetch included; the
/// field names are httpx's: input, url, final_url, status_code, title,
/// content_length, content_type, elapsed_ms, attempts, chain_status_codes,
/// error, failed. `failed` is true when no HTTP answer was had (a bad URL, an
/// unsupported scheme, DNS, a refused or reset connection, TLS, a timeout, a
/// redirect loop, robots.txt); an HTTP 404 or 500 is an answer, not a failure.
///
/// Politeness: at most -j requests in flight in all, at most --per-host to
/// one host (scheme, host and port), request starts to one host at least
/// --delay apart, and --rate starts per second in all. A host that answers
/// 429 or 503 with Retry-After (seconds or an HTTP date) gets no request for
/// that long, capped at --max-delay; the other hosts are not slowed. With
/// --robots (on by default with --crawl), robots.txt is fetched once per host,
/// every hop of a redirect is checked against it, and its Crawl-delay raises
/// the host's delay, capped at --max-delay.
///
/// Retries (--retries): on network errors and timeouts, and on 429, 500, 502,
/// 503 and 504, with exponential backoff and jitter (and at least the
/// Retry-After); never on other 4xx. --timeout bounds each attempt, redirects
/// and body included.
///
/// Bodies: at most --max-body bytes are read (the record says truncated);
/// text is decoded by its charset (Content-Type, else <meta charset>, else
/// UTF-8; bytes that do not decode are replaced and the record says so).
/// --save DIR writes each body to DIR/HOST/PATH, atomically, with unsafe
/// characters replaced.
///
/// Crawl mode (--crawl): links found in fetched pages are fetched too, up to
/// --depth links away from an input, on the inputs' hosts (or within
/// --allow-domain), at most --max-pages pages; URLs are normalised (no
/// fragment, default port dropped, dot segments resolved) and fetched once.
/// At most --frontier links wait at once; links past that bound or past
/// --max-pages are counted in the summary, not kept.
///
/// --resume FILE: each input whose record was written to stdout is appended
/// to FILE; a rerun with the same FILE skips exactly those inputs, so after
/// Ctrl-C (or kill -9) and a rerun every input has one record.
///
/// Exit codes: 0 every fetch got an answer, 1 some failed, 2 bad usage,
/// 130 interrupted (Ctrl-C once: no new fetches, the running ones finish;
/// twice: stop now).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    brigade fetch https://example.com https://example.org\n  \
    brigade fetch -a urls.txt -j 200 --per-host 2 --retries 3 --resume done.txt > out.jsonl\n  \
    brigade fetch --crawl --depth 3 --max-pages 500 --save site/ https://example.com/\n  \
    brigade fetch --extract links --extract 'css:h1' https://example.com | jq .links")]
pub struct Args {
    /// URLs to fetch [default: read from stdin, one per line]
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read URLs from FILE, one per line (after any URL arguments)
    #[arg(short = 'a', long = "input-file", value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Requests in flight to one host (scheme, host and port) at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = positive)]
    pub per_host: usize,
    /// Least time between two request starts to the same host, e.g. 500ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Cap on Crawl-delay and Retry-After waits
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub max_delay: Duration,
    /// Time limit for a TCP (and TLS) connection
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Redirects followed before giving up
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_redirects: usize,
    /// Most bytes read of a body, e.g. 512KiB, 10MiB; the rest is not read
    #[arg(long, value_name = "SIZE", default_value = "10MiB", value_parser = parse_bytes)]
    pub max_body: u64,
    /// What to add to the record: links, or css:SELECTOR (the texts of matching elements); repeatable. The title is always there
    #[arg(long, value_name = "WHAT", value_parser = parse_extract)]
    pub extract: Vec<Extract>,
    /// Save each body under DIR/HOST/PATH (atomically; unsafe characters replaced)
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Obey robots.txt (Disallow and Crawl-delay); on by default with --crawl
    #[arg(long, overrides_with = "no_robots")]
    pub robots: bool,
    /// Do not read robots.txt, even with --crawl
    #[arg(long)]
    pub no_robots: bool,
    /// The User-Agent header, also the name robots.txt rules are matched against
    #[arg(long, value_name = "TEXT", default_value = concat!("brigade-fetch/", env!("CARGO_PKG_VERSION")))]
    pub user_agent: String,
    /// Accept any TLS certificate (for test servers)
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file too
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Append each finished input to FILE; skip the inputs already in it
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Follow the links of fetched pages
    #[arg(long)]
    pub crawl: bool,
    /// With --crawl: how many links away from an input to go
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub depth: u32,
    /// With --crawl: stay on each input's host (the default unless --allow-domain)
    #[arg(long)]
    pub same_host: bool,
    /// With --crawl: follow links to DOMAIN and its subdomains; repeatable
    #[arg(long, value_name = "DOMAIN")]
    pub allow_domain: Vec<String>,
    /// With --crawl: fetch at most N pages in all, inputs included
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_pages: u64,
    /// With --crawl: at most N found links wait to be fetched; more are counted and dropped
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = positive)]
    pub frontier: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

/// A field to add to each record.
#[derive(Debug, Clone)]
pub enum Extract {
    /// The page's `<title>`.
    Title,
    /// The page's links, absolute.
    Links,
    /// The texts of the elements a CSS selector matches.
    Css(String),
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a number")),
    }
}

fn parse_extract(text: &str) -> Result<Extract, String> {
    match text {
        "title" => Ok(Extract::Title),
        "links" => Ok(Extract::Links),
        _ => match text.strip_prefix("css:") {
            Some(sel) => match scraper::Selector::parse(sel) {
                Ok(_) => Ok(Extract::Css(sel.to_string())),
                // scraper's own message asks to report a bug; say what is wrong instead.
                Err(_) => Err(format!(
                    "'{sel}' is not a valid CSS selector (try css:h1 or 'css:div.price > span')"
                )),
            },
            None => Err(format!("'{text}': expected title, links or css:SELECTOR")),
        },
    }
}

impl Args {
    /// Whether robots.txt is obeyed.
    pub fn obey_robots(&self) -> bool {
        !self.no_robots && (self.robots || self.crawl)
    }

    /// The fields to extract besides the title.
    pub fn extracts(&self) -> Vec<Extract> {
        self.extract.clone()
    }

    /// Refuses combinations that make no sense.
    pub fn check(&self) -> Result<(), String> {
        if self.resume.is_some() && self.crawl {
            return Err("--resume is for lists of URLs; it cannot be combined with --crawl".into());
        }
        if !self.crawl && (self.same_host || !self.allow_domain.is_empty()) {
            return Err("--same-host and --allow-domain only apply with --crawl".into());
        }
        if let Some(t) = self.run.timeout {
            if t.is_zero() {
                return Err("--timeout must be more than zero".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts() {
        assert!(matches!(parse_extract("title"), Ok(Extract::Title)));
        assert!(matches!(parse_extract("css:h1 > a"), Ok(Extract::Css(s)) if s == "h1 > a"));
        assert!(parse_extract("css:[[[")
            .unwrap_err()
            .contains("not a valid CSS selector"));
        assert!(parse_extract("pictures").is_err());
    }
}
