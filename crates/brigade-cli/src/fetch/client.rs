//! Fetching one input: the URL checked, each attempt (redirects followed by
//! hand, so the chain is recorded and robots.txt checked at every hop), the
//! retries, the body read up to its cap, and the record filled in.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use super::args::{Args, Extract};
use super::hosts::{Host, Hosts};
use super::page;

/// One input's record: httpx's field names where it has them.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Record {
    /// The input, as given.
    pub input: String,
    /// The URL asked for (the input parsed and normalised).
    pub url: Option<String>,
    /// The URL that answered, after redirects.
    pub final_url: Option<String>,
    /// The last answer's status.
    pub status_code: Option<u16>,
    /// The page's title.
    pub title: Option<String>,
    /// Bytes of body read (less than the body when truncated).
    pub content_length: Option<u64>,
    /// The Content-Type header.
    pub content_type: Option<String>,
    /// Time from the first attempt's start to the record, in milliseconds.
    pub elapsed_ms: u64,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// The status of every answer of the last attempt, redirects first.
    pub chain_status_codes: Vec<u16>,
    /// Why it failed, or why the answer is incomplete.
    pub error: Option<String>,
    /// True when no HTTP answer was had.
    pub failed: bool,
    /// The body was longer than --max-body and was cut there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The charset the body was decoded from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charset: Option<&'static str>,
    /// Some bytes did not decode in that charset and were replaced.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decode_errors: bool,
    /// With --extract links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// With --extract css:SELECTOR: selector -> texts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub css: Option<serde_json::Map<String, serde_json::Value>>,
    /// With --save: where the body was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<String>,
    /// With --crawl: links away from an input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// With --crawl: the page the link was found on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Set when the fetch never really began, so the record is not printed.
    #[serde(skip)]
    pub skip: Option<Skip>,
}

/// Why a fetch never began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Skip {
    /// Ctrl-C came before its first request was sent.
    NotStarted,
    /// robots.txt disallows it (or a hop of its redirects).
    Disallowed,
}

/// The settings every fetch reads, built once from the arguments.
pub struct Fetcher {
    client: Client,
    hosts: Hosts,
    in_flight: Semaphore,
    user_agent: String,
    robots: bool,
    max_delay: Duration,
    max_redirects: usize,
    max_body: u64,
    retries: u32,
    timeout: Option<Duration>,
    extract: Vec<Extract>,
    crawl: bool,
    save: Option<std::path::PathBuf>,
}

/// What a fetch found, beyond the record: the links to crawl.
pub struct Fetched {
    /// The record.
    pub record: Record,
    /// The page's links, when crawling and the page is HTML.
    pub links: Vec<String>,
}

/// A body read, and the answer it came with.
struct Answer {
    url: Url,
    status: StatusCode,
    content_type: Option<String>,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    truncated: bool,
}

/// Why an attempt got no answer.
struct Miss {
    message: String,
    /// Worth another attempt (a network error, a timeout).
    retry: bool,
    skip: Option<Skip>,
}

impl Miss {
    fn fatal(message: impl Into<String>) -> Miss {
        Miss {
            message: message.into(),
            retry: false,
            skip: None,
        }
    }

    fn skip(message: impl Into<String>, why: Skip) -> Miss {
        Miss {
            skip: Some(why),
            ..Miss::fatal(message)
        }
    }
}

