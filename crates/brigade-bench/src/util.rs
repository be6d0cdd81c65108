//! Shared pieces: result checks, statistics, formatting, the error and target records.

use std::sync::Mutex;

/// Count, wrapping sum and rotated xor of the results: order-independent, so
/// a lost, duplicated or mixed-up result changes it whatever order they come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Check {
    pub count: u64,
    pub sum: u64,
    pub xor: u64,
}

impl Check {
    #[inline]
    pub fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
        self.xor ^= v.rotate_left((v & 63) as u32);
    }

    pub fn merge(&mut self, other: Check) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.xor ^= other.xor;
    }

    /// An error message when `self` is not `expected`: the count first, as that is the usual fault.
    pub fn verify(&self, expected: &Check, what: &str) -> Result<(), String> {
        if self.count != expected.count {
            Err(format!(
                "{what}: {} results, expected {}",
                self.count, expected.count
            ))
        } else if self != expected {
            Err(format!(
                "{what}: {} results as expected but a wrong checksum",
                self.count
            ))
        } else {
            Ok(())
        }
    }
}

/// The no-op job's "work": a trivial function of the job, so results can be checked.
#[inline]
pub fn noop(job: u64) -> u64 {
    job.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
}

/// The check of `noop` over `0..jobs`.
pub fn noop_expected(jobs: u64) -> Check {
    let mut c = Check::default();
    for j in 0..jobs {
        c.add(noop(j));
    }
    c
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Nearest-rank percentile of sorted samples (`q` in 0..=1).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A number with a precision that suits its size.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// "median [min-max]" of one contender's values.
pub fn med_range(v: &[f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let (lo, hi) = min_max(v);
    if v.len() == 1 {
        num(v[0])
    } else {
        format!("{} [{}-{}]", num(median(v)), num(lo), num(hi))
    }
}

/// Ratio of the medians `v / base`, with the range of the per-round ratios.
pub fn ratio(v: &[f64], base: &[f64]) -> String {
    if v.is_empty() || base.is_empty() {
        return "n/a".into();
    }
    let m = median(v) / median(base);
    let per: Vec<f64> = v.iter().zip(base).map(|(a, b)| a / b).collect();
    let (lo, hi) = min_max(&per);
    if per.len() <= 1 {
        format!("{m:.2}x")
    } else {
        format!("{m:.2}x [{lo:.2}-{hi:.2}]")
    }
}

/// A Markdown table, built row by row.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut s = line(&self.head);
        s.push_str(&line(&vec!["---".to_string(); self.head.len()]));
        for r in &self.rows {
            let mut r = r.clone();
            r.resize(self.head.len(), String::new());
            s.push_str(&line(&r));
        }
        s
    }
}

static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records an error: the run goes on, and exits non-zero at the end.
pub fn fail(msg: impl Into<String>) {
    let msg = msg.into();
    eprintln!("\nERROR: {msg}");
    ERRORS.lock().unwrap().push(msg);
}

pub fn errors() -> Vec<String> {
    ERRORS.lock().unwrap().clone()
}

/// One line of the closing targets table.
pub struct Target {
    pub figure: String,
    pub target: String,
    pub measured: String,
    pub verdict: String,
}

static TARGETS: Mutex<Vec<Target>> = Mutex::new(Vec::new());

pub fn target(figure: &str, target: &str, measured: String, verdict: &str) {
    TARGETS.lock().unwrap().push(Target {
        figure: figure.into(),
        target: target.into(),
        measured,
        verdict: verdict.into(),
    });
}

/// "hit" or "miss" from a comparison, or the reason there is no verdict.
pub fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "hit",
        Some(false) => "miss",
        None => "no figure",
    }
}

pub fn take_targets() -> Vec<Target> {
    std::mem::take(&mut *TARGETS.lock().unwrap())
}

/// Why a contender has no figure: missing (a tool not installed, not a fault) or failed (an error).
#[derive(Debug, Clone)]
pub enum Fail {
    Missing(String),
    Error(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail::Error(s)
    }
}

