//! Statistics: counters and latency percentiles, cheap enough to leave on.
//!
//! Counters live beside the queue under the pool's one lock, which a worker
//! takes once per batch of jobs anyway, so they cost an add each. Latencies go
//! into log-linear histograms (8 sub-buckets per power of two: at most 12.5%
//! error) updated in the same critical section.

use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 64 * SUB;

/// A log-linear histogram of nanoseconds.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let sub = (v >> (msb - SUB_BITS)) as usize & (SUB - 1);
        ((msb - SUB_BITS + 1) as usize) * SUB + sub
    }

    /// The largest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = (i / SUB) as u32 - 1;
        let sub = (i % SUB) as u64;
        (((SUB as u64) | sub) << shift) + ((1u64 << shift) - 1)
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let v = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub(crate) fn percentiles(&self) -> Percentiles {
        let at = |q: f64| -> Duration {
            if self.total == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * self.total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, c) in self.counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(Self::upper(i).min(self.max));
                }
            }
            Duration::from_nanos(self.max)
        };
        Percentiles {
            count: self.total,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_nanos(self.max),
        }
    }
}

/// Latency percentiles of one measure (queue wait or run time).
///
/// Values are upper bounds of histogram buckets, within 12.5% of the truth;
/// `max` is exact. All zero when statistics are off or nothing ran yet.
///
/// # Examples
///
/// ```
/// let p = brigade::Percentiles::default();
/// assert_eq!(p.count, 0);
/// assert!(p.p50 <= p.p99 && p.p99 <= p.max);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Percentiles {
    /// How many values were recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The largest value seen.
    pub max: Duration,
}

/// A snapshot of the pool's counters and latencies.
///
/// Every accepted job is counted in `submitted`; at any moment
/// `submitted = queued + running + succeeded + failed + panicked + timed_out + cancelled`.
///
/// # Examples
///
/// ```
/// use brigade::Builder;
///
/// let (jobs, results) = Builder::new().workers(2).build(|n: &u32, _ctx| Ok::<_, ()>(*n)).unwrap();
/// let pool = jobs.pool();
/// for n in 0..10 { jobs.send(n).unwrap(); }
/// drop(jobs);
/// assert_eq!(results.count(), 10);
/// let s = pool.stats();
/// assert_eq!((s.submitted, s.succeeded), (10, 10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Jobs accepted, follow-up jobs included.
    pub submitted: u64,
    /// Jobs not started yet: in the queue, or in a worker's batch.
    pub queued: u64,
    /// Jobs started whose outcome is not yet delivered.
    pub running: u64,
    /// Outcomes with a value.
    pub succeeded: u64,
    /// Outcomes with the worker's error ([`Failure::Error`](crate::Failure::Error) or
    /// [`Failure::Init`](crate::Failure::Init)).
    pub failed: u64,
    /// Outcomes of panicked jobs.
    pub panicked: u64,
    /// Outcomes of jobs that ran past their deadline.
    pub timed_out: u64,
    /// Outcomes of jobs cancelled before they started.
    pub cancelled: u64,
    /// Extra attempts made by the retry policy (not jobs: one job retried twice counts 2).
    pub retried: u64,
    /// Workers in the crew now. After [`Pool::resize`](crate::Pool::resize)
    /// down, the workers above the new size leave once their current jobs
    /// are done; after the pool finishes, they all leave.
    pub workers: usize,
    /// The number of workers the pool is sized to ([`Builder::workers`](crate::Builder::workers),
    /// then [`Pool::resize`](crate::Pool::resize)).
    pub target_workers: usize,
    /// Time from acceptance into the queue to the start of the first attempt,
    /// over the jobs that started.
    pub queue_wait: Percentiles,
    /// Time running, per job that started, all attempts together, without
    /// the backoff waits between them.
    pub run_time: Percentiles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX / 3]) {
            let i = Histogram::index(v);
            assert!(i >= last || v < 100_000, "index not monotonic at {v}");
            last = i;
            let up = Histogram::upper(i);
            assert!(up >= v, "upper({i})={up} < {v}");
            assert!(
                up as f64 <= v as f64 * 1.125 + 1.0,
                "bucket of {v} too wide: {up}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(Duration::from_micros(v));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.max, Duration::from_micros(1000));
        let near = |d: Duration, want: u64| {
            let us = d.as_secs_f64() * 1e6;
            assert!(
                us >= want as f64 && us <= want as f64 * 1.13,
                "{us} vs {want}"
            );
        };
        near(p.p50, 500);
        near(p.p90, 900);
        near(p.p99, 990);
    }
}