impl Fetcher {
    /// Builds the HTTP client; an unreadable --cacert is an error.
    pub fn new(args: &Args) -> Result<Fetcher, String> {
        let mut b = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(args.connect_timeout)
            .pool_max_idle_per_host(args.per_host)
            .user_agent(args.user_agent.clone())
            .tcp_nodelay(true)
            .danger_accept_invalid_certs(args.insecure);
        if let Some(path) = &args.cacert {
            let pem =
                std::fs::read(path).map_err(|e| format!("--cacert {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("--cacert {}: not PEM certificates: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("--cacert {}: no certificate in it", path.display()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot set up HTTP: {}", chain(&e)))?;
        let workers = args.run.workers.unwrap_or(super::DEFAULT_WORKERS);
        Ok(Fetcher {
            client,
            hosts: Hosts::new(args.per_host, args.delay.unwrap_or_default()),
            in_flight: Semaphore::new(workers),
            user_agent: args.user_agent.clone(),
            robots: args.obey_robots(),
            max_delay: args.max_delay,
            max_redirects: args.max_redirects,
            max_body: args.max_body,
            retries: args.run.retries,
            timeout: args.run.timeout,
            extract: args.extracts(),
            crawl: args.crawl,
            save: args.save.clone(),
        })
    }

    /// Fetches one input, with retries, and fills in its record. Never fails:
    /// a failure is a record with `failed` and `error`.
    pub async fn fetch(&self, input: &str) -> Fetched {
        let started = Instant::now();
        let mut rec = Record {
            input: input.to_string(),
            ..Record::default()
        };
        let mut links = Vec::new();
        match parse_input(input) {
            Err(e) => {
                rec.error = Some(e);
                rec.failed = true;
            }
            Ok(url) => {
                rec.url = Some(url.to_string());
                match self.with_retries(url, &mut rec).await {
                    Ok(answer) => links = self.read(answer, &mut rec).await,
                    Err(m) => {
                        rec.error = Some(m.message);
                        rec.failed = true;
                        rec.skip = m.skip;
                    }
                }
            }
        }
        rec.elapsed_ms = started.elapsed().as_millis() as u64;
        Fetched { record: rec, links }
    }

    async fn with_retries(&self, url: Url, rec: &mut Record) -> Result<Answer, Miss> {
        loop {
            rec.attempts += 1;
            rec.chain_status_codes.clear();
            let attempt = self.attempt(url.clone(), rec);
            let got = match self.timeout {
                Some(t) => tokio::time::timeout(t, attempt).await.unwrap_or_else(|_| {
                    Err(Miss {
                        message: format!("timed out after {} (--timeout)", crate::units::human(t)),
                        retry: true,
                        skip: None,
                    })
                }),
                None => attempt.await,
            };
            let (retry, wait) = match &got {
                Ok(a) => (retryable(a.status), a.retry_after),
                Err(m) => (m.retry, None),
            };
            if !retry || rec.attempts > self.retries {
                return got;
            }
            let backoff = backoff(rec.attempts);
            tokio::time::sleep(wait.map_or(backoff, |w| w.max(backoff))).await;
        }
    }

    /// One attempt: redirects followed, the last answer's body read.
    async fn attempt(&self, mut url: Url, rec: &mut Record) -> Result<Answer, Miss> {
        let mut visited = HashSet::new();
        loop {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Miss::fatal(format!(
                    "redirected to {url}: unsupported scheme '{}'",
                    url.scheme()
                )));
            }
            visited.insert(url.to_string());
            let host = self.hosts.get(&url.origin().ascii_serialization());
            if self.robots && !self.allowed(&host, &url).await {
                return Err(Miss::skip(
                    format!("{url} is disallowed by robots.txt"),
                    Skip::Disallowed,
                ));
            }
            let _turn = host.turn().await;
            let _slot = self.in_flight.acquire().await.expect("never closed");
            if rec.attempts == 1 && visited.len() == 1 && crate::interrupt::interrupted() {
                return Err(Miss::skip(
                    "interrupted before it started",
                    Skip::NotStarted,
                ));
            }
            let resp = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| miss(&e))?;
            let status = resp.status();
            rec.chain_status_codes.push(status.as_u16());
            let retry_after = if matches!(status.as_u16(), 429 | 503) {
                let wait = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
                    .map(|w| w.min(self.max_delay));
                if let Some(w) = wait {
                    host.pause(w);
                }
                wait
            } else {
                None
            };
            if status.is_redirection() {
                if let Some(loc) = resp.headers().get(LOCATION) {
                    let loc = loc.to_str().map_err(|_| {
                        Miss::fatal(format!("{url} redirected to a Location that is not text"))
                    })?;
                    let next = url
                        .join(loc)
                        .map_err(|e| Miss::fatal(format!("{url} redirected to '{loc}': {e}")))?;
                    if visited.contains(next.as_str()) {
                        return Err(Miss::fatal(format!("redirect loop: {url} -> {next}")));
                    }
                    if visited.len() > self.max_redirects {
                        return Err(Miss::fatal(format!(
                            "too many redirects (more than --max-redirects {})",
                            self.max_redirects
                        )));
                    }
                    drop(resp);
                    url = next;
                    continue;
                }
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let declared = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let (body, truncated) = self.body(resp, declared).await?;
            return Ok(Answer {
                url,
                status,
                content_type,
                retry_after,
                body,
                truncated,
            });
        }
    }

    /// Reads a body up to --max-body.
    async fn body(
        &self,
        mut resp: reqwest::Response,
        declared: Option<u64>,
    ) -> Result<(Vec<u8>, bool), Miss> {
        let cap = self.max_body;
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(cap).min(1 << 20) as usize);
        loop {
            match resp.chunk().await {
                Ok(None) => return Ok((body, false)),
                Ok(Some(chunk)) => {
                    let room = (cap - body.len() as u64) as usize;
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        return Ok((body, true));
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(e) => {
                    return Err(Miss {
                        message: format!(
                            "body cut off after {} bytes: {}",
                            body.len(),
                            describe(&e)
                        ),
                        retry: true,
                        skip: None,
                    })
                }
            }
        }
    }

    /// Whether robots.txt lets us fetch `url`; fetches it on the host's first use.
    async fn allowed(&self, host: &Host, url: &Url) -> bool {
        let robot = host
            .robots
            .get_or_init(|| async {
                let robots_url = url.join("/robots.txt").ok()?;
                let fetch = async {
                    let resp = self.client.get(robots_url).send().await.ok()?;
                    if !resp.status().is_success() {
                        return None;
                    }
                    let (body, _) = self.body(resp, None).await.ok()?;
                    Some(body)
                };
                let body = tokio::time::timeout(Duration::from_secs(30), fetch)
                    .await
                    .ok()??;
                let robot = texting_robots::Robot::new(&self.user_agent, &body).ok()?;
                if let Some(secs) = robot.delay {
                    if let Ok(d) = Duration::try_from_secs_f32(secs) {
                        host.slow_to(d.min(self.max_delay));
                    }
                }
                Some(robot)
            })
            .await;
        robot.as_ref().is_none_or(|r| r.allowed(url.as_str()))
    }

    /// Fills the record from an answer: type, size, text, extraction, save.
    /// Returns the page's links when crawling.
    async fn read(&self, a: Answer, rec: &mut Record) -> Vec<String> {
        rec.final_url = Some(a.url.to_string());
        rec.status_code = Some(a.status.as_u16());
        rec.content_length = Some(a.body.len() as u64);
        rec.truncated = a.truncated;
        if a.truncated {
            rec.error = Some(format!(
                "body truncated at --max-body ({} bytes)",
                self.max_body
            ));
        }
        let ct = a.content_type.as_deref();
        rec.content_type = a.content_type.clone();
        let mut links = Vec::new();
        if page::is_text(ct) && !a.body.is_empty() {
            let text = page::decode(ct, &a.body);
            rec.charset = Some(text.charset);
            rec.decode_errors = text.replaced;
            if page::is_html(ct, &a.body) {
                let found = page::extract(&text.text, &a.url, &self.extract, self.crawl);
                rec.title = found.title;
                if self.extract.iter().any(|e| matches!(e, Extract::Links)) {
                    rec.links = Some(found.links.clone());
                }
                if !found.css.is_empty() {
                    rec.css = Some(
                        found
                            .css
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::Value::from(v)))
                            .collect(),
                    );
                }
                if self.crawl {
                    links = found.links;
                }
            }
        }
        if let Some(dir) = &self.save {
            let (dir, url, body) = (dir.clone(), a.url.clone(), a.body);
            let saved = tokio::task::spawn_blocking(move || super::save::save(&dir, &url, &body))
                .await
                .unwrap_or_else(|e| Err(format!("saving panicked: {e}")));
            match saved {
                Ok(path) => rec.saved = Some(path.display().to_string()),
                Err(e) => {
                    let prev = rec.error.take();
                    rec.error = Some(match prev {
                        Some(p) => format!("{p}; {e}"),
                        None => e,
                    });
                }
            }
        }
        links
    }
}