/// What a contender got over the rounds: per round, one value per metric.
#[derive(Debug, Clone)]
pub enum Got {
    Values(Vec<Vec<f64>>),
    Missing(String),
    Failed(String),
}

impl Got {
    /// Metric `k` over the rounds (empty when there are none).
    pub fn metric(&self, k: usize) -> Vec<f64> {
        match self {
            Got::Values(v) => v.iter().map(|r| r[k]).collect(),
            _ => Vec::new(),
        }
    }

    /// The median of metric `k` over the rounds, if there were any.
    pub fn median(&self, k: usize) -> Option<f64> {
        let v = self.metric(k);
        (!v.is_empty()).then(|| median(&v))
    }

    /// The text a cell shows instead of a figure.
    pub fn why(&self) -> Option<String> {
        match self {
            Got::Values(v) if v.is_empty() => Some("no rounds".into()),
            Got::Values(_) => None,
            Got::Missing(m) => Some(m.clone()),
            Got::Failed(e) => Some(format!("ERROR: {e}")),
        }
    }

    /// A row of `n` cells saying why there is no figure (in the first), if there is none.
    pub fn why_row(&self, n: usize) -> Option<Vec<String>> {
        self.why().map(|w| {
            let mut v = vec![String::new(); n];
            v[0] = w;
            v
        })
    }

    pub fn cell(&self, k: usize) -> String {
        self.why().unwrap_or_else(|| med_range(&self.metric(k)))
    }
}

/// Runs every contender once per round, rotating which goes first, after one
/// warm-up round (unless `warmup` is false). A contender that fails or is
/// missing is not run again. `label` names the contender in error messages.
pub fn rounds<C: Copy>(
    contenders: &[C],
    warmup: bool,
    rounds: usize,
    label: impl Fn(C) -> String,
    mut run: impl FnMut(C, bool) -> Result<Vec<f64>, Fail>,
) -> Vec<Got> {
    let mut got: Vec<Got> = contenders.iter().map(|_| Got::Values(Vec::new())).collect();
    let first = usize::from(!warmup);
    for round in first..=rounds {
        for k in 0..contenders.len() {
            let i = (k + round) % contenders.len();
            if !matches!(got[i], Got::Values(_)) {
                continue;
            }
            let c = contenders[i];
            match run(c, round == 0) {
                Ok(v) => {
                    if round > 0 {
                        if let Got::Values(vals) = &mut got[i] {
                            vals.push(v);
                        }
                    }
                }
                Err(Fail::Missing(m)) => got[i] = Got::Missing(m),
                Err(Fail::Error(e)) => {
                    let e = format!("{}: {e}", label(c));
                    fail(e.clone());
                    got[i] = Got::Failed(e);
                }
            }
        }
        eprint!(".");
    }
    got
}

/// CPU time counters: the whole machine's (from /proc/stat) and this
/// process's with its waited-for children (from /proc/self/stat), in ticks.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnap {
    busy: u64,
    steal: u64,
    own: u64,
}

impl CpuSnap {
    pub fn now() -> Option<CpuSnap> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is within user)
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6);
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name: state is field 3; utime..cstime are fields 14-17.
        let rest = own_stat.rsplit_once(')')?.1;
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let own = f.get(11..15)?.iter().sum();
        Some(CpuSnap {
            busy,
            steal: at(7),
            own,
        })
    }

    /// What other processes (and the hypervisor, as steal) took between `self` and `later`,
    /// in cores on average over `secs`.
    pub fn others(&self, later: &CpuSnap, secs: f64) -> String {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let busy = later.busy.saturating_sub(self.busy) as f64;
        let own = later.own.saturating_sub(self.own) as f64;
        let steal = later.steal.saturating_sub(self.steal) as f64;
        let secs = secs.max(1e-3);
        format!(
            "other processes used {:.2} cores on average, steal {:.2} cores",
            ((busy - own) / hz / secs).max(0.0),
            steal / hz / secs
        )
    }
}
