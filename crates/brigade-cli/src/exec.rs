//! `brigade exec`: run a command once per input, in parallel.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brigade::{Builder, Context, Failure, Outcome};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::interrupt;
use crate::run::{self, exit, Next, RunArgs};
use crate::units::human;

/// Run a command once per input, in parallel (like xargs -P or GNU parallel)
///
/// A practical subset of GNU parallel and `xargs -P`. Inputs come from the
/// arguments after `:::`, or from a file (-a), or from stdin, one per line.
/// In the command, placeholders stand for the input:
///
///   {}    the input               {/}   its last path component
///   {.}   without its extension   {//}  its directory
///   {/.}  basename, no extension  {#}   the job number (1, 2, ...)
///
/// With no placeholder, the input is added as the last argument. Each job's
/// stdout and stderr are printed as one block when it ends, never mixed with
/// another job's lines. Commands run without a shell unless --shell is given.
#[derive(clap::Args, Debug)]
#[command(
    verbatim_doc_comment,
    after_help = "Examples:\n  \
    brigade exec gzip -9 ::: *.log\n  \
    find . -name '*.png' | brigade exec -j 8 convert {} {.}.jpg\n  \
    brigade exec -k --timeout 10s --retries 2 curl -sf {} -a urls.txt\n  \
    brigade exec --shell 'grep -c ERROR {} > {.}.count' ::: *.log\n  \
    brigade exec --dry-run echo {#} {/} ::: a/b.txt c/d.txt"
)]
pub struct Args {
    /// Read inputs from FILE, one per line, instead of stdin
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    arg_file: Option<std::path::PathBuf>,
    /// Print outputs in input order (a bounded reorder window), not completion order
    #[arg(short = 'k', long)]
    keep_order: bool,
    /// Write a line per job to FILE: sequence, start time, run time, exit code, signal, command
    #[arg(long, value_name = "FILE")]
    joblog: Option<std::path::PathBuf>,
    /// Print the commands that would run, and run none
    #[arg(long)]
    dry_run: bool,
    /// Run the command through `sh -c` (placeholders are shell-quoted)
    #[arg(long)]
    shell: bool,
    /// The command and its arguments, then optionally `:::` and the inputs
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
    #[command(flatten)]
    run: RunArgs,
}

/// One piece of a command template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Input,
    NoExt,
    Base,
    Dir,
    BaseNoExt,
    Seq,
}

/// A command line with placeholders, checked once at the start.
#[derive(Debug, Clone)]
struct Template {
    args: Vec<Vec<Piece>>,
    has_placeholder: bool,
    shell: bool,
}

impl Template {
    fn parse(words: &[String], shell: bool) -> Result<Self, String> {
        let mut args = Vec::new();
        let mut has_placeholder = false;
        for (i, w) in words.iter().enumerate() {
            let pieces = parse_word(w).map_err(|p| {
                format!(
                    "unknown placeholder {p} in argument {} '{w}' (known: {{}} {{.}} {{/}} {{//}} {{/.}} {{#}})",
                    i + 1
                )
            })?;
            has_placeholder |= pieces.iter().any(|p| !matches!(p, Piece::Text(_)));
            args.push(pieces);
        }
        Ok(Template {
            args,
            has_placeholder,
            shell,
        })
    }

    /// The argv for one input.
    fn argv(&self, input: &str, seq: u64) -> Vec<String> {
        let value = |p: &Piece| -> String {
            let v = match p {
                Piece::Text(t) => return t.clone(),
                Piece::Input => input.to_string(),
                Piece::NoExt => strip_ext(input).to_string(),
                Piece::Base => base(input).to_string(),
                Piece::Dir => dir(input).to_string(),
                Piece::BaseNoExt => strip_ext(base(input)).to_string(),
                Piece::Seq => seq.to_string(),
            };
            if self.shell {
                shell_quote(&v)
            } else {
                v
            }
        };
        let mut argv: Vec<String> = self
            .args
            .iter()
            .map(|pieces| pieces.iter().map(value).collect())
            .collect();
        if !self.has_placeholder {
            argv.push(if self.shell {
                shell_quote(input)
            } else {
                input.to_string()
            });
        }
        if self.shell {
            vec!["sh".into(), "-c".into(), argv.join(" ")]
        } else {
            argv
        }
    }
}