/// Parses an input line into a URL: http or https; a bare host gets http://.
pub fn parse_input(input: &str) -> Result<Url, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("empty input".into());
    }
    let with_scheme = if t.contains("://") {
        t.to_string()
    } else {
        format!("http://{t}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("invalid URL '{t}': {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        s => {
            return Err(format!(
                "unsupported scheme '{s}' in '{t}' (only http and https)"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL '{t}': no host"));
    }
    let mut url = url;
    url.set_fragment(None);
    Ok(url)
}

/// 429, 500, 502, 503 and 504 are worth another attempt; no other status is.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Retry-After: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Exponential backoff from 200 ms, at most 10 s, with full jitter on the upper half.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << attempt.min(10).saturating_sub(1));
    let base = base.min(Duration::from_secs(10));
    let jitter = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 1000;
    base / 2 + base / 2 * jitter as u32 / 1000
}

/// A request error as a short, clear message, and whether to retry.
fn miss(e: &reqwest::Error) -> Miss {
    let retry = !(e.is_builder() || e.is_redirect() || tls_error(e));
    Miss {
        message: describe(e),
        retry,
        skip: None,
    }
}

fn tls_error(e: &reqwest::Error) -> bool {
    let text = chain(e).to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "alert",
        "peer sent",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// Names the kind of network error first, then the underlying causes.
fn describe(e: &reqwest::Error) -> String {
    let causes = chain(e);
    let lower = causes.to_ascii_lowercase();
    let kind = if e.is_timeout() {
        "timed out"
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        "DNS lookup failed"
    } else if lower.contains("connection refused") {
        "connection refused"
    } else if lower.contains("connection reset") {
        "connection reset"
    } else if tls_error(e) {
        "TLS error"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request failed"
    };
    format!("{kind}: {causes}")
}

/// The error's causes, innermost last, without the URL (the record has it).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let mut s = err.to_string();
        if let Some(i) = s.find(" for url (") {
            s.truncate(i);
        }
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        assert_eq!(
            parse_input("example.com/a#b").unwrap().as_str(),
            "http://example.com/a"
        );
        assert!(parse_input("ftp://x.org/")
            .unwrap_err()
            .contains("unsupported scheme 'ftp'"));
        assert!(parse_input("http://exa mple.com")
            .unwrap_err()
            .contains("invalid URL"));
        assert!(parse_input("   ").is_err());
    }

    #[test]
    fn retry_after_both_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn only_some_statuses_retry() {
        for s in [429, 500, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(s).unwrap()));
        }
        for s in [200, 301, 400, 401, 403, 404, 410, 501] {
            assert!(!retryable(StatusCode::from_u16(s).unwrap()));
        }
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
