//! Stops the process groups of jobs: past their --timeout, on `--halt now`,
//! and all of them at once on a hard stop. A job is stopped with the
//! --termseq signals (TERM first, so that it can clean up, then KILL).
//!
//! A relative timeout (`--timeout 300%`) is a multiple of the median run
//! time of the jobs that succeeded so far. Each success moves the median, and
//! with it the deadline of every job still running, as in GNU parallel.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::args::{TermSeq, Timeout};

/// The median of many durations, within 1%, in constant memory: a count per
/// bucket, the buckets 1% wide on a log scale from 1 us to over a century.
struct Median {
    counts: Vec<u64>,
    total: u64,
}

/// The ratio between the bounds of a bucket.
const BUCKET_RATIO: f64 = 1.01;
/// Enough buckets for 1.01^4000 us, far past any run time.
const BUCKETS: usize = 4000;

impl Median {
    fn new() -> Self {
        Median {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }

    fn add(&mut self, d: Duration) {
        let us = d.as_micros().max(1) as f64;
        let b = (us.ln() / BUCKET_RATIO.ln()) as usize;
        self.counts[b.min(BUCKETS - 1)] += 1;
        self.total += 1;
    }

    fn get(&self) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let half = self.total.div_ceil(2);
        let mut seen = 0;
        let b = self
            .counts
            .iter()
            .position(|&c| {
                seen += c;
                seen >= half
            })
            .expect("the counts add up to the total");
        // The middle of the bucket (on the log scale).
        Some(Duration::from_secs_f64(
            BUCKET_RATIO.powf(b as f64 + 0.5) / 1e6,
        ))
    }
}

struct Entry {
    pgid: i32,
    started: Instant,
    /// When the next step of the sequence is due.
    due: Option<Instant>,
    /// The next step of the sequence.
    step: usize,
    /// Whether the sequence was started (the job was stopped by us).
    stopped: bool,
}

struct State {
    next_id: u64,
    running: HashMap<u64, Entry>,
    /// The run times of the jobs that succeeded (kept for a relative timeout only).
    median: Median,
}

/// The watcher thread and the jobs it watches.
pub struct Killer {
    state: Mutex<State>,
    cv: Condvar,
    seq: TermSeq,
    timeout: Option<Timeout>,
}

impl Killer {
    /// Starts the watcher thread.
    pub fn start(seq: TermSeq, timeout: Option<Timeout>) -> std::io::Result<Arc<Killer>> {
        let k = Arc::new(Killer {
            state: Mutex::new(State {
                next_id: 0,
                running: HashMap::new(),
                median: Median::new(),
            }),
            cv: Condvar::new(),
            seq,
            timeout,
        });
        let k2 = k.clone();
        std::thread::Builder::new()
            .name("brigade-killer".into())
            .spawn(move || k2.watch())?;
        Ok(k)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When a job started at `started` is due to be stopped, if ever.
    fn deadline(&self, median: &Median, started: Instant) -> Option<Instant> {
        match self.timeout? {
            Timeout::After(t) => Some(started + t),
            Timeout::OfMedian(k) => median
                .get()
                .and_then(|m| Duration::try_from_secs_f64(m.as_secs_f64() * k).ok())
                .and_then(|t| started.checked_add(t)),
        }
    }

    /// Watches a process group started at `started`, to be stopped past the timeout.
    pub fn register(&self, pgid: i32, started: Instant) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let deadline = self.deadline(&st.median, started);
        st.running.insert(
            id,
            Entry {
                pgid,
                started,
                due: deadline,
                step: 0,
                stopped: false,
            },
        );
        if deadline.is_some() {
            self.cv.notify_one();
        }
        id
    }

    /// The job's process exited; returns whether it was stopped by us.
    pub fn unregister(&self, id: u64) -> bool {
        self.lock().running.remove(&id).is_some_and(|e| e.stopped)
    }

    /// A job succeeded after running `took`: with a relative timeout, the
    /// median moves, and so does the deadline of every job still running.
    pub fn succeeded(&self, took: Duration) {
        if !matches!(self.timeout, Some(Timeout::OfMedian(_))) {
            return;
        }
        let mut st = self.lock();
        st.median.add(took);
        let State {
            running, median, ..
        } = &mut *st;
        for e in running.values_mut().filter(|e| !e.stopped) {
            e.due = self.deadline(median, e.started);
        }
        self.cv.notify_one();
    }

    /// Starts the stop sequence for every running job now (`--halt now`).
    pub fn stop_all(&self) {
        let now = Instant::now();
        for e in self.lock().running.values_mut() {
            if !e.stopped {
                e.due = Some(now);
            }
        }
        self.cv.notify_one();
    }

    /// Kills every running job's process group at once (a hard stop).
    pub fn kill_all(&self) {
        for e in self.lock().running.values() {
            let _ = killpg(Pid::from_raw(e.pgid), Signal::SIGKILL);
        }
    }

    fn watch(&self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for e in st.running.values_mut() {
                let Some(due) = e.due else { continue };
                if due <= now {
                    match self.seq.0.get(e.step) {
                        Some((sig, wait)) => {
                            e.stopped = true;
                            let _ = killpg(Pid::from_raw(e.pgid), *sig);
                            e.step += 1;
                            e.due = Some(now + *wait);
                        }
                        None => {
                            // The sequence is over and the group lives on: KILL it.
                            let _ = killpg(Pid::from_raw(e.pgid), Signal::SIGKILL);
                            e.due = None;
                        }
                    }
                }
                if let Some(d) = e.due {
                    next = Some(next.map_or(d, |n: Instant| n.min(d)));
                }
            }
            st = match next {
                Some(n) => {
                    self.cv
                        .wait_timeout(st, n.saturating_duration_since(Instant::now()))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_within_one_percent() {
        let mut m = Median::new();
        assert_eq!(m.get(), None);
        for ms in [10, 1000, 20, 30, 5000] {
            m.add(Duration::from_millis(ms));
        }
        let got = m.get().unwrap().as_secs_f64();
        assert!((got - 0.030).abs() < 0.030 * 0.011, "{got}");
        // Extremes land in the first and last buckets instead of overflowing.
        m.add(Duration::ZERO);
        m.add(Duration::MAX);
        let got = m.get().unwrap().as_secs_f64();
        assert!((got - 0.030).abs() < 0.030 * 0.011, "{got}");
    }
}
