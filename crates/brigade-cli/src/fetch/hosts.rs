//! Per-host politeness: how many requests one host has in flight, when the
//! next may start (--delay, Crawl-delay, Retry-After), and its robots.txt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use texting_robots::Robot;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// One host (scheme, host, port).
pub struct Host {
    slots: Semaphore,
    pace: Mutex<Pace>,
    /// Its robots.txt, fetched on first use when robots are obeyed; `None`
    /// when there is none (or it could not be had): everything is allowed.
    pub robots: OnceCell<Option<Robot>>,
}

struct Pace {
    /// Least time between two request starts.
    delay: Duration,
    /// The earliest the next request may start.
    next: Instant,
}

/// A request's right to go to a host; dropping it frees the slot.
pub struct Turn<'a> {
    _slot: SemaphorePermit<'a>,
}

impl Host {
    fn new(per_host: usize, delay: Duration) -> Host {
        Host {
            slots: Semaphore::new(per_host),
            pace: Mutex::new(Pace {
                delay,
                next: Instant::now(),
            }),
            robots: OnceCell::new(),
        }
    }

    /// Waits for a free slot, then for the host's next start time, and takes it.
    pub async fn turn(&self) -> Turn<'_> {
        let slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let start = {
            let mut p = lock(&self.pace);
            let now = Instant::now();
            let start = p.next.max(now);
            p.next = start + p.delay;
            start
        };
        tokio::time::sleep_until(start).await;
        Turn { _slot: slot }
    }

    /// No request starts before `wait` from now (a Retry-After).
    pub fn pause(&self, wait: Duration) {
        let mut p = lock(&self.pace);
        p.next = p.next.max(Instant::now() + wait);
    }

    /// Raises the least time between starts (a Crawl-delay); never lowers it.
    pub fn slow_to(&self, delay: Duration) {
        let mut p = lock(&self.pace);
        p.delay = p.delay.max(delay);
    }
}

/// All the hosts seen, by origin (`https://example.com:8443`).
pub struct Hosts {
    map: Mutex<HashMap<String, Arc<Host>>>,
    per_host: usize,
    delay: Duration,
}

impl Hosts {
    /// An empty table; every host gets `per_host` slots and `delay` between starts.
    pub fn new(per_host: usize, delay: Duration) -> Hosts {
        Hosts {
            map: Mutex::new(HashMap::new()),
            per_host,
            delay,
        }
    }

    /// The host of this origin, made on first use.
    pub fn get(&self, origin: &str) -> Arc<Host> {
        let mut m = lock(&self.map);
        if let Some(h) = m.get(origin) {
            return Arc::clone(h);
        }
        let h = Arc::new(Host::new(self.per_host, self.delay));
        m.insert(origin.to_string(), Arc::clone(&h));
        h
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn delay_spaces_starts_and_pause_holds_back() {
        let hosts = Hosts::new(10, Duration::from_secs(1));
        let h = hosts.get("http://a");
        let t0 = Instant::now();
        drop(h.turn().await);
        drop(h.turn().await);
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        h.pause(Duration::from_secs(5));
        drop(h.turn().await);
        assert!(t0.elapsed() >= Duration::from_secs(6));
        // Another host is not slowed.
        let t1 = Instant::now();
        drop(hosts.get("http://b").turn().await);
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }
}
