//! Stops the process groups of jobs: past their --timeout, on `--halt now`,
//! and all of them at once on a hard stop. A job is stopped with the
//! --termseq signals (TERM first, so that it can clean up, then KILL).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::args::TermSeq;

struct Entry {
    pgid: i32,
    /// When the next step of the sequence is due.
    due: Option<Instant>,
    /// The next step of the sequence.
    step: usize,
    /// Whether the sequence was started (the job was stopped by us).
    stopped: bool,
}

#[derive(Default)]
struct State {
    next_id: u64,
    running: HashMap<u64, Entry>,
}

/// The watcher thread and the jobs it watches.
pub struct Killer {
    state: Mutex<State>,
    cv: Condvar,
    seq: TermSeq,
}

impl Killer {
    /// Starts the watcher thread.
    pub fn start(seq: TermSeq) -> std::io::Result<Arc<Killer>> {
        let k = Arc::new(Killer {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            seq,
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

    /// Watches a started process group, to be stopped at `deadline`.
    pub fn register(&self, pgid: i32, deadline: Option<Instant>) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.running.insert(
            id,
            Entry {
                pgid,
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
