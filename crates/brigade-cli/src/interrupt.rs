//! Ctrl-C, SIGTERM and SIGHUP. Once: start no new jobs, let the running ones finish,
//! then report. Twice: stop now.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use brigade::Pool;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static CURRENT: Mutex<Option<Pool>> = Mutex::new(None);
type Hook = Box<dyn Fn() + Send>;
static HARD_STOP: Mutex<Vec<Hook>> = Mutex::new(Vec::new());
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// The progress bar on screen, if any: messages are printed around it, and
/// a hard stop clears it.
pub fn show_progress(bar: Option<indicatif::ProgressBar>) {
    *lock(&BAR) = bar;
}

/// Prints a line on stderr without drawing over the progress bar.
fn say(msg: &str) {
    match lock(&BAR).as_ref() {
        Some(b) => b.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    }
}

/// Starts listening for SIGINT, SIGTERM and SIGHUP (a closed terminal). Call once, early in `main`.
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("brigade-signals".into()).spawn(move || {
        for _ in signals.forever() {
            if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
                say("brigade: interrupted: starting no new jobs, waiting for the running ones (Ctrl-C again to stop now)");
                if let Some(pool) = lock(&CURRENT).as_ref() {
                    pool.cancel();
                }
            } else {
                for hook in lock(&HARD_STOP).iter() {
                    hook();
                }
                if let Some(b) = lock(&BAR).take() {
                    b.finish_and_clear();
                }
                eprintln!("brigade: interrupted twice: stopped");
                std::process::exit(130);
            }
        }
    })?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pool the first signal cancels. If a signal already came, it is cancelled at once.
pub fn watch(pool: &Pool) {
    *lock(&CURRENT) = Some(pool.clone());
    if interrupted() {
        pool.cancel();
    }
}

/// Something to run on the second signal, before exiting (killing children, say).
pub fn on_hard_stop(hook: impl Fn() + Send + 'static) {
    lock(&HARD_STOP).push(Box::new(hook));
}

/// Whether a signal came.
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}