/// Splits a word into text and placeholders; an unknown placeholder comes back as the error.
fn parse_word(w: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = w;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        // Only braces holding placeholder characters are placeholders; anything
        // else ({print $1}, {a,b}) is left alone as text.
        let looks_like = inner.chars().all(|c| matches!(c, '.' | '/' | '#'))
            || inner.chars().all(|c| c.is_ascii_digit()) && !inner.is_empty();
        if !looks_like {
            text.push_str(&rest[..open + 1]);
            rest = after;
            continue;
        }
        let piece = match inner {
            "" => Piece::Input,
            "." => Piece::NoExt,
            "/" => Piece::Base,
            "//" => Piece::Dir,
            "/." => Piece::BaseNoExt,
            "#" => Piece::Seq,
            _ => return Err(format!("{{{inner}}}")),
        };
        text.push_str(&rest[..open]);
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn base(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) => &t[i + 1..],
        None => t,
    }
}

fn dir(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => "/",
        Some(i) => &t[..i],
        None => ".",
    }
}

fn strip_ext(p: &str) -> &str {
    let b = base(p);
    match b.rfind('.') {
        Some(i) if i > 0 => &p[..p.len() - (b.len() - i)],
        _ => p,
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Kills the process groups of jobs past their deadline, and all of them on a hard stop.
struct Killer {
    state: Mutex<KillerState>,
    cv: Condvar,
}

#[derive(Default)]
struct KillerState {
    next: u64,
    running: HashMap<u64, (i32, Option<Instant>)>,
}

impl Killer {
    fn start() -> Arc<Killer> {
        let k = Arc::new(Killer {
            state: Mutex::new(KillerState::default()),
            cv: Condvar::new(),
        });
        let k2 = k.clone();
        std::thread::Builder::new()
            .name("brigade-killer".into())
            .spawn(move || k2.watch())
            .expect("start the timeout thread");
        k
    }

    fn register(&self, pgid: i32, deadline: Option<Instant>) -> u64 {
        let mut st = self.state.lock().unwrap();
        st.next += 1;
        let id = st.next;
        st.running.insert(id, (pgid, deadline));
        if deadline.is_some() {
            self.cv.notify_one();
        }
        id
    }

    fn unregister(&self, id: u64) {
        self.state.lock().unwrap().running.remove(&id);
    }

    fn kill_all(&self) {
        for (pgid, _) in self.state.lock().unwrap().running.values() {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
    }

    fn watch(&self) {
        let mut st = self.state.lock().unwrap();
        loop {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            let mut expired = Vec::new();
            for (id, (pgid, deadline)) in &st.running {
                match deadline {
                    Some(d) if *d <= now => expired.push((*id, *pgid)),
                    Some(d) => next = Some(next.map_or(*d, |n| n.min(*d))),
                    None => {}
                }
            }
            for (id, pgid) in expired {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                st.running.remove(&id);
            }
            st = match next {
                Some(n) => {
                    self.cv
                        .wait_timeout(st, n.saturating_duration_since(now))
                        .unwrap()
                        .0
                }
                None => self.cv.wait(st).unwrap(),
            };
        }
    }
}

struct Job {
    seq: u64,
    input: String,
}

/// A finished command.
struct Ran {
    output: Output,
    started: SystemTime,
    took: Duration,
}

enum ExecError {
    /// The command could not be started.
    Spawn(String),
    /// It ran and failed.
    Exit(Ran),
}

fn describe(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_one(
    template: &Template,
    killer: &Killer,
    timeout: Option<Duration>,
    job: &Job,
) -> Result<Ran, ExecError> {
    let argv = template.argv(&job.input, job.seq);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| ExecError::Spawn(format!("cannot run '{}': {e}", argv[0])))?;
    let id = killer.register(child.id() as i32, timeout.map(|t| t0 + t));
    let output = child.wait_with_output();
    killer.unregister(id);
    let output =
        output.map_err(|e| ExecError::Spawn(format!("lost track of '{}': {e}", argv[0])))?;
    let ran = Ran {
        output,
        started,
        took: t0.elapsed(),
    };
    if ran.output.status.success() {
        Ok(ran)
    } else {
        Err(ExecError::Exit(ran))
    }
}

fn read_inputs(args: &Args) -> Result<(Vec<String>, Option<Vec<String>>), String> {
    let mut command = args.command.clone();
    let mut inputs = None;
    if let Some(at) = command.iter().position(|w| w == ":::") {
        let list: Vec<String> = command.split_off(at).into_iter().skip(1).collect();
        if list.iter().any(|w| w == ":::") {
            return Err("only one ::: group is supported".into());
        }
        if args.arg_file.is_some() {
            return Err("give inputs after ::: or with -a FILE, not both".into());
        }
        inputs = Some(list);
    } else if let Some(path) = &args.arg_file {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the input file {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        inputs = Some(text.lines().map(String::from).collect());
    }
    if command.is_empty() {
        return Err(
            "no command given (usage: brigade exec [OPTIONS] COMMAND [ARGS...] [::: INPUTS...])"
                .into(),
        );
    }
    Ok((command, inputs))
}

pub fn main(args: Args) -> i32 {
    let started = Instant::now();
    let (command, inputs) = match read_inputs(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("brigade exec: {e}");
            return exit::USAGE;
        }
    };
    let template = match Template::parse(&command, args.shell) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("brigade exec: {e}");
            return exit::USAGE;
        }
    };
    let total = inputs.as_ref().map(|v| v.len() as u64);
    let source: Box<dyn Iterator<Item = String> + Send> = match inputs {
        Some(v) => Box::new(v.into_iter()),
        None => Box::new(
            BufReader::new(io::stdin())
                .split(b'\n')
                .map_while(Result::ok)
                .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(&l)).into_owned()),
        ),
    };
    let jobs = source.enumerate().map(|(i, input)| Job {
        seq: i as u64 + 1,
        input,
    });

    if args.dry_run {
        let mut out = io::stdout().lock();
        for job in jobs {
            if let Next::StopQuietly = run::on_write(writeln!(
                out,
                "{}",
                describe(&template.argv(&job.input, job.seq))
            )) {
                break;
            }
        }
        return exit::OK;
    }

    let mut joblog = match &args.joblog {
        None => None,
        Some(p) => match File::create(p) {
            Ok(mut f) => {
                let _ = writeln!(
                    f,
                    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
                );
                Some(io::BufWriter::new(f))
            }
            Err(e) => {
                eprintln!(
                    "brigade exec: cannot write the job log {}: {e}",
                    p.display()
                );
                return exit::USAGE;
            }
        },
    };

    let killer = Killer::start();
    let k = killer.clone();
    interrupt::on_hard_stop(move || k.kill_all());
    let mut builder = args.run.apply(Builder::new(), run::cores());
    if args.keep_order {
        builder = builder.ordered();
    }
    let timeout = args.run.timeout;
    let tpl = template.clone();
    let results = builder.run(jobs, move |job: &Job, _ctx: &Context<Job>| {
        run_one(&tpl, &killer, timeout, job)
    });

    let summary = run::drive(&args.run, results, total, started, |o| {
        if let Some(log) = joblog.as_mut() {
            write_joblog(log, &template, o);
        }
        print_outcome(&template, o, timeout)
    });
    if let Some(mut log) = joblog {
        if let Err(e) = log.flush() {
            eprintln!("brigade exec: cannot write the job log: {e}");
        }
    }
    summary.print(&args.run);
    summary.exit_code
}

