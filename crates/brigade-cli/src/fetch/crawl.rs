//! Crawl mode: which found links become follow-up jobs. Links are normalised
//! (by `page::normalise`), fetched once, kept within scope, --depth and
//! --max-pages, and at most --frontier of them wait at once; the rest are
//! counted, never kept.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use url::Url;

/// One job: an input line, or a link found while crawling.
pub struct Job {
    /// The input as given (a found link for crawled pages).
    pub input: String,
    /// Why the input cannot be fetched at all (it is not UTF-8), if so.
    pub bad: Option<String>,
    /// Links away from an input: 0 for inputs.
    pub depth: u32,
    /// The page the link was found on.
    pub parent: Option<Arc<str>>,
    /// The host of the input this job descends from (for --same-host).
    pub root_host: Option<Arc<str>>,
}

impl Job {
    /// An input line.
    pub fn input(input: String, bad: Option<String>) -> Job {
        let root_host = super::client::parse_input(&input)
            .ok()
            .and_then(|u| u.host_str().map(Arc::from));
        Job {
            input,
            bad,
            depth: 0,
            parent: None,
            root_host,
        }
    }
}

/// What a crawl counted, for the summary.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Counts {
    /// Links found (after normalisation, once per page).
    pub links_found: u64,
    /// Links followed (made follow-up jobs).
    pub followed: u64,
    /// Links already seen.
    pub duplicates: u64,
    /// Links outside --same-host / --allow-domain.
    pub out_of_scope: u64,
    /// Links followed but disallowed by robots.txt (no record is printed for them).
    pub disallowed: u64,
    /// Links not followed because --max-pages was reached.
    pub over_max_pages: u64,
    /// Links not followed because --frontier links were already waiting.
    pub frontier_overflow: u64,
}

/// The crawl's shared state.
pub struct Crawl {
    depth: u32,
    max_pages: u64,
    frontier: usize,
    same_host: bool,
    domains: Vec<String>,
    seen: Mutex<HashSet<String>>,
    pages: AtomicU64,
    waiting: AtomicUsize,
    links_found: AtomicU64,
    followed: AtomicU64,
    duplicates: AtomicU64,
    out_of_scope: AtomicU64,
    disallowed: AtomicU64,
    over_max_pages: AtomicU64,
    frontier_overflow: AtomicU64,
}

/// What to do with a link.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Follow it: make it a job.
    Follow,
    /// Leave it (and it was counted).
    Skip,
}

impl Crawl {
    /// The crawl's bounds and scope. Without --allow-domain, links stay on
    /// their input's host.
    pub fn new(
        depth: u32,
        max_pages: u64,
        frontier: usize,
        same_host: bool,
        domains: &[String],
    ) -> Crawl {
        Crawl {
            depth,
            max_pages,
            frontier,
            same_host: same_host || domains.is_empty(),
            domains: domains
                .iter()
                .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            seen: Mutex::new(HashSet::new()),
            pages: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            links_found: AtomicU64::new(0),
            followed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            out_of_scope: AtomicU64::new(0),
            disallowed: AtomicU64::new(0),
            over_max_pages: AtomicU64::new(0),
            frontier_overflow: AtomicU64::new(0),
        }
    }

    /// An input is about to be sent: it is seen, and it counts as a page.
    pub fn seed(&self, job: &Job) {
        if let Ok(u) = super::client::parse_input(&job.input) {
            if let Some(n) = super::page::normalise(u) {
                lock(&self.seen).insert(n);
            }
        }
        self.pages.fetch_add(1, Ordering::Relaxed);
    }

    /// A follow-up job starts: it no longer waits.
    pub fn started(&self, job: &Job) {
        if job.depth > 0 {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether the links of a page at `depth` may be followed at all.
    pub fn goes_deeper(&self, depth: u32) -> bool {
        depth < self.depth
    }

    /// Decides on one normalised link found on a page of `job`; on Follow
    /// the link is claimed (seen, counted as a page and as waiting).
    pub fn offer(&self, link: &str, job: &Job) -> Verdict {
        self.links_found.fetch_add(1, Ordering::Relaxed);
        if !self.in_scope(link, job) {
            self.out_of_scope.fetch_add(1, Ordering::Relaxed);
            return Verdict::Skip;
        }
        let mut seen = lock(&self.seen);
        if seen.contains(link) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return Verdict::Skip;
        }
        if self.pages.load(Ordering::Relaxed) >= self.max_pages {
            self.over_max_pages.fetch_add(1, Ordering::Relaxed);
            return Verdict::Skip;
        }
        if self.waiting.load(Ordering::Relaxed) >= self.frontier {
            self.frontier_overflow.fetch_add(1, Ordering::Relaxed);
            return Verdict::Skip;
        }
        seen.insert(link.to_string());
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.followed.fetch_add(1, Ordering::Relaxed);
        Verdict::Follow
    }

    /// A followed link turned out to be disallowed by robots.txt.
    pub fn disallowed(&self) {
        self.disallowed.fetch_add(1, Ordering::Relaxed);
    }

    /// A claimed link that could not be made a job after all (the pool was cancelled).
    pub fn unclaim(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    fn in_scope(&self, link: &str, job: &Job) -> bool {
        let Some(host) = Url::parse(link)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        else {
            return false;
        };
        let same = self.same_host && job.root_host.as_deref() == Some(host.as_str());
        same || self
            .domains
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            links_found: g(&self.links_found),
            followed: g(&self.followed),
            duplicates: g(&self.duplicates),
            out_of_scope: g(&self.out_of_scope),
            disallowed: g(&self.disallowed),
            over_max_pages: g(&self.over_max_pages),
            frontier_overflow: g(&self.frontier_overflow),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_dedup_and_bounds() {
        let c = Crawl::new(2, 4, 2, false, &[]);
        let seed = Job::input("http://a.org/".into(), None);
        c.seed(&seed);
        assert_eq!(
            c.offer("http://a.org/", &seed),
            Verdict::Skip,
            "the seed is seen"
        );
        assert_eq!(
            c.offer("http://b.org/", &seed),
            Verdict::Skip,
            "another host"
        );
        assert_eq!(c.offer("http://a.org/1", &seed), Verdict::Follow);
        assert_eq!(c.offer("http://a.org/1", &seed), Verdict::Skip);
        assert_eq!(c.offer("http://a.org/2", &seed), Verdict::Follow);
        assert_eq!(
            c.offer("http://a.org/3", &seed),
            Verdict::Skip,
            "the frontier is full"
        );
        c.waiting.store(0, Ordering::Relaxed);
        assert_eq!(c.offer("http://a.org/3", &seed), Verdict::Follow);
        assert_eq!(c.offer("http://a.org/4", &seed), Verdict::Skip, "max pages");
        let n = c.counts();
        assert_eq!(
            (n.links_found, n.followed, n.duplicates, n.out_of_scope),
            (8, 3, 2, 1)
        );
        assert_eq!((n.frontier_overflow, n.over_max_pages), (1, 1));

        let d = Crawl::new(1, 100, 100, false, &["b.org".into()]);
        assert_eq!(d.offer("http://x.b.org/", &seed), Verdict::Follow);
        assert_eq!(
            d.offer("http://a.org/z", &seed),
            Verdict::Skip,
            "only --allow-domain"
        );
        assert_eq!(d.offer("http://notb.org/", &seed), Verdict::Skip);
    }
}
