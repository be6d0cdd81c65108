//! What every job yields: an [`Outcome`], its value or the [`Failure`] that explains why there is none.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::InitError;
use crate::guard::drop_quietly;

/// The one outcome of one accepted job.
///
/// Every job the pool accepts yields exactly one `Outcome` on the
/// [`Results`](crate::Results) side, whatever happens to it: it ran and
/// returned, it failed, it panicked, it ran past its timeout, or it was
/// cancelled before it started. The job itself comes back inside, so the
/// caller can always tell which job this was, and retry or record it.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, Failure};
///
/// let results = Builder::new()
///     .workers(2)
///     .run(1..=4u32, |n: &u32, _ctx| if n % 2 == 0 { Ok(n * 10) } else { Err("odd") });
/// let mut outcomes: Vec<_> = results.collect();
/// outcomes.sort_by_key(|o| o.seq);
/// assert_eq!(outcomes[0].job, 1);
/// assert!(matches!(outcomes[0].result, Err(Failure::Error("odd"))));
/// assert_eq!(outcomes[1].result, Ok(20));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome<J, T, E> {
    /// The job's submission sequence number: 0 for the first job accepted, then 1, 2, ...
    /// Follow-up jobs take numbers from the same sequence.
    pub seq: u64,
    /// The job itself, handed back.
    pub job: J,
    /// The worker that took the job; `None` if no worker took it (it was
    /// cancelled in the queue or in a worker's batch before it started).
    pub worker: Option<usize>,
    /// How many times the job was started (0 if never; more than 1 after retries).
    pub attempts: u32,
    /// Time from acceptance into the queue to the start of the first attempt
    /// (zero with statistics off, and for jobs that never started).
    pub queue_wait: Duration,
    /// Time spent running, all attempts together, without the backoff waits
    /// between them (zero with statistics off).
    pub run_time: Duration,
    /// The job's value, or why there is none.
    pub result: Result<T, Failure<E>>,
}

impl<J, T, E> Outcome<J, T, E> {
    /// An outcome built by hand, for tests of code that consumes outcomes and
    /// for other backends that report the same kinds: no worker, no attempts,
    /// zero times. Set the public fields to change them.
    ///
    /// # Examples
    ///
    /// ```
    /// use brigade::{Failure, Outcome};
    /// let mut o: Outcome<&str, u32, String> = Outcome::new(7, "job", Err(Failure::TimedOut));
    /// o.attempts = 1;
    /// assert_eq!((o.seq, o.job, o.attempts), (7, "job", 1));
    /// assert!(!o.is_ok());
    /// ```
    pub fn new(seq: u64, job: J, result: Result<T, Failure<E>>) -> Self {
        Outcome {
            seq,
            job,
            worker: None,
            attempts: 0,
            queue_wait: Duration::ZERO,
            run_time: Duration::ZERO,
            result,
        }
    }

    /// Whether the job produced a value.
    ///
    /// # Examples
    ///
    /// ```
    /// let o: Vec<_> = brigade::Builder::new().run(0..1u8, |_: &u8, _| Ok::<_, ()>(1)).collect();
    /// assert!(o[0].is_ok());
    /// ```
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Why a job has no value.
///
/// New kinds may be added: match with a `_` arm.
///
/// # Examples
///
/// ```
/// use brigade::{Failure, Panic};
/// let f: Failure<&str> = Failure::Panicked(Panic::new(Box::new("boom")));
/// assert_eq!(f.to_string(), "panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Failure<E> {
    /// The worker function returned this error (after any retries).
    Error(E),
    /// The worker function panicked; the [`Panic`] keeps its message and payload.
    Panicked(Panic),
    /// The job was still running when its attempt's deadline passed (see
    /// [`Builder::timeout`](crate::Builder::timeout)); its value, if any, was dropped.
    TimedOut,
    /// The job was never started: the pool was cancelled first. The job is
    /// handed back intact in [`Outcome::job`].
    Cancelled,
    /// The worker's state could not be built (see
    /// [`Builder::state`](crate::Builder::state)), so the job could not run.
    Init(InitError),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "{e}"),
            Failure::Panicked(p) => write!(f, "panicked: {p}"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::Cancelled => f.write_str("cancelled before it started"),
            Failure::Init(e) => write!(f, "{e}"),
        }
    }
}