fn print_outcome(
    template: &Template,
    o: &Outcome<Job, Ran, ExecError>,
    timeout: Option<Duration>,
) -> Next {
    let job = &o.job;
    let show = |ran: &Ran| -> io::Result<()> {
        io::stdout().lock().write_all(&ran.output.stdout)?;
        io::stderr().lock().write_all(&ran.output.stderr)
    };
    let r = match &o.result {
        Ok(ran) => show(ran),
        Err(Failure::Error(ExecError::Exit(ran))) => show(ran).and_then(|()| {
            let why = match (ran.output.status.code(), ran.output.status.signal()) {
                (Some(c), _) => format!("exited with code {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "failed".into(),
            };
            let argv = template.argv(&job.input, job.seq);
            writeln!(
                io::stderr(),
                "brigade exec: job {} ({}) {why}",
                job.seq,
                describe(&argv)
            )
        }),
        Err(Failure::Error(ExecError::Spawn(msg))) => {
            writeln!(io::stderr(), "brigade exec: job {}: {msg}", job.seq)
        }
        Err(Failure::TimedOut) => {
            let argv = template.argv(&job.input, job.seq);
            let t = timeout.map(human).unwrap_or_default();
            writeln!(
                io::stderr(),
                "brigade exec: job {} ({}) timed out after {t} and was killed",
                job.seq,
                describe(&argv)
            )
        }
        Err(Failure::Cancelled) => Ok(()),
        Err(Failure::Panicked(m)) => {
            writeln!(io::stderr(), "brigade exec: job {}: panicked: {m}", job.seq)
        }
        Err(Failure::Init(m)) => writeln!(io::stderr(), "brigade exec: job {}: {m}", job.seq),
        Err(_) => writeln!(io::stderr(), "brigade exec: job {}: failed", job.seq),
    };
    run::on_write(r)
}

fn write_joblog(log: &mut impl Write, template: &Template, o: &Outcome<Job, Ran, ExecError>) {
    let job = &o.job;
    let epoch = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let (start, took, received, code, signal) = match &o.result {
        Ok(ran) | Err(Failure::Error(ExecError::Exit(ran))) => (
            epoch(ran.started),
            ran.took.as_secs_f64(),
            ran.output.stdout.len(),
            ran.output.status.code().unwrap_or(-1),
            ran.output.status.signal().unwrap_or(0),
        ),
        Err(Failure::TimedOut) => {
            let took = o.run_time.as_secs_f64();
            (
                epoch(SystemTime::now()) - took,
                took,
                0,
                -1,
                Signal::SIGKILL as i32,
            )
        }
        Err(Failure::Cancelled) => return,
        Err(_) => (epoch(SystemTime::now()), 0.0, 0, 127, 0),
    };
    let argv = template.argv(&job.input, job.seq);
    let _ = writeln!(
        log,
        "{}\t:\t{start:.3}\t{took:.3}\t0\t{received}\t{code}\t{signal}\t{}",
        job.seq,
        describe(&argv)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(words: &[&str]) -> Template {
        Template::parse(
            &words.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            false,
        )
        .unwrap()
    }

    #[test]
    fn placeholders() {
        let t = tpl(&["cp", "{}", "out/{/.}.bak", "{//}", "{.}", "{#}"]);
        assert_eq!(
            t.argv("a/b/c.txt", 7),
            ["cp", "a/b/c.txt", "out/c.bak", "a/b", "a/b/c", "7"]
        );
        assert_eq!(tpl(&["echo"]).argv("x y", 1), ["echo", "x y"]);
        assert_eq!(tpl(&["echo", "{/}"]).argv("plain", 1), ["echo", "plain"]);
        assert_eq!(tpl(&["echo", "{//}"]).argv("plain", 1), ["echo", "."]);
        assert_eq!(
            tpl(&["echo", "{.}"]).argv(".hidden", 1),
            ["echo", ".hidden"]
        );
    }

    #[test]
    fn braces_that_are_not_placeholders_are_text() {
        let t = tpl(&["awk", "{print $1}", "{}"]);
        assert_eq!(t.argv("f", 1), ["awk", "{print $1}", "f"]);
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let e = Template::parse(&["echo".into(), "{..}".into()], false).unwrap_err();
        assert!(e.contains("{..}") && e.contains("argument 2"), "{e}");
        assert!(Template::parse(&["echo".into(), "{1}".into()], false).is_err());
    }

    #[test]
    fn shell_mode_quotes_inputs() {
        let t = Template::parse(&["echo {} > {.}.out".into()], true).unwrap();
        assert_eq!(
            t.argv("it's.txt", 1),
            ["sh", "-c", r"echo 'it'\''s.txt' > 'it'\''s'.out"]
        );
    }
}