impl<E: Error + 'static> Error for Failure<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Failure::Error(e) => Some(e),
            Failure::Init(e) => Some(e),
            _ => None,
        }
    }
}

/// A caught panic: its message, and its payload for [`resume`](Panic::resume)
/// or [`into_payload`](Panic::into_payload) and `downcast`, as with
/// `std::thread::JoinHandle::join`.
///
/// It is `Send` and `Sync` whatever the payload. Two panics are equal when
/// their messages are. A clone carries the message, not the payload: its
/// [`into_payload`](Panic::into_payload) gives the message as a `String`.
///
/// # Examples
///
/// ```
/// use brigade::{Builder, Failure};
///
/// #[derive(Debug)]
/// struct Code(u8);
/// let o: Vec<_> = Builder::new()
///     .run(0..1u8, |_: &u8, _| -> Result<(), ()> { std::panic::panic_any(Code(7)) })
///     .collect();
/// # let _ = std::panic::take_hook();
/// let Err(Failure::Panicked(p)) = &o[0].result else { panic!() };
/// assert_eq!(p.message(), "panic with a non-string payload");
/// let Err(Failure::Panicked(p)) = o.into_iter().next().unwrap().result else { panic!() };
/// assert_eq!(p.into_payload().downcast::<Code>().unwrap().0, 7);
/// ```
pub struct Panic {
    message: String,
    // A payload need not be `Sync`; behind a mutex it is only ever touched by
    // the one owner, and the whole `Panic` stays `Sync`.
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Panic {
    /// Wraps a panic's payload, as `std::panic::catch_unwind` returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = brigade::Panic::new(Box::new(format!("at {}", 3)));
    /// assert_eq!(p.message(), "at 3");
    /// ```
    pub fn new(payload: Box<dyn Any + Send>) -> Self {
        Panic {
            message: message_of(&*payload),
            payload: Mutex::new(Some(payload)),
        }
    }

    /// The panic's message: the payload if it is a string, or a placeholder.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(brigade::Panic::new(Box::new("boom")).message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The payload, to `downcast` or to pass to `std::panic::resume_unwind`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = brigade::Panic::new(Box::new(42u32));
    /// assert_eq!(*p.into_payload().downcast::<u32>().unwrap(), 42);
    /// ```
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        let taken = match self.payload.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        taken.unwrap_or_else(|| Box::new(self.message.clone()))
    }

    /// Raises the panic again on this thread, with its original payload.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = brigade::Panic::new(Box::new("again"));
    /// let caught = std::panic::catch_unwind(move || p.resume()).unwrap_err();
    /// assert_eq!(*caught.downcast::<&str>().unwrap(), "again");
    /// ```
    pub fn resume(self) -> ! {
        std::panic::resume_unwind(self.into_payload())
    }
}

impl From<&str> for Panic {
    /// A panic with this message (and the message as its payload), as
    /// `panic!("{message}")` would give: for tests, and for backends that
    /// learn of a panic as text.
    fn from(message: &str) -> Self {
        Panic::new(Box::new(message.to_string()))
    }
}

impl From<String> for Panic {
    /// See `From<&str>`.
    fn from(message: String) -> Self {
        Panic::new(Box::new(message))
    }
}

impl Drop for Panic {
    fn drop(&mut self) {
        // A payload is user data: its Drop may panic too.
        let payload = match self.payload.get_mut() {
            Ok(p) => p.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop_quietly(payload);
    }
}

impl Clone for Panic {
    fn clone(&self) -> Self {
        Panic {
            message: self.message.clone(),
            payload: Mutex::new(None),
        }
    }
}

impl PartialEq for Panic {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Panic").field(&self.message).finish()
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Turns a panic's payload into its message.
pub(crate) fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
